"""Go's ``strconv.ParseFloat(s, 64)``: which strings it accepts and the float64 it returns.

Flux's numerical policy (image-reflector-controller ``internal/policy/numerical.go``) parses
every candidate with ``strconv.ParseFloat(value, 64)`` and fails the whole evaluation on the
first error. Python's ``float()`` is not a substitute: it accepts surrounding whitespace,
non-ASCII digits and signed ``nan``, and it silently turns ``1e400`` into ``inf`` where Go
reports ``ErrRange``.

This module ports the *acceptance* rules of Go's ``src/strconv/atof.go`` (``special``,
``readFloat``) and ``atoi.go`` (``underscoreOK``) exactly:

- optional ``+``/``-``; decimal digits with an optional ``.`` and optional ``e``/``E``
  exponent (``1``, ``.5``, ``5.``, ``1e3``, ``007``);
- hexadecimal mantissas ``0x``/``0X`` that *must* carry a ``p`` exponent (``0x1p-2``);
- underscores only between digits (or right after a ``0x`` prefix): ``1_000`` is 1000;
- ``inf``, ``infinity``, ``nan`` in any case; a sign is allowed before ``inf`` only;
- a finite value beyond float64's range is ``ErrRange`` (Flux fails); too small rounds to 0.

The *value* is then computed by Python (``float`` / ``float.fromhex``), which, like Go, rounds
correctly (IEEE 754 round-half-even), so both sides agree bit for bit.
"""

from __future__ import annotations

import math
from typing import Literal

__all__ = ["GoFloatError", "parse_float64"]


class GoFloatError(ValueError):
    """``strconv.ParseFloat`` failed: ``kind`` is ``"syntax"`` (ErrSyntax) or ``"range"``."""

    def __init__(self, value: str, kind: Literal["syntax", "range"]) -> None:
        reason = "invalid syntax" if kind == "syntax" else "value out of range"
        super().__init__(f'strconv.ParseFloat: parsing "{value}": {reason}')
        self.value = value
        self.kind = kind


def _lower(c: str) -> str:
    # Go's lower(c) = c | 0x20: only meaningful for ASCII letters, which is all it is used for.
    return c.lower() if c.isascii() else c


def _special(s: str) -> tuple[float, int] | None:
    """Port of ``special``: returns (value, consumed length) for inf/infinity/nan prefixes."""
    if not s:
        return None
    sign = 1.0
    nsign = 0
    body = s
    if s[0] in "+-":
        if s[0] == "-":
            sign = -1.0
        nsign = 1
        body = s[1:]
        # Go falls through into the "inf" case only: "+nan"/"-nan" are not special.
        return _inf_prefix(body, sign, nsign)
    if s[0] in "iI":
        return _inf_prefix(body, sign, nsign)
    if s[0] in "nN" and body[:3].lower() == "nan":
        return math.nan, 3
    return None


def _inf_prefix(body: str, sign: float, nsign: int) -> tuple[float, int] | None:
    n = _common_prefix_len_ignore_case(body, "infinity")
    # Anything longer than "inf" is ok, but if we don't have "infinity", only consume "inf".
    if 3 < n < 8:
        n = 3
    if n in (3, 8):
        return math.copysign(math.inf, sign), nsign + n
    return None


def _common_prefix_len_ignore_case(s: str, prefix: str) -> int:
    n = min(len(prefix), len(s))
    for i in range(n):
        c = s[i]
        if "A" <= c <= "Z":
            c = c.lower()
        if c != prefix[i]:
            return i
    return n


def _underscore_ok(s: str) -> bool:
    """Port of ``underscoreOK``: underscores only between digits or after a base prefix."""
    saw = "^"
    i = 0
    if s and s[0] in "+-":
        s = s[1:]
    hexa = False
    if len(s) >= 2 and s[0] == "0" and _lower(s[1]) in ("b", "o", "x"):
        i = 2
        saw = "0"  # a base prefix counts as a digit for "underscore as digit separator"
        hexa = _lower(s[1]) == "x"
    while i < len(s):
        c = s[i]
        if "0" <= c <= "9" or (hexa and "a" <= _lower(c) <= "f"):
            saw = "0"
        elif c == "_":
            if saw != "0":
                return False
            saw = "_"
        elif saw == "_":
            return False
        else:
            saw = "!"
        i += 1
    return saw != "_"


def _read_float(s: str) -> tuple[int, bool, bool, bool]:
    """Port of ``readFloat``'s syntax: (consumed length, ok, is_hex, mantissa_is_zero)."""
    i = 0
    n = len(s)
    underscores = False
    if i >= n:
        return i, False, False, True
    if s[i] in "+-":
        i += 1
    base = 10
    exp_char = "e"
    is_hex = False
    if i + 2 < n and s[i] == "0" and _lower(s[i + 1]) == "x":
        base = 16
        i += 2
        exp_char = "p"
        is_hex = True
    sawdot = False
    sawdigits = False
    nonzero = False
    while i < n:
        c = s[i]
        if c == "_":
            underscores = True
        elif c == ".":
            if sawdot:
                break
            sawdot = True
        elif "0" <= c <= "9":
            sawdigits = True
            nonzero = nonzero or c != "0"
        elif base == 16 and "a" <= _lower(c) <= "f":
            sawdigits = True
            nonzero = True
        else:
            break
        i += 1
    if not sawdigits:
        return i, False, is_hex, True
    if i < n and _lower(s[i]) == exp_char:
        i += 1
        if i >= n:
            return i, False, is_hex, True
        if s[i] in "+-":
            i += 1
        if i >= n or not ("0" <= s[i] <= "9"):
            return i, False, is_hex, True
        while i < n and ("0" <= s[i] <= "9" or s[i] == "_"):
            if s[i] == "_":
                underscores = True
            i += 1
    elif base == 16:
        return i, False, is_hex, True  # a hexadecimal mantissa must have a 'p' exponent
    if underscores and not _underscore_ok(s[:i]):
        return i, False, is_hex, True
    return i, True, is_hex, not nonzero


def parse_float64(s: str) -> float:
    """Return ``strconv.ParseFloat(s, 64)`` or raise :class:`GoFloatError` when Go errs."""
    if s.isascii() and s.isdigit():  # fast path: plain decimal digits (timestamps, serials)
        value = float(s)
        if math.isinf(value):
            raise GoFloatError(s, "range")
        return value
    special = _special(s)
    if special is not None:
        value, consumed = special
        if consumed != len(s):
            raise GoFloatError(s, "syntax")
        return value
    consumed, ok, is_hex, zero = _read_float(s)
    if not ok or consumed != len(s):
        raise GoFloatError(s, "syntax")
    text = s.replace("_", "")
    if is_hex:
        if zero:
            # Go ignores the exponent of a zero mantissa; Python's fromhex may reject a huge one.
            return -0.0 if text.startswith("-") else 0.0
        try:
            return float.fromhex(text)
        except OverflowError:
            raise GoFloatError(s, "range") from None
    value = float(text)
    if math.isinf(value):
        raise GoFloatError(s, "range")
    return value
