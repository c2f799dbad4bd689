/*
 * guest_init.h - guest-init, PID 1 of an erovm guest: mounts the usual
 * filesystems, runs the command from the kernel command line and reports
 * its exit status to the monitor, and serves the control service over
 * vsock (guest-init/control.h; the contract is vmm/guest_abi.h).
 */
#ifndef EROVM_GUEST_INIT_H
#define EROVM_GUEST_INIT_H

#include <stdnoreturn.h>

#include "vmm/mount_plan.h"

/* System.Version's init_version. */
#define GUEST_INIT_VERSION "erovm guest-init 0.1"

/* Prints "guest-init: MESSAGE" on /dev/console (fd 2). */
void report(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/*
 * guest-init cannot run the command: reports why and ends the VM without
 * writing a status, so the monitor reports a guest failure.
 */
noreturn void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Waits for the console output, syncs and resets the guest; never returns. */
noreturn void end_vm(void);

/* Mounts devtmpfs on /dev unless the kernel already did; fails otherwise. */
void mount_dev(void);

/*
 * Mounts /proc, /sys, cgroup2, the tmpfs scratch directories, /dev/pts and
 * a writable copy of /etc, then sets the host name from /etc/hostname.
 * Fails on any mount the command may rely on; reports the others.
 */
void mount_filesystems(void);

/*
 * Unmounts every filesystem but / and /dev, last mounted first, so that
 * writable ones are clean when the VM ends. Failures are only reported.
 */
void unmount_all(void);

/* How guest-init runs mount plans: the real system calls, /sys/block, report(). */
const struct mount_plan_env *guest_plan_env(void);

/*
 * Runs the mount plan from the disk with serial GUEST_PLAN_SERIAL, if
 * there is one (vmm/mount_plan.h); any failure is fatal. Returns the
 * target of the plan's root mount, or NULL if it names none.
 */
const char *run_mount_plan(void);

/*
 * In the command's process: makes @root its / in a mount namespace of its
 * own, with /proc, /sys, /dev and a /tmp inside. Returns 0, or -1 with
 * errno set.
 */
int enter_root(const char *root);

#endif
