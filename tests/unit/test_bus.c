/* Unit tests for vmm/bus.c: claiming ranges and dispatching accesses. */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "vmm/bus.h"

struct recorder {
	uint64_t offset;
	uint32_t len;
	bool is_write;
	uint32_t value;
	unsigned int calls;
};

static void record(void *opaque, uint64_t offset, void *data, uint32_t len,
		   bool is_write)
{
	struct recorder *r = opaque;

	r->offset = offset;
	r->len = len;
	r->is_write = is_write;
	r->calls++;
	if (is_write)
		memcpy(&r->value, data, len < 4 ? len : 4);
	else
		memset(data, 0x5a, len);
}

static void test_register_validates(void **state)
{
	struct bus bus = { 0 };
	struct recorder r = { 0 };

	(void)state;
	assert_int_equal(bus_register(&bus, 0x100, 0, record, &r, "empty"), -EINVAL);
	assert_int_equal(bus_register(&bus, UINT64_MAX - 1, 4, record, &r, "wrap"), -EINVAL);
	assert_int_equal(bus_register(&bus, 0x100, 8, NULL, &r, "null"), -EINVAL);
	assert_int_equal(bus_register(&bus, 0x100, 8, record, &r, "a"), 0);
	assert_int_equal(bus_register(&bus, 0x107, 2, record, &r, "overlap end"), -EEXIST);
	assert_int_equal(bus_register(&bus, 0xf8, 9, record, &r, "overlap start"), -EEXIST);
	assert_int_equal(bus_register(&bus, 0x108, 8, record, &r, "adjacent"), 0);
	assert_int_equal(bus_register(&bus, 0xf8, 8, record, &r, "adjacent below"), 0);
	assert_int_equal(bus.nr_ranges, 3);
}

static void test_ranges_stay_sorted(void **state)
{
	struct bus bus = { 0 };
	struct recorder r = { 0 };
	const uint64_t bases[] = { 0x3f8, 0x60, 0x2f8, 0x64, 0x3f0 };

	(void)state;
	for (size_t i = 0; i < sizeof(bases) / sizeof(bases[0]); i++)
		assert_int_equal(bus_register(&bus, bases[i], 1, record, &r, "x"), 0);
	for (unsigned int i = 1; i < bus.nr_ranges; i++)
		assert_true(bus.ranges[i - 1].base < bus.ranges[i].base);
	for (size_t i = 0; i < sizeof(bases) / sizeof(bases[0]); i++)
		assert_int_equal(bus_find(&bus, bases[i], 1)->base, bases[i]);
}

static void test_access_dispatches_with_offset(void **state)
{
	struct bus bus = { 0 };
	struct recorder a = { 0 }, b = { 0 };
	uint32_t value = 0xdeadbeef;
	uint8_t byte;

	(void)state;
	assert_int_equal(bus_register(&bus, 0xd0000000, 0x200, record, &a, "a"), 0);
	assert_int_equal(bus_register(&bus, 0xd0001000, 0x200, record, &b, "b"), 0);
	assert_true(bus_access(&bus, 0xd0001070, &value, 4, true));
	assert_int_equal(b.calls, 1);
	assert_int_equal(b.offset, 0x70);
	assert_int_equal(b.value, 0xdeadbeef);
	assert_true(b.is_write);
	assert_int_equal(a.calls, 0);
	assert_true(bus_access(&bus, 0xd00001ff, &byte, 1, false));
	assert_int_equal(a.offset, 0x1ff);
	assert_int_equal(byte, 0x5a);
}

static void test_unclaimed_and_straddling_accesses(void **state)
{
	struct bus bus = { 0 };
	struct recorder r = { 0 };
	uint32_t value = 0;

	(void)state;
	assert_false(bus_access(&bus, 0x80, &value, 4, false));
	assert_int_equal(value, 0xffffffff);
	assert_int_equal(bus_register(&bus, 0x100, 8, record, &r, "a"), 0);
	value = 0;
	assert_false(bus_access(&bus, 0x106, &value, 4, false));
	assert_int_equal(value, 0xffffffff);
	assert_false(bus_access(&bus, 0xfe, &value, 4, true));
	assert_false(bus_access(&bus, 0x108, &value, 1, true));
	assert_int_equal(r.calls, 0);
}

static void test_table_full(void **state)
{
	struct bus bus = { 0 };
	struct recorder r = { 0 };

	(void)state;
	for (unsigned int i = 0; i < BUS_MAX_RANGES; i++)
		assert_int_equal(bus_register(&bus, 0x1000 * (uint64_t)i, 16, record, &r, "x"), 0);
	assert_int_equal(bus_register(&bus, 0x1000000, 16, record, &r, "x"), -ENOSPC);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_register_validates),
		cmocka_unit_test(test_ranges_stay_sorted),
		cmocka_unit_test(test_access_dispatches_with_offset),
		cmocka_unit_test(test_unclaimed_and_straddling_accesses),
		cmocka_unit_test(test_table_full),
	};

	return cmocka_run_group_tests_name("bus", tests, NULL, NULL);
}
