/*
 * console_fd.c - the stdio and file console backends: output to one fd,
 * input (stdio only) from another, on the io_loop.
 */
#include "devices/console_backend.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct console_fd {
	struct console_backend be;
	struct io_loop *loop;
	int out_fd;
	bool owns_out_fd;
	const char *out_name;       /* for messages */
	struct console_xfer tx, rx;
	size_t tx_len;              /* the request's length: its result */
	bool out_broken;            /* output failed once: drop from now on */
	bool out_reported, in_reported;
	/* A write dropped on a broken output completes from here. */
	struct console_io *dropped;
	struct io_loop_deferred drop_work;
};

static size_t iov_total(const struct console_io *io)
{
	size_t len = 0;

	for (unsigned int i = 0; i < io->iovcnt; i++)
		len += io->iov[i].iov_len;
	return len;
}

static void tx_finished(struct console_xfer *xfer, ssize_t res)
{
	struct console_fd *c = (struct console_fd *)((char *)xfer -
						     offsetof(struct console_fd, tx));

	if (res < 0) {
		console_report_once(&c->out_reported, c->out_name, (int)-res);
		c->out_broken = true;
	}
	xfer->io->complete(xfer->io, (ssize_t)c->tx_len);
}

static void complete_dropped(struct io_loop_deferred *work)
{
	struct console_fd *c = (struct console_fd *)((char *)work -
						     offsetof(struct console_fd, drop_work));
	struct console_io *io = c->dropped;

	c->dropped = NULL;
	io->complete(io, (ssize_t)iov_total(io));
}

static int fd_write(struct console_backend *be, struct console_io *io)
{
	struct console_fd *c = (struct console_fd *)be;

	if (c->out_broken) {
		c->dropped = io;
		io_loop_defer(c->loop, &c->drop_work);
		return 0;
	}
	c->tx_len = iov_total(io);
	c->tx.io = io;
	return console_xfer_start(&c->tx);
}

static void rx_finished(struct console_xfer *xfer, ssize_t res)
{
	struct console_fd *c = (struct console_fd *)((char *)xfer -
						     offsetof(struct console_fd, rx));

	if (res < 0)
		console_report_once(&c->in_reported, "input", (int)-res);
	xfer->io->complete(xfer->io, res);
}

static int fd_read(struct console_backend *be, struct console_io *io)
{
	struct console_fd *c = (struct console_fd *)be;

	if (!c->be.has_input)
		return -EOPNOTSUPP;
	c->rx.io = io;
	return console_xfer_start(&c->rx);
}

static void fd_destroy(struct console_backend *be)
{
	struct console_fd *c = (struct console_fd *)be;

	if (c->owns_out_fd)
		close(c->out_fd);
	free(c);
}

static const struct console_backend_ops fd_ops = {
	.write = fd_write,
	.read = fd_read,
	.destroy = fd_destroy,
};

static struct console_fd *fd_backend_new(struct io_loop *loop, int in_fd,
					 int out_fd, const char *out_name)
{
	struct console_fd *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->be = (struct console_backend){ .ops = &fd_ops, .has_input = in_fd >= 0 };
	c->loop = loop;
	c->out_fd = out_fd;
	c->out_name = out_name;
	c->tx = (struct console_xfer){
		.loop = loop, .fd = out_fd, .kind = CONSOLE_XFER_WRITE,
		.finish = tx_finished,
	};
	c->rx = (struct console_xfer){
		.loop = loop, .fd = in_fd, .kind = CONSOLE_XFER_READ,
		.finish = rx_finished,
	};
	c->drop_work.run = complete_dropped;
	return c;
}

int console_stdio_create(struct console_backend **out, struct io_loop *loop,
			 int in_fd, int out_fd, char *err, size_t err_size)
{
	struct console_fd *c = fd_backend_new(loop, in_fd, out_fd, "output");

	if (!c) {
		snprintf(err, err_size, "console: out of memory");
		return -ENOMEM;
	}
	*out = &c->be;
	return 0;
}

int console_file_create(struct console_backend **out, struct io_loop *loop,
			const char *path, char *err, size_t err_size)
{
	struct console_fd *c;
	int fd, ret;

	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		ret = -errno;
		snprintf(err, err_size, "cannot create %s: %s", path, strerror(errno));
		return ret;
	}
	c = fd_backend_new(loop, -1, fd, "file");
	if (!c) {
		close(fd);
		snprintf(err, err_size, "console: out of memory");
		return -ENOMEM;
	}
	c->owns_out_fd = true;
	*out = &c->be;
	return 0;
}
