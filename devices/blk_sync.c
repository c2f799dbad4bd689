/*
 * blk_sync.c - the synchronous engine: each request runs to completion
 * inside submit with preadv/pwritev/fdatasync. The reference for
 * blk_uring and the engine unit tests drive the device model with.
 */
#include "devices/blk_backend.h"

#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

/* Transfers a whole part, resuming after short transfers. */
static int run_part(enum blk_op op, struct blk_part *part)
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

static int sync_submit(struct blk_backend *be, struct blk_request *req)
{
	int ret = blk_request_split(be->disk, req);

	for (unsigned int i = 0; ret == 0 && i < req->nr_parts; i++) {
		if (req->op == BLK_OP_FLUSH)
			ret = fdatasync(req->parts[i].fd) < 0 ? -errno : 0;
		else
			ret = run_part(req->op, &req->parts[i]);
	}
	blk_request_release(req);
	req->complete(req, ret < 0 ? ret : (int64_t)req->bytes);
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
