/* Disks made of extents, and cutting requests at extent boundaries. */
#include "devices/blk_backend.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
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

static int file_size(int fd, uint64_t *size)
{
	struct stat st;

	if (fstat(fd, &st) < 0)
		return -errno;
	if (S_ISREG(st.st_mode)) {
		*size = st.st_size;
		return 0;
	}
	if (S_ISBLK(st.st_mode))
		return ioctl(fd, BLKGETSIZE64, size) < 0 ? -errno : 0;
	return -EINVAL;
}

int blk_disk_add_file(struct blk_disk *disk, const char *path, char *err,
		      size_t err_size)
{
	uint64_t size, capacity;
	int fd, ret;

	if (disk->nr_extents == BLK_MAX_EXTENTS) {
		snprintf(err, err_size, "%s: a disk has at most %d files", path,
			 BLK_MAX_EXTENTS);
		return -ENOSPC;
	}
	fd = open(path, (disk->read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC);
	if (fd < 0) {
		ret = -errno;
		snprintf(err, err_size, "%s: %s", path, strerror(errno));
		return ret;
	}
	ret = file_size(fd, &size);
	if (ret < 0) {
		snprintf(err, err_size, "%s: %s", path,
			 ret == -EINVAL ? "not a regular file or block device" :
			 strerror(-ret));
		goto err_close;
	}
	/* A partial last sector cannot be addressed by the guest. */
	size -= size % BLK_SECTOR_SIZE;
	if (size == 0) {
		snprintf(err, err_size, "%s: smaller than one %d-byte sector",
			 path, BLK_SECTOR_SIZE);
		ret = -EINVAL;
		goto err_close;
	}
	if (__builtin_add_overflow(disk->capacity, size, &capacity)) {
		snprintf(err, err_size, "%s: disk too large", path);
		ret = -EFBIG;
		goto err_close;
	}
	disk->extents[disk->nr_extents++] = (struct blk_extent){
		.fd = fd, .file_offset = 0, .len = size,
	};
	disk->capacity = capacity;
	return 0;

err_close:
	close(fd);
	return ret;
}

int blk_disk_open(struct blk_disk *disk, const char *path, bool read_only,
		  char *err, size_t err_size)
{
	blk_disk_init(disk, read_only);
	return blk_disk_add_file(disk, path, err, err_size);
}

void blk_disk_close(struct blk_disk *disk)
{
	for (unsigned int i = 0; i < disk->nr_extents; i++)
		close(disk->extents[i].fd);
	disk->nr_extents = 0;
	disk->capacity = 0;
}

/* Walks an iovec array, handing out byte ranges as new iovecs. */
struct iov_cursor {
	const struct iovec *iov;
	unsigned int iovcnt;
	unsigned int index;
	size_t skip;                /* bytes of iov[index] already handed out */
};

/* Appends the next @len bytes of @cur to @out; returns how many iovecs. */
static unsigned int iov_take(struct iov_cursor *cur, uint64_t len,
			     struct iovec *out)
{
	unsigned int n = 0;

	while (len && cur->index < cur->iovcnt) {
		const struct iovec *v = &cur->iov[cur->index];
		size_t avail = v->iov_len - cur->skip;
		size_t take = avail < len ? avail : len;

		if (take) {
			out[n].iov_base = (uint8_t *)v->iov_base + cur->skip;
			out[n].iov_len = take;
			n++;
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

static int split_flush(const struct blk_disk *disk, struct blk_request *req)
{
	unsigned int n = disk->nr_extents;

	req->parts = n == 1 ? &req->single : calloc(n, sizeof(*req->parts));
	if (!req->parts)
		return -ENOMEM;
	for (unsigned int i = 0; i < n; i++)
		req->parts[i] = (struct blk_part){
			.req = req, .fd = disk->extents[i].fd,
		};
	req->nr_parts = n;
	return 0;
}

int blk_request_split(const struct blk_disk *disk, struct blk_request *req)
{
	uint64_t total = 0, pos, end, ext_start = 0;
	unsigned int first = 0, n = 0;
	struct iov_cursor cur = { .iov = req->iov, .iovcnt = req->iovcnt };
	struct iovec *iov_out;

	req->parts = NULL;
	req->nr_parts = 0;
	req->parts_pending = 0;
	req->error = 0;
	req->bytes = 0;
	if (req->op == BLK_OP_WRITE && disk->read_only)
		return -EROFS;
	if (req->op == BLK_OP_FLUSH)
		return split_flush(disk, req);
	if (req->iovcnt > IOV_MAX)
		return -EINVAL;
	for (unsigned int i = 0; i < req->iovcnt; i++)
		if (__builtin_add_overflow(total, req->iov[i].iov_len, &total))
			return -EINVAL;
	if (req->offset > disk->capacity || total > disk->capacity - req->offset)
		return -EINVAL;
	if (total == 0)
		return 0;
	end = req->offset + total;

	/* Find the first extent touched and count the ones touched. */
	for (unsigned int i = 0; i < disk->nr_extents; i++) {
		uint64_t ext_end = ext_start + disk->extents[i].len;

		if (req->offset < ext_end && end > ext_start) {
			if (n == 0)
				first = i;
			n++;
		}
		ext_start = ext_end;
	}

	if (n == 1) {
		req->parts = &req->single;
		iov_out = NULL;
	} else {
		/* Each boundary splits at most one iovec in two. */
		req->parts = malloc(n * sizeof(*req->parts) +
				    (req->iovcnt + n - 1) * sizeof(*iov_out));
		if (!req->parts)
			return -ENOMEM;
		iov_out = (struct iovec *)(req->parts + n);
	}

	ext_start = 0;
	for (unsigned int i = 0; i < first; i++)
		ext_start += disk->extents[i].len;
	pos = req->offset;
	for (unsigned int i = 0; i < n; i++) {
		const struct blk_extent *ext = &disk->extents[first + i];
		uint64_t ext_end = ext_start + ext->len;
		uint64_t len = (end < ext_end ? end : ext_end) - pos;
		struct blk_part *part = &req->parts[i];

		*part = (struct blk_part){
			.req = req, .fd = ext->fd,
			.file_offset = ext->file_offset + (pos - ext_start),
			.remaining = len,
		};
		if (iov_out) {
			part->iov = iov_out;
			part->iovcnt = iov_take(&cur, len, iov_out);
			iov_out += part->iovcnt;
		} else {
			part->iov = req->iov;
			part->iovcnt = req->iovcnt;
		}
		pos += len;
		ext_start = ext_end;
	}
	req->nr_parts = n;
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

void blk_request_release(struct blk_request *req)
{
	if (req->parts != &req->single)
		free(req->parts);
	req->parts = NULL;
}
