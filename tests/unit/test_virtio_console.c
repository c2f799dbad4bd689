/*
 * Unit tests for devices/virtio_console.c: a driver on fake guest RAM
 * (rings and buffers in a malloc'd block at a non-zero guest-physical
 * base), the transport, and a fake backend that records each request and
 * completes it only when the test says so (a slow backend).
 */
#include <endian.h>
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>
#include <cmocka.h>

#include "devices/virtio_console.h"

#define RAM_GPA 0x200000ull
#define RAM_SIZE (256 * 1024)
#define QSIZE 8

#define VRING_DESC_F_NEXT 1
#define VRING_DESC_F_WRITE 2

#define REG_DEVICE_ID 0x008
#define REG_DEVICE_FEATURES 0x010
#define REG_DEVICE_FEATURES_SEL 0x014
#define REG_DRIVER_FEATURES 0x020
#define REG_DRIVER_FEATURES_SEL 0x024
#define REG_QUEUE_SEL 0x030
#define REG_QUEUE_NUM 0x038
#define REG_QUEUE_READY 0x044
#define REG_QUEUE_NOTIFY 0x050
#define REG_INTERRUPT_STATUS 0x060
#define REG_INTERRUPT_ACK 0x064
#define REG_STATUS 0x070
#define REG_CONFIG_GENERATION 0x0fc
#define REG_CONFIG 0x100

#define STATUS_UP (1 | 2 | 8 | 4)
#define STATUS_NEEDS_RESET 64

/* The fake backend: one request each way at most, completed by the test. */
struct fake_backend {
	struct console_backend be;
	struct console_io *write_io;
	unsigned int writes;
	uint8_t written[4096];      /* every byte of every write, in order */
	size_t written_len;
	unsigned int last_iovcnt;
	int write_refusals;         /* this many writes get -EAGAIN first */
	struct console_io *read_io;
	unsigned int reads;
	size_t read_room;           /* bytes the last read may fill */
};

struct queue {
	uint64_t desc, avail, used;
	uint16_t next_desc, avail_idx;
};

struct fixture {
	struct guest_mem mem;
	uint8_t *ram;
	uint64_t next_gpa;
	struct io_loop loop;
	struct fake_backend fake;
	struct virtio_console *cons;
	int irq_fd;
	struct queue q[2];
	struct virtq_chain chain;   /* the chain being built */
};

static int fake_write(struct console_backend *be, struct console_io *io)
{
	struct fake_backend *f = (struct fake_backend *)be;

	assert_null(f->write_io);   /* one write at a time */
	if (f->write_refusals) {
		f->write_refusals--;
		return -EAGAIN;
	}
	for (unsigned int i = 0; i < io->iovcnt; i++) {
		assert_true(f->written_len + io->iov[i].iov_len <= sizeof(f->written));
		memcpy(f->written + f->written_len, io->iov[i].iov_base,
		       io->iov[i].iov_len);
		f->written_len += io->iov[i].iov_len;
	}
	f->last_iovcnt = io->iovcnt;
	f->write_io = io;
	f->writes++;
	return 0;
}

static int fake_read(struct console_backend *be, struct console_io *io)
{
	struct fake_backend *f = (struct fake_backend *)be;

	assert_null(f->read_io);    /* one read at a time */
	f->read_room = 0;
	for (unsigned int i = 0; i < io->iovcnt; i++)
		f->read_room += io->iov[i].iov_len;
	f->read_io = io;
	f->reads++;
	return 0;
}

static void fake_destroy(struct console_backend *be)
{
	(void)be;
}

static const struct console_backend_ops fake_ops = {
	.write = fake_write,
	.read = fake_read,
	.destroy = fake_destroy,
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	char err[256];

	if (!f)
		return -1;
	f->ram = calloc(1, RAM_SIZE);
	if (!f->ram || guest_mem_add_region(&f->mem, RAM_GPA, RAM_SIZE, f->ram))
		return -1;
	f->next_gpa = RAM_GPA;
	f->fake.be = (struct console_backend){ .ops = &fake_ops, .has_input = true };
	if (io_loop_init(&f->loop, 16, err, sizeof(err)))
		return -1;
	f->irq_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (f->irq_fd < 0 ||
	    virtio_console_create(&f->cons, &f->loop, &f->fake.be, &f->mem,
				  f->irq_fd, err, sizeof(err)))
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	io_loop_destroy(&f->loop);
	virtio_console_destroy(f->cons);
	close(f->irq_fd);
	free(f->ram);
	free(f);
	return 0;
}

static uint64_t guest_alloc(struct fixture *f, uint64_t size, uint64_t align)
{
	uint64_t gpa = (f->next_gpa + 24 + align - 1) & ~(align - 1);

	assert_true(gpa + size <= RAM_GPA + RAM_SIZE);
	f->next_gpa = gpa + size;
	return gpa;
}

static uint8_t *host(struct fixture *f, uint64_t gpa)
{
	return f->ram + (gpa - RAM_GPA);
}

static void mmio_write(struct fixture *f, uint64_t off, uint32_t val)
{
	uint32_t le = htole32(val);

	virtio_mmio_access(virtio_console_mmio(f->cons), off, &le, 4, true);
}

static uint32_t mmio_read(struct fixture *f, uint64_t off, uint32_t len)
{
	uint64_t val = 0;

	virtio_mmio_access(virtio_console_mmio(f->cons), off, &val, len, false);
	return (uint32_t)le64toh(val);
}

static uint16_t get16(struct fixture *f, uint64_t gpa)
{
	uint16_t v;

	memcpy(&v, host(f, gpa), 2);
	return le16toh(v);
}

static void put16(struct fixture *f, uint64_t gpa, uint16_t v)
{
	v = htole16(v);
	memcpy(host(f, gpa), &v, 2);
}

static uint32_t get32(struct fixture *f, uint64_t gpa)
{
	uint32_t v;

	memcpy(&v, host(f, gpa), 4);
	return le32toh(v);
}

/* Takes the interrupt eventfd's count: true if it was raised. */
static bool irq_raised(struct fixture *f)
{
	eventfd_t count;

	return eventfd_read(f->irq_fd, &count) == 0;
}

/* The driver: features (not EVENT_IDX, so every batch interrupts), both queues, DRIVER_OK. */
static void driver_up(struct fixture *f)
{
	mmio_write(f, REG_STATUS, 0);
	mmio_write(f, REG_STATUS, 1);
	mmio_write(f, REG_STATUS, 1 | 2);
	mmio_write(f, REG_DEVICE_FEATURES_SEL, 0);
	mmio_write(f, REG_DRIVER_FEATURES_SEL, 0);
	mmio_write(f, REG_DRIVER_FEATURES, mmio_read(f, REG_DEVICE_FEATURES, 4) &
		   ~(1u << VIRTIO_F_EVENT_IDX));
	mmio_write(f, REG_DRIVER_FEATURES_SEL, 1);
	mmio_write(f, REG_DRIVER_FEATURES, 1);
	mmio_write(f, REG_STATUS, 1 | 2 | 8);
	for (unsigned int i = 0; i < 2; i++) {
		struct queue *q = &f->q[i];

		*q = (struct queue){
			.desc = guest_alloc(f, 16 * QSIZE, 16),
			.avail = guest_alloc(f, 6 + 2 * QSIZE, 2),
			.used = guest_alloc(f, 6 + 8 * QSIZE, 4),
		};
		mmio_write(f, REG_QUEUE_SEL, i);
		mmio_write(f, REG_QUEUE_NUM, QSIZE);
		mmio_write(f, 0x080, (uint32_t)q->desc);
		mmio_write(f, 0x084, q->desc >> 32);
		mmio_write(f, 0x090, (uint32_t)q->avail);
		mmio_write(f, 0x094, q->avail >> 32);
		mmio_write(f, 0x0a0, (uint32_t)q->used);
		mmio_write(f, 0x0a4, q->used >> 32);
		mmio_write(f, REG_QUEUE_READY, 1);
	}
	mmio_write(f, REG_STATUS, STATUS_UP);
	assert_int_equal(mmio_read(f, REG_STATUS, 4), STATUS_UP);
}

static void chain_start(struct fixture *f)
{
	memset(&f->chain, 0, sizeof(f->chain));
}

/* Adds a buffer of @len bytes (filled from @data if given) to the chain. */
static uint64_t chain_add(struct fixture *f, uint32_t len, bool writable,
			  const char *data)
{
	uint64_t gpa = guest_alloc(f, len, 1);
	struct virtq_chain *c = &f->chain;

	if (data)
		memcpy(host(f, gpa), data, len);
	else
		memset(host(f, gpa), 0xee, len);
	c->bufs[c->nr_bufs++] = (struct virtq_buf){
		.gpa = gpa, .len = len, .device_writable = writable,
	};
	return gpa;
}

/* Writes the chain into queue @qi's descriptor table and makes it available. */
static void make_available(struct fixture *f, unsigned int qi)
{
	struct queue *q = &f->q[qi];
	uint16_t head = q->next_desc;

	for (unsigned int i = 0; i < f->chain.nr_bufs; i++) {
		const struct virtq_buf *b = &f->chain.bufs[i];
		uint16_t idx = (head + i) % QSIZE;
		uint64_t d = q->desc + 16 * idx;
		uint64_t addr = htole64(b->gpa);
		uint32_t len = htole32(b->len);

		memcpy(host(f, d), &addr, 8);
		memcpy(host(f, d + 8), &len, 4);
		put16(f, d + 12, (b->device_writable ? VRING_DESC_F_WRITE : 0) |
			      (i + 1 < f->chain.nr_bufs ? VRING_DESC_F_NEXT : 0));
		put16(f, d + 14, (idx + 1) % QSIZE);
	}
	q->next_desc = (head + f->chain.nr_bufs) % QSIZE;
	put16(f, q->avail + 4 + 2 * (q->avail_idx % QSIZE), head);
	q->avail_idx++;
	__atomic_thread_fence(__ATOMIC_RELEASE);
	put16(f, q->avail + 2, q->avail_idx);
}

/* Runs the loop a while, so whatever can happen has happened. */
static void settle(struct fixture *f)
{
	for (int i = 0; i < 20; i++) {
		assert_int_equal(io_loop_run_once(&f->loop, false), 0);
		usleep(200);
	}
}

static void kick(struct fixture *f, unsigned int qi)
{
	mmio_write(f, REG_QUEUE_NOTIFY, qi);
	settle(f);
}

static uint16_t used_idx(struct fixture *f, unsigned int qi)
{
	return get16(f, f->q[qi].used + 2);
}

/* Used ring entry @n of queue @qi: its length. */
static uint32_t used_len(struct fixture *f, unsigned int qi, uint16_t n)
{
	return get32(f, f->q[qi].used + 4 + 8 * (n % QSIZE) + 4);
}

static void complete_write(struct fixture *f)
{
	struct console_io *io = f->fake.write_io;
	size_t len = 0;

	assert_non_null(io);
	for (unsigned int i = 0; i < io->iovcnt; i++)
		len += io->iov[i].iov_len;
	f->fake.write_io = NULL;
	io->complete(io, (ssize_t)len);
	settle(f);
}

/* Completes the pending read with @data (NULL: end of input, with @len 0). */
static void complete_read(struct fixture *f, const char *data, size_t len)
{
	struct console_io *io = f->fake.read_io;
	size_t off = 0;

	assert_non_null(io);
	assert_true(len <= f->fake.read_room);
	for (unsigned int i = 0; i < io->iovcnt && off < len; i++) {
		size_t take = len - off < io->iov[i].iov_len ? len - off : io->iov[i].iov_len;

		memcpy(io->iov[i].iov_base, data + off, take);
		off += take;
	}
	f->fake.read_io = NULL;
	io->complete(io, (ssize_t)len);
	settle(f);
}

static void ack_vring_interrupt(struct fixture *f)
{
	assert_true(irq_raised(f));
	assert_true(mmio_read(f, REG_INTERRUPT_STATUS, 4) & VIRTIO_MMIO_INT_VRING);
	mmio_write(f, REG_INTERRUPT_ACK, VIRTIO_MMIO_INT_VRING);
}

/* ---- Identity and config space. */

static void test_identity_and_features(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(mmio_read(f, REG_DEVICE_ID, 4), VIRTIO_ID_CONSOLE);
	mmio_write(f, REG_DEVICE_FEATURES_SEL, 0);
	/* SIZE; neither MULTIPORT (1) nor EMERG_WRITE (2). */
	assert_int_equal(mmio_read(f, REG_DEVICE_FEATURES, 4) & 0xffffff,
			 1u << VIRTIO_CONSOLE_F_SIZE);
	/* Two queues, and no third. */
	mmio_write(f, REG_QUEUE_SEL, 1);
	assert_int_equal(mmio_read(f, 0x034, 4), VIRTIO_CONSOLE_QUEUE_SIZE);
	mmio_write(f, REG_QUEUE_SEL, 2);
	assert_int_equal(mmio_read(f, 0x034, 4), 0);
}

static void test_size_in_config_space(void **state)
{
	struct fixture *f = *state;
	uint32_t generation = mmio_read(f, REG_CONFIG_GENERATION, 4);

	assert_int_equal(mmio_read(f, REG_CONFIG + VIRTIO_CONSOLE_CFG_COLS, 2), 0);
	assert_int_equal(mmio_read(f, REG_CONFIG + VIRTIO_CONSOLE_CFG_ROWS, 2), 0);

	/* Before the driver is up: config changes, no interrupt. */
	virtio_console_set_size(f->cons, 80, 24);
	assert_int_equal(mmio_read(f, REG_CONFIG + VIRTIO_CONSOLE_CFG_COLS, 2), 80);
	assert_int_equal(mmio_read(f, REG_CONFIG + VIRTIO_CONSOLE_CFG_ROWS, 2), 24);
	assert_int_equal(mmio_read(f, REG_CONFIG, 4), 24u << 16 | 80);
	assert_int_not_equal(mmio_read(f, REG_CONFIG_GENERATION, 4), generation);
	assert_false(irq_raised(f));
	assert_int_equal(mmio_read(f, REG_INTERRUPT_STATUS, 4), 0);

	/* The driver cannot change it; nothing lies beyond it. */
	mmio_write(f, REG_CONFIG, 0x12345678);
	assert_int_equal(mmio_read(f, REG_CONFIG, 4), 24u << 16 | 80);
	assert_int_equal(mmio_read(f, REG_CONFIG + 4, 4), 0);
}

static void test_activation_reports_known_size(void **state)
{
	struct fixture *f = *state;

	virtio_console_set_size(f->cons, 132, 43);
	driver_up(f);
	/* Linux reads cols/rows only on a config interrupt. */
	assert_true(irq_raised(f));
	assert_int_equal(mmio_read(f, REG_INTERRUPT_STATUS, 4) & VIRTIO_MMIO_INT_CONFIG,
			 VIRTIO_MMIO_INT_CONFIG);
}

static void test_activation_without_size_is_quiet(void **state)
{
	struct fixture *f = *state;

	driver_up(f);
	settle(f);
	assert_false(irq_raised(f));
	assert_int_equal(mmio_read(f, REG_INTERRUPT_STATUS, 4), 0);
}

static void test_resize_raises_config_interrupt(void **state)
{
	struct fixture *f = *state;
	uint32_t generation;

	driver_up(f);
	generation = mmio_read(f, REG_CONFIG_GENERATION, 4);
	virtio_console_set_size(f->cons, 100, 30);
	assert_true(irq_raised(f));
	assert_int_equal(mmio_read(f, REG_INTERRUPT_STATUS, 4), VIRTIO_MMIO_INT_CONFIG);
	assert_int_not_equal(mmio_read(f, REG_CONFIG_GENERATION, 4), generation);
	assert_int_equal(mmio_read(f, REG_CONFIG + VIRTIO_CONSOLE_CFG_COLS, 2), 100);
	assert_int_equal(mmio_read(f, REG_CONFIG + VIRTIO_CONSOLE_CFG_ROWS, 2), 30);
	mmio_write(f, REG_INTERRUPT_ACK, VIRTIO_MMIO_INT_CONFIG);

	/* The same size again is no change. */
	generation = mmio_read(f, REG_CONFIG_GENERATION, 4);
	virtio_console_set_size(f->cons, 100, 30);
	assert_false(irq_raised(f));
	assert_int_equal(mmio_read(f, REG_INTERRUPT_STATUS, 4), 0);
	assert_int_equal(mmio_read(f, REG_CONFIG_GENERATION, 4), generation);

	/* Rows alone change. */
	virtio_console_set_size(f->cons, 100, 31);
	assert_true(irq_raised(f));
	assert_int_equal(mmio_read(f, REG_CONFIG + VIRTIO_CONSOLE_CFG_ROWS, 2), 31);
}

/* ---- Output. */

static void test_output_reaches_backend(void **state)
{
	struct fixture *f = *state;

	driver_up(f);
	chain_start(f);
	chain_add(f, 5, false, "hello");
	make_available(f, VIRTIO_CONSOLE_TX_QUEUE);
	kick(f, VIRTIO_CONSOLE_TX_QUEUE);
	assert_int_equal(f->fake.writes, 1);
	assert_int_equal(f->fake.written_len, 5);
	assert_memory_equal(f->fake.written, "hello", 5);
	/* Not back to the driver before the backend is done. */
	assert_int_equal(used_idx(f, VIRTIO_CONSOLE_TX_QUEUE), 0);

	complete_write(f);
	assert_int_equal(used_idx(f, VIRTIO_CONSOLE_TX_QUEUE), 1);
	assert_int_equal(used_len(f, VIRTIO_CONSOLE_TX_QUEUE, 0), 0);
	ack_vring_interrupt(f);
}

static void test_output_multi_descriptor(void **state)
{
	struct fixture *f = *state;

	driver_up(f);
	chain_start(f);
	chain_add(f, 3, false, "abc");
	chain_add(f, 1, false, "d");
	chain_add(f, 4, false, "efgh");
	/* A writable buffer has no place in a transmit chain: ignored. */
	chain_add(f, 4, true, "XXXX");
	make_available(f, VIRTIO_CONSOLE_TX_QUEUE);
	kick(f, VIRTIO_CONSOLE_TX_QUEUE);
	assert_int_equal(f->fake.writes, 1);
	assert_int_equal(f->fake.last_iovcnt, 3);
	assert_int_equal(f->fake.written_len, 8);
	assert_memory_equal(f->fake.written, "abcdefgh", 8);
	complete_write(f);
	assert_int_equal(used_idx(f, VIRTIO_CONSOLE_TX_QUEUE), 1);
	assert_int_equal(used_len(f, VIRTIO_CONSOLE_TX_QUEUE, 0), 0);
}

static void test_output_backpressure_keeps_order(void **state)
{
	struct fixture *f = *state;
	static const char *const words[] = { "one ", "two ", "three" };

	driver_up(f);
	for (unsigned int i = 0; i < 3; i++) {
		chain_start(f);
		chain_add(f, strlen(words[i]), false, words[i]);
		make_available(f, VIRTIO_CONSOLE_TX_QUEUE);
		kick(f, VIRTIO_CONSOLE_TX_QUEUE);
	}
	/* A slow backend: the first write is all it has; the rest wait in the ring. */
	assert_int_equal(f->fake.writes, 1);
	assert_int_equal(used_idx(f, VIRTIO_CONSOLE_TX_QUEUE), 0);
	settle(f);
	assert_int_equal(f->fake.writes, 1);

	complete_write(f);
	assert_int_equal(used_idx(f, VIRTIO_CONSOLE_TX_QUEUE), 1);
	assert_int_equal(f->fake.writes, 2);
	complete_write(f);
	assert_int_equal(f->fake.writes, 3);
	complete_write(f);
	assert_int_equal(used_idx(f, VIRTIO_CONSOLE_TX_QUEUE), 3);
	assert_int_equal(f->fake.written_len, strlen("one two three"));
	assert_memory_equal(f->fake.written, "one two three", f->fake.written_len);
}

static void test_output_retries_when_loop_full(void **state)
{
	struct fixture *f = *state;

	driver_up(f);
	f->fake.write_refusals = 2;
	chain_start(f);
	chain_add(f, 2, false, "ok");
	make_available(f, VIRTIO_CONSOLE_TX_QUEUE);
	kick(f, VIRTIO_CONSOLE_TX_QUEUE);
	/* Refused twice, kept, then taken: once. */
	assert_int_equal(f->fake.write_refusals, 0);
	assert_int_equal(f->fake.writes, 1);
	assert_memory_equal(f->fake.written, "ok", 2);
	complete_write(f);
	assert_int_equal(used_idx(f, VIRTIO_CONSOLE_TX_QUEUE), 1);
}

static void test_output_bad_chains(void **state)
{
	struct fixture *f = *state;
	uint64_t d;

	driver_up(f);
	/* Nothing readable: back at once, nothing written. */
	chain_start(f);
	chain_add(f, 8, true, NULL);
	make_available(f, VIRTIO_CONSOLE_TX_QUEUE);
	kick(f, VIRTIO_CONSOLE_TX_QUEUE);
	assert_int_equal(f->fake.writes, 0);
	assert_int_equal(used_idx(f, VIRTIO_CONSOLE_TX_QUEUE), 1);
	assert_int_equal(used_len(f, VIRTIO_CONSOLE_TX_QUEUE, 0), 0);
	ack_vring_interrupt(f);

	/* A buffer outside guest RAM breaks the virtqueue rules. */
	chain_start(f);
	chain_add(f, 4, false, "oops");
	d = f->q[VIRTIO_CONSOLE_TX_QUEUE].next_desc;
	make_available(f, VIRTIO_CONSOLE_TX_QUEUE);
	memcpy(host(f, f->q[VIRTIO_CONSOLE_TX_QUEUE].desc + 16 * d),
	       &(uint64_t){ htole64(RAM_GPA + RAM_SIZE - 2) }, 8);
	kick(f, VIRTIO_CONSOLE_TX_QUEUE);
	assert_int_equal(f->fake.writes, 0);
	assert_true(mmio_read(f, REG_STATUS, 4) & STATUS_NEEDS_RESET);
	assert_true(mmio_read(f, REG_INTERRUPT_STATUS, 4) & VIRTIO_MMIO_INT_CONFIG);

	/* Then the device leaves its queues alone until reset. */
	chain_start(f);
	chain_add(f, 2, false, "no");
	make_available(f, VIRTIO_CONSOLE_TX_QUEUE);
	kick(f, VIRTIO_CONSOLE_TX_QUEUE);
	assert_int_equal(f->fake.writes, 0);
	assert_int_equal(used_idx(f, VIRTIO_CONSOLE_TX_QUEUE), 1);
}

static void test_output_loop_in_chain(void **state)
{
	struct fixture *f = *state;
	struct queue *q;

	driver_up(f);
	q = &f->q[VIRTIO_CONSOLE_TX_QUEUE];
	chain_start(f);
	chain_add(f, 1, false, "a");
	chain_add(f, 1, false, "b");
	make_available(f, VIRTIO_CONSOLE_TX_QUEUE);
	/* The second descriptor points back at the first: a loop. */
	put16(f, q->desc + 16 * 1 + 12, VRING_DESC_F_NEXT);
	put16(f, q->desc + 16 * 1 + 14, 0);
	kick(f, VIRTIO_CONSOLE_TX_QUEUE);
	assert_int_equal(f->fake.writes, 0);
	assert_true(mmio_read(f, REG_STATUS, 4) & STATUS_NEEDS_RESET);
}

static void test_output_in_flight_across_reset(void **state)
{
	struct fixture *f = *state;

	driver_up(f);
	chain_start(f);
	chain_add(f, 3, false, "old");
	make_available(f, VIRTIO_CONSOLE_TX_QUEUE);
	kick(f, VIRTIO_CONSOLE_TX_QUEUE);
	assert_int_equal(f->fake.writes, 1);

	/* The driver resets and starts over on new rings. */
	driver_up(f);
	chain_start(f);
	chain_add(f, 3, false, "new");
	make_available(f, VIRTIO_CONSOLE_TX_QUEUE);
	kick(f, VIRTIO_CONSOLE_TX_QUEUE);
	/* Still one write: output stays in order across the reset. */
	assert_int_equal(f->fake.writes, 1);

	complete_write(f);
	/* The old chain is not given back on the new ring; the new one went out. */
	assert_int_equal(f->fake.writes, 2);
	assert_memory_equal(f->fake.written, "oldnew", 6);
	assert_int_equal(used_idx(f, VIRTIO_CONSOLE_TX_QUEUE), 0);
	complete_write(f);
	assert_int_equal(used_idx(f, VIRTIO_CONSOLE_TX_QUEUE), 1);
}

/* ---- Input. */

static void test_input_waits_for_buffers(void **state)
{
	struct fixture *f = *state;
	uint64_t buf;

	driver_up(f);
	/* No receive buffer: no read, so input stays in the backend. */
	settle(f);
	assert_int_equal(f->fake.reads, 0);

	chain_start(f);
	buf = chain_add(f, 8, true, NULL);
	make_available(f, VIRTIO_CONSOLE_RX_QUEUE);
	kick(f, VIRTIO_CONSOLE_RX_QUEUE);
	assert_int_equal(f->fake.reads, 1);
	assert_int_equal(f->fake.read_room, 8);
	assert_int_equal(used_idx(f, VIRTIO_CONSOLE_RX_QUEUE), 0);

	complete_read(f, "abc", 3);
	assert_int_equal(used_idx(f, VIRTIO_CONSOLE_RX_QUEUE), 1);
	assert_int_equal(used_len(f, VIRTIO_CONSOLE_RX_QUEUE, 0), 3);
	assert_memory_equal(host(f, buf), "abc", 3);
	assert_int_equal(host(f, buf)[3], 0xee);
	ack_vring_interrupt(f);

	/* Out of buffers again: no second read... */
	settle(f);
	assert_int_equal(f->fake.reads, 1);
	/* ...until the guest posts one. */
	chain_start(f);
	buf = chain_add(f, 2, true, NULL);
	make_available(f, VIRTIO_CONSOLE_RX_QUEUE);
	kick(f, VIRTIO_CONSOLE_RX_QUEUE);
	assert_int_equal(f->fake.reads, 2);
	assert_int_equal(f->fake.read_room, 2);
	complete_read(f, "de", 2);
	assert_int_equal(used_idx(f, VIRTIO_CONSOLE_RX_QUEUE), 2);
	assert_memory_equal(host(f, buf), "de", 2);
}

static void test_input_multi_descriptor(void **state)
{
	struct fixture *f = *state;
	uint64_t a, b;

	driver_up(f);
	chain_start(f);
	/* Readable buffers do not belong in a receive chain: skipped. */
	chain_add(f, 4, false, "RRRR");
	a = chain_add(f, 3, true, NULL);
	b = chain_add(f, 5, true, NULL);
	make_available(f, VIRTIO_CONSOLE_RX_QUEUE);
	kick(f, VIRTIO_CONSOLE_RX_QUEUE);
	assert_int_equal(f->fake.read_room, 8);
	complete_read(f, "abcdef", 6);
	assert_int_equal(used_len(f, VIRTIO_CONSOLE_RX_QUEUE, 0), 6);
	assert_memory_equal(host(f, a), "abc", 3);
	assert_memory_equal(host(f, b), "def", 3);
	assert_int_equal(host(f, b)[3], 0xee);
}

static void test_input_read_is_bounded(void **state)
{
	struct fixture *f = *state;

	driver_up(f);
	chain_start(f);
	chain_add(f, 3 * VIRTIO_CONSOLE_RX_BUF_SIZE, true, NULL);
	make_available(f, VIRTIO_CONSOLE_RX_QUEUE);
	kick(f, VIRTIO_CONSOLE_RX_QUEUE);
	assert_int_equal(f->fake.read_room, VIRTIO_CONSOLE_RX_BUF_SIZE);
}

static void test_input_chain_without_room(void **state)
{
	struct fixture *f = *state;

	driver_up(f);
	chain_start(f);
	chain_add(f, 4, false, "RRRR");
	make_available(f, VIRTIO_CONSOLE_RX_QUEUE);
	kick(f, VIRTIO_CONSOLE_RX_QUEUE);
	/* Given back empty; no read for it. */
	assert_int_equal(f->fake.reads, 0);
	assert_int_equal(used_idx(f, VIRTIO_CONSOLE_RX_QUEUE), 1);
	assert_int_equal(used_len(f, VIRTIO_CONSOLE_RX_QUEUE, 0), 0);
}

static void test_input_end(void **state)
{
	struct fixture *f = *state;

	driver_up(f);
	for (int i = 0; i < 2; i++) {
		chain_start(f);
		chain_add(f, 8, true, NULL);
		make_available(f, VIRTIO_CONSOLE_RX_QUEUE);
	}
	kick(f, VIRTIO_CONSOLE_RX_QUEUE);
	assert_int_equal(f->fake.reads, 1);
	complete_read(f, NULL, 0);
	/* End of input: no more reads, the buffers stay with the device. */
	kick(f, VIRTIO_CONSOLE_RX_QUEUE);
	assert_int_equal(f->fake.reads, 1);
	assert_int_equal(used_idx(f, VIRTIO_CONSOLE_RX_QUEUE), 0);
}

static void test_input_backend_without_input(void **state)
{
	struct fixture *f = *state;

	f->fake.be.has_input = false;
	driver_up(f);
	chain_start(f);
	chain_add(f, 8, true, NULL);
	make_available(f, VIRTIO_CONSOLE_RX_QUEUE);
	kick(f, VIRTIO_CONSOLE_RX_QUEUE);
	assert_int_equal(f->fake.reads, 0);
	assert_int_equal(used_idx(f, VIRTIO_CONSOLE_RX_QUEUE), 0);
}

static void test_input_read_across_reset(void **state)
{
	struct fixture *f = *state;
	uint64_t small, rest;

	driver_up(f);
	chain_start(f);
	chain_add(f, 8, true, NULL);
	make_available(f, VIRTIO_CONSOLE_RX_QUEUE);
	kick(f, VIRTIO_CONSOLE_RX_QUEUE);
	assert_int_equal(f->fake.reads, 1);

	/* Reset while the read waits; its bytes arrive afterwards. */
	mmio_write(f, REG_STATUS, 0);
	complete_read(f, "xyzzy", 5);
	assert_int_equal(f->fake.reads, 1);

	/* They go to the new driver's first buffers, split as they fit. */
	driver_up(f);
	chain_start(f);
	small = chain_add(f, 2, true, NULL);
	make_available(f, VIRTIO_CONSOLE_RX_QUEUE);
	chain_start(f);
	rest = chain_add(f, 8, true, NULL);
	make_available(f, VIRTIO_CONSOLE_RX_QUEUE);
	kick(f, VIRTIO_CONSOLE_RX_QUEUE);
	assert_int_equal(used_idx(f, VIRTIO_CONSOLE_RX_QUEUE), 2);
	assert_int_equal(used_len(f, VIRTIO_CONSOLE_RX_QUEUE, 0), 2);
	assert_int_equal(used_len(f, VIRTIO_CONSOLE_RX_QUEUE, 1), 3);
	assert_memory_equal(host(f, small), "xy", 2);
	assert_memory_equal(host(f, rest), "zzy", 3);
	/* Only then a new read, for the next buffer posted. */
	assert_int_equal(f->fake.reads, 1);
	chain_start(f);
	chain_add(f, 8, true, NULL);
	make_available(f, VIRTIO_CONSOLE_RX_QUEUE);
	kick(f, VIRTIO_CONSOLE_RX_QUEUE);
	assert_int_equal(f->fake.reads, 2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_identity_and_features, setup, teardown),
		cmocka_unit_test_setup_teardown(test_size_in_config_space, setup, teardown),
		cmocka_unit_test_setup_teardown(test_activation_reports_known_size, setup, teardown),
		cmocka_unit_test_setup_teardown(test_activation_without_size_is_quiet, setup, teardown),
		cmocka_unit_test_setup_teardown(test_resize_raises_config_interrupt, setup, teardown),
		cmocka_unit_test_setup_teardown(test_output_reaches_backend, setup, teardown),
		cmocka_unit_test_setup_teardown(test_output_multi_descriptor, setup, teardown),
		cmocka_unit_test_setup_teardown(test_output_backpressure_keeps_order, setup, teardown),
		cmocka_unit_test_setup_teardown(test_output_retries_when_loop_full, setup, teardown),
		cmocka_unit_test_setup_teardown(test_output_bad_chains, setup, teardown),
		cmocka_unit_test_setup_teardown(test_output_loop_in_chain, setup, teardown),
		cmocka_unit_test_setup_teardown(test_output_in_flight_across_reset, setup, teardown),
		cmocka_unit_test_setup_teardown(test_input_waits_for_buffers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_input_multi_descriptor, setup, teardown),
		cmocka_unit_test_setup_teardown(test_input_read_is_bounded, setup, teardown),
		cmocka_unit_test_setup_teardown(test_input_chain_without_room, setup, teardown),
		cmocka_unit_test_setup_teardown(test_input_end, setup, teardown),
		cmocka_unit_test_setup_teardown(test_input_backend_without_input, setup, teardown),
		cmocka_unit_test_setup_teardown(test_input_read_across_reset, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
