from __future__ import annotations

import pytest
import semver

from promote import naming
from promote.errors import InputError

V = semver.Version


def test_immutable_tag_round_trip() -> None:
    tag = naming.immutable_tag("production", V(1, 4, 2), "abc1234", 1_767_225_600)
    assert tag == "production-v1.4.2-abc1234-1767225600"
    parsed = naming.parse_immutable_tag("production", tag)
    assert parsed is not None
    assert (parsed.version, parsed.short_sha, parsed.timestamp) == (
        V(1, 4, 2),
        "abc1234",
        1_767_225_600,
    )


@pytest.mark.parametrize(
    "tag",
    [
        "production",
        "latest",
        "production-v1.2-abc1234-1700000000",
        "production-v1.2.3-ABC1234-1700000000",  # upper-case sha: Flux's pattern would not match
        "production-v1.2.3-rc.1-abc1234-1700000000",
        "production-v01.2.3-abc1234-1700000000",
        "preproduction-v1.2.3-abc1234-1700000000",
        "production-v1.2.3-abc1234-1700000000-debug",
        "staging-abc1234-1700000000",
    ],
)
def test_not_immutable(tag: str) -> None:
    assert naming.parse_immutable_tag("production", tag) is None


def test_history_orders_by_timestamp_not_version() -> None:
    tags = [
        "production-v1.10.0-aaaaaaa-1700000100",
        "production-v1.4.2-bbbbbbb-1700000200",  # a rollback: older version, newer timestamp
        "production",
        "staging-ccccccc-1700000300",
    ]
    history = naming.immutable_tags("production", tags)
    assert [h.tag for h in history] == tags[:2]
    assert max(h.version for h in history) == V(1, 10, 0)  # semver order, not lexical


@pytest.mark.parametrize(
    ("current", "bump", "explicit", "expected"),
    [
        (None, "patch", None, V(1, 0, 0)),
        (None, "major", V(3, 1, 0), V(3, 1, 0)),
        (V(1, 4, 2), "patch", None, V(1, 4, 3)),
        (V(1, 4, 2), "minor", None, V(1, 5, 0)),
        (V(1, 4, 2), "major", None, V(2, 0, 0)),
        (V(1, 4, 2), "patch", V(1, 10, 0), V(1, 10, 0)),
    ],
)
def test_next_version(current: V | None, bump: str, explicit: V | None, expected: V) -> None:
    assert naming.next_version(current, bump=bump, explicit=explicit) == expected


@pytest.mark.parametrize("explicit", [V(1, 4, 2), V(1, 4, 1), V(0, 9, 9)])
def test_explicit_version_must_increase(explicit: V) -> None:
    with pytest.raises(InputError, match="not greater"):
        naming.next_version(V(1, 4, 2), bump="patch", explicit=explicit)


@pytest.mark.parametrize(
    "text", ["1.2", "v1", "1.2.3-rc.1", "1.2.3+b1", "01.2.3", "V1.2.3", " 1.2.3", ""]
)
def test_parse_version_refuses(text: str) -> None:
    with pytest.raises(InputError):
        naming.parse_version(text)


def test_parse_version_accepts_v_prefix() -> None:
    assert naming.parse_version("v2.0.1") == V(2, 0, 1)


def test_short_sha_folds_case_and_truncates() -> None:
    assert naming.short_sha("ABCDEF0123456789abcdef0123456789abcdef01") == "abcdef0"
    for bad in ["abc12", "xyz1234", "abc1234 ", "g" * 40]:
        with pytest.raises(InputError):
            naming.short_sha(bad)


def test_short_sha_sources_in_order() -> None:
    ann = {naming.REVISION_KEY: "1234567890abcdef"}
    kw = {"source_env": "staging", "annotations": ann}
    assert naming.short_sha_from_sources(
        commit_sha="fedcba9876", source_tag="staging-abcdef0-1", **kw
    ) == (
        "fedcba9",
        "commit-sha input",
    )
    assert (
        naming.short_sha_from_sources(commit_sha="", source_tag="staging-abcdef0-1700000000", **kw)[
            0
        ]
        == "abcdef0"
    )  # type: ignore[index]
    assert (
        naming.short_sha_from_sources(commit_sha="", source_tag="staging-latest", **kw)[0]
        == "1234567"
    )  # type: ignore[index]
    assert (
        naming.short_sha_from_sources(
            commit_sha="", source_tag=None, source_env="staging", annotations={}
        )
        is None
    )


def test_next_timestamp_rules() -> None:
    assert naming.next_timestamp(1_700_000_000.9, [], None) == 1_700_000_000
    # clock behind the newest tag: still newer than every tag, so Flux selects it
    assert (
        naming.next_timestamp(1_700_000_000, [1_700_000_500, 1_699_000_000], None) == 1_700_000_501
    )
    assert naming.next_timestamp(1_700_000_000, [1_700_000_500], 1_700_000_600) == 1_700_000_600
    for explicit in (1_700_000_500, 1_700_000_499):
        with pytest.raises(InputError, match="Flux would never select"):
            naming.next_timestamp(1_700_000_000, [1_700_000_500], explicit)


@pytest.mark.parametrize("text", ["1700000000000", "99", "-1", "17e8", "now", "1700000000.5"])
def test_timestamp_refuses_non_seconds(text: str) -> None:
    with pytest.raises(InputError):
        naming.parse_timestamp(text)


def test_build_tag_round_trip() -> None:
    tag = naming.build_tag("staging", "abc1234", 1_700_000_000)
    parsed = naming.parse_build_tag("staging", tag)
    assert (
        parsed is not None and parsed.short_sha == "abc1234" and parsed.timestamp == 1_700_000_000
    )
    assert naming.parse_build_tag("develop", tag) is None


@pytest.mark.parametrize("env", ["Production", "prod-1", "1prod", "", "a" * 33, "pröd"])
def test_env_grammar(env: str) -> None:
    with pytest.raises(InputError):
        naming.validate_env(env)


def test_a_bump_never_produces_a_part_the_input_rules_refuse() -> None:
    """Issue 17: bumping 1.999999999.999999999 gave 1.1000000000.0, which parse_version
    itself refuses; now it is a clear error naming the way out."""
    current = semver.Version(1, 999_999_999, 999_999_999)
    with pytest.raises(InputError, match="longer than 9 digits") as info:
        naming.next_version(current, bump="patch", explicit=None)
    assert "give version" in str(info.value)
    assert naming.next_version(current, bump="major", explicit=None) == semver.Version(2, 0, 0)


def test_an_explicit_timestamp_far_in_the_future_is_refused() -> None:
    now = 1_796_000_000
    assert naming.parse_timestamp(str(now + 600), now=now) == now + 600
    with pytest.raises(InputError, match="seconds in the future"):
        naming.parse_timestamp(str(now + 601), now=now)
    with pytest.raises(InputError, match="seconds in the future"):
        naming.parse_timestamp("9999999999", now=now)


@pytest.mark.parametrize(
    ("tag", "carries"),
    [
        ("staging-abc1234-1700000000", True),
        ("production-v1.2.3-abc1234-1700000000", True),
        ("pr-7-abc1234", True),
        ("abc1234-staging", False),  # the first word is a name, not a sha
        ("staging-abc12345-1700000000", False),  # a longer sha is another commit
        ("staging-xabc1234-1700000000", False),
        ("staging", False),
    ],
)
def test_carries_short_sha_reads_whole_words(tag: str, carries: bool) -> None:
    assert naming.carries_short_sha(tag, "abc1234") is carries
    assert naming.carries_short_sha(tag, "") is False
