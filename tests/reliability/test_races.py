"""Races, driven deterministically through the fault proxy (gates and hooks, no sleeps).

1. The staging tag moves between resolve and write: the digest resolved once is the one
   promoted and reported; the new staging digest is never written under production tags.
2. Two promotions of different digests compute the same next version: each run talks
   through its own proxy, and gates hold each run at an exact request so the interleaving
   is chosen by the test. The loser detects the other's tag when it lists again after its
   own immutable write (or re-reads its immutable tag), leaves the floating tag on the
   digest the Flux model selects, and fails with RaceError naming the state and the one
   command that resolves it; following that command works.
3. Two rebuilds of one commit promoted in the same second compute the SAME immutable tag:
   whichever order the writes land in, no run exits 0 unless its immutable tag names its
   digest and the floating tag names the digest Flux selects (forced orderings, and 20
   unforced same-second pairs).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

from promote import naming
from promote.errors import RaceError
from promote.flux import ImagePolicy
from testkit.engine import EngineRun, engine
from testkit.figures import Figures
from testkit.proxy import Exchange, Fault, FaultProxy, Gate
from testkit.registry import RegistryServer
from testkit.seed import Seeded
from tests.reliability.conftest import (
    PREVIOUS_TAG,
    Release,
    promote_inputs,
)

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
        self,
        tmp_path: Path,
        registry: RegistryServer,
        release: Release,
        source: Seeded,
        ts: int | None,
        repo: str | None = None,
    ) -> None:
        self.proxy = FaultProxy(registry.url)
        assert source.tag is not None
        self.source = source
        self.inputs = {
            "image": f"{self.proxy.host}/{repo or release.repo}",
            "source-tag": source.tag,
            "record": "false",
        }
        if ts is not None:
            self.inputs["timestamp"] = str(ts)
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


def rebuild_source(release: Release) -> Seeded:
    """A second digest built from the SAME commit as the release's source (a rebuild)."""
    return release.seeder.oci_image(
        release.repo, "staging-abc1234-1700000700", revision="abc1234" + "0" * 33, layer_size=55
    )


def now_ts() -> int:
    """A timestamp the run accepts (not in the future) and newer than every seeded tag."""
    return int(time.time()) - 60


def flux_choice(state: dict[str, str]) -> str | None:
    """The digest the project's Flux model selects from ``state`` (tag -> digest)."""
    policy = ImagePolicy.from_spec(naming.flux_policy_spec("production"), name="production")
    chosen = policy.select(list(state))
    return state.get(chosen) if chosen else None


def assert_invariant(state: dict[str, str], runs: list[tuple[EngineRun, str]]) -> None:
    """Every run that exited 0 has its immutable tag on its digest, and the floating tag
    on the digest the Flux model selects."""
    for run, digest in runs:
        # 3: unforced, the other run's tag was written before this one read the tags; its
        # explicit timestamp is then refused before any write (seen 1 in ~40 full runs)
        refused = run.status == 3 and "is not newer than the newest existing tag" in run.log
        assert run.status in (0, 4) or (refused and "nothing was written" in run.log), run.log
        if run.status == 0:
            assert state[run.outputs["tag"]] == digest, (run.outputs, state)
            assert state["production"] == flux_choice(state), state


def run_pair(
    tmp_path: Path,
    registry: RegistryServer,
    release: Release,
    ts_a: int,
    ts_b: int,
    choreography: Callable[[Racer, Racer], None],
    source_b: Seeded | None = None,
) -> tuple[Racer, Racer, EngineRun, EngineRun]:
    source_b = source_b or second_source(release)
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
    base = now_ts()
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

    # A (older timestamp) lost: detected after writing, failed loudly
    assert run_a.status == RaceError.exit_code == 4, run_a.log
    assert len(run_a.errors) == 1 and run_a.outputs == {}
    message = run_a.errors[0]
    assert f"another promotion wrote {tag_b} while this one wrote {tag_a}" in message
    assert f"Flux selects {tag_b} ({source_b_digest})" in message
    assert f"run command: rollback with rollback-to: {release.source.digest}" in message
    assert "concurrency group" in message
    assert ".." not in message

    # B (newer) won: it warned about the duplicate version and moved the floating tag
    assert run_b.status == 0, run_b.log
    assert any(f"also wrote version 1.4.3 ({tag_a})" in w for w in run_b.warnings)
    assert run_b.outputs["tag"] == tag_b
    assert b.puts("/manifests/production") == 1

    # the registry is consistent: floating tag and Flux's choice agree on B
    assert state["production"] == source_b_digest == flux_choice(state)
    assert_invariant(state, [(run_a, release.source.digest), (run_b, source_b_digest)])
    assert state[PREVIOUS_TAG] == release.previous.digest
    figures.record(
        "race (both write, then both list): outcome",
        f"loser exit {run_a.status} RaceError, winner exit {run_b.status}, "
        f"floating -> winner, loser floating PUTs {a.puts('/manifests/production')}",
    )


def test_concurrent_promotions_equal_timestamps_both_fail_and_the_advice_works(
    tmp_path: Path, registry: RegistryServer, release: Release
) -> None:
    """Same version and same second (different commits): a tie Flux breaks arbitrarily.
    Neither run claims success; both name the tag the project's Flux model picks and leave
    the floating tag on it; the advised command then makes the choice unambiguous."""
    ts = now_ts()
    a, _b, run_a, run_b = run_pair(tmp_path, registry, release, ts, ts, both_write_then_both_check)
    tag_a = f"production-v1.4.3-abc1234-{ts}"
    tag_b = f"production-v1.4.3-bbbbbbb-{ts}"
    state = release.production_state()
    # the model's pick in a key collision: the byte-wise smallest tag
    model_pick = tag_a
    for run in (run_a, run_b):
        assert run.status == 4, run.log
        message = run.errors[0]
        assert "a tie Flux breaks arbitrarily" in message
        assert f"the project's Flux model picks {model_pick} ({release.source.digest})" in message
        assert "rollback-to:" in message
    assert state["production"] == release.source.digest == flux_choice(state)
    assert state[tag_a] == release.source.digest and tag_b in state

    # follow B's advice: deploy B's digest unambiguously
    source_b_digest = state[tag_b]
    advice = run_b.errors[0].split("run command: rollback with rollback-to: ")[1].split(" ")[0]
    assert advice == source_b_digest
    follow = engine(
        tmp_path,
        {
            "command": "rollback",
            "image": a.inputs["image"].replace(a.proxy.host, registry.host),
            "rollback-to": advice,
        },
    )
    assert follow.status == 0, follow.log
    state = release.production_state()
    assert state[follow.outputs["tag"]] == source_b_digest
    assert int(follow.outputs["timestamp"]) > ts
    assert state["production"] == source_b_digest == flux_choice(state)


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

    base = now_ts()
    a, _b, run_a, run_b = run_pair(
        tmp_path, registry, release, base + 10, base + 20, a_paused_while_b_runs
    )
    assert run_a.status == 4, run_a.log
    assert "production names " in run_a.errors[0] and "(left there)" in run_a.errors[0]
    assert a.puts("/manifests/production") == 0
    assert release.digest("production") == release.digest("staging-bbbbbbb-1700000600")
    assert run_b.outputs["version"] == "1.4.3"
    assert f"production-v1.4.3-abc1234-{base + 10}" in release.production_state()


def b_overwrites_while_a_is_held(
    method: str, path: str, nth: list[int] | None = None
) -> Callable[[Racer, Racer], None]:
    """Both plan the same tag; A writes it and is held at ``method path``; B overwrites
    the tag and runs to completion; then A goes on."""

    def choreography(a: Racer, b: Racer) -> None:
        put_a, put_b = a.gate("PUT", IMMUTABLE), b.gate("PUT", IMMUTABLE)
        held = a.gate(method, path, nth)
        a.start()
        b.start()
        assert put_a.wait_arrived() and put_b.wait_arrived()  # both planned the same tag
        put_a.release()
        assert held.wait_arrived()
        put_b.release()
        run_b = b.join()
        assert run_b.status == 0, run_b.log
        held.release()

    return choreography


def test_rebuild_overwrites_the_tag_after_the_first_run_moved_floating(
    tmp_path: Path, registry: RegistryServer, release: Release
) -> None:
    """Defect 1 of issue 17: two rebuilds of one commit, same second, same tag. A passes
    its checks and is held at its floating PUT; B overwrites the immutable tag and
    finishes; A's floating PUT lands. A's read after its last write finds B's digest: A
    puts the floating tag back on Flux's choice and exits 4. Before, both exited 0 and the
    immutable tag named B while production named A."""
    ts = now_ts()
    source_b = rebuild_source(release)
    tag = f"production-v1.4.3-abc1234-{ts}"

    # A proved its tag and is held about to move production while B overwrites it
    b_overwrites_while_a_moves_floating = b_overwrites_while_a_is_held("PUT", FLOATING)
    a, _b, run_a, run_b = run_pair(
        tmp_path, registry, release, ts, ts, b_overwrites_while_a_moves_floating, source_b
    )
    state = release.production_state()
    assert run_b.outputs["tag"] == tag and state[tag] == source_b.digest
    assert run_a.status == 4, run_a.log
    message = run_a.errors[0]
    assert f"{tag} was overwritten while this run moved production" in message
    assert f"{tag} names {source_b.digest}, not this run's {release.source.digest}" in message
    assert f"production now names {source_b.digest}" in message
    assert "re-run this promotion" in message
    assert state["production"] == source_b.digest == flux_choice(state)
    assert_invariant(state, [(run_a, release.source.digest), (run_b, source_b.digest)])

    # follow A's advice: re-running A deploys A under a new tag
    rerun = engine(
        tmp_path, {**a.inputs, "image": f"{registry.host}/{release.repo}", "timestamp": str(ts + 1)}
    )
    assert rerun.status == 0, rerun.log
    state = release.production_state()
    assert state[rerun.outputs["tag"]] == release.source.digest
    assert state["production"] == release.source.digest == flux_choice(state)


def test_rebuild_overwrites_the_tag_before_the_first_run_checks(
    tmp_path: Path, registry: RegistryServer, release: Release
) -> None:
    """Same tag; B's overwrite lands before A's re-read: A stops before moving production."""
    ts = now_ts()
    source_b = rebuild_source(release)
    tag = f"production-v1.4.3-abc1234-{ts}"

    b_overwrites_before_a_checks = b_overwrites_while_a_is_held("GET", r"/tags/list", [2])
    a, _b, run_a, run_b = run_pair(
        tmp_path, registry, release, ts, ts, b_overwrites_before_a_checks, source_b
    )
    state = release.production_state()
    assert run_a.status == 4, run_a.log
    assert f"{tag} was overwritten right after this run wrote it" in run_a.errors[0]
    # B may well have attached a promotion record (issue 16) by now: the message names
    # where to find the run that wrote the tag instead of claiming no record names it
    assert "no record names it" not in run_a.errors[0]
    assert f"command: trace with ref: {source_b.digest}" in run_a.errors[0]
    assert a.puts("/manifests/production") == 0
    assert state[tag] == state["production"] == source_b.digest == flux_choice(state)
    assert_invariant(state, [(run_a, release.source.digest), (run_b, source_b.digest)])


def test_unforced_same_second_pairs_keep_the_invariant(
    tmp_path: Path, registry: RegistryServer, release: Release, figures: Figures
) -> None:
    """20 unforced pairs started together with one timestamp: 10 rebuilds of one commit
    (same tag), 10 different commits (a tie). Whatever the interleaving, no run exits 0
    unless its tag names its digest and production names the digest Flux selects."""
    outcomes: dict[str, int] = {}
    for i in range(20):
        repo = f"{release.repo}-pair{i}"
        seeder = release.seeder
        seeder.oci_image(repo, PREVIOUS_TAG, revision="1111111" + "0" * 33)
        seeder.tag(repo, PREVIOUS_TAG, "production")
        src_a = seeder.oci_image(repo, "staging-abc1234-1700000500", revision="abc1234" + "0" * 33)
        sha_b = "abc1234" if i % 2 == 0 else "bbbbbbb"
        src_b = seeder.oci_image(
            repo, f"staging-{sha_b}-1700000600", revision=sha_b + "0" * 33, layer_size=77 + i
        )
        ts = now_ts()
        a = Racer(tmp_path, registry, release, src_a, ts, repo=repo)
        b = Racer(tmp_path, registry, release, src_b, ts, repo=repo)
        try:
            a.start()
            b.start()
            run_a, run_b = a.join(), b.join()
        finally:
            a.proxy.close()
            b.proxy.close()
        state = {
            t: seeder.raw_manifest(repo, t)[2]
            for t in seeder.tags(repo)
            if t.startswith("production")
        }
        assert_invariant(state, [(run_a, src_a.digest), (run_b, src_b.digest)])
        key = f"{'rebuild' if i % 2 == 0 else 'tie'} {run_a.status}/{run_b.status}"
        outcomes[key] = outcomes.get(key, 0) + 1
    figures.record("20 unforced same-second pairs: exit codes (A/B)", outcomes)
