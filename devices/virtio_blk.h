/*
 * virtio_blk.h - the virtio-blk device model (virtio 1.x section 5.2),
 * one request queue, on the virtio-mmio transport and a blk_backend.
 *
 * A request is a chain whose device-readable bytes start with the 16-byte
 * header {le32 type, le32 reserved, le64 sector} and whose device-writable
 * bytes end with the status byte. Buffer boundaries carry no meaning
 * (virtio 1.x drops the fixed framing): the header may span buffers, OUT
 * data is the readable bytes after it, IN/GET_ID data the writable bytes
 * before the status byte.
 *
 * Every chain is parsed completely (virtio_blk_parse, a pure function)
 * before anything executes. A malformed chain gets VIRTIO_BLK_S_IOERR in
 * its status byte; a chain without a reachable status byte is returned
 * with nothing written. The used length counts the bytes written: IN or
 * GET_ID data plus the status byte.
 *
 * Threads: requests run on the io_loop thread, woken by the queue's
 * notify eventfd; completions are written back there too, with the
 * transport lock held. config_access/activate/reset come from the vCPU
 * thread with the lock held. A driver reset bumps a generation: requests
 * still in flight then finish without touching the queue.
 */
#ifndef EROVM_VIRTIO_BLK_H
#define EROVM_VIRTIO_BLK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "devices/blk_backend.h"
#include "devices/io_loop.h"
#include "devices/virtio_mmio.h"
#include "devices/virtqueue.h"
#include "vmm/guest_mem.h"

#define VIRTIO_ID_BLOCK 2

/* Feature bits (virtio 1.x 5.2.3). */
#define VIRTIO_BLK_F_SIZE_MAX 1
#define VIRTIO_BLK_F_SEG_MAX 2
#define VIRTIO_BLK_F_RO 5
#define VIRTIO_BLK_F_BLK_SIZE 6
#define VIRTIO_BLK_F_FLUSH 9
#define VIRTIO_BLK_F_DISCARD 13
#define VIRTIO_BLK_F_WRITE_ZEROES 14

/* Config space offsets (struct virtio_blk_config, little-endian). */
#define VIRTIO_BLK_CFG_CAPACITY 0   /* le64, in 512-byte sectors */
#define VIRTIO_BLK_CFG_SIZE_MAX 8   /* le32 */
#define VIRTIO_BLK_CFG_SEG_MAX 12   /* le32 */
#define VIRTIO_BLK_CFG_BLK_SIZE 20  /* le32; 16..19 is the geometry */
/* 24..35: topology, writeback, num_queues: not offered, read as zero. */
#define VIRTIO_BLK_CFG_MAX_DISCARD_SECTORS 36       /* le32 */
#define VIRTIO_BLK_CFG_MAX_DISCARD_SEG 40           /* le32 */
#define VIRTIO_BLK_CFG_DISCARD_SECTOR_ALIGNMENT 44  /* le32, in sectors */
#define VIRTIO_BLK_CFG_MAX_WRITE_ZEROES_SECTORS 48  /* le32 */
#define VIRTIO_BLK_CFG_MAX_WRITE_ZEROES_SEG 52      /* le32 */
#define VIRTIO_BLK_CFG_WRITE_ZEROES_MAY_UNMAP 56    /* u8; 57..59 unused */
#define VIRTIO_BLK_CONFIG_SIZE 60

/* Request types and status values (virtio 1.x 5.2.6). */
#define VIRTIO_BLK_T_IN 0
#define VIRTIO_BLK_T_OUT 1
#define VIRTIO_BLK_T_FLUSH 4
#define VIRTIO_BLK_T_GET_ID 8
#define VIRTIO_BLK_T_DISCARD 11
#define VIRTIO_BLK_T_WRITE_ZEROES 13
#define VIRTIO_BLK_S_OK 0
#define VIRTIO_BLK_S_IOERR 1
#define VIRTIO_BLK_S_UNSUPP 2

#define VIRTIO_BLK_HEADER_SIZE 16
#define VIRTIO_BLK_ID_BYTES 20

/*
 * DISCARD and WRITE_ZEROES data: segments of {le64 sector,
 * le32 num_sectors, le32 flags}. UNMAP is the only flag, and only for
 * WRITE_ZEROES (it lets the device deallocate).
 */
#define VIRTIO_BLK_RANGE_SEG_SIZE 16
#define VIRTIO_BLK_RANGE_F_UNMAP 1u

/* What this device accepts: the limits it advertises. */
#define VIRTIO_BLK_QUEUE_SIZE_MAX VIRTQ_MAX_SIZE
#define VIRTIO_BLK_SEG_MAX 128
#define VIRTIO_BLK_SIZE_MAX (1u << 20)
/* One segment per DISCARD/WRITE_ZEROES, of at most 2 GiB. */
#define VIRTIO_BLK_RANGE_SEG_MAX 1
#define VIRTIO_BLK_RANGE_SECTORS_MAX (1u << 22)

/* What a request may be, from the disk and the advertised limits. */
struct virtio_blk_limits {
	uint64_t capacity;          /* in 512-byte sectors */
	bool read_only;
	uint32_t seg_max;           /* <= VIRTIO_BLK_SEG_MAX */
	uint32_t size_max;
	/* DISCARD/WRITE_ZEROES (writable disks only): sectors per segment. */
	uint32_t range_sectors_max;
};

/* A request that passed every check, ready to execute. */
struct virtio_blk_parsed {
	uint32_t type;
	uint64_t sector;            /* DISCARD/WRITE_ZEROES: the segment's */
	uint32_t nr_sectors;        /* DISCARD/WRITE_ZEROES: the segment's */
	bool has_status;            /* false: return the chain, write nothing */
	uint64_t status_gpa;
	uint64_t data_len;          /* bytes in segs */
	unsigned int nr_segs;
	/* Host addresses of the data bytes, each checked with guest_mem_ptr. */
	struct iovec segs[VIRTIO_BLK_SEG_MAX];
};

/*
 * Parses @chain against guest RAM @mem and the limits @lim into @req.
 * Returns VIRTIO_BLK_S_OK when @req can execute as it stands, or the
 * status to report: VIRTIO_BLK_S_UNSUPP for an unknown type,
 * VIRTIO_BLK_S_IOERR for anything malformed (header short, data in the
 * wrong direction, data not whole sectors, sectors beyond the disk, too
 * many or too large segments, a write to a read-only disk). Whatever it
 * returns, req->has_status and req->status_gpa say where the status goes.
 * GET_ID data is limited to VIRTIO_BLK_ID_BYTES; FLUSH carries no data.
 * DISCARD and WRITE_ZEROES carry exactly VIRTIO_BLK_RANGE_SEG_MAX
 * segments whose range lands in req->sector and req->nr_sectors (the
 * header's sector is unused); on a read-only disk, with an unknown flag
 * or with UNMAP on a DISCARD they are VIRTIO_BLK_S_UNSUPP (virtio 1.x
 * 5.2.6.2), with a malformed or out-of-range segment VIRTIO_BLK_S_IOERR.
 */
uint8_t virtio_blk_parse(const struct virtq_chain *chain,
			 const struct guest_mem *mem,
			 const struct virtio_blk_limits *lim,
			 struct virtio_blk_parsed *req);

struct virtio_blk;

/*
 * Creates a virtio-blk device over @backend (whose finished disk gives
 * capacity and read-only; DISCARD and WRITE_ZEROES are offered on
 * writable disks), its transport on guest RAM @mem interrupting through
 * eventfd @irq_fd, and watches its queue's notify eventfd on @loop (so
 * call it before io_loop_start). @queue_size is the largest queue the
 * driver may set up: a power of two, 1..VIRTIO_BLK_QUEUE_SIZE_MAX.
 * @serial (may be NULL) is what GET_ID returns: at most 20 bytes, zero
 * padded. Returns 0 or a negative errno with a message in @err.
 */
int virtio_blk_create(struct virtio_blk **out, struct io_loop *loop,
		      struct blk_backend *backend, unsigned int queue_size,
		      const char *serial,
		      const struct guest_mem *mem, int irq_fd, char *err,
		      size_t err_size);

/* The transport, for the MMIO bus (virtio_mmio_access) and ioeventfds. */
struct virtio_mmio *virtio_blk_mmio(struct virtio_blk *blk);

/*
 * Frees the device and its transport (not the backend). The io_loop must
 * be stopped and destroyed first: nothing of this device may be in flight.
 */
void virtio_blk_destroy(struct virtio_blk *blk);

#endif
