"""Go ``regexp`` as Flux uses it: RE2 syntax, unanchored leftmost-first search, ``Expand``.

image-reflector-controller's ``internal/policy/filter.go`` compiles ``filterTags.pattern`` with
``regexp.Compile`` and, for every tag, calls ``FindStringSubmatchIndex`` and then
``ExpandString(nil, extract, tag, submatches)``. :class:`GoRegexp` reproduces that:

- The pattern is compiled by RE2 (the ``google-re2`` package, C++ RE2, the engine Go's
  ``regexp`` was ported from; same syntax and the same leftmost-first submatch semantics).
  Before compiling, a small scanner applies the two syntax rules where Go is stricter than
  C++ RE2: ``\\C`` (any byte) is an invalid escape in Go, and capture-group names must be
  ASCII ``[A-Za-z0-9_]+`` (``isValidCaptureName``). The same scanner records each group's
  name by index (Go's ``SubexpNames``), duplicates included, which ``Expand`` needs.
- Matching runs on the tag's UTF-8 bytes, as Go does on strings.
- :class:`Template` is a port of ``Regexp.expand``/``extract`` (``src/regexp/regexp.go``):
  ``$name`` and ``${name}``, where a name is a non-empty run of Unicode letters, digits and
  ``_`` taken as long as possible (``$1x`` is ``${1x}``, ``$ts_x`` is ``${ts_x}``); a purely
  numeric name without a leading zero (and below 1e8) is a group index; ``$$`` is ``$``;
  a malformed reference (``$-``, ``${x``, a trailing ``$``) leaves ``$`` as literal text; an
  out-of-range index, an unknown name or a group that did not participate expands to ``""``;
  for a duplicated name the first group that participated wins.

Known difference: recent Go versions also accept loose Unicode class names such as
``\\p{greek}`` or ``\\p{Letter}``; C++ RE2 rejects them, so such a pattern is reported
invalid here although Flux would accept it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

__all__ = ["GoRegexp", "GoRegexpError", "Template", "to_bytes", "to_text"]

Span = tuple[int, int]
_NO_SPAN: Span = (-1, -1)


def to_bytes(text: str) -> bytes:
    """UTF-8, as Go strings are; lone surrogates (JSON allows them) pass through."""
    return text.encode("utf-8", "surrogatepass")


def to_text(data: bytes) -> str:
    """Inverse of :func:`to_bytes`; a slice cutting a character still decodes (escaped)."""
    try:
        return data.decode("utf-8", "surrogatepass")
    except UnicodeDecodeError:
        return data.decode("utf-8", "surrogateescape")


class GoRegexpError(ValueError):
    """The pattern is not valid Go ``regexp`` syntax."""


def _re2_module() -> Any:
    # Imported lazily: the C++ extension is only needed once a pattern is compiled. The
    # pybind11 module ``re2._re2`` is used directly because the pure-Python ``re2`` wrapper
    # costs ~8 us per search in Match objects (100,000 tags: 0.8 s instead of 0.1 s).
    import importlib

    re2 = importlib.import_module("re2")
    return re2, importlib.import_module("re2._re2")


def _is_capture_name(name: str) -> bool:
    return bool(name) and all(c == "_" or (c.isascii() and c.isalnum()) for c in name)


def scan_subexp_names(pattern: str) -> list[str]:
    """Return Go's ``SubexpNames()[1:]`` for ``pattern``; raise on Go-only syntax errors.

    Only what C++ RE2 would accept but Go rejects is raised here (``\\C``, a non-ASCII group
    name); every other syntax error is left to RE2, which reports it when compiling.
    """
    names: list[str] = []
    i = 0
    n = len(pattern)
    while i < n:
        c = pattern[i]
        if c == "\\":
            nxt = pattern[i + 1 : i + 2]
            if nxt == "Q":  # \Q...\E: everything up to \E (or the end) is literal
                end = pattern.find("\\E", i + 2)
                i = n if end < 0 else end + 2
                continue
            if nxt == "C":
                raise GoRegexpError("invalid escape sequence: `\\C`")
            i += 2
            continue
        if c == "[":
            i = _skip_class(pattern, i)
            continue
        if c == "(":
            rest = pattern[i:]
            starts_with_p = len(rest) > 4 and rest[2] == "P" and rest[3] == "<"
            starts_with_name = len(rest) > 3 and rest[1] == "?" and rest[2] == "<"
            if rest[1:2] == "?" and (starts_with_p or starts_with_name):
                end = rest.find(">")
                if end < 0:
                    i += 1  # RE2 reports the unterminated name
                    continue
                name = rest[(4 if starts_with_p else 3) : end]
                if not _is_capture_name(name):
                    raise GoRegexpError(f"invalid named capture: `{rest[: end + 1]}`")
                names.append(name)
                i += end + 1
                continue
            if rest[1:2] != "?":
                names.append("")
            i += 1
            continue
        i += 1
    return names


def _skip_class(pattern: str, start: int) -> int:
    """Index just after the character class opening at ``start`` (Go's ``parseClass`` shape)."""
    n = len(pattern)
    j = start + 1
    if j < n and pattern[j] == "^":
        j += 1
    first = True
    while j < n and (pattern[j] != "]" or first):
        first = False
        if pattern.startswith("[:", j):
            close = pattern.find(":]", j + 2)
            if close >= 0:
                j = close + 2
                continue
        if pattern[j] == "\\":
            if pattern[j + 1 : j + 2] == "C":
                raise GoRegexpError("invalid escape sequence: `\\C`")
            j += 2
            continue
        j += 1
    return j + 1


class GoRegexp:
    """A pattern compiled once with Go ``regexp`` syntax, searched unanchored on bytes."""

    __slots__ = ("_match", "_unanchored", "pattern", "subexp_names")

    def __init__(self, pattern: str) -> None:
        self.pattern = pattern
        names = scan_subexp_names(pattern)
        re2, _re2 = _re2_module()
        options = re2.Options()
        options.log_errors = False  # errors are reported through the exception, not stderr
        compiled = _re2.RE2(to_bytes(pattern), options)
        if not compiled.ok():
            error = compiled.error()
            text = error.decode("utf-8", "replace") if isinstance(error, bytes) else str(error)
            raise GoRegexpError(text)
        groups = int(compiled.NumberOfCapturingGroups())
        if len(names) != groups:  # pragma: no cover - defensive: trust RE2's own table
            table = dict(compiled.NamedCapturingGroups())
            by_index = {int(index): bytes(name).decode() for name, index in table.items()}
            names = [by_index.get(index, "") for index in range(1, groups + 1)]
        #: Go's ``SubexpNames()``: index 0 is the whole match and always ``""``.
        self.subexp_names: tuple[str, ...] = ("", *names)
        self._match = compiled.Match
        self._unanchored = _re2.RE2.Anchor.UNANCHORED

    @property
    def num_subexp(self) -> int:
        return len(self.subexp_names) - 1

    def find_submatch_index(self, text: bytes) -> list[Span] | None:
        """``FindSubmatchIndex``: the (start, end) byte spans, ``(-1, -1)`` for a group that
        did not participate, or ``None`` when there is no match."""
        return self.find_submatch_index_from(text, 0)

    def find_submatch_index_from(self, text: bytes, pos: int) -> list[Span] | None:
        """Like :meth:`find_submatch_index`, searching from byte ``pos`` (``^`` still means
        the start of ``text``, as in Go's ``FindAll*``)."""
        spans: list[Span] = self._match(self._unanchored, text, pos, len(text))
        if spans[0] == _NO_SPAN:
            return None
        return spans

    def extract_all(
        self, texts: Iterable[str], template: Template | None
    ) -> Iterator[tuple[str, str]]:
        """(text, key) for every text the pattern finds; key = ``template`` expanded against
        the match, or the text itself without a template. The batch form of
        ``FindStringSubmatchIndex`` + ``ExpandString`` (Flux's ``RegexFilter.Apply``)."""
        match = self._match
        unanchored = self._unanchored
        single = None if template is None else template.single
        for text in texts:
            data = text.encode("utf-8", "surrogatepass")  # to_bytes, inlined: hot loop
            spans = match(unanchored, data, 0, len(data))
            start = spans[0][0]
            if start < 0:
                continue
            if template is None:
                yield text, text
            elif single is not None:
                start, end = spans[single]
                yield text, to_text(data[start:end]) if start >= 0 else ""
            else:
                yield text, to_text(template.expand(data, spans))

    def search(self, text: str) -> bool:
        data = to_bytes(text)
        return self.find_submatch_index(data) is not None


def _extract(text: str) -> tuple[str, int, str] | None:
    """Port of Go's ``extract``: (name, num, rest) for a leading ``name`` or ``{name}``."""
    if not text:
        return None
    brace = False
    if text[0] == "{":
        brace = True
        text = text[1:]
    i = 0
    while i < len(text):
        ch = text[i]
        if not (ch.isalpha() or ch.isdecimal() or ch == "_"):
            break
        i += 1
    if i == 0:
        return None  # empty name is not okay
    name = text[:i]
    if brace:
        if i >= len(text) or text[i] != "}":
            return None  # missing closing brace
        i += 1
    num = 0
    for ch in name:
        if not ("0" <= ch <= "9") or num >= 100_000_000:
            num = -1
            break
        num = num * 10 + ord(ch) - ord("0")
    if name[0] == "0" and len(name) > 1:
        num = -1  # disallow leading zeros
    return name, num, text[i:]


class Template:
    """A compiled ``Regexp.Expand`` template for one regexp's group table.

    ``parts`` alternates literal bytes and references; a reference is the tuple of group
    indices it may take its text from (first participating wins; empty = always ``""``).
    """

    __slots__ = ("parts", "single", "template")

    def __init__(self, template: str, subexp_names: Sequence[str]) -> None:
        self.template = template
        parts: list[bytes | tuple[int, ...]] = []
        literal: list[str] = []
        rest = template
        while rest:
            before, dollar, after = rest.partition("$")
            if not dollar:
                break
            literal.append(before)
            rest = after
            if rest.startswith("$"):  # $$ is a literal $
                literal.append("$")
                rest = rest[1:]
                continue
            parsed = _extract(rest)
            if parsed is None:  # malformed: treat the $ as raw text
                literal.append("$")
                continue
            name, num, rest = parsed
            if num >= 0:
                indices: tuple[int, ...] = (num,) if num < len(subexp_names) else ()
            else:
                indices = tuple(i for i, sub in enumerate(subexp_names) if sub == name)
            text = "".join(literal)
            if text:
                parts.append(to_bytes(text))
            literal = []
            parts.append(indices)
        literal.append(rest)
        tail = "".join(literal)
        if tail:
            parts.append(to_bytes(tail))
        self.parts = tuple(parts)
        #: fast path: the whole template is one reference to one group (``$ts``, ``$1``)
        self.single: int | None = None
        if len(self.parts) == 1 and isinstance(self.parts[0], tuple) and len(self.parts[0]) == 1:
            self.single = self.parts[0][0]

    def expand(self, src: bytes, spans: Sequence[Span]) -> bytes:
        """``ExpandString(nil, template, src, spans)``."""
        if self.single is not None:
            start, end = spans[self.single]
            return src[start:end] if start >= 0 else b""
        out: list[bytes] = []
        for part in self.parts:
            if isinstance(part, bytes):
                out.append(part)
                continue
            for index in part:
                start, end = spans[index]
                if start >= 0:
                    out.append(src[start:end])
                    break
        return b"".join(out)

    def expand_str(self, src: str, regexp: GoRegexp) -> str | None:
        """Expand against ``src``'s leftmost match of ``regexp``; ``None`` if it does not match."""
        data = to_bytes(src)
        spans = regexp.find_submatch_index(data)
        if spans is None:
            return None
        return to_text(self.expand(data, spans))
