"""startup: what a monitor costs before the guest runs.

Native phase (on this host's /dev/kvm, which need not boot Linux): for
128 MiB, 256 MiB and 2 GiB guests, exec -> first KVM_RUN with the real
guest kernel and root disk, and the monitor's memory there (RSS and PSS
minus the guest RAM it touched, e.g. the kernel it loaded); and with a tiny
guest (bench/tiny-guest.S: its first instructions write a port, then "K" to
the serial port) exec -> the first guest exit and exec -> that output on
the monitor's stdout. Timed by bench/kvm-stopwatch, the same way for both
monitors. QEMU runs its firmware (qboot) before the kernel, so its first
exit is the firmware's: the tiny guest's output is the comparable
"kernel running" point.

Guest phase (a Linux boot: test host or hardware KVM): the same memory
figures once the guest has booted and its command runs.
"""

import os
import subprocess
import tempfile

import monitors
import stats

SIZES_MIB = (128, 256, 2048)
BOOTED_MIB = 256


def stopwatch(argv, *options):
    """kvm-stopwatch's "name value" lines as a dict of numbers."""
    out = subprocess.run([monitors.tool("kvm-stopwatch"), *options, "--", *argv],
                         stdin=subprocess.DEVNULL, capture_output=True, text=True,
                         timeout=120, check=False)
    if out.returncode != 0:
        raise SystemExit("bench: kvm-stopwatch failed for %s:\n%s%s"
                         % (" ".join(argv), out.stdout, out.stderr))
    return {name: int(value) for name, value in (l.split() for l in out.stdout.splitlines())}


def monitor_argvs(kernel, rootfs, mem, console=False):
    """{monitor: argv} for a guest booting @kernel with @rootfs as /dev/vda;
    with @console its ttyS0 on the monitor's stdout."""
    root = monitors.Disk(rootfs, read_only=True, serial="rootfs")
    # Killed at the first KVM_RUN: the command line only has to be alike.
    cmdline = " ".join(["console=ttyS0 reboot=k panic=-1 root=/dev/vda rootfstype=erofs ro quiet"]
                       + monitors.qemu_virtio_declarations(1)
                       + ["init=/sbin/init", monitors.encode_guest_args(["/bin/true"])])
    return {
        "erovm": monitors.vmm_run_argv(kernel, rootfs, mem, ["/bin/true"],
                                       extra=["--verbose"] if console else []),
        "qemu": monitors.qemu_argv(kernel, mem, cmdline, [root],
                                   console="stdio" if console else "null",
                                   output="null" if console else "stdio"),
    }


def native(pairs, quick, checkpoint):
    kernel = monitors.env_path("guest_kernel")
    rootfs = monitors.env_path("rootfs")
    tiny = monitors.tool("tiny-guest")
    comparisons, first_exits = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        smaps_file = os.path.join(tmp, "smaps")
        for mem in SIZES_MIB:
            def new(key, title, unit):
                c = {"key": "%s_%dM" % (key, mem), "title": "%s, %d MiB" % (title, mem),
                     "unit": unit, "better": "lower", "a": "erovm", "b": "qemu",
                     "a_samples": [], "b_samples": []}
                comparisons.append(c)
                return c
            first_run = new("first_kvm_run", "exec -> first KVM_RUN (Linux)", "ms")
            rss = new("first_run_rss", "RSS at first KVM_RUN - guest RAM", "MiB")
            pss = new("first_run_pss", "PSS at first KVM_RUN - guest RAM", "MiB")
            first_exit = new("first_exit", "exec -> first guest exit (tiny guest)", "ms")
            output = new("tiny_output", "exec -> tiny guest's serial output", "ms")
            linux = monitor_argvs(kernel, rootfs, mem)
            tiny_argv = monitor_argvs(tiny, rootfs, mem, console=True)
            monitors.progress("%d MiB guests" % mem)
            for _ in range(pairs):
                for side, name in (("a", "erovm"), ("b", "qemu")):
                    t = stopwatch(linux[name], "--smaps", smaps_file)
                    with open(smaps_file) as f:
                        mem_use = monitors.memory(f.read(), mem)
                    first_run[side + "_samples"].append(t["first_kvm_run_ns"] / 1e6)
                    rss[side + "_samples"].append(mem_use["overhead_rss_kib"] / 1024)
                    pss[side + "_samples"].append(mem_use["overhead_pss_kib"] / 1024)
                    t = stopwatch(tiny_argv[name])
                    first_exit[side + "_samples"].append(t["first_exit_ns"] / 1e6)
                    first_exits[name] = {"reason": t["first_exit_reason"],
                                         "port": t["first_exit_port"],
                                         "interrupted_runs": t["interrupted_runs"]}
                    t = stopwatch(tiny_argv[name], "--until-output", "K")
                    output[side + "_samples"].append(t["output_ns"] / 1e6)
    return {
        "comparisons": comparisons,
        "notes": ["Native on this host's /dev/kvm. The tiny guest is bench/tiny-guest.S; "
                  "QEMU's first exit is its firmware's (qboot runs before the kernel)."],
        "extra": {"first_exit": first_exits, "argv": {
            name: " ".join(argv) for name, argv in monitor_argvs(kernel, rootfs, 256).items()}},
    }


def guest(pairs, quick, checkpoint):
    kernel = monitors.env_path("guest_kernel")
    rootfs = monitors.env_path("rootfs")
    root = monitors.Disk(rootfs, read_only=True, serial="rootfs")
    cmdline = monitors.probe_cmdline(kernel, rootfs)
    # The command outlives the snapshot: the monitor is killed at the marker.
    command = ["/bin/sh", "-c", "echo %s; sleep 60" % monitors.MARKER]
    argvs = {
        "erovm": monitors.vmm_run_argv(kernel, rootfs, BOOTED_MIB, command),
        "qemu": monitors.qemu_argv(kernel, BOOTED_MIB,
                                   monitors.qemu_cmdline(cmdline, 1, command), [root]),
    }
    def new(key, title):
        return {"key": key, "title": title, "unit": "MiB", "better": "lower",
                "a": "erovm", "b": "qemu", "a_samples": [], "b_samples": []}
    rss = new("booted_rss", "RSS after boot - guest RAM, %d MiB" % BOOTED_MIB)
    pss = new("booted_pss", "PSS after boot - guest RAM, %d MiB" % BOOTED_MIB)
    touched = {"erovm": [], "qemu": []}

    def report():
        return {
            "comparisons": [rss, pss],
            "notes": ["After boot: read when the guest's command printed its first line."],
            "extra": {"guest_ram_touched_mib": {k: stats.summary(v) for k, v in touched.items()},
                      "argv": {k: " ".join(v) for k, v in argvs.items()}},
        }
    for pair in range(pairs):
        for side, name in (("a", "erovm"), ("b", "qemu")):
            run = monitors.run_guest(argvs[name], snapshot=BOOTED_MIB)
            monitors.progress("pair %d %s: booted in %s ms" % (pair + 1, name, run["marker_ms"]))
            if run["marker_ms"] is None:
                raise SystemExit("bench: %s did not boot:\n%s\n%s" % (
                    name, "\n".join(run["output"][-20:]), run["stderr"][-2000:]))
            rss[side + "_samples"].append(run["memory"]["overhead_rss_kib"] / 1024)
            pss[side + "_samples"].append(run["memory"]["overhead_pss_kib"] / 1024)
            touched[name].append(run["memory"]["guest_rss_kib"] / 1024)
        checkpoint(report(), pair + 1)
    return report()
