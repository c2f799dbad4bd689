/*
 * control_internal.h - the pieces of guest-init's control service
 * (control.h) and how they share its loop:
 *
 *   control.c  the loop, control connections, System and Mount
 *   stream.c   connections on the stream port until a process claims them
 *   process.c  the Process service: records, spawning, stdio pumps
 *   container.c  the Container service: bundles, crun, launched processes
 *
 * Each loop iteration every piece adds the descriptors it waits on to a
 * poll set, with a callback and its object, and lowers the loop's
 * deadline for its timers. After poll() the callbacks run; objects they
 * end are only marked dead, and freed by the reclaim step at the end of
 * the iteration, so a callback never meets a freed object.
 */
#ifndef EROVM_GUEST_INIT_CONTROL_INTERNAL_H
#define EROVM_GUEST_INIT_CONTROL_INTERNAL_H

#include <poll.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/types.h>

#include "guest-init/control.h"
#include "ttrpc/ttrpc.h"
#include "erovm_control.pb-c.h"
#include "vmm/guest_abi.h"

struct control;

typedef void (*poll_ready_fn)(struct control *ctl, void *obj, short revents);

/* Sized for the limits in control.h, so adding never fails. */
struct poll_set {
	struct pollfd *fds;
	struct poll_entry {
		poll_ready_fn ready;
		void *obj;
	} *entries;
	size_t count, cap;
};

/* What a claimed stream is to its process; one stream may be several. */
enum stream_role {
	STREAM_ROLE_STDIN = 1,
	STREAM_ROLE_STDOUT = 2,
	STREAM_ROLE_STDERR = 4,
};

/* A connection on the stream port, from accept until its last user is done. */
struct stream {
	TAILQ_ENTRY(stream) link;
	int fd;
	enum stream_state {
		STREAM_READING_ID,	/* waiting for "ID\n" */
		STREAM_UNCLAIMED,	/* named, waiting for a Start */
		STREAM_CLAIMED,		/* used by a process */
	} state;
	char id[GUEST_STREAM_ID_MAX + 1];
	/* Bytes read before the id was complete; those after "\n" are stdin. */
	uint8_t line[GUEST_STREAM_ID_MAX + 1];
	size_t line_len, early_start;
	long long deadline_ms;		/* READING_ID, UNCLAIMED: closed then */
	unsigned int roles;		/* CLAIMED: bits of the roles still using it */
	bool dead;
};

TAILQ_HEAD(stream_list, stream);
TAILQ_HEAD(process_list, process);
TAILQ_HEAD(conn_list, control_conn);
TAILQ_HEAD(container_list, container);

/*
 * A child guest-init reaped that no process record claimed: kept a while,
 * because a container's process can end before the crun command that
 * started it did and its pid file was read.
 */
struct orphan_exit {
	pid_t pid;
	int wstatus;
	long long reaped_ms;
};

#define CONTROL_ORPHAN_EXITS 128

struct control {
	const struct control_config *cfg;
	struct ttrpc_service_table table;
	int signal_fd;
	struct conn_list conns;
	struct stream_list streams;
	struct process_list processes;
	struct container_list containers;
	size_t conn_count, pending_stream_count, process_count, container_count;
	struct orphan_exit orphans[CONTROL_ORPHAN_EXITS];	/* a ring */
	size_t orphan_next;
	unsigned int console_seq;	/* names console sockets */
	long long oom_check_ms;		/* when WaitOom looks next; 0: not planned */
	struct poll_set poll;
	long long now_ms;		/* CLOCK_MONOTONIC at the iteration's start */
	long long deadline_ms;		/* the earliest timer; -1 for none */
	bool shutdown_requested;
	long long command_kill_ms;	/* command mode, shutdown: SIGKILL then */
	bool command_exited;
	int command_status;
};

long long control_monotonic_ms(void);

/* Adds @fd with @events to this iteration's poll set. */
void control_poll(struct control *ctl, int fd, short events, poll_ready_fn ready, void *obj);

/* Wakes the loop by @when_ms (CLOCK_MONOTONIC) at the latest. */
void control_wake_at(struct control *ctl, long long when_ms);

/* --- stream.c --- */

/* Accepts every waiting connection on the stream port. */
void streams_accept(struct control *ctl, int listen_fd);
void streams_collect(struct control *ctl);
/* Closes streams nobody claimed in time. */
void streams_timers(struct control *ctl);
void streams_reclaim(struct control *ctl);
void streams_free_all(struct control *ctl);

/* The unclaimed stream named @id, or NULL. */
struct stream *stream_find_unclaimed(struct control *ctl, const char *id);

/* Hands an unclaimed stream to a process, for the roles in @roles. */
void stream_claim(struct control *ctl, struct stream *stream, unsigned int roles);

/* Role @role no longer uses @stream; the last one closes it. */
void stream_release(struct stream *stream, unsigned int role);

/* True for 1 to @max bytes of [A-Za-z0-9._-]. */
bool control_valid_name(const char *name, size_t max);

/* --- process.c --- */

extern const struct ttrpc_method process_methods[];
extern const size_t process_method_count;

/* A stream was named: Starts waiting for it may go on. */
void processes_stream_arrived(struct control *ctl);
void processes_collect(struct control *ctl);
void processes_timers(struct control *ctl);
/* Child @pid ended with @wstatus; false if it is none of ours. */
bool processes_reaped(struct control *ctl, pid_t pid, int wstatus);
void processes_reclaim(struct control *ctl);
void processes_free_all(struct control *ctl);

/* True if a process record named @id exists. */
bool process_exists(struct control *ctl, const char *id);

/*
 * A launcher: a program (crun create, crun exec --detach) that starts the
 * real process, writes its pid somewhere and exits 0, or fails with a
 * message on its stderr. process_launch() runs it as a process record
 * whose stdio streams become the real process's; once the launcher
 * exited 0, launched() names the real process, and from then on the
 * record is that process's (Signal, Wait, ResizePty act on it; its exit
 * comes through processes_reaped(), also if it ended before launched()).
 */
struct process_launcher {
	const char *name;	/* for messages: "crun create" */
	/*
	 * The launcher exited 0: sets *@pid to the real process and, if the
	 * request has a terminal, *@pty to its pty master (which the record
	 * then owns). Returns 0, or -1 with a message in @err.
	 */
	int (*launched)(void *ctx, pid_t *pid, int *pty, char *err, size_t size);
	/* The launch failed or was refused; the record is gone. Optional. */
	void (*failed)(void *ctx);
	/* Frees @ctx when the record goes. */
	void (*free)(void *ctx);
};

/*
 * Starts process record @request->id running the launcher @request->args,
 * as Process.Start would (the same checks and errors), and answers @call
 * with the launched pid, or with FailedPrecondition and the launcher's
 * error output (trimmed, bounded) if it fails. With request->terminal no
 * pty is made here: the launcher hands one over (launched()), and its own
 * stdin and stdout are /dev/null. The launcher's stderr is always a pipe
 * of guest-init's, read while it runs for the error message (and passed
 * on to the stderr stream, if any). Takes @request and @ctx; on every
 * failure, now or later, calls failed() (the record is then gone).
 */
void process_launch(struct control *ctl, struct ttrpc_call *call,
		    Erovm__Control__V1__StartRequest *request,
		    const struct process_launcher *launcher, void *ctx);

/* --- container.c --- */

extern const struct ttrpc_method container_methods[];
extern const size_t container_method_count;

/* WaitOom: memory.events is looked at every GUEST_OOM_POLL_MS while calls wait. */
void containers_collect(struct control *ctl);
void containers_timers(struct control *ctl);
void containers_free_all(struct control *ctl);

#endif
