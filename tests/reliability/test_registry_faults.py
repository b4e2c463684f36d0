"""A flaky registry: transient faults are retried and the promotion lands; a lasting fault
gives up within the deadline with a clear error and no tag on a wrong digest; a re-run
after the fault completes the promotion.

Real CNCF distribution registry behind :class:`testkit.proxy.FaultProxy`; the
engine runs in-process exactly as ``entrypoint.py`` runs it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from testkit.engine import EngineRun, engine
from testkit.figures import Figures
from testkit.proxy import Fault, FaultProxy
from tests.reliability.conftest import (
    PREVIOUS_TAG,
    Release,
    promote_inputs,
)

IMMUTABLE = r"/manifests/production-v"
FLOATING = r"/manifests/production$"
SOURCE = r"/manifests/staging-"
TAGS = r"/tags/list"
PING = r"^/v2/$"

#: (id, fault, method, path regex, occurrences that fault) — each heals after them.
TRANSIENT = [
    ("ping-503", Fault.status(503), "GET", PING, [1]),
    ("source-get-503x2", Fault.status(503), "GET", SOURCE, [1, 2]),
    ("source-get-500", Fault.status(500), "GET", SOURCE, [1]),
    ("source-get-reset", Fault.reset(), "GET", SOURCE, [1]),
    ("tags-429-retry-after", Fault.status(429, retry_after="1"), "GET", TAGS, [1]),
    ("tags-502", Fault.status(502), "GET", TAGS, [1]),
    ("previous-head-503", Fault.status(503), "HEAD", r"/manifests/production-v", [1]),
    ("previous-head-reset", Fault.reset(), "HEAD", r"/manifests/production-v", [1]),
    ("immutable-put-503x2", Fault.status(503), "PUT", IMMUTABLE, [1, 2]),
    ("immutable-put-500", Fault.status(500), "PUT", IMMUTABLE, [1]),
    ("immutable-put-502", Fault.status(502), "PUT", IMMUTABLE, [1]),
    ("immutable-put-429", Fault.status(429, retry_after="0"), "PUT", IMMUTABLE, [1]),
    ("immutable-put-reset", Fault.reset(), "PUT", IMMUTABLE, [1]),
    # the registry stored the tag, but the answer was lost: the retried PUT is idempotent
    ("immutable-put-stored-then-reset", Fault.reset(after=True), "PUT", IMMUTABLE, [1]),
    ("immutable-put-stored-then-503", Fault.status(503, after=True), "PUT", IMMUTABLE, [1]),
    ("race-check-tags-503", Fault.status(503), "GET", TAGS, [2]),
    ("race-check-tags-reset", Fault.reset(), "GET", TAGS, [2]),
    ("floating-put-503", Fault.status(503), "PUT", FLOATING, [1]),
    ("floating-put-reset", Fault.reset(), "PUT", FLOATING, [1, 2]),
    ("floating-put-stored-then-502", Fault.status(502, after=True), "PUT", FLOATING, [1]),
]


def assert_landed(run: EngineRun, release: Release, proxy: FaultProxy) -> str:
    """The promotion succeeded: both tags name the source digest, outputs say so."""
    assert run.status == 0, run.log
    assert run.errors == []
    assert "Traceback" not in run.log
    tag = run.outputs["tag"]
    assert run.outputs["digest"] == release.source.digest
    assert run.outputs["version"] == "1.4.3"
    assert run.outputs["changed"] == "true"
    assert run.outputs["previous-digest"] == release.previous.digest
    assert release.digest(tag) == release.source.digest
    assert release.digest("production") == release.source.digest
    # byte-identical under the new tags
    assert release.seeder.raw_manifest(release.repo, tag)[0] == release.source.data
    assert release.new_immutable_tags() == [tag]
    release.assert_no_wrong_digest()
    assert proxy.counts["blob"] == 0
    return tag


@pytest.mark.parametrize(
    ("fault", "method", "path", "nth"),
    [pytest.param(f, m, p, n, id=i) for i, f, m, p, n in TRANSIENT],
)
def test_transient_fault_promotion_lands(
    tmp_path: Path,
    proxy: FaultProxy,
    release: Release,
    figures: Figures,
    fault: Fault,
    method: str,
    path: str,
    nth: list[int],
) -> None:
    rule = proxy.add(fault, method=method, path=path, nth=nth)
    run = engine(tmp_path, promote_inputs(proxy.host, release), {"PROMOTE_REGISTRY_DEADLINE": "20"})
    assert_landed(run, release, proxy)
    # the fault really happened, as often as scheduled, and was retried
    assert rule.fired == len(nth), (rule, proxy.log)
    assert proxy.faults[fault.label] == len(nth)
    figures.record(
        f"transient {rule.fault.label} on {method} {path}: promotion time", f"{run.elapsed:.2f}s"
    )


def test_retry_after_is_honoured(
    tmp_path: Path, proxy: FaultProxy, release: Release, figures: Figures
) -> None:
    """A 429 asking for 1 s is waited on (not the millisecond backoff), then retried."""
    proxy.add(Fault.status(429, retry_after="1"), method="GET", path=SOURCE, nth=[1])
    run = engine(tmp_path, promote_inputs(proxy.host, release), {"PROMOTE_REGISTRY_DEADLINE": "20"})
    assert_landed(run, release, proxy)
    gets = proxy.requests("manifest-get")
    assert [g.status for g in gets[:2]] == [429, 200]
    gap = gets[1].started - gets[0].started
    assert 0.95 <= gap < 3.0, gap
    figures.record("Retry-After: 1 honoured, measured gap between attempts", f"{gap:.2f}s")


def test_slow_responses_are_timed_out_and_retried(
    tmp_path: Path, proxy: FaultProxy, release: Release, figures: Figures
) -> None:
    """A read slower than the per-attempt timeout is abandoned and retried; so is a write
    (the late PUT still lands: the same bytes under the same tag, harmless)."""
    proxy.add(Fault.delay(1.6), method="GET", path=TAGS, nth=[1])
    proxy.add(Fault.delay(1.6), method="PUT", path=IMMUTABLE, nth=[1])
    run = engine(
        tmp_path,
        promote_inputs(proxy.host, release),
        {"PROMOTE_REGISTRY_DEADLINE": "20", "PROMOTE_REGISTRY_TIMEOUT": "1"},
    )
    assert_landed(run, release, proxy)
    assert proxy.faults["delay"] == 2
    assert proxy.counts["manifest-put"] >= 3  # 2 immutable attempts + floating
    figures.record(
        "slow read+write (1.6 s each, 1 s attempt timeout): promotion time", f"{run.elapsed:.2f}s"
    )


#: (id, fault, method, path): faults that never heal.
LASTING = [
    ("reads-503", Fault.status(503), "GET", SOURCE),
    ("reads-reset", Fault.reset(), None, TAGS),
    ("reads-429-retry-after-1", Fault.status(429, retry_after="1"), "GET", r"/manifests/"),
    ("reads-slow", Fault.delay(1.5), "GET", TAGS),
    ("writes-503", Fault.status(503), "PUT", IMMUTABLE),
    ("writes-reset", Fault.reset(), "PUT", IMMUTABLE),
    ("writes-500", Fault.status(500), "PUT", r"/manifests/"),
]
#: 3 s, not 2: every request before the faulted one (ping, tags, source, previous) spends
#: the same deadline, and on a loaded 2-core machine they can take over a second; the
#: fault must still get its retries ("it did retry before giving up").
DEADLINE = 3.0
#: what "bounded" means here: the deadline plus one per-attempt timeout (an attempt that
#: started just before the deadline may run to its timeout) plus scheduling slack.
GIVE_UP_BOUND = DEADLINE + 1.0 + 1.0


@pytest.mark.parametrize(
    ("fault", "method", "path"),
    [pytest.param(f, m, p, id=i) for i, f, m, p in LASTING],
)
def test_lasting_fault_gives_up_in_time_then_rerun_completes(
    tmp_path: Path,
    proxy: FaultProxy,
    release: Release,
    figures: Figures,
    fault: Fault,
    method: str | None,
    path: str,
) -> None:
    before = release.production_state()
    rule = proxy.add(fault, method=method, path=path, always=True)
    env = {"PROMOTE_REGISTRY_DEADLINE": f"{DEADLINE:g}", "PROMOTE_REGISTRY_TIMEOUT": "1"}
    run = engine(tmp_path, promote_inputs(proxy.host, release), env)

    # a clear, single error; bounded time; nothing half-done. A write that failed without
    # an answer saying it was not processed may have landed: exit 5 names it UNCONFIRMED
    # (exit 1 would claim "registry unchanged").
    writes = method == "PUT" and fault.label != "status-503"
    assert run.status == (5 if writes else 1), run.log
    assert len(run.errors) == 1, run.log
    message = run.errors[0]
    if writes:
        assert "written: nothing" in message and "UNCONFIRMED: production-v" in message
        assert ".." not in message  # was "try again later.. Registry state"
    assert f"giving up (retry deadline {DEADLINE:g}s)" in message
    assert "try again later" in message
    assert "Traceback" not in run.log
    assert run.outputs == {}
    assert run.elapsed < GIVE_UP_BOUND, run.elapsed
    assert rule.fired >= 2  # it did retry before giving up
    # no tag moved: the immutable PUT never succeeded, so the floating tag was never tried
    assert release.production_state() == before
    assert release.digest("production") == release.previous.digest
    figures.record(
        f"lasting {fault.label} on {method or 'any'} {path}: gave up after",
        f"{run.elapsed:.2f}s, {rule.fired} faulted attempts (deadline {DEADLINE:g}s)",
    )

    # the registry heals; the same promotion now completes
    proxy.clear()
    rerun = engine(tmp_path, promote_inputs(proxy.host, release), env)
    assert_landed(rerun, release, proxy)
    assert release.production_state() == {
        PREVIOUS_TAG: release.previous.digest,
        rerun.outputs["tag"]: release.source.digest,
        "production": release.source.digest,
    }


def test_give_up_time_scales_with_the_deadline(
    tmp_path: Path, proxy: FaultProxy, release: Release, figures: Figures
) -> None:
    """The deadline is the knob: 1 s and 3 s deadlines give up in about 1 s and 3 s."""
    proxy.add(Fault.status(503), method="GET", path=SOURCE, always=True)
    times = {}
    for deadline in (1, 3):
        run = engine(
            tmp_path,
            promote_inputs(proxy.host, release),
            {"PROMOTE_REGISTRY_DEADLINE": str(deadline)},
        )
        assert run.status == 1
        assert f"retry deadline {deadline}s" in run.errors[0]
        times[deadline] = run.elapsed
        # it gives up when the next wait would cross the deadline: never later than it
        # (+ scheduling slack), and not absurdly early (the backoff waits are milliseconds)
        assert deadline - 0.5 <= run.elapsed <= deadline + 0.5, run.elapsed
    figures.record("give-up time at deadline 1s / 3s", f"{times[1]:.2f}s / {times[3]:.2f}s")


def test_bad_deadline_setting_is_an_input_error(
    tmp_path: Path, proxy: FaultProxy, release: Release
) -> None:
    for bad in ("soon", "-1", "0", "nan", "1e9"):
        run = engine(
            tmp_path, promote_inputs(proxy.host, release), {"PROMOTE_REGISTRY_DEADLINE": bad}
        )
        assert run.status == 2, (bad, run.log)
        assert run.errors == [
            f"::error::PROMOTE_REGISTRY_DEADLINE must be seconds between 0 and 3600, not {bad!r}"
        ]
    assert proxy.total == 0
