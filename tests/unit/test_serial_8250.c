/*
 * Unit tests for devices/serial_8250.h, driven the way Linux's 8250
 * driver drives the chip (autoconfig, startup tests, interrupt handler).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "devices/serial_8250.h"

#define RBR 0
#define THR 0
#define DLL 0
#define IER 1
#define DLM 1
#define IIR 2
#define FCR 2
#define LCR 3
#define MCR 4
#define LSR 5
#define MSR 6
#define SCR 7

#define SINK_MAX 512

struct fixture {
	struct serial_8250 uart;
	uint8_t sink[SINK_MAX];
	size_t sink_len;
	unsigned int sink_calls;
	bool irq;
	unsigned int irq_changes;
};

static void sink_write(void *opaque, const uint8_t *buf, size_t len)
{
	struct fixture *f = opaque;

	assert_true(f->sink_len + len <= SINK_MAX);
	memcpy(f->sink + f->sink_len, buf, len);
	f->sink_len += len;
	f->sink_calls++;
}

static void set_irq(void *opaque, bool level)
{
	struct fixture *f = opaque;

	/* The contract: called only when the level changes. */
	assert_true(level != f->irq);
	f->irq = level;
	f->irq_changes++;
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	if (!f || serial_8250_init(&f->uart, sink_write, set_irq, f))
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	serial_8250_destroy(&f->uart);
	free(f);
	return 0;
}

static void out(struct fixture *f, unsigned int reg, uint8_t value)
{
	serial_8250_access(&f->uart, reg, &value, 1, true);
}

static uint8_t in(struct fixture *f, unsigned int reg)
{
	uint8_t value = 0xaa;

	serial_8250_access(&f->uart, reg, &value, 1, false);
	return value;
}

static void test_init_rejects_null_callbacks(void **state)
{
	struct serial_8250 uart;

	(void)state;
	assert_int_equal(serial_8250_init(&uart, NULL, set_irq, NULL), -EINVAL);
	assert_int_equal(serial_8250_init(&uart, sink_write, NULL, NULL),
			 -EINVAL);
}

static void test_power_on_state(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(in(f, IER), 0);
	assert_int_equal(in(f, IIR), 0x01);
	assert_int_equal(in(f, LCR), 0);
	assert_int_equal(in(f, MCR), 0);
	assert_int_equal(in(f, LSR), 0x60);
	assert_int_equal(in(f, MSR), 0xb0);	/* DCD, DSR, CTS */
	out(f, LCR, 0x80);
	assert_int_equal(in(f, DLL), 1);
	assert_int_equal(in(f, DLM), 0);
	assert_int_equal(f->irq_changes, 0);
}

static void test_dlab_selects_divisor_latch(void **state)
{
	struct fixture *f = *state;

	out(f, IER, 0x05);
	out(f, LCR, 0x83);
	out(f, DLL, 0x0c);
	out(f, DLM, 0x12);
	assert_int_equal(in(f, DLL), 0x0c);
	assert_int_equal(in(f, DLM), 0x12);
	assert_int_equal(in(f, LCR), 0x83);
	assert_int_equal(f->sink_len, 0);	/* DLL write is not THR */

	out(f, LCR, 0x03);
	assert_int_equal(in(f, IER), 0x05);
	out(f, THR, 'x');
	assert_int_equal(f->sink_len, 1);
	out(f, LCR, 0x80);
	assert_int_equal(in(f, DLL), 0x0c);	/* THR write left DLL alone */
	assert_int_equal(in(f, DLM), 0x12);
}

static void test_scratch_register(void **state)
{
	struct fixture *f = *state;

	out(f, SCR, 0xa5);
	assert_int_equal(in(f, SCR), 0xa5);
	out(f, SCR, 0x5a);
	assert_int_equal(in(f, SCR), 0x5a);
}

/* autoconfig's existence test, and its Xscale UUE probe (IER bit 6). */
static void test_ier_keeps_low_nibble(void **state)
{
	struct fixture *f = *state;

	out(f, IER, 0);
	assert_int_equal(in(f, IER), 0);
	out(f, IER, 0x0f);
	assert_int_equal(in(f, IER), 0x0f);
	out(f, IER, 0xff);
	assert_int_equal(in(f, IER), 0x0f);
	out(f, IER, 0x40);
	assert_int_equal(in(f, IER), 0);
}

static void test_mcr_keeps_low_five_bits(void **state)
{
	struct fixture *f = *state;

	out(f, MCR, 0xff);
	assert_int_equal(in(f, MCR), 0x1f);
	out(f, MCR, 0x03);
	assert_int_equal(in(f, MCR), 0x03);
}

/* autoconfig's IIR checks: FIFO bits say 16550A, bit 5 never says 16750,
 * bit 4 never mimics a NatSemi EXCR1. */
static void test_iir_fifo_bits(void **state)
{
	struct fixture *f = *state;

	out(f, FCR, 0x01);
	assert_int_equal(in(f, IIR), 0xc1);
	out(f, FCR, 0x21);		/* 64-byte FIFO request */
	assert_int_equal(in(f, IIR), 0xc1);
	out(f, LCR, 0x80);
	out(f, FCR, 0x21);
	assert_int_equal(in(f, IIR), 0xc1);	/* IIR even with DLAB */
	out(f, LCR, 0xbf);
	assert_int_not_equal(in(f, IIR), 0);	/* no EFR here */
	out(f, LCR, 0);
	out(f, FCR, 0);
	assert_int_equal(in(f, IIR), 0x01);
	out(f, FCR, 0xc0);		/* trigger bits need the enable bit */
	assert_int_equal(in(f, IIR), 0x01);
}

/* autoconfig: MCR = LOOP | OUT2 | RTS must read MSR[7:4] = DCD | CTS. */
static void test_loopback_modem_lines(void **state)
{
	struct fixture *f = *state;

	out(f, MCR, 0x10 | 0x0a);
	assert_int_equal(in(f, MSR) & 0xf0, 0x90);
	out(f, MCR, 0x10 | 0x01);		/* DTR -> DSR */
	assert_int_equal(in(f, MSR) & 0xf0, 0x20);
	out(f, MCR, 0x10 | 0x04);		/* OUT1 -> RI */
	assert_int_equal(in(f, MSR) & 0xf0, 0x40);
	out(f, MCR, 0x10 | 0x0f);
	assert_int_equal(in(f, MSR) & 0xf0, 0xf0);
	out(f, MCR, 0);
	assert_int_equal(in(f, MSR) & 0xf0, 0xb0);
}

static void test_loopback_delta_bits(void **state)
{
	struct fixture *f = *state;

	out(f, MCR, 0x10 | 0x0f);	/* 0xb0 -> 0xf0: RI rose */
	assert_int_equal(in(f, MSR), 0xf0);
	out(f, MCR, 0x10 | 0x08);	/* CTS, DSR, RI drop */
	assert_int_equal(in(f, MSR), 0x80 | 0x01 | 0x02 | 0x04);
	assert_int_equal(in(f, MSR), 0x80);	/* read clears deltas */
	out(f, MCR, 0x10);		/* DCD drops */
	assert_int_equal(in(f, MSR), 0x08);
	out(f, MCR, 0);			/* back to the host lines */
	assert_int_equal(in(f, MSR), 0xb0 | 0x01 | 0x02 | 0x08);
}

static void test_modem_status_interrupt(void **state)
{
	struct fixture *f = *state;

	out(f, IER, 0x08);
	out(f, MCR, 0x10 | 0x02);	/* DSR and DCD drop */
	assert_int_equal(in(f, IIR), 0x00);
	assert_false(f->irq);		/* no interrupt pin in loopback */
	in(f, MSR);
	assert_int_equal(in(f, IIR), 0x01);
	out(f, MCR, 0x08);		/* leave loopback, OUT2 on: deltas */
	assert_true(f->irq);
	assert_int_equal(in(f, IIR), 0x00);
	in(f, MSR);
	assert_false(f->irq);
}

/* The sequence the 8250 driver uses to transmit with interrupts. */
static void test_thre_interrupt_cycle(void **state)
{
	struct fixture *f = *state;

	out(f, MCR, 0x0b);		/* DTR, RTS, OUT2 */
	assert_false(f->irq);
	out(f, IER, 0x02);
	assert_true(f->irq);
	assert_int_equal(in(f, IIR), 0x02);
	assert_false(f->irq);		/* reading IIR acknowledged it */
	assert_int_equal(in(f, IIR), 0x01);

	out(f, THR, 'A');
	assert_int_equal(f->sink_len, 1);
	assert_int_equal(f->sink[0], 'A');
	assert_true(f->irq);		/* transmitted at once: empty again */
	assert_int_equal(in(f, IIR), 0x02);
	assert_false(f->irq);

	out(f, THR, 'B');
	assert_true(f->irq);
	out(f, IER, 0);			/* driver stops tx: line drops */
	assert_false(f->irq);
	assert_int_equal(in(f, IIR), 0x01);
	assert_int_equal(f->sink_len, 2);
}

/* serial8250_do_startup: THRE must reassert when IER.THRI is set again
 * (else UART_BUG_THRE) and must show right after enabling it (else
 * UART_BUG_TXEN). */
static void test_thre_reasserts_on_enable(void **state)
{
	struct fixture *f = *state;

	out(f, IER, 0x02);
	assert_int_equal(in(f, IIR) & 0x0f, 0x02);
	out(f, IER, 0);
	out(f, IER, 0x02);
	assert_int_equal(in(f, IIR) & 0x0f, 0x02);
	out(f, IER, 0);

	out(f, IER, 0x02);
	assert_int_equal(in(f, LSR) & 0x40, 0x40);
	assert_int_equal(in(f, IIR) & 0x01, 0);
	out(f, IER, 0);
}

static void test_irq_needs_out2(void **state)
{
	struct fixture *f = *state;

	out(f, IER, 0x02);
	assert_int_equal(in(f, IIR), 0x02);
	out(f, THR, 'z');
	assert_false(f->irq);
	out(f, MCR, 0x08);
	assert_true(f->irq);
	out(f, MCR, 0x00);
	assert_false(f->irq);
	assert_int_equal(f->irq_changes, 2);
}

static void test_tx_bytes_reach_sink_in_order(void **state)
{
	struct fixture *f = *state;
	const char *text = "Linux version\r\n";
	size_t i;

	for (i = 0; i < strlen(text); i++) {
		assert_int_equal(in(f, LSR) & 0x60, 0x60);
		out(f, THR, text[i]);
		/* Contract: the byte is at the sink when the write returns. */
		assert_int_equal(f->sink_len, i + 1);
	}
	assert_memory_equal(f->sink, text, strlen(text));
	assert_int_equal(f->sink_calls, strlen(text));
}

static void test_rx_data_and_interrupt(void **state)
{
	struct fixture *f = *state;
	const uint8_t input[] = "hello";

	out(f, FCR, 0x81);		/* FIFO on, trigger at 8 */
	out(f, MCR, 0x08);
	out(f, IER, 0x05);		/* RDI and RLSI, as Linux sets */
	assert_int_equal(in(f, LSR) & 0x01, 0);
	assert_false(f->irq);

	assert_int_equal(serial_8250_receive(&f->uart, input, 5), 5);
	assert_true(f->irq);
	assert_int_equal(in(f, LSR), 0x61);
	assert_int_equal(in(f, IIR), 0xcc);	/* below trigger: timeout */
	assert_int_equal(serial_8250_receive(&f->uart, input, 3), 3);
	assert_int_equal(in(f, IIR), 0xc4);	/* at trigger level */
	assert_true(f->irq);			/* reading IIR did not ack */

	for (int i = 0; i < 5; i++)
		assert_int_equal(in(f, RBR), input[i]);
	for (int i = 0; i < 3; i++) {
		assert_true(f->irq);
		assert_int_equal(in(f, RBR), input[i]);
	}
	assert_int_equal(in(f, LSR), 0x60);
	assert_false(f->irq);
	assert_int_equal(in(f, IIR), 0xc1);
}

static void test_rx_without_fifo_holds_one_byte(void **state)
{
	struct fixture *f = *state;
	const uint8_t input[] = "ab";

	out(f, IER, 0x01);
	assert_int_equal(serial_8250_receive(&f->uart, input, 2), 1);
	assert_int_equal(in(f, IIR), 0x04);
	assert_int_equal(in(f, RBR), 'a');
	assert_int_equal(in(f, IIR), 0x01);
	assert_int_equal(serial_8250_receive(&f->uart, input + 1, 1), 1);
	assert_int_equal(in(f, RBR), 'b');
}

/* Host input is flow-controlled: no overrun, the rest is left to the VMM. */
static void test_rx_full_fifo_takes_no_more(void **state)
{
	struct fixture *f = *state;
	uint8_t input[20];

	for (int i = 0; i < 20; i++)
		input[i] = i;
	out(f, FCR, 0x01);
	assert_int_equal(serial_8250_receive(&f->uart, input, 20), 16);
	assert_int_equal(serial_8250_receive(&f->uart, input + 16, 4), 0);
	assert_int_equal(in(f, LSR), 0x61);		/* no OE */
	assert_int_equal(in(f, RBR), 0);
	assert_int_equal(serial_8250_receive(&f->uart, input + 16, 4), 1);
	for (int i = 1; i <= 16; i++)
		assert_int_equal(in(f, RBR), i);
	assert_int_equal(in(f, LSR), 0x60);
}

static void test_fcr_clears_rx_fifo(void **state)
{
	struct fixture *f = *state;
	const uint8_t input[] = "xyz";

	out(f, FCR, 0x01);
	serial_8250_receive(&f->uart, input, 3);
	out(f, FCR, 0x03);
	assert_int_equal(in(f, LSR) & 0x01, 0);
	serial_8250_receive(&f->uart, input, 3);
	out(f, FCR, 0x00);		/* leaving FIFO mode empties it too */
	assert_int_equal(in(f, LSR) & 0x01, 0);
}

/* In loopback, THR feeds the receiver and nothing reaches the sink;
 * Linux's size_fifo() counts what comes back from 256 writes. */
static void test_loopback_tx_to_rx_and_overrun(void **state)
{
	struct fixture *f = *state;
	const uint8_t input[] = "q";
	int count;

	out(f, FCR, 0x07);
	out(f, MCR, 0x10);
	out(f, IER, 0x04);
	assert_int_equal(serial_8250_receive(&f->uart, input, 1), 0);
	for (count = 0; count < 256; count++)
		out(f, THR, count);
	assert_int_equal(f->sink_len, 0);
	assert_int_equal(in(f, IIR), 0xc6);	/* line status first */
	assert_int_equal(in(f, LSR), 0x63);	/* DR | OE, OE read-clears */
	assert_int_equal(in(f, IIR), 0xc1);
	for (count = 0; in(f, LSR) & 0x01; count++)
		assert_int_equal(in(f, RBR), count);
	assert_int_equal(count, 16);
	out(f, MCR, 0);
	out(f, THR, '!');
	assert_int_equal(f->sink_len, 1);
	assert_int_equal(in(f, LSR) & 0x01, 0);
}

static void test_loopback_overrun_without_fifo_overwrites(void **state)
{
	struct fixture *f = *state;

	out(f, MCR, 0x10);
	out(f, THR, 'a');
	out(f, THR, 'b');
	assert_int_equal(in(f, LSR), 0x63);
	assert_int_equal(in(f, RBR), 'b');
	assert_int_equal(in(f, LSR), 0x60);
}

static void test_interrupt_priority(void **state)
{
	struct fixture *f = *state;
	const uint8_t input[] = "r";

	out(f, FCR, 0x01);
	out(f, MCR, 0x10);
	for (int i = 0; i < 17; i++)	/* overrun the FIFO */
		out(f, THR, 'o');
	out(f, MCR, 0x1f);		/* modem deltas */
	out(f, MCR, 0x08);		/* leave loopback, OUT2 */
	out(f, IER, 0x0f);
	assert_true(f->irq);
	assert_int_equal(in(f, IIR), 0xc6);
	assert_int_equal(in(f, IIR), 0xc6);	/* IIR read does not clear */
	in(f, LSR);
	assert_int_equal(in(f, IIR), 0xc4);	/* 16 >= trigger level 1 */
	while (in(f, LSR) & 0x01)
		in(f, RBR);
	assert_int_equal(in(f, IIR), 0xc2);	/* reported: cleared */
	assert_int_equal(in(f, IIR), 0xc0);	/* modem status */
	assert_true(f->irq);
	in(f, MSR);
	assert_int_equal(in(f, IIR), 0xc1);
	assert_false(f->irq);
	serial_8250_receive(&f->uart, input, 1);
	assert_true(f->irq);
}

static void test_odd_accesses_are_ignored(void **state)
{
	struct fixture *f = *state;
	const uint8_t input[] = "k";
	uint32_t wide = 0xffffffff;
	uint8_t byte = 0x5a;

	out(f, SCR, 0x11);
	serial_8250_receive(&f->uart, input, 1);
	serial_8250_access(&f->uart, RBR, &wide, 2, false);
	assert_int_equal(wide, 0xffff0000);	/* two bytes zeroed */
	wide = 0x41424344;
	serial_8250_access(&f->uart, THR, &wide, 4, true);
	assert_int_equal(f->sink_len, 0);
	serial_8250_access(&f->uart, 8, &byte, 1, false);
	assert_int_equal(byte, 0);
	byte = 0x22;
	serial_8250_access(&f->uart, 0xffffffff07ull, &byte, 1, true);
	serial_8250_access(&f->uart, SCR, &byte, 0, true);
	assert_int_equal(in(f, SCR), 0x11);
	assert_int_equal(in(f, RBR), 'k');	/* the wide read took nothing */
}

/* Replays autoconfig() and autoconfig_16550a() from Linux's 8250_port.c
 * for a plain port and checks each decision lands on "16550A". */
static void test_linux_autoconfig_sees_16550a(void **state)
{
	struct fixture *f = *state;
	uint8_t save_mcr, save_lcr, status1, status2, old_fcr;
	int count;

	out(f, IER, 0);
	assert_int_equal(in(f, IER) & 0x0f, 0);
	out(f, IER, 0x0f);
	assert_int_equal(in(f, IER) & 0x0f, 0x0f);
	out(f, IER, 0);

	save_mcr = in(f, MCR);
	save_lcr = in(f, LCR);
	out(f, MCR, 0x10 | 0x0a);
	assert_int_equal(in(f, MSR) & 0xf0, 0x90);
	out(f, MCR, save_mcr);

	out(f, LCR, 0xbf);
	out(f, FCR, 0);			/* the EFR write */
	out(f, LCR, 0);
	out(f, FCR, 0x01);
	assert_int_equal(in(f, IIR) >> 6, 3);

	out(f, LCR, 0x80);		/* no ST16C650V1 EFR */
	assert_int_not_equal(in(f, IIR), 0);
	out(f, LCR, 0xbf);		/* no EFRv2 */
	assert_int_not_equal(in(f, IIR), 0);

	out(f, LCR, 0);			/* no NatSemi EXCR1 */
	status1 = in(f, MCR);
	out(f, LCR, 0xe0);
	status2 = in(f, IIR);
	assert_int_equal((status1 ^ status2) & 0x10, 0);
	out(f, LCR, 0);
	out(f, MCR, status1 ^ 0x10);
	out(f, LCR, 0xe0);
	status2 = in(f, IIR);
	out(f, LCR, 0);
	out(f, MCR, status1);
	assert_int_equal((status1 ^ status2) & 0x10, 0);

	out(f, FCR, 0x21);		/* no TI16750 */
	status1 = in(f, IIR) >> 5;
	out(f, FCR, 0x01);
	out(f, LCR, 0x80);
	out(f, FCR, 0x21);
	status2 = in(f, IIR) >> 5;
	out(f, FCR, 0x01);
	out(f, LCR, 0);
	assert_false(status1 == 6 && status2 == 7);

	out(f, IER, 0x40);		/* no Xscale UUE bit */
	assert_int_equal(in(f, IER) & 0x40, 0);
	out(f, IER, 0);

	/* size_fifo(): must not count 64 (U6_16550A) */
	old_fcr = in(f, FCR);
	out(f, FCR, 0x07);
	out(f, MCR, 0x10);
	out(f, LCR, 0x80);
	out(f, DLL, 1);
	out(f, DLM, 0);
	out(f, LCR, 0x03);
	for (count = 0; count < 256; count++)
		out(f, THR, count);
	for (count = 0; (in(f, LSR) & 0x01) && count < 256; count++)
		in(f, RBR);
	assert_int_equal(count, 16);
	out(f, FCR, old_fcr);
	out(f, MCR, save_mcr);
	out(f, LCR, save_lcr);

	assert_int_equal(f->sink_len, 0); /* no console output */
	assert_int_equal(f->irq_changes, 0);
}

#define STREAM_LEN 20000

static void *produce(void *arg)
{
	struct fixture *f = arg;
	size_t sent = 0;

	while (sent < STREAM_LEN) {
		uint8_t byte = sent % 251;

		sent += serial_8250_receive(&f->uart, &byte, 1);
	}
	return NULL;
}

/* Host input from another thread arrives complete and in order. */
static void test_receive_from_another_thread(void **state)
{
	struct fixture *f = *state;
	pthread_t producer;
	size_t got = 0;

	out(f, FCR, 0x01);
	out(f, MCR, 0x08);
	out(f, IER, 0x01);
	assert_int_equal(pthread_create(&producer, NULL, produce, f), 0);
	while (got < STREAM_LEN) {
		if (in(f, LSR) & 0x01) {
			assert_int_equal(in(f, RBR), got % 251);
			got++;
		}
	}
	assert_int_equal(pthread_join(producer, NULL), 0);
	assert_int_equal(in(f, LSR), 0x60);
	assert_false(f->irq);
}

#define UART_TEST(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_init_rejects_null_callbacks),
		UART_TEST(test_power_on_state),
		UART_TEST(test_dlab_selects_divisor_latch),
		UART_TEST(test_scratch_register),
		UART_TEST(test_ier_keeps_low_nibble),
		UART_TEST(test_mcr_keeps_low_five_bits),
		UART_TEST(test_iir_fifo_bits),
		UART_TEST(test_loopback_modem_lines),
		UART_TEST(test_loopback_delta_bits),
		UART_TEST(test_modem_status_interrupt),
		UART_TEST(test_thre_interrupt_cycle),
		UART_TEST(test_thre_reasserts_on_enable),
		UART_TEST(test_irq_needs_out2),
		UART_TEST(test_tx_bytes_reach_sink_in_order),
		UART_TEST(test_rx_data_and_interrupt),
		UART_TEST(test_rx_without_fifo_holds_one_byte),
		UART_TEST(test_rx_full_fifo_takes_no_more),
		UART_TEST(test_fcr_clears_rx_fifo),
		UART_TEST(test_loopback_tx_to_rx_and_overrun),
		UART_TEST(test_loopback_overrun_without_fifo_overwrites),
		UART_TEST(test_interrupt_priority),
		UART_TEST(test_linux_autoconfig_sees_16550a),
		UART_TEST(test_odd_accesses_are_ignored),
		UART_TEST(test_receive_from_another_thread),
	};

	return cmocka_run_group_tests_name("serial_8250", tests, NULL, NULL);
}
