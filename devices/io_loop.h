/*
 * io_loop.h - the one I/O thread all devices share, built on io_uring.
 *
 * One ring. Every operation on it belongs to an owner that embeds a
 * struct io_loop_op in its own request; the op's address travels in the
 * SQE's user_data, and the loop hands each completion back through
 * op->complete. The loop:
 *  - submits once per iteration (io_loop_get_sqe only queues), so a device
 *    that queues many SQEs while handling a kick costs one io_uring_enter;
 *  - keeps at most `cq_entries` operations in flight, so the CQ cannot
 *    overflow; io_loop_get_sqe() returns NULL at that cap and the caller
 *    throttles (keeps its request, retries after a completion) instead of
 *    failing it;
 *  - is created disabled, restricted to the opcodes erovm uses (READV,
 *    WRITEV, FSYNC, FALLOCATE, POLL_ADD; ACCEPT, CONNECT, SENDMSG,
 *    ASYNC_CANCEL, TIMEOUT for vsock's Unix sockets; no SQE flags, no
 *    further io_uring_register calls) and only then enabled, so a
 *    compromised device model cannot use the ring for anything else.
 *
 * Threads: after io_loop_start(), everything that touches the ring
 * (io_loop_get_sqe, io_loop_watch_eventfd, io_loop_defer) runs on the loop
 * thread, i.e. inside a callback. Before io_loop_start() (or without it,
 * as unit tests do with io_loop_run_once) the caller's thread owns it.
 * io_loop_stop() is the one call meant for another thread.
 */
#ifndef EROVM_IO_LOOP_H
#define EROVM_IO_LOOP_H

#include <liburing.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* One per virtqueue of every device, plus the stop eventfd. */
#define IO_LOOP_MAX_WATCHES 192

/* Embedded in the owner's request; its address is the SQE's user_data. */
struct io_loop_op {
	/* @res is the CQE result: bytes transferred or a negative errno. */
	void (*complete)(struct io_loop_op *op, int res);
};

/* Work run once on the loop thread after the current batch of completions. */
struct io_loop_deferred {
	void (*run)(struct io_loop_deferred *work);
	struct io_loop_deferred *next;
	bool queued;
};

struct io_loop;

/* A callback for an eventfd that fired; the counter is already consumed. */
typedef void (*io_loop_event_fn)(void *opaque);

struct io_loop_watch {
	struct io_loop_op op;
	struct io_loop *loop;
	int fd;
	io_loop_event_fn fn;
	void *opaque;
};

struct io_loop {
	struct io_uring ring;
	unsigned int max_inflight;  /* the CQ size */
	unsigned int inflight;
	int stop_fd;
	bool stopping;
	bool thread_started;
	pthread_t thread;
	struct io_loop_watch watches[IO_LOOP_MAX_WATCHES];
	unsigned int nr_watches;
	struct io_loop_deferred *deferred;
};

/*
 * Creates the ring with @entries SQ entries (a power of two; the CQ gets
 * twice as many), restricts and enables it, and sets up the stop eventfd.
 * Returns 0 or a negative errno with a message in @err: a kernel that
 * refuses IORING_SETUP_R_DISABLED or restrictions (before Linux 5.10) is
 * an error, not silently an unrestricted ring.
 */
int io_loop_init(struct io_loop *loop, unsigned int entries, char *err,
		 size_t err_size);

/* Closes the ring and the stop eventfd. The thread must not be running. */
void io_loop_destroy(struct io_loop *loop);

/*
 * Calls @fn(@opaque) on the loop thread each time eventfd @fd is written
 * (a re-armed POLL_ADD, then a read(2) that resets the counter). Keeps one
 * op in flight for good. Returns 0, -ENOSPC (watch table or in-flight cap full)
 * or -EBUSY (SQ full).
 */
int io_loop_watch_eventfd(struct io_loop *loop, int fd, io_loop_event_fn fn,
			  void *opaque);

/*
 * Returns an SQE whose user_data already carries @op (liburing's prep
 * helpers keep user_data), counted as in flight: the caller must prepare
 * it. Returns NULL when max_inflight operations are in flight; when the SQ
 * itself is full it submits what is queued and retries.
 */
struct io_uring_sqe *io_loop_get_sqe(struct io_loop *loop, struct io_loop_op *op);

/* True if @n more operations fit under the in-flight cap right now. */
bool io_loop_has_room(const struct io_loop *loop, unsigned int n);

/* Queues @work to run after the current batch (once, however often queued). */
void io_loop_defer(struct io_loop *loop, struct io_loop_deferred *work);

/*
 * One iteration: submits queued SQEs, waits for at least one completion
 * if @wait (and no deferred work is pending), dispatches the completions
 * that are there, then runs deferred work. Returns 0 or a negative errno
 * from io_uring_enter. io_loop_start's thread calls it; so do unit tests.
 */
int io_loop_run_once(struct io_loop *loop, bool wait);

/* Spawns the loop thread. Returns 0 or a negative errno. */
int io_loop_start(struct io_loop *loop);

/* Asks the loop thread to exit and joins it. Safe from any other thread. */
void io_loop_stop(struct io_loop *loop);

#endif
