"""The expression evaluator the workflow policy tests rely on: GitHub's documented semantics."""

from __future__ import annotations

import pytest

from testkit.expressions import ExpressionError, evaluate, interpolate, job_runs


def test_and_or_return_values_not_booleans() -> None:
    ctx = {"a": "x", "e": ""}
    assert evaluate("a && 'y' || 'z'", ctx) == "y"
    assert evaluate("e && 'y' || 'z'", ctx) == "z"
    assert evaluate("missing || a", ctx) == "x"
    assert evaluate("e && 'y'", ctx) == ""


def test_comparison_coercion_and_negation() -> None:
    assert evaluate("'TRUE' == 'true'", {}) is True  # strings: case-insensitive
    assert evaluate("n > 21000", {"n": 21001}) is True
    assert evaluate("n > 21000", {"n": "600"}) is False  # a string against a number
    assert evaluate("!x", {"x": False}) is True
    assert evaluate("!(x == 'a')", {"x": "a"}) is False


def test_paths_with_hyphens_functions_and_interpolation() -> None:
    ctx = {"needs": {"plan": {"outputs": {"previous-tag": "t1"}}}, "inputs": {"image": "GHCR.io/a"}}
    assert evaluate("${{ needs.plan.outputs.previous-tag }}", ctx) == "t1"
    assert evaluate("startsWith(inputs.image, 'ghcr.io/')", ctx) is True
    assert interpolate("x-${{ inputs.image }}-${{ inputs.none }}-${{ 3 }}", ctx) == "x-GHCR.io/a--3"


def test_anything_unimplemented_is_refused() -> None:
    with pytest.raises(ExpressionError):
        evaluate("contains(a, 'b')", {})
    with pytest.raises(ExpressionError):
        evaluate("a ? b", {})


def test_status_functions_and_the_implicit_success_of_needs() -> None:
    assert evaluate("!cancelled() && a", {"a": "x"}) == "x"
    assert evaluate("!cancelled()", {"cancelled": True}) is False
    assert evaluate("always()", {}) is True
    failed = {"needs": {"a": {"result": "failure"}}, "x": True}
    assert job_runs({"needs": "a", "if": "x"}, failed) is False  # implicit success()
    assert job_runs({"needs": ["a"], "if": "${{ always() && x }}"}, failed) is True
    assert job_runs({"needs": "a"}, {"needs": {"a": {"result": "success"}}}) is True


def test_not_binds_tighter_than_comparison() -> None:
    # GitHub's precedence: `!` before `==`, so `!a == b` is `(!a) == b`
    assert evaluate("!a == b", {"a": "x", "b": True}) is False
    assert evaluate("!a == b", {"a": "x", "b": False}) is True
    assert evaluate("!(a == b)", {"a": "x", "b": True}) is True
