/*
 * state.h - what a shim leaves in the bundle so that `delete`, run when
 * the shim is gone (killed, crashed), can clean up after it:
 * BUNDLE/STATE_FILE, JSON {"vmm_pid", "vmm_start_time", "vm_dir"}, written
 * atomically once the VM runs and removed when the task is deleted.
 */
#ifndef EROVM_SHIM_STATE_H
#define EROVM_SHIM_STATE_H

#include <limits.h>
#include <stddef.h>
#include <sys/types.h>

#define STATE_FILE "erovm-state.json"

struct shim_state {
	pid_t vmm_pid;
	unsigned long long vmm_start_time;
	char vm_dir[PATH_MAX];
};

/* Writes @state to @bundle. Returns 0 or -1 with @err. */
int state_save(const char *bundle, const struct shim_state *state, char *err, size_t err_size);

/* Reads it back: 0, 1 if there is none, or -1 with @err (a damaged file). */
int state_load(const char *bundle, struct shim_state *state, char *err, size_t err_size);

void state_remove(const char *bundle);

#endif
