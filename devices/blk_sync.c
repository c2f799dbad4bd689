/*
 * blk_sync.c - the synchronous engine: each request runs to completion
 * inside submit with preadv/pwritev/fdatasync/fallocate. The reference
 * for blk_uring and the engine unit tests drive the device model with.
 */
#include "devices/blk_backend.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

/* Transfers a whole part, resuming after short transfers. */
static int transfer_part(enum blk_op op, struct blk_part *part)
{
	while (part->remaining) {
		ssize_t n;

		if (op == BLK_OP_READ)
			n = preadv(part->fd, part->iov, part->iovcnt,
				   part->file_offset);
		else
			n = pwritev(part->fd, part->iov, part->iovcnt,
				    part->file_offset);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		/* End of file inside the disk: the file shrank under us. */
		if (n == 0)
			return -EIO;
		part->req->bytes += n;
		blk_part_advance(part, n);
	}
	return 0;
}

/* Discards or zeroes a part, falling back to another mode if needed. */
static int fallocate_part(struct blk_part *part)
{
	for (;;) {
		int ret = fallocate(part->fd, part->fallocate_mode,
				    part->file_offset, part->remaining) < 0 ?
			  -errno : 0;
		int mode;

		if (ret == -EINTR)
			continue;
		if (ret == 0)
			return 0;
		mode = blk_part_fallocate_fallback(part, ret);
		if (!mode)
			return blk_part_error(part->req, ret);
		part->fallocate_mode = mode;
	}
}

static int run_part(struct blk_disk *disk, struct blk_part *part)
{
	int ret;

	switch (part->req->op) {
	case BLK_OP_READ:
	case BLK_OP_WRITE:
		return transfer_part(part->req->op, part);
	case BLK_OP_FLUSH:
		ret = fdatasync(part->fd) < 0 ? -errno : 0;
		if (ret < 0 && !disk->flush_error)
			disk->flush_error = ret;
		return ret;
	default:
		return fallocate_part(part);
	}
}

static int sync_submit(struct blk_backend *be, struct blk_request *req)
{
	int ret = blk_request_split(be->disk, req);

	/* Every file is synced even after one failed: each may hold data. */
	for (unsigned int i = 0; i < req->nr_parts; i++) {
		int part_ret = run_part(be->disk, &req->parts[i]);

		if (ret == 0 && part_ret < 0)
			ret = part_ret;
		if (ret < 0 && req->op != BLK_OP_FLUSH)
			break;
	}
	blk_request_release(req);
	if (ret == 0 && (req->op == BLK_OP_READ || req->op == BLK_OP_WRITE))
		req->complete(req, (int64_t)req->bytes);
	else
		req->complete(req, ret);
	return 0;
}

static void sync_destroy(struct blk_backend *be)
{
	free(be);
}

static const struct blk_backend_ops sync_ops = {
	.submit = sync_submit,
	.destroy = sync_destroy,
};

int blk_sync_create(struct blk_backend **out, struct blk_disk *disk)
{
	struct blk_backend *be = calloc(1, sizeof(*be));

	if (!be)
		return -ENOMEM;
	be->ops = &sync_ops;
	be->disk = disk;
	*out = be;
	return 0;
}
