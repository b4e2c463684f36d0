"""Step summaries escape Markdown/HTML from outside sources (issue 17, item 6): GitOps
values and names reach the automate, predict and trace summaries as literal text, never as
a tag, a link or a broken-out code span."""

from __future__ import annotations

import re
from types import SimpleNamespace
from typing import Any

from promote.frontdoor.actions import md_text
from promote.frontdoor.commands import automate_cmd, predict_cmd, trace_cmd

#: outside text that would render as HTML, a link, or close a single-backtick code span
EVIL = "x`<img src=x onerror=alert(1)>`[click](https://evil.example)"


def rendered_raw(summary: str) -> bool:
    """Whether ``EVIL`` reaches the summary outside a code span that holds it whole (a
    double-backtick fence: ``EVIL`` holds single backticks)."""
    held = re.compile(r"``(?!`) ?[^`]*" + re.escape(EVIL) + r"[^`]* ?``(?!`)")
    for line in summary.splitlines():
        rest = held.sub("", line).replace(md_text(EVIL), "")  # or escaped as prose
        if "<img" in rest or "](https://evil" in rest:
            return True
    return False


def test_automate_summary_keeps_gitops_values_literal() -> None:
    change = SimpleNamespace(path="apps/backend.yaml", old=EVIL, new=EVIL, setter=EVIL)
    spec = SimpleNamespace(ref=f"flux-system:{EVIL}", push_branch=EVIL)
    run: Any = SimpleNamespace(spec=spec, changes=[change], commit="", skipped="", message="")
    assert not rendered_raw(automate_cmd._summary([run], False))


def test_predict_summary_keeps_gitops_values_literal() -> None:
    found = [predict_cmd.PolicyPrediction(f"flux-system:{EVIL}", EVIL, EVIL, True)]
    assert not rendered_raw(predict_cmd.summary(found))


def test_trace_summary_keeps_gitops_values_literal() -> None:
    lineage: dict[str, Any] = dict.fromkeys(trace_cmd.LINEAGE_KEYS)
    lineage.update(
        image="127.0.0.1:5000/acme/backend",
        digest="sha256:" + "a" * 64,
        tags=[],
        history=[],
        environments=[
            {
                "policy": f"flux-system:{EVIL}",
                "environment": "production",
                "tag": None,
                "names-digest": None,
            }
        ],
    )
    traced = trace_cmd.Traced(lineage, None, [])
    assert not rendered_raw(trace_cmd.summary(traced, "production", "production"))


def test_check_summary_keeps_gitops_values_literal() -> None:
    from promote.frontdoor.commands import check_cmd

    finding = SimpleNamespace(level="error", rule="R1", file=EVIL, line=3, message=EVIL)
    policy = SimpleNamespace(kind="numerical", order="asc", pattern=EVIL)
    obj = SimpleNamespace(
        ref=f"flux-system:{EVIL}", name=EVIL, file=EVIL, line=1, spec={}, namespace="x"
    )
    entry = SimpleNamespace(policy=policy, obj=obj)
    report: Any = SimpleNamespace(
        errors=[finding], warnings=[], findings=[finding], policies=[entry]
    )
    assert not rendered_raw(check_cmd.summary(report, "gitops", ""))
