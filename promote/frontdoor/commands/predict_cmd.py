"""``command: predict`` — what would Flux select now, and would the automation change Git?

For every ImagePolicy of the GitOps tree (``gitops-path`` or ``gitops-repo``, with
``gitops-ref``), or only ``policy``: the tag it would select now from the registry its
ImageRepository names (the ``latestRef`` :mod:`.automate_cmd` computes), the
tag the policy's markers carry in Git, and whether a run of an automation that applies the
policy (same namespace, ``policySelector``, not suspended, markers under ``update.path``)
would change a file. Read-only.

Output ``predictions``: JSON list of ``{"policy", "selected", "git", "changes"}``
(``selected``/``git`` ``null`` when there is none; ``git`` joins several different tags
with ``,``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from promote.errors import InputError
from promote.frontdoor.actions import code, markdown_table
from promote.frontdoor.commands import Context, Result

if TYPE_CHECKING:
    from promote.flux.gitops import GitOpsTree
    from promote.frontdoor.commands.automate_cmd import LatestRef


@dataclass(frozen=True)
class PolicyPrediction:
    policy: str
    selected: str | None
    git: str | None
    changes: bool
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "policy": self.policy,
            "selected": self.selected,
            "git": self.git,
            "changes": self.changes,
        }


def git_tag(tree: GitOpsTree, policy_ref: str) -> str | None:
    """The tag(s) the policy's tag-bearing markers carry, or ``None``."""
    from promote.flux.verify import marker_tag

    tags = sorted({t for m in tree.markers_for(policy_ref) if (t := marker_tag(m)) is not None})
    return ",".join(tags) or None


def would_change(tree: GitOpsTree, files: dict[str, str], ref: LatestRef) -> bool:
    """Whether an active automation that applies ``ref``'s policy would rewrite a file."""
    from promote.errors import GitOpsError
    from promote.flux.automation import automation_policies, automation_spec
    from promote.flux.setters import run_setters

    if ref.tag is None:
        return False
    for obj in tree.automations:
        try:
            spec = automation_spec(tree, obj)
        except GitOpsError:
            continue
        if spec.suspend or ref.policy not in {p.ref for p in automation_policies(tree, spec)}:
            continue
        if run_setters(files, [ref.as_setter_policy()], spec.update_path).changes:
            return True
    return False


def predictions(
    ctx: Context,
    tree: GitOpsTree,
    files: dict[str, str],
    policy: str | None,
    *,
    registry_image: str | None = None,
) -> list[PolicyPrediction]:
    from promote.flux.verify import policy_object
    from promote.frontdoor.commands.automate_cmd import latest_refs

    objs = [policy_object(tree, policy)] if policy else tree.policies
    out = []
    for ref in latest_refs(ctx, tree, objs, registry_image=registry_image):
        out.append(
            PolicyPrediction(
                ref.policy,
                ref.tag,
                git_tag(tree, ref.policy),
                would_change(tree, files, ref),
                ref.note,
            )
        )
    return out


def run(ctx: Context) -> Result:
    from promote.flux.gitops import scan
    from promote.flux.source import split_policy_ref
    from promote.frontdoor.github_settings import source_from_inputs

    policy = ctx.inputs.str("policy") or None
    if policy:
        split_policy_ref(policy)
    source = source_from_inputs(ctx, default_workspace=True)
    if source is None:  # pragma: no cover - default_workspace always gives one
        raise InputError("predict needs gitops-path or gitops-repo", input_name="gitops-path")
    snapshot = source.read()
    tree = scan(snapshot.files, revision=snapshot.revision)
    found = predictions(ctx, tree, snapshot.files, policy)
    for p in found:
        if p.selected is None:
            ctx.runner.warning(f"{p.policy}: Flux selects nothing: {p.note}")
        else:
            if p.changes:
                verdict = "an automation run would change Git"
            elif p.git == p.selected:
                verdict = "Git is up to date"
            else:
                verdict = (
                    "Git differs, but no active automation would change it (suspended, "
                    "another namespace or outside update.path)"
                )
            ctx.runner.log(f"{p.policy}: selects {p.selected}, Git has {p.git} ({verdict})")
    return Result(
        outputs={"predictions": json.dumps([p.as_dict() for p in found])}, summary=summary(found)
    )


def summary(found: list[PolicyPrediction]) -> str:
    """The step summary; policy names and Git's tag come from the GitOps files, so each is a
    code span it cannot break out of."""
    rows = [
        [
            code(p.policy),
            code(p.selected) if p.selected else "-",
            code(p.git) if p.git else "-",
            str(p.changes).lower(),
        ]
        for p in found
    ]
    return "## What Flux would select now\n\n" + markdown_table(
        ["Policy", "Selected", "In Git", "Automation would change it"], rows
    )
