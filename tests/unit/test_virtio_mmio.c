/*
 * Unit tests for devices/virtio_mmio.c: a driver poking the registers
 * through virtio_mmio_access(), a fake device model recording its calls,
 * and malloc'd guest RAM for the rings.
 */
#include <endian.h>
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>
#include <cmocka.h>

#include "devices/virtio_mmio.h"

#define RAM_GPA 0x80000000ull
#define RAM_SIZE 0x40000ull
#define DESC_GPA (RAM_GPA + 0x1000)
#define AVAIL_GPA (RAM_GPA + 0x2000)
#define USED_GPA (RAM_GPA + 0x3000)

#define REG_MAGIC 0x000
#define REG_VERSION 0x004
#define REG_DEVICE_ID 0x008
#define REG_VENDOR_ID 0x00c
#define REG_DEVICE_FEATURES 0x010
#define REG_DEVICE_FEATURES_SEL 0x014
#define REG_DRIVER_FEATURES 0x020
#define REG_DRIVER_FEATURES_SEL 0x024
#define REG_QUEUE_SEL 0x030
#define REG_QUEUE_NUM_MAX 0x034
#define REG_QUEUE_NUM 0x038
#define REG_QUEUE_READY 0x044
#define REG_QUEUE_NOTIFY 0x050
#define REG_INTERRUPT_STATUS 0x060
#define REG_INTERRUPT_ACK 0x064
#define REG_STATUS 0x070
#define REG_QUEUE_DESC_LOW 0x080
#define REG_QUEUE_DESC_HIGH 0x084
#define REG_QUEUE_DRIVER_LOW 0x090
#define REG_QUEUE_DRIVER_HIGH 0x094
#define REG_QUEUE_DEVICE_LOW 0x0a0
#define REG_QUEUE_DEVICE_HIGH 0x0a4
#define REG_CONFIG_GENERATION 0x0fc
#define REG_CONFIG 0x100

#define DEVICE_ID 2
#define DEVICE_FEATURES ((1ull << 5) | (1ull << 9) | (1ull << 55))
#define NR_QUEUES 2
#define QUEUE_SIZE_MAX 128
#define CONFIG_SIZE 12

#define STATUS_INIT (VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER)

struct fake_device {
	uint8_t config[CONFIG_SIZE];
	unsigned int config_reads, config_writes;
	unsigned int activations, resets;
	int activate_result;
};

struct fixture {
	struct guest_mem mem;
	uint8_t *ram;
	int irq_fd;
	struct fake_device dev;
	struct virtio_mmio vm;
};

static void fake_config_access(void *dev, uint32_t offset, void *data,
			       uint32_t len, bool is_write)
{
	struct fake_device *d = dev;

	assert_true(offset + len <= CONFIG_SIZE);
	if (is_write) {
		memcpy(d->config + offset, data, len);
		d->config_writes++;
	} else {
		memcpy(data, d->config + offset, len);
		d->config_reads++;
	}
}

static int fake_activate(void *dev)
{
	struct fake_device *d = dev;

	d->activations++;
	return d->activate_result;
}

static void fake_reset(void *dev)
{
	struct fake_device *d = dev;

	d->resets++;
}

static const struct virtio_device_ops fake_ops = {
	.config_access = fake_config_access,
	.activate = fake_activate,
	.reset = fake_reset,
};

static struct virtio_mmio_config device_config(struct fixture *f)
{
	return (struct virtio_mmio_config){
		.device_id = DEVICE_ID,
		.device_features = DEVICE_FEATURES,
		.nr_queues = NR_QUEUES,
		.queue_size_max = QUEUE_SIZE_MAX,
		.config_size = CONFIG_SIZE,
		.ops = &fake_ops,
		.dev = &f->dev,
	};
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct virtio_mmio_config cfg;

	if (!f)
		return -1;
	f->ram = calloc(1, RAM_SIZE);
	f->irq_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (!f->ram || f->irq_fd < 0 ||
	    guest_mem_add_region(&f->mem, RAM_GPA, RAM_SIZE, f->ram))
		return -1;
	for (unsigned int i = 0; i < CONFIG_SIZE; i++)
		f->dev.config[i] = 0x10 + i;
	cfg = device_config(f);
	if (virtio_mmio_init(&f->vm, &cfg, &f->mem, f->irq_fd))
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	virtio_mmio_destroy(&f->vm);
	close(f->irq_fd);
	free(f->ram);
	free(f);
	return 0;
}

static uint32_t rd(struct fixture *f, uint64_t offset)
{
	uint32_t val = 0xdeadbeef;

	virtio_mmio_access(&f->vm, offset, &val, sizeof(val), false);
	return le32toh(val);
}

static void wr(struct fixture *f, uint64_t offset, uint32_t val)
{
	val = htole32(val);
	virtio_mmio_access(&f->vm, offset, &val, sizeof(val), true);
}

/* Reads and clears an eventfd: the number of signals since the last read. */
static uint64_t drain(int fd)
{
	eventfd_t count;

	return eventfd_read(fd, &count) ? 0 : count;
}

static void accept_features(struct fixture *f, uint64_t features)
{
	wr(f, REG_DRIVER_FEATURES_SEL, 0);
	wr(f, REG_DRIVER_FEATURES, (uint32_t)features);
	wr(f, REG_DRIVER_FEATURES_SEL, 1);
	wr(f, REG_DRIVER_FEATURES, features >> 32);
}

static uint64_t offered(struct fixture *f)
{
	uint64_t features;

	wr(f, REG_DEVICE_FEATURES_SEL, 0);
	features = rd(f, REG_DEVICE_FEATURES);
	wr(f, REG_DEVICE_FEATURES_SEL, 1);
	return features | (uint64_t)rd(f, REG_DEVICE_FEATURES) << 32;
}

/* ACKNOWLEDGE, DRIVER, all offered features, FEATURES_OK. */
static void negotiate(struct fixture *f)
{
	wr(f, REG_STATUS, VIRTIO_STATUS_ACKNOWLEDGE);
	wr(f, REG_STATUS, STATUS_INIT);
	accept_features(f, offered(f));
	wr(f, REG_STATUS, STATUS_INIT | VIRTIO_STATUS_FEATURES_OK);
	assert_int_equal(rd(f, REG_STATUS), STATUS_INIT | VIRTIO_STATUS_FEATURES_OK);
}

static void set_queue_layout(struct fixture *f, unsigned int queue,
			     uint32_t num, uint64_t desc, uint64_t avail,
			     uint64_t used)
{
	wr(f, REG_QUEUE_SEL, queue);
	wr(f, REG_QUEUE_NUM, num);
	wr(f, REG_QUEUE_DESC_LOW, (uint32_t)desc);
	wr(f, REG_QUEUE_DESC_HIGH, desc >> 32);
	wr(f, REG_QUEUE_DRIVER_LOW, (uint32_t)avail);
	wr(f, REG_QUEUE_DRIVER_HIGH, avail >> 32);
	wr(f, REG_QUEUE_DEVICE_LOW, (uint32_t)used);
	wr(f, REG_QUEUE_DEVICE_HIGH, used >> 32);
}

/* The whole driver bring-up with queue 0 set up: the device is live. */
static void bring_up(struct fixture *f)
{
	negotiate(f);
	set_queue_layout(f, 0, 64, DESC_GPA, AVAIL_GPA, USED_GPA);
	wr(f, REG_QUEUE_READY, 1);
	assert_int_equal(rd(f, REG_QUEUE_READY), 1);
	wr(f, REG_STATUS, STATUS_INIT | VIRTIO_STATUS_FEATURES_OK |
			  VIRTIO_STATUS_DRIVER_OK);
	assert_true(virtio_mmio_live(&f->vm));
}

static void assert_needs_reset_raised(struct fixture *f)
{
	assert_true(rd(f, REG_STATUS) & VIRTIO_STATUS_NEEDS_RESET);
	assert_true(rd(f, REG_INTERRUPT_STATUS) & VIRTIO_MMIO_INT_CONFIG);
	assert_int_equal(drain(f->irq_fd), 1);
	assert_false(virtio_mmio_live(&f->vm));
}

static void test_identity_registers(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(rd(f, REG_MAGIC), 0x74726976);
	assert_int_equal(rd(f, REG_VERSION), 2);
	assert_int_equal(rd(f, REG_DEVICE_ID), DEVICE_ID);
	assert_int_equal(rd(f, REG_VENDOR_ID), 0x766f7265);
	assert_int_equal(rd(f, REG_STATUS), 0);
	assert_int_equal(rd(f, REG_CONFIG_GENERATION), 0);
	/* Write-only registers and holes read 0. */
	assert_int_equal(rd(f, REG_QUEUE_NOTIFY), 0);
	assert_int_equal(rd(f, REG_DRIVER_FEATURES), 0);
	assert_int_equal(rd(f, 0x0ac), 0);
	/* Read-only registers ignore writes. */
	wr(f, REG_MAGIC, 0);
	wr(f, REG_DEVICE_ID, 7);
	assert_int_equal(rd(f, REG_MAGIC), 0x74726976);
	assert_int_equal(rd(f, REG_DEVICE_ID), DEVICE_ID);
}

static void test_queue_num_max(void **state)
{
	struct fixture *f = *state;

	for (unsigned int q = 0; q < NR_QUEUES; q++) {
		wr(f, REG_QUEUE_SEL, q);
		assert_int_equal(rd(f, REG_QUEUE_NUM_MAX), QUEUE_SIZE_MAX);
		assert_int_equal(rd(f, REG_QUEUE_READY), 0);
	}
	/* A queue that does not exist: max 0, writes ignored. */
	wr(f, REG_QUEUE_SEL, NR_QUEUES);
	assert_int_equal(rd(f, REG_QUEUE_NUM_MAX), 0);
	negotiate(f);
	wr(f, REG_QUEUE_NUM, 8);
	wr(f, REG_QUEUE_READY, 1);
	assert_int_equal(rd(f, REG_QUEUE_READY), 0);
	assert_false(rd(f, REG_STATUS) & VIRTIO_STATUS_NEEDS_RESET);
}

static void test_device_features(void **state)
{
	struct fixture *f = *state;
	uint64_t transport = (1ull << VIRTIO_F_VERSION_1) |
			     (1ull << VIRTIO_F_EVENT_IDX) |
			     (1ull << VIRTIO_F_INDIRECT_DESC);

	assert_int_equal(offered(f), DEVICE_FEATURES | transport);
	wr(f, REG_DEVICE_FEATURES_SEL, 2);
	assert_int_equal(rd(f, REG_DEVICE_FEATURES), 0);
	wr(f, REG_DEVICE_FEATURES_SEL, 0xffffffff);
	assert_int_equal(rd(f, REG_DEVICE_FEATURES), 0);
}

static void test_features_ok_needs_version_1(void **state)
{
	struct fixture *f = *state;
	uint64_t all = offered(f);

	wr(f, REG_STATUS, VIRTIO_STATUS_ACKNOWLEDGE);
	wr(f, REG_STATUS, STATUS_INIT);
	accept_features(f, all & ~(1ull << VIRTIO_F_VERSION_1));
	wr(f, REG_STATUS, STATUS_INIT | VIRTIO_STATUS_FEATURES_OK);
	/* Refused: the bit is not kept, and that is not a violation. */
	assert_int_equal(rd(f, REG_STATUS), STATUS_INIT);
	assert_int_equal(drain(f->irq_fd), 0);

	/* A bit that was not offered is refused too. */
	accept_features(f, all | (1ull << 6));
	wr(f, REG_STATUS, STATUS_INIT | VIRTIO_STATUS_FEATURES_OK);
	assert_int_equal(rd(f, REG_STATUS), STATUS_INIT);

	/* The driver may retry with an acceptable set. */
	accept_features(f, (1ull << VIRTIO_F_VERSION_1) | (1ull << 5));
	wr(f, REG_STATUS, STATUS_INIT | VIRTIO_STATUS_FEATURES_OK);
	assert_int_equal(rd(f, REG_STATUS), STATUS_INIT | VIRTIO_STATUS_FEATURES_OK);
	assert_true(virtio_mmio_has_feature(&f->vm, VIRTIO_F_VERSION_1));
	assert_true(virtio_mmio_has_feature(&f->vm, 5));
	assert_false(virtio_mmio_has_feature(&f->vm, 9));
	assert_false(virtio_mmio_has_feature(&f->vm, VIRTIO_F_EVENT_IDX));
	assert_false(virtio_mmio_has_feature(&f->vm, 64));

	/* Features are fixed once FEATURES_OK is set. */
	wr(f, REG_DRIVER_FEATURES_SEL, 0);
	wr(f, REG_DRIVER_FEATURES, 0xffffffff);
	assert_false(virtio_mmio_has_feature(&f->vm, 9));
}

static void test_feature_selectors_beyond_64_bits(void **state)
{
	struct fixture *f = *state;

	wr(f, REG_STATUS, VIRTIO_STATUS_ACKNOWLEDGE);
	wr(f, REG_STATUS, STATUS_INIT);
	accept_features(f, 1ull << VIRTIO_F_VERSION_1);
	wr(f, REG_DRIVER_FEATURES_SEL, 2);
	wr(f, REG_DRIVER_FEATURES, 0xffffffff);
	assert_int_equal(f->vm.driver_features, 1ull << VIRTIO_F_VERSION_1);
}

static void test_queue_setup_and_ready(void **state)
{
	struct fixture *f = *state;
	const struct virtq *vq = &f->vm.queues[1].vq;

	negotiate(f);
	set_queue_layout(f, 1, 32, RAM_GPA + 0x10000, RAM_GPA + 0x11002,
			 RAM_GPA + 0x12004);
	assert_int_equal(vq->size, 32);
	assert_int_equal(vq->desc_gpa, RAM_GPA + 0x10000);
	assert_int_equal(vq->avail_gpa, RAM_GPA + 0x11002);
	assert_int_equal(vq->used_gpa, RAM_GPA + 0x12004);
	wr(f, REG_QUEUE_READY, 1);
	assert_int_equal(rd(f, REG_QUEUE_READY), 1);
	assert_true(f->vm.queues[1].ready);
	assert_true(vq->event_idx);
	assert_false(f->vm.queues[0].ready);

	/* Without QueueNum the queue gets QueueNumMax. */
	wr(f, REG_QUEUE_SEL, 0);
	wr(f, REG_QUEUE_DESC_LOW, (uint32_t)DESC_GPA);
	wr(f, REG_QUEUE_DESC_HIGH, DESC_GPA >> 32);
	wr(f, REG_QUEUE_DRIVER_LOW, (uint32_t)AVAIL_GPA);
	wr(f, REG_QUEUE_DRIVER_HIGH, AVAIL_GPA >> 32);
	wr(f, REG_QUEUE_DEVICE_LOW, (uint32_t)USED_GPA);
	wr(f, REG_QUEUE_DEVICE_HIGH, USED_GPA >> 32);
	wr(f, REG_QUEUE_READY, 1);
	assert_int_equal(f->vm.queues[0].vq.size, QUEUE_SIZE_MAX);
	assert_int_equal(rd(f, REG_QUEUE_READY), 1);

	assert_int_equal(f->dev.activations, 0);
	wr(f, REG_STATUS, STATUS_INIT | VIRTIO_STATUS_FEATURES_OK |
			  VIRTIO_STATUS_DRIVER_OK);
	assert_int_equal(f->dev.activations, 1);
	assert_true(virtio_mmio_live(&f->vm));
	assert_int_equal(drain(f->irq_fd), 0);
}

static void test_event_idx_follows_features(void **state)
{
	struct fixture *f = *state;

	wr(f, REG_STATUS, VIRTIO_STATUS_ACKNOWLEDGE);
	wr(f, REG_STATUS, STATUS_INIT);
	accept_features(f, 1ull << VIRTIO_F_VERSION_1);
	wr(f, REG_STATUS, STATUS_INIT | VIRTIO_STATUS_FEATURES_OK);
	set_queue_layout(f, 0, 16, DESC_GPA, AVAIL_GPA, USED_GPA);
	wr(f, REG_QUEUE_READY, 1);
	assert_true(f->vm.queues[0].ready);
	assert_false(f->vm.queues[0].vq.event_idx);
}

static void test_bad_layout_needs_reset(void **state)
{
	struct fixture *f = *state;

	negotiate(f);
	/* Descriptor table only 8-byte aligned. */
	set_queue_layout(f, 0, 16, DESC_GPA + 8, AVAIL_GPA, USED_GPA);
	wr(f, REG_QUEUE_READY, 1);
	assert_int_equal(rd(f, REG_QUEUE_READY), 0);
	assert_needs_reset_raised(f);
	assert_int_equal(rd(f, REG_CONFIG_GENERATION), 1);

	/* The driver resets and tries a used ring running off RAM. */
	wr(f, REG_STATUS, 0);
	assert_int_equal(rd(f, REG_INTERRUPT_STATUS), 0);
	negotiate(f);
	set_queue_layout(f, 0, 16, DESC_GPA, AVAIL_GPA,
			 RAM_GPA + RAM_SIZE - (6 + 8 * 16) + 4);
	wr(f, REG_QUEUE_READY, 1);
	assert_int_equal(rd(f, REG_QUEUE_READY), 0);
	assert_needs_reset_raised(f);

	/* DRIVER_OK afterwards does not start the broken device. */
	wr(f, REG_STATUS, rd(f, REG_STATUS) | VIRTIO_STATUS_DRIVER_OK);
	assert_int_equal(f->dev.activations, 0);
	assert_false(virtio_mmio_live(&f->vm));
}

static void test_ready_before_features_ok(void **state)
{
	struct fixture *f = *state;

	wr(f, REG_STATUS, VIRTIO_STATUS_ACKNOWLEDGE);
	wr(f, REG_STATUS, STATUS_INIT);
	set_queue_layout(f, 0, 16, DESC_GPA, AVAIL_GPA, USED_GPA);
	wr(f, REG_QUEUE_READY, 1);
	assert_int_equal(rd(f, REG_QUEUE_READY), 0);
	assert_needs_reset_raised(f);
}

static void test_bad_queue_num(void **state)
{
	struct fixture *f = *state;
	static const uint32_t bad[] = { 0, 3, 96, QUEUE_SIZE_MAX * 2, 0x80000000 };

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		wr(f, REG_STATUS, 0);
		negotiate(f);
		wr(f, REG_QUEUE_SEL, 0);
		wr(f, REG_QUEUE_NUM, bad[i]);
		assert_needs_reset_raised(f);
		assert_int_equal(f->vm.queues[0].vq.size, QUEUE_SIZE_MAX);
	}
}

static void test_queue_write_after_ready(void **state)
{
	struct fixture *f = *state;
	static const uint32_t regs[] = {
		REG_QUEUE_NUM, REG_QUEUE_DESC_LOW, REG_QUEUE_DESC_HIGH,
		REG_QUEUE_DRIVER_LOW, REG_QUEUE_DRIVER_HIGH,
		REG_QUEUE_DEVICE_LOW, REG_QUEUE_DEVICE_HIGH, REG_QUEUE_READY,
	};

	for (size_t i = 0; i < sizeof(regs) / sizeof(regs[0]); i++) {
		wr(f, REG_STATUS, 0);
		negotiate(f);
		set_queue_layout(f, 0, 16, DESC_GPA, AVAIL_GPA, USED_GPA);
		wr(f, REG_QUEUE_READY, 1);
		assert_int_equal(drain(f->irq_fd), 0);
		wr(f, regs[i], 16);
		assert_needs_reset_raised(f);
		assert_int_equal(f->vm.queues[0].vq.desc_gpa, DESC_GPA);
		assert_int_equal(f->vm.queues[0].vq.used_gpa, USED_GPA);
	}

	/* After DRIVER_OK, also on a queue that is not ready. */
	wr(f, REG_STATUS, 0);
	bring_up(f);
	wr(f, REG_QUEUE_SEL, 1);
	wr(f, REG_QUEUE_NUM, 16);
	assert_needs_reset_raised(f);
}

static void test_queue_ready_zero_stops_queue(void **state)
{
	struct fixture *f = *state;

	negotiate(f);
	set_queue_layout(f, 0, 16, DESC_GPA, AVAIL_GPA, USED_GPA);
	wr(f, REG_QUEUE_READY, 1);
	wr(f, REG_QUEUE_READY, 0);
	assert_int_equal(rd(f, REG_QUEUE_READY), 0);
	/* Not ready any more, so it may be set up again. */
	wr(f, REG_QUEUE_NUM, 32);
	wr(f, REG_QUEUE_READY, 1);
	assert_int_equal(rd(f, REG_QUEUE_READY), 1);
	assert_int_equal(f->vm.queues[0].vq.size, 32);
	assert_false(rd(f, REG_STATUS) & VIRTIO_STATUS_NEEDS_RESET);
}

static void test_reset_clears_state(void **state)
{
	struct fixture *f = *state;

	bring_up(f);
	f->vm.interrupt_status = VIRTIO_MMIO_INT_VRING;
	wr(f, REG_QUEUE_SEL, 1);
	wr(f, REG_STATUS, 0);
	assert_int_equal(f->dev.resets, 1);
	assert_int_equal(rd(f, REG_STATUS), 0);
	assert_int_equal(rd(f, REG_INTERRUPT_STATUS), 0);
	assert_int_equal(f->vm.driver_features, 0);
	assert_int_equal(f->vm.queue_sel, 0);
	assert_false(virtio_mmio_live(&f->vm));
	for (unsigned int q = 0; q < NR_QUEUES; q++) {
		wr(f, REG_QUEUE_SEL, q);
		assert_int_equal(rd(f, REG_QUEUE_READY), 0);
		assert_int_equal(f->vm.queues[q].vq.desc_gpa, 0);
		assert_int_equal(f->vm.queues[q].vq.size, QUEUE_SIZE_MAX);
		assert_true(f->vm.queues[q].notify_fd >= 0);
	}
	/* A reset device can be brought up again. */
	bring_up(f);
	assert_int_equal(f->dev.activations, 2);
}

static void test_status_order(void **state)
{
	struct fixture *f = *state;

	/* DRIVER before ACKNOWLEDGE. */
	wr(f, REG_STATUS, VIRTIO_STATUS_DRIVER);
	assert_needs_reset_raised(f);
	assert_int_equal(rd(f, REG_STATUS), VIRTIO_STATUS_NEEDS_RESET);

	/* DRIVER_OK without FEATURES_OK. */
	wr(f, REG_STATUS, 0);
	wr(f, REG_STATUS, STATUS_INIT);
	wr(f, REG_STATUS, STATUS_INIT | VIRTIO_STATUS_DRIVER_OK);
	assert_needs_reset_raised(f);
	assert_int_equal(f->dev.activations, 0);

	/* FEATURES_OK refused makes a DRIVER_OK in the same write invalid. */
	wr(f, REG_STATUS, 0);
	wr(f, REG_STATUS, STATUS_INIT);
	wr(f, REG_STATUS, STATUS_INIT | VIRTIO_STATUS_FEATURES_OK |
			  VIRTIO_STATUS_DRIVER_OK);
	assert_needs_reset_raised(f);
	assert_int_equal(f->dev.activations, 0);

	/* Clearing a bit. */
	wr(f, REG_STATUS, 0);
	negotiate(f);
	wr(f, REG_STATUS, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_FEATURES_OK);
	assert_needs_reset_raised(f);

	/* FAILED may be added at any point; writing back NEEDS_RESET is harmless. */
	wr(f, REG_STATUS, rd(f, REG_STATUS) | VIRTIO_STATUS_FAILED);
	assert_true(rd(f, REG_STATUS) & VIRTIO_STATUS_FAILED);
	assert_int_equal(drain(f->irq_fd), 0);
}

static void test_activate_failure_needs_reset(void **state)
{
	struct fixture *f = *state;

	f->dev.activate_result = -EIO;
	negotiate(f);
	wr(f, REG_STATUS, STATUS_INIT | VIRTIO_STATUS_FEATURES_OK |
			  VIRTIO_STATUS_DRIVER_OK);
	assert_int_equal(f->dev.activations, 1);
	assert_needs_reset_raised(f);
}

static void test_config_space(void **state)
{
	struct fixture *f = *state;
	uint8_t b;
	uint16_t h;
	uint32_t w;
	uint64_t q;

	virtio_mmio_access(&f->vm, REG_CONFIG + 3, &b, 1, false);
	assert_int_equal(b, 0x13);
	virtio_mmio_access(&f->vm, REG_CONFIG + 2, &h, 2, false);
	assert_int_equal(le16toh(h), 0x1312);
	virtio_mmio_access(&f->vm, REG_CONFIG + 8, &w, 4, false);
	assert_int_equal(le32toh(w), 0x1b1a1918);
	virtio_mmio_access(&f->vm, REG_CONFIG, &q, 8, false);
	assert_int_equal(le64toh(q), 0x1716151413121110ull);

	w = htole32(0xa1a2a3a4);
	virtio_mmio_access(&f->vm, REG_CONFIG + 4, &w, 4, true);
	assert_int_equal(f->dev.config[4], 0xa4);
	assert_int_equal(f->dev.config[7], 0xa1);
	assert_int_equal(f->dev.config_writes, 1);
}

static void test_config_space_bounds(void **state)
{
	struct fixture *f = *state;
	unsigned int reads = f->dev.config_reads;
	uint32_t w = 0xffffffff;
	uint64_t q = UINT64_MAX;
	uint8_t three[3] = { 0xff, 0xff, 0xff };

	/* Straddling the end of config space, past it, far past it. */
	virtio_mmio_access(&f->vm, REG_CONFIG + CONFIG_SIZE - 2, &w, 4, false);
	assert_int_equal(w, 0);
	virtio_mmio_access(&f->vm, REG_CONFIG + CONFIG_SIZE - 4, &q, 8, false);
	assert_int_equal(q, 0);
	virtio_mmio_access(&f->vm, REG_CONFIG + CONFIG_SIZE, &w, 1, false);
	assert_int_equal(w, 0);
	w = 0xffffffff;
	virtio_mmio_access(&f->vm, UINT64_MAX - 3, &w, 4, false);
	assert_int_equal(w, 0);
	/* An odd size inside it. */
	virtio_mmio_access(&f->vm, REG_CONFIG, three, 3, false);
	assert_int_equal(three[0] | three[1] | three[2], 0);
	assert_int_equal(f->dev.config_reads, reads);

	w = 0;
	virtio_mmio_access(&f->vm, REG_CONFIG + CONFIG_SIZE - 2, &w, 4, true);
	virtio_mmio_access(&f->vm, REG_CONFIG + CONFIG_SIZE, &w, 4, true);
	assert_int_equal(f->dev.config_writes, 0);
	assert_int_equal(f->dev.config[CONFIG_SIZE - 1], 0x10 + CONFIG_SIZE - 1);
}

static void test_odd_register_accesses_ignored(void **state)
{
	struct fixture *f = *state;
	uint16_t h = 0xffff;
	uint8_t b = 0xff;
	uint64_t q = UINT64_MAX;
	uint32_t w = 0xffffffff;

	virtio_mmio_access(&f->vm, REG_MAGIC, &h, 2, false);
	assert_int_equal(h, 0);
	virtio_mmio_access(&f->vm, REG_MAGIC, &b, 1, false);
	assert_int_equal(b, 0);
	virtio_mmio_access(&f->vm, REG_MAGIC, &q, 8, false);
	assert_int_equal(q, 0);
	virtio_mmio_access(&f->vm, REG_MAGIC + 2, &w, 4, false);
	assert_int_equal(w, 0);

	/* A one-byte or misaligned status write changes nothing. */
	b = VIRTIO_STATUS_ACKNOWLEDGE;
	virtio_mmio_access(&f->vm, REG_STATUS, &b, 1, true);
	w = htole32(VIRTIO_STATUS_ACKNOWLEDGE);
	virtio_mmio_access(&f->vm, REG_STATUS + 1, &w, 4, true);
	q = htole64(VIRTIO_STATUS_ACKNOWLEDGE);
	virtio_mmio_access(&f->vm, REG_STATUS, &q, 8, true);
	assert_int_equal(rd(f, REG_STATUS), 0);
	assert_int_equal(drain(f->irq_fd), 0);
}

static void test_queue_notify(void **state)
{
	struct fixture *f = *state;

	wr(f, REG_QUEUE_NOTIFY, 1);
	wr(f, REG_QUEUE_NOTIFY, 1);
	assert_int_equal(drain(f->vm.queues[1].notify_fd), 2);
	assert_int_equal(drain(f->vm.queues[0].notify_fd), 0);
	wr(f, REG_QUEUE_NOTIFY, 0);
	assert_int_equal(drain(f->vm.queues[0].notify_fd), 1);

	/* Not a queue: nothing happens. */
	wr(f, REG_QUEUE_NOTIFY, NR_QUEUES);
	wr(f, REG_QUEUE_NOTIFY, 0xffffffff);
	for (unsigned int q = 0; q < NR_QUEUES; q++)
		assert_int_equal(drain(f->vm.queues[q].notify_fd), 0);
	assert_int_equal(f->vm.queues[2].notify_fd, -1);
}

static void put16(struct fixture *f, uint64_t gpa, uint16_t val)
{
	val = htole16(val);
	memcpy(f->ram + (gpa - RAM_GPA), &val, sizeof(val));
}

static void test_used_notification_and_ack(void **state)
{
	struct fixture *f = *state;
	struct virtq *vq = &f->vm.queues[0].vq;

	bring_up(f);
	pthread_mutex_lock(&f->vm.lock);
	assert_int_equal(virtq_push(vq, &f->mem, 0, 1), 0);
	virtio_mmio_notify_used(&f->vm, 0);
	pthread_mutex_unlock(&f->vm.lock);
	assert_int_equal(rd(f, REG_INTERRUPT_STATUS), VIRTIO_MMIO_INT_VRING);
	assert_int_equal(drain(f->irq_fd), 1);

	/* ACK clears only the bits written. */
	f->vm.interrupt_status |= VIRTIO_MMIO_INT_CONFIG;
	wr(f, REG_INTERRUPT_ACK, VIRTIO_MMIO_INT_VRING);
	assert_int_equal(rd(f, REG_INTERRUPT_STATUS), VIRTIO_MMIO_INT_CONFIG);
	wr(f, REG_INTERRUPT_ACK, 0xffffffff);
	assert_int_equal(rd(f, REG_INTERRUPT_STATUS), 0);

	/* EVENT_IDX: the driver asks for an interrupt after entry 2 only. */
	put16(f, AVAIL_GPA + 4 + vq->size * 2, 2);
	pthread_mutex_lock(&f->vm.lock);
	assert_int_equal(virtq_push(vq, &f->mem, 0, 1), 0);
	virtio_mmio_notify_used(&f->vm, 0);
	pthread_mutex_unlock(&f->vm.lock);
	assert_int_equal(drain(f->irq_fd), 0);
	assert_int_equal(rd(f, REG_INTERRUPT_STATUS), 0);
	pthread_mutex_lock(&f->vm.lock);
	assert_int_equal(virtq_push(vq, &f->mem, 0, 1), 0);
	virtio_mmio_notify_used(&f->vm, 0);
	/* Queues that do not exist or are not ready are ignored. */
	virtio_mmio_notify_used(&f->vm, 1);
	virtio_mmio_notify_used(&f->vm, 7);
	pthread_mutex_unlock(&f->vm.lock);
	assert_int_equal(drain(f->irq_fd), 1);
}

static void test_no_interrupt_without_event_idx(void **state)
{
	struct fixture *f = *state;
	struct virtq *vq = &f->vm.queues[0].vq;

	wr(f, REG_STATUS, VIRTIO_STATUS_ACKNOWLEDGE);
	wr(f, REG_STATUS, STATUS_INIT);
	accept_features(f, 1ull << VIRTIO_F_VERSION_1);
	wr(f, REG_STATUS, STATUS_INIT | VIRTIO_STATUS_FEATURES_OK);
	set_queue_layout(f, 0, 16, DESC_GPA, AVAIL_GPA, USED_GPA);
	wr(f, REG_QUEUE_READY, 1);
	wr(f, REG_STATUS, STATUS_INIT | VIRTIO_STATUS_FEATURES_OK |
			  VIRTIO_STATUS_DRIVER_OK);

	put16(f, AVAIL_GPA, 1);		/* VIRTQ_AVAIL_F_NO_INTERRUPT */
	pthread_mutex_lock(&f->vm.lock);
	assert_int_equal(virtq_push(vq, &f->mem, 0, 1), 0);
	virtio_mmio_notify_used(&f->vm, 0);
	pthread_mutex_unlock(&f->vm.lock);
	assert_int_equal(drain(f->irq_fd), 0);

	put16(f, AVAIL_GPA, 0);
	pthread_mutex_lock(&f->vm.lock);
	assert_int_equal(virtq_push(vq, &f->mem, 0, 1), 0);
	virtio_mmio_notify_used(&f->vm, 0);
	pthread_mutex_unlock(&f->vm.lock);
	assert_int_equal(drain(f->irq_fd), 1);
}

static void test_set_needs_reset(void **state)
{
	struct fixture *f = *state;

	bring_up(f);
	pthread_mutex_lock(&f->vm.lock);
	virtio_mmio_set_needs_reset(&f->vm);
	pthread_mutex_unlock(&f->vm.lock);
	assert_needs_reset_raised(f);
	assert_int_equal(rd(f, REG_CONFIG_GENERATION), 1);
	/* Already flagged: no second interrupt. */
	pthread_mutex_lock(&f->vm.lock);
	virtio_mmio_set_needs_reset(&f->vm);
	pthread_mutex_unlock(&f->vm.lock);
	assert_int_equal(drain(f->irq_fd), 0);
	/* No vring interrupts from a device that needs a reset. */
	pthread_mutex_lock(&f->vm.lock);
	assert_int_equal(virtq_push(&f->vm.queues[0].vq, &f->mem, 0, 1), 0);
	virtio_mmio_notify_used(&f->vm, 0);
	pthread_mutex_unlock(&f->vm.lock);
	assert_int_equal(drain(f->irq_fd), 0);
}

static void test_init_validates(void **state)
{
	struct fixture *f = *state;
	struct virtio_mmio vm;
	struct virtio_mmio_config cfg;
	static const struct virtio_device_ops no_config_ops = {
		.activate = fake_activate,
		.reset = fake_reset,
	};

	cfg = device_config(f);
	cfg.nr_queues = 0;
	assert_int_equal(virtio_mmio_init(&vm, &cfg, &f->mem, f->irq_fd), -EINVAL);
	cfg.nr_queues = VIRTIO_MMIO_MAX_QUEUES + 1;
	assert_int_equal(virtio_mmio_init(&vm, &cfg, &f->mem, f->irq_fd), -EINVAL);
	cfg = device_config(f);
	cfg.queue_size_max = 96;
	assert_int_equal(virtio_mmio_init(&vm, &cfg, &f->mem, f->irq_fd), -EINVAL);
	cfg.queue_size_max = VIRTQ_MAX_SIZE * 2;
	assert_int_equal(virtio_mmio_init(&vm, &cfg, &f->mem, f->irq_fd), -EINVAL);
	cfg = device_config(f);
	cfg.config_size = VIRTIO_MMIO_REGION_SIZE - VIRTIO_MMIO_CONFIG_OFFSET + 1;
	assert_int_equal(virtio_mmio_init(&vm, &cfg, &f->mem, f->irq_fd), -EINVAL);
	cfg = device_config(f);
	cfg.device_features |= 1ull << VIRTIO_F_EVENT_IDX;
	assert_int_equal(virtio_mmio_init(&vm, &cfg, &f->mem, f->irq_fd), -EINVAL);
	cfg = device_config(f);
	cfg.ops = &no_config_ops;
	assert_int_equal(virtio_mmio_init(&vm, &cfg, &f->mem, f->irq_fd), -EINVAL);
	cfg = device_config(f);
	assert_int_equal(virtio_mmio_init(&vm, &cfg, &f->mem, -1), -EINVAL);

	/* No config space needs no config_access. */
	cfg.ops = &no_config_ops;
	cfg.config_size = 0;
	cfg.nr_queues = VIRTIO_MMIO_MAX_QUEUES;
	assert_int_equal(virtio_mmio_init(&vm, &cfg, &f->mem, f->irq_fd), 0);
	for (unsigned int q = 0; q < VIRTIO_MMIO_MAX_QUEUES; q++)
		assert_true(vm.queues[q].notify_fd >= 0);
	virtio_mmio_destroy(&vm);
}

static void test_device_spec(void **state)
{
	char buf[64];
	const char *want = "512@0xd0001000:6";

	(void)state;
	assert_int_equal(virtio_mmio_device_spec(buf, sizeof(buf), 0xd0001000, 6),
			 strlen(want));
	assert_string_equal(buf, want);
	assert_int_equal(virtio_mmio_device_spec(buf, strlen(want) + 1, 0xd0001000, 6),
			 strlen(want));
	assert_int_equal(virtio_mmio_device_spec(buf, strlen(want), 0xd0001000, 6),
			 -ENOSPC);
	assert_int_equal(virtio_mmio_device_spec(buf, sizeof(buf), 0x100000000ull, 14),
			 strlen("512@0x100000000:14"));
	assert_string_equal(buf, "512@0x100000000:14");
	assert_int_equal(virtio_mmio_device_spec(buf, sizeof(buf), 0xd0000000, 0), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_identity_registers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_queue_num_max, setup, teardown),
		cmocka_unit_test_setup_teardown(test_device_features, setup, teardown),
		cmocka_unit_test_setup_teardown(test_features_ok_needs_version_1, setup, teardown),
		cmocka_unit_test_setup_teardown(test_feature_selectors_beyond_64_bits, setup, teardown),
		cmocka_unit_test_setup_teardown(test_queue_setup_and_ready, setup, teardown),
		cmocka_unit_test_setup_teardown(test_event_idx_follows_features, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_layout_needs_reset, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ready_before_features_ok, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_queue_num, setup, teardown),
		cmocka_unit_test_setup_teardown(test_queue_write_after_ready, setup, teardown),
		cmocka_unit_test_setup_teardown(test_queue_ready_zero_stops_queue, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reset_clears_state, setup, teardown),
		cmocka_unit_test_setup_teardown(test_status_order, setup, teardown),
		cmocka_unit_test_setup_teardown(test_activate_failure_needs_reset, setup, teardown),
		cmocka_unit_test_setup_teardown(test_config_space, setup, teardown),
		cmocka_unit_test_setup_teardown(test_config_space_bounds, setup, teardown),
		cmocka_unit_test_setup_teardown(test_odd_register_accesses_ignored, setup, teardown),
		cmocka_unit_test_setup_teardown(test_queue_notify, setup, teardown),
		cmocka_unit_test_setup_teardown(test_used_notification_and_ack, setup, teardown),
		cmocka_unit_test_setup_teardown(test_no_interrupt_without_event_idx, setup, teardown),
		cmocka_unit_test_setup_teardown(test_set_needs_reset, setup, teardown),
		cmocka_unit_test_setup_teardown(test_init_validates, setup, teardown),
		cmocka_unit_test(test_device_spec),
	};

	return cmocka_run_group_tests_name("virtio_mmio", tests, NULL, NULL);
}
