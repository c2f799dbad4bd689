/*
 * vsock_backend.h - the host side of virtio-vsock connections, behind the
 * device model (devices/virtio_vsock.h).
 *
 * The device speaks the virtio-vsock protocol with the guest and owns
 * each connection's state, buffers and credit. A backend only moves bytes
 * between those buffers and host streams (vsock_unix.c: Unix sockets on
 * the io_loop), so the device can be unit-tested with a fake one.
 *
 * A connection is named by an id in 0 .. VSOCK_MAX_CONNS - 1 that the
 * device chooses. The device has at most one read and one write in flight
 * per connection.
 *
 * Calls into the backend (the ops) come from the device on the io_loop
 * thread, with the device's lock held: an op never calls back into the
 * device before returning. It returns 0, and its result arrives later
 * through the matching virtio_vsock_* callback (on the loop thread), or a
 * negative errno: nothing was started and no callback follows.
 *
 * Ownership: the backend holds a host stream for an id from a successful
 * connect() (or from its own virtio_vsock_host_connect()) until it calls
 * virtio_vsock_released(), or virtio_vsock_connected() with an error.
 * After release(id) the backend makes no callback for id but released().
 */
#ifndef EROVM_VSOCK_BACKEND_H
#define EROVM_VSOCK_BACKEND_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

struct vsock_backend;
struct virtio_vsock;

struct vsock_backend_ops {
	/*
	 * The guest asks for host port @port: open a stream to it for @id.
	 * Result: virtio_vsock_connected(); on an error the backend holds
	 * nothing for @id any more.
	 */
	int (*connect)(struct vsock_backend *be, unsigned int id, uint32_t port);
	/*
	 * The guest accepted the host-initiated connection @id (from
	 * virtio_vsock_host_connect()), which it sees coming from host port
	 * @host_port. Result: virtio_vsock_connected() once the host side
	 * may carry data.
	 */
	int (*accept)(struct vsock_backend *be, unsigned int id, uint32_t host_port);
	/*
	 * Writes the bytes of @iov (at most 2 entries, not empty) to @id's
	 * stream; the memory stays valid until the result. Result:
	 * virtio_vsock_written() with the bytes written (possibly fewer) or
	 * a negative errno.
	 */
	int (*write)(struct vsock_backend *be, unsigned int id,
		     const struct iovec *iov, unsigned int iovcnt);
	/*
	 * Reads up to @len (> 0) bytes of @id's stream into @buf. Result:
	 * virtio_vsock_read_done() with the bytes read, 0 at the end of the
	 * stream, or a negative errno.
	 */
	int (*read)(struct vsock_backend *be, unsigned int id, void *buf, size_t len);
	/* No more writes for @id (none is in flight): end the stream's write side. */
	void (*shutdown_write)(struct vsock_backend *be, unsigned int id);
	/*
	 * Drops @id: cancels what is in flight and closes its stream. Result:
	 * virtio_vsock_released() once nothing in flight refers to @id's
	 * buffers any more.
	 */
	void (*release)(struct vsock_backend *be, unsigned int id);
	/* Frees the backend. No connection may be held. */
	void (*destroy)(struct vsock_backend *be);
};

struct vsock_backend {
	const struct vsock_backend_ops *ops;
	struct virtio_vsock *dev;   /* set by virtio_vsock_create() */
};

static inline void vsock_backend_destroy(struct vsock_backend *be)
{
	be->ops->destroy(be);
}

struct io_loop;

/*
 * The hybrid Unix-socket bridge (Firecracker's model), on @loop:
 *  - host-initiated: it listens on @path; a host process connects and
 *    writes "CONNECT <port>\n" (vsock_parse_connect), the guest is asked,
 *    and the process reads "OK <host port>\n" once the guest accepted,
 *    or sees the connection closed (refused, junk, or no line or no
 *    answer within VSOCK_UNIX_HANDSHAKE_SECONDS);
 *  - guest-initiated: a connection to host port P goes to the Unix socket
 *    "@path_P", if something listens there.
 * At most VSOCK_UNIX_MAX_HANDSHAKES host processes may be in the
 * handshake at once; more wait in the listen backlog.
 * @path must not exist, or be a stale socket (nobody accepts on it: it is
 * replaced); it is removed again by destroy. Raises the soft fd limit to
 * the hard one, for VSOCK_MAX_CONNS connections. Returns 0 or a negative
 * errno with a message in @err.
 */
#define VSOCK_UNIX_MAX_HANDSHAKES 64
#define VSOCK_UNIX_HANDSHAKE_SECONDS 10
int vsock_unix_create(struct vsock_backend **out, struct io_loop *loop,
		      const char *path, char *err, size_t err_size);

#endif
