/*
 * A process's stdio relays between containerd's FIFOs and the guest's
 * streams. See stdio.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "shim/stdio.h"

#define READER_RETRY_MS 5

#define RELAY_BUFFER 65536

enum { IN, OUT, ERR };

struct relay {
	int host_fd;		/* containerd's end, -1 if none */
	int stream_fd;		/* the guest stream, -1 if none */
	pthread_t thread;
	bool running;
};

struct stdio {
	struct relay relays[3];
	int wake_fd;		/* eventfd: stdin's end (CloseIO) or stop */
	bool stopping;		/* written before wake_fd, read after */
	bool output_waited;
};

static int write_all(int fd, const char *buf, size_t len)
{
	while (len) {
		ssize_t n = write(fd, buf, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

static int send_all(int fd, const char *buf, size_t len)
{
	while (len) {
		ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Guest stream -> containerd, until the guest closes the stream. */
static void *output_relay(void *arg)
{
	struct relay *r = arg;
	char *buf = malloc(RELAY_BUFFER);
	bool discard = false;

	if (!buf)
		return NULL;
	for (;;) {
		ssize_t n = read(r->stream_fd, buf, RELAY_BUFFER);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		/* A reader that went away: keep draining, drop the bytes. */
		if (!discard && write_all(r->host_fd, buf, (size_t)n) < 0)
			discard = true;
	}
	free(buf);
	return NULL;
}

/*
 * containerd -> guest stream, until CloseIO: then what the FIFO holds is
 * forwarded and the stream closed, which is the process's end of input.
 */
static void *input_relay(void *arg)
{
	struct stdio *io = arg;
	struct relay *r = &io->relays[IN];
	char *buf = malloc(RELAY_BUFFER);
	bool ending = false;

	while (buf) {
		struct pollfd fds[2] = {
			{ .fd = r->host_fd, .events = POLLIN },
			{ .fd = io->wake_fd, .events = POLLIN },
		};
		ssize_t n;

		if (!ending && poll(fds, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (!ending && (fds[1].revents & POLLIN)) {
			uint64_t count;

			if (read(io->wake_fd, &count, sizeof(count)) < 0) {
				/* Another thread took the count: the flag still tells. */
			}
			if (__atomic_load_n(&io->stopping, __ATOMIC_ACQUIRE))
				break;
			ending = true;
		}
		if (!ending && !(fds[0].revents & (POLLIN | POLLHUP)))
			continue;
		n = read(r->host_fd, buf, RELAY_BUFFER);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			if (ending || (n < 0 && errno != EAGAIN))
				break;
			continue;
		}
		if (send_all(r->stream_fd, buf, (size_t)n) < 0)
			break;
	}
	free(buf);
	/* The guest sees the end of input. */
	shutdown(r->stream_fd, SHUT_WR);
	return NULL;
}

/*
 * Opens an output end without blocking. A FIFO's reader may come a moment
 * after the request: containerd's client opens its read ends in
 * goroutines, with blocking opens that return once a writer comes. Until
 * that open has begun the FIFO has no reader (ENXIO), so it is retried
 * for up to STDIO_READER_WAIT_MS.
 */
static int open_for_writing(const char *path)
{
	for (int waited = 0;; waited += READER_RETRY_MS) {
		int fd = open(path, O_WRONLY | O_NONBLOCK | O_CLOEXEC);

		if (fd >= 0 || errno != ENXIO || waited >= STDIO_READER_WAIT_MS)
			return fd;
		poll(NULL, 0, READER_RETRY_MS);
	}
}

/*
 * containerd's end of one stdio string: -1 with @err on error, -2 for
 * none ("").
 */
static int open_host_end(const char *what, const char *spec, bool input, char *err,
			 size_t err_size)
{
	const char *path = spec;
	struct stat st;
	int fd;

	if (!spec || !spec[0])
		return -2;
	if (!strncmp(spec, "binary://", 9)) {
		snprintf(err, err_size, "%s %s: binary:// loggers are not supported", what, spec);
		return -1;
	}
	if (!strncmp(spec, "file://", 7)) {
		path = spec + 7;
		if (input || path[0] != '/') {
			snprintf(err, err_size, "%s %s: not usable here", what, spec);
			return -1;
		}
		fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
	} else if (path[0] != '/') {
		snprintf(err, err_size, "%s %s: not an absolute path", what, spec);
		return -1;
	} else if (input) {
		/* Read-write: the client closing its end is no end of input. */
		fd = open(path, O_RDWR | O_NONBLOCK | O_CLOEXEC);
	} else {
		fd = open_for_writing(path);
		if (fd >= 0 && fstat(fd, &st) == 0 && S_ISFIFO(st.st_mode))
			fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
	}
	if (fd < 0) {
		snprintf(err, err_size, "%s %s: %s", what, path,
			 errno == ENXIO ? "a FIFO nobody reads" : strerror(errno));
		return -1;
	}
	return fd;
}

static void close_relay_fds(struct relay *r)
{
	if (r->host_fd >= 0)
		close(r->host_fd);
	if (r->stream_fd >= 0)
		close(r->stream_fd);
	r->host_fd = r->stream_fd = -1;
}

struct stdio *stdio_open(const struct vm *vm, const char *process_id,
			 const struct stdio_paths *paths, char ids[3][STDIO_STREAM_ID_MAX],
			 char *err, size_t err_size)
{
	static const char *const what[3] = { "stdin", "stdout", "stderr" };
	static const char *const suffix[3] = { "in", "out", "err" };
	const char *specs[3] = { paths->stdin_path, paths->stdout_path, paths->stderr_path };
	struct stdio *io = calloc(1, sizeof(*io));

	if (!io) {
		snprintf(err, err_size, "out of memory");
		return NULL;
	}
	io->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	for (int i = 0; i < 3; i++) {
		io->relays[i].host_fd = io->relays[i].stream_fd = -1;
		ids[i][0] = '\0';
	}
	if (io->wake_fd < 0) {
		snprintf(err, err_size, "eventfd: %s", strerror(errno));
		goto fail;
	}
	if (paths->terminal && specs[ERR] && specs[ERR][0]) {
		snprintf(err, err_size, "stderr %s: a terminal has no stderr", specs[ERR]);
		goto fail;
	}
	for (int i = 0; i < 3; i++) {
		struct relay *r = &io->relays[i];
		int fd = open_host_end(what[i], specs[i], i == IN, err, err_size);

		if (fd == -1)
			goto fail;
		if (fd == -2)
			continue;
		r->host_fd = fd;
		snprintf(ids[i], STDIO_STREAM_ID_MAX, "%s.%s", process_id, suffix[i]);
		r->stream_fd = vm_open_stream(vm, ids[i], err, err_size);
		if (r->stream_fd < 0)
			goto fail;
	}
	for (int i = 0; i < 3; i++) {
		struct relay *r = &io->relays[i];

		if (r->stream_fd < 0)
			continue;
		if (pthread_create(&r->thread, NULL, i == IN ? input_relay : output_relay,
				   i == IN ? (void *)io : (void *)r)) {
			snprintf(err, err_size, "cannot start a stdio thread");
			goto fail;
		}
		r->running = true;
	}
	return io;
fail:
	stdio_free(io);
	return NULL;
}

void stdio_close_stdin(struct stdio *io)
{
	uint64_t one = 1;

	if (io && io->relays[IN].running && write(io->wake_fd, &one, sizeof(one)) < 0) {
		/* The counter cannot overflow from CloseIO calls. */
	}
}

void stdio_wait_output(struct stdio *io)
{
	for (int i = OUT; i <= ERR; i++) {
		struct relay *r = &io->relays[i];

		if (r->running)
			pthread_join(r->thread, NULL);
		r->running = false;
		close_relay_fds(r);
	}
	io->output_waited = true;
}

void stdio_free(struct stdio *io)
{
	uint64_t one = 1;

	if (!io)
		return;
	__atomic_store_n(&io->stopping, true, __ATOMIC_RELEASE);
	if (io->wake_fd >= 0 && write(io->wake_fd, &one, sizeof(one)) < 0) {
		/* Nothing waits on it if this fails: no relay runs. */
	}
	for (int i = 0; i < 3; i++) {
		struct relay *r = &io->relays[i];

		/* Unblocks a relay still reading or writing a live guest stream. */
		if (r->running && r->stream_fd >= 0)
			shutdown(r->stream_fd, SHUT_RDWR);
		if (r->running)
			pthread_join(r->thread, NULL);
		r->running = false;
		close_relay_fds(r);
	}
	if (io->wake_fd >= 0)
		close(io->wake_fd);
	free(io);
}
