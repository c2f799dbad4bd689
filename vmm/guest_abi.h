/*
 * guest_abi.h - the contract between erovm's monitor and its guest-init.
 *
 * guest-init (PID 1 in the VM) talks to the monitor through one block of
 * I/O ports, so the monitor learns about boot progress and the command's
 * result without any device driver in the guest:
 *
 *   GUEST_PORT_MARKER  (8-bit write)  a boot-progress marker, one of
 *                      enum guest_marker; the monitor timestamps it.
 *                      guest-init writes GUEST_MARKER_INIT_STARTED as its
 *                      very first action (the boot-time measurement).
 *   GUEST_PORT_STATUS  (32-bit write) the command's exit status (0-255),
 *                      written after the command ended and the guest's
 *                      disks were synced; then guest-init reboots the
 *                      guest (`reboot=k`: an i8042 reset), which ends the
 *                      VM. A VM that ends without a status write means
 *                      the guest failed (see vmm-run --help).
 *
 * The guest learns nothing from the monitor this way: the command to run
 * and its arguments come on the kernel command line (see guest-init).
 */
#ifndef EROVM_GUEST_ABI_H
#define EROVM_GUEST_ABI_H

#define GUEST_PORT_BASE 0x3f0 /* Firecracker's boot-timer port; no ISA device uses it here */
#define GUEST_PORT_MARKER (GUEST_PORT_BASE + 0)
#define GUEST_PORT_STATUS (GUEST_PORT_BASE + 4)
#define GUEST_PORT_LEN 8

enum guest_marker {
	GUEST_MARKER_INIT_STARTED = 1,
	GUEST_MARKER_COMMAND_STARTED = 2,
	GUEST_MARKER_COMMAND_FINISHED = 3,
};

#endif
