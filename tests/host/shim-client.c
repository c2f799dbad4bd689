/*
 * shim-client: runs one task through a containerd shim v2 binary the way
 * containerd does, for tests/e2e/containerd.test, with any rootfs mount
 * list (such as the EROFS snapshotter's, which Debian's containerd 1.6
 * cannot make):
 *
 *   shim-client [--update-memory BYTES] SHIM BUNDLE ID MOUNTS
 *
 * BUNDLE holds config.json (the process to run). MOUNTS is a file with
 * one rootfs mount a line: TYPE, SOURCE, TARGET and then the options,
 * separated by tabs (options may hold spaces: "{{ overlay 1 2 }}").
 *
 * It plays containerd: serves the events service (Forward) on
 * BUNDLE/../containerd.sock.ttrpc, runs `SHIM -namespace erovm-test
 * -address BUNDLE/../containerd.sock -publish-binary /bin/true -id ID
 * start` in BUNDLE with TTRPC_ADDRESS set, connects to the address it
 * prints, and calls Create (stdout and stderr on FIFOs it reads), Wait,
 * Start, State, Delete and Shutdown; with --update-memory, Update between
 * Create and Start sets the container's memory limit (the OCI
 * LinuxResources as JSON, as containerd sends them) and prints "update
 * ok". It prints what it saw, one fact a line, for the test to check:
 *
 *   address ADDRESS            create pid N        start pid N
 *   wait exit_status N         state status NAME exit_status N
 *   delete exit_status N       stdout: LINE        stderr: LINE
 *   event TOPIC                (in the order they arrived; /tasks/exit
 *                               adds " exit_status N")
 *
 * The shim's log (BUNDLE/log) goes to stderr as "shim log: LINE".
 * A failed step prints "shim-client: STEP: REASON" on stderr and exits 1
 * (after asking the shim to shut down); 0 means every call succeeded.
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "containerd/events/task.pb-c.h"
#include "containerd/services/events/ttrpc/v1/events.pb-c.h"
#include "containerd/task/v2/shim.pb-c.h"
#include "ttrpc/ttrpc.h"

#define TASK_SERVICE "containerd.task.v2.Task"
#define EVENTS_SERVICE "containerd.services.events.ttrpc.v1.Events"
#define NAMESPACE "erovm-test"
#define CALL_TIMEOUT_MS 60000
#define WAIT_TIMEOUT_MS 300000
#define START_TIMEOUT_MS 60000
#define MAX_EVENT_CONNS 8
#define MAX_MOUNTS 64
#define MAX_OPTIONS 32

struct output {
	int fd;			/* the FIFO's read end; -1 once closed */
	char *data;
	size_t len;
};

struct client {
	struct ttrpc_client *task;
	int listen_fd;
	struct ttrpc_conn *event_conns[MAX_EVENT_CONNS];
	struct output out[3];	/* stdout, stderr, the shim's log */
	bool saw_delete_event;
};

static void fail(const char *step, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail(const char *step, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "shim-client: %s: ", step);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

/* ---------------------------------------------------------- events service */

static void handle_forward(struct ttrpc_call *call, const uint8_t *payload, size_t len, void *ctx)
{
	struct client *c = ctx;
	Containerd__Services__Events__Ttrpc__V1__ForwardRequest *req;
	Containerd__Services__Events__Ttrpc__V1__Envelope *env;

	req = containerd__services__events__ttrpc__v1__forward_request__unpack(NULL, len, payload);
	if (!req || !req->envelope || !req->envelope->topic) {
		printf("event (undecodable Forward request)\n");
		ttrpc_call_fail(call, TTRPC_INVALID_ARGUMENT, "undecodable ForwardRequest");
		if (req)
			protobuf_c_message_free_unpacked(&req->base, NULL);
		return;
	}
	env = req->envelope;
	printf("event %s", env->topic);
	if (!strcmp(env->topic, "/tasks/exit") && env->event) {
		Containerd__Events__TaskExit *exit_event = containerd__events__task_exit__unpack(
			NULL, env->event->value.len, env->event->value.data);

		if (exit_event) {
			printf(" exit_status %u", exit_event->exit_status);
			protobuf_c_message_free_unpacked(&exit_event->base, NULL);
		}
	}
	if (strcmp(env->namespace_ ? env->namespace_ : "", NAMESPACE))
		printf(" (namespace '%s', not %s)", env->namespace_ ? env->namespace_ : "", NAMESPACE);
	printf("\n");
	fflush(stdout);
	if (!strcmp(env->topic, "/tasks/delete"))
		c->saw_delete_event = true;
	protobuf_c_message_free_unpacked(&req->base, NULL);
	ttrpc_call_reply(call, NULL, 0);
}

static const struct ttrpc_method event_methods[] = {
	{ EVENTS_SERVICE, "Forward", handle_forward },
};

static int listen_unix(const char *path)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	int fd;

	if (strlen(path) >= sizeof(addr.sun_path))
		return -ENAMETOOLONG;
	strcpy(addr.sun_path, path);
	unlink(path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	if (bind(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0 || listen(fd, 8) < 0) {
		int err = -errno;

		close(fd);
		return err;
	}
	return fd;
}

/* ----------------------------------------------------------------- the loop */

/*
 * Serves everything for up to @timeout_ms: the task connection's
 * responses, event connections, container output. Returns 0, or the task
 * connection's negative errno when it broke.
 */
static int pump(struct client *c, int timeout_ms)
{
	static struct ttrpc_service_table table;
	struct pollfd fds[5 + MAX_EVENT_CONNS];
	int slot_conn[5 + MAX_EVENT_CONNS];
	nfds_t n = 0;
	int ret = 0;

	table = (struct ttrpc_service_table){ event_methods, 1, c };
	fds[n++] = (struct pollfd){ .fd = ttrpc_client_fd(c->task), .events = POLLIN };
	fds[n++] = (struct pollfd){ .fd = c->listen_fd, .events = POLLIN };
	for (int i = 0; i < 3; i++)
		fds[n++] = (struct pollfd){ .fd = c->out[i].fd, .events = POLLIN };
	for (int i = 0; i < MAX_EVENT_CONNS; i++) {
		if (!c->event_conns[i])
			continue;
		slot_conn[n] = i;
		fds[n++] = (struct pollfd){ .fd = ttrpc_conn_fd(c->event_conns[i]),
					    .events = ttrpc_conn_events(c->event_conns[i]) };
	}
	if (poll(fds, n, timeout_ms) < 0)
		return errno == EINTR ? 0 : -errno;

	if (fds[0].revents)
		ret = ttrpc_client_receive(c->task);
	if (fds[1].revents & POLLIN) {
		int fd = accept4(c->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);

		for (int i = 0; fd >= 0 && i < MAX_EVENT_CONNS; i++) {
			if (!c->event_conns[i]) {
				c->event_conns[i] = ttrpc_conn_new(fd, &table);
				fd = c->event_conns[i] ? -1 : fd;
			}
		}
		if (fd >= 0) {
			fail("events", "too many connections from the shim");
			close(fd);
		}
	}
	for (int i = 0; i < 3; i++) {
		struct output *o = &c->out[i];
		char buf[4096];
		ssize_t got;

		if (!fds[2 + i].revents || o->fd < 0)
			continue;
		got = read(o->fd, buf, sizeof(buf));
		if (got > 0) {
			char *grown = realloc(o->data, o->len + (size_t)got + 1);

			if (!grown)
				return -ENOMEM;
			o->data = grown;
			memcpy(o->data + o->len, buf, (size_t)got);
			o->len += (size_t)got;
			o->data[o->len] = '\0';
		} else if (got == 0 || errno != EAGAIN) {
			close(o->fd);
			o->fd = -1;
		}
	}
	for (nfds_t k = 5; k < n; k++) {
		int i = slot_conn[k];

		if (fds[k].revents && ttrpc_conn_handle(c->event_conns[i], fds[k].revents) < 0) {
			ttrpc_conn_free(c->event_conns[i]);
			c->event_conns[i] = NULL;
		}
	}
	return ret;
}

static int wait_result(struct client *c, uint32_t stream, struct ttrpc_result *result, int timeout_ms)
{
	long long deadline = now_ms() + timeout_ms, left;

	for (;;) {
		int ret = ttrpc_client_take(c->task, stream, result);

		if (ret == 1)
			return 0;
		if (ret < 0)
			return ret;
		if (now_ms() >= deadline)
			return -ETIMEDOUT;
		left = deadline - now_ms();
		ret = pump(c, left < 200 ? (int)left : 200);
		if (ret < 0 && ret != -EAGAIN)
			return ret;
	}
}

static int send_call(struct client *c, const char *method, const ProtobufCMessage *request,
		     uint32_t *stream)
{
	size_t len = protobuf_c_message_get_packed_size(request);
	uint8_t *buf = malloc(len ? len : 1);
	int ret;

	if (!buf)
		return -ENOMEM;
	protobuf_c_message_pack(request, buf);
	ret = ttrpc_client_send(c->task, TASK_SERVICE, method, buf, len, stream);
	free(buf);
	return ret;
}

/*
 * Calls @method; on success returns its decoded response (through
 * @unpack) or, for Empty responses (@unpack NULL), a non-NULL dummy.
 * Otherwise prints why and returns NULL.
 */
static void *call(struct client *c, const char *method, const ProtobufCMessage *request,
		  void *(*unpack)(ProtobufCAllocator *, size_t, const uint8_t *), int timeout_ms)
{
	struct ttrpc_result result = { 0 };
	uint32_t stream;
	void *response = NULL;
	int ret = send_call(c, method, request, &stream);

	if (!ret)
		ret = wait_result(c, stream, &result, timeout_ms);
	if (ret < 0) {
		fail(method, "%s", ret == -ETIMEDOUT ? "no answer in time" : strerror(-ret));
		return NULL;
	}
	if (result.code != TTRPC_OK)
		fail(method, "%s: %s", ttrpc_code_name(result.code), result.message);
	else if (!unpack)
		response = (void *)method;
	else if (!(response = unpack(NULL, result.payload_len, result.payload)))
		fail(method, "undecodable response");
	ttrpc_result_clear(&result);
	return response;
}

#define UNPACK(fn) ((void *(*)(ProtobufCAllocator *, size_t, const uint8_t *))(fn))

/* ------------------------------------------------------------- start, mounts */

/* Runs `SHIM ... start` in @bundle; returns the address it printed, or NULL. */
static char *shim_start(const char *shim, const char *bundle, const char *id, const char *address)
{
	char ttrpc_env[PATH_MAX + 32], out[4096], *start, *end;
	size_t len = 0;
	int pipefd[2], status;
	long long deadline = now_ms() + START_TIMEOUT_MS;
	pid_t pid;

	if (pipe2(pipefd, O_CLOEXEC) < 0)
		return fail("start", "pipe: %s", strerror(errno)), NULL;
	pid = fork();
	if (pid < 0)
		return fail("start", "fork: %s", strerror(errno)), NULL;
	if (pid == 0) {
		int null = open("/dev/null", O_RDONLY);

		snprintf(ttrpc_env, sizeof(ttrpc_env), "%s.ttrpc", address);
		setenv("TTRPC_ADDRESS", ttrpc_env, 1);
		if (chdir(bundle) < 0 || null < 0 || dup2(null, 0) < 0 || dup2(pipefd[1], 1) < 0 ||
		    dup2(pipefd[1], 2) < 0)
			_exit(127);
		execl(shim, shim, "-namespace", NAMESPACE, "-address", address, "-publish-binary",
		      "/bin/true", "-id", id, "start", (char *)NULL);
		_exit(127);
	}
	close(pipefd[1]);
	/* Until EOF: the daemonised shim must not keep the pipe. */
	for (;;) {
		struct pollfd p = { .fd = pipefd[0], .events = POLLIN };
		long long left = deadline - now_ms();
		ssize_t got;

		if (left <= 0 || poll(&p, 1, (int)left) <= 0) {
			fail("start", "its output did not end within %d s (does the daemon keep "
				      "the pipe open?)", START_TIMEOUT_MS / 1000);
			kill(pid, SIGKILL);
			waitpid(pid, NULL, 0);
			close(pipefd[0]);
			return NULL;
		}
		got = read(pipefd[0], out + len, sizeof(out) - 1 - len);
		if (got <= 0)
			break;
		len += (size_t)got;
		if (len == sizeof(out) - 1)
			break;
	}
	close(pipefd[0]);
	out[len] = '\0';
	waitpid(pid, &status, 0);
	if (!WIFEXITED(status) || WEXITSTATUS(status)) {
		fail("start", "exited with %d: %s", WIFEXITED(status) ? WEXITSTATUS(status) : 128,
		     out);
		return NULL;
	}
	/* "unix:///path", or 1.7's {"version":2,"address":"unix:///path",...} */
	start = strstr(out, "unix://");
	if (!start) {
		fail("start", "printed no unix:// address: '%s'", out);
		return NULL;
	}
	end = start + strcspn(start, "\"\n ");
	*end = '\0';
	return strdup(start);
}

static int connect_unix(const char *path)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	int fd;

	if (strlen(path) >= sizeof(addr.sun_path))
		return -ENAMETOOLONG;
	strcpy(addr.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
		int err = -errno;

		close(fd);
		return err;
	}
	return fd;
}

struct mount_list {
	size_t count;
	Containerd__Types__Mount mounts[MAX_MOUNTS];
	Containerd__Types__Mount *pointers[MAX_MOUNTS];
	char *options[MAX_MOUNTS][MAX_OPTIONS];
	char *lines[MAX_MOUNTS];
};

static int read_mounts(const char *path, struct mount_list *list)
{
	FILE *f = fopen(path, "r");
	char *line = NULL;
	size_t cap = 0;
	ssize_t got;

	if (!f)
		return fail("mounts", "%s: %s", path, strerror(errno)), -1;
	while ((got = getline(&line, &cap, f)) > 0) {
		Containerd__Types__Mount *m = &list->mounts[list->count];
		char *fields[3 + MAX_OPTIONS], *save = line, *field;
		size_t n = 0;

		if (line[got - 1] == '\n')
			line[got - 1] = '\0';
		if (!*line)
			continue;
		if (list->count == MAX_MOUNTS)
			return fail("mounts", "more than %d mounts", MAX_MOUNTS), fclose(f), -1;
		while ((field = strsep(&save, "\t")) && n < 3 + MAX_OPTIONS)
			fields[n++] = field;
		if (n < 3 || field)
			return fail("mounts", "line %zu: TYPE, SOURCE, TARGET and at most %d "
				    "options, tab-separated", list->count + 1, MAX_OPTIONS),
			       fclose(f), -1;
		containerd__types__mount__init(m);
		m->type = fields[0];
		m->source = fields[1];
		m->target = fields[2];
		m->n_options = n - 3;
		m->options = list->options[list->count];
		for (size_t i = 3; i < n; i++)
			m->options[i - 3] = fields[i];
		list->pointers[list->count] = m;
		list->lines[list->count++] = line;
		line = NULL;
		cap = 0;
	}
	free(line);
	fclose(f);
	return 0;
}

static void print_lines(FILE *f, const char *prefix, const struct output *o)
{
	const char *p = o->data;

	while (p && *p) {
		size_t n = strcspn(p, "\n");

		fprintf(f, "%s: %.*s\n", prefix, (int)n, p);
		p += n + (p[n] == '\n');
	}
}

static const char *status_name(Containerd__V1__Types__Status status)
{
	const ProtobufCEnumValue *v = protobuf_c_enum_descriptor_get_value(
		&containerd__v1__types__status__descriptor, status);

	return v ? v->name : "?";
}

/* ---------------------------------------------------------------- the task */

/* --update-memory's value, or NULL. */
static const char *update_memory;

static int run_task(struct client *c, const char *bundle, const char *id,
		    struct mount_list *mounts, char fifos[3][PATH_MAX])
{
	Containerd__Task__V2__CreateTaskRequest create = CONTAINERD__TASK__V2__CREATE_TASK_REQUEST__INIT;
	Containerd__Task__V2__CreateTaskResponse *created;
	Containerd__Task__V2__StartRequest start = CONTAINERD__TASK__V2__START_REQUEST__INIT;
	Containerd__Task__V2__StartResponse *started;
	Containerd__Task__V2__WaitRequest wait = CONTAINERD__TASK__V2__WAIT_REQUEST__INIT;
	Containerd__Task__V2__WaitResponse *waited;
	Containerd__Task__V2__StateRequest state = CONTAINERD__TASK__V2__STATE_REQUEST__INIT;
	Containerd__Task__V2__StateResponse *stated;
	Containerd__Task__V2__DeleteRequest del = CONTAINERD__TASK__V2__DELETE_REQUEST__INIT;
	Containerd__Task__V2__DeleteResponse *deleted;
	struct ttrpc_result result = { 0 };
	uint32_t wait_stream;
	long long deadline;
	int ret;

	create.id = (char *)id;
	create.bundle = (char *)bundle;
	create.n_rootfs = mounts->count;
	create.rootfs = mounts->pointers;
	create.stdin = "";
	create.stdout = fifos[0];
	create.stderr = fifos[1];
	created = call(c, "Create", &create.base,
		       UNPACK(containerd__task__v2__create_task_response__unpack), CALL_TIMEOUT_MS);
	if (!created)
		return -1;
	printf("create pid %u\n", created->pid);
	protobuf_c_message_free_unpacked(&created->base, NULL);

	if (update_memory) {
		Containerd__Task__V2__UpdateTaskRequest update =
			CONTAINERD__TASK__V2__UPDATE_TASK_REQUEST__INIT;
		Google__Protobuf__Any resources = GOOGLE__PROTOBUF__ANY__INIT;
		char json[64];

		snprintf(json, sizeof(json), "{\"memory\":{\"limit\":%s}}", update_memory);
		resources.type_url = "types.containerd.io/opencontainers/runtime-spec/1/LinuxResources";
		resources.value.data = (uint8_t *)json;
		resources.value.len = strlen(json);
		update.id = (char *)id;
		update.resources = &resources;
		if (!call(c, "Update", &update.base, NULL, CALL_TIMEOUT_MS))
			return -1;
		printf("update ok\n");
	}

	/* containerd waits before it starts: Wait must not block other calls. */
	wait.id = (char *)id;
	ret = send_call(c, "Wait", &wait.base, &wait_stream);
	if (ret < 0)
		return fail("Wait", "%s", strerror(-ret)), -1;
	start.id = (char *)id;
	started = call(c, "Start", &start.base, UNPACK(containerd__task__v2__start_response__unpack),
		       CALL_TIMEOUT_MS);
	if (!started)
		return -1;
	printf("start pid %u\n", started->pid);
	protobuf_c_message_free_unpacked(&started->base, NULL);
	fflush(stdout);

	ret = wait_result(c, wait_stream, &result, WAIT_TIMEOUT_MS);
	if (ret < 0)
		return fail("Wait", "%s", ret == -ETIMEDOUT ? "the task did not exit in time" :
			    strerror(-ret)), -1;
	if (result.code != TTRPC_OK) {
		fail("Wait", "%s: %s", ttrpc_code_name(result.code), result.message);
		ttrpc_result_clear(&result);
		return -1;
	}
	waited = containerd__task__v2__wait_response__unpack(NULL, result.payload_len, result.payload);
	ttrpc_result_clear(&result);
	if (!waited)
		return fail("Wait", "undecodable response"), -1;
	printf("wait exit_status %u\n", waited->exit_status);
	protobuf_c_message_free_unpacked(&waited->base, NULL);

	/* The output ends when the shim closes the FIFOs, before Delete. */
	deadline = now_ms() + CALL_TIMEOUT_MS;
	while ((c->out[0].fd >= 0 || c->out[1].fd >= 0) && now_ms() < deadline)
		pump(c, 200);
	if (c->out[0].fd >= 0 || c->out[1].fd >= 0)
		fail("output", "the shim did not close the stdout/stderr FIFOs after the exit");
	print_lines(stdout, "stdout", &c->out[0]);
	print_lines(stdout, "stderr", &c->out[1]);

	state.id = (char *)id;
	stated = call(c, "State", &state.base, UNPACK(containerd__task__v2__state_response__unpack),
		      CALL_TIMEOUT_MS);
	if (!stated)
		return -1;
	printf("state status %s exit_status %u\n", status_name(stated->status), stated->exit_status);
	protobuf_c_message_free_unpacked(&stated->base, NULL);

	del.id = (char *)id;
	deleted = call(c, "Delete", &del.base, UNPACK(containerd__task__v2__delete_response__unpack),
		       CALL_TIMEOUT_MS);
	if (!deleted)
		return -1;
	printf("delete exit_status %u\n", deleted->exit_status);
	protobuf_c_message_free_unpacked(&deleted->base, NULL);
	fflush(stdout);

	/* Events travel on their own connection: give /tasks/delete time. */
	deadline = now_ms() + 10000;
	while (!c->saw_delete_event && now_ms() < deadline)
		pump(c, 200);
	return c->out[0].fd < 0 && c->out[1].fd < 0 ? 0 : -1;
}

static void shutdown_shim(struct client *c, const char *id)
{
	Containerd__Task__V2__ShutdownRequest req = CONTAINERD__TASK__V2__SHUTDOWN_REQUEST__INIT;
	struct ttrpc_result result = { 0 };
	uint32_t stream;
	int ret;

	req.id = (char *)id;
	ret = send_call(c, "Shutdown", &req.base, &stream);
	if (!ret)
		ret = wait_result(c, stream, &result, CALL_TIMEOUT_MS);
	/* A shim may exit before its answer is out: a closed connection is fine. */
	if (ret < 0 && ret != -EPIPE)
		fail("Shutdown", "%s", strerror(-ret));
	else if (!ret && result.code != TTRPC_OK)
		fail("Shutdown", "%s: %s", ttrpc_code_name(result.code), result.message);
	ttrpc_result_clear(&result);
}

int main(int argc, char **argv)
{
	static struct client c;
	static struct mount_list mounts;
	char bundle[PATH_MAX], address[PATH_MAX], events[PATH_MAX + 8], fifos[3][PATH_MAX], *bundle_copy, *dir;
	const char *shim, *id, *socket_path;
	char *shim_address;
	int fd, status = 1;

	if (argc > 2 && !strcmp(argv[1], "--update-memory")) {
		update_memory = argv[2];
		argc -= 2;
		argv += 2;
	}
	if (argc != 5 || (update_memory && strspn(update_memory, "0123456789") !=
				strlen(update_memory))) {
		fprintf(stderr, "usage: shim-client [--update-memory BYTES] SHIM BUNDLE ID MOUNTS\n");
		return 2;
	}
	shim = argv[1];
	id = argv[3];
	signal(SIGPIPE, SIG_IGN);
	if (!realpath(argv[2], bundle))
		return fail("bundle", "%s: %s", argv[2], strerror(errno)), 1;
	if (read_mounts(argv[4], &mounts) < 0)
		return 1;
	bundle_copy = strdup(bundle);
	if (!bundle_copy)
		return fail("bundle", "out of memory"), 1;
	dir = dirname(bundle_copy);
	if (snprintf(address, sizeof(address), "%s/containerd.sock", dir) >= PATH_MAX)
		return fail("address", "path too long"), 1;
	snprintf(events, sizeof(events), "%s.ttrpc", address);
	c.listen_fd = listen_unix(events);
	if (c.listen_fd < 0)
		return fail("events", "%s: %s", events, strerror(-c.listen_fd)), 1;
	/* The container's stdout and stderr, and the log FIFO containerd
	 * makes in the bundle for the shim. */
	if (snprintf(fifos[0], sizeof(fifos[0]), "%s/%s-stdout", dir, id) >= PATH_MAX ||
	    snprintf(fifos[1], sizeof(fifos[1]), "%s/%s-stderr", dir, id) >= PATH_MAX ||
	    snprintf(fifos[2], sizeof(fifos[2]), "%s/log", bundle) >= PATH_MAX)
		return fail("fifo", "path too long"), 1;
	for (int i = 0; i < 3; i++) {
		unlink(fifos[i]);
		if (mkfifo(fifos[i], 0600) < 0 ||
		    (c.out[i].fd = open(fifos[i], O_RDONLY | O_NONBLOCK | O_CLOEXEC)) < 0)
			return fail("fifo", "%s: %s", fifos[i], strerror(errno)), 1;
	}

	shim_address = shim_start(shim, bundle, id, address);
	if (!shim_address)
		return 1;
	printf("address %s\n", shim_address);
	fflush(stdout);
	socket_path = shim_address + strlen("unix://");
	fd = connect_unix(socket_path);
	if (fd < 0)
		return fail("connect", "%s: %s", socket_path, strerror(-fd)), 1;
	c.task = ttrpc_client_new(fd);
	if (!c.task)
		return fail("connect", "out of memory"), 1;

	if (!run_task(&c, bundle, id, &mounts, fifos))
		status = 0;
	shutdown_shim(&c, id);
	fflush(stdout);
	ttrpc_client_free(c.task);
	for (int i = 0; i < MAX_EVENT_CONNS; i++)
		ttrpc_conn_free(c.event_conns[i]);
	close(c.listen_fd);
	unlink(events);
	/* The shim's log ends when it exits. */
	for (long long deadline = now_ms() + 5000; c.out[2].fd >= 0 && now_ms() < deadline;)
		pump(&c, 200);
	print_lines(stderr, "shim log", &c.out[2]);
	for (int i = 0; i < 3; i++) {
		if (c.out[i].fd >= 0)
			close(c.out[i].fd);
		free(c.out[i].data);
		unlink(fifos[i]);
	}
	for (size_t i = 0; i < mounts.count; i++)
		free(mounts.lines[i]);
	free(shim_address);
	free(bundle_copy);
	return status;
}
