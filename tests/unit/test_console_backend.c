/*
 * Unit tests for the console backends (devices/console_fd.c,
 * devices/console_socket.c) on a real io_loop: pipes stand in for
 * stdin and stdout, a temp file for --console FILE, a Unix socket in a
 * temp directory for socket:PATH.
 */
#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <cmocka.h>

#include "devices/console_backend.h"

struct request {
	struct console_io io;
	struct iovec iov[4];
	char buf[8192];
	int calls;
	ssize_t res;
};

struct fixture {
	struct io_loop loop;
	struct console_backend *be;
	char dir[64];
	char path[128];
	int fds[4];
};

static void request_done(struct console_io *io, ssize_t res)
{
	struct request *r = (struct request *)io;

	r->calls++;
	r->res = res;
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	char err[256];

	if (!f || io_loop_init(&f->loop, 8, err, sizeof(err)))
		return -1;
	snprintf(f->dir, sizeof(f->dir), "/tmp/console-test-XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	for (int i = 0; i < 4; i++)
		f->fds[i] = -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	io_loop_destroy(&f->loop);
	console_backend_destroy(f->be);
	for (int i = 0; i < 4; i++)
		if (f->fds[i] >= 0)
			close(f->fds[i]);
	if (f->path[0])
		unlink(f->path);
	rmdir(f->dir);
	free(f);
	return 0;
}

static void write_request(struct request *r, const char *text)
{
	size_t len = strlen(text);

	memcpy(r->buf, text, len);
	r->iov[0] = (struct iovec){ .iov_base = r->buf, .iov_len = len };
	r->io = (struct console_io){ .iov = r->iov, .iovcnt = 1, .complete = request_done };
	r->calls = 0;
}

static void read_request(struct request *r, size_t room)
{
	memset(r->buf, 0, sizeof(r->buf));
	r->iov[0] = (struct iovec){ .iov_base = r->buf, .iov_len = room };
	r->io = (struct console_io){ .iov = r->iov, .iovcnt = 1, .complete = request_done };
	r->calls = 0;
}

/* Runs the loop until @r completed (about 5 s at most). */
static void run_until_done(struct fixture *f, struct request *r)
{
	for (int i = 0; i < 5000 && !r->calls; i++) {
		assert_int_equal(io_loop_run_once(&f->loop, false), 0);
		if (!r->calls)
			usleep(1000);
	}
	assert_int_equal(r->calls, 1);
}

/* Runs the loop a while: for what must not happen. */
static void settle(struct fixture *f)
{
	for (int i = 0; i < 50; i++) {
		assert_int_equal(io_loop_run_once(&f->loop, false), 0);
		usleep(200);
	}
}

static void read_exactly(int fd, char *buf, size_t len)
{
	size_t got = 0;

	while (got < len) {
		ssize_t n = read(fd, buf + got, len - got);

		assert_true(n > 0);
		got += (size_t)n;
	}
}

/* ---- stdio */

static void stdio_up(struct fixture *f)
{
	char err[256];

	/* fds: 0/1 the input pipe (read/write end), 2/3 the output pipe. */
	assert_int_equal(pipe2(f->fds, O_CLOEXEC), 0);
	assert_int_equal(pipe2(f->fds + 2, O_CLOEXEC), 0);
	assert_int_equal(console_stdio_create(&f->be, &f->loop, f->fds[0], f->fds[3],
					      err, sizeof(err)), 0);
	assert_true(f->be->has_input);
}

static void test_stdio_output(void **state)
{
	struct fixture *f = *state;
	struct request r;
	char got[16];

	stdio_up(f);
	write_request(&r, "hello, ");
	/* Several iovecs, as a multi-descriptor chain gives them. */
	r.iov[1] = (struct iovec){ .iov_base = "world", .iov_len = 5 };
	r.io.iovcnt = 2;
	assert_int_equal(console_backend_write(f->be, &r.io), 0);
	/* Never completes before submit returns. */
	assert_int_equal(r.calls, 0);
	run_until_done(f, &r);
	assert_int_equal(r.res, 12);
	read_exactly(f->fds[2], got, 12);
	assert_memory_equal(got, "hello, world", 12);
}

/*
 * A write larger than the pipe: every byte arrives in order, resumed
 * after short writes; on an O_NONBLOCK stdout (as a shell may leave it)
 * through EAGAIN and a poll for POLLOUT.
 */
static void write_larger_than_pipe(struct fixture *f, bool nonblocking)
{
	static char big[3 * 4096 + 123], got[sizeof(big)];
	struct request r;
	size_t have = 0;

	stdio_up(f);
	assert_true(fcntl(f->fds[3], F_SETPIPE_SZ, 4096) >= 4096);
	if (nonblocking)
		fcntl(f->fds[3], F_SETFL, O_NONBLOCK);
	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (char)('a' + i % 26);
	write_request(&r, "");
	r.iov[0] = (struct iovec){ .iov_base = big, .iov_len = sizeof(big) };
	assert_int_equal(console_backend_write(f->be, &r.io), 0);
	/* While nobody reads, the write waits. */
	settle(f);
	assert_int_equal(r.calls, 0);
	fcntl(f->fds[2], F_SETFL, O_NONBLOCK);
	for (int i = 0; i < 5000 && (have < sizeof(big) || !r.calls); i++) {
		ssize_t n = read(f->fds[2], got + have, sizeof(got) - have);

		if (n > 0)
			have += (size_t)n;
		assert_int_equal(io_loop_run_once(&f->loop, false), 0);
		usleep(500);
	}
	assert_int_equal(r.calls, 1);
	assert_int_equal(r.res, sizeof(big));
	assert_int_equal(have, sizeof(big));
	assert_memory_equal(got, big, sizeof(big));
}

static void test_stdio_output_larger_than_pipe(void **state)
{
	write_larger_than_pipe(*state, false);
}

static void test_stdio_output_larger_than_nonblocking_pipe(void **state)
{
	write_larger_than_pipe(*state, true);
}

static void test_stdio_output_to_closed_pipe_is_dropped(void **state)
{
	struct fixture *f = *state;
	struct request r;

	stdio_up(f);
	/* Nobody reads stdout any more: writes fail (EPIPE, SIGPIPE ignored). */
	signal(SIGPIPE, SIG_IGN);
	close(f->fds[2]);
	f->fds[2] = -1;
	write_request(&r, "lost");
	assert_int_equal(console_backend_write(f->be, &r.io), 0);
	run_until_done(f, &r);
	/* Completed as dropped, not as an error: the guest must not wait. */
	assert_int_equal(r.res, 4);
	write_request(&r, "also lost");
	assert_int_equal(console_backend_write(f->be, &r.io), 0);
	assert_int_equal(r.calls, 0);
	run_until_done(f, &r);
	assert_int_equal(r.res, 9);
	signal(SIGPIPE, SIG_DFL);
}

static void test_stdio_input(void **state)
{
	struct fixture *f = *state;
	struct request r;

	stdio_up(f);
	read_request(&r, 16);
	assert_int_equal(console_backend_read(f->be, &r.io), 0);
	/* Nothing typed yet: the read waits. */
	settle(f);
	assert_int_equal(r.calls, 0);

	assert_int_equal(write(f->fds[1], "ls\r", 3), 3);
	run_until_done(f, &r);
	assert_int_equal(r.res, 3);
	assert_memory_equal(r.buf, "ls\r", 3);

	/* A read takes at most its room; the rest waits for the next one. */
	assert_int_equal(write(f->fds[1], "abcdef", 6), 6);
	read_request(&r, 4);
	assert_int_equal(console_backend_read(f->be, &r.io), 0);
	run_until_done(f, &r);
	assert_int_equal(r.res, 4);
	assert_memory_equal(r.buf, "abcd", 4);
	read_request(&r, 16);
	assert_int_equal(console_backend_read(f->be, &r.io), 0);
	run_until_done(f, &r);
	assert_int_equal(r.res, 2);
	assert_memory_equal(r.buf, "ef", 2);

	/* End of input. */
	close(f->fds[1]);
	f->fds[1] = -1;
	read_request(&r, 16);
	assert_int_equal(console_backend_read(f->be, &r.io), 0);
	run_until_done(f, &r);
	assert_int_equal(r.res, 0);
}

/* An O_NONBLOCK stdin (shared with whoever started vmm-run) still waits. */
static void test_stdio_input_nonblocking_fd(void **state)
{
	struct fixture *f = *state;
	struct request r;

	stdio_up(f);
	fcntl(f->fds[0], F_SETFL, O_NONBLOCK);
	read_request(&r, 16);
	assert_int_equal(console_backend_read(f->be, &r.io), 0);
	settle(f);
	assert_int_equal(r.calls, 0);
	assert_int_equal(write(f->fds[1], "x", 1), 1);
	run_until_done(f, &r);
	assert_int_equal(r.res, 1);
}

/* ---- file */

static void test_file_output(void **state)
{
	struct fixture *f = *state;
	struct request r;
	char err[256], got[32];
	int fd;

	snprintf(f->path, sizeof(f->path), "%s/console.log", f->dir);
	fd = open(f->path, O_WRONLY | O_CREAT, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "stale contents", 14), 14);
	close(fd);

	assert_int_equal(console_file_create(&f->be, &f->loop, f->path, err,
					     sizeof(err)), 0);
	assert_false(f->be->has_input);
	read_request(&r, 16);
	assert_int_equal(console_backend_read(f->be, &r.io), -EOPNOTSUPP);

	write_request(&r, "first ");
	assert_int_equal(console_backend_write(f->be, &r.io), 0);
	run_until_done(f, &r);
	write_request(&r, "second");
	assert_int_equal(console_backend_write(f->be, &r.io), 0);
	run_until_done(f, &r);

	/* Truncated on open, then appended in order. */
	fd = open(f->path, O_RDONLY);
	assert_int_equal(read(fd, got, sizeof(got)), 12);
	assert_memory_equal(got, "first second", 12);
	close(fd);
}

static void test_file_refused(void **state)
{
	struct fixture *f = *state;
	char err[256], path[128];

	snprintf(path, sizeof(path), "%s/no/such/dir/log", f->dir);
	assert_int_equal(console_file_create(&f->be, &f->loop, path, err,
					     sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, path));
	f->be = NULL;
}

/* ---- socket */

static void socket_up(struct fixture *f)
{
	char err[256];

	snprintf(f->path, sizeof(f->path), "%s/console.sock", f->dir);
	assert_int_equal(console_socket_create(&f->be, &f->loop, f->path, err,
					       sizeof(err)), 0);
	assert_true(f->be->has_input);
}

static int connect_client(struct fixture *f)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	strcpy(addr.sun_path, f->path);
	assert_int_equal(connect(fd, (struct sockaddr *)&addr, sizeof(addr)), 0);
	/* Let the loop accept it. */
	settle(f);
	return fd;
}

static void test_socket_output_without_client_is_dropped(void **state)
{
	struct fixture *f = *state;
	struct request r;
	char got[16];
	int client;

	socket_up(f);
	write_request(&r, "nobody hears this");
	assert_int_equal(console_backend_write(f->be, &r.io), 0);
	assert_int_equal(r.calls, 0);
	run_until_done(f, &r);
	assert_int_equal(r.res, 17);

	/* A client that connects later gets what comes next, not the backlog. */
	client = connect_client(f);
	f->fds[0] = client;
	write_request(&r, "live");
	assert_int_equal(console_backend_write(f->be, &r.io), 0);
	run_until_done(f, &r);
	assert_int_equal(r.res, 4);
	read_exactly(client, got, 4);
	assert_memory_equal(got, "live", 4);
	fcntl(client, F_SETFL, O_NONBLOCK);
	assert_int_equal(read(client, got, sizeof(got)), -1);
	assert_int_equal(errno, EAGAIN);
}

static void test_socket_input_and_reconnect(void **state)
{
	struct fixture *f = *state;
	struct request r;
	int client;

	socket_up(f);
	/* A read with nobody connected waits for a client. */
	read_request(&r, 16);
	assert_int_equal(console_backend_read(f->be, &r.io), 0);
	settle(f);
	assert_int_equal(r.calls, 0);

	client = connect_client(f);
	assert_int_equal(write(client, "one", 3), 3);
	run_until_done(f, &r);
	assert_int_equal(r.res, 3);
	assert_memory_equal(r.buf, "one", 3);

	/* The client leaves: the next read waits for the next one. */
	read_request(&r, 16);
	assert_int_equal(console_backend_read(f->be, &r.io), 0);
	close(client);
	settle(f);
	assert_int_equal(r.calls, 0);

	client = connect_client(f);
	f->fds[0] = client;
	assert_int_equal(write(client, "two", 3), 3);
	run_until_done(f, &r);
	assert_int_equal(r.res, 3);
	assert_memory_equal(r.buf, "two", 3);
}

static void test_socket_one_client_at_a_time(void **state)
{
	struct fixture *f = *state;
	struct request in, out;
	char got[16];
	int first, second;

	socket_up(f);
	read_request(&in, 16);
	assert_int_equal(console_backend_read(f->be, &in.io), 0);
	first = connect_client(f);
	f->fds[0] = first;
	/* The next client's connect succeeds; it waits in the backlog. */
	second = connect_client(f);
	f->fds[1] = second;
	assert_int_equal(write(second, "early", 5), 5);

	/* The console is the first client's alone. */
	write_request(&out, "to first");
	assert_int_equal(console_backend_write(f->be, &out.io), 0);
	run_until_done(f, &out);
	read_exactly(first, got, 8);
	assert_memory_equal(got, "to first", 8);
	fcntl(second, F_SETFL, O_NONBLOCK);
	assert_int_equal(read(second, got, sizeof(got)), -1);
	assert_int_equal(errno, EAGAIN);
	assert_int_equal(in.calls, 0);

	/* The first leaves: the second gets the console, its input included. */
	close(first);
	f->fds[0] = -1;
	run_until_done(f, &in);
	assert_int_equal(in.res, 5);
	assert_memory_equal(in.buf, "early", 5);
	write_request(&out, "to second");
	assert_int_equal(console_backend_write(f->be, &out.io), 0);
	run_until_done(f, &out);
	fcntl(second, F_SETFL, 0);
	read_exactly(second, got, 9);
	assert_memory_equal(got, "to second", 9);
}

static void test_socket_client_gone_while_writing(void **state)
{
	struct fixture *f = *state;
	struct request r;
	int client;

	socket_up(f);
	client = connect_client(f);
	close(client);
	/* The write fails (EPIPE, not a SIGPIPE): dropped, the client is forgotten. */
	write_request(&r, "into the void");
	assert_int_equal(console_backend_write(f->be, &r.io), 0);
	run_until_done(f, &r);
	assert_int_equal(r.res, 13);
	write_request(&r, "again");
	assert_int_equal(console_backend_write(f->be, &r.io), 0);
	run_until_done(f, &r);
	assert_int_equal(r.res, 5);
}

static void test_socket_path_refused(void **state)
{
	struct fixture *f = *state;
	char err[256], path[200];
	struct stat st;

	/* An existing path is not replaced. */
	socket_up(f);
	assert_int_equal(console_socket_create(&f->be, &f->loop, f->path, err,
					       sizeof(err)), -EADDRINUSE);
	assert_non_null(strstr(err, f->path));

	memset(path, 'x', sizeof(path) - 1);
	path[sizeof(path) - 1] = '\0';
	assert_int_equal(console_socket_create(&f->be, &f->loop, path, err,
					       sizeof(err)), -ENAMETOOLONG);
	assert_int_equal(console_socket_create(&f->be, &f->loop, "", err,
					       sizeof(err)), -ENAMETOOLONG);

	/* Destroying the backend removes its socket. */
	console_backend_destroy(f->be);
	f->be = NULL;
	assert_int_equal(stat(f->path, &st), -1);
	assert_int_equal(errno, ENOENT);
	f->path[0] = '\0';
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_stdio_output, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stdio_output_larger_than_pipe, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stdio_output_larger_than_nonblocking_pipe, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stdio_output_to_closed_pipe_is_dropped, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stdio_input, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stdio_input_nonblocking_fd, setup, teardown),
		cmocka_unit_test_setup_teardown(test_file_output, setup, teardown),
		cmocka_unit_test_setup_teardown(test_file_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_socket_output_without_client_is_dropped, setup, teardown),
		cmocka_unit_test_setup_teardown(test_socket_input_and_reconnect, setup, teardown),
		cmocka_unit_test_setup_teardown(test_socket_one_client_at_a_time, setup, teardown),
		cmocka_unit_test_setup_teardown(test_socket_client_gone_while_writing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_socket_path_refused, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
