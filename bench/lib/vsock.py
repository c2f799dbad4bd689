"""vsock: stream throughput both ways and 64-byte round trips between the
host and the guest, erovm's virtio-vsock against QEMU's vhost-vsock.

The guest boots the product root image with tests/guest/vsock-tool on a
small EROFS disk (serial "tools", as tests/e2e/vsock.test does) and runs
`vsock-tool serve PORT 3`: three connections from the host, one after
another, each asking by its first line:

  sink        host -> guest: the host sends SIZE bytes and shuts down its
              write side, the guest answers the count it read
  source N    guest -> host: the guest sends N bytes and closes
  echo        round trips: the host sends 64 bytes and waits for them back,
              ROUNDS times (after a few unmeasured ones)

The host end (this module, in the test host) times each from its first
byte to the last answer, so connection set-up is not in the figures. It
reaches the guest through erovm's hybrid bridge (vmm-run --vsock PATH,
"CONNECT PORT\\n" / "OK N\\n"), or QEMU's vhost-vsock device with AF_VSOCK to
the guest's CID. QEMU needs /dev/vhost-vsock (the vhost_vsock module):
without it erovm is measured alone and the notes say why there is no ratio.
"""

import os
import shutil
import socket
import statistics
import subprocess
import tempfile
import threading
import time

import monitors

MEM_MIB = 256
PORT = 5000
GUEST_CID = 3
MESSAGE = 64
WARMUP_ROUNDS = 10
CONNECT_TIMEOUT_S = 240
TOOLS_SERIAL = "tools"
MARKER = "vsock-bench-served"


def unavailable():
    """Why the suite cannot run here, or None."""
    out = subprocess.run([monitors.env_path("vmm_run"), "--help"], capture_output=True,
                         text=True, check=False)
    if "--vsock" not in out.stdout:
        return "vsock: not available in this vmm-run (no --vsock option)"
    if not os.path.exists(monitors.env_path("vsock_tool")):
        return "vsock: %s is missing (make all)" % monitors.env_path("vsock_tool")
    return None


def parse_bridge_reply(line):
    """The host-side port from the bridge's "OK <port>" answer; ValueError
    for anything else (the guest refused, or the bridge is not erovm's)."""
    words = line.split(" ")
    if len(words) != 2 or words[0] != "OK" or not (words[1].isascii() and words[1].isdigit()):
        raise ValueError("the vsock bridge answered %r, not \"OK <port>\"" % line)
    return int(words[1])


def mib_per_s(size, ns):
    return size / (1 << 20) / (ns / 1e9)


def median_us(samples_ns):
    return statistics.median(samples_ns) / 1e3


def peer_unavailable():
    """Why QEMU's vhost-vsock cannot be used here, or None. In the test
    host (a throwaway VM) the module is loaded if it can be."""
    if shutil.which(monitors.QEMU) is None:
        return "%s is not installed" % monitors.QEMU
    modules = os.environ.get("EROVM_VHOST_MODULES")
    if not os.path.exists("/dev/vhost-vsock") and os.environ.get("EROVM_IN_TESTHOST") == "1":
        if not modules:
            return ("the test host has no vhost_vsock module (its initramfs carries only "
                    "the modules tests/testhost/prepare lists) and bench/vhost-modules "
                    "could not fetch it")
        load_modules(modules)
    if not os.path.exists("/dev/vhost-vsock"):
        return "this kernel (%s) offers no /dev/vhost-vsock" % os.uname().release
    if not os.access("/dev/vhost-vsock", os.R_OK | os.W_OK):
        return "/dev/vhost-vsock is not readable and writable here"
    return None


def load_modules(directory):
    """insmod the modules bench/vhost-modules kept, in its load-order; one
    already there (built in, or loaded) is no error."""
    with open(os.path.join(directory, "load-order")) as f:
        names = f.read().split()
    for name in names:
        out = subprocess.run(["insmod", os.path.join(directory, name)], capture_output=True,
                             text=True, check=False)
        if out.returncode != 0 and "File exists" not in out.stderr:
            monitors.progress("insmod %s: %s" % (name, out.stderr.strip()))


# --- the host end

def _read_line(sock, limit=64):
    """One line, byte by byte: what follows it is the guest's data."""
    line = b""
    while not line.endswith(b"\n"):
        byte = sock.recv(1)
        if not byte or len(line) >= limit:
            raise ConnectionError("closed before the end of a line: %r" % line)
        line += byte
    return line[:-1].decode(errors="replace")


def connect_bridge(path):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(path)
        sock.sendall(b"CONNECT %d\n" % PORT)
        parse_bridge_reply(_read_line(sock))
    except (OSError, ValueError):
        sock.close()
        raise ConnectionError("no connection through %s yet" % path)
    return sock


def connect_vsock(cid):
    sock = socket.socket(socket.AF_VSOCK, socket.SOCK_STREAM)
    try:
        sock.connect((cid, PORT))
    except OSError:
        sock.close()
        raise ConnectionError("no connection to CID %d yet" % cid)
    return sock


def _connect(connect, deadline):
    """@connect retried while the guest boots and until it listens."""
    while True:
        try:
            return connect()
        except ConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def _recv_exactly(sock, view):
    got = 0
    while got < len(view):
        n = sock.recv_into(view[got:])
        if n == 0:
            raise ConnectionError("the guest closed after %d of %d bytes" % (got, len(view)))
        got += n


def measure_host_end(connect, size, rounds):
    """The three measurements against a guest running `vsock-tool serve`:
    {"h2g": MiB/s, "g2h": MiB/s, "rtt": median µs}."""
    deadline = time.monotonic() + CONNECT_TIMEOUT_S
    chunk = memoryview(bytearray(b"\xa5" * (1 << 20)))
    out = {}

    sock = _connect(connect, deadline)
    with sock:
        sock.sendall(b"sink\n")
        start = time.monotonic_ns()
        left = size
        while left:
            sock.sendall(chunk[:min(left, len(chunk))])
            left -= min(left, len(chunk))
        sock.shutdown(socket.SHUT_WR)
        reply = _read_line(sock)
        out["h2g"] = mib_per_s(size, time.monotonic_ns() - start)
        if reply != str(size):
            raise RuntimeError("host -> guest: the guest read %s bytes of %d" % (reply, size))

    sock = _connect(connect, deadline)
    with sock:
        sock.sendall(b"source %d\n" % size)
        start = time.monotonic_ns()
        got = 0
        while True:
            n = sock.recv_into(chunk)
            if n == 0:
                break
            got += n
        out["g2h"] = mib_per_s(size, time.monotonic_ns() - start)
        if got != size:
            raise RuntimeError("guest -> host: %d bytes of %d arrived" % (got, size))

    sock = _connect(connect, deadline)
    with sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, MESSAGE)
        sock.sendall(b"echo\n")
        message, back = os.urandom(MESSAGE), memoryview(bytearray(MESSAGE))
        samples = []
        for i in range(WARMUP_ROUNDS + rounds):
            start = time.monotonic_ns()
            sock.sendall(message)
            _recv_exactly(sock, back)
            if i >= WARMUP_ROUNDS:
                samples.append(time.monotonic_ns() - start)
            if back != message:
                raise RuntimeError("round trip %d: the echo differs" % i)
        out["rtt"] = median_us(samples)
    return out


def run_one(argv, connect, size, rounds):
    """Boots the guest, measures its vsock from the host while it runs."""
    host = {}

    def host_end():
        try:
            host.update(measure_host_end(connect, size, rounds))
        except (OSError, RuntimeError) as e:
            host["error"] = str(e)
    thread = threading.Thread(target=host_end, daemon=True)
    thread.start()
    run = monitors.run_guest(argv, marker=None, timeout=CONNECT_TIMEOUT_S + 120)
    thread.join(timeout=30)
    if run["status"] != 0 or "error" in host or thread.is_alive() or \
            not any(MARKER in line for line in run["output"]):
        raise SystemExit("bench: vsock guest failed (status %s, host end: %s):\n%s\n%s" % (
            run["status"], host.get("error", "not finished" if thread.is_alive() else "ok"),
            "\n".join(run["output"][-20:]), run["stderr"][-2000:]))
    return host


METRICS = (  # key, title, unit, which is better
    ("h2g", "host->guest throughput", "MiB/s", "higher"),
    ("g2h", "guest->host throughput", "MiB/s", "higher"),
    ("rtt", "%d-byte round trip (median)" % MESSAGE, "us", "lower"),
)


def guest(pairs, quick, checkpoint):
    kernel = monitors.env_path("guest_kernel")
    rootfs = monitors.env_path("rootfs")
    size = (16 if quick else 64) << 20
    rounds = 200 if quick else 1000
    peer_missing = peer_unavailable()
    command = ["/bin/sh", "-c",
               "set -e; for b in /sys/block/vd*; do [ \"$(cat $b/serial)\" = %s ] && "
               "dev=/dev/${b##*/}; done; mkdir -p /run/tools; "
               "mount -t erofs -o ro \"$dev\" /run/tools; "
               "/run/tools/vsock-tool serve %d 3; echo %s" % (TOOLS_SERIAL, PORT, MARKER)]
    with tempfile.TemporaryDirectory(prefix="erovm-bench-vsock.") as tmp:
        os.mkdir(os.path.join(tmp, "tools"))
        shutil.copy(monitors.env_path("vsock_tool"), os.path.join(tmp, "tools", "vsock-tool"))
        tools_image = os.path.join(tmp, "tools.erofs")
        subprocess.run(["mkfs.erofs", "--quiet", "-T0", tools_image, os.path.join(tmp, "tools")],
                       check=True, stdout=subprocess.DEVNULL)
        tools = monitors.Disk(tools_image, read_only=True, serial=TOOLS_SERIAL)
        bridge = os.path.join(tmp, "v.sock")
        runs = {"erovm": (monitors.vmm_run_argv(kernel, rootfs, MEM_MIB, command, [tools],
                                                ["--vsock", bridge,
                                                 "--vsock-cid", str(GUEST_CID)]),
                          lambda: connect_bridge(bridge))}
        cmdline = None
        if not peer_missing:
            cmdline = monitors.probe_cmdline(kernel, rootfs, [tools])
            root = monitors.Disk(rootfs, read_only=True, serial="rootfs")
            argv = monitors.qemu_argv(kernel, MEM_MIB,
                                      monitors.qemu_cmdline(cmdline, 3, command), [root, tools])
            argv += ["-device", "vhost-vsock-device,guest-cid=%d" % GUEST_CID]
            runs["qemu"] = (argv, lambda: connect_vsock(GUEST_CID))
        samples = {name: {key: [] for key, _, _, _ in METRICS} for name in ("erovm", "qemu")}

        def report():
            return report_of(samples, size, rounds, peer_missing, cmdline, runs)

        for pair in range(pairs):
            for name in ("erovm", "qemu"):
                if name not in runs:
                    for key in samples[name]:
                        samples[name][key].append(None)
                    continue
                got = run_one(*runs[name], size, rounds)
                monitors.progress("round %d %s: h2g %.1f MiB/s, g2h %.1f MiB/s, rtt %.0f us"
                                  % (pair + 1, name, got["h2g"], got["g2h"], got["rtt"]))
                for key in samples[name]:
                    samples[name][key].append(got[key])
            checkpoint(report(), pair + 1)
    return report()


def report_of(samples, size, rounds, peer_missing, cmdline, runs):
    notes = ["%d MiB each way, %d round trips of %d bytes (after %d unmeasured), timed by "
             "the host end from its first byte; erovm through its Unix-socket bridge, QEMU "
             "through vhost-vsock and AF_VSOCK." % (size >> 20, rounds, MESSAGE, WARMUP_ROUNDS)]
    if peer_missing:
        notes.append("no QEMU figures, so no ratios: %s." % peer_missing)
    comparisons = [{
        "key": "%s_erovm_qemu" % key, "title": title, "unit": unit, "better": better,
        "a": "erovm", "b": "qemu",
        "a_samples": samples["erovm"][key], "b_samples": samples["qemu"][key],
    } for key, title, unit, better in METRICS]
    return {"comparisons": comparisons, "notes": notes,
            "extra": {"samples": samples, "peer_unavailable": peer_missing,
                      "kernel_cmdline": cmdline,
                      "argv": {name: argv for name, (argv, _) in runs.items()}}}
