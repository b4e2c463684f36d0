"""The front door's half of a release, shared by ``promote`` and ``rollback``.

The commands parse their own inputs into a rule (:mod:`promote.pipeline.promotion`,
:mod:`promote.pipeline.rollback`); everything else is here, once: the Flux policy, the
GitHub records, the record settings, the pipeline run (:func:`promote.pipeline.release`),
the one job summary and the command's result.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from promote import naming
from promote.errors import InputError
from promote.frontdoor.actions import markdown_table
from promote.frontdoor.commands import Context, Result

if TYPE_CHECKING:
    from promote.github import PromotionRecords
    from promote.pipeline.model import Plan, Rule, Selector, Source
    from promote.pipeline.record_step import Recorded, RecordSettings
    from promote.pipeline.release import Hooks, Released
    from promote.registry import RegistryClient


def flux_policy(ctx: Context, target_env: str) -> tuple[Selector, str]:
    """The ImagePolicy a release must satisfy: the GitOps repo's own, else the project's."""
    from promote.flux import ImagePolicy
    from promote.flux.source import split_policy_ref
    from promote.frontdoor.github_settings import source_from_inputs

    inputs = ctx.inputs
    source = source_from_inputs(ctx)
    if source is not None:
        from promote.flux.source import load_selector

        if not inputs.given("policy"):
            raise InputError(
                "with gitops-path or gitops-repo, give policy (namespace:name of the "
                f"{target_env} ImagePolicy)",
                input_name="policy",
            )
        ref = inputs.str("policy")
        split_policy_ref(ref)
        return load_selector(source, ref), f"ImagePolicy {ref} from the GitOps repository"
    spec = naming.flux_policy_spec(target_env)
    policy: Selector = ImagePolicy.from_spec(spec, name=target_env)
    return policy, "the project's default numerical $ts policy"


def records_for(ctx: Context, kind: str) -> PromotionRecords | None:
    """The GitHub records asked for (deployment, tag, release), or ``None``.

    Built here, before any network call, so the GitHub inputs (token, repository, URLs)
    are validated with every other input.
    """
    if not any(ctx.inputs.bool(n) for n in ("create-deployment", "git-tag", "release")):
        return None
    from promote.frontdoor.github_settings import records_for as build_records

    return build_records(ctx, kind=kind)


#: ``HOME`` of a Docker container action: the runner mounts ``$RUNNER_TEMP/_github_home``
#: there, while ``RUNNER_TEMP`` itself is not mounted into the container.
CONTAINER_HOME = "/github/home"


def predicate_dirs(env: Mapping[str, str]) -> tuple[Path, Path]:
    """(where to write the predicate file, the same directory as later steps see it).

    In the action's container the file goes to ``/github/home``, which later steps (on the
    runner) see as ``$RUNNER_TEMP/_github_home``; elsewhere (the CLI, a runner without a
    container) straight into ``RUNNER_TEMP``, else the system temp dir.
    """
    runner_temp = env.get("RUNNER_TEMP", "").strip()
    home = env.get("HOME", "").strip()
    if runner_temp and home == CONTAINER_HOME and Path(home).is_dir():
        return Path(home), Path(runner_temp) / "_github_home"
    base = Path(runner_temp or tempfile.gettempdir())
    return base, base


def record_settings(ctx: Context, request: Rule, *, commit_sha: str = "") -> RecordSettings:
    """The record step's settings: the ``record`` input, the predicate file's directory,
    the runner's facts for the predicate (no I/O)."""
    from promote import record
    from promote.pipeline.record_step import RecordSettings

    write_dir, seen_dir = predicate_dirs(ctx.env)
    return RecordSettings(
        enabled=ctx.inputs.bool("record"),
        write_dir=write_dir,
        seen_dir=seen_dir,
        runner=record.runner_facts(ctx.env, environment=request.target_env),
        commit_sha=commit_sha,
    )


def run_release(
    ctx: Context,
    request: Rule,
    client: RegistryClient,
    *,
    policy: Selector,
    records: PromotionRecords | None,
    dry_run: bool,
    source: RegistryClient | None = None,
    hooks: Hooks | None = None,
    commit_sha: str = "",
) -> Released:
    """Run the pipeline with this run's clock, log and settings."""
    from promote.pipeline.release import release

    return release(
        request,
        client,
        now=ctx.clock(),
        policy=policy,
        dry_run=dry_run,
        records=records,
        record=record_settings(ctx, request, commit_sha=commit_sha),
        log=ctx.runner.log,
        warn=ctx.runner.warning,
        source=source,
        hooks=hooks,
    )


def summary(
    released: Released,
    *,
    kind: str,
    dry_run: bool,
    policy_origin: str,
    rows: Sequence[tuple[str, str]] = (),
) -> str:
    """The job summary of a release: what it is, the Flux check, the steps, what was
    written (``rows``: the command's own, appended)."""
    the_plan, written = released.plan, released.written
    name = "Promotion" if kind == "promote" else "Rollback"
    title = f"{name} plan (dry run: nothing written)" if dry_run else name
    table = [
        *(_promotion_rows if kind == "promote" else _rollback_rows)(
            the_plan, released.observed.source
        ),
        ("Flux check", f"selected by {policy_origin}"),
        *rows,
    ]
    steps = [(s.action, f"`{s.tag}`", s.reason) for s in the_plan.steps]
    done = "written: " + (", ".join(f"`{t}`" for t in written) if written else "nothing")
    return (
        f"## {title}\n\n"
        + markdown_table(["", ""], table)
        + "\n"
        + markdown_table(["step", "tag", "why"], steps)
        + f"\n{done}\n"
    )


def _promotion_rows(the_plan: Plan, source: Source) -> list[tuple[str, str]]:
    rows = [
        ("Image", f"`{the_plan.image}`"),
        ("Source", f"`{the_plan.source_tag or '(digest)'}` → `{the_plan.digest}`"),
        ("Media type", f"`{the_plan.media_type}`"),
    ]
    if the_plan.platforms:
        rows.append(("Platforms", ", ".join(f"`{p}`" for p in the_plan.platforms)))
    previous = the_plan.previous_version or "none"
    how = the_plan.bump if the_plan.changed else "unchanged"
    return [
        *rows,
        ("Version", f"{previous} → **{the_plan.version}** ({how})"),
        ("Commit", f"`{the_plan.short_sha}` (from {the_plan.sha_origin})"),
        ("Immutable tag", f"`{the_plan.tag}`"),
        (
            "Previous production",
            f"`{the_plan.previous_tag or 'none'}` `{the_plan.previous_digest or ''}`",
        ),
    ]


def _rollback_rows(the_plan: Plan, source: Source) -> list[tuple[str, str]]:
    return [
        ("Image", f"`{the_plan.image}`"),
        ("Replaced", f"`{the_plan.previous_tag}` → `{the_plan.previous_digest}`"),
        ("Restored", f"`{source.tag}` → `{the_plan.digest}` ({source.origin})"),
        ("Version", f"{the_plan.previous_version} → **{the_plan.version}**"),
        ("New immutable tag", f"`{the_plan.tag}`"),
    ]


def conclude(outputs: dict[str, str], summary: str, recorded: Recorded) -> Result:
    """The command's result; a failed record fails the step with exit 6 after every
    output is written."""
    if recorded.note:
        summary = summary.rstrip("\n") + f"\n\n{recorded.note}\n"
    if recorded.error is None:
        return Result(outputs=outputs, summary=summary)
    return Result(
        outputs=outputs,
        summary=summary,
        failed=True,
        message=str(recorded.error),
        exit_code=recorded.error.exit_code,
    )
