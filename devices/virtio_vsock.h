/*
 * virtio_vsock.h - the virtio-vsock device model (virtio 1.2 section
 * 5.10), stream sockets only, on the virtio-mmio transport and a
 * vsock_backend (devices/vsock_backend.h).
 *
 * Queues: rx (0, device to guest), tx (1, guest to device), event (2,
 * never used: erovm has no live migration to announce). No feature bits:
 * without any, stream sockets are implied (5.10.3); SEQPACKET is not
 * offered. The guest's CID is in config space (le64); the host is CID 2.
 *
 * Connections: up to VSOCK_MAX_CONNS at once, guest-initiated (REQUEST to
 * host port P: the backend connects, then RESPONSE or RST) or
 * host-initiated (virtio_vsock_host_connect: REQUEST from a fresh host
 * port, the guest answers RESPONSE or RST). A REQUEST beyond the cap, or
 * any packet for no connection, gets RST (as Linux does).
 *
 * Flow control, both ways, with the u32 counters of vsock_packet.h:
 *  - guest to host: each connection buffers at most VSOCK_BUF_ALLOC bytes,
 *    the buf_alloc it advertises; fwd_cnt counts the bytes written to the
 *    host stream. A guest that sends beyond that credit gets RST. When
 *    fwd_cnt has moved VSOCK_CREDIT_UPDATE_THRESHOLD past what the guest
 *    last heard, a CREDIT_UPDATE tells it (every packet carries fwd_cnt).
 *  - host to guest: the device reads a host stream only when the guest
 *    has credit and the previous read is all in guest buffers, at most
 *    the credit (and VSOCK_READ_CHUNK) at a time; with no credit it sends
 *    CREDIT_REQUEST once and waits for the guest's update. With no rx
 *    buffer nothing is read: reading resumes when the guest adds some.
 * So host memory per connection is bounded by VSOCK_BUF_ALLOC +
 * VSOCK_READ_CHUNK, and in all by VSOCK_MAX_CONNS times that.
 *
 * Closing: the guest's SHUTDOWN(SEND) ends the host stream's write side
 * once its data is written; host end of stream becomes SHUTDOWN(SEND)
 * once the data read is delivered; SHUTDOWN(RCV) stops reading. When both
 * directions are over the device sends RST and releases the stream. The
 * guest's RST, a host stream error, a bad packet on a connection or a
 * credit overrun end it at once (RST to the guest unless it sent one).
 *
 * Guest packets are checked with vsock_hdr_check(); a bad one is dropped
 * (counted in `dropped`).
 *
 * Threads: queue work and backend callbacks run on the io_loop thread,
 * holding the transport lock; config_access/activate/reset come from the
 * vCPU thread with the lock held. A driver reset drops every connection
 * (releasing their host streams) on the loop thread.
 */
#ifndef EROVM_VIRTIO_VSOCK_H
#define EROVM_VIRTIO_VSOCK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "devices/io_loop.h"
#include "devices/virtio_mmio.h"
#include "devices/vsock_backend.h"
#include "devices/vsock_packet.h"
#include "vmm/guest_mem.h"

#define VIRTIO_ID_VSOCK 19

#define VIRTIO_VSOCK_QUEUE_RX 0
#define VIRTIO_VSOCK_QUEUE_TX 1
#define VIRTIO_VSOCK_QUEUE_EVENT 2
#define VIRTIO_VSOCK_NR_QUEUES 3
#define VIRTIO_VSOCK_QUEUE_SIZE VIRTQ_MAX_SIZE
#define VIRTIO_VSOCK_CONFIG_SIZE 8  /* le64 guest_cid */

/* Connections at once; each holds a host fd. */
#define VSOCK_MAX_CONNS 1024
/* Guest-to-host bytes buffered per connection: the advertised buf_alloc. */
#define VSOCK_BUF_ALLOC (256u * 1024)
#define VSOCK_CREDIT_UPDATE_THRESHOLD (VSOCK_BUF_ALLOC / 4)
/* Host-to-guest bytes read at once per connection. */
#define VSOCK_READ_CHUNK (64u * 1024)
/* RSTs for packets without a connection that wait for an rx buffer. */
#define VSOCK_MAX_PENDING_RSTS 128
/* Host ports of host-initiated connections are taken from here up. */
#define VSOCK_HOST_PORT_FIRST (1u << 30)

struct virtio_vsock;

/*
 * Creates the device for guest CID @guest_cid (VSOCK_CID_MIN_GUEST ..
 * VSOCK_CID_MAX_GUEST) over @backend, its transport on guest RAM @mem
 * interrupting through eventfd @irq_fd, and watches its rx and tx queues
 * on @loop (so call it before io_loop_start). Returns 0 or a negative
 * errno with a message in @err.
 */
int virtio_vsock_create(struct virtio_vsock **out, struct io_loop *loop,
			struct vsock_backend *backend, uint64_t guest_cid,
			const struct guest_mem *mem, int irq_fd, char *err,
			size_t err_size);

/* The transport, for the MMIO bus (virtio_mmio_access) and ioeventfds. */
struct virtio_mmio *virtio_vsock_mmio(struct virtio_vsock *dev);

/* Guest packets dropped as malformed so far (loop thread). */
uint64_t virtio_vsock_dropped(const struct virtio_vsock *dev);

/*
 * Frees the device and its transport, not the backend, and whatever
 * buffers connections still had. The io_loop must be stopped and
 * destroyed first: nothing may be in flight.
 */
void virtio_vsock_destroy(struct virtio_vsock *dev);

/* ---- Callbacks for the backend (loop thread). */

/*
 * A host process asks for guest port @guest_port. On success the device
 * has taken connection @id, sends the guest a REQUEST from host port
 * @host_port, and later calls the backend's accept() or release() for
 * it. Returns 0, -ENOTCONN (the driver is not running), or -EBUSY (at
 * VSOCK_MAX_CONNS).
 */
int virtio_vsock_host_connect(struct virtio_vsock *dev, uint32_t guest_port,
			      unsigned int *id, uint32_t *host_port);

/* The result of connect() or accept(): 0, or a negative errno. */
void virtio_vsock_connected(struct virtio_vsock *dev, unsigned int id, int err);

/* The result of write(): bytes written, or a negative errno. */
void virtio_vsock_written(struct virtio_vsock *dev, unsigned int id, ssize_t res);

/* The result of read(): bytes read, 0 at end of stream, or a negative errno. */
void virtio_vsock_read_done(struct virtio_vsock *dev, unsigned int id, ssize_t res);

/*
 * The backend gives up on host-initiated connection @id before accept()
 * (the guest did not answer in time): the device sends RST and releases it.
 */
void virtio_vsock_abort(struct virtio_vsock *dev, unsigned int id);

/* The result of release(): @id is free again. */
void virtio_vsock_released(struct virtio_vsock *dev, unsigned int id);

#endif
