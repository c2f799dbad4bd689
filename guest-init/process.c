/*
 * The Process service (proto/erovm_control.proto): process records,
 * spawning with pipes or a pty, and the pumps that move stdio between
 * the process and its streams, in bounded buffers. See
 * control_internal.h for how this shares guest-init's loop.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdnoreturn.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/io.h>
#include <sys/socket.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "guest-init/control_internal.h"
#include "guest-init/guest_init.h"
#include "erovm_control.pb-c.h"

#define PROCESS_ID_MAX 64
#define PUMP_BUFFER_SIZE (32 * 1024)
/* Reads per wake-up of one pump, so one busy stream cannot starve the rest. */
#define PUMP_READS_PER_WAKEUP 16
#define DEFAULT_PATH "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#define DEFAULT_HOME "HOME=/root"
/* How much of a launcher's error output a failed launch reports. */
#define LAUNCH_MESSAGE_MAX 1024

extern char **environ;

/* Moves bytes from in_fd to out_fd through a bounded buffer. */
struct pump {
	struct process *owner;	/* set for all three pumps, active or not */
	bool active;		/* the process has this pump */
	int in_fd;		/* not owned */
	int out_fd;		/* not owned; -1: the bytes are discarded */
	bool stop_on_broken;	/* stdin: a gone reader ends the pump */
	uint8_t *buf;
	size_t start, len;
	bool eof;		/* nothing more will be read */
	bool draining;		/* the process exited: no data now means no more */
	bool capture;		/* a launcher's stderr: keep its start too */
	unsigned int roles;	/* the stream roles it serves */
};

enum process_state {
	PROCESS_WAITING_STREAMS,	/* Start waits for its streams */
	PROCESS_STARTING,		/* forked; the exec is not confirmed yet */
	PROCESS_LAUNCHING,		/* a launcher runs; its exit names the process */
	PROCESS_RUNNING,
	PROCESS_EXITED,			/* reaped; output still being delivered */
	PROCESS_DONE,			/* exited and delivered: Wait answers */
	PROCESS_START_FAILED,		/* forgotten; freed once reaped */
};

struct process {
	TAILQ_ENTRY(process) link;
	char id[PROCESS_ID_MAX + 1];
	enum process_state state;
	Erovm__Control__V1__StartRequest *request;
	struct ttrpc_call *start_call;	/* until Start is answered */
	long long start_deadline_ms;
	pid_t pid;
	bool reaped;
	int wstatus;			/* as reaped, before the exec was confirmed */
	int exit_status;
	struct timespec exited_at;
	int exec_status_fd;
	struct stream *streams[3];	/* by role index: stdin, stdout, stderr */
	unsigned int held_roles;	/* the stream roles not released yet */
	bool terminal;
	int pty;			/* the pty's master, or -1 */
	int stdin_pipe, stdout_pipe, stderr_pipe;	/* our ends, or -1 */
	bool stdin_closed;
	struct pump in, out, err;
	struct ttrpc_call **waiters;
	size_t waiter_count;
	const struct process_launcher *launcher;	/* NULL: Process.Start */
	void *launch_ctx;
	long long launch_started_ms;
	char capture[LAUNCH_MESSAGE_MAX];	/* the launcher's stderr, its start */
	size_t capture_len;
	bool launch_failed;		/* failed() was called */
	bool dead;
};

/* What a failed child tells its parent through the exec-status pipe. */
enum child_step {
	CHILD_SETSID,
	CHILD_TERMINAL,
	CHILD_STDIO,
	CHILD_IOPERM,
	CHILD_ROOT,
	CHILD_CWD,
	CHILD_IDS,
	CHILD_EXEC,
};

struct child_report {
	int step;
	int err;
};

static int role_index(unsigned int role)
{
	return role == STREAM_ROLE_STDIN ? 0 : role == STREAM_ROLE_STDOUT ? 1 : 2;
}

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

/* send() without SIGPIPE where @fd is a socket, write() where it is not. */
static ssize_t send_some(int fd, const void *buf, size_t len)
{
	ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);

	if (n < 0 && errno == ENOTSOCK)
		n = write(fd, buf, len);
	return n;
}

static struct process *find_process(struct control *ctl, const char *id)
{
	struct process *p;

	TAILQ_FOREACH(p, &ctl->processes, link)
		if (!p->dead && p->state != PROCESS_START_FAILED && !strcmp(p->id, id))
			return p;
	return NULL;
}

bool process_exists(struct control *ctl, const char *id)
{
	return find_process(ctl, id) != NULL;
}

static void release_role(struct process *p, unsigned int role)
{
	if (!(p->held_roles & role))
		return;
	p->held_roles &= ~role;
	stream_release(p->streams[role_index(role)], role);
}

/* ---------------------------------------------------------------- pumps */

static bool pump_finished(const struct pump *pump)
{
	return !pump->active || (pump->eof && !pump->len);
}

/* Keeps what fits of a launcher's error output. */
static void capture_output(struct process *p, const uint8_t *buf, size_t len)
{
	size_t room = sizeof(p->capture) - 1 - p->capture_len;

	if (len > room)
		len = room;
	memcpy(p->capture + p->capture_len, buf, len);
	p->capture_len += len;
	p->capture[p->capture_len] = '\0';
}

/*
 * Moves what it can without blocking: writes what is buffered, and reads
 * more once the buffer is empty. A reader that went away makes the bytes
 * go nowhere (output) or ends the pump (stdin).
 */
static void pump_run(struct pump *pump)
{
	for (int reads = 0; reads < PUMP_READS_PER_WAKEUP && !pump_finished(pump);) {
		ssize_t n;

		if (pump->len && pump->out_fd < 0) {
			pump->len = 0;
		} else if (pump->len) {
			n = send_some(pump->out_fd, pump->buf + pump->start, pump->len);
			if (n > 0) {
				pump->start += (size_t)n;
				pump->len -= (size_t)n;
				continue;
			}
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
				return;
			/* The reader is gone (EPIPE, ECONNRESET, EIO on a hung-up pty). */
			pump->out_fd = -1;
			pump->len = 0;
			if (pump->stop_on_broken)
				pump->eof = true;
			continue;
		}
		if (pump->eof)
			return;
		n = read(pump->in_fd, pump->buf, PUMP_BUFFER_SIZE);
		reads++;
		if (n > 0) {
			pump->start = 0;
			pump->len = (size_t)n;
			if (pump->capture)
				capture_output(pump->owner, pump->buf, pump->len);
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			if (pump->draining)
				pump->eof = true;
			return;
		}
		/* End of file; EIO from a pty master whose other side is closed. */
		pump->eof = true;
	}
}

static int pump_init(struct pump *pump, int in_fd, int out_fd, unsigned int roles)
{
	pump->buf = malloc(PUMP_BUFFER_SIZE);
	if (!pump->buf)
		return -ENOMEM;
	pump->active = true;
	pump->in_fd = in_fd;
	pump->out_fd = out_fd;
	pump->roles = roles;
	return 0;
}

/* ------------------------------------------------------------- answers */

static void fill_wait_response(const struct process *p, Erovm__Control__V1__WaitResponse *response,
			       Erovm__Control__V1__Timestamp *exited_at)
{
	exited_at->seconds = p->exited_at.tv_sec;
	exited_at->nanos = (int32_t)p->exited_at.tv_nsec;
	response->exit_status = (uint32_t)p->exit_status;
	response->exited_at = exited_at;
}

static void answer_waiters(struct process *p)
{
	Erovm__Control__V1__WaitResponse response = EROVM__CONTROL__V1__WAIT_RESPONSE__INIT;
	Erovm__Control__V1__Timestamp exited_at = EROVM__CONTROL__V1__TIMESTAMP__INIT;

	fill_wait_response(p, &response, &exited_at);
	for (size_t i = 0; i < p->waiter_count; i++)
		ttrpc_call_reply_message(p->waiters[i], &response.base);
	p->waiter_count = 0;
}

/* Closes what the process holds: pipes, pty, the exec-status pipe, streams. */
static void process_release(struct process *p)
{
	release_role(p, STREAM_ROLE_STDIN);
	release_role(p, STREAM_ROLE_STDOUT);
	release_role(p, STREAM_ROLE_STDERR);
	close_fd(&p->stdin_pipe);
	close_fd(&p->stdout_pipe);
	close_fd(&p->stderr_pipe);
	close_fd(&p->pty);
	close_fd(&p->exec_status_fd);
	p->in.active = p->out.active = p->err.active = false;
}

/* Start failed: tells Start and every Wait why, and forgets the process. */
static void fail_start(struct process *p, enum ttrpc_code code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void fail_start(struct process *p, enum ttrpc_code code, const char *fmt, ...)
{
	char message[LAUNCH_MESSAGE_MAX + 128];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(message, sizeof(message), fmt, ap);
	va_end(ap);
	if (p->launcher && p->launcher->failed && !p->launch_failed)
		p->launcher->failed(p->launch_ctx);
	p->launch_failed = true;
	if (p->start_call)
		ttrpc_call_fail(p->start_call, code, "%s", message);
	p->start_call = NULL;
	for (size_t i = 0; i < p->waiter_count; i++)
		ttrpc_call_fail(p->waiters[i], code, "process %s did not start: %s", p->id, message);
	p->waiter_count = 0;
	process_release(p);
	/* A forked child still has to be reaped; the record waits for that. */
	if (p->pid > 0 && !p->reaped)
		p->state = PROCESS_START_FAILED;
	else
		p->dead = true;
}

/* ------------------------------------------------------------ lifecycle */

/* The process exited and its output was delivered: Wait may answer. */
static void check_done(struct process *p)
{
	if (p->state != PROCESS_EXITED || !pump_finished(&p->out) || !pump_finished(&p->err))
		return;
	p->state = PROCESS_DONE;
	process_release(p);
	answer_waiters(p);
}

static bool has_ended(const struct process *p)
{
	return p->state == PROCESS_EXITED || p->state == PROCESS_DONE;
}

static void write_pty_eof(struct process *p)
{
	struct termios tio;

	/* What typing ^D does; only canonical mode gives it a meaning. */
	if (tcgetattr(p->pty, &tio) == 0 && (tio.c_lflag & ICANON)) {
		char eof = (char)tio.c_cc[VEOF];

		if (send_some(p->pty, &eof, 1) < 0)
			report("process %s: writing EOF to its terminal: %s", p->id, strerror(errno));
	}
}

/*
 * Stdin reached its end (EOF, CloseStdin, a gone reader, or the exit of
 * the process, which needs no EOF character any more).
 */
static void close_stdin(struct process *p)
{
	if (p->stdin_closed)
		return;
	p->stdin_closed = true;
	p->in.active = false;
	release_role(p, STREAM_ROLE_STDIN);
	if (p->terminal && !has_ended(p))
		write_pty_eof(p);
	else
		close_fd(&p->stdin_pipe);
}

/* Reacts to what a pump run changed. */
static void pump_progress(struct pump *pump)
{
	struct process *p = pump->owner;

	if (pump == &p->in) {
		if (pump_finished(pump))
			close_stdin(p);
		return;
	}
	if (pump_finished(pump)) {
		for (unsigned int role = STREAM_ROLE_STDOUT; role <= STREAM_ROLE_STDERR; role <<= 1)
			if (pump->roles & role)
				release_role(p, role);
	}
	check_done(p);
}

static void pump_ready(struct control *ctl, void *obj, short revents)
{
	struct pump *pump = obj;

	(void)ctl;
	(void)revents;
	if (pump->owner->dead || pump_finished(pump))
		return;
	pump_run(pump);
	pump_progress(pump);
}

static void process_exited(struct process *p, int wstatus)
{
	struct pump *outputs[] = { &p->out, &p->err };

	p->state = PROCESS_EXITED;
	p->exit_status = WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : 128 + WTERMSIG(wstatus);
	clock_gettime(CLOCK_REALTIME, &p->exited_at);
	/* Nobody reads stdin any more. */
	close_stdin(p);
	/* Output already in the pipes or the pty is delivered, then the streams close. */
	for (size_t i = 0; i < 2; i++) {
		outputs[i]->draining = true;
		if (!pump_finished(outputs[i]))
			pump_run(outputs[i]);
		pump_progress(outputs[i]);
	}
}

/* ---------------------------------------------------------------- spawn */

/* Everything the child needs, prepared before fork. */
struct spawn {
	char **argv, **envp;
	char slave[64];			/* the pty's slave, if terminal */
	int stdio[3];			/* child ends; -1: /dev/null */
	int status_fd;
	const Erovm__Control__V1__StartRequest *request;
};

static noreturn void child_fail(const struct spawn *sp, enum child_step step)
{
	struct child_report rep = { .step = step, .err = errno };
	/* If even this fails, the parent sees an exit status of 126 or 127. */
	ssize_t n = write(sp->status_fd, &rep, sizeof(rep));

	(void)n;
	_exit(rep.err == ENOENT || rep.err == ENOTDIR ? 127 : 126);
}

/* An fd of 0-2 would be overwritten by dup2 before it is used. */
static int above_stdio(int fd)
{
	return fd >= 0 && fd <= 2 ? fcntl(fd, F_DUPFD_CLOEXEC, 3) : fd;
}

static void child_set_ids(const struct spawn *sp)
{
	const Erovm__Control__V1__StartRequest *r = sp->request;
	gid_t *groups = NULL;

	if (geteuid() != 0 && r->uid == geteuid() && r->gid == getegid() && !r->n_additional_gids)
		return;
	if (r->n_additional_gids) {
		groups = calloc(r->n_additional_gids, sizeof(*groups));
		if (!groups)
			child_fail(sp, CHILD_IDS);
		for (size_t i = 0; i < r->n_additional_gids; i++)
			groups[i] = r->additional_gids[i];
	}
	if (setgroups(r->n_additional_gids, groups) < 0 || setgid(r->gid) < 0 || setuid(r->uid) < 0)
		child_fail(sp, CHILD_IDS);
	free(groups);
}

static noreturn void child_exec(const struct spawn *sp)
{
	const Erovm__Control__V1__StartRequest *r = sp->request;
	sigset_t none;
	int stdio[3];

	/* As under any parent: default dispositions, nothing blocked. */
	for (int sig = 1; sig < NSIG; sig++)
		signal(sig, SIG_DFL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);

	if (setsid() < 0)
		child_fail(sp, CHILD_SETSID);
	if (sp->slave[0]) {
		int tty = open(sp->slave, O_RDWR | O_CLOEXEC);

		if (tty < 0 || ioctl(tty, TIOCSCTTY, 0) < 0)
			child_fail(sp, CHILD_TERMINAL);
		stdio[0] = stdio[1] = stdio[2] = above_stdio(tty);
	} else {
		for (int i = 0; i < 3; i++) {
			stdio[i] = sp->stdio[i] >= 0 ? sp->stdio[i] : open("/dev/null", O_RDWR | O_CLOEXEC);
			stdio[i] = above_stdio(stdio[i]);
		}
	}
	for (int i = 0; i < 3; i++)
		if (stdio[i] < 0 || dup2(stdio[i], i) < 0)
			child_fail(sp, CHILD_STDIO);
#if defined(__x86_64__) || defined(__i386__)
	/*
	 * guest-init's port access survives fork and exec: the process must
	 * not fake a status. ENOSYS: a kernel without ioperm grants none.
	 */
	if (ioperm(GUEST_PORT_BASE, GUEST_PORT_LEN, 0) < 0 && errno != ENOSYS)
		child_fail(sp, CHILD_IOPERM);
#endif
	if (r->root[0] && enter_root(r->root) < 0)
		child_fail(sp, CHILD_ROOT);
	if (chdir(r->cwd[0] ? r->cwd : "/") < 0)
		child_fail(sp, CHILD_CWD);
	child_set_ids(sp);
	/* execvp looks PATH up in the caller's environment: make it the new one. */
	environ = sp->envp;
	execvp(sp->argv[0], sp->argv);
	child_fail(sp, CHILD_EXEC);
}

static bool env_has(const Erovm__Control__V1__StartRequest *r, const char *prefix)
{
	for (size_t i = 0; i < r->n_env; i++)
		if (!strncmp(r->env[i], prefix, strlen(prefix)))
			return true;
	return false;
}

static char **build_env(const Erovm__Control__V1__StartRequest *r)
{
	char **envp = calloc(r->n_env + 3, sizeof(*envp));
	size_t n = 0;

	if (!envp)
		return NULL;
	for (size_t i = 0; i < r->n_env; i++)
		envp[n++] = r->env[i];
	if (!env_has(r, "PATH="))
		envp[n++] = DEFAULT_PATH;
	if (!env_has(r, "HOME="))
		envp[n++] = DEFAULT_HOME;
	return envp;
}

static int make_pipe(int fds[2])
{
	return pipe2(fds, O_CLOEXEC) < 0 ? -errno : 0;
}

static int set_nonblocking(int fd)
{
	int flags = fcntl(fd, F_GETFL);

	return flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0 ? -errno : 0;
}

/* Sets a new pty master's size, if the request gave one, and makes it non-blocking. */
static int setup_pty(int pty, uint32_t width, uint32_t height)
{
	if (width || height) {
		struct winsize ws = { .ws_row = (unsigned short)height, .ws_col = (unsigned short)width };

		if (ioctl(pty, TIOCSWINSZ, &ws) < 0)
			return -errno;
	}
	return set_nonblocking(pty);
}

static int open_pty(struct process *p, struct spawn *sp)
{
	const Erovm__Control__V1__StartRequest *r = p->request;

	p->pty = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (p->pty < 0 || grantpt(p->pty) < 0 || unlockpt(p->pty) < 0 ||
	    ptsname_r(p->pty, sp->slave, sizeof(sp->slave)) != 0)
		return -errno;
	return setup_pty(p->pty, r->width, r->height);
}

/*
 * Creates the process's stdio: the pty, or a pipe per stream (stdout and
 * stderr naming one stream share a pipe). Child ends go to @sp. A
 * launcher's stderr is always a pipe, and with a terminal its only one.
 */
static int make_stdio(struct process *p, struct spawn *sp)
{
	const Erovm__Control__V1__StartRequest *r = p->request;
	bool stderr_pipe = (r->stderr[0] && strcmp(r->stderr, r->stdout)) ||
			   (p->launcher && (r->terminal || !r->stderr[0]));
	int fds[2], ret;

	if (r->terminal && !p->launcher)
		return open_pty(p, sp);
	if (r->stdin[0] && !r->terminal) {
		if ((ret = make_pipe(fds)) < 0)
			return ret;
		sp->stdio[0] = fds[0];
		p->stdin_pipe = fds[1];
		if ((ret = set_nonblocking(p->stdin_pipe)) < 0)
			return ret;
	}
	if (r->stdout[0] && !r->terminal) {
		if ((ret = make_pipe(fds)) < 0)
			return ret;
		p->stdout_pipe = fds[0];
		sp->stdio[1] = fds[1];
		if (!strcmp(r->stderr, r->stdout))
			sp->stdio[2] = fds[1];
		if ((ret = set_nonblocking(p->stdout_pipe)) < 0)
			return ret;
	}
	if (stderr_pipe) {
		if ((ret = make_pipe(fds)) < 0)
			return ret;
		p->stderr_pipe = fds[0];
		sp->stdio[2] = fds[1];
		if ((ret = set_nonblocking(p->stderr_pipe)) < 0)
			return ret;
	}
	return 0;
}

static int stream_fd(const struct process *p, unsigned int role)
{
	return (p->held_roles & role) ? p->streams[role_index(role)]->fd : -1;
}

/*
 * Wires the pumps between the process's pipes or pty and its streams. A
 * launcher's pty comes later: then this runs again once it is there, for
 * the pumps that are still missing.
 */
static int make_pumps(struct process *p)
{
	const Erovm__Control__V1__StartRequest *r = p->request;
	struct stream *in_stream = p->streams[0];
	int ret = 0;

	if (r->terminal && p->pty < 0)
		goto stderr_pipe;
	if ((p->held_roles & STREAM_ROLE_STDIN) && !p->in.active && !p->stdin_closed) {
		ret = pump_init(&p->in, in_stream->fd, r->terminal ? p->pty : p->stdin_pipe,
				STREAM_ROLE_STDIN);
		if (ret < 0)
			return ret;
		p->in.stop_on_broken = true;
		/* Bytes that came right after the stream's id line. */
		p->in.len = in_stream->line_len - in_stream->early_start;
		memcpy(p->in.buf, in_stream->line + in_stream->early_start, p->in.len);
	}
	if (r->terminal) {
		/* Pty output is always read, even with nowhere to go, or the process blocks. */
		ret = pump_init(&p->out, p->pty, stream_fd(p, STREAM_ROLE_STDOUT), STREAM_ROLE_STDOUT);
	} else if (p->stdout_pipe >= 0) {
		/* stderr naming the same stream shares this pipe and this pump. */
		unsigned int roles = STREAM_ROLE_STDOUT;

		if (!strcmp(r->stderr, r->stdout))
			roles |= STREAM_ROLE_STDERR;
		ret = pump_init(&p->out, p->stdout_pipe, stream_fd(p, STREAM_ROLE_STDOUT), roles);
	}
	if (ret < 0)
		return ret;
stderr_pipe:
	if (p->stderr_pipe >= 0 && !p->err.active)
		ret = pump_init(&p->err, p->stderr_pipe, stream_fd(p, STREAM_ROLE_STDERR),
				STREAM_ROLE_STDERR);
	return ret;
}

/* The pump that reads a launcher's stderr. */
static struct pump *launcher_stderr(struct process *p)
{
	return p->err.active ? &p->err : &p->out;
}

static void spawn(struct control *ctl, struct process *p)
{
	struct spawn sp = { .stdio = { -1, -1, -1 }, .request = p->request };
	int status_pipe[2] = { -1, -1 }, ret;
	pid_t pid;

	sp.argv = calloc(p->request->n_args + 1, sizeof(*sp.argv));
	sp.envp = build_env(p->request);
	ret = !sp.argv || !sp.envp ? -ENOMEM : 0;
	if (!ret) {
		memcpy(sp.argv, p->request->args, p->request->n_args * sizeof(*sp.argv));
		ret = make_stdio(p, &sp);
	}
	if (!ret)
		ret = make_pumps(p);
	if (!ret && p->launcher) {
		launcher_stderr(p)->capture = true;
		p->launch_started_ms = ctl->now_ms;
	}
	if (!ret)
		ret = make_pipe(status_pipe);
	if (ret < 0) {
		fail_start(p, ret == -ENOMEM ? TTRPC_RESOURCE_EXHAUSTED : TTRPC_INTERNAL,
			   "cannot set up the process's stdio: %s", strerror(-ret));
		goto out;
	}
	sp.status_fd = status_pipe[1];
	pid = fork();
	if (pid == 0)
		child_exec(&sp);
	if (pid < 0) {
		fail_start(p, TTRPC_RESOURCE_EXHAUSTED, "fork: %s", strerror(errno));
		goto out;
	}
	p->pid = pid;
	p->state = PROCESS_STARTING;
	p->exec_status_fd = status_pipe[0];
	status_pipe[0] = -1;
	set_nonblocking(p->exec_status_fd);
out:
	close_fd(&status_pipe[0]);
	close_fd(&status_pipe[1]);
	for (int i = 0; i < 3; i++)
		if (sp.stdio[i] >= 0 && (i == 0 || sp.stdio[i] != sp.stdio[i - 1]))
			close(sp.stdio[i]);
	free(sp.argv);
	free(sp.envp);
}

/* Claims the streams Start named once all are there, then spawns. */
static void try_start(struct control *ctl, struct process *p)
{
	const char *ids[3] = { p->request->stdin, p->request->stdout, p->request->stderr };
	struct stream *streams[3] = { NULL, NULL, NULL };

	for (int i = 0; i < 3; i++)
		if (ids[i][0] && !(streams[i] = stream_find_unclaimed(ctl, ids[i])))
			return;
	for (int i = 0; i < 3; i++) {
		unsigned int roles = 0;

		if (!streams[i])
			continue;
		for (int j = i; j < 3; j++)
			if (streams[j] == streams[i])
				roles |= 1u << j;
		if (streams[i]->state == STREAM_UNCLAIMED)
			stream_claim(ctl, streams[i], roles);
		p->streams[i] = streams[i];
		p->held_roles |= 1u << i;
	}
	spawn(ctl, p);
}

void processes_stream_arrived(struct control *ctl)
{
	struct process *p;

	TAILQ_FOREACH(p, &ctl->processes, link)
		if (!p->dead && p->state == PROCESS_WAITING_STREAMS)
			try_start(ctl, p);
}

static const char *const step_names[] = {
	[CHILD_SETSID] = "setsid",
	[CHILD_TERMINAL] = "open its terminal",
	[CHILD_STDIO] = "set up stdin, stdout and stderr",
	[CHILD_IOPERM] = "drop port access",
	[CHILD_ROOT] = "enter the root",
	[CHILD_CWD] = "chdir",
	[CHILD_IDS] = "set user and groups",
	[CHILD_EXEC] = "exec",
};

/* ------------------------------------------------ exits and launchers */

/* Keeps an exit no record claimed, for a launch that has not named its process yet. */
static void remember_orphan(struct control *ctl, pid_t pid, int wstatus)
{
	ctl->orphans[ctl->orphan_next] = (struct orphan_exit){
		.pid = pid, .wstatus = wstatus, .reaped_ms = ctl->now_ms,
	};
	ctl->orphan_next = (ctl->orphan_next + 1) % CONTROL_ORPHAN_EXITS;
}

/* Takes the kept exit of @pid if it was reaped since @since_ms (not an earlier user of the pid). */
static bool take_orphan(struct control *ctl, pid_t pid, long long since_ms, int *wstatus)
{
	for (size_t i = 0; i < CONTROL_ORPHAN_EXITS; i++) {
		struct orphan_exit *o = &ctl->orphans[i];

		if (o->pid == pid && o->reaped_ms >= since_ms) {
			*wstatus = o->wstatus;
			o->pid = 0;
			return true;
		}
	}
	return false;
}

static void start_answer(struct process *p)
{
	Erovm__Control__V1__StartResponse response = EROVM__CONTROL__V1__START_RESPONSE__INIT;

	response.pid = (uint32_t)p->pid;
	if (p->start_call)
		ttrpc_call_reply_message(p->start_call, &response.base);
	p->start_call = NULL;
}

/* Trims @text in place of the white space around it. */
static char *trim(char *text)
{
	size_t len;

	while (*text == ' ' || *text == '\n' || *text == '\t' || *text == '\r')
		text++;
	len = strlen(text);
	while (len && (text[len - 1] == ' ' || text[len - 1] == '\n' || text[len - 1] == '\t' ||
		       text[len - 1] == '\r'))
		text[--len] = '\0';
	return text;
}

/*
 * The launcher exited with @wstatus: the process it launched takes the
 * record over, or the launch failed with what the launcher said.
 */
static void launch_ended(struct control *ctl, struct process *p, int wstatus)
{
	struct pump *capture = launcher_stderr(p);
	char err[512];
	pid_t pid = 0;
	int pty = -1, ret;

	/* The launcher is gone, so all it wrote is in the pipe: read it. */
	if (!pump_finished(capture)) {
		pump_run(capture);
		pump_progress(capture);
	}
	capture->capture = false;
	if (!WIFEXITED(wstatus) || WEXITSTATUS(wstatus)) {
		const char *message = trim(p->capture);

		if (!message[0]) {
			snprintf(err, sizeof(err), "%s %d and said nothing",
				 WIFEXITED(wstatus) ? "exited with status" : "was killed by signal",
				 WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : WTERMSIG(wstatus));
			message = err;
		}
		fail_start(p, TTRPC_FAILED_PRECONDITION, "%s: %s", p->launcher->name, message);
		return;
	}
	if (p->launcher->launched(p->launch_ctx, &pid, &pty, err, sizeof(err)) < 0) {
		fail_start(p, TTRPC_FAILED_PRECONDITION, "%s: %s", p->launcher->name, err);
		return;
	}
	p->pid = pid;
	p->reaped = false;
	p->state = PROCESS_RUNNING;
	if (p->terminal) {
		p->pty = pty;
		ret = setup_pty(p->pty, p->request->width, p->request->height);
		if (!ret)
			ret = make_pumps(p);
		if (ret < 0) {
			fail_start(p, TTRPC_INTERNAL, "%s: the terminal: %s", p->launcher->name,
				   strerror(-ret));
			return;
		}
	}
	start_answer(p);
	if (take_orphan(ctl, pid, p->launch_started_ms, &wstatus)) {
		p->reaped = true;
		process_exited(p, wstatus);
	}
}

bool processes_reaped(struct control *ctl, pid_t pid, int wstatus)
{
	struct process *p;

	TAILQ_FOREACH(p, &ctl->processes, link) {
		if (p->dead || p->pid != pid || p->reaped)
			continue;
		p->reaped = true;
		if (p->state == PROCESS_START_FAILED)
			p->dead = true;
		else if (p->state == PROCESS_STARTING)
			p->wstatus = wstatus;	/* handled once the exec status is known */
		else if (p->state == PROCESS_LAUNCHING)
			launch_ended(ctl, p, wstatus);
		else
			process_exited(p, wstatus);
		return true;
	}
	remember_orphan(ctl, pid, wstatus);
	return false;
}

static void start_succeeded(struct control *ctl, struct process *p)
{
	if (p->launcher) {
		/* Answered once the launcher is done. */
		p->state = PROCESS_LAUNCHING;
		if (p->reaped)
			launch_ended(ctl, p, p->wstatus);
		return;
	}
	p->state = PROCESS_RUNNING;
	start_answer(p);
	if (p->reaped)
		process_exited(p, p->wstatus);
}

static void exec_status_ready(struct control *ctl, void *obj, short revents)
{
	const Erovm__Control__V1__StartRequest *r;
	struct process *p = obj;
	struct child_report rep;
	const char *detail = "";
	enum ttrpc_code code;
	ssize_t n;

	(void)revents;
	if (p->dead || p->state != PROCESS_STARTING)
		return;
	n = read(p->exec_status_fd, &rep, sizeof(rep));
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	close_fd(&p->exec_status_fd);
	if (n != (ssize_t)sizeof(rep) || rep.step < 0 || rep.step > CHILD_EXEC) {
		/* End of file: the exec closed the pipe. */
		start_succeeded(ctl, p);
		return;
	}
	r = p->request;
	if (rep.step == CHILD_EXEC)
		detail = r->args[0];
	else if (rep.step == CHILD_ROOT)
		detail = r->root;
	else if (rep.step == CHILD_CWD)
		detail = r->cwd[0] ? r->cwd : "/";
	if (rep.err == ENOENT || rep.err == ENOTDIR)
		code = TTRPC_NOT_FOUND;
	else if (rep.err == EACCES || rep.err == EPERM)
		code = TTRPC_PERMISSION_DENIED;
	else
		code = TTRPC_FAILED_PRECONDITION;
	fail_start(p, code, "%s%s%s: %s", step_names[rep.step], detail[0] ? " " : "", detail,
		   strerror(rep.err));
}

/* ------------------------------------------------------------- the loop */

static void pump_collect(struct control *ctl, struct pump *pump)
{
	if (pump_finished(pump))
		return;
	if (!pump->len && !pump->eof)
		control_poll(ctl, pump->in_fd, POLLIN, pump_ready, pump);
	if (pump->len && pump->out_fd >= 0)
		control_poll(ctl, pump->out_fd, POLLOUT, pump_ready, pump);
}

void processes_collect(struct control *ctl)
{
	struct process *p;

	TAILQ_FOREACH(p, &ctl->processes, link) {
		if (p->dead)
			continue;
		if (p->state == PROCESS_WAITING_STREAMS)
			control_wake_at(ctl, p->start_deadline_ms);
		if (p->state == PROCESS_STARTING)
			control_poll(ctl, p->exec_status_fd, POLLIN, exec_status_ready, p);
		pump_collect(ctl, &p->in);
		pump_collect(ctl, &p->out);
		pump_collect(ctl, &p->err);
	}
}

void processes_timers(struct control *ctl)
{
	struct process *p;

	TAILQ_FOREACH(p, &ctl->processes, link) {
		const char *ids[3], *missing;

		if (p->dead || p->state != PROCESS_WAITING_STREAMS || ctl->now_ms < p->start_deadline_ms)
			continue;
		ids[0] = p->request->stdin;
		ids[1] = p->request->stdout;
		ids[2] = p->request->stderr;
		missing = "";
		for (int i = 0; i < 3 && !missing[0]; i++)
			if (ids[i][0] && !stream_find_unclaimed(ctl, ids[i]))
				missing = ids[i];
		fail_start(p, TTRPC_DEADLINE_EXCEEDED, "stream %s did not connect within %d ms",
			   missing[0] ? missing : "(claimed by another process)",
			   GUEST_STREAM_CONNECT_TIMEOUT_MS);
	}
}

static void process_free(struct control *ctl, struct process *p)
{
	TAILQ_REMOVE(&ctl->processes, p, link);
	ctl->process_count--;
	process_release(p);
	free(p->in.buf);
	free(p->out.buf);
	free(p->err.buf);
	free(p->waiters);
	if (p->launcher)
		p->launcher->free(p->launch_ctx);
	if (p->request)
		erovm__control__v1__start_request__free_unpacked(p->request, NULL);
	free(p);
}

void processes_reclaim(struct control *ctl)
{
	struct process *p, *next;

	for (p = TAILQ_FIRST(&ctl->processes); p; p = next) {
		next = TAILQ_NEXT(p, link);
		if (p->dead)
			process_free(ctl, p);
	}
}

void processes_free_all(struct control *ctl)
{
	while (!TAILQ_EMPTY(&ctl->processes))
		process_free(ctl, TAILQ_FIRST(&ctl->processes));
}

/* ------------------------------------------------------------- handlers */

/* Decodes a request, or answers InvalidArgument and returns NULL. */
static void *unpack(struct ttrpc_call *call, const ProtobufCMessageDescriptor *descriptor,
		    const uint8_t *payload, size_t len)
{
	ProtobufCMessage *request = protobuf_c_message_unpack(descriptor, NULL, len, payload);

	if (!request)
		ttrpc_call_fail(call, TTRPC_INVALID_ARGUMENT, "%s: undecodable request",
				ttrpc_call_method(call));
	return request;
}

static void cancel_start(struct ttrpc_call *call, void *arg)
{
	struct process *p = arg;

	(void)call;
	p->start_call = NULL;
	if (p->state == PROCESS_WAITING_STREAMS)
		fail_start(p, TTRPC_CANCELED, "the connection that started it closed");
}

static const char *check_start(const Erovm__Control__V1__StartRequest *r)
{
	const char *streams[3] = { r->stdin, r->stdout, r->stderr };

	if (!control_valid_name(r->id, PROCESS_ID_MAX))
		return "the id must be 1-64 bytes of [A-Za-z0-9._-]";
	if (!r->n_args || !r->args[0][0])
		return "args must name a program";
	for (size_t i = 0; i < r->n_env; i++)
		if (!strchr(r->env[i], '='))
			return "every env entry must be KEY=VALUE";
	if (r->cwd[0] && r->cwd[0] != '/')
		return "cwd must be absolute";
	if (r->root[0] && r->root[0] != '/')
		return "root must be absolute";
	for (int i = 0; i < 3; i++)
		if (streams[i][0] && !control_valid_name(streams[i], GUEST_STREAM_ID_MAX))
			return "stream ids must be 1-128 bytes of [A-Za-z0-9._-]";
	if (r->terminal && r->stderr[0])
		return "a terminal has no separate stderr stream";
	if (r->width > 0xffff || r->height > 0xffff)
		return "the terminal size must fit in 16 bits";
	return NULL;
}

/* A new record for @r, started now (@launcher NULL: Process.Start); answers @call. */
void process_launch(struct control *ctl, struct ttrpc_call *call,
		    Erovm__Control__V1__StartRequest *r, const struct process_launcher *launcher,
		    void *launch_ctx)
{
	const char *method = ttrpc_call_method(call);
	struct process *p;
	const char *problem;

	problem = check_start(r);
	if (problem) {
		ttrpc_call_fail(call, TTRPC_INVALID_ARGUMENT, "%s: %s", method, problem);
	} else if (ctl->shutdown_requested) {
		ttrpc_call_fail(call, TTRPC_UNAVAILABLE, "%s: the guest is shutting down", method);
	} else if (find_process(ctl, r->id)) {
		ttrpc_call_fail(call, TTRPC_ALREADY_EXISTS, "%s: process %s exists", method, r->id);
	} else if (ctl->process_count == CONTROL_MAX_PROCESSES) {
		ttrpc_call_fail(call, TTRPC_RESOURCE_EXHAUSTED,
				"%s: already %d processes; Delete ended ones", method,
				CONTROL_MAX_PROCESSES);
	} else if (!(p = calloc(1, sizeof(*p)))) {
		ttrpc_call_fail(call, TTRPC_RESOURCE_EXHAUSTED, "%s: out of memory", method);
	} else {
		p->launcher = launcher;
		p->launch_ctx = launch_ctx;
		snprintf(p->id, sizeof(p->id), "%s", r->id);
		p->in.owner = p->out.owner = p->err.owner = p;
		p->request = r;
		p->terminal = r->terminal;
		p->pty = p->stdin_pipe = p->stdout_pipe = p->stderr_pipe = p->exec_status_fd = -1;
		p->state = PROCESS_WAITING_STREAMS;
		p->start_call = call;
		p->start_deadline_ms = ctl->now_ms + GUEST_STREAM_CONNECT_TIMEOUT_MS;
		ttrpc_call_defer(call, cancel_start, p);
		TAILQ_INSERT_TAIL(&ctl->processes, p, link);
		ctl->process_count++;
		try_start(ctl, p);
		return;
	}
	erovm__control__v1__start_request__free_unpacked(r, NULL);
	if (launcher) {
		if (launcher->failed)
			launcher->failed(launch_ctx);
		launcher->free(launch_ctx);
	}
}

static void process_start(struct ttrpc_call *call, const uint8_t *payload, size_t len, void *ctx)
{
	Erovm__Control__V1__StartRequest *r;

	r = unpack(call, &erovm__control__v1__start_request__descriptor, payload, len);
	if (r)
		process_launch(ctx, call, r, NULL, NULL);
}

/* Finds the process a request names, or answers NotFound. */
static struct process *lookup(struct control *ctl, struct ttrpc_call *call, const char *id)
{
	struct process *p = find_process(ctl, id);

	if (!p)
		ttrpc_call_fail(call, TTRPC_NOT_FOUND, "%s: no process %s", ttrpc_call_method(call), id);
	return p;
}

static void process_signal(struct ttrpc_call *call, const uint8_t *payload, size_t len, void *ctx)
{
	Erovm__Control__V1__SignalRequest *r;
	struct process *p;

	r = unpack(call, &erovm__control__v1__signal_request__descriptor, payload, len);
	if (!r)
		return;
	if (!(p = lookup(ctx, call, r->id)))
		;
	else if (r->signal < 1 || r->signal >= NSIG)
		ttrpc_call_fail(call, TTRPC_INVALID_ARGUMENT, "Signal: no signal %u", r->signal);
	else if (has_ended(p))
		ttrpc_call_fail(call, TTRPC_NOT_FOUND, "Signal: process %s has exited", p->id);
	else if (p->state == PROCESS_WAITING_STREAMS || p->state == PROCESS_LAUNCHING)
		ttrpc_call_fail(call, TTRPC_FAILED_PRECONDITION, "Signal: process %s has not started",
				p->id);
	else if (kill(p->pid, (int)r->signal) < 0)
		ttrpc_call_fail(call, TTRPC_INTERNAL, "Signal: kill: %s", strerror(errno));
	else
		ttrpc_call_reply(call, NULL, 0);
	erovm__control__v1__signal_request__free_unpacked(r, NULL);
}

static void process_resize_pty(struct ttrpc_call *call, const uint8_t *payload, size_t len,
			       void *ctx)
{
	Erovm__Control__V1__ResizePtyRequest *r;
	struct winsize ws = { 0 };
	struct process *p;

	r = unpack(call, &erovm__control__v1__resize_pty_request__descriptor, payload, len);
	if (!r)
		return;
	ws.ws_col = (unsigned short)r->width;
	ws.ws_row = (unsigned short)r->height;
	if (!(p = lookup(ctx, call, r->id)))
		;
	else if (!p->terminal)
		ttrpc_call_fail(call, TTRPC_FAILED_PRECONDITION, "ResizePty: process %s has no terminal",
				p->id);
	else if (r->width > 0xffff || r->height > 0xffff)
		ttrpc_call_fail(call, TTRPC_INVALID_ARGUMENT, "ResizePty: sizes are 16-bit");
	else if (p->pty < 0)
		ttrpc_call_fail(call, has_ended(p) ? TTRPC_NOT_FOUND : TTRPC_FAILED_PRECONDITION,
				"ResizePty: process %s %s", p->id,
				has_ended(p) ? "has exited" : "has not started");
	else if (ioctl(p->pty, TIOCSWINSZ, &ws) < 0)
		ttrpc_call_fail(call, TTRPC_INTERNAL, "ResizePty: %s", strerror(errno));
	else
		ttrpc_call_reply(call, NULL, 0);
	erovm__control__v1__resize_pty_request__free_unpacked(r, NULL);
}

static void cancel_wait(struct ttrpc_call *call, void *arg)
{
	struct process *p = arg;

	for (size_t i = 0; i < p->waiter_count; i++) {
		if (p->waiters[i] == call) {
			p->waiters[i] = p->waiters[--p->waiter_count];
			return;
		}
	}
}

static void process_wait(struct ttrpc_call *call, const uint8_t *payload, size_t len, void *ctx)
{
	Erovm__Control__V1__WaitResponse response = EROVM__CONTROL__V1__WAIT_RESPONSE__INIT;
	Erovm__Control__V1__Timestamp exited_at = EROVM__CONTROL__V1__TIMESTAMP__INIT;
	Erovm__Control__V1__WaitRequest *r;
	struct ttrpc_call **waiters;
	struct process *p;

	r = unpack(call, &erovm__control__v1__wait_request__descriptor, payload, len);
	if (!r)
		return;
	if (!(p = lookup(ctx, call, r->id))) {
		;
	} else if (p->state == PROCESS_DONE) {
		fill_wait_response(p, &response, &exited_at);
		ttrpc_call_reply_message(call, &response.base);
	} else if (!(waiters = realloc(p->waiters, (p->waiter_count + 1) * sizeof(*waiters)))) {
		ttrpc_call_fail(call, TTRPC_RESOURCE_EXHAUSTED, "Wait: out of memory");
	} else {
		p->waiters = waiters;
		p->waiters[p->waiter_count++] = call;
		ttrpc_call_defer(call, cancel_wait, p);
	}
	erovm__control__v1__wait_request__free_unpacked(r, NULL);
}

static void process_close_stdin(struct ttrpc_call *call, const uint8_t *payload, size_t len,
				void *ctx)
{
	Erovm__Control__V1__CloseStdinRequest *r;
	struct process *p;

	r = unpack(call, &erovm__control__v1__close_stdin_request__descriptor, payload, len);
	if (!r)
		return;
	if (!(p = lookup(ctx, call, r->id))) {
		;
	} else if (p->state == PROCESS_WAITING_STREAMS) {
		ttrpc_call_fail(call, TTRPC_FAILED_PRECONDITION, "CloseStdin: process %s has not started",
				p->id);
	} else {
		/* Bytes already buffered still go in; then stdin closes. */
		if (p->in.active) {
			p->in.eof = true;
			pump_run(&p->in);
			pump_progress(&p->in);
		} else if (!has_ended(p)) {
			close_stdin(p);
		}
		ttrpc_call_reply(call, NULL, 0);
	}
	erovm__control__v1__close_stdin_request__free_unpacked(r, NULL);
}

static void process_delete(struct ttrpc_call *call, const uint8_t *payload, size_t len, void *ctx)
{
	Erovm__Control__V1__WaitResponse response = EROVM__CONTROL__V1__WAIT_RESPONSE__INIT;
	Erovm__Control__V1__Timestamp exited_at = EROVM__CONTROL__V1__TIMESTAMP__INIT;
	Erovm__Control__V1__DeleteRequest *r;
	struct process *p;

	r = unpack(call, &erovm__control__v1__delete_request__descriptor, payload, len);
	if (!r)
		return;
	if (!(p = lookup(ctx, call, r->id))) {
		;
	} else if (p->state != PROCESS_DONE) {
		ttrpc_call_fail(call, TTRPC_FAILED_PRECONDITION, "Delete: process %s has not ended",
				p->id);
	} else {
		fill_wait_response(p, &response, &exited_at);
		ttrpc_call_reply_message(call, &response.base);
		p->dead = true;
	}
	erovm__control__v1__delete_request__free_unpacked(r, NULL);
}

const struct ttrpc_method process_methods[] = {
	{ GUEST_CONTROL_SERVICE_PROCESS, "Start", process_start },
	{ GUEST_CONTROL_SERVICE_PROCESS, "Signal", process_signal },
	{ GUEST_CONTROL_SERVICE_PROCESS, "ResizePty", process_resize_pty },
	{ GUEST_CONTROL_SERVICE_PROCESS, "Wait", process_wait },
	{ GUEST_CONTROL_SERVICE_PROCESS, "CloseStdin", process_close_stdin },
	{ GUEST_CONTROL_SERVICE_PROCESS, "Delete", process_delete },
};

const size_t process_method_count = sizeof(process_methods) / sizeof(process_methods[0]);
