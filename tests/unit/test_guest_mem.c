/* Unit tests for vmm/guest_mem.c with malloc'd "guest RAM". */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "vmm/guest_mem.h"

#define LOW_GPA 0x0
#define LOW_SIZE 0x10000
#define HIGH_GPA 0x100000000ull
#define HIGH_SIZE 0x2000

struct fixture {
	struct guest_mem mem;
	uint8_t *low, *high;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	if (!f)
		return -1;
	f->low = calloc(1, LOW_SIZE);
	f->high = calloc(1, HIGH_SIZE);
	if (!f->low || !f->high ||
	    guest_mem_add_region(&f->mem, LOW_GPA, LOW_SIZE, f->low) ||
	    guest_mem_add_region(&f->mem, HIGH_GPA, HIGH_SIZE, f->high))
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	free(f->low);
	free(f->high);
	free(f);
	return 0;
}

static void test_ptr_translates_inside_regions(void **state)
{
	struct fixture *f = *state;

	assert_ptr_equal(guest_mem_ptr(&f->mem, 0, 1), f->low);
	assert_ptr_equal(guest_mem_ptr(&f->mem, 0x1234, 16), f->low + 0x1234);
	assert_ptr_equal(guest_mem_ptr(&f->mem, LOW_SIZE - 8, 8), f->low + LOW_SIZE - 8);
	assert_ptr_equal(guest_mem_ptr(&f->mem, HIGH_GPA + 1, HIGH_SIZE - 1), f->high + 1);
}

static void test_ptr_refuses_outside_and_straddling(void **state)
{
	struct fixture *f = *state;

	assert_null(guest_mem_ptr(&f->mem, LOW_SIZE - 8, 9));
	assert_null(guest_mem_ptr(&f->mem, LOW_SIZE, 1));
	assert_null(guest_mem_ptr(&f->mem, HIGH_GPA - 1, 2));
	assert_null(guest_mem_ptr(&f->mem, HIGH_GPA + HIGH_SIZE, 1));
	assert_null(guest_mem_ptr(&f->mem, 0x10, 0));
}

static void test_ptr_refuses_wrapping_lengths(void **state)
{
	struct fixture *f = *state;

	assert_null(guest_mem_ptr(&f->mem, 0x100, UINT64_MAX));
	assert_null(guest_mem_ptr(&f->mem, HIGH_GPA, UINT64_MAX - HIGH_GPA + 2));
	assert_null(guest_mem_ptr(&f->mem, UINT64_MAX, 1));
}

static void test_adjacent_regions_do_not_join(void **state)
{
	struct guest_mem mem = { 0 };
	uint8_t a[64], b[64];

	(void)state;
	assert_int_equal(guest_mem_add_region(&mem, 0x1000, sizeof(a), a), 0);
	assert_int_equal(guest_mem_add_region(&mem, 0x1000 + sizeof(a), sizeof(b), b), 0);
	assert_ptr_equal(guest_mem_ptr(&mem, 0x1000 + sizeof(a), 4), b);
	assert_null(guest_mem_ptr(&mem, 0x1000 + sizeof(a) - 2, 4));
}

static void test_add_region_validates(void **state)
{
	struct guest_mem mem = { 0 };
	uint8_t buf[64];

	(void)state;
	assert_int_equal(guest_mem_add_region(&mem, 0, 0, buf), -EINVAL);
	assert_int_equal(guest_mem_add_region(&mem, 0, sizeof(buf), NULL), -EINVAL);
	assert_int_equal(guest_mem_add_region(&mem, UINT64_MAX - 8, sizeof(buf), buf), -EINVAL);
	assert_int_equal(guest_mem_add_region(&mem, 0x1000, sizeof(buf), buf), 0);
	assert_int_equal(guest_mem_add_region(&mem, 0x1000 + 63, sizeof(buf), buf), -EEXIST);
	assert_int_equal(guest_mem_add_region(&mem, 0x1000 - 63, sizeof(buf), buf), -EEXIST);
	for (unsigned int i = 1; i < GUEST_MEM_MAX_REGIONS; i++)
		assert_int_equal(guest_mem_add_region(&mem, 0x10000 * i, sizeof(buf), buf), 0);
	assert_int_equal(guest_mem_add_region(&mem, 0x100000, sizeof(buf), buf), -ENOSPC);
	assert_int_equal(mem.nr_regions, GUEST_MEM_MAX_REGIONS);
}

static void test_read_write_round_trip(void **state)
{
	struct fixture *f = *state;
	const char msg[] = "virtio";
	char back[sizeof(msg)] = { 0 };

	assert_int_equal(guest_mem_write(&f->mem, HIGH_GPA + 0x100, msg, sizeof(msg)), 0);
	assert_memory_equal(f->high + 0x100, msg, sizeof(msg));
	assert_int_equal(guest_mem_read(&f->mem, HIGH_GPA + 0x100, back, sizeof(back)), 0);
	assert_string_equal(back, msg);
}

static void test_failed_copies_touch_nothing(void **state)
{
	struct fixture *f = *state;
	uint8_t buf[32];

	memset(buf, 0xaa, sizeof(buf));
	assert_int_equal(guest_mem_write(&f->mem, LOW_SIZE - 16, buf, sizeof(buf)), -EFAULT);
	for (size_t i = LOW_SIZE - 16; i < LOW_SIZE; i++)
		assert_int_equal(f->low[i], 0);
	memset(buf, 0x55, sizeof(buf));
	assert_int_equal(guest_mem_read(&f->mem, HIGH_GPA - 8, buf, sizeof(buf)), -EFAULT);
	for (size_t i = 0; i < sizeof(buf); i++)
		assert_int_equal(buf[i], 0x55);
	assert_int_equal(guest_mem_read(&f->mem, UINT64_MAX, buf, 0), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_ptr_translates_inside_regions, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ptr_refuses_outside_and_straddling, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ptr_refuses_wrapping_lengths, setup, teardown),
		cmocka_unit_test(test_adjacent_regions_do_not_join),
		cmocka_unit_test(test_add_region_validates),
		cmocka_unit_test_setup_teardown(test_read_write_round_trip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_failed_copies_touch_nothing, setup, teardown),
	};

	return cmocka_run_group_tests_name("guest_mem", tests, NULL, NULL);
}
