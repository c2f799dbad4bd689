/*
 * ctl.h - erovm-ctl's pieces: the command line and simple commands
 * (erovm-ctl.c) and the exec session (exec.c). erovm-ctl talks to a
 * guest's control service (vmm/guest_abi.h) through the monitor's hybrid
 * vsock socket (ctl/hybrid_vsock.h). Single-threaded.
 */
#ifndef EROVM_CTL_CTL_H
#define EROVM_CTL_CTL_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "ttrpc/ttrpc.h"

/* Exit status when erovm-ctl itself failed (as vmm-run's 125). */
#define CTL_EXIT_FAILURE 125
/* How long a synchronous call and a CONNECT may take. */
#define CTL_CALL_TIMEOUT_MS 30000
#define CTL_CONNECT_TIMEOUT_MS 10000

struct exec_options {
	const char *vsock;	/* the hybrid vsock socket */
	bool terminal;
	char **env;		/* KEY=VALUE, env_count of them */
	size_t env_count;
	const char *cwd;	/* NULL: "/" */
	uid_t uid;
	gid_t gid;
	const char *root;	/* NULL: the guest's / */
	const char *id;		/* NULL: made up */
	char **argv;		/* the command, argc words */
	int argc;
};

/* Prints "erovm-ctl: MESSAGE" on stderr. */
void ctl_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* A connection to guest port @port, or -1 (reported). */
int ctl_connect_port(const char *vsock, unsigned int port);

/* A ttrpc client on the guest's control port, or NULL (reported). */
struct ttrpc_client *ctl_connect_control(const char *vsock);

/* Words for a failed call's negative errno. */
const char *ctl_call_error(int ret);

/*
 * Runs a command in the guest with its stdio wired to ours and returns
 * the exit status erovm-ctl should have: the process's, 126 or 127 when
 * it could not start (as a shell), or CTL_EXIT_FAILURE.
 */
int ctl_exec(const struct exec_options *opt);

#endif
