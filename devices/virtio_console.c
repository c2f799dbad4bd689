#include "devices/virtio_console.h"

#include <endian.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>

/* One direction's chain and backend request. Loop thread only. */
struct console_dir {
	struct virtq_chain chain;
	bool held;                  /* popped, not yet given back */
	uint32_t generation;        /* cons->generation when popped */
	bool busy;                  /* the backend has `io` */
	bool finished;              /* ... and completed it; not handled yet */
	ssize_t result;
	struct console_io io;
};

struct virtio_console {
	struct virtio_mmio mmio;
	struct io_loop *loop;
	struct console_backend *backend;
	uint8_t config[VIRTIO_CONSOLE_CONFIG_SIZE];     /* lock held */
	/* Bumped by reset() (lock held): older chains are not given back. */
	uint32_t generation;
	struct io_loop_deferred run_work;

	/* Loop thread only. */
	struct console_dir tx, rx;
	struct iovec tx_iov[VIRTQ_MAX_CHAIN];
	struct iovec rx_iov;
	bool input_over;
	/* Input read but not yet in a receive chain: rx_buf[rx_offset ..]. */
	size_t rx_pending, rx_offset;
	uint8_t rx_buf[VIRTIO_CONSOLE_RX_BUF_SIZE];
};

static bool queue_live(const struct virtio_console *c, unsigned int queue)
{
	return virtio_mmio_live(&c->mmio) && c->mmio.queues[queue].ready;
}

/* Takes the next available chain of @queue into @dir. Lock held. */
static bool pop_chain(struct virtio_console *c, struct console_dir *dir,
		      unsigned int queue)
{
	int ret = virtq_pop(&c->mmio.queues[queue].vq, c->mmio.mem, &dir->chain);

	if (ret < 0)
		virtio_mmio_set_needs_reset(&c->mmio);
	if (ret <= 0)
		return false;
	dir->held = true;
	dir->generation = c->generation;
	return true;
}

/*
 * Gives the held chain back with @written bytes. True if it reached the
 * used ring; a chain of an earlier generation is only forgotten. Lock held.
 */
static bool return_chain(struct virtio_console *c, struct console_dir *dir,
			 unsigned int queue, uint32_t written)
{
	dir->held = false;
	if (dir->generation != c->generation || !queue_live(c, queue))
		return false;
	if (virtq_push(&c->mmio.queues[queue].vq, c->mmio.mem, dir->chain.head,
		       written) < 0) {
		virtio_mmio_set_needs_reset(&c->mmio);
		return false;
	}
	return true;
}

/* Forgets a held chain of an earlier generation. */
static void drop_stale(struct virtio_console *c, struct console_dir *dir)
{
	if (dir->held && dir->generation != c->generation)
		dir->held = false;
}

static void dir_complete(struct console_dir *dir, ssize_t res,
			 struct virtio_console *c)
{
	dir->finished = true;
	dir->result = res;
	io_loop_defer(c->loop, &c->run_work);
}

static void tx_complete(struct console_io *io, ssize_t res)
{
	struct virtio_console *c = (struct virtio_console *)((char *)io -
		offsetof(struct virtio_console, tx.io));

	dir_complete(&c->tx, res, c);
}

static void rx_complete(struct console_io *io, ssize_t res)
{
	struct virtio_console *c = (struct virtio_console *)((char *)io -
		offsetof(struct virtio_console, rx.io));

	dir_complete(&c->rx, res, c);
}

/*
 * Hands the held transmit chain's readable bytes to the backend. Returns
 * 1 if the backend took them, 0 if the chain had none and went back at
 * once (*pushed tells whether it reached the used ring), -1 to stop for
 * now (the loop was full: the chain stays held for a retry; or the
 * device broke).
 */
static int start_write(struct virtio_console *c, bool *pushed)
{
	struct console_dir *tx = &c->tx;
	unsigned int n = 0;
	int ret;

	for (unsigned int i = 0; i < tx->chain.nr_readable; i++) {
		const struct virtq_buf *b = &tx->chain.bufs[i];
		/* virtq_pop() proved every buffer is guest RAM. */
		void *host = guest_mem_ptr(c->mmio.mem, b->gpa, b->len);

		if (!host) {
			virtio_mmio_set_needs_reset(&c->mmio);
			return -1;
		}
		c->tx_iov[n++] = (struct iovec){ .iov_base = host, .iov_len = b->len };
	}
	if (!n) {
		*pushed |= return_chain(c, tx, VIRTIO_CONSOLE_TX_QUEUE, 0);
		return 0;
	}
	tx->io = (struct console_io){
		.iov = c->tx_iov, .iovcnt = n, .complete = tx_complete,
	};
	ret = console_backend_write(c->backend, &tx->io);
	if (ret == -EAGAIN) {
		io_loop_defer(c->loop, &c->run_work);
		return -1;
	}
	/* Writes never fail otherwise (console_backend.h). */
	tx->busy = true;
	return 1;
}

/* Output: give back what the backend wrote, then start the next chain. */
static void run_tx(struct virtio_console *c)
{
	struct console_dir *tx = &c->tx;
	unsigned int budget = c->mmio.queues[VIRTIO_CONSOLE_TX_QUEUE].vq.size;
	bool pushed = false;

	for (;;) {
		if (tx->busy) {
			/* Backpressure: nothing more until the backend is done. */
			if (!tx->finished)
				break;
			tx->busy = tx->finished = false;
			pushed |= return_chain(c, tx, VIRTIO_CONSOLE_TX_QUEUE, 0);
		}
		if (!queue_live(c, VIRTIO_CONSOLE_TX_QUEUE))
			break;
		drop_stale(c, tx);
		if (!tx->held) {
			if (!budget--) {
				/* Let other devices run; come back next iteration. */
				io_loop_defer(c->loop, &c->run_work);
				break;
			}
			if (!pop_chain(c, tx, VIRTIO_CONSOLE_TX_QUEUE))
				break;
		}
		if (start_write(c, &pushed) < 0)
			break;
	}
	if (pushed)
		virtio_mmio_notify_used(&c->mmio, VIRTIO_CONSOLE_TX_QUEUE);
}

/* Copies up to @len bytes into the chain's writable buffers; returns how many. */
static uint32_t copy_to_chain(struct virtio_console *c,
			      const struct virtq_chain *chain,
			      const uint8_t *src, size_t len)
{
	size_t copied = 0;

	for (unsigned int i = chain->nr_readable; i < chain->nr_bufs && copied < len; i++) {
		const struct virtq_buf *b = &chain->bufs[i];
		size_t take = len - copied < b->len ? len - copied : b->len;

		if (guest_mem_write(c->mmio.mem, b->gpa, src + copied, take))
			break;
		copied += take;
	}
	/* At most RX_BUF_SIZE. */
	return (uint32_t)copied;
}

/* Takes a finished read's result. */
static void finish_read(struct virtio_console *c)
{
	struct console_dir *rx = &c->rx;

	if (!rx->busy || !rx->finished)
		return;
	rx->busy = rx->finished = false;
	if (rx->result > 0) {
		c->rx_pending = (size_t)rx->result;
		c->rx_offset = 0;
	} else {
		c->input_over = true;
	}
}

/* Starts a read sized to the held receive chain. False: stop for now. */
static bool start_read(struct virtio_console *c, bool *pushed)
{
	struct console_dir *rx = &c->rx;
	uint64_t len = rx->chain.writable_len;
	int ret;

	if (!len) {
		/* Nothing writable (the driver broke 5.3.6.1): give it back. */
		*pushed |= return_chain(c, rx, VIRTIO_CONSOLE_RX_QUEUE, 0);
		return true;
	}
	if (len > sizeof(c->rx_buf))
		len = sizeof(c->rx_buf);
	c->rx_iov = (struct iovec){ .iov_base = c->rx_buf, .iov_len = len };
	rx->io = (struct console_io){
		.iov = &c->rx_iov, .iovcnt = 1, .complete = rx_complete,
	};
	ret = console_backend_read(c->backend, &rx->io);
	if (ret == -EAGAIN)
		io_loop_defer(c->loop, &c->run_work);
	else if (ret < 0)
		c->input_over = true;
	else
		rx->busy = true;
	return false;
}

/* Input: deliver what was read, then read again if the guest has room. */
static void run_rx(struct virtio_console *c)
{
	struct console_dir *rx = &c->rx;
	unsigned int budget = c->mmio.queues[VIRTIO_CONSOLE_RX_QUEUE].vq.size;
	bool pushed = false;

	finish_read(c);
	for (;;) {
		bool want_chain = c->rx_pending ||
				  (!rx->busy && !c->input_over && c->backend->has_input);

		if (!want_chain || !queue_live(c, VIRTIO_CONSOLE_RX_QUEUE))
			break;
		drop_stale(c, rx);
		if (!rx->held) {
			if (!budget--) {
				io_loop_defer(c->loop, &c->run_work);
				break;
			}
			/* No buffer posted: input stays where it is. */
			if (!pop_chain(c, rx, VIRTIO_CONSOLE_RX_QUEUE))
				break;
		}
		if (c->rx_pending) {
			uint32_t n = copy_to_chain(c, &rx->chain,
						   c->rx_buf + c->rx_offset,
						   c->rx_pending);

			pushed |= return_chain(c, rx, VIRTIO_CONSOLE_RX_QUEUE, n);
			c->rx_offset += n;
			c->rx_pending -= n;
			continue;
		}
		if (!start_read(c, &pushed))
			break;
	}
	if (pushed)
		virtio_mmio_notify_used(&c->mmio, VIRTIO_CONSOLE_RX_QUEUE);
}

static void console_run(struct virtio_console *c)
{
	pthread_mutex_lock(&c->mmio.lock);
	run_tx(c);
	run_rx(c);
	pthread_mutex_unlock(&c->mmio.lock);
}

static void queue_notified(void *opaque)
{
	console_run(opaque);
}

static void run_deferred(struct io_loop_deferred *work)
{
	console_run((struct virtio_console *)((char *)work -
		offsetof(struct virtio_console, run_work)));
}

/* ---- Transport callbacks (vCPU thread, lock held). */

static void console_config_access(void *dev, uint32_t offset, void *data,
				  uint32_t len, bool is_write)
{
	struct virtio_console *c = dev;

	/* cols and rows are the device's to change. */
	if (!is_write)
		memcpy(data, c->config + offset, len);
}

static bool size_known(const struct virtio_console *c)
{
	static const uint8_t unknown[VIRTIO_CONSOLE_CONFIG_SIZE];

	return memcmp(c->config, unknown, sizeof(unknown)) != 0;
}

static int console_activate(void *dev)
{
	struct virtio_console *c = dev;

	/* Buffers posted before DRIVER_OK: look on the loop thread. */
	if (eventfd_write(c->mmio.queues[VIRTIO_CONSOLE_RX_QUEUE].notify_fd, 1) < 0 ||
	    eventfd_write(c->mmio.queues[VIRTIO_CONSOLE_TX_QUEUE].notify_fd, 1) < 0)
		return -errno;
	/* Linux learns the size only from a config interrupt. */
	if (size_known(c))
		virtio_mmio_config_changed(&c->mmio);
	return 0;
}

static void console_reset(void *dev)
{
	struct virtio_console *c = dev;

	c->generation++;
}

static const struct virtio_device_ops console_ops = {
	.config_access = console_config_access,
	.activate = console_activate,
	.reset = console_reset,
};

void virtio_console_set_size(struct virtio_console *c, uint16_t cols,
			     uint16_t rows)
{
	uint8_t config[VIRTIO_CONSOLE_CONFIG_SIZE];
	uint16_t le;

	le = htole16(cols);
	memcpy(config + VIRTIO_CONSOLE_CFG_COLS, &le, sizeof(le));
	le = htole16(rows);
	memcpy(config + VIRTIO_CONSOLE_CFG_ROWS, &le, sizeof(le));
	pthread_mutex_lock(&c->mmio.lock);
	if (memcmp(c->config, config, sizeof(config))) {
		memcpy(c->config, config, sizeof(config));
		virtio_mmio_config_changed(&c->mmio);
	}
	pthread_mutex_unlock(&c->mmio.lock);
}

int virtio_console_create(struct virtio_console **out, struct io_loop *loop,
			  struct console_backend *backend,
			  const struct guest_mem *mem, int irq_fd, char *err,
			  size_t err_size)
{
	struct virtio_mmio_config cfg = {
		.device_id = VIRTIO_ID_CONSOLE,
		.device_features = 1ull << VIRTIO_CONSOLE_F_SIZE,
		.nr_queues = 2,
		.queue_size_max = VIRTIO_CONSOLE_QUEUE_SIZE,
		.config_size = VIRTIO_CONSOLE_CONFIG_SIZE,
		.ops = &console_ops,
	};
	struct virtio_console *c = calloc(1, sizeof(*c));
	int ret;

	if (!c) {
		snprintf(err, err_size, "virtio-console: out of memory");
		return -ENOMEM;
	}
	/* The loop cannot forget a watch: make sure both fit before adding one. */
	if (loop->nr_watches + cfg.nr_queues > IO_LOOP_MAX_WATCHES ||
	    !io_loop_has_room(loop, cfg.nr_queues)) {
		snprintf(err, err_size, "virtio-console: the I/O loop is full");
		free(c);
		return -ENOSPC;
	}
	c->loop = loop;
	c->backend = backend;
	c->run_work.run = run_deferred;
	cfg.dev = c;
	ret = virtio_mmio_init(&c->mmio, &cfg, mem, irq_fd);
	if (ret < 0) {
		snprintf(err, err_size, "virtio-console: transport: %s", strerror(-ret));
		free(c);
		return ret;
	}
	for (unsigned int q = 0; q < cfg.nr_queues; q++) {
		ret = io_loop_watch_eventfd(loop, c->mmio.queues[q].notify_fd,
					    queue_notified, c);
		if (ret < 0) {
			snprintf(err, err_size, "virtio-console: cannot watch queue %u: %s",
				 q, strerror(-ret));
			virtio_mmio_destroy(&c->mmio);
			free(c);
			return ret;
		}
	}
	*out = c;
	return 0;
}

struct virtio_mmio *virtio_console_mmio(struct virtio_console *c)
{
	return &c->mmio;
}

void virtio_console_destroy(struct virtio_console *c)
{
	virtio_mmio_destroy(&c->mmio);
	free(c);
}
