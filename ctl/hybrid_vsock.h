/*
 * hybrid_vsock.h - connecting to a guest's vsock port from the host
 * through the monitor's hybrid vsock socket (Firecracker's scheme): the
 * monitor listens on a Unix socket; a host process connects, writes
 * "CONNECT <port>\n", reads "OK <host port>\n", and from then on the
 * connection is a byte stream to the guest's port. A monitor whose guest
 * refuses (nothing listens there) closes the connection instead.
 *
 * Used by erovm-ctl; the containerd shim will use it too.
 */
#ifndef EROVM_CTL_HYBRID_VSOCK_H
#define EROVM_CTL_HYBRID_VSOCK_H

#include <stddef.h>

/* The longest answer line to CONNECT this side accepts, "\n" included. */
#define HYBRID_VSOCK_LINE_MAX 64

/*
 * Connects to guest port @port through the hybrid socket at @path,
 * waiting at most @timeout_ms for the answer. Returns a connected,
 * blocking, close-on-exec descriptor, or a negative errno with the reason
 * in @err (@err_size bytes): -ENOENT or -ECONNREFUSED (no socket, or
 * nobody listens on it), -ECONNRESET (the guest refused the port),
 * -EPROTO (an answer other than "OK"), -ETIMEDOUT.
 */
int hybrid_vsock_connect(const char *path, unsigned int port, int timeout_ms,
			 char *err, size_t err_size);

#endif
