/*
 * Connections on the stream port: accepted, named by their first line,
 * kept until a Process.Start claims them (or their time is up), and
 * closed when the last role using them is done. See control_internal.h.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "guest-init/control_internal.h"
#include "guest-init/guest_init.h"

static void stream_drop(struct control *ctl, struct stream *stream, const char *why)
{
	(void)ctl;
	if (stream->state == STREAM_READING_ID)
		report("stream: closing a connection that sent no valid id: %s", why);
	else
		report("stream %s: closing: %s", stream->id, why);
	stream->dead = true;
}

void streams_accept(struct control *ctl, int listen_fd)
{
	for (;;) {
		int fd = accept4(listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		struct stream *stream;

		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				report("stream: accept: %s", strerror(errno));
			return;
		}
		if (ctl->pending_stream_count == CONTROL_MAX_PENDING_STREAMS) {
			report("stream: %d connections already wait for a process; closing the new one",
			       CONTROL_MAX_PENDING_STREAMS);
			close(fd);
			continue;
		}
		stream = calloc(1, sizeof(*stream));
		if (!stream) {
			report("stream: out of memory");
			close(fd);
			continue;
		}
		stream->fd = fd;
		stream->state = STREAM_READING_ID;
		stream->deadline_ms = ctl->now_ms + GUEST_STREAM_UNCLAIMED_TIMEOUT_MS;
		TAILQ_INSERT_TAIL(&ctl->streams, stream, link);
		ctl->pending_stream_count++;
	}
}

struct stream *stream_find_unclaimed(struct control *ctl, const char *id)
{
	struct stream *stream;

	TAILQ_FOREACH(stream, &ctl->streams, link)
		if (!stream->dead && stream->state == STREAM_UNCLAIMED && !strcmp(stream->id, id))
			return stream;
	return NULL;
}

/* Reads the "ID\n" line; bytes after it are kept as the start of stdin. */
static void stream_read_id(struct control *ctl, void *obj, short revents)
{
	struct stream *stream = obj;
	uint8_t *newline;
	size_t id_len;
	ssize_t n;

	(void)revents;
	if (stream->dead)
		return;
	n = read(stream->fd, stream->line + stream->line_len, sizeof(stream->line) - stream->line_len);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		return;
	if (n <= 0) {
		stream_drop(ctl, stream, n < 0 ? strerror(errno) : "end of file before the id");
		return;
	}
	stream->line_len += (size_t)n;
	newline = memchr(stream->line, '\n', stream->line_len);
	if (!newline) {
		if (stream->line_len == sizeof(stream->line))
			stream_drop(ctl, stream, "no \"\\n\" within the longest id");
		return;
	}
	id_len = (size_t)(newline - stream->line);
	memcpy(stream->id, stream->line, id_len);
	stream->id[id_len] = '\0';
	if (strlen(stream->id) != id_len || !control_valid_name(stream->id, GUEST_STREAM_ID_MAX)) {
		stream->id[0] = '\0';
		stream_drop(ctl, stream, "the id is not 1-128 bytes of [A-Za-z0-9._-]");
		return;
	}
	if (stream_find_unclaimed(ctl, stream->id)) {
		stream_drop(ctl, stream, "a stream of that id is already waiting");
		return;
	}
	stream->early_start = id_len + 1;
	stream->state = STREAM_UNCLAIMED;
	processes_stream_arrived(ctl);
}

void streams_collect(struct control *ctl)
{
	struct stream *stream;

	TAILQ_FOREACH(stream, &ctl->streams, link) {
		if (stream->dead || stream->state == STREAM_CLAIMED)
			continue;
		/* An unclaimed stream is not read: its bytes are its stdin. */
		if (stream->state == STREAM_READING_ID)
			control_poll(ctl, stream->fd, POLLIN, stream_read_id, stream);
		control_wake_at(ctl, stream->deadline_ms);
	}
}

void streams_timers(struct control *ctl)
{
	struct stream *stream;

	TAILQ_FOREACH(stream, &ctl->streams, link)
		if (!stream->dead && stream->state != STREAM_CLAIMED &&
		    ctl->now_ms >= stream->deadline_ms)
			stream_drop(ctl, stream, "no process claimed it in time");
}

void stream_claim(struct control *ctl, struct stream *stream, unsigned int roles)
{
	stream->state = STREAM_CLAIMED;
	stream->roles = roles;
	ctl->pending_stream_count--;
}

void stream_release(struct stream *stream, unsigned int role)
{
	stream->roles &= ~role;
	if (!stream->roles)
		stream->dead = true;
}

static void stream_free(struct control *ctl, struct stream *stream)
{
	TAILQ_REMOVE(&ctl->streams, stream, link);
	if (stream->state != STREAM_CLAIMED)
		ctl->pending_stream_count--;
	close(stream->fd);
	free(stream);
}

void streams_reclaim(struct control *ctl)
{
	struct stream *stream, *next;

	for (stream = TAILQ_FIRST(&ctl->streams); stream; stream = next) {
		next = TAILQ_NEXT(stream, link);
		if (stream->dead)
			stream_free(ctl, stream);
	}
}

void streams_free_all(struct control *ctl)
{
	while (!TAILQ_EMPTY(&ctl->streams))
		stream_free(ctl, TAILQ_FIRST(&ctl->streams));
}
