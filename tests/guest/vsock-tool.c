/*
 * vsock-tool: both ends of the vsock end-to-end tests (tests/e2e/vsock.test).
 * Built static: the guest runs it from a test disk, not from the product
 * root image; the host runs the same binary against the hybrid bridge's
 * Unix sockets.
 *
 *   gen SEED SIZE               SIZE deterministic bytes on stdout
 *   connect CID PORT            AF_VSOCK: connect, then copy (see below)
 *   listen PORT                 AF_VSOCK: accept one connection, then copy
 *   unix-listen PATH [--pause-after BYTES --pause SECONDS --marker FILE]
 *                               host: accept one connection on PATH, then
 *                               copy; after BYTES received, create FILE,
 *                               stop reading for SECONDS, remove FILE
 *   hybrid-connect PATH PORT [--retry SECONDS]
 *                               host: CONNECT PORT through the bridge at
 *                               PATH (retrying while the guest refuses or
 *                               the bridge is not there yet), then copy
 *   hybrid-raw PATH TEXT        host: sends TEXT ("\n" for a newline) to the
 *                               bridge at PATH and prints what comes back
 *                               before it closes ("closed: REPLY"); exit 3
 *                               if it stays open 30 seconds
 *   flood-client CID PORT N SIZE
 *                               guest: opens N connections at once, sends
 *                               SIZE bytes on each, checks each reply
 *   flood-server PATH N         host: serves N connections at once, each
 *                               answered "BYTES SHA256\n" after its EOF
 *   serve PORT N                guest, for bench/lib/vsock.py: AF_VSOCK:
 *                               serves N connections one after another,
 *                               each as its first line asks: "sink" reads
 *                               to EOF and answers "BYTES\n"; "source
 *                               BYTES" writes BYTES bytes and closes;
 *                               "echo" sends back what it reads until EOF
 *
 * "Copy" moves stdin to the socket (then shuts down its write side) and
 * the socket to stdout, until both are at their end. Errors go to stderr
 * with exit status 1.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include <linux/vm_sockets.h>

#define BUF_SIZE (64 * 1024)

static void __attribute__((format(printf, 1, 2), noreturn)) die(const char *fmt, ...)
{
	va_list ap;

	fputs("vsock-tool: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

static unsigned long long number(const char *text)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(text, &end, 0);
	if (errno || end == text || *end)
		die("'%s' is not a number", text);
	return v;
}

/* ---- SHA-256 (FIPS 180-4), for the flood's per-connection checks. */

struct sha256 {
	uint32_t h[8];
	uint8_t block[64];
	size_t fill;
	uint64_t bytes;
};

static const uint32_t sha_k[64] = {
	0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1,
	0x923f82a4, 0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3,
	0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786,
	0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
	0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147,
	0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13,
	0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
	0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
	0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a,
	0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208,
	0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

static uint32_t ror(uint32_t x, int n)
{
	return x >> n | x << (32 - n);
}

static void sha256_block(struct sha256 *s, const uint8_t *p)
{
	uint32_t w[64], v[8], t1, t2;

	for (int i = 0; i < 16; i++)
		w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 |
		       (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
	for (int i = 16; i < 64; i++)
		w[i] = w[i - 16] + (ror(w[i - 15], 7) ^ ror(w[i - 15], 18) ^ w[i - 15] >> 3) +
		       w[i - 7] + (ror(w[i - 2], 17) ^ ror(w[i - 2], 19) ^ w[i - 2] >> 10);
	memcpy(v, s->h, sizeof(v));
	for (int i = 0; i < 64; i++) {
		t1 = v[7] + (ror(v[4], 6) ^ ror(v[4], 11) ^ ror(v[4], 25)) +
		     ((v[4] & v[5]) ^ (~v[4] & v[6])) + sha_k[i] + w[i];
		t2 = (ror(v[0], 2) ^ ror(v[0], 13) ^ ror(v[0], 22)) +
		     ((v[0] & v[1]) ^ (v[0] & v[2]) ^ (v[1] & v[2]));
		memmove(v + 1, v, 7 * sizeof(v[0]));
		v[4] += t1;
		v[0] = t1 + t2;
	}
	for (int i = 0; i < 8; i++)
		s->h[i] += v[i];
}

static void sha256_init(struct sha256 *s)
{
	static const uint32_t h0[8] = {
		0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
		0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
	};

	memcpy(s->h, h0, sizeof(h0));
	s->fill = 0;
	s->bytes = 0;
}

static void sha256_update(struct sha256 *s, const void *data, size_t len)
{
	const uint8_t *p = data;

	s->bytes += len;
	while (len) {
		size_t take = 64 - s->fill < len ? 64 - s->fill : len;

		memcpy(s->block + s->fill, p, take);
		s->fill += take;
		p += take;
		len -= take;
		if (s->fill == 64) {
			sha256_block(s, s->block);
			s->fill = 0;
		}
	}
}

static void sha256_hex(struct sha256 *s, char out[65])
{
	uint64_t bits = s->bytes * 8;
	uint8_t pad = 0x80, len_be[8];

	sha256_update(s, &pad, 1);
	pad = 0;
	while (s->fill != 56)
		sha256_update(s, &pad, 1);
	for (int i = 0; i < 8; i++)
		len_be[i] = (uint8_t)(bits >> (56 - 8 * i));
	sha256_update(s, len_be, 8);
	for (int i = 0; i < 8; i++)
		sprintf(out + 8 * i, "%08x", s->h[i]);
}

/* ---- Deterministic data: xorshift64*, seeded. */

struct gen {
	uint64_t x;
};

static void gen_init(struct gen *g, uint64_t seed)
{
	g->x = seed * 0x9e3779b97f4a7c15ull + 1;
}

static void gen_fill(struct gen *g, uint8_t *buf, size_t len)
{
	for (size_t i = 0; i < len; i += 8) {
		uint64_t v;

		g->x ^= g->x >> 12;
		g->x ^= g->x << 25;
		g->x ^= g->x >> 27;
		v = g->x * 0x2545f4914f6cdd1dull;
		memcpy(buf + i, &v, len - i < 8 ? len - i : 8);
	}
}

static void write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len) {
		ssize_t n = write(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			die("write: %s", n ? strerror(errno) : "wrote nothing");
		p += n;
		len -= (size_t)n;
	}
}

static int cmd_gen(uint64_t seed, uint64_t size)
{
	static uint8_t buf[BUF_SIZE];
	struct gen g;

	gen_init(&g, seed);
	while (size) {
		size_t n = size < sizeof(buf) ? size : sizeof(buf);

		gen_fill(&g, buf, n);
		write_all(STDOUT_FILENO, buf, n);
		size -= n;
	}
	return 0;
}

/* ---- Copying between stdin/stdout and a socket. */

struct pause {
	uint64_t after;             /* 0: never */
	unsigned int seconds;
	const char *marker;
};

static void copy(int sock, const struct pause *pause)
{
	static uint8_t buf[BUF_SIZE];
	bool in_open = true, sock_open = true, paused = false;
	uint64_t received = 0;

	while (in_open || sock_open) {
		struct pollfd fds[2] = {
			{ .fd = in_open ? STDIN_FILENO : -1, .events = POLLIN },
			{ .fd = sock_open ? sock : -1, .events = POLLIN },
		};
		ssize_t n;

		if (poll(fds, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			die("poll: %s", strerror(errno));
		}
		if (fds[0].revents) {
			n = read(STDIN_FILENO, buf, sizeof(buf));
			if (n < 0)
				die("read stdin: %s", strerror(errno));
			if (n == 0) {
				in_open = false;
				if (shutdown(sock, SHUT_WR) < 0 && errno != ENOTCONN)
					die("shutdown: %s", strerror(errno));
			} else {
				write_all(sock, buf, (size_t)n);
			}
		}
		if (fds[1].revents) {
			n = read(sock, buf, sizeof(buf));
			if (n < 0)
				die("read socket: %s", strerror(errno));
			if (n == 0) {
				sock_open = false;
			} else {
				write_all(STDOUT_FILENO, buf, (size_t)n);
				received += (uint64_t)n;
			}
			if (pause && pause->after && !paused && received >= pause->after) {
				int fd = open(pause->marker, O_WRONLY | O_CREAT | O_TRUNC, 0644);

				if (fd < 0)
					die("%s: %s", pause->marker, strerror(errno));
				close(fd);
				paused = true;
				sleep(pause->seconds);
				unlink(pause->marker);
			}
		}
	}
	close(sock);
}

static int vsock_connect(uint64_t cid, uint32_t port)
{
	struct sockaddr_vm addr = {
		.svm_family = AF_VSOCK, .svm_cid = (unsigned int)cid, .svm_port = port,
	};
	int fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		die("socket(AF_VSOCK): %s", strerror(errno));
	if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0)
		die("connect to %llu:%u: %s", (unsigned long long)cid, port,
		    strerror(errno));
	return fd;
}

static int cmd_listen(uint32_t port)
{
	struct sockaddr_vm addr = {
		.svm_family = AF_VSOCK, .svm_cid = VMADDR_CID_ANY, .svm_port = port,
	};
	int fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0), conn;

	if (fd < 0)
		die("socket(AF_VSOCK): %s", strerror(errno));
	if (bind(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0 || listen(fd, 16) < 0)
		die("listen on port %u: %s", port, strerror(errno));
	conn = accept(fd, NULL, NULL);
	if (conn < 0)
		die("accept: %s", strerror(errno));
	close(fd);
	copy(conn, NULL);
	return 0;
}

static struct sockaddr_un unix_addr(const char *path)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };

	if (strlen(path) >= sizeof(addr.sun_path))
		die("%s: path too long", path);
	strcpy(addr.sun_path, path);
	return addr;
}

static int unix_listener(const char *path, int backlog)
{
	struct sockaddr_un addr = unix_addr(path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		die("socket: %s", strerror(errno));
	unlink(path);
	if (bind(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0 || listen(fd, backlog) < 0)
		die("listen on %s: %s", path, strerror(errno));
	return fd;
}

static int cmd_unix_listen(const char *path, const struct pause *pause)
{
	int fd = unix_listener(path, 16), conn = accept(fd, NULL, NULL);

	if (conn < 0)
		die("accept: %s", strerror(errno));
	close(fd);
	unlink(path);
	copy(conn, pause);
	return 0;
}

/*
 * One attempt: connect to the bridge and do the handshake. Returns the
 * socket, or -1 if the bridge is not there or closed without "OK".
 */
static int hybrid_try(const char *path, uint32_t port)
{
	struct sockaddr_un addr = unix_addr(path);
	char line[64];
	size_t len = 0;
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		die("socket: %s", strerror(errno));
	if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
		close(fd);
		return -1;
	}
	len = (size_t)snprintf(line, sizeof(line), "CONNECT %u\n", port);
	write_all(fd, line, len);
	/* Byte by byte: what follows the line is the guest's data. */
	for (len = 0; len < sizeof(line) - 1; len++) {
		if (read(fd, line + len, 1) != 1) {
			close(fd);
			return -1;
		}
		if (line[len] == '\n')
			break;
	}
	line[len] = '\0';
	if (strncmp(line, "OK ", 3))
		die("bridge answered \"%s\"", line);
	fprintf(stderr, "vsock-tool: %s\n", line);
	return fd;
}

static int cmd_hybrid_connect(const char *path, uint32_t port, unsigned int retry_s)
{
	time_t give_up = time(NULL) + retry_s;
	int fd;

	while ((fd = hybrid_try(path, port)) < 0) {
		if (time(NULL) >= give_up)
			die("%s: no connection to port %u", path, port);
		usleep(100000);
	}
	copy(fd, NULL);
	return 0;
}

static void still_open(int sig)
{
	(void)sig;
	_exit(3);
}

static int cmd_hybrid_raw(const char *path, const char *text)
{
	struct sockaddr_un addr = unix_addr(path);
	char out[256], reply[256];
	size_t len = 0, got = 0;
	ssize_t n;
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0 || connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0)
		die("%s: %s", path, strerror(errno));
	for (const char *p = text; *p && len < sizeof(out); p++) {
		if (p[0] == '\\' && p[1] == 'n') {
			out[len++] = '\n';
			p++;
		} else {
			out[len++] = *p;
		}
	}
	write_all(fd, out, len);
	signal(SIGALRM, still_open);
	alarm(30);
	while ((n = read(fd, reply + got, sizeof(reply) - 1 - got)) > 0)
		got += (size_t)n;
	reply[got] = '\0';
	printf("closed: %s\n", reply);
	return 0;
}

/* ---- Many connections at once. */

static int cmd_flood_client(uint64_t cid, uint32_t port, unsigned int n, size_t size)
{
	uint8_t *buf = malloc(size ? size : 1);
	int *fds = calloc(n, sizeof(*fds));
	unsigned int ok = 0;

	if (!buf || !fds)
		die("out of memory");
	/* All connected before any byte moves: n live connections. */
	for (unsigned int i = 0; i < n; i++)
		fds[i] = vsock_connect(cid, port);
	for (unsigned int i = 0; i < n; i++) {
		struct gen g;

		gen_init(&g, i);
		gen_fill(&g, buf, size);
		write_all(fds[i], buf, size);
		if (shutdown(fds[i], SHUT_WR) < 0)
			die("shutdown: %s", strerror(errno));
	}
	for (unsigned int i = 0; i < n; i++) {
		char reply[128], expected[128], hex[65];
		struct sha256 sha;
		struct gen g;
		size_t len = 0;
		ssize_t r;

		while ((r = read(fds[i], reply + len, sizeof(reply) - 1 - len)) > 0)
			len += (size_t)r;
		if (r < 0)
			die("connection %u: read: %s", i, strerror(errno));
		reply[len] = '\0';
		gen_init(&g, i);
		gen_fill(&g, buf, size);
		sha256_init(&sha);
		sha256_update(&sha, buf, size);
		sha256_hex(&sha, hex);
		snprintf(expected, sizeof(expected), "%zu %s\n", size, hex);
		if (strcmp(reply, expected))
			fprintf(stderr, "vsock-tool: connection %u: got \"%s\", want \"%s\"\n",
				i, reply, expected);
		else
			ok++;
		close(fds[i]);
	}
	printf("flood: %u of %u connections ok\n", ok, n);
	return ok == n ? 0 : 1;
}

struct flood_conn {
	int fd;
	struct sha256 sha;
};

static int cmd_flood_server(const char *path, unsigned int n)
{
	int listener = unix_listener(path, (int)n);
	struct pollfd *fds = calloc(n + 1, sizeof(*fds));
	struct flood_conn *conns = calloc(n + 1, sizeof(*conns));
	unsigned int accepted = 0, served = 0, open_now = 0, max_open = 0;
	static uint8_t buf[BUF_SIZE];

	if (!fds || !conns)
		die("out of memory");
	while (served < n) {
		unsigned int nfds = 0;

		fds[nfds++] = (struct pollfd){
			.fd = accepted < n ? listener : -1, .events = POLLIN,
		};
		for (unsigned int i = 0; i < accepted; i++)
			fds[nfds++] = (struct pollfd){ .fd = conns[i].fd, .events = POLLIN };
		if (poll(fds, nfds, -1) < 0)
			die("poll: %s", strerror(errno));
		if (fds[0].revents) {
			int fd = accept(listener, NULL, NULL);

			if (fd < 0)
				die("accept: %s", strerror(errno));
			conns[accepted].fd = fd;
			sha256_init(&conns[accepted].sha);
			accepted++;
			if (++open_now > max_open)
				max_open = open_now;
		}
		for (unsigned int i = 0; i < accepted; i++) {
			struct flood_conn *c = &conns[i];
			char reply[128], hex[65];
			ssize_t r;

			if (c->fd < 0 || !fds[i + 1].revents)
				continue;
			r = read(c->fd, buf, sizeof(buf));
			if (r < 0)
				die("read: %s", strerror(errno));
			if (r > 0) {
				sha256_update(&c->sha, buf, (size_t)r);
				continue;
			}
			snprintf(reply, sizeof(reply), "%llu ",
				 (unsigned long long)c->sha.bytes);
			sha256_hex(&c->sha, hex);
			strcat(reply, hex);
			strcat(reply, "\n");
			write_all(c->fd, reply, strlen(reply));
			close(c->fd);
			c->fd = -1;
			open_now--;
			served++;
		}
	}
	unlink(path);
	printf("flood-server: served %u, at most %u open at once\n", served, max_open);
	return 0;
}

/* ---- Serving the benchmark's host end. */

/* The request line, byte by byte: what follows it is data. */
static void read_request(int fd, char *line, size_t size)
{
	size_t len;

	for (len = 0; len < size - 1; len++) {
		ssize_t n = read(fd, line + len, 1);

		if (n != 1)
			die("request: %s", n < 0 ? strerror(errno) : "closed before its end");
		if (line[len] == '\n')
			break;
	}
	if (len == size - 1)
		die("request line too long");
	line[len] = '\0';
}

static void serve_one(int conn)
{
	static uint8_t buf[BUF_SIZE];
	char line[64];
	uint64_t bytes = 0;
	ssize_t n;

	read_request(conn, line, sizeof(line));
	if (!strcmp(line, "sink")) {
		while ((n = read(conn, buf, sizeof(buf))) > 0)
			bytes += (uint64_t)n;
		if (n < 0)
			die("sink: read: %s", strerror(errno));
		n = snprintf(line, sizeof(line), "%llu\n", (unsigned long long)bytes);
		write_all(conn, line, (size_t)n);
	} else if (!strncmp(line, "source ", 7)) {
		bytes = number(line + 7);
		memset(buf, 0x5a, sizeof(buf));
		while (bytes) {
			size_t chunk = bytes < sizeof(buf) ? bytes : sizeof(buf);

			write_all(conn, buf, chunk);
			bytes -= chunk;
		}
	} else if (!strcmp(line, "echo")) {
		while ((n = read(conn, buf, sizeof(buf))) > 0)
			write_all(conn, buf, (size_t)n);
		if (n < 0)
			die("echo: read: %s", strerror(errno));
	} else {
		die("unknown request \"%s\"", line);
	}
	close(conn);
}

static int cmd_serve(uint32_t port, uint64_t count)
{
	struct sockaddr_vm addr = {
		.svm_family = AF_VSOCK, .svm_cid = VMADDR_CID_ANY, .svm_port = port,
	};
	int fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		die("socket(AF_VSOCK): %s", strerror(errno));
	if (bind(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0 || listen(fd, 16) < 0)
		die("listen on port %u: %s", port, strerror(errno));
	for (uint64_t i = 0; i < count; i++) {
		int conn = accept(fd, NULL, NULL);

		if (conn < 0)
			die("accept: %s", strerror(errno));
		serve_one(conn);
	}
	close(fd);
	return 0;
}

int main(int argc, char **argv)
{
	const char *cmd = argc > 1 ? argv[1] : "";

	if (!strcmp(cmd, "gen") && argc == 4)
		return cmd_gen(number(argv[2]), number(argv[3]));
	if (!strcmp(cmd, "connect") && argc == 4) {
		copy(vsock_connect(number(argv[2]), (uint32_t)number(argv[3])), NULL);
		return 0;
	}
	if (!strcmp(cmd, "listen") && argc == 3)
		return cmd_listen((uint32_t)number(argv[2]));
	if (!strcmp(cmd, "unix-listen") && (argc == 3 || argc == 9)) {
		struct pause pause = { 0 };

		for (int i = 3; i + 1 < argc; i += 2) {
			if (!strcmp(argv[i], "--pause-after"))
				pause.after = number(argv[i + 1]);
			else if (!strcmp(argv[i], "--pause"))
				pause.seconds = (unsigned int)number(argv[i + 1]);
			else if (!strcmp(argv[i], "--marker"))
				pause.marker = argv[i + 1];
			else
				die("unknown option %s", argv[i]);
		}
		if (pause.after && !pause.marker)
			die("--pause-after needs --marker");
		return cmd_unix_listen(argv[2], &pause);
	}
	if (!strcmp(cmd, "hybrid-connect") && (argc == 4 || argc == 6)) {
		unsigned int retry = 0;

		if (argc == 6) {
			if (strcmp(argv[4], "--retry"))
				die("unknown option %s", argv[4]);
			retry = (unsigned int)number(argv[5]);
		}
		return cmd_hybrid_connect(argv[2], (uint32_t)number(argv[3]), retry);
	}
	if (!strcmp(cmd, "hybrid-raw") && argc == 4)
		return cmd_hybrid_raw(argv[2], argv[3]);
	if (!strcmp(cmd, "flood-client") && argc == 6)
		return cmd_flood_client(number(argv[2]), (uint32_t)number(argv[3]),
					(unsigned int)number(argv[4]), number(argv[5]));
	if (!strcmp(cmd, "flood-server") && argc == 4)
		return cmd_flood_server(argv[2], (unsigned int)number(argv[3]));
	if (!strcmp(cmd, "serve") && argc == 4)
		return cmd_serve((uint32_t)number(argv[2]), number(argv[3]));
	fprintf(stderr,
		"usage: vsock-tool gen SEED SIZE | connect CID PORT | listen PORT |\n"
		"       unix-listen PATH [--pause-after BYTES --pause SECONDS --marker FILE] |\n"
		"       hybrid-connect PATH PORT [--retry SECONDS] | hybrid-raw PATH TEXT |\n"
		"       flood-client CID PORT N SIZE | flood-server PATH N | serve PORT N\n");
	return 2;
}
