"""Races, driven deterministically through the fault proxy (gates and hooks, no sleeps).

1. The staging tag moves between resolve and write: the digest resolved once is the one
   promoted and reported; the new staging digest is never written under production tags.
2. Two promotions of different digests compute the same next version: each run talks
   through its own proxy, and gates hold each run at an exact request so the interleaving
   is chosen by the test. The loser detects the other's tag when it lists again after its
   own immutable write, does NOT move the floating tag, and fails with RaceError saying
   what to do.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

from promote import naming
from promote.errors import RaceError
from tests.reliability.conftest import (
    PREVIOUS_TAG,
    Release,
    promote_inputs,
)
from tests.reliability.engine import EngineRun, Figures, engine
from tests.support.faultproxy import Exchange, Fault, FaultProxy, Gate
from tests.support.registry import RegistryServer
from tests.support.seed import Seeded

IMMUTABLE = r"/manifests/production-v"
FLOATING = r"/manifests/production$"
JOIN_TIMEOUT = 30.0


def test_staging_moves_between_resolve_and_write(
    tmp_path: Path, proxy: FaultProxy, release: Release
) -> None:
    moved: list[Seeded] = []

    def retag_staging(_exchange: Exchange) -> None:
        # the answer with the old digest is on its way to the client; the tag now moves
        moved.append(
            release.seeder.oci_image(
                release.repo, release.source_tag, revision="fedcba9" + "0" * 33, layer_size=99
            )
        )

    proxy.add(
        Fault.hook(retag_staging, after=True),
        method="GET",
        path=rf"/manifests/{release.source_tag}$",
        nth=[1],
    )
    run = engine(tmp_path, promote_inputs(proxy.host, release))
    assert run.status == 0, run.log
    [new_staging] = moved
    assert new_staging.digest != release.source.digest
    assert release.digest(release.source_tag) == new_staging.digest  # it did move
    # the resolved digest is promoted and reported, everywhere
    src = release.source.digest
    assert run.outputs["digest"] == src
    assert run.outputs["image"].endswith(f"@{src}")
    assert src in run.summary
    assert f"-> {src}" in run.log
    assert release.digest(run.outputs["tag"]) == src
    assert release.digest("production") == src
    release.assert_no_wrong_digest()
    # the source was read exactly once: nothing re-resolves the moving tag
    assert [e.path for e in proxy.requests("manifest-get")] == [
        f"/v2/{release.repo}/manifests/{release.source_tag}"
    ]


class Racer:
    """One promotion on its own proxy (so gates and counts are per run), in a thread."""

    def __init__(
        self, tmp_path: Path, registry: RegistryServer, release: Release, source: Seeded, ts: int
    ) -> None:
        self.proxy = FaultProxy(registry.url)
        assert source.tag is not None
        self.inputs = {
            "image": f"{self.proxy.host}/{release.repo}",
            "source-tag": source.tag,
            "timestamp": str(ts),
            "record": "false",
        }
        self.tmp_path = tmp_path
        self.result: EngineRun | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def gate(self, method: str, path: str, nth: list[int] | None = None) -> Gate:
        gate = Gate()
        self.proxy.add(Fault.hook(gate.hold), method=method, path=path, nth=nth or [1])
        return gate

    def _run(self) -> None:
        self.result = engine(self.tmp_path, self.inputs)

    def start(self) -> Racer:
        self.thread.start()
        return self

    def join(self) -> EngineRun:
        self.thread.join(JOIN_TIMEOUT)
        assert not self.thread.is_alive(), "promotion did not finish"
        assert self.result is not None
        return self.result

    def puts(self, path: str) -> int:
        return sum(1 for e in self.proxy.requests("manifest-put") if e.path.endswith(path))


def second_source(release: Release) -> Seeded:
    return release.seeder.oci_image(
        release.repo, "staging-bbbbbbb-1700000600", revision="bbbbbbb" + "0" * 33, layer_size=77
    )


def run_pair(
    tmp_path: Path,
    registry: RegistryServer,
    release: Release,
    ts_a: int,
    ts_b: int,
    choreography: Callable[[Racer, Racer], None],
) -> tuple[Racer, Racer, EngineRun, EngineRun]:
    source_b = second_source(release)
    a = Racer(tmp_path, registry, release, release.source, ts_a)
    b = Racer(tmp_path, registry, release, source_b, ts_b)
    try:
        choreography(a, b)
        run_a, run_b = a.join(), b.join()
    finally:
        for racer in (a, b):
            for rule in racer.proxy.rules:  # never leave a thread parked on a gate
                fn = rule.fault.fn
                owner = getattr(fn, "__self__", None)
                if isinstance(owner, Gate):
                    owner.release()
            racer.proxy.close()
    return a, b, run_a, run_b


def both_write_then_both_check(a: Racer, b: Racer) -> None:
    """A and B both read the same history, both write their immutable tag, then both list
    again: the tightest interleaving (neither saw the other before writing)."""
    put_a, put_b = a.gate("PUT", IMMUTABLE), b.gate("PUT", IMMUTABLE)
    check_a = a.gate("GET", r"/tags/list", nth=[2])
    check_b = b.gate("GET", r"/tags/list", nth=[2])
    a.start()
    b.start()
    assert put_a.wait_arrived() and put_b.wait_arrived()  # both planned on the same history
    put_a.release()
    put_b.release()
    assert check_a.wait_arrived() and check_b.wait_arrived()  # both immutable tags written
    check_a.release()
    check_b.release()


def test_concurrent_promotions_same_version_loser_fails_loudly(
    tmp_path: Path, registry: RegistryServer, release: Release, figures: Figures
) -> None:
    base = 1_800_000_000
    a, b, run_a, run_b = run_pair(
        tmp_path, registry, release, base + 10, base + 20, both_write_then_both_check
    )
    source_b_digest = release.digest("staging-bbbbbbb-1700000600")
    tag_a = f"production-v1.4.3-abc1234-{base + 10}"
    tag_b = f"production-v1.4.3-bbbbbbb-{base + 20}"

    # both computed the same next version from the same history
    state = release.production_state()
    assert state[tag_a] == release.source.digest
    assert state[tag_b] == source_b_digest

    # A (older timestamp) lost: detected after writing, failed loudly, floating untouched
    assert run_a.status == RaceError.exit_code == 4, run_a.log
    assert len(run_a.errors) == 1 and run_a.outputs == {}
    message = run_a.errors[0]
    assert f"another promotion wrote {tag_b} while this one wrote {tag_a}" in message
    assert "the floating tag was NOT moved" in message
    assert f"Flux selects the newest timestamp: {tag_b}" in message
    assert "re-run the promotion you want, or roll back" in message
    assert "concurrency group" in message
    assert a.puts("/manifests/production") == 0

    # B (newer) won: it warned about the duplicate version and moved the floating tag
    assert run_b.status == 0, run_b.log
    assert any(f"also wrote version 1.4.3 ({tag_a})" in w for w in run_b.warnings)
    assert run_b.outputs["tag"] == tag_b
    assert b.puts("/manifests/production") == 1

    # the registry is consistent: floating tag and Flux's choice agree on B
    assert state["production"] == source_b_digest
    newest = naming.immutable_tags("production", list(state))[-1]
    assert newest.tag == tag_b
    assert state[PREVIOUS_TAG] == release.previous.digest
    figures.record(
        "race (both write, then both list): outcome",
        f"loser exit {run_a.status} RaceError, winner exit {run_b.status}, "
        f"floating -> winner, loser floating PUTs {a.puts('/manifests/production')}",
    )


def test_concurrent_promotions_equal_timestamps_both_fail(
    tmp_path: Path, registry: RegistryServer, release: Release
) -> None:
    """Same version and same second: neither can tell which one Flux picks, so both stop
    before the floating tag and say so; production still names the previous release."""
    ts = 1_800_000_000
    a, b, run_a, run_b = run_pair(tmp_path, registry, release, ts, ts, both_write_then_both_check)
    for run in (run_a, run_b):
        assert run.status == 4, run.log
        assert "the floating tag was NOT moved" in run.errors[0]
    assert a.puts("/manifests/production") == b.puts("/manifests/production") == 0
    assert release.digest("production") == release.previous.digest


def test_overlapping_promotion_finishes_first_then_loser_writes(
    tmp_path: Path, registry: RegistryServer, release: Release
) -> None:
    """A plans, then is held before its write while B runs to completion; when A writes,
    its re-listing shows B's newer tag: A fails, production stays on B."""

    def a_paused_while_b_runs(a: Racer, b: Racer) -> None:
        put_a = a.gate("PUT", IMMUTABLE)
        a.start()
        assert put_a.wait_arrived()
        b.start()
        run_b = b.join()
        assert run_b.status == 0, run_b.log
        put_a.release()

    base = 1_800_000_000
    a, _b, run_a, run_b = run_pair(
        tmp_path, registry, release, base + 10, base + 20, a_paused_while_b_runs
    )
    assert run_a.status == 4, run_a.log
    assert "the floating tag was NOT moved" in run_a.errors[0]
    assert a.puts("/manifests/production") == 0
    assert release.digest("production") == release.digest("staging-bbbbbbb-1700000600")
    assert run_b.outputs["version"] == "1.4.3"
    assert f"production-v1.4.3-abc1234-{base + 10}" in release.production_state()
