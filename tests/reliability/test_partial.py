"""Partial failure: the immutable tag is written, the floating tag is not.

The error must name the exact registry state (which tag names which digest, which tag was
not moved and what it still names), exit with PartialPromotionError's status, write no
outputs; a re-run of the same promotion completes it without a second immutable tag.
"""

from __future__ import annotations

from pathlib import Path

from promote.errors import PartialPromotionError
from testkit.engine import engine
from testkit.figures import Figures
from testkit.proxy import Fault, FaultProxy
from tests.reliability.conftest import PREVIOUS_TAG, Release, promote_inputs

FLOATING = r"/manifests/production$"
#: One deadline covers the whole run: the seven or so requests before the floating PUT
#: (ping, tags, source, previous, immutable PUT, race-check listing, re-read) must leave it
#: time for its retries even on a loaded machine, so 3 s rather than 1.5 s.
ENV = {"PROMOTE_REGISTRY_DEADLINE": "3", "PROMOTE_REGISTRY_TIMEOUT": "1"}


def test_floating_put_fails_error_names_state_and_rerun_completes(
    tmp_path: Path, proxy: FaultProxy, release: Release, figures: Figures
) -> None:
    rule = proxy.add(Fault.status(503), method="PUT", path=FLOATING, always=True)
    run = engine(tmp_path, promote_inputs(proxy.host, release), ENV)

    assert run.status == PartialPromotionError.exit_code == 5, run.log
    assert len(run.errors) == 1 and "Traceback" not in run.log
    assert run.outputs == {}
    [tag] = release.new_immutable_tags()
    src, prev = release.source.digest, release.previous.digest
    message = run.errors[0]
    # the exact state, as the registry has it
    assert f"written: {tag} -> {src}" in message
    assert f"NOT written: production (production still names {prev})" in message
    assert "Re-run the same promotion to complete it" in message
    assert release.production_state() == {PREVIOUS_TAG: prev, tag: src, "production": prev}
    assert rule.fired >= 2
    figures.record(
        "partial failure (floating PUT 503 for good): error after", f"{run.elapsed:.2f}s"
    )

    # the registry heals; the re-run only moves the floating tag
    proxy.clear()
    proxy.reset_counts()
    rerun = engine(tmp_path, promote_inputs(proxy.host, release), ENV)
    assert rerun.status == 0, rerun.log
    assert rerun.outputs["tag"] == tag  # the same immutable tag: no second release
    assert rerun.outputs["digest"] == src
    assert rerun.outputs["changed"] == "true"
    assert rerun.outputs["tags"] == f"{proxy.host}/{release.repo}:production"
    assert release.production_state() == {PREVIOUS_TAG: prev, tag: src, "production": src}
    puts = [e.path for e in proxy.requests("manifest-put")]
    assert puts == [f"/v2/{release.repo}/manifests/production"]

    # and a third run is a no-op
    again = engine(tmp_path, promote_inputs(proxy.host, release), ENV)
    assert again.status == 0 and again.outputs["changed"] == "false"
    assert len(proxy.requests("manifest-put")) == 1


def test_floating_put_stored_but_answer_lost_converges(
    tmp_path: Path, proxy: FaultProxy, release: Release
) -> None:
    """Every floating PUT reaches the registry but its answer is lost: the run cannot know
    it landed and reports a partial promotion; the re-run sees the truth and writes nothing.
    """
    proxy.add(Fault.reset(after=True), method="PUT", path=FLOATING, always=True)
    run = engine(tmp_path, promote_inputs(proxy.host, release), ENV)
    assert run.status == 5, run.log
    [tag] = release.new_immutable_tags()
    src, prev = release.source.digest, release.previous.digest
    message = run.errors[0]
    assert f"written: {tag} -> {src}" in message
    # it does not claim the floating tag was not written: it cannot know
    assert "NOT written" not in message
    assert (
        f"UNCONFIRMED: production (the registry stopped answering during its write: it "
        f"names {src} if the last attempt landed, else still {prev})"
    ) in message
    # what the registry really has: the floating tag did move
    assert release.digest("production") == src

    proxy.clear()
    rerun = engine(tmp_path, promote_inputs(proxy.host, release), ENV)
    assert rerun.status == 0, rerun.log
    assert rerun.outputs["changed"] == "false"
    assert rerun.outputs["tag"] == tag
    release.assert_no_wrong_digest()


def test_floating_put_stored_behind_a_failing_gateway_is_not_reported_unwritten(
    tmp_path: Path, proxy: FaultProxy, release: Release
) -> None:
    """A gateway answers 502 after the registry stored the floating tag (every attempt):
    the error must not claim the tag was not written and still names the old digest."""
    proxy.add(Fault.status(502, after=True), method="PUT", path=FLOATING, always=True)
    run = engine(tmp_path, promote_inputs(proxy.host, release), ENV)
    assert run.status == 5, run.log
    [tag] = release.new_immutable_tags()
    src, prev = release.source.digest, release.previous.digest
    message = run.errors[0]
    assert f"written: {tag} -> {src}" in message
    assert (
        "NOT written" not in message
        and f"still names {prev})" not in message.split("UNCONFIRMED")[0]
    )
    assert "UNCONFIRMED: production (" in message and "HTTP 502" in message
    assert release.digest("production") == src  # what the registry really has

    proxy.clear()
    rerun = engine(tmp_path, promote_inputs(proxy.host, release), ENV)
    assert rerun.status == 0 and rerun.outputs["changed"] == "false", rerun.log
    release.assert_no_wrong_digest()


def test_race_check_listing_fails_after_immutable_write(
    tmp_path: Path, proxy: FaultProxy, release: Release
) -> None:
    """The re-listing after the immutable PUT fails for good: that is a partial promotion
    too (immutable written, floating not), and the re-run completes it."""
    proxy.add(Fault.status(502), method="GET", path=r"/tags/list", nth=range(2, 1000))
    run = engine(tmp_path, promote_inputs(proxy.host, release), ENV)
    assert run.status == 5, run.log
    [tag] = release.new_immutable_tags()
    assert f"written: {tag} -> {release.source.digest}" in run.errors[0]
    assert "NOT written: production" in run.errors[0]
    assert release.digest("production") == release.previous.digest

    proxy.clear()
    rerun = engine(tmp_path, promote_inputs(proxy.host, release), ENV)
    assert rerun.status == 0, rerun.log
    assert release.digest("production") == release.source.digest
    assert release.new_immutable_tags() == [tag]
