"""boot: a whole Linux boot, vmm-run against QEMU microvm.

Both boot the same bzImage straight into the same EROFS root (virtio-blk
over virtio-mmio) with the same kernel command line (apart from the device
declarations) and run the same command through erovm's guest-init, whose
first line of output is the boot marker. Timed from just before the spawn
to that line on the monitor's stdout and to the monitor's exit.

A second run of each, killed at the marker, reads KVM's own exit counters
of the VM (debugfs), the exits during boot by reason; vmm-run also reports
the exits it handled itself in user space (--boot-time).
"""

import monitors
import stats

MEM_MIB = 256
# KVM's counters compared (those both monitors' VMs have).
KVM_COUNTERS = ("exits", "io_exits", "mmio_exits", "halt_exits", "irq_exits",
                "irq_window_exits", "signal_exits", "insn_emulation", "pf_taken", "pf_fixed")


def guest(pairs, quick, checkpoint):
    kernel = monitors.env_path("guest_kernel")
    rootfs = monitors.env_path("rootfs")
    root = monitors.Disk(rootfs, read_only=True, serial="rootfs")
    cmdline = monitors.probe_cmdline(kernel, rootfs)
    have_stats = monitors.kvm_stats_available()
    timed = ["/bin/echo", monitors.MARKER]
    held = ["/bin/sh", "-c", "echo %s; sleep 60" % monitors.MARKER]
    def argvs(command):
        return {
            "erovm": monitors.vmm_run_argv(kernel, rootfs, MEM_MIB, command,
                                           extra=["--boot-time"]),
            "qemu": monitors.qemu_argv(kernel, MEM_MIB,
                                       monitors.qemu_cmdline(cmdline, 1, command), [root]),
        }
    timed_argv, held_argv = argvs(timed), argvs(held)

    def new(key, title, unit="ms"):
        return {"key": key, "title": title, "unit": unit, "better": "lower",
                "a": "erovm", "b": "qemu", "a_samples": [], "b_samples": []}
    to_marker = new("boot_marker", "exec -> boot marker (guest command output)")
    to_exit = new("boot_exit", "exec -> VM exited")
    counters = {name: new("kvm_" + name, "KVM %s during boot" % name,
                          "count") for name in KVM_COUNTERS}
    own_exits = {"io": [], "mmio": []}
    kvm_raw = {"erovm": [], "qemu": []}
    own_times = []

    def report():
        comparisons = [to_marker, to_exit]
        if have_stats:
            comparisons += [c for c in counters.values()
                            if any(v is not None for v in c["a_samples"] + c["b_samples"])]
        notes = ["Boot marker: the first line the guest's command prints, on the monitor's stdout."]
        if not have_stats:
            notes.append("KVM's exit counters: no /sys/kernel/debug/kvm here (debugfs is only "
                         "mounted by the bench inside the test host), so not reported.")
        return {
            "comparisons": comparisons,
            "notes": notes,
            "extra": {
                "kvm_stats_at_marker": kvm_raw,
                "vmm_run_user_space_exits": {k: stats.summary(v) for k, v in own_exits.items()},
                "vmm_run_boot_time_ms": {k: stats.summary([t.get(k) for t in own_times])
                                         for k in (own_times[0] if own_times else {})},
                "kernel_cmdline": {"erovm": cmdline,
                                   "qemu": monitors.qemu_cmdline(cmdline, 1, timed)},
                "argv": {k: v for k, v in timed_argv.items()},
            },
        }

    for pair in range(pairs):
        for side, name in (("a", "erovm"), ("b", "qemu")):
            run = monitors.run_guest(timed_argv[name])
            monitors.progress("pair %d %s: marker %s ms, exit %s ms"
                              % (pair + 1, name, run["marker_ms"], run["exit_ms"]))
            if run["marker_ms"] is None or run["status"] != 0:
                raise SystemExit("bench: %s did not boot (status %s):\n%s\n%s" % (
                    name, run["status"], "\n".join(run["output"][-20:]), run["stderr"][-2000:]))
            to_marker[side + "_samples"].append(run["marker_ms"])
            to_exit[side + "_samples"].append(run["exit_ms"])
            if name == "erovm":
                times = monitors.boot_time_lines(run["stderr"])
                own_times.append({k: v for k, v in times.items() if k != "exits"})
                for kind in own_exits:
                    own_exits[kind].append(times.get("exits", {}).get(kind))
        # The counters vary little: a quick run reads them once.
        if have_stats and not (quick and pair > 0):
            for side, name in (("a", "erovm"), ("b", "qemu")):
                run = monitors.run_guest(held_argv[name], snapshot=MEM_MIB)
                if run["marker_ms"] is None:
                    raise SystemExit("bench: %s did not boot:\n%s\n%s" % (
                        name, "\n".join(run["output"][-20:]), run["stderr"][-2000:]))
                monitors.progress("pair %d %s: KVM counters at the marker (%s ms)"
                                  % (pair + 1, name, run["marker_ms"]))
                for counter, c in counters.items():
                    c[side + "_samples"].append((run.get("kvm_stats") or {}).get(counter))
                kvm_raw[name].append(run.get("kvm_stats"))
        checkpoint(report(), pair + 1)
    return report()
