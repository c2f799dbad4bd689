/* Unit tests for devices/i8042.h: the reset path and command replies. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>

#include "devices/i8042.h"

#define STATUS_OUTPUT_FULL 0x01
#define STATUS_INPUT_FULL 0x02

struct fixture {
	struct i8042 kbc;
	unsigned int resets;
};

static void count_reset(void *opaque)
{
	struct fixture *f = opaque;

	f->resets++;
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	if (!f || i8042_init(&f->kbc, count_reset, f))
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	i8042_destroy(&f->kbc);
	free(f);
	return 0;
}

static void command(struct fixture *f, uint8_t value)
{
	i8042_command_port_access(&f->kbc, 0, &value, 1, true);
}

static uint8_t status(struct fixture *f)
{
	uint8_t value = 0xff;

	i8042_command_port_access(&f->kbc, 0, &value, 1, false);
	return value;
}

static void data_out(struct fixture *f, uint8_t value)
{
	i8042_data_port_access(&f->kbc, 0, &value, 1, true);
}

static uint8_t data_in(struct fixture *f)
{
	uint8_t value = 0xff;

	i8042_data_port_access(&f->kbc, 0, &value, 1, false);
	return value;
}

static void test_init_rejects_null_reset(void **state)
{
	struct i8042 kbc;

	(void)state;
	assert_int_equal(i8042_init(&kbc, NULL, NULL), -EINVAL);
}

static void test_status_after_init(void **state)
{
	struct fixture *f = *state;

	/* Buffers empty, system flag set (self-test passed). */
	assert_int_equal(status(f), 0x04);
}

/* arch/x86/kernel/reboot.c, BOOT_KBD: kb_wait() polls until the input
 * buffer is empty, then writes 0xfe; it does this up to ten times. */
static void test_linux_keyboard_reboot(void **state)
{
	struct fixture *f = *state;
	int polls;

	for (polls = 0; polls < 0x10000; polls++)
		if (!(status(f) & STATUS_INPUT_FULL))
			break;
	assert_int_equal(polls, 0);
	command(f, 0xfe);
	assert_int_equal(f->resets, 1);
	command(f, 0xfe);
	assert_int_equal(f->resets, 2);
	assert_int_equal(status(f) & STATUS_INPUT_FULL, 0);
}

static void test_pulse_commands_reset_only_with_bit0(void **state)
{
	struct fixture *f = *state;

	command(f, 0xff);		/* pulses nothing */
	command(f, 0xf1);		/* pulses bits 1-3, not reset */
	command(f, 0xfd);
	assert_int_equal(f->resets, 0);
	command(f, 0xf0);		/* pulses all four, reset among them */
	assert_int_equal(f->resets, 1);
}

static void test_other_commands_do_not_reset(void **state)
{
	struct fixture *f = *state;
	const uint8_t commands[] = {
		0x20, 0x60, 0xa7, 0xa8, 0xa9, 0xaa, 0xab, 0xad, 0xae,
		0xd1, 0xd2, 0xd4, 0xe0, 0xef, 0x00, 0x01,
	};

	for (size_t i = 0; i < sizeof(commands); i++) {
		command(f, commands[i]);
		data_in(f);
	}
	data_out(f, 0xfe);		/* a data byte 0xfe is not a command */
	assert_int_equal(f->resets, 0);
}

static void test_read_command_byte(void **state)
{
	struct fixture *f = *state;

	command(f, 0x20);
	assert_int_equal(status(f) & STATUS_OUTPUT_FULL, STATUS_OUTPUT_FULL);
	assert_int_equal(data_in(f), 0x34);	/* ports off, system flag */
	assert_int_equal(status(f) & STATUS_OUTPUT_FULL, 0);
	assert_int_equal(data_in(f), 0x34);	/* stale byte reads back */
}

static void test_write_command_byte(void **state)
{
	struct fixture *f = *state;

	command(f, 0x60);
	data_out(f, 0x45);
	command(f, 0x20);
	assert_int_equal(data_in(f), 0x45);
	data_out(f, 0x00);		/* no command pending: ignored */
	command(f, 0x20);
	assert_int_equal(data_in(f), 0x45);
	assert_int_equal(status(f) & 0x04, 0x04);
	command(f, 0x60);
	data_out(f, 0x00);		/* system flag follows the byte */
	assert_int_equal(status(f) & 0x04, 0);
}

static void test_command_data_status_bit(void **state)
{
	struct fixture *f = *state;

	command(f, 0x60);
	assert_int_equal(status(f) & 0x08, 0x08);
	data_out(f, 0x34);
	assert_int_equal(status(f) & 0x08, 0);
}

static void test_self_test(void **state)
{
	struct fixture *f = *state;

	command(f, 0xaa);
	assert_int_equal(status(f) & STATUS_OUTPUT_FULL, STATUS_OUTPUT_FULL);
	assert_int_equal(data_in(f), 0x55);
}

static void test_output_port_write(void **state)
{
	struct fixture *f = *state;

	command(f, 0xd1);
	data_out(f, 0xdf);		/* A20 on, reset line high */
	assert_int_equal(f->resets, 0);
	command(f, 0xd1);
	data_out(f, 0xde);		/* reset line low */
	assert_int_equal(f->resets, 1);
	data_out(f, 0xde);		/* the command took one byte only */
	assert_int_equal(f->resets, 1);
}

static void test_command_cancels_pending_data(void **state)
{
	struct fixture *f = *state;

	command(f, 0xd1);
	command(f, 0xad);
	data_out(f, 0x00);
	assert_int_equal(f->resets, 0);
}

static void test_odd_accesses_are_ignored(void **state)
{
	struct fixture *f = *state;
	uint16_t wide = 0xfffe;
	uint8_t byte = 0xfe;

	i8042_command_port_access(&f->kbc, 0, &wide, 2, true);
	i8042_command_port_access(&f->kbc, 1, &byte, 1, true);
	assert_int_equal(f->resets, 0);
	wide = 0xffff;
	i8042_command_port_access(&f->kbc, 0, &wide, 2, false);
	assert_int_equal(wide, 0);
	byte = 0xff;
	i8042_data_port_access(&f->kbc, 3, &byte, 1, false);
	assert_int_equal(byte, 0);
	command(f, 0x60);
	i8042_data_port_access(&f->kbc, 0, &wide, 2, true);
	data_out(f, 0x11);		/* still awaiting the command byte */
	command(f, 0x20);
	assert_int_equal(data_in(f), 0x11);
}

#define KBC_TEST(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_init_rejects_null_reset),
		KBC_TEST(test_status_after_init),
		KBC_TEST(test_linux_keyboard_reboot),
		KBC_TEST(test_pulse_commands_reset_only_with_bit0),
		KBC_TEST(test_other_commands_do_not_reset),
		KBC_TEST(test_read_command_byte),
		KBC_TEST(test_write_command_byte),
		KBC_TEST(test_command_data_status_bit),
		KBC_TEST(test_self_test),
		KBC_TEST(test_output_port_write),
		KBC_TEST(test_command_cancels_pending_data),
		KBC_TEST(test_odd_accesses_are_ignored),
	};

	return cmocka_run_group_tests_name("i8042", tests, NULL, NULL);
}
