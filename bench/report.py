"""Render ``BENCHMARKS.md`` and the time-vs-size plot from the results JSON.

Every figure in the Markdown comes from ``bench/results/results.json``; the prose around
the tables only states what the numbers mean, and any sentence that depends on a result
is chosen by looking at that result.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from bench.scenarios import TARGET_RATIO, TARGET_REQUESTS, TARGET_TAGS

PLOT_NAME = "time_vs_size.png"
KIND_ORDER = (
    "ping",
    "token",
    "manifest-get",
    "manifest-head",
    "manifest-put",
    "tags",
    "blob-get",
    "blob-head",
    "blob-upload",
    "other",
)


def _table(headers: list[str], rows: list[list[Any]], align: str = "") -> str:
    aligns = align or "l" + "r" * (len(headers) - 1)
    sep = ["---:" if a == "r" else ":---:" if a == "c" else "---" for a in aligns]
    out = ["| " + " | ".join(headers) + " |", "| " + " | ".join(sep) + " |"]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(out) + "\n"


def _s(seconds: float) -> str:
    if seconds < 0.01:
        return f"{seconds * 1000:.2f} ms"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    return f"{seconds:.2f} s"


def _n(n: float) -> str:
    return f"{n:,.0f}"


def _short_type(media_type: str) -> str:
    """``application/vnd.oci.image.manifest.v1+json`` -> ``oci manifest``."""
    names = {
        "application/vnd.oci.image.manifest.v1+json": "OCI manifest",
        "application/vnd.oci.image.index.v1+json": "OCI index",
        "application/vnd.docker.distribution.manifest.v2+json": "Docker v2",
        "application/vnd.docker.distribution.manifest.list.v2+json": "Docker list",
    }
    return names.get(media_type, media_type or "?")


def _tags(n: int) -> str:
    return f"{_n(n)} tag" + ("" if n == 1 else "s")


def _yes(flag: bool) -> str:
    return "yes" if flag else "**no**"


# -- targets ---------------------------------------------------------------------------------
def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    counts = [c for c in results.get("counts", []) if c["tool"] == "promote"]
    for kind, label in (("single", "a single image"), ("index", "a 3-platform index")):
        rows = [c for c in counts if c["image"] == kind and c["tags"] <= TARGET_TAGS]
        if rows:
            measured = ", ".join(f"{_tags(c['tags'])}: {c['besides_ping']}" for c in rows)
            out.append(
                {
                    "target": f"at most {TARGET_REQUESTS} requests besides ping/auth for {label}"
                    f" with up to {_n(TARGET_TAGS)} tags",
                    "measured": measured,
                    "met": all(c["besides_ping"] <= TARGET_REQUESTS for c in rows),
                }
            )
    if counts:
        blob = sum(c["blob"] for c in counts)
        out.append(
            {
                "target": "no request to blobs (every promote scenario)",
                "measured": f"{blob} blob requests in {len(counts)} promotions",
                "met": blob == 0,
            }
        )
    from bench import records

    out += records.targets(results)
    sizes = [r for r in results.get("sizes", []) if r["tool"] == "promote"]
    if len(sizes) >= 2:
        big = max(sizes, key=lambda r: r["bytes"])
        out.append(
            {
                "target": f"{big['size']} / {sizes[0]['size']} time ratio under {TARGET_RATIO}",
                "measured": f"{big['ratio']:.3f} ({_s(big['median'])} / {_s(sizes[0]['median'])})",
                "met": big["ratio"] < TARGET_RATIO,
            }
        )
    out.extend(startup_targets(results))
    out.extend(copy_targets(results))
    return out


def startup_targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Issue 12 §4: the prebuilt action's start-up in act, against the Dockerfile's."""
    st = results.get("action_startup") or {}
    if not st.get("available"):
        return []
    pre, built = st["median"]["prebuilt"], st["median"]["dockerfile"]
    step, slow = pre["step_to_first_request"], built["step_to_first_request"]
    if step is None or slow is None:
        return [
            {
                "target": "prebuilt action: every act run succeeds",
                "measured": "a run failed (see §7)",
                "met": False,
            }
        ]
    out = [
        {
            "target": f"prebuilt action step: job start to first registry request under "
            f"{st['target_seconds']:.0f} s",
            "measured": f"{_s(step)} (median of {st['runs']})",
            "met": step < st["target_seconds"],
        },
        {
            "target": f"prebuilt at least {st['target_ratio']:.0f}× faster than "
            "`image: Dockerfile` (same measure)",
            "measured": f"{slow / step:.1f}× ({_s(slow)} / {_s(step)})",
            "met": slow / step >= st["target_ratio"],
        },
    ]
    if st["uncompressed_bytes"] and st["dockerfile_uncompressed_bytes"]:
        out.append(
            {
                "target": "released image no larger than the one `image: Dockerfile` builds",
                "measured": f"{st['uncompressed_bytes'] / 1e6:,.1f} MB against "
                f"{st['dockerfile_uncompressed_bytes'] / 1e6:,.1f} MB (uncompressed)",
                "met": st["uncompressed_bytes"] <= st["dockerfile_uncompressed_bytes"],
            }
        )
    return out


# -- request sequence annotation -------------------------------------------------------------
#: what each category of promote request is for (see :func:`annotate`)
PURPOSE = {
    "ping": "ping: API version check and auth challenge (not counted)",
    "source": "read the source manifest once (bytes hashed locally)",
    "list": "list tags (versions, timestamps, history)",
    "list-next": "next page by `last=`: the answer before was a full page without `Link`",
    "previous": "previous production digest (HEAD of the newest immutable tag)",
    "immutable": "immutable tag, same bytes",
    "race": "race check: list tags again after the immutable PUT",
    "race-next": "race check, next page by `last=` (as above)",
    "verify": "re-read the immutable tag: it still names this digest (before the floating PUT)",
    "floating": "floating tag, same bytes",
    "confirm": "re-read the immutable tag after the last write: still this digest",
    "other": "",
}
BREAKDOWN = (
    ("source", "source GET"),
    ("list", "tag list"),
    ("list-next", "`last=` follow-up"),
    ("previous", "HEAD previous"),
    ("immutable", "PUT immutable"),
    ("race", "race-check list"),
    ("race-next", "race `last=` follow-up"),
    ("verify", "HEAD immutable"),
    ("floating", "PUT floating"),
    ("confirm", "HEAD after"),
)


def annotate(sequence: list[str]) -> list[tuple[str, str]]:
    """(request, category) for each of promote's requests, by position in its algorithm."""
    out: list[tuple[str, str]] = []
    put_seen = False
    floating_seen = False
    for req in sequence:
        method, _, target = req.partition(" ")
        if target in ("/v2/", "/v2"):
            category = "ping"
        elif method == "GET" and target.startswith("manifests/"):
            category = "source"
        elif method == "GET" and target.startswith("tags/list"):
            category = ("race" if put_seen else "list") + ("-next" if "last=" in target else "")
        elif method == "HEAD" and target.startswith("manifests/"):
            category = "confirm" if floating_seen else "verify" if put_seen else "previous"
        elif method == "PUT" and target.startswith("manifests/"):
            category = "floating" if put_seen else "immutable"
            floating_seen = put_seen
            put_seen = True
        else:
            category = "other"
        out.append((req, category))
    return out


# -- plot ------------------------------------------------------------------------------------
def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = results.get("sizes", [])
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=110)
    from matplotlib.ticker import FuncFormatter

    series = (
        ("promote", "o", "-", "promote (CLI subprocess)"),
        ("promote-inprocess", "o", ":", "promote (engine in-process, no interpreter start)"),
        ("skopeo", "s", "-", "skopeo copy"),
        ("docker", "^", "-", "docker pull + tag + push"),
    )
    for tool, marker, style, label in series:
        mine = sorted((r for r in rows if r["tool"] == tool), key=lambda r: r["bytes"])
        if not mine:
            continue
        xs = [r["bytes"] for r in mine]
        (line,) = ax.plot(
            xs, [r["median"] for r in mine], marker=marker, linestyle=style, label=label
        )
        for r in mine:
            ax.scatter(
                [r["bytes"]] * len(r["runs"]), r["runs"], s=10, alpha=0.4, color=line.get_color()
            )
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(FuncFormatter(lambda y, _pos: _s(y)))
    ax.yaxis.set_minor_formatter(FuncFormatter(lambda _y, _pos: ""))
    sizes = sorted({(r["bytes"], r["size"]) for r in rows})
    ax.set_xticks([b for b, _ in sizes], [label for _, label in sizes])
    ax.set_xlabel("image size (layer payload)")
    ax.set_ylabel("wall time per promotion (log scale)")
    ax.set_title("Promotion time against image size (loopback registry)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


# -- the document ----------------------------------------------------------------------------


def _follow_up_note(counts: list[dict[str, Any]], registry: str) -> str | None:
    """Why promote's runs that sent a ``last=`` follow-up cost more than its other runs."""
    promote = [c for c in counts if c["tool"] == "promote"]
    extra = [c for c in promote if any("last=" in s for s in c["sequence"])]
    if not extra:
        return None
    plain = [c["besides_ping"] for c in promote if c not in extra]
    page = next(
        int(found.group(1))
        for c in extra
        for s in c["sequence"]
        if (found := re.search(r"tags/list\?n=([0-9]+)", s))
    )
    return (
        "**Why more than "
        + (f"{max(plain)} " if plain else "")
        + "requests at "
        + " and ".join(sorted({_n(c["tags"]) + " tags" for c in extra}))
        + f":** this registry (Debian distribution `{registry}`) ignores `n` and `last` "
        "on `tags/list` and answers every tag at once, without a `Link` header. "
        f"promote's client asks for pages of {_n(page)}; an answer holding exactly "
        f"{_n(page)} tags and no `Link` looks like a full page, so it asks again with `last=` "
        f"and stops when that brings nothing new (an answer holding more than {_n(page)} "
        "is complete). A registry that paginates (ECR, GHCR, distribution 3) needs "
        f"⌈tags/{page}⌉ pages per listing instead.\n"
    )


def render(results: dict[str, Any], plot_rel: str) -> str:
    m = results["machine"]
    parts: list[str] = []
    add = parts.append
    add("# Benchmarks\n")
    add(
        "Generated by `make bench` (`bench/`, `python -m bench`) from "
        "`bench/results/results.json`; every number below is measured by that run, none is "
        "typed in. Re-render without measuring: `.venv/bin/python -m bench --report-only`.\n"
    )
    most = max((r["tags"] for r in results.get("listing", [])), default=0)
    add(
        "Run it: `make bench` (installs the Debian packages if missing, then "
        "`.venv/bin/python -m bench`; *whole run* below says how long it took"
        + (f", most of it seeding {_n(most)} tags" if most else "")
        + "). Options: `--quick` (a smaller try-out), `--skip-image` (no "
        "Docker build), `--report-only`. The request-count scenario also runs in the test "
        "suite: `tests/test_bench_smoke.py`.\n"
    )
    if results.get("quick"):
        add("> **Quick run** (`--quick`): fewer sizes, tags and repeats. Not the reference run.\n")
    add("## Machine\n")
    v = m["versions"]
    add(
        _table(
            ["", ""],
            [
                ["generated", results["generated"]],
                ["command", f"`{results['command']}`"],
                ["CPU", f"{m['cpu']} × {m['nproc']} (nproc)"],
                ["memory", f"{m['memory_gib']} GiB"],
                ["OS / kernel", f"{m['os']} / {m['kernel']}"],
                *[[k, f"`{val}`"] for k, val in v.items()],
                ["dockerd insecure registries", f"`{m.get('docker_insecure_registries', '?')}`"],
                [
                    "load average before / after",
                    " / ".join(
                        f"{results.get(k, [0])[0]:.2f}" for k in ("load_before", "load_after")
                    ),
                ],
                ["whole run", _s(results.get("duration_seconds", 0.0))],
            ],
            "ll",
        )
    )
    add(
        "\nEverything runs on loopback: one CNCF distribution registry (Debian "
        "`docker-registry`, filesystem storage, no auth, started by "
        "`testkit.registry.RegistryServer`), the counting proxy "
        "(`testkit.proxy.counting_proxy`) in front of it for request counts, Debian "
        "`skopeo`, and the local Docker engine. "
        "The load average is the machine's own: other work may run at the same time.\n"
    )

    # targets
    add("## Targets (issue 7 §3, issue 12 §4)\n")
    add(
        _table(
            ["target", "measured", "met"],
            [[t["target"], t["measured"], _yes(t["met"])] for t in targets(results)],
            "llc",
        )
    )
    add("")

    # 1. counts
    counts = results.get("counts", [])
    if counts:
        add("## 1. Registry requests per promotion\n")
        add(
            "One promotion per tool, image and tag count, through the counting proxy. "
            "`promote` runs with `record: false` here (tags only, like the other tools; the "
            "promotion record's cost is in §8) and writes two tags (the immutable one and "
            "`production`); skopeo and "
            "docker write one (`skopeo copy` to a new tag; `docker pull` + `tag` + `push`). "
            "*Besides ping* excludes `GET /v2/` (and auth, none here). *Digest kept*: the "
            "written tag names the source digest.\n"
        )
        kinds = [k for k in KIND_ORDER if any(c["by_kind"].get(k) for c in counts)]
        kinds += sorted({k for c in counts for k in c["by_kind"]} - set(kinds))
        rows = []
        for c in counts:
            rows.append(
                [
                    c["tool"],
                    c["image"],
                    _n(c["tags"]),
                    f"**{c['besides_ping']}**",
                    *[c["by_kind"].get(k, 0) or "" for k in kinds],
                    c["blob"],
                    _yes(c["digest_kept"]),
                    _short_type(c["result_media_type"]),
                    _s(c["seconds"]),
                ]
            )
        add(
            _table(
                [
                    "tool",
                    "image",
                    "existing tags",
                    "besides ping",
                    *kinds,
                    "blob total",
                    "digest kept",
                    "written type",
                    "time",
                ],
                rows,
                "lll" + "r" * (len(kinds) + 2) + "clr",
            )
        )
        add("\n### Where promote's requests go\n")
        promote_rows = [c for c in counts if c["tool"] == "promote"]
        rows = []
        for c in promote_rows:
            cats = [cat for _r, cat in annotate(c["sequence"])]
            rows.append(
                [
                    c["image"],
                    _n(c["tags"]),
                    *[cats.count(key) or "" for key, _label in BREAKDOWN],
                    f"**{c['besides_ping']}**",
                ]
            )
        add(
            _table(
                ["image", "existing tags", *[label for _k, label in BREAKDOWN], "besides ping"],
                rows,
            )
        )
        add(
            "\nIssue 7's five are: source GET, tag list, HEAD previous, PUT immutable, PUT "
            "floating. Three more are there by design, for the guarantees at the edges "
            "(issue 17): the race-check listing after the immutable PUT (a concurrent "
            "promotion that wrote a newer tag, or one with the same timestamp, which Flux would "
            "break arbitrarily, is found before the floating tag moves); a HEAD of the "
            "immutable tag right after that listing (it still names this run's digest: a "
            "registry without conditional writes lets a concurrent run overwrite it); and one "
            "more HEAD of it after the floating PUT (an overwrite that landed meanwhile is "
            "found, and the floating tag put back on Flux's choice). The floating tag's own "
            "PUT answer (its verified `Docker-Content-Digest`) says what it names, so it is "
            "not read again. With a single existing tag there is no previous release to HEAD. "
            "A `last=` follow-up happens only when a tag list answer holds exactly `n` = 1,000 "
            "tags and no `Link` header: a paginating registry would send the next page there, "
            "so one more request proves the list complete (a truncated list could make promote "
            "reuse a version or timestamp).\n"
        )
        add("\n### What each of promote's requests is\n")
        for c in counts:
            if c["tool"] != "promote" or c["image"] != "single":
                continue
            add(
                f"**Single image, {_n(c['tags'])} existing tag{'' if c['tags'] == 1 else 's'}** "
                f"({c['besides_ping']} besides ping):\n"
            )
            add(
                _table(
                    ["#", "request", "what for"],
                    [
                        [i + 1, f"`{r}`", PURPOSE[cat]]
                        for i, (r, cat) in enumerate(annotate(c["sequence"]))
                    ],
                    "rll",
                )
            )
            add("")
        others = [
            c
            for c in counts
            if c["tool"] != "promote" and c["tags"] == min(x["tags"] for x in counts)
        ]
        if others:
            add("For comparison, what skopeo and docker send (fewest existing tags):\n")
            for c in others:
                add(
                    f"- **{c['tool']}, {c['image']}**: "
                    + ", ".join(f"`{r}`" for r in c["sequence"])
                    + "\n"
                )
            add("")
        index_rows = [c for c in counts if c["tool"] == "promote" and c["image"] == "index"]
        single_rows = {
            c["tags"]: c for c in counts if c["tool"] == "promote" and c["image"] == "single"
        }
        same = all(
            c["sequence"]
            and single_rows.get(c["tags"]) is not None
            and len(c["sequence"]) == len(single_rows[c["tags"]]["sequence"])
            for c in index_rows
        )
        if index_rows:
            add(
                "The 3-platform index costs "
                + (
                    "exactly the same requests as the single image"
                    if same
                    else "different requests"
                )
                + ": promote reads the index manifest and PUTs the same bytes; it never reads "
                "the children or any blob.\n"
            )
        note = _follow_up_note(counts, m["versions"].get("registry", "?").split()[-1])
        if note:
            add(note)
        seeding = results.get("count_seeding", [])
        if seeding:
            add(
                "Seeding (untimed for the tools): "
                + "; ".join(
                    f"{s['image']} with {_tags(s['tags'])} in {_s(s['seconds'])}" for s in seeding
                )
                + ".\n"
            )

    # 2. sizes
    sizes = results.get("sizes", [])
    if sizes:
        add("## 2. Wall time against image size\n")
        add(
            "A single-platform image whose one layer is an uncompressed tar holding the given "
            "number of random bytes. Each run promotes a fresh release (new config over the "
            "same layer), straight to the registry (no proxy), as a subprocess: promote's "
            "console script, `skopeo copy`, and `docker pull` + `tag` + `push` with the pulled "
            "images removed after each run (so every pull is cold). The runs are interleaved in "
            "rounds (every size with every tool, the size order rotated each round, docker "
            "last and followed by a `sync`), so load from elsewhere on the machine falls on "
            "all sizes alike. Ratio = median / median at the smallest size. *promote-"
            "inprocess* is the same engine called in the benchmark's own process (modules "
            "already imported): the protocol work without the interpreter's start.\n"
        )
        add(f"![time against image size]({plot_rel})\n")
        labels = list(dict.fromkeys(r["size"] for r in sizes))
        tools_seen = list(dict.fromkeys(r["tool"] for r in sizes))
        by = {(r["size"], r["tool"]): r for r in sizes}
        rows = []
        for label in labels:
            row: list[Any] = [label]
            for tool in tools_seen:
                r = by.get((label, tool))
                row.append(f"{_s(r['median'])} (×{r['ratio']:.2f})" if r else "")
            rows.append(row)
        add(_table(["image size", *[f"{t}: median (ratio)" for t in tools_seen]], rows))
        cli = [by.get((label, "promote")) for label in labels]
        inproc = [by.get((label, "promote-inprocess")) for label in labels]
        if all(cli) and all(inproc):
            gaps = [c["median"] - i["median"] for c, i in zip(cli, inproc, strict=True) if c and i]
            add(
                "\npromote's CLI minus its engine run in-process: "
                + ", ".join(f"{_s(g)} at {label}" for g, label in zip(gaps, labels, strict=True))
                + ". That is the interpreter's start and the imports (`requests` above all; "
                "see §5), paid once per run whatever the image size; the protocol work itself "
                "is the in-process column.\n"
            )
        add("\nEvery run:\n")
        add(
            _table(
                ["size", "tool", "runs", "median", "min", "max", "digest kept"],
                [
                    [
                        r["size"],
                        r["tool"],
                        len(r["runs"]),
                        _s(r["median"]),
                        _s(min(r["runs"])),
                        _s(max(r["runs"])),
                        _yes(r["digest_kept"]),
                    ]
                    for r in sizes
                ],
                "llrrrrc",
            )
        )
        seed = results.get("size_seeding", [])
        if seed:
            add(
                "\nLayer upload when seeding (streamed, chunked PATCH, never held in memory): "
                + "; ".join(
                    f"{s['size']} ({_n(s['layer_bytes'])} bytes) in {_s(s['upload_seconds'])}"
                    for s in seed
                )
                + ".\n"
            )

    # 3. listing
    listing = results.get("listing", [])
    if listing:
        add("## 3. Tag listing\n")
        add(
            "Tags are seeded by HTTP PUTs of one small manifest under many tags (8 threads; "
            "the timed seeding rate is reported). The listing is promote's own "
            "`RegistryClient.list_tags()` over HTTP (median of repeated runs), and one plain "
            "`GET tags/list?n=1000` for comparison.\n"
        )
        add(
            _table(
                [
                    "tags",
                    "requests (pages)",
                    "list_tags() median",
                    "one raw GET",
                    "tags in one answer",
                    "answer size",
                    "seeding PUTs",
                    "seeding time",
                    "PUT rate",
                ],
                [
                    [
                        _n(r["tags"]),
                        r["requests"],
                        _s(r["median"]),
                        _s(r["raw_page_seconds"]),
                        _n(r["raw_page_tags"]),
                        f"{r['raw_page_bytes'] / 1024:,.0f} KiB",
                        _n(r["seeded_tags"]),
                        _s(r["seed_seconds"]),
                        f"{r['seed_rate']:,.0f}/s",
                    ]
                    for r in listing
                ],
            )
        )
        probe = results.get("registry_probe")
        if probe:
            add(
                f"\nProbe of this registry's `tags/list` ({_n(probe['tags'])} tags): "
                f"`?n={probe['n']}` answered {_n(probe['n_answer'])} tags; "
                f"`?n={probe['n']}&last={probe['last']}` answered {_n(probe['last_answer'])} "
                f"tags, the first being `{probe['last_first']}`; `Link` header: "
                f"{'present' if probe['link'] else 'absent'}; answer in lexical order: "
                f"{'yes' if probe['sorted'] else 'no'}.\n"
            )
        if any(r["raw_page_tags"] > 1000 for r in listing):
            add(
                "\nThe registry answered `?n=1000` with every tag in one response (it ignores "
                "`n`), so the pages column counts promote's requests, not the registry's "
                "pages (an answer longer than `n` is complete, so one request suffices).\n"
            )

    # 4. flux
    flux = results.get("flux")
    if flux:
        add("## 4. Flux ImagePolicy model\n")
        add(
            "`promote.flux.ImagePolicy` with the project's production policy (numerical "
            "`$ts`, RE2 filter) selecting from the listed tags, median of "
            f"{len(flux['runs'])} runs.\n"
        )
        add(
            _table(
                [
                    "tags",
                    "matching the filter",
                    "median select()",
                    "throughput",
                    "selected the newest release",
                ],
                [
                    [
                        _n(flux["tags"]),
                        _n(flux["candidates"]),
                        _s(flux["median"]),
                        f"{flux['tags_per_second']:,.0f} tags/s",
                        _yes(flux["selected_is_newest"]),
                    ]
                ],
            )
        )
        add("")

    # 5. start-up
    st = results.get("startup")
    if st:
        add("## 5. Start-up\n")
        add(
            f"Subprocess wall time, median of {st['repeats']} runs (no bytecode writing). "
            "*Heavy modules loaded* lists which of "
            + ", ".join(f"`{h}`" for h in st["heavy_candidates"])
            + " the same path has imported when it ends.\n"
        )
        add(
            _table(
                ["what", "median", "heavy modules loaded"],
                [
                    [
                        r["case"],
                        _s(r["median"]),
                        "—"
                        if r["heavy"] is None
                        else (", ".join(f"`{h}`" for h in r["heavy"]) or "none"),
                    ]
                    for r in st["rows"]
                ],
                "lrl",
            )
        )
        add(
            "\n`python -X importtime entrypoint.py` on the input-error path: "
            f"{st['importtime_total_us'] / 1000:.1f} ms of imports in all; the slowest "
            "top-level imports (cumulative):\n"
        )
        add(
            _table(
                ["module", "cumulative", "self"],
                [
                    [
                        f"`{i['module']}`",
                        f"{i['cumulative_us'] / 1000:.1f} ms",
                        f"{i['self_us'] / 1000:.1f} ms",
                    ]
                    for i in st["importtime_top"]
                ],
            )
        )
        add("")

    # 6. image
    img = results.get("image") or {}
    add("## 6. The action image\n")
    if img.get("available"):
        add(
            "Docker Hub is out of reach on this machine, so the Dockerfile's "
            "`python:3.11-slim-bookworm` base is replaced by the test suite's local Debian "
            "bookworm + Python image (`testkit.docker.base_image()`, debootstrap); "
            "`--build-arg BASE_IMAGE` is the only change. The build is the legacy builder "
            "with `--no-cache`: every layer of the Dockerfile is rebuilt and the hash-locked "
            "wheels are downloaded again (through the machine's proxy). Sizes are Docker's "
            "uncompressed image sizes; the official slim base differs in size from the "
            "debootstrap one, so the *added by the Dockerfile* row is the comparable figure.\n"
        )
        base_how = (
            "reused (built earlier on this machine)"
            if img["base_reused"]
            else "absent at start, ready after (debootstrap here or by a concurrent test run)"
        )
        add(
            _table(
                ["", ""],
                [
                    ["base image", f"`{img['base']}`: {base_how}, {_s(img['base_seconds'])}"],
                    ["cold build (`docker build --no-cache`)", _s(img["build_seconds"])],
                    ["image size", f"{img['size_bytes'] / 1e6:,.1f} MB"],
                    ["base image size", f"{img['base_size_bytes'] / 1e6:,.1f} MB"],
                    [
                        "added by the Dockerfile",
                        f"{(img['size_bytes'] - img['base_size_bytes']) / 1e6:,.1f} MB",
                    ],
                    [
                        f"`docker run` to an input error (median of {len(img['run_times'])})",
                        f"{_s(img['run_median'])} (exit {img['run_exit']}: "
                        f"`{img['run_error_line'][:80]}`)",
                    ],
                ],
                "ll",
            )
        )
    else:
        add(f"Not measured in this run: {img.get('reason', 'unknown')}.\n")

    render_action_startup(results, add)
    from bench import records

    section = records.render(results, _table)
    if section:
        add(section)
    parts.extend(copy_section(results))
    return "\n".join(parts)


def render_action_startup(results: dict[str, Any], add: Any) -> None:
    """§7: the action's start-up in act, the released image against ``image: Dockerfile``."""
    st = results.get("action_startup") or {}
    add("\n## 7. Start-up of the action in act: prebuilt image against `image: Dockerfile`\n")
    if not st.get("available"):
        add(f"Not measured in this run: {st.get('reason', 'unknown')}.\n")
        return
    add(
        "One act job (`bench/scenarios.py` `STARTUP_WORKFLOW`): a `run:` step printing the "
        "time, the action (`command: promote`, a dry run through the counting proxy to a "
        "loopback registry), a `run:` step printing the time. *Prebuilt*: the `action.yml` "
        "`make release` writes (`scripts/release.py` `action_yml_for`), `runs.image: "
        "docker://<loopback registry>/…@sha256:…`; the image is removed locally before each "
        "run, so act pulls it by digest. *Dockerfile*: `runs.image: Dockerfile`, the base "
        "given a fresh label each run so no Dockerfile layer comes from the build cache (as "
        "on a hosted runner: every job builds cold; the wheels come through the machine's "
        "proxy). The local base image's layers are on the machine for both forms (Docker Hub "
        "is out of reach here; on a hosted runner the prebuilt job pulls those too, the "
        "Dockerfile job pulls the base). *Step start* is from the first step's time stamp "
        "to the proxy's first request from the action; *job* is act's whole run (runner "
        f"container included). Median of {st['runs']} interleaved runs each.\n"
    )
    med = st["median"]
    rows = []
    for form, label in (
        ("prebuilt", "prebuilt image, pulled by digest"),
        ("dockerfile", "`image: Dockerfile`, built in the job"),
    ):
        m = med[form]
        runs = [r for r in st["rows"] if r["form"] == form]
        rows.append(
            [
                label,
                _s(m["step_to_first_request"])
                if m["step_to_first_request"] is not None
                else "failed",
                _s(m["job_start_to_end"]) if m["job_start_to_end"] is not None else "failed",
                _s(m["job_seconds"]),
                f"{sum(r['ok'] for r in runs)}/{len(runs)}",
                "yes" if any(r["docker_build_in_log"] for r in runs) else "no",
                "yes" if all(r["docker_pull_in_log"] for r in runs) else "no",
            ]
        )
    add(
        _table(
            [
                "action",
                "step start → first registry request",
                "first step → last step",
                "job (act wall time)",
                "runs ok",
                "`docker build` in log",
                "`docker pull` by digest in log",
            ],
            rows,
            "lrrrccc",
        )
    )
    pre, built = (
        med["prebuilt"]["step_to_first_request"],
        med["dockerfile"]["step_to_first_request"],
    )
    if pre and built:
        add(f"\nThe prebuilt step reaches the registry {built / pre:.1f}× sooner.\n")
    add(
        _table(
            ["image", "size"],
            [
                [
                    "released image, compressed (config + layers in the manifest)",
                    f"{st['compressed_bytes'] / 1e6:,.1f} MB",
                ],
                [
                    "released image, uncompressed (pulled)",
                    f"{st['uncompressed_bytes'] / 1e6:,.1f} MB",
                ],
                [
                    "`image: Dockerfile` build, uncompressed",
                    f"{st['dockerfile_uncompressed_bytes'] / 1e6:,.1f} MB",
                ],
            ],
            "lr",
        )
    )


def write(results: dict[str, Any], results_dir: Path, markdown: Path) -> None:
    plot_path = results_dir / PLOT_NAME
    if results.get("sizes"):
        plot(results, plot_path)
    rel = plot_path.relative_to(markdown.parent).as_posix()
    markdown.write_text(render(results, rel))


# -- 7. across registries (issue 13) ---------------------------------------------------------------
def _mib(n: float) -> str:
    return f"{n / (1024 * 1024):,.1f} MiB"


def copy_targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """promote's registry-to-registry wall time no more than skopeo's (median)."""
    rows = {(r["scenario"], r["tool"]): r for r in (results.get("copy") or {}).get("rows", [])}
    mine, theirs = (
        rows.get(("registry-to-registry", "promote")),
        rows.get(("registry-to-registry", "skopeo")),
    )
    if not mine or not theirs:
        return []
    same = rows.get(("same-registry", "promote"))
    out = [
        {
            "target": "registry to registry: promote's wall time no more than skopeo copy --all's",
            "measured": f"{_s(mine['median'])} vs {_s(theirs['median'])}",
            "met": mine["median"] <= theirs["median"],
        }
    ]
    if same:
        out.append(
            {
                "target": "same registry, other repository: 0 blob bytes uploaded by promote",
                "measured": _mib(same["uploaded"]),
                "met": same["uploaded"] == 0,
            }
        )
    return out


def copy_section(results: dict[str, Any]) -> list[str]:
    copy = results.get("copy")
    if not copy:
        return []
    parts = ["## 9. Across registries and repositories\n"]
    parts.append(
        f"A {copy['platforms']}-platform OCI index with {_mib(copy['layer_bytes'])} of layers, "
        "promoted with `source-image` (`promote promote --image B/... --source-image A/...`, "
        "the CLI: immutable and floating tag written) and copied by `skopeo copy --all "
        "--preserve-digests` (one tag), into a fresh repository each run; registry to "
        "registry uses a fresh target registry each run, so neither tool can mount from an "
        "earlier run. Both registries are behind counting proxies; *requests* counts both, "
        "*downloaded* is blob bytes read from the source, *uploaded* blob bytes sent to the "
        f"target. Medians of {copy['repeats']} runs; wall time includes each tool's start-up.\n"
    )
    parts.append(
        _table(
            [
                "scenario",
                "tool",
                "wall time",
                "runs",
                "requests",
                "downloaded",
                "uploaded",
                "digest kept",
            ],
            [
                [
                    r["scenario"],
                    r["tool"],
                    _s(r["median"]),
                    ", ".join(_s(x) for x in r["runs"]),
                    f"{r['requests']:g}",
                    _mib(r["downloaded"]),
                    _mib(r["uploaded"]),
                    "yes" if r["digest_kept"] else "**no**",
                ]
                for r in copy["rows"]
            ],
            "llrlrrrl",
        )
    )
    parts.append("\nRequests by kind (last run of each):\n")
    parts.append(
        _table(
            ["scenario", "tool", "requests by kind"],
            [
                [
                    r["scenario"],
                    r["tool"],
                    ", ".join(f"{k} {v}" for k, v in r["by_kind"].items()),
                ]
                for r in copy["rows"]
            ],
        )
    )
    parts.append("")
    return parts
