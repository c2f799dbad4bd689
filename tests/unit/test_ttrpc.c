/*
 * Unit tests for ttrpc/ttrpc.c: the frame header, the incremental reader
 * (byte by byte, non-blocking descriptors, oversized frames), the wire
 * bytes of Request and Response, the server (unknown methods, stream ids,
 * deferred and out-of-order answers, cancellation, short writes) and the
 * client, over socketpairs.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>

#include "ttrpc.pb-c.h"
#include "ttrpc/ttrpc.h"

#define SERVICE "test.v1.Things"

/* ---------------------------------------------------------------- helpers */

static size_t frame_bytes(uint8_t *out, uint32_t stream_id, uint8_t type, const void *data,
			  uint32_t len)
{
	struct ttrpc_header header = { .length = len, .stream_id = stream_id, .type = type };

	ttrpc_header_encode(&header, out);
	memcpy(out + TTRPC_HEADER_SIZE, data, len);
	return TTRPC_HEADER_SIZE + len;
}

static void socket_pair(int fds[2])
{
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
}

static void write_all(int fd, const void *buf, size_t len)
{
	const uint8_t *p = buf;

	while (len) {
		ssize_t n = write(fd, p, len);

		assert_true(n > 0);
		p += n;
		len -= (size_t)n;
	}
}

/* Packs a ttrpc.Request frame for @method on @stream_id into a new buffer. */
static uint8_t *request_frame(uint32_t stream_id, const char *service, const char *method,
			      const char *payload, size_t *len)
{
	Ttrpc__Request request = TTRPC__REQUEST__INIT;
	uint8_t *frame;

	request.service = (char *)service;
	request.method = (char *)method;
	request.payload.data = (uint8_t *)payload;
	request.payload.len = strlen(payload);
	assert_int_equal(ttrpc_encode_frame(stream_id, TTRPC_TYPE_REQUEST, 0, &request.base,
					    &frame, len), 0);
	return frame;
}

/* Reads one response frame from blocking @fd and decodes it. */
static Ttrpc__Response *read_response(int fd, uint32_t *stream_id)
{
	struct ttrpc_reader reader;
	Ttrpc__Response *response;
	int event;

	ttrpc_reader_init(&reader);
	event = ttrpc_reader_read(&reader, fd);
	assert_int_equal(event, TTRPC_READER_FRAME);
	assert_int_equal(reader.header.type, TTRPC_TYPE_RESPONSE);
	*stream_id = reader.header.stream_id;
	response = ttrpc__response__unpack(NULL, reader.header.length, reader.data);
	assert_non_null(response);
	ttrpc_reader_release(&reader);
	return response;
}

static int response_code(const Ttrpc__Response *response)
{
	return response->status ? response->status->code : TTRPC_OK;
}

/* --------------------------------------------------------- test services */

struct test_service {
	struct ttrpc_call *later;	/* the deferred call, until answered */
	int cancelled;
	char seen_metadata[64];
	int64_t seen_timeout;
};

static void echo(struct ttrpc_call *call, const uint8_t *payload, size_t len, void *ctx)
{
	struct test_service *svc = ctx;
	const char *value = ttrpc_call_metadata(call, "who");

	snprintf(svc->seen_metadata, sizeof(svc->seen_metadata), "%s", value ? value : "");
	svc->seen_timeout = ttrpc_call_timeout_ns(call);
	ttrpc_call_reply(call, payload, len);
}

static void cancel_later(struct ttrpc_call *call, void *arg)
{
	struct test_service *svc = arg;

	assert_ptr_equal(call, svc->later);
	svc->later = NULL;
	svc->cancelled++;
}

static void later(struct ttrpc_call *call, const uint8_t *payload, size_t len, void *ctx)
{
	struct test_service *svc = ctx;

	(void)payload;
	(void)len;
	assert_null(svc->later);
	svc->later = call;
	ttrpc_call_defer(call, cancel_later, svc);
}

static void forgetful(struct ttrpc_call *call, const uint8_t *payload, size_t len, void *ctx)
{
	(void)call;
	(void)payload;
	(void)len;
	(void)ctx;
}

static void refuse(struct ttrpc_call *call, const uint8_t *payload, size_t len, void *ctx)
{
	(void)payload;
	(void)len;
	(void)ctx;
	ttrpc_call_fail(call, TTRPC_NOT_FOUND, "no thing called %s", "x");
}

/* Answers with as many bytes as the decimal payload says. */
static void big(struct ttrpc_call *call, const uint8_t *payload, size_t len, void *ctx)
{
	char text[16] = "";
	size_t size;
	uint8_t *data;

	(void)ctx;
	memcpy(text, payload, len < sizeof(text) - 1 ? len : sizeof(text) - 1);
	size = strtoul(text, NULL, 10);
	data = malloc(size);
	assert_non_null(data);
	for (size_t i = 0; i < size; i++)
		data[i] = (uint8_t)(i * 7);
	ttrpc_call_reply(call, data, size);
	free(data);
}

static const struct ttrpc_method methods[] = {
	{ SERVICE, "Echo", echo },
	{ SERVICE, "Later", later },
	{ SERVICE, "Forgetful", forgetful },
	{ SERVICE, "Refuse", refuse },
	{ SERVICE, "Big", big },
};

struct server_fixture {
	struct test_service svc;
	struct ttrpc_service_table table;
	struct ttrpc_conn *conn;
	int peer;		/* the client's end */
};

static void server_setup(struct server_fixture *f)
{
	int fds[2];

	memset(f, 0, sizeof(*f));
	f->table = (struct ttrpc_service_table){ methods, sizeof(methods) / sizeof(methods[0]), &f->svc };
	socket_pair(fds);
	f->conn = ttrpc_conn_new(fds[0], &f->table);
	assert_non_null(f->conn);
	f->peer = fds[1];
}

static void server_teardown(struct server_fixture *f)
{
	ttrpc_conn_free(f->conn);
	if (f->peer >= 0)
		close(f->peer);
}

/* Runs the server connection until it has nothing to read and all is sent. */
static void server_run(struct server_fixture *f)
{
	for (int i = 0; i < 100; i++) {
		struct pollfd pfd = { .fd = ttrpc_conn_fd(f->conn), .events = ttrpc_conn_events(f->conn) };

		assert_true(poll(&pfd, 1, 0) >= 0);
		if (!pfd.revents)
			return;
		assert_int_equal(ttrpc_conn_handle(f->conn, pfd.revents), 0);
	}
	fail_msg("the server connection never settled");
}

/* Sends a request on @stream_id from the peer and returns the response. */
static Ttrpc__Response *raw_call(struct server_fixture *f, uint32_t stream_id,
				 const char *service, const char *method, const char *payload)
{
	uint32_t answered_id;
	size_t len;
	uint8_t *frame = request_frame(stream_id, service, method, payload, &len);
	Ttrpc__Response *response;

	write_all(f->peer, frame, len);
	free(frame);
	server_run(f);
	response = read_response(f->peer, &answered_id);
	assert_int_equal(answered_id, stream_id);
	return response;
}

/* ------------------------------------------------------------------ tests */

static void test_header_encoding(void **state)
{
	const struct ttrpc_header header = {
		.length = 0x01020304, .stream_id = 0xa0b0c0d0, .type = 2, .flags = 1,
	};
	const uint8_t expected[TTRPC_HEADER_SIZE] = {
		0x01, 0x02, 0x03, 0x04, 0xa0, 0xb0, 0xc0, 0xd0, 0x02, 0x01,
	};
	uint8_t bytes[TTRPC_HEADER_SIZE];
	struct ttrpc_header decoded;

	(void)state;
	ttrpc_header_encode(&header, bytes);
	assert_memory_equal(bytes, expected, sizeof(expected));
	ttrpc_header_decode(bytes, &decoded);
	assert_int_equal(decoded.length, header.length);
	assert_int_equal(decoded.stream_id, header.stream_id);
	assert_int_equal(decoded.type, header.type);
	assert_int_equal(decoded.flags, header.flags);
}

/* Two frames fed one byte at a time come out whole, at their last byte. */
static void test_reader_byte_at_a_time(void **state)
{
	uint8_t stream[64];
	size_t len, first_end;
	struct ttrpc_reader reader;
	int frames = 0;

	(void)state;
	first_end = frame_bytes(stream, 1, TTRPC_TYPE_REQUEST, "hello", 5);
	len = first_end + frame_bytes(stream + first_end, 3, TTRPC_TYPE_RESPONSE, "", 0);

	ttrpc_reader_init(&reader);
	for (size_t i = 0; i < len; i++) {
		uint8_t *buf;
		long space = ttrpc_reader_space(&reader, &buf);
		int event;

		assert_true(space >= 1);
		/* Never more than the current frame's remaining bytes. */
		assert_true((size_t)space <= (i < first_end ? first_end : len) - i);
		*buf = stream[i];
		event = ttrpc_reader_commit(&reader, 1);
		if (i == first_end - 1) {
			assert_int_equal(event, TTRPC_READER_FRAME);
			assert_int_equal(reader.header.stream_id, 1);
			assert_int_equal(reader.header.type, TTRPC_TYPE_REQUEST);
			assert_int_equal(reader.header.length, 5);
			assert_memory_equal(reader.data, "hello", 5);
			assert_true(ttrpc_reader_idle(&reader));
			frames++;
		} else if (i == len - 1) {
			assert_int_equal(event, TTRPC_READER_FRAME);
			assert_int_equal(reader.header.stream_id, 3);
			assert_int_equal(reader.header.length, 0);
			frames++;
		} else {
			assert_int_equal(event, TTRPC_READER_MORE);
			assert_false(ttrpc_reader_idle(&reader));
		}
	}
	assert_int_equal(frames, 2);
	ttrpc_reader_release(&reader);
}

/* On a non-blocking socket: -EAGAIN until the frame is whole; EOF rules. */
static void test_reader_partial_reads_from_fd(void **state)
{
	uint8_t frame[32];
	size_t len = frame_bytes(frame, 7, TTRPC_TYPE_REQUEST, "abc", 3);
	struct ttrpc_reader reader;
	int fds[2];

	(void)state;
	socket_pair(fds);
	assert_int_equal(fcntl(fds[0], F_SETFL, O_NONBLOCK), 0);
	ttrpc_reader_init(&reader);
	for (size_t i = 0; i < len; i++) {
		assert_int_equal(ttrpc_reader_read(&reader, fds[0]), -EAGAIN);
		write_all(fds[1], frame + i, 1);
	}
	assert_int_equal(ttrpc_reader_read(&reader, fds[0]), TTRPC_READER_FRAME);
	assert_memory_equal(reader.data, "abc", 3);

	/* Half a header, then end of file: a truncated frame. */
	write_all(fds[1], frame, 4);
	shutdown(fds[1], SHUT_WR);
	assert_int_equal(ttrpc_reader_read(&reader, fds[0]), -EPROTO);
	ttrpc_reader_release(&reader);
	close(fds[0]);
	close(fds[1]);

	/* End of file between frames is a clean end. */
	socket_pair(fds);
	ttrpc_reader_init(&reader);
	write_all(fds[1], frame, len);
	close(fds[1]);
	assert_int_equal(ttrpc_reader_read(&reader, fds[0]), TTRPC_READER_FRAME);
	assert_int_equal(ttrpc_reader_read(&reader, fds[0]), 0);
	ttrpc_reader_release(&reader);
	close(fds[0]);
}

/* An oversized frame is reported at its header and skipped, unstored. */
static void test_reader_skips_oversized_frame(void **state)
{
	struct ttrpc_header header = {
		.length = TTRPC_MAX_DATA + 1, .stream_id = 5, .type = TTRPC_TYPE_REQUEST,
	};
	uint8_t bytes[TTRPC_HEADER_SIZE], next[32];
	struct ttrpc_reader reader;
	size_t skipped = 0, next_len;
	uint8_t *buf;
	long space;

	(void)state;
	ttrpc_reader_init(&reader);
	ttrpc_header_encode(&header, bytes);
	space = ttrpc_reader_space(&reader, &buf);
	assert_int_equal(space, TTRPC_HEADER_SIZE);
	memcpy(buf, bytes, TTRPC_HEADER_SIZE);
	assert_int_equal(ttrpc_reader_commit(&reader, TTRPC_HEADER_SIZE), TTRPC_READER_OVERSIZED);
	assert_int_equal(reader.header.length, TTRPC_MAX_DATA + 1);
	assert_int_equal(reader.header.stream_id, 5);

	while (skipped < TTRPC_MAX_DATA + 1) {
		space = ttrpc_reader_space(&reader, &buf);
		assert_true(space > 0 && (size_t)space <= sizeof(reader.skip_buf));
		assert_ptr_equal(buf, reader.skip_buf);
		memset(buf, 0xee, (size_t)space);
		assert_int_equal(ttrpc_reader_commit(&reader, (size_t)space), TTRPC_READER_MORE);
		skipped += (size_t)space;
	}
	assert_null(reader.data);
	assert_true(ttrpc_reader_idle(&reader));

	/* The frame after it reads normally. */
	next_len = frame_bytes(next, 7, TTRPC_TYPE_REQUEST, "ok", 2);
	for (size_t done = 0; done < next_len;) {
		int event;

		space = ttrpc_reader_space(&reader, &buf);
		memcpy(buf, next + done, (size_t)space);
		done += (size_t)space;
		event = ttrpc_reader_commit(&reader, (size_t)space);
		assert_int_equal(event, done == next_len ? TTRPC_READER_FRAME : TTRPC_READER_MORE);
	}
	assert_int_equal(reader.header.stream_id, 7);
	assert_memory_equal(reader.data, "ok", 2);
	ttrpc_reader_release(&reader);
}

/* Request's field numbers and types, checked against hand-encoded bytes. */
static void test_request_wire_bytes(void **state)
{
	const uint8_t expected[] = {
		0x0a, 0x01, 's',		/* 1 service */
		0x12, 0x01, 'm',		/* 2 method */
		0x1a, 0x02, 'p', 'q',		/* 3 payload */
		0x20, 0x05,			/* 4 timeout_nano (varint) */
		0x2a, 0x06,			/* 5 metadata */
		0x0a, 0x01, 'k', 0x12, 0x01, 'v',
	};
	Ttrpc__Request request = TTRPC__REQUEST__INIT;
	Ttrpc__KeyValue kv = TTRPC__KEY_VALUE__INIT, *metadata[] = { &kv };
	Ttrpc__Request *decoded;
	uint8_t packed[64];

	(void)state;
	request.service = "s";
	request.method = "m";
	request.payload.data = (uint8_t *)"pq";
	request.payload.len = 2;
	request.timeout_nano = 5;
	kv.key = "k";
	kv.value = "v";
	request.n_metadata = 1;
	request.metadata = metadata;
	assert_int_equal(ttrpc__request__get_packed_size(&request), sizeof(expected));
	ttrpc__request__pack(&request, packed);
	assert_memory_equal(packed, expected, sizeof(expected));

	decoded = ttrpc__request__unpack(NULL, sizeof(expected), expected);
	assert_non_null(decoded);
	assert_string_equal(decoded->service, "s");
	assert_string_equal(decoded->method, "m");
	assert_int_equal(decoded->payload.len, 2);
	assert_memory_equal(decoded->payload.data, "pq", 2);
	assert_int_equal(decoded->timeout_nano, 5);
	assert_int_equal(decoded->n_metadata, 1);
	assert_string_equal(decoded->metadata[0]->key, "k");
	assert_string_equal(decoded->metadata[0]->value, "v");
	ttrpc__request__free_unpacked(decoded, NULL);
}

/* Response and google.rpc.Status, against hand-encoded bytes. */
static void test_response_wire_bytes(void **state)
{
	const uint8_t expected[] = {
		0x0a, 0x05,			/* 1 status */
		0x08, 0x0c,			/*   1 code = 12 */
		0x12, 0x01, 'x',		/*   2 message */
		0x12, 0x01, 'p',		/* 2 payload */
	};
	Ttrpc__Response response = TTRPC__RESPONSE__INIT;
	Ttrpc__Status status = TTRPC__STATUS__INIT;
	Ttrpc__Response *decoded;
	uint8_t packed[32];

	(void)state;
	status.code = TTRPC_UNIMPLEMENTED;
	status.message = "x";
	response.status = &status;
	response.payload.data = (uint8_t *)"p";
	response.payload.len = 1;
	assert_int_equal(ttrpc__response__get_packed_size(&response), sizeof(expected));
	ttrpc__response__pack(&response, packed);
	assert_memory_equal(packed, expected, sizeof(expected));

	decoded = ttrpc__response__unpack(NULL, sizeof(expected), expected);
	assert_non_null(decoded);
	assert_non_null(decoded->status);
	assert_int_equal(decoded->status->code, TTRPC_UNIMPLEMENTED);
	assert_string_equal(decoded->status->message, "x");
	assert_int_equal(decoded->payload.len, 1);
	ttrpc__response__free_unpacked(decoded, NULL);
}

static void test_unknown_service_and_method(void **state)
{
	struct server_fixture f;
	Ttrpc__Response *response;

	(void)state;
	server_setup(&f);
	response = raw_call(&f, 1, "test.v1.Nothing", "Echo", "");
	assert_int_equal(response_code(response), TTRPC_UNIMPLEMENTED);
	assert_non_null(strstr(response->status->message, "unknown service test.v1.Nothing"));
	ttrpc__response__free_unpacked(response, NULL);

	response = raw_call(&f, 3, SERVICE, "Nope", "");
	assert_int_equal(response_code(response), TTRPC_UNIMPLEMENTED);
	assert_non_null(strstr(response->status->message, SERVICE " has no method Nope"));
	ttrpc__response__free_unpacked(response, NULL);

	/* The connection goes on. */
	response = raw_call(&f, 5, SERVICE, "Echo", "still here");
	assert_int_equal(response_code(response), TTRPC_OK);
	assert_memory_equal(response->payload.data, "still here", 10);
	ttrpc__response__free_unpacked(response, NULL);
	server_teardown(&f);
}

static void test_bad_stream_ids_and_frames(void **state)
{
	struct server_fixture f;
	Ttrpc__Response *response;
	uint8_t frame[32];
	uint32_t id;

	(void)state;
	server_setup(&f);
	response = raw_call(&f, 2, SERVICE, "Echo", "");
	assert_int_equal(response_code(response), TTRPC_INVALID_ARGUMENT);
	assert_non_null(strstr(response->status->message, "even"));
	ttrpc__response__free_unpacked(response, NULL);

	response = raw_call(&f, 9, SERVICE, "Echo", "");
	assert_int_equal(response_code(response), TTRPC_OK);
	ttrpc__response__free_unpacked(response, NULL);
	response = raw_call(&f, 7, SERVICE, "Echo", "");
	assert_int_equal(response_code(response), TTRPC_INVALID_ARGUMENT);
	assert_non_null(strstr(response->status->message, "not above"));
	ttrpc__response__free_unpacked(response, NULL);

	/* Not a Request message: field 1 claims more bytes than there are. */
	write_all(f.peer, frame, frame_bytes(frame, 11, TTRPC_TYPE_REQUEST, "\x0a\x09s", 3));
	server_run(&f);
	response = read_response(f.peer, &id);
	assert_int_equal(id, 11);
	assert_int_equal(response_code(response), TTRPC_INVALID_ARGUMENT);
	ttrpc__response__free_unpacked(response, NULL);

	write_all(f.peer, frame, frame_bytes(frame, 13, TTRPC_TYPE_DATA, "", 0));
	server_run(&f);
	response = read_response(f.peer, &id);
	assert_int_equal(id, 13);
	assert_int_equal(response_code(response), TTRPC_INVALID_ARGUMENT);
	assert_non_null(strstr(response->status->message, "streaming"));
	ttrpc__response__free_unpacked(response, NULL);
	server_teardown(&f);
}

/* A handler that neither answers nor defers gets Internal for it. */
static void test_handler_without_answer(void **state)
{
	struct server_fixture f;
	Ttrpc__Response *response;

	(void)state;
	server_setup(&f);
	response = raw_call(&f, 1, SERVICE, "Forgetful", "");
	assert_int_equal(response_code(response), TTRPC_INTERNAL);
	ttrpc__response__free_unpacked(response, NULL);
	response = raw_call(&f, 3, SERVICE, "Refuse", "");
	assert_int_equal(response_code(response), TTRPC_NOT_FOUND);
	assert_string_equal(response->status->message, "no thing called x");
	ttrpc__response__free_unpacked(response, NULL);
	server_teardown(&f);
}

/* A deferred call is answered after a later one, on its own stream id. */
static void test_deferred_answers_out_of_order(void **state)
{
	struct server_fixture f;
	Ttrpc__Response *response;
	uint8_t *frame;
	size_t len;
	uint32_t id;

	(void)state;
	server_setup(&f);
	frame = request_frame(1, SERVICE, "Later", "", &len);
	write_all(f.peer, frame, len);
	free(frame);
	frame = request_frame(3, SERVICE, "Echo", "now", &len);
	write_all(f.peer, frame, len);
	free(frame);
	server_run(&f);
	assert_non_null(f.svc.later);

	response = read_response(f.peer, &id);
	assert_int_equal(id, 3);
	assert_memory_equal(response->payload.data, "now", 3);
	ttrpc__response__free_unpacked(response, NULL);

	ttrpc_call_reply(f.svc.later, "done", 4);
	f.svc.later = NULL;
	assert_true(ttrpc_conn_flushed(f.conn));
	response = read_response(f.peer, &id);
	assert_int_equal(id, 1);
	assert_int_equal(response_code(response), TTRPC_OK);
	assert_memory_equal(response->payload.data, "done", 4);
	ttrpc__response__free_unpacked(response, NULL);
	assert_int_equal(f.svc.cancelled, 0);
	server_teardown(&f);
}

/* Freeing a connection cancels its deferred calls; a peer hangup ends it. */
static void test_close_cancels_deferred_call(void **state)
{
	struct server_fixture f;
	struct pollfd pfd;
	uint8_t *frame;
	size_t len;

	(void)state;
	server_setup(&f);
	frame = request_frame(1, SERVICE, "Later", "", &len);
	write_all(f.peer, frame, len);
	free(frame);
	server_run(&f);
	assert_non_null(f.svc.later);

	close(f.peer);
	f.peer = -1;
	pfd = (struct pollfd){ .fd = ttrpc_conn_fd(f.conn), .events = ttrpc_conn_events(f.conn) };
	assert_int_equal(poll(&pfd, 1, 1000), 1);
	assert_int_equal(ttrpc_conn_handle(f.conn, pfd.revents), -EPIPE);
	ttrpc_conn_free(f.conn);
	f.conn = NULL;
	assert_int_equal(f.svc.cancelled, 1);
	assert_null(f.svc.later);
	server_teardown(&f);
}

/* Request metadata and timeout reach the handler. */
static void test_metadata_and_timeout(void **state)
{
	Ttrpc__Request request = TTRPC__REQUEST__INIT;
	Ttrpc__KeyValue kv = TTRPC__KEY_VALUE__INIT, *metadata[] = { &kv };
	struct server_fixture f;
	Ttrpc__Response *response;
	uint8_t *frame;
	size_t len;
	uint32_t id;

	(void)state;
	server_setup(&f);
	request.service = SERVICE;
	request.method = "Echo";
	request.timeout_nano = 1500000000;
	kv.key = "who";
	kv.value = "tester";
	request.n_metadata = 1;
	request.metadata = metadata;
	assert_int_equal(ttrpc_encode_frame(1, TTRPC_TYPE_REQUEST, 0, &request.base, &frame, &len), 0);
	write_all(f.peer, frame, len);
	free(frame);
	server_run(&f);
	response = read_response(f.peer, &id);
	assert_int_equal(response_code(response), TTRPC_OK);
	ttrpc__response__free_unpacked(response, NULL);
	assert_string_equal(f.svc.seen_metadata, "tester");
	assert_int_equal(f.svc.seen_timeout, 1500000000);
	server_teardown(&f);
}

/*
 * An oversized request gets ResourceExhausted, and the connection goes
 * on. The server and the writer take turns on a small socket buffer.
 */
static void test_oversized_request_rejected(void **state)
{
	struct ttrpc_header header = {
		.length = TTRPC_MAX_DATA + 100, .stream_id = 1, .type = TTRPC_TYPE_REQUEST,
	};
	static uint8_t junk[65536];
	struct server_fixture f;
	Ttrpc__Response *response;
	uint8_t bytes[TTRPC_HEADER_SIZE];
	size_t left = header.length;
	uint32_t id;

	(void)state;
	server_setup(&f);
	ttrpc_header_encode(&header, bytes);
	write_all(f.peer, bytes, sizeof(bytes));
	server_run(&f);
	response = read_response(f.peer, &id);
	assert_int_equal(id, 1);
	assert_int_equal(response_code(response), TTRPC_RESOURCE_EXHAUSTED);
	assert_non_null(strstr(response->status->message, "exceeds the maximum message size"));
	ttrpc__response__free_unpacked(response, NULL);

	while (left) {
		size_t n = left < sizeof(junk) ? left : sizeof(junk);

		write_all(f.peer, junk, n);
		left -= n;
		server_run(&f);
	}
	response = raw_call(&f, 3, SERVICE, "Echo", "after");
	assert_int_equal(response_code(response), TTRPC_OK);
	assert_memory_equal(response->payload.data, "after", 5);
	ttrpc__response__free_unpacked(response, NULL);
	server_teardown(&f);
}

/*
 * A 3 MiB response through a small socket buffer: the server sends it
 * in many short writes as the client reads, and it arrives intact.
 */
static void test_large_response_short_writes(void **state)
{
	const size_t size = 3u << 20;
	struct server_fixture f;
	struct ttrpc_client *client;
	struct ttrpc_result result = { 0 };
	int sndbuf = 4096, got = 0;
	char payload[16];
	uint32_t id;

	(void)state;
	server_setup(&f);
	assert_int_equal(setsockopt(ttrpc_conn_fd(f.conn), SOL_SOCKET, SO_SNDBUF, &sndbuf,
				    sizeof(sndbuf)), 0);
	client = ttrpc_client_new(f.peer);
	assert_non_null(client);
	f.peer = -1;
	snprintf(payload, sizeof(payload), "%zu", size);
	assert_int_equal(ttrpc_client_send(client, SERVICE, "Big", payload, strlen(payload), &id), 0);
	assert_int_equal(id, 1);
	for (int rounds = 0; !got && rounds < 100000; rounds++) {
		struct pollfd pfd = { .fd = ttrpc_conn_fd(f.conn), .events = ttrpc_conn_events(f.conn) };

		assert_true(poll(&pfd, 1, 0) >= 0);
		if (pfd.revents)
			assert_int_equal(ttrpc_conn_handle(f.conn, pfd.revents), 0);
		assert_int_equal(ttrpc_client_receive(client), 0);
		got = ttrpc_client_take(client, id, &result);
		assert_true(got >= 0);
	}
	assert_int_equal(got, 1);
	assert_int_equal(result.code, TTRPC_OK);
	assert_int_equal(result.payload_len, size);
	for (size_t i = 0; i < size; i++)
		if (result.payload[i] != (uint8_t)(i * 7))
			fail_msg("byte %zu differs", i);
	ttrpc_result_clear(&result);
	ttrpc_client_free(client);
	server_teardown(&f);
}

/* The server thread of the round-trip test: serves until the peer leaves. */
static void *serve_until_closed(void *arg)
{
	struct server_fixture *f = arg;

	for (;;) {
		struct pollfd pfd = { .fd = ttrpc_conn_fd(f->conn), .events = ttrpc_conn_events(f->conn) };
		int ret;

		if (poll(&pfd, 1, 50) < 0)
			return (void *)(intptr_t)-errno;
		if (f->svc.later && !pfd.revents) {
			/* Answer the deferred call once the queue went quiet. */
			ttrpc_call_reply(f->svc.later, "late", 4);
			f->svc.later = NULL;
		}
		ret = ttrpc_conn_handle(f->conn, pfd.revents);
		if (ret < 0)
			return (void *)(intptr_t)ret;
	}
}

static void test_client_server_round_trip(void **state)
{
	struct server_fixture f;
	struct ttrpc_client *client;
	struct ttrpc_result result = { 0 };
	pthread_t thread;
	uint32_t later_id, ids[3];
	void *ret;

	(void)state;
	server_setup(&f);
	client = ttrpc_client_new(f.peer);
	assert_non_null(client);
	f.peer = -1;
	assert_int_equal(pthread_create(&thread, NULL, serve_until_closed, &f), 0);

	assert_int_equal(ttrpc_client_call(client, SERVICE, "Echo", "one", 3, &result, 5000), 0);
	assert_int_equal(result.code, TTRPC_OK);
	assert_int_equal(result.payload_len, 3);
	assert_memory_equal(result.payload, "one", 3);
	ttrpc_result_clear(&result);

	/* A deferred call outstanding while others complete. */
	assert_int_equal(ttrpc_client_send(client, SERVICE, "Later", "", 0, &later_id), 0);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(ttrpc_client_send(client, SERVICE, "Echo", "x", 1, &ids[i]), 0);
		assert_int_equal(ids[i] % 2, 1);
		assert_true(ids[i] > (i ? ids[i - 1] : later_id));
	}
	for (int i = 2; i >= 0; i--) {
		assert_int_equal(ttrpc_client_wait(client, ids[i], &result, 5000), 0);
		assert_int_equal(result.code, TTRPC_OK);
		ttrpc_result_clear(&result);
	}
	assert_int_equal(ttrpc_client_wait(client, later_id, &result, 5000), 0);
	assert_int_equal(result.code, TTRPC_OK);
	assert_memory_equal(result.payload, "late", 4);
	ttrpc_result_clear(&result);

	assert_int_equal(ttrpc_client_call(client, SERVICE, "Refuse", "", 0, &result, 5000), 0);
	assert_int_equal(result.code, TTRPC_NOT_FOUND);
	assert_string_equal(result.message, "no thing called x");
	ttrpc_result_clear(&result);

	ttrpc_client_free(client);
	assert_int_equal(pthread_join(thread, &ret), 0);
	assert_int_equal((intptr_t)ret, -EPIPE);
	server_teardown(&f);
}

/* A server that hangs up mid-call, or answers what nobody asked. */
static void test_client_connection_errors(void **state)
{
	struct ttrpc_client *client;
	struct ttrpc_result result = { 0 };
	uint8_t frame[64];
	uint32_t id;
	int fds[2];

	(void)state;
	socket_pair(fds);
	client = ttrpc_client_new(fds[0]);
	assert_non_null(client);
	assert_int_equal(ttrpc_client_send(client, SERVICE, "Echo", "", 0, &id), 0);
	close(fds[1]);
	assert_int_equal(ttrpc_client_wait(client, id, &result, 5000), -EPIPE);
	assert_int_equal(ttrpc_client_send(client, SERVICE, "Echo", "", 0, &id), -EPIPE);
	ttrpc_client_free(client);

	socket_pair(fds);
	client = ttrpc_client_new(fds[0]);
	assert_int_equal(ttrpc_client_send(client, SERVICE, "Echo", "", 0, &id), 0);
	write_all(fds[1], frame, frame_bytes(frame, id + 2, TTRPC_TYPE_RESPONSE, "", 0));
	assert_int_equal(ttrpc_client_wait(client, id, &result, 5000), -EPROTO);
	ttrpc_client_free(client);
	close(fds[1]);

	/* No answer in time: -ETIMEDOUT, and the late answer is dropped. */
	socket_pair(fds);
	client = ttrpc_client_new(fds[0]);
	assert_int_equal(ttrpc_client_send(client, SERVICE, "Echo", "", 0, &id), 0);
	assert_int_equal(ttrpc_client_wait(client, id, &result, 10), -ETIMEDOUT);
	write_all(fds[1], frame, frame_bytes(frame, id, TTRPC_TYPE_RESPONSE, "", 0));
	assert_int_equal(ttrpc_client_receive(client), 0);
	assert_int_equal(ttrpc_client_take(client, id, &result), -ENOENT);
	ttrpc_client_free(client);
	close(fds[1]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_header_encoding),
		cmocka_unit_test(test_reader_byte_at_a_time),
		cmocka_unit_test(test_reader_partial_reads_from_fd),
		cmocka_unit_test(test_reader_skips_oversized_frame),
		cmocka_unit_test(test_request_wire_bytes),
		cmocka_unit_test(test_response_wire_bytes),
		cmocka_unit_test(test_unknown_service_and_method),
		cmocka_unit_test(test_bad_stream_ids_and_frames),
		cmocka_unit_test(test_handler_without_answer),
		cmocka_unit_test(test_deferred_answers_out_of_order),
		cmocka_unit_test(test_close_cancels_deferred_call),
		cmocka_unit_test(test_metadata_and_timeout),
		cmocka_unit_test(test_oversized_request_rejected),
		cmocka_unit_test(test_large_response_short_writes),
		cmocka_unit_test(test_client_server_round_trip),
		cmocka_unit_test(test_client_connection_errors),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
