/*
 * guest-init: PID 1 of an erovm guest. See vmm/guest_abi.h for what the
 * monitor expects of it and for the kernel command line it expects.
 */
#include "guest-init/guest_init.h"
#include "guest-init/control.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/io.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "vmm/guest_abi.h"
#include "vmm/guest_args.h"

/* The command's stdout and stderr: COM2, kept apart from the kernel log. */
#define COMMAND_OUTPUT_TTY "/dev/ttyS1"
/* An interactive session's terminal: the virtio console. */
#define INTERACTIVE_TTY "/dev/hvc0"
#define COMMAND_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

/* How long processes left behind by the command get to exit. */
#define SIGTERM_GRACE_MS 1000
#define SIGKILL_WAIT_MS 1000

/* Gives fds 0-2 the console, unless the kernel could already open it. */
static void open_console(void)
{
	if (fcntl(STDERR_FILENO, F_GETFD) >= 0)
		return;
	/* The kernel opens all three or none, so this gets fd 0. */
	if (open("/dev/console", O_RDWR | O_NOCTTY) != STDIN_FILENO)
		return; /* nowhere to report to; the missing status still tells */
	dup2(STDIN_FILENO, STDOUT_FILENO);
	dup2(STDIN_FILENO, STDERR_FILENO);
}

/*
 * Returns the command's argv, decoded from guest-init's own arguments
 * (see vmm/guest_abi.h), or NULL if there is none (service mode).
 * Decodes copies so /proc/1/cmdline stays readable.
 */
static char **decode_command(int argc, char *argv[])
{
	char **command;

	if (argc < 2)
		return NULL;
	command = calloc((size_t)argc, sizeof(*command));
	if (!command)
		fail("calloc: %s", strerror(errno));
	for (int i = 1; i < argc; i++) {
		command[i - 1] = strdup(argv[i]);
		if (!command[i - 1])
			fail("strdup: %s", strerror(errno));
		if (guest_args_decode(command[i - 1]) < 0)
			fail("word %d after \"--\" on the kernel command line is not a valid encoded argument: \"%s\"",
			     i, argv[i]);
	}
	return command;
}

/* Opens the command's output tty with raw output: "\n" stays "\n". */
static int open_command_output(void)
{
	struct termios tio;
	int fd;

	/* Non-blocking so a tty that waits for carrier cannot hang the open. */
	fd = open(COMMAND_OUTPUT_TTY, O_WRONLY | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		fail("open %s: %s", COMMAND_OUTPUT_TTY, strerror(errno));
	if (tcgetattr(fd, &tio) < 0)
		fail("tcgetattr %s: %s", COMMAND_OUTPUT_TTY, strerror(errno));
	tio.c_oflag &= ~OPOST;
	tio.c_cflag |= CLOCAL;
	if (tcsetattr(fd, TCSANOW, &tio) < 0 || fcntl(fd, F_SETFL, 0) < 0)
		fail("set up %s: %s", COMMAND_OUTPUT_TTY, strerror(errno));
	return fd;
}

/* True if vmm-run asked for an interactive session (vmm/guest_abi.h). */
static bool interactive_requested(void)
{
	char cmdline[GUEST_CMDLINE_SIZE + 1];
	ssize_t len;
	int fd = open("/proc/cmdline", O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		fail("open /proc/cmdline: %s", strerror(errno));
	len = read(fd, cmdline, sizeof(cmdline) - 1);
	if (len < 0)
		fail("read /proc/cmdline: %s", strerror(errno));
	close(fd);
	cmdline[len] = '\0';
	return guest_args_has_flag(cmdline, GUEST_FLAG_INTERACTIVE);
}

/* Opens the interactive session's terminal, in its default cooked mode. */
static int open_interactive_tty(void)
{
	/* The child makes it its controlling terminal, after setsid(). */
	int fd = open(INTERACTIVE_TTY, O_RDWR | O_NOCTTY | O_CLOEXEC);

	if (fd < 0)
		fail("open %s: %s (an interactive session needs vmm-run's virtio console)",
		     INTERACTIVE_TTY, strerror(errno));
	return fd;
}

/* In the child: stdin, stdout and stderr on @tty_fd, its controlling terminal. */
static void attach_session_tty(int tty_fd)
{
	if (ioctl(tty_fd, TIOCSCTTY, 0) < 0) {
		report("TIOCSCTTY %s: %s", INTERACTIVE_TTY, strerror(errno));
		_exit(126);
	}
	if (dup2(tty_fd, STDIN_FILENO) < 0 || dup2(tty_fd, STDOUT_FILENO) < 0 ||
	    dup2(tty_fd, STDERR_FILENO) < 0) {
		report("dup2 %s: %s", INTERACTIVE_TTY, strerror(errno));
		_exit(126);
	}
}

/* In the child: stdout and stderr on @output_fd, stdin /dev/null. */
static void attach_output(int output_fd)
{
	int null_fd;

	if (dup2(output_fd, STDOUT_FILENO) < 0 || dup2(output_fd, STDERR_FILENO) < 0) {
		report("dup2 %s: %s", COMMAND_OUTPUT_TTY, strerror(errno));
		_exit(126);
	}
	null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (null_fd < 0 || dup2(null_fd, STDIN_FILENO) < 0) {
		dprintf(STDERR_FILENO, "guest-init: /dev/null: %s\n", strerror(errno));
		_exit(126);
	}
}

/*
 * In the child: becomes the command, its output on @output_fd (the
 * session's terminal if @interactive). Never returns.
 */
static noreturn void exec_command(char *argv[], int output_fd, bool interactive,
				  const char *root)
{
	sigset_t none;
	int err;

	setsid();
	/*
	 * guest-init changes neither, but the command must start as under any
	 * other parent: default dispositions, nothing blocked.
	 */
	for (int sig = 1; sig < NSIG; sig++)
		signal(sig, SIG_DFL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);

	if (interactive)
		attach_session_tty(output_fd);
	else
		attach_output(output_fd);

	clearenv();
	if (setenv("PATH", COMMAND_PATH, 1) < 0 || setenv("HOME", "/root", 1) < 0 ||
	    setenv("TERM", "linux", 1) < 0) {
		dprintf(STDERR_FILENO, "guest-init: setenv: %s\n", strerror(errno));
		_exit(126);
	}

	outb(GUEST_MARKER_COMMAND_STARTED, GUEST_PORT_MARKER);
	/* ioperm survives fork and exec: the command must not fake a status. */
	if (ioperm(GUEST_PORT_BASE, GUEST_PORT_LEN, 0) < 0) {
		dprintf(STDERR_FILENO, "guest-init: ioperm: %s\n", strerror(errno));
		_exit(126);
	}

	if (root && enter_root(root) < 0) {
		dprintf(STDERR_FILENO, "guest-init: cannot enter the root %s: %s\n",
			root, strerror(errno));
		_exit(126);
	}
	execvp(argv[0], argv);
	err = errno;
	dprintf(STDERR_FILENO, "guest-init: %s: %s\n", argv[0], strerror(err));
	/* As a shell does: 127 when not found, 126 when found but not runnable. */
	_exit(err == ENOENT || err == ENOTDIR ? 127 : 126);
}

static int set_wall_clock(const struct timespec *time)
{
	return clock_settime(CLOCK_REALTIME, time) < 0 ? -errno : 0;
}

/*
 * Listens on the control service's vsock ports when the guest has vsock.
 * Without vsock, or if listening fails, service mode has nothing to do.
 */
static void listen_control(struct control_config *cfg, bool service_mode)
{
	int control_fd, stream_fd;

	if (!control_have_vsock()) {
		if (service_mode)
			fail("no command on the kernel command line and no vsock device: nothing to do");
		return;
	}
	control_fd = control_listen_vsock(GUEST_VSOCK_CONTROL_PORT);
	stream_fd = control_listen_vsock(GUEST_VSOCK_STREAM_PORT);
	if (control_fd < 0 || stream_fd < 0) {
		int err = control_fd < 0 ? -control_fd : -stream_fd;

		if (service_mode)
			fail("listen on vsock ports %d and %d: %s", GUEST_VSOCK_CONTROL_PORT,
			     GUEST_VSOCK_STREAM_PORT, strerror(err));
		report("no control service: listen on vsock: %s", strerror(err));
		if (control_fd >= 0)
			close(control_fd);
		if (stream_fd >= 0)
			close(stream_fd);
		return;
	}
	cfg->control_listen_fd = control_fd;
	cfg->stream_listen_fd = stream_fd;
}

static long long monotonic_ms(void)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return now.tv_sec * 1000LL + now.tv_nsec / 1000000;
}

/*
 * Reaps children until none is left (true) or @timeout_ms passed (false).
 * Every process of the guest descends from PID 1, so no child left means
 * no process left.
 */
static bool reap_all(int timeout_ms)
{
	const struct timespec poll_interval = { 0, 10 * 1000 * 1000 };
	long long deadline = monotonic_ms() + timeout_ms;

	for (;;) {
		pid_t pid = waitpid(-1, NULL, WNOHANG);

		if (pid < 0 && errno == ECHILD)
			return true;
		if (pid > 0 || (pid < 0 && errno == EINTR))
			continue;
		if (monotonic_ms() >= deadline)
			return false;
		nanosleep(&poll_interval, NULL);
	}
}

/* Ends the processes the command left behind: SIGTERM, then SIGKILL. */
static void stop_remaining_processes(void)
{
	if (reap_all(0))
		return;
	kill(-1, SIGTERM);
	if (reap_all(SIGTERM_GRACE_MS))
		return;
	kill(-1, SIGKILL);
	if (!reap_all(SIGKILL_WAIT_MS))
		report("some processes survived SIGKILL; stopping anyway");
}

int main(int argc, char *argv[])
{
	struct control_config cfg = {
		.control_listen_fd = -1, .stream_listen_fd = -1,
		.mount_env = guest_plan_env(), .set_time = set_wall_clock,
	};
	int output_fd = -1, status = 0;
	char **command_argv;
	const char *root;
	bool interactive;

	if (ioperm(GUEST_PORT_BASE, GUEST_PORT_LEN, 1) < 0)
		fail("ioperm: %s", strerror(errno));
	outb(GUEST_MARKER_INIT_STARTED, GUEST_PORT_MARKER);

	mount_dev();
	open_console();
	command_argv = decode_command(argc, argv);
	mount_filesystems();
	root = run_mount_plan();
	listen_control(&cfg, !command_argv);

	if (command_argv) {
		interactive = interactive_requested();
		output_fd = interactive ? open_interactive_tty() : open_command_output();
		cfg.command = fork();
		if (cfg.command < 0)
			fail("fork: %s", strerror(errno));
		if (cfg.command == 0)
			exec_command(command_argv, output_fd, interactive, root);
	}

	/* Until the command ends, or System.Shutdown in service mode. */
	if (control_run(&cfg, &status) < 0)
		fail("the control loop could not start");
	if (command_argv)
		outb(GUEST_MARKER_COMMAND_FINISHED, GUEST_PORT_MARKER);
	stop_remaining_processes();
	unmount_all();
	/* The reset would cut off output still queued on the way out. */
	if (output_fd >= 0)
		tcdrain(output_fd);
	sync();
	outl((unsigned int)status, GUEST_PORT_STATUS);
	end_vm();
}
