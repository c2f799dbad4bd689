/*
 * The control service's loop, its ttrpc connections, and the System and
 * Mount services. See control.h and control_internal.h.
 */
#include "guest-init/control.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/vm_sockets.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "guest-init/control_internal.h"
#include "guest-init/guest_init.h"
#include "erovm_control.pb-c.h"

/* How long the last answers (Shutdown's) get to leave when the loop ends. */
#define FINAL_FLUSH_MS 1000
/* Command mode, Shutdown: from SIGTERM to SIGKILL of the command. */
#define COMMAND_KILL_GRACE_MS 1000

struct control_conn {
	TAILQ_ENTRY(control_conn) link;
	struct ttrpc_conn *conn;
	bool dead;
};

long long control_monotonic_ms(void)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return now.tv_sec * 1000LL + now.tv_nsec / 1000000;
}

void control_poll(struct control *ctl, int fd, short events, poll_ready_fn ready, void *obj)
{
	struct poll_set *set = &ctl->poll;

	if (set->count == set->cap) {
		/* Cannot happen: the set is sized for every limit. */
		report("control: poll set full, fd %d left out", fd);
		return;
	}
	set->fds[set->count] = (struct pollfd){ .fd = fd, .events = events };
	set->entries[set->count] = (struct poll_entry){ .ready = ready, .obj = obj };
	set->count++;
}

void control_wake_at(struct control *ctl, long long when_ms)
{
	if (ctl->deadline_ms < 0 || when_ms < ctl->deadline_ms)
		ctl->deadline_ms = when_ms;
}

bool control_valid_name(const char *name, size_t max)
{
	size_t len = strlen(name);

	if (len == 0 || len > max)
		return false;
	for (const char *p = name; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9') || *p == '.' || *p == '_' || *p == '-'))
			return false;
	return true;
}

/* ------------------------------------------------------------ System */

static void system_version(struct ttrpc_call *call, const uint8_t *payload, size_t len, void *ctx)
{
	Erovm__Control__V1__VersionResponse response = EROVM__CONTROL__V1__VERSION_RESPONSE__INIT;
	struct utsname uts;

	(void)payload;
	(void)len;
	(void)ctx;
	if (uname(&uts) < 0) {
		ttrpc_call_fail(call, TTRPC_INTERNAL, "uname: %s", strerror(errno));
		return;
	}
	response.init_version = GUEST_INIT_VERSION;
	response.kernel_release = uts.release;
	response.api_version = GUEST_CONTROL_API_VERSION;
	ttrpc_call_reply_message(call, &response.base);
}

static void system_uptime(struct ttrpc_call *call, const uint8_t *payload, size_t len, void *ctx)
{
	Erovm__Control__V1__UptimeResponse response = EROVM__CONTROL__V1__UPTIME_RESPONSE__INIT;
	struct timespec boot;

	(void)payload;
	(void)len;
	(void)ctx;
	clock_gettime(CLOCK_BOOTTIME, &boot);
	response.uptime_ns = (uint64_t)boot.tv_sec * 1000000000u + (uint64_t)boot.tv_nsec;
	ttrpc_call_reply_message(call, &response.base);
}

static void system_set_time(struct ttrpc_call *call, const uint8_t *payload, size_t len, void *ctx)
{
	struct control *ctl = ctx;
	Erovm__Control__V1__SetTimeRequest *request;
	struct timespec time;
	int ret;

	request = erovm__control__v1__set_time_request__unpack(NULL, len, payload);
	if (!request) {
		ttrpc_call_fail(call, TTRPC_INVALID_ARGUMENT, "SetTime: undecodable request");
		return;
	}
	if (!request->time || request->time->seconds < 0 || request->time->nanos < 0 ||
	    request->time->nanos > 999999999) {
		ttrpc_call_fail(call, TTRPC_INVALID_ARGUMENT,
				"SetTime: needs a time with seconds >= 0 and nanos in 0..999999999");
	} else {
		time.tv_sec = request->time->seconds;
		time.tv_nsec = request->time->nanos;
		ret = ctl->cfg->set_time(&time);
		if (ret < 0)
			ttrpc_call_fail(call, ret == -EPERM ? TTRPC_PERMISSION_DENIED : TTRPC_INVALID_ARGUMENT,
					"SetTime: %s", strerror(-ret));
		else
			ttrpc_call_reply(call, NULL, 0);
	}
	erovm__control__v1__set_time_request__free_unpacked(request, NULL);
}

static void system_shutdown(struct ttrpc_call *call, const uint8_t *payload, size_t len, void *ctx)
{
	struct control *ctl = ctx;

	(void)payload;
	(void)len;
	report("control: shutdown requested");
	ttrpc_call_reply(call, NULL, 0);
	if (ctl->shutdown_requested)
		return;
	ctl->shutdown_requested = true;
	if (ctl->cfg->command && !ctl->command_exited) {
		kill(ctl->cfg->command, SIGTERM);
		ctl->command_kill_ms = control_monotonic_ms() + COMMAND_KILL_GRACE_MS;
	}
}

/* ------------------------------------------------------------- Mount */

/* Mount.Apply's view of the configured plan environment: it keeps the steps. */
struct apply_log {
	const struct mount_plan_env *base;
	char **steps;
	size_t count;
	bool out_of_memory;
};

static void apply_log_step(void *ctx, const char *line)
{
	struct apply_log *log = ctx;
	char **steps, *copy;

	if (log->base->log)
		log->base->log(log->base->ctx, line);
	copy = strdup(line);
	steps = copy ? realloc(log->steps, (log->count + 1) * sizeof(*steps)) : NULL;
	if (!steps) {
		free(copy);
		log->out_of_memory = true;
		return;
	}
	log->steps = steps;
	log->steps[log->count++] = copy;
}

static int apply_resolve_serial(void *ctx, const char *serial, char *path, size_t size)
{
	struct apply_log *log = ctx;

	return log->base->resolve_serial(log->base->ctx, serial, path, size);
}

static void mount_apply(struct ttrpc_call *call, const uint8_t *payload, size_t len, void *ctx)
{
	Erovm__Control__V1__ApplyResponse response = EROVM__CONTROL__V1__APPLY_RESPONSE__INIT;
	struct control *ctl = ctx;
	Erovm__Control__V1__ApplyRequest *request;
	struct apply_log log = { .base = ctl->cfg->mount_env };
	struct mount_plan_env env = *ctl->cfg->mount_env;
	struct mount_plan *plan;
	char err[1024];

	request = erovm__control__v1__apply_request__unpack(NULL, len, payload);
	plan = calloc(1, sizeof(*plan));
	if (!request || !plan) {
		ttrpc_call_fail(call, request ? TTRPC_RESOURCE_EXHAUSTED : TTRPC_INVALID_ARGUMENT,
				"Apply: %s", request ? "out of memory" : "undecodable request");
		goto out;
	}
	if (mount_plan_parse((const char *)request->plan.data, request->plan.len, plan, err,
			     sizeof(err)) < 0) {
		ttrpc_call_fail(call, TTRPC_INVALID_ARGUMENT, "plan: %s", err);
		goto out;
	}
	env.resolve_serial = apply_resolve_serial;
	env.log = apply_log_step;
	env.ctx = &log;
	if (mount_plan_execute(plan, &env, err, sizeof(err)) < 0) {
		ttrpc_call_fail(call, TTRPC_ABORTED, "plan: %s (everything it mounted was unmounted)",
				err);
	} else if (log.out_of_memory) {
		ttrpc_call_fail(call, TTRPC_RESOURCE_EXHAUSTED,
				"plan: applied, but out of memory for its log");
	} else {
		response.root = plan->root_index < 0 ? "" : plan->mounts[plan->root_index].target;
		response.n_steps = log.count;
		response.steps = log.steps;
		ttrpc_call_reply_message(call, &response.base);
	}
	mount_plan_free(plan);
out:
	for (size_t i = 0; i < log.count; i++)
		free(log.steps[i]);
	free(log.steps);
	free(plan);
	if (request)
		erovm__control__v1__apply_request__free_unpacked(request, NULL);
}

static const struct ttrpc_method base_methods[] = {
	{ GUEST_CONTROL_SERVICE_SYSTEM, "Version", system_version },
	{ GUEST_CONTROL_SERVICE_SYSTEM, "Uptime", system_uptime },
	{ GUEST_CONTROL_SERVICE_SYSTEM, "SetTime", system_set_time },
	{ GUEST_CONTROL_SERVICE_SYSTEM, "Shutdown", system_shutdown },
	{ GUEST_CONTROL_SERVICE_MOUNT, "Apply", mount_apply },
};

/* ------------------------------------------------------- connections */

static void conn_ready(struct control *ctl, void *obj, short revents)
{
	struct control_conn *cc = obj;
	int ret;

	(void)ctl;
	if (cc->dead)
		return;
	ret = ttrpc_conn_handle(cc->conn, revents);
	if (ret < 0) {
		if (ret != -EPIPE)
			report("control: connection closed: %s", strerror(-ret));
		cc->dead = true;
	}
}

static void conn_free(struct control *ctl, struct control_conn *cc)
{
	TAILQ_REMOVE(&ctl->conns, cc, link);
	ttrpc_conn_free(cc->conn);
	free(cc);
	ctl->conn_count--;
}

static void control_accept(struct control *ctl, void *obj, short revents)
{
	int listen_fd = (int)(intptr_t)obj;

	(void)revents;
	for (;;) {
		int fd = accept4(listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		struct control_conn *cc;

		if (fd < 0) {
			if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR &&
			    errno != ECONNABORTED)
				report("control: accept: %s", strerror(errno));
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			return;
		}
		if (ctl->conn_count == CONTROL_MAX_CONNECTIONS) {
			report("control: more than %d connections; closing the new one",
			       CONTROL_MAX_CONNECTIONS);
			close(fd);
			continue;
		}
		cc = calloc(1, sizeof(*cc));
		if (cc)
			cc->conn = ttrpc_conn_new(fd, &ctl->table);
		if (!cc || !cc->conn) {
			report("control: out of memory for a connection");
			free(cc);
			close(fd);
			continue;
		}
		TAILQ_INSERT_TAIL(&ctl->conns, cc, link);
		ctl->conn_count++;
	}
}

static void stream_accept_ready(struct control *ctl, void *obj, short revents)
{
	(void)revents;
	streams_accept(ctl, (int)(intptr_t)obj);
}

/* ------------------------------------------------------------- children */

static int exit_status(int wstatus)
{
	return WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : 128 + WTERMSIG(wstatus);
}

static void reap_children(struct control *ctl)
{
	for (;;) {
		int wstatus;
		pid_t pid = waitpid(-1, &wstatus, WNOHANG);

		if (pid < 0 && errno == EINTR)
			continue;
		if (pid <= 0)
			return;
		if (ctl->cfg->command && pid == ctl->cfg->command) {
			ctl->command_exited = true;
			ctl->command_status = exit_status(wstatus);
			continue;
		}
		/* Not ours: an orphan that PID 1 inherited. */
		processes_reaped(ctl, pid, wstatus);
	}
}

static void signal_ready(struct control *ctl, void *obj, short revents)
{
	struct signalfd_siginfo info[8];

	(void)obj;
	(void)revents;
	/* Only a wake-up: exits are collected with waitpid. */
	while (read(ctl->signal_fd, info, sizeof(info)) > 0)
		;
	reap_children(ctl);
}

/* -------------------------------------------------------------- the loop */

static void collect(struct control *ctl)
{
	struct control_conn *cc;

	ctl->poll.count = 0;
	ctl->deadline_ms = -1;
	control_poll(ctl, ctl->signal_fd, POLLIN, signal_ready, NULL);
	if (ctl->cfg->control_listen_fd >= 0 && !ctl->shutdown_requested)
		control_poll(ctl, ctl->cfg->control_listen_fd, POLLIN, control_accept,
			     (void *)(intptr_t)ctl->cfg->control_listen_fd);
	if (ctl->cfg->stream_listen_fd >= 0 && !ctl->shutdown_requested)
		control_poll(ctl, ctl->cfg->stream_listen_fd, POLLIN, stream_accept_ready,
			     (void *)(intptr_t)ctl->cfg->stream_listen_fd);
	TAILQ_FOREACH(cc, &ctl->conns, link)
		control_poll(ctl, ttrpc_conn_fd(cc->conn), ttrpc_conn_events(cc->conn), conn_ready, cc);
	streams_collect(ctl);
	processes_collect(ctl);
	containers_collect(ctl);
	if (ctl->command_kill_ms)
		control_wake_at(ctl, ctl->command_kill_ms);
}

static void run_timers(struct control *ctl)
{
	if (ctl->command_kill_ms && ctl->now_ms >= ctl->command_kill_ms) {
		if (!ctl->command_exited)
			kill(ctl->cfg->command, SIGKILL);
		ctl->command_kill_ms = 0;
	}
	streams_timers(ctl);
	processes_timers(ctl);
	containers_timers(ctl);
}

static void reclaim(struct control *ctl)
{
	struct control_conn *cc, *next;

	for (cc = TAILQ_FIRST(&ctl->conns); cc; cc = next) {
		next = TAILQ_NEXT(cc, link);
		if (cc->dead)
			conn_free(ctl, cc);
	}
	processes_reclaim(ctl);
	streams_reclaim(ctl);
}

static bool finished(const struct control *ctl)
{
	if (ctl->cfg->command)
		return ctl->command_exited;
	return ctl->shutdown_requested;
}

/* Gives queued answers (Shutdown's) up to FINAL_FLUSH_MS to leave. */
static void final_flush(struct control *ctl)
{
	long long deadline = control_monotonic_ms() + FINAL_FLUSH_MS;
	struct control_conn *cc;

	for (;;) {
		long long left = deadline - control_monotonic_ms();
		size_t count;

		ctl->poll.count = 0;
		TAILQ_FOREACH(cc, &ctl->conns, link)
			if (!cc->dead && !ttrpc_conn_flushed(cc->conn))
				control_poll(ctl, ttrpc_conn_fd(cc->conn), POLLOUT, conn_ready, cc);
		count = ctl->poll.count;
		if (!count || left <= 0)
			return;
		if (poll(ctl->poll.fds, count, (int)left) < 0 && errno != EINTR)
			return;
		for (size_t i = 0; i < count; i++)
			if (ctl->poll.fds[i].revents)
				conn_ready(ctl, ctl->poll.entries[i].obj, ctl->poll.fds[i].revents);
	}
}

static int set_nonblocking(int fd)
{
	int flags = fcntl(fd, F_GETFL);

	return flags < 0 ? -1 : fcntl(fd, F_SETFL, flags | O_NONBLOCK);
}

/* Every method of every service, in one table for ttrpc. */
static struct ttrpc_method *all_methods(size_t *count)
{
	size_t base = sizeof(base_methods) / sizeof(base_methods[0]);
	size_t total = base + process_method_count + container_method_count;
	struct ttrpc_method *methods = calloc(total, sizeof(*methods));

	if (!methods)
		return NULL;
	memcpy(methods, base_methods, sizeof(base_methods));
	memcpy(methods + base, process_methods, process_method_count * sizeof(*methods));
	memcpy(methods + base + process_method_count, container_methods,
	       container_method_count * sizeof(*methods));
	*count = total;
	return methods;
}

int control_run(const struct control_config *cfg, int *status)
{
	/* Listeners, the signalfd, connections, streams, and per process its
	 * exec-status pipe and both sides of three pumps. */
	const size_t poll_cap = 3 + CONTROL_MAX_CONNECTIONS + CONTROL_MAX_PENDING_STREAMS +
				CONTROL_MAX_PROCESSES * 7;
	struct control ctl = { .cfg = cfg, .signal_fd = -1 };
	struct ttrpc_method *methods;
	sigset_t chld, old_mask;
	int end = -1;

	TAILQ_INIT(&ctl.conns);
	TAILQ_INIT(&ctl.streams);
	TAILQ_INIT(&ctl.processes);
	TAILQ_INIT(&ctl.containers);
	methods = all_methods(&ctl.table.count);
	ctl.table.methods = methods;
	ctl.table.ctx = &ctl;
	ctl.poll.fds = calloc(poll_cap, sizeof(*ctl.poll.fds));
	ctl.poll.entries = calloc(poll_cap, sizeof(*ctl.poll.entries));
	ctl.poll.cap = poll_cap;
	if (!methods || !ctl.poll.fds || !ctl.poll.entries) {
		report("control: out of memory");
		goto out_free;
	}
	if ((cfg->control_listen_fd >= 0 && set_nonblocking(cfg->control_listen_fd) < 0) ||
	    (cfg->stream_listen_fd >= 0 && set_nonblocking(cfg->stream_listen_fd) < 0)) {
		report("control: fcntl O_NONBLOCK on a listening socket: %s", strerror(errno));
		goto out_free;
	}

	sigemptyset(&chld);
	sigaddset(&chld, SIGCHLD);
	if (sigprocmask(SIG_BLOCK, &chld, &old_mask) < 0) {
		report("control: sigprocmask: %s", strerror(errno));
		goto out_free;
	}
	ctl.signal_fd = signalfd(-1, &chld, SFD_NONBLOCK | SFD_CLOEXEC);
	if (ctl.signal_fd < 0) {
		report("control: signalfd: %s", strerror(errno));
		goto out_mask;
	}

	/* Children that ended before the signalfd existed are collected here. */
	reap_children(&ctl);
	while (!finished(&ctl)) {
		long long timeout;
		int n;

		ctl.now_ms = control_monotonic_ms();
		collect(&ctl);
		/* Timers are at most a minute away, so the timeout fits an int. */
		timeout = -1;
		if (ctl.deadline_ms >= 0)
			timeout = ctl.deadline_ms > ctl.now_ms ? ctl.deadline_ms - ctl.now_ms : 0;
		n = poll(ctl.poll.fds, ctl.poll.count, (int)timeout);
		if (n < 0 && errno != EINTR) {
			report("control: poll: %s", strerror(errno));
			break;
		}
		for (size_t i = 0; n > 0 && i < ctl.poll.count; i++)
			if (ctl.poll.fds[i].revents)
				ctl.poll.entries[i].ready(&ctl, ctl.poll.entries[i].obj,
							  ctl.poll.fds[i].revents);
		ctl.now_ms = control_monotonic_ms();
		run_timers(&ctl);
		reclaim(&ctl);
	}
	if (finished(&ctl)) {
		end = cfg->command ? CONTROL_COMMAND_EXITED : CONTROL_SHUTDOWN;
		*status = ctl.command_status;
	}
	final_flush(&ctl);

	while (!TAILQ_EMPTY(&ctl.conns))
		conn_free(&ctl, TAILQ_FIRST(&ctl.conns));
	processes_free_all(&ctl);
	containers_free_all(&ctl);
	streams_free_all(&ctl);
	close(ctl.signal_fd);
out_mask:
	sigprocmask(SIG_SETMASK, &old_mask, NULL);
out_free:
	free(ctl.poll.fds);
	free(ctl.poll.entries);
	free(methods);
	return end;
}

bool control_have_vsock(void)
{
	unsigned int cid = VMADDR_CID_ANY;
	int fd = open("/dev/vsock", O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return false;
	if (ioctl(fd, IOCTL_VM_SOCKETS_GET_LOCAL_CID, &cid) < 0)
		cid = VMADDR_CID_ANY;
	close(fd);
	return cid != VMADDR_CID_ANY;
}

int control_listen_vsock(unsigned int port)
{
	struct sockaddr_vm addr = {
		.svm_family = AF_VSOCK, .svm_cid = VMADDR_CID_ANY, .svm_port = port,
	};
	int fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -errno;
	if (bind(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0 || listen(fd, 16) < 0) {
		int err = errno;

		close(fd);
		return -err;
	}
	return fd;
}
