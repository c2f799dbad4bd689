/*
 * console_backend.h - where a virtio-console's bytes go and come from.
 *
 * The device model (devices/virtio_console.c) does no I/O itself: it
 * hands its backend at most one output and one input request at a time
 * (struct console_io) and gets each back through io->complete. Three
 * backends, all on the io_loop (POLL_ADD, READV, WRITEV):
 *
 *  - stdio: output to an fd (vmm-run's stdout), input from another (its
 *    stdin). Neither fd is owned: destroy leaves them open.
 *  - file: output appended to a file created (or truncated) here; no
 *    input.
 *  - socket: a Unix stream socket the backend listens on, one client at
 *    a time: while one is connected, the next ones wait in the listen
 *    backlog (their connect succeeds) and get the console in turn, once
 *    a read finds the end of its stream or a write to it fails. Output
 *    while no client is connected is dropped: the guest never waits for
 *    a reader that may never come (Linux's hvc driver spins until the
 *    device takes each write), and a client that connects later gets the
 *    live console, not a stale backlog. The input request stays pending
 *    across clients.
 *
 * Requests:
 *  - write: every byte of io->iov goes out, short writes resumed, then
 *    complete(io, LEN), LEN being the request's length. A destination
 *    that failed (stdout closed, a client gone) completes the request
 *    too, its bytes dropped: output never blocks the guest on a broken
 *    sink. The first failure of an fd is reported on stderr. So a write
 *    never fails; it only takes as long as the destination does.
 *  - read: waits until input is readable, reads once into io->iov and
 *    completes with the byte count (> 0), 0 at end of input for good
 *    (stdin at end of file), or a negative errno (the input failed; it is
 *    then over too). A backend without input (has_input false) refuses
 *    reads with -EOPNOTSUPP.
 * Until complete() runs, the request and its iovec array belong to the
 * backend (it rewrites the iovecs to resume a short write). complete()
 * is never called before the submit call returns. submit returns 0, or
 * -EAGAIN without taking the request when the io_loop has no room: retry
 * later (after any completion).
 *
 * Threads: the io_loop thread once it runs (before that, the caller's).
 * Errors from create: a negative errno and a message in @err.
 */
#ifndef EROVM_CONSOLE_BACKEND_H
#define EROVM_CONSOLE_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "devices/io_loop.h"

struct console_io {
	struct iovec *iov;
	unsigned int iovcnt;
	/* @res: bytes transferred, 0 at end of input, or a negative errno. */
	void (*complete)(struct console_io *io, ssize_t res);
};

struct console_backend;

struct console_backend_ops {
	int (*write)(struct console_backend *be, struct console_io *io);
	int (*read)(struct console_backend *be, struct console_io *io);
	void (*destroy)(struct console_backend *be);
};

struct console_backend {
	const struct console_backend_ops *ops;
	bool has_input;
};

int console_stdio_create(struct console_backend **out, struct io_loop *loop,
			 int in_fd, int out_fd, char *err, size_t err_size);
int console_file_create(struct console_backend **out, struct io_loop *loop,
			const char *path, char *err, size_t err_size);
/*
 * Listens on @path, which must not exist yet (a leftover socket is an
 * error, not silently replaced: another VM may own it); destroy removes
 * it. Ignores SIGPIPE process-wide: a WRITEV to a client that just went
 * away would raise it, and SENDMSG's MSG_NOSIGNAL is not on the ring's
 * opcode allow-list.
 */
int console_socket_create(struct console_backend **out, struct io_loop *loop,
			  const char *path, char *err, size_t err_size);

static inline int console_backend_write(struct console_backend *be,
					struct console_io *io)
{
	return be->ops->write(be, io);
}

static inline int console_backend_read(struct console_backend *be,
				       struct console_io *io)
{
	return be->ops->read(be, io);
}

/* Closes what the backend opened. The io_loop must be stopped and destroyed first. */
static inline void console_backend_destroy(struct console_backend *be)
{
	if (be)
		be->ops->destroy(be);
}

/* ---- For the backends: one fd-level transfer on the io_loop. */

enum console_xfer_kind {
	CONSOLE_XFER_WRITE,         /* WRITEV until every byte is out (POLLOUT on EAGAIN) */
	CONSOLE_XFER_READ,          /* POLL_ADD for input, then one READV */
};

struct console_xfer {
	struct io_loop_op op;
	struct io_loop *loop;
	int fd;
	enum console_xfer_kind kind;
	bool polling;               /* the op in flight is a POLL_ADD */
	struct console_io *io;
	size_t done;                /* WRITE: bytes out so far */
	/* Called once when the transfer is over: bytes, 0, or a negative errno. */
	void (*finish)(struct console_xfer *xfer, ssize_t res);
};

/*
 * Starts @xfer (kind, fd, io, loop and finish set by the caller). Returns
 * 0, or -EAGAIN if the loop has no room (nothing was started). Later
 * steps need no new room: each reuses the slot its predecessor freed.
 */
int console_xfer_start(struct console_xfer *xfer);

/* Reports "console WHAT: ERROR" on stderr the first time *@reported is false. */
void console_report_once(bool *reported, const char *what, int error);

#endif
