"""The measurements. Each function takes running parts and returns plain JSON-able data.

* :func:`count_requests` - registry requests of one promotion, by kind, through the
  counting proxy (one tool, one image kind, one tag count);
* :func:`time_vs_size` - wall time of repeated runs per tool and image size;
* :func:`tag_listing` - pages and time of listing 10,000 / 100,000 tags;
* :func:`flux_throughput` - the Flux ImagePolicy model selecting among 100,000 tags;
* :func:`startup` - interpreter start-up of the entrypoint and the CLI, heavy imports;
* :func:`action_image` - the action image's cold build time and size (Docker).
"""

from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from bench import images as im
from bench import tools
from testkit.proxy import BLOB_KINDS, OVERHEAD_KINDS, FaultProxy, counting_proxy

KiB, MiB = 1024, 1024 * 1024
SIZES = (("1 KiB", KiB), ("64 MiB", 64 * MiB), ("512 MiB", 512 * MiB))
TAG_COUNTS = (1, 1_000, 10_000)
KINDS = ("single", "index")
#: Requests one promotion may make besides the /v2/ ping and auth: issue 7's five plus the
#: race-check listing and the two HEADs of the immutable tag (issue 17 §1).
TARGET_REQUESTS = 8
#: Largest tag count the request target applies to.
TARGET_TAGS = 1_000
TARGET_RATIO = 1.1
#: Runs per tool and size: the promote and skopeo runs are cheap, docker's pull is not.
DEFAULT_REPEATS = {"promote": 9, "promote-inprocess": 9, "skopeo": 9, "docker": 3}

Log = Callable[[str], None]


def _nolog(_msg: str) -> None:
    pass


@dataclass
class CountResult:
    tool: str
    image: str
    tags: int
    #: every request, by kind (ping and token included)
    by_kind: dict[str, int]
    #: what each request was, in order ("GET manifests/staging-...")
    sequence: list[str]
    digest_kept: bool
    result_media_type: str
    seconds: float

    @property
    def total(self) -> int:
        return sum(self.by_kind.values())

    @property
    def besides_ping(self) -> int:
        return sum(n for k, n in self.by_kind.items() if k not in OVERHEAD_KINDS)

    @property
    def blob(self) -> int:
        return sum(n for k, n in self.by_kind.items() if k in BLOB_KINDS)

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.update(total=self.total, besides_ping=self.besides_ping, blob=self.blob)
        return d


@dataclass
class Prepared:
    """A repository seeded for the request-count scenario."""

    repo: str
    kind: str
    tags: int
    spec: im.ImageSpec
    source_tag: str
    source: im.Pushed
    seed_seconds: float
    history_put_seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


def prepare_count_repo(pusher: im.Pusher, kind: str, tags: int, *, repo: str = "") -> Prepared:
    """A repository holding exactly ``tags`` tags: the staging source plus a history.

    The history (``tags`` - 1 tags: the floating ``production``, production releases and
    staging builds, as :func:`bench.images.history_tags`) all name an older release, so
    the promotion has a previous production digest to look up.
    """
    repo = repo or f"bench/count-{kind}-{tags}"
    started = time.perf_counter()
    spec = im.make_layers(pusher, repo, kind, KiB)
    history = im.history_tags(tags - 1)
    put_seconds = 0.0
    if history:
        old = im.release(pusher, spec, history[0], label="old")
        put_seconds = pusher.tag_many(repo, history[1:], old)
    source_tag = im.staging_tag(int(time.time()) - 60)
    source = im.release(pusher, spec, source_tag)
    return Prepared(
        repo, kind, tags, spec, source_tag, source, time.perf_counter() - started, put_seconds
    )


def _describe(method: str, path: str, repo: str) -> str:
    bare, _, query = path.partition("?")
    prefix = f"/v2/{repo}/"
    name = bare[len(prefix) :] if bare.startswith(prefix) else bare
    if name.startswith("blobs/uploads/"):
        name = "blobs/uploads/…"
    name = re.sub(r"sha256:([0-9a-f]{12})[0-9a-f]{52}", r"sha256:\1…", name)
    keep = [p for p in query.split("&") if p.split("=", 1)[0] in ("n", "last")]
    if keep:
        last = [p if not p.startswith("last=") else "last=…" for p in keep]
        name += "?" + "&".join(last)
    return f"{method} {name}"


def count_requests(
    proxy: FaultProxy, pusher: im.Pusher, prepared: Prepared, tool: str
) -> CountResult:
    """One promotion by ``tool`` through the proxy; the requests it made, by kind."""
    image = f"{proxy.host}/{prepared.repo}"
    new_tag = f"{tool}-copy-{im.short_sha()}"
    if tool == "docker":
        tools.docker_rmi(f"{image}:{prepared.source_tag}", f"{image}:{new_tag}")
    proxy.reset_counts()
    run = tools.run_tool(tool, image, prepared.source_tag, new_tag, index=prepared.kind == "index")
    with proxy.lock:
        by_kind = dict(sorted(proxy.counts.items()))
        sequence = [_describe(s.method, s.path, prepared.repo) for s in proxy.log]
    kept = True
    media_type = ""
    for tag in run.written:
        head = pusher.head_manifest(prepared.repo, tag)
        kept = kept and head is not None and head[0] == prepared.source.digest
        media_type = head[1] if head else "(missing)"
    return CountResult(
        tool, prepared.kind, prepared.tags, by_kind, sequence, kept, media_type, run.seconds
    )


# -- time against size -----------------------------------------------------------------------
def time_vs_size(
    pusher: im.Pusher,
    registry_host: str,
    *,
    sizes: Sequence[tuple[str, int]] = SIZES,
    repeats: dict[str, int] | None = None,
    log: Log = _nolog,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Median wall time per tool and size (direct to the registry, no proxy).

    Every run promotes a fresh release (a new config over the same layer), so no run is a
    no-op and the blobs are the same for all tools. Runs are interleaved in rounds (each
    round: every size, every tool once), so a burst of load on a shared machine hits all
    sizes alike instead of one. Returns (rows, seeding).
    """
    repeats = repeats or dict(DEFAULT_REPEATS)
    tools.warm_up()
    seeding: list[dict[str, Any]] = []
    specs: dict[str, tuple[str, im.ImageSpec]] = {}
    for label, size in sizes:
        repo = f"bench/size-{label.replace(' ', '').lower()}"
        started = time.perf_counter()
        spec = im.make_layers(pusher, repo, "single", size)
        upload = time.perf_counter() - started
        history = im.history_tags(10)
        old = im.release(pusher, spec, history[0], label="old")
        pusher.tag_many(repo, history[1:], old, workers=1)
        layer = next(iter(spec.layers.values()))
        seeding.append({"size": label, "layer_bytes": layer.size, "upload_seconds": upload})
        specs[label] = (repo, spec)
        log(f"  {label}: layer of {layer.size} bytes uploaded in {upload:.1f} s")
    runs: dict[tuple[str, str], list[float]] = {}
    kept: dict[tuple[str, str], list[bool]] = {}
    for round_no in range(max(repeats.values())):
        # rotate the sizes each round, and run docker last in a round, followed by a sync:
        # its cleanup (deleting pulled layers) must not slow the next run of one size only
        shift = round_no % len(sizes)
        order = [*sizes[shift:], *sizes[:shift]]
        plan = [(label, t) for label, _size in order for t in tools.TIMED if t != "docker"]
        plan += [(label, "docker") for label, _size in order if "docker" in tools.TIMED]
        for label, tool in plan:
            repo, spec = specs[label]
            if round_no >= repeats[tool]:
                continue
            source_tag = im.staging_tag(int(time.time()) - 600 + round_no)
            source = im.release(pusher, spec, source_tag)
            run = tools.run_tool(
                tool,
                f"{registry_host}/{repo}",
                source_tag,
                f"{tool}-{round_no}-{im.short_sha()}",
                index=False,
            )
            runs.setdefault((label, tool), []).append(run.seconds)
            heads = [pusher.head_manifest(repo, t) for t in run.written]
            kept.setdefault((label, tool), []).append(
                bool(heads) and all(h is not None and h[0] == source.digest for h in heads)
            )
            if tool == "docker":
                os.sync()
        log(f"  round {round_no + 1} of {max(repeats.values())} done")
    rows: list[dict[str, Any]] = []
    for label, size in sizes:
        layer = next(iter(specs[label][1].layers.values()))
        for tool in tools.TIMED:
            mine = runs[(label, tool)]
            rows.append(
                {
                    "size": label,
                    "bytes": size,
                    "layer_bytes": layer.size,
                    "tool": tool,
                    "runs": mine,
                    "median": statistics.median(mine),
                    "digest_kept": all(kept[(label, tool)]),
                }
            )
    base = {r["tool"]: r["median"] for r in rows if r["size"] == sizes[0][0]}
    for r in rows:
        r["ratio"] = r["median"] / base[r["tool"]]
    return rows, seeding


# -- tag listing -----------------------------------------------------------------------------
def list_with_client(registry_host: str, repo: str) -> tuple[list[str], float, dict[str, int]]:
    """promote's own client listing every tag: (tags, seconds, requests by kind)."""
    from promote.reference import parse_repository
    from promote.registry import RegistryClient

    with RegistryClient(parse_repository(f"{registry_host}/{repo}")) as client:
        started = time.perf_counter()
        tags = client.list_tags()
        seconds = time.perf_counter() - started
        return tags, seconds, client.stats.as_dict()


def raw_listing(pusher: im.Pusher, repo: str) -> tuple[int, float, int]:
    """One plain ``GET tags/list?n=1000``: (tags in the answer, seconds, bytes)."""
    started = time.perf_counter()
    status, _h, body = pusher.request("GET", f"/v2/{repo}/tags/list?n=1000")
    seconds = time.perf_counter() - started
    if status != 200:
        raise RuntimeError(f"tags/list: HTTP {status}")
    return len(json.loads(body)["tags"]), seconds, len(body)


def tag_listing(
    pusher: im.Pusher,
    registry_host: str,
    *,
    counts: Sequence[int] = (10_000, 100_000),
    repeats: int = 3,
    log: Log = _nolog,
) -> tuple[list[dict[str, Any]], list[str]]:
    """Seed one repository up to each count (HTTP PUTs, timed) and list it; (rows, tags)."""
    repo = "bench/listing"
    spec = im.make_layers(pusher, repo, "single", KiB)
    history = im.history_tags(max(counts))
    pushed = im.release(pusher, spec, history[0], label="listing")
    have = 1
    rows: list[dict[str, Any]] = []
    tags: list[str] = []
    for count in counts:
        put_seconds = pusher.tag_many(repo, history[have:count], pushed)
        added = count - have
        have = count
        log(f"  seeded {added} tags by HTTP PUT in {put_seconds:.1f} s")
        times: list[float] = []
        pages = 0
        for _ in range(repeats):
            tags, seconds, stats = list_with_client(registry_host, repo)
            times.append(seconds)
            pages = stats.get("tags", 0)
        if len(tags) != count:
            raise RuntimeError(f"listed {len(tags)} tags, expected {count}")
        raw_tags, raw_seconds, raw_bytes = raw_listing(pusher, repo)
        log(f"  {count} tags: {pages} requests, median {statistics.median(times):.3f} s")
        rows.append(
            {
                "tags": count,
                "listed": len(tags),
                "requests": pages,
                "runs": times,
                "median": statistics.median(times),
                "seeded_tags": added,
                "seed_seconds": put_seconds,
                "seed_rate": added / put_seconds if put_seconds else 0.0,
                "raw_page_tags": raw_tags,
                "raw_page_seconds": raw_seconds,
                "raw_page_bytes": raw_bytes,
            }
        )
    return rows, tags


def registry_probe(pusher: im.Pusher, tags: int = 1_200, n: int = 10) -> dict[str, Any]:
    """How the registry pages ``tags/list``: does it honour ``n``, ``last``, send ``Link``?"""
    repo = "bench/probe"
    spec = im.make_layers(pusher, repo, "single", KiB)
    pushed = im.release(pusher, spec, "p00000")
    pusher.tag_many(repo, [f"p{i:05d}" for i in range(1, tags)], pushed)
    _s, headers, body = pusher.request("GET", f"/v2/{repo}/tags/list?n={n}")
    first = json.loads(body)["tags"]
    last = "p00500"
    _s, headers2, body2 = pusher.request("GET", f"/v2/{repo}/tags/list?n={n}&last={last}")
    second = json.loads(body2)["tags"]
    return {
        "tags": tags,
        "n": n,
        "n_answer": len(first),
        "last": last,
        "last_answer": len(second),
        "last_first": second[0] if second else "",
        "link": bool(headers.get("link") or headers2.get("link")),
        "sorted": first == sorted(first),
    }


# -- Flux model ------------------------------------------------------------------------------
def flux_throughput(tags: Sequence[str], *, repeats: int = 5) -> dict[str, Any]:
    """The project's production ImagePolicy (numerical ``$ts``) selecting among ``tags``."""
    from promote import naming
    from promote.flux import ImagePolicy

    policy = ImagePolicy.from_spec(naming.flux_policy_spec("production"), name="production")
    times: list[float] = []
    selected: str | None = None
    for _ in range(repeats):
        started = time.perf_counter()
        selected = policy.select(tags)
        times.append(time.perf_counter() - started)
    # the expected answer, independently: the filter with Python's re, the largest $ts
    pattern = re.compile(naming.flux_tag_pattern("production"))
    matching = [(int(m["ts"]), t) for t in tags if (m := pattern.match(t))]
    expected = max(matching)[1] if matching else None
    median = statistics.median(times)
    return {
        "tags": len(tags),
        "candidates": len(matching),
        "runs": times,
        "median": median,
        "tags_per_second": len(tags) / median,
        "selected": selected,
        "selected_is_newest": selected == expected,
    }


# -- start-up --------------------------------------------------------------------------------
HEAVY = ("requests", "urllib3", "github", "yaml", "re2", "semver", "cryptography", "jwt")

_PROBE = """
import json, os, runpy, sys
what = sys.argv[1]
if what == "entrypoint-error":
    os.environ["INPUT_COMMAND"] = "promote"
    sys.argv = ["entrypoint.py"]
    try:
        runpy.run_path("entrypoint.py", run_name="__main__")
    except SystemExit:
        pass
elif what == "promotion-imports":
    for name in %r:
        __import__(name)
elif what == "cli-help":
    sys.argv = ["promote", "--help"]
    try:
        runpy.run_module("promote.frontdoor.cli", run_name="__main__")
    except SystemExit:
        pass
else:
    __import__(what)
heavy = sorted(m for m in %r if m in sys.modules)
sys.stderr.write("HEAVY=" + json.dumps(heavy) + "\\n")
"""


def _time_argv(argv: list[str], env: dict[str, str], repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        subprocess.run(argv, capture_output=True, env=env, cwd=tools.ROOT, check=False)
        times.append(time.perf_counter() - started)
    return times


def startup(*, repeats: int = 10) -> dict[str, Any]:
    """Start-up cost of the front doors, and which heavy modules each one imports."""
    py = sys.executable
    env = tools.clean_env()
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    error_env = {**env, "INPUT_COMMAND": "promote"}
    cases = [
        ("python -c pass (interpreter alone)", [py, "-c", "pass"], env, None),
        ("python -c 'import entrypoint'", [py, "-c", "import entrypoint"], env, "entrypoint"),
        (
            "python -c 'import promote.frontdoor.cli'",
            [py, "-c", "import promote.frontdoor.cli"],
            env,
            "promote.frontdoor.cli",
        ),
        ("promote --help", [*tools.promote_command(), "--help"], env, "cli-help"),
        ("python -c 'import requests'", [py, "-c", "import requests"], env, "requests"),
        (
            "python -c 'import <every module a promotion uses>'",
            [py, "-c", "import " + ", ".join(tools.PROMOTION_MODULES)],
            env,
            "promotion-imports",
        ),
        (
            "python entrypoint.py (command promote, no image: input error, no network)",
            [py, "entrypoint.py"],
            error_env,
            "entrypoint-error",
        ),
    ]
    rows = []
    for label, argv, case_env, probe in cases:
        times = _time_argv(argv, case_env, repeats)
        heavy: list[str] | None = None
        if probe is not None:
            proc = subprocess.run(
                [py, "-c", _PROBE % (tools.PROMOTION_MODULES, HEAVY), probe],
                capture_output=True,
                text=True,
                env=env,
                cwd=tools.ROOT,
                check=False,
            )
            found = re.search(r"^HEAVY=(.*)$", proc.stderr, re.M)
            heavy = json.loads(found.group(1)) if found else None
        rows.append(
            {"case": label, "runs": times, "median": statistics.median(times), "heavy": heavy}
        )
    # -X importtime of the error path: the slowest imports by cumulative time
    proc = subprocess.run(
        [py, "-X", "importtime", "entrypoint.py"],
        capture_output=True,
        text=True,
        env=error_env,
        cwd=tools.ROOT,
        check=False,
    )
    imports: list[dict[str, Any]] = []
    for line in proc.stderr.splitlines():
        m = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|(\s*)(\S+)", line)
        if m:
            imports.append(
                {
                    "module": m.group(4),
                    "self_us": int(m.group(1)),
                    "cumulative_us": int(m.group(2)),
                    "depth": (len(m.group(3)) - 1) // 2,
                }
            )
    top = sorted((i for i in imports if i["depth"] == 0), key=lambda i: -i["cumulative_us"])
    return {
        "repeats": repeats,
        "rows": rows,
        "importtime_top": top[:8],
        "importtime_total_us": sum(i["cumulative_us"] for i in imports if i["depth"] == 0),
        "heavy_candidates": list(HEAVY),
    }


# -- the action image ------------------------------------------------------------------------
def action_image(log: Log = _nolog, *, runs: int = 3) -> dict[str, Any]:
    """Cold build of the action's Dockerfile (local base image substituted) and its size.

    Docker Hub is out of reach here, so ``python:3.11-slim-bookworm`` is replaced by the
    test suite's debootstrap image (``testkit.docker.base_image``, built once per
    machine and reused); ``--build-arg BASE_IMAGE`` is the only change. The build runs with
    ``--no-cache`` (every layer rebuilt, wheels downloaded through the machine's proxy).
    Then the container's start-up: ``docker run`` of the image on the input-error path.
    """
    try:
        from testkit import docker as ds
    except ImportError as exc:
        return {"available": False, "reason": f"testkit/docker.py not importable: {exc}"}
    started = time.perf_counter()
    existed = False
    try:
        ds.ensure_dockerd()
        mirror = ds.apt_mirror()
        existed = ds.image_exists(f"{ds.BASE_REPOSITORY}:{ds.base_image_key(mirror)}")
        base = ds.base_image()
    except Exception as exc:
        return {"available": False, "reason": f"no local base image: {exc}"}
    base_seconds = time.perf_counter() - started
    log(f"  base image {base} ({'reused' if existed else 'built'} in {base_seconds:.1f} s)")
    tag = "promote-bench-action:latest"
    try:
        build_seconds = ds.build_action_image(tag, base, no_cache=True)
    except Exception as exc:
        return {"available": False, "reason": f"docker build failed: {str(exc)[-800:]}"}
    size = ds.image_size(tag)
    base_size = ds.image_size(base)
    log(f"  cold build {build_seconds:.1f} s, image {size / 1e6:.1f} MB")
    run_times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        proc = subprocess.run(
            ["docker", "run", "--rm", "--network", "none", "-e", "INPUT_COMMAND=promote", tag],
            capture_output=True,
            text=True,
            check=False,
        )
        run_times.append(time.perf_counter() - t0)
    error_line = next((x for x in proc.stdout.splitlines() if x.startswith("::error")), "")
    ds.docker("rmi", tag, check=False)
    return {
        "available": True,
        "base": base,
        "base_reused": existed,
        "base_seconds": base_seconds,
        "build_seconds": build_seconds,
        "size_bytes": size,
        "base_size_bytes": base_size,
        "run_times": run_times,
        "run_median": statistics.median(run_times),
        "run_exit": proc.returncode,
        "run_error_line": error_line,
    }


def env_flag(name: str) -> bool:
    return os.environ.get(name, "") not in ("", "0", "false")


# -- the action's start-up in act: prebuilt image against image: Dockerfile -----------------
#: The commit the benchmark's workflow pins the action to (act maps it to a staged folder).
STARTUP_ACTION_SHA = "be" * 20
STARTUP_WORKFLOW = """\
name: startup
on: workflow_dispatch
permissions: {}
jobs:
  startup:
    runs-on: ubuntu-latest
    steps:
      - name: Job start
        run: echo "bench.job-start=$(date +%%s.%%N)"
      - name: Promote (dry run)
        uses: acme/promote@%(sha)s # v0.0.0
        with:
          command: promote
          image: %(image)s
          source-tag: %(source_tag)s
          dry-run: "true"
      - name: Job end
        run: echo "bench.job-end=$(date +%%s.%%N)"
"""
#: Issue 12 §4: the prebuilt step starts within this many seconds here ...
STARTUP_TARGET_SECONDS = 5.0
#: ... and at least this many times faster than building the Dockerfile.
STARTUP_TARGET_RATIO = 3.0


def action_startup(log: Log = _nolog, *, runs: int = 3) -> dict[str, Any]:
    """One act job, the action pulled by digest (released form) against built from Dockerfile.

    The job: a ``run:`` step printing the time, the action (a dry-run ``promote`` through the
    counting proxy to a loopback registry), a ``run:`` step printing the time. *Step start*
    is from the first step's time to the proxy's first request from the action. The
    released form is the ``action.yml`` that ``make release`` writes
    (``scripts/release.py`` ``action_yml_for``: ``docker://<registry>/<repo>@sha256:…``); the
    image is removed locally before each run, so act pulls it by digest. The Dockerfile form
    builds with a base that carries a fresh label each run, so no layer of the Dockerfile
    comes from Docker's build cache (a hosted runner's build is always cold). The base
    image's own layers are on the machine for both forms.
    """
    import secrets
    import tempfile
    from pathlib import Path

    from scripts.release import action_yml_for
    from testkit import docker as ds
    from testkit.registry import RegistryServer

    try:
        ds.ensure_dockerd()
        base = ds.base_image()
    except Exception as exc:
        return {"available": False, "reason": f"no local base image: {exc}"}
    rows: list[dict[str, Any]] = []
    act_image = f"act-acme-promote-{STARTUP_ACTION_SHA}-dockeraction:latest"
    with (
        RegistryServer("none") as server,
        counting_proxy(server.url) as proxy,
        tempfile.TemporaryDirectory(prefix="promote-bench-startup-") as tmp_name,
    ):
        tmp = Path(tmp_name)
        repo_name = f"{server.host}/bench/promote-action"
        pushed_tag = f"{repo_name}:staging-bench"
        ds.build_action_image(pushed_tag, base)
        ds.docker("push", "-q", pushed_tag, timeout=900)
        repo_digests = json.loads(
            ds.docker("image", "inspect", "--format", "{{json .RepoDigests}}", pushed_tag).stdout
        )
        ref = next(r for r in repo_digests if r.startswith(f"{repo_name}@"))
        seeder = server.seeder()
        manifest, _type, _digest = seeder.raw_manifest("bench/promote-action", ref.split("@")[1])
        doc = json.loads(manifest)
        compressed = doc["config"]["size"] + sum(layer["size"] for layer in doc["layers"])
        sha = secrets.token_hex(20)
        source_tag = f"staging-{sha[:7]}-1700000000"
        seeder.oci_image("bench/startup", source_tag, revision=sha)
        seeder.close()

        prebuilt = ds.stage_action_repo(tmp / "prebuilt", base)
        action = prebuilt / "action.yml"
        action.write_text(action_yml_for(action.read_text(encoding="utf-8"), ref))
        dockerfile = ds.stage_action_repo(tmp / "dockerfile", base)
        service = tmp / "service"
        (service / ".github/workflows").mkdir(parents=True)
        (service / ".github/workflows/startup.yml").write_text(
            STARTUP_WORKFLOW
            % {
                "sha": STARTUP_ACTION_SHA,
                "image": f"{proxy.host}/bench/startup",
                "source_tag": source_tag,
            }
        )
        git = ["git", "-c", "user.name=bench", "-c", "user.email=bench@example.invalid"]
        for cmd in (["init", "-q", "-b", "main"], ["add", "."], ["commit", "-q", "-m", "s"]):
            subprocess.run([*git, *cmd], cwd=service, check=True, capture_output=True)

        built_size = 0
        for i in range(runs):
            for form in ("prebuilt", "dockerfile"):
                nonce_base = ""
                if form == "prebuilt":
                    refs = ds.image_refs(repo_name)
                    if refs:
                        ds.docker("rmi", *refs, check=False)
                    stage = prebuilt
                else:
                    ds.docker("rmi", act_image, check=False)
                    nonce_base = f"promote-bench-base:{secrets.token_hex(6)}"
                    recipe = f"FROM {base}\nLABEL promote.bench.nonce={nonce_base}\n"
                    ds.run(
                        ["docker", "build", "-q", "-t", nonce_base, "-"],
                        input_bytes=recipe.encode(),
                        env={**os.environ, "DOCKER_BUILDKIT": "0"},
                    )
                    stage = dockerfile
                    path = stage / "Dockerfile"
                    text = path.read_text(encoding="utf-8")
                    path.write_text(ds.with_base_image(text, nonce_base))
                proxy.reset_counts()
                result = ds.run_act(
                    service,
                    "workflow_dispatch",
                    workflow=".github/workflows/startup.yml",
                    home=tmp / f"act-home-{form}-{i}",
                    local_repositories={f"acme/promote@{STARTUP_ACTION_SHA}": stage},
                    timeout=900,
                )
                marks = result.values("bench.")
                with proxy.lock:
                    first = min((seen.at for seen in proxy.log), default=0.0)
                ok = result.returncode == 0 and "job-start" in marks and first > 0
                row = {
                    "form": form,
                    "run": i + 1,
                    "ok": ok,
                    "job_seconds": result.seconds,
                    "step_to_first_request": first - float(marks["job-start"]) if ok else None,
                    "job_start_to_end": float(marks["job-end"]) - float(marks["job-start"])
                    if ok and "job-end" in marks
                    else None,
                    "docker_build_in_log": "docker build" in result.log,
                    "docker_pull_in_log": any(
                        "docker pull" in line and ref in line for line in result.log.splitlines()
                    ),
                }
                if not ok:
                    row["log_tail"] = result.log[-1500:]
                rows.append(row)
                log(
                    f"  {form:10} run {i + 1}: job {result.seconds:.1f} s, step start to first "
                    f"registry request {row['step_to_first_request']}"
                )
                if form == "dockerfile":
                    if ds.image_exists(act_image):
                        built_size = ds.image_size(act_image)
                    ds.docker("rmi", act_image, check=False)
                    ds.docker("rmi", nonce_base, check=False)
        pulled_size = ds.image_size(ref) if ds.image_exists(ref) else 0
        for leftover in ds.image_refs(repo_name):
            ds.docker("rmi", leftover, check=False)

    def median_of(form: str, key: str) -> float | None:
        values = [r[key] for r in rows if r["form"] == form and r[key] is not None]
        return statistics.median(values) if values else None

    summary = {
        form: {
            key: median_of(form, key)
            for key in ("job_seconds", "step_to_first_request", "job_start_to_end")
        }
        for form in ("prebuilt", "dockerfile")
    }
    return {
        "available": True,
        "runs": runs,
        "base": base,
        "image": ref,
        "rows": rows,
        "median": summary,
        "compressed_bytes": compressed,
        "uncompressed_bytes": pulled_size,
        "dockerfile_uncompressed_bytes": built_size,
        "target_seconds": STARTUP_TARGET_SECONDS,
        "target_ratio": STARTUP_TARGET_RATIO,
    }
