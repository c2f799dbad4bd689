/* Unit tests for vmm/guest_control.c with a fake clock. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "vmm/guest_control.h"

static uint64_t fake_now;

static uint64_t fake_clock(void)
{
	return fake_now;
}

static void write8(struct guest_control *gc, uint16_t port, uint8_t value)
{
	guest_control_access(gc, port - GUEST_PORT_BASE, &value, 1, true);
}

static void write32(struct guest_control *gc, uint16_t port, uint32_t value)
{
	guest_control_access(gc, port - GUEST_PORT_BASE, &value, 4, true);
}

static void test_markers_are_timestamped_once(void **state)
{
	struct guest_control gc = { .now_ns = fake_clock };

	(void)state;
	fake_now = 1000;
	write8(&gc, GUEST_PORT_MARKER, GUEST_MARKER_INIT_STARTED);
	fake_now = 2000;
	write8(&gc, GUEST_PORT_MARKER, GUEST_MARKER_INIT_STARTED);
	write8(&gc, GUEST_PORT_MARKER, GUEST_MARKER_COMMAND_FINISHED);
	assert_int_equal(gc.marker_ns[GUEST_MARKER_INIT_STARTED], 1000);
	assert_int_equal(gc.marker_ns[GUEST_MARKER_COMMAND_FINISHED], 2000);
	assert_int_equal(gc.marker_ns[GUEST_MARKER_COMMAND_STARTED], 0);
}

static void test_unknown_markers_and_sizes_are_ignored(void **state)
{
	struct guest_control gc = { .now_ns = fake_clock };
	uint16_t wide = GUEST_MARKER_INIT_STARTED;

	(void)state;
	fake_now = 5;
	write8(&gc, GUEST_PORT_MARKER, 0);
	write8(&gc, GUEST_PORT_MARKER, GUEST_MARKER_MAX + 1);
	write8(&gc, GUEST_PORT_MARKER, 0xff);
	guest_control_access(&gc, GUEST_PORT_MARKER - GUEST_PORT_BASE, &wide, 2, true);
	write8(&gc, GUEST_PORT_STATUS, 3);
	for (unsigned int i = 0; i <= GUEST_MARKER_MAX; i++)
		assert_int_equal(gc.marker_ns[i], 0);
	assert_false(gc.has_status);
}

static void test_status_first_valid_write_wins(void **state)
{
	struct guest_control gc = { .now_ns = fake_clock };
	uint32_t read_back = 0xffffffff;

	(void)state;
	fake_now = 42;
	write32(&gc, GUEST_PORT_STATUS, 256);
	assert_false(gc.has_status);
	write32(&gc, GUEST_PORT_STATUS, 7);
	write32(&gc, GUEST_PORT_STATUS, 0);
	assert_true(gc.has_status);
	assert_int_equal(gc.status, 7);
	assert_int_equal(gc.status_ns, 42);
	guest_control_access(&gc, GUEST_PORT_STATUS - GUEST_PORT_BASE, &read_back, 4, false);
	assert_int_equal(read_back, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_markers_are_timestamped_once),
		cmocka_unit_test(test_unknown_markers_and_sizes_are_ignored),
		cmocka_unit_test(test_status_first_valid_write_wins),
	};

	return cmocka_run_group_tests_name("guest_control", tests, NULL, NULL);
}
