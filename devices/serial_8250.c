/*
 * serial_8250.c - 16550A UART model; the contract is in serial_8250.h.
 * Register semantics follow the National Semiconductor PC16550D datasheet.
 */
#include "devices/serial_8250.h"

#include <errno.h>
#include <string.h>

/* Register offsets; DLL/DLM replace RBR/THR and IER while LCR.DLAB is set. */
#define REG_RBR_THR_DLL 0
#define REG_IER_DLM 1
#define REG_IIR_FCR 2
#define REG_LCR 3
#define REG_MCR 4
#define REG_LSR 5
#define REG_MSR 6
#define REG_SCR 7

#define IER_RDI 0x01		/* received data available */
#define IER_THRI 0x02		/* transmitter holding register empty */
#define IER_RLSI 0x04		/* receiver line status */
#define IER_MSI 0x08		/* modem status */
#define IER_MASK 0x0f		/* bits 7:4 read as zero on a 16550A */

#define IIR_NO_INT 0x01
#define IIR_MSI 0x00
#define IIR_THRI 0x02
#define IIR_RDI 0x04
#define IIR_RLSI 0x06
#define IIR_RX_TIMEOUT 0x0c
#define IIR_FIFOS_ON 0xc0

#define FCR_ENABLE_FIFO 0x01
#define FCR_CLEAR_RCVR 0x02
#define FCR_TRIGGER_MASK 0xc0
#define FCR_TRIGGER_SHIFT 6

#define LCR_DLAB 0x80

#define MCR_DTR 0x01
#define MCR_RTS 0x02
#define MCR_OUT1 0x04
#define MCR_OUT2 0x08
#define MCR_LOOP 0x10
#define MCR_MASK 0x1f		/* bits 7:5 read as zero */

#define LSR_DR 0x01
#define LSR_OE 0x02
#define LSR_THRE 0x20
#define LSR_TEMT 0x40

#define MSR_DCTS 0x01
#define MSR_DDSR 0x02
#define MSR_TERI 0x04
#define MSR_DDCD 0x08
#define MSR_CTS 0x10
#define MSR_DSR 0x20
#define MSR_RI 0x40
#define MSR_DCD 0x80

/* What the host end of the line shows outside loopback. */
#define MSR_HOST_LINES (MSR_DCD | MSR_DSR | MSR_CTS)

static bool fifos_on(const struct serial_8250 *uart)
{
	return uart->fcr & FCR_ENABLE_FIFO;
}

static unsigned int rx_capacity(const struct serial_8250 *uart)
{
	return fifos_on(uart) ? SERIAL_8250_FIFO_SIZE : 1;
}

static unsigned int rx_trigger_level(const struct serial_8250 *uart)
{
	static const unsigned int levels[] = { 1, 4, 8, 14 };

	return levels[(uart->fcr & FCR_TRIGGER_MASK) >> FCR_TRIGGER_SHIFT];
}

static bool loopback(const struct serial_8250 *uart)
{
	return uart->mcr & MCR_LOOP;
}

/* MSR bits 7:4; in loopback they are wired to the MCR outputs. */
static uint8_t modem_lines(uint8_t mcr)
{
	uint8_t lines = 0;

	if (!(mcr & MCR_LOOP))
		return MSR_HOST_LINES;
	if (mcr & MCR_RTS)
		lines |= MSR_CTS;
	if (mcr & MCR_DTR)
		lines |= MSR_DSR;
	if (mcr & MCR_OUT1)
		lines |= MSR_RI;
	if (mcr & MCR_OUT2)
		lines |= MSR_DCD;
	return lines;
}

/* The IIR interrupt ID of the highest-priority pending source. */
static uint8_t pending_interrupt(const struct serial_8250 *uart)
{
	if ((uart->ier & IER_RLSI) && uart->overrun)
		return IIR_RLSI;
	if ((uart->ier & IER_RDI) && uart->rx_count) {
		if (fifos_on(uart) && uart->rx_count < rx_trigger_level(uart))
			return IIR_RX_TIMEOUT;
		return IIR_RDI;
	}
	if ((uart->ier & IER_THRI) && uart->thre_pending)
		return IIR_THRI;
	if ((uart->ier & IER_MSI) && uart->msr_delta)
		return IIR_MSI;
	return IIR_NO_INT;
}

static void update_irq(struct serial_8250 *uart)
{
	/* On a PC, OUT2 gates the UART's interrupt pin onto the ISA bus; in
	 * loopback the OUT2 pin is forced inactive. */
	bool level = pending_interrupt(uart) != IIR_NO_INT &&
		     (uart->mcr & MCR_OUT2) && !loopback(uart);

	if (level != uart->irq_level) {
		uart->irq_level = level;
		uart->set_irq(uart->opaque, level);
	}
}

static void rx_clear(struct serial_8250 *uart)
{
	uart->rx_head = 0;
	uart->rx_count = 0;
}

static void rx_push(struct serial_8250 *uart, uint8_t byte)
{
	unsigned int tail = (uart->rx_head + uart->rx_count) %
			    SERIAL_8250_FIFO_SIZE;

	uart->rx_fifo[tail] = byte;
	uart->rx_count++;
}

static uint8_t rx_pop(struct serial_8250 *uart)
{
	uint8_t byte;

	if (!uart->rx_count)
		return 0;
	byte = uart->rx_fifo[uart->rx_head];
	uart->rx_head = (uart->rx_head + 1) % SERIAL_8250_FIFO_SIZE;
	uart->rx_count--;
	return byte;
}

/* A byte looped back from the transmitter; unlike host input it can be
 * lost, exactly as a too-slow reader loses bytes on real hardware. */
static void loopback_receive(struct serial_8250 *uart, uint8_t byte)
{
	if (uart->rx_count < rx_capacity(uart)) {
		rx_push(uart, byte);
		return;
	}
	uart->overrun = true;
	/* Without FIFOs the new character overwrites RBR; with them the
	 * FIFO keeps its contents and the new character is dropped. */
	if (!fifos_on(uart))
		uart->rx_fifo[uart->rx_head] = byte;
}

static void transmit(struct serial_8250 *uart, uint8_t byte)
{
	if (loopback(uart))
		loopback_receive(uart, byte);
	else
		uart->write(uart->opaque, &byte, 1);
	/* The byte left at once: THR is empty again. */
	uart->thre_pending = true;
}

static void write_ier(struct serial_8250 *uart, uint8_t value)
{
	bool thri_enabled = (value & IER_THRI) && !(uart->ier & IER_THRI);

	uart->ier = value & IER_MASK;
	/* Enabling the THRE interrupt while THR is empty (always, here)
	 * raises it; Linux's startup test relies on that. */
	if (thri_enabled)
		uart->thre_pending = true;
}

static void write_fcr(struct serial_8250 *uart, uint8_t value)
{
	/* Other FCR bits only take effect together with the enable bit;
	 * switching FIFO mode on or off empties the FIFOs. */
	uint8_t fcr = value & FCR_ENABLE_FIFO ?
		      value & (FCR_ENABLE_FIFO | FCR_TRIGGER_MASK) : 0;

	if ((fcr ^ uart->fcr) & FCR_ENABLE_FIFO || value & FCR_CLEAR_RCVR)
		rx_clear(uart);
	uart->fcr = fcr;
}

static void write_mcr(struct serial_8250 *uart, uint8_t value)
{
	uint8_t old_lines = modem_lines(uart->mcr);
	uint8_t new_lines = modem_lines(value & MCR_MASK);
	uint8_t changed = old_lines ^ new_lines;

	uart->mcr = value & MCR_MASK;
	/* Delta bits sit four below their status bits; RI flags only its
	 * trailing edge. */
	uart->msr_delta |= (changed & (MSR_CTS | MSR_DSR | MSR_DCD)) >> 4;
	if ((old_lines & MSR_RI) && !(new_lines & MSR_RI))
		uart->msr_delta |= MSR_TERI;
}

static void write_register(struct serial_8250 *uart, unsigned int reg,
			   uint8_t value)
{
	bool dlab = uart->lcr & LCR_DLAB;

	switch (reg) {
	case REG_RBR_THR_DLL:
		if (dlab)
			uart->dll = value;
		else
			transmit(uart, value);
		break;
	case REG_IER_DLM:
		if (dlab)
			uart->dlm = value;
		else
			write_ier(uart, value);
		break;
	case REG_IIR_FCR:
		write_fcr(uart, value);
		break;
	case REG_LCR:
		uart->lcr = value;
		break;
	case REG_MCR:
		write_mcr(uart, value);
		break;
	case REG_SCR:
		uart->scr = value;
		break;
	default:
		/* LSR and MSR are read-only; factory-test writes do nothing. */
		break;
	}
}

static uint8_t read_iir(struct serial_8250 *uart)
{
	uint8_t id = pending_interrupt(uart);

	if (id == IIR_THRI)
		uart->thre_pending = false;
	return id | (fifos_on(uart) ? IIR_FIFOS_ON : 0);
}

static uint8_t read_lsr(struct serial_8250 *uart)
{
	uint8_t lsr = LSR_THRE | LSR_TEMT;

	if (uart->rx_count)
		lsr |= LSR_DR;
	if (uart->overrun)
		lsr |= LSR_OE;
	uart->overrun = false;
	return lsr;
}

static uint8_t read_msr(struct serial_8250 *uart)
{
	uint8_t msr = modem_lines(uart->mcr) | uart->msr_delta;

	uart->msr_delta = 0;
	return msr;
}

static uint8_t read_register(struct serial_8250 *uart, unsigned int reg)
{
	bool dlab = uart->lcr & LCR_DLAB;

	switch (reg) {
	case REG_RBR_THR_DLL:
		return dlab ? uart->dll : rx_pop(uart);
	case REG_IER_DLM:
		return dlab ? uart->dlm : uart->ier;
	case REG_IIR_FCR:
		return read_iir(uart);
	case REG_LCR:
		return uart->lcr;
	case REG_MCR:
		return uart->mcr;
	case REG_LSR:
		return read_lsr(uart);
	case REG_MSR:
		return read_msr(uart);
	default:
		return uart->scr;
	}
}

int serial_8250_init(struct serial_8250 *uart, serial_8250_write_fn write,
		     serial_8250_set_irq_fn set_irq, void *opaque)
{
	int err;

	if (!write || !set_irq)
		return -EINVAL;
	memset(uart, 0, sizeof(*uart));
	err = pthread_mutex_init(&uart->lock, NULL);
	if (err)
		return -err;
	/* Divisor 1 = 115200 baud, as firmware would leave a console; a
	 * zero divisor would break guests that derive the baud from it. */
	uart->dll = 1;
	uart->write = write;
	uart->set_irq = set_irq;
	uart->opaque = opaque;
	return 0;
}

void serial_8250_destroy(struct serial_8250 *uart)
{
	pthread_mutex_destroy(&uart->lock);
}

void serial_8250_access(void *opaque, uint64_t offset, void *data,
			uint32_t len, bool is_write)
{
	struct serial_8250 *uart = opaque;
	uint8_t *byte = data;

	if (len != 1 || offset >= SERIAL_8250_NR_PORTS) {
		if (!is_write)
			memset(data, 0, len);
		return;
	}

	pthread_mutex_lock(&uart->lock);
	if (is_write)
		write_register(uart, offset, *byte);
	else
		*byte = read_register(uart, offset);
	update_irq(uart);
	pthread_mutex_unlock(&uart->lock);
}

size_t serial_8250_receive(struct serial_8250 *uart, const uint8_t *bytes,
			   size_t len)
{
	size_t taken = 0;

	pthread_mutex_lock(&uart->lock);
	if (!loopback(uart)) {
		while (taken < len && uart->rx_count < rx_capacity(uart))
			rx_push(uart, bytes[taken++]);
		update_irq(uart);
	}
	pthread_mutex_unlock(&uart->lock);
	return taken;
}
