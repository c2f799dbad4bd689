/* Unit tests for devices/io_loop.c: restrictions, watches, defer, thread. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>
#include <cmocka.h>

#include "devices/io_loop.h"

struct op_result {
	struct io_loop_op op;
	int calls;
	int res;
};

static void op_done(struct io_loop_op *op, int res)
{
	struct op_result *r = (struct op_result *)op;

	r->calls++;
	r->res = res;
}

static void counted(void *opaque)
{
	__atomic_add_fetch((int *)opaque, 1, __ATOMIC_SEQ_CST);
}

static void run_until(struct io_loop *loop, int *counter, int want)
{
	for (int i = 0; i < 2000 && *counter < want; i++) {
		assert_int_equal(io_loop_run_once(loop, false), 0);
		if (*counter < want)
			usleep(1000);
	}
	assert_int_equal(*counter, want);
}

/* Opcodes outside the allowlist fail with -EACCES; allowed ones work. */
static void test_ring_is_restricted(void **state)
{
	struct io_loop loop;
	struct op_result nop = { .op.complete = op_done };
	struct op_result fsync_op = { .op.complete = op_done };
	char err[256];
	int fd = eventfd(0, EFD_CLOEXEC);

	(void)state;
	assert_int_equal(io_loop_init(&loop, 4, err, sizeof(err)), 0);
	io_uring_prep_nop(io_loop_get_sqe(&loop, &nop.op));
	run_until(&loop, &nop.calls, 1);
	assert_int_equal(nop.res, -EACCES);

	assert_true(fd >= 0);
	io_uring_prep_fsync(io_loop_get_sqe(&loop, &fsync_op.op), fd, 0);
	run_until(&loop, &fsync_op.calls, 1);
	assert_int_not_equal(fsync_op.res, -EACCES);
	assert_int_equal(loop.inflight, 1); /* the stop watch */
	close(fd);
	io_loop_destroy(&loop);
}

/* vsock's additions are allowed; files still cannot be opened. */
static void test_ring_allows_socket_ops_only(void **state)
{
	struct io_loop loop;
	struct op_result cancel = { .op.complete = op_done };
	struct op_result timeout = { .op.complete = op_done };
	struct op_result openat = { .op.complete = op_done };
	struct __kernel_timespec ts = { .tv_nsec = 1000 };
	char err[256];

	(void)state;
	assert_int_equal(io_loop_init(&loop, 4, err, sizeof(err)), 0);
	/* Nothing carries this user_data: not found, but not refused. */
	io_uring_prep_cancel64(io_loop_get_sqe(&loop, &cancel.op), 0x1234, 0);
	run_until(&loop, &cancel.calls, 1);
	assert_int_equal(cancel.res, -ENOENT);

	io_uring_prep_timeout(io_loop_get_sqe(&loop, &timeout.op), &ts, 0, 0);
	run_until(&loop, &timeout.calls, 1);
	assert_int_equal(timeout.res, -ETIME);

	io_uring_prep_openat(io_loop_get_sqe(&loop, &openat.op), AT_FDCWD,
			     "/dev/null", O_RDONLY, 0);
	run_until(&loop, &openat.calls, 1);
	assert_int_equal(openat.res, -EACCES);
	io_loop_destroy(&loop);
}

static void test_in_flight_cap(void **state)
{
	struct io_loop loop;
	struct op_result ops[64];
	unsigned int got = 0;
	char err[256];

	(void)state;
	assert_int_equal(io_loop_init(&loop, 4, err, sizeof(err)), 0);
	assert_int_equal(loop.max_inflight, 8);
	for (unsigned int i = 0; i < 64; i++) {
		struct io_uring_sqe *sqe;

		ops[i] = (struct op_result){ .op.complete = op_done };
		sqe = io_loop_get_sqe(&loop, &ops[i].op);
		if (!sqe)
			break;
		io_uring_prep_nop(sqe);
		got++;
	}
	/* The SQ (4) was flushed on the way; the CQ (8) is the cap. */
	assert_int_equal(got, 7);
	assert_false(io_loop_has_room(&loop, 1));
	run_until(&loop, &ops[got - 1].calls, 1);
	assert_true(io_loop_has_room(&loop, 7));
	io_loop_destroy(&loop);
}

static void test_watch_defer_and_thread(void **state)
{
	struct io_loop loop;
	char err[256];
	int fired = 0;
	int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);

	(void)state;
	assert_true(fd >= 0);
	assert_int_equal(io_loop_init(&loop, 8, err, sizeof(err)), 0);
	assert_int_equal(io_loop_watch_eventfd(&loop, fd, counted, &fired), 0);

	/* Two writes before a run: one wake-up, counter consumed. */
	assert_int_equal(eventfd_write(fd, 1), 0);
	assert_int_equal(eventfd_write(fd, 1), 0);
	run_until(&loop, &fired, 1);
	assert_int_equal(eventfd_write(fd, 1), 0);
	run_until(&loop, &fired, 2);

	/* Now on the thread. */
	assert_int_equal(io_loop_start(&loop), 0);
	assert_int_equal(eventfd_write(fd, 1), 0);
	for (int i = 0; i < 2000 && __atomic_load_n(&fired, __ATOMIC_SEQ_CST) < 3; i++)
		usleep(1000);
	assert_int_equal(__atomic_load_n(&fired, __ATOMIC_SEQ_CST), 3);
	io_loop_stop(&loop);
	io_loop_destroy(&loop);
	close(fd);
}

struct defer_count {
	struct io_loop_deferred work;
	int runs;
};

static void deferred_run(struct io_loop_deferred *work)
{
	((struct defer_count *)work)->runs++;
}

static void test_defer_runs_once(void **state)
{
	struct io_loop loop;
	struct defer_count d = { .work.run = deferred_run };
	char err[256];

	(void)state;
	assert_int_equal(io_loop_init(&loop, 4, err, sizeof(err)), 0);
	io_loop_defer(&loop, &d.work);
	io_loop_defer(&loop, &d.work);
	/* Pending work: run_once must not block even when asked to wait. */
	assert_int_equal(io_loop_run_once(&loop, true), 0);
	assert_int_equal(d.runs, 1);
	assert_int_equal(io_loop_run_once(&loop, false), 0);
	assert_int_equal(d.runs, 1);
	io_loop_destroy(&loop);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ring_is_restricted),
		cmocka_unit_test(test_ring_allows_socket_ops_only),
		cmocka_unit_test(test_in_flight_cap),
		cmocka_unit_test(test_watch_defer_and_thread),
		cmocka_unit_test(test_defer_runs_once),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
