/*
 * vm.h - one container's micro-VM as the shim drives it: vmm-run in
 * service mode (no command; guest-init serves its control service on
 * vsock, vmm/guest_abi.h), started with the container's disks, and the
 * calls and stdio streams the shim opens to guest-init through the
 * monitor's hybrid vsock socket.
 *
 * Files: a VM's runtime directory (VM_RUN_DIR/vm-HASH, HASH from the
 * namespace and container id so that paths stay short enough for a Unix
 * socket) holds the vsock socket "vsock" and, for diagnosis, "console.log"
 * (the guest kernel's log) and "vmm.log" (vmm-run's own output). vm_stop()
 * and vm_cleanup() remove it.
 *
 * Lifetime: vmm-run is a child of the shim, started with PR_SET_PDEATHSIG
 * SIGKILL so it cannot outlive a shim killed outright; `delete` (a new
 * shim process) kills a leftover one by the pid and start time recorded
 * in the bundle (shim/state.h). Pause and resume stop and continue the
 * whole monitor, vCPU threads included (SIGSTOP, SIGCONT).
 *
 * Threads: a struct vm's control client is used by the thread that owns
 * the vm (the shim's service loop); vm_open_stream() and vm_connect() give
 * descriptors any thread may use. Errors: 0 or -1 with a message in @err
 * (@err_size bytes); guest calls also give the ttrpc status code.
 */
#ifndef EROVM_SHIM_VM_H
#define EROVM_SHIM_VM_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <protobuf-c/protobuf-c.h>

#include "shim/disks.h"
#include "ttrpc/ttrpc.h"

#define VM_RUN_DIR "/run/erovm"
/* How long a guest may take from exec of vmm-run to its control service. */
#define VM_BOOT_TIMEOUT_MS 120000
/* The time limit of an ordinary control call (crun runs inside some). */
#define VM_CALL_TIMEOUT_MS 30000

/* What the shim runs: found by shim_find_tools() (shim/main.c). */
struct vm_tools {
	char vmm_run[PATH_MAX];
	char kernel[PATH_MAX];
	char rootfs[PATH_MAX];
};

struct vm_size {
	unsigned int cpus;
	uint64_t memory;	/* bytes */
};

struct vm {
	pid_t pid;			/* vmm-run; 0 before start and once reaped */
	unsigned long long start_time;	/* /proc/PID/stat starttime, to recognise it */
	char dir[PATH_MAX];		/* the runtime directory */
	char vsock[PATH_MAX];
	struct ttrpc_client *control;	/* the service loop's connection */
	uint64_t memory;		/* the guest's, bytes */
	bool paused;
	bool died_booting;		/* vm_start() failed: vmm-run ended before the guest was ready */
	bool exited;			/* vmm-run was reaped */
	int wstatus;
};

/* The runtime directory of container @id in @ns, into @dir. */
void vm_dir_for(const char *ns, const char *id, char *dir, size_t size);

/*
 * Starts vmm-run for @disks and @size with its runtime directory @dir
 * (created), and waits up to @timeout_ms for guest-init's control service.
 * On failure vmm-run is killed and the message says why, with the end of
 * vmm-run's output.
 */
int vm_start(struct vm *vm, const struct vm_tools *tools, const char *dir,
	     const struct disk_set *disks, const struct vm_size *size, int timeout_ms,
	     char *err, size_t err_size);

/*
 * Calls guest-init: @request to @service/@method, the answer unpacked
 * with @response_type into *@response (NULL for an empty answer; free
 * with protobuf_c_message_free_unpacked). Returns the ttrpc status code
 * (TTRPC_OK, or the guest's code with its message in @err;
 * FailedPrecondition without a call while the VM is paused), or -1 when
 * the call could not be made (the VM is gone, a timeout).
 */
int vm_call(struct vm *vm, const char *service, const char *method,
	    const ProtobufCMessage *request, const ProtobufCMessageDescriptor *response_type,
	    ProtobufCMessage **response, int timeout_ms, char *err, size_t err_size);

/* A new connection to guest-init's control service (blocking), or -1. */
int vm_connect(const struct vm *vm, char *err, size_t err_size);

/*
 * A new stdio stream connection named @id (blocking descriptor), or -1.
 */
int vm_open_stream(const struct vm *vm, const char *id, char *err, size_t err_size);

/* SIGSTOP / SIGCONT of the monitor. */
int vm_pause(struct vm *vm, char *err, size_t err_size);
int vm_resume(struct vm *vm, char *err, size_t err_size);

/* Reaps vmm-run if it exited; true if it has (now or before). */
bool vm_reap(struct vm *vm);

/* vm_reap(), trying for up to @timeout_ms. */
bool vm_exited_within(struct vm *vm, int timeout_ms);

/*
 * Ends the VM: asks guest-init to shut down (it stops processes, syncs
 * and unmounts) and waits up to @grace_ms for vmm-run to exit, then kills
 * it; removes the runtime directory. Safe to call again.
 */
void vm_stop(struct vm *vm, int grace_ms);

/*
 * For `delete`: kills vmm-run @pid if it is still the process that
 * started at @start_time (not a reused pid), waits for it to be gone,
 * and removes runtime directory @dir. Returns true if a VMM was killed.
 */
bool vm_kill_leftover(pid_t pid, unsigned long long start_time, const char *dir);

/* /proc/@pid/stat's starttime, or 0 if there is no such process. */
unsigned long long vm_process_start_time(pid_t pid);

#endif
