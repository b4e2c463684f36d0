"""Masterminds/semver v3.5 ranges and fluxcd/pkg ParseVersion, as ported in semver_range.

The tables below are transcribed from Masterminds/semver (commit 71f2b39, = v3.5.0 code)
``constraints_test.go`` and ``version_test.go``; Flux-specific behaviour follows.
"""

from __future__ import annotations

import pytest
import semver as pysemver
from hypothesis import given, settings
from hypothesis import strategies as st

from promote.flux import ImagePolicy
from promote.flux.semver_range import (
    Constraints,
    SemverError,
    Version,
    _parse_constraint,
    _rewrite_range,
    new_version,
    parse_version,
    sort_versions,
)

# constraints_test.go TestConstraintCheck: (constraint, version, passes);
# include_pre = the constraint has a pre-release
CONSTRAINT_CHECK = [
    ("=2.0.0", "1.2.3", False),
    ("=2.0.0", "2.0.0", True),
    ("=2.0", "1.2.3", False),
    ("=2.0", "2.0.0", True),
    ("=2.0", "2.0.1", True),
    ("4.1", "4.1.0", True),
    ("!=4.1.0", "4.1.0", False),
    ("!=4.1.0", "4.1.1", True),
    ("!=4.1", "4.1.0", False),
    ("!=4.1", "4.1.1", False),
    ("!=4.1", "5.1.0-alpha.1", False),
    ("!=4.1.0", "5.1.0-alpha.1", False),
    ("!=4.1-alpha", "4.1.0", True),
    ("!=4.1", "5.1.0", True),
    ("<11", "0.1.0", True),
    ("<11", "11.1.0", False),
    ("<1.1", "0.1.0", True),
    ("<1.1", "1.1.0", False),
    ("<1.1", "1.1.1", False),
    ("<=11", "1.2.3", True),
    ("<=11", "12.2.3", False),
    ("<=11", "11.2.3", True),
    ("<=1.1", "1.2.3", False),
    ("<=1.1", "0.1.0", True),
    ("<=1.1", "1.1.0", True),
    ("<=1.1", "1.1.1", True),
    (">1.1", "4.1.0", True),
    (">1.1", "1.1.0", False),
    (">0", "0", False),
    (">0", "1", True),
    (">0", "0.0.1-alpha", False),
    (">0.0", "0.0.1-alpha", False),
    (">0-0", "0.0.1-alpha", False),
    (">0.0-0", "0.0.1-alpha", False),
    (">0", "0.0.0-alpha", False),
    (">0-0", "0.0.0-alpha", False),
    (">0.0.0-0", "0.0.0-alpha", True),
    (">1.2.3-alpha.1", "1.2.3-alpha.2", True),
    (">1.2.3-alpha.1", "1.3.3-alpha.2", True),
    (">11", "11.1.0", False),
    (">11.1", "11.1.0", False),
    (">11.1", "11.1.1", False),
    (">11.1", "11.2.1", True),
    (">=11", "11.1.2", True),
    (">=11.1", "11.1.2", True),
    (">=11.1", "11.0.2", False),
    (">=1.1", "4.1.0", True),
    (">=1.1", "1.1.0", True),
    (">=1.1", "0.0.9", False),
    (">=0", "0.0.1-alpha", False),
    (">=0.0", "0.0.1-alpha", False),
    (">=0-0", "0.0.1-alpha", True),
    (">=0.0-0", "0.0.1-alpha", True),
    (">=0", "0.0.0-alpha", False),
    (">=0-0", "0.0.0-alpha", True),
    (">=0.0.0-0", "0.0.0-alpha", True),
    (">=0.0.0-0", "1.2.3", True),
    (">=0.0.0-0", "3.4.5-beta.1", True),
    ("<0", "0.0.0-alpha", False),
    ("<0-z", "0.0.0-alpha", True),
    (">=0", "0", True),
    ("=0", "1", False),
    ("*", "1", True),
    ("*", "4.5.6", True),
    ("*", "1.2.3-alpha.1", False),
    ("*-0", "1.2.3-alpha.1", True),
    ("2.*", "1", False),
    ("2.*", "3.4.5", False),
    ("2.*", "2.1.1", True),
    ("2.1.*", "2.1.1", True),
    ("2.1.*", "2.2.1", False),
    ("", "1", True),
    ("", "4.5.6", True),
    ("", "1.2.3-alpha.1", False),
    ("2", "1", False),
    ("2", "3.4.5", False),
    ("2", "2.1.1", True),
    ("2.1", "2.1.1", True),
    ("2.1", "2.2.1", False),
    ("~1.2.3", "1.2.4", True),
    ("~1.2.3", "1.3.4", False),
    ("~1.2", "1.2.4", True),
    ("~1.2", "1.3.4", False),
    ("~1", "1.2.4", True),
    ("~1", "2.3.4", False),
    ("~0.2.3", "0.2.5", True),
    ("~0.2.3", "0.3.5", False),
    ("~1.2.3-beta.2", "1.2.3-beta.4", True),
    ("~1.2.3-beta.2", "1.2.4-beta.2", True),
    ("~1.2.3-beta.2", "1.3.4-beta.2", False),
    ("^1.2.3", "1.8.9", True),
    ("^1.2.3", "2.8.9", False),
    ("^1.2.3", "1.2.1", False),
    ("^1.1.0", "2.1.0", False),
    ("^1.2.0", "2.2.1", False),
    ("^1.2.0", "1.2.1-alpha.1", False),
    ("^1.2.0-alpha.0", "1.2.1-alpha.1", True),
    ("^1.2.0-alpha.0", "1.2.1-alpha.0", True),
    ("^1.2.0-alpha.2", "1.2.0-alpha.1", False),
    ("^1.2", "1.8.9", True),
    ("^1.2", "2.8.9", False),
    ("^1", "1.8.9", True),
    ("^1", "2.8.9", False),
    ("^0.2.3", "0.2.5", True),
    ("^0.2.3", "0.5.6", False),
    ("^0.2", "0.2.5", True),
    ("^0.2", "0.5.6", False),
    ("^0.0.3", "0.0.3", True),
    ("^0.0.3", "0.0.4", False),
    ("^0.0", "0.0.3", True),
    ("^0.0", "0.1.4", False),
    ("^0.0", "1.0.4", False),
    ("^0", "0.2.3", True),
    ("^0", "1.1.4", False),
    ("^0.2.3-beta.2", "0.2.3-beta.4", True),
    ("^0.2.3-beta.2", "0.2.4-beta.2", True),
    ("^0.2.3-beta.2", "0.3.4-beta.2", False),
    ("^0.2.3-beta.2", "0.2.3-beta.2", True),
]

# constraints_test.go TestNewConstraint: (range, OR groups, constraints in the first group, error)
NEW_CONSTRAINT = [
    (">= 1.1", 1, 1, False),
    (">40.50.60, < 50.70", 1, 2, False),
    ("2.0", 1, 1, False),
    ("v2.3.5-20161202202307-sha.e8fc5e5", 1, 1, False),
    ("v1.2.3-0abc", 1, 1, False),
    ("v1.2.3-beta.01", 1, 1, True),
    (">= bar", 0, 0, True),
    ("BAR >= 1.2.3", 0, 0, True),
    (">= 1.2.3 < 2.0", 1, 2, False),
    (">= 1.2.3 < 2.0 || => 3.0 < 4", 2, 2, False),
    (">= 1.2.3, < 2.0", 1, 2, False),
    (">= 1.2.3, < 2.0 || => 3.0, < 4", 2, 2, False),
    ("3 - 4 || => 3.0, < 4", 2, 2, False),
    ("12.3.4.1234", 0, 0, True),
    ("12.23.4.1234", 0, 0, True),
    ("12.3.34.1234", 0, 0, True),
    ("12.3.34 ~1.2.3", 1, 2, False),
    ("12.3.34~ 1.2.3", 0, 0, True),
    ("1.0.0 - 2.0.0, <=2.0.0", 1, 3, False),
]

# constraints_test.go TestConstraintsCheck: (range, version, passes)
CONSTRAINTS_CHECK = [
    ("*", "1.2.3", True),
    ("~0.0.0", "1.2.3", True),
    ("0.x.x", "1.2.3", False),
    ("0.0.x", "1.2.3", False),
    ("0.0.0", "1.2.3", False),
    ("*", "1.2.3", True),
    ("^0.0.0", "1.2.3", False),
    ("= 2.0", "1.2.3", False),
    ("= 2.0", "2.0.0", True),
    ("4.1", "4.1.0", True),
    ("4.1.x", "4.1.3", True),
    ("1.x", "1.4", True),
    ("!=4.1", "4.1.0", False),
    ("!=4.1-alpha", "4.1.0-alpha", False),
    ("!=4.1-alpha", "4.1.1-alpha", False),
    ("!=4.1-alpha", "4.1.0", True),
    ("!=4.1", "5.1.0", True),
    ("!=4.x", "5.1.0", True),
    ("!=4.x", "4.1.0", False),
    ("!=4.1.x", "4.2.0", True),
    ("!=4.2.x", "4.2.3", False),
    (">1.1", "4.1.0", True),
    (">1.1", "1.1.0", False),
    ("<1.1", "0.1.0", True),
    ("<1.1", "1.1.0", False),
    ("<1.1", "1.1.1", False),
    ("<1.x", "1.1.1", False),
    ("<1.x", "0.1.1", True),
    ("<1.x", "2.0.0", False),
    ("<1.1.x", "1.2.1", False),
    ("<1.1.x", "1.1.500", False),
    ("<1.1.x", "1.0.500", True),
    ("<1.2.x", "1.1.1", True),
    (">=1.1", "4.1.0", True),
    (">=1.1", "4.1.0-beta", False),
    (">=1.1", "1.1.0", True),
    (">=1.1", "0.0.9", False),
    ("<=1.1", "0.1.0", True),
    ("<=1.1", "0.1.0-alpha", False),
    ("<=1.1-a", "0.1.0-alpha", True),
    ("<=1.1", "1.1.0", True),
    ("<=1.x", "1.1.0", True),
    ("<=2.x", "3.0.0", False),
    ("<=1.1", "1.1.1", True),
    ("<=1.1.x", "1.2.500", False),
    ("<=4.5", "3.4.0", True),
    ("<=4.5", "3.7.0", True),
    ("<=4.5", "4.6.3", False),
    (">1.1, <2", "1.1.1", False),
    (">1.1, <2", "1.2.1", True),
    (">1.1, <3", "4.3.2", False),
    (">=1.1, <2, !=1.2.3", "1.2.3", False),
    (">1.1 <2", "1.1.1", False),
    (">1.1 <2", "1.2.1", True),
    (">1.1    <3", "4.3.2", False),
    (">=1.1    <2    !=1.2.3", "1.2.3", False),
    (">=1.1, <2, !=1.2.3 || > 3", "4.1.2", True),
    (">=1.1, <2, !=1.2.3 || > 3", "3.1.2", False),
    (">=1.1, <2, !=1.2.3 || >= 3", "3.0.0", True),
    (">=1.1, <2, !=1.2.3 || > 3", "3.0.0", False),
    (">=1.1, <2, !=1.2.3 || > 3", "1.2.3", False),
    (">=1.1 <2 !=1.2.3", "1.2.3", False),
    (">=1.1 <2 !=1.2.3 || > 3", "4.1.2", True),
    (">=1.1 <2 !=1.2.3 || > 3", "3.1.2", False),
    (">=1.1 <2 !=1.2.3 || >= 3", "3.0.0", True),
    (">=1.1 <2 !=1.2.3 || > 3", "3.0.0", False),
    (">=1.1 <2 !=1.2.3 || > 3", "1.2.3", False),
    ("> 1.1, <     2", "1.1.1", False),
    (">   1.1, <2", "1.2.1", True),
    (">1.1, <  3", "4.3.2", False),
    (">= 1.1, <     2, !=1.2.3", "1.2.3", False),
    ("> 1.1 < 2", "1.1.1", False),
    (">1.1 < 2", "1.2.1", True),
    ("> 1.1    <3", "4.3.2", False),
    (">=1.1    < 2    != 1.2.3", "1.2.3", False),
    (">= 1.1, <2, !=1.2.3 || > 3", "4.1.2", True),
    (">= 1.1, <2, != 1.2.3 || > 3", "3.1.2", False),
    (">= 1.1, <2, != 1.2.3 || >= 3", "3.0.0", True),
    (">= 1.1, <2, !=1.2.3 || > 3", "3.0.0", False),
    (">= 1.1, <2, !=1.2.3 || > 3", "1.2.3", False),
    (">= 1.1 <2 != 1.2.3", "1.2.3", False),
    (">= 1.1 <2 != 1.2.3 || > 3", "4.1.2", True),
    (">= 1.1 <2 != 1.2.3 || > 3", "3.1.2", False),
    (">= 1.1 <2 != 1.2.3 || >= 3", "3.0.0", True),
    (">= 1.1 < 2 !=1.2.3 || > 3", "3.0.0", False),
    (">=1.1 < 2 !=1.2.3 || > 3", "1.2.3", False),
    (">= 1.0.0  <= 2.0.0-beta", "1.0.1-beta", True),
    (">= 1.0.0  <= 2.0.0-beta", "1.0.1", True),
    (">= 1.0.0  <= 2.0.0-beta", "3.0.0", False),
    (">= 1.0.0  <= 2.0.0-beta || > 3", "1.0.1-beta", True),
    (">= 1.0.0  <= 2.0.0-beta || > 3", "3.0.1-beta", False),
    (">= 1.0.0  <= 2.0.0-beta != 1.0.1 || > 3", "1.0.1-beta", True),
    (">= 1.0.0  <= 2.0.0-beta != 1.0.1-beta || > 3", "1.0.1-beta", False),
    (">= 1.0.0-0  <= 2.0.0", "1.0.1-beta", True),
    ("1.1 - 2", "1.1.1", True),
    ("1.5.0 - 4.5", "3.7.0", True),
    ("1.1-3", "4.3.2", False),
    ("^1.1", "1.1.1", True),
    ("^1.1", "4.3.2", False),
    ("^1.x", "1.1.1", True),
    ("^2.x", "1.1.1", False),
    ("^1.x", "2.1.1", False),
    ("^1.x", "1.1.1-beta1", False),
    ("^1.1.2-alpha", "1.2.1-beta1", True),
    ("^1.2.x-alpha", "1.1.1-beta1", False),
    ("^0.0.1", "0.0.1", True),
    ("^0.0.1", "0.3.1", False),
    ("~*", "2.1.1", True),
    ("~1", "2.1.1", False),
    ("~1", "1.3.5", True),
    ("~1", "1.4", True),
    ("~1.x", "2.1.1", False),
    ("~1.x", "1.3.5", True),
    ("~1.x", "1.4", True),
    ("~1.1", "1.1.1", True),
    ("~1.1", "1.1.1-alpha", False),
    ("~1.1-alpha", "1.1.1-beta", True),
    ("~1.1.1-beta", "1.1.1-alpha", False),
    ("~1.1.1-beta", "1.1.1", True),
    ("~1.2.3", "1.2.5", True),
    ("~1.2.3", "1.2.2", False),
    ("~1.2.3", "1.3.2", False),
    ("~1.1", "1.2.3", False),
    ("~1.3", "2.4.5", False),
    ("1.0.0 - 2.0.0 <=2.0.0", "1.5.0", True),
    ("1.0.0 - 2.0.0, <=2.0.0", "1.5.0", True),
]

# constraints_test.go TestRewriteRange: (range, rewritten)
REWRITE_RANGE = [
    ("2 - 3", ">= 2, <= 3 "),
    ("2 - 3, 2 - 3", ">= 2, <= 3 ,>= 2, <= 3 "),
    ("2 - 3, 4.0.0 - 5.1", ">= 2, <= 3 ,>= 4.0.0, <= 5.1 "),
    ("2 - 3 4.0.0 - 5.1", ">= 2, <= 3 >= 4.0.0, <= 5.1 "),
    ("1.0.0 - 2.0.0 <=2.0.0", ">= 1.0.0, <= 2.0.0 <=2.0.0"),
]

# version_test.go TestNewVersion 'With loose NewVersion': (text, error)
NEW_VERSION = [
    ("1.2.3", False),
    ("1.2.3-alpha.01", True),
    ("1.2.3+test.01", False),
    ("1.2.3-alpha.-1", False),
    ("v1.2.3", False),
    ("1.0", False),
    ("v1.0", False),
    ("1", False),
    ("v1", False),
    ("1.2.beta", True),
    ("v1.2.beta", True),
    ("foo", True),
    ("1.2-5", False),
    ("v1.2-5", False),
    ("1.2-beta.5", False),
    ("v1.2-beta.5", False),
    ("\n1.2", True),
    ("\nv1.2", True),
    ("1.2.0-x.Y.0+metadata", False),
    ("v1.2.0-x.Y.0+metadata", False),
    ("1.2.0-x.Y.0+metadata-width-hypen", False),
    ("v1.2.0-x.Y.0+metadata-width-hypen", False),
    ("1.2.3-rc1-with-hypen", False),
    ("v1.2.3-rc1-with-hypen", False),
    ("1.2.3-0abc123", False),
    ("1.2.3-beta.01", True),
    ("1.2.3.4", True),
    ("v1.2.3.4", True),
    ("1.2.2147483648", False),
    ("1.2147483648.3", False),
    ("2147483648.3.0", False),
    ("12.3.4.1234", True),
    ("12.23.4.1234", True),
    ("12.3.34.1234", True),
    ("20221209-update-renovatejson-v4", False),
    ("1.1.2+.123", True),
    ("1.0.0-alpha_beta", True),
    ("1.0.0-alpha..", True),
    ("1.0.0-alpha..1", True),
    ("9.8.7+meta+meta", True),
    ("1.2.31----RC-SNAPSHOT.12.09.1--.12+788", True),
    ("01.1.1", False),
    ("1.01.1", False),
    ("1.1.01", False),
]

# version_test.go TestCompare: (a, b, Compare(a, b))
COMPARE = [
    ("1.2.3", "1.5.1", -1),
    ("2.2.3", "1.5.1", 1),
    ("2.2.3", "2.2.2", 1),
    ("3.2-beta", "3.2-beta", 0),
    ("1.3", "1.1.4", 1),
    ("4.2", "4.2-beta", 1),
    ("4.2-beta", "4.2", -1),
    ("4.2-alpha", "4.2-beta", -1),
    ("4.2-alpha", "4.2-alpha", 0),
    ("4.2-beta.2", "4.2-beta.1", 1),
    ("4.2-beta2", "4.2-beta1", 1),
    ("4.2-beta", "4.2-beta.2", -1),
    ("4.2-beta", "4.2-beta.foo", -1),
    ("4.2-beta.2", "4.2-beta", 1),
    ("4.2-beta.foo", "4.2-beta", 1),
    ("1.2+bar", "1.2+baz", 0),
    ("1.0.0-beta.4", "1.0.0-beta.-2", -1),
    ("1.0.0-beta.-2", "1.0.0-beta.-3", -1),
    ("1.0.0-beta.-3", "1.0.0-beta.5", 1),
]


@pytest.mark.parametrize(("constraint", "version", "expected"), CONSTRAINT_CHECK)
def test_single_constraint(constraint: str, version: str, expected: bool) -> None:
    parsed = _parse_constraint(constraint)
    assert parsed.check(new_version(version), parsed.con.pre != "") is expected


@pytest.mark.parametrize(("text", "ors", "count", "error"), NEW_CONSTRAINT)
def test_new_constraint(text: str, ors: int, count: int, error: bool) -> None:
    if error:
        with pytest.raises(SemverError):
            Constraints.parse(text)
        return
    parsed = Constraints.parse(text)
    assert len(parsed.groups) == ors
    assert len(parsed.groups[0]) == count


@pytest.mark.parametrize(("constraint", "version", "expected"), CONSTRAINTS_CHECK)
def test_constraints_check(constraint: str, version: str, expected: bool) -> None:
    assert Constraints.parse(constraint).check(new_version(version)) is expected


@pytest.mark.parametrize(("text", "rewritten"), REWRITE_RANGE)
def test_rewrite_range(text: str, rewritten: str) -> None:
    assert _rewrite_range(text) == rewritten


@pytest.mark.parametrize(("text", "error"), NEW_VERSION)
def test_new_version(text: str, error: bool) -> None:
    if error:
        with pytest.raises(SemverError):
            new_version(text)
    else:
        assert new_version(text).original == text


@pytest.mark.parametrize(("a", "b", "expected"), COMPARE)
def test_compare(a: str, b: str, expected: int) -> None:
    assert new_version(a).compare(new_version(b)) == expected
    assert new_version(b).compare(new_version(a)) == -expected


# --- fluxcd/pkg ParseVersion and the Flux-facing behaviour -------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("v1.2.3", (1, 2, 3, "", "")),
        ("1.2.3", (1, 2, 3, "", "")),
        ("v2025.07.03", (2025, 7, 3, "", "")),  # leading zeros: CalVer works since IRC v1.0
        ("007.008.009", (7, 8, 9, "", "")),
        ("1.2-rc.1", (1, 2, 0, "rc.1", "")),  # two dots in total, so it passes the split
        ("1.2.3-rc.1+build.5", (1, 2, 3, "rc.1", "build.5")),
        ("18446744073709551615.0.0", (18446744073709551615, 0, 0, "", "")),
    ],
)
def test_parse_version_accepts(text: str, expected: tuple[int, int, int, str, str]) -> None:
    v = parse_version(text)
    assert (v.major, v.minor, v.patch, v.pre, v.metadata) == expected
    assert v.original == text


@pytest.mark.parametrize(
    "text",
    [
        "1.2",  # two parts
        "v1",
        "V1.2.3",  # only a lower-case v
        "1.2.3.4",
        "1.2.3 ",
        " 1.2.3",
        "1.2.3\n",  # Go's $ is end of text (Python re's $ would also match before \n)
        "18446744073709551616.0.0",  # does not fit uint64
        "1.2.3-rc.01",  # numeric pre-release identifier with a leading zero
        "1.2.3-",
        "1.2.3+",
        "1.2.3-rc..1",
        "1.2.3-rc_1",
        "production-v1.2.3-abc-1700000000",
        "",
    ],
)
def test_parse_version_rejects(text: str) -> None:
    with pytest.raises(SemverError):
        parse_version(text)


@pytest.mark.parametrize("text", ["1.0.0p", "1x", "x1", "-1", "a", "", "*-*", "1.0 ||", ">= bar"])
def test_invalid_ranges(text: str) -> None:
    with pytest.raises(SemverError):
        Constraints.parse(text)


@pytest.mark.parametrize(
    ("constraint", "version", "expected"),
    [
        # v3.4+ (IRC >= v1.0): a pre-release in any comparator admits pre-releases for the
        # whole AND group; v3.3 (IRC <= v0.35) checked each comparator on its own.
        (">=1.0.0-0 <2.0.0", "1.1.0-rc.1", True),
        (">=1.0.0 <2.0.0", "1.1.0-rc.1", False),
        (">=1.0.0", "1.1.0-rc.1", False),
        ("^1.x-0", "1.4.0-rc.2", True),
        (">1.0.0-rc <2.0.0-rc", "1.5.0-beta", True),
        # ...but only for that group of an OR
        (">=1.0.0 <2.0.0 || >=3.0.0-0", "1.5.0-rc.1", False),
        (">=1.0.0 <2.0.0 || >=3.0.0-0", "3.1.0-rc.1", True),
        # v prefixes on either side, wildcards, hyphen ranges, comma and space ANDs
        ("v1.0.x", "1.0.7", True),
        ("1.0.x", "v1.0.7", True),
        ("1.2 - 1.4.5", "1.4.5", True),
        ("1.2 - 1.4.5", "1.4.6", False),
        (">=1.2.0,<1.3.0", "1.2.9", True),
        (">= 1.2.0 < 1.3.0", "1.3.0", False),
        ("!=1.2.3", "1.2.3", False),
        ("=>1.2.3", "1.2.3", True),
        ("=<1.2.3", "1.2.4", False),
        ("~>1.2.3", "1.2.9", True),
        ("~>1.2.3", "1.3.0", False),
        ("^0.0.3", "0.0.4", False),
        ("*", "99.0.0", True),
        ("X", "1.0.0", True),
        # calendar versions compare per component (IRC#250)
        (">=2021.0.0", "2025.7.3", True),
        ("2025.07.x", "v2025.07.03", True),
    ],
)
def test_flux_range_semantics(constraint: str, version: str, expected: bool) -> None:
    assert Constraints.parse(constraint).check(parse_version(version)) is expected


def test_sort_is_descending_and_stable_for_equal_precedence() -> None:
    tags = ["1.0.0+b2", "v1.0.0", "0.9.0", "1.0.0+b1", "junk", "1.0.0-rc.1"]
    assert sort_versions(None, tags) == ["1.0.0+b2", "v1.0.0", "1.0.0+b1", "1.0.0-rc.1", "0.9.0"]
    assert sort_versions(Constraints.parse(">=1.0.0"), tags) == ["1.0.0+b2", "v1.0.0", "1.0.0+b1"]


# --- property tests against python-semver's SemVer 2.0 precedence --------------------------

_NUMBER = st.integers(min_value=0, max_value=2**40)
_ALNUM = st.text(alphabet="abcxyzABZ-", min_size=1, max_size=4)
_IDENT = st.one_of(
    _NUMBER.map(str), _ALNUM, st.tuples(_NUMBER, _ALNUM).map(lambda t: f"{t[0]}{t[1]}")
)
_PRE = st.lists(_IDENT, min_size=0, max_size=3).map(".".join)
_BUILD = st.lists(st.text(alphabet="abc019-", min_size=1, max_size=3), max_size=2).map(".".join)


@st.composite
def _versions(draw: st.DrawFn) -> str:
    text = f"{draw(_NUMBER)}.{draw(_NUMBER)}.{draw(_NUMBER)}"
    pre = draw(_PRE)
    if pre:
        text += f"-{pre}"
    build = draw(_BUILD)
    if build:
        text += f"+{build}"
    return text


@settings(deadline=None)  # CI machines are shared: no per-example deadline
@given(_versions(), _versions())
def test_precedence_agrees_with_python_semver(a: str, b: str) -> None:
    """Masterminds' Compare is SemVer 2.0 precedence for identifiers that fit in uint64."""
    expected = pysemver.Version.parse(a).compare(pysemver.Version.parse(b))
    assert parse_version(a).compare(parse_version(b)) == expected
    assert parse_version("v" + a).compare(parse_version(b)) == expected


@settings(deadline=None)  # CI machines are shared: no per-example deadline
@given(st.lists(_versions(), min_size=1, max_size=12, unique=True))
def test_semver_policy_selects_the_highest(tags: list[str]) -> None:
    policy = ImagePolicy.from_spec({"policy": {"semver": {"range": "*"}}})
    releases = [t for t in tags if pysemver.Version.parse(t).prerelease is None]
    chosen = policy.evaluate(tags)
    if not releases:
        assert chosen.tag is None  # "*" has no pre-release: pre-releases never qualify
        return
    assert chosen.tag is not None
    best = max(releases, key=pysemver.Version.parse)
    assert pysemver.Version.parse(chosen.tag).compare(best) == 0
    tied = {t for t in releases if pysemver.Version.parse(t).compare(best) == 0}
    assert set(chosen.candidates) == tied
    assert chosen.ambiguous is (len(tied) > 1)


def test_uint64_overflowing_prerelease_identifier_compares_as_alphanumeric() -> None:
    big = "1.0.0-18446744073709551616"  # > uint64: ParseUint fails, so it is "alphanumeric"
    assert parse_version(big).compare(parse_version("1.0.0-99")) == 1
    assert parse_version(big).compare(parse_version("1.0.0-a")) == -1  # "1..." < "a" bytewise
    assert Version(1, 0, 0).compare(parse_version("1.0.0+meta")) == 0


@settings(deadline=None)  # CI machines are shared: no per-example deadline
@given(_versions(), _versions())
def test_precedence_key_orders_like_compare(a: str, b: str) -> None:
    va, vb = parse_version(a), parse_version(b)
    by_key = (va.precedence() > vb.precedence()) - (va.precedence() < vb.precedence())
    assert by_key == va.compare(vb)


@settings(deadline=None)  # CI machines are shared: no per-example deadline
@given(
    st.one_of(
        _versions(),
        st.text(alphabet="v0123456789.-+abZ_\n ", max_size=16),
    )
)
def test_loose_version_regexes_agree(text: str) -> None:
    """The Python ``re`` form of looseSemVerRegex parses exactly like the RE2 original."""
    from promote.flux.semver_range import _LOOSE_VERSION_PY, _Regexes, _submatch

    go = _submatch(_Regexes.get().loose_version, text)
    py = _LOOSE_VERSION_PY.match(text)
    assert (go is None) == (py is None)
    if go is not None and py is not None:
        assert [g or "" for g in py.groups()] == go[1:]
