/*
 * blk_uring.c - the io_uring engine: every part of a request becomes one
 * READV/WRITEV/FSYNC SQE on the io_loop, submitted with the loop's next
 * batch. A short transfer is resubmitted for the rest.
 */
#include "devices/blk_backend.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>

struct blk_uring {
	struct blk_backend be;
	struct io_loop *loop;
};

static void part_done(struct io_loop_op *op, int res);

static int queue_part(struct io_loop *loop, enum blk_op op,
		      struct blk_part *part)
{
	struct io_uring_sqe *sqe;

	part->op.complete = part_done;
	sqe = io_loop_get_sqe(loop, &part->op);
	if (!sqe)
		return -EAGAIN;
	if (op == BLK_OP_READ)
		io_uring_prep_readv(sqe, part->fd, part->iov, part->iovcnt,
				    part->file_offset);
	else if (op == BLK_OP_WRITE)
		io_uring_prep_writev(sqe, part->fd, part->iov, part->iovcnt,
				     part->file_offset);
	else
		io_uring_prep_fsync(sqe, part->fd, IORING_FSYNC_DATASYNC);
	return 0;
}

/* One part is over; the request completes with its last part. */
static void finish_part(struct blk_request *req, int error)
{
	if (error && !req->error)
		req->error = error;
	if (--req->parts_pending)
		return;
	blk_request_release(req);
	req->complete(req, req->error ? req->error : (int64_t)req->bytes);
}

static void part_done(struct io_loop_op *op, int res)
{
	struct blk_part *part = (struct blk_part *)((char *)op -
						    offsetof(struct blk_part, op));
	struct blk_request *req = part->req;
	struct blk_uring *u = (struct blk_uring *)req->backend;

	if (res < 0 || req->op == BLK_OP_FLUSH) {
		finish_part(req, res < 0 ? res : 0);
		return;
	}
	/* End of file inside the disk: the file shrank under us. */
	if (res == 0) {
		finish_part(req, -EIO);
		return;
	}
	req->bytes += res;
	if ((uint64_t)res < part->remaining) {
		int ret;

		blk_part_advance(part, res);
		/* This completion freed the slot the retry needs. */
		ret = queue_part(u->loop, req->op, part);
		if (ret < 0)
			finish_part(req, ret);
		return;
	}
	finish_part(req, 0);
}

static int uring_submit(struct blk_backend *be, struct blk_request *req)
{
	struct blk_uring *u = (struct blk_uring *)be;
	unsigned int i;
	int ret;

	req->backend = be;
	ret = blk_request_split(be->disk, req);
	if (ret < 0 || req->nr_parts == 0) {
		blk_request_release(req);
		req->complete(req, ret);
		return 0;
	}
	/* All parts or none: a half-submitted request cannot be retried. */
	if (!io_loop_has_room(u->loop, req->nr_parts)) {
		blk_request_release(req);
		return -EAGAIN;
	}
	/* The extra reference keeps the request alive while queueing. */
	req->parts_pending = req->nr_parts + 1;
	for (i = 0; i < req->nr_parts; i++) {
		ret = queue_part(u->loop, req->op, &req->parts[i]);
		if (ret < 0)
			finish_part(req, ret);
	}
	finish_part(req, 0);
	return 0;
}

static void uring_destroy(struct blk_backend *be)
{
	free(be);
}

static const struct blk_backend_ops uring_ops = {
	.submit = uring_submit,
	.destroy = uring_destroy,
};

int blk_uring_create(struct blk_backend **out, struct blk_disk *disk,
		     struct io_loop *loop)
{
	struct blk_uring *u = calloc(1, sizeof(*u));

	if (!u)
		return -ENOMEM;
	u->be.ops = &uring_ops;
	u->be.disk = disk;
	u->loop = loop;
	*out = &u->be;
	return 0;
}
