/*
 * ttrpc: frames, server connections and a client. See ttrpc/ttrpc.h.
 */
#include "ttrpc/ttrpc.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "ttrpc.pb-c.h"

/* Frames read per ttrpc_conn_handle(), so a busy peer cannot starve the others. */
#define FRAMES_PER_HANDLE 16

static const char *const code_names[] = {
	[TTRPC_OK] = "OK",
	[TTRPC_CANCELED] = "Canceled",
	[TTRPC_UNKNOWN] = "Unknown",
	[TTRPC_INVALID_ARGUMENT] = "InvalidArgument",
	[TTRPC_DEADLINE_EXCEEDED] = "DeadlineExceeded",
	[TTRPC_NOT_FOUND] = "NotFound",
	[TTRPC_ALREADY_EXISTS] = "AlreadyExists",
	[TTRPC_PERMISSION_DENIED] = "PermissionDenied",
	[TTRPC_RESOURCE_EXHAUSTED] = "ResourceExhausted",
	[TTRPC_FAILED_PRECONDITION] = "FailedPrecondition",
	[TTRPC_ABORTED] = "Aborted",
	[TTRPC_OUT_OF_RANGE] = "OutOfRange",
	[TTRPC_UNIMPLEMENTED] = "Unimplemented",
	[TTRPC_INTERNAL] = "Internal",
	[TTRPC_UNAVAILABLE] = "Unavailable",
	[TTRPC_DATA_LOSS] = "DataLoss",
	[TTRPC_UNAUTHENTICATED] = "Unauthenticated",
};

const char *ttrpc_code_name(int code)
{
	if (code >= 0 && (size_t)code < sizeof(code_names) / sizeof(code_names[0]))
		return code_names[code];
	return "an unknown code";
}

static void put_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static uint32_t get_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

void ttrpc_header_encode(const struct ttrpc_header *header, uint8_t out[TTRPC_HEADER_SIZE])
{
	put_be32(out, header->length);
	put_be32(out + 4, header->stream_id);
	out[8] = header->type;
	out[9] = header->flags;
}

void ttrpc_header_decode(const uint8_t in[TTRPC_HEADER_SIZE], struct ttrpc_header *header)
{
	header->length = get_be32(in);
	header->stream_id = get_be32(in + 4);
	header->type = in[8];
	header->flags = in[9];
}

/* ------------------------------------------------------------ frame reader */

void ttrpc_reader_init(struct ttrpc_reader *reader)
{
	memset(reader, 0, sizeof(*reader));
}

void ttrpc_reader_release(struct ttrpc_reader *reader)
{
	free(reader->data);
	ttrpc_reader_init(reader);
}

/* Forgets the frame just delivered and starts on the next one. */
static void reader_next_frame(struct ttrpc_reader *reader)
{
	free(reader->data);
	reader->data = NULL;
	reader->data_have = 0;
	reader->header_have = 0;
	reader->frame_done = false;
}

long ttrpc_reader_space(struct ttrpc_reader *reader, uint8_t **buf)
{
	if (reader->frame_done)
		reader_next_frame(reader);
	if (reader->header_have < TTRPC_HEADER_SIZE) {
		*buf = reader->header_bytes + reader->header_have;
		return (long)(TTRPC_HEADER_SIZE - reader->header_have);
	}
	if (reader->skip_left) {
		*buf = reader->skip_buf;
		return reader->skip_left < sizeof(reader->skip_buf) ?
		       (long)reader->skip_left : (long)sizeof(reader->skip_buf);
	}
	/* Allocated once data arrives, so a bare header costs no memory. */
	if (!reader->data) {
		reader->data = malloc(reader->header.length);
		if (!reader->data)
			return -ENOMEM;
	}
	*buf = reader->data + reader->data_have;
	return (long)(reader->header.length - reader->data_have);
}

int ttrpc_reader_commit(struct ttrpc_reader *reader, size_t n)
{
	if (reader->header_have < TTRPC_HEADER_SIZE) {
		reader->header_have += n;
		if (reader->header_have < TTRPC_HEADER_SIZE)
			return TTRPC_READER_MORE;
		ttrpc_header_decode(reader->header_bytes, &reader->header);
		if (reader->header.length > TTRPC_MAX_DATA) {
			reader->skip_left = reader->header.length;
			return TTRPC_READER_OVERSIZED;
		}
		if (reader->header.length == 0) {
			reader->frame_done = true;
			return TTRPC_READER_FRAME;
		}
		return TTRPC_READER_MORE;
	}
	if (reader->skip_left) {
		reader->skip_left -= (uint32_t)n;
		if (!reader->skip_left)
			reader->header_have = 0;
		return TTRPC_READER_MORE;
	}
	reader->data_have += n;
	if (reader->data_have < reader->header.length)
		return TTRPC_READER_MORE;
	reader->frame_done = true;
	return TTRPC_READER_FRAME;
}

bool ttrpc_reader_idle(const struct ttrpc_reader *reader)
{
	return reader->frame_done || (reader->header_have == 0 && !reader->skip_left);
}

int ttrpc_reader_read(struct ttrpc_reader *reader, int fd)
{
	for (;;) {
		uint8_t *buf;
		long space = ttrpc_reader_space(reader, &buf);
		ssize_t n;
		int event;

		if (space < 0)
			return (int)space;
		n = read(fd, buf, (size_t)space);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return ttrpc_reader_idle(reader) ? 0 : -EPROTO;
		event = ttrpc_reader_commit(reader, (size_t)n);
		if (event != TTRPC_READER_MORE)
			return event;
	}
}

/* ------------------------------------------------------------ output queue */

/* Frames waiting to be sent: data[sent..len). */
struct outbuf {
	uint8_t *data;
	size_t len, sent, cap;
};

static size_t outbuf_pending(const struct outbuf *out)
{
	return out->len - out->sent;
}

static int outbuf_append(struct outbuf *out, const uint8_t *bytes, size_t len)
{
	if (out->sent == out->len)
		out->sent = out->len = 0;
	if (out->cap - out->len < len) {
		size_t pending = outbuf_pending(out);
		size_t cap = out->cap ? out->cap : 4096;
		uint8_t *data;

		/* Drop what was sent before growing. */
		if (pending)
			memmove(out->data, out->data + out->sent, pending);
		out->sent = 0;
		out->len = pending;
		while (cap - pending < len)
			cap *= 2;
		if (cap != out->cap) {
			data = realloc(out->data, cap);
			if (!data)
				return -ENOMEM;
			out->data = data;
			out->cap = cap;
		}
	}
	memcpy(out->data + out->len, bytes, len);
	out->len += len;
	return 0;
}

/* send() without SIGPIPE where @fd is a socket, write() where it is not. */
static ssize_t send_some(int fd, const void *buf, size_t len)
{
	ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);

	if (n < 0 && errno == ENOTSOCK)
		n = write(fd, buf, len);
	return n;
}

/* Sends what it can. Returns 0 when all is sent, -EAGAIN, or an error. */
static int outbuf_flush(struct outbuf *out, int fd)
{
	while (outbuf_pending(out)) {
		ssize_t n = send_some(fd, out->data + out->sent, outbuf_pending(out));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return errno == EAGAIN || errno == EWOULDBLOCK ? -EAGAIN : -errno;
		out->sent += (size_t)n;
	}
	out->sent = out->len = 0;
	return 0;
}

static void outbuf_release(struct outbuf *out)
{
	free(out->data);
	memset(out, 0, sizeof(*out));
}

/* ------------------------------------------------------- message encoding */

int ttrpc_encode_frame(uint32_t stream_id, uint8_t type, uint8_t flags,
		       const ProtobufCMessage *msg, uint8_t **out, size_t *out_len)
{
	size_t size = protobuf_c_message_get_packed_size(msg);
	struct ttrpc_header header = {
		.length = (uint32_t)size, .stream_id = stream_id, .type = type, .flags = flags,
	};
	uint8_t *frame;

	if (size > TTRPC_MAX_DATA)
		return -EMSGSIZE;
	frame = malloc(TTRPC_HEADER_SIZE + size);
	if (!frame)
		return -ENOMEM;
	ttrpc_header_encode(&header, frame);
	protobuf_c_message_pack(msg, frame + TTRPC_HEADER_SIZE);
	*out = frame;
	*out_len = TTRPC_HEADER_SIZE + size;
	return 0;
}

static int set_nonblocking(int fd)
{
	int flags = fcntl(fd, F_GETFL);

	if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
		return -errno;
	return 0;
}

/* ------------------------------------------------------------------ server */

struct ttrpc_call {
	struct ttrpc_conn *conn;
	struct ttrpc_call *prev, *next;	/* the connection's calls in progress */
	uint32_t stream_id;
	Ttrpc__Request *request;
	bool deferred;
	ttrpc_cancel_fn cancel;
	void *cancel_arg;
};

struct ttrpc_conn {
	int fd;
	const struct ttrpc_service_table *table;
	struct ttrpc_reader reader;
	struct outbuf out;
	struct ttrpc_call *calls;
	size_t call_count;
	uint32_t last_stream_id;
	struct ttrpc_call *dispatching;	/* the call whose handler runs */
	int error;			/* sticky: the connection is broken */
};

struct ttrpc_conn *ttrpc_conn_new(int fd, const struct ttrpc_service_table *table)
{
	struct ttrpc_conn *conn = calloc(1, sizeof(*conn));
	int ret;

	if (!conn)
		return NULL;
	ret = set_nonblocking(fd);
	if (ret < 0) {
		free(conn);
		errno = -ret;
		return NULL;
	}
	conn->fd = fd;
	conn->table = table;
	ttrpc_reader_init(&conn->reader);
	return conn;
}

int ttrpc_conn_fd(const struct ttrpc_conn *conn)
{
	return conn->fd;
}

static bool conn_may_read(const struct ttrpc_conn *conn)
{
	return !conn->error && conn->call_count < TTRPC_MAX_CALLS &&
	       outbuf_pending(&conn->out) <= TTRPC_OUTPUT_PAUSE;
}

short ttrpc_conn_events(const struct ttrpc_conn *conn)
{
	short events = 0;

	if (conn_may_read(conn))
		events |= POLLIN;
	/* A broken connection wakes the loop so that it gets freed. */
	if (outbuf_pending(&conn->out) || conn->error)
		events |= POLLOUT;
	return events;
}

bool ttrpc_conn_flushed(const struct ttrpc_conn *conn)
{
	return !outbuf_pending(&conn->out);
}

/* Queues a response frame on @stream_id and tries to send it at once. */
static void conn_send_response(struct ttrpc_conn *conn, uint32_t stream_id,
			       const Ttrpc__Response *response)
{
	uint8_t *frame;
	size_t len;
	int ret;

	if (conn->error)
		return;
	ret = ttrpc_encode_frame(stream_id, TTRPC_TYPE_RESPONSE, 0, &response->base, &frame, &len);
	if (ret == -EMSGSIZE) {
		Ttrpc__Status status = TTRPC__STATUS__INIT;
		Ttrpc__Response too_big = TTRPC__RESPONSE__INIT;
		char message[96];

		snprintf(message, sizeof(message),
			 "ttrpc: the response exceeds the maximum message size of %u bytes",
			 TTRPC_MAX_DATA);
		status.code = TTRPC_RESOURCE_EXHAUSTED;
		status.message = message;
		too_big.status = &status;
		ret = ttrpc_encode_frame(stream_id, TTRPC_TYPE_RESPONSE, 0, &too_big.base,
					 &frame, &len);
	}
	if (ret == 0) {
		ret = outbuf_append(&conn->out, frame, len);
		free(frame);
	}
	if (ret == 0) {
		ret = outbuf_flush(&conn->out, conn->fd);
		if (ret == -EAGAIN)
			ret = 0;
	}
	if (ret < 0)
		conn->error = ret;
}

static void conn_send_status(struct ttrpc_conn *conn, uint32_t stream_id,
			     enum ttrpc_code code, const char *message)
{
	Ttrpc__Status status = TTRPC__STATUS__INIT;
	Ttrpc__Response response = TTRPC__RESPONSE__INIT;

	status.code = code;
	status.message = (char *)message;
	response.status = &status;
	conn_send_response(conn, stream_id, &response);
}

static void call_free(struct ttrpc_call *call)
{
	struct ttrpc_conn *conn = call->conn;

	if (call->prev)
		call->prev->next = call->next;
	else
		conn->calls = call->next;
	if (call->next)
		call->next->prev = call->prev;
	conn->call_count--;
	if (conn->dispatching == call)
		conn->dispatching = NULL;
	ttrpc__request__free_unpacked(call->request, NULL);
	free(call);
}

void ttrpc_call_reply(struct ttrpc_call *call, const void *payload, size_t len)
{
	Ttrpc__Response response = TTRPC__RESPONSE__INIT;

	response.payload.data = (uint8_t *)payload;
	response.payload.len = len;
	conn_send_response(call->conn, call->stream_id, &response);
	call_free(call);
}

void ttrpc_call_reply_message(struct ttrpc_call *call, const ProtobufCMessage *msg)
{
	size_t len = protobuf_c_message_get_packed_size(msg);
	uint8_t *payload;

	if (len > TTRPC_MAX_DATA) {
		ttrpc_call_fail(call, TTRPC_RESOURCE_EXHAUSTED,
				"ttrpc: the response exceeds the maximum message size of %u bytes",
				TTRPC_MAX_DATA);
		return;
	}
	payload = malloc(len ? len : 1);
	if (!payload) {
		ttrpc_call_fail(call, TTRPC_RESOURCE_EXHAUSTED, "ttrpc: out of memory");
		return;
	}
	protobuf_c_message_pack(msg, payload);
	ttrpc_call_reply(call, payload, len);
	free(payload);
}

void ttrpc_call_fail(struct ttrpc_call *call, enum ttrpc_code code, const char *fmt, ...)
{
	char message[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(message, sizeof(message), fmt, ap);
	va_end(ap);
	conn_send_status(call->conn, call->stream_id, code, message);
	call_free(call);
}

void ttrpc_call_defer(struct ttrpc_call *call, ttrpc_cancel_fn cancel, void *arg)
{
	call->deferred = true;
	call->cancel = cancel;
	call->cancel_arg = arg;
}

const char *ttrpc_call_metadata(const struct ttrpc_call *call, const char *key)
{
	for (size_t i = 0; i < call->request->n_metadata; i++)
		if (!strcmp(call->request->metadata[i]->key, key))
			return call->request->metadata[i]->value;
	return NULL;
}

int64_t ttrpc_call_timeout_ns(const struct ttrpc_call *call)
{
	return call->request->timeout_nano;
}

const char *ttrpc_call_service(const struct ttrpc_call *call)
{
	return call->request->service;
}

const char *ttrpc_call_method(const struct ttrpc_call *call)
{
	return call->request->method;
}

static const struct ttrpc_method *find_method(const struct ttrpc_service_table *table,
					      const char *service, const char *method,
					      bool *service_known)
{
	*service_known = false;
	for (size_t i = 0; i < table->count; i++) {
		if (strcmp(table->methods[i].service, service))
			continue;
		*service_known = true;
		if (!strcmp(table->methods[i].method, method))
			return &table->methods[i];
	}
	return NULL;
}

static void conn_dispatch_request(struct ttrpc_conn *conn, uint32_t stream_id,
				  const uint8_t *data, size_t len)
{
	const struct ttrpc_method *method;
	struct ttrpc_call *call;
	Ttrpc__Request *request;
	char message[512];
	bool service_known;

	if (stream_id % 2 == 0) {
		snprintf(message, sizeof(message),
			 "ttrpc: stream id %u is even; client calls use odd ids", stream_id);
		conn_send_status(conn, stream_id, TTRPC_INVALID_ARGUMENT, message);
		return;
	}
	if (stream_id <= conn->last_stream_id) {
		snprintf(message, sizeof(message),
			 "ttrpc: stream id %u is not above the previous one, %u",
			 stream_id, conn->last_stream_id);
		conn_send_status(conn, stream_id, TTRPC_INVALID_ARGUMENT, message);
		return;
	}
	conn->last_stream_id = stream_id;

	request = ttrpc__request__unpack(NULL, len, data);
	if (!request) {
		conn_send_status(conn, stream_id, TTRPC_INVALID_ARGUMENT,
				 "ttrpc: the request is not a valid ttrpc.Request message");
		return;
	}
	method = find_method(conn->table, request->service, request->method, &service_known);
	if (!method) {
		if (service_known)
			snprintf(message, sizeof(message), "ttrpc: service %.200s has no method %.200s",
				 request->service, request->method);
		else
			snprintf(message, sizeof(message), "ttrpc: unknown service %.200s",
				 request->service);
		ttrpc__request__free_unpacked(request, NULL);
		conn_send_status(conn, stream_id, TTRPC_UNIMPLEMENTED, message);
		return;
	}

	call = calloc(1, sizeof(*call));
	if (!call) {
		ttrpc__request__free_unpacked(request, NULL);
		conn_send_status(conn, stream_id, TTRPC_RESOURCE_EXHAUSTED, "ttrpc: out of memory");
		return;
	}
	call->conn = conn;
	call->stream_id = stream_id;
	call->request = request;
	call->next = conn->calls;
	if (conn->calls)
		conn->calls->prev = call;
	conn->calls = call;
	conn->call_count++;

	conn->dispatching = call;
	method->handler(call, request->payload.data, request->payload.len, conn->table->ctx);
	if (conn->dispatching == call && !call->deferred)
		ttrpc_call_fail(call, TTRPC_INTERNAL, "ttrpc: %s/%s returned no answer",
				request->service, request->method);
	conn->dispatching = NULL;
}

static void conn_dispatch(struct ttrpc_conn *conn, int event)
{
	const struct ttrpc_header *header = &conn->reader.header;
	char message[128];

	if (event == TTRPC_READER_OVERSIZED) {
		snprintf(message, sizeof(message),
			 "ttrpc: message length %u exceeds the maximum message size of %u",
			 header->length, TTRPC_MAX_DATA);
		conn_send_status(conn, header->stream_id, TTRPC_RESOURCE_EXHAUSTED, message);
		return;
	}
	switch (header->type) {
	case TTRPC_TYPE_REQUEST:
		conn_dispatch_request(conn, header->stream_id, conn->reader.data, header->length);
		break;
	case TTRPC_TYPE_DATA:
		conn_send_status(conn, header->stream_id, TTRPC_INVALID_ARGUMENT,
				 "ttrpc: streaming (data frames) is not supported");
		break;
	default:
		/* Responses and unknown types: ignored, as containerd's server does. */
		break;
	}
}

int ttrpc_conn_handle(struct ttrpc_conn *conn, short revents)
{
	int ret;

	if (conn->error)
		return conn->error;
	if (outbuf_pending(&conn->out)) {
		ret = outbuf_flush(&conn->out, conn->fd);
		if (ret < 0 && ret != -EAGAIN)
			return ret == -ECONNRESET ? -EPIPE : ret;
	}
	if (!(revents & (POLLIN | POLLHUP | POLLERR)))
		return 0;
	if (!conn_may_read(conn))
		/* Nothing may be read, and a hung-up peer takes no output. */
		return revents & (POLLHUP | POLLERR) ? -EPIPE : 0;
	for (int i = 0; i < FRAMES_PER_HANDLE && conn_may_read(conn); i++) {
		ret = ttrpc_reader_read(&conn->reader, conn->fd);
		if (ret == -EAGAIN)
			break;
		if (ret == 0 || ret == -ECONNRESET)
			return -EPIPE;
		if (ret < 0)
			return ret;
		conn_dispatch(conn, ret);
		if (conn->error)
			return conn->error;
	}
	return 0;
}

void ttrpc_conn_free(struct ttrpc_conn *conn)
{
	if (!conn)
		return;
	while (conn->calls) {
		struct ttrpc_call *call = conn->calls;

		if (call->cancel)
			call->cancel(call, call->cancel_arg);
		call_free(call);
	}
	ttrpc_reader_release(&conn->reader);
	outbuf_release(&conn->out);
	close(conn->fd);
	free(conn);
}

/* ------------------------------------------------------------------ client */

enum pending_state {
	PENDING_FREE,
	PENDING_WAITING,	/* sent, no answer yet */
	PENDING_ANSWERED,	/* the answer waits in result */
	PENDING_ABANDONED,	/* the caller gave up; drop the answer */
};

struct pending_call {
	enum pending_state state;
	uint32_t stream_id;
	struct ttrpc_result result;
};

struct ttrpc_client {
	int fd;
	uint64_t next_stream_id;	/* past UINT32_MAX: ids are used up */
	struct ttrpc_reader reader;
	struct pending_call calls[TTRPC_CLIENT_MAX_CALLS];
	int error;		/* sticky: the connection ended */
};

void ttrpc_result_clear(struct ttrpc_result *result)
{
	free(result->message);
	free(result->payload);
	memset(result, 0, sizeof(*result));
}

struct ttrpc_client *ttrpc_client_new(int fd)
{
	struct ttrpc_client *client = calloc(1, sizeof(*client));
	int ret;

	if (!client)
		return NULL;
	ret = set_nonblocking(fd);
	if (ret < 0) {
		free(client);
		errno = -ret;
		return NULL;
	}
	client->fd = fd;
	client->next_stream_id = 1;
	ttrpc_reader_init(&client->reader);
	return client;
}

void ttrpc_client_free(struct ttrpc_client *client)
{
	if (!client)
		return;
	for (size_t i = 0; i < TTRPC_CLIENT_MAX_CALLS; i++)
		ttrpc_result_clear(&client->calls[i].result);
	ttrpc_reader_release(&client->reader);
	close(client->fd);
	free(client);
}

int ttrpc_client_fd(const struct ttrpc_client *client)
{
	return client->fd;
}

static struct pending_call *find_pending(struct ttrpc_client *client, uint32_t stream_id)
{
	for (size_t i = 0; i < TTRPC_CLIENT_MAX_CALLS; i++)
		if (client->calls[i].state != PENDING_FREE && client->calls[i].stream_id == stream_id)
			return &client->calls[i];
	return NULL;
}

static int result_set(struct ttrpc_result *result, int code, const char *message,
		      const uint8_t *payload, size_t len)
{
	result->code = code;
	result->message = strdup(message ? message : "");
	result->payload = malloc(len ? len : 1);
	result->payload_len = len;
	if (!result->message || !result->payload) {
		ttrpc_result_clear(result);
		return -ENOMEM;
	}
	if (len)
		memcpy(result->payload, payload, len);
	return 0;
}

/* Files the frame the reader holds (@event) with its call. */
static int client_file_response(struct ttrpc_client *client, int event)
{
	const struct ttrpc_header *header = &client->reader.header;
	struct pending_call *call = find_pending(client, header->stream_id);
	Ttrpc__Response *response;
	char message[128];
	int ret;

	if (!call || call->state == PENDING_ANSWERED)
		return -EPROTO;	/* an answer to nothing we asked */
	if (event == TTRPC_READER_OVERSIZED) {
		snprintf(message, sizeof(message),
			 "ttrpc: response length %u exceeds the maximum message size of %u",
			 header->length, TTRPC_MAX_DATA);
		ret = result_set(&call->result, TTRPC_RESOURCE_EXHAUSTED, message, NULL, 0);
	} else {
		if (header->type != TTRPC_TYPE_RESPONSE)
			return -EPROTO;
		response = ttrpc__response__unpack(NULL, header->length, client->reader.data);
		if (!response)
			return -EPROTO;
		ret = result_set(&call->result, response->status ? response->status->code : TTRPC_OK,
				 response->status ? response->status->message : "",
				 response->payload.data, response->payload.len);
		ttrpc__response__free_unpacked(response, NULL);
	}
	if (ret < 0)
		return ret;
	if (call->state == PENDING_ABANDONED) {
		ttrpc_result_clear(&call->result);
		call->state = PENDING_FREE;
	} else {
		call->state = PENDING_ANSWERED;
	}
	return 0;
}

int ttrpc_client_receive(struct ttrpc_client *client)
{
	int ret;

	if (client->error)
		return client->error;
	for (;;) {
		ret = ttrpc_reader_read(&client->reader, client->fd);
		if (ret == -EAGAIN)
			return 0;
		if (ret == 0 || ret == -ECONNRESET)
			ret = -EPIPE;
		if (ret > 0)
			ret = client_file_response(client, ret);
		if (ret < 0) {
			client->error = ret;
			return ret;
		}
	}
}

/* Writes all of @buf, reading answers meanwhile so neither side stalls. */
static int client_write_all(struct ttrpc_client *client, const uint8_t *buf, size_t len)
{
	while (len) {
		struct pollfd pfd = { .fd = client->fd, .events = POLLIN | POLLOUT };
		ssize_t n = send_some(client->fd, buf, len);
		int ret;

		if (n > 0) {
			buf += n;
			len -= (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
			return errno == ECONNRESET ? -EPIPE : -errno;
		if (poll(&pfd, 1, -1) < 0 && errno != EINTR)
			return -errno;
		if (pfd.revents & POLLIN) {
			ret = ttrpc_client_receive(client);
			if (ret < 0)
				return ret;
		}
	}
	return 0;
}

int ttrpc_client_send(struct ttrpc_client *client, const char *service, const char *method,
		      const void *payload, size_t len, uint32_t *stream_id)
{
	Ttrpc__Request request = TTRPC__REQUEST__INIT;
	struct pending_call *call;
	uint8_t *frame;
	size_t frame_len;
	int ret;

	if (client->error)
		return client->error;
	call = NULL;
	for (size_t i = 0; !call && i < TTRPC_CLIENT_MAX_CALLS; i++)
		if (client->calls[i].state == PENDING_FREE)
			call = &client->calls[i];
	if (!call)
		return -EBUSY;
	/* Odd and increasing: after 2^31 calls a connection has no ids left. */
	if (client->next_stream_id > UINT32_MAX)
		return -EOVERFLOW;

	request.service = (char *)service;
	request.method = (char *)method;
	request.payload.data = (uint8_t *)payload;
	request.payload.len = len;
	ret = ttrpc_encode_frame((uint32_t)client->next_stream_id, TTRPC_TYPE_REQUEST, 0,
				 &request.base, &frame, &frame_len);
	if (ret < 0)
		return ret;
	call->state = PENDING_WAITING;
	call->stream_id = (uint32_t)client->next_stream_id;
	client->next_stream_id += 2;
	ret = client_write_all(client, frame, frame_len);
	free(frame);
	if (ret < 0) {
		client->error = ret;
		return ret;
	}
	*stream_id = call->stream_id;
	return 0;
}

int ttrpc_client_take(struct ttrpc_client *client, uint32_t stream_id,
		      struct ttrpc_result *result)
{
	struct pending_call *call = find_pending(client, stream_id);

	if (!call || call->state == PENDING_ABANDONED)
		return -ENOENT;
	if (call->state == PENDING_WAITING)
		return client->error ? client->error : 0;
	*result = call->result;
	memset(&call->result, 0, sizeof(call->result));
	call->state = PENDING_FREE;
	return 1;
}

static long long monotonic_ms(void)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return now.tv_sec * 1000LL + now.tv_nsec / 1000000;
}

int ttrpc_client_wait(struct ttrpc_client *client, uint32_t stream_id,
		      struct ttrpc_result *result, int timeout_ms)
{
	long long deadline = timeout_ms < 0 ? 0 : monotonic_ms() + timeout_ms;

	for (;;) {
		struct pollfd pfd = { .fd = client->fd, .events = POLLIN };
		/* An answer that came just before the connection ended still counts. */
		int ret = ttrpc_client_take(client, stream_id, result), wait_ms = -1;

		if (ret != 0)
			return ret < 0 ? ret : 0;
		if (timeout_ms >= 0) {
			long long left = deadline - monotonic_ms();

			if (left <= 0) {
				find_pending(client, stream_id)->state = PENDING_ABANDONED;
				return -ETIMEDOUT;
			}
			wait_ms = (int)left;
		}
		if (poll(&pfd, 1, wait_ms) < 0 && errno != EINTR)
			return -errno;
		if (pfd.revents)
			ttrpc_client_receive(client);	/* errors stick; take reports them */
	}
}

int ttrpc_client_call(struct ttrpc_client *client, const char *service, const char *method,
		      const void *payload, size_t len, struct ttrpc_result *result,
		      int timeout_ms)
{
	uint32_t stream_id;
	int ret = ttrpc_client_send(client, service, method, payload, len, &stream_id);

	if (ret < 0)
		return ret;
	return ttrpc_client_wait(client, stream_id, result, timeout_ms);
}

int ttrpc_client_call_message(struct ttrpc_client *client, const char *service,
			      const char *method, const ProtobufCMessage *request,
			      struct ttrpc_result *result, int timeout_ms)
{
	size_t len = protobuf_c_message_get_packed_size(request);
	uint8_t *payload;
	int ret;

	if (len > TTRPC_MAX_DATA)
		return -EMSGSIZE;
	payload = malloc(len ? len : 1);
	if (!payload)
		return -ENOMEM;
	protobuf_c_message_pack(request, payload);
	ret = ttrpc_client_call(client, service, method, payload, len, result, timeout_ms);
	free(payload);
	return ret;
}
