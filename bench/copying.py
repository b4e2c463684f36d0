"""Promotion across registries and repositories, side by side with ``skopeo copy --all
--preserve-digests`` (``make bench`` section 7).

Two real CNCF distribution registries on loopback, each behind a
:func:`testkit.proxy.counting_proxy` (requests and body bytes counted by kind). The source
holds a 3-platform OCI index whose layers add up to about 256 MiB. Each run copies it into
a fresh repository, so nothing is already there:

* **registry to registry**: ``promote promote --image B/prod/<n> --source-image A/staging/app``
  (the CLI, the action's engine; it writes the immutable and the floating tag) against
  ``skopeo copy --all --preserve-digests docker://A/...:<tag> docker://B/...:<tag>``;
* **same registry, other repository**: the same with B = A (promote mounts every blob).

Measured per run: wall time, requests to both registries, blob bytes downloaded from the
source and uploaded to the target, and whether the target names the source digest.
"""

from __future__ import annotations

import statistics
import subprocess
import time
from collections.abc import Callable
from typing import Any

from bench import images as im
from bench import tools
from testkit.proxy import FaultProxy, counting_proxy

MiB = 1024 * 1024
#: per-platform layer payload: 3 x 85 MiB ~ 256 MiB in all
LAYER_PAYLOAD = 85 * MiB
REPEATS = 3
SCENARIOS = ("registry-to-registry", "same-registry")
COPY_TOOLS = ("promote", "skopeo")


def _promote(source: str, target: str, tag: str) -> float:
    argv = [
        *tools.promote_command(),
        "promote",
        "--image",
        target,
        "--source-image",
        source,
        "--source-tag",
        tag,
        # tags only, as skopeo writes (the promotion record's cost is measured in §8)
        "--record",
        "false",
        "--json",
    ]
    env = tools.clean_env()
    env["PROMOTE_REGISTRY_DEADLINE"] = "600"
    env["PROMOTE_REGISTRY_TIMEOUT"] = "120"
    started = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        raise tools.ToolError(f"promote exited {proc.returncode}:\n{proc.stdout[-3000:]}")
    return seconds


def _skopeo(source: str, target: str, tag: str) -> float:
    argv = [
        "skopeo",
        "copy",
        "-q",
        "--all",
        "--preserve-digests",
        "--src-tls-verify=false",
        "--dest-tls-verify=false",
        f"docker://{source}:{tag}",
        f"docker://{target}:{tag}",
    ]
    started = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True, env=tools.clean_env(), check=False)
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        raise tools.ToolError(f"skopeo exited {proc.returncode}:\n{proc.stderr[-3000:]}")
    return seconds


def _measure(
    scenario: str,
    tool: str,
    i: int,
    pa: FaultProxy,
    target_proxy: FaultProxy,
    target_url: str,
    repo: str,
    tag: str,
    pushed: im.Pushed,
) -> dict[str, Any]:
    """One run of ``tool``: wall time, requests and bytes through both proxies."""
    target_repo = f"prod/{tool}-{scenario}-{i}"
    pa.reset_counts()
    target_proxy.reset_counts()
    run = _promote if tool == "promote" else _skopeo
    seconds = run(f"{pa.host}/{repo}", f"{target_proxy.host}/{target_repo}", tag)
    with im.Pusher(target_url) as reader:
        held = reader.head_manifest(target_repo, pushed.digest)
    proxies = [pa] if target_proxy is pa else [pa, target_proxy]
    return {
        "scenario": scenario,
        "tool": tool,
        "seconds": seconds,
        "requests": sum(sum(p.counts.values()) for p in proxies),
        "by_kind": {
            k: sum(p.counts[k] for p in proxies)
            for k in sorted({k for p in proxies for k in p.counts})
        },
        "downloaded": pa.downloaded["blob-get"],
        "uploaded": target_proxy.uploaded["blob-upload"],
        "digest_kept": held is not None and held[0] == pushed.digest,
    }


def copy_benchmark(
    log: Callable[[str], None], *, layer_payload: int = LAYER_PAYLOAD, repeats: int = REPEATS
) -> dict[str, Any]:
    """Run every scenario x tool ``repeats`` times; the medians and the raw runs."""
    from testkit.registry import RegistryServer

    with (
        RegistryServer("none") as a,
        counting_proxy(a.url) as pa,
        im.Pusher(a.url) as pusher,
    ):
        repo = "staging/app"
        spec = im.make_layers(pusher, repo, "index", layer_payload)
        tag = im.staging_tag(int(time.time()) - 600)
        pushed = im.release(pusher, spec, tag)
        total = spec.payload_bytes
        log(f"  source index {pushed.digest[:19]}..., {total / MiB:.0f} MiB of layers")
        runs: list[dict[str, Any]] = []
        for scenario in SCENARIOS:
            for i in range(repeats):
                for tool in COPY_TOOLS:
                    if scenario == "registry-to-registry":
                        # a fresh target registry each run: nothing there, nothing to mount
                        # from an earlier run (skopeo remembers where it saw each blob)
                        with RegistryServer("none") as b, counting_proxy(b.url) as pb:
                            runs.append(
                                _measure(scenario, tool, i, pa, pb, b.url, repo, tag, pushed)
                            )
                    else:
                        runs.append(_measure(scenario, tool, i, pa, pa, a.url, repo, tag, pushed))
                    row = runs[-1]
                    log(
                        f"  {scenario:20} {tool:7} {row['seconds']:6.2f} s, "
                        f"{row['requests']} requests, {row['uploaded'] / MiB:.1f} MiB "
                        f"uploaded, digest kept {row['digest_kept']}"
                    )
    rows = []
    for scenario in SCENARIOS:
        for tool in COPY_TOOLS:
            mine = [r for r in runs if r["scenario"] == scenario and r["tool"] == tool]
            rows.append(
                {
                    "scenario": scenario,
                    "tool": tool,
                    "median": statistics.median(r["seconds"] for r in mine),
                    "runs": [r["seconds"] for r in mine],
                    "requests": statistics.median(r["requests"] for r in mine),
                    "by_kind": mine[-1]["by_kind"],
                    "downloaded": statistics.median(r["downloaded"] for r in mine),
                    "uploaded": statistics.median(r["uploaded"] for r in mine),
                    "digest_kept": all(r["digest_kept"] for r in mine),
                }
            )
    return {
        "layer_bytes": total,
        "platforms": len(spec.layers),
        "repeats": repeats,
        "rows": rows,
    }
