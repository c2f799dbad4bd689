/*
 * virtqueue.c - split virtqueues, device side (virtio 1.x, section 2.7).
 *
 * Ring layout in guest RAM (all fields little-endian):
 *   descriptor table: size x { le64 addr; le32 len; le16 flags; le16 next; }
 *   available ring:   le16 flags; le16 idx; le16 ring[size]; le16 used_event;
 *   used ring:        le16 flags; le16 idx;
 *                     { le32 id; le32 len; } ring[size]; le16 avail_event;
 *
 * Descriptors are copied out of guest RAM once and only the copy is used,
 * so a driver rewriting a descriptor while we walk it changes nothing.
 * Zero-length buffers are refused (-EPROTO): no driver needs them, and
 * refusing them keeps "every recorded buffer is non-empty RAM" simple.
 */
#include "devices/virtqueue.h"

#include <endian.h>
#include <errno.h>
#include <stdatomic.h>
#include <string.h>

#define VIRTQ_DESC_F_NEXT 1
#define VIRTQ_DESC_F_WRITE 2
#define VIRTQ_DESC_F_INDIRECT 4

#define VIRTQ_AVAIL_F_NO_INTERRUPT 1

#define VIRTQ_DESC_SIZE 16
#define VIRTQ_USED_ELEM_SIZE 8

/* Offsets inside the rings. */
#define VIRTQ_RING_FLAGS 0
#define VIRTQ_RING_IDX 2
#define VIRTQ_RING_ENTRIES 4

struct virtq_desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags;
	uint16_t next;
};

static uint64_t desc_table_bytes(uint16_t size)
{
	return (uint64_t)size * VIRTQ_DESC_SIZE;
}

/* flags, idx, ring[size], used_event */
static uint64_t avail_ring_bytes(uint16_t size)
{
	return 6 + (uint64_t)size * 2;
}

/* flags, idx, ring[size], avail_event */
static uint64_t used_ring_bytes(uint16_t size)
{
	return 6 + (uint64_t)size * VIRTQ_USED_ELEM_SIZE;
}

static uint64_t used_event_gpa(const struct virtq *vq)
{
	return vq->avail_gpa + VIRTQ_RING_ENTRIES + (uint64_t)vq->size * 2;
}

static uint64_t avail_event_gpa(const struct virtq *vq)
{
	return vq->used_gpa + VIRTQ_RING_ENTRIES +
	       (uint64_t)vq->size * VIRTQ_USED_ELEM_SIZE;
}

/*
 * Ring indices and flags are read and written with a fixed-size memcpy:
 * it compiles to a single 16-bit access (so neither side ever sees a torn
 * index) and is safe whatever the host pointer's alignment.
 */
static int ring_read16(const struct guest_mem *mem, uint64_t gpa, uint16_t *val)
{
	const void *p = guest_mem_ptr(mem, gpa, sizeof(*val));
	uint16_t raw;

	if (!p)
		return -EFAULT;
	memcpy(&raw, p, sizeof(raw));
	*val = le16toh(raw);
	return 0;
}

static int ring_write16(const struct guest_mem *mem, uint64_t gpa, uint16_t val)
{
	void *p = guest_mem_ptr(mem, gpa, sizeof(val));
	uint16_t raw = htole16(val);

	if (!p)
		return -EFAULT;
	memcpy(p, &raw, sizeof(raw));
	return 0;
}

static bool area_ok(const struct guest_mem *mem, uint64_t gpa, uint64_t len,
		    uint64_t align)
{
	return (gpa & (align - 1)) == 0 && guest_mem_ptr(mem, gpa, len);
}

int virtq_validate(const struct virtq *vq, const struct guest_mem *mem)
{
	uint16_t size = vq->size;

	if (size == 0 || size > VIRTQ_MAX_SIZE || (size & (size - 1)))
		return -EINVAL;
	if (!area_ok(mem, vq->desc_gpa, desc_table_bytes(size), 16) ||
	    !area_ok(mem, vq->avail_gpa, avail_ring_bytes(size), 2) ||
	    !area_ok(mem, vq->used_gpa, used_ring_bytes(size), 4))
		return -EINVAL;
	return 0;
}

void virtq_reset_progress(struct virtq *vq)
{
	vq->last_avail_idx = 0;
	vq->used_idx = 0;
	vq->signalled_used = 0;
	vq->signalled_used_valid = false;
}

static int read_desc(const struct guest_mem *mem, uint64_t table_gpa,
		     uint32_t idx, struct virtq_desc *desc)
{
	uint8_t raw[VIRTQ_DESC_SIZE];
	uint64_t le64;
	uint32_t le32;
	uint16_t le16;

	/* idx is below the table's entry count, whose bytes are in RAM. */
	if (guest_mem_read(mem, table_gpa + (uint64_t)idx * VIRTQ_DESC_SIZE,
			   raw, sizeof(raw)))
		return -EPROTO;
	memcpy(&le64, raw, 8);
	desc->addr = le64toh(le64);
	memcpy(&le32, raw + 8, 4);
	desc->len = le32toh(le32);
	memcpy(&le16, raw + 12, 2);
	desc->flags = le16toh(le16);
	memcpy(&le16, raw + 14, 2);
	desc->next = le16toh(le16);
	return 0;
}

/* Appends one ordinary (non-indirect) descriptor to @chain. */
static int add_buf(const struct guest_mem *mem, struct virtq_chain *chain,
		   const struct virtq_desc *desc)
{
	bool writable = desc->flags & VIRTQ_DESC_F_WRITE;

	/* guest_mem_ptr() also refuses empty buffers (see the top). */
	if (!guest_mem_ptr(mem, desc->addr, desc->len))
		return -EPROTO;
	/* Readable buffers all come first (2.7.4.2). */
	if (!writable && chain->nr_readable != chain->nr_bufs)
		return -EPROTO;
	if (chain->nr_bufs == VIRTQ_MAX_CHAIN)
		return -EPROTO;
	chain->bufs[chain->nr_bufs++] = (struct virtq_buf){
		.gpa = desc->addr, .len = desc->len, .device_writable = writable,
	};
	if (writable) {
		chain->writable_len += desc->len;
	} else {
		chain->nr_readable++;
		chain->readable_len += desc->len;
	}
	return 0;
}

/*
 * Walks the chain starting at descriptor @head. A chain is zero or more
 * direct descriptors, the last of which may point to an indirect table
 * (2.7.5.3.2: the device must accept that); inside the table the walk
 * starts at entry 0. Each table bounds its own walk by its entry count,
 * which catches loops; bufs[] bounds the whole chain.
 */
static int walk_chain(const struct virtq *vq, const struct guest_mem *mem,
		      uint16_t head, struct virtq_chain *chain)
{
	uint64_t table_gpa = vq->desc_gpa;
	uint32_t table_entries = vq->size;
	uint32_t visited = 0;
	uint32_t idx = head;
	bool indirect = false;
	struct virtq_desc desc;
	int ret;

	for (;;) {
		if (visited++ == table_entries)
			return -EPROTO;
		if (read_desc(mem, table_gpa, idx, &desc))
			return -EPROTO;

		if (desc.flags & VIRTQ_DESC_F_INDIRECT) {
			/*
			 * The WRITE flag of this descriptor is ignored
			 * (2.7.5.3.2); an empty table fails guest_mem_ptr().
			 */
			if (indirect || (desc.flags & VIRTQ_DESC_F_NEXT) ||
			    desc.len % VIRTQ_DESC_SIZE ||
			    !guest_mem_ptr(mem, desc.addr, desc.len))
				return -EPROTO;
			indirect = true;
			table_gpa = desc.addr;
			table_entries = desc.len / VIRTQ_DESC_SIZE;
			visited = 0;
			idx = 0;
			continue;
		}

		ret = add_buf(mem, chain, &desc);
		if (ret)
			return ret;
		if (!(desc.flags & VIRTQ_DESC_F_NEXT))
			return 0;
		if (desc.next >= table_entries)
			return -EPROTO;
		idx = desc.next;
	}
}

int virtq_pop(struct virtq *vq, const struct guest_mem *mem,
	      struct virtq_chain *chain)
{
	uint16_t avail_idx, head;
	uint64_t slot;
	int ret;

	if (ring_read16(mem, vq->avail_gpa + VIRTQ_RING_IDX, &avail_idx))
		return -EPROTO;
	if (avail_idx == vq->last_avail_idx)
		return 0;
	if ((uint16_t)(avail_idx - vq->last_avail_idx) > vq->size)
		return -EPROTO;
	/*
	 * Acquire: the driver wrote the ring entry and descriptors before
	 * publishing avail->idx; read them only after reading the index.
	 */
	atomic_thread_fence(memory_order_acquire);

	slot = vq->last_avail_idx & (vq->size - 1);
	if (ring_read16(mem, vq->avail_gpa + VIRTQ_RING_ENTRIES + slot * 2,
			&head) || head >= vq->size)
		return -EPROTO;

	chain->head = head;
	chain->nr_bufs = 0;
	chain->nr_readable = 0;
	chain->readable_len = 0;
	chain->writable_len = 0;
	ret = walk_chain(vq, mem, head, chain);
	if (ret)
		return ret;

	if (vq->event_idx) {
		if (ring_write16(mem, avail_event_gpa(vq),
				 vq->last_avail_idx + 1))
			return -EPROTO;
		/*
		 * Full barrier: our next read of avail->idx must not happen
		 * before avail_event is visible, or the driver could skip a
		 * kick we are about to wait for (store-load ordering).
		 */
		atomic_thread_fence(memory_order_seq_cst);
	}
	vq->last_avail_idx++;
	return 1;
}

int virtq_push(struct virtq *vq, const struct guest_mem *mem, uint16_t head,
	       uint32_t written)
{
	uint64_t slot = vq->used_idx & (vq->size - 1);
	uint64_t elem_gpa = vq->used_gpa + VIRTQ_RING_ENTRIES +
			    slot * VIRTQ_USED_ELEM_SIZE;
	uint32_t elem[2] = { htole32(head), htole32(written) };

	if (guest_mem_write(mem, elem_gpa, elem, sizeof(elem)))
		return -EPROTO;
	/* Release: the element must be visible before the index covering it. */
	atomic_thread_fence(memory_order_release);
	if (ring_write16(mem, vq->used_gpa + VIRTQ_RING_IDX, vq->used_idx + 1))
		return -EPROTO;
	vq->used_idx++;
	return 0;
}

/*
 * signalled_used is the used index at the previous call, whether or not it
 * notified (as vhost and QEMU do): a driver that moves used_event re-checks
 * the used ring itself (2.7.10), so entries already judged need no second
 * look. Nothing new since the previous call never needs an interrupt.
 */
bool virtq_need_notify(struct virtq *vq, const struct guest_mem *mem)
{
	uint16_t old = vq->signalled_used;
	bool valid = vq->signalled_used_valid;
	uint16_t val;

	/*
	 * Full barrier: used->idx (written by virtq_push) must be visible
	 * before we read the driver's flags/used_event, or we could miss the
	 * driver re-enabling interrupts just after it saw the old index.
	 */
	atomic_thread_fence(memory_order_seq_cst);

	vq->signalled_used = vq->used_idx;
	vq->signalled_used_valid = true;
	if (valid && old == vq->used_idx)
		return false;

	/* An unreadable ring cannot say "no": interrupt to be safe. */
	if (vq->event_idx) {
		if (!valid || ring_read16(mem, used_event_gpa(vq), &val))
			return true;
		return virtq_event_idx_crossed(val, vq->used_idx, old);
	}
	if (ring_read16(mem, vq->avail_gpa + VIRTQ_RING_FLAGS, &val))
		return true;
	return !(val & VIRTQ_AVAIL_F_NO_INTERRUPT);
}
