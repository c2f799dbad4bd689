/*
 * virtio_console.h - the virtio console device (virtio 1.x section 5.3)
 * with one port: no MULTIPORT (so no control queues), no EMERG_WRITE; on
 * the virtio-mmio transport and a console_backend. Linux drives it as
 * hvc0.
 *
 * Queues: 0 is the receiveq (host to guest), 1 the transmitq (guest to
 * host). Feature VIRTIO_CONSOLE_F_SIZE: config space is {le16 cols,
 * le16 rows}, read-only for the driver. virtio_console_set_size()
 * changes it and raises a configuration change interrupt; for a device
 * without MULTIPORT, Linux then reads cols and rows and resizes hvc0
 * (sending SIGWINCH to its foreground job). Linux reads the size at no
 * other time, so the device also raises one when the driver sets
 * DRIVER_OK while a size is known (Linux holds it until probing ends).
 *
 * Output: one transmit chain at a time. Its device-readable buffers go to
 * the backend as one write, straight from guest RAM, and the chain goes
 * back to the driver (used length 0) when the write has completed. While
 * the backend is slow that chain is kept and no other is taken: the
 * guest waits (Linux's hvc spins on the used ring) and nothing here
 * grows. Device-writable buffers in a transmit chain are ignored; a
 * chain without readable bytes goes back at once.
 *
 * Input: one receive chain is held while one backend read, of at most
 * its writable bytes and VIRTIO_CONSOLE_RX_BUF_SIZE, runs into a device
 * buffer; the bytes are then copied into the chain, which goes back with
 * that used length. With no receive chain posted no read is started:
 * input waits in the backend (the terminal, the socket) until the guest
 * posts buffers. Reading into a device buffer, not guest RAM, keeps a
 * read that completes after a driver reset away from buffers the guest
 * has reclaimed; those bytes go to the first chain posted afterwards.
 * End of input (a read returning 0 or an error) ends input for good.
 *
 * Hostile chains: virtq_pop() bounds and checks every chain; one that
 * breaks the virtqueue rules sets DEVICE_NEEDS_RESET.
 *
 * Threads: queue work and backend completions on the io_loop thread,
 * touching the queues with the transport lock held; config_access,
 * activate and reset on the vCPU thread with the lock held;
 * virtio_console_set_size() from any thread.
 */
#ifndef EROVM_VIRTIO_CONSOLE_H
#define EROVM_VIRTIO_CONSOLE_H

#include <stddef.h>
#include <stdint.h>

#include "devices/console_backend.h"
#include "devices/io_loop.h"
#include "devices/virtio_mmio.h"
#include "vmm/guest_mem.h"

#define VIRTIO_ID_CONSOLE 3

#define VIRTIO_CONSOLE_F_SIZE 0

#define VIRTIO_CONSOLE_RX_QUEUE 0
#define VIRTIO_CONSOLE_TX_QUEUE 1

/* Config space offsets (le16 each). */
#define VIRTIO_CONSOLE_CFG_COLS 0
#define VIRTIO_CONSOLE_CFG_ROWS 2
#define VIRTIO_CONSOLE_CONFIG_SIZE 4

#define VIRTIO_CONSOLE_QUEUE_SIZE 64
#define VIRTIO_CONSOLE_RX_BUF_SIZE 4096

struct virtio_console;

/*
 * Creates the device over @backend (not owned), its transport on guest
 * RAM @mem interrupting through eventfd @irq_fd, and watches its queues'
 * notify eventfds on @loop (so call it before io_loop_start). The size
 * starts as 0x0, "unknown". Returns 0 or a negative errno with a message
 * in @err.
 */
int virtio_console_create(struct virtio_console **out, struct io_loop *loop,
			  struct console_backend *backend,
			  const struct guest_mem *mem, int irq_fd, char *err,
			  size_t err_size);

/* The transport, for the MMIO bus (virtio_mmio_access) and ioeventfds. */
struct virtio_mmio *virtio_console_mmio(struct virtio_console *cons);

/* Sets the console size; a change raises a configuration change interrupt. */
void virtio_console_set_size(struct virtio_console *cons, uint16_t cols,
			     uint16_t rows);

/*
 * Frees the device and its transport (not the backend). The io_loop must
 * be stopped and destroyed first: nothing of this device may be in flight.
 */
void virtio_console_destroy(struct virtio_console *cons);

#endif
