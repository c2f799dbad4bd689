/*
 * control-host: guest-init's control service loop (guest-init/control.h)
 * run in a host process, on Unix sockets instead of vsock ports, for the
 * host tests (tests/host/test-control). Like PID 1 in the guest it is a
 * child subreaper, so orphans come back to it.
 *
 *   control-host CONTROL_SOCKET STREAM_SOCKET [-- COMMAND [ARG]...]
 *
 * With a COMMAND it is in command mode: it runs COMMAND, serves while it
 * runs and exits with its status. Without, it serves until
 * System.Shutdown and exits 0. Mount plans are not mounted: each system
 * call the executor makes is printed on stderr ("control-host: mount
 * ..."), and mounting a target that contains "fail" fails with EIO.
 * System.SetTime prints the time instead of setting the clock.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "guest-init/control.h"

static int listen_unix(const char *path)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0 || strlen(path) >= sizeof(addr.sun_path)) {
		fprintf(stderr, "control-host: %s: cannot listen\n", path);
		exit(1);
	}
	strcpy(addr.sun_path, path);
	unlink(path);
	if (bind(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0 || listen(fd, 16) < 0) {
		fprintf(stderr, "control-host: listen on %s: %s\n", path, strerror(errno));
		exit(1);
	}
	return fd;
}

static int record_mkdir(const char *path, mode_t mode)
{
	fprintf(stderr, "control-host: mkdir %s %04o\n", path, (unsigned int)mode);
	return 0;
}

static int record_chmod(const char *path, mode_t mode)
{
	fprintf(stderr, "control-host: chmod %s %04o\n", path, (unsigned int)mode);
	return 0;
}

static int record_chown(const char *path, uid_t uid, gid_t gid)
{
	fprintf(stderr, "control-host: chown %s %u:%u\n", path, (unsigned int)uid, (unsigned int)gid);
	return 0;
}

static int record_mount(const char *source, const char *target, const char *fstype,
			unsigned long flags, const void *data)
{
	fprintf(stderr, "control-host: mount %s %s %s 0x%lx %s\n", source, target,
		fstype ? fstype : "-", flags, data && *(const char *)data ? (const char *)data : "-");
	if (strstr(target, "fail")) {
		errno = EIO;
		return -1;
	}
	return 0;
}

static int record_umount2(const char *target, int flags)
{
	fprintf(stderr, "control-host: umount %s %d\n", target, flags);
	return 0;
}

static const struct mount_plan_ops recording_ops = {
	.mkdir = record_mkdir, .chmod = record_chmod, .chown = record_chown,
	.mount = record_mount, .umount2 = record_umount2,
};

static int fake_disk(void *ctx, const char *serial, char *path, size_t size)
{
	(void)ctx;
	snprintf(path, size, "/dev/disk-%s", serial);
	return 0;
}

static void log_step(void *ctx, const char *line)
{
	(void)ctx;
	fprintf(stderr, "control-host: plan: %s\n", line);
}

static int print_time(const struct timespec *time)
{
	fprintf(stderr, "control-host: set time %lld.%09ld\n", (long long)time->tv_sec, time->tv_nsec);
	return 0;
}

int main(int argc, char **argv)
{
	const struct mount_plan_env mount_env = {
		.ops = &recording_ops, .resolve_serial = fake_disk, .log = log_step,
	};
	struct control_config cfg = { .mount_env = &mount_env, .set_time = print_time };
	int status = 0, end;

	if (argc < 3 || (argc > 3 && (strcmp(argv[3], "--") || argc == 4))) {
		fprintf(stderr, "usage: control-host CONTROL_SOCKET STREAM_SOCKET [-- COMMAND [ARG]...]\n");
		return 2;
	}
	setvbuf(stderr, NULL, _IOLBF, 0);
	if (prctl(PR_SET_CHILD_SUBREAPER, 1) < 0) {
		perror("control-host: PR_SET_CHILD_SUBREAPER");
		return 1;
	}
	cfg.control_listen_fd = listen_unix(argv[1]);
	cfg.stream_listen_fd = listen_unix(argv[2]);
	if (argc > 4) {
		cfg.command = fork();
		if (cfg.command < 0) {
			perror("control-host: fork");
			return 1;
		}
		if (cfg.command == 0) {
			execvp(argv[4], argv + 4);
			perror("control-host: exec");
			_exit(127);
		}
	}
	end = control_run(&cfg, &status);
	close(cfg.control_listen_fd);
	close(cfg.stream_listen_fd);
	if (end < 0)
		return 1;
	fprintf(stderr, "control-host: %s\n",
		end == CONTROL_SHUTDOWN ? "shut down" : "the command exited");
	return status;
}
