/*
 * virtio_mmio.h - the virtio-mmio transport (virtio 1.x section 4.2,
 * register layout version 2, modern devices only).
 *
 * A transport instance owns the registers, the feature negotiation, the
 * device status state machine and the device's virtqueues; the device
 * model (virtio-blk, ...) plugs in through struct virtio_device_ops.
 *
 * Threads: register accesses arrive on the vCPU thread (through the MMIO
 * bus, virtio_mmio_access()); queue work runs on the device's I/O thread.
 * Both hold `lock` while touching transport or queue state.
 *
 * Notifications: each queue has an eventfd (notify_fd). The VMM registers
 * it with KVM_IOEVENTFD for QueueNotify (base + 0x50, datamatch = queue
 * index), so a driver's kick never leaves the kernel; a QueueNotify write
 * that does reach virtio_mmio_access() is forwarded to the same eventfd.
 * The device's I/O thread waits on those eventfds. Interrupts go out by
 * writing irq_fd, an eventfd the VMM registers with KVM_IRQFD.
 *
 * Driver errors (bad queue layout, queue writes after FEATURES_OK/DRIVER_OK
 * where the spec forbids them, a virtqueue protocol violation reported by
 * the device) set DEVICE_NEEDS_RESET and raise a configuration-change
 * interrupt; the device then ignores its queues until the driver resets it.
 */
#ifndef EROVM_VIRTIO_MMIO_H
#define EROVM_VIRTIO_MMIO_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "devices/virtqueue.h"
#include "vmm/guest_mem.h"

#define VIRTIO_MMIO_REGION_SIZE 0x200 /* registers, then config space at 0x100 */
#define VIRTIO_MMIO_CONFIG_OFFSET 0x100
#define VIRTIO_MMIO_MAX_QUEUES 4
#define VIRTIO_MMIO_QUEUE_NOTIFY_OFFSET 0x50 /* where ioeventfds go */

/* Feature bits the transport itself offers (and understands). */
#define VIRTIO_F_INDIRECT_DESC 28
#define VIRTIO_F_EVENT_IDX 29
#define VIRTIO_F_VERSION_1 32

/* Device status bits (virtio 1.x 2.1). */
#define VIRTIO_STATUS_ACKNOWLEDGE 1
#define VIRTIO_STATUS_DRIVER 2
#define VIRTIO_STATUS_DRIVER_OK 4
#define VIRTIO_STATUS_FEATURES_OK 8
#define VIRTIO_STATUS_NEEDS_RESET 64
#define VIRTIO_STATUS_FAILED 128

/* InterruptStatus bits. */
#define VIRTIO_MMIO_INT_VRING 1
#define VIRTIO_MMIO_INT_CONFIG 2

struct virtio_device_ops {
	/*
	 * Reads or writes device config space; @offset + @len is already
	 * checked against config_size. Called with the lock held.
	 */
	void (*config_access)(void *dev, uint32_t offset, void *data,
			      uint32_t len, bool is_write);
	/*
	 * The driver set DRIVER_OK; every ready queue passed virtq_validate.
	 * Returns 0, or a negative errno to mark the device NEEDS_RESET.
	 * Called with the lock held.
	 */
	int (*activate)(void *dev);
	/*
	 * The driver reset the device (status 0): forget in-flight requests
	 * (their completions must not touch the queues any more). Called with
	 * the lock held.
	 */
	void (*reset)(void *dev);
};

struct virtio_mmio_config {
	uint32_t device_id;
	uint64_t device_features;   /* device-specific bits only */
	unsigned int nr_queues;     /* 1..VIRTIO_MMIO_MAX_QUEUES */
	uint16_t queue_size_max;    /* power of two <= VIRTQ_MAX_SIZE */
	uint32_t config_size;       /* bytes of device config space */
	const struct virtio_device_ops *ops;
	void *dev;
};

struct virtio_mmio_queue {
	struct virtq vq;
	bool ready;
	int notify_fd;              /* eventfd: the driver kicked this queue */
};

struct virtio_mmio {
	struct virtio_mmio_config cfg;
	const struct guest_mem *mem;
	pthread_mutex_t lock;

	uint32_t status;
	uint32_t device_features_sel;
	uint32_t driver_features_sel;
	uint64_t driver_features;
	uint32_t queue_sel;
	uint32_t interrupt_status;
	uint32_t config_generation;
	struct virtio_mmio_queue queues[VIRTIO_MMIO_MAX_QUEUES];
	int irq_fd;                 /* eventfd registered as the device's irqfd */
};

/*
 * Sets up a transport for the device described by @cfg (copied), with
 * queue notify eventfds created here. @irq_fd is an eventfd the transport
 * writes to interrupt the guest. Returns 0 or a negative errno.
 */
int virtio_mmio_init(struct virtio_mmio *vm, const struct virtio_mmio_config *cfg,
		     const struct guest_mem *mem, int irq_fd);

/* Closes the notify eventfds. */
void virtio_mmio_destroy(struct virtio_mmio *vm);

/* The bus handler (vmm/bus.h) for the device's register window. */
void virtio_mmio_access(void *opaque, uint64_t offset, void *data, uint32_t len,
			bool is_write);

/* True if the driver accepted feature @bit. */
bool virtio_mmio_has_feature(const struct virtio_mmio *vm, unsigned int bit);

/* True if DRIVER_OK is set and NEEDS_RESET is not: queues may be used. */
bool virtio_mmio_live(const struct virtio_mmio *vm);

/*
 * After pushing used buffers on @queue: raises the vring interrupt if the
 * driver wants one (virtq_need_notify). Call with the lock held.
 */
void virtio_mmio_notify_used(struct virtio_mmio *vm, unsigned int queue);

/*
 * The driver broke the protocol (e.g. virtq_pop returned -EPROTO): set
 * DEVICE_NEEDS_RESET and raise a configuration interrupt. Lock held.
 */
void virtio_mmio_set_needs_reset(struct virtio_mmio *vm);

/*
 * The device changed its config space: bumps ConfigGeneration and, once
 * the driver is up (DRIVER_OK), raises a configuration change interrupt.
 * Lock held.
 */
void virtio_mmio_config_changed(struct virtio_mmio *vm);

/*
 * Linux announces a virtio-mmio device with the kernel parameter
 * VIRTIO_MMIO_PARAM=SPEC (CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES). Writes SPEC,
 * "512@0xBASE:IRQ", to @buf (@size bytes). Returns its length, -EINVAL
 * for IRQ 0 (which Linux refuses) or -ENOSPC if it does not fit.
 */
#define VIRTIO_MMIO_PARAM "virtio_mmio.device"
int virtio_mmio_device_spec(char *buf, size_t size, uint64_t base, unsigned int irq);

#endif
