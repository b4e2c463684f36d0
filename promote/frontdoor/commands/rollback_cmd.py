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

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from promote import naming
from promote.errors import GitOpsError, InputError, PartialPromotionError, PromoteError
from promote.frontdoor.commands import Context, Result

if TYPE_CHECKING:
    from promote.gitrevert import RevertResult
    from promote.pipeline.model import Observed, Plan
    from promote.pipeline.rollback import RollbackRequest


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
    from promote.pipeline.rollback import RollbackRequest, rollback_to_tag
    from promote.reference import validate_digest, validate_tag

    inputs = ctx.inputs
    repository = required_image(ctx)
    target_env = naming.validate_target_env(inputs.str("target-env"), input_name="target-env")
    rollback_to = inputs.str("rollback-to") or None
    if rollback_to is not None:
        if ":" in rollback_to:
            validate_digest(rollback_to)
        else:
            validate_tag(rollback_to)
            rollback_to_tag(target_env, rollback_to)
    timestamp = (
        naming.parse_timestamp(inputs.str("timestamp"), now=ctx.clock())
        if inputs.given("timestamp")
        else None
    )
    run_id = ctx.settings.run_id
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
        gitops_choice,
        gitops_dir,
    )

    path, repo = gitops_choice(ctx)
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


def revert_reason(the_plan: Plan, observed: Observed) -> str:
    return (
        f"Rollback of {the_plan.image} in {the_plan.env}: "
        f"{the_plan.previous_tag} ({the_plan.previous_digest}) is replaced by {the_plan.tag}, "
        f"a re-promotion of {observed.source.tag} ({the_plan.digest}).\n"
        f"The image automation will next write {the_plan.tag}; it names the same digest."
    )


def do_revert(
    ctx: Context,
    revert: RevertRequest,
    the_plan: Plan,
    observed: Observed,
    *,
    dry_run: bool,
) -> RevertResult:
    from promote import gitrevert

    bad_tag = the_plan.previous_tag
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
    target = observed.source.restores
    assert target is not None
    for tag in _put_back(target.env, [change.old for change in result.changes]):
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


#: characters around an image reference's tag in a manifest line (YAML quotes, ``:`` ``@``,
#: a trailing comment's ``#``, ``{`` ``}`` ``,`` of a marker)
_AROUND_TAG = str.maketrans(dict.fromkeys("\"':@#{},=;", " "))


def _put_back(env: str, lines: Sequence[str]) -> list[str]:
    """The ``env`` immutable tags the reverted lines name (the tags the revert puts back)."""
    return sorted(
        {
            word
            for line in lines
            for word in line.translate(_AROUND_TAG).split()
            if naming.parse_immutable_tag(env, word) is not None
        }
    )


def revert_rows(revert: RevertResult | None, *, dry_run: bool) -> list[tuple[str, str]]:
    """The job summary's GitOps revert row (none without ``revert-commit``)."""
    if revert is None:
        return []
    if revert.reverted and dry_run:
        return [("GitOps revert", f"would revert `{revert.reverted[:12]}` (dry run)")]
    if revert.reverted:
        where = "" if revert.pushed or not revert.commit else " (local only, not pushed)"
        done = f"`{revert.commit[:12]}`{where}"
        return [("GitOps revert", f"`{revert.reverted[:12]}` reverted by {done}")]
    return [("GitOps revert", revert.note or "nothing to revert")]


class _Revert:
    """The rollback's own step: revert the automation commit once the new tag is written."""

    def __init__(self, ctx: Context, revert: RevertRequest | None, *, dry_run: bool) -> None:
        self.ctx, self.revert, self.dry_run = ctx, revert, dry_run
        self.observed: Observed | None = None
        self.plan: Plan | None = None
        self.result: RevertResult | None = None

    def planned(self, observed: Observed, the_plan: Plan) -> None:
        self.observed, self.plan = observed, the_plan

    def after_write(self, written: list[str]) -> None:
        # Only a rollback that wrote its new immutable tag now reverts: when the target is
        # already current (a re-run completing the floating tag), the current tag IS the
        # rollback, and reverting its automation commit would restore the bad one.
        assert self.plan is not None and self.observed is not None
        if self.revert is not None and self.plan.tag in written:
            self.result = _revert_after_write(
                self.ctx, self.revert, self.plan, self.observed, written
            )

    def after_apply(self, written: list[str]) -> None:
        assert self.plan is not None and self.observed is not None
        if self.revert is None:
            return
        if self.dry_run and self.plan.tag in self.plan.writes:
            self.result = do_revert(self.ctx, self.revert, self.plan, self.observed, dry_run=True)
        elif not self.dry_run and self.plan.tag not in written:
            self.ctx.runner.log(
                f"{self.plan.tag} was already the current {self.plan.env} release, so no "
                "GitOps commit is reverted"
            )

    def explain(self, exc: PromoteError) -> PromoteError:
        if not isinstance(exc, PartialPromotionError) or self.plan is None:
            return exc
        # "re-run the same" must name the target: a default rollback re-run would pick
        # the release before the one just written, i.e. the bad one again
        return PartialPromotionError(
            f"{exc} For this rollback re-run with rollback-to: {self.plan.digest}.",
            written=exc.written,
            missing=exc.missing,
        )


def run(ctx: Context) -> Result:
    """Parse the inputs, then one release (:func:`release.run_release`), then the revert."""
    request = parse_request(ctx)  # before the heavier imports: an input error stays fast
    revert = parse_revert(ctx)
    from promote.frontdoor.commands import release
    from promote.frontdoor.registry_settings import registry_client
    from promote.pipeline.release import Hooks, outputs

    dry_run = ctx.inputs.bool("dry-run")
    # git-tag/release are refused there (promote only) rather than silently ignored
    records = release.records_for(ctx, "rollback")
    policy, policy_origin = release.flux_policy(ctx, request.target_env)
    if revert is not None and revert.path is not None and not revert.local_only:
        from promote.gitrevert import check_pushable

        check_pushable(revert.path, env=ctx.env)  # before anything is written
    client = registry_client(ctx, request.repository)
    step = _Revert(ctx, revert, dry_run=dry_run)
    hooks = Hooks(step.planned, step.after_write, step.explain, step.after_apply)
    released = release.run_release(
        ctx, request, client, policy=policy, records=records, dry_run=dry_run, hooks=hooks
    )
    reverted = step.result
    # a dry run names the commit it would revert in the log and summary, never as done
    done = reverted is not None and bool(reverted.reverted) and not dry_run
    extra = {"reverted-commit": reverted.reverted} if done and reverted else {}
    rows = revert_rows(reverted, dry_run=dry_run)
    return release.conclude(
        outputs(released, dry_run=dry_run, records=records, extra=extra),
        release.summary(
            released, kind="rollback", dry_run=dry_run, policy_origin=policy_origin, rows=rows
        ),
        released.recorded,
    )


def _revert_after_write(
    ctx: Context,
    revert: RevertRequest,
    the_plan: Plan,
    observed: Observed,
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
