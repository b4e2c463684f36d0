"""``command: rollback`` — put an earlier production digest back, without a rebuild.

Order of work: validate every input (no I/O) -> read the registry -> plan (pure, includes
the Flux check) -> write the new immutable tag and move the floating tag (unless
``dry-run``) -> with ``revert-commit: true``, revert the automation commit that wrote the
bad tag in the GitOps repository -> GitHub records -> outputs and job summary.

The registry is written first on purpose: a Git revert alone is undone by the image
automation at its next run (its policy still selects the bad tag), while the registry
rollback alone is complete — the revert only makes Git change at once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from promote import naming
from promote.errors import GitOpsError, InputError, PartialPromotionError, PromoteError
from promote.frontdoor.actions import markdown_table
from promote.frontdoor.commands import Context, Result

if TYPE_CHECKING:
    from promote.gitrevert import RevertResult
    from promote.promotion import Plan
    from promote.rollback import RollbackObserved, RollbackRequest


@dataclass(frozen=True)
class RevertRequest:
    """Where to revert the automation commit: a checkout (``path``) or ``repo`` via the API."""

    path: Path | None = None
    repo: str = ""
    ref: str = ""
    token: str = ""
    api_url: str = ""
    throttle: bool = True
    #: ``revert-local``: a checkout without upstream keeps the revert local (warned)
    local_only: bool = False


def parse_request(ctx: Context) -> RollbackRequest:
    """Every rollback input, validated before the first network call."""
    from promote.frontdoor.registry_settings import required_image
    from promote.reference import validate_digest, validate_tag
    from promote.rollback import RollbackRequest

    inputs = ctx.inputs
    repository = required_image(ctx)
    target_env = naming.validate_target_env(inputs.str("target-env"), input_name="target-env")
    rollback_to = inputs.str("rollback-to") or None
    if rollback_to is not None:
        if ":" in rollback_to:
            validate_digest(rollback_to)
        else:
            validate_tag(rollback_to)
            if naming.parse_immutable_tag(target_env, rollback_to) is None:
                raise InputError(
                    f"rollback-to {rollback_to!r} must be an immutable "
                    f"{target_env}-v<X.Y.Z>-<sha>-<ts> tag or a sha256: digest",
                    input_name="rollback-to",
                )
    timestamp = (
        naming.parse_timestamp(inputs.str("timestamp"), now=ctx.clock())
        if inputs.given("timestamp")
        else None
    )
    run_id = ctx.env.get("GITHUB_RUN_ID", "").strip()
    return RollbackRequest(
        repository=repository,
        rollback_to=rollback_to,
        target_env=target_env,
        timestamp=timestamp,
        floating_tag=inputs.bool("floating-tag"),
        run_id=run_id if run_id.isdigit() else "",
        records=inputs.bool("record"),
    )


def parse_revert(ctx: Context) -> RevertRequest | None:
    """The ``revert-commit`` inputs (no I/O); ``None`` when no revert is asked for."""
    inputs = ctx.inputs
    if not inputs.bool("revert-commit"):
        return None
    from promote.frontdoor.github_settings import (
        github_api,
        github_token,
        gitops_dir,
        gitops_repo,
    )

    path = inputs.str("gitops-path")
    if path and inputs.str("gitops-repo"):
        raise InputError("give gitops-path or gitops-repo, not both", input_name="gitops-repo")
    repo = gitops_repo(ctx)
    if repo:
        token = github_token(ctx)
        if not token:
            raise InputError(
                "revert-commit with gitops-repo needs github-token (with contents: write on "
                "the GitOps repository)",
                input_name="github-token",
            )
        api = github_api(ctx, token)
        from promote.flux.source import validate_git_ref

        ref = validate_git_ref(inputs.str("gitops-ref"))
        return RevertRequest(
            repo=repo, ref=ref, token=token, api_url=api.url, throttle=api.throttle
        )
    if not path:
        raise InputError(
            "revert-commit: true needs gitops-path (a checkout) or gitops-repo (owner/name)",
            input_name="revert-commit",
        )
    root = gitops_dir(ctx, path)
    return RevertRequest(path=root, local_only=inputs.bool("revert-local"))


def revert_reason(the_plan: Plan, observed: RollbackObserved) -> str:
    return (
        f"Rollback of {the_plan.image} in {observed.current.env}: "
        f"{observed.current.tag} ({observed.current_digest}) is replaced by {the_plan.tag}, "
        f"a re-promotion of {observed.target.tag} ({the_plan.digest}).\n"
        f"The image automation will next write {the_plan.tag}; it names the same digest."
    )


def do_revert(
    ctx: Context,
    revert: RevertRequest,
    the_plan: Plan,
    observed: RollbackObserved,
    *,
    dry_run: bool,
) -> RevertResult:
    from promote import gitrevert

    bad_tag = observed.current.tag
    reason = revert_reason(the_plan, observed)
    if revert.path is not None:
        result = gitrevert.revert_local(
            revert.path,
            bad_tag,
            reason=reason,
            dry_run=dry_run,
            env=ctx.env,
            log=ctx.runner.log,
        )
    else:
        result = gitrevert.revert_github(
            revert.repo,
            bad_tag,
            token=revert.token,
            api_url=revert.api_url,
            ref=revert.ref,
            reason=reason,
            dry_run=dry_run,
            throttle=revert.throttle,
            log=ctx.runner.log,
        )
    if result.note:
        ctx.runner.log(result.note)
    if revert.path is not None and result.commit and not result.pushed:
        ctx.runner.warning(
            f"the revert {result.commit[:12]} is committed in {revert.path} only, NOT pushed "
            "(revert-local: true): push it yourself; Flux reads the remote"
        )
    target = observed.target
    put_back = {
        m[0]
        for change in result.changes
        for m in [re.search(rf"{re.escape(target.env)}-v[0-9.]+-[0-9a-f]+-[0-9]+", change.old)]
        if m
    }
    for tag in sorted(put_back):
        parsed = naming.parse_immutable_tag(target.env, tag)
        if parsed is None or (parsed.version, parsed.short_sha) != (
            target.version,
            target.short_sha,
        ):
            ctx.runner.warning(
                f"the revert puts back {tag}, not the rollback target {target.tag}; the image "
                f"automation moves it to {the_plan.tag} at its next run"
            )
    return result


def summary(
    the_plan: Plan,
    observed: RollbackObserved,
    *,
    dry_run: bool,
    written: list[str],
    policy_origin: str,
    revert: RevertResult | None,
) -> str:
    title = "Rollback plan (dry run: nothing written)" if dry_run else "Rollback"
    rows = [
        ("Image", f"`{the_plan.image}`"),
        ("Replaced", f"`{the_plan.previous_tag}` → `{the_plan.previous_digest}`"),
        ("Restored", f"`{observed.target.tag}` → `{the_plan.digest}` ({observed.origin})"),
        ("Version", f"{the_plan.previous_version} → **{the_plan.version}**"),
        ("New immutable tag", f"`{the_plan.tag}`"),
        ("Flux check", f"selected by {policy_origin}"),
    ]
    if revert is not None:
        if revert.reverted and dry_run:
            rows.append(("GitOps revert", f"would revert `{revert.reverted[:12]}` (dry run)"))
        elif revert.reverted:
            where = "" if revert.pushed or not revert.commit else " (local only, not pushed)"
            done = f"`{revert.commit[:12]}`{where}"
            rows.append(("GitOps revert", f"`{revert.reverted[:12]}` reverted by {done}"))
        else:
            rows.append(("GitOps revert", revert.note or "nothing to revert"))
    from promote.promotion import steps_markdown

    return (
        f"## {title}\n\n"
        + markdown_table(["", ""], rows)
        + "\n"
        + steps_markdown(the_plan, written)
    )


def run(ctx: Context) -> Result:
    from promote import promotion, rollback
    from promote.frontdoor.commands.promote_cmd import (
        announce,
        flux_policy,
        records_for,
        write,
    )
    from promote.frontdoor.registry_settings import registry_client

    request = parse_request(ctx)
    revert = parse_revert(ctx)
    dry_run = ctx.inputs.bool("dry-run")
    # git-tag/release are refused there (promote only) rather than silently ignored
    records = records_for(ctx, "rollback")
    policy, policy_origin = flux_policy(ctx, request.target_env)
    if revert is not None and revert.path is not None and not revert.local_only:
        from promote.gitrevert import check_pushable

        check_pushable(revert.path, env=ctx.env)  # before anything is written
    client = registry_client(ctx, request.repository)
    log = ctx.runner.log
    now = ctx.clock()
    observed = rollback.observe(client, request, log=log, now=now, policy=policy)
    the_plan = rollback.plan(request, observed, now=now, policy=policy)
    announce(ctx, the_plan)
    written: list[str] = []
    reverted: RevertResult | None = None
    if dry_run:
        log("dry run: nothing written")
        if revert is not None and the_plan.tag in the_plan.writes:
            reverted = do_revert(ctx, revert, the_plan, observed, dry_run=True)
    else:

        def revert_after(written: list[str]) -> None:
            # Only a rollback that wrote its new immutable tag now reverts: when the target
            # is already current (a re-run completing the floating tag), the current tag IS
            # the rollback, and reverting its automation commit would restore the bad one.
            nonlocal reverted
            if revert is not None and the_plan.tag in written:
                reverted = _revert_after_write(ctx, revert, the_plan, observed, written)

        def explain(exc: PromoteError) -> PromoteError:
            if not isinstance(exc, PartialPromotionError):
                return exc
            # "re-run the same" must name the target: a default rollback re-run would pick
            # the release before the one just written, i.e. the bad one again
            return PartialPromotionError(
                f"{exc} For this rollback re-run with rollback-to: {the_plan.digest}.",
                written=exc.written,
                missing=exc.missing,
            )

        written = write(
            ctx,
            the_plan,
            client,
            observed.manifest,
            known_tags=observed.tags,
            records=records,
            policy=policy,
            after_write=revert_after,
            explain=explain,
        )
        if not written:
            log(f"{the_plan.digest} is already {request.target_env} as {the_plan.tag}: no change")
        if revert is not None and the_plan.tag not in written:
            log(
                f"{the_plan.tag} was already the current {request.target_env} release, so no "
                "GitOps commit is reverted"
            )
    from promote.frontdoor.commands.record_step import conclude, record_and_finish

    outputs, recorded = record_and_finish(
        ctx,
        the_plan,
        client,
        observed.manifest,
        kind="rollback",
        known_tags=observed.tags,
        written=written,
        dry_run=dry_run,
        records=records,
    )
    if reverted is not None and reverted.reverted and not dry_run:
        # a dry run names the commit it would revert in the log and summary, never as done
        outputs["reverted-commit"] = reverted.reverted
        outputs["metadata"] = promotion.metadata(outputs)
    return conclude(
        outputs,
        summary(
            the_plan,
            observed,
            dry_run=dry_run,
            written=written,
            policy_origin=policy_origin,
            revert=reverted,
        ),
        recorded,
    )


def _revert_after_write(
    ctx: Context,
    revert: RevertRequest,
    the_plan: Plan,
    observed: RollbackObserved,
    written: list[str],
) -> RevertResult:
    try:
        return do_revert(ctx, revert, the_plan, observed, dry_run=False)
    except PromoteError as exc:
        raise GitOpsError(
            f"the registry rollback is done ({', '.join(written)} -> {the_plan.digest}), but "
            f"reverting the automation commit failed: {exc}. Flux deploys the restored digest "
            f"at the automation's next run anyway ({the_plan.tag})."
        ) from exc
