/*
 * service.h - the shim's ttrpc service: containerd.task.v2.Task for the
 * containers of one shim (one VM each), served on the listening socket
 * `start` made, until Shutdown.
 *
 * Model. A task is a container: its VM (shim/vm.h), its init process
 * and its execs. Create decides the rootfs from the mount list
 * (shim/rootfs.h) and the volumes from the spec (shim/oci.h), prepares
 * the disks (shim/layers.h), boots the VM, has guest-init assemble the
 * root (Mount.Apply) and run `crun create` (Container.Create); Start is
 * `crun start`; an exec is `crun exec` when it is started. Each process
 * has its stdio relays (shim/stdio.h) and a waiter thread blocked in the
 * guest's Process.Wait on a connection of its own; when it answers and
 * the output is delivered, the service loop marks the process stopped,
 * publishes /tasks/exit (shim/events.h) and answers the pending Waits. A
 * VMM that dies ends every process of its task with status 137 (128 +
 * SIGKILL). An OOM thread per task waits in the guest's Container.WaitOom
 * and the loop publishes /tasks/oom for each answer.
 *
 * Pids: the init process's pid is the VMM's (the host process that is
 * the container); an exec's is its guest pid, as Pids lists them.
 * Pause/Resume stop and continue the VMM. Kill of a paused task resumes
 * it first, so that the signal is delivered.
 *
 * Threads: the service loop runs every handler; guest calls block it
 * (bounded by VM_CALL_TIMEOUT_MS, Create by the boot). Waiter, OOM and
 * stdio threads only talk to the loop through its notification pipe.
 */
#ifndef EROVM_SHIM_SERVICE_H
#define EROVM_SHIM_SERVICE_H

#include "shim/layers.h"
#include "shim/vm.h"

#define SHIM_VERSION "0.1"

struct service_config {
	const char *ns;			/* containerd namespace */
	const char *ttrpc_address;	/* where events go (TTRPC_ADDRESS) */
	struct vm_tools tools;
	struct layer_tools layers;
	int boot_timeout_ms;
};

/*
 * Serves @listen_fd until Shutdown (with no task left, or now) or
 * SIGTERM, then stops every VM. Returns the process exit status.
 */
int service_run(const struct service_config *cfg, int listen_fd);

#endif
