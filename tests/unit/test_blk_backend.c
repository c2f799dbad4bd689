/*
 * Unit tests for devices/blk_disk.c, blk_sync.c and blk_uring.c: the same
 * I/O cases run on both engines against temp files.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "devices/blk_backend.h"
#include "devices/io_loop.h"

#define SECTOR BLK_SECTOR_SIZE

enum engine { ENGINE_SYNC, ENGINE_URING };

static const enum engine engine_sync = ENGINE_SYNC;
static const enum engine engine_uring = ENGINE_URING;

struct fixture {
	enum engine engine;
	struct io_loop loop;
	struct blk_disk disk;
	struct blk_backend *be;
	char paths[4][32];
	unsigned int nr_paths;
};

struct test_req {
	struct blk_request io;
	int calls;
	int64_t res;
};

static void test_req_done(struct blk_request *io, int64_t res)
{
	struct test_req *r = (struct test_req *)io;

	r->calls++;
	r->res = res;
}

/* Byte @i of test file @file: distinct per file and position. */
static uint8_t pattern(unsigned int file, uint64_t i)
{
	return (uint8_t)(i * 7 + i / 256 + file * 101 + 1);
}

/* Creates a temp file of @size pattern bytes; returns its index. */
static unsigned int make_file(struct fixture *f, uint64_t size)
{
	unsigned int idx = f->nr_paths++;
	uint8_t *buf = malloc(size + 1);
	int fd;

	assert_true(idx < sizeof(f->paths) / sizeof(f->paths[0]));
	assert_non_null(buf);
	for (uint64_t i = 0; i < size; i++)
		buf[i] = pattern(idx, i);
	snprintf(f->paths[idx], sizeof(f->paths[idx]), "/tmp/blk-test-XXXXXX");
	fd = mkstemp(f->paths[idx]);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, buf, size), (ssize_t)size);
	close(fd);
	free(buf);
	return idx;
}

static void read_file(struct fixture *f, unsigned int idx, uint64_t off,
		      void *buf, size_t len)
{
	int fd = open(f->paths[idx], O_RDONLY);

	assert_true(fd >= 0);
	assert_int_equal(pread(fd, buf, len, off), (ssize_t)len);
	close(fd);
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	char err[256];

	if (!f)
		return -1;
	f->engine = **(const enum engine **)state;
	if (f->engine == ENGINE_URING &&
	    io_loop_init(&f->loop, 8, err, sizeof(err))) {
		fprintf(stderr, "%s\n", err);
		free(f);
		return -1;
	}
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	if (f->be)
		blk_backend_destroy(f->be);
	blk_disk_close(&f->disk);
	if (f->engine == ENGINE_URING)
		io_loop_destroy(&f->loop);
	for (unsigned int i = 0; i < f->nr_paths; i++)
		unlink(f->paths[i]);
	free(f);
	return 0;
}

/* Appends bytes [off, off + len) of file @idx to the disk. */
static void add(struct fixture *f, unsigned int idx, uint64_t off,
		uint64_t len, bool read_only)
{
	char err[256];

	assert_int_equal(blk_disk_add_extent(&f->disk, f->paths[idx], off, len,
					     read_only, err, sizeof(err)), 0);
}

/* Finishes the disk and creates the engine. */
static void start(struct fixture *f)
{
	char err[256];

	assert_int_equal(blk_disk_finish(&f->disk, err, sizeof(err)), 0);
	if (f->engine == ENGINE_SYNC)
		assert_int_equal(blk_sync_create(&f->be, &f->disk), 0);
	else
		assert_int_equal(blk_uring_create(&f->be, &f->disk, &f->loop), 0);
}

/* Opens all of each of the fixture's files as one disk, and the engine. */
static void open_disk(struct fixture *f, bool read_only)
{
	blk_disk_init(&f->disk, read_only);
	for (unsigned int i = 0; i < f->nr_paths; i++)
		add(f, i, 0, 0, false);
	start(f);
}

/* Waits (bounded, about 5 s) until @r completed once. */
static void wait_done(struct fixture *f, struct test_req *r)
{
	for (int i = 0; i < 5000 && !r->calls; i++) {
		assert_true(f->engine == ENGINE_URING);
		assert_int_equal(io_loop_run_once(&f->loop, false), 0);
		if (!r->calls)
			usleep(1000);
	}
	assert_int_equal(r->calls, 1);
}

static int64_t run(struct fixture *f, enum blk_op op, uint64_t offset,
		   struct iovec *iov, unsigned int iovcnt)
{
	struct test_req r = {
		.io = { .op = op, .offset = offset, .iov = iov, .iovcnt = iovcnt,
			.complete = test_req_done },
	};

	assert_int_equal(blk_backend_submit(f->be, &r.io), 0);
	wait_done(f, &r);
	return r.res;
}

/* Runs a DISCARD or WRITE_ZEROES of @len bytes at @offset. */
static int64_t run_range(struct fixture *f, enum blk_op op, uint64_t offset,
			 uint64_t len)
{
	struct test_req r = {
		.io = { .op = op, .offset = offset, .len = len,
			.complete = test_req_done },
	};

	assert_int_equal(blk_backend_submit(f->be, &r.io), 0);
	wait_done(f, &r);
	return r.res;
}

static void test_read_write_one_file(void **state)
{
	struct fixture *f = *state;
	uint8_t a[700], b[3 * SECTOR - 700], expect[3 * SECTOR], back[2 * SECTOR];
	struct iovec iov[2] = { { a, sizeof(a) }, { b, sizeof(b) } };
	uint8_t w[2 * SECTOR];
	struct iovec wiov = { w, sizeof(w) };

	make_file(f, 8 * SECTOR);
	open_disk(f, false);
	assert_int_equal(f->disk.capacity, 8 * SECTOR);

	assert_int_equal(run(f, BLK_OP_READ, 2 * SECTOR, iov, 2), 3 * SECTOR);
	read_file(f, 0, 2 * SECTOR, expect, sizeof(expect));
	assert_memory_equal(a, expect, sizeof(a));
	assert_memory_equal(b, expect + sizeof(a), sizeof(b));

	memset(w, 0xa5, sizeof(w));
	assert_int_equal(run(f, BLK_OP_WRITE, 6 * SECTOR, &wiov, 1), sizeof(w));
	read_file(f, 0, 6 * SECTOR, back, sizeof(back));
	assert_memory_equal(back, w, sizeof(w));
}

/* Files of 3 and 4 sectors, joined. */
static void open_two_files(struct fixture *f, bool read_only)
{
	make_file(f, 3 * SECTOR);
	make_file(f, 4 * SECTOR);
	open_disk(f, read_only);
	assert_int_equal(f->disk.nr_extents, 2);
	assert_int_equal(f->disk.capacity, 7 * SECTOR);
}

static void test_request_crossing_extents(void **state)
{
	struct fixture *f = *state;
	/* The boundary (disk byte 1536) falls inside the second iovec. */
	uint8_t a[300], b[1024 - 300], got[1024], expect[1024];
	struct iovec iov[2] = { { a, sizeof(a) }, { b, sizeof(b) } };

	open_two_files(f, false);
	assert_int_equal(run(f, BLK_OP_READ, 1024, iov, 2), 1024);
	memcpy(got, a, sizeof(a));
	memcpy(got + sizeof(a), b, sizeof(b));
	read_file(f, 0, 1024, expect, 512);
	read_file(f, 1, 0, expect + 512, 512);
	assert_memory_equal(got, expect, sizeof(got));

	/* Write across it and find the bytes in both files. */
	memset(a, 0x11, sizeof(a));
	memset(b, 0x22, sizeof(b));
	assert_int_equal(run(f, BLK_OP_WRITE, 1024, iov, 2), 1024);
	read_file(f, 0, 1024, got, 512);
	read_file(f, 1, 0, got + 512, 512);
	assert_memory_equal(got, a, sizeof(a));
	for (size_t i = sizeof(a); i < sizeof(got); i++)
		assert_int_equal(got[i], 0x22);
	/* Neighbours untouched. */
	read_file(f, 1, 512, got, 1);
	assert_int_equal(got[0], pattern(1, 512));
}

static void test_flush_every_extent(void **state)
{
	struct fixture *f = *state;

	open_two_files(f, false);
	assert_int_equal(run(f, BLK_OP_FLUSH, 0, NULL, 0), 0);
}

static void test_out_of_range_refused(void **state)
{
	struct fixture *f = *state;
	uint8_t buf[2 * SECTOR];
	struct iovec iov = { buf, sizeof(buf) };
	struct iovec huge[2] = { { buf, SIZE_MAX }, { buf, 2 } };

	open_two_files(f, false);
	assert_int_equal(run(f, BLK_OP_READ, 6 * SECTOR, &iov, 1), -EINVAL);
	assert_int_equal(run(f, BLK_OP_READ, UINT64_MAX - 100, &iov, 1), -EINVAL);
	/* iovec lengths whose sum wraps. */
	assert_int_equal(run(f, BLK_OP_READ, 0, huge, 2), -EINVAL);
	/* Exactly up to the end is fine. */
	assert_int_equal(run(f, BLK_OP_READ, 5 * SECTOR, &iov, 1), sizeof(buf));
}

static void test_read_only_refuses_writes(void **state)
{
	struct fixture *f = *state;
	uint8_t buf[SECTOR], before[SECTOR], after[SECTOR];
	struct iovec iov = { buf, sizeof(buf) };

	open_two_files(f, true);
	assert_int_equal(fcntl(f->disk.extents[0].fd, F_GETFL) & O_ACCMODE,
			 O_RDONLY);
	read_file(f, 1, 0, before, sizeof(before));
	memset(buf, 0x5a, sizeof(buf));
	assert_int_equal(run(f, BLK_OP_WRITE, 3 * SECTOR, &iov, 1), -EROFS);
	read_file(f, 1, 0, after, sizeof(after));
	assert_memory_equal(before, after, sizeof(before));
	assert_int_equal(run(f, BLK_OP_READ, 3 * SECTOR, &iov, 1), SECTOR);
	assert_memory_equal(buf, before, sizeof(buf));
}

/* A file that shrank under the disk: reads past its end fail, not hang. */
static void test_short_file_fails_with_eio(void **state)
{
	struct fixture *f = *state;
	uint8_t buf[2 * SECTOR];
	struct iovec iov = { buf, sizeof(buf) };

	make_file(f, 4 * SECTOR);
	open_disk(f, false);
	assert_int_equal(ftruncate(f->disk.extents[0].fd, 3 * SECTOR), 0);
	assert_int_equal(run(f, BLK_OP_READ, 2 * SECTOR, &iov, 1), -EIO);
	/* The engine may have advanced the iovec past the short part. */
	iov = (struct iovec){ buf, sizeof(buf) };
	assert_int_equal(run(f, BLK_OP_READ, 1 * SECTOR, &iov, 1), sizeof(buf));
}

static void test_zero_length_read_succeeds(void **state)
{
	struct fixture *f = *state;

	make_file(f, SECTOR);
	open_disk(f, false);
	assert_int_equal(run(f, BLK_OP_READ, SECTOR, NULL, 0), 0);
}

static void test_open_errors(void **state)
{
	struct fixture *f = *state;
	char err[256] = "";
	unsigned int small, file;

	/* A writable disk must be whole sectors; a read-only one is padded. */
	small = make_file(f, SECTOR - 1);
	assert_int_equal(blk_disk_open(&f->disk, f->paths[small], false, err,
				       sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "whole 512-byte sectors"));
	assert_int_equal(f->disk.nr_extents, 0);
	assert_int_equal(blk_disk_open(&f->disk, f->paths[small], true, err,
				       sizeof(err)), 0);
	assert_int_equal(f->disk.capacity, SECTOR);
	assert_int_equal(f->disk.data_end, SECTOR - 1);
	blk_disk_close(&f->disk);

	small = make_file(f, 0);
	assert_int_equal(blk_disk_open(&f->disk, f->paths[small], true, err,
				       sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, f->paths[small]));
	assert_int_equal(blk_disk_open(&f->disk, "/nonexistent/disk", false,
				       err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, "/nonexistent/disk"));
	assert_int_equal(blk_disk_open(&f->disk, "/tmp", false, err,
				       sizeof(err)), -EISDIR);

	/* Ranges: inside the file, non-empty, not wrapping. */
	file = make_file(f, 2 * SECTOR + 1);
	blk_disk_init(&f->disk, false);
	assert_int_equal(blk_disk_add_extent(&f->disk, f->paths[file],
					     2 * SECTOR + 2, 0, false, err,
					     sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "past the end"));
	assert_int_equal(blk_disk_add_extent(&f->disk, f->paths[file],
					     2 * SECTOR + 1, 0, false, err,
					     sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "empty"));
	assert_int_equal(blk_disk_add_extent(&f->disk, f->paths[file], 1,
					     2 * SECTOR + 1, false, err,
					     sizeof(err)), -EINVAL);
	assert_int_equal(blk_disk_add_extent(&f->disk, f->paths[file], 1,
					     UINT64_MAX, false, err,
					     sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, f->paths[file]));
	assert_int_equal(f->disk.nr_extents, 0);
	assert_int_equal(blk_disk_finish(&f->disk, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "at least one extent"));

	/* Up to the limit, sharing one fd per file and access mode. */
	for (unsigned int i = 0; i < BLK_MAX_EXTENTS; i++)
		assert_int_equal(blk_disk_add_extent(&f->disk, f->paths[file],
						     i % 2, 1, i == 3, err,
						     sizeof(err)), 0);
	assert_int_equal(blk_disk_add_extent(&f->disk, f->paths[file], 0, 1,
					     false, err, sizeof(err)), -ENOSPC);
	assert_int_equal(f->disk.extents[2].fd, f->disk.extents[0].fd);
	assert_int_not_equal(f->disk.extents[3].fd, f->disk.extents[0].fd);
	assert_int_equal(fcntl(f->disk.extents[3].fd, F_GETFL) & O_ACCMODE,
			 O_RDONLY);
	assert_int_equal(fcntl(f->disk.extents[0].fd, F_GETFL) & O_ACCMODE,
			 O_RDWR);
	assert_true(fcntl(f->disk.extents[0].fd, F_GETFD) & FD_CLOEXEC);
	assert_int_equal(blk_disk_finish(&f->disk, err, sizeof(err)), 0);
	assert_int_equal(f->disk.capacity, BLK_MAX_EXTENTS);
	assert_int_equal(blk_disk_add_extent(&f->disk, f->paths[file], 0, 1,
					     false, err, sizeof(err)), -EINVAL);
}

/* Extents of 1000, 3 and 5141 bytes from three files: 12 sectors. */
#define ODD_A_OFF 100
#define ODD_B_OFF 2
#define ODD_C_OFF 7
static const uint64_t odd_len[3] = { 1000, 3, 5141 };

static void open_odd_extents(struct fixture *f, bool read_only)
{
	make_file(f, 2000);
	make_file(f, 10);
	make_file(f, 6000);
	blk_disk_init(&f->disk, read_only);
	add(f, 0, ODD_A_OFF, odd_len[0], false);
	add(f, 1, ODD_B_OFF, odd_len[1], false);
	add(f, 2, ODD_C_OFF, odd_len[2], false);
	start(f);
	assert_int_equal(f->disk.capacity, 12 * SECTOR);
}

/* Disk byte @pos of open_odd_extents' disk as the files hold it now. */
static uint8_t odd_byte(struct fixture *f, uint64_t pos)
{
	static const uint64_t file_off[3] = { ODD_A_OFF, ODD_B_OFF, ODD_C_OFF };
	uint8_t b;

	for (unsigned int i = 0; i < 3; i++) {
		if (pos < odd_len[i]) {
			read_file(f, i, file_off[i] + pos, &b, 1);
			return b;
		}
		pos -= odd_len[i];
	}
	fail();
	return 0;
}

static void test_find_extent(void **state)
{
	struct fixture *f = *state;

	open_odd_extents(f, false);
	for (uint64_t pos = 0; pos < f->disk.data_end; pos++) {
		unsigned int want = pos < 1000 ? 0 : pos < 1003 ? 1 : 2;

		assert_int_equal(blk_disk_find_extent(&f->disk, pos), want);
	}
	assert_int_equal(f->disk.extents[1].start, 1000);
	assert_int_equal(f->disk.extents[2].start, 1003);
}

/* Reads at, before and after the unaligned boundaries, in odd iovecs. */
static void test_split_at_unaligned_boundaries(void **state)
{
	struct fixture *f = *state;
	static const uint64_t offsets[] = { 0, 1, 998, 999, 1000, 1001, 1002,
					    1003, 1004, 3000, 6142 };
	static const uint64_t lengths[] = { 1, 2, 3, 4, 5, 6, 1000, 5144 };
	static uint8_t buf[12 * SECTOR];
	struct iovec all = { buf, sizeof(buf) };

	open_odd_extents(f, false);
	for (size_t o = 0; o < sizeof(offsets) / sizeof(offsets[0]); o++) {
		for (size_t l = 0; l < sizeof(lengths) / sizeof(lengths[0]); l++) {
			uint64_t off = offsets[o], len = lengths[l];
			size_t cut = len / 3;
			struct iovec iov[3] = {
				{ buf, cut }, { buf + cut, 1 },
				{ buf + cut + 1, len - cut - 1 },
			};

			if (off + len > f->disk.capacity)
				continue;
			memset(buf, 0xee, sizeof(buf));
			assert_int_equal(run(f, BLK_OP_READ, off, iov, 3), len);
			for (uint64_t i = 0; i < len; i++)
				assert_int_equal(buf[i], odd_byte(f, off + i));
		}
	}

	/* The whole disk, across all three, in one request. */
	assert_int_equal(run(f, BLK_OP_READ, 0, &all, 1), sizeof(buf));
	for (uint64_t i = 0; i < sizeof(buf); i++)
		assert_int_equal(buf[i], odd_byte(f, i));
}

static void test_write_across_three_extents(void **state)
{
	struct fixture *f = *state;
	uint8_t data[20], b;
	struct iovec iov[2] = { { data, 7 }, { data + 7, 13 } };

	open_odd_extents(f, false);
	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (uint8_t)(0xa0 + i);
	/* Disk bytes 990..1009: 10 in A, all 3 of B, 7 in C. */
	assert_int_equal(run(f, BLK_OP_WRITE, 990, iov, 2), sizeof(data));
	for (size_t i = 0; i < sizeof(data); i++)
		assert_int_equal(odd_byte(f, 990 + i), 0xa0 + i);
	/* Bytes of the files outside the extents are untouched. */
	read_file(f, 0, ODD_A_OFF + 1000, &b, 1);
	assert_int_equal(b, pattern(0, ODD_A_OFF + 1000));
	read_file(f, 1, ODD_B_OFF - 1, &b, 1);
	assert_int_equal(b, pattern(1, ODD_B_OFF - 1));
	read_file(f, 1, ODD_B_OFF + 3, &b, 1);
	assert_int_equal(b, pattern(1, ODD_B_OFF + 3));
	read_file(f, 2, ODD_C_OFF - 1, &b, 1);
	assert_int_equal(b, pattern(2, ODD_C_OFF - 1));
	assert_int_equal(odd_byte(f, 989), pattern(0, ODD_A_OFF + 989));
	assert_int_equal(odd_byte(f, 1010), pattern(2, ODD_C_OFF + 7));
}

/* 1000 + 3 + 5000 bytes, read-only: padded to 6144 with zeros. */
static void test_tail_padding(void **state)
{
	struct fixture *f = *state;
	uint8_t buf[200], before[200];
	struct iovec iov = { buf, sizeof(buf) };
	struct iovec tail = { buf, 6144 - 6010 };
	char err[256];

	make_file(f, 2000);
	make_file(f, 10);
	make_file(f, 6000);
	blk_disk_init(&f->disk, true);
	add(f, 0, ODD_A_OFF, 1000, false);
	add(f, 1, ODD_B_OFF, 3, false);
	add(f, 2, 0, 5000, false);
	start(f);
	assert_int_equal(f->disk.data_end, 6003);
	assert_int_equal(f->disk.capacity, 6144);

	/* Straddling the end of the data: 59 data bytes, then zeros. */
	memset(buf, 0xff, sizeof(buf));
	assert_int_equal(run(f, BLK_OP_READ, 5944, &iov, 1), sizeof(buf));
	read_file(f, 2, 4941, before, 59);
	assert_memory_equal(buf, before, 59);
	for (size_t i = 59; i < 200; i++)
		assert_int_equal(buf[i], 0);
	/* Only tail. */
	memset(buf, 0xff, sizeof(buf));
	assert_int_equal(run(f, BLK_OP_READ, 6010, &tail, 1), tail.iov_len);
	for (size_t i = 0; i < tail.iov_len; i++)
		assert_int_equal(buf[i], 0);
	assert_int_equal(buf[tail.iov_len], 0xff);
	/* Past the padding. */
	tail.iov_len++;
	assert_int_equal(run(f, BLK_OP_READ, 6010, &tail, 1), -EINVAL);
	tail.iov_len--;
	/* Writes anywhere, the tail included, are refused. */
	assert_int_equal(run(f, BLK_OP_WRITE, 6010, &tail, 1), -EROFS);

	/* The same extents cannot make a writable disk. */
	blk_disk_close(&f->disk);
	blk_disk_init(&f->disk, false);
	add(f, 0, ODD_A_OFF, 1000, false);
	add(f, 1, ODD_B_OFF, 3, false);
	add(f, 2, 0, 5000, false);
	assert_int_equal(blk_disk_finish(&f->disk, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "6003"));
}

/* A writable disk whose second extent is read-only. */
static void test_read_only_extent_rejects_writes(void **state)
{
	struct fixture *f = *state;
	uint8_t buf[2 * SECTOR], before0[4 * SECTOR], before1[4 * SECTOR];
	uint8_t after[4 * SECTOR];
	struct iovec iov = { buf, sizeof(buf) };

	make_file(f, 4 * SECTOR);
	make_file(f, 4 * SECTOR);
	blk_disk_init(&f->disk, false);
	add(f, 0, 0, 0, false);
	add(f, 1, 0, 0, true);
	start(f);
	assert_int_equal(fcntl(f->disk.extents[1].fd, F_GETFL) & O_ACCMODE,
			 O_RDONLY);
	read_file(f, 0, 0, before0, sizeof(before0));
	read_file(f, 1, 0, before1, sizeof(before1));
	memset(buf, 0x5a, sizeof(buf));
	/* Half in the writable extent: nothing of it is written either. */
	assert_int_equal(run(f, BLK_OP_WRITE, 3 * SECTOR, &iov, 1), -EROFS);
	assert_int_equal(run_range(f, BLK_OP_WRITE_ZEROES, 3 * SECTOR,
				   2 * SECTOR), -EROFS);
	assert_int_equal(run_range(f, BLK_OP_DISCARD, 0, 8 * SECTOR), -EROFS);
	read_file(f, 0, 0, after, sizeof(after));
	assert_memory_equal(before0, after, sizeof(after));
	read_file(f, 1, 0, after, sizeof(after));
	assert_memory_equal(before1, after, sizeof(after));
	/* Reads there are fine, writes to the writable one too. */
	assert_int_equal(run(f, BLK_OP_READ, 3 * SECTOR, &iov, 1), sizeof(buf));
	assert_memory_equal(buf, before0 + 3 * SECTOR, SECTOR);
	assert_memory_equal(buf + SECTOR, before1, SECTOR);
	memset(buf, 0x5a, sizeof(buf));
	iov = (struct iovec){ buf, sizeof(buf) };
	assert_int_equal(run(f, BLK_OP_WRITE, 2 * SECTOR, &iov, 1), sizeof(buf));
	read_file(f, 0, 2 * SECTOR, after, sizeof(buf));
	assert_memory_equal(after, buf, sizeof(buf));
	/* FLUSH syncs the writable file only. */
	assert_int_equal(run(f, BLK_OP_FLUSH, 0, NULL, 0), 0);
}

/* Checks file @idx: zeros in [zero_start, zero_end), the pattern elsewhere. */
static void assert_zeroed(struct fixture *f, unsigned int idx, uint64_t size,
			  uint64_t zero_start, uint64_t zero_end)
{
	static uint8_t buf[16 * 4096];

	assert_true(size <= sizeof(buf));
	read_file(f, idx, 0, buf, size);
	for (uint64_t i = 0; i < size; i++)
		assert_int_equal(buf[i], i >= zero_start && i < zero_end ? 0 :
					 pattern(idx, i));
}

static void test_discard_and_write_zeroes(void **state)
{
	struct fixture *f = *state;
	const uint64_t size = 4 * 4096;
	static uint8_t buf[4 * 4096];
	int fd;

	make_file(f, size);
	make_file(f, size);
	blk_disk_init(&f->disk, false);
	add(f, 0, 0, 0, false);
	add(f, 1, 0, 0, false);
	start(f);

	/* Zeros across the boundary: the end of one file, the start of the other. */
	assert_int_equal(run_range(f, BLK_OP_WRITE_ZEROES, size - 3 * SECTOR,
				   5 * SECTOR), 0);
	assert_zeroed(f, 0, size, size - 3 * SECTOR, size);
	assert_zeroed(f, 1, size, 0, 2 * SECTOR);

	/* A whole-block discard in the second file leaves a hole. */
	assert_int_equal(run_range(f, BLK_OP_DISCARD, size + 4096, 2 * 4096), 0);
	read_file(f, 1, 0, buf, size);
	for (uint64_t i = 0; i < size; i++)
		assert_int_equal(buf[i], i < 2 * SECTOR ||
					 (i >= 4096 && i < 3 * 4096) ? 0 :
					 pattern(1, i));
	fd = open(f->paths[1], O_RDONLY);
	assert_true(fd >= 0);
	assert_int_equal(lseek(fd, 4096, SEEK_HOLE), 4096);
	assert_int_equal(lseek(fd, 4096, SEEK_DATA), 3 * 4096);
	/* Sizes kept, also by a discard at the very end. */
	assert_int_equal(run_range(f, BLK_OP_DISCARD, 2 * size - SECTOR, SECTOR), 0);
	assert_int_equal(lseek(fd, 0, SEEK_END), size);
	close(fd);

	/* Out of range, wrapping. */
	assert_int_equal(run_range(f, BLK_OP_WRITE_ZEROES, 2 * size - SECTOR,
				   2 * SECTOR), -EINVAL);
	assert_int_equal(run_range(f, BLK_OP_DISCARD, SECTOR, UINT64_MAX), -EINVAL);
}

static void test_discard_refused_read_only(void **state)
{
	struct fixture *f = *state;

	make_file(f, 4 * SECTOR);
	open_disk(f, true);
	assert_int_equal(run_range(f, BLK_OP_DISCARD, 0, SECTOR), -EROFS);
	assert_int_equal(run_range(f, BLK_OP_WRITE_ZEROES, 0, SECTOR), -EROFS);
	assert_zeroed(f, 0, 4 * SECTOR, 0, 0);
}

/* Replaces extent 0's fd with a pipe, on which fdatasync fails (EINVAL). */
static int swap_in_pipe(struct fixture *f, int pipe_fds[2])
{
	int saved = dup(f->disk.extents[0].fd);

	assert_true(saved >= 0);
	assert_int_equal(pipe(pipe_fds), 0);
	assert_true(dup2(pipe_fds[1], f->disk.extents[0].fd) >= 0);
	return saved;
}

static void test_flush_error_is_sticky(void **state)
{
	struct fixture *f = *state;
	uint8_t buf[SECTOR];
	struct iovec iov = { buf, sizeof(buf) };
	int pipe_fds[2], saved;

	make_file(f, 4 * SECTOR);
	open_disk(f, false);
	assert_int_equal(run(f, BLK_OP_FLUSH, 0, NULL, 0), 0);
	saved = swap_in_pipe(f, pipe_fds);
	assert_int_equal(run(f, BLK_OP_FLUSH, 0, NULL, 0), -EINVAL);
	/* The file is back, but what the failed sync lost is not. */
	assert_true(dup2(saved, f->disk.extents[0].fd) >= 0);
	assert_int_equal(run(f, BLK_OP_FLUSH, 0, NULL, 0), -EINVAL);
	assert_int_equal(run(f, BLK_OP_FLUSH, 0, NULL, 0), -EINVAL);
	/* Reads and writes go on. */
	assert_int_equal(run(f, BLK_OP_READ, 0, &iov, 1), SECTOR);
	close(saved);
	close(pipe_fds[0]);
	close(pipe_fds[1]);
}

/* A read-only disk's FLUSH completes without touching any file. */
static void test_flush_read_only_disk(void **state)
{
	struct fixture *f = *state;
	int pipe_fds[2], saved;

	make_file(f, 4 * SECTOR);
	open_disk(f, true);
	saved = swap_in_pipe(f, pipe_fds);
	assert_int_equal(run(f, BLK_OP_FLUSH, 0, NULL, 0), 0);
	close(saved);
	close(pipe_fds[0]);
	close(pipe_fds[1]);
}

/* 64 one-sector extents: more parts than the ring holds at once. */
static void test_request_over_many_extents(void **state)
{
	struct fixture *f = *state;
	static uint8_t buf[64 * SECTOR], expect[SECTOR];
	struct iovec iov = { buf, sizeof(buf) };

	make_file(f, 64 * SECTOR);
	blk_disk_init(&f->disk, false);
	/* Backwards: disk sector i is file sector 63 - i. */
	for (unsigned int i = 0; i < 64; i++)
		add(f, 0, (63 - i) * SECTOR, SECTOR, false);
	start(f);
	assert_int_equal(f->disk.nr_extents, 64);
	assert_int_equal(run(f, BLK_OP_READ, 0, &iov, 1), sizeof(buf));
	for (unsigned int i = 0; i < 64; i++) {
		read_file(f, 0, (63 - i) * SECTOR, expect, SECTOR);
		assert_memory_equal(buf + i * SECTOR, expect, SECTOR);
	}
	memset(buf, 0x77, sizeof(buf));
	iov = (struct iovec){ buf, sizeof(buf) };
	assert_int_equal(run(f, BLK_OP_WRITE, 0, &iov, 1), sizeof(buf));
	assert_int_equal(run_range(f, BLK_OP_WRITE_ZEROES, SECTOR, 62 * SECTOR), 0);
	read_file(f, 0, 0, buf, sizeof(buf));
	for (unsigned int i = 0; i < sizeof(buf); i++)
		assert_int_equal(buf[i], i < SECTOR || i >= 63 * SECTOR ? 0x77 : 0);
	assert_int_equal(run(f, BLK_OP_FLUSH, 0, NULL, 0), 0);
}

/* The ring caps in-flight parts: submit says -EAGAIN, nothing is lost. */
static void test_uring_throttles_when_full(void **state)
{
	struct fixture *f = *state;
	static struct test_req reqs[64];
	static uint8_t bufs[64][SECTOR];
	struct iovec iov[64];
	unsigned int accepted = 0;

	make_file(f, 64 * SECTOR);
	open_disk(f, false);
	for (unsigned int i = 0; i < 64; i++) {
		iov[i] = (struct iovec){ bufs[i], SECTOR };
		reqs[i] = (struct test_req){
			.io = { .op = BLK_OP_READ, .offset = i * SECTOR,
				.iov = &iov[i], .iovcnt = 1,
				.complete = test_req_done },
		};
	}
	/* CQ of 16, one slot held by the stop watch. */
	while (accepted < 64 && blk_backend_submit(f->be, &reqs[accepted].io) == 0)
		accepted++;
	assert_int_equal(accepted, f->loop.max_inflight - 1);
	for (unsigned int next = accepted, i = 0; i < 64; i++) {
		wait_done(f, &reqs[i]);
		assert_int_equal(reqs[i].res, SECTOR);
		assert_int_equal(bufs[i][5], pattern(0, i * SECTOR + 5));
		while (next < 64 && blk_backend_submit(f->be, &reqs[next].io) == 0)
			next++;
	}
}

#define BOTH(fn) \
	cmocka_unit_test_prestate_setup_teardown(fn, setup, teardown, \
						 (void *)&engine_sync), \
	cmocka_unit_test_prestate_setup_teardown(fn, setup, teardown, \
						 (void *)&engine_uring)

int main(void)
{
	const struct CMUnitTest tests[] = {
		BOTH(test_read_write_one_file),
		BOTH(test_request_crossing_extents),
		BOTH(test_flush_every_extent),
		BOTH(test_out_of_range_refused),
		BOTH(test_read_only_refuses_writes),
		BOTH(test_short_file_fails_with_eio),
		BOTH(test_zero_length_read_succeeds),
		BOTH(test_split_at_unaligned_boundaries),
		BOTH(test_write_across_three_extents),
		BOTH(test_tail_padding),
		BOTH(test_read_only_extent_rejects_writes),
		BOTH(test_discard_and_write_zeroes),
		BOTH(test_discard_refused_read_only),
		BOTH(test_flush_error_is_sticky),
		BOTH(test_flush_read_only_disk),
		BOTH(test_request_over_many_extents),
		cmocka_unit_test_prestate_setup_teardown(test_open_errors, setup,
							 teardown, (void *)&engine_sync),
		cmocka_unit_test_prestate_setup_teardown(test_find_extent, setup,
							 teardown, (void *)&engine_sync),
		cmocka_unit_test_prestate_setup_teardown(test_uring_throttles_when_full,
							 setup, teardown,
							 (void *)&engine_uring),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
