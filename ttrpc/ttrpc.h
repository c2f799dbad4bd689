/*
 * ttrpc.h - containerd's ttrpc protocol: frames, a server connection
 * driven by a poll() loop, and a client. Shared by guest-init (the guest
 * control service) and host programs (erovm-ctl, the containerd shim).
 *
 * Wire format (containerd/ttrpc PROTOCOL.md). Every message is a frame:
 * a 10-byte header, then `length` bytes of data.
 *
 *   length    u32 big-endian, at most TTRPC_MAX_DATA (4 MiB)
 *   stream id u32 big-endian; the client numbers its calls 1, 3, 5, ...
 *   type      u8: 1 request, 2 response, 3 data (streaming, unsupported)
 *   flags     u8: 0 for unary calls
 *
 * A request's data is a ttrpc.Request, a response's a ttrpc.Response
 * (proto/ttrpc.proto); each call is one request and one response on the
 * same stream id, and responses may come in any order.
 *
 * Threads: none inside. A connection or client is used by one thread at
 * a time. Descriptors are switched to non-blocking mode and owned (closed)
 * by the object they are handed to.
 *
 * Errors: functions returning int give 0 (or a documented positive
 * value) on success and a negative errno on failure.
 */
#ifndef EROVM_TTRPC_H
#define EROVM_TTRPC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

#define TTRPC_HEADER_SIZE 10
#define TTRPC_MAX_DATA (4u << 20)

enum ttrpc_type {
	TTRPC_TYPE_REQUEST = 1,
	TTRPC_TYPE_RESPONSE = 2,
	TTRPC_TYPE_DATA = 3,
};

/* gRPC status codes, as ttrpc uses them. */
enum ttrpc_code {
	TTRPC_OK = 0,
	TTRPC_CANCELED = 1,
	TTRPC_UNKNOWN = 2,
	TTRPC_INVALID_ARGUMENT = 3,
	TTRPC_DEADLINE_EXCEEDED = 4,
	TTRPC_NOT_FOUND = 5,
	TTRPC_ALREADY_EXISTS = 6,
	TTRPC_PERMISSION_DENIED = 7,
	TTRPC_RESOURCE_EXHAUSTED = 8,
	TTRPC_FAILED_PRECONDITION = 9,
	TTRPC_ABORTED = 10,
	TTRPC_OUT_OF_RANGE = 11,
	TTRPC_UNIMPLEMENTED = 12,
	TTRPC_INTERNAL = 13,
	TTRPC_UNAVAILABLE = 14,
	TTRPC_DATA_LOSS = 15,
	TTRPC_UNAUTHENTICATED = 16,
};

/* "NotFound" and so on; "an unknown code" outside gRPC's table. */
const char *ttrpc_code_name(int code);

struct ttrpc_header {
	uint32_t length;
	uint32_t stream_id;
	uint8_t type;
	uint8_t flags;
};

void ttrpc_header_encode(const struct ttrpc_header *header, uint8_t out[TTRPC_HEADER_SIZE]);
void ttrpc_header_decode(const uint8_t in[TTRPC_HEADER_SIZE], struct ttrpc_header *header);

/* ------------------------------------------------------------ frame reader */

/*
 * An incremental frame reader: bytes go in as they arrive, in pieces of
 * any size, and come out as whole frames. A frame longer than
 * TTRPC_MAX_DATA is reported from its header alone and its data skipped
 * without being stored.
 */
struct ttrpc_reader {
	uint8_t header_bytes[TTRPC_HEADER_SIZE];
	size_t header_have;
	struct ttrpc_header header;	/* of the frame being read or just read */
	uint8_t *data;			/* header.length bytes when complete */
	size_t data_have;
	uint32_t skip_left;		/* of an oversized frame's data */
	bool frame_done;		/* the last commit completed a frame */
	uint8_t skip_buf[512];
};

enum ttrpc_reader_event {
	TTRPC_READER_MORE = 0,		/* the frame is not complete yet */
	TTRPC_READER_FRAME = 1,		/* reader->header and ->data hold a frame */
	TTRPC_READER_OVERSIZED = 2,	/* reader->header is a frame too long to read */
};

void ttrpc_reader_init(struct ttrpc_reader *reader);
void ttrpc_reader_release(struct ttrpc_reader *reader);

/*
 * Where the next bytes go: sets *@buf and returns how many bytes may be
 * put there (at least 1, never past the current frame), or -ENOMEM.
 * Invalidates the frame returned by the last commit.
 */
long ttrpc_reader_space(struct ttrpc_reader *reader, uint8_t **buf);

/*
 * @n bytes (at most what ttrpc_reader_space() allowed) were put at its
 * buffer. Returns an enum ttrpc_reader_event. After TTRPC_READER_FRAME
 * the frame stays in the reader until the next ttrpc_reader_space().
 */
int ttrpc_reader_commit(struct ttrpc_reader *reader, size_t n);

/* True between frames: no byte of a next frame was received yet. */
bool ttrpc_reader_idle(const struct ttrpc_reader *reader);

/*
 * Reads from non-blocking @fd until a frame is complete or @fd has no
 * more bytes for now. Returns TTRPC_READER_FRAME or TTRPC_READER_OVERSIZED,
 * -EAGAIN (no complete frame yet), 0 (end of file between frames),
 * -EPROTO (end of file inside a frame), or another negative errno.
 */
int ttrpc_reader_read(struct ttrpc_reader *reader, int fd);

/* ------------------------------------------------------ message encoding */

/*
 * Encodes a frame of @type and @flags on @stream_id with @msg packed as
 * its data into a new buffer (*@out, *@out_len bytes, to be freed).
 * Returns 0, -EMSGSIZE if the message exceeds TTRPC_MAX_DATA, or -ENOMEM.
 */
int ttrpc_encode_frame(uint32_t stream_id, uint8_t type, uint8_t flags,
		       const ProtobufCMessage *msg, uint8_t **out, size_t *out_len);

/* ------------------------------------------------------------------ server */

struct ttrpc_conn;
struct ttrpc_call;

/*
 * Handles one call: @payload (@len bytes) is the method's request
 * message. The handler answers with ttrpc_call_reply() or
 * ttrpc_call_fail(), either before returning or later, after marking the
 * call deferred with ttrpc_call_defer(). Returning without doing either
 * answers Internal.
 */
typedef void (*ttrpc_handler_fn)(struct ttrpc_call *call, const uint8_t *payload,
				 size_t len, void *ctx);

/*
 * A deferred call's connection is going away: the service must forget
 * @call, which is freed when this returns, and never answer it.
 */
typedef void (*ttrpc_cancel_fn)(struct ttrpc_call *call, void *arg);

struct ttrpc_method {
	const char *service;	/* full name, e.g. "erovm.control.v1.Process" */
	const char *method;	/* e.g. "Start" */
	ttrpc_handler_fn handler;
};

/* A table of methods and the context every handler gets. */
struct ttrpc_service_table {
	const struct ttrpc_method *methods;
	size_t count;
	void *ctx;
};

/* At most this many calls of one connection are being handled at once. */
#define TTRPC_MAX_CALLS 64
/* Reading stops while more than this many response bytes wait to be sent. */
#define TTRPC_OUTPUT_PAUSE (1u << 20)

/*
 * Serves ttrpc on @fd, a connected stream socket (switched to non-blocking;
 * the connection owns it). @table must outlive the connection. Returns
 * NULL with errno set if out of memory (@fd is then left open).
 *
 * Event loop use: poll @fd for ttrpc_conn_events(); hand what poll
 * reported to ttrpc_conn_handle(); when it returns an error, free the
 * connection. Handlers run inside ttrpc_conn_handle(); deferred calls may
 * be answered from anywhere in the same thread, after which the
 * connection wants POLLOUT until the response is sent.
 */
struct ttrpc_conn *ttrpc_conn_new(int fd, const struct ttrpc_service_table *table);

int ttrpc_conn_fd(const struct ttrpc_conn *conn);

/*
 * The poll() events the connection waits for: POLLIN unless too many
 * calls are in progress or too much output is queued, POLLOUT while
 * output is queued.
 */
short ttrpc_conn_events(const struct ttrpc_conn *conn);

/*
 * Reads and dispatches the requests that arrived, and sends queued
 * responses, as @revents (from poll) allows. Returns 0 to go on, or a
 * negative errno when the connection is finished: -EPIPE when the peer
 * closed it, -EPROTO when it broke the protocol, or the I/O error.
 */
int ttrpc_conn_handle(struct ttrpc_conn *conn, short revents);

/* True when every queued response has been sent. */
bool ttrpc_conn_flushed(const struct ttrpc_conn *conn);

/*
 * Cancels the connection's deferred calls (their ttrpc_cancel_fn runs),
 * drops unsent output and closes the descriptor. NULL is ignored.
 */
void ttrpc_conn_free(struct ttrpc_conn *conn);

/* Answers @call with OK and @payload (@len bytes), and frees it. */
void ttrpc_call_reply(struct ttrpc_call *call, const void *payload, size_t len);

/* Answers @call with OK and @msg packed as payload, and frees it. */
void ttrpc_call_reply_message(struct ttrpc_call *call, const ProtobufCMessage *msg);

/* Answers @call with status @code and a printf-style message, and frees it. */
void ttrpc_call_fail(struct ttrpc_call *call, enum ttrpc_code code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/*
 * The handler will answer later. Until then, @cancel(@call, @arg) runs if
 * the connection goes away first.
 */
void ttrpc_call_defer(struct ttrpc_call *call, ttrpc_cancel_fn cancel, void *arg);

/* The value of request metadata @key (the first one), or NULL. */
const char *ttrpc_call_metadata(const struct ttrpc_call *call, const char *key);

/* The request's timeout_nano: 0 for none. Handlers decide what it means. */
int64_t ttrpc_call_timeout_ns(const struct ttrpc_call *call);

/* "Service/Method", for messages. */
const char *ttrpc_call_service(const struct ttrpc_call *call);
const char *ttrpc_call_method(const struct ttrpc_call *call);

/* ------------------------------------------------------------------ client */

/* A call's outcome: a status code, its message, and the payload. */
struct ttrpc_result {
	int code;		/* enum ttrpc_code */
	char *message;		/* "" when none; never NULL after a result */
	uint8_t *payload;
	size_t payload_len;
};

void ttrpc_result_clear(struct ttrpc_result *result);

struct ttrpc_client;

/* At most this many calls of one client may be outstanding. */
#define TTRPC_CLIENT_MAX_CALLS 64

/*
 * A client on @fd, a connected stream socket (switched to non-blocking;
 * the client owns it). Returns NULL with errno set if out of memory.
 */
struct ttrpc_client *ttrpc_client_new(int fd);

/* Closes the descriptor and frees the client. NULL is ignored. */
void ttrpc_client_free(struct ttrpc_client *client);

int ttrpc_client_fd(const struct ttrpc_client *client);

/*
 * Sends a request for @service/@method with @payload (@len bytes) and
 * returns its stream id in *@stream_id. Waits until the request is
 * written. Returns 0, -EMSGSIZE (too large), -EBUSY (too many calls
 * outstanding), -EOVERFLOW (the connection used all 2^31 odd stream ids),
 * -EPIPE (connection closed), or another negative errno.
 */
int ttrpc_client_send(struct ttrpc_client *client, const char *service, const char *method,
		      const void *payload, size_t len, uint32_t *stream_id);

/*
 * Reads the responses that arrived, without waiting, and keeps them for
 * ttrpc_client_take(). Returns 0, -EPIPE if the server closed the
 * connection, -EPROTO if it broke the protocol (a response nobody asked
 * for, a truncated frame, an undecodable response), or another negative
 * errno. Responses read before an error stay takeable; the calls still
 * outstanding fail with it.
 */
int ttrpc_client_receive(struct ttrpc_client *client);

/*
 * Takes the response to call @stream_id into @result if it arrived:
 * returns 1, or 0 if it did not yet, or the negative errno that ended the
 * connection before it came.
 */
int ttrpc_client_take(struct ttrpc_client *client, uint32_t stream_id,
		      struct ttrpc_result *result);

/*
 * Waits up to @timeout_ms (-1: forever) for the response to call
 * @stream_id, receiving others on the way. Returns 0 with @result filled,
 * -ETIMEDOUT (the call stays outstanding; its late answer is dropped),
 * or the connection's error.
 */
int ttrpc_client_wait(struct ttrpc_client *client, uint32_t stream_id,
		      struct ttrpc_result *result, int timeout_ms);

/* ttrpc_client_send() then ttrpc_client_wait(). */
int ttrpc_client_call(struct ttrpc_client *client, const char *service, const char *method,
		      const void *payload, size_t len, struct ttrpc_result *result,
		      int timeout_ms);

/*
 * ttrpc_client_call() with @request packed as payload. Returns 0 with
 * @result filled (whatever its code), or a negative errno.
 */
int ttrpc_client_call_message(struct ttrpc_client *client, const char *service,
			      const char *method, const ProtobufCMessage *request,
			      struct ttrpc_result *result, int timeout_ms);

#endif
