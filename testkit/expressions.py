"""A small evaluator for the GitHub Actions expressions the shipped workflows use.

Enough of the language to check what a workflow *decides* rather than how its text looks:
literals (strings, numbers, ``true``/``false``/``null``), context paths with hyphens
(``needs.plan.outputs.previous-tag``), ``!``, ``==``/``!=``/``<``/``<=``/``>``/``>=``,
``&&``/``||`` with GitHub's value semantics (``a && b`` is ``a`` when ``a`` is falsy, else
``b``; ``a || b`` is ``a`` when truthy, else ``b``), parentheses, ``startsWith``,
and the status functions ``always()`` and ``cancelled()``.
Comparison follows the documented coercion: strings compare case-insensitively, a string
against a number or boolean is compared as a number. A missing context value is ``null``.
Anything else raises ``ExpressionError``, so a workflow that starts using more fails the
test that evaluates it instead of being judged wrongly.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

_TOKEN = re.compile(
    r"\s*(?:(?P<str>'(?:[^']|'')*')|(?P<num>-?\d+(?:\.\d+)?)|(?P<op>&&|\|\||==|!=|<=|>=|[!<>().,])"
    r"|(?P<name>[A-Za-z_][\w-]*(?:\.[A-Za-z_][\w-]*)*))"
)
_WRAPPED = re.compile(r"^\s*\$\{\{(?P<expr>.*)\}\}\s*$", re.DOTALL)


class ExpressionError(ValueError):
    """The expression uses something this evaluator does not implement."""


def _tokens(text: str) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    pos = 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        match = _TOKEN.match(text, pos)
        if match is None or match.end() == pos:
            raise ExpressionError(f"cannot read {text[pos:]!r}")
        kind = match.lastgroup
        assert kind is not None
        found.append((kind, match.group(kind)))
        pos = match.end()
    return found


def _truthy(value: Any) -> bool:
    return value not in (None, False, 0, "", 0.0)


def _number(value: Any) -> float:
    if value is None:
        return 0.0
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, int | float):
        return float(value)
    text = str(value).strip()
    if text == "":
        return 0.0
    try:
        return float(text)
    except ValueError:
        return float("nan")


def _compare(op: str, left: Any, right: Any) -> bool:
    if isinstance(left, str) and isinstance(right, str):
        a: Any = left.casefold()
        b: Any = right.casefold()
    elif left is None and right is None:
        a = b = 0.0
    else:
        a, b = _number(left), _number(right)
    return bool(
        {
            "==": a == b,
            "!=": a != b,
            "<": a < b,
            "<=": a <= b,
            ">": a > b,
            ">=": a >= b,
        }[op]
    )


class _Parser:
    def __init__(self, text: str, context: Mapping[str, Any]) -> None:
        self.tokens = _tokens(text)
        self.pos = 0
        self.context = context

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self, value: str | None = None) -> tuple[str, str]:
        token = self.peek()
        if token is None or (value is not None and token[1] != value):
            raise ExpressionError(f"expected {value!r}, got {token!r}")
        self.pos += 1
        return token

    def parse(self) -> Any:
        value = self.or_()
        if self.peek() is not None:
            raise ExpressionError(f"unexpected {self.peek()!r}")
        return value

    def or_(self) -> Any:
        return self.chain("||", self.and_, lambda left, right: left if _truthy(left) else right)

    def and_(self) -> Any:
        return self.chain(
            "&&", self.comparison, lambda left, right: right if _truthy(left) else left
        )

    def chain(self, op: str, operand: Callable[[], Any], combine: Callable[[Any, Any], Any]) -> Any:
        """``operand (op operand)*``, folded left with ``combine`` (both sides evaluated:
        the expressions are pure, so short-circuiting changes nothing)."""
        value = operand()
        while self.peek() == ("op", op):
            self.take()
            value = combine(value, operand())
        return value

    def comparison(self) -> Any:
        left = self.unary()
        token = self.peek()
        if token is not None and token[1] in ("==", "!=", "<", "<=", ">", ">="):
            self.take()
            return _compare(token[1], left, self.unary())
        return left

    def unary(self) -> Any:
        """``!`` binds tighter than any comparison (GitHub's operator precedence)."""
        if self.peek() == ("op", "!"):
            self.take()
            return not _truthy(self.unary())
        return self.primary()

    def primary(self) -> Any:
        kind, value = self.take()
        if kind == "str":
            return value[1:-1].replace("''", "'")
        if kind == "num":
            return float(value)
        if (kind, value) == ("op", "("):
            inner = self.or_()
            self.take(")")
            return inner
        if kind != "name":
            raise ExpressionError(f"unexpected {value!r}")
        if value in ("true", "false", "null"):
            return {"true": True, "false": False, "null": None}[value]
        if self.peek() == ("op", "("):
            return self.call(value)
        return self.lookup(value)

    def call(self, name: str) -> Any:
        self.take("(")
        args = [] if self.peek() == ("op", ")") else [self.or_()]
        while self.peek() == ("op", ","):
            self.take()
            args.append(self.or_())
        self.take(")")
        if name.casefold() == "startswith" and len(args) == 2:
            return str(args[0] or "").casefold().startswith(str(args[1] or "").casefold())
        # Status functions: the run's state is the context's ``cancelled`` (default false).
        if name.casefold() == "always" and not args:
            return True
        if name.casefold() == "cancelled" and not args:
            return bool(self.context.get("cancelled", False))
        raise ExpressionError(f"function {name}() is not implemented")

    def lookup(self, path: str) -> Any:
        value: Any = self.context
        for part in path.split("."):
            if not isinstance(value, Mapping):
                return None
            value = value.get(part)
        return value


def evaluate(expression: str, context: Mapping[str, Any]) -> Any:
    """Value of ``expression`` (with or without ``${{ }}``) in ``context``."""
    match = _WRAPPED.match(expression)
    return _Parser(match.group("expr") if match else expression, context).parse()


STATUS_FUNCTIONS = re.compile(r"\b(?:always|cancelled|success|failure)\s*\(", re.IGNORECASE)


def job_runs(job: Mapping[str, Any], context: Mapping[str, Any]) -> bool:
    """Whether GitHub starts ``job``: an ``if:`` without a status function means
    ``success() && (...)``, i.e. the run is not cancelled and every job in ``needs``
    succeeded (``context["needs"][n]["result"]``); with one, the expression alone decides."""
    condition = str(job.get("if", "true"))
    needs = job.get("needs", [])
    needs = [needs] if isinstance(needs, str) else list(needs)
    if not STATUS_FUNCTIONS.search(condition):
        if context.get("cancelled", False):
            return False
        results = context.get("needs", {})
        if any(results.get(n, {}).get("result") != "success" for n in needs):
            return False
    return _truthy(evaluate(condition, context))


def interpolate(text: str, context: Mapping[str, Any]) -> str:
    """``text`` with every ``${{ expr }}`` replaced by its value (as GitHub prints it)."""

    def value(match: re.Match[str]) -> str:
        result = evaluate(match.group(1), context)
        if result is None:
            return ""
        if isinstance(result, bool):
            return "true" if result else "false"
        if isinstance(result, float) and result.is_integer():
            return str(int(result))
        return str(result)

    return re.sub(r"\$\{\{(.*?)\}\}", value, text)
