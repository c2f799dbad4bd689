"""The two monitors under test and how the benchmarks start and observe them.

erovm is `vmm-run`; its peer is QEMU's `microvm` machine, set up to match it
device for device: the same kernel and kernel command line (apart from the
virtio-mmio declarations, which name each monitor's own addresses), the
in-kernel irqchip (erovm has no other), two 16550 UARTs (ttyS0 the kernel
console, ttyS1 the command's output), an i8042 for the reset that ends the
VM, and virtio-blk over virtio-mmio. QEMU's disks use aio=io_uring and an
I/O thread, its fastest set-up; both monitors go through the host page cache
(vmm-run opens its files without O_DIRECT, QEMU's default cache=writeback).
"""

import os
import re
import shlex
import signal
import sys
import subprocess
import tempfile
import threading
import time

import results

QEMU = "qemu-system-x86_64"
MARKER = "erovm-bench-booted"

# QEMU's microvm with acpi=off: 8 virtio-mmio transports of 512 bytes from
# 0xfeb00000 on GSIs 5..12; the first -device lands on the last transport.
QEMU_VIRTIO_BASE = 0xfeb00000
QEMU_VIRTIO_TRANSPORTS = 8
QEMU_VIRTIO_IRQ_BASE = 5


def env_path(name):
    """An artifact path from `make paths`, as exported by bench/run."""
    value = os.environ.get("EROVM_" + name.upper())
    if not value:
        raise SystemExit("bench: EROVM_%s is not set: run through bench/run" % name.upper())
    return value


def progress(text):
    """One line on stderr, so a long run shows where it is."""
    print("bench:   " + text, file=sys.stderr, flush=True)


def tool(name):
    return os.path.join(env_path("bench_tools"), name)


# --- guest-init's argument encoding (vmm/guest_abi.h), for QEMU's command line

_PLAIN = set(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_./:,=+@")


def encode_guest_arg(arg):
    """One argument as one kernel command-line word: the first byte and
    every byte outside the plain set as %XX, the empty argument as "%"."""
    data = arg.encode()
    if not data:
        return "%"
    return "%%%02X" % data[0] + "".join(
        chr(c) if c in _PLAIN else "%%%02X" % c for c in data[1:])


def encode_guest_args(args):
    return "-- " + " ".join(encode_guest_arg(a) for a in args)


# --- disks

class Disk:
    """A virtio-blk disk: one file, or (erovm only) a flat list of extents."""

    def __init__(self, path=None, extents=None, read_only=False, serial=None):
        self.path, self.extents = path, extents
        self.read_only, self.serial = read_only, serial

    def vmm_run_spec(self):
        spec = ("extents=" + ":".join(self.extents)) if self.extents else self.path
        if self.read_only:
            spec += ",ro"
        if self.serial:
            spec += ",serial=" + self.serial
        return spec

    def qemu_args(self, index):
        if self.extents:
            raise ValueError("QEMU has no flat disks")
        drive = "file=%s,if=none,id=disk%d,format=raw,aio=io_uring" % (self.path, index)
        if self.read_only:
            drive += ",readonly=on"
        device = "virtio-blk-device,drive=disk%d,iothread=io%d" % (index, index)
        if self.serial:
            device += ",serial=" + self.serial
        return ["-object", "iothread,id=io%d" % index, "-drive", drive, "-device", device]


# --- command lines

def vmm_run_argv(kernel, rootfs, mem_mib, command, disks=(), extra=()):
    argv = [env_path("vmm_run"), "--kernel", kernel, "--rootfs", rootfs,
            "--mem", "%dM" % mem_mib]
    for disk in disks:
        argv += ["--disk", disk.vmm_run_spec()]
    return argv + list(extra) + ["--"] + list(command)


def qemu_cpu():
    """-cpu host, except on PVM, whose KVM refuses QEMU's write of the
    IA32_ARCH_CAPABILITIES MSR; the guests measured there (the tiny one)
    never read it."""
    return "host,-arch-capabilities" if results.kvm_kind() == "pvm" else "host"


def qemu_argv(kernel, mem_mib, cmdline=None, disks=(), console="null", output="stdio"):
    """QEMU microvm with erovm's devices. @console and @output are the
    chardev backends of ttyS0 (kernel console) and ttyS1 (the command)."""
    argv = [QEMU, "-M", "microvm,acpi=off,x-option-roms=off,rtc=off,auto-kernel-cmdline=off",
            "-accel", "kvm,kernel-irqchip=on", "-cpu", qemu_cpu(), "-smp", "1",
            "-m", "%d" % mem_mib, "-nodefaults", "-no-user-config", "-no-reboot",
            "-display", "none", "-monitor", "none",
            "-chardev", "%s,id=ttyS0" % console, "-serial", "chardev:ttyS0",
            "-chardev", "%s,id=ttyS1" % output, "-device", "isa-serial,chardev=ttyS1",
            "-device", "i8042", "-kernel", kernel]
    if cmdline is not None:
        argv += ["-append", cmdline]
    for index, disk in enumerate(disks):
        argv += disk.qemu_args(index)
    return argv


def qemu_virtio_declarations(count):
    """The virtio_mmio.device= words for QEMU's first @count devices, in
    -device order (which is the guest's vda, vdb... order)."""
    if count > QEMU_VIRTIO_TRANSPORTS:
        raise ValueError("microvm has %d virtio-mmio transports" % QEMU_VIRTIO_TRANSPORTS)
    words = []
    for index in range(count):
        transport = QEMU_VIRTIO_TRANSPORTS - 1 - index
        words.append("virtio_mmio.device=512@0x%x:%d"
                     % (QEMU_VIRTIO_BASE + 512 * transport, QEMU_VIRTIO_IRQ_BASE + transport))
    return words


def qemu_cmdline(vmm_cmdline, disk_count, command):
    """QEMU's kernel command line from vmm-run's own (as the guest read it
    in /proc/cmdline): every word the same, except that vmm-run's
    virtio_mmio.device= declarations become QEMU's, in their place, and
    the command after " -- " is @command."""
    head = vmm_cmdline.split(" -- ", 1)[0].split()
    declared = [i for i, word in enumerate(head) if word.startswith("virtio_mmio.device=")]
    if not declared:
        raise ValueError("no virtio_mmio.device= in vmm-run's command line: %r" % vmm_cmdline)
    words = [w for w in head if not w.startswith("virtio_mmio.device=")]
    words[declared[0]:declared[0]] = qemu_virtio_declarations(disk_count)
    return " ".join(words) + " " + encode_guest_args(command)


def probe_cmdline(kernel, rootfs, disks=()):
    """vmm-run's kernel command line, read back from a guest, checked
    against this module's encoding of the guest's arguments."""
    command = ["/bin/cat", "/proc/cmdline"]
    progress("reading vmm-run's kernel command line from a guest")
    result = run_guest(vmm_run_argv(kernel, rootfs, 256, command, disks), marker=None)
    lines = [l for l in result["output"] if " -- " in l]
    if result["status"] != 0 or len(lines) != 1:
        raise SystemExit("bench: cannot read vmm-run's kernel command line (status %s): %s"
                         % (result["status"], result["output"] + [result["stderr"]]))
    cmdline = lines[0].strip()
    if not cmdline.endswith(" " + encode_guest_args(command)):
        raise SystemExit("bench: the guest argument encoding differs from vmm-run's: %r" % cmdline)
    return cmdline


# --- observing a running monitor

def parse_smaps(text):
    """[(size_kib, name, rss_kib, pss_kib)] for each mapping in smaps."""
    vmas, current = [], None
    for line in text.splitlines():
        m = re.match(r"^([0-9a-f]+)-([0-9a-f]+) \S+ \S+ \S+ \S+\s*(.*)$", line)
        if m:
            current = [(int(m[2], 16) - int(m[1], 16)) // 1024, m[3], 0, 0]
            vmas.append(current)
        elif line.startswith("Rss:"):
            current[2] = int(line.split()[1])
        elif line.startswith("Pss:"):
            current[3] = int(line.split()[1])
    return [tuple(v) for v in vmas]


def memory(smaps_text, guest_mib):
    """The monitor's RSS and PSS, and the same without guest RAM (what
    the guest touched there is the guest's, not the monitor's overhead).
    Guest RAM is the one anonymous mapping of the guest's size (QEMU may
    round up by an alignment of at most 2 MiB)."""
    vmas = parse_smaps(smaps_text)
    guest_kib = guest_mib * 1024
    ram = [v for v in vmas if v[1] == "" and guest_kib <= v[0] <= guest_kib + 2048]
    if len(ram) != 1:
        raise RuntimeError("cannot tell guest RAM among %d mappings of about %d MiB"
                           % (len(ram), guest_mib))
    rss, pss = sum(v[2] for v in vmas), sum(v[3] for v in vmas)
    return {"rss_kib": rss, "pss_kib": pss,
            "guest_rss_kib": ram[0][2], "guest_pss_kib": ram[0][3],
            "overhead_rss_kib": rss - ram[0][2], "overhead_pss_kib": pss - ram[0][3]}


DEBUGFS = "/sys/kernel/debug"


def kvm_stats_available():
    """KVM's per-VM statistics live in debugfs. Inside the test host (a
    throwaway VM) it is mounted if needed; elsewhere only read if there."""
    kvm = os.path.join(DEBUGFS, "kvm")
    if not os.path.isdir(kvm) and os.environ.get("EROVM_IN_TESTHOST") == "1":
        subprocess.run(["mount", "-t", "debugfs", "debugfs", DEBUGFS], check=False,
                       stderr=subprocess.DEVNULL)
    return os.path.isdir(kvm)


def kvm_stats(pid):
    """The exit counters of @pid's VM (/sys/kernel/debug/kvm/PID-FD/), or
    None when there is no such directory."""
    kvm = os.path.join(DEBUGFS, "kvm")
    try:
        dirs = [d for d in os.listdir(kvm) if d.startswith("%d-" % pid)]
    except OSError:
        return None
    if len(dirs) != 1:
        return None
    counters = {}
    vm_dir = os.path.join(kvm, dirs[0])
    for name in os.listdir(vm_dir):
        if "exits" in name or name.startswith("pf_") or name in ("insn_emulation", "hypercalls"):
            try:
                with open(os.path.join(vm_dir, name)) as f:
                    counters[name] = int(f.read().split()[0])
            except (OSError, ValueError, IndexError):
                pass
    return counters


def run_guest(argv, marker=MARKER, snapshot=None, timeout=300):
    """Runs a monitor whose guest prints its command's output on the
    monitor's stdout. Returns, in ms from just before the spawn, when
    @marker first appeared on a line ("marker_ms") and when the monitor
    exited ("exit_ms"), its status, output lines and stderr. With
    @snapshot = guest MiB, reads the monitor's memory and KVM statistics
    as soon as the marker appears and kills it then (exit_ms is None).
    A monitor still running after @timeout seconds is killed, and
    "timed_out" says so."""
    with tempfile.TemporaryFile() as err:
        start = time.monotonic_ns()
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=err, start_new_session=True)
        result = {"argv": " ".join(shlex.quote(a) for a in argv), "marker_ms": None,
                  "exit_ms": None, "output": [], "timed_out": False}

        def expire():
            result["timed_out"] = True
            os.killpg(proc.pid, signal.SIGKILL)
        timer = threading.Timer(timeout, expire)
        timer.start()
        try:
            for line in proc.stdout:
                text = line.decode(errors="replace").rstrip("\n")
                result["output"].append(text)
                if marker and result["marker_ms"] is None and marker in text:
                    result["marker_ms"] = (time.monotonic_ns() - start) / 1e6
                    if snapshot:
                        with open("/proc/%d/smaps" % proc.pid) as f:
                            smaps = f.read()
                        result["kvm_stats"] = kvm_stats(proc.pid)
                        result["memory"] = memory(smaps, snapshot)
                        proc.kill()
            proc.wait()
            if not snapshot:
                result["exit_ms"] = (time.monotonic_ns() - start) / 1e6
        finally:
            timer.cancel()
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        err.seek(0)
        result["stderr"] = err.read().decode(errors="replace")
        result["status"] = proc.returncode
    if result["timed_out"]:
        result["stderr"] += "\nbench: killed after %d s: %s" % (timeout, result["argv"])
    return result


def boot_time_lines(stderr):
    """vmm-run --boot-time's report: {"first KVM_RUN": ms, ..., "exits":
    {"io": n, "mmio": n}}."""
    report = {}
    for line in stderr.splitlines():
        m = re.match(r"boot-time: (.+?)\s+([0-9.]+) ms$", line)
        if m:
            report[m[1]] = float(m[2])
        m = re.match(r"boot-time: exits: (.*)$", line)
        if m:
            report["exits"] = {kind: int(n) for n, kind in
                               (part.split() for part in m[1].split(","))}
    return report
