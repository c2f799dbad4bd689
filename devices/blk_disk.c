/* Disks made of byte extents, and cutting requests at extent boundaries. */
#include "devices/blk_backend.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

void blk_disk_init(struct blk_disk *disk, bool read_only)
{
	memset(disk, 0, sizeof(*disk));
	disk->read_only = read_only;
}

static int file_size(int fd, const struct stat *st, uint64_t *size)
{
	if (S_ISREG(st->st_mode)) {
		*size = st->st_size;
		return 0;
	}
	if (S_ISBLK(st->st_mode))
		return ioctl(fd, BLKGETSIZE64, size) < 0 ? -errno : 0;
	return -EINVAL;
}

/* Makes room for one more extent, growing the array geometrically. */
static int reserve_extent(struct blk_disk *disk)
{
	unsigned int n = disk->extents_allocated ? 2 * disk->extents_allocated : 4;
	struct blk_extent *grown;

	if (disk->nr_extents < disk->extents_allocated)
		return 0;
	if (n > BLK_MAX_EXTENTS)
		n = BLK_MAX_EXTENTS;
	grown = realloc(disk->extents, n * sizeof(*grown));
	if (!grown)
		return -ENOMEM;
	disk->extents = grown;
	disk->extents_allocated = n;
	return 0;
}

/* An earlier extent's fd on the same file opened the same way, or -1. */
static int shared_fd(const struct blk_disk *disk, const struct stat *st,
		     bool read_only)
{
	for (unsigned int i = 0; i < disk->nr_extents; i++) {
		const struct blk_extent *e = &disk->extents[i];

		if (e->owns_fd && e->dev == st->st_dev && e->ino == st->st_ino &&
		    e->read_only == read_only)
			return e->fd;
	}
	return -1;
}

int blk_disk_add_extent(struct blk_disk *disk, const char *path,
			uint64_t offset, uint64_t length, bool read_only,
			char *err, size_t err_size)
{
	uint64_t size, end, total;
	struct stat st;
	int fd, other, ret;

	read_only |= disk->read_only;
	if (disk->finished) {
		snprintf(err, err_size, "%s: the disk is already complete", path);
		return -EINVAL;
	}
	if (disk->nr_extents == BLK_MAX_EXTENTS) {
		snprintf(err, err_size, "%s: a disk has at most %d extents", path,
			 BLK_MAX_EXTENTS);
		return -ENOSPC;
	}
	fd = open(path, (read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC);
	if (fd < 0) {
		ret = -errno;
		snprintf(err, err_size, "%s: %s", path, strerror(errno));
		return ret;
	}
	ret = fstat(fd, &st) < 0 ? -errno : file_size(fd, &st, &size);
	if (ret < 0) {
		snprintf(err, err_size, "%s: %s", path,
			 ret == -EINVAL ? "not a regular file or block device" :
			 strerror(-ret));
		goto err_close;
	}
	if (offset > size) {
		snprintf(err, err_size,
			 "%s: offset %llu is past the end of the file (%llu bytes)",
			 path, (unsigned long long)offset,
			 (unsigned long long)size);
		ret = -EINVAL;
		goto err_close;
	}
	if (length == 0)
		length = size - offset;
	if (length == 0) {
		snprintf(err, err_size, "%s: empty extent (file of %llu bytes)",
			 path, (unsigned long long)size);
		ret = -EINVAL;
		goto err_close;
	}
	if (__builtin_add_overflow(offset, length, &end) || end > size) {
		snprintf(err, err_size,
			 "%s: %llu bytes at offset %llu pass the end of the file (%llu bytes)",
			 path, (unsigned long long)length,
			 (unsigned long long)offset, (unsigned long long)size);
		ret = -EINVAL;
		goto err_close;
	}
	/* Keep room for the tail's sector of padding. */
	if (__builtin_add_overflow(disk->data_end, length, &total) ||
	    total > UINT64_MAX - BLK_SECTOR_SIZE) {
		snprintf(err, err_size, "%s: disk too large", path);
		ret = -EFBIG;
		goto err_close;
	}
	ret = reserve_extent(disk);
	if (ret < 0) {
		snprintf(err, err_size, "%s: out of memory", path);
		goto err_close;
	}
	other = shared_fd(disk, &st, read_only);
	if (other >= 0) {
		close(fd);
		fd = other;
	}
	disk->extents[disk->nr_extents++] = (struct blk_extent){
		.fd = fd, .read_only = read_only, .owns_fd = other < 0,
		.dev = st.st_dev, .ino = st.st_ino,
		.file_offset = offset, .len = length, .start = disk->data_end,
	};
	disk->data_end = total;
	return 0;

err_close:
	close(fd);
	return ret;
}

int blk_disk_finish(struct blk_disk *disk, char *err, size_t err_size)
{
	uint64_t partial = disk->data_end % BLK_SECTOR_SIZE;

	if (disk->nr_extents == 0) {
		snprintf(err, err_size, "a disk needs at least one extent");
		return -EINVAL;
	}
	if (partial && !disk->read_only) {
		snprintf(err, err_size,
			 "a writable disk must be whole %d-byte sectors: its extents total %llu bytes",
			 BLK_SECTOR_SIZE, (unsigned long long)disk->data_end);
		return -EINVAL;
	}
	/* add_extent kept data_end a sector below UINT64_MAX. */
	disk->capacity = disk->data_end + (partial ? BLK_SECTOR_SIZE - partial : 0);
	disk->finished = true;
	return 0;
}

int blk_disk_open(struct blk_disk *disk, const char *path, bool read_only,
		  char *err, size_t err_size)
{
	int ret;

	blk_disk_init(disk, read_only);
	ret = blk_disk_add_extent(disk, path, 0, 0, read_only, err, err_size);
	if (ret == 0)
		ret = blk_disk_finish(disk, err, err_size);
	if (ret < 0)
		blk_disk_close(disk);
	return ret;
}

void blk_disk_close(struct blk_disk *disk)
{
	for (unsigned int i = 0; i < disk->nr_extents; i++)
		if (disk->extents[i].owns_fd)
			close(disk->extents[i].fd);
	free(disk->extents);
	blk_disk_init(disk, disk->read_only);
}

unsigned int blk_disk_find_extent(const struct blk_disk *disk, uint64_t offset)
{
	unsigned int lo = 0, hi = disk->nr_extents - 1;

	/* Invariant: extents[lo].start <= offset < extents[hi + 1].start. */
	while (lo < hi) {
		unsigned int mid = lo + (hi - lo + 1) / 2;

		if (disk->extents[mid].start <= offset)
			lo = mid;
		else
			hi = mid - 1;
	}
	return lo;
}

/* Walks an iovec array, handing out byte ranges as new iovecs. */
struct iov_cursor {
	const struct iovec *iov;
	unsigned int iovcnt;
	unsigned int index;
	size_t skip;                /* bytes of iov[index] already handed out */
};

/*
 * Hands out the next @len bytes of @cur: appended to @out as iovecs
 * (returning how many), or zero-filled when @out is NULL.
 */
static unsigned int iov_take(struct iov_cursor *cur, uint64_t len,
			     struct iovec *out)
{
	unsigned int n = 0;

	while (len && cur->index < cur->iovcnt) {
		const struct iovec *v = &cur->iov[cur->index];
		size_t avail = v->iov_len - cur->skip;
		size_t take = avail < len ? avail : len;
		uint8_t *base = (uint8_t *)v->iov_base + cur->skip;

		if (take && out) {
			out[n].iov_base = base;
			out[n].iov_len = take;
			n++;
		} else if (take) {
			memset(base, 0, take);
		}
		len -= take;
		cur->skip += take;
		if (cur->skip == v->iov_len) {
			cur->index++;
			cur->skip = 0;
		}
	}
	return n;
}

/* One part per writable file; none on a read-only disk. */
static int split_flush(const struct blk_disk *disk, struct blk_request *req)
{
	unsigned int n = 0;

	if (disk->flush_error)
		return disk->flush_error;
	if (disk->read_only)
		return 0;
	for (unsigned int i = 0; i < disk->nr_extents; i++)
		n += disk->extents[i].owns_fd && !disk->extents[i].read_only;
	if (n == 0)
		return 0;
	req->parts = n == 1 ? &req->single : calloc(n, sizeof(*req->parts));
	if (!req->parts)
		return -ENOMEM;
	for (unsigned int i = 0, j = 0; i < disk->nr_extents; i++)
		if (disk->extents[i].owns_fd && !disk->extents[i].read_only)
			req->parts[j++] = (struct blk_part){
				.req = req, .fd = disk->extents[i].fd,
			};
	req->nr_parts = n;
	return 0;
}

static bool op_writes(enum blk_op op)
{
	return op == BLK_OP_WRITE || op == BLK_OP_DISCARD ||
	       op == BLK_OP_WRITE_ZEROES;
}

static bool op_has_data(enum blk_op op)
{
	return op == BLK_OP_READ || op == BLK_OP_WRITE;
}

/* The request's length in bytes, or -EINVAL if it overflows. */
static int request_len(const struct blk_request *req, uint64_t *total)
{
	*total = 0;
	if (!op_has_data(req->op)) {
		*total = req->len;
		return 0;
	}
	if (req->iovcnt > IOV_MAX)
		return -EINVAL;
	for (unsigned int i = 0; i < req->iovcnt; i++)
		if (__builtin_add_overflow(*total, req->iov[i].iov_len, total))
			return -EINVAL;
	return 0;
}

static int initial_fallocate_mode(enum blk_op op)
{
	if (op == BLK_OP_DISCARD)
		return FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE;
	if (op == BLK_OP_WRITE_ZEROES)
		return FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE;
	return 0;
}

int blk_request_split(const struct blk_disk *disk, struct blk_request *req)
{
	uint64_t total, end, data_end, pos;
	unsigned int first = 0, n = 0;
	struct iov_cursor cur = { .iov = req->iov, .iovcnt = req->iovcnt };
	struct iovec *iov_out = NULL;
	int ret;

	req->parts = NULL;
	req->nr_parts = 0;
	req->next_part = 0;
	req->parts_pending = 0;
	req->error = 0;
	req->bytes = 0;
	if (op_writes(req->op) && disk->read_only)
		return -EROFS;
	if (req->op == BLK_OP_FLUSH)
		return split_flush(disk, req);
	ret = request_len(req, &total);
	if (ret < 0)
		return ret;
	if (req->offset > disk->capacity || total > disk->capacity - req->offset)
		return -EINVAL;
	if (total == 0)
		return 0;
	end = req->offset + total;
	/* [offset, data_end) is file data, [data_end, end) the tail's zeros. */
	data_end = end < disk->data_end ? end : disk->data_end;
	if (data_end < req->offset)
		data_end = req->offset;
	if (op_writes(req->op) && end > disk->data_end)
		return -EROFS;

	/* The extents touched, all checked before anything is written. */
	if (req->offset < data_end) {
		first = blk_disk_find_extent(disk, req->offset);
		for (unsigned int i = first; i < disk->nr_extents &&
		     disk->extents[i].start < data_end; i++) {
			if (op_writes(req->op) && disk->extents[i].read_only)
				return -EROFS;
			n++;
		}
	}

	if (n == 1 && end == data_end) {
		req->parts = &req->single;
	} else if (n) {
		/*
		 * Each boundary, the tail's included, splits at most one
		 * iovec in two: at most iovcnt + n iovecs. n <= 4096 and
		 * iovcnt <= IOV_MAX, so the size cannot overflow.
		 */
		size_t nr_iov = op_has_data(req->op) ? req->iovcnt + n : 0;

		req->parts = malloc(n * sizeof(*req->parts) +
				    nr_iov * sizeof(*iov_out));
		if (!req->parts)
			return -ENOMEM;
		if (nr_iov)
			iov_out = (struct iovec *)(req->parts + n);
	}

	pos = req->offset;
	for (unsigned int i = 0; i < n; i++) {
		const struct blk_extent *ext = &disk->extents[first + i];
		uint64_t ext_end = ext->start + ext->len;
		uint64_t len = (data_end < ext_end ? data_end : ext_end) - pos;
		struct blk_part *part = &req->parts[i];

		*part = (struct blk_part){
			.req = req, .fd = ext->fd,
			.file_offset = ext->file_offset + (pos - ext->start),
			.remaining = len,
			.fallocate_mode = initial_fallocate_mode(req->op),
		};
		if (iov_out) {
			part->iov = iov_out;
			part->iovcnt = iov_take(&cur, len, iov_out);
			iov_out += part->iovcnt;
		} else if (op_has_data(req->op)) {
			part->iov = req->iov;
			part->iovcnt = req->iovcnt;
		}
		pos += len;
	}
	req->nr_parts = n;

	/* Only reads get here with bytes in the tail: the cursor is there. */
	if (end > data_end) {
		iov_take(&cur, end - data_end, NULL);
		req->bytes = end - data_end;
	}
	return 0;
}

void blk_part_advance(struct blk_part *part, uint64_t bytes)
{
	part->file_offset += bytes;
	part->remaining -= bytes;
	while (part->iovcnt && bytes >= part->iov->iov_len) {
		bytes -= part->iov->iov_len;
		part->iov++;
		part->iovcnt--;
	}
	if (part->iovcnt) {
		part->iov->iov_base = (uint8_t *)part->iov->iov_base + bytes;
		part->iov->iov_len -= bytes;
	}
}

int blk_part_fallocate_fallback(const struct blk_part *part, int error)
{
	if (part->req->op == BLK_OP_WRITE_ZEROES && error == -EOPNOTSUPP &&
	    (part->fallocate_mode & FALLOC_FL_ZERO_RANGE))
		return FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE;
	return 0;
}

int blk_part_error(const struct blk_request *req, int error)
{
	return req->op == BLK_OP_DISCARD && error == -EOPNOTSUPP ? 0 : error;
}

void blk_request_release(struct blk_request *req)
{
	if (req->parts != &req->single)
		free(req->parts);
	req->parts = NULL;
}
