/*
 * Unit tests for vmm/terminal.c on a pseudo-terminal: raw mode and its
 * restoration (explicit, at exit, on a signal, in a child process so the
 * real exit paths run), the window size and the SIGWINCH eventfd.
 */
#include <errno.h>
#include <fcntl.h>
#include <pty.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>
#include <cmocka.h>

#include "vmm/terminal.h"

struct fixture {
	int master, slave;
	struct termios before;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	if (!f || openpty(&f->master, &f->slave, NULL, NULL, NULL) < 0 ||
	    tcgetattr(f->slave, &f->before) < 0)
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	terminal_restore();
	close(f->master);
	close(f->slave);
	free(f);
	return 0;
}

static void assert_same_settings(const struct termios *a, const struct termios *b)
{
	assert_int_equal(a->c_iflag, b->c_iflag);
	assert_int_equal(a->c_oflag, b->c_oflag);
	assert_int_equal(a->c_cflag, b->c_cflag);
	assert_int_equal(a->c_lflag, b->c_lflag);
	assert_memory_equal(a->c_cc, b->c_cc, sizeof(a->c_cc));
}

static void assert_restored(struct fixture *f)
{
	struct termios now;

	assert_int_equal(tcgetattr(f->slave, &now), 0);
	assert_same_settings(&now, &f->before);
}

static void test_raw_and_back(void **state)
{
	struct fixture *f = *state;
	struct termios raw;

	assert_int_equal(terminal_make_raw(f->slave), 0);
	assert_int_equal(tcgetattr(f->slave, &raw), 0);
	/* Keys reach the guest: no line editing, echo, signals, flow control. */
	assert_int_equal(raw.c_lflag & (ICANON | ECHO | ISIG | IEXTEN), 0);
	assert_int_equal(raw.c_iflag & (ICRNL | IXON | ISTRIP | INLCR | IGNCR), 0);
	assert_int_equal(raw.c_cflag & CSIZE, CS8);
	assert_int_equal(raw.c_cc[VMIN], 1);
	assert_int_equal(raw.c_cc[VTIME], 0);
	/* Output processing stays as it was. */
	assert_int_equal(raw.c_oflag, f->before.c_oflag);

	terminal_restore();
	assert_restored(f);
	/* Idempotent: a second restore changes nothing, even after a change. */
	raw = f->before;
	raw.c_lflag &= ~ECHO;
	assert_int_equal(tcsetattr(f->slave, TCSANOW, &raw), 0);
	terminal_restore();
	assert_int_equal(tcgetattr(f->slave, &raw), 0);
	assert_int_equal(raw.c_lflag & ECHO, 0);
}

static void test_not_a_terminal(void **state)
{
	int fds[2];

	(void)state;
	assert_int_equal(pipe(fds), 0);
	assert_int_equal(terminal_make_raw(fds[0]), -ENOTTY);
	close(fds[0]);
	close(fds[1]);
}

static void test_window_size(void **state)
{
	struct fixture *f = *state;
	struct winsize ws = { .ws_row = 33, .ws_col = 111 };
	uint16_t cols, rows;

	assert_int_equal(ioctl(f->master, TIOCSWINSZ, &ws), 0);
	assert_int_equal(terminal_get_size(f->slave, &cols, &rows), 0);
	assert_int_equal(cols, 111);
	assert_int_equal(rows, 33);
	assert_int_equal(terminal_get_size(-1, &cols, &rows), -EBADF);
}

static void test_sigwinch_reaches_eventfd(void **state)
{
	eventfd_t count;
	int fd = terminal_resize_eventfd();

	(void)state;
	assert_true(fd >= 0);
	assert_int_equal(terminal_resize_eventfd(), fd);
	assert_int_equal(eventfd_read(fd, &count), -1);
	assert_int_equal(errno, EAGAIN);
	raise(SIGWINCH);
	raise(SIGWINCH);
	assert_int_equal(eventfd_read(fd, &count), 0);
	assert_int_equal(count, 2);
}

/*
 * Runs @how in a child that put the pty in raw mode first; returns its
 * wait status. The parent checks the settings afterwards.
 */
static int in_raw_child(struct fixture *f, void (*how)(void))
{
	int wstatus;
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0) {
		if (terminal_make_raw(f->slave) < 0)
			_exit(99);
		how();
		_exit(98);
	}
	assert_int_equal(waitpid(pid, &wstatus, 0), pid);
	return wstatus;
}

static void exit_normally(void)
{
	exit(7);
}

static void killed_by_sigterm(void)
{
	kill(getpid(), SIGTERM);
	pause();
}

static void interrupted(void)
{
	raise(SIGINT);
}

static void test_restored_at_exit(void **state)
{
	struct fixture *f = *state;
	int wstatus = in_raw_child(f, exit_normally);

	assert_true(WIFEXITED(wstatus));
	assert_int_equal(WEXITSTATUS(wstatus), 7);
	assert_restored(f);
}

static void test_restored_on_sigterm(void **state)
{
	struct fixture *f = *state;
	int wstatus = in_raw_child(f, killed_by_sigterm);

	/* Still dies of the signal, after putting the terminal back. */
	assert_true(WIFSIGNALED(wstatus));
	assert_int_equal(WTERMSIG(wstatus), SIGTERM);
	assert_restored(f);
}

static void test_restored_on_sigint(void **state)
{
	struct fixture *f = *state;
	int wstatus = in_raw_child(f, interrupted);

	assert_true(WIFSIGNALED(wstatus));
	assert_int_equal(WTERMSIG(wstatus), SIGINT);
	assert_restored(f);
}

int main(void)
{
	/* A shell starts background jobs with SIGINT ignored, and the
	 * terminal code rightly leaves an ignored signal alone; these tests
	 * want the default action vmm-run meets when run from a terminal. */
	struct sigaction default_action = { .sa_handler = SIG_DFL };
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_raw_and_back, setup, teardown),
		cmocka_unit_test_setup_teardown(test_not_a_terminal, setup, teardown),
		cmocka_unit_test_setup_teardown(test_window_size, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sigwinch_reaches_eventfd, setup, teardown),
		cmocka_unit_test_setup_teardown(test_restored_at_exit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_restored_on_sigterm, setup, teardown),
		cmocka_unit_test_setup_teardown(test_restored_on_sigint, setup, teardown),
	};

	sigaction(SIGINT, &default_action, NULL);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
