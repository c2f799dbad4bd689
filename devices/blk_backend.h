/*
 * blk_backend.h - disk I/O behind the virtio-blk device model.
 *
 * A disk (struct blk_disk) is an ordered list of extents, each a byte
 * range of a host file, of any length; the guest sees the concatenation
 * of their bytes. A read-only disk whose bytes do not fill a last
 * 512-byte sector is padded with zeros up to it (the "tail"): reads there
 * return zeros without I/O, writes fail. An engine (struct blk_backend)
 * runs requests against a disk:
 *  - blk_sync: preadv/pwritev/fdatasync/fallocate, completing before
 *    submit returns;
 *  - blk_uring: READV/WRITEV/FSYNC/FALLOCATE SQEs on the io_loop,
 *    completing on the loop thread.
 * A request crossing extents runs as one part per extent, each with
 * iovecs pointing straight into the request's; it completes once, when
 * every part has, and the first error wins.
 *
 * FLUSH fdatasyncs each writable extent's file once. A failed fdatasync
 * is sticky: the disk remembers it, and that flush and every later one
 * fail, because the kernel may have dropped the dirty pages it could not
 * write and a later fdatasync would wrongly report them safe.
 *
 * Contract for submitters: [offset, offset + iov bytes) lies inside the
 * disk (the engines check again and fail with -EINVAL); a write, discard
 * or write-zeroes touching a read-only extent, a read-only disk or the
 * tail fails with -EROFS before any byte is written. complete() is called
 * exactly once per accepted request, possibly before submit returns;
 * until then the request and its iovec array belong to the engine (it may
 * rewrite the iovecs to resume a short transfer). submit returns -EAGAIN,
 * without calling complete(), when the engine is full: retry after a
 * completion.
 *
 * Threads: a disk and its engine are used from one thread at a time (the
 * io_loop thread once running).
 */
#ifndef EROVM_BLK_BACKEND_H
#define EROVM_BLK_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "devices/io_loop.h"

#define BLK_SECTOR_SIZE 512
/*
 * Extents per disk: bounds the parts one request can split into and the
 * O(n) work of add_extent's file sharing and of a flush.
 */
#define BLK_MAX_EXTENTS 4096

struct blk_extent {
	int fd;
	bool read_only;             /* opened O_RDONLY; writes refused */
	bool owns_fd;               /* false: shares an earlier extent's fd */
	dev_t dev;                  /* identify the file, to share its fd */
	ino_t ino;
	uint64_t file_offset;
	uint64_t len;               /* bytes, > 0 */
	uint64_t start;             /* disk offset of its first byte */
};

struct blk_disk {
	uint64_t capacity;          /* bytes, whole sectors (after finish) */
	uint64_t data_end;          /* sum of extent lengths; the tail follows */
	bool read_only;
	bool finished;
	/* The first failed fdatasync's errno, negative; 0 while none failed. */
	int flush_error;
	unsigned int nr_extents;
	unsigned int extents_allocated;
	struct blk_extent *extents;
};

enum blk_op {
	BLK_OP_READ,
	BLK_OP_WRITE,
	BLK_OP_FLUSH,
	BLK_OP_DISCARD,             /* may deallocate; contents unspecified */
	BLK_OP_WRITE_ZEROES,        /* reads back zeros afterwards */
};

struct blk_request;

/* The I/O to one extent: an engine's unit of work. */
struct blk_part {
	struct io_loop_op op;       /* blk_uring's token */
	struct blk_request *req;
	int fd;
	uint64_t file_offset;
	struct iovec *iov;          /* READ/WRITE only */
	unsigned int iovcnt;
	uint64_t remaining;         /* bytes still to transfer or fallocate */
	int fallocate_mode;         /* DISCARD/WRITE_ZEROES: the current try */
};

struct blk_request {
	enum blk_op op;
	uint64_t offset;            /* bytes from the start of the disk */
	struct iovec *iov;          /* READ and WRITE only */
	unsigned int iovcnt;
	uint64_t len;               /* DISCARD and WRITE_ZEROES: bytes */
	/*
	 * @res: bytes transferred (READ/WRITE, tail zeros included), 0 for
	 * the other ops, or a negative errno.
	 */
	void (*complete)(struct blk_request *req, int64_t res);

	/* Engine state, set up by the engine and blk_request_split(). */
	struct blk_backend *backend;
	struct blk_part single;     /* the part of a one-extent request */
	struct blk_part *parts;     /* &single, or a heap array */
	unsigned int nr_parts;
	unsigned int next_part;     /* blk_uring: the first not yet queued */
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

/* An empty disk: add extents with blk_disk_add_extent(), then finish. */
void blk_disk_init(struct blk_disk *disk, bool read_only);

/*
 * Appends bytes [@offset, @offset + @length) of @path (a regular file or
 * block device; @length 0: to its end) as the next extent. The file is
 * opened O_CLOEXEC, O_RDONLY if @read_only or the disk is, else O_RDWR;
 * extents of the same file opened the same way share one fd. Returns 0
 * or a negative errno with a message naming @path in @err: cannot open,
 * not a file, range empty or past the end of the file, too many extents,
 * disk too large, already finished.
 */
int blk_disk_add_extent(struct blk_disk *disk, const char *path,
			uint64_t offset, uint64_t length, bool read_only,
			char *err, size_t err_size);

/*
 * Fixes the layout: the extents' disk offsets and the capacity. A
 * read-only disk is padded with zeros to whole sectors; a writable one
 * must total whole sectors. Returns 0, or -EINVAL with a message in @err
 * (no extent, a writable disk of a partial sector).
 */
int blk_disk_finish(struct blk_disk *disk, char *err, size_t err_size);

/*
 * A finished disk of all of one file: init, add_extent(@path, 0, 0) and
 * finish. A writable file must be whole sectors.
 */
int blk_disk_open(struct blk_disk *disk, const char *path, bool read_only,
		  char *err, size_t err_size);

/* Closes every extent's file and frees the extent list. */
void blk_disk_close(struct blk_disk *disk);

/*
 * The index of the extent holding disk byte @offset (< disk->data_end)
 * of a finished disk: a binary search over the extents' start offsets.
 */
unsigned int blk_disk_find_extent(const struct blk_disk *disk, uint64_t offset);

/*
 * For engines: checks @req against the finished disk and cuts it into
 * parts, one per extent it touches (a FLUSH gets one part per writable
 * file, none on a read-only disk). Read bytes in the tail are zero-filled
 * here and counted in req->bytes. Returns 0, -EINVAL (out of range, too
 * many iovecs, lengths overflowing), -EROFS or -ENOMEM. Undo with
 * blk_request_release().
 */
int blk_request_split(const struct blk_disk *disk, struct blk_request *req);

/*
 * For engines: after a short transfer of @bytes (< part->remaining), moves
 * the part's iovecs and file offset past them, dropping spent iovecs.
 */
void blk_part_advance(struct blk_part *part, uint64_t bytes);

/*
 * For engines: the fallocate mode to retry a part with after it failed
 * with @error, or 0 to give up: WRITE_ZEROES falls back from ZERO_RANGE
 * to PUNCH_HOLE where the file system lacks ZERO_RANGE.
 */
int blk_part_fallocate_fallback(const struct blk_part *part, int error);

/*
 * For engines: the result of a part that failed with @error: a DISCARD
 * the file system cannot do is dropped (0), being only a hint.
 */
int blk_part_error(const struct blk_request *req, int error);

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
