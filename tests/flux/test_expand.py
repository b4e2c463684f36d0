"""Go regexp syntax and ``Regexp.Expand`` as ported in promote.flux.expand.

Expected values follow Go's ``src/regexp/regexp.go`` (``expand``/``extract``) and
``src/regexp/syntax/parse.go`` (``isValidCaptureName``, ``\\C``); each case names the rule.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from promote.flux.expand import GoRegexp, GoRegexpError, Template, scan_subexp_names


def expand(pattern: str, template: str, text: str) -> str | None:
    regexp = GoRegexp(pattern)
    return Template(template, regexp.subexp_names).expand_str(text, regexp)


PROD = r"^production-v(?P<version>[0-9]+\.[0-9]+\.[0-9]+)-(?P<sha>[a-f0-9]+)-(?P<ts>[0-9]+)$"
PROD_TAG = "production-v1.2.3-abc1234-1700000000"


@pytest.mark.parametrize(
    ("pattern", "template", "text", "expected"),
    [
        # numbered and named references
        (PROD, "$ts", PROD_TAG, "1700000000"),
        (PROD, "${ts}", PROD_TAG, "1700000000"),
        (PROD, "$1", PROD_TAG, "1.2.3"),
        (PROD, "${3}", PROD_TAG, "1700000000"),
        (PROD, "$0", PROD_TAG, PROD_TAG),
        (PROD, "$version-$ts", PROD_TAG, "1.2.3-1700000000"),
        (PROD, "v$version", PROD_TAG, "v1.2.3"),
        # $name takes the longest run of letters, digits and _
        (PROD, "$ts_x", PROD_TAG, ""),  # group "ts_x" does not exist
        (PROD, "${ts}_x", PROD_TAG, "1700000000_x"),
        (PROD, "$1x", PROD_TAG, ""),  # $1x is ${1x}, not ${1}x
        (PROD, "${1}x", PROD_TAG, "1.2.3x"),
        (PROD, "$ts.$sha", PROD_TAG, "1700000000.abc1234"),  # "." ends the name
        (PROD, "$tsé", PROD_TAG, ""),  # Unicode letters are name characters in templates
        # $$ is a literal dollar
        (PROD, "$$", PROD_TAG, "$"),
        (PROD, "$$ts", PROD_TAG, "$ts"),
        (PROD, "$$$ts", PROD_TAG, "$1700000000"),
        # malformed references stay literal text
        (PROD, "$", PROD_TAG, "$"),
        (PROD, "a$", PROD_TAG, "a$"),
        (PROD, "$-", PROD_TAG, "$-"),
        (PROD, "${ts", PROD_TAG, "${ts"),
        (PROD, "${}", PROD_TAG, "${}"),
        (PROD, "${-}", PROD_TAG, "${-}"),
        (PROD, "$ ts", PROD_TAG, "$ ts"),
        # out of range, unknown, leading zeros: empty
        (PROD, "$4", PROD_TAG, ""),
        (PROD, "$99999999", PROD_TAG, ""),
        (PROD, "$100000000", PROD_TAG, ""),
        (PROD, "$01", PROD_TAG, ""),  # a leading zero makes it a name, "01", unknown
        (PROD, "$nope", PROD_TAG, ""),
        # groups that did not participate
        ("(a)|(b)", "[$1][$2]", "b", "[][b]"),
        ("(?P<x>a)?b", "<$x>", "b", "<>"),
        # a duplicated name: the first group that participated
        ("(?P<n>a)|(?P<n>b)", "$n", "b", "b"),
        ("(?P<n>a)|(?P<n>b)", "$n", "a", "a"),
        # digits-only names are valid capture names in Go and reachable when not a number
        ("(?P<01>x)", "$01", "x", "x"),
        ("(?P<100000000>x)", "$100000000", "x", ""),  # 1e8 still parses as an index
        ("(?P<1000000000>x)", "$1000000000", "x", "x"),  # past 1e8 it is a name
        # leftmost-first, unanchored: the first match in the text, Perl-style alternation
        ("v(\\d+)", "$1", "a-v1-v2", "1"),
        ("(a|ab)(c|bcd)", "$1/$2", "abcd", "a/bcd"),
        ("(a+?)", "$1", "aaa", "a"),
        # no $ at all: the template is copied
        (PROD, "literal", PROD_TAG, "literal"),
        (PROD, "", PROD_TAG, ""),
        # no match: None
        (PROD, "$ts", "production", None),
        # Unicode text: spans are bytes, the key is decoded back
        ("(é+)", "<$1>", "aééb", "<éé>"),
    ],
)
def test_expand(pattern: str, template: str, text: str, expected: str | None) -> None:
    assert expand(pattern, template, text) == expected


@pytest.mark.parametrize(
    ("pattern", "names"),
    [
        (PROD, ["version", "sha", "ts"]),
        ("(a)(?:b)(?P<c>c)", ["", "c"]),
        ("(?<name>x)", ["name"]),  # the .NET/Perl form, accepted since Go 1.22
        (r"\Q(\E(x)", [""]),  # \Q...\E is literal
        (r"\Q(x)", []),  # \Q without \E runs to the end
        (r"[(](x)", [""]),  # a class is not a group
        (r"[]()](x)", [""]),  # ] first in a class is literal
        (r"[^]()](x)", [""]),
        (r"[[:alpha:](](x)", [""]),
        (r"\((x)", [""]),
        ("(?i)(x)", [""]),
        ("(?i:x)(y)", [""]),
        ("(?P<a>x)(?P<a>y)", ["a", "a"]),  # Go allows duplicate names
    ],
)
def test_subexp_names(pattern: str, names: list[str]) -> None:
    assert scan_subexp_names(pattern) == names
    assert GoRegexp(pattern).subexp_names == ("", *names)


@pytest.mark.parametrize(
    "pattern",
    [
        r"\C",  # C++ RE2 accepts "any byte"; Go: invalid escape
        r"a[\C]",
        "(?P<é>x)",  # Go capture names are ASCII [A-Za-z0-9_]+; C++ RE2 accepts this one
        "(?P<a-b>x)",
        "(?P<>x)",
        "(?<>x)",
        # plain RE2 errors, reported by the engine
        "[=",
        "^test-(.*",
        "a)",
        "a**",
        "a++",  # possessive: not RE2
        "(?=x)",  # look-ahead
        "(?<=x)y",  # look-behind
        r"(a)\1",  # back-reference
        r"\Z",
        "x{1001}",
        "(?x)a b",  # no extended mode in Go
        "\\",
    ],
)
def test_invalid_go_patterns(pattern: str) -> None:
    with pytest.raises(GoRegexpError):
        GoRegexp(pattern)


@pytest.mark.parametrize(
    ("pattern", "text", "found"),
    [
        ("^production$", "production\n", False),  # $ is end of text without (?m)
        ("(?m)^production$", "production\nx", True),
        (r"^\d+$", "١٢٣", False),  # \d is ASCII in RE2
        (r"^\w+$", "é", False),  # so is \w
        (r"^\pL+$", "é", True),
        ("production-v", "preproduction-v1.2.3", True),  # unanchored search
        ("^production-v", "preproduction-v1.2.3", False),
        ("(?i)^PRODUCTION", "production-v1", True),
        ("", "anything", True),  # the empty pattern matches every tag
        (r"\Aab\z", "ab", True),
    ],
)
def test_search_semantics(pattern: str, text: str, found: bool) -> None:
    assert GoRegexp(pattern).search(text) is found


def test_spans_are_bytes_and_unmatched_groups_are_minus_one() -> None:
    regexp = GoRegexp("(é)|(x)")
    assert regexp.find_submatch_index("aé".encode()) == [(1, 3), (1, 3), (-1, -1)]
    assert regexp.find_submatch_index(b"zzz") is None
    assert regexp.num_subexp == 2


_LITERAL = st.text(alphabet=st.characters(blacklist_characters="$"), max_size=20)


@settings(deadline=None)  # CI machines are shared: no per-example deadline
@given(_LITERAL)
def test_dollar_free_templates_are_copied(template: str) -> None:
    assert expand("(x)", template, "x") == template


@settings(deadline=None)  # CI machines are shared: no per-example deadline
@given(st.integers(min_value=0, max_value=30))
def test_dollar_dollar_is_one_dollar(count: int) -> None:
    assert expand("(x)", "$$" * count, "x") == "$" * count


@settings(deadline=None)  # CI machines are shared: no per-example deadline
@given(st.from_regex(r"\A[a-f0-9]{1,12}-[0-9]{1,13}\Z", fullmatch=True))
def test_numbered_and_named_references_agree(text: str) -> None:
    sha, ts = text.split("-")
    regexp = GoRegexp(r"(?P<sha>[a-f0-9]+)-(?P<ts>[0-9]+)")
    for template, expected in (("$1", sha), ("$sha", sha), ("${2}", ts), ("$ts", ts)):
        assert Template(template, regexp.subexp_names).expand_str(text, regexp) == expected


@pytest.mark.parametrize(
    ("template", "parts", "single"),
    [
        ("$ts", ((3,),), 3),
        ("${1}", ((1,),), 1),
        ("v$ts", (b"v", (3,)), None),
        ("$ts-", ((3,), b"-"), None),
        ("$nope", ((),), None),
        ("$$", (b"$",), None),
    ],
)
def test_template_compiles_once_into_parts(
    template: str, parts: tuple[object, ...], single: int | None
) -> None:
    compiled = Template(template, GoRegexp(PROD).subexp_names)
    assert compiled.parts == parts
    assert compiled.single == single


def test_lone_surrogates_do_not_crash() -> None:
    regexp = GoRegexp("(.*)")
    assert Template("$1\ud800", regexp.subexp_names).expand_str("a\udc80", regexp) == (
        "a\udc80\ud800"
    )
