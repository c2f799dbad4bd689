/*
 * hybrid-bridge: a stand-in for the monitor's hybrid vsock device in host
 * tests. Listens on a Unix socket like the monitor does; each client
 * writes "CONNECT <port>\n" and gets "OK <host port>\n" and a byte stream
 * to the Unix socket mapped to that port, or is disconnected when no
 * mapping exists or nothing listens there (as a guest's refusal looks).
 * End of file is passed on as a half-close (shutdown SHUT_WR) in each
 * direction.
 *
 *   hybrid-bridge SOCKET PORT=PATH...
 *
 * Runs until killed. Single-threaded, one poll() loop.
 */
#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define MAX_PORTS 8
#define MAX_CLIENTS 64
#define LINE_MAX_BYTES 64
#define BUFFER_SIZE 65536

struct direction {
	int from, to;
	char buf[BUFFER_SIZE];
	size_t start, len;
	bool eof, done;
};

struct client {
	bool used, connected;
	int fd;				/* the host side */
	char line[LINE_MAX_BYTES];
	size_t line_len;
	struct direction up, down;	/* host to guest, guest to host */
};

static struct {
	unsigned int port;
	const char *path;
} ports[MAX_PORTS];
static size_t port_count;
static struct client clients[MAX_CLIENTS];
static unsigned long next_host_port = 1u << 30;

static int listen_unix(const char *path)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0 || strlen(path) >= sizeof(addr.sun_path))
		return -1;
	strcpy(addr.sun_path, path);
	unlink(path);
	if (bind(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0 || listen(fd, 64) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static int connect_unix(const char *path)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -1;
	strncpy(addr.sun_path, path, sizeof(addr.sun_path) - 1);
	if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static void client_close(struct client *c)
{
	close(c->fd);
	if (c->connected)
		close(c->up.to);
	memset(c, 0, sizeof(*c));
}

/* The CONNECT line is complete: connect to the mapped socket, or refuse. */
static void client_connect(struct client *c)
{
	unsigned int port;
	char answer[64], end;
	int guest = -1;

	if (sscanf(c->line, "CONNECT %u%c", &port, &end) == 1) {
		for (size_t i = 0; i < port_count; i++)
			if (ports[i].port == port)
				guest = connect_unix(ports[i].path);
	}
	if (guest < 0) {
		client_close(c);
		return;
	}
	snprintf(answer, sizeof(answer), "OK %lu\n", next_host_port++);
	if (send(c->fd, answer, strlen(answer), MSG_NOSIGNAL) != (ssize_t)strlen(answer)) {
		close(guest);
		client_close(c);
		return;
	}
	c->connected = true;
	c->up = (struct direction){ .from = c->fd, .to = guest };
	c->down = (struct direction){ .from = guest, .to = c->fd };
}

static void client_read_line(struct client *c)
{
	/* Byte by byte: whatever follows the line belongs to the stream. */
	ssize_t n = read(c->fd, c->line + c->line_len, 1);

	if (n <= 0) {
		client_close(c);
		return;
	}
	if (c->line[c->line_len] == '\n') {
		c->line[c->line_len] = '\0';
		client_connect(c);
		return;
	}
	if (++c->line_len == LINE_MAX_BYTES - 1)
		client_close(c);
}

static void direction_step(struct direction *d, short revents_from, short revents_to)
{
	ssize_t n;

	if (revents_to && d->len) {
		n = send(d->to, d->buf + d->start, d->len, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n > 0) {
			d->start += (size_t)n;
			d->len -= (size_t)n;
		} else if (n < 0 && errno != EAGAIN) {
			d->done = true;
			return;
		}
	}
	if (revents_from && !d->len && !d->eof) {
		n = recv(d->from, d->buf, sizeof(d->buf), MSG_DONTWAIT);
		if (n > 0) {
			d->start = 0;
			d->len = (size_t)n;
		} else if (n == 0 || errno != EAGAIN) {
			d->eof = true;
		}
	}
	if (d->eof && !d->len && !d->done) {
		shutdown(d->to, SHUT_WR);
		d->done = true;
	}
}

int main(int argc, char **argv)
{
	int listen_fd;

	if (argc < 3) {
		fprintf(stderr, "usage: hybrid-bridge SOCKET PORT=PATH...\n");
		return 2;
	}
	for (int i = 2; i < argc && port_count < MAX_PORTS; i++) {
		char *eq = strchr(argv[i], '=');

		if (!eq) {
			fprintf(stderr, "hybrid-bridge: expected PORT=PATH, got %s\n", argv[i]);
			return 2;
		}
		ports[port_count].port = (unsigned int)strtoul(argv[i], NULL, 10);
		ports[port_count++].path = eq + 1;
	}
	listen_fd = listen_unix(argv[1]);
	if (listen_fd < 0) {
		fprintf(stderr, "hybrid-bridge: listen on %s: %s\n", argv[1], strerror(errno));
		return 1;
	}
	for (;;) {
		struct pollfd pfds[1 + MAX_CLIENTS * 4];
		struct {
			struct client *c;
			struct direction *d;
			bool from;
		} what[1 + MAX_CLIENTS * 4];
		size_t n = 0;

		pfds[n++] = (struct pollfd){ .fd = listen_fd, .events = POLLIN };
		for (int i = 0; i < MAX_CLIENTS; i++) {
			struct client *c = &clients[i];
			struct direction *dirs[2] = { &c->up, &c->down };

			if (!c->used)
				continue;
			if (!c->connected) {
				what[n].c = c;
				what[n].d = NULL;
				pfds[n++] = (struct pollfd){ .fd = c->fd, .events = POLLIN };
				continue;
			}
			for (int j = 0; j < 2; j++) {
				struct direction *d = dirs[j];

				if (d->done)
					continue;
				what[n] = (typeof(what[0])){ c, d, d->len == 0 };
				pfds[n++] = (struct pollfd){
					.fd = d->len ? d->to : d->from,
					.events = d->len ? POLLOUT : POLLIN,
				};
			}
		}
		if (poll(pfds, n, -1) < 0 && errno != EINTR)
			return 1;
		if (pfds[0].revents) {
			int fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);

			for (int i = 0; fd >= 0 && i < MAX_CLIENTS; i++) {
				if (!clients[i].used) {
					clients[i] = (struct client){ .used = true, .fd = fd };
					fd = -1;
				}
			}
			if (fd >= 0)
				close(fd);
		}
		for (size_t i = 1; i < n; i++) {
			struct client *c = what[i].c;

			if (!pfds[i].revents || !c->used)
				continue;
			if (!what[i].d) {
				if (!c->connected)
					client_read_line(c);
				continue;
			}
			direction_step(what[i].d, what[i].from ? pfds[i].revents : 0,
				       what[i].from ? 0 : pfds[i].revents);
			/* A broken write ends both directions. */
			if (what[i].d->done && !what[i].d->eof)
				c->up.done = c->down.done = true;
			if (c->up.done && c->down.done)
				client_close(c);
		}
	}
}
