"""block: disk throughput inside the guest, with fio (O_DIRECT, libaio).

The guest boots the bench image (bench/mkimage: the root image plus
Debian's fio and its libraries) and runs bench/block.fio on a data disk
found by its serial: sequential 1 MiB reads and writes (queue depth 8) and
random 4 KiB reads at queue depth 1 and 32, one job after another. The
same data is offered three ways, in alternation:

  plain  vmm-run --disk FILE
  flat   vmm-run --disk extents=A:B:C, FILE's bytes cut into three files
         at 4 KiB-aligned offsets that are not 1 MiB-aligned, so some
         large requests straddle an extent boundary
  qemu   QEMU virtio-blk-device, aio=io_uring, an I/O thread

and reported as flat/plain (issue 4 wants the flat path within 5% of the
plain one; reported, not asserted) and erovm/QEMU (plain against qemu).
The files live in the host's (or test host's) temporary directory, whose
file system the result names: a tmpfs there measures the monitors' paths,
not a storage device.
"""

import os
import subprocess
import tempfile

import monitors

MEM_MIB = 256
SERIAL = "bench-data"
JOBS = (  # fio job name, what is measured, unit
    ("seqread", "read", "MiB/s"),
    ("seqwrite", "write", "MiB/s"),
    ("randread-qd1", "read", "IOPS"),
    ("randread-qd32", "read", "IOPS"),
)
# fio --terse-version=3 fields (0-based): the read block starts at 5
# (kb, bandwidth KiB/s, iops, runtime ms, ...), the write block at 46.
TERSE_BLOCK = {"read": 5, "write": 46}


def parse_fio(lines):
    """{job: {"MiB/s": x, "IOPS": y}} from fio's terse lines."""
    jobs = {}
    for line in lines:
        fields = line.strip().split(";")
        if len(fields) < 50 or fields[0] != "3" or not fields[1].startswith("fio-"):
            continue
        for job, direction, _ in JOBS:
            if fields[2] == job:
                base = TERSE_BLOCK[direction]
                jobs[job] = {"MiB/s": float(fields[base + 1]) / 1024,
                             "IOPS": float(fields[base + 2])}
        if fields[4] != "0":
            raise RuntimeError("fio job %s failed with error %s" % (fields[2], fields[4]))
    return jobs


def make_data(directory, size):
    """The plain file and its three extents, the same bytes."""
    chunk = os.urandom(1 << 20)
    plain = os.path.join(directory, "plain.img")
    with open(plain, "wb") as f:
        for _ in range(size >> 20):
            f.write(chunk)
    third = size // 3 // 4096 * 4096
    cuts = (0, third, 2 * third, size)
    extents = []
    with open(plain, "rb") as f:
        for i in range(3):
            path = os.path.join(directory, "extent%d.img" % i)
            f.seek(cuts[i])
            with open(path, "wb") as out:
                out.write(f.read(cuts[i + 1] - cuts[i]))
            extents.append(path)
    return plain, extents, list(cuts)


def filesystem(path):
    out = subprocess.run(["stat", "-f", "-c", "%T", path], capture_output=True, text=True)
    return out.stdout.strip() or "unknown"


def guest(pairs, quick, checkpoint):
    kernel = monitors.env_path("guest_kernel")
    image = monitors.env_path("bench_image")
    size = (64 if quick else 256) << 20
    runtime, ramp = (1, 0) if quick else (5, 1)
    with tempfile.TemporaryDirectory(prefix="erovm-bench-block.") as tmp:
        monitors.progress("writing %d MiB of data, twice" % (size >> 20))
        plain, extents, cuts = make_data(tmp, size)
        where = filesystem(tmp)
        disks = {
            "plain": monitors.Disk(plain, serial=SERIAL),
            "flat": monitors.Disk(extents=extents, serial=SERIAL),
            "qemu": monitors.Disk(plain, serial=SERIAL),
        }
        root = monitors.Disk(image, read_only=True, serial="rootfs")
        command = ["/bin/sh", "/bench/block", SERIAL, str(runtime), str(ramp)]
        cmdline = monitors.probe_cmdline(kernel, image, [disks["plain"]])
        argvs = {
            "plain": monitors.vmm_run_argv(kernel, image, MEM_MIB, command, [disks["plain"]]),
            "flat": monitors.vmm_run_argv(kernel, image, MEM_MIB, command, [disks["flat"]]),
            "qemu": monitors.qemu_argv(kernel, MEM_MIB,
                                       monitors.qemu_cmdline(cmdline, 2, command),
                                       [root, disks["qemu"]]),
        }
        results = {name: {job: {"MiB/s": [], "IOPS": []} for job, _, _ in JOBS}
                   for name in argvs}

        def report():
            comparisons = []
            for a, b, label in (("flat", "plain", "flat/plain"), ("plain", "qemu", "erovm/qemu")):
                for job, _, unit in JOBS:
                    comparisons.append({
                        "key": "%s_%s_%s" % (job, a, b), "title": "%s %s" % (job, label),
                        "unit": unit, "better": "higher",
                        "a": "erovm" if a == "plain" else "erovm-flat",
                        "b": "qemu" if b == "qemu" else "erovm-plain",
                        "a_samples": results[a][job][unit], "b_samples": results[b][job][unit],
                    })
            return {
                "comparisons": comparisons,
                "notes": ["fio %ds per job after %ds ramp, %d MiB disk in %s (%s); extents cut "
                          "at %s." % (runtime, ramp, size >> 20, os.path.dirname(tmp) or "/",
                                      where, ", ".join(str(c) for c in cuts[1:-1]))],
                "extra": {"samples": results, "kernel_cmdline": cmdline,
                          "argv": argvs, "data_filesystem": where},
            }

        for pair in range(pairs):
            for name, argv in argvs.items():
                run = monitors.run_guest(argv, marker=None)
                jobs = parse_fio(run["output"])
                monitors.progress("round %d %s: %s" % (pair + 1, name, ", ".join(
                    "%s %.0f %s" % (job, jobs[job][unit], unit)
                    for job, _, unit in JOBS if job in jobs)))
                if run["status"] != 0 or len(jobs) != len(JOBS):
                    raise SystemExit("bench: fio in the %s guest failed (status %s):\n%s\n%s" % (
                        name, run["status"], "\n".join(run["output"][-20:]),
                        run["stderr"][-2000:]))
                for job, values in jobs.items():
                    for unit, value in values.items():
                        results[name][job][unit].append(value)
            checkpoint(report(), pair + 1)
        return report()
