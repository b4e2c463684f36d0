"""Upstream behaviour tables, replayed against promote.flux.

1. ``/work/shared/flux-conformance/upstream_cases.json`` (path overridable with
   ``FLUX_CONFORMANCE_CASES``): Flux's own unit-test tables (image-reflector-controller
   ``internal/policy/*_test.go``, ``internal/controller/*_test.go``, fluxcd/pkg
   ``version/version_test.go``), transcribed with field semantics. Every case is a test.
2. Go's ``strconv.ParseFloat`` table (``src/strconv/atof_test.go``, float64 part): the
   numerical policy parses every key with it, so acceptance and value must match Go's.
"""

from __future__ import annotations

import json
import math
import os
import struct
from pathlib import Path
from typing import Any

import pytest

from promote.flux import ImagePolicy, PolicyError, TagFilter
from promote.flux.numeric import GoFloatError, parse_float64
from promote.flux.semver_range import Constraints, SemverError, parse_version, sort_versions

CASES_PATH = Path(
    os.environ.get("FLUX_CONFORMANCE_CASES", "/work/shared/flux-conformance/upstream_cases.json")
)
KINDS = {
    "select",
    "filter",
    "order_validity",
    "range_validity",
    "policy_validity",
    "parse_version",
    "version_sort",
}


def _load() -> list[dict[str, Any]]:
    with CASES_PATH.open(encoding="utf-8") as handle:
        document = json.load(handle)
    cases: list[dict[str, Any]] = document["cases"]
    return cases


CASES = _load()


def test_the_table_is_complete() -> None:
    """Guard against an empty or truncated file silently passing everything."""
    assert len(CASES) >= 86
    assert {case["kind"] for case in CASES} <= KINDS
    assert len({case["id"] for case in CASES}) == len(CASES), "case ids must be unique"
    counts = {kind: sum(case["kind"] == kind for case in CASES) for kind in KINDS}
    assert counts["select"] >= 43
    assert counts["parse_version"] >= 12


def _spec(case: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = {"policy": case["policy"]}
    if case["pattern"] is not None:
        spec["filterTags"] = {"pattern": case["pattern"], "extract": case["extract"] or ""}
    return spec


def _check_select(case: dict[str, Any]) -> None:
    tags = case["tags"] if case["tags"] is not None else []
    if case.get("applicable_offline") is False:
        # e.g. "database read fail": no tag list reaches the policer. The offline analogue
        # is an empty list, which must give "nothing to select", never a guess.
        assert case.get("no_candidates") is True
        assert ImagePolicy.from_spec(_spec(case)).select([]) is None
        return
    if case["expect_error"] and not case.get("no_candidates"):
        # Either the policy is invalid (raised at construction) or the evaluation fails.
        with pytest.raises(PolicyError):
            ImagePolicy.from_spec(_spec(case)).select(tags)
        return
    policy = ImagePolicy.from_spec(_spec(case))
    selection = policy.evaluate(tags)
    if case["expect_error"]:  # no_candidates: the API says "no selection"
        assert selection.tag is None
        assert policy.select(tags) is None
        assert selection.warnings, "a reason must be given when nothing is selected"
        return
    if "expected_any_of" in case:
        assert selection.tag in case["expected_any_of"]
        assert selection.ambiguous
        assert set(case["expected_any_of"]) <= set(selection.candidates)
        if "expected_with_current_controller_db_order" in case:
            assert selection.tag == case["expected_with_current_controller_db_order"]
        return
    assert selection.tag == case["expected"]
    assert policy.select(tags) == case["expected"]
    assert not selection.ambiguous
    if case.get("shuffled"):
        assert policy.select(list(reversed(tags))) == case["expected"]


def _check_filter(case: dict[str, Any]) -> None:
    tag_filter = TagFilter(case["pattern"] or "", case["extract"] or "")
    keys = {tag_filter.extract(tag) for tag in case["tags"]}
    keys.discard(None)
    assert sorted(k for k in keys if k is not None) == case["expected"]
    for tag in case["tags"]:
        assert tag_filter.matches(tag) == (tag_filter.extract(tag) is not None)


def _check_validity(case: dict[str, Any]) -> None:
    if case["expected"]:
        policy = ImagePolicy.from_spec({"policy": case["policy"]})
        assert policy.kind in case["policy"]
    else:
        with pytest.raises(PolicyError):
            ImagePolicy.from_spec({"policy": case["policy"]})


def _check_parse_version(case: dict[str, Any]) -> None:
    if case["expected"]:
        version = parse_version(case["tags"][0])
        assert version.original == case["tags"][0]
    else:
        with pytest.raises(SemverError):
            parse_version(case["tags"][0])


def _check_version_sort(case: dict[str, Any]) -> None:
    constraints = Constraints.parse(case["policy"]["semver"]["range"])
    assert sort_versions(constraints, case["tags"]) == case["expected"]


CHECKS = {
    "select": _check_select,
    "filter": _check_filter,
    "order_validity": _check_validity,
    "range_validity": _check_validity,
    "policy_validity": _check_validity,
    "parse_version": _check_parse_version,
    "version_sort": _check_version_sort,
}


@pytest.mark.parametrize("case", CASES, ids=[case["id"] for case in CASES])
def test_upstream_case(case: dict[str, Any]) -> None:
    CHECKS[case["kind"]](case)


# --- Go strconv.ParseFloat(s, 64) --------------------------------------------------------
# (input, expected float64 text as Go prints it, error) from golang/go src/strconv/atof_test.go
# ``atoftests``; "syntax"/"range" stand for ErrSyntax/ErrRange.
ATOF: list[tuple[str, str, str | None]] = [
    ("", "0", "syntax"),
    ("1", "1", None),
    ("+1", "1", None),
    ("1x", "0", "syntax"),
    ("1.1.", "0", "syntax"),
    ("1e23", "1e+23", None),
    ("1E23", "1e+23", None),
    ("100000000000000000000000", "1e+23", None),
    ("1e-100", "1e-100", None),
    ("123456700", "1.234567e+08", None),
    ("99999999999999974834176", "9.999999999999997e+22", None),
    ("100000000000000000000001", "1.0000000000000001e+23", None),
    ("100000000000000008388608", "1.0000000000000001e+23", None),
    ("100000000000000016777215", "1.0000000000000001e+23", None),
    ("100000000000000016777216", "1.0000000000000003e+23", None),
    ("-1", "-1", None),
    ("-0.1", "-0.1", None),
    ("-0", "-0", None),
    ("1e-20", "1e-20", None),
    ("625e-3", "0.625", None),
    ("0x1p0", "1", None),
    ("0x1p1", "2", None),
    ("0x1p-1", "0.5", None),
    ("0x1ep-1", "15", None),
    ("-0x1ep-1", "-15", None),
    ("-0x1_ep-1", "-15", None),
    ("0x1p-200", "6.223015277861142e-61", None),
    ("0x1p200", "1.6069380442589903e+60", None),
    ("0x1fFe2.p0", "131042", None),
    ("0x1fFe2.P0", "131042", None),
    ("-0x2p3", "-16", None),
    ("0x0.fp4", "15", None),
    ("0x0.fp0", "0.9375", None),
    ("0x1e2", "0", "syntax"),
    ("1p2", "0", "syntax"),
    ("0", "0", None),
    ("0e0", "0", None),
    ("-0e0", "-0", None),
    ("+0e0", "0", None),
    ("0e+01234567890123456789", "0", None),
    ("0.00e-01234567890123456789", "0", None),
    ("-0e+01234567890123456789", "-0", None),
    ("0x0p+01234567890123456789", "0", None),
    ("-0x0.00p-01234567890123456789", "-0", None),
    ("0e291", "0", None),
    ("0e348", "0", None),
    ("0x0p1026", "0", None),
    ("-0x0p1026", "-0", None),
    ("nan", "NaN", None),
    ("NaN", "NaN", None),
    ("NAN", "NaN", None),
    ("inf", "+Inf", None),
    ("-Inf", "-Inf", None),
    ("+INF", "+Inf", None),
    ("-Infinity", "-Inf", None),
    ("+INFINITY", "+Inf", None),
    ("Infinity", "+Inf", None),
    ("1.7976931348623157e308", "1.7976931348623157e+308", None),
    ("-1.7976931348623157e308", "-1.7976931348623157e+308", None),
    ("0x1.fffffffffffffp1023", "1.7976931348623157e+308", None),
    ("0x1fffffffffffffp+971", "1.7976931348623157e+308", None),
    ("0x.1fffffffffffffp1027", "1.7976931348623157e+308", None),
    ("1.7976931348623159e308", "+Inf", "range"),
    ("-1.7976931348623159e308", "-Inf", "range"),
    ("0x1p1024", "+Inf", "range"),
    ("0x2p1023", "+Inf", "range"),
    ("0x.1p1028", "+Inf", "range"),
    ("1.7976931348623158e308", "1.7976931348623157e+308", None),
    ("0x1.fffffffffffff7fffp1023", "1.7976931348623157e+308", None),
    ("1.797693134862315808e308", "+Inf", "range"),
    ("0x1.fffffffffffff8p1023", "+Inf", "range"),
    ("0x1fffffffffffff.8p+971", "+Inf", "range"),
    ("-0x.1fffffffffffff9p1027", "-Inf", "range"),
    ("1e308", "1e+308", None),
    ("2e308", "+Inf", "range"),
    ("1e309", "+Inf", "range"),
    ("1e400000", "+Inf", "range"),
    ("-1e400000", "-Inf", "range"),
    ("0x1p2000000000", "+Inf", "range"),
    ("1e-305", "1e-305", None),
    ("1e-322", "1e-322", None),
    ("5e-324", "5e-324", None),
    ("4e-324", "5e-324", None),
    ("2e-324", "0", None),
    ("1e-350", "0", None),
    ("1e-400000", "0", None),
    ("0x1.fffffffffffff8p-1010", "1.8227805048890994e-304", None),
    ("0x0.00000003456788p-1022", "1.694649e-317", None),
    ("0x0.0000000345678800000000000000000000000001p-1022", "1.6946496e-317", None),
    ("0x0.00000000000008p-1022", "0", None),
    ("0x0.000000000000081p-1022", "5e-324", None),
    ("1e-4294967296", "0", None),
    ("1e+4294967296", "+Inf", "range"),
    ("1e-18446744073709551616", "0", None),
    ("1e+18446744073709551616", "+Inf", "range"),
    ("0x1p-18446744073709551616", "0", None),
    ("0x1p+18446744073709551616", "+Inf", "range"),
    ("1e", "0", "syntax"),
    ("1e-", "0", "syntax"),
    (".e-1", "0", "syntax"),
    ("1\x00.2", "0", "syntax"),
    ("0x", "0", "syntax"),
    ("0x.", "0", "syntax"),
    ("0x1", "0", "syntax"),
    ("0x.1", "0", "syntax"),
    ("0x1p", "0", "syntax"),
    ("0x1p+", "0", "syntax"),
    ("0x.1p-", "0", "syntax"),
    ("0x1p+2", "4", None),
    ("0x.1p-2", "0.015625", None),
    ("2.2250738585072012e-308", "2.2250738585072014e-308", None),
    ("2.2250738585072011e-308", "2.225073858507201e-308", None),
    ("4.630813248087435e+307", "4.630813248087435e+307", None),
    ("22.222222222222222", "22.22222222222222", None),
    ("2." + "2" * 4000 + "e+1", "22.22222222222222", None),
    ("0x2." + "2" * 4000 + "p221", "7.18931911124017e+66", None),
    ("1.00000000000000011102230246251565404236316680908203125", "1", None),
    ("0x1.00000000000008p0", "1", None),
    ("1.00000000000000011102230246251565404236316680908203126", "1.0000000000000002", None),
    (
        "1.00000000000000011102230246251565404236316680908203125" + "0" * 10000 + "1",
        "1.0000000000000002",
        None,
    ),
    ("0x1.00000000000008" + "0" * 10000 + "1p0", "1.0000000000000002", None),
    ("1.00000000000000033306690738754696212708950042724609375", "1.0000000000000004", None),
    ("1_23.50_0_0e+1_2", "1.235e+14", None),
    ("-_123.5e+12", "0", "syntax"),
    ("+_123.5e+12", "0", "syntax"),
    ("_123.5e+12", "0", "syntax"),
    ("1__23.5e+12", "0", "syntax"),
    ("123_.5e+12", "0", "syntax"),
    ("123._5e+12", "0", "syntax"),
    ("123.5_e+12", "0", "syntax"),
    ("123.5__0e+12", "0", "syntax"),
    ("123.5e_+12", "0", "syntax"),
    ("123.5e+_12", "0", "syntax"),
    ("123.5e_-12", "0", "syntax"),
    ("123.5e-_12", "0", "syntax"),
    ("123.5e+1__2", "0", "syntax"),
    ("123.5e+12_", "0", "syntax"),
    ("0x_1_2.3_4_5p+1_2", "74565", None),
    ("-_0x12.345p+12", "0", "syntax"),
    ("+_0x12.345p+12", "0", "syntax"),
    ("_0x12.345p+12", "0", "syntax"),
    ("0x__12.345p+12", "0", "syntax"),
    ("0x1__2.345p+12", "0", "syntax"),
    ("0x12_.345p+12", "0", "syntax"),
    ("0x12._345p+12", "0", "syntax"),
    ("0x12.3__45p+12", "0", "syntax"),
    ("0x12.345_p+12", "0", "syntax"),
    ("0x12.345p_+12", "0", "syntax"),
    ("0x12.345p+_12", "0", "syntax"),
    ("0x12.345p_-12", "0", "syntax"),
    ("0x12.345p-_12", "0", "syntax"),
    ("0x12.345p+1__2", "0", "syntax"),
    ("0x12.345p+12_", "0", "syntax"),
]

# Go rejects these (atof.go special/readFloat); Python float() accepts most of them.
GO_REJECTS = [
    " 1",
    "1 ",
    "\t1",
    "1\n",
    "+nan",
    "-nan",
    "nan(1)",
    "infin",
    "infinit",
    "iNfinityx",
    "٣",  # ARABIC-INDIC DIGIT THREE: Python's float() accepts it
    "1_",
    "0x10",
    "1.5.",
    "--1",
    "+",
    ".",
    "e5",
]


def _go_text(value: float) -> str:
    """The float64 as a bit pattern we can compare exactly (Go prints differently)."""
    return struct.pack(">d", value).hex()


@pytest.mark.parametrize(("text", "expected", "error"), ATOF, ids=[row[0][:40] for row in ATOF])
def test_go_parse_float(text: str, expected: str, error: str | None) -> None:
    if error is not None:
        with pytest.raises(GoFloatError) as caught:
            parse_float64(text)
        assert caught.value.kind == error
        return
    got = parse_float64(text)
    if expected == "NaN":
        assert math.isnan(got)
        return
    want = {"+Inf": math.inf, "-Inf": -math.inf, "-0": -0.0}.get(expected)
    if want is None:
        want = float(expected)
    assert _go_text(got) == _go_text(want), (got, want)


@pytest.mark.parametrize("text", GO_REJECTS)
def test_go_parse_float_rejects(text: str) -> None:
    with pytest.raises(GoFloatError) as caught:
        parse_float64(text)
    assert caught.value.kind == "syntax"
