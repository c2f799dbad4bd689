/*
 * The Container service (proto/erovm_control.proto): OCI bundles under
 * GUEST_CONTAINER_DIR run by crun. `crun create` and `crun exec --detach`
 * are launchers of process records (process_launch(), control_internal.h):
 * they run asynchronously in the loop, and the container's process takes
 * the record over once crun wrote its pid file. The short commands (start,
 * kill, ps, update, delete) run synchronously, each for at most
 * CRUN_TIMEOUT_MS. Each crun failure answers with crun's own message.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/io.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "guest-init/bundle.h"
#include "guest-init/control_internal.h"
#include "guest-init/guest_init.h"

#define CRUN "/usr/bin/crun"
#define CRUN_PATH_ENV "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#define CRUN_TIMEOUT_MS 10000
/* What a synchronous crun command may print: enough for thousands of pids. */
#define CRUN_STDOUT_MAX (64 * 1024)
#define CRUN_STDERR_MAX 1024
#define CONTAINER_ID_MAX 64
/* crun's --console-socket: short paths, sun_path holds 108 bytes. */
#define CONSOLE_DIR "/run/erovm/consoles"

/* Pending WaitOom calls of one container. */
#define OOM_WAITERS_MAX 8

struct container {
	TAILQ_ENTRY(container) link;
	char id[CONTAINER_ID_MAX + 1];
	char dir[sizeof(GUEST_CONTAINER_DIR) + 1 + CONTAINER_ID_MAX];	/* the bundle */
	char memory_events[PATH_MAX];	/* its cgroup's, once created; "" before */
	uint64_t oom_reported;		/* the count WaitOom last answered */
	struct ttrpc_call *oom_waiters[OOM_WAITERS_MAX];
	size_t oom_waiter_count;
};

/* A crun create or exec as a process record's launcher. */
struct crun_launch {
	struct control *ctl;
	char container[CONTAINER_ID_MAX + 1];
	bool create;			/* a failure forgets the container */
	char pid_file[PATH_MAX];
	char console[sizeof(((struct sockaddr_un *)0)->sun_path)];	/* "" if none */
	int console_fd;			/* listening for crun's pty master, or -1 */
};

static struct container *find_container(struct control *ctl, const char *id)
{
	struct container *c;

	TAILQ_FOREACH(c, &ctl->containers, link)
		if (!strcmp(c->id, id))
			return c;
	return NULL;
}

static struct container *lookup(struct control *ctl, struct ttrpc_call *call, const char *id)
{
	struct container *c = find_container(ctl, id);

	if (!c)
		ttrpc_call_fail(call, TTRPC_NOT_FOUND, "%s: no container %s", ttrpc_call_method(call),
				id);
	return c;
}

static void *unpack(struct ttrpc_call *call, const ProtobufCMessageDescriptor *descriptor,
		    const uint8_t *payload, size_t len)
{
	ProtobufCMessage *request = protobuf_c_message_unpack(descriptor, NULL, len, payload);

	if (!request)
		ttrpc_call_fail(call, TTRPC_INVALID_ARGUMENT, "%s: undecodable request",
				ttrpc_call_method(call));
	return request;
}

/* ------------------------------------------------------------- files */

static int remove_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	return (type == FTW_DP ? rmdir(path) : unlink(path)) < 0 ? -1 : 0;
}

/* Removes @path and all below it; 0 or -1 with errno. Gone already is fine. */
static int remove_tree(const char *path)
{
	if (nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS) < 0 && errno != ENOENT)
		return -1;
	return 0;
}

/* mkdir -p of @path's parent directories inside @base, which exists. */
static int make_parents(const char *base, const char *path)
{
	char full[PATH_MAX];
	size_t base_len = strlen(base);

	if ((size_t)snprintf(full, sizeof(full), "%s/%s", base, path) >= sizeof(full)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	for (char *slash = full + base_len + 1; (slash = strchr(slash, '/')); slash++) {
		*slash = '\0';
		if (mkdir(full, 0755) < 0 && errno != EEXIST)
			return -1;
		*slash = '/';
	}
	return 0;
}

/* Writes @len bytes to a new file @path with permission bits @mode. */
static int write_file(const char *path, const void *data, size_t len, mode_t mode)
{
	const uint8_t *p = data;
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);

	if (fd < 0)
		return -1;
	while (len) {
		ssize_t n = write(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int err = errno;

			close(fd);
			errno = err;
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	/* fchmod, not open's mode: the umask must not change it. */
	if (fchmod(fd, mode & 07777) < 0 || close(fd) < 0)
		return -1;
	return 0;
}

static int mkdir_p(const char *path, mode_t mode)
{
	char copy[PATH_MAX];

	snprintf(copy, sizeof(copy), "%s", path);
	for (char *slash = copy + 1; (slash = strchr(slash, '/')); slash++) {
		*slash = '\0';
		if (mkdir(copy, 0755) < 0 && errno != EEXIST)
			return -1;
		*slash = '/';
	}
	return mkdir(copy, mode) < 0 && errno != EEXIST ? -1 : 0;
}

/*
 * A fresh bundle in @dir: the client's files, config.json (0600) and
 * guest-init's private directory. Returns 0, or -1 with the step in @err.
 */
static int write_bundle(const char *dir, const Erovm__Control__V1__CreateContainerRequest *r,
			char *err, size_t size)
{
	char path[PATH_MAX];

	if (remove_tree(dir) < 0 || mkdir_p(dir, 0700) < 0) {
		snprintf(err, size, "creating %s: %s", dir, strerror(errno));
		return -1;
	}
	snprintf(path, sizeof(path), "%s/" BUNDLE_PRIVATE_DIR, dir);
	if (mkdir(path, 0700) < 0) {
		snprintf(err, size, "creating %s: %s", path, strerror(errno));
		return -1;
	}
	for (size_t i = 0; i < r->n_files; i++) {
		const Erovm__Control__V1__BundleFile *f = r->files[i];

		snprintf(path, sizeof(path), "%s/%s", dir, f->path);
		if (make_parents(dir, f->path) < 0 ||
		    write_file(path, f->data.data, f->data.len, f->mode) < 0) {
			snprintf(err, size, "writing %s: %s", path, strerror(errno));
			return -1;
		}
	}
	snprintf(path, sizeof(path), "%s/" BUNDLE_CONFIG, dir);
	if (write_file(path, r->config.data, r->config.len, 0600) < 0) {
		snprintf(err, size, "writing %s: %s", path, strerror(errno));
		return -1;
	}
	return 0;
}

/* ---------------------------------------------------- synchronous crun */

struct crun_result {
	int status;			/* exit status, 128 + signal, or -1: not run */
	char *out;			/* stdout, NUL-terminated, at most CRUN_STDOUT_MAX */
	size_t out_len;
	char err[CRUN_STDERR_MAX];	/* stderr, trimmed */
};

static void child_run_crun(char *const argv[], int out_fd, int err_fd)
{
	char *envp[] = { CRUN_PATH_ENV, NULL };
	sigset_t none;
	int null_fd;

	for (int sig = 1; sig < NSIG; sig++)
		signal(sig, SIG_DFL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (null_fd < 0 || dup2(null_fd, 0) < 0 || dup2(out_fd, 1) < 0 || dup2(err_fd, 2) < 0)
		_exit(126);
#if defined(__x86_64__) || defined(__i386__)
	/* guest-init's port access survives fork and exec: crun gets none. */
	if (ioperm(GUEST_PORT_BASE, GUEST_PORT_LEN, 0) < 0 && errno != ENOSYS)
		_exit(126);
#endif
	execve(argv[0], argv, envp);
	dprintf(2, "exec %s: %s", argv[0], strerror(errno));
	_exit(127);
}

/* Appends what @fd has to @buf (bounded: the rest is read and dropped); false at EOF. */
static bool drain(int fd, char *buf, size_t *len, size_t cap)
{
	char scratch[4096];

	for (;;) {
		char *to = *len + 1 < cap ? buf + *len : scratch;
		size_t room = *len + 1 < cap ? cap - 1 - *len : sizeof(scratch);
		ssize_t n = read(fd, to, room);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return errno == EAGAIN || errno == EWOULDBLOCK;
		if (n == 0)
			return false;
		if (to != scratch)
			*len += (size_t)n;
		buf[*len] = '\0';
	}
}

static char *trim(char *text)
{
	size_t len;

	while (*text == ' ' || *text == '\n' || *text == '\t' || *text == '\r')
		text++;
	len = strlen(text);
	while (len && strchr(" \n\t\r", text[len - 1]))
		text[--len] = '\0';
	return text;
}

/*
 * Runs crun with @argv (argv[0] is CRUN) and waits for it, at most
 * CRUN_TIMEOUT_MS, then kills it. The loop stands still meanwhile: these
 * commands are short. Other children are left for the loop to reap.
 */
static void run_crun(char *const argv[], struct crun_result *res)
{
	long long deadline = control_monotonic_ms() + CRUN_TIMEOUT_MS;
	int out[2] = { -1, -1 }, err[2] = { -1, -1 }, wstatus;
	size_t err_len = 0;
	bool out_open = true, err_open = true;
	pid_t pid = -1;

	res->status = -1;
	res->out_len = 0;
	res->err[0] = '\0';
	res->out = malloc(CRUN_STDOUT_MAX);
	if (!res->out || pipe2(out, O_CLOEXEC | O_NONBLOCK) < 0 ||
	    pipe2(err, O_CLOEXEC | O_NONBLOCK) < 0 || (pid = fork()) < 0) {
		snprintf(res->err, sizeof(res->err), "cannot run crun: %s",
			 res->out ? strerror(errno) : "out of memory");
		goto out;
	}
	if (pid == 0)
		child_run_crun(argv, out[1], err[1]);
	res->out[0] = '\0';
	close(out[1]);
	close(err[1]);
	out[1] = err[1] = -1;
	/*
	 * Until it exits: the pipes may stay open longer, in processes it
	 * started (a container's init), so its exit is what counts.
	 */
	while (waitpid(pid, &wstatus, WNOHANG) != pid) {
		struct pollfd fds[2] = { { .fd = out_open ? out[0] : -1, .events = POLLIN },
					 { .fd = err_open ? err[0] : -1, .events = POLLIN } };
		long long left = deadline - control_monotonic_ms();

		if (left <= 0) {
			kill(pid, SIGKILL);
			waitpid(pid, &wstatus, 0);
			snprintf(res->err, sizeof(res->err), "crun %s did not finish within %d ms",
				 argv[1], CRUN_TIMEOUT_MS);
			goto out;
		}
		/* Short naps while neither pipe speaks: its exit is polled for. */
		if (poll(fds, 2, left < 20 ? (int)left : 20) > 0) {
			if (fds[0].revents)
				out_open = drain(out[0], res->out, &res->out_len, CRUN_STDOUT_MAX);
			if (fds[1].revents)
				err_open = drain(err[0], res->err, &err_len, sizeof(res->err));
		}
	}
	/* What it left in the pipes is all there now. */
	drain(out[0], res->out, &res->out_len, CRUN_STDOUT_MAX);
	drain(err[0], res->err, &err_len, sizeof(res->err));
	res->status = WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : 128 + WTERMSIG(wstatus);
	memmove(res->err, trim(res->err), strlen(trim(res->err)) + 1);
	if (res->status && !res->err[0])
		snprintf(res->err, sizeof(res->err), "crun %s exited with status %d and said nothing",
			 argv[1], res->status);
out:
	for (int i = 0; i < 2; i++) {
		if (out[i] >= 0)
			close(out[i]);
		if (err[i] >= 0)
			close(err[i]);
	}
}

/*
 * Runs crun and answers @call with Empty if it succeeded, else with
 * @code and crun's message. Returns true on success.
 */
static bool crun_answer(struct ttrpc_call *call, char *const argv[], enum ttrpc_code code)
{
	struct crun_result res;
	bool ok;

	run_crun(argv, &res);
	ok = res.status == 0;
	if (ok)
		ttrpc_call_reply(call, NULL, 0);
	else
		ttrpc_call_fail(call, code, "%s: %s", ttrpc_call_method(call), res.err);
	free(res.out);
	return ok;
}

/* ------------------------------------------------------------ launches */

static int read_pid_file(const char *path, pid_t *pid, char *err, size_t size)
{
	char text[32], *end;
	ssize_t n = -1;
	long value;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd >= 0) {
		n = read(fd, text, sizeof(text) - 1);
		close(fd);
	}
	if (n < 0) {
		snprintf(err, size, "reading its pid file %s: %s", path, strerror(errno));
		return -1;
	}
	text[n] = '\0';
	value = strtol(text, &end, 10);
	if (end == text || value <= 0 || value > INT_MAX || (*end && *end != '\n')) {
		snprintf(err, size, "its pid file %s holds no pid", path);
		return -1;
	}
	*pid = (pid_t)value;
	return 0;
}

/* The pty master crun sent to the console socket; crun has exited, so it is there or never. */
static int receive_pty(int listen_fd, char *err, size_t size)
{
	union {
		struct cmsghdr header;
		char space[CMSG_SPACE(sizeof(int))];
	} control;
	char byte[256];
	struct iovec iov = { .iov_base = byte, .iov_len = sizeof(byte) };
	struct msghdr msg = {
		.msg_iov = &iov, .msg_iovlen = 1,
		.msg_control = control.space, .msg_controllen = sizeof(control.space),
	};
	struct cmsghdr *cmsg;
	int conn = accept4(listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	int pty = -1;

	if (conn < 0) {
		snprintf(err, size, "it never connected to its console socket: %s", strerror(errno));
		return -1;
	}
	if (recvmsg(conn, &msg, MSG_CMSG_CLOEXEC) < 0) {
		snprintf(err, size, "receiving the terminal: %s", strerror(errno));
		close(conn);
		return -1;
	}
	close(conn);
	for (cmsg = CMSG_FIRSTHDR(&msg); cmsg; cmsg = CMSG_NXTHDR(&msg, cmsg)) {
		if (cmsg->cmsg_level == SOL_SOCKET && cmsg->cmsg_type == SCM_RIGHTS &&
		    cmsg->cmsg_len == CMSG_LEN(sizeof(int))) {
			memcpy(&pty, CMSG_DATA(cmsg), sizeof(int));
			break;
		}
	}
	if (pty < 0)
		snprintf(err, size, "it sent no terminal to its console socket");
	return pty;
}

/* The memory.events file of @pid's cgroup (v2), into @out; -1 if unknown. */
static int memory_events_of(pid_t pid, char *out, size_t size)
{
	char path[64], line[PATH_MAX];
	int ret = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/cgroup", (int)pid);
	f = fopen(path, "re");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		if (strncmp(line, "0::", 3))
			continue;
		line[strcspn(line, "\n")] = '\0';
		if ((size_t)snprintf(out, size, "/sys/fs/cgroup%s/memory.events", line + 3) < size)
			ret = 0;
		break;
	}
	fclose(f);
	return ret;
}

static int launch_launched(void *ctx, pid_t *pid, int *pty, char *err, size_t size)
{
	struct crun_launch *l = ctx;
	struct container *c;

	if (read_pid_file(l->pid_file, pid, err, size) < 0)
		return -1;
	/* crun create put the init in the container's cgroup. */
	if (l->create && (c = find_container(l->ctl, l->container)) &&
	    memory_events_of(*pid, c->memory_events, sizeof(c->memory_events)) < 0) {
		report("container %s: no cgroup v2 for pid %d: no OOM events", c->id, (int)*pid);
		c->memory_events[0] = '\0';
	}
	if (l->console_fd >= 0 && (*pty = receive_pty(l->console_fd, err, size)) < 0)
		return -1;
	return 0;
}

static void fail_oom_waiters(struct container *c)
{
	while (c->oom_waiter_count)
		ttrpc_call_fail(c->oom_waiters[--c->oom_waiter_count], TTRPC_NOT_FOUND,
				"container %s: deleted", c->id);
}

static void forget_container(struct control *ctl, struct container *c)
{
	fail_oom_waiters(c);
	if (remove_tree(c->dir) < 0)
		report("container %s: removing %s: %s", c->id, c->dir, strerror(errno));
	TAILQ_REMOVE(&ctl->containers, c, link);
	ctl->container_count--;
	free(c);
}

static void launch_failed(void *ctx)
{
	struct crun_launch *l = ctx;
	struct container *c;
	char *argv[] = { CRUN, "delete", "--force", l->container, NULL };
	struct crun_result res;

	if (!l->create || !(c = find_container(l->ctl, l->container)))
		return;
	/* Whatever crun left of it (nothing, usually; its error says so). */
	run_crun(argv, &res);
	free(res.out);
	forget_container(l->ctl, c);
}

static void launch_free(void *ctx)
{
	struct crun_launch *l = ctx;

	if (l->console_fd >= 0) {
		close(l->console_fd);
		unlink(l->console);
	}
	free(l);
}

static const struct process_launcher crun_create_launcher = {
	.name = "crun create",
	.launched = launch_launched,
	.failed = launch_failed,
	.free = launch_free,
};

static const struct process_launcher crun_exec_launcher = {
	.name = "crun exec",
	.launched = launch_launched,
	.failed = launch_failed,
	.free = launch_free,
};

/* A listening socket for crun's --console-socket, in @l. */
static int open_console_socket(struct control *ctl, struct crun_launch *l)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };

	if (mkdir_p(CONSOLE_DIR, 0700) < 0)
		return -1;
	snprintf(l->console, sizeof(l->console), CONSOLE_DIR "/%u.sock", ctl->console_seq++);
	memcpy(addr.sun_path, l->console, sizeof(l->console));
	unlink(l->console);
	l->console_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (l->console_fd < 0)
		return -1;
	if (bind(l->console_fd, (struct sockaddr *)&addr, sizeof(addr)) < 0 ||
	    listen(l->console_fd, 1) < 0) {
		int err = errno;

		close(l->console_fd);
		l->console_fd = -1;
		errno = err;
		return -1;
	}
	return 0;
}

struct launch_spec {
	const char *process_id;
	bool terminal;
	uint32_t width, height;
	const char *stdin, *stdout, *stderr;
	char **args;
	size_t n_args;
};

/*
 * The StartRequest of a launch: packed and unpacked again, so that the
 * process record owns every byte of it as it does a client's.
 */
static Erovm__Control__V1__StartRequest *launch_request(const struct launch_spec *spec)
{
	Erovm__Control__V1__StartRequest r = EROVM__CONTROL__V1__START_REQUEST__INIT;
	Erovm__Control__V1__StartRequest *copy;
	uint8_t *buf;
	size_t len;

	r.id = (char *)spec->process_id;
	r.args = spec->args;
	r.n_args = spec->n_args;
	r.terminal = spec->terminal;
	r.width = spec->width;
	r.height = spec->height;
	r.stdin = (char *)spec->stdin;
	r.stdout = (char *)spec->stdout;
	r.stderr = (char *)spec->stderr;
	len = erovm__control__v1__start_request__get_packed_size(&r);
	buf = malloc(len ? len : 1);
	if (!buf)
		return NULL;
	erovm__control__v1__start_request__pack(&r, buf);
	copy = erovm__control__v1__start_request__unpack(NULL, len, buf);
	free(buf);
	return copy;
}

/* What Create and Exec check before they touch anything. */
static const char *check_launch(const char *container_id, const struct launch_spec *spec)
{
	const char *streams[3] = { spec->stdin, spec->stdout, spec->stderr };

	if (!control_valid_name(container_id, CONTAINER_ID_MAX))
		return "the container id must be 1-64 bytes of [A-Za-z0-9._-]";
	if (!control_valid_name(spec->process_id, CONTAINER_ID_MAX))
		return "the process id must be 1-64 bytes of [A-Za-z0-9._-]";
	for (int i = 0; i < 3; i++)
		if (streams[i][0] && !control_valid_name(streams[i], GUEST_STREAM_ID_MAX))
			return "stream ids must be 1-128 bytes of [A-Za-z0-9._-]";
	if (spec->terminal && spec->stderr[0])
		return "a terminal has no separate stderr stream";
	if (spec->width > 0xffff || spec->height > 0xffff)
		return "the terminal size must fit in 16 bits";
	return NULL;
}

/*
 * Runs `crun ARGS... [--console-socket SOCK] CONTAINER` as the launcher of
 * process record spec->process_id; @spec->args has room for the socket
 * option before its last two entries (the container id and NULL).
 */
static void launch(struct control *ctl, struct ttrpc_call *call, struct container *c,
		   struct launch_spec *spec, const char *pid_file, bool create)
{
	const struct process_launcher *launcher = create ? &crun_create_launcher : &crun_exec_launcher;
	struct crun_launch *l = calloc(1, sizeof(*l));
	Erovm__Control__V1__StartRequest *request;

	if (!l) {
		ttrpc_call_fail(call, TTRPC_RESOURCE_EXHAUSTED, "%s: out of memory",
				ttrpc_call_method(call));
		if (create)
			forget_container(ctl, c);
		return;
	}
	l->ctl = ctl;
	l->create = create;
	l->console_fd = -1;
	snprintf(l->container, sizeof(l->container), "%s", c->id);
	snprintf(l->pid_file, sizeof(l->pid_file), "%s", pid_file);
	unlink(l->pid_file);
	if (spec->terminal) {
		if (open_console_socket(ctl, l) < 0) {
			ttrpc_call_fail(call, TTRPC_INTERNAL, "%s: console socket %s: %s",
					ttrpc_call_method(call), l->console, strerror(errno));
			launch_failed(l);
			launch_free(l);
			return;
		}
		/* The container id moves back to make room for the option. */
		spec->args[spec->n_args + 1] = spec->args[spec->n_args - 1];
		spec->args[spec->n_args - 1] = "--console-socket";
		spec->args[spec->n_args] = l->console;
		spec->n_args += 2;
	}
	request = launch_request(spec);
	if (!request) {
		ttrpc_call_fail(call, TTRPC_RESOURCE_EXHAUSTED, "%s: out of memory",
				ttrpc_call_method(call));
		launch_failed(l);
		launch_free(l);
		return;
	}
	/* From here on process_launch reports every failure to launch_failed(). */
	process_launch(ctl, call, request, launcher, l);
}

/* ----------------------------------------------------------- handlers */

static void container_create(struct ttrpc_call *call, const uint8_t *payload, size_t len,
			     void *ctx)
{
	struct control *ctl = ctx;
	Erovm__Control__V1__CreateContainerRequest *r;
	struct launch_spec spec;
	struct container *c = NULL;
	char pid_file[PATH_MAX], err[PATH_MAX + 128];
	char *args[12];
	const char *problem;

	r = unpack(call, &erovm__control__v1__create_container_request__descriptor, payload, len);
	if (!r)
		return;
	spec = (struct launch_spec){
		.process_id = r->process_id, .terminal = r->terminal,
		.width = r->width, .height = r->height,
		.stdin = r->stdin, .stdout = r->stdout, .stderr = r->stderr,
		.args = args,
	};
	problem = check_launch(r->id, &spec);
	if (!problem && !bundle_json_is_object(r->config.data, r->config.len))
		problem = "the config is not a JSON object";
	for (size_t i = 0; !problem && i < r->n_files; i++) {
		const char *why = bundle_check_path(r->files[i]->path);

		if (why) {
			snprintf(err, sizeof(err), "file path \"%.200s\" %s", r->files[i]->path, why);
			problem = err;
		}
	}
	if (problem) {
		ttrpc_call_fail(call, TTRPC_INVALID_ARGUMENT, "Create: %s", problem);
	} else if (ctl->shutdown_requested) {
		ttrpc_call_fail(call, TTRPC_UNAVAILABLE, "Create: the guest is shutting down");
	} else if (find_container(ctl, r->id)) {
		ttrpc_call_fail(call, TTRPC_ALREADY_EXISTS, "Create: container %s exists", r->id);
	} else if (process_exists(ctl, r->process_id)) {
		ttrpc_call_fail(call, TTRPC_ALREADY_EXISTS, "Create: process %s exists",
				r->process_id);
	} else if (ctl->container_count == CONTROL_MAX_CONTAINERS) {
		ttrpc_call_fail(call, TTRPC_RESOURCE_EXHAUSTED, "Create: already %d containers",
				CONTROL_MAX_CONTAINERS);
	} else if (!(c = calloc(1, sizeof(*c)))) {
		ttrpc_call_fail(call, TTRPC_RESOURCE_EXHAUSTED, "Create: out of memory");
	} else {
		snprintf(c->id, sizeof(c->id), "%s", r->id);
		snprintf(c->dir, sizeof(c->dir), GUEST_CONTAINER_DIR "/%s", r->id);
		TAILQ_INSERT_TAIL(&ctl->containers, c, link);
		ctl->container_count++;
		if (write_bundle(c->dir, r, err, sizeof(err)) < 0) {
			ttrpc_call_fail(call, TTRPC_INTERNAL, "Create: %s", err);
			forget_container(ctl, c);
		} else {
			snprintf(pid_file, sizeof(pid_file), "%s/" BUNDLE_PRIVATE_DIR "/init.pid",
				 c->dir);
			spec.n_args = 0;
			args[spec.n_args++] = CRUN;
			args[spec.n_args++] = "create";
			args[spec.n_args++] = "--bundle";
			args[spec.n_args++] = c->dir;
			args[spec.n_args++] = "--pid-file";
			args[spec.n_args++] = pid_file;
			args[spec.n_args++] = c->id;
			launch(ctl, call, c, &spec, pid_file, true);
		}
	}
	erovm__control__v1__create_container_request__free_unpacked(r, NULL);
}

static void container_exec(struct ttrpc_call *call, const uint8_t *payload, size_t len, void *ctx)
{
	struct control *ctl = ctx;
	Erovm__Control__V1__ExecContainerRequest *r;
	struct launch_spec spec;
	struct container *c;
	char spec_file[PATH_MAX], pid_file[PATH_MAX];
	char *args[14];
	const char *problem;

	r = unpack(call, &erovm__control__v1__exec_container_request__descriptor, payload, len);
	if (!r)
		return;
	spec = (struct launch_spec){
		.process_id = r->process_id, .terminal = r->terminal,
		.width = r->width, .height = r->height,
		.stdin = r->stdin, .stdout = r->stdout, .stderr = r->stderr,
		.args = args,
	};
	problem = check_launch(r->id, &spec);
	if (!problem && !bundle_json_is_object(r->process.data, r->process.len))
		problem = "the process spec is not a JSON object";
	if (problem) {
		ttrpc_call_fail(call, TTRPC_INVALID_ARGUMENT, "Exec: %s", problem);
	} else if (!(c = lookup(ctl, call, r->id))) {
		;
	} else if (process_exists(ctl, r->process_id)) {
		ttrpc_call_fail(call, TTRPC_ALREADY_EXISTS, "Exec: process %s exists", r->process_id);
	} else {
		snprintf(spec_file, sizeof(spec_file), "%s/" BUNDLE_PRIVATE_DIR "/exec-%s.json",
			 c->dir, r->process_id);
		snprintf(pid_file, sizeof(pid_file), "%s/" BUNDLE_PRIVATE_DIR "/exec-%s.pid", c->dir,
			 r->process_id);
		if (write_file(spec_file, r->process.data, r->process.len, 0600) < 0) {
			ttrpc_call_fail(call, TTRPC_INTERNAL, "Exec: writing %s: %s", spec_file,
					strerror(errno));
		} else {
			spec.n_args = 0;
			args[spec.n_args++] = CRUN;
			args[spec.n_args++] = "exec";
			args[spec.n_args++] = "--detach";
			args[spec.n_args++] = "--process";
			args[spec.n_args++] = spec_file;
			args[spec.n_args++] = "--pid-file";
			args[spec.n_args++] = pid_file;
			args[spec.n_args++] = c->id;
			launch(ctl, call, c, &spec, pid_file, false);
		}
	}
	erovm__control__v1__exec_container_request__free_unpacked(r, NULL);
}

static void container_start(struct ttrpc_call *call, const uint8_t *payload, size_t len, void *ctx)
{
	Erovm__Control__V1__ContainerRequest *r;
	struct container *c;

	r = unpack(call, &erovm__control__v1__container_request__descriptor, payload, len);
	if (!r)
		return;
	if ((c = lookup(ctx, call, r->id))) {
		char *argv[] = { CRUN, "start", c->id, NULL };

		crun_answer(call, argv, TTRPC_FAILED_PRECONDITION);
	}
	erovm__control__v1__container_request__free_unpacked(r, NULL);
}

static void container_kill(struct ttrpc_call *call, const uint8_t *payload, size_t len, void *ctx)
{
	Erovm__Control__V1__KillContainerRequest *r;
	struct container *c;
	char sig[16];

	r = unpack(call, &erovm__control__v1__kill_container_request__descriptor, payload, len);
	if (!r)
		return;
	snprintf(sig, sizeof(sig), "%u", r->signal);
	if (r->signal < 1 || r->signal > 64) {
		ttrpc_call_fail(call, TTRPC_INVALID_ARGUMENT, "Kill: no signal %u", r->signal);
	} else if ((c = lookup(ctx, call, r->id))) {
		char *all[] = { CRUN, "kill", "--all", c->id, sig, NULL };
		char *init[] = { CRUN, "kill", c->id, sig, NULL };

		/* crun fails when nothing of the container runs any more. */
		crun_answer(call, r->all ? all : init, TTRPC_NOT_FOUND);
	}
	erovm__control__v1__kill_container_request__free_unpacked(r, NULL);
}

static void container_pids(struct ttrpc_call *call, const uint8_t *payload, size_t len, void *ctx)
{
	Erovm__Control__V1__PidsResponse response = EROVM__CONTROL__V1__PIDS_RESPONSE__INIT;
	Erovm__Control__V1__ContainerRequest *r;
	struct crun_result res = { .out = NULL };
	struct container *c;
	long count;

	r = unpack(call, &erovm__control__v1__container_request__descriptor, payload, len);
	if (!r)
		return;
	if ((c = lookup(ctx, call, r->id))) {
		char *argv[] = { CRUN, "ps", "--format", "json", c->id, NULL };

		run_crun(argv, &res);
		if (res.status) {
			ttrpc_call_fail(call, TTRPC_FAILED_PRECONDITION, "Pids: %s", res.err);
		} else if ((count = bundle_parse_pids(res.out, NULL, 0)) < 0) {
			ttrpc_call_fail(call, TTRPC_INTERNAL, "Pids: crun ps printed no pid list: %.200s",
					res.out);
		} else if (count && !(response.pids = calloc((size_t)count, sizeof(uint32_t)))) {
			ttrpc_call_fail(call, TTRPC_RESOURCE_EXHAUSTED, "Pids: out of memory");
		} else {
			response.n_pids = (size_t)bundle_parse_pids(res.out, response.pids, (size_t)count);
			ttrpc_call_reply_message(call, &response.base);
		}
	}
	free(response.pids);
	free(res.out);
	erovm__control__v1__container_request__free_unpacked(r, NULL);
}

static void container_update(struct ttrpc_call *call, const uint8_t *payload, size_t len,
			     void *ctx)
{
	Erovm__Control__V1__UpdateContainerRequest *r;
	char path[PATH_MAX];
	struct container *c;

	r = unpack(call, &erovm__control__v1__update_container_request__descriptor, payload, len);
	if (!r)
		return;
	if (!bundle_json_is_object(r->resources.data, r->resources.len)) {
		ttrpc_call_fail(call, TTRPC_INVALID_ARGUMENT, "Update: the resources are not a JSON object");
	} else if ((c = lookup(ctx, call, r->id))) {
		char *argv[] = { CRUN, "update", "--resources", path, c->id, NULL };

		snprintf(path, sizeof(path), "%s/" BUNDLE_PRIVATE_DIR "/resources.json", c->dir);
		if (write_file(path, r->resources.data, r->resources.len, 0600) < 0)
			ttrpc_call_fail(call, TTRPC_INTERNAL, "Update: writing %s: %s", path,
					strerror(errno));
		else
			crun_answer(call, argv, TTRPC_FAILED_PRECONDITION);
	}
	erovm__control__v1__update_container_request__free_unpacked(r, NULL);
}

static void container_delete(struct ttrpc_call *call, const uint8_t *payload, size_t len,
			     void *ctx)
{
	struct control *ctl = ctx;
	Erovm__Control__V1__ContainerRequest *r;
	struct container *c;

	r = unpack(call, &erovm__control__v1__container_request__descriptor, payload, len);
	if (!r)
		return;
	if ((c = lookup(ctl, call, r->id))) {
		char *argv[] = { CRUN, "delete", "--force", c->id, NULL };

		if (crun_answer(call, argv, TTRPC_FAILED_PRECONDITION))
			forget_container(ctl, c);
	}
	erovm__control__v1__container_request__free_unpacked(r, NULL);
}

static void cancel_wait_oom(struct ttrpc_call *call, void *arg)
{
	struct container *c = arg;

	for (size_t i = 0; i < c->oom_waiter_count; i++) {
		if (c->oom_waiters[i] == call) {
			c->oom_waiters[i] = c->oom_waiters[--c->oom_waiter_count];
			return;
		}
	}
}

static void container_wait_oom(struct ttrpc_call *call, const uint8_t *payload, size_t len,
			       void *ctx)
{
	struct control *ctl = ctx;
	Erovm__Control__V1__ContainerRequest *r;
	struct container *c;

	r = unpack(call, &erovm__control__v1__container_request__descriptor, payload, len);
	if (!r)
		return;
	if ((c = lookup(ctl, call, r->id))) {
		if (c->oom_waiter_count == OOM_WAITERS_MAX) {
			ttrpc_call_fail(call, TTRPC_RESOURCE_EXHAUSTED,
					"WaitOom: %d calls already wait on %s", OOM_WAITERS_MAX, c->id);
		} else {
			c->oom_waiters[c->oom_waiter_count++] = call;
			ttrpc_call_defer(call, cancel_wait_oom, c);
		}
	}
	erovm__control__v1__container_request__free_unpacked(r, NULL);
}

/* The "oom_kill N" count of memory.events file @path. */
static bool read_oom_kills(const char *path, uint64_t *count)
{
	char line[128];
	bool found = false;
	FILE *f = fopen(path, "re");

	if (!f)
		return false;
	while (!found && fgets(line, sizeof(line), f))
		found = sscanf(line, "oom_kill %" SCNu64, count) == 1;
	fclose(f);
	return found;
}

void containers_collect(struct control *ctl)
{
	struct container *c;

	TAILQ_FOREACH(c, &ctl->containers, link) {
		if (c->oom_waiter_count && c->memory_events[0]) {
			if (!ctl->oom_check_ms)
				ctl->oom_check_ms = ctl->now_ms + GUEST_OOM_POLL_MS;
			control_wake_at(ctl, ctl->oom_check_ms);
			return;
		}
	}
}

void containers_timers(struct control *ctl)
{
	Erovm__Control__V1__OomResponse answer = EROVM__CONTROL__V1__OOM_RESPONSE__INIT;
	struct container *c;
	uint64_t count;

	if (!ctl->oom_check_ms || ctl->now_ms < ctl->oom_check_ms)
		return;
	ctl->oom_check_ms = 0;
	TAILQ_FOREACH(c, &ctl->containers, link) {
		if (!c->oom_waiter_count || !c->memory_events[0] ||
		    !read_oom_kills(c->memory_events, &count) || count <= c->oom_reported)
			continue;
		c->oom_reported = count;
		answer.oom_kills = count;
		while (c->oom_waiter_count)
			ttrpc_call_reply_message(c->oom_waiters[--c->oom_waiter_count], &answer.base);
	}
}

void containers_free_all(struct control *ctl)
{
	struct container *c;

	while ((c = TAILQ_FIRST(&ctl->containers))) {
		TAILQ_REMOVE(&ctl->containers, c, link);
		fail_oom_waiters(c);
		free(c);
	}
	ctl->container_count = 0;
}

const struct ttrpc_method container_methods[] = {
	{ GUEST_CONTROL_SERVICE_CONTAINER, "Create", container_create },
	{ GUEST_CONTROL_SERVICE_CONTAINER, "Start", container_start },
	{ GUEST_CONTROL_SERVICE_CONTAINER, "Exec", container_exec },
	{ GUEST_CONTROL_SERVICE_CONTAINER, "Kill", container_kill },
	{ GUEST_CONTROL_SERVICE_CONTAINER, "Pids", container_pids },
	{ GUEST_CONTROL_SERVICE_CONTAINER, "Update", container_update },
	{ GUEST_CONTROL_SERVICE_CONTAINER, "Delete", container_delete },
	{ GUEST_CONTROL_SERVICE_CONTAINER, "WaitOom", container_wait_oom },
};

const size_t container_method_count = sizeof(container_methods) / sizeof(container_methods[0]);
