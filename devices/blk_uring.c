/*
 * blk_uring.c - the io_uring engine: every part of a request becomes one
 * READV/WRITEV/FSYNC/FALLOCATE SQE on the io_loop, submitted with the
 * loop's next batch. A short transfer is resubmitted for the rest.
 *
 * A request may have more parts than the loop has room for (a disk has
 * up to BLK_MAX_EXTENTS extents): submit queues as many as fit, at least
 * one, and each part that finishes queues the next in the slot it freed.
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
	switch (op) {
	case BLK_OP_READ:
		io_uring_prep_readv(sqe, part->fd, part->iov, part->iovcnt,
				    part->file_offset);
		break;
	case BLK_OP_WRITE:
		io_uring_prep_writev(sqe, part->fd, part->iov, part->iovcnt,
				     part->file_offset);
		break;
	case BLK_OP_FLUSH:
		io_uring_prep_fsync(sqe, part->fd, IORING_FSYNC_DATASYNC);
		break;
	case BLK_OP_DISCARD:
	case BLK_OP_WRITE_ZEROES:
		io_uring_prep_fallocate(sqe, part->fd, part->fallocate_mode,
					part->file_offset, part->remaining);
		break;
	}
	return 0;
}

/* Drops one reference; the request completes with its last. */
static void put_request(struct blk_request *req, int error)
{
	if (error && !req->error)
		req->error = error;
	if (--req->parts_pending)
		return;
	blk_request_release(req);
	if (req->error)
		req->complete(req, req->error);
	else if (req->op == BLK_OP_READ || req->op == BLK_OP_WRITE)
		req->complete(req, (int64_t)req->bytes);
	else
		req->complete(req, 0);
}

/* Queues the request's next part, if any is left. */
static void queue_next_part(struct blk_uring *u, struct blk_request *req)
{
	int ret;

	if (req->next_part == req->nr_parts)
		return;
	ret = queue_part(u->loop, req->op, &req->parts[req->next_part++]);
	if (ret < 0)
		put_request(req, ret);
}

/* A part is over: its slot goes to the next part, then it lets go. */
static void finish_part(struct blk_uring *u, struct blk_request *req,
			int error)
{
	/* This part's reference keeps the request alive meanwhile. */
	queue_next_part(u, req);
	put_request(req, error);
}

static void part_done(struct io_loop_op *op, int res)
{
	struct blk_part *part = (struct blk_part *)((char *)op -
						    offsetof(struct blk_part, op));
	struct blk_request *req = part->req;
	struct blk_uring *u = (struct blk_uring *)req->backend;
	int ret, mode;

	switch (req->op) {
	case BLK_OP_FLUSH:
		if (res < 0 && !u->be.disk->flush_error)
			u->be.disk->flush_error = res;
		finish_part(u, req, res < 0 ? res : 0);
		return;
	case BLK_OP_DISCARD:
	case BLK_OP_WRITE_ZEROES:
		mode = res < 0 ? blk_part_fallocate_fallback(part, res) : 0;
		if (!mode) {
			finish_part(u, req, res < 0 ? blk_part_error(req, res) : 0);
			return;
		}
		part->fallocate_mode = mode;
		/* This completion freed the slot the retry needs. */
		ret = queue_part(u->loop, req->op, part);
		if (ret < 0)
			finish_part(u, req, ret);
		return;
	default:
		break;
	}
	if (res < 0) {
		finish_part(u, req, res);
		return;
	}
	/* End of file inside the disk: the file shrank under us. */
	if (res == 0) {
		finish_part(u, req, -EIO);
		return;
	}
	req->bytes += res;
	if ((uint64_t)res < part->remaining) {
		blk_part_advance(part, res);
		ret = queue_part(u->loop, req->op, part);
		if (ret < 0)
			finish_part(u, req, ret);
		return;
	}
	finish_part(u, req, 0);
}

static int uring_submit(struct blk_backend *be, struct blk_request *req)
{
	struct blk_uring *u = (struct blk_uring *)be;
	int ret;

	req->backend = be;
	ret = blk_request_split(be->disk, req);
	if (ret < 0 || req->nr_parts == 0) {
		blk_request_release(req);
		/* Nothing to queue: a tail-only read has its bytes already. */
		if (ret == 0 && (req->op == BLK_OP_READ || req->op == BLK_OP_WRITE))
			req->complete(req, (int64_t)req->bytes);
		else
			req->complete(req, ret);
		return 0;
	}
	/* At least one part now, or none: nothing half-submitted to retry. */
	if (!io_loop_has_room(u->loop, 1)) {
		blk_request_release(req);
		return -EAGAIN;
	}
	/* The extra reference keeps the request alive while queueing. */
	req->parts_pending = req->nr_parts + 1;
	while (req->next_part < req->nr_parts && io_loop_has_room(u->loop, 1))
		queue_next_part(u, req);
	put_request(req, 0);
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
