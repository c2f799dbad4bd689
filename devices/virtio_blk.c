#include "devices/virtio_blk.h"

#include <endian.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>

/* ---- Parsing: a pure function of the chain, guest RAM and the limits. */

/*
 * Host address of a whole buffer, or NULL. The chain walk only recorded
 * gpa and len, so this is where a buffer is proven to be guest RAM; any
 * sub-range of it is then safe to address.
 */
static uint8_t *buf_host(const struct guest_mem *mem, const struct virtq_buf *b)
{
	return guest_mem_ptr(mem, b->gpa, b->len);
}

/* Copies readable bytes [skip, skip + len) of the chain to @out. */
static bool read_readable(const struct virtq_chain *chain,
			  const struct guest_mem *mem, uint64_t skip,
			  uint8_t *out, uint32_t len)
{
	for (unsigned int i = 0; i < chain->nr_readable && len; i++) {
		const struct virtq_buf *b = &chain->bufs[i];
		uint32_t take;
		const uint8_t *src;

		if (skip >= b->len) {
			skip -= b->len;
			continue;
		}
		take = b->len - skip < len ? b->len - skip : len;
		src = buf_host(mem, b);
		if (!src)
			return false;
		memcpy(out, src + skip, take);
		out += take;
		len -= take;
		skip = 0;
	}
	return len == 0;
}

/*
 * Maps bytes [skip, skip + len) of buffers [first, first + count) into
 * req->segs, one segment per buffer piece. False if a buffer is not guest
 * RAM or the segments exceed seg_max or size_max.
 */
static bool map_data(const struct virtq_chain *chain, unsigned int first,
		     unsigned int count, uint64_t skip, uint64_t len,
		     const struct guest_mem *mem,
		     const struct virtio_blk_limits *lim,
		     struct virtio_blk_parsed *req)
{
	for (unsigned int i = first; i < first + count && len; i++) {
		const struct virtq_buf *b = &chain->bufs[i];
		uint64_t piece;
		uint8_t *host;

		if (skip >= b->len) {
			skip -= b->len;
			continue;
		}
		piece = b->len - skip;
		if (piece > len)
			piece = len;
		if (req->nr_segs == lim->seg_max || piece > lim->size_max)
			return false;
		host = buf_host(mem, b);
		if (!host)
			return false;
		req->segs[req->nr_segs++] = (struct iovec){
			.iov_base = host + skip, .iov_len = piece,
		};
		req->data_len += piece;
		len -= piece;
		skip = 0;
	}
	return len == 0;
}

/* Finds the status byte: the last byte of the last (writable) buffer. */
static void find_status(const struct virtq_chain *chain,
			const struct guest_mem *mem,
			struct virtio_blk_parsed *req)
{
	const struct virtq_buf *last;

	if (chain->nr_bufs == 0 || chain->nr_readable == chain->nr_bufs)
		return;
	last = &chain->bufs[chain->nr_bufs - 1];
	if (last->len == 0 || !buf_host(mem, last))
		return;
	req->has_status = true;
	req->status_gpa = last->gpa + last->len - 1;
}

/* Checks that IN/OUT data is whole sectors inside the disk. */
static bool sectors_in_range(const struct virtio_blk_parsed *req,
			     uint64_t capacity)
{
	uint64_t n = req->data_len / BLK_SECTOR_SIZE;

	if (req->data_len % BLK_SECTOR_SIZE)
		return false;
	return req->sector <= capacity && n <= capacity - req->sector;
}

/* DISCARD or WRITE_ZEROES: the readable bytes after the header are segments. */
static uint8_t parse_range(const struct virtq_chain *chain,
			   const struct guest_mem *mem,
			   const struct virtio_blk_limits *lim, uint64_t out_len,
			   uint64_t in_len, struct virtio_blk_parsed *req)
{
	uint8_t seg[VIRTIO_BLK_RANGE_SEG_SIZE];
	uint64_t sector;
	uint32_t nr_sectors, flags;

	/* Not offered on read-only disks. */
	if (lim->read_only)
		return VIRTIO_BLK_S_UNSUPP;
	if (in_len ||
	    out_len != VIRTIO_BLK_RANGE_SEG_MAX * VIRTIO_BLK_RANGE_SEG_SIZE ||
	    !read_readable(chain, mem, VIRTIO_BLK_HEADER_SIZE, seg, sizeof(seg)))
		return VIRTIO_BLK_S_IOERR;
	memcpy(&sector, seg, sizeof(sector));
	memcpy(&nr_sectors, seg + 8, sizeof(nr_sectors));
	memcpy(&flags, seg + 12, sizeof(flags));
	sector = le64toh(sector);
	nr_sectors = le32toh(nr_sectors);
	flags = le32toh(flags);
	if (flags & ~VIRTIO_BLK_RANGE_F_UNMAP ||
	    (req->type == VIRTIO_BLK_T_DISCARD && flags))
		return VIRTIO_BLK_S_UNSUPP;
	if (nr_sectors > lim->range_sectors_max || sector > lim->capacity ||
	    nr_sectors > lim->capacity - sector)
		return VIRTIO_BLK_S_IOERR;
	req->sector = sector;
	req->nr_sectors = nr_sectors;
	return VIRTIO_BLK_S_OK;
}

uint8_t virtio_blk_parse(const struct virtq_chain *chain,
			 const struct guest_mem *mem,
			 const struct virtio_blk_limits *lim,
			 struct virtio_blk_parsed *req)
{
	uint8_t header[VIRTIO_BLK_HEADER_SIZE];
	unsigned int nr_writable = chain->nr_bufs - chain->nr_readable;
	uint64_t out_len, in_len;
	uint32_t type32;
	uint64_t sector64;

	req->has_status = false;
	req->status_gpa = 0;
	req->type = 0;
	req->sector = 0;
	req->nr_sectors = 0;
	req->data_len = 0;
	req->nr_segs = 0;

	find_status(chain, mem, req);
	if (!req->has_status)
		return VIRTIO_BLK_S_IOERR;
	if (chain->readable_len < VIRTIO_BLK_HEADER_SIZE ||
	    !read_readable(chain, mem, 0, header, sizeof(header)))
		return VIRTIO_BLK_S_IOERR;
	memcpy(&type32, header, sizeof(type32));
	memcpy(&sector64, header + 8, sizeof(sector64));
	req->type = le32toh(type32);
	req->sector = le64toh(sector64);

	/* Data bytes each way, around the header and the status byte. */
	out_len = chain->readable_len - VIRTIO_BLK_HEADER_SIZE;
	in_len = chain->writable_len - 1;

	switch (req->type) {
	case VIRTIO_BLK_T_IN:
		if (out_len ||
		    !map_data(chain, chain->nr_readable, nr_writable, 0, in_len,
			      mem, lim, req) ||
		    !sectors_in_range(req, lim->capacity))
			return VIRTIO_BLK_S_IOERR;
		return VIRTIO_BLK_S_OK;
	case VIRTIO_BLK_T_OUT:
		if (in_len || lim->read_only ||
		    !map_data(chain, 0, chain->nr_readable,
			      VIRTIO_BLK_HEADER_SIZE, out_len, mem, lim, req) ||
		    !sectors_in_range(req, lim->capacity))
			return VIRTIO_BLK_S_IOERR;
		return VIRTIO_BLK_S_OK;
	case VIRTIO_BLK_T_FLUSH:
		return out_len || in_len ? VIRTIO_BLK_S_IOERR : VIRTIO_BLK_S_OK;
	case VIRTIO_BLK_T_GET_ID:
		if (in_len > VIRTIO_BLK_ID_BYTES)
			in_len = VIRTIO_BLK_ID_BYTES;
		if (out_len ||
		    !map_data(chain, chain->nr_readable, nr_writable, 0, in_len,
			      mem, lim, req))
			return VIRTIO_BLK_S_IOERR;
		return VIRTIO_BLK_S_OK;
	case VIRTIO_BLK_T_DISCARD:
	case VIRTIO_BLK_T_WRITE_ZEROES:
		return parse_range(chain, mem, lim, out_len, in_len, req);
	default:
		return VIRTIO_BLK_S_UNSUPP;
	}
}

/* ---- The device. */

struct blk_req {
	struct blk_request io;      /* first: the backend hands this back */
	struct virtio_blk *blk;
	struct blk_req *next;       /* on the free or the done list */
	uint32_t generation;        /* blk->generation when popped */
	uint16_t head;
	uint8_t status;
	uint32_t used_len;
	struct virtio_blk_parsed parsed;
};

struct virtio_blk {
	struct virtio_mmio mmio;
	struct io_loop *loop;
	struct blk_backend *backend;
	struct virtio_blk_limits limits;
	uint8_t config[VIRTIO_BLK_CONFIG_SIZE];
	uint8_t serial[VIRTIO_BLK_ID_BYTES];
	struct io_loop_deferred run_work;

	/* Bumped by reset(): requests of older generations are dropped. */
	uint32_t generation;

	/*
	 * Loop thread only: requests are taken from `free_reqs`, a request
	 * the backend had no room for waits in `stalled`, finished ones queue
	 * on `done` until written back under the lock.
	 */
	struct blk_req *free_reqs;
	struct blk_req *stalled;
	struct blk_req *done_head;
	struct blk_req **done_tail;
	struct virtq_chain chain;   /* scratch for virtq_pop */
	struct blk_req reqs[];      /* queue_size of them: one per chain */
};

static void free_req(struct virtio_blk *blk, struct blk_req *req)
{
	req->next = blk->free_reqs;
	blk->free_reqs = req;
}

static void finish_req(struct virtio_blk *blk, struct blk_req *req,
		       uint8_t status, uint64_t data_written)
{
	req->status = status;
	req->used_len = req->parsed.has_status ? data_written + 1 : 0;
	req->next = NULL;
	*blk->done_tail = req;
	blk->done_tail = &req->next;
}

/* Backend completion (loop thread; inside submit for blk_sync). */
static void io_done(struct blk_request *io, int64_t res)
{
	struct blk_req *req = (struct blk_req *)io;
	struct virtio_blk *blk = req->blk;
	bool transfers = io->op == BLK_OP_READ || io->op == BLK_OP_WRITE;
	bool ok = res >= 0 &&
		  (!transfers || (uint64_t)res == req->parsed.data_len);

	if (!ok)
		finish_req(blk, req, VIRTIO_BLK_S_IOERR, 0);
	else
		finish_req(blk, req, VIRTIO_BLK_S_OK,
			   io->op == BLK_OP_READ ? req->parsed.data_len : 0);
	io_loop_defer(blk->loop, &blk->run_work);
}

/* Copies the serial into the GET_ID data segments. */
static void write_serial(const struct virtio_blk *blk,
			 const struct virtio_blk_parsed *p)
{
	const uint8_t *src = blk->serial;

	for (unsigned int i = 0; i < p->nr_segs; i++) {
		memcpy(p->segs[i].iov_base, src, p->segs[i].iov_len);
		src += p->segs[i].iov_len;
	}
}

static enum blk_op blk_op_of(uint32_t type)
{
	switch (type) {
	case VIRTIO_BLK_T_IN:
		return BLK_OP_READ;
	case VIRTIO_BLK_T_OUT:
		return BLK_OP_WRITE;
	case VIRTIO_BLK_T_DISCARD:
		return BLK_OP_DISCARD;
	case VIRTIO_BLK_T_WRITE_ZEROES:
		return BLK_OP_WRITE_ZEROES;
	default:
		return BLK_OP_FLUSH;
	}
}

/* Parses the chain in blk->chain and starts (or finishes) its request. */
static void start_req(struct virtio_blk *blk, struct blk_req *req)
{
	struct virtio_blk_parsed *p = &req->parsed;
	uint8_t status;

	req->generation = blk->generation;
	req->head = blk->chain.head;
	status = virtio_blk_parse(&blk->chain, blk->mmio.mem, &blk->limits, p);
	if (status != VIRTIO_BLK_S_OK) {
		finish_req(blk, req, status, 0);
		return;
	}
	if (p->type == VIRTIO_BLK_T_GET_ID) {
		write_serial(blk, p);
		finish_req(blk, req, VIRTIO_BLK_S_OK, p->data_len);
		return;
	}
	req->io = (struct blk_request){
		.op = blk_op_of(p->type),
		/*
		 * sector + nr_sectors <= capacity < 2^55 (parse checked):
		 * neither product can wrap.
		 */
		.offset = p->sector * BLK_SECTOR_SIZE,
		.iov = p->segs,
		.iovcnt = p->nr_segs,
		.len = (uint64_t)p->nr_sectors * BLK_SECTOR_SIZE,
		.complete = io_done,
	};
	if (blk_backend_submit(blk->backend, &req->io) == -EAGAIN)
		blk->stalled = req;
}

/*
 * Writes back finished requests of the current generation. Returns true
 * if any was pushed to the used ring.
 */
static bool write_back_done(struct virtio_blk *blk, bool live)
{
	struct virtio_mmio_queue *q = &blk->mmio.queues[0];
	bool pushed = false;

	while (blk->done_head) {
		struct blk_req *req = blk->done_head;

		blk->done_head = req->next;
		if (live && req->generation == blk->generation) {
			if (req->parsed.has_status)
				guest_mem_write(blk->mmio.mem, req->parsed.status_gpa,
						&req->status, 1);
			if (virtq_push(&q->vq, blk->mmio.mem, req->head,
				       req->used_len) < 0) {
				virtio_mmio_set_needs_reset(&blk->mmio);
				live = false;
			} else {
				pushed = true;
			}
		}
		free_req(blk, req);
	}
	blk->done_tail = &blk->done_head;
	return pushed;
}

/* Retries the stalled request. False if the backend is still full. */
static bool retry_stalled(struct virtio_blk *blk)
{
	struct blk_req *req = blk->stalled;

	if (!req)
		return true;
	blk->stalled = NULL;
	if (req->generation != blk->generation) {
		free_req(blk, req);
		return true;
	}
	if (blk_backend_submit(blk->backend, &req->io) == -EAGAIN) {
		blk->stalled = req;
		return false;
	}
	return true;
}

/* Pops and starts requests, at most one queue's worth per call. */
static void pop_requests(struct virtio_blk *blk)
{
	struct virtio_mmio_queue *q = &blk->mmio.queues[0];

	if (!retry_stalled(blk))
		return;
	for (unsigned int budget = q->vq.size; !blk->stalled; budget--) {
		struct blk_req *req = blk->free_reqs;
		int ret;

		if (!budget) {
			/* Let other devices run; come back next iteration. */
			io_loop_defer(blk->loop, &blk->run_work);
			return;
		}
		/* None free: completions of dropped requests will re-run us. */
		if (!req)
			return;
		ret = virtq_pop(&q->vq, blk->mmio.mem, &blk->chain);
		if (ret < 0)
			virtio_mmio_set_needs_reset(&blk->mmio);
		if (ret <= 0)
			return;
		blk->free_reqs = req->next;
		start_req(blk, req);
	}
}

/* The device's work on the loop thread: write back, then take new chains. */
static void blk_run(struct virtio_blk *blk)
{
	bool pushed, live;

	pthread_mutex_lock(&blk->mmio.lock);
	live = virtio_mmio_live(&blk->mmio) && blk->mmio.queues[0].ready;
	pushed = write_back_done(blk, live);
	live = virtio_mmio_live(&blk->mmio) && blk->mmio.queues[0].ready;
	if (live) {
		pop_requests(blk);
		/* blk_sync finished them already. */
		pushed |= write_back_done(blk, virtio_mmio_live(&blk->mmio));
	}
	if (pushed && virtio_mmio_live(&blk->mmio))
		virtio_mmio_notify_used(&blk->mmio, 0);
	pthread_mutex_unlock(&blk->mmio.lock);
}

static void queue_notified(void *opaque)
{
	blk_run(opaque);
}

static void run_deferred(struct io_loop_deferred *work)
{
	blk_run((struct virtio_blk *)((char *)work -
				      offsetof(struct virtio_blk, run_work)));
}

/* ---- Transport callbacks (vCPU thread, lock held). */

static void blk_config_access(void *dev, uint32_t offset, void *data,
			      uint32_t len, bool is_write)
{
	struct virtio_blk *blk = dev;

	/* Every field we expose is read-only for the driver. */
	if (!is_write)
		memcpy(data, blk->config + offset, len);
}

static int blk_activate(void *dev)
{
	struct virtio_blk *blk = dev;

	/* Chains made available before DRIVER_OK: look on the loop thread. */
	return eventfd_write(blk->mmio.queues[0].notify_fd, 1) < 0 ? -errno : 0;
}

static void blk_reset(void *dev)
{
	struct virtio_blk *blk = dev;

	blk->generation++;
}

static const struct virtio_device_ops blk_ops = {
	.config_access = blk_config_access,
	.activate = blk_activate,
	.reset = blk_reset,
};

static void put_le32(uint8_t *p, uint32_t v)
{
	v = htole32(v);
	memcpy(p, &v, sizeof(v));
}

static void fill_config(struct virtio_blk *blk)
{
	uint64_t capacity = htole64(blk->limits.capacity);

	memcpy(blk->config + VIRTIO_BLK_CFG_CAPACITY, &capacity, sizeof(capacity));
	put_le32(blk->config + VIRTIO_BLK_CFG_SIZE_MAX, blk->limits.size_max);
	put_le32(blk->config + VIRTIO_BLK_CFG_SEG_MAX, blk->limits.seg_max);
	put_le32(blk->config + VIRTIO_BLK_CFG_BLK_SIZE, BLK_SECTOR_SIZE);
	if (blk->limits.read_only)
		return;
	put_le32(blk->config + VIRTIO_BLK_CFG_MAX_DISCARD_SECTORS,
		 blk->limits.range_sectors_max);
	put_le32(blk->config + VIRTIO_BLK_CFG_MAX_DISCARD_SEG,
		 VIRTIO_BLK_RANGE_SEG_MAX);
	put_le32(blk->config + VIRTIO_BLK_CFG_DISCARD_SECTOR_ALIGNMENT, 1);
	put_le32(blk->config + VIRTIO_BLK_CFG_MAX_WRITE_ZEROES_SECTORS,
		 blk->limits.range_sectors_max);
	put_le32(blk->config + VIRTIO_BLK_CFG_MAX_WRITE_ZEROES_SEG,
		 VIRTIO_BLK_RANGE_SEG_MAX);
	/* ZERO_RANGE may deallocate, and the PUNCH_HOLE fallback does. */
	blk->config[VIRTIO_BLK_CFG_WRITE_ZEROES_MAY_UNMAP] = 1;
}

int virtio_blk_create(struct virtio_blk **out, struct io_loop *loop,
		      struct blk_backend *backend, unsigned int queue_size,
		      const char *serial, const struct guest_mem *mem,
		      int irq_fd, char *err, size_t err_size)
{
	const struct blk_disk *disk;
	size_t serial_len = serial ? strlen(serial) : 0;
	struct virtio_mmio_config cfg;
	struct virtio_blk *blk;
	int ret;

	if (serial_len > VIRTIO_BLK_ID_BYTES) {
		snprintf(err, err_size, "virtio-blk: serial \"%s\" is longer than %d bytes",
			 serial, VIRTIO_BLK_ID_BYTES);
		return -EINVAL;
	}
	if (queue_size == 0 || queue_size > VIRTIO_BLK_QUEUE_SIZE_MAX ||
	    (queue_size & (queue_size - 1))) {
		snprintf(err, err_size,
			 "virtio-blk: queue size %u is not a power of two in 1..%d",
			 queue_size, VIRTIO_BLK_QUEUE_SIZE_MAX);
		return -EINVAL;
	}
	disk = backend->disk;
	blk = calloc(1, sizeof(*blk) + queue_size * sizeof(blk->reqs[0]));
	if (!blk) {
		snprintf(err, err_size, "virtio-blk: out of memory");
		return -ENOMEM;
	}
	blk->loop = loop;
	blk->backend = backend;
	if (serial_len)
		memcpy(blk->serial, serial, serial_len);
	blk->limits = (struct virtio_blk_limits){
		.capacity = disk->capacity / BLK_SECTOR_SIZE,
		.read_only = disk->read_only,
		.seg_max = VIRTIO_BLK_SEG_MAX,
		.size_max = VIRTIO_BLK_SIZE_MAX,
		.range_sectors_max = disk->read_only ? 0 :
				     VIRTIO_BLK_RANGE_SECTORS_MAX,
	};
	fill_config(blk);
	blk->run_work.run = run_deferred;
	blk->done_tail = &blk->done_head;
	for (unsigned int i = 0; i < queue_size; i++) {
		blk->reqs[i].blk = blk;
		free_req(blk, &blk->reqs[i]);
	}

	cfg = (struct virtio_mmio_config){
		.device_id = VIRTIO_ID_BLOCK,
		.device_features = 1ull << VIRTIO_BLK_F_SIZE_MAX |
				   1ull << VIRTIO_BLK_F_SEG_MAX |
				   1ull << VIRTIO_BLK_F_BLK_SIZE |
				   1ull << VIRTIO_BLK_F_FLUSH |
				   (disk->read_only ? 1ull << VIRTIO_BLK_F_RO :
				    1ull << VIRTIO_BLK_F_DISCARD |
				    1ull << VIRTIO_BLK_F_WRITE_ZEROES),
		.nr_queues = 1,
		.queue_size_max = queue_size,
		.config_size = VIRTIO_BLK_CONFIG_SIZE,
		.ops = &blk_ops,
		.dev = blk,
	};
	ret = virtio_mmio_init(&blk->mmio, &cfg, mem, irq_fd);
	if (ret < 0) {
		snprintf(err, err_size, "virtio-blk: transport: %s", strerror(-ret));
		goto err_free;
	}
	ret = io_loop_watch_eventfd(loop, blk->mmio.queues[0].notify_fd,
				    queue_notified, blk);
	if (ret < 0) {
		snprintf(err, err_size, "virtio-blk: cannot watch the queue: %s",
			 strerror(-ret));
		goto err_mmio;
	}
	*out = blk;
	return 0;

err_mmio:
	virtio_mmio_destroy(&blk->mmio);
err_free:
	free(blk);
	return ret;
}

struct virtio_mmio *virtio_blk_mmio(struct virtio_blk *blk)
{
	return &blk->mmio;
}

void virtio_blk_destroy(struct virtio_blk *blk)
{
	virtio_mmio_destroy(&blk->mmio);
	free(blk);
}
