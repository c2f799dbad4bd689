#include "vmm/terminal.h"

#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

/* The signals whose default action ends the process (see terminal.h). */
static const int ending_signals[] = {
	SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGPIPE, SIGALRM,
	SIGABRT, SIGSEGV, SIGBUS, SIGFPE, SIGILL,
};

static struct termios saved;
static int saved_fd = -1;
static volatile sig_atomic_t raw_on;
static bool handlers_installed;
static int resize_fd = -1;

void terminal_restore(void)
{
	if (!raw_on)
		return;
	raw_on = 0;
	/* TCSANOW: output already written was processed when written. */
	tcsetattr(saved_fd, TCSANOW, &saved);
}

static void restore_and_reraise(int sig)
{
	int saved_errno = errno;

	terminal_restore();
	/* SA_RESETHAND put the default action back; SA_NODEFER lets it in now. */
	raise(sig);
	errno = saved_errno;
}

static void at_exit(void)
{
	terminal_restore();
}

static void install_handlers(void)
{
	struct sigaction action = {
		.sa_handler = restore_and_reraise,
		.sa_flags = SA_RESETHAND | SA_NODEFER,
	};

	if (handlers_installed)
		return;
	handlers_installed = true;
	atexit(at_exit);
	sigemptyset(&action.sa_mask);
	for (size_t i = 0; i < sizeof(ending_signals) / sizeof(ending_signals[0]); i++) {
		struct sigaction old;

		if (sigaction(ending_signals[i], NULL, &old) == 0 &&
		    old.sa_handler == SIG_DFL)
			sigaction(ending_signals[i], &action, NULL);
	}
}

int terminal_make_raw(int fd)
{
	struct termios raw;

	if (tcgetattr(fd, &saved) < 0)
		return -errno;
	raw = saved;
	raw.c_iflag &= ~(IGNBRK | BRKINT | PARMRK | ISTRIP | INLCR | IGNCR |
			 ICRNL | IXON | IXOFF);
	raw.c_lflag &= ~(ECHO | ECHONL | ICANON | ISIG | IEXTEN);
	raw.c_cflag &= ~(CSIZE | PARENB);
	raw.c_cflag |= CS8;
	raw.c_cc[VMIN] = 1;
	raw.c_cc[VTIME] = 0;
	install_handlers();
	saved_fd = fd;
	/* Before the change: a signal right after it must find raw_on set. */
	raw_on = 1;
	if (tcsetattr(fd, TCSANOW, &raw) < 0) {
		int err = errno;

		raw_on = 0;
		return -err;
	}
	return 0;
}

int terminal_get_size(int fd, uint16_t *cols, uint16_t *rows)
{
	struct winsize ws;

	if (ioctl(fd, TIOCGWINSZ, &ws) < 0)
		return -errno;
	*cols = ws.ws_col;
	*rows = ws.ws_row;
	return 0;
}

static void window_changed(int sig)
{
	const uint64_t one = 1;
	int saved_errno = errno;
	/* Fails only when the counter is saturated: a wake-up is pending anyway. */
	ssize_t written = write(resize_fd, &one, sizeof(one));

	(void)sig;
	(void)written;
	errno = saved_errno;
}

int terminal_resize_eventfd(void)
{
	struct sigaction action = {
		.sa_handler = window_changed,
		/* KVM_RUN and the I/O thread's waits restart or retry on EINTR. */
		.sa_flags = SA_RESTART,
	};

	if (resize_fd >= 0)
		return resize_fd;
	resize_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (resize_fd < 0)
		return -errno;
	sigemptyset(&action.sa_mask);
	if (sigaction(SIGWINCH, &action, NULL) < 0) {
		int err = errno;

		close(resize_fd);
		resize_fd = -1;
		return -err;
	}
	return resize_fd;
}
