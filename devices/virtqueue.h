/*
 * virtqueue.h - split virtqueues (virtio 1.x, section 2.7), device side.
 *
 * The driver owns three areas in guest RAM: the descriptor table, the
 * available ring and the used ring. Everything read from them is hostile.
 * The rules enforced here:
 *  - the layout is checked once (virtq_validate) before the queue is used:
 *    every area lies inside guest RAM, with the spec's alignment;
 *  - virtq_pop() walks one chain at most VIRTQ_MAX_CHAIN descriptors long
 *    (and never more than the queue size, or len/16 for an indirect
 *    table), so a loop is caught as an over-long chain; every `next` is
 *    below the table size; readable descriptors come before writable ones;
 *    an indirect table is a non-empty multiple of 16 bytes, not itself
 *    nested, and not combined with NEXT;
 *  - the driver may not make more than `size` buffers available at once;
 *  - buffer addresses are only recorded here; whoever touches the data
 *    goes through guest_mem (vmm/guest_mem.h) with the recorded length.
 * A violation returns -EPROTO: the transport then marks the device
 * DEVICE_NEEDS_RESET and stops using the queue; the VMM keeps running.
 *
 * With VIRTIO_F_EVENT_IDX negotiated, virtq_push() and virtq_need_notify()
 * implement used-buffer notification suppression, and virtq_pop() keeps
 * avail_event up to date so the driver notifies only when needed.
 */
#ifndef EROVM_VIRTQUEUE_H
#define EROVM_VIRTQUEUE_H

#include <stdbool.h>
#include <stdint.h>

#include "vmm/guest_mem.h"

#define VIRTQ_MAX_SIZE 256
#define VIRTQ_MAX_CHAIN VIRTQ_MAX_SIZE

/* One guest buffer of a chain, as the driver described it. */
struct virtq_buf {
	uint64_t gpa;
	uint32_t len;
	bool device_writable;
};

/* One available chain: its head index (the id for virtq_push) and buffers. */
struct virtq_chain {
	uint16_t head;
	uint16_t nr_bufs;
	uint16_t nr_readable;       /* bufs[0 .. nr_readable) are device-readable */
	uint64_t readable_len;      /* sums, 64-bit so they cannot overflow */
	uint64_t writable_len;
	struct virtq_buf bufs[VIRTQ_MAX_CHAIN];
};

struct virtq {
	/* Set by the transport from the driver's register writes. */
	uint16_t size;              /* power of two, 1..VIRTQ_MAX_SIZE */
	uint64_t desc_gpa, avail_gpa, used_gpa;
	bool event_idx;             /* VIRTIO_F_EVENT_IDX negotiated */

	/* Device-side progress. */
	uint16_t last_avail_idx;    /* next avail ring entry to take */
	uint16_t used_idx;          /* next used ring entry to fill */
	uint16_t signalled_used;    /* used_idx at the last virtq_need_notify() */
	bool signalled_used_valid;
};

/*
 * Checks the queue's size and areas against guest RAM (alignment: desc 16,
 * avail 2, used 4; sizes per the spec, including the event fields).
 * Returns 0 or -EINVAL.
 */
int virtq_validate(const struct virtq *vq, const struct guest_mem *mem);

/* Forgets all progress: the state of a queue just enabled. */
void virtq_reset_progress(struct virtq *vq);

/*
 * Takes the next available chain into @chain. Returns 1 if it did, 0 if
 * no chain is available, -EPROTO if the driver broke the rules above.
 */
int virtq_pop(struct virtq *vq, const struct guest_mem *mem,
	      struct virtq_chain *chain);

/*
 * Returns chain @head to the driver, with @written bytes written into its
 * device-writable buffers. Returns 0 or -EPROTO (used ring unreachable).
 */
int virtq_push(struct virtq *vq, const struct guest_mem *mem, uint16_t head,
	       uint32_t written);

/*
 * True if the driver wants an interrupt for what was pushed since the last
 * time this returned true (VIRTQ_AVAIL_F_NO_INTERRUPT, or used_event with
 * EVENT_IDX). Call it once after a batch of virtq_push() calls.
 */
bool virtq_need_notify(struct virtq *vq, const struct guest_mem *mem);

/*
 * The EVENT_IDX rule (virtio 1.x 2.7.10): with @new_idx just published and
 * @old_idx the value at the previous notification, true if @event_idx lies
 * in [old_idx, new_idx), modulo 2^16.
 */
static inline bool virtq_event_idx_crossed(uint16_t event_idx, uint16_t new_idx,
					   uint16_t old_idx)
{
	return (uint16_t)(new_idx - event_idx - 1) < (uint16_t)(new_idx - old_idx);
}

#endif
