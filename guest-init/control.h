/*
 * control.h - guest-init's control service (vmm/guest_abi.h,
 * proto/erovm_control.proto): ttrpc on one listening socket, stdio streams
 * on another, child reaping, stream pumping and timers, all in one
 * single-threaded poll() loop. The listening sockets are parameters, so a
 * host test runs the very same loop on Unix sockets.
 *
 * Memory is bounded: at most CONTROL_MAX_CONNECTIONS control connections,
 * CONTROL_MAX_PENDING_STREAMS streams not yet claimed, CONTROL_MAX_PROCESSES
 * process records, CONTROL_MAX_CONTAINERS containers, and a fixed buffer per stream direction (a reader that
 * does not read stalls the process writing, not the loop).
 */
#ifndef EROVM_GUEST_INIT_CONTROL_H
#define EROVM_GUEST_INIT_CONTROL_H

#include <stdbool.h>
#include <sys/types.h>
#include <time.h>

#include "vmm/mount_plan.h"

#define CONTROL_MAX_CONNECTIONS 16
#define CONTROL_MAX_PENDING_STREAMS 64
#define CONTROL_MAX_PROCESSES 256
#define CONTROL_MAX_CONTAINERS 64

struct control_config {
	int control_listen_fd;	/* listening stream socket for ttrpc, or -1 */
	int stream_listen_fd;	/* listening stream socket for stdio streams, or -1 */
	/*
	 * The command from the kernel command line, already started, or 0 in
	 * service mode. The loop reaps it like every other child.
	 */
	pid_t command;
	/* How Mount.Apply mounts; its log also gets every step. */
	const struct mount_plan_env *mount_env;
	/* Sets the wall clock for System.SetTime; 0 or a negative errno. */
	int (*set_time)(const struct timespec *time);
};

enum control_end {
	CONTROL_COMMAND_EXITED,	/* the command ended; *@status is its status */
	CONTROL_SHUTDOWN,	/* System.Shutdown in service mode */
};

/*
 * Serves until the command exits or, without a command, until
 * System.Shutdown was answered. Blocks SIGCHLD (for a signalfd; the mask
 * is restored on return) and reaps every child, so the caller's children
 * must be left to it. Closes every connection it accepted; the listening
 * sockets stay the caller's. Returns an enum control_end, with the
 * command's status (exit code, or 128 + signal) in *@status, or -1 if the
 * loop could not be set up (reported).
 */
int control_run(const struct control_config *cfg, int *status);

/*
 * True if the guest has a vsock device: /dev/vsock reports a CID of its
 * own. (socket(AF_VSOCK) alone succeeds without any device.)
 */
bool control_have_vsock(void);

/* A listening vsock socket on @port of any CID, or a negative errno. */
int control_listen_vsock(unsigned int port);

#endif
