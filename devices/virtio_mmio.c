/*
 * virtio_mmio.c - the virtio-mmio transport, register layout version 2
 * (virtio 1.x section 4.2.2).
 *
 * Access rules (4.2.2.2: the driver uses 32-bit aligned accesses for the
 * registers, field-sized ones for config space): a register access that
 * is not 4 bytes at a 4-byte aligned offset, a config access that is not
 * 1, 2, 4 or 8 bytes inside config_size, and any access to an offset no
 * register uses are ignored; ignored reads return 0. Reads of write-only
 * registers return 0, writes to read-only ones are ignored.
 *
 * Protocol violations the spec words as "the driver MUST NOT" and that
 * would leave us with inconsistent queue or feature state (queue writes
 * while the queue is ready or DRIVER_OK is set, a bad queue size or
 * layout, clearing status bits, status bits out of order) set
 * DEVICE_NEEDS_RESET: the device stops using its queues until reset.
 */
#include "devices/virtio_mmio.h"

#include <endian.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "vmm/range.h"

#define VIRTIO_MMIO_MAGIC_VALUE 0x000
#define VIRTIO_MMIO_VERSION 0x004
#define VIRTIO_MMIO_DEVICE_ID 0x008
#define VIRTIO_MMIO_VENDOR_ID 0x00c
#define VIRTIO_MMIO_DEVICE_FEATURES 0x010
#define VIRTIO_MMIO_DEVICE_FEATURES_SEL 0x014
#define VIRTIO_MMIO_DRIVER_FEATURES 0x020
#define VIRTIO_MMIO_DRIVER_FEATURES_SEL 0x024
#define VIRTIO_MMIO_QUEUE_SEL 0x030
#define VIRTIO_MMIO_QUEUE_NUM_MAX 0x034
#define VIRTIO_MMIO_QUEUE_NUM 0x038
#define VIRTIO_MMIO_QUEUE_READY 0x044
#define VIRTIO_MMIO_QUEUE_NOTIFY VIRTIO_MMIO_QUEUE_NOTIFY_OFFSET
#define VIRTIO_MMIO_INTERRUPT_STATUS 0x060
#define VIRTIO_MMIO_INTERRUPT_ACK 0x064
#define VIRTIO_MMIO_STATUS 0x070
#define VIRTIO_MMIO_QUEUE_DESC_LOW 0x080
#define VIRTIO_MMIO_QUEUE_DESC_HIGH 0x084
#define VIRTIO_MMIO_QUEUE_DRIVER_LOW 0x090
#define VIRTIO_MMIO_QUEUE_DRIVER_HIGH 0x094
#define VIRTIO_MMIO_QUEUE_DEVICE_LOW 0x0a0
#define VIRTIO_MMIO_QUEUE_DEVICE_HIGH 0x0a4
#define VIRTIO_MMIO_CONFIG_GENERATION 0x0fc

#define VIRTIO_MMIO_MAGIC 0x74726976	/* "virt" */
#define VIRTIO_MMIO_VERSION_MODERN 2
#define VIRTIO_MMIO_VENDOR 0x766f7265	/* "erov" as little-endian bytes */

#define TRANSPORT_FEATURES ((1ull << VIRTIO_F_VERSION_1) | \
			    (1ull << VIRTIO_F_EVENT_IDX) | \
			    (1ull << VIRTIO_F_INDIRECT_DESC))
/* Bits 24..49 are not device-specific (virtio 1.x 2.2): no device offers them. */
#define TRANSPORT_FEATURE_RANGE (((1ull << 50) - 1) & ~((1ull << 24) - 1))

#define CONFIG_SIZE_MAX (VIRTIO_MMIO_REGION_SIZE - VIRTIO_MMIO_CONFIG_OFFSET)

/* Status bits the driver writes; NEEDS_RESET is the device's. */
#define DRIVER_STATUS_BITS (VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | \
			    VIRTIO_STATUS_FEATURES_OK | VIRTIO_STATUS_DRIVER_OK | \
			    VIRTIO_STATUS_FAILED)

static uint64_t offered_features(const struct virtio_mmio *vm)
{
	return vm->cfg.device_features | TRANSPORT_FEATURES;
}

static void raise_irq(struct virtio_mmio *vm, uint32_t reason)
{
	vm->interrupt_status |= reason;
	/*
	 * Fails only with EAGAIN when the counter is saturated, i.e. an
	 * interrupt is already pending: nothing is lost.
	 */
	eventfd_write(vm->irq_fd, 1);
}

/* The state of a device just reset: no driver, no features, no queues. */
static void clear_state(struct virtio_mmio *vm)
{
	vm->status = 0;
	vm->device_features_sel = 0;
	vm->driver_features_sel = 0;
	vm->driver_features = 0;
	vm->queue_sel = 0;
	vm->interrupt_status = 0;
	for (unsigned int i = 0; i < vm->cfg.nr_queues; i++) {
		struct virtio_mmio_queue *q = &vm->queues[i];

		q->ready = false;
		q->vq = (struct virtq){ .size = vm->cfg.queue_size_max };
	}
}

static bool is_power_of_two(uint32_t x)
{
	return x && !(x & (x - 1));
}

int virtio_mmio_init(struct virtio_mmio *vm, const struct virtio_mmio_config *cfg,
		     const struct guest_mem *mem, int irq_fd)
{
	const struct virtio_device_ops *ops = cfg->ops;
	unsigned int i;
	int ret;

	if (cfg->nr_queues == 0 || cfg->nr_queues > VIRTIO_MMIO_MAX_QUEUES ||
	    !is_power_of_two(cfg->queue_size_max) ||
	    cfg->queue_size_max > VIRTQ_MAX_SIZE ||
	    cfg->config_size > CONFIG_SIZE_MAX ||
	    (cfg->device_features & TRANSPORT_FEATURE_RANGE) ||
	    !ops || !ops->activate || !ops->reset ||
	    (cfg->config_size && !ops->config_access) || !mem || irq_fd < 0)
		return -EINVAL;

	memset(vm, 0, sizeof(*vm));
	vm->cfg = *cfg;
	vm->mem = mem;
	vm->irq_fd = irq_fd;
	for (i = 0; i < VIRTIO_MMIO_MAX_QUEUES; i++)
		vm->queues[i].notify_fd = -1;
	for (i = 0; i < cfg->nr_queues; i++) {
		vm->queues[i].notify_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (vm->queues[i].notify_fd < 0) {
			ret = -errno;
			goto err_close;
		}
	}
	ret = -pthread_mutex_init(&vm->lock, NULL);
	if (ret)
		goto err_close;
	clear_state(vm);
	return 0;

err_close:
	while (i--)
		close(vm->queues[i].notify_fd);
	return ret;
}

void virtio_mmio_destroy(struct virtio_mmio *vm)
{
	for (unsigned int i = 0; i < vm->cfg.nr_queues; i++) {
		close(vm->queues[i].notify_fd);
		vm->queues[i].notify_fd = -1;
	}
	pthread_mutex_destroy(&vm->lock);
}

bool virtio_mmio_has_feature(const struct virtio_mmio *vm, unsigned int bit)
{
	return bit < 64 && (vm->driver_features & (1ull << bit));
}

bool virtio_mmio_live(const struct virtio_mmio *vm)
{
	return (vm->status & VIRTIO_STATUS_DRIVER_OK) &&
	       !(vm->status & VIRTIO_STATUS_NEEDS_RESET);
}

void virtio_mmio_set_needs_reset(struct virtio_mmio *vm)
{
	/* One configuration interrupt per violation episode is enough. */
	if (vm->status & VIRTIO_STATUS_NEEDS_RESET)
		return;
	vm->status |= VIRTIO_STATUS_NEEDS_RESET;
	vm->config_generation++;
	raise_irq(vm, VIRTIO_MMIO_INT_CONFIG);
}

void virtio_mmio_config_changed(struct virtio_mmio *vm)
{
	vm->config_generation++;
	if (virtio_mmio_live(vm))
		raise_irq(vm, VIRTIO_MMIO_INT_CONFIG);
}

void virtio_mmio_notify_used(struct virtio_mmio *vm, unsigned int queue)
{
	struct virtio_mmio_queue *q;

	if (queue >= vm->cfg.nr_queues || !virtio_mmio_live(vm))
		return;
	q = &vm->queues[queue];
	if (q->ready && virtq_need_notify(&q->vq, vm->mem))
		raise_irq(vm, VIRTIO_MMIO_INT_VRING);
}

static struct virtio_mmio_queue *selected_queue(struct virtio_mmio *vm)
{
	if (vm->queue_sel >= vm->cfg.nr_queues)
		return NULL;
	return &vm->queues[vm->queue_sel];
}

static uint32_t read_register(struct virtio_mmio *vm, uint64_t offset)
{
	struct virtio_mmio_queue *q = selected_queue(vm);

	switch (offset) {
	case VIRTIO_MMIO_MAGIC_VALUE:
		return VIRTIO_MMIO_MAGIC;
	case VIRTIO_MMIO_VERSION:
		return VIRTIO_MMIO_VERSION_MODERN;
	case VIRTIO_MMIO_DEVICE_ID:
		return vm->cfg.device_id;
	case VIRTIO_MMIO_VENDOR_ID:
		return VIRTIO_MMIO_VENDOR;
	case VIRTIO_MMIO_DEVICE_FEATURES:
		if (vm->device_features_sel > 1)
			return 0;
		return offered_features(vm) >> (32 * vm->device_features_sel);
	case VIRTIO_MMIO_QUEUE_NUM_MAX:
		return q ? vm->cfg.queue_size_max : 0;
	case VIRTIO_MMIO_QUEUE_READY:
		return q && q->ready;
	case VIRTIO_MMIO_INTERRUPT_STATUS:
		return vm->interrupt_status;
	case VIRTIO_MMIO_STATUS:
		return vm->status;
	case VIRTIO_MMIO_CONFIG_GENERATION:
		return vm->config_generation;
	default:
		return 0;
	}
}

static void write_driver_features(struct virtio_mmio *vm, uint32_t val)
{
	unsigned int shift;

	/* Fixed once FEATURES_OK is set (3.1.1); bits above 63 are never offered. */
	if ((vm->status & VIRTIO_STATUS_FEATURES_OK) ||
	    vm->driver_features_sel > 1)
		return;
	shift = 32 * vm->driver_features_sel;
	vm->driver_features &= ~(0xffffffffull << shift);
	vm->driver_features |= (uint64_t)val << shift;
}

static void set_queue_ready(struct virtio_mmio *vm, struct virtio_mmio_queue *q)
{
	/* The negotiated features decide how the queue works. */
	if (!(vm->status & VIRTIO_STATUS_FEATURES_OK) ||
	    virtq_validate(&q->vq, vm->mem)) {
		virtio_mmio_set_needs_reset(vm);
		return;
	}
	virtq_reset_progress(&q->vq);
	q->vq.event_idx = virtio_mmio_has_feature(vm, VIRTIO_F_EVENT_IDX);
	q->ready = true;
}

/* Each address is a LOW register with its HIGH half 4 bytes above it. */
static void set_half(uint64_t *val, uint64_t offset, uint32_t half)
{
	if (offset & 4)
		*val = (*val & 0xffffffffull) | (uint64_t)half << 32;
	else
		*val = (*val & ~0xffffffffull) | half;
}

/*
 * QueueNum, the ring addresses and QueueReady. Writing 0 to QueueReady is
 * how the driver stops a queue (4.2.2), so it is always allowed; anything
 * else changing a queue the device may be using is a violation.
 */
static void write_queue_register(struct virtio_mmio *vm, uint64_t offset,
				 uint32_t val)
{
	struct virtio_mmio_queue *q = selected_queue(vm);

	if (!q)
		return;
	if (offset == VIRTIO_MMIO_QUEUE_READY && val == 0) {
		q->ready = false;
		return;
	}
	if (q->ready || (vm->status & VIRTIO_STATUS_DRIVER_OK)) {
		virtio_mmio_set_needs_reset(vm);
		return;
	}

	switch (offset) {
	case VIRTIO_MMIO_QUEUE_NUM:
		if (!is_power_of_two(val) || val > vm->cfg.queue_size_max) {
			virtio_mmio_set_needs_reset(vm);
			return;
		}
		q->vq.size = val;
		break;
	case VIRTIO_MMIO_QUEUE_READY:
		set_queue_ready(vm, q);
		break;
	case VIRTIO_MMIO_QUEUE_DESC_LOW:
	case VIRTIO_MMIO_QUEUE_DESC_HIGH:
		set_half(&q->vq.desc_gpa, offset, val);
		break;
	case VIRTIO_MMIO_QUEUE_DRIVER_LOW:
	case VIRTIO_MMIO_QUEUE_DRIVER_HIGH:
		set_half(&q->vq.avail_gpa, offset, val);
		break;
	case VIRTIO_MMIO_QUEUE_DEVICE_LOW:
	case VIRTIO_MMIO_QUEUE_DEVICE_HIGH:
		set_half(&q->vq.used_gpa, offset, val);
		break;
	}
}

static void reset_device(struct virtio_mmio *vm)
{
	vm->cfg.ops->reset(vm->cfg.dev);
	clear_state(vm);
}

/* True if every bit in @added has its predecessor (3.1.1) in @status. */
static bool status_order_ok(uint32_t status, uint32_t added)
{
	static const struct {
		uint32_t bit, needs;
	} order[] = {
		{ VIRTIO_STATUS_DRIVER, VIRTIO_STATUS_ACKNOWLEDGE },
		{ VIRTIO_STATUS_FEATURES_OK, VIRTIO_STATUS_DRIVER },
		{ VIRTIO_STATUS_DRIVER_OK, VIRTIO_STATUS_FEATURES_OK },
	};

	for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++) {
		if ((added & order[i].bit) && !(status & order[i].needs))
			return false;
	}
	return true;
}

/*
 * The device status state machine (2.1, 3.1.1): 0 resets; otherwise bits
 * are only added, each after its predecessor. FEATURES_OK is not kept when
 * the driver's features are unacceptable (the driver reads it back).
 */
static bool features_acceptable(const struct virtio_mmio *vm)
{
	return (vm->driver_features & (1ull << VIRTIO_F_VERSION_1)) &&
	       !(vm->driver_features & ~offered_features(vm));
}

/*
 * The device status state machine (2.1, 3.1.1): 0 resets; otherwise bits
 * are only added, each after its predecessor. FEATURES_OK is not kept when
 * the driver's features are unacceptable (the driver reads it back), which
 * makes a DRIVER_OK in the same write out of order.
 */
static void write_status(struct virtio_mmio *vm, uint32_t val)
{
	uint32_t old = vm->status & DRIVER_STATUS_BITS;
	uint32_t new = val & DRIVER_STATUS_BITS;
	uint32_t added = new & ~old;

	if (val == 0) {
		reset_device(vm);
		return;
	}
	if ((added & VIRTIO_STATUS_FEATURES_OK) && !features_acceptable(vm)) {
		added &= ~VIRTIO_STATUS_FEATURES_OK;
		new &= ~VIRTIO_STATUS_FEATURES_OK;
	}
	if ((old & ~new) || !status_order_ok(new, added)) {
		virtio_mmio_set_needs_reset(vm);
		return;
	}
	vm->status |= added;
	/* A device already broken by the driver is not started. */
	if ((added & VIRTIO_STATUS_DRIVER_OK) &&
	    !(vm->status & VIRTIO_STATUS_NEEDS_RESET) &&
	    vm->cfg.ops->activate(vm->cfg.dev))
		virtio_mmio_set_needs_reset(vm);
}

static void write_register(struct virtio_mmio *vm, uint64_t offset, uint32_t val)
{
	switch (offset) {
	case VIRTIO_MMIO_DEVICE_FEATURES_SEL:
		vm->device_features_sel = val;
		break;
	case VIRTIO_MMIO_DRIVER_FEATURES:
		write_driver_features(vm, val);
		break;
	case VIRTIO_MMIO_DRIVER_FEATURES_SEL:
		vm->driver_features_sel = val;
		break;
	case VIRTIO_MMIO_QUEUE_SEL:
		vm->queue_sel = val;
		break;
	case VIRTIO_MMIO_QUEUE_NUM:
	case VIRTIO_MMIO_QUEUE_READY:
	case VIRTIO_MMIO_QUEUE_DESC_LOW:
	case VIRTIO_MMIO_QUEUE_DESC_HIGH:
	case VIRTIO_MMIO_QUEUE_DRIVER_LOW:
	case VIRTIO_MMIO_QUEUE_DRIVER_HIGH:
	case VIRTIO_MMIO_QUEUE_DEVICE_LOW:
	case VIRTIO_MMIO_QUEUE_DEVICE_HIGH:
		write_queue_register(vm, offset, val);
		break;
	case VIRTIO_MMIO_QUEUE_NOTIFY:
		/* Normally caught by KVM_IOEVENTFD; forward the rest alike. */
		if (val < vm->cfg.nr_queues)
			eventfd_write(vm->queues[val].notify_fd, 1);
		break;
	case VIRTIO_MMIO_INTERRUPT_ACK:
		vm->interrupt_status &= ~val;
		break;
	case VIRTIO_MMIO_STATUS:
		write_status(vm, val);
		break;
	}
}

static void config_access(struct virtio_mmio *vm, uint64_t offset, void *data,
			  uint32_t len, bool is_write)
{
	uint64_t config_offset = offset - VIRTIO_MMIO_CONFIG_OFFSET;

	if ((len != 1 && len != 2 && len != 4 && len != 8) ||
	    !range_within(0, vm->cfg.config_size, config_offset, len))
		return;
	vm->cfg.ops->config_access(vm->cfg.dev, config_offset, data, len,
				   is_write);
}

void virtio_mmio_access(void *opaque, uint64_t offset, void *data, uint32_t len,
			bool is_write)
{
	struct virtio_mmio *vm = opaque;
	uint32_t val;

	/* Ignored reads return 0, so clear first: every path may ignore. */
	if (!is_write)
		memset(data, 0, len);

	pthread_mutex_lock(&vm->lock);
	if (offset >= VIRTIO_MMIO_CONFIG_OFFSET) {
		config_access(vm, offset, data, len, is_write);
	} else if (len == 4 && offset % 4 == 0) {
		if (is_write) {
			memcpy(&val, data, sizeof(val));
			write_register(vm, offset, le32toh(val));
		} else {
			val = htole32(read_register(vm, offset));
			memcpy(data, &val, sizeof(val));
		}
	}
	pthread_mutex_unlock(&vm->lock);
}

int virtio_mmio_device_spec(char *buf, size_t size, uint64_t base, unsigned int irq)
{
	int n;

	if (irq == 0)
		return -EINVAL;
	n = snprintf(buf, size, "%u@0x%llx:%u",
		     VIRTIO_MMIO_REGION_SIZE, (unsigned long long)base, irq);
	if (n < 0 || (size_t)n >= size)
		return -ENOSPC;
	return n;
}
