/*
 * serial_8250.h - a 16550A-compatible UART on eight I/O ports, enough for
 * Linux's earlycon/earlyprintk and its 8250 driver with interrupts (it
 * autodetects a 16550A: IER, loopback and IIR FIFO-bit tests all pass).
 *
 * Transmit: a byte written to THR goes out at once; the sink gets it, one
 * byte per call, before the port write returns (the sink buffers if it
 * wants to). THR is therefore always empty again and LSR always reports
 * THRE|TEMT. The VMM notices the first transmitted byte in its sink.
 * In loopback mode (MCR bit 4) transmitted bytes go to the receiver, as on
 * the real chip, never to the sink: Linux's FIFO sizing test sends 256
 * bytes in loopback and they must not reach the console.
 *
 * Receive: serial_8250_receive() feeds host input into a 16-byte FIFO (one
 * byte while the guest has FIFOs off). Host input is flow-controlled, not
 * lost: it takes what fits and the VMM offers the rest later. Only
 * loopback traffic can overrun (LSR.OE, line status interrupt).
 *
 * Interrupts, highest priority first: line status (overrun), received
 * data, THR empty, modem status. Data below the FIFO trigger level is
 * reported at once as a character timeout (IIR 0x0c), as if the 4
 * character times had passed: host input arrives in bursts. THRE is
 * latched when THR empties (after every write, we transmit instantly) or
 * when IER enables it while THR is empty, and cleared by a THR write or
 * by an IIR read that reports it. As on a PC, the line reaches the
 * interrupt controller only while MCR.OUT2 is set and loopback is off.
 * set_irq() is called with the new level only when the level changes.
 *
 * Modem lines: outside loopback the host side shows DCD, DSR and CTS
 * asserted (a connected, ready peer), RI clear.
 *
 * Accesses: serial_8250_access() is a bus_handler for an 8-port range.
 * Accesses that are not one byte wide, or beyond offset 7, are ignored:
 * writes change nothing, reads return zeros.
 *
 * Threads: port accesses come from vCPU threads, receive() from any
 * thread; `lock` serialises them. Both callbacks run with the lock held
 * and must not call back into the UART.
 */
#ifndef EROVM_SERIAL_8250_H
#define EROVM_SERIAL_8250_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SERIAL_8250_NR_PORTS 8
#define SERIAL_8250_FIFO_SIZE 16

/* Sends transmitted bytes to the host (console, log file, ...). */
typedef void (*serial_8250_write_fn)(void *opaque, const uint8_t *buf,
				     size_t len);
/* Drives the UART's interrupt line (level-triggered). */
typedef void (*serial_8250_set_irq_fn)(void *opaque, bool level);

struct serial_8250 {
	pthread_mutex_t lock;

	uint8_t ier;
	uint8_t lcr;
	uint8_t mcr;
	uint8_t fcr;		/* FIFO enable and RX trigger bits only */
	uint8_t scr;
	uint8_t dll;
	uint8_t dlm;
	bool overrun;		/* LSR.OE until LSR is read */
	uint8_t msr_delta;	/* MSR bits 3:0 until MSR is read */
	bool thre_pending;

	uint8_t rx_fifo[SERIAL_8250_FIFO_SIZE];
	unsigned int rx_head;
	unsigned int rx_count;

	bool irq_level;
	serial_8250_write_fn write;
	serial_8250_set_irq_fn set_irq;
	void *opaque;
};

/*
 * serial_8250_init - puts @uart in its power-on state: no interrupts
 * enabled, FIFOs off, divisor 1 (115200 baud), line low.
 * @write and @set_irq get @opaque. Returns 0, -EINVAL if a callback is
 * NULL, or a negative errno if the lock cannot be created.
 */
int serial_8250_init(struct serial_8250 *uart, serial_8250_write_fn write,
		     serial_8250_set_irq_fn set_irq, void *opaque);

/* serial_8250_destroy - releases what init created; no calls may follow. */
void serial_8250_destroy(struct serial_8250 *uart);

/*
 * serial_8250_access - the bus_handler for the UART's ports; @opaque is
 * the struct serial_8250, @offset is 0 (RBR/THR/DLL) to 7 (SCR).
 */
void serial_8250_access(void *opaque, uint64_t offset, void *data,
			uint32_t len, bool is_write);

/*
 * serial_8250_receive - host input for the guest. Queues as many of @len
 * bytes as the receive FIFO has room for and returns that count; the
 * caller offers the rest again later. Returns 0 in loopback mode, where
 * the receiver is disconnected from the line.
 */
size_t serial_8250_receive(struct serial_8250 *uart, const uint8_t *bytes,
			   size_t len);

#endif
