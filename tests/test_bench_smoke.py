"""Smoke test of the benchmark's request-count scenario (``bench.scenarios``).

One promotion of a single image in a repository holding one tag (the staging source),
through the benchmark's counting proxy, on a real loopback registry: the counts must be
within the benchmark's target (``bench.scenarios.TARGET_REQUESTS`` besides the ping, none to
blobs) and the written tags must name the source digest. This is the same code ``make bench`` runs.
"""

from __future__ import annotations

import pytest

from bench import images, scenarios
from testkit.proxy import counting_proxy
from testkit.registry import RegistryServer


@pytest.mark.registry
def test_promote_single_image_one_tag_within_request_targets(registry: RegistryServer) -> None:
    with counting_proxy(registry.url) as proxy, images.Pusher(registry.url) as pusher:
        prepared = scenarios.prepare_count_repo(
            pusher, "single", 1, repo=f"bench-smoke/single-{images.short_sha()}"
        )
        result = scenarios.count_requests(proxy, pusher, prepared, "promote")

    # what a promotion with no history must do, and nothing else
    assert result.by_kind.get("ping", 0) == 1, result.sequence
    assert result.besides_ping <= scenarios.TARGET_REQUESTS, result.sequence
    assert result.blob == 0, result.sequence
    assert result.by_kind.get("manifest-get") == 1, result.sequence
    assert result.by_kind.get("manifest-put") == 2, result.sequence
    assert result.total == len(result.sequence)
    assert result.digest_kept
    assert result.result_media_type == images.OCI_MANIFEST


@pytest.mark.registry
def test_record_and_trace_scenario_within_the_issue_16_budget(registry: RegistryServer) -> None:
    """``bench.records`` on a small repository: the same code ``make bench`` runs."""
    from bench import records

    with counting_proxy(registry.url) as proxy, images.Pusher(registry.url) as pusher:
        result = records.record_costs(proxy, pusher, tags=5)
    first, held, off, rerun = result["promotions"]
    # the first record also uploads the empty config (2), nothing else
    assert first["record_requests"] == records.RECORD_TARGET + 2, first["record_sequence"]
    assert sum(1 for r in first["record_sequence"] if r.startswith("POST blobs")) == 2
    assert held["record_requests"] == records.RECORD_TARGET, held["record_sequence"]
    assert [r.split(" ", 1)[0] for r in held["record_sequence"]] == [
        "POST",
        "PUT",
        "PUT",
        "GET",
        "PUT",
        "GET",
    ]
    assert off["record_requests"] == 0 and len(off["written"]) == 2
    assert rerun["written"] == [] and rerun["record_requests"] == records.RECORD_TARGET
    trace = result["trace"]
    assert trace["tag_lists"] == 1 and trace["writes"] == 0
    assert trace["heads"] == trace["distinct_heads"]
    assert trace["record"] and trace["record_requests"] == records.TRACE_RECORD_TARGET
    assert all(t["met"] for t in records.targets({"records": result}))


def test_copy_benchmark_runs_and_reports() -> None:
    """Section 7 (``bench.copying``) end to end with a small index: both tools keep the
    digest, promote uploads nothing on the same registry, the report renders the rows."""
    from bench import copying, report

    result = copying.copy_benchmark(lambda _m: None, layer_payload=256 * 1024, repeats=1)
    rows = {(r["scenario"], r["tool"]): r for r in result["rows"]}
    assert set(rows) == {(s, t) for s in copying.SCENARIOS for t in copying.COPY_TOOLS}
    assert all(r["digest_kept"] for r in rows.values())
    assert rows[("same-registry", "promote")]["uploaded"] == 0
    assert rows[("registry-to-registry", "promote")]["uploaded"] >= result["layer_bytes"]
    assert rows[("registry-to-registry", "skopeo")]["uploaded"] >= result["layer_bytes"]
    text = "\n".join(report.copy_section({"copy": result}))
    assert "## 9. Across registries and repositories" in text
    assert len(report.copy_targets({"copy": result})) == 2


def test_the_follow_up_note_takes_its_numbers_from_the_run() -> None:
    """The "why more requests" note names the measured counts and page size, none typed in."""
    from bench import report

    def run(tags: int, besides: int, follow_up: bool) -> dict[str, object]:
        sequence = ["GET tags/list?n=250"] + (["GET tags/list?n=250&last=x"] if follow_up else [])
        return {"tool": "promote", "tags": tags, "besides_ping": besides, "sequence": sequence}

    note = report._follow_up_note([run(1, 6, False), run(250, 11, True), run(900, 10, False)], "r")
    assert note is not None
    assert note.startswith("**Why more than 10 requests at 250 tags:**")
    assert "pages of 250" in note and "⌈tags/250⌉" in note and "1,000" not in note
    assert report._follow_up_note([run(900, 10, False)], "r") is None
