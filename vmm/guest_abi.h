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
 * and its arguments come on the kernel command line, encoded as below.
 *
 * Kernel command line. guest-init expects
 *
 *   console=ttyS0 reboot=k root=/dev/vda rootfstype=erofs ro [...]
 *   init=/sbin/init -- WORD...
 *
 * with init=/sbin/init the last word before " -- " and the encoded words
 * ending the line (virtio_mmio.device= and every other kernel parameter
 * go before init=): the kernel hands init every word after " -- " and
 * every unknown bare word of the line, but forgets those seen before
 * init=, so nothing but the command reaches guest-init.
 *
 * The kernel log goes to ttyS0 (COM1). The command runs as root in /, in
 * a session of its own, with stdin /dev/null and stdout and stderr on
 * ttyS1 (COM2, raw: "\n" stays "\n"), and only PATH, HOME=/root and
 * TERM=linux in its environment. guest-init's own error reports go to
 * /dev/console. The guest kernel needs CONFIG_X86_IOPL_IOPERM=y (for
 * ioperm()) and two 8250 UARTs.
 *
 * Flags: words of the kernel command line before init= (vmm-run adds
 * them with guest_args_add_flag()); guest-init looks for them in
 * /proc/cmdline (guest_args_has_flag()). The kernel leaves them alone: a
 * word with a dot is an unknown module parameter, neither handed to init
 * nor reported.
 *
 *   erovm.interactive (GUEST_FLAG_INTERACTIVE): the command runs as an
 *       interactive session on /dev/hvc0, the virtio console vmm-run
 *       then provides: in a session of its own with hvc0 as controlling
 *       terminal (TIOCSCTTY) and as stdin, stdout and stderr, the tty in
 *       its default (cooked) mode. A shell gets job control; Ctrl-C
 *       reaches its foreground job, not the VM. The status still comes
 *       back through GUEST_PORT_STATUS. No hvc0 is a failure to run the
 *       command (below).
 *
 * Argument encoding (vmm/guest_args.c does both directions). The kernel
 * splits its command line on white space, strips double quotes, stops
 * handing words to init at a bare "--", and some x86 boot code looks for
 * option words such as "nopti" anywhere on the line, even after "--".
 * So each argument of the command becomes exactly one WORD:
 *
 *   - every byte outside [A-Za-z0-9] and -_./:,=+@ is written as %XX,
 *     two upper-case hex digits;
 *   - the first byte is always written as %XX, whatever it is, so every
 *     WORD starts with '%' and can never be "--" or a kernel option;
 *   - the empty argument is the single character "%".
 *
 * For example `sh -c 'echo "a b"'` is "%73h %2Dc %65cho%20%22a%20b%22".
 * The decoder is strict: a WORD that does not start with '%', a byte
 * outside the set above, a '%' not followed by two upper-case hex digits,
 * and %00 (a C string holds no NUL) are all errors.
 *
 * Failures inside the guest. When guest-init cannot run the command at
 * all (no port access, a bad command, no command and no vsock, no ttyS1
 * (no hvc0 for an interactive session), a failed
 * mount of /dev, /proc, /sys, or a tmpfs: /run, /tmp, /dev/shm, /etc, or
 * a mount plan that does not parse or whose execution fails),
 * it reports why on /dev/console and reboots without writing a status,
 * so the monitor reports a guest failure rather than a made-up status. Once the command ran, its status is always
 * written: its exit code, 128 + the signal number if a signal killed it,
 * 127 if it was not found and 126 if it could not be executed (as a shell
 * does). A failed cgroup2 or devpts mount is only reported.
 *
 * The control service. When the guest has a vsock device (it has a CID),
 * guest-init listens on two vsock ports (any CID) and serves both from its
 * single poll() loop, which also reaps children:
 *
 *   GUEST_VSOCK_CONTROL_PORT  ttrpc (containerd's framing, ttrpc/ttrpc.h)
 *                             serving proto/erovm_control.proto: services
 *                             GUEST_CONTROL_SERVICE_SYSTEM, _MOUNT,
 *                             _PROCESS and _CONTAINER.
 *   GUEST_VSOCK_STREAM_PORT   the stdio streams of processes started with
 *                             Process.Start: connect, write the stream id
 *                             (1 to GUEST_STREAM_ID_MAX bytes of
 *                             [A-Za-z0-9._-]) and "\n", then raw bytes.
 *                             Start waits up to GUEST_STREAM_CONNECT_TIMEOUT_MS
 *                             for the streams it names; a stream no Start
 *                             claims is closed after
 *                             GUEST_STREAM_UNCLAIMED_TIMEOUT_MS. EOF on a
 *                             stdin stream closes the process's stdin;
 *                             stdout and stderr streams are closed once the
 *                             process exited and its output was delivered.
 *                             The full rules are in the .proto, above
 *                             service Process.
 *
 * Modes. With a command after " -- " (command mode, vmm-run's), guest-init
 * runs it as above and serves the control service while it runs; the
 * VM ends when the command does. With no word after "--", or no "--"
 * (service mode), guest-init needs vsock (else it fails as above) and
 * serves until System.Shutdown; then it stops every process (SIGTERM,
 * SIGKILL after 1 s), unmounts everything it can but / and /dev, syncs,
 * writes status 0 and resets the guest. In command mode, System.Shutdown
 * sends the command SIGTERM (SIGKILL after 1 s) and the command's status
 * is reported. Both modes unmount before the status write.
 */
#ifndef EROVM_GUEST_ABI_H
#define EROVM_GUEST_ABI_H

#define GUEST_PORT_BASE 0x3f0 /* Firecracker's boot-timer port; no ISA device uses it here */
#define GUEST_PORT_MARKER (GUEST_PORT_BASE + 0)
#define GUEST_PORT_STATUS (GUEST_PORT_BASE + 4)
#define GUEST_PORT_LEN 8

/* x86 COMMAND_LINE_SIZE: the longest kernel command line, its NUL included. */
#define GUEST_CMDLINE_SIZE 2048
/*
 * The most arguments the kernel hands to init (CONFIG_INIT_ENV_ARG_LIMIT,
 * 32 by default); one more makes it panic at boot.
 */
#define GUEST_ARGS_MAX 32

/*
 * A read-only disk with this serial carries a mount plan
 * (vmm/mount_plan.h), its text up to the first NUL: guest-init runs it
 * before the command, and runs the command inside the plan's root.
 */
#define GUEST_PLAN_SERIAL "erovm-plan"

/* The control service: see above and proto/erovm_control.proto. */
#define GUEST_VSOCK_CONTROL_PORT 1024
#define GUEST_VSOCK_STREAM_PORT 1025
#define GUEST_CONTROL_API_VERSION 2	/* 2: the Container service */
#define GUEST_CONTROL_SERVICE_SYSTEM "erovm.control.v1.System"
#define GUEST_CONTROL_SERVICE_MOUNT "erovm.control.v1.Mount"
#define GUEST_CONTROL_SERVICE_PROCESS "erovm.control.v1.Process"
#define GUEST_CONTROL_SERVICE_CONTAINER "erovm.control.v1.Container"
/* Container bundles: GUEST_CONTAINER_DIR/ID. */
#define GUEST_CONTAINER_DIR "/run/erovm/containers"
/* How often Container.WaitOom looks at a container's memory.events. */
#define GUEST_OOM_POLL_MS 500
#define GUEST_STREAM_ID_MAX 128
#define GUEST_STREAM_CONNECT_TIMEOUT_MS 10000
#define GUEST_STREAM_UNCLAIMED_TIMEOUT_MS 60000
/* The interactive-session flag (see Flags above). */
#define GUEST_FLAG_INTERACTIVE "erovm.interactive"

enum guest_marker {
	GUEST_MARKER_INIT_STARTED = 1,
	GUEST_MARKER_COMMAND_STARTED = 2,
	GUEST_MARKER_COMMAND_FINISHED = 3,
};

#endif
