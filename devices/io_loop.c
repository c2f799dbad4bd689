#include "devices/io_loop.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

/*
 * The only SQE opcodes the ring accepts once enabled: disk I/O, eventfd
 * polls, and the vsock bridge's Unix sockets (ACCEPT, CONNECT, SENDMSG
 * for MSG_NOSIGNAL, ASYNC_CANCEL to end a connection, TIMEOUT for its
 * handshake deadlines).
 */
static const uint8_t allowed_opcodes[] = {
	IORING_OP_READV, IORING_OP_WRITEV, IORING_OP_FSYNC, IORING_OP_POLL_ADD,
	IORING_OP_FALLOCATE, IORING_OP_ACCEPT, IORING_OP_CONNECT,
	IORING_OP_SENDMSG, IORING_OP_ASYNC_CANCEL, IORING_OP_TIMEOUT,
};

static int restrict_and_enable(struct io_loop *loop, char *err, size_t err_size)
{
	struct io_uring_restriction res[sizeof(allowed_opcodes)];
	int ret;

	memset(res, 0, sizeof(res));
	for (size_t i = 0; i < sizeof(allowed_opcodes); i++) {
		res[i].opcode = IORING_RESTRICTION_SQE_OP;
		res[i].sqe_op = allowed_opcodes[i];
	}
	/*
	 * No SQE_FLAGS_ALLOWED and no REGISTER_OP entries: once enabled, any
	 * SQE flag and every io_uring_register call are refused.
	 */
	/*
	 * Debian's liburing 2.3 shared library does not export
	 * io_uring_register_restrictions() or io_uring_enable_rings(), so
	 * use the generic io_uring_register() it does export.
	 */
	ret = io_uring_register(loop->ring.ring_fd, IORING_REGISTER_RESTRICTIONS,
				res, sizeof(allowed_opcodes));
	if (ret < 0) {
		snprintf(err, err_size,
			 "io_uring: kernel refuses ring restrictions: %s",
			 strerror(-ret));
		return ret;
	}
	ret = io_uring_register(loop->ring.ring_fd, IORING_REGISTER_ENABLE_RINGS,
				NULL, 0);
	if (ret < 0) {
		snprintf(err, err_size, "io_uring: cannot enable the ring: %s",
			 strerror(-ret));
		return ret;
	}
	return 0;
}

static void stop_requested(void *opaque)
{
	struct io_loop *loop = opaque;

	loop->stopping = true;
}

int io_loop_init(struct io_loop *loop, unsigned int entries, char *err,
		 size_t err_size)
{
	struct io_uring_params params;
	int ret;

	memset(loop, 0, sizeof(*loop));
	loop->stop_fd = -1;
	memset(&params, 0, sizeof(params));
	params.flags = IORING_SETUP_R_DISABLED;
	ret = io_uring_queue_init_params(entries, &loop->ring, &params);
	if (ret < 0) {
		snprintf(err, err_size,
			 ret == -EINVAL ?
			 "io_uring: kernel refuses IORING_SETUP_R_DISABLED (needs Linux 5.10+): %s" :
			 "io_uring: cannot create the ring: %s",
			 strerror(-ret));
		return ret;
	}
	loop->max_inflight = params.cq_entries;
	ret = restrict_and_enable(loop, err, err_size);
	if (ret < 0)
		goto err_ring;
	loop->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (loop->stop_fd < 0) {
		ret = -errno;
		snprintf(err, err_size, "io_loop: eventfd: %s", strerror(errno));
		goto err_ring;
	}
	ret = io_loop_watch_eventfd(loop, loop->stop_fd, stop_requested, loop);
	if (ret < 0) {
		snprintf(err, err_size, "io_loop: cannot watch the stop eventfd: %s",
			 strerror(-ret));
		goto err_fd;
	}
	return 0;

err_fd:
	close(loop->stop_fd);
err_ring:
	io_uring_queue_exit(&loop->ring);
	return ret;
}

void io_loop_destroy(struct io_loop *loop)
{
	io_uring_queue_exit(&loop->ring);
	close(loop->stop_fd);
}

bool io_loop_has_room(const struct io_loop *loop, unsigned int n)
{
	return n <= loop->max_inflight - loop->inflight;
}

struct io_uring_sqe *io_loop_get_sqe(struct io_loop *loop, struct io_loop_op *op)
{
	struct io_uring_sqe *sqe;

	if (!io_loop_has_room(loop, 1))
		return NULL;
	sqe = io_uring_get_sqe(&loop->ring);
	if (!sqe) {
		/* SQ full: hand the batch to the kernel early. */
		io_uring_submit(&loop->ring);
		sqe = io_uring_get_sqe(&loop->ring);
		if (!sqe)
			return NULL;
	}
	io_uring_sqe_set_data(sqe, op);
	loop->inflight++;
	return sqe;
}

static int arm_watch(struct io_loop_watch *w)
{
	struct io_uring_sqe *sqe = io_loop_get_sqe(w->loop, &w->op);

	if (!sqe)
		return io_loop_has_room(w->loop, 1) ? -EBUSY : -ENOSPC;
	/*
	 * Poll, then read(2): an io_uring READ on an O_NONBLOCK eventfd (as
	 * the transport's are) completes at once with -EAGAIN.
	 */
	io_uring_prep_poll_add(sqe, w->fd, POLLIN);
	return 0;
}

static void watch_fired(struct io_loop_op *op, int res)
{
	struct io_loop_watch *w = (struct io_loop_watch *)op;
	int ret;

	if (res > 0) {
		uint64_t counter;

		/* Reset the counter; EAGAIN means another wake-up got it. */
		if (read(w->fd, &counter, sizeof(counter)) == sizeof(counter))
			w->fn(w->opaque);
	} else if (res != -EINTR && res != -EAGAIN) {
		/* Polling an eventfd cannot fail otherwise; give up loudly. */
		fprintf(stderr, "io_loop: poll on eventfd %d failed (%d), no longer watched\n",
			w->fd, res);
		return;
	}
	/* Re-arm: the poll that just completed freed exactly one slot. */
	ret = arm_watch(w);
	if (ret < 0)
		fprintf(stderr, "io_loop: cannot re-arm eventfd %d: %s\n", w->fd,
			strerror(-ret));
}

int io_loop_watch_eventfd(struct io_loop *loop, int fd, io_loop_event_fn fn,
			  void *opaque)
{
	struct io_loop_watch *w;
	int ret;

	if (loop->nr_watches == IO_LOOP_MAX_WATCHES)
		return -ENOSPC;
	w = &loop->watches[loop->nr_watches];
	*w = (struct io_loop_watch){
		.op.complete = watch_fired, .loop = loop, .fd = fd,
		.fn = fn, .opaque = opaque,
	};
	ret = arm_watch(w);
	if (ret < 0)
		return ret;
	loop->nr_watches++;
	return 0;
}

void io_loop_defer(struct io_loop *loop, struct io_loop_deferred *work)
{
	if (work->queued)
		return;
	work->queued = true;
	work->next = loop->deferred;
	loop->deferred = work;
}

static void run_deferred(struct io_loop *loop)
{
	struct io_loop_deferred *work = loop->deferred;

	/* Work queued while these run waits for the next iteration. */
	loop->deferred = NULL;
	while (work) {
		struct io_loop_deferred *next = work->next;

		work->queued = false;
		work->run(work);
		work = next;
	}
}

int io_loop_run_once(struct io_loop *loop, bool wait)
{
	struct io_uring_cqe *cqe;
	unsigned int budget = loop->max_inflight;
	int ret;

	ret = io_uring_submit_and_wait(&loop->ring,
				       wait && !loop->deferred ? 1 : 0);
	if (ret < 0 && ret != -EINTR && ret != -EBUSY && ret != -EAGAIN)
		return ret;
	/* Bounded: completions of ops queued by callbacks wait their turn. */
	while (budget-- && io_uring_peek_cqe(&loop->ring, &cqe) == 0) {
		struct io_loop_op *op = io_uring_cqe_get_data(cqe);
		int res = cqe->res;

		io_uring_cqe_seen(&loop->ring, cqe);
		loop->inflight--;
		op->complete(op, res);
	}
	run_deferred(loop);
	return 0;
}

static void *loop_thread(void *arg)
{
	struct io_loop *loop = arg;

	while (!loop->stopping) {
		int ret = io_loop_run_once(loop, true);

		if (ret < 0) {
			fprintf(stderr, "io_loop: io_uring_enter: %s\n",
				strerror(-ret));
			break;
		}
	}
	return NULL;
}

int io_loop_start(struct io_loop *loop)
{
	int ret = pthread_create(&loop->thread, NULL, loop_thread, loop);

	if (ret)
		return -ret;
	loop->thread_started = true;
	return 0;
}

void io_loop_stop(struct io_loop *loop)
{
	uint64_t one = 1;

	if (!loop->thread_started)
		return;
	if (write(loop->stop_fd, &one, sizeof(one)) != sizeof(one))
		fprintf(stderr, "io_loop: cannot signal the stop eventfd: %s\n",
			strerror(errno));
	pthread_join(loop->thread, NULL);
	loop->thread_started = false;
}
