/*
 * Unit tests for devices/virtio_vsock.c: a fake driver puts packets on the
 * queues in fake guest RAM, a fake backend records what the device asks
 * of the host side, and the tests play the backend's results back.
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

#include "devices/virtio_vsock.h"

#define RAM_GPA 0x100000ull
#define QSIZE 256
#define GUEST_CID 3
/* Each descriptor index owns one buffer this big, so buffers never clash. */
#define SLOT_SIZE (VSOCK_MAX_PAYLOAD + VSOCK_HDR_SIZE)
#define RX_BUF 4096
#define RAM_SIZE (3 * 16 * QSIZE + 3 * 8 * QSIZE + 3 * QSIZE * (uint64_t)SLOT_SIZE + 65536)

#define VRING_DESC_F_NEXT 1
#define VRING_DESC_F_WRITE 2

/* What the device asked the fake backend, per connection id. */
struct fake_conn {
	bool connect_called;
	uint32_t connect_port;
	bool accept_called;
	uint32_t accept_port;
	bool writing;
	struct iovec write_iov[2];
	unsigned int write_iovcnt;
	bool reading;
	void *read_buf;
	size_t read_len;
	unsigned int reads;
	bool shut_write;
	bool release_called;
};

struct fake_backend {
	struct vsock_backend be;
	int connect_error;          /* returned by connect() if set */
	unsigned int connects;
	unsigned int last_id;
	struct fake_conn conns[VSOCK_MAX_CONNS];
};

struct fq {
	unsigned int index;
	uint64_t desc, avail, used, bufs;
	uint16_t avail_idx, used_seen, next_desc;
};

struct fixture {
	struct guest_mem mem;
	uint8_t *ram;
	struct io_loop loop;
	struct fake_backend fake;
	struct virtio_vsock *dev;
	int irq_fd;
	struct fq rx, tx, event;
};

static struct fake_backend *fake_of(struct vsock_backend *be)
{
	return (struct fake_backend *)be;
}

static int fake_connect(struct vsock_backend *be, unsigned int id, uint32_t port)
{
	struct fake_backend *fb = fake_of(be);

	assert_true(id < VSOCK_MAX_CONNS);
	if (fb->connect_error)
		return fb->connect_error;
	assert_false(fb->conns[id].connect_called);
	fb->conns[id] = (struct fake_conn){ .connect_called = true, .connect_port = port };
	fb->connects++;
	fb->last_id = id;
	return 0;
}

static int fake_accept(struct vsock_backend *be, unsigned int id, uint32_t host_port)
{
	struct fake_conn *c = &fake_of(be)->conns[id];

	c->accept_called = true;
	c->accept_port = host_port;
	return 0;
}

static int fake_write(struct vsock_backend *be, unsigned int id,
		      const struct iovec *iov, unsigned int iovcnt)
{
	struct fake_conn *c = &fake_of(be)->conns[id];

	assert_false(c->writing);
	assert_true(iovcnt >= 1 && iovcnt <= 2);
	c->writing = true;
	memcpy(c->write_iov, iov, iovcnt * sizeof(*iov));
	c->write_iovcnt = iovcnt;
	return 0;
}

static int fake_read(struct vsock_backend *be, unsigned int id, void *buf, size_t len)
{
	struct fake_conn *c = &fake_of(be)->conns[id];

	assert_false(c->reading);
	assert_true(len > 0);
	c->reading = true;
	c->read_buf = buf;
	c->read_len = len;
	c->reads++;
	return 0;
}

static void fake_shutdown_write(struct vsock_backend *be, unsigned int id)
{
	struct fake_conn *c = &fake_of(be)->conns[id];

	assert_false(c->writing);
	c->shut_write = true;
}

static void fake_release(struct vsock_backend *be, unsigned int id)
{
	struct fake_conn *c = &fake_of(be)->conns[id];

	assert_false(c->release_called);
	c->release_called = true;
}

static void fake_destroy(struct vsock_backend *be)
{
	(void)be;
}

static const struct vsock_backend_ops fake_ops = {
	.connect = fake_connect, .accept = fake_accept, .write = fake_write,
	.read = fake_read, .shutdown_write = fake_shutdown_write,
	.release = fake_release, .destroy = fake_destroy,
};

/* ---- The fake driver. */

static void *host(struct fixture *f, uint64_t gpa)
{
	return f->ram + (gpa - RAM_GPA);
}

static void put16(struct fixture *f, uint64_t gpa, uint16_t v)
{
	v = htole16(v);
	memcpy(host(f, gpa), &v, 2);
}

static uint16_t get16(struct fixture *f, uint64_t gpa)
{
	uint16_t v;

	memcpy(&v, host(f, gpa), 2);
	return le16toh(v);
}

static uint32_t get32(struct fixture *f, uint64_t gpa)
{
	uint32_t v;

	memcpy(&v, host(f, gpa), 4);
	return le32toh(v);
}

static void mmio_write(struct fixture *f, uint64_t off, uint32_t val)
{
	uint32_t le = htole32(val);

	virtio_mmio_access(virtio_vsock_mmio(f->dev), off, &le, 4, true);
}

static uint32_t mmio_read(struct fixture *f, uint64_t off, uint32_t len)
{
	uint64_t val = 0;

	virtio_mmio_access(virtio_vsock_mmio(f->dev), off, &val, len, false);
	return (uint32_t)le64toh(val);
}

static void queue_up(struct fixture *f, struct fq *q, unsigned int index,
		     uint64_t *next)
{
	q->index = index;
	q->desc = *next;
	q->avail = q->desc + 16 * QSIZE;
	q->used = (q->avail + 6 + 2 * QSIZE + 3) & ~3ull;
	q->bufs = (q->used + 6 + 8 * QSIZE + 15) & ~15ull;
	*next = q->bufs + (uint64_t)QSIZE * SLOT_SIZE;
	assert_true(*next <= RAM_GPA + RAM_SIZE);
	/* A new driver starts from clean rings. */
	memset(host(f, q->desc), 0, q->bufs - q->desc);

	mmio_write(f, 0x030, index);
	mmio_write(f, 0x038, QSIZE);
	mmio_write(f, 0x080, (uint32_t)q->desc);
	mmio_write(f, 0x084, q->desc >> 32);
	mmio_write(f, 0x090, (uint32_t)q->avail);
	mmio_write(f, 0x094, q->avail >> 32);
	mmio_write(f, 0x0a0, (uint32_t)q->used);
	mmio_write(f, 0x0a4, q->used >> 32);
	mmio_write(f, 0x044, 1);
}

static void driver_up(struct fixture *f)
{
	uint64_t next = RAM_GPA;

	mmio_write(f, 0x070, 1);
	mmio_write(f, 0x070, 1 | 2);
	mmio_write(f, 0x024, 0);
	mmio_write(f, 0x020, 0);
	mmio_write(f, 0x024, 1);
	mmio_write(f, 0x020, 1);    /* VERSION_1 only */
	mmio_write(f, 0x070, 1 | 2 | 8);
	assert_true(mmio_read(f, 0x070, 4) & 8);
	f->rx = f->tx = f->event = (struct fq){ 0 };
	queue_up(f, &f->rx, VIRTIO_VSOCK_QUEUE_RX, &next);
	queue_up(f, &f->tx, VIRTIO_VSOCK_QUEUE_TX, &next);
	queue_up(f, &f->event, VIRTIO_VSOCK_QUEUE_EVENT, &next);
	mmio_write(f, 0x070, 1 | 2 | 8 | 4);
	assert_int_equal(mmio_read(f, 0x070, 4), 1 | 2 | 8 | 4);
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	char err[256];

	if (!f)
		return -1;
	f->ram = calloc(1, RAM_SIZE);
	if (!f->ram || guest_mem_add_region(&f->mem, RAM_GPA, RAM_SIZE, f->ram))
		return -1;
	if (io_loop_init(&f->loop, 64, err, sizeof(err)))
		return -1;
	f->fake.be.ops = &fake_ops;
	f->irq_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (f->irq_fd < 0 ||
	    virtio_vsock_create(&f->dev, &f->loop, &f->fake.be, GUEST_CID,
				&f->mem, f->irq_fd, err, sizeof(err)))
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	io_loop_destroy(&f->loop);
	virtio_vsock_destroy(f->dev);
	close(f->irq_fd);
	free(f->ram);
	free(f);
	return 0;
}

/* Runs the loop long enough for kicks and deferred work to settle. */
static void settle(struct fixture *f)
{
	for (int i = 0; i < 30; i++) {
		assert_int_equal(io_loop_run_once(&f->loop, false), 0);
		usleep(300);
	}
}

static uint64_t slot_gpa(const struct fq *q, uint16_t idx)
{
	return q->bufs + (uint64_t)idx * SLOT_SIZE;
}

static void put_desc(struct fixture *f, struct fq *q, uint16_t idx, uint32_t len,
		     uint16_t flags)
{
	uint64_t d = q->desc + 16 * idx;
	uint64_t addr = htole64(slot_gpa(q, idx));
	uint32_t len_le = htole32(len);

	memcpy(host(f, d), &addr, 8);
	memcpy(host(f, d + 8), &len_le, 4);
	put16(f, d + 12, flags);
	put16(f, d + 14, (idx + 1) % QSIZE);
}

static void make_available(struct fixture *f, struct fq *q, uint16_t head)
{
	put16(f, q->avail + 4 + 2 * (q->avail_idx % QSIZE), head);
	q->avail_idx++;
	__atomic_thread_fence(__ATOMIC_RELEASE);
	put16(f, q->avail + 2, q->avail_idx);
}

static struct vsock_hdr guest_hdr(uint16_t op, uint32_t guest_port,
				  uint32_t host_port)
{
	return (struct vsock_hdr){
		.src_cid = GUEST_CID, .dst_cid = VSOCK_CID_HOST,
		.src_port = guest_port, .dst_port = host_port,
		.type = VSOCK_TYPE_STREAM, .op = op, .buf_alloc = 262144,
	};
}

/* Queues a packet as Linux does: header, then the payload if any. */
static void tx_put(struct fixture *f, const struct vsock_hdr *hdr,
		   const void *payload)
{
	uint16_t head = f->tx.next_desc;

	vsock_hdr_encode(hdr, host(f, slot_gpa(&f->tx, head)));
	if (hdr->len) {
		uint16_t data = (head + 1) % QSIZE;

		put_desc(f, &f->tx, head, VSOCK_HDR_SIZE, VRING_DESC_F_NEXT);
		memcpy(host(f, slot_gpa(&f->tx, data)), payload, hdr->len);
		put_desc(f, &f->tx, data, hdr->len, 0);
		f->tx.next_desc = (head + 2) % QSIZE;
	} else {
		put_desc(f, &f->tx, head, VSOCK_HDR_SIZE, 0);
		f->tx.next_desc = (head + 1) % QSIZE;
	}
	make_available(f, &f->tx, head);
}

/* Kicks tx and checks that the device took everything. */
static void tx_kick(struct fixture *f)
{
	mmio_write(f, 0x050, VIRTIO_VSOCK_QUEUE_TX);
	settle(f);
	assert_int_equal(get16(f, f->tx.used + 2), f->tx.avail_idx);
}

static void tx_send(struct fixture *f, const struct vsock_hdr *hdr,
		    const void *payload)
{
	tx_put(f, hdr, payload);
	tx_kick(f);
}

/* Posts @n rx buffers of RX_BUF bytes; kicks if @kick. */
static void rx_post(struct fixture *f, unsigned int n, bool kick)
{
	for (unsigned int i = 0; i < n; i++) {
		uint16_t idx = f->rx.next_desc;

		put_desc(f, &f->rx, idx, RX_BUF, VRING_DESC_F_WRITE);
		f->rx.next_desc = (idx + 1) % QSIZE;
		make_available(f, &f->rx, idx);
	}
	if (kick) {
		mmio_write(f, 0x050, VIRTIO_VSOCK_QUEUE_RX);
		settle(f);
	}
}

/* Takes the next packet the device put on rx; false if none. */
static bool rx_take(struct fixture *f, struct vsock_hdr *hdr, void *payload)
{
	uint16_t slot = f->rx.used_seen % QSIZE;
	uint32_t id, len;

	if (get16(f, f->rx.used + 2) == f->rx.used_seen)
		return false;
	id = get32(f, f->rx.used + 4 + 8 * slot);
	len = get32(f, f->rx.used + 4 + 8 * slot + 4);
	f->rx.used_seen++;
	vsock_hdr_decode(host(f, slot_gpa(&f->rx, (uint16_t)id)), hdr);
	assert_int_equal(len, VSOCK_HDR_SIZE + hdr->len);
	assert_true(hdr->len <= RX_BUF - VSOCK_HDR_SIZE);
	if (payload)
		memcpy(payload, host(f, slot_gpa(&f->rx, (uint16_t)id) + VSOCK_HDR_SIZE),
		       hdr->len);
	/* Every packet comes from the host to this guest, as a stream. */
	assert_int_equal(hdr->src_cid, VSOCK_CID_HOST);
	assert_int_equal(hdr->dst_cid, GUEST_CID);
	assert_int_equal(hdr->type, VSOCK_TYPE_STREAM);
	return true;
}

static struct vsock_hdr expect_rx(struct fixture *f, uint16_t op,
				  uint32_t host_port, uint32_t guest_port)
{
	struct vsock_hdr hdr;

	if (!rx_take(f, &hdr, NULL))
		fail_msg("expected op %u on rx, got nothing", op);
	assert_int_equal(hdr.op, op);
	assert_int_equal(hdr.src_port, host_port);
	assert_int_equal(hdr.dst_port, guest_port);
	return hdr;
}

static void expect_no_rx(struct fixture *f)
{
	struct vsock_hdr hdr;

	if (rx_take(f, &hdr, NULL))
		fail_msg("unexpected op %u on rx", hdr.op);
}

/* Guest port @gp connects to host port @hp; returns the connection id. */
static unsigned int establish(struct fixture *f, uint32_t gp, uint32_t hp,
			      uint32_t buf_alloc)
{
	struct vsock_hdr req = guest_hdr(VSOCK_OP_REQUEST, gp, hp);
	struct vsock_hdr resp;
	unsigned int connects = f->fake.connects, id;

	req.buf_alloc = buf_alloc;
	tx_send(f, &req, NULL);
	assert_int_equal(f->fake.connects, connects + 1);
	id = f->fake.last_id;
	assert_int_equal(f->fake.conns[id].connect_port, hp);
	expect_no_rx(f);
	virtio_vsock_connected(f->dev, id, 0);
	settle(f);
	resp = expect_rx(f, VSOCK_OP_RESPONSE, hp, gp);
	assert_int_equal(resp.buf_alloc, VSOCK_BUF_ALLOC);
	assert_int_equal(resp.fwd_cnt, 0);
	return id;
}

/* Completes the pending read of @id with @len bytes of @data. */
static void host_sends(struct fixture *f, unsigned int id, const void *data,
		       size_t len)
{
	struct fake_conn *c = &f->fake.conns[id];

	assert_true(c->reading);
	assert_true(len <= c->read_len);
	if (len)
		memcpy(c->read_buf, data, len);
	c->reading = false;
	virtio_vsock_read_done(f->dev, id, (ssize_t)len);
	settle(f);
}

/* Completes the pending write of @id with @n bytes; returns them. */
static size_t host_takes(struct fixture *f, unsigned int id, size_t n, void *out)
{
	struct fake_conn *c = &f->fake.conns[id];
	size_t done = 0;

	assert_true(c->writing);
	for (unsigned int i = 0; i < c->write_iovcnt && done < n; i++) {
		size_t take = c->write_iov[i].iov_len < n - done ?
			      c->write_iov[i].iov_len : n - done;

		if (out)
			memcpy((char *)out + done, c->write_iov[i].iov_base, take);
		done += take;
	}
	c->writing = false;
	virtio_vsock_written(f->dev, id, (ssize_t)done);
	settle(f);
	return done;
}

static size_t pending_write_len(const struct fixture *f, unsigned int id)
{
	const struct fake_conn *c = &f->fake.conns[id];
	size_t total = 0;

	for (unsigned int i = 0; i < c->write_iovcnt; i++)
		total += c->write_iov[i].iov_len;
	return c->writing ? total : 0;
}

static void finish_release(struct fixture *f, unsigned int id)
{
	assert_true(f->fake.conns[id].release_called);
	f->fake.conns[id] = (struct fake_conn){ 0 };
	virtio_vsock_released(f->dev, id);
	settle(f);
}

/* ---- Tests. */

static void test_config_and_features(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(mmio_read(f, 0x008, 4), VIRTIO_ID_VSOCK);
	/* No device-specific feature: stream only, SEQPACKET not offered. */
	mmio_write(f, 0x014, 0);
	assert_int_equal(mmio_read(f, 0x010, 4) & 0xffffff, 0);
	mmio_write(f, 0x014, 1);
	assert_int_equal(mmio_read(f, 0x010, 4), 1); /* VERSION_1 */
	assert_int_equal(mmio_read(f, 0x100, 4), GUEST_CID);
	assert_int_equal(mmio_read(f, 0x104, 4), 0);
	/* The driver cannot change it. */
	mmio_write(f, 0x100, 77);
	assert_int_equal(mmio_read(f, 0x100, 4), GUEST_CID);
}

static void test_bad_cid_refused(void **state)
{
	struct fixture *f = *state;
	struct virtio_vsock *dev;
	char err[256];

	assert_int_equal(virtio_vsock_create(&dev, &f->loop, &f->fake.be, 2,
					     &f->mem, f->irq_fd, err, sizeof(err)),
			 -EINVAL);
	assert_non_null(strstr(err, "CID"));
	assert_int_equal(virtio_vsock_create(&dev, &f->loop, &f->fake.be,
					     0x100000000ull, &f->mem, f->irq_fd,
					     err, sizeof(err)), -EINVAL);
}

/* REQUEST -> backend connect -> RESPONSE; data both ways; credit told. */
static void test_guest_connect_and_data(void **state)
{
	struct fixture *f = *state;
	struct vsock_hdr rw, hdr;
	unsigned int id;
	char got[64];

	driver_up(f);
	rx_post(f, 16, true);
	id = establish(f, 1000, 5000, 262144);
	/* Reading from the host started, within the guest's credit. */
	assert_true(f->fake.conns[id].reading);
	assert_int_equal(f->fake.conns[id].read_len, VSOCK_READ_CHUNK);

	rw = guest_hdr(VSOCK_OP_RW, 1000, 5000);
	rw.len = 5;
	tx_send(f, &rw, "hello");
	assert_int_equal(pending_write_len(f, id), 5);
	assert_int_equal(host_takes(f, id, 5, got), 5);
	assert_memory_equal(got, "hello", 5);

	host_sends(f, id, "world!", 6);
	assert_true(rx_take(f, &hdr, got));
	assert_int_equal(hdr.op, VSOCK_OP_RW);
	assert_int_equal(hdr.len, 6);
	assert_memory_equal(got, "world!", 6);
	/* Every packet carries our credit: 5 bytes forwarded. */
	assert_int_equal(hdr.fwd_cnt, 5);
	assert_int_equal(hdr.buf_alloc, VSOCK_BUF_ALLOC);
	/* The next read started once the guest had the bytes. */
	assert_int_equal(f->fake.conns[id].reads, 2);

	/* A host read larger than one rx buffer is split across several. */
	{
		static uint8_t big[10000], back[10000];
		size_t off = 0;

		for (size_t i = 0; i < sizeof(big); i++)
			big[i] = (uint8_t)(i * 7);
		host_sends(f, id, big, sizeof(big));
		while (off < sizeof(big)) {
			assert_true(rx_take(f, &hdr, back + off));
			assert_int_equal(hdr.op, VSOCK_OP_RW);
			off += hdr.len;
		}
		assert_int_equal(off, sizeof(big));
		assert_memory_equal(back, big, sizeof(big));
	}
	assert_int_equal(virtio_vsock_dropped(f->dev), 0);
}

/* The backend cannot connect: RST, and nothing held. */
static void test_guest_connect_refused(void **state)
{
	struct fixture *f = *state;
	struct vsock_hdr req = guest_hdr(VSOCK_OP_REQUEST, 1001, 5999);
	unsigned int id;

	driver_up(f);
	rx_post(f, 16, true);
	tx_send(f, &req, NULL);
	id = f->fake.last_id;
	/* The backend holds nothing for a failed connection. */
	f->fake.conns[id] = (struct fake_conn){ 0 };
	virtio_vsock_connected(f->dev, id, -ECONNREFUSED);
	settle(f);
	expect_rx(f, VSOCK_OP_RST, 5999, 1001);
	expect_no_rx(f);
	assert_false(f->fake.conns[id].release_called);

	/* connect() itself failing (e.g. out of fds) is an RST too. */
	f->fake.connect_error = -EMFILE;
	req.src_port = 1002;
	tx_send(f, &req, NULL);
	expect_rx(f, VSOCK_OP_RST, 5999, 1002);

	/* The port pair is free again: a retry gets a fresh connection. */
	f->fake.connect_error = 0;
	establish(f, 1001, 5999, 262144);
}

/* Packets without a connection get RST (except RST); bad ones are dropped. */
static void test_unknown_and_bad_packets(void **state)
{
	struct fixture *f = *state;
	struct vsock_hdr hdr;

	driver_up(f);
	rx_post(f, 16, true);
	hdr = guest_hdr(VSOCK_OP_RW, 1, 2);
	hdr.len = 3;
	tx_send(f, &hdr, "abc");
	expect_rx(f, VSOCK_OP_RST, 2, 1);
	hdr = guest_hdr(VSOCK_OP_RST, 1, 2);
	tx_send(f, &hdr, NULL);
	expect_no_rx(f);

	/* Spoofed CID, wrong type, unknown op, len beyond the chain. */
	hdr = guest_hdr(VSOCK_OP_REQUEST, 1, 2);
	hdr.src_cid = 7;
	tx_send(f, &hdr, NULL);
	hdr = guest_hdr(VSOCK_OP_REQUEST, 1, 2);
	hdr.type = 2;
	tx_send(f, &hdr, NULL);
	hdr = guest_hdr(9, 1, 2);
	tx_send(f, &hdr, NULL);
	hdr = guest_hdr(VSOCK_OP_RW, 1, 2);
	hdr.len = 10;
	tx_put(f, &hdr, "0123456789");
	/* Rewrite len in guest RAM after queueing: now 11, one byte short. */
	{
		uint16_t head = (f->tx.next_desc + QSIZE - 2) % QSIZE;
		uint32_t len_le = htole32(11);

		memcpy(host(f, slot_gpa(&f->tx, head) + 24), &len_le, 4);
	}
	tx_kick(f);
	expect_no_rx(f);
	assert_int_equal(virtio_vsock_dropped(f->dev), 4);
	assert_int_equal(f->fake.connects, 0);
}

/* A guest writing past its credit is reset; a slow host holds it back. */
static void test_credit_overrun_resets(void **state)
{
	struct fixture *f = *state;
	static uint8_t chunk[VSOCK_MAX_PAYLOAD];
	struct vsock_hdr rw, hdr;
	unsigned int id;

	driver_up(f);
	rx_post(f, 16, true);
	id = establish(f, 1000, 5000, 262144);
	rw = guest_hdr(VSOCK_OP_RW, 1000, 5000);
	rw.len = VSOCK_MAX_PAYLOAD;
	/* The host takes nothing: exactly buf_alloc bytes are accepted. */
	for (unsigned int i = 0; i < VSOCK_BUF_ALLOC / VSOCK_MAX_PAYLOAD; i++)
		tx_put(f, &rw, chunk);
	tx_kick(f);
	expect_no_rx(f);
	assert_false(f->fake.conns[id].release_called);

	/* The host writes 64 KiB: fwd_cnt moved a threshold, so the guest hears. */
	assert_int_equal(host_takes(f, id, VSOCK_CREDIT_UPDATE_THRESHOLD, NULL),
			 VSOCK_CREDIT_UPDATE_THRESHOLD);
	hdr = expect_rx(f, VSOCK_OP_CREDIT_UPDATE, 5000, 1000);
	assert_int_equal(hdr.fwd_cnt, VSOCK_CREDIT_UPDATE_THRESHOLD);
	/* The device is writing the rest, one write at a time. */
	assert_int_equal(pending_write_len(f, id),
			 VSOCK_BUF_ALLOC - VSOCK_CREDIT_UPDATE_THRESHOLD);

	/* The guest may now send exactly what was freed, not one byte more. */
	tx_send(f, &rw, chunk);
	expect_no_rx(f);
	rw.len = 1;
	tx_send(f, &rw, chunk);
	expect_rx(f, VSOCK_OP_RST, 5000, 1000);
	assert_true(f->fake.conns[id].release_called);
	/* Further packets of the dead connection: RST, no new connection. */
	tx_send(f, &rw, chunk);
	expect_rx(f, VSOCK_OP_RST, 5000, 1000);
	finish_release(f, id);
}

/* Host to guest: never beyond the guest's credit; ask, then resume. */
static void test_host_data_respects_credit(void **state)
{
	struct fixture *f = *state;
	static uint8_t data[10000];
	struct vsock_hdr hdr, upd;
	unsigned int id;
	size_t got = 0;

	driver_up(f);
	rx_post(f, 16, true);
	id = establish(f, 1000, 5000, 10000);
	assert_int_equal(f->fake.conns[id].read_len, 10000);
	host_sends(f, id, data, 10000);
	while (got < 10000) {
		assert_true(rx_take(f, &hdr, NULL));
		assert_int_equal(hdr.op, VSOCK_OP_RW);
		got += hdr.len;
	}
	assert_int_equal(got, 10000);
	/* No credit left: no read, one CREDIT_REQUEST. */
	expect_rx(f, VSOCK_OP_CREDIT_REQUEST, 5000, 1000);
	expect_no_rx(f);
	assert_false(f->fake.conns[id].reading);

	/* The guest read 4000 bytes: reading resumes for exactly those. */
	upd = guest_hdr(VSOCK_OP_CREDIT_UPDATE, 1000, 5000);
	upd.buf_alloc = 10000;
	upd.fwd_cnt = 4000;
	tx_send(f, &upd, NULL);
	assert_true(f->fake.conns[id].reading);
	assert_int_equal(f->fake.conns[id].read_len, 4000);

	/* CREDIT_REQUEST from the guest gets our credit. */
	hdr = guest_hdr(VSOCK_OP_CREDIT_REQUEST, 1000, 5000);
	tx_send(f, &hdr, NULL);
	hdr = expect_rx(f, VSOCK_OP_CREDIT_UPDATE, 5000, 1000);
	assert_int_equal(hdr.buf_alloc, VSOCK_BUF_ALLOC);
}

/* With no rx buffer the device stops reading the host; a kick resumes. */
static void test_rx_stalls_without_buffers(void **state)
{
	struct fixture *f = *state;
	static uint8_t data[VSOCK_READ_CHUNK], back[VSOCK_READ_CHUNK];
	struct vsock_hdr hdr;
	unsigned int id, packets = 0;
	size_t got = 0;

	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (uint8_t)(i ^ (i >> 8));
	driver_up(f);
	rx_post(f, 1, true);
	id = establish(f, 1000, 5000, 262144);
	host_sends(f, id, data, sizeof(data));
	/* Nothing to put it in: no packet, no further read. */
	expect_no_rx(f);
	assert_int_equal(f->fake.conns[id].reads, 1);
	assert_false(f->fake.conns[id].reading);

	/* Two buffers at a time: the data trickles out, then reading resumes. */
	while (got < sizeof(data)) {
		rx_post(f, 2, true);
		while (rx_take(f, &hdr, back + got)) {
			assert_int_equal(hdr.op, VSOCK_OP_RW);
			got += hdr.len;
			packets++;
		}
		if (got < sizeof(data))
			assert_int_equal(f->fake.conns[id].reads, 1);
	}
	assert_memory_equal(back, data, sizeof(data));
	assert_int_equal(packets, (sizeof(data) + RX_BUF - VSOCK_HDR_SIZE - 1) /
				  (RX_BUF - VSOCK_HDR_SIZE));
	assert_int_equal(f->fake.conns[id].reads, 2);
	assert_true(f->fake.conns[id].reading);
}

/* Guest SHUTDOWN(SEND), host end of stream: both over, RST, released. */
static void test_orderly_close(void **state)
{
	struct fixture *f = *state;
	struct vsock_hdr rw, shut, hdr;
	unsigned int id;
	char got[8];

	driver_up(f);
	rx_post(f, 16, true);
	id = establish(f, 1000, 5000, 262144);
	rw = guest_hdr(VSOCK_OP_RW, 1000, 5000);
	rw.len = 4;
	tx_send(f, &rw, "last");
	shut = guest_hdr(VSOCK_OP_SHUTDOWN, 1000, 5000);
	shut.flags = VSOCK_SHUTDOWN_SEND;
	tx_send(f, &shut, NULL);
	/* The write side ends only after the data is out. */
	assert_false(f->fake.conns[id].shut_write);
	host_takes(f, id, 4, got);
	assert_memory_equal(got, "last", 4);
	assert_true(f->fake.conns[id].shut_write);
	assert_false(f->fake.conns[id].release_called);

	host_sends(f, id, "bye", 3);
	assert_true(rx_take(f, &hdr, got));
	assert_int_equal(hdr.op, VSOCK_OP_RW);
	host_sends(f, id, NULL, 0);
	hdr = expect_rx(f, VSOCK_OP_SHUTDOWN, 5000, 1000);
	assert_int_equal(hdr.flags, VSOCK_SHUTDOWN_SEND);
	expect_rx(f, VSOCK_OP_RST, 5000, 1000);
	assert_true(f->fake.conns[id].release_called);
	finish_release(f, id);
	expect_no_rx(f);
}

/* The guest closes (SHUTDOWN both ways) or resets: the host side goes. */
static void test_guest_close_and_reset(void **state)
{
	struct fixture *f = *state;
	struct vsock_hdr shut, rst;
	unsigned int a, b;

	driver_up(f);
	rx_post(f, 16, true);
	a = establish(f, 1000, 5000, 262144);
	b = establish(f, 1001, 5000, 262144);
	shut = guest_hdr(VSOCK_OP_SHUTDOWN, 1000, 5000);
	shut.flags = VSOCK_SHUTDOWN_MASK;
	tx_send(f, &shut, NULL);
	assert_true(f->fake.conns[a].shut_write);
	expect_rx(f, VSOCK_OP_RST, 5000, 1000);
	assert_true(f->fake.conns[a].release_called);

	rst = guest_hdr(VSOCK_OP_RST, 1001, 5000);
	tx_send(f, &rst, NULL);
	expect_no_rx(f);
	assert_true(f->fake.conns[b].release_called);
	/* A read completing after release is never reported: the fake drops it. */
	finish_release(f, a);
	finish_release(f, b);
}

/* A host process connects in: REQUEST from a fresh port, then accept. */
static void test_host_initiated(void **state)
{
	struct fixture *f = *state;
	struct vsock_hdr resp, rst;
	unsigned int id, id2;
	uint32_t hp, hp2;

	/* Before the driver is up there is nobody to ask. */
	assert_int_equal(virtio_vsock_host_connect(f->dev, 5000, &id, &hp), -ENOTCONN);
	driver_up(f);
	rx_post(f, 16, true);
	assert_int_equal(virtio_vsock_host_connect(f->dev, 5000, &id, &hp), 0);
	settle(f);
	assert_true(hp >= VSOCK_HOST_PORT_FIRST);
	expect_rx(f, VSOCK_OP_REQUEST, hp, 5000);

	resp = guest_hdr(VSOCK_OP_RESPONSE, 5000, hp);
	tx_send(f, &resp, NULL);
	assert_true(f->fake.conns[id].accept_called);
	assert_int_equal(f->fake.conns[id].accept_port, hp);
	assert_false(f->fake.conns[id].reading);
	virtio_vsock_connected(f->dev, id, 0);
	settle(f);
	assert_true(f->fake.conns[id].reading);

	/* A second one gets another port; the guest refuses it. */
	assert_int_equal(virtio_vsock_host_connect(f->dev, 5000, &id2, &hp2), 0);
	settle(f);
	assert_int_not_equal(hp2, hp);
	expect_rx(f, VSOCK_OP_REQUEST, hp2, 5000);
	rst = guest_hdr(VSOCK_OP_RST, 5000, hp2);
	tx_send(f, &rst, NULL);
	assert_true(f->fake.conns[id2].release_called);
	assert_false(f->fake.conns[id2].accept_called);
	finish_release(f, id2);

	/* A third times out in the backend: RST to the guest. */
	assert_int_equal(virtio_vsock_host_connect(f->dev, 6000, &id2, &hp2), 0);
	settle(f);
	expect_rx(f, VSOCK_OP_REQUEST, hp2, 6000);
	virtio_vsock_abort(f->dev, id2);
	settle(f);
	expect_rx(f, VSOCK_OP_RST, hp2, 6000);
	assert_true(f->fake.conns[id2].release_called);
	finish_release(f, id2);

	/* A RESPONSE nobody asked for: RST. */
	resp = guest_hdr(VSOCK_OP_RESPONSE, 7000, 7001);
	tx_send(f, &resp, NULL);
	expect_rx(f, VSOCK_OP_RST, 7001, 7000);
}

/* At VSOCK_MAX_CONNS, REQUEST gets RST without reaching the backend. */
static void test_connection_cap(void **state)
{
	struct fixture *f = *state;
	struct vsock_hdr req, rst;
	unsigned int batch = 100;
	uint32_t hp;
	unsigned int id;

	driver_up(f);
	for (unsigned int done = 0; done < VSOCK_MAX_CONNS; done += batch) {
		unsigned int n = VSOCK_MAX_CONNS - done < batch ? VSOCK_MAX_CONNS - done : batch;

		for (unsigned int i = 0; i < n; i++) {
			req = guest_hdr(VSOCK_OP_REQUEST, 10000 + done + i, 5000);
			tx_put(f, &req, NULL);
		}
		tx_kick(f);
	}
	assert_int_equal(f->fake.connects, VSOCK_MAX_CONNS);
	rx_post(f, 4, true);
	req = guest_hdr(VSOCK_OP_REQUEST, 9999, 5000);
	tx_send(f, &req, NULL);
	assert_int_equal(f->fake.connects, VSOCK_MAX_CONNS);
	expect_rx(f, VSOCK_OP_RST, 5000, 9999);
	assert_int_equal(virtio_vsock_host_connect(f->dev, 5000, &id, &hp), -EBUSY);

	/* One goes away (and is released): there is room again. */
	rst = guest_hdr(VSOCK_OP_RST, 10000, 5000);
	tx_send(f, &rst, NULL);
	id = 0;
	while (!f->fake.conns[id].release_called)
		id++;
	tx_send(f, &req, NULL);
	expect_rx(f, VSOCK_OP_RST, 5000, 9999);
	finish_release(f, id);
	tx_send(f, &req, NULL);
	assert_int_equal(f->fake.connects, VSOCK_MAX_CONNS + 1);
	expect_no_rx(f);
}

/* A driver reset releases every connection and sends nothing. */
static void test_reset_releases_all(void **state)
{
	struct fixture *f = *state;
	unsigned int a, b;

	driver_up(f);
	rx_post(f, 16, true);
	a = establish(f, 1000, 5000, 262144);
	b = establish(f, 1001, 5001, 262144);
	mmio_write(f, 0x070, 0);
	settle(f);
	assert_true(f->fake.conns[a].release_called);
	assert_true(f->fake.conns[b].release_called);
	/* A result arriving after the reset is ignored. */
	virtio_vsock_read_done(f->dev, a, 3);
	finish_release(f, a);
	finish_release(f, b);
	driver_up(f);
	rx_post(f, 16, true);
	expect_no_rx(f);
	establish(f, 1000, 5000, 262144);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_config_and_features, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_cid_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_guest_connect_and_data, setup, teardown),
		cmocka_unit_test_setup_teardown(test_guest_connect_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unknown_and_bad_packets, setup, teardown),
		cmocka_unit_test_setup_teardown(test_credit_overrun_resets, setup, teardown),
		cmocka_unit_test_setup_teardown(test_host_data_respects_credit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rx_stalls_without_buffers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_orderly_close, setup, teardown),
		cmocka_unit_test_setup_teardown(test_guest_close_and_reset, setup, teardown),
		cmocka_unit_test_setup_teardown(test_host_initiated, setup, teardown),
		cmocka_unit_test_setup_teardown(test_connection_cap, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reset_releases_all, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
