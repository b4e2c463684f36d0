"""The promotion record's cost and ``trace``'s (issue 16), through the counting proxy.

One repository of 1,000 existing tags (:func:`bench.scenarios.prepare_count_repo`), then,
each a CLI subprocess (``promote promote ... --record true|false``, ``promote trace``):

1. promote with ``record: true`` — the repository's first record (also uploads the 2-byte
   empty config blob);
2. promote a new staging build with ``record: true`` — the repository holds a record;
3. promote a new build with ``record: false``;
4. the same promotion again with ``record: true`` — a re-run that writes only the record;
5. ``promote trace`` of what is in production now.

A request is counted as the record's when it is a blob upload, a referrers API call, or a
manifest request by digest or on a ``sha256-<hex>`` tag (promote reads sources by tag and
HEADs tags; only the record works by digest).
"""

from __future__ import annotations

import json
import re
import time
from typing import Any

from bench import images as im
from bench import scenarios, tools
from testkit.proxy import OVERHEAD_KINDS, FaultProxy

TAGS = 1_000
_RECORD_PATH = re.compile(r"/blobs/uploads|/referrers/|/manifests/sha256[-:]|/blobs/sha256:")


def is_record_request(path: str) -> bool:
    return _RECORD_PATH.search(path.split("?", 1)[0]) is not None


def _counted(proxy: FaultProxy, repo: str, label: str, seconds: float) -> dict[str, Any]:
    with proxy.lock:
        log = list(proxy.log)
    by_kind: dict[str, int] = {}
    for seen in log:
        by_kind[seen.kind] = by_kind.get(seen.kind, 0) + 1
    record = [s for s in log if is_record_request(s.path)]
    return {
        "label": label,
        "by_kind": dict(sorted(by_kind.items())),
        "besides_ping": sum(1 for s in log if s.kind not in OVERHEAD_KINDS),
        "record_requests": len(record),
        "record_sequence": [scenarios._describe(s.method, s.path, repo) for s in record],
        "sequence": [scenarios._describe(s.method, s.path, repo) for s in log],
        "seconds": seconds,
    }


def tag_count(pusher: im.Pusher, repo: str) -> int:
    """Tags in ``repo`` now (distribution 2.8 answers every tag at once)."""
    status, _headers, body = pusher.request("GET", f"/v2/{repo}/tags/list")
    assert status == 200, status
    return len(json.loads(body).get("tags") or [])


def _promote(
    proxy: FaultProxy, pusher: im.Pusher, repo: str, source: str, *, record: bool, label: str
) -> dict[str, Any]:
    tags_before = tag_count(pusher, repo)
    proxy.reset_counts()
    run = tools.run_promote(f"{proxy.host}/{repo}", source, record=record)
    result = _counted(proxy, repo, label, run.seconds)
    result.update(record=record, written=list(run.written), existing_tags=tags_before)
    return result


def _trace(proxy: FaultProxy, pusher: im.Pusher, repo: str) -> dict[str, Any]:
    tags_before = tag_count(pusher, repo)
    proxy.reset_counts()
    argv = [*tools.promote_command(), "trace", "--image", f"{proxy.host}/{repo}", "--json"]
    seconds, out = tools._run(argv, env=tools.clean_env())
    lineage = json.loads(out[out.index("{") :])
    result = _counted(proxy, repo, "trace production", seconds)
    with proxy.lock:
        heads = [s.path for s in proxy.log if s.method == "HEAD"]
        writes = [s for s in proxy.log if s.method not in ("GET", "HEAD")]
    result.update(
        tag_lists=result["by_kind"].get("tags", 0),
        heads=len(heads),
        distinct_heads=len(set(heads)),
        writes=len(writes),
        record=lineage["record"],
        history=len(lineage["history"]),
        tags_naming=len(lineage["tags"]),
        kind=lineage["kind"],
        existing_tags=tags_before,
    )
    return result


def record_costs(proxy: FaultProxy, pusher: im.Pusher, *, tags: int = TAGS) -> dict[str, Any]:
    """Every measurement of this module (see the module docstring)."""
    prepared = scenarios.prepare_count_repo(
        pusher, "single", tags, repo=f"bench/record-{tags}-{im.short_sha()}"
    )
    repo, spec = prepared.repo, prepared.spec
    runs = [
        _promote(
            proxy, pusher, repo, prepared.source_tag, record=True, label="first record in the repo"
        )
    ]
    second = im.staging_tag(int(time.time()) - 30)
    im.release(pusher, spec, second)
    runs.append(_promote(proxy, pusher, repo, second, record=True, label="the repo holds a record"))
    third = im.staging_tag(int(time.time()) - 20)
    im.release(pusher, spec, third)
    runs.append(_promote(proxy, pusher, repo, third, record=False, label="record: false"))
    runs.append(
        _promote(
            proxy, pusher, repo, third, record=True, label="re-run: writes only the missing record"
        )
    )
    return {
        "existing_tags": tags,
        "seed_seconds": prepared.seed_seconds,
        "promotions": runs,
        "trace": _trace(proxy, pusher, repo),
    }


# -- report ----------------------------------------------------------------------------------
#: once the repository holds a record (issue 16): layer 2, manifest 1, index 3
RECORD_TARGET = 6
TRACE_RECORD_TARGET = 3


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    rec = results.get("records")
    if not rec:
        return []
    held = next(p for p in rec["promotions"] if p["label"] == "the repo holds a record")
    trace = rec["trace"]
    return [
        {
            "target": f"the promotion record costs at most {RECORD_TARGET} requests once the "
            "repository holds a record (issue 16)",
            "measured": f"{held['record_requests']} ({held['existing_tags']:,} tags)",
            "met": held["record_requests"] <= RECORD_TARGET,
        },
        {
            "target": f"trace on {rec['existing_tags']:,} tags: 1 tag list, one HEAD per "
            f"compared tag, {TRACE_RECORD_TARGET} requests per record, no write (issue 16)",
            "measured": f"{trace['tag_lists']} tag list, {trace['heads']} HEADs "
            f"({trace['distinct_heads']} distinct), {trace['record_requests']} for the record, "
            f"{trace['writes']} writes",
            "met": trace["tag_lists"] == 1
            and trace["heads"] == trace["distinct_heads"]
            and bool(trace["record"])
            and trace["record_requests"] <= TRACE_RECORD_TARGET
            and trace["writes"] == 0,
        },
    ]


def render(results: dict[str, Any], table: Any) -> str:
    """The BENCHMARKS.md section (``table`` is :func:`bench.report._table`)."""
    rec = results.get("records")
    if not rec:
        return ""
    out = ["## 8. The promotion record and `trace` (issue 16)\n"]
    out.append(
        f"One repository seeded with {rec['existing_tags']:,} tags, then promotions and a "
        "trace, each a CLI subprocess through the counting proxy (`bench/records.py`). "
        "*Record requests*: blob uploads, referrers API calls, and manifest requests by "
        "digest or on the `sha256-<hex>` fallback tag. Distribution 2.8 has no referrers API "
        "and no single-request blob upload, so the record takes the fallback index path: "
        "upload the statement (POST + PUT), PUT the artifact manifest by digest, then read, "
        "write and re-read the index.\n"
    )
    rows = [
        [
            p["label"],
            "true" if p["record"] else "false",
            f"{p['existing_tags']:,}",
            f"**{p['besides_ping']}**",
            p["record_requests"],
            p["besides_ping"] - p["record_requests"],
            len(p["written"]),
            f"{p['seconds'] * 1000:.0f} ms",
        ]
        for p in rec["promotions"]
    ]
    out.append(
        table(
            [
                "promotion",
                "record",
                "existing tags",
                "besides ping",
                "record requests",
                "tag requests",
                "tags written",
                "time",
            ],
            rows,
            "llrrrrrr",
        )
    )
    for p in rec["promotions"]:
        if p["record_sequence"]:
            out.append(
                f"\n**{p['label']}**, the record's requests: "
                + ", ".join(f"`{r}`" for r in p["record_sequence"])
                + "\n"
            )
    t = rec["trace"]
    out.append(
        f"\n**`promote trace`** of `production` with {t['existing_tags']:,} tags: "
        f"**{t['besides_ping']}** requests besides ping — {t['tag_lists']} tag list, "
        f"{t['heads']} HEADs ({t['distinct_heads']} distinct tags: the newest "
        f"{t['history']} releases, the floating tags and the tags carrying the commit sha), "
        f"{t['record_requests']} for the record (index, artifact manifest, layer), "
        f"{t['writes']} writes; it found {t['tags_naming']} tags naming the digest, record "
        f"`{(t['record'] or 'none')[:19]}…`, kind `{t['kind']}`; "
        f"{t['seconds'] * 1000:.0f} ms.\n"
    )
    out.append("\nEvery request of the trace:\n")
    out.append(
        table(
            ["#", "request"],
            [[i + 1, f"`{r}`"] for i, r in enumerate(t["sequence"])],
            "rl",
        )
    )
    return "\n".join(out)
