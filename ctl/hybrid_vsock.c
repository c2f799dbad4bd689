/* Hybrid vsock connections from the host; see ctl/hybrid_vsock.h. */
#include "ctl/hybrid_vsock.h"

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static long long monotonic_ms(void)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return now.tv_sec * 1000LL + now.tv_nsec / 1000000;
}

static int fail(int ret, char *err, size_t err_size, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static int fail(int ret, char *err, size_t err_size, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, err_size, fmt, ap);
	va_end(ap);
	return ret;
}

/*
 * Reads the answer line byte by byte: what follows it already belongs to
 * the guest's stream. Returns its length without "\n", 0 if the monitor
 * closed the connection first, or a negative errno.
 */
static int read_line(int fd, char *line, size_t size, long long deadline)
{
	size_t len = 0;

	while (len + 1 < size) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		long long left = deadline - monotonic_ms();
		ssize_t n;

		if (left <= 0)
			return -ETIMEDOUT;
		if (poll(&pfd, 1, (int)left) < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (!pfd.revents)
			continue;
		n = read(fd, line + len, 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return errno == ECONNRESET ? 0 : -errno;
		if (n == 0)
			return len ? -EPROTO : 0;
		if (line[len] == '\n') {
			line[len] = '\0';
			return (int)len;
		}
		len++;
	}
	line[len] = '\0';
	return -EPROTO;
}

int hybrid_vsock_connect(const char *path, unsigned int port, int timeout_ms,
			 char *err, size_t err_size)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	long long deadline = monotonic_ms() + timeout_ms;
	char request[32], line[HYBRID_VSOCK_LINE_MAX];
	unsigned long host_port;
	int fd, len, ret;
	ssize_t n;
	char end;

	if (strlen(path) >= sizeof(addr.sun_path))
		return fail(-ENAMETOOLONG, err, err_size, "%s: the socket path is too long", path);
	strcpy(addr.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return fail(-errno, err, err_size, "socket: %s", strerror(errno));
	if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
		ret = -errno;
		close(fd);
		if (ret == -ENOENT || ret == -ECONNREFUSED)
			return fail(ret, err, err_size,
				    "%s: %s (is the VM running, with a vsock device on this socket?)",
				    path, strerror(-ret));
		return fail(ret, err, err_size, "connect %s: %s", path, strerror(-ret));
	}
	len = snprintf(request, sizeof(request), "CONNECT %u\n", port);
	n = send(fd, request, (size_t)len, MSG_NOSIGNAL);
	if (n != len) {
		ret = n < 0 ? -errno : -EIO;
		close(fd);
		return fail(ret, err, err_size, "%s: sending CONNECT: %s", path, strerror(-ret));
	}
	ret = read_line(fd, line, sizeof(line), deadline);
	if (ret == 0) {
		close(fd);
		return fail(-ECONNRESET, err, err_size,
			    "%s: the VM refused the connection to guest port %u (nothing listens there)",
			    path, port);
	}
	if (ret == -ETIMEDOUT) {
		close(fd);
		return fail(ret, err, err_size, "%s: no answer to CONNECT %u within %d ms", path, port,
			    timeout_ms);
	}
	if (ret < 0 && ret != -EPROTO) {
		close(fd);
		return fail(ret, err, err_size, "%s: reading the answer to CONNECT: %s", path,
			    strerror(-ret));
	}
	if (ret < 0 || sscanf(line, "OK %lu%c", &host_port, &end) != 1) {
		close(fd);
		return fail(-EPROTO, err, err_size, "%s: unexpected answer to CONNECT %u: \"%s\"",
			    path, port, line);
	}
	return fd;
}
