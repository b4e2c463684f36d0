"""A 512 MiB layer copied across registries by the real entrypoint in its own process:
the peak resident memory of that process (``ru_maxrss`` from ``wait4``) stays under
150 MiB, because the blob is streamed through in pieces and never held."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from promote.actions import parse_github_output

ROOT = Path(__file__).resolve().parents[2]
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
    output = tmp_path / "github_output"
    output.write_text("")
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "GITHUB_OUTPUT": str(output),
        "INPUT_IMAGE": f"{target.host}/{repo_path}",
        "INPUT_SOURCE-IMAGE": f"{source.host}/staging/{repo_path}",
        "INPUT_SOURCE-TAG": STAGING,
        "INPUT_USERNAME": target.username,
        "INPUT_PASSWORD": target.password,
        "PROMOTE_REGISTRY_DEADLINE": "600",
        "PROMOTE_REGISTRY_TIMEOUT": "120",
    }
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "entrypoint.py")],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    assert process.stdout is not None
    log = process.stdout.read().decode(errors="replace")
    process.stdout.close()
    _pid, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    assert process.returncode == 0, log
    peak_mib = usage.ru_maxrss / 1024  # KiB on Linux
    print(f"peak RSS of a {LAYER >> 20} MiB layer copy: {peak_mib:.1f} MiB")
    assert peak_mib < LIMIT_MIB, f"peak RSS {peak_mib:.1f} MiB"
    counts = json.loads(parse_github_output(output.read_text())["copy"])
    assert counts["blobs-copied"] == 2 and counts["bytes-copied"] > LAYER
    data, _t, digest = target.seeder().raw_manifest(repo_path, seeded.digest)
    assert (data, digest) == (seeded.data, seeded.digest)
    head = target.seeder().request(
        "HEAD", repo_path, target.seeder()._api(repo_path, "blobs", seeded.layer_digests[0])
    )
    assert int(head.headers["Content-Length"]) == LAYER
