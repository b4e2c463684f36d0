"""``command: automate`` — a local ImageUpdateAutomation run, for labs and CI.

Flux stays the thing that runs in clusters; this plays its part on one machine. For each
``ImageUpdateAutomation`` in the GitOps tree at ``gitops-path`` (working tree, or
``gitops-ref``):

1. skip it when ``spec.suspend`` is true (logged, as the controller skips it);
2. read its spec (:func:`promote.flux.automation.automation_spec`): ``sourceRef``
   GitRepository, checkout branch, push branch, ``update.path``, author, message template;
3. select every ImagePolicy of its namespace (``policySelector``) from the registry its
   ImageRepository names (``exclusionList`` applied, digest looked up for
   ``digestReflectionPolicy: IfNotPresent``/``Always``) — the ``latestRef`` Flux would hold;
4. clone the repository (the GitRepository ``spec.url`` when it is a local path or
   ``file://`` URL, else the ``origin`` of the ``gitops-path`` checkout) at the checkout
   branch into a temporary directory, apply the setters
   (:func:`promote.flux.setters.run_setters`) under ``update.path``, commit with the
   rendered message (author = committer = ``git.commit.author``) and push to the push
   branch (force-pushed when it differs from the checkout branch, as Flux does).

Nothing changed: no commit (Flux's ``ErrNoStagedFiles``). ``dry-run``: everything but the
commit and push. Outputs: ``commit`` (the pushed commit, empty when none), ``changed``
(JSON list of ``{"automation", "file", "old", "new", "setter"}``, ``file`` relative to the
repository root).
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from promote.errors import GitOpsError, InputError, PromoteError
from promote.frontdoor.actions import code, markdown_table
from promote.frontdoor.commands import Context, Result

if TYPE_CHECKING:
    from promote.flux.automation import AutomationSpec
    from promote.flux.gitops import FluxObject, GitOpsTree, PolicyEntry
    from promote.flux.setters import Change, SetterResult
    from promote.flux.source import LocalSource


@dataclass(frozen=True)
class LatestRef:
    """An ImagePolicy's ``status.latestRef`` as Flux would compute it now."""

    policy: str  # namespace:name
    namespace: str
    name: str
    image: str
    tag: str | None
    digest: str | None
    note: str = ""  # why there is no tag

    def as_setter_policy(self) -> dict[str, str | None]:
        return {
            "namespace": self.namespace,
            "name": self.name,
            "image": self.image,
            "tag": self.tag,
            "digest": self.digest,
        }


def local_source(ctx: Context) -> LocalSource:
    """The GitOps checkout named by ``gitops-path`` (default: the workspace)."""
    from promote.flux.source import LocalSource
    from promote.frontdoor.github_settings import source_from_inputs

    if ctx.inputs.given("gitops-repo"):
        raise InputError(
            f"{ctx.inputs.str('command')} works on a checkout: give gitops-path, not gitops-repo",
            input_name="gitops-repo",
        )
    source = source_from_inputs(ctx, default_workspace=True)
    assert isinstance(source, LocalSource)
    return source


def latest_refs(
    ctx: Context,
    tree: GitOpsTree,
    policies: list[FluxObject],
    *,
    registry_image: str | None = None,
) -> list[LatestRef]:
    """Select each policy's tag from its ImageRepository's registry (one tag list per image).

    ``registry_image`` lists the tags from another repository than the ImageRepository's
    ``spec.image`` (``verify-flux``'s ``image`` input); ``latestRef.name`` stays the latter.
    """
    from promote.flux.gitops import find_policies

    entries = {e.obj.ref: e for e in find_policies(tree)}
    tags_by_image: dict[str, list[str] | str] = {}
    return [
        _latest_ref(
            ctx,
            tree,
            obj,
            entries[obj.ref],
            tags_by_image=tags_by_image,
            registry_image=registry_image,
        )
        for obj in policies
    ]


def _tags_of(ctx: Context, image: str, cache: dict[str, list[str] | str]) -> list[str] | str:
    """The tags of ``image`` (listed once per run), or why they cannot be listed."""
    from promote.frontdoor.registry_settings import registry_client
    from promote.reference import parse_repository

    if image not in cache:
        try:
            with registry_client(ctx, parse_repository(image)) as client:
                cache[image] = client.list_tags()
        except PromoteError as exc:
            cache[image] = str(exc)
    return cache[image]


def _latest_ref(
    ctx: Context,
    tree: GitOpsTree,
    obj: FluxObject,
    entry: PolicyEntry,
    *,
    tags_by_image: dict[str, list[str] | str],
    registry_image: str | None,
) -> LatestRef:
    """One policy's ``latestRef`` (no tag, with the reason, when Flux would hold none)."""
    from promote.flux import filter_out_tags
    from promote.flux.gitops import exclusions_for
    from promote.frontdoor.registry_settings import registry_client
    from promote.reference import parse_repository

    image = _image_of(tree, obj)

    def missing(note: str) -> LatestRef:
        return LatestRef(obj.ref, obj.namespace, obj.name, image, None, None, note)

    if entry.policy is None:
        return missing(f"invalid policy: {entry.error}")
    if not image:
        return missing("its ImageRepository (or its spec.image) is not in the tree")
    listed_from = registry_image or image
    listed = _tags_of(ctx, listed_from, tags_by_image)
    if isinstance(listed, str):
        return missing(f"cannot list the tags of {listed_from}: {listed}")
    kept = filter_out_tags(sorted(listed, reverse=True), exclusions_for(tree, obj) or None)
    if not kept:
        return missing("no tags in database")
    try:
        selection = entry.policy.evaluate(kept)
    except PromoteError as exc:
        return missing(str(exc))
    for warning in selection.warnings:
        ctx.runner.warning(f"{obj.ref}: {warning}")
    if selection.tag is None:
        return missing("no tag matches")
    digest = None
    if entry.policy.digest_reflection_policy in {"IfNotPresent", "Always"}:
        try:
            with registry_client(ctx, parse_repository(listed_from)) as client:
                found = client.head_manifest(selection.tag)
        except PromoteError as exc:  # Flux's policy fails too: no latestRef this run
            return missing(f"cannot read the digest of {selection.tag}: {exc}")
        digest = found.digest if found is not None else None
    return LatestRef(obj.ref, obj.namespace, obj.name, image, selection.tag, digest)


def _image_of(tree: GitOpsTree, policy: FluxObject) -> str:
    ref = policy.spec.get("imageRepositoryRef")
    if not isinstance(ref, Mapping) or not isinstance(ref.get("name"), str):
        return ""
    ns = ref.get("namespace") or policy.namespace
    repo = tree.find("ImageRepository", f"{ns}:{ref['name']}")
    image = repo.spec.get("image") if repo is not None else None
    return image if isinstance(image, str) else ""


# -- git ---------------------------------------------------------------------------------------


def _git(root: Path, *args: str, env: Mapping[str, str], stdin: str | None = None) -> str:
    from promote.gitcmd import run_git

    proc = run_git(
        root,
        *args,
        purpose="run the image update automation (command: automate)",
        stdin=None if stdin is None else stdin.encode(),
        env=env,
    )
    return proc.stdout.decode("utf-8", "replace")


def _try_git(root: Path, *args: str, env: Mapping[str, str], purpose: str) -> str | None:
    """``git args``; ``None`` on success, else git's last error line (for the message)."""
    from promote.gitcmd import run_git

    proc = run_git(root, *args, purpose=purpose, env=env, check=False)
    if proc.returncode == 0:
        return None
    lines = proc.stderr.decode("utf-8", "replace").strip().splitlines()
    return lines[-1] if lines else f"exit {proc.returncode}"


def remote_url(spec: AutomationSpec, checkout: Path, env: Mapping[str, str]) -> str:
    """The GitRepository URL when it is local, else the checkout's ``origin``."""
    url = spec.url
    if url.startswith("file://"):
        return url
    if url.startswith("/") and Path(url).exists():
        return url
    from promote.gitcmd import run_git

    proc = run_git(
        checkout,
        *("config", "--get", "remote.origin.url"),
        purpose="find the GitOps remote",
        env=env,
        check=False,
    )
    origin = proc.stdout.decode().strip()
    if proc.returncode != 0 or not origin:
        raise GitOpsError(
            f"GitRepository {spec.source.ref} url {url!r} is not local and {checkout} has no "
            "origin remote; aim the GitRepository at the repository (file:///path/to/repo.git)"
        )
    return origin


@dataclass
class Run:
    spec: AutomationSpec
    changes: list[Change]
    commit: str = ""
    message: str = ""
    skipped: str = ""


def run_automation(
    ctx: Context, tree: GitOpsTree, spec: AutomationSpec, checkout: Path, *, dry_run: bool
) -> Run:
    from promote.flux.automation import automation_policies, render_message, template_data
    from promote.flux.setters import run_setters
    from promote.flux.source import LocalSource

    policies = automation_policies(tree, spec)
    refs = latest_refs(ctx, tree, policies)
    for ref in refs:
        if ref.tag is None:
            ctx.runner.warning(f"ImagePolicy {ref.policy} has no latestRef: {ref.note}")
        else:
            shown = f"{ref.image}:{ref.tag}" + (f"@{ref.digest}" if ref.digest else "")
            ctx.runner.log(f"{ref.policy} -> {shown}")
    # the message template fails before anything is cloned or written
    render_message(spec.message_template, template_data(spec, []))
    url = remote_url(spec, checkout, ctx.env)
    env = dict(ctx.env)
    with tempfile.TemporaryDirectory(prefix="promote-automate-") as tmp:
        work = Path(tmp) / "repo"
        clone = ["clone", "--quiet", "--no-tags", "--single-branch"]
        error = _try_git(
            Path(tmp),
            *clone,
            "--branch",
            spec.checkout_branch,
            url,
            str(work),
            env=env,
            purpose="run the image update automation (command: automate)",
        )
        if error is not None:
            raise GitOpsError(f"cannot clone branch {spec.checkout_branch} of {url}: {error}")
        files = LocalSource(work).read().files
        result = run_setters(files, [r.as_setter_policy() for r in refs], spec.update_path)
        for problem in result.problem_files:
            ctx.runner.warning(f"{problem} is not valid YAML; Flux skips it too", file=problem)
        run = Run(spec, result.changes)
        if not result.changes:
            run.skipped = "no changes"
            return run
        run.message = render_message(spec.message_template, template_data(spec, result.changes))
        if dry_run:
            run.skipped = "dry run"
            return run
        run.commit = _commit_and_push(ctx, work, spec, result, message=run.message)
        return run


def _commit_and_push(
    ctx: Context, work: Path, spec: AutomationSpec, result: SetterResult, *, message: str
) -> str:
    """Write the changed files into the clone, commit them as the automation's author and
    push to its push branch; the pushed commit's sha."""
    env = dict(ctx.env)
    for path in result.changed_files:
        (work / path).write_bytes(result.files[path].encode("utf-8"))
    _git(work, "add", "--", *result.changed_files, env=env)
    name = spec.author_name or spec.author_email
    ident = {
        "GIT_AUTHOR_NAME": name,
        "GIT_AUTHOR_EMAIL": spec.author_email,
        "GIT_COMMITTER_NAME": name,
        "GIT_COMMITTER_EMAIL": spec.author_email,
    }
    _git(
        work,
        "-c",
        "commit.gpgsign=false",
        "commit",
        "--quiet",
        "--no-verify",
        "--file=-",
        env={**env, **ident},
        stdin=message,
    )
    sha = _git(work, "rev-parse", "HEAD", env=env).strip()
    push = ["push", "--quiet", "origin", f"HEAD:refs/heads/{spec.push_branch}"]
    if spec.force_push:
        push.insert(1, "--force")
    error = _try_git(work, *push, env=env, purpose="push the automation commit")
    if error is not None:
        raise GitOpsError(
            f"the automation commit {sha[:12]} was not pushed to {spec.push_branch} "
            f"(nothing was written; re-run to retry): {error}"
        )
    ctx.runner.log(f"pushed commit '{sha[:7]}' to branch '{spec.push_branch}'")
    return sha


#: What ``automate`` says where there is no ``git`` (the action's image carries none).
NO_GIT = "git is not installed; it is needed to run the image update automation (command: automate)"


def require_git(env: Mapping[str, str]) -> None:
    """Fail before any registry call or clone when ``git`` cannot be run (``PATH`` of ``env``,
    as :func:`promote.gitcmd.run_git` resolves it)."""
    import os
    import shutil

    if shutil.which("git", path=env.get("PATH", os.defpath)) is None:
        raise GitOpsError(NO_GIT)


def run(ctx: Context) -> Result:
    from promote.flux.automation import automation_spec
    from promote.flux.source import load_tree

    require_git(ctx.env)
    source = local_source(ctx)
    tree = load_tree(source)
    if not tree.automations:
        raise GitOpsError(f"no ImageUpdateAutomation in {source.label}")
    dry_run = ctx.inputs.bool("dry-run")
    runs: list[Run] = []
    failure = ""
    for obj in tree.automations:
        try:
            spec = automation_spec(tree, obj)
            if spec.suspend:
                ctx.runner.log(f"ImageUpdateAutomation {spec.ref} is suspended; skipping it")
                continue
            runs.append(run_automation(ctx, tree, spec, source.root, dry_run=dry_run))
        except PromoteError as exc:
            if not runs:
                raise  # nothing was written: one error, like any bad input
            # an earlier automation pushed: say so, and still report its outputs
            failure = f"ImageUpdateAutomation {obj.ref}: {exc}"
            break
    changed = [
        {
            "automation": r.spec.ref,
            "file": c.path,
            "old": c.old,
            "new": c.new,
            "setter": c.setter,
        }
        for r in runs
        for c in r.changes
    ]
    commits = [r.commit for r in runs if r.commit]
    outputs = {"commit": commits[-1] if commits else "", "changed": json.dumps(changed)}
    if failure:
        pushed = ", ".join(f"{r.spec.ref} ({r.commit[:12]})" for r in runs if r.commit)
        return Result(
            outputs=outputs,
            summary=_summary(runs, dry_run),
            failed=True,
            message=f"{failure}; already pushed: {pushed or 'nothing'}",
        )
    for r in runs:
        if r.commit:
            ctx.runner.log(r.message.rstrip("\n"))
        elif r.skipped:
            ctx.runner.log(f"ImageUpdateAutomation {r.spec.ref}: {r.skipped}, nothing committed")
            if r.message:
                ctx.runner.log(r.message.rstrip("\n"))
    return Result(outputs=outputs, summary=_summary(runs, dry_run))


def _summary(runs: list[Run], dry_run: bool) -> str:
    out = ["## Image update automation" + (" (dry run)" if dry_run else "") + "\n"]
    for r in runs:
        state = f"commit `{r.commit[:12]}`" if r.commit else (r.skipped or "no commit")
        # names and values come from the GitOps files: code spans they cannot break out of
        out.append(f"{code(r.spec.ref)} -> {code(r.spec.push_branch)}: {state}\n")
        if r.changes:
            rows = [[code(c.path), code(c.old), code(c.new), code(c.setter)] for c in r.changes]
            out.append(markdown_table(["File", "Old", "New", "Setter"], rows))
    return "\n".join(out)
