/*
 * Unit tests for devices/virtio_blk.c: the request parser with chains in
 * fake guest RAM, and whole requests through the device, the virtio-mmio
 * transport and the sync engine against a temp file.
 *
 * Guest RAM is a malloc'd block at a non-zero guest-physical base; every
 * ring and buffer lands at a random (seeded) gap from the previous one.
 */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>
#include <cmocka.h>

#include "devices/virtio_blk.h"

#define RAM_GPA 0x100000ull
#define RAM_SIZE (512 * 1024)
#define SECTOR 512
#define DISK_SECTORS 64
#define QSIZE 16

#define VRING_DESC_F_NEXT 1
#define VRING_DESC_F_WRITE 2

struct fixture {
	struct guest_mem mem;
	uint8_t *ram;
	uint64_t next_gpa;
	unsigned int seed;
	struct virtq_chain chain;
	struct virtio_blk_parsed req;
	struct virtio_blk_limits lim;

	/* Device-level tests only. */
	char path[32];
	struct blk_disk disk;
	struct blk_backend *be;
	struct io_loop loop;
	bool loop_ready;
	struct virtio_blk *blk;
	int irq_fd;
	uint64_t desc_gpa, avail_gpa, used_gpa;
	uint16_t next_desc, avail_idx;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	if (!f)
		return -1;
	f->ram = calloc(1, RAM_SIZE);
	if (!f->ram || guest_mem_add_region(&f->mem, RAM_GPA, RAM_SIZE, f->ram))
		return -1;
	f->next_gpa = RAM_GPA;
	f->seed = 12345;
	f->irq_fd = -1;
	f->lim = (struct virtio_blk_limits){
		.capacity = DISK_SECTORS, .seg_max = 8, .size_max = 4096,
	};
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	if (f->loop_ready) {
		io_loop_stop(&f->loop);
		io_loop_destroy(&f->loop);
	}
	if (f->blk)
		virtio_blk_destroy(f->blk);
	if (f->be)
		blk_backend_destroy(f->be);
	blk_disk_close(&f->disk);
	if (f->path[0])
		unlink(f->path);
	if (f->irq_fd >= 0)
		close(f->irq_fd);
	free(f->ram);
	free(f);
	return 0;
}

/* Guest memory for @size bytes after a random gap, aligned to @align. */
static uint64_t guest_alloc(struct fixture *f, uint64_t size, uint64_t align)
{
	uint64_t gpa = f->next_gpa + rand_r(&f->seed) % 200;

	gpa = (gpa + align - 1) & ~(align - 1);
	assert_true(gpa + size <= RAM_GPA + RAM_SIZE);
	f->next_gpa = gpa + size;
	return gpa;
}

static void *host(struct fixture *f, uint64_t gpa)
{
	return f->ram + (gpa - RAM_GPA);
}

static void add_buf(struct virtq_chain *c, uint64_t gpa, uint32_t len,
		    bool writable)
{
	c->bufs[c->nr_bufs++] = (struct virtq_buf){
		.gpa = gpa, .len = len, .device_writable = writable,
	};
	if (writable) {
		c->writable_len += len;
	} else {
		c->nr_readable++;
		c->readable_len += len;
	}
}

static void put_header(struct fixture *f, uint64_t gpa, uint32_t type,
		       uint64_t sector)
{
	uint32_t t = htole32(type), reserved = 0;
	uint64_t s = htole64(sector);

	memcpy(host(f, gpa), &t, 4);
	memcpy(host(f, gpa + 4), &reserved, 4);
	memcpy(host(f, gpa + 8), &s, 8);
}

/*
 * The Linux layout: header, one data buffer (writable for IN and GET_ID),
 * status byte. Returns the data buffer's gpa.
 */
static uint64_t build(struct fixture *f, uint32_t type, uint64_t sector,
		      uint32_t data_len, bool data_writable)
{
	uint64_t hdr = guest_alloc(f, 16, 8), data = 0;

	memset(&f->chain, 0, sizeof(f->chain));
	put_header(f, hdr, type, sector);
	add_buf(&f->chain, hdr, 16, false);
	if (data_len) {
		data = guest_alloc(f, data_len, 1);
		add_buf(&f->chain, data, data_len, data_writable);
	}
	add_buf(&f->chain, guest_alloc(f, 1, 1), 1, true);
	return data;
}

static uint8_t parse(struct fixture *f)
{
	return virtio_blk_parse(&f->chain, &f->mem, &f->lim, &f->req);
}

static void assert_status_at_end(struct fixture *f)
{
	const struct virtq_buf *last = &f->chain.bufs[f->chain.nr_bufs - 1];

	assert_true(f->req.has_status);
	assert_int_equal(f->req.status_gpa, last->gpa + last->len - 1);
}

static void test_parse_in_out_flush_get_id(void **state)
{
	struct fixture *f = *state;
	uint64_t data;

	data = build(f, VIRTIO_BLK_T_IN, 3, 2 * SECTOR, true);
	assert_int_equal(parse(f), VIRTIO_BLK_S_OK);
	assert_status_at_end(f);
	assert_int_equal(f->req.type, VIRTIO_BLK_T_IN);
	assert_int_equal(f->req.sector, 3);
	assert_int_equal(f->req.data_len, 2 * SECTOR);
	assert_int_equal(f->req.nr_segs, 1);
	assert_ptr_equal(f->req.segs[0].iov_base, host(f, data));

	data = build(f, VIRTIO_BLK_T_OUT, DISK_SECTORS - 1, SECTOR, false);
	assert_int_equal(parse(f), VIRTIO_BLK_S_OK);
	assert_status_at_end(f);
	assert_int_equal(f->req.data_len, SECTOR);
	assert_ptr_equal(f->req.segs[0].iov_base, host(f, data));

	build(f, VIRTIO_BLK_T_FLUSH, 0, 0, false);
	assert_int_equal(parse(f), VIRTIO_BLK_S_OK);
	assert_int_equal(f->req.nr_segs, 0);

	data = build(f, VIRTIO_BLK_T_GET_ID, 0, VIRTIO_BLK_ID_BYTES, true);
	assert_int_equal(parse(f), VIRTIO_BLK_S_OK);
	assert_int_equal(f->req.data_len, VIRTIO_BLK_ID_BYTES);
	/* A larger buffer still gets 20 bytes only. */
	build(f, VIRTIO_BLK_T_GET_ID, 0, 64, true);
	assert_int_equal(parse(f), VIRTIO_BLK_S_OK);
	assert_int_equal(f->req.data_len, VIRTIO_BLK_ID_BYTES);
}

/* Buffer boundaries carry no meaning: header split, status with data. */
static void test_parse_any_layout(void **state)
{
	struct fixture *f = *state;
	uint64_t hdr = guest_alloc(f, 16, 8);
	uint64_t tail = guest_alloc(f, SECTOR + 1, 1);

	put_header(f, hdr, VIRTIO_BLK_T_IN, 5);
	add_buf(&f->chain, hdr, 8, false);
	add_buf(&f->chain, hdr + 8, 8, false);
	add_buf(&f->chain, tail, SECTOR + 1, true);
	assert_int_equal(parse(f), VIRTIO_BLK_S_OK);
	assert_int_equal(f->req.sector, 5);
	assert_int_equal(f->req.data_len, SECTOR);
	assert_ptr_equal(f->req.segs[0].iov_base, host(f, tail));
	assert_int_equal(f->req.status_gpa, tail + SECTOR);
}

static void test_parse_unsupported_type(void **state)
{
	struct fixture *f = *state;

	build(f, 3, 0, 0, false);
	assert_int_equal(parse(f), VIRTIO_BLK_S_UNSUPP);
	assert_status_at_end(f);
	build(f, 0xffffffff, 0, SECTOR, true);
	assert_int_equal(parse(f), VIRTIO_BLK_S_UNSUPP);
}

static void test_parse_sector_range(void **state)
{
	struct fixture *f = *state;

	/* The last sector is fine; one more is not. */
	build(f, VIRTIO_BLK_T_IN, DISK_SECTORS - 2, 2 * SECTOR, true);
	assert_int_equal(parse(f), VIRTIO_BLK_S_OK);
	build(f, VIRTIO_BLK_T_IN, DISK_SECTORS - 1, 2 * SECTOR, true);
	assert_int_equal(parse(f), VIRTIO_BLK_S_IOERR);
	assert_status_at_end(f);
	build(f, VIRTIO_BLK_T_OUT, DISK_SECTORS, SECTOR, false);
	assert_int_equal(parse(f), VIRTIO_BLK_S_IOERR);
	/* sector + n wraps u64 (and sector * 512 would too). */
	build(f, VIRTIO_BLK_T_IN, UINT64_MAX, SECTOR, true);
	assert_int_equal(parse(f), VIRTIO_BLK_S_IOERR);
	build(f, VIRTIO_BLK_T_OUT, UINT64_MAX - 1, 2 * SECTOR, false);
	assert_int_equal(parse(f), VIRTIO_BLK_S_IOERR);
	build(f, VIRTIO_BLK_T_IN, 1ull << 55, SECTOR, true);
	assert_int_equal(parse(f), VIRTIO_BLK_S_IOERR);
}

static void test_parse_partial_sector(void **state)
{
	struct fixture *f = *state;

	build(f, VIRTIO_BLK_T_IN, 0, SECTOR + 1, true);
	assert_int_equal(parse(f), VIRTIO_BLK_S_IOERR);
	build(f, VIRTIO_BLK_T_OUT, 0, 100, false);
	assert_int_equal(parse(f), VIRTIO_BLK_S_IOERR);
}

static void test_parse_header_too_short(void **state)
{
	struct fixture *f = *state;
	uint64_t hdr = guest_alloc(f, 16, 8);

	put_header(f, hdr, VIRTIO_BLK_T_FLUSH, 0);
	add_buf(&f->chain, hdr, 15, false);
	add_buf(&f->chain, guest_alloc(f, 1, 1), 1, true);
	assert_int_equal(parse(f), VIRTIO_BLK_S_IOERR);
	assert_status_at_end(f);
}

static void test_parse_status_unreachable(void **state)
{
	struct fixture *f = *state;
	uint64_t hdr = guest_alloc(f, 16, 8);

	/* No writable buffer at all: the last one is readable. */
	put_header(f, hdr, VIRTIO_BLK_T_FLUSH, 0);
	add_buf(&f->chain, hdr, 16, false);
	add_buf(&f->chain, guest_alloc(f, 1, 1), 1, false);
	assert_int_equal(parse(f), VIRTIO_BLK_S_IOERR);
	assert_false(f->req.has_status);

	/* Status buffer empty, or outside guest RAM. */
	build(f, VIRTIO_BLK_T_FLUSH, 0, 0, false);
	f->chain.bufs[1].len = 0;
	assert_int_equal(parse(f), VIRTIO_BLK_S_IOERR);
	assert_false(f->req.has_status);
	build(f, VIRTIO_BLK_T_FLUSH, 0, 0, false);
	f->chain.bufs[1].gpa = RAM_GPA + RAM_SIZE;
	assert_int_equal(parse(f), VIRTIO_BLK_S_IOERR);
	assert_false(f->req.has_status);

	/* No buffers. */
	memset(&f->chain, 0, sizeof(f->chain));
	assert_int_equal(parse(f), VIRTIO_BLK_S_IOERR);
	assert_false(f->req.has_status);
}

static void test_parse_wrong_direction(void **state)
{
	struct fixture *f = *state;
	uint64_t hdr;

	/* IN data readable, OUT data writable. */
	build(f, VIRTIO_BLK_T_IN, 0, SECTOR, false);
	assert_int_equal(parse(f), VIRTIO_BLK_S_IOERR);
	build(f, VIRTIO_BLK_T_OUT, 0, SECTOR, true);
	assert_int_equal(parse(f), VIRTIO_BLK_S_IOERR);
	build(f, VIRTIO_BLK_T_FLUSH, 0, SECTOR, true);
	assert_int_equal(parse(f), VIRTIO_BLK_S_IOERR);

	/* Header readable but the status byte too large a buffer for OUT. */
	memset(&f->chain, 0, sizeof(f->chain));
	hdr = guest_alloc(f, 16 + SECTOR, 8);
	put_header(f, hdr, VIRTIO_BLK_T_OUT, 0);
	add_buf(&f->chain, hdr, 16 + SECTOR, false);
	add_buf(&f->chain, guest_alloc(f, 2, 1), 2, true);
	assert_int_equal(parse(f), VIRTIO_BLK_S_IOERR);
	/* With exactly one writable byte the same chain is a valid OUT. */
	f->chain.bufs[1].len = 1;
	f->chain.writable_len = 1;
	assert_int_equal(parse(f), VIRTIO_BLK_S_OK);
	assert_ptr_equal(f->req.segs[0].iov_base, host(f, hdr + 16));
}

static void test_parse_write_to_read_only(void **state)
{
	struct fixture *f = *state;

	f->lim.read_only = true;
	build(f, VIRTIO_BLK_T_OUT, 0, SECTOR, false);
	assert_int_equal(parse(f), VIRTIO_BLK_S_IOERR);
	assert_status_at_end(f);
	build(f, VIRTIO_BLK_T_IN, 0, SECTOR, true);
	assert_int_equal(parse(f), VIRTIO_BLK_S_OK);
	build(f, VIRTIO_BLK_T_FLUSH, 0, 0, false);
	assert_int_equal(parse(f), VIRTIO_BLK_S_OK);
}

/* A chain of a header, @segs data buffers of @seg_len, a status byte. */
static void build_segmented(struct fixture *f, unsigned int segs,
			    uint32_t seg_len)
{
	uint64_t hdr = guest_alloc(f, 16, 8);

	memset(&f->chain, 0, sizeof(f->chain));
	put_header(f, hdr, VIRTIO_BLK_T_IN, 0);
	add_buf(&f->chain, hdr, 16, false);
	for (unsigned int i = 0; i < segs; i++)
		add_buf(&f->chain, guest_alloc(f, seg_len, 1), seg_len, true);
	add_buf(&f->chain, guest_alloc(f, 1, 1), 1, true);
}

static void test_parse_segment_limits(void **state)
{
	struct fixture *f = *state;

	build_segmented(f, f->lim.seg_max, SECTOR);
	assert_int_equal(parse(f), VIRTIO_BLK_S_OK);
	assert_int_equal(f->req.nr_segs, f->lim.seg_max);
	for (unsigned int i = 0; i < f->req.nr_segs; i++)
		assert_ptr_equal(f->req.segs[i].iov_base,
				 host(f, f->chain.bufs[i + 1].gpa));
	build_segmented(f, f->lim.seg_max + 1, SECTOR);
	assert_int_equal(parse(f), VIRTIO_BLK_S_IOERR);
	assert_status_at_end(f);

	build_segmented(f, 1, f->lim.size_max);
	assert_int_equal(parse(f), VIRTIO_BLK_S_OK);
	build_segmented(f, 1, f->lim.size_max + SECTOR);
	assert_int_equal(parse(f), VIRTIO_BLK_S_IOERR);
}

static void test_parse_data_outside_ram(void **state)
{
	struct fixture *f = *state;

	build(f, VIRTIO_BLK_T_IN, 0, SECTOR, true);
	f->chain.bufs[1].gpa = RAM_GPA + RAM_SIZE - 100;
	assert_int_equal(parse(f), VIRTIO_BLK_S_IOERR);
	/* A gpa + len that wraps. */
	build(f, VIRTIO_BLK_T_IN, 0, SECTOR, true);
	f->chain.bufs[1].gpa = UINT64_MAX - 10;
	assert_int_equal(parse(f), VIRTIO_BLK_S_IOERR);
	/* Header outside RAM. */
	build(f, VIRTIO_BLK_T_FLUSH, 0, 0, false);
	f->chain.bufs[0].gpa = RAM_GPA - 16;
	assert_int_equal(parse(f), VIRTIO_BLK_S_IOERR);
}

/* ---- Device level: a driver on the fake RAM, the sync engine on a file. */

static void mmio_write(struct fixture *f, uint64_t off, uint32_t val)
{
	uint32_t le = htole32(val);

	virtio_mmio_access(virtio_blk_mmio(f->blk), off, &le, 4, true);
}

static uint32_t mmio_read(struct fixture *f, uint64_t off, uint32_t len)
{
	uint64_t val = 0;

	virtio_mmio_access(virtio_blk_mmio(f->blk), off, &val, len, false);
	return (uint32_t)le64toh(val);
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

static void driver_up(struct fixture *f);

/* Creates disk, engine, loop and device, and brings the driver up. */
static void device_up_on(struct fixture *f, bool read_only, bool uring)
{
	uint8_t disk_bytes[DISK_SECTORS * SECTOR];
	char err[256];
	int fd;

	for (size_t i = 0; i < sizeof(disk_bytes); i++)
		disk_bytes[i] = (uint8_t)(i * 13 + 7);
	snprintf(f->path, sizeof(f->path), "/tmp/vblk-test-XXXXXX");
	fd = mkstemp(f->path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, disk_bytes, sizeof(disk_bytes)),
			 sizeof(disk_bytes));
	close(fd);
	assert_int_equal(blk_disk_open(&f->disk, f->path, read_only, err,
				       sizeof(err)), 0);
	assert_int_equal(io_loop_init(&f->loop, 16, err, sizeof(err)), 0);
	f->loop_ready = true;
	if (uring)
		assert_int_equal(blk_uring_create(&f->be, &f->disk, &f->loop), 0);
	else
		assert_int_equal(blk_sync_create(&f->be, &f->disk), 0);
	f->irq_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	assert_true(f->irq_fd >= 0);
	assert_int_equal(virtio_blk_create(&f->blk, &f->loop, f->be, QSIZE, "erovm-serial",
					   &f->mem, f->irq_fd, err, sizeof(err)), 0);

	driver_up(f);
}

static void device_up(struct fixture *f, bool read_only)
{
	device_up_on(f, read_only, false);
}

/* The driver's part: features, queue 0, DRIVER_OK. */
static void driver_up(struct fixture *f)
{
	f->desc_gpa = guest_alloc(f, 16 * QSIZE, 16);
	f->avail_gpa = guest_alloc(f, 6 + 2 * QSIZE, 2);
	f->used_gpa = guest_alloc(f, 6 + 8 * QSIZE, 4);

	assert_int_equal(mmio_read(f, 0x008, 4), VIRTIO_ID_BLOCK);
	mmio_write(f, 0x070, 1);
	mmio_write(f, 0x070, 1 | 2);
	mmio_write(f, 0x024, 0);
	/* All but EVENT_IDX, so every batch interrupts. */
	mmio_write(f, 0x020, mmio_read(f, 0x010, 4) & ~(1u << VIRTIO_F_EVENT_IDX));
	mmio_write(f, 0x014, 1);
	mmio_write(f, 0x024, 1);
	mmio_write(f, 0x020, 1);
	mmio_write(f, 0x070, 1 | 2 | 8);
	assert_true(mmio_read(f, 0x070, 4) & 8);
	mmio_write(f, 0x030, 0);
	mmio_write(f, 0x038, QSIZE);
	mmio_write(f, 0x080, (uint32_t)f->desc_gpa);
	mmio_write(f, 0x084, f->desc_gpa >> 32);
	mmio_write(f, 0x090, (uint32_t)f->avail_gpa);
	mmio_write(f, 0x094, f->avail_gpa >> 32);
	mmio_write(f, 0x0a0, (uint32_t)f->used_gpa);
	mmio_write(f, 0x0a4, f->used_gpa >> 32);
	mmio_write(f, 0x044, 1);
	mmio_write(f, 0x070, 1 | 2 | 8 | 4);
	assert_int_equal(mmio_read(f, 0x070, 4), 1 | 2 | 8 | 4);
}

/* Writes f->chain into the descriptor table and makes it available. */
static void make_available(struct fixture *f)
{
	uint16_t head = f->next_desc;

	for (unsigned int i = 0; i < f->chain.nr_bufs; i++) {
		const struct virtq_buf *b = &f->chain.bufs[i];
		uint16_t idx = (head + i) % QSIZE;
		uint64_t d = f->desc_gpa + 16 * idx;
		uint64_t addr = htole64(b->gpa);
		uint32_t len = htole32(b->len);
		uint16_t flags = (b->device_writable ? VRING_DESC_F_WRITE : 0) |
				 (i + 1 < f->chain.nr_bufs ? VRING_DESC_F_NEXT : 0);

		memcpy(host(f, d), &addr, 8);
		memcpy(host(f, d + 8), &len, 4);
		put16(f, d + 12, flags);
		put16(f, d + 14, (idx + 1) % QSIZE);
	}
	f->next_desc = (head + f->chain.nr_bufs) % QSIZE;
	put16(f, f->avail_gpa + 4 + 2 * (f->avail_idx % QSIZE), head);
	f->avail_idx++;
	__atomic_thread_fence(__ATOMIC_RELEASE);
	put16(f, f->avail_gpa + 2, f->avail_idx);
}

/*
 * Kicks the queue, runs the loop until the used ring has @n more entries
 * and returns the last one's length; checks the head and the interrupt.
 */
static uint32_t kick_and_wait(struct fixture *f, uint16_t n)
{
	uint16_t used_before = get16(f, f->used_gpa + 2);
	uint16_t used_after = used_before + n;
	uint16_t slot = (used_after - 1) % QSIZE;
	uint64_t irqs;

	mmio_write(f, 0x050, 0);
	/* Bounded (about 5 s): io_uring may punt fallocate to a worker. */
	for (int i = 0; i < 5000 && get16(f, f->used_gpa + 2) != used_after; i++) {
		assert_int_equal(io_loop_run_once(&f->loop, false), 0);
		if (get16(f, f->used_gpa + 2) != used_after)
			usleep(1000);
	}
	assert_int_equal(get16(f, f->used_gpa + 2), used_after);
	assert_int_equal(eventfd_read(f->irq_fd, &irqs), 0);
	assert_true(mmio_read(f, 0x060, 4) & VIRTIO_MMIO_INT_VRING);
	mmio_write(f, 0x064, VIRTIO_MMIO_INT_VRING);
	return get32(f, f->used_gpa + 4 + 8 * slot + 4);
}

static uint8_t status_of(struct fixture *f)
{
	const struct virtq_buf *last = &f->chain.bufs[f->chain.nr_bufs - 1];

	return *(uint8_t *)host(f, last->gpa + last->len - 1);
}

static void read_disk_file(struct fixture *f, uint64_t off, void *buf,
			   size_t len)
{
	int fd = open(f->path, O_RDONLY);

	assert_true(fd >= 0);
	assert_int_equal(pread(fd, buf, len, off), (ssize_t)len);
	close(fd);
}

static void test_device_requests_through_sync_engine(void **state)
{
	struct fixture *f = *state;
	uint8_t file[2 * SECTOR];
	uint64_t data;

	device_up(f, false);
	/* Config space: capacity, seg_max, blk_size. */
	assert_int_equal(mmio_read(f, 0x100, 4), DISK_SECTORS);
	assert_int_equal(mmio_read(f, 0x104, 4), 0);
	assert_int_equal(mmio_read(f, 0x100 + VIRTIO_BLK_CFG_SEG_MAX, 4),
			 VIRTIO_BLK_SEG_MAX);
	assert_int_equal(mmio_read(f, 0x100 + VIRTIO_BLK_CFG_BLK_SIZE, 4), SECTOR);
	mmio_write(f, 0x014, 0);
	assert_int_equal(mmio_read(f, 0x010, 4) &
			 (1u << VIRTIO_BLK_F_RO | 1u << VIRTIO_BLK_F_FLUSH),
			 1u << VIRTIO_BLK_F_FLUSH);

	/* OUT two sectors at sector 3. */
	data = build(f, VIRTIO_BLK_T_OUT, 3, 2 * SECTOR, false);
	memset(host(f, data), 0x3c, 2 * SECTOR);
	make_available(f);
	assert_int_equal(kick_and_wait(f, 1), 1);
	assert_int_equal(status_of(f), VIRTIO_BLK_S_OK);
	read_disk_file(f, 3 * SECTOR, file, sizeof(file));
	assert_memory_equal(file, host(f, data), sizeof(file));

	/* IN them back, from sector 2 (one old sector, one new). */
	data = build(f, VIRTIO_BLK_T_IN, 2, 2 * SECTOR, true);
	make_available(f);
	assert_int_equal(kick_and_wait(f, 1), 2 * SECTOR + 1);
	assert_int_equal(status_of(f), VIRTIO_BLK_S_OK);
	read_disk_file(f, 2 * SECTOR, file, sizeof(file));
	assert_memory_equal(file, host(f, data), sizeof(file));
	assert_int_equal(((uint8_t *)host(f, data))[SECTOR], 0x3c);

	/* GET_ID: the serial, zero padded. */
	data = build(f, VIRTIO_BLK_T_GET_ID, 0, VIRTIO_BLK_ID_BYTES, true);
	memset(host(f, data), 0xff, VIRTIO_BLK_ID_BYTES);
	make_available(f);
	assert_int_equal(kick_and_wait(f, 1), VIRTIO_BLK_ID_BYTES + 1);
	assert_memory_equal(host(f, data), "erovm-serial\0\0\0\0\0\0\0\0",
			    VIRTIO_BLK_ID_BYTES);

	build(f, VIRTIO_BLK_T_FLUSH, 0, 0, false);
	make_available(f);
	assert_int_equal(kick_and_wait(f, 1), 1);
	assert_int_equal(status_of(f), VIRTIO_BLK_S_OK);
}

static void test_device_reports_errors(void **state)
{
	struct fixture *f = *state;
	uint64_t hdr;

	device_up(f, false);
	build(f, VIRTIO_BLK_T_IN, DISK_SECTORS, SECTOR, true);
	make_available(f);
	assert_int_equal(kick_and_wait(f, 1), 1);
	assert_int_equal(status_of(f), VIRTIO_BLK_S_IOERR);

	build(f, 77, 0, 0, false);
	make_available(f);
	assert_int_equal(kick_and_wait(f, 1), 1);
	assert_int_equal(status_of(f), VIRTIO_BLK_S_UNSUPP);

	/* No status byte: returned with nothing written. */
	memset(&f->chain, 0, sizeof(f->chain));
	hdr = guest_alloc(f, 16, 8);
	put_header(f, hdr, VIRTIO_BLK_T_FLUSH, 0);
	add_buf(&f->chain, hdr, 16, false);
	make_available(f);
	assert_int_equal(kick_and_wait(f, 1), 0);

	/* The device keeps working after all that. */
	build(f, VIRTIO_BLK_T_FLUSH, 0, 0, false);
	make_available(f);
	assert_int_equal(kick_and_wait(f, 1), 1);
	assert_int_equal(status_of(f), VIRTIO_BLK_S_OK);
	assert_int_equal(mmio_read(f, 0x070, 4), 1 | 2 | 8 | 4);
}

static void test_device_batch_and_read_only(void **state)
{
	struct fixture *f = *state;
	uint8_t before[SECTOR], after[SECTOR];
	uint64_t status[3];

	device_up(f, true);
	mmio_write(f, 0x014, 0);
	assert_true(mmio_read(f, 0x010, 4) & 1u << VIRTIO_BLK_F_RO);
	read_disk_file(f, 0, before, sizeof(before));

	/* Three chains, one kick: a write refused, two reads done. */
	for (int i = 0; i < 3; i++) {
		uint64_t data = build(f, i == 1 ? VIRTIO_BLK_T_OUT : VIRTIO_BLK_T_IN,
				      0, SECTOR, i != 1);

		memset(host(f, data), 0xee, SECTOR);
		status[i] = f->chain.bufs[2].gpa;
		make_available(f);
	}
	kick_and_wait(f, 3);
	assert_int_equal(*(uint8_t *)host(f, status[0]), VIRTIO_BLK_S_OK);
	assert_int_equal(*(uint8_t *)host(f, status[1]), VIRTIO_BLK_S_IOERR);
	assert_int_equal(*(uint8_t *)host(f, status[2]), VIRTIO_BLK_S_OK);
	read_disk_file(f, 0, after, sizeof(after));
	assert_memory_equal(before, after, sizeof(before));
}

/* A reset while a read is in flight: its completion touches nothing. */
static void test_device_reset_drops_in_flight(void **state)
{
	struct fixture *f = *state;
	uint64_t data;
	uint8_t *status;

	device_up_on(f, false, true);
	data = build(f, VIRTIO_BLK_T_IN, 0, SECTOR, true);
	status = host(f, f->chain.bufs[2].gpa);
	*status = 0xaa;
	make_available(f);
	mmio_write(f, 0x050, 0);
	/* Pops the chain and queues the READV, which is not submitted yet. */
	assert_int_equal(io_loop_run_once(&f->loop, false), 0);
	assert_int_equal(f->loop.inflight, 3);
	mmio_write(f, 0x070, 0);
	for (int i = 0; i < 1000 && f->loop.inflight > 2; i++)
		assert_int_equal(io_loop_run_once(&f->loop, false), 0);
	assert_int_equal(f->loop.inflight, 2);
	assert_int_equal(io_loop_run_once(&f->loop, false), 0);
	assert_int_equal(get16(f, f->used_gpa + 2), 0);
	assert_int_equal(*status, 0xaa);

	/* The driver starts over on fresh rings; the device serves it. */
	f->next_desc = 0;
	f->avail_idx = 0;
	driver_up(f);
	data = build(f, VIRTIO_BLK_T_IN, 1, SECTOR, true);
	make_available(f);
	assert_int_equal(kick_and_wait(f, 1), SECTOR + 1);
	assert_int_equal(status_of(f), VIRTIO_BLK_S_OK);
	assert_int_equal(((uint8_t *)host(f, data))[0], (uint8_t)(SECTOR * 13 + 7));
}

static void test_serial_too_long_refused(void **state)
{
	struct fixture *f = *state;
	char err[256] = "";
	struct virtio_blk *blk = NULL;

	assert_int_equal(virtio_blk_create(&blk, NULL, NULL, QSIZE,
					   "123456789012345678901", &f->mem, 0,
					   err, sizeof(err)), -EINVAL);
	assert_null(blk);
	assert_non_null(strstr(err, "serial"));
}

/* A DISCARD or WRITE_ZEROES chain: header, @nr_bytes of segment data, status. */
static void build_range(struct fixture *f, uint32_t type, uint64_t sector,
			uint32_t nr_sectors, uint32_t flags, uint32_t nr_bytes)
{
	uint64_t hdr = guest_alloc(f, 16, 8), seg;
	uint64_t s = htole64(sector);
	uint32_t n = htole32(nr_sectors), fl = htole32(flags);

	memset(&f->chain, 0, sizeof(f->chain));
	put_header(f, hdr, type, 0);
	add_buf(&f->chain, hdr, 16, false);
	seg = guest_alloc(f, nr_bytes > 16 ? nr_bytes : 16, 8);
	memset(host(f, seg), 0, nr_bytes > 16 ? nr_bytes : 16);
	memcpy(host(f, seg), &s, 8);
	memcpy(host(f, seg + 8), &n, 4);
	memcpy(host(f, seg + 12), &fl, 4);
	add_buf(&f->chain, seg, nr_bytes, false);
	add_buf(&f->chain, guest_alloc(f, 1, 1), 1, true);
}

static void test_parse_discard_write_zeroes(void **state)
{
	struct fixture *f = *state;

	f->lim.range_sectors_max = 8;
	build_range(f, VIRTIO_BLK_T_DISCARD, 5, 8, 0, 16);
	assert_int_equal(parse(f), VIRTIO_BLK_S_OK);
	assert_status_at_end(f);
	assert_int_equal(f->req.type, VIRTIO_BLK_T_DISCARD);
	assert_int_equal(f->req.sector, 5);
	assert_int_equal(f->req.nr_sectors, 8);
	build_range(f, VIRTIO_BLK_T_WRITE_ZEROES, DISK_SECTORS - 1, 1,
		    VIRTIO_BLK_RANGE_F_UNMAP, 16);
	assert_int_equal(parse(f), VIRTIO_BLK_S_OK);
	assert_int_equal(f->req.sector, DISK_SECTORS - 1);
	assert_int_equal(f->req.nr_sectors, 1);

	/* Segment data not exactly one segment. */
	build_range(f, VIRTIO_BLK_T_DISCARD, 0, 1, 0, 15);
	assert_int_equal(parse(f), VIRTIO_BLK_S_IOERR);
	build_range(f, VIRTIO_BLK_T_DISCARD, 0, 1, 0, 17);
	assert_int_equal(parse(f), VIRTIO_BLK_S_IOERR);
	build_range(f, VIRTIO_BLK_T_WRITE_ZEROES, 0, 1, 0, 32);
	assert_int_equal(parse(f), VIRTIO_BLK_S_IOERR);
	build_range(f, VIRTIO_BLK_T_WRITE_ZEROES, 0, 1, 0, 0);
	assert_int_equal(parse(f), VIRTIO_BLK_S_IOERR);
	/* Writable data. */
	build_range(f, VIRTIO_BLK_T_DISCARD, 0, 1, 0, 16);
	f->chain.bufs[1].device_writable = true;
	f->chain.nr_readable = 1;
	f->chain.readable_len = 16;
	f->chain.writable_len = 17;
	assert_int_equal(parse(f), VIRTIO_BLK_S_IOERR);

	/* Beyond the disk, wrapping, too large. */
	build_range(f, VIRTIO_BLK_T_DISCARD, DISK_SECTORS - 1, 2, 0, 16);
	assert_int_equal(parse(f), VIRTIO_BLK_S_IOERR);
	build_range(f, VIRTIO_BLK_T_WRITE_ZEROES, UINT64_MAX, 2, 0, 16);
	assert_int_equal(parse(f), VIRTIO_BLK_S_IOERR);
	build_range(f, VIRTIO_BLK_T_WRITE_ZEROES, 0, 9, 0, 16);
	assert_int_equal(parse(f), VIRTIO_BLK_S_IOERR);

	/* UNMAP on DISCARD and unknown flags are unsupported (5.2.6.2). */
	build_range(f, VIRTIO_BLK_T_DISCARD, 0, 1, VIRTIO_BLK_RANGE_F_UNMAP, 16);
	assert_int_equal(parse(f), VIRTIO_BLK_S_UNSUPP);
	build_range(f, VIRTIO_BLK_T_WRITE_ZEROES, 0, 1, 2, 16);
	assert_int_equal(parse(f), VIRTIO_BLK_S_UNSUPP);
	/* And so are both on a read-only disk. */
	f->lim.read_only = true;
	build_range(f, VIRTIO_BLK_T_WRITE_ZEROES, 0, 1, 0, 16);
	assert_int_equal(parse(f), VIRTIO_BLK_S_UNSUPP);
	assert_status_at_end(f);
}

/* The segment may be split across buffers, even with the header. */
static void test_parse_range_any_layout(void **state)
{
	struct fixture *f = *state;
	uint64_t buf = guest_alloc(f, 32, 8);
	uint64_t s = htole64(7);
	uint32_t n = htole32(3), fl = 0;

	f->lim.range_sectors_max = 8;
	put_header(f, buf, VIRTIO_BLK_T_WRITE_ZEROES, 0);
	memcpy(host(f, buf + 16), &s, 8);
	memcpy(host(f, buf + 24), &n, 4);
	memcpy(host(f, buf + 28), &fl, 4);
	add_buf(&f->chain, buf, 20, false);
	add_buf(&f->chain, buf + 20, 12, false);
	add_buf(&f->chain, guest_alloc(f, 1, 1), 1, true);
	assert_int_equal(parse(f), VIRTIO_BLK_S_OK);
	assert_int_equal(f->req.sector, 7);
	assert_int_equal(f->req.nr_sectors, 3);
}

static uint32_t config32(struct fixture *f, uint32_t offset)
{
	return mmio_read(f, 0x100 + offset, 4);
}

static void test_device_discard_write_zeroes(void **state)
{
	struct fixture *f = *state;
	uint8_t file[3 * SECTOR];

	device_up_on(f, false, true);
	mmio_write(f, 0x014, 0);
	assert_int_equal(mmio_read(f, 0x010, 4) &
			 (1u << VIRTIO_BLK_F_DISCARD | 1u << VIRTIO_BLK_F_WRITE_ZEROES),
			 1u << VIRTIO_BLK_F_DISCARD | 1u << VIRTIO_BLK_F_WRITE_ZEROES);
	assert_int_equal(config32(f, VIRTIO_BLK_CFG_MAX_DISCARD_SECTORS),
			 VIRTIO_BLK_RANGE_SECTORS_MAX);
	assert_int_equal(config32(f, VIRTIO_BLK_CFG_MAX_DISCARD_SEG), 1);
	assert_int_equal(config32(f, VIRTIO_BLK_CFG_DISCARD_SECTOR_ALIGNMENT), 1);
	assert_int_equal(config32(f, VIRTIO_BLK_CFG_MAX_WRITE_ZEROES_SECTORS),
			 VIRTIO_BLK_RANGE_SECTORS_MAX);
	assert_int_equal(config32(f, VIRTIO_BLK_CFG_MAX_WRITE_ZEROES_SEG), 1);
	assert_int_equal(mmio_read(f, 0x100 + VIRTIO_BLK_CFG_WRITE_ZEROES_MAY_UNMAP, 1), 1);

	build_range(f, VIRTIO_BLK_T_WRITE_ZEROES, 2, 2, 0, 16);
	make_available(f);
	assert_int_equal(kick_and_wait(f, 1), 1);
	assert_int_equal(status_of(f), VIRTIO_BLK_S_OK);
	build_range(f, VIRTIO_BLK_T_DISCARD, 5, 1, 0, 16);
	make_available(f);
	assert_int_equal(kick_and_wait(f, 1), 1);
	assert_int_equal(status_of(f), VIRTIO_BLK_S_OK);
	read_disk_file(f, SECTOR, file, sizeof(file));
	for (size_t i = 0; i < sizeof(file); i++)
		assert_int_equal(file[i], i < SECTOR ? (uint8_t)((i + SECTOR) * 13 + 7) : 0);
	read_disk_file(f, 5 * SECTOR, file, SECTOR);
	for (size_t i = 0; i < SECTOR; i++)
		assert_int_equal(file[i], 0);
}

static void test_device_read_only_no_discard(void **state)
{
	struct fixture *f = *state;

	device_up(f, true);
	mmio_write(f, 0x014, 0);
	assert_int_equal(mmio_read(f, 0x010, 4) &
			 (1u << VIRTIO_BLK_F_DISCARD | 1u << VIRTIO_BLK_F_WRITE_ZEROES), 0);
	assert_int_equal(config32(f, VIRTIO_BLK_CFG_MAX_DISCARD_SECTORS), 0);
	build_range(f, VIRTIO_BLK_T_DISCARD, 0, 1, 0, 16);
	make_available(f);
	assert_int_equal(kick_and_wait(f, 1), 1);
	assert_int_equal(status_of(f), VIRTIO_BLK_S_UNSUPP);
}

/* A failed fdatasync: IOERR for that FLUSH and every later one. */
static void test_device_flush_error_sticky(void **state)
{
	struct fixture *f = *state;
	int pipe_fds[2], saved;

	device_up_on(f, false, true);
	saved = dup(f->disk.extents[0].fd);
	assert_true(saved >= 0);
	assert_int_equal(pipe(pipe_fds), 0);
	assert_true(dup2(pipe_fds[1], f->disk.extents[0].fd) >= 0);
	build(f, VIRTIO_BLK_T_FLUSH, 0, 0, false);
	make_available(f);
	assert_int_equal(kick_and_wait(f, 1), 1);
	assert_int_equal(status_of(f), VIRTIO_BLK_S_IOERR);
	assert_true(dup2(saved, f->disk.extents[0].fd) >= 0);
	build(f, VIRTIO_BLK_T_FLUSH, 0, 0, false);
	make_available(f);
	assert_int_equal(kick_and_wait(f, 1), 1);
	assert_int_equal(status_of(f), VIRTIO_BLK_S_IOERR);
	close(saved);
	close(pipe_fds[0]);
	close(pipe_fds[1]);
}

static void test_queue_size_checked(void **state)
{
	struct fixture *f = *state;
	static const unsigned int bad[] = { 0, 3, 100, 512 };
	struct virtio_blk *blk = NULL;
	char err[256] = "";

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(virtio_blk_create(&blk, NULL, NULL, bad[i], NULL,
						   &f->mem, 0, err, sizeof(err)),
				 -EINVAL);
		assert_null(blk);
		assert_non_null(strstr(err, "queue size"));
	}
	/* The largest queue the driver may set up is the one asked for. */
	device_up(f, false);
	mmio_write(f, 0x030, 0);
	assert_int_equal(mmio_read(f, 0x034, 4), QSIZE);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_parse_in_out_flush_get_id, setup, teardown),
		cmocka_unit_test_setup_teardown(test_parse_any_layout, setup, teardown),
		cmocka_unit_test_setup_teardown(test_parse_unsupported_type, setup, teardown),
		cmocka_unit_test_setup_teardown(test_parse_sector_range, setup, teardown),
		cmocka_unit_test_setup_teardown(test_parse_partial_sector, setup, teardown),
		cmocka_unit_test_setup_teardown(test_parse_header_too_short, setup, teardown),
		cmocka_unit_test_setup_teardown(test_parse_status_unreachable, setup, teardown),
		cmocka_unit_test_setup_teardown(test_parse_wrong_direction, setup, teardown),
		cmocka_unit_test_setup_teardown(test_parse_write_to_read_only, setup, teardown),
		cmocka_unit_test_setup_teardown(test_parse_segment_limits, setup, teardown),
		cmocka_unit_test_setup_teardown(test_parse_data_outside_ram, setup, teardown),
		cmocka_unit_test_setup_teardown(test_device_requests_through_sync_engine, setup, teardown),
		cmocka_unit_test_setup_teardown(test_device_reports_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_device_batch_and_read_only, setup, teardown),
		cmocka_unit_test_setup_teardown(test_device_reset_drops_in_flight, setup, teardown),
		cmocka_unit_test_setup_teardown(test_serial_too_long_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_parse_discard_write_zeroes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_parse_range_any_layout, setup, teardown),
		cmocka_unit_test_setup_teardown(test_device_discard_write_zeroes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_device_read_only_no_discard, setup, teardown),
		cmocka_unit_test_setup_teardown(test_device_flush_error_sticky, setup, teardown),
		cmocka_unit_test_setup_teardown(test_queue_size_checked, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
