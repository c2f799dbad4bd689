#include "devices/vsock_packet.h"

#include <endian.h>
#include <errno.h>
#include <string.h>

/* Offsets of struct virtio_vsock_hdr's fields (packed, little-endian). */
#define HDR_SRC_CID 0
#define HDR_DST_CID 8
#define HDR_SRC_PORT 16
#define HDR_DST_PORT 20
#define HDR_LEN 24
#define HDR_TYPE 28
#define HDR_OP 30
#define HDR_FLAGS 32
#define HDR_BUF_ALLOC 36
#define HDR_FWD_CNT 40

static uint64_t get_le64(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, sizeof(v));
	return le64toh(v);
}

static uint32_t get_le32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, sizeof(v));
	return le32toh(v);
}

static uint16_t get_le16(const uint8_t *p)
{
	uint16_t v;

	memcpy(&v, p, sizeof(v));
	return le16toh(v);
}

static void put_le64(uint8_t *p, uint64_t v)
{
	v = htole64(v);
	memcpy(p, &v, sizeof(v));
}

static void put_le32(uint8_t *p, uint32_t v)
{
	v = htole32(v);
	memcpy(p, &v, sizeof(v));
}

static void put_le16(uint8_t *p, uint16_t v)
{
	v = htole16(v);
	memcpy(p, &v, sizeof(v));
}

void vsock_hdr_decode(const uint8_t raw[VSOCK_HDR_SIZE], struct vsock_hdr *hdr)
{
	hdr->src_cid = get_le64(raw + HDR_SRC_CID);
	hdr->dst_cid = get_le64(raw + HDR_DST_CID);
	hdr->src_port = get_le32(raw + HDR_SRC_PORT);
	hdr->dst_port = get_le32(raw + HDR_DST_PORT);
	hdr->len = get_le32(raw + HDR_LEN);
	hdr->type = get_le16(raw + HDR_TYPE);
	hdr->op = get_le16(raw + HDR_OP);
	hdr->flags = get_le32(raw + HDR_FLAGS);
	hdr->buf_alloc = get_le32(raw + HDR_BUF_ALLOC);
	hdr->fwd_cnt = get_le32(raw + HDR_FWD_CNT);
}

void vsock_hdr_encode(const struct vsock_hdr *hdr, uint8_t raw[VSOCK_HDR_SIZE])
{
	put_le64(raw + HDR_SRC_CID, hdr->src_cid);
	put_le64(raw + HDR_DST_CID, hdr->dst_cid);
	put_le32(raw + HDR_SRC_PORT, hdr->src_port);
	put_le32(raw + HDR_DST_PORT, hdr->dst_port);
	put_le32(raw + HDR_LEN, hdr->len);
	put_le16(raw + HDR_TYPE, hdr->type);
	put_le16(raw + HDR_OP, hdr->op);
	put_le32(raw + HDR_FLAGS, hdr->flags);
	put_le32(raw + HDR_BUF_ALLOC, hdr->buf_alloc);
	put_le32(raw + HDR_FWD_CNT, hdr->fwd_cnt);
}

const char *vsock_hdr_check(const struct vsock_hdr *hdr, uint64_t guest_cid,
			    uint64_t payload_bytes)
{
	if (hdr->op < VSOCK_OP_REQUEST || hdr->op > VSOCK_OP_CREDIT_REQUEST)
		return "unknown op";
	if (hdr->type != VSOCK_TYPE_STREAM)
		return "type is not STREAM";
	if (hdr->src_cid != guest_cid)
		return "src_cid is not the guest's CID";
	if (hdr->dst_cid != VSOCK_CID_HOST)
		return "dst_cid is not the host's CID";
	if (hdr->len > VSOCK_MAX_PAYLOAD)
		return "len exceeds the largest payload";
	if (hdr->len != payload_bytes)
		return "len does not match the bytes after the header";
	if (hdr->len && hdr->op != VSOCK_OP_RW)
		return "payload on a packet that is not RW";
	return NULL;
}

int vsock_parse_connect(const char *buf, size_t len, uint32_t *port)
{
	static const char prefix[] = "CONNECT ";
	const size_t prefix_len = sizeof(prefix) - 1;
	const char *nl = memchr(buf, '\n', len);
	size_t line_len = nl ? (size_t)(nl - buf) + 1 : len;
	uint64_t value = 0;
	size_t i;

	/* Refuse junk as soon as it shows, newline or not. */
	if (memcmp(buf, prefix, line_len < prefix_len ? line_len : prefix_len))
		return -EINVAL;
	for (i = prefix_len; i < line_len && buf[i] != '\n'; i++) {
		if (buf[i] < '0' || buf[i] > '9')
			return -EINVAL;
		/* No leading zeros: one spelling per port. */
		if (i == prefix_len + 1 && buf[prefix_len] == '0')
			return -EINVAL;
		value = value * 10 + (uint64_t)(buf[i] - '0');
		if (value >= VSOCK_PORT_ANY)
			return -EINVAL;
	}
	if (!nl)
		return 0;
	/* "CONNECT \n": no digits. */
	if (line_len == prefix_len + 1)
		return -EINVAL;
	*port = (uint32_t)value;
	return (int)line_len;
}
