"""``command: verify-flux`` — prove that Git carries the promoted tag (and that Flux picks it).

Inputs: ``gitops-path`` (a checkout; with ``gitops-ref`` a revision of it, fetched first
when it is a remote-tracking ref) or ``gitops-repo`` (``owner/name`` through the GitHub API,
``gitops-ref`` default branch, ``github-token``); ``policy`` (``namespace:name``);
``expected-tag`` (default: the tag Flux would select now, as ``command: predict`` reports
it, from the registry the ImageRepository names or ``image``; output ``predictions``);
``timeout`` seconds (0 = read once); optional ``image`` (+ ``username``/``password``/
``github-token``) to predict Flux's choice from the registry.

Order of work: the tree is read once; with ``image`` the prediction runs first and a wrong
prediction fails at once with its reason (waiting cannot change it); then the markers are
polled until they carry the tag. Outputs: ``synced``, ``predicted-tag``, ``files`` (marker
files, newline list), ``commit`` (the commit that wrote the tag, when it can be told).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from promote.errors import InputError
from promote.flux.gitops import exclusions_for, scan
from promote.flux.source import split_policy_ref
from promote.flux.verify import (
    Prediction,
    Verification,
    policy_object,
    poll,
    predict,
)
from promote.frontdoor.actions import code, markdown_table, md_text
from promote.frontdoor.commands import Context, Result
from promote.frontdoor.github_settings import source_from_inputs

if TYPE_CHECKING:
    from promote.flux import ImagePolicy
    from promote.flux.gitops import GitOpsTree
    from promote.flux.source import TreeSource
    from promote.frontdoor.commands.predict_cmd import PolicyPrediction

#: Longest accepted ``timeout`` (a job's own limit is 6 hours).
MAX_TIMEOUT = 6 * 3600


def _predict(
    ctx: Context, tree_policy: ImagePolicy, exclusions: list[str], expected: str
) -> Prediction:
    from promote.frontdoor.registry_settings import registry_client
    from promote.reference import parse_repository

    repository = parse_repository(ctx.inputs.str("image"))
    with registry_client(ctx, repository) as client:
        tags = client.list_tags()
    return predict(tree_policy, tags, expected, exclusions)


def _summary(
    verification: Verification | None, prediction: Prediction | None, label: str, commit: str
) -> str:
    out = [f"## Flux verification: `{label}`\n"]
    if prediction is not None:
        verdict = (
            "as expected"
            if prediction.ok
            else f"**not the expected tag**: {md_text(prediction.reason)}"
        )
        out.append(f"Predicted selection {code(str(prediction.tag))} ({verdict})\n")
    if verification is not None:
        state = "synced" if verification.synced else "**not synced**"
        out.append(
            f"Markers for `{verification.policy}` {state} to `{verification.expected}` "
            f"at `{(verification.revision or 'working tree')[:12]}` after "
            f"{verification.reads} read(s)"
            + (f"; written by `{commit[:12]}`" if commit else "")
            + "\n"
        )
        rows = [
            [
                code(f"{s.marker.file}:{s.marker.line}"),
                code(s.marker.setter),
                code(s.tag or s.marker.value),
                {True: "yes", False: "no", None: "n/a"}[s.carries],
            ]
            for s in verification.markers
        ]
        if rows:
            out.append(markdown_table(["Marker", "Setter", "Value", "Carries tag"], rows))
    return "\n".join(out)


def _now(
    ctx: Context,
    tree: GitOpsTree,
    files: dict[str, str],
    policy_ref: str,
    outputs: dict[str, str],
) -> PolicyPrediction:
    """The ``predict`` answer for the policy, recorded in ``outputs`` (``predictions``)."""
    import json

    from promote.frontdoor.commands.predict_cmd import predictions

    image = ctx.inputs.str("image") or None
    (found,) = predictions(ctx, tree, files, policy_ref, registry_image=image)
    outputs["predictions"] = json.dumps([found.as_dict()])
    outputs["predicted-tag"] = found.selected or ""
    if found.selected is not None:
        ctx.runner.log(
            f"Flux would select {found.selected} for {policy_ref} now; Git carries "
            f"{found.git or 'no tag'}"
        )
    return found


def _settings(ctx: Context) -> tuple[str, str, int, TreeSource]:
    """(expected tag or "", policy ref, timeout, the GitOps source), every input checked."""
    from promote.reference import validate_tag

    inputs = ctx.inputs
    expected = inputs.str("expected-tag")
    if expected:
        validate_tag(expected)
    policy_ref = inputs.str("policy")
    if not policy_ref:
        raise InputError("policy (namespace:name) is required for verify-flux", input_name="policy")
    split_policy_ref(policy_ref)
    timeout = inputs.int("timeout", maximum=MAX_TIMEOUT)
    source = source_from_inputs(ctx)
    if source is None:
        raise InputError("verify-flux needs gitops-path or gitops-repo", input_name="gitops-path")
    return expected, policy_ref, timeout, source


def run(ctx: Context) -> Result:
    expected, policy_ref, timeout, source = _settings(ctx)
    snapshot = source.read()
    tree = scan(snapshot.files, revision=snapshot.revision)
    outputs = {"synced": "false", "predicted-tag": "", "files": "", "commit": ""}
    if not expected:
        # no expected-tag: verify that Git carries what Flux would select now (as `predict`)
        found = _now(ctx, tree, snapshot.files, policy_ref, outputs)
        if found.selected is None:
            return Result(
                outputs=outputs,
                summary=_summary(None, None, source.label, ""),
                failed=True,
                message=f"Flux would select nothing for {policy_ref}: {found.note}",
            )
        expected = found.selected
    prediction = None
    if ctx.inputs.given("image"):
        prediction = _registry_prediction(ctx, tree, policy_ref, expected)
        outputs["predicted-tag"] = prediction.tag or ""
        if not prediction.ok:
            message = f"Flux would not select {expected}: {prediction.reason}"
            if prediction.tag and prediction.tag not in message:
                message += f" (it would select {prediction.tag})"
            return Result(
                outputs=outputs,
                summary=_summary(None, prediction, source.label, ""),
                failed=True,
                message=message,
            )
        ctx.runner.log(f"Flux would select {prediction.tag} from {prediction.considered} tag(s)")

    verification = poll(
        source,
        policy_ref,
        expected,
        timeout,
        first=tree,
        clock=ctx.clock,
        log=ctx.runner.log,
    )
    return _verdict(ctx, source, verification, prediction, outputs, timeout=timeout)


def _registry_prediction(
    ctx: Context, tree: GitOpsTree, policy_ref: str, expected: str
) -> Prediction:
    """With ``image``: the tag Flux would select from that registry's tags (warnings
    logged; a mismatch of ``image`` and the ImageRepository's image is a warning)."""
    from promote.flux.gitops import find_policies
    from promote.flux.verify import normalise_image, repository_image

    obj = policy_object(tree, policy_ref)
    entry = next(e for e in find_policies(tree) if e.obj is obj)
    watched = repository_image(tree, policy_ref)
    given = ctx.inputs.str("image")
    if watched and normalise_image(watched) != normalise_image(given):
        ctx.runner.warning(
            f"image {given} is not the image the ImageRepository of {policy_ref} watches "
            f"({watched}): the prediction reads {given}'s tags, Flux reads {watched}'s"
        )
    if entry.policy is None:
        raise InputError(f"ImagePolicy {policy_ref} is invalid: {entry.error}", input_name="policy")
    prediction = _predict(ctx, entry.policy, exclusions_for(tree, obj), expected)
    for warning in prediction.warnings:
        ctx.runner.warning(warning)
    return prediction


def _verdict(
    ctx: Context,
    source: TreeSource,
    verification: Verification,
    prediction: Prediction | None,
    outputs: dict[str, str],
    *,
    timeout: int,
) -> Result:
    """Outputs, summary, log and (not synced) one error annotation per stale marker."""
    policy_ref, expected = verification.policy, verification.expected
    outputs["files"] = "\n".join(verification.files)
    outputs["synced"] = "true" if verification.synced else "false"
    commit = ""
    if verification.synced:
        commit = source.commit_for(expected, verification.files, verification.revision) or ""
    outputs["commit"] = commit
    text = _summary(verification, prediction, source.label, commit)
    reads = getattr(source, "not_modified", None)
    if reads is not None:
        ctx.runner.log(
            f"GitHub API: {reads} of {verification.reads} read(s) answered 304 Not Modified"
        )
    if verification.synced:
        ctx.runner.log(
            f"{len(verification.decisive)} marker(s) for {policy_ref} carry {expected}"
            + (f" (commit {commit})" if commit else "")
        )
        return Result(outputs=outputs, summary=text)
    if verification.problems:
        message = "; ".join(verification.problems)
    else:
        stale = verification.stale
        where = ", ".join(
            f"{s.marker.file}:{s.marker.line} {s.problem or f'has {s.tag}'}" for s in stale[:5]
        )
        waited = f" after {timeout}s" if timeout else ""
        message = f"markers for {policy_ref} do not carry {expected}{waited}: {where}"
    for state in verification.stale:
        ctx.runner.error(
            f"marker for {policy_ref} {state.problem}"
            if state.problem
            else f"marker for {policy_ref} carries {state.tag}, not {expected}",
            file=state.marker.file,
            line=state.marker.line,
        )
    return Result(outputs=outputs, summary=text, failed=True, message=message)
