"""Masterminds/semver v3 ranges and fluxcd/pkg ``version.ParseVersion``, ported to Python.

Flux's semver policy (image-reflector-controller ``internal/policy/semver.go``) checks each tag
with ``semver.NewConstraint(range).Check(version.ParseVersion(tag))``. No Python library
implements Masterminds' range grammar (node-semver style libraries differ on pre-releases,
wildcards and ``!=``), so this module is a line-by-line port of:

- ``Masterminds/semver`` v3.5.0 ``constraints.go`` (``NewConstraint``, ``rewriteRange``,
  ``parseConstraint``, the ``constraint*`` functions, the per-AND-group pre-release rule) and
  ``version.go`` (``NewVersion`` with ``CoerceNewVersion = true``, ``Compare``,
  ``comparePrerelease``, ``validatePrerelease``, ``validateMetadata``);
- ``fluxcd/pkg/version`` v0.16.0 ``ParseVersion`` (at least two dots, then ``NewVersion``) and
  ``Sort``.

The grammar's regular expressions are Masterminds' own, run by RE2 (Go ``regexp`` semantics:
ASCII ``\\s``, ``$`` only at the end of the text). Numbers are ``uint64`` as in Go: a
component that does not fit makes the version invalid, and an overflowing numeric
pre-release identifier compares as alphanumeric.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cmp_to_key

from promote.flux.expand import GoRegexp, to_bytes, to_text

__all__ = [
    "Constraints",
    "SemverError",
    "Version",
    "new_version",
    "parse_version",
    "sort_versions",
]

_UINT64_MAX = (1 << 64) - 1


class SemverError(ValueError):
    """A version or a constraint does not parse (Masterminds' error text where it has one)."""


_CV = (
    r"v?([0-9|x|X|\*]+)(\.[0-9|x|X|\*]+)?(\.[0-9|x|X|\*]+)?"
    r"(-([0-9A-Za-z\-]+(\.[0-9A-Za-z\-]+)*))?"
    r"(\+([0-9A-Za-z\-]+(\.[0-9A-Za-z\-]+)*))?"
)
_OPS = r"=||!=|>|<|>=|=>|<=|=<|~|~>|\^"
_LOOSE_VERSION = (
    r"^v?([0-9]+)(\.[0-9]+)?(\.[0-9]+)?"
    r"(-([0-9A-Za-z\-]+(\.[0-9A-Za-z\-]+)*))?"
    r"(\+([0-9A-Za-z\-]+(\.[0-9A-Za-z\-]+)*))?$"
)


class _Regexes:
    """Masterminds' regular expressions, compiled on first use."""

    _instance: _Regexes | None = None

    def __init__(self) -> None:
        self.constraint = GoRegexp(rf"^\s*({_OPS})\s*({_CV})\s*$")
        self.constraint_range = GoRegexp(rf"\s*({_CV})\s+-\s+({_CV})\s*")
        self.find_constraint = GoRegexp(rf"({_OPS})\s*({_CV})")
        self.valid_constraint = GoRegexp(
            rf"^(\s*({_OPS})\s*({_CV})\s*)((?:\s+|,\s*)({_OPS})\s*({_CV})\s*)*$"
        )
        self.loose_version = GoRegexp(_LOOSE_VERSION)

    @classmethod
    def get(cls) -> _Regexes:
        if cls._instance is None:
            cls._instance = _Regexes()
        return cls._instance


def _submatch(regexp: GoRegexp, text: str) -> list[str] | None:
    """Go ``FindStringSubmatch``: group texts, ``""`` for a group that did not participate."""
    data = to_bytes(text)
    spans = regexp.find_submatch_index(data)
    if spans is None:
        return None
    return [to_text(data[s:e]) if s >= 0 else "" for s, e in spans]


def _find_all(regexp: GoRegexp, text: str) -> list[list[str]]:
    """Go ``FindAllStringSubmatch(text, -1)`` for patterns that never match the empty string."""
    data = to_bytes(text)
    found: list[list[str]] = []
    pos = 0
    while pos <= len(data):
        spans = regexp.find_submatch_index_from(data, pos)
        if spans is None:
            break
        found.append([to_text(data[s:e]) if s >= 0 else "" for s, e in spans])
        pos = spans[0][1] if spans[0][1] > pos else pos + 1
    return found


def _parse_uint64(text: str) -> int | None:
    """``strconv.ParseUint(text, 10, 64)``: ASCII digits only, no sign, must fit in 64 bits."""
    if not text or not (text.isascii() and text.isdigit()):
        return None
    value = int(text)
    return value if value <= _UINT64_MAX else None


_NUM = frozenset("0123456789")
_ALLOWED = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-0123456789")


def _validate_prerelease(pre: str) -> None:
    for part in pre.split("."):
        if part == "":
            raise SemverError("invalid prerelease string")
        if set(part) <= _NUM:
            if len(part) > 1 and part[0] == "0":
                raise SemverError("version segment starts with 0")
        elif not set(part) <= _ALLOWED:
            raise SemverError("invalid prerelease string")


def _validate_metadata(meta: str) -> None:
    for part in meta.split("."):
        if part == "" or not set(part) <= _ALLOWED:
            raise SemverError("invalid metadata string")


@dataclass(frozen=True)
class Version:
    """A Masterminds ``*semver.Version``: ``original`` is the text it was parsed from."""

    major: int
    minor: int
    patch: int
    pre: str = ""
    metadata: str = ""
    original: str = ""

    def compare(self, other: Version) -> int:
        """Masterminds ``Compare``: -1, 0 or 1; build metadata is ignored."""
        for mine, theirs in (
            (self.major, other.major),
            (self.minor, other.minor),
            (self.patch, other.patch),
        ):
            if mine != theirs:
                return -1 if mine < theirs else 1
        if self.pre == "" and other.pre == "":
            return 0
        if self.pre == "":
            return 1
        if other.pre == "":
            return -1
        return _compare_prerelease(self.pre, other.pre)

    def precedence(self) -> tuple[int, int, int, int, tuple[tuple[int, int | str], ...]]:
        """A sort key ordering versions exactly as :meth:`compare` does (build ignored)."""
        if not self.pre:
            return (self.major, self.minor, self.patch, 1, ())
        parts: list[tuple[int, int | str]] = []
        for part in self.pre.split("."):
            number = _parse_uint64(part)
            parts.append((1, part) if number is None else (0, number))
        return (self.major, self.minor, self.patch, 0, tuple(parts))

    def __str__(self) -> str:
        text = f"{self.major}.{self.minor}.{self.patch}"
        if self.pre:
            text += f"-{self.pre}"
        if self.metadata:
            text += f"+{self.metadata}"
        return text


def _compare_prerelease(mine: str, theirs: str) -> int:
    sparts = mine.split(".")
    oparts = theirs.split(".")
    for i in range(max(len(sparts), len(oparts))):
        stemp = sparts[i] if i < len(sparts) else ""
        otemp = oparts[i] if i < len(oparts) else ""
        d = _compare_pre_part(stemp, otemp)
        if d != 0:
            return d
    return 0


def _compare_pre_part(s: str, o: str) -> int:
    if s == o:
        return 0
    if s == "":
        return -1
    if o == "":
        return 1
    oi = _parse_uint64(o)
    si = _parse_uint64(s)
    if oi is None and si is None:
        return 1 if s > o else -1
    if oi is None:
        return -1  # numeric identifiers have lower precedence than alphanumeric ones
    if si is None:
        return 1
    return 1 if si > oi else -1


# looseSemVerRegex for Python's ``re``: the pattern is anchored at both ends (``\Z``, not
# ``$``, which in Python also matches before a final newline) and uses only explicit ASCII
# classes, so its single possible parse is the one RE2 finds; it avoids a UTF-8 round trip
# per tag. ``test_loose_version_regexes_agree`` checks it against the RE2 original.
_LOOSE_VERSION_PY = re.compile(
    r"\Av?([0-9]+)(\.[0-9]+)?(\.[0-9]+)?"
    r"(-([0-9A-Za-z\-]+(\.[0-9A-Za-z\-]+)*))?"
    r"(\+([0-9A-Za-z\-]+(\.[0-9A-Za-z\-]+)*))?\Z"
)


def new_version(text: str) -> Version:
    """Masterminds ``NewVersion`` (coercing: ``v`` prefix, 1-3 parts, leading zeros)."""
    m = _LOOSE_VERSION_PY.match(text)
    if m is None:
        raise SemverError("invalid semantic version")
    g_major, g_minor, g_patch, _, g_pre, _, _, g_meta, _ = m.groups()
    major = int(g_major)
    minor = int(g_minor[1:]) if g_minor else 0
    patch = int(g_patch[1:]) if g_patch else 0
    if major > _UINT64_MAX or minor > _UINT64_MAX or patch > _UINT64_MAX:
        raise SemverError("error parsing version segment: value out of range")
    pre, metadata = g_pre or "", g_meta or ""
    if pre:
        _validate_prerelease(pre)
    if metadata:
        _validate_metadata(metadata)
    return Version(major, minor, patch, pre, metadata, text)


def parse_version(text: str) -> Version:
    """fluxcd/pkg ``version.ParseVersion``: at least ``X.Y.Z`` (two dots), then ``NewVersion``."""
    if len(text.split(".", 2)) != 3:
        raise SemverError("invalid semantic version")
    return new_version(text)


def _is_x(text: str) -> bool:
    return text in ("x", "*", "X")


@dataclass(frozen=True)
class _Constraint:
    con: Version
    orig: str
    origfunc: str
    minor_dirty: bool
    dirty: bool
    patch_dirty: bool

    def check(self, v: Version, include_pre: bool) -> bool:
        return _CONSTRAINT_OPS[self.origfunc](v, self, include_pre)


def _parse_constraint(text: str) -> _Constraint:
    if not text:  # the empty constraint is >=0.0.0 (unreachable from NewConstraint)
        return _Constraint(Version(0, 0, 0, original="0.0.0"), text, "", False, True, False)
    m = _submatch(_Regexes.get().constraint, text)
    if m is None:
        raise SemverError(f'improper constraint: "{text}"')
    ver = m[2]
    minor_dirty = patch_dirty = dirty = False
    if _is_x(m[3]) or m[3] == "":
        ver = f"0.0.0{m[6]}"
        dirty = True
    elif _is_x(m[4].removeprefix(".")) or m[4] == "":
        minor_dirty = dirty = True
        ver = f"{m[3]}.0.0{m[6]}"
    elif _is_x(m[5].removeprefix(".")) or m[5] == "":
        dirty = patch_dirty = True
        ver = f"{m[3]}{m[4]}.0{m[6]}"
    try:
        con = new_version(ver)
    except SemverError:
        raise SemverError(f'constraint parser error: "{text}"') from None
    return _Constraint(con, m[2], m[1], minor_dirty, dirty, patch_dirty)


def _skip_pre(v: Version, include_pre: bool) -> bool:
    # The existence of pre-releases is checked at the AND-group level and passed in.
    return v.pre != "" and not include_pre


def _not_equal(v: Version, c: _Constraint, include_pre: bool) -> bool:
    if _skip_pre(v, include_pre):
        return False
    if c.dirty:
        if c.con.major != v.major:
            return True
        if c.con.minor != v.minor and not c.minor_dirty:
            return True
        if c.minor_dirty:
            return False
        if c.con.patch != v.patch and not c.patch_dirty:
            return True
        if c.patch_dirty:
            if v.pre != "" or c.con.pre != "":
                return _compare_prerelease(v.pre, c.con.pre) != 0
            return False
    return v.compare(c.con) != 0


def _greater_than(v: Version, c: _Constraint, include_pre: bool) -> bool:
    if _skip_pre(v, include_pre):
        return False
    if not c.dirty:
        return v.compare(c.con) == 1
    if v.major > c.con.major:
        return True
    if v.major < c.con.major:
        return False
    if c.minor_dirty:
        return False  # >11 needs 12 or higher
    if c.patch_dirty:
        return v.minor > c.con.minor  # >11.1 needs 11.2 or higher
    return v.compare(c.con) == 1


def _less_than(v: Version, c: _Constraint, include_pre: bool) -> bool:
    if _skip_pre(v, include_pre):
        return False
    return v.compare(c.con) < 0


def _greater_than_equal(v: Version, c: _Constraint, include_pre: bool) -> bool:
    if _skip_pre(v, include_pre):
        return False
    return v.compare(c.con) >= 0


def _less_than_equal(v: Version, c: _Constraint, include_pre: bool) -> bool:
    if _skip_pre(v, include_pre):
        return False
    if not c.dirty:
        return v.compare(c.con) <= 0
    if v.major > c.con.major:
        return False
    return not (v.major == c.con.major and v.minor > c.con.minor and not c.minor_dirty)


def _tilde(v: Version, c: _Constraint, include_pre: bool) -> bool:
    if _skip_pre(v, include_pre):
        return False
    if v.compare(c.con) < 0:
        return False
    # ~0.0.0 (and ~*) accepts everything: it is >= 0.0.0.
    if (c.con.major, c.con.minor, c.con.patch) == (0, 0, 0) and not (
        c.minor_dirty or c.patch_dirty
    ):
        return True
    if v.major != c.con.major:
        return False
    return not (v.minor != c.con.minor and not c.minor_dirty)


def _tilde_or_equal(v: Version, c: _Constraint, include_pre: bool) -> bool:
    if _skip_pre(v, include_pre):
        return False
    if c.dirty:
        return _tilde(v, c, include_pre)
    return v.compare(c.con) == 0


def _caret(v: Version, c: _Constraint, include_pre: bool) -> bool:
    if _skip_pre(v, include_pre):
        return False
    if v.compare(c.con) < 0:
        return False
    if c.con.major > 0 or c.minor_dirty:
        return v.major == c.con.major
    if c.con.major == 0 and v.major > 0:
        return False
    if c.con.minor > 0 or c.patch_dirty:
        return v.minor == c.con.minor
    if c.con.minor == 0 and v.minor > 0:
        return False
    return c.con.patch == v.patch


_CONSTRAINT_OPS: dict[str, Callable[[Version, _Constraint, bool], bool]] = {
    "": _tilde_or_equal,
    "=": _tilde_or_equal,
    "!=": _not_equal,
    ">": _greater_than,
    "<": _less_than,
    ">=": _greater_than_equal,
    "=>": _greater_than_equal,
    "<=": _less_than_equal,
    "=<": _less_than_equal,
    "~": _tilde,
    "~>": _tilde,
    "^": _caret,
}


def _rewrite_range(text: str) -> str:
    """``rewriteRange``: ``A - B`` becomes ``>= A, <= B``."""
    out = text
    for m in _find_all(_Regexes.get().constraint_range, text):
        out = out.replace(m[0], f">= {m[1]}, <= {m[11]} ", 1)
    return out


@dataclass(frozen=True)
class Constraints:
    """Masterminds ``*semver.Constraints``: OR groups (``||``) of AND-ed constraints."""

    text: str
    groups: tuple[tuple[_Constraint, ...], ...]
    contains_pre: tuple[bool, ...]

    @classmethod
    def parse(cls, text: str) -> Constraints:
        """``semver.NewConstraint``; raises :class:`SemverError` with Masterminds' message."""
        rx = _Regexes.get()
        groups: list[tuple[_Constraint, ...]] = []
        has_pre: list[bool] = []
        for part in _rewrite_range(text).split("||"):
            if _submatch(rx.valid_constraint, part) is None:
                raise SemverError(f'improper constraint: "{part}"')
            found = [m[0] for m in _find_all(rx.find_constraint, part)] or [part]
            parsed = tuple(_parse_constraint(item) for item in found)
            groups.append(parsed)
            has_pre.append(any(c.con.pre != "" for c in parsed))
        return cls(text, tuple(groups), tuple(has_pre))

    def check(self, v: Version) -> bool:
        """``Constraints.Check``: pre-releases pass only if their AND group names one."""
        for group, include_pre in zip(self.groups, self.contains_pre, strict=True):
            for c in group:
                if not _CONSTRAINT_OPS[c.origfunc](v, c, include_pre):
                    break
            else:
                return True
        return False


def sort_versions(constraints: Constraints | None, tags: Iterable[str]) -> list[str]:
    """fluxcd/pkg ``version.Sort``: parseable tags in range, highest first (ties keep order).

    Go uses the unstable ``sort.Sort``; it behaves stably for fewer than 13 elements (insertion
    sort), which is what this stable sort reproduces.
    """
    versions: list[Version] = []
    for tag in tags:
        try:
            v = parse_version(tag)
        except SemverError:
            continue
        if constraints is None or constraints.check(v):
            versions.append(v)
    ordered = sorted(versions, key=cmp_to_key(Version.compare), reverse=True)
    return [v.original for v in ordered]
