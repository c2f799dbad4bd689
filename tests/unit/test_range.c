/* Unit tests for vmm/range.h: the overflow edges guests will probe. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "vmm/range.h"

static void test_range_end(void **state)
{
	uint64_t end = 0;

	(void)state;
	assert_true(range_end(0x1000, 0x1000, &end));
	assert_int_equal(end, 0x2000);
	assert_true(range_end(UINT64_MAX - 1, 1, &end));
	assert_int_equal(end, UINT64_MAX);
	assert_false(range_end(UINT64_MAX, 1, &end));
	assert_false(range_end(2, UINT64_MAX - 1, &end));
}

static void test_range_within_edges(void **state)
{
	(void)state;
	assert_true(range_within(0x1000, 0x1000, 0x1000, 0x1000));
	assert_true(range_within(0x1000, 0x1000, 0x1fff, 1));
	assert_false(range_within(0x1000, 0x1000, 0x1fff, 2));
	assert_false(range_within(0x1000, 0x1000, 0xfff, 1));
	assert_false(range_within(0x1000, 0x1000, 0x2000, 1));
	assert_false(range_within(0x1000, 0x1000, 0x1000, 0));
}

static void test_range_within_wrap(void **state)
{
	(void)state;
	/* start + len wraps to a small end that would pass a naive check */
	assert_false(range_within(0, 0x10000, 0x8000, UINT64_MAX));
	assert_false(range_within(0, 0x10000, UINT64_MAX, 2));
	/* an outer range that itself wraps contains nothing */
	assert_false(range_within(UINT64_MAX - 0xfff, 0x2000, UINT64_MAX - 0xfff, 1));
	/* an end of exactly 2^64 counts as wrapping */
	assert_false(range_within(UINT64_MAX - 0xfff, 0x1000, UINT64_MAX, 1));
	assert_true(range_within(UINT64_MAX - 0x1000, 0x1000, UINT64_MAX - 1, 1));
}

static void test_ranges_overlap(void **state)
{
	(void)state;
	assert_true(ranges_overlap(0, 0x1000, 0xfff, 1));
	assert_true(ranges_overlap(0x1000, 0x1000, 0, 0x2000));
	assert_true(ranges_overlap(0, UINT64_MAX, 0x1234, 1));
	assert_false(ranges_overlap(0, 0x1000, 0x1000, 0x1000));
	assert_false(ranges_overlap(0x1000, 0x1000, 0, 0x1000));
	assert_false(ranges_overlap(0, 0x1000, 0x10, 0));
	assert_false(ranges_overlap(0, 0x1000, UINT64_MAX, 2));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_range_end),
		cmocka_unit_test(test_range_within_edges),
		cmocka_unit_test(test_range_within_wrap),
		cmocka_unit_test(test_ranges_overlap),
	};

	return cmocka_run_group_tests_name("range", tests, NULL, NULL);
}
