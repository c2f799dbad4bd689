/*
 * vsock_packet.h - the virtio-vsock wire format (virtio 1.2 section 5.10)
 * and the pure rules around it: header encoding, validation of what the
 * guest sends, credit arithmetic, and the hybrid bridge's CONNECT line.
 *
 * Nothing here touches guest memory, a socket or the clock: every function
 * is a pure function of its arguments, so each rule is unit-tested alone.
 *
 * Credit (5.10.6.3): each side advertises buf_alloc, the bytes it can
 * buffer, and fwd_cnt, the bytes it has consumed so far. A sender may have
 * at most peer_buf_alloc - (tx_cnt - peer_fwd_cnt) bytes in flight. The
 * counters are free-running u32 that wrap: all arithmetic is modulo 2^32.
 */
#ifndef EROVM_VSOCK_PACKET_H
#define EROVM_VSOCK_PACKET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define VSOCK_HDR_SIZE 44

#define VSOCK_CID_HOST 2
/* Guest CIDs: 0, 1 and 2 are reserved; the upper 32 bits must be zero. */
#define VSOCK_CID_MIN_GUEST 3
#define VSOCK_CID_MAX_GUEST 0xffffffffu
/* VMADDR_PORT_ANY: never a real port. */
#define VSOCK_PORT_ANY 0xffffffffu

#define VSOCK_TYPE_STREAM 1

enum vsock_op {
	VSOCK_OP_INVALID = 0,
	VSOCK_OP_REQUEST = 1,
	VSOCK_OP_RESPONSE = 2,
	VSOCK_OP_RST = 3,
	VSOCK_OP_SHUTDOWN = 4,
	VSOCK_OP_RW = 5,
	VSOCK_OP_CREDIT_UPDATE = 6,
	VSOCK_OP_CREDIT_REQUEST = 7,
};

/* SHUTDOWN flags: the sender will receive / send no more. */
#define VSOCK_SHUTDOWN_RCV 1u
#define VSOCK_SHUTDOWN_SEND 2u
#define VSOCK_SHUTDOWN_MASK (VSOCK_SHUTDOWN_RCV | VSOCK_SHUTDOWN_SEND)

/*
 * The largest payload this device accepts in one guest packet: Linux's
 * VIRTIO_VSOCK_MAX_PKT_BUF_SIZE, the most its driver ever sends at once.
 */
#define VSOCK_MAX_PAYLOAD (64u * 1024)

/* struct virtio_vsock_hdr, in host byte order. */
struct vsock_hdr {
	uint64_t src_cid;
	uint64_t dst_cid;
	uint32_t src_port;
	uint32_t dst_port;
	uint32_t len;
	uint16_t type;
	uint16_t op;
	uint32_t flags;
	uint32_t buf_alloc;
	uint32_t fwd_cnt;
};

/* Little-endian wire bytes <-> struct. */
void vsock_hdr_decode(const uint8_t raw[VSOCK_HDR_SIZE], struct vsock_hdr *hdr);
void vsock_hdr_encode(const struct vsock_hdr *hdr, uint8_t raw[VSOCK_HDR_SIZE]);

/*
 * Checks a packet the guest (CID @guest_cid) put on the tx queue: @hdr
 * decoded from its first bytes, @payload_bytes the readable bytes that
 * follow the header in the chain. Returns NULL if it is acceptable, else
 * why not: payload length not equal to hdr->len, longer than
 * VSOCK_MAX_PAYLOAD, or non-zero on anything but RW; an unknown op; a
 * type other than STREAM; src_cid not the guest's; dst_cid not the host.
 */
const char *vsock_hdr_check(const struct vsock_hdr *hdr, uint64_t guest_cid,
			    uint64_t payload_bytes);

/*
 * Bytes the sender may still send: peer_buf_alloc - (tx_cnt -
 * peer_fwd_cnt), modulo 2^32. 0 if the peer shrank its buffer below what
 * is already in flight.
 */
static inline uint32_t vsock_peer_free(uint32_t peer_buf_alloc, uint32_t tx_cnt,
				       uint32_t peer_fwd_cnt)
{
	uint32_t in_flight = tx_cnt - peer_fwd_cnt;

	return in_flight > peer_buf_alloc ? 0 : peer_buf_alloc - in_flight;
}

/*
 * The hybrid bridge's handshake: a host process connects to the bridge's
 * Unix socket and writes "CONNECT <port>\n", port decimal without sign or
 * leading zeros, 0 .. 0xfffffffe. So the line is at most 19 bytes; the
 * bridge's buffer holds VSOCK_CONNECT_LINE_MAX.
 */
#define VSOCK_CONNECT_LINE_MAX 32

/*
 * Parses the first @len bytes received, @buf (not NUL-terminated).
 * Returns the line's length (newline included) with the port in @port,
 * 0 if the bytes are a proper prefix of a valid line (so fewer than 19:
 * more may follow), or -EINVAL for anything else (junk, a bad or
 * too-long port, no newline where one must be): an overlong line is
 * refused as soon as it cannot be valid any more.
 */
int vsock_parse_connect(const char *buf, size_t len, uint32_t *port);

#endif
