"""A 512 MiB layer copied across registries by the real entrypoint in its own process:
the peak resident memory of that process stays under 150 MiB, because the blob is
streamed through in pieces and never held.

The peak is the kernel's ``VmHWM`` of the process, read by the process itself as it exits
(an ``atexit`` hook around ``entrypoint.py``). Not ``ru_maxrss`` from ``wait4``: Linux
folds the *parent's* resident size into it when the child is started by ``vfork`` +
``exec`` (a large pytest process made a 45 MiB copy read as 300 MiB). VmRSS is also
sampled every 0.1 s, to say when the peak was.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from promote.frontdoor.actions import parse_github_output
from testkit.engine import ENTRYPOINT, ROOT, entrypoint_env

SHA = "0123456789abcdef0123456789abcdef01234567"
STAGING = f"staging-{SHA[:7]}-{int(time.time()) - 600}"
LAYER = 512 * 1024 * 1024
LIMIT_MIB = 150


@pytest.mark.e2e
@pytest.mark.registry
def test_a_512_mib_layer_copies_under_150_mib_rss(
    tmp_path: Path, registry_factory: object, repo_path: str
) -> None:
    source = registry_factory("none")  # type: ignore[operator]
    target = registry_factory("basic")  # type: ignore[operator]
    seeded = source.seeder().oci_image(f"staging/{repo_path}", STAGING, layer_size=LAYER)
    inputs = {
        "image": f"{target.host}/{repo_path}",
        "source-image": f"{source.host}/staging/{repo_path}",
        "source-tag": STAGING,
        "username": target.username,
        "password": target.password,
    }
    limits = {"PROMOTE_REGISTRY_DEADLINE": "600", "PROMOTE_REGISTRY_TIMEOUT": "120"}
    env, output, _summary = entrypoint_env(tmp_path, inputs, limits)
    hwm_file = tmp_path / "vmhwm"
    wrapper = (
        "import atexit, pathlib, runpy, sys\n"
        "def report():\n"
        "    status = pathlib.Path('/proc/self/status').read_text()\n"
        "    hwm = [ln.split()[1] for ln in status.splitlines() if ln.startswith('VmHWM:')]\n"
        f"    pathlib.Path({str(hwm_file)!r}).write_text(hwm[0])\n"
        "atexit.register(report)\n"
        f"sys.argv = [{str(ENTRYPOINT)!r}]\n"
        "runpy.run_path(sys.argv[0], run_name='__main__')\n"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", wrapper],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    assert process.stdout is not None
    # the log, with the process's resident size sampled every 0.1 s (where a peak was)
    samples: list[tuple[float, int, int]] = []
    lines: list[str] = []
    started = time.monotonic()

    def sample() -> None:
        while process.poll() is None:
            try:
                status = Path(f"/proc/{process.pid}/status").read_text()
            except OSError:
                return
            rss = next(
                (int(ln.split()[1]) for ln in status.splitlines() if ln.startswith("VmRSS:")), 0
            )
            samples.append((time.monotonic() - started, rss, len(lines)))
            time.sleep(0.1)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    for raw in process.stdout:
        lines.append(raw.decode(errors="replace").rstrip("\n"))
    process.stdout.close()
    process.wait()
    sampler.join(timeout=5)
    log = "\n".join(lines)
    assert process.returncode == 0, log
    peak_mib = int(hwm_file.read_text()) / 1024  # VmHWM is in KiB
    top = max(samples, key=lambda s: s[1], default=(0.0, 0, 0))
    where = f"sampled peak {top[1] / 1024:.1f} MiB at {top[0]:.1f}s, after log line {top[2]}"
    print(f"peak RSS of a {LAYER >> 20} MiB layer copy: {peak_mib:.1f} MiB ({where})")
    assert peak_mib < LIMIT_MIB, f"peak RSS {peak_mib:.1f} MiB ({where}); log:\n{log}"
    counts = json.loads(parse_github_output(output.read_text())["copy"])
    assert counts["blobs-copied"] == 2 and counts["bytes-copied"] > LAYER
    data, _t, digest = target.seeder().raw_manifest(repo_path, seeded.digest)
    assert (data, digest) == (seeded.data, seeded.digest)
    head = target.seeder().request(
        "HEAD", repo_path, target.seeder()._api(repo_path, "blobs", seeded.layer_digests[0])
    )
    assert int(head.headers["Content-Length"]) == LAYER
