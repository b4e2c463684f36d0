"""The release history model (pure): rollback targets, rollbacks, previous releases."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from promote import lineage, naming

SHAS = {"A": "aaaaaaa", "B": "bbbbbbb", "C": "ccccccc", "D": "ddddddd"}
VERSIONS = {"A": "1.0.0", "B": "1.0.1", "C": "1.0.2", "D": "1.0.3"}


def history(releases: str) -> list[naming.ImmutableTag]:
    """``"ABCB"``: A, B, C promoted, then B restored (a rollback re-uses version and sha)."""
    out = []
    for i, name in enumerate(releases):
        tag = f"production-v{VERSIONS[name]}-{SHAS[name]}-{1_700_000_000 + i}"
        parsed = naming.parse_immutable_tag("production", tag)
        assert parsed is not None
        out.append(parsed)
    return out


def target(releases: str) -> str | None:
    found = lineage.default_target(history(releases))
    return None if found is None else next(k for k, v in SHAS.items() if v == found.short_sha)


def test_default_target_is_the_release_before_the_current_one_first_became_current() -> None:
    assert target("ABC") == "B"
    # after a rollback to B, a new rollback goes one step further back, never to C again
    assert target("ABCB") == "A"
    # a release promoted after the rollback: going back restores B, not C
    assert target("ABCBD") == "B"
    # and from the rollback of D: C and D were both rolled back from
    assert target("ABCBDB") == "A"
    assert target("A") is None
    assert target("") is None
    # rollback-to A made A current: nothing was before A
    assert target("ABCA") is None


def test_rollbacks_and_rolled_back_from() -> None:
    h = history("ABCBDB")
    assert lineage.rollbacks(h) == [False, False, False, True, False, True]
    assert lineage.rolled_back_from(h) == {
        lineage.release_of(h[2]),
        lineage.release_of(h[4]),
    }


def test_previous_of() -> None:
    h = history("ABC")
    assert lineage.previous_of(h, h[2].tag) == h[1]
    assert lineage.previous_of(h, h[0].tag) is None
    assert lineage.previous_of(h, "production-v9.9.9-eeeeeee-1") is None


def test_target_with_digest_skips_candidates_naming_the_current_digest() -> None:
    h = history("ABC")
    digests = {h[0].tag: "sha256:a", h[1].tag: "sha256:c"}  # B re-tags C's digest
    found = lineage.target_with_digest(h, "sha256:c", digests.get, limit=25)
    assert found == (h[0], "sha256:a")
    assert lineage.target_with_digest(h, "sha256:c", digests.get, limit=1) is None


@given(st.text(alphabet="ABCD", max_size=12))
def test_the_target_is_never_the_current_release_nor_a_rolled_back_one(releases: str) -> None:
    h = history(releases)
    found = lineage.default_target(h)
    if found is None:
        return
    assert lineage.release_of(found) != lineage.release_of(h[-1])
    assert lineage.release_of(found) not in lineage.rolled_back_from(h)
    assert found.timestamp < h[-1].timestamp
