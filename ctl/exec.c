/*
 * erovm-ctl exec: starts a process in the guest and relays stdio between
 * erovm-ctl's own descriptors and the process's streams, forwarding
 * signals and window size changes, until the process has ended and its
 * output is out. One poll() loop; the stream protocol is in
 * proto/erovm_control.proto.
 *
 * Each stream is a guest connection of its own: stdin, stdout and
 * stderr, or with a terminal stdin and the terminal's output. Stdin has
 * its own connection even then, so that closing it is an EOF ordered
 * after the bytes sent before (a CloseStdin call travels on another
 * connection and could overtake them; a half-close of a shared
 * connection need not survive the monitor's vsock).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "ctl/ctl.h"
#include "erovm_control.pb-c.h"
#include "vmm/guest_abi.h"

#define RELAY_BUFFER_SIZE 65536
/* Calls sent without waiting (Signal, ResizePty) at once. */
#define ASYNC_MAX 32

/* One direction of one stdio stream. */
struct relay {
	int from, to;		/* -1 once closed or absent */
	bool from_local;	/* our stdin: read only after POLLIN, never O_NONBLOCK */
	bool to_local;		/* our stdout or stderr: see relay_write */
	uint8_t buf[RELAY_BUFFER_SIZE];
	size_t start, len;
	bool eof;		/* nothing more to read */
	bool done;
};

struct session {
	const struct exec_options *opt;
	struct ttrpc_client *client;
	char id[80];
	int streams[3];		/* stdin, stdout (or the terminal), stderr */
	struct relay in, out, err;
	int signal_fd;
	uint32_t wait_call;
	bool waited;
	int exit_status;
	struct {
		uint32_t stream_id;
		const char *what;
	} async[ASYNC_MAX];
	size_t async_count;
};

/* The local terminal's settings while it is in raw mode. */
static struct termios saved_termios;
static int raw_tty = -1;

static void restore_terminal(void)
{
	if (raw_tty >= 0)
		tcsetattr(raw_tty, TCSADRAIN, &saved_termios);
	raw_tty = -1;
}

static void enter_raw_mode(int fd)
{
	struct termios raw;

	if (tcgetattr(fd, &saved_termios) < 0)
		return;
	raw = saved_termios;
	cfmakeraw(&raw);
	if (tcsetattr(fd, TCSADRAIN, &raw) < 0)
		return;
	raw_tty = fd;
	/* Every exit path, error exits included, puts the terminal back. */
	atexit(restore_terminal);
}

/* The local terminal, for raw mode and its size: stdin, else stdout. */
static int local_tty(void)
{
	return isatty(STDIN_FILENO) ? STDIN_FILENO : isatty(STDOUT_FILENO) ? STDOUT_FILENO : -1;
}

static int write_all(int fd, const char *buf, size_t len)
{
	while (len) {
		ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Connects a stream and names it; returns a non-blocking descriptor or -1. */
static int open_stream(const char *vsock, const char *id)
{
	char line[GUEST_STREAM_ID_MAX + 1];
	size_t len = strlen(id);
	int fd, ret;

	if (len > GUEST_STREAM_ID_MAX) {
		ctl_error("stream id %s: longer than %d bytes", id, GUEST_STREAM_ID_MAX);
		return -1;
	}
	fd = ctl_connect_port(vsock, GUEST_VSOCK_STREAM_PORT);
	if (fd < 0)
		return -1;
	memcpy(line, id, len);
	line[len] = '\n';
	ret = write_all(fd, line, len + 1);
	if (ret < 0 || fcntl(fd, F_SETFL, O_NONBLOCK) < 0) {
		ctl_error("stream %s: %s", id, strerror(ret < 0 ? -ret : errno));
		close(fd);
		return -1;
	}
	return fd;
}

/* Sends @request without waiting; its answer is checked as it comes. */
static void send_async(struct session *s, const char *method, const ProtobufCMessage *request)
{
	size_t len = protobuf_c_message_get_packed_size(request);
	uint8_t payload[256];
	uint32_t id;
	int ret;

	if (s->async_count == ASYNC_MAX || len > sizeof(payload)) {
		ctl_error("%s: too many calls in flight; not sent", method);
		return;
	}
	protobuf_c_message_pack(request, payload);
	ret = ttrpc_client_send(s->client, GUEST_CONTROL_SERVICE_PROCESS, method, payload, len, &id);
	if (ret < 0) {
		ctl_error("%s: %s", method, ctl_call_error(ret));
		return;
	}
	s->async[s->async_count].stream_id = id;
	s->async[s->async_count].what = method;
	s->async_count++;
}

/* Collects answers to calls sent without waiting; reports failures. */
static void check_async(struct session *s)
{
	for (size_t i = 0; i < s->async_count;) {
		struct ttrpc_result result = { 0 };
		int ret = ttrpc_client_take(s->client, s->async[i].stream_id, &result);

		if (ret == 0) {
			i++;
			continue;
		}
		/* NotFound: the process ended meanwhile, which is no error here. */
		if (ret > 0 && result.code != TTRPC_OK && result.code != TTRPC_NOT_FOUND)
			ctl_error("%s: %s (%s)", s->async[i].what, result.message,
				  ttrpc_code_name(result.code));
		ttrpc_result_clear(&result);
		s->async[i] = s->async[--s->async_count];
	}
}

static void send_window_size(struct session *s)
{
	Erovm__Control__V1__ResizePtyRequest request = EROVM__CONTROL__V1__RESIZE_PTY_REQUEST__INIT;
	struct winsize ws;
	int tty = local_tty();

	if (tty < 0 || ioctl(tty, TIOCGWINSZ, &ws) < 0)
		return;
	request.id = s->id;
	request.width = ws.ws_col;
	request.height = ws.ws_row;
	send_async(s, "ResizePty", &request.base);
}

static void forward_signals(struct session *s)
{
	struct signalfd_siginfo info;

	while (read(s->signal_fd, &info, sizeof(info)) == sizeof(info)) {
		Erovm__Control__V1__SignalRequest request = EROVM__CONTROL__V1__SIGNAL_REQUEST__INIT;

		if (info.ssi_signo == SIGWINCH) {
			if (s->opt->terminal)
				send_window_size(s);
			continue;
		}
		request.id = s->id;
		request.signal = info.ssi_signo;
		send_async(s, "Signal", &request.base);
	}
}

/* ----------------------------------------------------------------- relays */

static bool relay_finished(const struct relay *r)
{
	return r->done || (r->eof && !r->len);
}

static void relay_read(struct relay *r)
{
	ssize_t n = read(r->from, r->buf, sizeof(r->buf));

	if (n > 0) {
		r->start = 0;
		r->len = (size_t)n;
	} else if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
		r->eof = true;
	}
}

static void relay_write(struct relay *r)
{
	/*
	 * Our own stdout and stderr stay blocking (they may be shared with
	 * other processes); after POLLOUT a pipe takes PIPE_BUF bytes without
	 * blocking.
	 */
	size_t len = r->to_local && r->len > PIPE_BUF ? PIPE_BUF : r->len;
	ssize_t n = r->to_local ? write(r->to, r->buf + r->start, len)
				: send(r->to, r->buf + r->start, len, MSG_NOSIGNAL);

	if (n > 0) {
		r->start += (size_t)n;
		r->len -= (size_t)n;
	} else if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
		/* The reader went away: what is left goes nowhere. */
		r->len = 0;
		r->done = true;
	}
}

/* A relay is done: closing its stream is stdin's EOF, or the end of output. */
static void finish_relay(struct session *s, struct relay *r, int index)
{
	r->done = true;
	if (s->streams[index] >= 0) {
		close(s->streams[index]);
		s->streams[index] = -1;
	}
}

/* ---------------------------------------------------------------- session */

static int start_process(struct session *s)
{
	const struct exec_options *opt = s->opt;
	Erovm__Control__V1__StartRequest request = EROVM__CONTROL__V1__START_REQUEST__INIT;
	Erovm__Control__V1__StartResponse *started;
	struct ttrpc_result result = { 0 };
	char stream_ids[3][GUEST_STREAM_ID_MAX + 1], **env, term[256];
	const char *suffix[3] = { "stdin", "stdout", "stderr" };
	struct winsize ws;
	int ret, tty;

	env = calloc(opt->env_count + 1, sizeof(*env));
	if (!env) {
		ctl_error("out of memory");
		return CTL_EXIT_FAILURE;
	}
	memcpy(env, opt->env, opt->env_count * sizeof(*env));
	request.n_env = opt->env_count;
	if (opt->terminal && getenv("TERM")) {
		bool has_term = false;

		for (size_t i = 0; i < opt->env_count; i++)
			has_term |= !strncmp(opt->env[i], "TERM=", 5);
		snprintf(term, sizeof(term), "TERM=%s", getenv("TERM"));
		if (!has_term)
			env[request.n_env++] = term;
	}
	request.env = env;
	request.id = s->id;
	request.n_args = (size_t)opt->argc;
	request.args = opt->argv;
	request.cwd = (char *)(opt->cwd ? opt->cwd : "");
	request.root = (char *)(opt->root ? opt->root : "");
	request.uid = opt->uid;
	request.gid = opt->gid;
	request.terminal = opt->terminal;
	tty = local_tty();
	if (opt->terminal && tty >= 0 && ioctl(tty, TIOCGWINSZ, &ws) == 0) {
		request.width = ws.ws_col;
		request.height = ws.ws_row;
	}
	for (int i = 0; i < 3; i++)
		snprintf(stream_ids[i], sizeof(stream_ids[i]), "%s.%s", s->id,
			 opt->terminal && i == 1 ? "tty" : suffix[i]);
	request.stdin = stream_ids[0];
	request.stdout = stream_ids[1];
	request.stderr = (char *)(opt->terminal ? "" : stream_ids[2]);

	/* The streams first: Start waits for them, but only so long. */
	for (int i = 0; i < (opt->terminal ? 2 : 3); i++) {
		s->streams[i] = open_stream(opt->vsock, stream_ids[i]);
		if (s->streams[i] < 0) {
			free(env);
			return CTL_EXIT_FAILURE;
		}
	}

	ret = ttrpc_client_call_message(s->client, GUEST_CONTROL_SERVICE_PROCESS, "Start",
					&request.base, &result, CTL_CALL_TIMEOUT_MS);
	free(env);
	if (ret < 0) {
		ctl_error("exec %s: %s", opt->argv[0], ctl_call_error(ret));
		return CTL_EXIT_FAILURE;
	}
	if (result.code != TTRPC_OK) {
		ctl_error("Start: %s", result.message);
		ret = result.code == TTRPC_NOT_FOUND ? 127 :
		      result.code == TTRPC_PERMISSION_DENIED ||
		      result.code == TTRPC_FAILED_PRECONDITION ? 126 : CTL_EXIT_FAILURE;
		ttrpc_result_clear(&result);
		return ret;
	}
	started = erovm__control__v1__start_response__unpack(NULL, result.payload_len, result.payload);
	ttrpc_result_clear(&result);
	if (!started) {
		ctl_error("exec: the guest's answer to Start does not decode");
		return CTL_EXIT_FAILURE;
	}
	erovm__control__v1__start_response__free_unpacked(started, NULL);
	return 0;
}

static int send_wait(struct session *s)
{
	Erovm__Control__V1__WaitRequest request = EROVM__CONTROL__V1__WAIT_REQUEST__INIT;
	size_t len;
	uint8_t payload[128];
	int ret;

	request.id = s->id;
	len = erovm__control__v1__wait_request__get_packed_size(&request);
	erovm__control__v1__wait_request__pack(&request, payload);
	ret = ttrpc_client_send(s->client, GUEST_CONTROL_SERVICE_PROCESS, "Wait", payload, len,
				&s->wait_call);
	if (ret < 0)
		ctl_error("Wait: %s", ctl_call_error(ret));
	return ret;
}

/* Reads answers; returns false when the session cannot go on. */
static bool receive_answers(struct session *s)
{
	Erovm__Control__V1__WaitResponse *waited;
	struct ttrpc_result result = { 0 };
	int ret;

	/* Errors stick in the client; answers read before one still count. */
	ttrpc_client_receive(s->client);
	check_async(s);
	ret = ttrpc_client_take(s->client, s->wait_call, &result);
	if (ret < 0) {
		ctl_error("%s before %s ended", ctl_call_error(ret), s->opt->argv[0]);
		return false;
	}
	if (ret == 0)
		return true;
	if (result.code != TTRPC_OK) {
		ctl_error("Wait: %s (%s)", result.message, ttrpc_code_name(result.code));
		ttrpc_result_clear(&result);
		return false;
	}
	waited = erovm__control__v1__wait_response__unpack(NULL, result.payload_len, result.payload);
	ttrpc_result_clear(&result);
	if (!waited) {
		ctl_error("Wait: the guest's answer does not decode");
		return false;
	}
	s->waited = true;
	s->exit_status = (int)(waited->exit_status & 0xff);
	erovm__control__v1__wait_response__free_unpacked(waited, NULL);
	return true;
}

enum poll_kind { POLL_SIGNALS, POLL_CONTROL, POLL_RELAY_IN, POLL_RELAY_OUT };

/* Relays until the process ended and its output is out. */
static bool run_session(struct session *s)
{
	struct relay *relays[3] = { &s->in, &s->out, &s->err };

	while (!s->waited || !relay_finished(&s->out) || !relay_finished(&s->err)) {
		struct pollfd pfds[2 + 2 * 3];
		struct {
			enum poll_kind kind;
			struct relay *relay;
		} what[2 + 2 * 3];
		size_t n = 0;

		pfds[n] = (struct pollfd){ .fd = s->signal_fd, .events = POLLIN };
		what[n++].kind = POLL_SIGNALS;
		/* Once Wait answered, only the output is left to relay. */
		if (!s->waited) {
			pfds[n] = (struct pollfd){ .fd = ttrpc_client_fd(s->client), .events = POLLIN };
			what[n++].kind = POLL_CONTROL;
		}
		for (int i = 0; i < 3; i++) {
			struct relay *r = relays[i];

			if (relay_finished(r))
				continue;
			if (!r->len && !r->eof) {
				pfds[n] = (struct pollfd){ .fd = r->from, .events = POLLIN };
				what[n].kind = POLL_RELAY_IN;
				what[n++].relay = r;
			}
			if (r->len) {
				pfds[n] = (struct pollfd){ .fd = r->to, .events = POLLOUT };
				what[n].kind = POLL_RELAY_OUT;
				what[n++].relay = r;
			}
		}
		if (poll(pfds, n, -1) < 0) {
			if (errno == EINTR)
				continue;
			ctl_error("poll: %s", strerror(errno));
			return false;
		}
		for (size_t i = 0; i < n; i++) {
			struct relay *r = what[i].relay;

			if (!pfds[i].revents)
				continue;
			switch (what[i].kind) {
			case POLL_SIGNALS:
				forward_signals(s);
				break;
			case POLL_CONTROL:
				if (!receive_answers(s))
					return false;
				break;
			case POLL_RELAY_IN:
				if (!r->done)
					relay_read(r);
				break;
			case POLL_RELAY_OUT:
				if (!r->done)
					relay_write(r);
				break;
			}
		}
		for (int i = 0; i < 3; i++)
			if (!relays[i]->done && relay_finished(relays[i]))
				finish_relay(s, relays[i], i);
	}
	return true;
}

/* Forgets the ended process in the guest, freeing its id. */
static void delete_process(struct session *s)
{
	Erovm__Control__V1__DeleteRequest request = EROVM__CONTROL__V1__DELETE_REQUEST__INIT;
	struct ttrpc_result result = { 0 };
	int ret;

	request.id = s->id;
	ret = ttrpc_client_call_message(s->client, GUEST_CONTROL_SERVICE_PROCESS, "Delete",
					&request.base, &result, CTL_CALL_TIMEOUT_MS);
	if (ret < 0)
		ctl_error("Delete: %s", ctl_call_error(ret));
	else if (result.code != TTRPC_OK)
		ctl_error("Delete: %s (%s)", result.message, ttrpc_code_name(result.code));
	ttrpc_result_clear(&result);
}

static void setup_relays(struct session *s)
{
	s->in = (struct relay){ .from = STDIN_FILENO, .to = s->streams[0], .from_local = true };
	s->out = (struct relay){ .from = s->streams[1], .to = STDOUT_FILENO, .to_local = true };
	s->err = (struct relay){ .from = s->streams[2], .to = STDERR_FILENO, .to_local = true };
	if (s->opt->terminal)
		s->err.done = true;
}

int ctl_exec(const struct exec_options *opt)
{
	struct session *s = calloc(1, sizeof(*s));
	sigset_t forwarded;
	int status = CTL_EXIT_FAILURE;
	struct timespec now;

	if (!s) {
		ctl_error("out of memory");
		return CTL_EXIT_FAILURE;
	}
	s->opt = opt;
	s->signal_fd = -1;
	for (int i = 0; i < 3; i++)
		s->streams[i] = -1;
	clock_gettime(CLOCK_REALTIME, &now);
	if (opt->id)
		snprintf(s->id, sizeof(s->id), "%s", opt->id);
	else
		snprintf(s->id, sizeof(s->id), "ctl-%d-%ld", (int)getpid(), (long)now.tv_nsec);

	/* Blocked from the start, so none is lost before the process runs. */
	sigemptyset(&forwarded);
	sigaddset(&forwarded, SIGINT);
	sigaddset(&forwarded, SIGTERM);
	sigaddset(&forwarded, SIGHUP);
	sigaddset(&forwarded, SIGQUIT);
	sigaddset(&forwarded, SIGWINCH);
	sigprocmask(SIG_BLOCK, &forwarded, NULL);
	s->signal_fd = signalfd(-1, &forwarded, SFD_NONBLOCK | SFD_CLOEXEC);
	if (s->signal_fd < 0) {
		ctl_error("signalfd: %s", strerror(errno));
		goto out;
	}
	s->client = ctl_connect_control(opt->vsock);
	if (!s->client)
		goto out;
	status = start_process(s);
	if (status != 0)
		goto out;
	status = CTL_EXIT_FAILURE;
	if (send_wait(s) < 0)
		goto out;
	if (opt->terminal && isatty(STDIN_FILENO))
		enter_raw_mode(STDIN_FILENO);
	setup_relays(s);
	if (run_session(s)) {
		delete_process(s);
		status = s->exit_status;
	}
out:
	restore_terminal();
	ttrpc_client_free(s->client);
	for (int i = 0; i < 3; i++)
		if (s->streams[i] >= 0)
			close(s->streams[i]);
	if (s->signal_fd >= 0)
		close(s->signal_fd);
	free(s);
	return status;
}
