/*
 * A container's VM: vmm-run in service mode and guest-init's control
 * service behind its hybrid vsock socket. See vm.h.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ctl/hybrid_vsock.h"
#include "erovm_control.pb-c.h"
#include "shim/vm.h"
#include "vmm/guest_abi.h"

#define CONNECT_RETRY_MS 25
#define VMM_LOG_TAIL 1024
#define VMM_ARGS_MAX (16 + 2 * DISKS_MAX)
#define DISK_ARG_MAX 8192

static long long monotonic_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

void vm_dir_for(const char *ns, const char *id, char *dir, size_t size)
{
	/* FNV-1a over "NS/ID": short and stable; ids can be 64 bytes and more. */
	uint64_t hash = 0xcbf29ce484222325ULL;
	const char *parts[] = { ns, "/", id };

	for (size_t i = 0; i < 3; i++)
		for (const unsigned char *p = (const unsigned char *)parts[i]; *p; p++)
			hash = (hash ^ *p) * 0x100000001b3ULL;
	snprintf(dir, size, "%s/vm-%016" PRIx64, VM_RUN_DIR, hash);
}

unsigned long long vm_process_start_time(pid_t pid)
{
	char path[64], buf[1024];
	unsigned long long start = 0;
	ssize_t n;
	char *p;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	/* Fields after the command name, which may hold spaces, end at ')'. */
	p = strrchr(buf, ')');
	if (!p)
		return 0;
	p++;
	/* starttime is field 22; p points before field 3. */
	for (int field = 3; field < 22 && p; field++)
		p = strchr(p + 1, ' ');
	if (p)
		start = strtoull(p + 1, NULL, 10);
	return start;
}

static void remove_dir(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;

	if (!d)
		return;
	while ((e = readdir(d))) {
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			unlinkat(dirfd(d), e->d_name, 0);
	}
	closedir(d);
	rmdir(dir);
}

/* The last bytes of file @name of the VM's directory, on one line, into @out. */
static void log_tail(const struct vm *vm, const char *name, char *out, size_t size)
{
	char path[PATH_MAX + 16], buf[VMM_LOG_TAIL + 1];
	ssize_t n;
	off_t end;
	int fd;

	out[0] = '\0';
	snprintf(path, sizeof(path), "%s/%s", vm->dir, name);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	end = lseek(fd, 0, SEEK_END);
	lseek(fd, end > VMM_LOG_TAIL ? end - VMM_LOG_TAIL : 0, SEEK_SET);
	n = read(fd, buf, VMM_LOG_TAIL);
	close(fd);
	if (n <= 0)
		return;
	buf[n] = '\0';
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
		buf[--n] = '\0';
	for (char *p = buf; *p; p++)
		if (*p == '\n')
			*p = ' ';
	snprintf(out, size, "%s", buf);
}

bool vm_reap(struct vm *vm)
{
	int status;

	if (vm->exited)
		return true;
	if (vm->pid <= 0)
		return false;
	if (waitpid(vm->pid, &status, WNOHANG) != vm->pid)
		return false;
	vm->exited = true;
	vm->wstatus = status;
	return true;
}

bool vm_exited_within(struct vm *vm, int timeout_ms)
{
	long long deadline = monotonic_ms() + timeout_ms;

	while (!vm_reap(vm)) {
		if (vm->pid <= 0 || monotonic_ms() >= deadline)
			return false;
		sleep_ms(10);
	}
	return true;
}

static void describe_exit(int wstatus, char *buf, size_t size)
{
	if (WIFEXITED(wstatus))
		snprintf(buf, size, "exited with status %d", WEXITSTATUS(wstatus));
	else if (WIFSIGNALED(wstatus))
		snprintf(buf, size, "was killed by signal %d", WTERMSIG(wstatus));
	else
		snprintf(buf, size, "ended");
}

static int wait_for_control(struct vm *vm, int timeout_ms, char *err, size_t err_size)
{
	long long deadline = monotonic_ms() + timeout_ms;
	char why[256], tail[VMM_LOG_TAIL + 1], console[VMM_LOG_TAIL + 1], how[64];

	for (;;) {
		int fd, left = (int)(deadline - monotonic_ms());

		if (vm_reap(vm)) {
			vm->died_booting = true;
			describe_exit(vm->wstatus, how, sizeof(how));
			log_tail(vm, "vmm.log", tail, sizeof(tail));
			/* The guest's own last words: a panic, guest-init's error. */
			log_tail(vm, "console.log", console, sizeof(console));
			snprintf(err, err_size, "vmm-run %s before the guest was ready%s%s%s%s", how,
				 tail[0] ? ": " : "", tail, console[0] ? "; guest console: " : "",
				 console);
			return -1;
		}
		if (left <= 0)
			break;
		fd = hybrid_vsock_connect(vm->vsock, GUEST_VSOCK_CONTROL_PORT,
					  left < 2000 ? left : 2000, why, sizeof(why));
		if (fd >= 0) {
			vm->control = ttrpc_client_new(fd);
			if (!vm->control) {
				close(fd);
				snprintf(err, err_size, "out of memory");
				return -1;
			}
			return 0;
		}
		/* No socket yet, or the guest does not listen yet: booting. */
		if (fd != -ENOENT && fd != -ECONNREFUSED && fd != -ECONNRESET && fd != -ETIMEDOUT) {
			snprintf(err, err_size, "guest control service: %s", why);
			return -1;
		}
		sleep_ms(CONNECT_RETRY_MS);
	}
	log_tail(vm, "vmm.log", tail, sizeof(tail));
	snprintf(err, err_size, "the guest's control service did not answer within %d s%s%s",
		 timeout_ms / 1000, tail[0] ? "; vmm-run: " : "", tail);
	return -1;
}

int vm_start(struct vm *vm, const struct vm_tools *tools, const char *dir,
	     const struct disk_set *disks, const struct vm_size *size, int timeout_ms,
	     char *err, size_t err_size)
{
	char *argv[VMM_ARGS_MAX], *disk_args[DISKS_MAX] = { NULL };
	char mem[32], cpus[16], serial[PATH_MAX + 16], logpath[PATH_MAX + 16];
	size_t argc = 0;
	int log_fd = -1, null_fd = -1, ret = -1;
	pid_t parent = getpid(), pid;

	memset(vm, 0, sizeof(*vm));
	vm->memory = size->memory;
	snprintf(vm->dir, sizeof(vm->dir), "%s", dir);
	if ((size_t)snprintf(vm->vsock, sizeof(vm->vsock), "%s/vsock", dir) >= sizeof(vm->vsock) ||
	    strlen(vm->vsock) + 12 >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
		snprintf(err, err_size, "runtime directory %s: path too long for a socket", dir);
		return -1;
	}
	if ((mkdir(VM_RUN_DIR, 0711) < 0 && errno != EEXIST) ||
	    (mkdir(dir, 0700) < 0 && errno != EEXIST)) {
		snprintf(err, err_size, "mkdir %s: %s", dir, strerror(errno));
		return -1;
	}
	unlink(vm->vsock);
	snprintf(logpath, sizeof(logpath), "%s/vmm.log", dir);
	snprintf(serial, sizeof(serial), "%s/console.log", dir);
	log_fd = open(logpath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (log_fd < 0 || null_fd < 0) {
		snprintf(err, err_size, "%s: %s", logpath, strerror(errno));
		goto out;
	}
	snprintf(mem, sizeof(mem), "%" PRIu64 "M", size->memory >> 20);
	snprintf(cpus, sizeof(cpus), "%u", size->cpus ? size->cpus : 1);

	argv[argc++] = (char *)tools->vmm_run;
	argv[argc++] = "--kernel";
	argv[argc++] = (char *)tools->kernel;
	argv[argc++] = "--rootfs";
	argv[argc++] = (char *)tools->rootfs;
	argv[argc++] = "--mem";
	argv[argc++] = mem;
	argv[argc++] = "--cpus";
	argv[argc++] = cpus;
	argv[argc++] = "--vsock";
	argv[argc++] = vm->vsock;
	argv[argc++] = "--serial";
	argv[argc++] = serial;
	for (size_t i = 0; i < disks->count; i++) {
		int n;

		disk_args[i] = malloc(DISK_ARG_MAX);
		if (!disk_args[i]) {
			snprintf(err, err_size, "out of memory");
			goto out;
		}
		n = disk_format_arg(&disks->disks[i], disk_args[i], DISK_ARG_MAX);
		if (n < 0) {
			snprintf(err, err_size, "disk %s: %s", disks->disks[i].serial,
				 n == -EINVAL ? "not prepared" : "description too long");
			goto out;
		}
		argv[argc++] = "--disk";
		argv[argc++] = disk_args[i];
	}
	argv[argc] = NULL;

	pid = fork();
	if (pid < 0) {
		snprintf(err, err_size, "fork: %s", strerror(errno));
		goto out;
	}
	if (pid == 0) {
		/* Only async-signal-safe calls: the shim has threads. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(127);
		setpgid(0, 0);
		dup2(null_fd, STDIN_FILENO);
		dup2(log_fd, STDOUT_FILENO);
		dup2(log_fd, STDERR_FILENO);
		execv(argv[0], argv);
		_exit(127);
	}
	vm->pid = pid;
	vm->start_time = vm_process_start_time(pid);
	ret = wait_for_control(vm, timeout_ms, err, err_size);
	if (ret < 0)
		vm_stop(vm, 0);
out:
	for (size_t i = 0; i < DISKS_MAX; i++)
		free(disk_args[i]);
	if (log_fd >= 0)
		close(log_fd);
	if (null_fd >= 0)
		close(null_fd);
	return ret;
}

int vm_call(struct vm *vm, const char *service, const char *method,
	    const ProtobufCMessage *request, const ProtobufCMessageDescriptor *response_type,
	    ProtobufCMessage **response, int timeout_ms, char *err, size_t err_size)
{
	struct ttrpc_result result = { 0 };
	int ret, code;

	if (response)
		*response = NULL;
	if (!vm->control || vm->exited) {
		snprintf(err, err_size, "the VM is not running");
		return -1;
	}
	if (vm->paused) {
		snprintf(err, err_size, "the VM is paused");
		return TTRPC_FAILED_PRECONDITION;
	}
	ret = ttrpc_client_call_message(vm->control, service, method, request, &result,
					timeout_ms);
	if (ret < 0) {
		snprintf(err, err_size, "%s/%s: %s", service, method,
			 ret == -ETIMEDOUT ? "no answer from the guest in time" :
			 ret == -EPIPE ? "the guest closed the connection" : strerror(-ret));
		if (ret != -ETIMEDOUT) {
			ttrpc_client_free(vm->control);
			vm->control = NULL;
		}
		return -1;
	}
	code = result.code;
	if (code != TTRPC_OK) {
		snprintf(err, err_size, "%s", result.message);
	} else if (response && response_type) {
		*response = protobuf_c_message_unpack(response_type, NULL, result.payload_len,
						      result.payload);
		if (!*response) {
			snprintf(err, err_size, "%s/%s: the guest's answer does not decode", service,
				 method);
			code = -1;
		}
	}
	ttrpc_result_clear(&result);
	return code;
}

int vm_connect(const struct vm *vm, char *err, size_t err_size)
{
	int fd = hybrid_vsock_connect(vm->vsock, GUEST_VSOCK_CONTROL_PORT, 10000, err, err_size);

	return fd < 0 ? -1 : fd;
}

int vm_open_stream(const struct vm *vm, const char *id, char *err, size_t err_size)
{
	size_t len = strlen(id);
	char line[GUEST_STREAM_ID_MAX + 2];
	int fd;

	if (len == 0 || len > GUEST_STREAM_ID_MAX) {
		snprintf(err, err_size, "stream id %s: bad length", id);
		return -1;
	}
	fd = hybrid_vsock_connect(vm->vsock, GUEST_VSOCK_STREAM_PORT, 10000, err, err_size);
	if (fd < 0)
		return -1;
	memcpy(line, id, len);
	line[len] = '\n';
	for (size_t off = 0; off <= len;) {
		ssize_t n = send(fd, line + off, len + 1 - off, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			snprintf(err, err_size, "stream %s: %s", id, strerror(errno));
			close(fd);
			return -1;
		}
		off += (size_t)n;
	}
	return fd;
}

static int signal_vmm(struct vm *vm, int sig, char *err, size_t err_size)
{
	if (vm->pid <= 0 || vm_reap(vm)) {
		snprintf(err, err_size, "the VM is not running");
		return -1;
	}
	if (kill(vm->pid, sig) < 0) {
		snprintf(err, err_size, "signal vmm-run: %s", strerror(errno));
		return -1;
	}
	return 0;
}

int vm_pause(struct vm *vm, char *err, size_t err_size)
{
	if (signal_vmm(vm, SIGSTOP, err, err_size) < 0)
		return -1;
	vm->paused = true;
	return 0;
}

int vm_resume(struct vm *vm, char *err, size_t err_size)
{
	if (signal_vmm(vm, SIGCONT, err, err_size) < 0)
		return -1;
	vm->paused = false;
	return 0;
}

void vm_stop(struct vm *vm, int grace_ms)
{
	char err[256];

	if (vm->pid > 0 && !vm_reap(vm)) {
		if (vm->paused)
			kill(vm->pid, SIGCONT);
		vm->paused = false;
		if (grace_ms > 0 && vm->control) {
			long long deadline = monotonic_ms() + grace_ms;
			Erovm__Control__V1__Empty empty = EROVM__CONTROL__V1__EMPTY__INIT;

			vm_call(vm, GUEST_CONTROL_SERVICE_SYSTEM, "Shutdown", &empty.base, NULL,
				NULL, grace_ms, err, sizeof(err));
			while (!vm_reap(vm) && monotonic_ms() < deadline)
				sleep_ms(CONNECT_RETRY_MS);
		}
		if (!vm_reap(vm)) {
			kill(vm->pid, SIGKILL);
			if (waitpid(vm->pid, &vm->wstatus, 0) == vm->pid)
				vm->exited = true;
		}
	}
	ttrpc_client_free(vm->control);
	vm->control = NULL;
	if (vm->dir[0])
		remove_dir(vm->dir);
}

bool vm_kill_leftover(pid_t pid, unsigned long long start_time, const char *dir)
{
	bool killed = false;

	if (pid > 0 && start_time && vm_process_start_time(pid) == start_time) {
		kill(pid, SIGCONT);
		if (kill(pid, SIGKILL) == 0)
			killed = true;
		/* Not our child: wait until /proc says it is gone (or a zombie). */
		for (int i = 0; i < 400 && vm_process_start_time(pid) == start_time; i++) {
			char path[64], state = 0;
			FILE *f;

			snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
			f = fopen(path, "re");
			if (f) {
				if (fscanf(f, "%*d (%*[^)]) %c", &state) != 1)
					state = 0;
				fclose(f);
			}
			if (state == 'Z')
				break;
			sleep_ms(CONNECT_RETRY_MS);
		}
	}
	if (dir && dir[0])
		remove_dir(dir);
	return killed;
}
