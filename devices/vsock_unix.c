/*
 * vsock_unix.c - the hybrid Unix-socket bridge behind virtio-vsock (see
 * vsock_backend.h for what it offers).
 *
 * Every socket operation is an io_uring op on the shared io_loop: ACCEPT
 * on the listener, READV of the handshake line one byte at a time (so
 * nothing after the newline is taken from the stream), CONNECT to
 * "PATH_P", SENDMSG with MSG_NOSIGNAL (a closed peer is an error, not a
 * SIGPIPE), READV for data, TIMEOUT for the handshake deadlines. The
 * sockets stay blocking: io_uring polls them itself, and an O_NONBLOCK
 * socket would make it fail reads with -EAGAIN instead.
 *
 * Closing an fd does not end an io_uring op on it, so a connection is
 * only closed once nothing is in flight: release() shuts the socket down
 * (which completes a pending read or write at once) and cancels a pending
 * connect, then waits for those completions.
 */
#include "devices/vsock_backend.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "devices/io_loop.h"
#include "devices/virtio_vsock.h"
#include "devices/vsock_packet.h"

#define LISTEN_BACKLOG 128
/* How often deadlines are checked while any is pending. */
#define TICK_NS 500000000ll
/* "OK 4294967295\n" */
#define OK_LINE_MAX 16

struct vsock_unix;

/* An accepted host process, before its CONNECT line made it a connection. */
struct handshake {
	struct vsock_unix *u;
	struct io_loop_op read_op;
	int fd;                     /* -1: slot free */
	bool closing;               /* shut down: close on the read's completion */
	uint64_t deadline_ns;
	struct iovec iov;
	size_t len;
	char line[VSOCK_CONNECT_LINE_MAX];
};

/* The host side of device connection `id`. */
struct unix_conn {
	struct vsock_unix *u;
	unsigned int id;
	int fd;                     /* -1: not held */
	unsigned int inflight;
	bool releasing;
	bool awaiting_guest;        /* host-initiated, before accept(): deadline runs */
	bool connecting;
	uint64_t deadline_ns;
	struct io_loop_op connect_op, read_op, write_op, cancel_op;
	struct sockaddr_un addr;
	struct iovec read_iov;
	struct iovec write_iov[2];
	struct msghdr write_msg;
	char ok_line[OK_LINE_MAX];
	size_t ok_len, ok_sent;
	bool sending_ok;
	struct unix_conn *next_released;
};

struct vsock_unix {
	struct vsock_backend be;
	struct io_loop *loop;
	char *path;
	int listen_fd;
	dev_t listen_dev;
	ino_t listen_ino;
	struct io_loop_op accept_op;
	bool accepting;
	bool timer_armed;
	struct io_loop_op timer_op;
	struct __kernel_timespec tick;
	struct io_loop_deferred release_work;
	struct unix_conn *released;
	struct handshake handshakes[VSOCK_UNIX_MAX_HANDSHAKES];
	struct unix_conn conns[VSOCK_MAX_CONNS];
};

#define CONTAINER(ptr, type, member) \
	((type *)((char *)(ptr) - offsetof(type, member)))

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + ts.tv_nsec;
}

static struct vsock_unix *unix_of(struct vsock_backend *be)
{
	return (struct vsock_unix *)be;
}

static void arm_accept(struct vsock_unix *u);
static void arm_timer(struct vsock_unix *u);

/* ---- Releasing connections. */

/* Closes a connection nothing is in flight for and tells the device. */
static void finish_release(struct vsock_unix *u, struct unix_conn *c)
{
	c->next_released = u->released;
	u->released = c;
	io_loop_defer(u->loop, &u->release_work);
}

static void run_releases(struct io_loop_deferred *work)
{
	struct vsock_unix *u = CONTAINER(work, struct vsock_unix, release_work);
	struct unix_conn *c = u->released;

	u->released = NULL;
	while (c) {
		struct unix_conn *next = c->next_released;

		close(c->fd);
		c->fd = -1;
		c->releasing = false;
		c->connecting = false;
		c->sending_ok = false;
		virtio_vsock_released(u->be.dev, c->id);
		c = next;
	}
	/* A connection fewer: the listener may have been waiting for an fd. */
	arm_accept(u);
}

/*
 * Counts a completion of @c's. True if the connection is being released
 * (its result goes nowhere), after finishing the release on the last one.
 */
static bool op_done_releasing(struct unix_conn *c)
{
	c->inflight--;
	if (!c->releasing)
		return false;
	if (!c->inflight)
		finish_release(c->u, c);
	return true;
}

static void cancel_done(struct io_loop_op *op, int res)
{
	(void)res;
	op_done_releasing(CONTAINER(op, struct unix_conn, cancel_op));
}

static void conn_release(struct vsock_backend *be, unsigned int id)
{
	struct vsock_unix *u = unix_of(be);
	struct unix_conn *c = &u->conns[id];
	struct io_uring_sqe *sqe;

	c->releasing = true;
	c->awaiting_guest = false;
	/* Completes a pending read or write (end of stream, EPIPE) at once. */
	shutdown(c->fd, SHUT_RDWR);
	if (c->connecting) {
		sqe = io_loop_get_sqe(u->loop, &c->cancel_op);
		/* No room: the connect ends by itself (refused or accepted). */
		if (sqe) {
			io_uring_prep_cancel(sqe, &c->connect_op, 0);
			c->inflight++;
		}
	}
	if (!c->inflight)
		finish_release(u, c);
}

/* ---- Guest-initiated connections. */

static void connect_done(struct io_loop_op *op, int res)
{
	struct unix_conn *c = CONTAINER(op, struct unix_conn, connect_op);

	c->connecting = false;
	if (op_done_releasing(c))
		return;
	if (res < 0) {
		close(c->fd);
		c->fd = -1;
	}
	virtio_vsock_connected(c->u->be.dev, c->id, res < 0 ? res : 0);
}

static int conn_connect(struct vsock_backend *be, unsigned int id, uint32_t port)
{
	struct vsock_unix *u = unix_of(be);
	struct unix_conn *c = &u->conns[id];
	struct io_uring_sqe *sqe;
	int n;

	c->addr = (struct sockaddr_un){ .sun_family = AF_UNIX };
	n = snprintf(c->addr.sun_path, sizeof(c->addr.sun_path), "%s_%u",
		     u->path, port);
	/* vsock_unix_create made sure every port fits. */
	if (n < 0 || (size_t)n >= sizeof(c->addr.sun_path))
		return -ENAMETOOLONG;
	c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c->fd < 0)
		return -errno;
	sqe = io_loop_get_sqe(u->loop, &c->connect_op);
	if (!sqe) {
		close(c->fd);
		c->fd = -1;
		return -EAGAIN;
	}
	io_uring_prep_connect(sqe, c->fd, (struct sockaddr *)&c->addr,
			      sizeof(c->addr));
	c->connecting = true;
	c->inflight++;
	return 0;
}

/* ---- Data. */

static void read_done(struct io_loop_op *op, int res)
{
	struct unix_conn *c = CONTAINER(op, struct unix_conn, read_op);

	if (op_done_releasing(c))
		return;
	virtio_vsock_read_done(c->u->be.dev, c->id, res);
}

static int conn_read(struct vsock_backend *be, unsigned int id, void *buf,
		     size_t len)
{
	struct vsock_unix *u = unix_of(be);
	struct unix_conn *c = &u->conns[id];
	struct io_uring_sqe *sqe = io_loop_get_sqe(u->loop, &c->read_op);

	if (!sqe)
		return -EAGAIN;
	c->read_iov = (struct iovec){ buf, len };
	io_uring_prep_readv(sqe, c->fd, &c->read_iov, 1, 0);
	c->inflight++;
	return 0;
}

static void write_done(struct io_loop_op *op, int res);

static int send_iov(struct unix_conn *c, const struct iovec *iov,
		    unsigned int iovcnt)
{
	struct io_uring_sqe *sqe = io_loop_get_sqe(c->u->loop, &c->write_op);

	if (!sqe)
		return -EAGAIN;
	memcpy(c->write_iov, iov, iovcnt * sizeof(*iov));
	c->write_msg = (struct msghdr){
		.msg_iov = c->write_iov, .msg_iovlen = iovcnt,
	};
	io_uring_prep_sendmsg(sqe, c->fd, &c->write_msg, MSG_NOSIGNAL);
	c->inflight++;
	return 0;
}

static int conn_write(struct vsock_backend *be, unsigned int id,
		      const struct iovec *iov, unsigned int iovcnt)
{
	return send_iov(&unix_of(be)->conns[id], iov, iovcnt);
}

/* The "OK <port>" line of a host-initiated connection, maybe in pieces. */
static void ok_line_sent(struct unix_conn *c, int res)
{
	struct iovec rest;
	int ret;

	if (res > 0)
		c->ok_sent += (size_t)res;
	if (res > 0 && c->ok_sent < c->ok_len) {
		rest = (struct iovec){ c->ok_line + c->ok_sent, c->ok_len - c->ok_sent };
		ret = send_iov(c, &rest, 1);
		if (!ret)
			return;
		res = ret;
	}
	c->sending_ok = false;
	if (res <= 0) {
		close(c->fd);
		c->fd = -1;
	}
	virtio_vsock_connected(c->u->be.dev, c->id, res < 0 ? res : res ? 0 : -EPIPE);
}

static void write_done(struct io_loop_op *op, int res)
{
	struct unix_conn *c = CONTAINER(op, struct unix_conn, write_op);

	if (op_done_releasing(c))
		return;
	if (c->sending_ok)
		ok_line_sent(c, res);
	else
		virtio_vsock_written(c->u->be.dev, c->id, res);
}

static void conn_shutdown_write(struct vsock_backend *be, unsigned int id)
{
	shutdown(unix_of(be)->conns[id].fd, SHUT_WR);
}

/* ---- Host-initiated connections. */

static int conn_accept(struct vsock_backend *be, unsigned int id,
		       uint32_t host_port)
{
	struct unix_conn *c = &unix_of(be)->conns[id];
	struct iovec line;
	int ret;

	c->ok_len = (size_t)snprintf(c->ok_line, sizeof(c->ok_line), "OK %u\n",
				     host_port);
	c->ok_sent = 0;
	line = (struct iovec){ c->ok_line, c->ok_len };
	ret = send_iov(c, &line, 1);
	if (ret < 0)
		return ret;
	c->awaiting_guest = false;
	c->sending_ok = true;
	return 0;
}

static void handshake_close(struct vsock_unix *u, struct handshake *hs)
{
	close(hs->fd);
	hs->fd = -1;
	hs->closing = false;
	arm_accept(u);
}

static int handshake_read_byte(struct vsock_unix *u, struct handshake *hs)
{
	struct io_uring_sqe *sqe = io_loop_get_sqe(u->loop, &hs->read_op);

	if (!sqe)
		return -EAGAIN;
	hs->iov = (struct iovec){ hs->line + hs->len, 1 };
	io_uring_prep_readv(sqe, hs->fd, &hs->iov, 1, 0);
	return 0;
}

/* The CONNECT line is complete: the fd becomes device connection `id`. */
static void handshake_connect(struct vsock_unix *u, struct handshake *hs,
			      uint32_t port)
{
	unsigned int id;
	uint32_t host_port;

	if (virtio_vsock_host_connect(u->be.dev, port, &id, &host_port) < 0) {
		handshake_close(u, hs);
		return;
	}
	u->conns[id].fd = hs->fd;
	u->conns[id].awaiting_guest = true;
	u->conns[id].deadline_ns = hs->deadline_ns;
	hs->fd = -1;
	arm_accept(u);
}

static void handshake_read_done(struct io_loop_op *op, int res)
{
	struct handshake *hs = CONTAINER(op, struct handshake, read_op);
	struct vsock_unix *u = hs->u;
	uint32_t port;
	int ret;

	if (res != 1 || hs->closing) {
		handshake_close(u, hs);
		return;
	}
	hs->len++;
	ret = vsock_parse_connect(hs->line, hs->len, &port);
	if (ret > 0)
		handshake_connect(u, hs, port);
	else if (ret < 0 || handshake_read_byte(u, hs) < 0)
		handshake_close(u, hs);
}

static struct handshake *free_handshake(struct vsock_unix *u)
{
	for (unsigned int i = 0; i < VSOCK_UNIX_MAX_HANDSHAKES; i++) {
		if (u->handshakes[i].fd < 0)
			return &u->handshakes[i];
	}
	return NULL;
}

static void accept_done(struct io_loop_op *op, int res)
{
	struct vsock_unix *u = CONTAINER(op, struct vsock_unix, accept_op);
	struct handshake *hs;

	u->accepting = false;
	if (res < 0) {
		/* Out of fds or memory: wait for a connection to go. */
		if (res == -EMFILE || res == -ENFILE || res == -ENOMEM ||
		    res == -ENOBUFS)
			return;
		arm_accept(u);
		return;
	}
	/* arm_accept only accepts with a free slot. */
	hs = free_handshake(u);
	hs->fd = res;
	hs->len = 0;
	hs->closing = false;
	hs->deadline_ns = now_ns() + VSOCK_UNIX_HANDSHAKE_SECONDS * 1000000000ull;
	if (handshake_read_byte(u, hs) < 0) {
		handshake_close(u, hs);
		return;
	}
	arm_timer(u);
	arm_accept(u);
}

/* Accepts the next host process, if a handshake slot is free. */
static void arm_accept(struct vsock_unix *u)
{
	struct io_uring_sqe *sqe;

	if (u->accepting || !free_handshake(u))
		return;
	sqe = io_loop_get_sqe(u->loop, &u->accept_op);
	/* No room now: the next release or handshake end tries again. */
	if (!sqe)
		return;
	io_uring_prep_accept(sqe, u->listen_fd, NULL, NULL, SOCK_CLOEXEC);
	u->accepting = true;
}

/* ---- Deadlines. */

static bool deadlines_pending(const struct vsock_unix *u)
{
	for (unsigned int i = 0; i < VSOCK_UNIX_MAX_HANDSHAKES; i++) {
		if (u->handshakes[i].fd >= 0)
			return true;
	}
	for (unsigned int i = 0; i < VSOCK_MAX_CONNS; i++) {
		if (u->conns[i].awaiting_guest)
			return true;
	}
	return false;
}

static void timer_fired(struct io_loop_op *op, int res)
{
	struct vsock_unix *u = CONTAINER(op, struct vsock_unix, timer_op);
	uint64_t now = now_ns();

	(void)res;
	u->timer_armed = false;
	for (unsigned int i = 0; i < VSOCK_UNIX_MAX_HANDSHAKES; i++) {
		struct handshake *hs = &u->handshakes[i];

		/* The pending read completes, and closes it. */
		if (hs->fd >= 0 && !hs->closing && now >= hs->deadline_ns) {
			hs->closing = true;
			shutdown(hs->fd, SHUT_RDWR);
		}
	}
	for (unsigned int i = 0; i < VSOCK_MAX_CONNS; i++) {
		struct unix_conn *c = &u->conns[i];

		if (c->awaiting_guest && now >= c->deadline_ns) {
			c->awaiting_guest = false;
			virtio_vsock_abort(u->be.dev, c->id);
		}
	}
	arm_timer(u);
}

static void arm_timer(struct vsock_unix *u)
{
	struct io_uring_sqe *sqe;

	if (u->timer_armed || !deadlines_pending(u))
		return;
	sqe = io_loop_get_sqe(u->loop, &u->timer_op);
	/* No room: the next accept arms it. */
	if (!sqe)
		return;
	io_uring_prep_timeout(sqe, &u->tick, 0, 0);
	u->timer_armed = true;
}

/* ---- Set-up. */

static void unix_destroy(struct vsock_backend *be)
{
	struct vsock_unix *u = unix_of(be);
	struct stat st;

	for (unsigned int i = 0; i < VSOCK_UNIX_MAX_HANDSHAKES; i++) {
		if (u->handshakes[i].fd >= 0)
			close(u->handshakes[i].fd);
	}
	for (unsigned int i = 0; i < VSOCK_MAX_CONNS; i++) {
		if (u->conns[i].fd >= 0)
			close(u->conns[i].fd);
	}
	/* Only our own socket: another VMM may have replaced it since. */
	if (stat(u->path, &st) == 0 && st.st_dev == u->listen_dev &&
	    st.st_ino == u->listen_ino)
		unlink(u->path);
	close(u->listen_fd);
	free(u->path);
	free(u);
}

static const struct vsock_backend_ops unix_ops = {
	.connect = conn_connect,
	.accept = conn_accept,
	.write = conn_write,
	.read = conn_read,
	.shutdown_write = conn_shutdown_write,
	.release = conn_release,
	.destroy = unix_destroy,
};

/*
 * Binds and listens on @path. An existing socket nobody accepts on is a
 * leftover of a VMM that died: replace it. Anything else there is an error.
 */
static int listen_on(struct vsock_unix *u, char *err, size_t err_size)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	struct stat st;
	int fd, ret;

	strcpy(addr.sun_path, u->path);
	if (lstat(u->path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			snprintf(err, err_size, "%s exists and is not a socket", u->path);
			return -EEXIST;
		}
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0)
			goto err_socket;
		ret = connect(fd, (struct sockaddr *)&addr, sizeof(addr));
		close(fd);
		if (ret == 0) {
			snprintf(err, err_size,
				 "%s is in use: a running process accepts connections on it",
				 u->path);
			return -EADDRINUSE;
		}
		if (errno != ECONNREFUSED) {
			ret = -errno;
			snprintf(err, err_size, "%s: cannot tell whether it is in use: %s",
				 u->path, strerror(errno));
			return ret;
		}
		if (unlink(u->path) < 0) {
			ret = -errno;
			snprintf(err, err_size, "cannot remove the stale socket %s: %s",
				 u->path, strerror(errno));
			return ret;
		}
	}
	u->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (u->listen_fd < 0)
		goto err_socket;
	if (bind(u->listen_fd, (struct sockaddr *)&addr, sizeof(addr)) < 0 ||
	    listen(u->listen_fd, LISTEN_BACKLOG) < 0 ||
	    stat(u->path, &st) < 0) {
		ret = -errno;
		snprintf(err, err_size, "cannot listen on %s: %s", u->path,
			 strerror(errno));
		close(u->listen_fd);
		return ret;
	}
	u->listen_dev = st.st_dev;
	u->listen_ino = st.st_ino;
	return 0;

err_socket:
	ret = -errno;
	snprintf(err, err_size, "socket: %s", strerror(errno));
	return ret;
}

/* Room for VSOCK_MAX_CONNS connections, their handshakes and the rest. */
static void raise_fd_limit(void)
{
	struct rlimit lim;

	if (getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur < lim.rlim_max) {
		lim.rlim_cur = lim.rlim_max;
		setrlimit(RLIMIT_NOFILE, &lim);
	}
}

int vsock_unix_create(struct vsock_backend **out, struct io_loop *loop,
		      const char *path, char *err, size_t err_size)
{
	/* Guest connections go to "PATH_4294967295" at the longest. */
	const size_t max_path = sizeof(((struct sockaddr_un *)0)->sun_path) - 1 -
				sizeof("_4294967295") + 1;
	struct vsock_unix *u;
	int ret;

	if (!*path || strlen(path) > max_path) {
		snprintf(err, err_size, "socket path \"%s\" is %s (at most %zu bytes, "
			 "leaving room for _PORT)", path, *path ? "too long" : "empty",
			 max_path);
		return -ENAMETOOLONG;
	}
	u = calloc(1, sizeof(*u));
	if (!u || !(u->path = strdup(path))) {
		free(u);
		snprintf(err, err_size, "out of memory");
		return -ENOMEM;
	}
	u->be.ops = &unix_ops;
	u->loop = loop;
	u->tick = (struct __kernel_timespec){ .tv_nsec = TICK_NS };
	u->accept_op.complete = accept_done;
	u->timer_op.complete = timer_fired;
	u->release_work.run = run_releases;
	for (unsigned int i = 0; i < VSOCK_UNIX_MAX_HANDSHAKES; i++) {
		u->handshakes[i] = (struct handshake){
			.u = u, .fd = -1, .read_op.complete = handshake_read_done,
		};
	}
	for (unsigned int i = 0; i < VSOCK_MAX_CONNS; i++) {
		u->conns[i] = (struct unix_conn){
			.u = u, .id = i, .fd = -1,
			.connect_op.complete = connect_done,
			.read_op.complete = read_done,
			.write_op.complete = write_done,
			.cancel_op.complete = cancel_done,
		};
	}
	ret = listen_on(u, err, err_size);
	if (ret < 0) {
		free(u->path);
		free(u);
		return ret;
	}
	raise_fd_limit();
	arm_accept(u);
	*out = &u->be;
	return 0;
}
