"""``make bench`` (= ``python -m bench``): run every measurement once, side by side.

Starts one real CNCF distribution registry on a free loopback port (the test suite's
:class:`testkit.registry.RegistryServer`) and a :func:`testkit.proxy.counting_proxy`
in front of it, makes sure a Docker engine answers (``scripts/start-dockerd.sh``), then:

1. request counts per promotion (promote, skopeo, docker; single image and 3-platform
   index; 1, 1,000 and 10,000 existing tags), through the proxy;
2. wall time against image size (1 KiB, 64 MiB, 512 MiB), direct to the registry;
3. tag listing at 10,000 and 100,000 tags (seeded by HTTP PUTs, timed);
4. the Flux ImagePolicy model over the 100,000 tags;
5. start-up of the entrypoint and the CLI;
6. the action image: cold build time and size;
7. the action's start-up in act: the released image pulled by digest against
   ``image: Dockerfile`` built in the job.
8. the promotion record's requests (with and without ``record``) and ``trace``'s, on
   1,000 tags (:mod:`bench.records`; measured right after step 1).
9. promotion across registries and repositories against ``skopeo copy --all
   --preserve-digests`` (:mod:`bench.copying`).

Writes ``bench/results/results.json``, ``bench/results/time_vs_size.png`` and
``BENCHMARKS.md`` (rendered from the JSON by :mod:`bench.report`; no number is typed in).

Options: ``--quick`` (smaller everything, for a try-out; not for committing),
``--skip-image`` (no Docker build), ``--report-only`` (re-render from the JSON).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench import copying, report, scenarios, tools
from bench import images as im
from testkit.proxy import counting_proxy

RESULTS = tools.ROOT / "bench" / "results"
RESULTS_JSON = RESULTS / "results.json"


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def machine() -> dict[str, Any]:
    def read(path: str) -> str:
        try:
            return Path(path).read_text()
        except OSError:
            return ""

    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in read("/proc/cpuinfo").splitlines()
            if line.startswith("model name")
        ),
        platform.processor() or "?",
    )
    mem_kb = next(
        (
            int(line.split()[1])
            for line in read("/proc/meminfo").splitlines()
            if line.startswith("MemTotal:")
        ),
        0,
    )
    os_name = next(
        (
            line.split("=", 1)[1].strip('"')
            for line in read("/etc/os-release").splitlines()
            if line.startswith("PRETTY_NAME=")
        ),
        platform.system(),
    )
    return {
        "nproc": os.cpu_count(),
        "memory_gib": round(mem_kb / 1024 / 1024, 1),
        "cpu": cpu,
        "os": os_name,
        "kernel": platform.release(),
        "versions": tools.versions(),
        "docker_insecure_registries": _docker_insecure(),
    }


def _docker_insecure() -> str:
    """dockerd's insecure (plain HTTP) registry ranges: 127.0.0.0/8 by default."""
    proc = subprocess.run(
        ["docker", "info", "--format", "{{json .RegistryConfig.InsecureRegistryCIDRs}}"],
        capture_output=True,
        text=True,
        check=False,
    )
    return proc.stdout.strip() if proc.returncode == 0 else "?"


def ensure_dockerd() -> None:
    subprocess.run([str(tools.ROOT / "scripts" / "start-dockerd.sh")], check=True)


def run(args: argparse.Namespace) -> dict[str, Any]:
    from testkit.registry import RegistryServer

    started = time.perf_counter()
    results: dict[str, Any] = {
        "generated": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "command": "make bench" + (" (--quick)" if args.quick else ""),
        "quick": bool(args.quick),
        "load_before": list(os.getloadavg()),
    }
    ensure_dockerd()
    log("machine and versions")
    results["machine"] = machine()
    tag_counts = (1, 1_000) if args.quick else scenarios.TAG_COUNTS
    sizes = scenarios.SIZES[:2] if args.quick else scenarios.SIZES
    repeats = (
        {"promote": 3, "promote-inprocess": 3, "skopeo": 3, "docker": 2} if args.quick else None
    )
    listing_counts = (10_000,) if args.quick else (10_000, 100_000)

    with (
        RegistryServer("none") as registry,
        counting_proxy(registry.url) as proxy,
        im.Pusher(registry.url) as pusher,
    ):
        log(f"registry {registry.url}, counting proxy {proxy.url}")

        log("1. registry requests per promotion")
        counts: list[dict[str, Any]] = []
        seeding: list[dict[str, Any]] = []
        for kind in scenarios.KINDS:
            for n in tag_counts:
                prepared = scenarios.prepare_count_repo(pusher, kind, n)
                seeding.append(
                    {
                        "image": kind,
                        "tags": n,
                        "seconds": prepared.seed_seconds,
                        "history_put_seconds": prepared.history_put_seconds,
                    }
                )
                for tool in tools.TOOLS:
                    result = scenarios.count_requests(proxy, pusher, prepared, tool)
                    counts.append(result.as_dict())
                    log(
                        f"  {tool:8} {kind:6} {n:>6} tags: {result.besides_ping} requests "
                        f"besides ping ({result.by_kind}), digest kept: {result.digest_kept}"
                    )
        results["counts"] = counts
        results["count_seeding"] = seeding

        log("7. the promotion record and trace (1,000 tags)")
        from bench import records

        results["records"] = records.record_costs(proxy, pusher)
        for p in results["records"]["promotions"]:
            log(f"  {p['label']}: {p['besides_ping']} requests, {p['record_requests']} record")
        t = results["records"]["trace"]
        log(f"  trace: {t['besides_ping']} requests, {t['tag_lists']} tag list, {t['heads']} HEADs")

        log("2. wall time against image size")
        results["sizes"], results["size_seeding"] = scenarios.time_vs_size(
            pusher, registry.host, sizes=sizes, repeats=repeats, log=log
        )

        log("3. tag listing")
        results["registry_probe"] = scenarios.registry_probe(pusher)
        results["listing"], tags = scenarios.tag_listing(
            pusher, registry.host, counts=listing_counts, log=log
        )

        log(f"4. Flux ImagePolicy model over {len(tags)} tags")
        results["flux"] = scenarios.flux_throughput(tags)

    log("5. start-up")
    results["startup"] = scenarios.startup()

    if args.skip_image:
        results["image"] = {"available": False, "reason": "skipped (--skip-image)"}
    else:
        log("6. action image (cold build)")
        results["image"] = scenarios.action_image(log=log)
    if args.skip_image:
        results["action_startup"] = {"available": False, "reason": "skipped (--skip-image)"}
    else:
        log("7. action start-up in act: prebuilt image by digest against image: Dockerfile")
        results["action_startup"] = scenarios.action_startup(log=log)
    log("9. across registries and repositories (promote vs skopeo copy --all)")
    results["copy"] = copying.copy_benchmark(
        log,
        layer_payload=8 * copying.MiB if args.quick else copying.LAYER_PAYLOAD,
        repeats=1 if args.quick else copying.REPEATS,
    )
    results["load_after"] = list(os.getloadavg())
    results["duration_seconds"] = time.perf_counter() - started
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller runs (not for committing)")
    parser.add_argument("--skip-image", action="store_true", help="skip the Docker image build")
    parser.add_argument("--report-only", action="store_true", help="re-render from the JSON")
    args = parser.parse_args(argv)
    os.chdir(tools.ROOT)
    if str(tools.ROOT) not in sys.path:
        sys.path.insert(0, str(tools.ROOT))
    RESULTS.mkdir(parents=True, exist_ok=True)
    if args.report_only:
        results = json.loads(RESULTS_JSON.read_text())
    else:
        results = run(args)
        RESULTS_JSON.write_text(json.dumps(results, indent=1) + "\n")
        log(f"wrote {RESULTS_JSON.relative_to(tools.ROOT)}")
    report.write(results, RESULTS, tools.ROOT / "BENCHMARKS.md")
    log("wrote BENCHMARKS.md and the plot")
    failed = [t for t in report.targets(results) if not t["met"]]
    for t in report.targets(results):
        log(f"target {'met' if t['met'] else 'NOT met'}: {t['target']} (measured {t['measured']})")
    log(f"done in {results.get('duration_seconds', 0):.0f} s; {len(failed)} target(s) not met")
    return 0
