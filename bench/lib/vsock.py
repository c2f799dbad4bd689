"""vsock: stream throughput both ways and 64-byte round trips between the
host and the guest, erovm's virtio-vsock against QEMU's vhost-vsock.

The measurements are not written yet: the suite reports itself
unavailable (also when `vmm-run --help` offers no --vsock) and is skipped.
"""

import subprocess

import monitors


def unavailable():
    """Why the suite cannot run here, or None."""
    out = subprocess.run([monitors.env_path("vmm_run"), "--help"], capture_output=True,
                         text=True, check=False)
    if "--vsock" not in out.stdout:
        return "vsock: not available in this vmm-run (no --vsock option)"
    return "vsock: the suite's measurements are not written yet"
