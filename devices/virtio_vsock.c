#include "devices/virtio_vsock.h"

#include <endian.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>

/* Buckets of the (host port, guest port) -> connection table. */
#define HASH_BITS 11
#define HASH_BUCKETS (1u << HASH_BITS)
#define NO_CONN (-1)

_Static_assert(HASH_BUCKETS >= VSOCK_MAX_CONNS, "hash table too small");

enum conn_state {
	CONN_FREE,
	CONN_CONNECTING,    /* guest-initiated: the backend connects */
	CONN_REQUEST,       /* host-initiated: waiting for the guest's answer */
	CONN_ACCEPTING,     /* host-initiated: the guest accepted, the backend finishes */
	CONN_ESTABLISHED,
	CONN_CLOSING,       /* out of the table: owes an RST and/or waits for release */
};

struct vsock_conn {
	enum conn_state state;
	uint32_t host_port;
	uint32_t guest_port;
	int hash_next;              /* also the free list's link */
	int ready_next;
	bool on_ready;              /* on the list of connections owing rx packets */
	bool backend_holds;         /* the backend has a host stream for it */
	bool release_sent;

	/* Control packets owed to the guest. */
	bool send_request, send_response, send_rst, send_shutdown;
	bool send_credit_update, send_credit_request;

	/* Guest to host: a ring of VSOCK_BUF_ALLOC bytes, allocated on first use. */
	uint8_t *to_host;
	uint32_t to_host_head;
	uint32_t to_host_len;
	uint32_t fwd_cnt;           /* bytes written to the host stream */
	uint32_t fwd_cnt_told;      /* fwd_cnt in the last packet to the guest */
	bool writing;
	bool guest_shut_send;
	bool guest_shut_rcv;
	bool host_write_shut;

	/* Host to guest: one read's bytes, VSOCK_READ_CHUNK allocated on first use. */
	uint8_t *to_guest;
	uint32_t to_guest_off;
	uint32_t to_guest_len;
	bool reading;
	bool host_eof;
	bool shutdown_sent;
	uint32_t tx_cnt;            /* bytes sent to the guest */
	uint32_t peer_buf_alloc;
	uint32_t peer_fwd_cnt;
	bool credit_requested;
};

struct pending_rst {
	uint32_t host_port;
	uint32_t guest_port;
};

struct virtio_vsock {
	struct virtio_mmio mmio;
	struct io_loop *loop;
	struct vsock_backend *be;
	uint64_t guest_cid;
	uint8_t config[VIRTIO_VSOCK_CONFIG_SIZE];
	struct io_loop_deferred run_work;
	bool reset_pending;         /* set by the vCPU thread, under the lock */
	uint64_t dropped;

	/* Loop thread only (and under the lock). */
	unsigned int nr_conns;      /* slots not FREE */
	uint32_t next_host_port;
	int free_head;
	int ready_head, ready_tail;
	struct pending_rst rsts[VSOCK_MAX_PENDING_RSTS];
	unsigned int rst_head, nr_rsts;
	int buckets[HASH_BUCKETS];
	struct virtq_chain chain;   /* scratch for virtq_pop */
	struct vsock_conn conns[VSOCK_MAX_CONNS];
};

static void conn_progress(struct virtio_vsock *dev, struct vsock_conn *c);

static unsigned int conn_id(const struct virtio_vsock *dev,
			    const struct vsock_conn *c)
{
	return (unsigned int)(c - dev->conns);
}

/* ---- The connection table. */

static unsigned int hash_key(uint32_t host_port, uint32_t guest_port)
{
	uint32_t h = host_port * 0x9e3779b1u ^ guest_port * 0x85ebca77u;

	return h >> (32 - HASH_BITS);
}

static struct vsock_conn *lookup(struct virtio_vsock *dev, uint32_t host_port,
				 uint32_t guest_port)
{
	for (int i = dev->buckets[hash_key(host_port, guest_port)]; i != NO_CONN;
	     i = dev->conns[i].hash_next) {
		struct vsock_conn *c = &dev->conns[i];

		if (c->host_port == host_port && c->guest_port == guest_port)
			return c;
	}
	return NULL;
}

static void hash_del(struct virtio_vsock *dev, struct vsock_conn *c)
{
	int *link = &dev->buckets[hash_key(c->host_port, c->guest_port)];
	int id = (int)conn_id(dev, c);

	while (*link != id)
		link = &dev->conns[*link].hash_next;
	*link = c->hash_next;
	c->hash_next = NO_CONN;
}

/* Takes a free slot for a new connection; the caller checked the cap. */
static struct vsock_conn *conn_alloc(struct virtio_vsock *dev, uint32_t host_port,
				     uint32_t guest_port, enum conn_state state)
{
	int id = dev->free_head;
	struct vsock_conn *c = &dev->conns[id];
	unsigned int bucket = hash_key(host_port, guest_port);

	dev->free_head = c->hash_next;
	*c = (struct vsock_conn){
		.state = state, .host_port = host_port, .guest_port = guest_port,
		.hash_next = dev->buckets[bucket], .ready_next = NO_CONN,
	};
	dev->buckets[bucket] = id;
	dev->nr_conns++;
	return c;
}

static void conn_free(struct virtio_vsock *dev, struct vsock_conn *c)
{
	free(c->to_host);
	free(c->to_guest);
	*c = (struct vsock_conn){
		.state = CONN_FREE, .hash_next = dev->free_head,
		.ready_next = NO_CONN,
	};
	dev->free_head = (int)conn_id(dev, c);
	dev->nr_conns--;
}

/* True if the connection owes the guest a packet it can send now. */
static bool conn_has_rx_work(const struct vsock_conn *c)
{
	if (c->state == CONN_CLOSING)
		return c->send_rst;
	return c->send_request || c->send_response || c->to_guest_len ||
	       c->send_shutdown || c->send_credit_update || c->send_credit_request;
}

static void mark_ready(struct virtio_vsock *dev, struct vsock_conn *c)
{
	int id = (int)conn_id(dev, c);

	if (c->on_ready)
		return;
	c->on_ready = true;
	c->ready_next = NO_CONN;
	if (dev->ready_head == NO_CONN)
		dev->ready_head = id;
	else
		dev->conns[dev->ready_tail].ready_next = id;
	dev->ready_tail = id;
}

static struct vsock_conn *ready_pop(struct virtio_vsock *dev)
{
	struct vsock_conn *c;

	if (dev->ready_head == NO_CONN)
		return NULL;
	c = &dev->conns[dev->ready_head];
	dev->ready_head = c->ready_next;
	c->ready_next = NO_CONN;
	c->on_ready = false;
	return c;
}

/* A closing connection is freed once it owes nothing and holds nothing. */
static void conn_maybe_free(struct virtio_vsock *dev, struct vsock_conn *c)
{
	if (c->state == CONN_CLOSING && !c->send_rst && !c->backend_holds &&
	    !c->on_ready)
		conn_free(dev, c);
}

/*
 * Ends the connection: out of the table (so its ports can be reused at
 * once), an RST to the guest if @rst, the host stream released.
 */
static void conn_abort(struct virtio_vsock *dev, struct vsock_conn *c, bool rst)
{
	if (c->state == CONN_CLOSING)
		return;
	hash_del(dev, c);
	c->state = CONN_CLOSING;
	c->send_request = c->send_response = c->send_shutdown = false;
	c->send_credit_update = c->send_credit_request = false;
	c->send_rst = rst;
	if (c->backend_holds && !c->release_sent) {
		c->release_sent = true;
		dev->be->ops->release(dev->be, conn_id(dev, c));
	}
	if (rst)
		mark_ready(dev, c);
	conn_maybe_free(dev, c);
}

/* An RST for a packet that has no connection; dropped if too many wait. */
static void queue_rst(struct virtio_vsock *dev, uint32_t host_port,
		      uint32_t guest_port)
{
	unsigned int slot;

	if (dev->nr_rsts == VSOCK_MAX_PENDING_RSTS)
		return;
	slot = (dev->rst_head + dev->nr_rsts++) % VSOCK_MAX_PENDING_RSTS;
	dev->rsts[slot] = (struct pending_rst){
		.host_port = host_port, .guest_port = guest_port,
	};
}

/* ---- Moving bytes through the backend. */

static bool start_write(struct virtio_vsock *dev, struct vsock_conn *c)
{
	uint32_t first = VSOCK_BUF_ALLOC - c->to_host_head;
	struct iovec iov[2];
	unsigned int n = 1;

	if (first > c->to_host_len)
		first = c->to_host_len;
	iov[0] = (struct iovec){ c->to_host + c->to_host_head, first };
	if (first < c->to_host_len) {
		iov[1] = (struct iovec){ c->to_host, c->to_host_len - first };
		n = 2;
	}
	if (dev->be->ops->write(dev->be, conn_id(dev, c), iov, n) < 0) {
		conn_abort(dev, c, true);
		return false;
	}
	c->writing = true;
	return true;
}

/* Reads from the host only into what the guest has room for. */
static bool start_read(struct virtio_vsock *dev, struct vsock_conn *c)
{
	uint32_t credit = vsock_peer_free(c->peer_buf_alloc, c->tx_cnt,
					  c->peer_fwd_cnt);

	if (!credit) {
		/* Ask once; the guest's next update (or any packet) tells. */
		if (!c->credit_requested) {
			c->credit_requested = true;
			c->send_credit_request = true;
		}
		return true;
	}
	if (!c->to_guest) {
		c->to_guest = malloc(VSOCK_READ_CHUNK);
		if (!c->to_guest) {
			conn_abort(dev, c, true);
			return false;
		}
	}
	if (credit > VSOCK_READ_CHUNK)
		credit = VSOCK_READ_CHUNK;
	if (dev->be->ops->read(dev->be, conn_id(dev, c), c->to_guest, credit) < 0) {
		conn_abort(dev, c, true);
		return false;
	}
	c->reading = true;
	return true;
}

/*
 * Moves an established connection along: writes buffered guest bytes,
 * ends the host's write side after the guest's SHUTDOWN(SEND), reads when
 * the guest has room, turns the host's end of stream into SHUTDOWN, and
 * closes once both directions are over. Then queues what it owes the guest.
 */
static void conn_progress(struct virtio_vsock *dev, struct vsock_conn *c)
{
	if (c->state == CONN_ESTABLISHED) {
		if (!c->writing && c->to_host_len) {
			if (!start_write(dev, c))
				return;
		} else if (!c->writing && c->guest_shut_send && !c->host_write_shut) {
			c->host_write_shut = true;
			dev->be->ops->shutdown_write(dev->be, conn_id(dev, c));
		}
		if (c->guest_shut_rcv) {
			c->to_guest_len = 0;
		} else if (!c->reading && !c->to_guest_len && !c->host_eof) {
			if (!start_read(dev, c))
				return;
		}
		if (c->host_eof && !c->to_guest_len && !c->shutdown_sent)
			c->send_shutdown = true;
		if (c->host_write_shut && (c->guest_shut_rcv || c->shutdown_sent)) {
			conn_abort(dev, c, true);
			return;
		}
	}
	if (conn_has_rx_work(c))
		mark_ready(dev, c);
}

/* ---- Guest memory. */

/* Copies @len bytes at byte @offset of the chain's readable part to @out. */
static bool chain_read(const struct virtq_chain *chain, const struct guest_mem *mem,
		       uint64_t offset, void *out, size_t len)
{
	uint8_t *dst = out;

	for (unsigned int i = 0; i < chain->nr_readable && len; i++) {
		const struct virtq_buf *b = &chain->bufs[i];
		const uint8_t *src;
		size_t take;

		if (offset >= b->len) {
			offset -= b->len;
			continue;
		}
		src = guest_mem_ptr(mem, b->gpa, b->len);
		if (!src)
			return false;
		take = b->len - offset < len ? b->len - offset : len;
		memcpy(dst, src + offset, take);
		dst += take;
		len -= take;
		offset = 0;
	}
	return len == 0;
}

/* Copies @len bytes to byte @offset of the chain's writable part. */
static bool chain_write(const struct virtq_chain *chain, const struct guest_mem *mem,
			uint64_t offset, const void *data, size_t len)
{
	const uint8_t *src = data;

	for (unsigned int i = chain->nr_readable; i < chain->nr_bufs && len; i++) {
		const struct virtq_buf *b = &chain->bufs[i];
		uint8_t *dst;
		size_t take;

		if (offset >= b->len) {
			offset -= b->len;
			continue;
		}
		dst = guest_mem_ptr(mem, b->gpa, b->len);
		if (!dst)
			return false;
		take = b->len - offset < len ? b->len - offset : len;
		memcpy(dst + offset, src, take);
		src += take;
		len -= take;
		offset = 0;
	}
	return len == 0;
}

/* ---- Guest to device: the tx queue. */

static void new_guest_conn(struct virtio_vsock *dev, const struct vsock_hdr *hdr)
{
	struct vsock_conn *c;

	if (dev->nr_conns == VSOCK_MAX_CONNS) {
		queue_rst(dev, hdr->dst_port, hdr->src_port);
		return;
	}
	c = conn_alloc(dev, hdr->dst_port, hdr->src_port, CONN_CONNECTING);
	c->peer_buf_alloc = hdr->buf_alloc;
	c->peer_fwd_cnt = hdr->fwd_cnt;
	if (dev->be->ops->connect(dev->be, conn_id(dev, c), hdr->dst_port) < 0) {
		conn_abort(dev, c, true);
		return;
	}
	c->backend_holds = true;
}

/* RW: the payload goes into the connection's ring, within its credit. */
static void receive_data(struct virtio_vsock *dev, struct vsock_conn *c,
			 const struct vsock_hdr *hdr)
{
	uint32_t tail, first;

	if ((c->state != CONN_ESTABLISHED && c->state != CONN_ACCEPTING) ||
	    c->guest_shut_send || hdr->len > VSOCK_BUF_ALLOC - c->to_host_len) {
		conn_abort(dev, c, true);
		return;
	}
	if (!hdr->len)
		return;
	if (!c->to_host) {
		c->to_host = malloc(VSOCK_BUF_ALLOC);
		if (!c->to_host) {
			conn_abort(dev, c, true);
			return;
		}
	}
	if (!c->to_host_len)
		c->to_host_head = 0;
	tail = (c->to_host_head + c->to_host_len) % VSOCK_BUF_ALLOC;
	first = VSOCK_BUF_ALLOC - tail;
	if (first > hdr->len)
		first = hdr->len;
	/* The chain's bytes were checked to be there (vsock_hdr_check). */
	if (!chain_read(&dev->chain, dev->mmio.mem, VSOCK_HDR_SIZE,
			c->to_host + tail, first) ||
	    !chain_read(&dev->chain, dev->mmio.mem, VSOCK_HDR_SIZE + first,
			c->to_host, hdr->len - first)) {
		conn_abort(dev, c, true);
		return;
	}
	c->to_host_len += hdr->len;
}

static void handle_packet(struct virtio_vsock *dev, const struct vsock_hdr *hdr)
{
	struct vsock_conn *c = lookup(dev, hdr->dst_port, hdr->src_port);

	if (!c) {
		if (hdr->op == VSOCK_OP_REQUEST)
			new_guest_conn(dev, hdr);
		else if (hdr->op != VSOCK_OP_RST)
			queue_rst(dev, hdr->dst_port, hdr->src_port);
		return;
	}
	/* Every packet carries the guest's current credit. */
	c->peer_buf_alloc = hdr->buf_alloc;
	c->peer_fwd_cnt = hdr->fwd_cnt;
	switch (hdr->op) {
	case VSOCK_OP_RESPONSE:
		/* Only to our REQUEST, once the guest can have seen it. */
		if (c->state != CONN_REQUEST || c->send_request ||
		    dev->be->ops->accept(dev->be, conn_id(dev, c), c->host_port) < 0) {
			conn_abort(dev, c, true);
			return;
		}
		c->state = CONN_ACCEPTING;
		break;
	case VSOCK_OP_RST:
		conn_abort(dev, c, false);
		return;
	case VSOCK_OP_SHUTDOWN:
		if (c->state != CONN_ESTABLISHED && c->state != CONN_ACCEPTING) {
			conn_abort(dev, c, true);
			return;
		}
		c->guest_shut_rcv |= (hdr->flags & VSOCK_SHUTDOWN_RCV) != 0;
		c->guest_shut_send |= (hdr->flags & VSOCK_SHUTDOWN_SEND) != 0;
		break;
	case VSOCK_OP_RW:
		receive_data(dev, c, hdr);
		if (c->state == CONN_CLOSING)
			return;
		break;
	case VSOCK_OP_CREDIT_UPDATE:
		c->credit_requested = false;
		break;
	case VSOCK_OP_CREDIT_REQUEST:
		c->send_credit_update = true;
		break;
	default:
		/* A second REQUEST on a connection. */
		conn_abort(dev, c, true);
		return;
	}
	conn_progress(dev, c);
}

/* Takes packets off the tx queue, at most one queue's worth per call. */
static void process_tx(struct virtio_vsock *dev)
{
	struct virtio_mmio_queue *q = &dev->mmio.queues[VIRTIO_VSOCK_QUEUE_TX];
	bool pushed = false;

	for (unsigned int budget = q->vq.size; ; budget--) {
		uint8_t raw[VSOCK_HDR_SIZE];
		struct vsock_hdr hdr;
		int ret;

		if (!budget) {
			io_loop_defer(dev->loop, &dev->run_work);
			break;
		}
		ret = virtq_pop(&q->vq, dev->mmio.mem, &dev->chain);
		if (ret < 0)
			virtio_mmio_set_needs_reset(&dev->mmio);
		if (ret <= 0)
			break;
		if (dev->chain.readable_len < VSOCK_HDR_SIZE ||
		    !chain_read(&dev->chain, dev->mmio.mem, 0, raw, sizeof(raw))) {
			dev->dropped++;
		} else {
			vsock_hdr_decode(raw, &hdr);
			if (vsock_hdr_check(&hdr, dev->guest_cid,
					    dev->chain.readable_len - VSOCK_HDR_SIZE))
				dev->dropped++;
			else
				handle_packet(dev, &hdr);
		}
		if (virtq_push(&q->vq, dev->mmio.mem, dev->chain.head, 0) < 0) {
			virtio_mmio_set_needs_reset(&dev->mmio);
			return;
		}
		pushed = true;
	}
	if (pushed && virtio_mmio_live(&dev->mmio))
		virtio_mmio_notify_used(&dev->mmio, VIRTIO_VSOCK_QUEUE_TX);
}

/* ---- Device to guest: the rx queue. */

static struct vsock_hdr hdr_to_guest(const struct virtio_vsock *dev,
				     uint32_t host_port, uint32_t guest_port,
				     uint16_t op)
{
	return (struct vsock_hdr){
		.src_cid = VSOCK_CID_HOST, .dst_cid = dev->guest_cid,
		.src_port = host_port, .dst_port = guest_port,
		.type = VSOCK_TYPE_STREAM, .op = op,
	};
}

/*
 * The connection's next packet for a buffer with room for @room payload
 * bytes, its payload in @payload. Clears what it sends.
 */
static struct vsock_hdr conn_next_packet(struct virtio_vsock *dev,
					 struct vsock_conn *c, uint32_t room,
					 const uint8_t **payload)
{
	struct vsock_hdr hdr = hdr_to_guest(dev, c->host_port, c->guest_port, 0);

	*payload = NULL;
	if (c->send_rst) {
		hdr.op = VSOCK_OP_RST;
		c->send_rst = false;
	} else if (c->send_request) {
		hdr.op = VSOCK_OP_REQUEST;
		c->send_request = false;
	} else if (c->send_response) {
		hdr.op = VSOCK_OP_RESPONSE;
		c->send_response = false;
	} else if (c->to_guest_len) {
		hdr.op = VSOCK_OP_RW;
		hdr.len = c->to_guest_len < room ? c->to_guest_len : room;
		*payload = c->to_guest + c->to_guest_off;
		c->to_guest_off += hdr.len;
		c->to_guest_len -= hdr.len;
		c->tx_cnt += hdr.len;
	} else if (c->send_shutdown) {
		hdr.op = VSOCK_OP_SHUTDOWN;
		hdr.flags = VSOCK_SHUTDOWN_SEND;
		c->send_shutdown = false;
		c->shutdown_sent = true;
	} else if (c->send_credit_update) {
		hdr.op = VSOCK_OP_CREDIT_UPDATE;
	} else {
		hdr.op = VSOCK_OP_CREDIT_REQUEST;
		c->send_credit_request = false;
	}
	/* Every packet tells the guest our credit. */
	hdr.buf_alloc = VSOCK_BUF_ALLOC;
	hdr.fwd_cnt = c->fwd_cnt;
	c->fwd_cnt_told = c->fwd_cnt;
	c->send_credit_update = false;
	return hdr;
}

/* Drops connections from the head of the ready list that owe nothing. */
static struct vsock_conn *next_ready(struct virtio_vsock *dev)
{
	while (dev->ready_head != NO_CONN) {
		struct vsock_conn *c = &dev->conns[dev->ready_head];

		if (conn_has_rx_work(c))
			return c;
		ready_pop(dev);
		conn_maybe_free(dev, c);
	}
	return NULL;
}

/*
 * Fills rx buffers: pending RSTs first, then one packet per ready
 * connection in turn. Stops when the guest has no buffer; its next kick
 * brings us back.
 */
static void process_rx(struct virtio_vsock *dev)
{
	struct virtio_mmio_queue *q = &dev->mmio.queues[VIRTIO_VSOCK_QUEUE_RX];
	bool pushed = false;

	for (unsigned int budget = q->vq.size; ; budget--) {
		struct vsock_conn *c = next_ready(dev);
		uint8_t raw[VSOCK_HDR_SIZE];
		const uint8_t *payload = NULL;
		struct vsock_hdr hdr;
		uint64_t room;
		int ret;

		if (!c && !dev->nr_rsts)
			break;
		if (!budget) {
			io_loop_defer(dev->loop, &dev->run_work);
			break;
		}
		ret = virtq_pop(&q->vq, dev->mmio.mem, &dev->chain);
		if (ret < 0)
			virtio_mmio_set_needs_reset(&dev->mmio);
		if (ret <= 0)
			break;
		/* A buffer must hold a header and at least one byte of data. */
		if (dev->chain.writable_len <= VSOCK_HDR_SIZE) {
			virtio_mmio_set_needs_reset(&dev->mmio);
			return;
		}
		room = dev->chain.writable_len - VSOCK_HDR_SIZE;
		if (room > VSOCK_READ_CHUNK)
			room = VSOCK_READ_CHUNK;
		if (dev->nr_rsts) {
			struct pending_rst *rst = &dev->rsts[dev->rst_head];

			hdr = hdr_to_guest(dev, rst->host_port, rst->guest_port,
					   VSOCK_OP_RST);
			dev->rst_head = (dev->rst_head + 1) % VSOCK_MAX_PENDING_RSTS;
			dev->nr_rsts--;
			c = NULL;
		} else {
			ready_pop(dev);
			hdr = conn_next_packet(dev, c, (uint32_t)room, &payload);
		}
		vsock_hdr_encode(&hdr, raw);
		if (!chain_write(&dev->chain, dev->mmio.mem, 0, raw, sizeof(raw)) ||
		    !chain_write(&dev->chain, dev->mmio.mem, VSOCK_HDR_SIZE,
				 payload, hdr.len) ||
		    virtq_push(&q->vq, dev->mmio.mem, dev->chain.head,
			       VSOCK_HDR_SIZE + hdr.len) < 0) {
			virtio_mmio_set_needs_reset(&dev->mmio);
			return;
		}
		pushed = true;
		if (payload || hdr.op == VSOCK_OP_SHUTDOWN) {
			/* The guest has the bytes: read on, or close. */
			conn_progress(dev, c);
		} else if (c) {
			if (conn_has_rx_work(c))
				mark_ready(dev, c);
			conn_maybe_free(dev, c);
		}
	}
	if (pushed)
		virtio_mmio_notify_used(&dev->mmio, VIRTIO_VSOCK_QUEUE_RX);
}

/* ---- The device's work on the loop thread. */

/* After a driver reset: every connection goes, without a word to the guest. */
static void drop_all(struct virtio_vsock *dev)
{
	dev->nr_rsts = 0;
	for (unsigned int i = 0; i < VSOCK_MAX_CONNS; i++) {
		struct vsock_conn *c = &dev->conns[i];

		if (c->state == CONN_FREE)
			continue;
		conn_abort(dev, c, false);
		c->send_rst = false;
	}
	while (ready_pop(dev))
		;
	for (unsigned int i = 0; i < VSOCK_MAX_CONNS; i++) {
		if (dev->conns[i].state != CONN_FREE)
			conn_maybe_free(dev, &dev->conns[i]);
	}
}

static bool queue_live(const struct virtio_vsock *dev, unsigned int queue)
{
	return virtio_mmio_live(&dev->mmio) && dev->mmio.queues[queue].ready;
}

/* With the lock held: tx first (it may owe rx packets), then rx. */
static void run_locked(struct virtio_vsock *dev)
{
	if (dev->reset_pending) {
		dev->reset_pending = false;
		drop_all(dev);
	}
	if (queue_live(dev, VIRTIO_VSOCK_QUEUE_TX))
		process_tx(dev);
	if (queue_live(dev, VIRTIO_VSOCK_QUEUE_RX))
		process_rx(dev);
}

static void vsock_run(struct virtio_vsock *dev)
{
	pthread_mutex_lock(&dev->mmio.lock);
	run_locked(dev);
	pthread_mutex_unlock(&dev->mmio.lock);
}

static void queue_notified(void *opaque)
{
	vsock_run(opaque);
}

static void run_deferred(struct io_loop_deferred *work)
{
	vsock_run((struct virtio_vsock *)((char *)work -
					  offsetof(struct virtio_vsock, run_work)));
}

/* ---- Backend callbacks (loop thread). */

/* Locks and returns the connection @id if it is one the backend may name. */
static struct vsock_conn *callback_conn(struct virtio_vsock *dev, unsigned int id)
{
	struct vsock_conn *c;

	pthread_mutex_lock(&dev->mmio.lock);
	if (id >= VSOCK_MAX_CONNS)
		return NULL;
	c = &dev->conns[id];
	return c->backend_holds ? c : NULL;
}

/* Unlocks and lets the next run send what the callback queued. */
static void callback_done(struct virtio_vsock *dev)
{
	pthread_mutex_unlock(&dev->mmio.lock);
	io_loop_defer(dev->loop, &dev->run_work);
}

int virtio_vsock_host_connect(struct virtio_vsock *dev, uint32_t guest_port,
			      unsigned int *id, uint32_t *host_port)
{
	struct vsock_conn *c;
	uint32_t port;
	int ret = 0;

	pthread_mutex_lock(&dev->mmio.lock);
	if (!queue_live(dev, VIRTIO_VSOCK_QUEUE_RX) || dev->reset_pending) {
		ret = -ENOTCONN;
		goto out;
	}
	if (dev->nr_conns == VSOCK_MAX_CONNS) {
		ret = -EBUSY;
		goto out;
	}
	/* A free port exists among VSOCK_MAX_CONNS + 1 candidates. */
	do {
		port = dev->next_host_port++;
		if (dev->next_host_port == VSOCK_PORT_ANY)
			dev->next_host_port = VSOCK_HOST_PORT_FIRST;
	} while (lookup(dev, port, guest_port));
	c = conn_alloc(dev, port, guest_port, CONN_REQUEST);
	c->backend_holds = true;
	c->send_request = true;
	mark_ready(dev, c);
	*id = conn_id(dev, c);
	*host_port = port;
out:
	callback_done(dev);
	return ret;
}

void virtio_vsock_connected(struct virtio_vsock *dev, unsigned int id, int err)
{
	struct vsock_conn *c = callback_conn(dev, id);

	if (!c || c->release_sent) {
		callback_done(dev);
		return;
	}
	if (err < 0) {
		c->backend_holds = false;
		conn_abort(dev, c, true);
	} else if (c->state == CONN_CONNECTING || c->state == CONN_ACCEPTING) {
		c->send_response = c->state == CONN_CONNECTING;
		c->state = CONN_ESTABLISHED;
		conn_progress(dev, c);
	}
	callback_done(dev);
}

void virtio_vsock_written(struct virtio_vsock *dev, unsigned int id, ssize_t res)
{
	struct vsock_conn *c = callback_conn(dev, id);

	if (!c || c->release_sent || !c->writing) {
		callback_done(dev);
		return;
	}
	c->writing = false;
	if (res <= 0 || (size_t)res > c->to_host_len) {
		conn_abort(dev, c, true);
		callback_done(dev);
		return;
	}
	c->to_host_head = (c->to_host_head + (uint32_t)res) % VSOCK_BUF_ALLOC;
	c->to_host_len -= (uint32_t)res;
	c->fwd_cnt += (uint32_t)res;
	if (c->fwd_cnt - c->fwd_cnt_told >= VSOCK_CREDIT_UPDATE_THRESHOLD)
		c->send_credit_update = true;
	conn_progress(dev, c);
	callback_done(dev);
}

void virtio_vsock_read_done(struct virtio_vsock *dev, unsigned int id, ssize_t res)
{
	struct vsock_conn *c = callback_conn(dev, id);

	if (!c || c->release_sent || !c->reading) {
		callback_done(dev);
		return;
	}
	c->reading = false;
	if (res < 0 || (size_t)res > VSOCK_READ_CHUNK) {
		conn_abort(dev, c, true);
		callback_done(dev);
		return;
	}
	if (res == 0) {
		c->host_eof = true;
	} else if (!c->guest_shut_rcv) {
		c->to_guest_off = 0;
		c->to_guest_len = (uint32_t)res;
	}
	conn_progress(dev, c);
	callback_done(dev);
}

void virtio_vsock_abort(struct virtio_vsock *dev, unsigned int id)
{
	struct vsock_conn *c = callback_conn(dev, id);

	if (c && !c->release_sent)
		conn_abort(dev, c, true);
	callback_done(dev);
}

void virtio_vsock_released(struct virtio_vsock *dev, unsigned int id)
{
	struct vsock_conn *c = callback_conn(dev, id);

	if (c && c->release_sent) {
		c->backend_holds = false;
		c->reading = c->writing = false;
		conn_maybe_free(dev, c);
	}
	callback_done(dev);
}

/* ---- Transport callbacks (vCPU thread, lock held). */

static void vsock_config_access(void *opaque, uint32_t offset, void *data,
				uint32_t len, bool is_write)
{
	struct virtio_vsock *dev = opaque;

	/* guest_cid is read-only for the driver. */
	if (!is_write)
		memcpy(data, dev->config + offset, len);
}

static int vsock_activate(void *opaque)
{
	struct virtio_vsock *dev = opaque;

	/* Buffers made available before DRIVER_OK: look on the loop thread. */
	return eventfd_write(dev->mmio.queues[VIRTIO_VSOCK_QUEUE_TX].notify_fd, 1) < 0 ?
	       -errno : 0;
}

static void vsock_reset(void *opaque)
{
	struct virtio_vsock *dev = opaque;

	/* The loop thread drops the connections on its next run. */
	dev->reset_pending = true;
	eventfd_write(dev->mmio.queues[VIRTIO_VSOCK_QUEUE_TX].notify_fd, 1);
}

static const struct virtio_device_ops vsock_ops = {
	.config_access = vsock_config_access,
	.activate = vsock_activate,
	.reset = vsock_reset,
};

int virtio_vsock_create(struct virtio_vsock **out, struct io_loop *loop,
			struct vsock_backend *backend, uint64_t guest_cid,
			const struct guest_mem *mem, int irq_fd, char *err,
			size_t err_size)
{
	struct virtio_mmio_config cfg;
	struct virtio_vsock *dev;
	uint64_t cid_le;
	int ret;

	if (guest_cid < VSOCK_CID_MIN_GUEST || guest_cid > VSOCK_CID_MAX_GUEST) {
		snprintf(err, err_size, "virtio-vsock: guest CID %llu is not in %d..%u",
			 (unsigned long long)guest_cid, VSOCK_CID_MIN_GUEST,
			 VSOCK_CID_MAX_GUEST);
		return -EINVAL;
	}
	dev = calloc(1, sizeof(*dev));
	if (!dev) {
		snprintf(err, err_size, "virtio-vsock: out of memory");
		return -ENOMEM;
	}
	dev->loop = loop;
	dev->be = backend;
	dev->guest_cid = guest_cid;
	cid_le = htole64(guest_cid);
	memcpy(dev->config, &cid_le, sizeof(cid_le));
	dev->run_work.run = run_deferred;
	dev->next_host_port = VSOCK_HOST_PORT_FIRST;
	dev->ready_head = dev->ready_tail = NO_CONN;
	for (unsigned int i = 0; i < HASH_BUCKETS; i++)
		dev->buckets[i] = NO_CONN;
	dev->free_head = NO_CONN;
	for (unsigned int i = VSOCK_MAX_CONNS; i-- > 0;) {
		dev->conns[i] = (struct vsock_conn){
			.hash_next = dev->free_head, .ready_next = NO_CONN,
		};
		dev->free_head = (int)i;
	}

	cfg = (struct virtio_mmio_config){
		.device_id = VIRTIO_ID_VSOCK,
		.device_features = 0,
		.nr_queues = VIRTIO_VSOCK_NR_QUEUES,
		.queue_size_max = VIRTIO_VSOCK_QUEUE_SIZE,
		.config_size = VIRTIO_VSOCK_CONFIG_SIZE,
		.ops = &vsock_ops,
		.dev = dev,
	};
	ret = virtio_mmio_init(&dev->mmio, &cfg, mem, irq_fd);
	if (ret < 0) {
		snprintf(err, err_size, "virtio-vsock: transport: %s", strerror(-ret));
		goto err_free;
	}
	ret = io_loop_watch_eventfd(loop, dev->mmio.queues[VIRTIO_VSOCK_QUEUE_RX].notify_fd,
				    queue_notified, dev);
	if (!ret)
		ret = io_loop_watch_eventfd(loop,
					    dev->mmio.queues[VIRTIO_VSOCK_QUEUE_TX].notify_fd,
					    queue_notified, dev);
	if (ret < 0) {
		snprintf(err, err_size, "virtio-vsock: cannot watch the queues: %s",
			 strerror(-ret));
		goto err_mmio;
	}
	backend->dev = dev;
	*out = dev;
	return 0;

err_mmio:
	virtio_mmio_destroy(&dev->mmio);
err_free:
	free(dev);
	return ret;
}

struct virtio_mmio *virtio_vsock_mmio(struct virtio_vsock *dev)
{
	return &dev->mmio;
}

uint64_t virtio_vsock_dropped(const struct virtio_vsock *dev)
{
	return dev->dropped;
}

void virtio_vsock_destroy(struct virtio_vsock *dev)
{
	for (unsigned int i = 0; i < VSOCK_MAX_CONNS; i++) {
		free(dev->conns[i].to_host);
		free(dev->conns[i].to_guest);
	}
	virtio_mmio_destroy(&dev->mmio);
	free(dev);
}
