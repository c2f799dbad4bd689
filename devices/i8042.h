/*
 * i8042.h - the PS/2 keyboard controller, reduced to what a guest without
 * keyboard or mouse needs: Linux's `reboot=k` path, which waits for the
 * input buffer to drain (status bit 1 clear) and writes command 0xfe to
 * port 0x64 to pulse the CPU reset line.
 *
 * Ports: i8042_data_port_access() handles 0x60, i8042_command_port_access()
 * handles 0x64; each is a bus_handler for a one-port range.
 *
 * Commands understood (anything else is accepted and ignored):
 *   0x20  read the command byte      -> next data read returns it
 *   0x60  write the command byte     <- next data write
 *   0xaa  controller self-test       -> next data read returns 0x55
 *   0xd1  write the output port      <- next data write; bit 0 clear
 *                                       (reset line low) resets
 *   0xf0-0xff  pulse output lines given by the clear bits 3:0; a pulse
 *              of bit 0 (0xfe among them) resets
 * A reset calls reset(opaque) once per pulse, on the vCPU thread, with no
 * lock held; the VMM ends or restarts the VM there. Linux repeats 0xfe
 * up to ten times, so the callback must tolerate being called again
 * before the vCPU stops.
 *
 * There is no keyboard or mouse behind the controller: the output buffer
 * only ever holds command replies, no scancodes, and no interrupt (IRQ 1
 * or 12) is ever raised. The input buffer is never full.
 *
 * Accesses that are not one byte wide or at a nonzero offset are ignored:
 * writes change nothing, reads return zeros.
 *
 * Port 0x61 (PIT channel 2 gate, speaker, OUT2 status) is not here: KVM's
 * in-kernel PIT emulates it when created with KVM_PIT_SPEAKER_DUMMY.
 */
#ifndef EROVM_I8042_H
#define EROVM_I8042_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

typedef void (*i8042_reset_fn)(void *opaque);

struct i8042 {
	pthread_mutex_t lock;	/* several vCPUs may poke the controller */
	uint8_t command_byte;
	uint8_t output;		/* reply waiting at port 0x60 */
	bool output_full;
	uint8_t awaiting_data;	/* command whose data byte is due, or 0 */
	bool last_write_was_command;
	i8042_reset_fn reset;
	void *opaque;
};

/*
 * i8042_init - puts @kbc in its post-self-test state (empty buffers,
 * keyboard and mouse interfaces disabled). @reset gets @opaque.
 * Returns 0, -EINVAL for a NULL @reset, or a negative errno if the lock
 * cannot be created.
 */
int i8042_init(struct i8042 *kbc, i8042_reset_fn reset, void *opaque);

/* i8042_destroy - releases what init created; no calls may follow. */
void i8042_destroy(struct i8042 *kbc);

/* i8042_data_port_access - bus_handler for port 0x60; @opaque is @kbc. */
void i8042_data_port_access(void *opaque, uint64_t offset, void *data,
			    uint32_t len, bool is_write);

/*
 * i8042_command_port_access - bus_handler for port 0x64 (reads: status,
 * writes: commands); @opaque is @kbc.
 */
void i8042_command_port_access(void *opaque, uint64_t offset, void *data,
			       uint32_t len, bool is_write);

#endif
