/*
 * containerd-shim-erovm-v1: containerd's shim v2 runtime io.containerd.erovm.v1,
 * one micro-VM per container. containerd runs it as
 *
 *   containerd-shim-erovm-v1 -namespace NS -address ADDR -publish-binary BIN -id ID start
 *   containerd-shim-erovm-v1 -namespace NS -address ADDR -publish-binary BIN -id ID -bundle B delete
 *
 * in the bundle directory (flags as Go's flag package writes them: one or
 * two dashes, "-flag value" or "-flag=value").
 *
 * start: the group is the pod (annotation io.kubernetes.cri.sandbox-id)
 * or the container. If a shim of the group already listens on its socket
 * (SHIM_SOCKET_DIR/HASH, HASH of address, namespace and group), its
 * address is printed and reused. Otherwise this process binds the socket,
 * forks the shim (a new session, stdio on /dev/null, the log on the
 * bundle's "log" FIFO) which serves it (shim/service.h), writes the
 * bundle's "address" and "shim.pid" files, and prints "unix://SOCKET".
 *
 * delete: containerd could not reach the shim (it died). Kills a VMM the
 * bundle's state record names (shim/state.h), removes the VM's runtime
 * directory (named by namespace and id, so also one a shim killed before
 * it wrote the record left) and the socket of a dead shim, and prints a
 * DeleteResponse (exit status 137, as killed) on stdout.
 *
 * What it runs (shim_find_tools): EROVM_SHIM_VMM, EROVM_SHIM_KERNEL and
 * EROVM_SHIM_ROOTFS if set, else vmm-run, vmlinuz and rootfs.erofs next
 * to this binary, else in SHIM_LIB_DIR. EROVM_SHIM_LAYER_CACHE moves the
 * layer cache (shim/layers.h); EROVM_SHIM_BOOT_TIMEOUT (seconds) bounds a
 * VM's boot.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "containerd/task/v2/shim.pb-c.h"
#include "shim/oci.h"
#include "shim/service.h"
#include "shim/state.h"
#include "shim/text.h"
#include "shim/vm.h"

#define SHIM_SOCKET_DIR VM_RUN_DIR "/s"
#define SHIM_LIB_DIR "/usr/local/lib/erovm"
#define SANDBOX_ANNOTATION "io.kubernetes.cri.sandbox-id"
#define KILLED_STATUS 137

struct options {
	const char *ns, *address, *publish_binary, *id, *bundle;
	bool debug;
	const char *action;
};

static void usage(FILE *out)
{
	fprintf(out,
"usage: containerd-shim-erovm-v1 -namespace NS -address ADDR -publish-binary BIN\n"
"                                -id ID [-bundle DIR] [-debug] start|delete\n"
"\n"
"containerd's shim v2 for the runtime io.containerd.erovm.v1: each container\n"
"runs in an erovm micro-VM. containerd runs this program; see README.md.\n");
}

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

static void die(const char *fmt, ...)
{
	va_list ap;

	/* containerd reads start's and delete's output as the error. */
	fputs("containerd-shim-erovm-v1: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

/* Go's flag syntax: -name value, -name=value, --name; booleans alone. */
static void parse_options(int argc, char **argv, struct options *o)
{
	static const char *const names[] = { "namespace", "address", "publish-binary", "id",
					     "bundle", "socket" };

	for (int i = 1; i < argc; i++) {
		const char *arg = argv[i], *value = NULL;
		char name[64];
		size_t k, len;

		if (arg[0] != '-') {
			if (o->action)
				die("unexpected argument %s", arg);
			o->action = arg;
			continue;
		}
		arg += arg[1] == '-' ? 2 : 1;
		len = strcspn(arg, "=");
		if (len >= sizeof(name))
			die("unknown flag -%s", arg);
		memcpy(name, arg, len);
		name[len] = '\0';
		if (arg[len] == '=')
			value = arg + len + 1;
		if (!strcmp(name, "debug") || !strcmp(name, "v") || !strcmp(name, "help") ||
		    !strcmp(name, "h")) {
			if (!strcmp(name, "help") || !strcmp(name, "h")) {
				usage(stdout);
				exit(0);
			}
			if (!strcmp(name, "v")) {
				printf("containerd-shim-erovm-v1 %s\n", SHIM_VERSION);
				exit(0);
			}
			o->debug = !value || !strcmp(value, "true");
			continue;
		}
		for (k = 0; k < sizeof(names) / sizeof(names[0]); k++)
			if (!strcmp(name, names[k]))
				break;
		if (k == sizeof(names) / sizeof(names[0]))
			die("unknown flag -%s (see -help)", name);
		if (!value) {
			if (i + 1 >= argc)
				die("flag -%s needs a value", name);
			value = argv[++i];
		}
		switch (k) {
		case 0: o->ns = value; break;
		case 1: o->address = value; break;
		case 2: o->publish_binary = value; break;
		case 3: o->id = value; break;
		case 4: o->bundle = value; break;
		default: break;	/* -socket: older containerd; the socket is ours */
		}
	}
	if (!o->action || (strcmp(o->action, "start") && strcmp(o->action, "delete")))
		die("the action must be start or delete (see -help)");
	if (!o->ns || !o->ns[0] || !o->id || !o->id[0])
		die("-namespace and -id are required");
	if (!o->address)
		o->address = "";
}

/* The bundle's pod id annotation, else the container id. */
static char *group_of(const struct options *o, const char *bundle)
{
	json_object *spec, *annotations, *sandbox;
	char err[512], *group = NULL;

	if (oci_read_spec(bundle, &spec, err, sizeof(err)) == 0) {
		if (json_object_object_get_ex(spec, "annotations", &annotations) &&
		    json_object_object_get_ex(annotations, SANDBOX_ANNOTATION, &sandbox) &&
		    json_object_is_type(sandbox, json_type_string) &&
		    json_object_get_string_len(sandbox) > 0)
			group = strdup(json_object_get_string(sandbox));
		json_object_put(spec);
	}
	return group ? group : strdup(o->id);
}

static void socket_path(const struct options *o, const char *group, char *path, size_t size)
{
	/* FNV-1a of "ADDRESS/NS/GROUP": one socket per group and containerd. */
	const char *parts[] = { o->address, "/", o->ns, "/", group };
	uint64_t hash = 0xcbf29ce484222325ULL;

	for (size_t i = 0; i < 5; i++)
		for (const unsigned char *p = (const unsigned char *)parts[i]; *p; p++)
			hash = (hash ^ *p) * 0x100000001b3ULL;
	snprintf(path, size, "%s/%016" PRIx64 ".sock", SHIM_SOCKET_DIR, hash);
}

static int connect_unix(const char *path)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", path);
	if (fd >= 0 && connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
		close(fd);
		fd = -1;
	}
	return fd;
}

static int listen_unix(const char *path)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (strlen(path) >= sizeof(addr.sun_path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	strcpy(addr.sun_path, path);
	if (fd >= 0 && (bind(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0 ||
			listen(fd, 16) < 0)) {
		close(fd);
		fd = -1;
	}
	return fd;
}

static void write_file(const char *path, const char *text)
{
	char tmp[PATH_MAX + 8];
	int fd;

	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0 || write(fd, text, strlen(text)) != (ssize_t)strlen(text) || close(fd) < 0 ||
	    rename(tmp, path) < 0)
		die("writing %s: %s", path, strerror(errno));
}

static bool is_file(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* @name: the variable @env, else next to this binary, else SHIM_LIB_DIR. */
static void find_tool(const char *env, const char *name, char *out, size_t size)
{
	const char *value = getenv(env);
	char self[PATH_MAX];
	ssize_t n;

	if (value && value[0]) {
		if (!is_file(value))
			die("%s=%s: no such file", env, value);
		snprintf(out, size, "%s", value);
		return;
	}
	n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n > 0) {
		self[n] = '\0';
		snprintf(out, size, "%s/%s", dirname(self), name);
		if (is_file(out))
			return;
	}
	snprintf(out, size, "%s/%s", SHIM_LIB_DIR, name);
	if (!is_file(out))
		die("%s not found next to the shim or in %s (or set %s)", name, SHIM_LIB_DIR, env);
}

static void find_tools(struct vm_tools *tools)
{
	find_tool("EROVM_SHIM_VMM", "vmm-run", tools->vmm_run, sizeof(tools->vmm_run));
	find_tool("EROVM_SHIM_KERNEL", "vmlinuz", tools->kernel, sizeof(tools->kernel));
	find_tool("EROVM_SHIM_ROOTFS", "rootfs.erofs", tools->rootfs, sizeof(tools->rootfs));
}

/* The forked shim: serves until Shutdown. Never returns. */
static void serve(const struct options *o, int listen_fd, const char *sock_path)
{
	struct service_config cfg = { .ns = o->ns };
	const char *timeout = getenv("EROVM_SHIM_BOOT_TIMEOUT");
	int null_fd, log_fd, status;

	setsid();
	null_fd = open("/dev/null", O_RDWR | O_CLOEXEC);
	/* containerd holds the log FIFO open for reading; never block on it. */
	log_fd = open("log", O_WRONLY | O_NONBLOCK | O_CLOEXEC);
	if (null_fd >= 0) {
		dup2(null_fd, STDIN_FILENO);
		dup2(null_fd, STDOUT_FILENO);
		dup2(log_fd >= 0 ? log_fd : null_fd, STDERR_FILENO);
	}
	signal(SIGPIPE, SIG_IGN);
	find_tools(&cfg.tools);
	cfg.ttrpc_address = getenv("TTRPC_ADDRESS");
	cfg.layers.cache_dir = getenv("EROVM_SHIM_LAYER_CACHE");
	cfg.boot_timeout_ms = timeout && atoi(timeout) > 0 ? atoi(timeout) * 1000 :
							     VM_BOOT_TIMEOUT_MS;
	shim_log("serving %s for namespace %s (vmm %s, kernel %s, rootfs %s)", sock_path, o->ns,
		 cfg.tools.vmm_run, cfg.tools.kernel, cfg.tools.rootfs);
	status = service_run(&cfg, listen_fd);
	close(listen_fd);
	unlink(sock_path);
	shim_log("exiting");
	exit(status);
}

static int cmd_start(const struct options *o)
{
	char cwd[PATH_MAX], sock_path[PATH_MAX], address[PATH_MAX + 16], pid_text[32];
	char *group;
	int fd;
	pid_t pid;

	if (!getcwd(cwd, sizeof(cwd)))
		die("getcwd: %s", strerror(errno));
	group = group_of(o, cwd);
	if (!group)
		die("out of memory");
	socket_path(o, group, sock_path, sizeof(sock_path));
	free(group);
	snprintf(address, sizeof(address), "unix://%s", sock_path);

	fd = connect_unix(sock_path);
	if (fd >= 0) {
		/* A live shim of this group: reuse it. */
		close(fd);
		write_file("address", address);
		printf("%s", address);
		return 0;
	}
	if ((mkdir(VM_RUN_DIR, 0711) < 0 && errno != EEXIST) ||
	    (mkdir(SHIM_SOCKET_DIR, 0711) < 0 && errno != EEXIST))
		die("mkdir %s: %s", SHIM_SOCKET_DIR, strerror(errno));
	unlink(sock_path);
	fd = listen_unix(sock_path);
	if (fd < 0)
		die("listening on %s: %s", sock_path, strerror(errno));

	/* A missing tool fails start, with its name, rather than every Create. */
	{
		struct vm_tools tools;

		find_tools(&tools);
	}
	pid = fork();
	if (pid < 0)
		die("fork: %s", strerror(errno));
	if (pid == 0)
		serve(o, fd, sock_path);
	close(fd);
	write_file("address", address);
	snprintf(pid_text, sizeof(pid_text), "%d", (int)pid);
	write_file("shim.pid", pid_text);
	printf("%s", address);
	return 0;
}

static int cmd_delete(const struct options *o)
{
	Containerd__Task__V2__DeleteResponse resp = CONTAINERD__TASK__V2__DELETE_RESPONSE__INIT;
	Google__Protobuf__Timestamp ts = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
	const char *bundle = o->bundle;
	char cwd[PATH_MAX], err[512], sock_path[PATH_MAX], vm_dir[PATH_MAX], *group;
	struct shim_state state;
	struct timespec now;
	uint8_t *packed;
	size_t len;
	int ret, fd;

	if (!bundle || !bundle[0]) {
		if (!getcwd(cwd, sizeof(cwd)))
			die("getcwd: %s", strerror(errno));
		bundle = cwd;
	}
	ret = state_load(bundle, &state, err, sizeof(err));
	if (ret < 0)
		die("%s", err);
	/*
	 * The runtime directory follows from the namespace and id: a shim
	 * killed before it recorded its VM leaves one too.
	 */
	vm_dir_for(o->ns, o->id, vm_dir, sizeof(vm_dir));
	if (ret == 0 && strcmp(state.vm_dir, vm_dir))
		fprintf(stderr, "containerd-shim-erovm-v1: %s names runtime directory %s, not %s\n",
			STATE_FILE, state.vm_dir, vm_dir);
	if (vm_kill_leftover(state.vmm_pid, state.vmm_start_time, vm_dir))
		fprintf(stderr, "containerd-shim-erovm-v1: killed leftover vmm-run %d\n",
			(int)state.vmm_pid);
	state_remove(bundle);
	/* The socket of a shim that is gone. */
	group = group_of(o, bundle);
	if (group) {
		socket_path(o, group, sock_path, sizeof(sock_path));
		fd = connect_unix(sock_path);
		if (fd >= 0)
			close(fd);
		else
			unlink(sock_path);
		free(group);
	}
	clock_gettime(CLOCK_REALTIME, &now);
	ts.seconds = now.tv_sec;
	ts.nanos = (int32_t)now.tv_nsec;
	resp.exit_status = KILLED_STATUS;
	resp.exited_at = &ts;
	len = protobuf_c_message_get_packed_size(&resp.base);
	packed = malloc(len + 1);
	if (!packed)
		die("out of memory");
	protobuf_c_message_pack(&resp.base, packed);
	if (fwrite(packed, 1, len, stdout) != len || fflush(stdout) != 0)
		die("writing the answer: %s", strerror(errno));
	free(packed);
	return 0;
}

int main(int argc, char **argv)
{
	struct options o = { 0 };

	parse_options(argc, argv, &o);
	if (!strcmp(o.action, "start"))
		return cmd_start(&o);
	return cmd_delete(&o);
}
