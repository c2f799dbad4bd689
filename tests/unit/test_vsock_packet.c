/*
 * Unit tests for devices/vsock_packet.c: the header's wire layout, the
 * validation of guest packets, credit arithmetic across the u32 wrap, and
 * the hybrid bridge's CONNECT line.
 */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "devices/vsock_packet.h"

#define GUEST_CID 3

static struct vsock_hdr good_rw(uint32_t len)
{
	return (struct vsock_hdr){
		.src_cid = GUEST_CID, .dst_cid = VSOCK_CID_HOST,
		.src_port = 1234, .dst_port = 5000, .len = len,
		.type = VSOCK_TYPE_STREAM, .op = VSOCK_OP_RW,
		.buf_alloc = 262144, .fwd_cnt = 77,
	};
}

/* Every field at its offset, little-endian, and back. */
static void test_hdr_wire_layout(void **state)
{
	static const uint8_t expected[VSOCK_HDR_SIZE] = {
		0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01, /* src_cid */
		0x02, 0, 0, 0, 0, 0, 0, 0,                      /* dst_cid */
		0x44, 0x33, 0x22, 0x11,                         /* src_port */
		0x88, 0x77, 0x66, 0x55,                         /* dst_port */
		0x00, 0x10, 0, 0,                               /* len */
		0x01, 0x00,                                     /* type */
		0x05, 0x00,                                     /* op */
		0x03, 0, 0, 0,                                  /* flags */
		0x00, 0x00, 0x04, 0x00,                         /* buf_alloc */
		0xff, 0xff, 0xff, 0xff,                         /* fwd_cnt */
	};
	struct vsock_hdr hdr = {
		.src_cid = 0x0102030405060708ull, .dst_cid = 2,
		.src_port = 0x11223344, .dst_port = 0x55667788, .len = 4096,
		.type = 1, .op = 5, .flags = 3, .buf_alloc = 0x40000,
		.fwd_cnt = 0xffffffff,
	}, back;
	uint8_t raw[VSOCK_HDR_SIZE];

	(void)state;
	vsock_hdr_encode(&hdr, raw);
	assert_memory_equal(raw, expected, sizeof(raw));
	vsock_hdr_decode(raw, &back);
	assert_memory_equal(&back, &hdr, sizeof(hdr));
}

static void test_check_accepts_good_packets(void **state)
{
	struct vsock_hdr hdr = good_rw(100);

	(void)state;
	assert_null(vsock_hdr_check(&hdr, GUEST_CID, 100));
	hdr = good_rw(VSOCK_MAX_PAYLOAD);
	assert_null(vsock_hdr_check(&hdr, GUEST_CID, VSOCK_MAX_PAYLOAD));
	for (uint16_t op = VSOCK_OP_REQUEST; op <= VSOCK_OP_CREDIT_REQUEST; op++) {
		hdr = good_rw(0);
		hdr.op = op;
		assert_null(vsock_hdr_check(&hdr, GUEST_CID, 0));
	}
}

static void assert_rejected(const struct vsock_hdr *hdr, uint64_t payload,
			    const char *reason_part)
{
	const char *reason = vsock_hdr_check(hdr, GUEST_CID, payload);

	assert_non_null(reason);
	assert_non_null(strstr(reason, reason_part));
}

static void test_check_rejects_bad_lengths(void **state)
{
	struct vsock_hdr hdr = good_rw(100);

	(void)state;
	/* len disagrees with the chain, either way. */
	assert_rejected(&hdr, 99, "does not match");
	assert_rejected(&hdr, 101, "does not match");
	assert_rejected(&hdr, 0, "does not match");
	/* Beyond the largest payload, even if the chain has the bytes. */
	hdr = good_rw(VSOCK_MAX_PAYLOAD + 1);
	assert_rejected(&hdr, VSOCK_MAX_PAYLOAD + 1, "largest payload");
	hdr = good_rw(UINT32_MAX);
	assert_rejected(&hdr, UINT32_MAX, "largest payload");
	/* Payload on a control packet. */
	hdr = good_rw(10);
	hdr.op = VSOCK_OP_REQUEST;
	assert_rejected(&hdr, 10, "not RW");
	hdr.op = VSOCK_OP_CREDIT_UPDATE;
	assert_rejected(&hdr, 10, "not RW");
}

static void test_check_rejects_bad_op_type_cids(void **state)
{
	struct vsock_hdr hdr;

	(void)state;
	hdr = good_rw(0);
	hdr.op = VSOCK_OP_INVALID;
	assert_rejected(&hdr, 0, "unknown op");
	hdr.op = 8;
	assert_rejected(&hdr, 0, "unknown op");
	hdr.op = 0xffff;
	assert_rejected(&hdr, 0, "unknown op");

	hdr = good_rw(0);
	hdr.type = 2; /* SEQPACKET: not offered */
	assert_rejected(&hdr, 0, "STREAM");
	hdr.type = 0;
	assert_rejected(&hdr, 0, "STREAM");

	hdr = good_rw(0);
	hdr.src_cid = 4;
	assert_rejected(&hdr, 0, "src_cid");
	hdr.src_cid = VSOCK_CID_HOST; /* spoofing the host */
	assert_rejected(&hdr, 0, "src_cid");
	hdr.src_cid = GUEST_CID | 1ull << 32; /* the reserved upper half */
	assert_rejected(&hdr, 0, "src_cid");

	hdr = good_rw(0);
	hdr.dst_cid = GUEST_CID; /* loopback through the host: no */
	assert_rejected(&hdr, 0, "dst_cid");
	hdr.dst_cid = 1;
	assert_rejected(&hdr, 0, "dst_cid");
	hdr.dst_cid = VSOCK_CID_HOST | 1ull << 32;
	assert_rejected(&hdr, 0, "dst_cid");
}

static void test_peer_free_wraps(void **state)
{
	(void)state;
	/* Nothing in flight: the whole buffer. */
	assert_int_equal(vsock_peer_free(262144, 0, 0), 262144);
	assert_int_equal(vsock_peer_free(262144, 1000, 1000), 262144);
	/* Some in flight. */
	assert_int_equal(vsock_peer_free(262144, 5000, 1000), 262144 - 4000);
	/* tx_cnt wrapped past 2^32, fwd_cnt not yet: 0x20 + 0x10 in flight. */
	assert_int_equal(vsock_peer_free(262144, 0x20, 0xfffffff0u), 262144 - 0x30);
	/* Both wrapped. */
	assert_int_equal(vsock_peer_free(262144, 0x10, 0x8), 262144 - 8);
	/* Exactly full, across the wrap. */
	assert_int_equal(vsock_peer_free(0x100, 0x80, 0xffffff80u), 0);
	/* The peer shrank its buffer below what is in flight: none, not 4 GiB. */
	assert_int_equal(vsock_peer_free(100, 500, 0), 0);
	assert_int_equal(vsock_peer_free(100, 0x10, 0xfffffff0u), 100 - 0x20);
	assert_int_equal(vsock_peer_free(0x10, 0x10, 0xfffffff0u), 0);
	/* A zero buffer never has room. */
	assert_int_equal(vsock_peer_free(0, 7, 7), 0);
	/* The largest buffer. */
	assert_int_equal(vsock_peer_free(UINT32_MAX, 0, 1), 0);
	assert_int_equal(vsock_peer_free(UINT32_MAX, 1, 1), UINT32_MAX);
}

static int parse(const char *text, uint32_t *port)
{
	return vsock_parse_connect(text, strlen(text), port);
}

static void test_connect_line_good(void **state)
{
	uint32_t port = 0;

	(void)state;
	assert_int_equal(parse("CONNECT 5000\n", &port), 13);
	assert_int_equal(port, 5000);
	assert_int_equal(parse("CONNECT 0\n", &port), 10);
	assert_int_equal(port, 0);
	assert_int_equal(parse("CONNECT 4294967294\n", &port), 19);
	assert_int_equal(port, 4294967294u);
	/* Bytes after the line are the stream's, not the line's. */
	assert_int_equal(parse("CONNECT 52\nhello", &port), 11);
	assert_int_equal(port, 52);
}

static void test_connect_line_incomplete(void **state)
{
	uint32_t port = 0;

	(void)state;
	assert_int_equal(vsock_parse_connect("", 0, &port), 0);
	assert_int_equal(parse("C", &port), 0);
	assert_int_equal(parse("CONNECT", &port), 0);
	assert_int_equal(parse("CONNECT ", &port), 0);
	assert_int_equal(parse("CONNECT 50", &port), 0);
}

static void test_connect_line_junk(void **state)
{
	static const char *const junk[] = {
		"GET / HTTP/1.1\n", "connect 5000\n", "X", "CONNECTX", "CONNECT\n",
		"CONNECT \n", "CONNECT  5000\n", "CONNECT -1\n", "CONNECT +5\n",
		"CONNECT 5000 \n", "CONNECT 5000\r\n", "CONNECT 0x10\n",
		"CONNECT 007\n", "CONNECT 00\n", "CONNECT 12a", " CONNECT 1\n",
		/* VMADDR_PORT_ANY and beyond u32 */
		"CONNECT 4294967295\n", "CONNECT 4294967296\n",
		"CONNECT 99999999999999999999999\n", "CONNECT 99999999999",
	};
	uint32_t port = 42;

	(void)state;
	for (size_t i = 0; i < sizeof(junk) / sizeof(junk[0]); i++) {
		if (parse(junk[i], &port) != -EINVAL)
			fail_msg("\"%s\" was not refused as junk", junk[i]);
	}
	/* A NUL is junk too. */
	assert_int_equal(vsock_parse_connect("CONNECT 5\0\n", 11, &port), -EINVAL);
	assert_int_equal(port, 42);
}

/*
 * The longest valid line is "CONNECT 4294967294\n", 19 bytes: every
 * longer prefix is refused before it reaches the bridge's line buffer.
 */
static void test_connect_line_overlong(void **state)
{
	char line[VSOCK_CONNECT_LINE_MAX + 16];
	uint32_t port = 42;

	(void)state;
	memcpy(line, "CONNECT ", 8);
	memset(line + 8, '1', sizeof(line) - 8);
	for (size_t len = 8; len <= sizeof(line); len++) {
		int ret = vsock_parse_connect(line, len, &port);

		/* Ten digits may still be a port; the eleventh never is. */
		assert_int_equal(ret, len <= 18 ? 0 : -EINVAL);
	}
	/* Padding after a good port is junk, whatever its length. */
	memcpy(line, "CONNECT 5", 9);
	memset(line + 9, ' ', sizeof(line) - 9);
	line[sizeof(line) - 1] = '\n';
	assert_int_equal(vsock_parse_connect(line, sizeof(line), &port), -EINVAL);
	assert_int_equal(port, 42);
	assert_true(sizeof("CONNECT 4294967294\n") - 1 <= VSOCK_CONNECT_LINE_MAX);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hdr_wire_layout),
		cmocka_unit_test(test_check_accepts_good_packets),
		cmocka_unit_test(test_check_rejects_bad_lengths),
		cmocka_unit_test(test_check_rejects_bad_op_type_cids),
		cmocka_unit_test(test_peer_free_wraps),
		cmocka_unit_test(test_connect_line_good),
		cmocka_unit_test(test_connect_line_incomplete),
		cmocka_unit_test(test_connect_line_junk),
		cmocka_unit_test(test_connect_line_overlong),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
