/*
 * i8042.c - minimal PS/2 controller for the reset path; see i8042.h.
 */
#include "devices/i8042.h"

#include <errno.h>
#include <string.h>

#define STATUS_OUTPUT_FULL 0x01
#define STATUS_SYSTEM_FLAG 0x04	/* mirrors command byte bit 2 */
#define STATUS_LAST_WAS_COMMAND 0x08

#define CMDBYTE_SYSTEM_FLAG 0x04
#define CMDBYTE_KBD_DISABLED 0x10
#define CMDBYTE_AUX_DISABLED 0x20

#define CMD_READ_COMMAND_BYTE 0x20
#define CMD_WRITE_COMMAND_BYTE 0x60
#define CMD_SELF_TEST 0xaa
#define CMD_WRITE_OUTPUT_PORT 0xd1
#define CMD_PULSE_FIRST 0xf0	/* 0xf0-0xff: pulse lines whose bit is 0 */

#define SELF_TEST_PASSED 0x55
#define OUTPUT_PORT_RESET_HIGH 0x01	/* the reset line is active low */

static void put_output(struct i8042 *kbc, uint8_t value)
{
	kbc->output = value;
	kbc->output_full = true;
}

/* Returns whether the command asserts the reset line. */
static bool run_command(struct i8042 *kbc, uint8_t command)
{
	kbc->awaiting_data = 0;
	switch (command) {
	case CMD_READ_COMMAND_BYTE:
		put_output(kbc, kbc->command_byte);
		return false;
	case CMD_WRITE_COMMAND_BYTE:
	case CMD_WRITE_OUTPUT_PORT:
		kbc->awaiting_data = command;
		return false;
	case CMD_SELF_TEST:
		put_output(kbc, SELF_TEST_PASSED);
		return false;
	default:
		return command >= CMD_PULSE_FIRST &&
		       !(command & OUTPUT_PORT_RESET_HIGH);
	}
}

/* Returns whether the data byte asserts the reset line. */
static bool take_data(struct i8042 *kbc, uint8_t value)
{
	uint8_t command = kbc->awaiting_data;

	kbc->awaiting_data = 0;
	if (command == CMD_WRITE_COMMAND_BYTE)
		kbc->command_byte = value;
	/* Other output port lines (A20 gate, ...) have nothing to drive. */
	return command == CMD_WRITE_OUTPUT_PORT &&
	       !(value & OUTPUT_PORT_RESET_HIGH);
}

static uint8_t status(const struct i8042 *kbc)
{
	uint8_t value = 0;

	if (kbc->output_full)
		value |= STATUS_OUTPUT_FULL;
	if (kbc->command_byte & CMDBYTE_SYSTEM_FLAG)
		value |= STATUS_SYSTEM_FLAG;
	if (kbc->last_write_was_command)
		value |= STATUS_LAST_WAS_COMMAND;
	return value;
}

/* Ignores accesses the ports do not support (see i8042.h); true if so. */
static bool ignore_bad_access(uint64_t offset, void *data, uint32_t len,
			       bool is_write)
{
	if (len == 1 && offset == 0)
		return false;
	if (!is_write)
		memset(data, 0, len);
	return true;
}

int i8042_init(struct i8042 *kbc, i8042_reset_fn reset, void *opaque)
{
	int err;

	if (!reset)
		return -EINVAL;
	memset(kbc, 0, sizeof(*kbc));
	err = pthread_mutex_init(&kbc->lock, NULL);
	if (err)
		return -err;
	kbc->command_byte = CMDBYTE_SYSTEM_FLAG | CMDBYTE_KBD_DISABLED |
			    CMDBYTE_AUX_DISABLED;
	kbc->reset = reset;
	kbc->opaque = opaque;
	return 0;
}

void i8042_destroy(struct i8042 *kbc)
{
	pthread_mutex_destroy(&kbc->lock);
}

/*
 * Both ports share one state and one lock; a reset is requested only
 * after the lock is dropped, since the callback may stop the VM.
 */
static void port_access(struct i8042 *kbc, bool command_port, uint64_t offset,
			void *data, uint32_t len, bool is_write)
{
	uint8_t *byte = data;
	bool reset = false;

	if (ignore_bad_access(offset, data, len, is_write))
		return;

	pthread_mutex_lock(&kbc->lock);
	if (is_write) {
		kbc->last_write_was_command = command_port;
		/* A data byte without a pending command would go to the
		 * keyboard, and there is none. */
		reset = command_port ? run_command(kbc, *byte) : take_data(kbc, *byte);
	} else if (command_port) {
		*byte = status(kbc);
	} else {
		/* An empty buffer reads back its last byte, as on hardware. */
		*byte = kbc->output;
		kbc->output_full = false;
	}
	pthread_mutex_unlock(&kbc->lock);

	if (reset)
		kbc->reset(kbc->opaque);
}

void i8042_data_port_access(void *opaque, uint64_t offset, void *data,
			    uint32_t len, bool is_write)
{
	port_access(opaque, false, offset, data, len, is_write);
}

void i8042_command_port_access(void *opaque, uint64_t offset, void *data,
			       uint32_t len, bool is_write)
{
	port_access(opaque, true, offset, data, len, is_write);
}
