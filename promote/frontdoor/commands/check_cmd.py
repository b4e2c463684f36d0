"""``command: check`` — the required check for pull requests to a GitOps repository's main.

Reads ``gitops-path`` (default: the workspace) as Flux would, applies the guardrails of
:mod:`promote.flux.check`, and reports every finding as an annotation on its file and line
(errors and warnings), the counts as outputs ``errors``/``warnings`` and a job-summary
table. Any error fails the step. Annotation paths are relative to the workspace when the
tree lies inside it (so GitHub shows them on the pull request's diff).
"""

from __future__ import annotations

import os
from pathlib import Path

from promote.flux.check import Report, check_tree, policy_env
from promote.flux.source import LocalSource, TreeSource, load_tree
from promote.frontdoor.actions import code, markdown_table, md_text
from promote.frontdoor.commands import Context, Result
from promote.frontdoor.github_settings import source_from_inputs

#: Findings listed in the job summary at most (annotations carry all of them).
MAX_SUMMARY_ROWS = 200


def annotation_prefix(source: TreeSource, workspace: str) -> str:
    """Prefix turning a tree-relative path into a workspace-relative one."""
    if not isinstance(source, LocalSource) or not workspace:
        return ""
    try:
        rel = Path(os.path.realpath(source.root)).relative_to(os.path.realpath(workspace))
    except ValueError:
        return ""
    text = rel.as_posix()
    return "" if text == "." else text + "/"


def summary(report: Report, label: str, prefix: str) -> str:
    errors, warnings = len(report.errors), len(report.warnings)
    verdict = "passed" if not errors else "failed"
    out = [f"## GitOps check {verdict}: {errors} error(s), {warnings} warning(s)\n", f"`{label}`\n"]
    if report.findings:
        rows = [
            # file names, names and values quoted in a finding come from the GitOps repo
            [f.level, f.rule, code(f"{prefix}{f.file}:{f.line}"), md_text(f.message)]
            for f in report.findings[:MAX_SUMMARY_ROWS]
        ]
        out.append(markdown_table(["Level", "Rule", "Where", "Finding"], rows))
        if len(report.findings) > MAX_SUMMARY_ROWS:
            out.append(f"({len(report.findings) - MAX_SUMMARY_ROWS} more in the annotations)\n")
    if report.policies:
        rows = []
        for entry in report.policies:
            policy = entry.policy
            rows.append(
                [
                    code(entry.obj.ref),
                    policy_env(entry.obj) or "?",
                    f"{policy.kind} {policy.order or ''}".strip()
                    if policy is not None
                    else "invalid",
                    code(policy.pattern) if policy is not None and policy.pattern else "",
                    code(f"{prefix}{entry.obj.file}:{entry.obj.line}"),
                ]
            )
        out.append("### ImagePolicies\n")
        out.append(markdown_table(["Policy", "Env", "Order", "Pattern", "Where"], rows))
    return "\n".join(out)


def run(ctx: Context) -> Result:
    source = source_from_inputs(ctx, default_workspace=True)
    assert source is not None  # default_workspace always yields a source
    tree = load_tree(source)
    report = check_tree(tree)
    prefix = annotation_prefix(source, ctx.settings.workspace)
    for finding in report.findings:
        emit = ctx.runner.error if finding.level == "error" else ctx.runner.warning
        emit(finding.message, file=prefix + finding.file, line=finding.line, title=finding.rule)
    errors, warnings = len(report.errors), len(report.warnings)
    ctx.runner.log(
        f"checked {len(tree.files)} manifest file(s), {len(tree.policies)} ImagePolicy, "
        f"{len(tree.markers)} marker(s) in {source.label}: {errors} error(s), "
        f"{warnings} warning(s)"
    )
    outputs = {"errors": str(errors), "warnings": str(warnings)}
    text = summary(report, source.label, prefix)
    if errors:
        return Result(
            outputs=outputs,
            summary=text,
            failed=True,
            message=f"GitOps check failed: {errors} error(s), {warnings} warning(s)",
        )
    return Result(outputs=outputs, summary=text)
