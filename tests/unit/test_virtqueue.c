/*
 * Unit tests for devices/virtqueue.c: a driver built by hand in malloc'd
 * "guest RAM", with the rings at randomised offsets (the seed is printed;
 * VIRTQ_TEST_SEED=N repeats a run).
 */
#include <endian.h>
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include "devices/virtqueue.h"

#define RAM_GPA 0x40000000ull
#define RAM_SIZE 0x100000ull
/* A second region right after the first: adjacent, yet not one range. */
#define RAM2_GPA (RAM_GPA + RAM_SIZE)
#define RAM2_SIZE 0x10000ull

/* Zones of RAM for each kind of structure, so nothing overlaps. */
#define DESC_ZONE 0x00000	/* 64 KiB: desc table (<= 4 KiB) */
#define AVAIL_ZONE 0x10000	/* 64 KiB: avail ring (<= 518 bytes) */
#define USED_ZONE 0x20000	/* 64 KiB: used ring (<= 2054 bytes) */
#define TABLE_ZONE 0x30000	/* indirect tables */
#define DATA_ZONE 0x80000	/* buffers */

#define F_NEXT 1
#define F_WRITE 2
#define F_INDIRECT 4

struct fixture {
	struct guest_mem mem;
	uint8_t *ram, *ram2;
	struct virtq vq;
	uint16_t avail_idx;	/* the driver's next avail->idx */
	struct virtq_chain chain;
};

static unsigned int seed;

/* A random offset in [0, span) that is a multiple of @align. */
static uint64_t random_offset(uint64_t span, uint64_t align)
{
	return ((uint64_t)rand() % (span / align)) * align;
}

static uint8_t *host(struct fixture *f, uint64_t gpa)
{
	if (gpa >= RAM2_GPA)
		return f->ram2 + (gpa - RAM2_GPA);
	return f->ram + (gpa - RAM_GPA);
}

static void put16(struct fixture *f, uint64_t gpa, uint16_t val)
{
	val = htole16(val);
	memcpy(host(f, gpa), &val, sizeof(val));
}

static void put32(struct fixture *f, uint64_t gpa, uint32_t val)
{
	val = htole32(val);
	memcpy(host(f, gpa), &val, sizeof(val));
}

static void put64(struct fixture *f, uint64_t gpa, uint64_t val)
{
	val = htole64(val);
	memcpy(host(f, gpa), &val, sizeof(val));
}

static uint16_t get16(struct fixture *f, uint64_t gpa)
{
	uint16_t val;

	memcpy(&val, host(f, gpa), sizeof(val));
	return le16toh(val);
}

static uint32_t get32(struct fixture *f, uint64_t gpa)
{
	uint32_t val;

	memcpy(&val, host(f, gpa), sizeof(val));
	return le32toh(val);
}

static void set_desc(struct fixture *f, uint64_t table, unsigned int idx,
		     uint64_t addr, uint32_t len, uint16_t flags, uint16_t next)
{
	uint64_t gpa = table + idx * 16ull;

	put64(f, gpa, addr);
	put32(f, gpa + 8, len);
	put16(f, gpa + 12, flags);
	put16(f, gpa + 14, next);
}

static void desc(struct fixture *f, unsigned int idx, uint64_t addr,
		 uint32_t len, uint16_t flags, uint16_t next)
{
	set_desc(f, f->vq.desc_gpa, idx, addr, len, flags, next);
}

static uint64_t data_gpa(unsigned int n)
{
	return RAM_GPA + DATA_ZONE + n * 0x1000ull;
}

static uint64_t table_gpa(unsigned int n)
{
	return RAM_GPA + TABLE_ZONE + n * 0x2000ull;
}

/* The driver publishes chain @head. */
static void make_avail(struct fixture *f, uint16_t head)
{
	uint64_t slot = f->avail_idx % f->vq.size;

	put16(f, f->vq.avail_gpa + 4 + slot * 2, head);
	f->avail_idx++;
	put16(f, f->vq.avail_gpa + 2, f->avail_idx);
}

static uint64_t used_event_gpa(struct fixture *f)
{
	return f->vq.avail_gpa + 4 + f->vq.size * 2ull;
}

static uint64_t avail_event_gpa(struct fixture *f)
{
	return f->vq.used_gpa + 4 + f->vq.size * 8ull;
}

static int pop(struct fixture *f)
{
	return virtq_pop(&f->vq, &f->mem, &f->chain);
}

static int setup_queue(void **state, uint16_t size)
{
	struct fixture *f = calloc(1, sizeof(*f));

	if (!f)
		return -1;
	f->ram = calloc(1, RAM_SIZE);
	f->ram2 = calloc(1, RAM2_SIZE);
	if (!f->ram || !f->ram2 ||
	    guest_mem_add_region(&f->mem, RAM_GPA, RAM_SIZE, f->ram) ||
	    guest_mem_add_region(&f->mem, RAM2_GPA, RAM2_SIZE, f->ram2))
		return -1;
	f->vq.size = size;
	f->vq.desc_gpa = RAM_GPA + DESC_ZONE + random_offset(0x10000 - 16 * size, 16);
	f->vq.avail_gpa = RAM_GPA + AVAIL_ZONE + random_offset(0x10000 - 6 - 2 * size, 2);
	f->vq.used_gpa = RAM_GPA + USED_ZONE + random_offset(0x10000 - 6 - 8 * size, 4);
	if (virtq_validate(&f->vq, &f->mem))
		return -1;
	virtq_reset_progress(&f->vq);
	*state = f;
	return 0;
}

static int setup8(void **state)
{
	return setup_queue(state, 8);
}

static int setup256(void **state)
{
	return setup_queue(state, 256);
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	free(f->ram);
	free(f->ram2);
	free(f);
	return 0;
}

static void test_validate(void **state)
{
	struct fixture *f = *state;
	struct virtq vq = f->vq;

	assert_int_equal(virtq_validate(&vq, &f->mem), 0);
	for (unsigned int i = 0; i < 4; i++) {
		static const uint16_t bad_sizes[] = { 0, 3, 12, 512 };

		vq = f->vq;
		vq.size = bad_sizes[i];
		assert_int_equal(virtq_validate(&vq, &f->mem), -EINVAL);
	}

	/* Misaligned areas. */
	vq = f->vq;
	vq.desc_gpa += 8;
	assert_int_equal(virtq_validate(&vq, &f->mem), -EINVAL);
	vq = f->vq;
	vq.avail_gpa += 1;
	assert_int_equal(virtq_validate(&vq, &f->mem), -EINVAL);
	vq = f->vq;
	vq.used_gpa += 2;
	assert_int_equal(virtq_validate(&vq, &f->mem), -EINVAL);

	/* Areas running off RAM, by one byte of their trailing event field. */
	vq = f->vq;
	vq.desc_gpa = RAM2_GPA + RAM2_SIZE - 16 * vq.size + 16;
	assert_int_equal(virtq_validate(&vq, &f->mem), -EINVAL);
	vq.desc_gpa -= 16;
	assert_int_equal(virtq_validate(&vq, &f->mem), 0);
	vq = f->vq;
	vq.avail_gpa = RAM2_GPA + RAM2_SIZE - (6 + 2 * vq.size) + 2;
	assert_int_equal(virtq_validate(&vq, &f->mem), -EINVAL);
	vq = f->vq;
	vq.used_gpa = RAM2_GPA + RAM2_SIZE - (6 + 8 * vq.size) + 4;
	assert_int_equal(virtq_validate(&vq, &f->mem), -EINVAL);
	/* Straddling two adjacent regions. */
	vq = f->vq;
	vq.used_gpa = RAM2_GPA - 16;
	assert_int_equal(virtq_validate(&vq, &f->mem), -EINVAL);
	/* Outside RAM altogether, and near 2^64. */
	vq = f->vq;
	vq.desc_gpa = 0;
	assert_int_equal(virtq_validate(&vq, &f->mem), -EINVAL);
	vq = f->vq;
	vq.used_gpa = UINT64_MAX - 3;
	assert_int_equal(virtq_validate(&vq, &f->mem), -EINVAL);
}

/* Each area alone in a region of exactly its size: the sizes are exact. */
static void test_validate_exact_sizes(void **state)
{
	struct fixture *f = *state;
	uint16_t size = f->vq.size;
	uint64_t bytes[3] = { 16ull * size, 6 + 2ull * size, 6 + 8ull * size };

	for (unsigned int shorter = 0; shorter <= 3; shorter++) {
		struct guest_mem mem = { 0 };
		struct virtq vq = f->vq;
		uint64_t gpa[3];

		for (unsigned int i = 0; i < 3; i++) {
			uint64_t len = bytes[i] - (i == shorter);

			gpa[i] = RAM_GPA + 0x10000 * (i + 1);
			assert_int_equal(guest_mem_add_region(&mem, gpa[i], len,
							      f->ram), 0);
		}
		vq.desc_gpa = gpa[0];
		vq.avail_gpa = gpa[1];
		vq.used_gpa = gpa[2];
		assert_int_equal(virtq_validate(&vq, &mem),
				 shorter == 3 ? 0 : -EINVAL);
	}
}

static void test_empty_queue(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(pop(f), 0);
	assert_int_equal(f->vq.last_avail_idx, 0);
}

static void test_single_descriptor(void **state)
{
	struct fixture *f = *state;

	desc(f, 5, data_gpa(0), 512, 0, 0);
	make_avail(f, 5);
	assert_int_equal(pop(f), 1);
	assert_int_equal(f->chain.head, 5);
	assert_int_equal(f->chain.nr_bufs, 1);
	assert_int_equal(f->chain.nr_readable, 1);
	assert_int_equal(f->chain.readable_len, 512);
	assert_int_equal(f->chain.writable_len, 0);
	assert_int_equal(f->chain.bufs[0].gpa, data_gpa(0));
	assert_int_equal(f->chain.bufs[0].len, 512);
	assert_false(f->chain.bufs[0].device_writable);
	assert_int_equal(f->vq.last_avail_idx, 1);
	assert_int_equal(pop(f), 0);
}

static void test_multi_descriptor_chain(void **state)
{
	struct fixture *f = *state;

	/* A virtio-blk style request: header, data out, data in, status. */
	desc(f, 2, data_gpa(0), 16, F_NEXT, 7);
	desc(f, 7, data_gpa(1), 4096, F_NEXT, 0);
	desc(f, 0, data_gpa(2), 0xffffffff >> 20, F_NEXT | F_WRITE, 3);
	desc(f, 3, data_gpa(3), 1, F_WRITE, 6);	/* next ignored without NEXT */
	make_avail(f, 2);
	desc(f, 1, data_gpa(4), 8, F_WRITE, 0);
	make_avail(f, 1);

	assert_int_equal(pop(f), 1);
	assert_int_equal(f->chain.head, 2);
	assert_int_equal(f->chain.nr_bufs, 4);
	assert_int_equal(f->chain.nr_readable, 2);
	assert_int_equal(f->chain.readable_len, 16 + 4096);
	assert_int_equal(f->chain.writable_len, (0xffffffff >> 20) + 1);
	assert_int_equal(f->chain.bufs[1].gpa, data_gpa(1));
	assert_true(f->chain.bufs[2].device_writable);
	assert_int_equal(f->chain.bufs[3].gpa, data_gpa(3));

	/* A chain of writable buffers only. */
	assert_int_equal(pop(f), 1);
	assert_int_equal(f->chain.head, 1);
	assert_int_equal(f->chain.nr_bufs, 1);
	assert_int_equal(f->chain.nr_readable, 0);
	assert_int_equal(f->chain.writable_len, 8);
	assert_int_equal(pop(f), 0);
}

static void test_lengths_sum_in_64_bits(void **state)
{
	struct fixture *f = *state;
	struct guest_mem big = { 0 };
	static uint8_t page[4096];

	/* Pretend the buffers are huge: a fake 8 GiB region backs them. */
	assert_int_equal(guest_mem_add_region(&big, RAM_GPA, RAM_SIZE, f->ram), 0);
	assert_int_equal(guest_mem_add_region(&big, 0x1000000000ull, 0x200000000ull, page), 0);
	desc(f, 0, 0x1000000000ull, 0xffffffff, F_NEXT, 1);
	desc(f, 1, 0x1100000000ull, 0xffffffff, F_NEXT | F_WRITE, 2);
	desc(f, 2, 0x1000000000ull, 0xffffffff, F_WRITE, 0);
	make_avail(f, 0);
	/* Only addresses are recorded, so the fake region is never touched. */
	assert_int_equal(virtq_pop(&f->vq, &big, &f->chain), 1);
	assert_int_equal(f->chain.readable_len, 0xffffffffull);
	assert_int_equal(f->chain.writable_len, 2 * 0xffffffffull);
}

static void test_full_length_direct_chain(void **state)
{
	struct fixture *f = *state;
	uint16_t size = f->vq.size;

	/* Exactly size descriptors, in a scrambled order: allowed. */
	for (unsigned int i = 0; i < size; i++) {
		unsigned int idx = (i * 5) % size;
		unsigned int next = ((i + 1) * 5) % size;

		desc(f, idx, data_gpa(i % 64), 1,
		     i + 1 < size ? F_NEXT : F_WRITE, next);
	}
	make_avail(f, 0);
	assert_int_equal(pop(f), 1);
	assert_int_equal(f->chain.nr_bufs, size);
	assert_int_equal(f->chain.nr_readable, size - 1);
}

static void test_loops_are_refused(void **state)
{
	struct fixture *f = *state;
	uint16_t size = f->vq.size;

	/* a -> b -> a */
	desc(f, 3, data_gpa(0), 16, F_NEXT, 4);
	desc(f, 4, data_gpa(1), 16, F_NEXT, 3);
	make_avail(f, 3);
	assert_int_equal(pop(f), -EPROTO);
	assert_int_equal(f->vq.last_avail_idx, 0);

	/* a -> a */
	f->vq.last_avail_idx = f->avail_idx;
	desc(f, 6, data_gpa(0), 16, F_NEXT, 6);
	make_avail(f, 6);
	assert_int_equal(pop(f), -EPROTO);

	/* Every descriptor, then back to the first: size + 1 long. */
	f->vq.last_avail_idx = f->avail_idx;
	for (unsigned int i = 0; i < size; i++)
		desc(f, i, data_gpa(i % 64), 1, F_NEXT, (i + 1) % size);
	make_avail(f, 0);
	assert_int_equal(pop(f), -EPROTO);
}

static void test_next_out_of_range(void **state)
{
	struct fixture *f = *state;

	desc(f, 0, data_gpa(0), 16, F_NEXT, f->vq.size);
	make_avail(f, 0);
	assert_int_equal(pop(f), -EPROTO);

	f->vq.last_avail_idx = f->avail_idx;
	desc(f, 0, data_gpa(0), 16, F_NEXT, 0xffff);
	make_avail(f, 0);
	assert_int_equal(pop(f), -EPROTO);

	/* The head itself out of range. */
	f->vq.last_avail_idx = f->avail_idx;
	make_avail(f, f->vq.size);
	assert_int_equal(pop(f), -EPROTO);
}

static void test_writable_before_readable(void **state)
{
	struct fixture *f = *state;

	desc(f, 0, data_gpa(0), 16, F_NEXT, 1);
	desc(f, 1, data_gpa(1), 16, F_NEXT | F_WRITE, 2);
	desc(f, 2, data_gpa(2), 16, 0, 0);
	make_avail(f, 0);
	assert_int_equal(pop(f), -EPROTO);
}

static void test_buffers_outside_ram(void **state)
{
	struct fixture *f = *state;
	static const struct {
		uint64_t gpa;
		uint32_t len;
	} bad[] = {
		{ 0, 16 },				/* below RAM */
		{ RAM_GPA - 8, 16 },			/* starts below */
		{ RAM2_GPA + RAM2_SIZE - 8, 16 },	/* runs off the end */
		{ RAM2_GPA - 8, 16 },			/* straddles two regions */
		{ UINT64_MAX - 10, 100 },		/* gpa + len wraps */
		{ UINT64_MAX, 1 },			/* ends at 2^64 */
		{ RAM_GPA + DATA_ZONE, 0 },		/* empty */
		{ RAM_GPA, 0xffffffff },		/* longer than RAM */
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		f->vq.last_avail_idx = f->avail_idx;
		/* Bad buffer after a good one, so the walk reaches it. */
		desc(f, 0, data_gpa(0), 16, F_NEXT, 1);
		desc(f, 1, bad[i].gpa, bad[i].len, F_WRITE, 0);
		make_avail(f, 0);
		assert_int_equal(pop(f), -EPROTO);
	}

	/* The last byte of RAM is fine. */
	f->vq.last_avail_idx = f->avail_idx;
	desc(f, 0, RAM2_GPA + RAM2_SIZE - 1, 1, 0, 0);
	make_avail(f, 0);
	assert_int_equal(pop(f), 1);
}

static void test_avail_idx_too_far_ahead(void **state)
{
	struct fixture *f = *state;
	uint16_t size = f->vq.size;

	for (unsigned int i = 0; i < size; i++) {
		desc(f, i, data_gpa(i % 64), 8, 0, 0);
		make_avail(f, i);
	}
	/* Exactly size available: fine. */
	for (unsigned int i = 0; i < size; i++) {
		assert_int_equal(pop(f), 1);
		assert_int_equal(f->chain.head, i);
	}
	assert_int_equal(pop(f), 0);

	/* size + 1 ahead, and far ahead (also "behind" modulo 2^16). */
	put16(f, f->vq.avail_gpa + 2, f->vq.last_avail_idx + size + 1);
	assert_int_equal(pop(f), -EPROTO);
	put16(f, f->vq.avail_gpa + 2, f->vq.last_avail_idx - 1);
	assert_int_equal(pop(f), -EPROTO);
	assert_int_equal(f->vq.last_avail_idx, size);
}

static void test_avail_index_wraps(void **state)
{
	struct fixture *f = *state;

	/* Start just below 2^16: the ring slots continue modulo size. */
	f->vq.last_avail_idx = 0xfffe;
	f->avail_idx = 0xfffe;
	for (unsigned int i = 0; i < 4; i++) {
		desc(f, i, data_gpa(i), 8, 0, 0);
		make_avail(f, i);
	}
	assert_int_equal(f->avail_idx, 2);
	for (unsigned int i = 0; i < 4; i++) {
		assert_int_equal(pop(f), 1);
		assert_int_equal(f->chain.head, i);
	}
	assert_int_equal(f->vq.last_avail_idx, 2);
	assert_int_equal(pop(f), 0);
}

static void test_indirect_valid(void **state)
{
	struct fixture *f = *state;
	uint64_t table = table_gpa(0);

	/* Entries in the table chain out of order, starting at entry 0. */
	set_desc(f, table, 0, data_gpa(0), 16, F_NEXT, 2);
	set_desc(f, table, 2, data_gpa(1), 100, F_NEXT, 1);
	set_desc(f, table, 1, data_gpa(2), 1, F_WRITE, 0);
	/* WRITE on the indirect descriptor itself is ignored (2.7.5.3.2). */
	desc(f, 4, table, 3 * 16, F_INDIRECT | F_WRITE, 0);
	make_avail(f, 4);
	assert_int_equal(pop(f), 1);
	assert_int_equal(f->chain.head, 4);
	assert_int_equal(f->chain.nr_bufs, 3);
	assert_int_equal(f->chain.nr_readable, 2);
	assert_int_equal(f->chain.readable_len, 116);
	assert_int_equal(f->chain.writable_len, 1);
	assert_int_equal(f->chain.bufs[2].gpa, data_gpa(2));

	/* Direct descriptors followed by an indirect one. */
	desc(f, 0, data_gpa(3), 16, F_NEXT, 1);
	desc(f, 1, table, 3 * 16, F_INDIRECT, 0);
	make_avail(f, 0);
	assert_int_equal(pop(f), 1);
	assert_int_equal(f->chain.nr_bufs, 4);
	assert_int_equal(f->chain.bufs[0].gpa, data_gpa(3));
	assert_int_equal(f->chain.bufs[1].gpa, data_gpa(0));
}

static void test_indirect_max_chain(void **state)
{
	struct fixture *f = *state;
	uint64_t table = table_gpa(0);

	for (unsigned int i = 0; i < VIRTQ_MAX_CHAIN + 1; i++)
		set_desc(f, table, i, data_gpa(i % 64), 4, F_NEXT, i + 1);
	set_desc(f, table, VIRTQ_MAX_CHAIN - 1, data_gpa(0), 4, 0, 0);
	desc(f, 0, table, VIRTQ_MAX_CHAIN * 16, F_INDIRECT, 0);
	make_avail(f, 0);
	assert_int_equal(pop(f), 1);
	assert_int_equal(f->chain.nr_bufs, VIRTQ_MAX_CHAIN);

	/* One more than bufs[] holds, in a table big enough for it. */
	set_desc(f, table, VIRTQ_MAX_CHAIN - 1, data_gpa(0), 4, F_NEXT, VIRTQ_MAX_CHAIN);
	set_desc(f, table, VIRTQ_MAX_CHAIN, data_gpa(0), 4, 0, 0);
	desc(f, 0, table, (VIRTQ_MAX_CHAIN + 1) * 16, F_INDIRECT, 0);
	make_avail(f, 0);
	assert_int_equal(pop(f), -EPROTO);

	/* A direct descriptor plus a full table: also one too many. */
	f->vq.last_avail_idx = f->avail_idx;
	desc(f, 1, data_gpa(0), 4, F_NEXT, 2);
	desc(f, 2, table, VIRTQ_MAX_CHAIN * 16, F_INDIRECT, 0);
	set_desc(f, table, VIRTQ_MAX_CHAIN - 1, data_gpa(0), 4, 0, 0);
	make_avail(f, 1);
	assert_int_equal(pop(f), -EPROTO);
}

static void test_indirect_violations(void **state)
{
	struct fixture *f = *state;
	uint64_t table = table_gpa(0), nested = table_gpa(1);
	static const struct {
		const char *what;
		uint64_t addr;
		uint32_t len;
		uint16_t flags;
	} bad[] = {
		{ "empty", 0, 0, F_INDIRECT },
		{ "not a multiple of 16", 0, 24, F_INDIRECT },
		{ "INDIRECT with NEXT", 0, 32, F_INDIRECT | F_NEXT },
		{ "table outside RAM", RAM2_GPA + RAM2_SIZE - 16, 32, F_INDIRECT },
		{ "table wraps", UINT64_MAX - 15, 32, F_INDIRECT },
	};

	set_desc(f, table, 0, data_gpa(0), 16, F_NEXT, 1);
	set_desc(f, table, 1, data_gpa(1), 16, 0, 0);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		print_message("indirect: %s\n", bad[i].what);
		f->vq.last_avail_idx = f->avail_idx;
		desc(f, 0, bad[i].addr ? bad[i].addr : table, bad[i].len,
		     bad[i].flags, 1);
		desc(f, 1, data_gpa(2), 16, 0, 0);
		make_avail(f, 0);
		assert_int_equal(pop(f), -EPROTO);
	}

	/* Nested: an entry of the table is itself indirect. */
	set_desc(f, nested, 0, data_gpa(3), 16, 0, 0);
	set_desc(f, table, 1, nested, 16, F_INDIRECT, 0);
	f->vq.last_avail_idx = f->avail_idx;
	desc(f, 0, table, 32, F_INDIRECT, 0);
	make_avail(f, 0);
	assert_int_equal(pop(f), -EPROTO);

	/* A loop inside the table. */
	set_desc(f, table, 1, data_gpa(1), 16, F_NEXT, 0);
	f->vq.last_avail_idx = f->avail_idx;
	make_avail(f, 0);
	assert_int_equal(pop(f), -EPROTO);

	/* next beyond the table's entries (but inside the queue size). */
	set_desc(f, table, 1, data_gpa(1), 16, F_NEXT, 2);
	f->vq.last_avail_idx = f->avail_idx;
	make_avail(f, 0);
	assert_int_equal(pop(f), -EPROTO);

	/* A writable entry before a readable one. */
	set_desc(f, table, 0, data_gpa(0), 16, F_NEXT | F_WRITE, 1);
	set_desc(f, table, 1, data_gpa(1), 16, 0, 0);
	f->vq.last_avail_idx = f->avail_idx;
	make_avail(f, 0);
	assert_int_equal(pop(f), -EPROTO);

	/* A buffer in the table outside RAM. */
	set_desc(f, table, 0, UINT64_MAX - 4, 16, 0, 0);
	f->vq.last_avail_idx = f->avail_idx;
	make_avail(f, 0);
	assert_int_equal(pop(f), -EPROTO);
}

static void test_push_writes_used_ring(void **state)
{
	struct fixture *f = *state;
	uint16_t size = f->vq.size;
	uint64_t used = f->vq.used_gpa;

	assert_int_equal(virtq_push(&f->vq, &f->mem, 5, 1234), 0);
	assert_int_equal(get32(f, used + 4), 5);
	assert_int_equal(get32(f, used + 8), 1234);
	assert_int_equal(get16(f, used + 2), 1);
	assert_int_equal(f->vq.used_idx, 1);

	/* Around the ring and past 2^16: slot = idx mod size. */
	f->vq.used_idx = 0xffff;
	assert_int_equal(virtq_push(&f->vq, &f->mem, 3, 7), 0);
	assert_int_equal(get32(f, used + 4 + (0xffff % size) * 8), 3);
	assert_int_equal(get32(f, used + 8 + (0xffff % size) * 8), 7);
	assert_int_equal(get16(f, used + 2), 0);
	assert_int_equal(virtq_push(&f->vq, &f->mem, 4, 9), 0);
	assert_int_equal(get32(f, used + 4), 4);
	assert_int_equal(get16(f, used + 2), 1);

	/* An unreachable used ring. */
	f->vq.used_gpa = 0;
	assert_int_equal(virtq_push(&f->vq, &f->mem, 0, 0), -EPROTO);
}

static void test_event_idx_crossed(void **state)
{
	(void)state;
	/* event in [old, new) */
	assert_true(virtq_event_idx_crossed(0, 1, 0));
	assert_false(virtq_event_idx_crossed(1, 1, 0));
	assert_true(virtq_event_idx_crossed(5, 10, 0));
	assert_false(virtq_event_idx_crossed(10, 10, 0));
	assert_false(virtq_event_idx_crossed(0, 5, 5));
	/* Wrapping across 0xffff -> 0x0000. */
	assert_true(virtq_event_idx_crossed(0xffff, 0x0000, 0xffff));
	assert_true(virtq_event_idx_crossed(0xffff, 0x0001, 0xfffe));
	assert_true(virtq_event_idx_crossed(0x0000, 0x0001, 0xffff));
	assert_false(virtq_event_idx_crossed(0x0001, 0x0001, 0xffff));
	assert_false(virtq_event_idx_crossed(0xfffe, 0x0001, 0xffff));
	assert_true(virtq_event_idx_crossed(0xfffe, 0xffff, 0xfffe));
	assert_false(virtq_event_idx_crossed(0xffff, 0xffff, 0xfffe));
}

static void test_event_idx_pop_updates_avail_event(void **state)
{
	struct fixture *f = *state;

	f->vq.event_idx = true;
	desc(f, 0, data_gpa(0), 8, 0, 0);
	desc(f, 1, data_gpa(1), 8, 0, 0);
	make_avail(f, 0);
	make_avail(f, 1);
	assert_int_equal(pop(f), 1);
	assert_int_equal(get16(f, avail_event_gpa(f)), 1);
	assert_int_equal(pop(f), 1);
	assert_int_equal(get16(f, avail_event_gpa(f)), 2);
	assert_int_equal(pop(f), 0);

	/* Without EVENT_IDX the field is left alone. */
	f->vq.event_idx = false;
	put16(f, avail_event_gpa(f), 0xabcd);
	make_avail(f, 0);
	assert_int_equal(pop(f), 1);
	assert_int_equal(get16(f, avail_event_gpa(f)), 0xabcd);
}

static void push_n(struct fixture *f, unsigned int n)
{
	for (unsigned int i = 0; i < n; i++)
		assert_int_equal(virtq_push(&f->vq, &f->mem, 0, 0), 0);
}

static void test_event_idx_notify(void **state)
{
	struct fixture *f = *state;

	f->vq.event_idx = true;
	/* The first check always notifies. */
	put16(f, used_event_gpa(f), 100);
	push_n(f, 1);
	assert_true(virtq_need_notify(&f->vq, &f->mem));
	assert_int_equal(f->vq.signalled_used, 1);

	/* Nothing new: no interrupt. */
	assert_false(virtq_need_notify(&f->vq, &f->mem));

	/* used_event = 3: the push making used idx 4 crosses it. */
	put16(f, used_event_gpa(f), 3);
	push_n(f, 2);				/* 1 -> 3 */
	assert_false(virtq_need_notify(&f->vq, &f->mem));
	push_n(f, 1);				/* 3 -> 4 */
	assert_true(virtq_need_notify(&f->vq, &f->mem));

	/* NO_INTERRUPT is ignored with EVENT_IDX. */
	put16(f, f->vq.avail_gpa, 1);
	put16(f, used_event_gpa(f), 4);
	push_n(f, 1);
	assert_true(virtq_need_notify(&f->vq, &f->mem));
}

static void test_event_idx_notify_wraps(void **state)
{
	struct fixture *f = *state;

	f->vq.event_idx = true;
	f->vq.used_idx = 0xfffd;
	f->vq.signalled_used = 0xfffd;
	f->vq.signalled_used_valid = true;

	/* Waiting for entry 0xffff: pushes to 0xffff do not reach it. */
	put16(f, used_event_gpa(f), 0xffff);
	push_n(f, 2);
	assert_int_equal(f->vq.used_idx, 0xffff);
	assert_false(virtq_need_notify(&f->vq, &f->mem));
	/* Pushing entry 0xffff wraps used idx to 0. */
	push_n(f, 1);
	assert_int_equal(get16(f, f->vq.used_gpa + 2), 0);
	assert_true(virtq_need_notify(&f->vq, &f->mem));

	/* Waiting for entry 0: a batch from 0 to 2 crosses it. */
	put16(f, used_event_gpa(f), 0);
	push_n(f, 2);
	assert_true(virtq_need_notify(&f->vq, &f->mem));

	/* A batch across the wrap that stops short of the event. */
	f->vq.used_idx = 0xfff0;
	f->vq.signalled_used = 0xfff0;
	put16(f, used_event_gpa(f), 0x0005);
	push_n(f, 0x15);			/* 0xfff0 -> 0x0005 */
	assert_false(virtq_need_notify(&f->vq, &f->mem));
	push_n(f, 1);
	assert_true(virtq_need_notify(&f->vq, &f->mem));
}

static void test_no_interrupt_flag(void **state)
{
	struct fixture *f = *state;

	put16(f, used_event_gpa(f), 0x1234);	/* ignored without EVENT_IDX */
	push_n(f, 1);
	assert_true(virtq_need_notify(&f->vq, &f->mem));
	assert_false(virtq_need_notify(&f->vq, &f->mem));

	put16(f, f->vq.avail_gpa, 1);		/* VIRTQ_AVAIL_F_NO_INTERRUPT */
	push_n(f, 1);
	assert_false(virtq_need_notify(&f->vq, &f->mem));

	put16(f, f->vq.avail_gpa, 0);
	push_n(f, 1);
	assert_true(virtq_need_notify(&f->vq, &f->mem));
}

static void test_reset_progress(void **state)
{
	struct fixture *f = *state;

	f->vq.last_avail_idx = 7;
	f->vq.used_idx = 9;
	f->vq.signalled_used = 9;
	f->vq.signalled_used_valid = true;
	virtq_reset_progress(&f->vq);
	assert_int_equal(f->vq.last_avail_idx, 0);
	assert_int_equal(f->vq.used_idx, 0);
	assert_int_equal(f->vq.signalled_used, 0);
	assert_false(f->vq.signalled_used_valid);
}

int main(void)
{
	const char *env = getenv("VIRTQ_TEST_SEED");
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_validate, setup8, teardown),
		cmocka_unit_test_setup_teardown(test_validate, setup256, teardown),
		cmocka_unit_test_setup_teardown(test_validate_exact_sizes, setup8, teardown),
		cmocka_unit_test_setup_teardown(test_validate_exact_sizes, setup256, teardown),
		cmocka_unit_test_setup_teardown(test_empty_queue, setup8, teardown),
		cmocka_unit_test_setup_teardown(test_single_descriptor, setup8, teardown),
		cmocka_unit_test_setup_teardown(test_multi_descriptor_chain, setup8, teardown),
		cmocka_unit_test_setup_teardown(test_lengths_sum_in_64_bits, setup8, teardown),
		cmocka_unit_test_setup_teardown(test_full_length_direct_chain, setup8, teardown),
		cmocka_unit_test_setup_teardown(test_full_length_direct_chain, setup256, teardown),
		cmocka_unit_test_setup_teardown(test_loops_are_refused, setup8, teardown),
		cmocka_unit_test_setup_teardown(test_loops_are_refused, setup256, teardown),
		cmocka_unit_test_setup_teardown(test_next_out_of_range, setup8, teardown),
		cmocka_unit_test_setup_teardown(test_writable_before_readable, setup8, teardown),
		cmocka_unit_test_setup_teardown(test_buffers_outside_ram, setup8, teardown),
		cmocka_unit_test_setup_teardown(test_avail_idx_too_far_ahead, setup8, teardown),
		cmocka_unit_test_setup_teardown(test_avail_idx_too_far_ahead, setup256, teardown),
		cmocka_unit_test_setup_teardown(test_avail_index_wraps, setup8, teardown),
		cmocka_unit_test_setup_teardown(test_indirect_valid, setup8, teardown),
		cmocka_unit_test_setup_teardown(test_indirect_max_chain, setup8, teardown),
		cmocka_unit_test_setup_teardown(test_indirect_violations, setup8, teardown),
		cmocka_unit_test_setup_teardown(test_push_writes_used_ring, setup8, teardown),
		cmocka_unit_test(test_event_idx_crossed),
		cmocka_unit_test_setup_teardown(test_event_idx_pop_updates_avail_event, setup8, teardown),
		cmocka_unit_test_setup_teardown(test_event_idx_notify, setup8, teardown),
		cmocka_unit_test_setup_teardown(test_event_idx_notify_wraps, setup8, teardown),
		cmocka_unit_test_setup_teardown(test_no_interrupt_flag, setup8, teardown),
		cmocka_unit_test_setup_teardown(test_reset_progress, setup8, teardown),
	};

	seed = env ? (unsigned int)strtoul(env, NULL, 0) : (unsigned int)time(NULL);
	printf("virtqueue: VIRTQ_TEST_SEED=%u\n", seed);
	srand(seed);
	return cmocka_run_group_tests_name("virtqueue", tests, NULL, NULL);
}
