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

/* Opens the fixture's files as one disk and creates the engine. */
static void open_disk(struct fixture *f, bool read_only)
{
	char err[256];

	blk_disk_init(&f->disk, read_only);
	for (unsigned int i = 0; i < f->nr_paths; i++)
		assert_int_equal(blk_disk_add_file(&f->disk, f->paths[i], err,
						   sizeof(err)), 0);
	if (f->engine == ENGINE_SYNC)
		assert_int_equal(blk_sync_create(&f->be, &f->disk), 0);
	else
		assert_int_equal(blk_uring_create(&f->be, &f->disk, &f->loop), 0);
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

/* Files of 3 (plus a partial sector) and 4 sectors, joined. */
static void open_two_files(struct fixture *f, bool read_only)
{
	make_file(f, 3 * SECTOR + 100);
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
	unsigned int small;

	small = make_file(f, SECTOR - 1);
	assert_int_equal(blk_disk_open(&f->disk, f->paths[small], false, err,
				       sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "smaller than one"));
	assert_int_equal(f->disk.nr_extents, 0);

	small = make_file(f, 0);
	assert_int_equal(blk_disk_open(&f->disk, f->paths[small], false, err,
				       sizeof(err)), -EINVAL);
	assert_int_equal(blk_disk_open(&f->disk, "/nonexistent/disk", false,
				       err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, "/nonexistent/disk"));
	assert_int_equal(blk_disk_open(&f->disk, "/tmp", false, err,
				       sizeof(err)), -EISDIR);

	small = make_file(f, 2 * SECTOR + 1);
	assert_int_equal(blk_disk_open(&f->disk, f->paths[small], false, err,
				       sizeof(err)), 0);
	assert_int_equal(f->disk.capacity, 2 * SECTOR);
	assert_true(fcntl(f->disk.extents[0].fd, F_GETFD) & FD_CLOEXEC);
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
		cmocka_unit_test_prestate_setup_teardown(test_open_errors, setup,
							 teardown, (void *)&engine_sync),
		cmocka_unit_test_prestate_setup_teardown(test_uring_throttles_when_full,
							 setup, teardown,
							 (void *)&engine_uring),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
