/*
 * Unit tests for shim/stdio.c and shim/state.c. A thread plays the VM's
 * hybrid vsock socket and guest-init's stream port: it answers CONNECT,
 * reads each stream's id line and then acts as the process's stdio.
 * containerd's side is real FIFOs. Proven: output reaches the FIFO and
 * the FIFO is closed (the client's end of output) once the guest closes
 * the stream; stdin bytes reach the guest and CloseIO is the guest's end
 * of input even while the client keeps its FIFO end open; a client
 * closing its stdin end is no end of input; a terminal has no stderr;
 * binary:// loggers and relative paths are refused; an output FIFO
 * without a reader fails. The bundle state record round-trips and a
 * damaged one is an error.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <cmocka.h>

#include "shim/state.h"
#include "shim/stdio.h"

static char work[64];

/* The fake guest: what it got on a stdin stream, what it sends on output ones. */
struct fake_guest {
	int listen_fd;
	const char *output;		/* written on "*.out", then closed */
	char input[256];		/* read from "*.in" until EOF */
	size_t input_len;
	bool input_ended;
	pthread_mutex_t lock;
	pthread_cond_t changed;
};

static struct fake_guest guest;

static ssize_t read_line(int fd, char *buf, size_t size)
{
	size_t n = 0;

	while (n + 1 < size) {
		ssize_t r = read(fd, buf + n, 1);

		if (r <= 0)
			return -1;
		if (buf[n] == '\n')
			break;
		n++;
	}
	buf[n] = '\0';
	return (ssize_t)n;
}

static void *stream_main(void *arg)
{
	int fd = (int)(intptr_t)arg;
	char line[256];

	if (read_line(fd, line, sizeof(line)) < 0 || strcmp(line, "CONNECT 1025") ||
	    write(fd, "OK 7\n", 5) != 5 || read_line(fd, line, sizeof(line)) < 0) {
		close(fd);
		return NULL;
	}
	if (strstr(line, ".out") || strstr(line, ".err")) {
		if (write(fd, guest.output, strlen(guest.output)) < 0)
			fail_msg("fake guest: write failed");
	} else if (strstr(line, ".in")) {
		for (;;) {
			char buf[64];
			ssize_t n = read(fd, buf, sizeof(buf));

			pthread_mutex_lock(&guest.lock);
			if (n <= 0)
				guest.input_ended = true;
			else if (guest.input_len + (size_t)n < sizeof(guest.input)) {
				memcpy(guest.input + guest.input_len, buf, (size_t)n);
				guest.input_len += (size_t)n;
			}
			pthread_cond_broadcast(&guest.changed);
			pthread_mutex_unlock(&guest.lock);
			if (n <= 0)
				break;
		}
	}
	close(fd);
	return NULL;
}

static void *accept_main(void *arg)
{
	(void)arg;
	for (;;) {
		int fd = accept(guest.listen_fd, NULL, NULL);
		pthread_t thread;

		if (fd < 0)
			return NULL;
		pthread_create(&thread, NULL, stream_main, (void *)(intptr_t)fd);
		pthread_detach(thread);
	}
}

static void start_guest(struct vm *vm)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	pthread_t thread;

	memset(vm, 0, sizeof(*vm));
	snprintf(vm->vsock, sizeof(vm->vsock), "%s/vsock", work);
	strcpy(addr.sun_path, vm->vsock);
	unlink(vm->vsock);
	guest.listen_fd = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_int_equal(bind(guest.listen_fd, (struct sockaddr *)&addr, sizeof(addr)), 0);
	assert_int_equal(listen(guest.listen_fd, 8), 0);
	pthread_create(&thread, NULL, accept_main, NULL);
	pthread_detach(thread);
}

static int setup(void **state)
{
	(void)state;
	snprintf(work, sizeof(work), "/tmp/test-shim-stdio.XXXXXX");
	assert_non_null(mkdtemp(work));
	memset(&guest, 0, sizeof(guest));
	pthread_mutex_init(&guest.lock, NULL);
	pthread_cond_init(&guest.changed, NULL);
	return 0;
}

static int teardown(void **state)
{
	char command[128];

	(void)state;
	shutdown(guest.listen_fd, SHUT_RDWR);
	close(guest.listen_fd);
	snprintf(command, sizeof(command), "rm -rf %s", work);
	assert_int_equal(system(command), 0);
	return 0;
}

static void make_fifo(const char *name, char *path, size_t size)
{
	snprintf(path, size, "%s/%s", work, name);
	assert_int_equal(mkfifo(path, 0600), 0);
}

/* Reads @fd until EOF within 10 s; returns what it read. */
static size_t read_to_eof(int fd, char *buf, size_t size)
{
	size_t n = 0;

	for (;;) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		ssize_t r;

		assert_int_equal(poll(&pfd, 1, 10000), 1);
		r = read(fd, buf + n, size - 1 - n);
		if (r == 0)
			break;
		if (r < 0 && errno == EAGAIN)
			continue;
		assert_true(r > 0);
		n += (size_t)r;
	}
	buf[n] = '\0';
	return n;
}

static void test_output_then_end_of_output(void **state)
{
	char out_path[128], ids[3][STDIO_STREAM_ID_MAX], err[256], buf[64];
	struct stdio_paths paths = { 0 };
	struct stdio *io;
	struct vm vm;
	int reader;

	(void)state;
	guest.output = "hello from the guest\n";
	start_guest(&vm);
	make_fifo("stdout", out_path, sizeof(out_path));
	reader = open(out_path, O_RDONLY | O_NONBLOCK);
	assert_true(reader >= 0);
	paths.stdout_path = out_path;
	io = stdio_open(&vm, "init", &paths, ids, err, sizeof(err));
	if (!io)
		fail_msg("%s", err);
	assert_string_equal(ids[0], "");
	assert_string_equal(ids[1], "init.out");
	assert_string_equal(ids[2], "");
	/* The guest closed the stream: the FIFO ends after the bytes. */
	stdio_wait_output(io);
	assert_int_equal(read_to_eof(reader, buf, sizeof(buf)), strlen(guest.output));
	assert_string_equal(buf, guest.output);
	stdio_free(io);
	close(reader);
}

/* containerd's client opening its read end a moment after the request. */
struct late_reader {
	const char *path;
	int fd;
};

static void *open_reader_late(void *opaque)
{
	struct late_reader *late = opaque;

	poll(NULL, 0, 200);
	late->fd = open(late->path, O_RDONLY);
	return NULL;
}

static void test_output_reader_comes_late(void **state)
{
	char out_path[128], ids[3][STDIO_STREAM_ID_MAX], err[256], buf[64];
	struct stdio_paths paths = { 0 };
	struct late_reader late = { .fd = -1 };
	struct stdio *io;
	pthread_t reader;
	struct vm vm;

	(void)state;
	guest.output = "late\n";
	start_guest(&vm);
	make_fifo("stdout", out_path, sizeof(out_path));
	late.path = out_path;
	assert_int_equal(pthread_create(&reader, NULL, open_reader_late, &late), 0);
	paths.stdout_path = out_path;
	io = stdio_open(&vm, "init", &paths, ids, err, sizeof(err));
	if (!io)
		fail_msg("%s", err);
	assert_int_equal(pthread_join(reader, NULL), 0);
	assert_true(late.fd >= 0);
	stdio_wait_output(io);
	assert_int_equal(read_to_eof(late.fd, buf, sizeof(buf)), strlen(guest.output));
	assert_string_equal(buf, guest.output);
	stdio_free(io);
	close(late.fd);
}

static void wait_input(size_t len, bool ended)
{
	pthread_mutex_lock(&guest.lock);
	while (guest.input_len < len || guest.input_ended != ended)
		pthread_cond_wait(&guest.changed, &guest.lock);
	pthread_mutex_unlock(&guest.lock);
}

static void test_stdin_ends_with_close_io(void **state)
{
	char in_path[128], ids[3][STDIO_STREAM_ID_MAX], err[256];
	struct stdio_paths paths = { 0 };
	struct stdio *io;
	struct vm vm;
	int writer;

	(void)state;
	start_guest(&vm);
	make_fifo("stdin", in_path, sizeof(in_path));
	paths.stdin_path = in_path;
	io = stdio_open(&vm, "exec-1", &paths, ids, err, sizeof(err));
	if (!io)
		fail_msg("%s", err);
	assert_string_equal(ids[0], "exec-1.in");
	writer = open(in_path, O_WRONLY);
	assert_true(writer >= 0);
	assert_int_equal(write(writer, "abc", 3), 3);
	wait_input(3, false);
	/* The client closing its end is no end of input... */
	close(writer);
	writer = open(in_path, O_WRONLY);
	assert_int_equal(write(writer, "def", 3), 3);
	wait_input(6, false);
	/* ...CloseIO is, after what the FIFO holds. */
	assert_int_equal(write(writer, "ghi", 3), 3);
	stdio_close_stdin(io);
	wait_input(9, true);
	assert_memory_equal(guest.input, "abcdefghi", 9);
	close(writer);
	stdio_free(io);
}

static void test_refusals(void **state)
{
	char out_path[128], ids[3][STDIO_STREAM_ID_MAX], err[256];
	struct stdio_paths paths = { 0 };
	struct vm vm;

	(void)state;
	start_guest(&vm);
	make_fifo("out", out_path, sizeof(out_path));

	/* Nobody opens it within STDIO_READER_WAIT_MS. */
	paths.stdout_path = out_path;
	assert_null(stdio_open(&vm, "p", &paths, ids, err, sizeof(err)));
	assert_non_null(strstr(err, "a FIFO nobody reads"));

	paths.stdout_path = "binary:///usr/bin/logger?x=1";
	assert_null(stdio_open(&vm, "p", &paths, ids, err, sizeof(err)));
	assert_non_null(strstr(err, "binary:// loggers are not supported"));

	paths.stdout_path = "relative/fifo";
	assert_null(stdio_open(&vm, "p", &paths, ids, err, sizeof(err)));
	assert_non_null(strstr(err, "not an absolute path"));

	paths.stdout_path = "";
	paths.stderr_path = "/dev/null";
	paths.terminal = true;
	assert_null(stdio_open(&vm, "p", &paths, ids, err, sizeof(err)));
	assert_non_null(strstr(err, "a terminal has no stderr"));
}

static void test_file_output(void **state)
{
	char path[160], spec[170], ids[3][STDIO_STREAM_ID_MAX], err[256], buf[64];
	struct stdio_paths paths = { 0 };
	struct stdio *io;
	struct vm vm;
	FILE *f;

	(void)state;
	guest.output = "to a file\n";
	start_guest(&vm);
	snprintf(path, sizeof(path), "%s/log", work);
	snprintf(spec, sizeof(spec), "file://%s", path);
	paths.stderr_path = spec;
	io = stdio_open(&vm, "init", &paths, ids, err, sizeof(err));
	if (!io)
		fail_msg("%s", err);
	assert_string_equal(ids[2], "init.err");
	stdio_wait_output(io);
	stdio_free(io);
	f = fopen(path, "r");
	assert_non_null(f);
	assert_non_null(fgets(buf, sizeof(buf), f));
	fclose(f);
	assert_string_equal(buf, "to a file\n");
}

static void test_state_round_trip(void **state)
{
	struct shim_state saved = { .vmm_pid = 4242, .vmm_start_time = 123456789012ULL };
	struct shim_state loaded;
	char err[256], path[128];
	FILE *f;

	(void)state;
	assert_int_equal(state_load(work, &loaded, err, sizeof(err)), 1);
	snprintf(saved.vm_dir, sizeof(saved.vm_dir), "/run/erovm/vm-0123456789abcdef");
	assert_int_equal(state_save(work, &saved, err, sizeof(err)), 0);
	assert_int_equal(state_load(work, &loaded, err, sizeof(err)), 0);
	assert_int_equal(loaded.vmm_pid, 4242);
	assert_true(loaded.vmm_start_time == 123456789012ULL);
	assert_string_equal(loaded.vm_dir, saved.vm_dir);

	snprintf(path, sizeof(path), "%s/%s", work, STATE_FILE);
	f = fopen(path, "w");
	fputs("{\"vmm_pid\": \"not a number\"}", f);
	fclose(f);
	assert_int_equal(state_load(work, &loaded, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "fields missing or mistyped"));
	state_remove(work);
	assert_int_equal(state_load(work, &loaded, err, sizeof(err)), 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_output_then_end_of_output, setup, teardown),
		cmocka_unit_test_setup_teardown(test_output_reader_comes_late, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stdin_ends_with_close_io, setup, teardown),
		cmocka_unit_test_setup_teardown(test_refusals, setup, teardown),
		cmocka_unit_test_setup_teardown(test_file_output, setup, teardown),
		cmocka_unit_test_setup_teardown(test_state_round_trip, setup, teardown),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
