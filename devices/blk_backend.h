/*
 * blk_backend.h - disk I/O behind the virtio-blk device model.
 *
 * A disk (struct blk_disk) is an ordered list of extents, each a range of
 * a host file, presented as one contiguous run of `capacity` bytes; every
 * extent is a whole number of 512-byte sectors. An engine (struct
 * blk_backend) runs requests against a disk:
 *  - blk_sync: preadv/pwritev/fdatasync, completing before submit returns;
 *  - blk_uring: READV/WRITEV/FSYNC SQEs on the io_loop, completing on the
 *    loop thread.
 * A request crossing extents runs as one part per extent; it completes
 * once, when every part has, and the first error wins.
 *
 * Contract for submitters: [offset, offset + iov bytes) lies inside the
 * disk (the engines check again and fail with -EINVAL), writes to a
 * read-only disk fail with -EROFS. complete() is called exactly once per
 * accepted request, possibly before submit returns; until then the
 * request and its iovec array belong to the engine (it may rewrite the
 * iovecs to resume a short transfer). submit returns -EAGAIN, without
 * calling complete(), when the engine is full: retry after a completion.
 */
#ifndef EROVM_BLK_BACKEND_H
#define EROVM_BLK_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "devices/io_loop.h"

#define BLK_SECTOR_SIZE 512
#define BLK_MAX_EXTENTS 16

struct blk_extent {
	int fd;
	uint64_t file_offset;
	uint64_t len;               /* bytes, a multiple of BLK_SECTOR_SIZE */
};

struct blk_disk {
	uint64_t capacity;          /* bytes: the sum of the extent lengths */
	bool read_only;
	unsigned int nr_extents;
	struct blk_extent extents[BLK_MAX_EXTENTS];
};

enum blk_op {
	BLK_OP_READ,
	BLK_OP_WRITE,
	BLK_OP_FLUSH,
};

struct blk_request;

/* The I/O to one extent: an engine's unit of work. */
struct blk_part {
	struct io_loop_op op;       /* blk_uring's token */
	struct blk_request *req;
	int fd;
	uint64_t file_offset;
	struct iovec *iov;
	unsigned int iovcnt;
	uint64_t remaining;         /* bytes still to transfer */
};

struct blk_request {
	enum blk_op op;
	uint64_t offset;            /* bytes from the start of the disk */
	struct iovec *iov;          /* ignored for BLK_OP_FLUSH */
	unsigned int iovcnt;
	/* @res: bytes transferred (0 for FLUSH) or a negative errno. */
	void (*complete)(struct blk_request *req, int64_t res);

	/* Engine state, set up by the engine and blk_request_split(). */
	struct blk_backend *backend;
	struct blk_part single;     /* the part of a one-extent request */
	struct blk_part *parts;     /* &single, or a heap array */
	unsigned int nr_parts;
	unsigned int parts_pending;
	int error;
	uint64_t bytes;
};

struct blk_backend;

struct blk_backend_ops {
	int (*submit)(struct blk_backend *be, struct blk_request *req);
	void (*destroy)(struct blk_backend *be);
};

struct blk_backend {
	const struct blk_backend_ops *ops;
	struct blk_disk *disk;
};

/* An empty disk: add files with blk_disk_add_file(). */
void blk_disk_init(struct blk_disk *disk, bool read_only);

/*
 * Appends all of @path (a regular file or block device) as an extent,
 * opened O_CLOEXEC, read-write unless the disk is read-only; its size is
 * rounded down to whole sectors. Returns 0 or a negative errno with a
 * message in @err (e.g. a file smaller than one sector, too many extents).
 */
int blk_disk_add_file(struct blk_disk *disk, const char *path, char *err,
		      size_t err_size);

/* blk_disk_init() and blk_disk_add_file() of one file. */
int blk_disk_open(struct blk_disk *disk, const char *path, bool read_only,
		  char *err, size_t err_size);

/* Closes every extent's file. */
void blk_disk_close(struct blk_disk *disk);

/*
 * For engines: checks @req against the disk and cuts it into parts, one per
 * extent it touches (a FLUSH gets one part per extent, to fsync each file).
 * Returns 0, -EINVAL (out of range, too many iovecs), -EROFS or -ENOMEM.
 * Undo with blk_request_release().
 */
int blk_request_split(const struct blk_disk *disk, struct blk_request *req);

/*
 * For engines: after a short transfer of @bytes (< part->remaining), moves
 * the part's iovecs and file offset past them, dropping spent iovecs.
 */
void blk_part_advance(struct blk_part *part, uint64_t bytes);

/* Frees what blk_request_split() allocated. */
void blk_request_release(struct blk_request *req);

/* Submits @req; see the contract above. Returns 0 or -EAGAIN. */
static inline int blk_backend_submit(struct blk_backend *be,
				     struct blk_request *req)
{
	return be->ops->submit(be, req);
}

/* Frees the engine (not the disk). No request may be in flight. */
static inline void blk_backend_destroy(struct blk_backend *be)
{
	be->ops->destroy(be);
}

/* The synchronous engine. Returns 0 or -ENOMEM. */
int blk_sync_create(struct blk_backend **out, struct blk_disk *disk);

/*
 * The io_uring engine on @loop; submit and completions run on the loop
 * thread. Returns 0 or -ENOMEM.
 */
int blk_uring_create(struct blk_backend **out, struct blk_disk *disk,
		     struct io_loop *loop);

#endif
