/*
 * console_backend.c - what the console backends share: one fd-level
 * transfer on the io_loop (struct console_xfer) and error reporting.
 *
 * A read polls first and reads only once the fd is readable: a READV
 * that has to wait would sit in an io-wq worker blocked in read(2),
 * which a plain POLL_ADD never does, and the ring's teardown cancels a
 * pending poll cleanly. Reads and writes use offset -1, the fd's own
 * position: right for ttys, pipes and sockets, and for a regular file
 * (vmm-run >FILE, --console FILE) it appends where the last write ended.
 */
#include "devices/console_backend.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>

#define CURRENT_POSITION ((__u64)-1)

static void xfer_done(struct io_loop_op *op, int res);

/* Queues the transfer's next step: a poll while waiting, else the I/O. */
static int xfer_submit(struct console_xfer *xfer, bool poll_first)
{
	struct io_uring_sqe *sqe;

	xfer->op.complete = xfer_done;
	sqe = io_loop_get_sqe(xfer->loop, &xfer->op);
	if (!sqe)
		return -EAGAIN;
	xfer->polling = poll_first;
	if (poll_first)
		io_uring_prep_poll_add(sqe, xfer->fd,
				       xfer->kind == CONSOLE_XFER_READ ? POLLIN : POLLOUT);
	else if (xfer->kind == CONSOLE_XFER_READ)
		io_uring_prep_readv(sqe, xfer->fd, xfer->io->iov, xfer->io->iovcnt,
				    CURRENT_POSITION);
	else
		io_uring_prep_writev(sqe, xfer->fd, xfer->io->iov, xfer->io->iovcnt,
				     CURRENT_POSITION);
	return 0;
}

int console_xfer_start(struct console_xfer *xfer)
{
	xfer->done = 0;
	return xfer_submit(xfer, xfer->kind == CONSOLE_XFER_READ);
}

/* Drops the first @n bytes of the request's iovecs (a short write). */
static void advance(struct console_io *io, size_t n)
{
	while (n && io->iovcnt) {
		if (n < io->iov->iov_len) {
			io->iov->iov_base = (char *)io->iov->iov_base + n;
			io->iov->iov_len -= n;
			return;
		}
		n -= io->iov->iov_len;
		io->iov++;
		io->iovcnt--;
	}
	/* Leading empty entries would make the next WRITEV return 0. */
	while (io->iovcnt && !io->iov->iov_len) {
		io->iov++;
		io->iovcnt--;
	}
}

/*
 * The next step after a completion. Each step reuses the slot its
 * predecessor just freed, so a resubmission fails only if the callbacks
 * of this batch broke that rule; the transfer then ends with the error.
 */
static void next_step(struct console_xfer *xfer, bool poll_first)
{
	int ret = xfer_submit(xfer, poll_first);

	if (ret < 0)
		xfer->finish(xfer, ret);
}

static void xfer_done(struct io_loop_op *op, int res)
{
	struct console_xfer *xfer = (struct console_xfer *)op;

	if (res == -EINTR) {
		next_step(xfer, xfer->polling);
		return;
	}
	if (xfer->polling) {
		/* POLLHUP and POLLERR come without being asked: the I/O tells. */
		if (res < 0)
			xfer->finish(xfer, res);
		else
			next_step(xfer, false);
		return;
	}
	/* An O_NONBLOCK fd (shared with whoever started vmm-run): wait for it. */
	if (res == -EAGAIN) {
		next_step(xfer, true);
		return;
	}
	if (xfer->kind == CONSOLE_XFER_READ || res < 0) {
		xfer->finish(xfer, res);
		return;
	}
	if (res == 0) {
		/* A write that moves nothing would spin: call it an error. */
		xfer->finish(xfer, -EIO);
		return;
	}
	xfer->done += (size_t)res;
	advance(xfer->io, (size_t)res);
	if (xfer->io->iovcnt)
		next_step(xfer, false);
	else
		xfer->finish(xfer, (ssize_t)xfer->done);
}

void console_report_once(bool *reported, const char *what, int error)
{
	if (*reported)
		return;
	*reported = true;
	fprintf(stderr, "console %s: %s\n", what, strerror(error));
}
