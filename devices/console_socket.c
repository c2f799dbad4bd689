/*
 * console_socket.c - the Unix socket console backend: vmm-run listens,
 * one client at a time is the console's other end (see console_backend.h
 * for what happens without one).
 *
 * While no client is connected a POLL_ADD waits on the listening socket;
 * when it fires, accept4(2) takes one connection. While a client is
 * connected nothing is accepted: the next ones wait in the listen
 * backlog and get the console in turn. A client is gone when a read
 * finds the end of its stream or a write fails. Every transfer remembers
 * which client it ran on (a generation), so one that finishes after its
 * client went away only hands back its request.
 */
#include "devices/console_backend.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

struct console_socket {
	struct console_backend be;
	struct io_loop *loop;
	char *path;
	int listen_fd;
	int client_fd;              /* -1: nobody connected */
	unsigned int client_gen;    /* bumped whenever the client changes */

	struct io_loop_op accept_op;
	bool accept_armed;
	struct console_xfer tx, rx;
	unsigned int tx_gen, rx_gen;
	bool rx_busy;               /* a read transfer is on the ring */
	size_t tx_len;
	struct console_io *rx_io;   /* the device's read, waiting for a client */

	struct console_io *dropped; /* output without a client */
	struct io_loop_deferred drop_work;
	/* Re-tries what found the loop full (rare: the cap is shared). */
	struct io_loop_deferred retry_work;
	bool accept_reported, io_reported;
};

static struct console_socket *from_be(struct console_backend *be)
{
	return (struct console_socket *)be;
}

static size_t iov_total(const struct console_io *io)
{
	size_t len = 0;

	for (unsigned int i = 0; i < io->iovcnt; i++)
		len += io->iov[i].iov_len;
	return len;
}

static void arm_accept(struct console_socket *s);

static void close_client(struct console_socket *s)
{
	if (s->client_fd < 0)
		return;
	/* Wakes a poll still armed on it: the ring holds its own reference. */
	shutdown(s->client_fd, SHUT_RDWR);
	close(s->client_fd);
	s->client_fd = -1;
	s->client_gen++;
}

/* Forgets the client and waits for the next. */
static void disconnect_client(struct console_socket *s)
{
	close_client(s);
	arm_accept(s);
}

/* Starts the pending read on the current client, if it can start now. */
static void start_rx(struct console_socket *s)
{
	if (!s->rx_io || s->client_fd < 0 || s->rx_busy)
		return;
	s->rx.fd = s->client_fd;
	s->rx.io = s->rx_io;
	s->rx_gen = s->client_gen;
	if (console_xfer_start(&s->rx) < 0) {
		io_loop_defer(s->loop, &s->retry_work);
		return;
	}
	s->rx_busy = true;
}

static void accept_ready(struct io_loop_op *op, int res);

static void arm_accept(struct console_socket *s)
{
	struct io_uring_sqe *sqe;

	if (s->accept_armed || s->client_fd >= 0)
		return;
	s->accept_op.complete = accept_ready;
	sqe = io_loop_get_sqe(s->loop, &s->accept_op);
	if (!sqe) {
		io_loop_defer(s->loop, &s->retry_work);
		return;
	}
	io_uring_prep_poll_add(sqe, s->listen_fd, POLLIN);
	s->accept_armed = true;
}

static void retry(struct io_loop_deferred *work)
{
	struct console_socket *s = (struct console_socket *)((char *)work -
		offsetof(struct console_socket, retry_work));

	arm_accept(s);
	start_rx(s);
}

static void accept_ready(struct io_loop_op *op, int res)
{
	struct console_socket *s = (struct console_socket *)((char *)op -
		offsetof(struct console_socket, accept_op));
	int fd;

	s->accept_armed = false;
	if (res < 0 && res != -EINTR)
		console_report_once(&s->accept_reported, "socket", -res);
	/* The listening socket is non-blocking; the accepted one is not. */
	fd = accept4(s->listen_fd, NULL, NULL, SOCK_CLOEXEC);
	if (fd < 0) {
		if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR &&
		    errno != ECONNABORTED)
			console_report_once(&s->accept_reported, "socket accept", errno);
		arm_accept(s);
		return;
	}
	s->client_fd = fd;
	s->client_gen++;
	start_rx(s);
}

static void tx_finished(struct console_xfer *xfer, ssize_t res)
{
	struct console_socket *s = (struct console_socket *)((char *)xfer -
		offsetof(struct console_socket, tx));

	/* A client that breaks the connection is gone; its output is dropped. */
	if (res < 0 && s->tx_gen == s->client_gen)
		disconnect_client(s);
	xfer->io->complete(xfer->io, (ssize_t)s->tx_len);
}

static void complete_dropped(struct io_loop_deferred *work)
{
	struct console_socket *s = (struct console_socket *)((char *)work -
		offsetof(struct console_socket, drop_work));
	struct console_io *io = s->dropped;

	s->dropped = NULL;
	io->complete(io, (ssize_t)iov_total(io));
}

static int socket_write(struct console_backend *be, struct console_io *io)
{
	struct console_socket *s = from_be(be);

	if (s->client_fd < 0) {
		s->dropped = io;
		io_loop_defer(s->loop, &s->drop_work);
		return 0;
	}
	s->tx_len = iov_total(io);
	s->tx.fd = s->client_fd;
	s->tx.io = io;
	s->tx_gen = s->client_gen;
	return console_xfer_start(&s->tx);
}

static void rx_finished(struct console_xfer *xfer, ssize_t res)
{
	struct console_socket *s = (struct console_socket *)((char *)xfer -
		offsetof(struct console_socket, rx));
	struct console_io *io = s->rx_io;

	s->rx_busy = false;
	if (s->rx_gen != s->client_gen) {
		/* Its client is gone; the read waits for the current one. */
		start_rx(s);
		return;
	}
	if (res <= 0) {
		/* End of this client's input, not of the console's. */
		if (res < 0 && res != -ECONNRESET)
			console_report_once(&s->io_reported, "socket client", (int)-res);
		disconnect_client(s);
		return;
	}
	s->rx_io = NULL;
	io->complete(io, res);
}

static int socket_read(struct console_backend *be, struct console_io *io)
{
	struct console_socket *s = from_be(be);

	s->rx_io = io;
	start_rx(s);
	return 0;
}

static void socket_destroy(struct console_backend *be)
{
	struct console_socket *s = from_be(be);

	close_client(s);
	close(s->listen_fd);
	unlink(s->path);
	free(s->path);
	free(s);
}

static const struct console_backend_ops socket_ops = {
	.write = socket_write,
	.read = socket_read,
	.destroy = socket_destroy,
};

int console_socket_create(struct console_backend **out, struct io_loop *loop,
			  const char *path, char *err, size_t err_size)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	struct console_socket *s;
	int ret;

	if (!*path || strlen(path) >= sizeof(addr.sun_path)) {
		snprintf(err, err_size, "socket path \"%s\" is %s", path,
			 *path ? "longer than 107 bytes" : "empty");
		return -ENAMETOOLONG;
	}
	strcpy(addr.sun_path, path);
	s = calloc(1, sizeof(*s));
	if (!s || !(s->path = strdup(path))) {
		free(s);
		snprintf(err, err_size, "console: out of memory");
		return -ENOMEM;
	}
	s->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (s->listen_fd < 0) {
		ret = -errno;
		snprintf(err, err_size, "socket: %s", strerror(errno));
		goto err_free;
	}
	if (bind(s->listen_fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
		ret = -errno;
		snprintf(err, err_size, "cannot listen on %s: %s%s", path,
			 strerror(errno), errno == EADDRINUSE ?
			 " (a leftover socket? remove it first)" : "");
		goto err_close;
	}
	if (listen(s->listen_fd, 1) < 0) {
		ret = -errno;
		snprintf(err, err_size, "cannot listen on %s: %s", path, strerror(errno));
		goto err_unlink;
	}
	s->be = (struct console_backend){ .ops = &socket_ops, .has_input = true };
	s->loop = loop;
	s->client_fd = -1;
	s->tx = (struct console_xfer){
		.loop = loop, .kind = CONSOLE_XFER_WRITE, .finish = tx_finished,
	};
	s->rx = (struct console_xfer){
		.loop = loop, .kind = CONSOLE_XFER_READ, .finish = rx_finished,
	};
	s->drop_work.run = complete_dropped;
	s->retry_work.run = retry;
	if (!io_loop_has_room(loop, 1)) {
		ret = -EBUSY;
		snprintf(err, err_size, "cannot watch %s: the I/O loop is full", path);
		goto err_unlink;
	}
	arm_accept(s);
	signal(SIGPIPE, SIG_IGN);
	*out = &s->be;
	return 0;

err_unlink:
	unlink(path);
err_close:
	close(s->listen_fd);
err_free:
	free(s->path);
	free(s);
	return ret;
}
