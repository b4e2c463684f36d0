"""``command: promote`` — re-tag one staging digest as the next production release.

Order of work: validate every input (no I/O) -> read the registry -> plan (pure, includes
the Flux check) -> write (unless ``dry-run``) -> outputs and job summary.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from promote import naming
from promote.errors import InputError
from promote.frontdoor.actions import markdown_table
from promote.frontdoor.commands import Context, Result
from promote.frontdoor.registry_settings import (
    required_image,
    source_client,
    source_image,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from promote.errors import PromoteError
    from promote.github import PromotionRecords
    from promote.promotion import Plan, Request, Selector
    from promote.registry import Manifest, RegistryClient
    from promote.registry.copy import CopyPlan


def parse_request(ctx: Context) -> Request:
    """Every promote input, validated before the first network call."""
    from promote.promotion import Request
    from promote.reference import validate_digest, validate_tag

    inputs = ctx.inputs
    repository = required_image(ctx)
    source_repository = source_image(ctx, repository)
    source_env = naming.validate_env(inputs.str("source-env"), input_name="source-env")
    target_env = naming.validate_target_env(inputs.str("target-env"), input_name="target-env")
    if source_env == target_env:
        raise InputError(
            f"target-env {target_env!r} must differ from source-env", input_name="target-env"
        )
    source_tag = inputs.str("source-tag") or None
    source_digest = inputs.str("source-digest") or None
    if not source_tag and not source_digest:
        raise InputError(
            "give source-tag (a staging-* tag) or source-digest (sha256:...)",
            input_name="source-tag",
        )
    if source_tag is not None:
        validate_tag(source_tag)
        if source_tag == "latest" or not source_tag.startswith(f"{source_env}-"):
            raise InputError(
                f"source-tag {source_tag!r} must be a {source_env}-* tag (never latest or a "
                "floating tag)",
                input_name="source-tag",
            )
    if source_digest is not None:
        validate_digest(source_digest)
    version = naming.parse_version(inputs.str("version")) if inputs.given("version") else None
    bump = inputs.choice("bump", naming.BUMPS)
    commit_sha = inputs.str("commit-sha")
    if commit_sha:
        naming.short_sha(commit_sha)
    timestamp = (
        naming.parse_timestamp(inputs.str("timestamp"), now=ctx.clock())
        if inputs.given("timestamp")
        else None
    )
    return Request(
        repository=repository,
        source_tag=source_tag,
        source_digest=source_digest,
        source_env=source_env,
        target_env=target_env,
        version=version,
        bump=bump,
        commit_sha=commit_sha,
        timestamp=timestamp,
        floating_tag=inputs.bool("floating-tag"),
        source_repository=source_repository,
    )


def flux_policy(ctx: Context, target_env: str) -> tuple[Selector, str]:
    """The ImagePolicy a promotion must satisfy: the GitOps repo's own, else the project's."""
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


def summary(the_plan: Plan, *, dry_run: bool, written: list[str], policy_origin: str) -> str:
    title = "Promotion plan (dry run: nothing written)" if dry_run else "Promotion"
    rows = [
        ("Image", f"`{the_plan.image}`"),
        ("Source", f"`{the_plan.source_tag or '(digest)'}` → `{the_plan.digest}`"),
        ("Media type", f"`{the_plan.media_type}`"),
    ]
    if the_plan.platforms:
        rows.append(("Platforms", ", ".join(f"`{p}`" for p in the_plan.platforms)))
    previous = the_plan.previous_version or "none"
    how = the_plan.bump if the_plan.changed else "unchanged"
    rows += [
        ("Version", f"{previous} → **{the_plan.version}** ({how})"),
        ("Commit", f"`{the_plan.short_sha}` (from {the_plan.sha_origin})"),
        ("Immutable tag", f"`{the_plan.tag}`"),
        (
            "Previous production",
            f"`{the_plan.previous_tag or 'none'}` `{the_plan.previous_digest or ''}`",
        ),
        ("Flux check", f"selected by {policy_origin}"),
    ]
    from promote.promotion import steps_markdown

    return (
        f"## {title}\n\n"
        + markdown_table(["", ""], rows)
        + "\n"
        + steps_markdown(the_plan, written)
    )


def records_for(ctx: Context, kind: str) -> PromotionRecords | None:
    """The GitHub records asked for (deployment, tag, release), or ``None``.

    Built here, before any network call, so the GitHub inputs (token, repository, URLs)
    are validated with every other input.
    """
    if not any(ctx.inputs.bool(n) for n in ("create-deployment", "git-tag", "release")):
        return None
    from promote.frontdoor.github_settings import records_for as build_records

    return build_records(ctx, kind=kind)


def announce(ctx: Context, the_plan: Plan) -> None:
    """Print the plan's warnings and steps before anything is written."""
    for warning in the_plan.warnings:
        ctx.runner.warning(warning)
    for step in the_plan.steps:
        ctx.runner.log(f"plan: {step.action} {the_plan.image}:{step.tag} ({step.reason})")


def write(
    ctx: Context,
    the_plan: Plan,
    client: RegistryClient,
    manifest: Manifest,
    *,
    known_tags: Sequence[str],
    records: PromotionRecords | None,
    policy: Selector | None = None,
    after_write: Callable[[list[str]], None] | None = None,
    explain: Callable[[PromoteError], PromoteError] | None = None,
) -> list[str]:
    """Apply ``the_plan`` inside the GitHub records (``in_progress`` -> ``failure``).

    ``after_write`` runs with the written tags before the records could fail;
    ``explain`` may replace an error with a more precise one for this command.
    """
    from promote import promotion
    from promote.errors import PromoteError

    if records is not None:
        records.start(the_plan.outputs())
    try:
        written = promotion.apply(
            the_plan,
            client,
            manifest,
            known_tags=known_tags,
            policy=policy,
            log=ctx.runner.log,
            warn=ctx.runner.warning,
        )
        if after_write is not None:
            after_write(written)
    except PromoteError as exc:
        error = explain(exc) if explain is not None else exc
        if records is not None:
            records.fail(str(error))
        if error is exc:
            raise
        raise error from exc
    return written


def finish(outputs: dict[str, str], records: PromotionRecords | None) -> dict[str, str]:
    """Add the GitHub records' outputs (``deployment-id``, ``release-url``) and metadata."""
    from promote import promotion

    if records is not None:
        outputs.update(records.finish(outputs))
        outputs["metadata"] = promotion.metadata(outputs)
    return outputs


def copy_parallelism(ctx: Context) -> int:
    """The ``copy-parallelism`` input (1-16, default 4)."""
    from promote.registry.copy import MAX_PARALLELISM

    return ctx.inputs.int("copy-parallelism", minimum=1, maximum=MAX_PARALLELISM)


def copy_rows(copy_plan: CopyPlan, counts: dict[str, int], *, dry_run: bool) -> str:
    """The job summary's copy section: source, target, what was (would be) moved."""
    verb = "would be" if dry_run else "were"
    rows = [
        ("Source image", f"`{copy_plan.source}`"),
        ("Target image", f"`{copy_plan.target}`"),
        ("Mode", "cross-repository mount" if copy_plan.same_registry else "streamed copy"),
        *((key, str(value)) for key, value in counts.items()),
    ]
    return f"\n### Copy (what {verb} moved)\n\n" + markdown_table(["", ""], rows)


def copy_image(
    ctx: Context,
    request: Request,
    target: RegistryClient,
    source: RegistryClient,
    manifest: Manifest,
    *,
    dry_run: bool,
) -> tuple[CopyPlan, dict[str, int]]:
    """Observe and plan the copy into ``image``; apply it unless ``dry_run``.

    Runs before any tag is written: a copy that fails leaves no tag in the target, and a
    re-run copies only what is missing.
    """
    from promote.errors import PromoteError, RegistryError
    from promote.registry import copy

    parallelism = copy_parallelism(ctx)
    same_registry = request.source.registry == request.repository.registry
    if same_registry:
        # one token for both: push,pull on the target and pull on the source
        target.auth.add_scope(request.source.scope("pull"))
    graph, held = copy.observe(
        source,
        target,
        manifest,
        signatures=ctx.inputs.bool("copy-signatures"),
        parallelism=parallelism,
        warn=ctx.runner.warning,
    )
    copy_plan = copy.plan(
        graph,
        held,
        source=request.source.name,
        destination=request.repository.name,
        same_registry=same_registry,
    )
    for warning in copy_plan.warnings:
        ctx.runner.warning(warning)
    for step in copy_plan.steps:
        ctx.runner.log(f"copy plan: {step.line()}")
    ctx.runner.log(f"copy plan: {copy_plan.summary()}")
    if dry_run:
        return copy_plan, copy_plan.predicted()
    copier = copy.Copier(source, target, parallelism=parallelism, log=ctx.runner.log)
    try:
        result = copier.apply(copy_plan, graph)
    except PromoteError as exc:
        message = (
            f"the copy into {request.repository} stopped: {exc}. No tag was written in "
            f"{request.repository}; re-run the same promotion to finish (only what is "
            "missing is copied)."
        )
        if isinstance(exc, RegistryError):
            raise type(exc)(
                message, status=exc.status, method=exc.method, url=exc.url, codes=exc.codes
            ) from exc
        raise type(exc)(message) from exc
    ctx.runner.log("copied: " + ", ".join(f"{k} {v}" for k, v in result.counts.items()))
    # the tag writes get a retry budget of their own, however long the copy took
    target.transport.restart_deadline()
    return copy_plan, dict(result.counts)


def immutable_hint(exc: PromoteError) -> PromoteError:
    """A floating-tag PUT refused by a tag-immutable repository (ECR, GAR): say how out."""
    from promote.errors import PartialPromotionError

    text = str(exc)
    if isinstance(exc, PartialPromotionError) and (
        "immutable" in text.lower() or "TAG_INVALID" in text or "MANIFEST_INVALID" in text
    ):
        return PartialPromotionError(
            f"{text} The repository refuses to move tags (tag immutability, as on ECR or "
            "Artifact Registry): promote with floating-tag: false there.",
            written=exc.written,
            missing=exc.missing,
        )
    return exc


def run(ctx: Context) -> Result:
    from promote import promotion
    from promote.registry.copy import counts_json

    request = parse_request(ctx)
    dry_run = ctx.inputs.bool("dry-run")
    records = records_for(ctx, "promote")
    policy, policy_origin = flux_policy(ctx, request.target_env)
    if request.across:
        copy_parallelism(ctx)  # validated before the first network call
    from promote.frontdoor.registry_settings import registry_client

    client = registry_client(ctx, request.repository)
    source = source_client(ctx, request, client) if request.across else None
    now = ctx.clock()
    observed = promotion.observe(
        client, request, log=ctx.runner.log, now=now, policy=policy, source=source
    )
    the_plan = promotion.plan(request, observed, now=now, policy=policy)
    copied: dict[str, int] = {}
    copy_summary = ""
    if source is not None:
        copy_plan, copied = copy_image(
            ctx, request, client, source, observed.manifest, dry_run=dry_run
        )
        copy_summary = copy_rows(copy_plan, copied, dry_run=dry_run)
    announce(ctx, the_plan)
    written: list[str] = []
    if dry_run:
        ctx.runner.log("dry run: nothing written")
    else:
        written = write(
            ctx,
            the_plan,
            client,
            observed.manifest,
            known_tags=observed.tags,
            records=records,
            policy=policy,
            explain=immutable_hint,
        )
        if not written:
            ctx.runner.log(
                f"{the_plan.digest} is already {request.target_env} as {the_plan.tag}: no change"
            )
    from promote.frontdoor.commands.record_step import conclude, record_and_finish

    outputs, recorded = record_and_finish(
        ctx,
        the_plan,
        client,
        observed.manifest,
        kind="promote",
        known_tags=observed.tags,
        written=written,
        dry_run=dry_run,
        records=records,
    )
    outputs["source-image"] = request.source.name
    outputs["copy"] = counts_json(copied)
    return conclude(
        outputs,
        summary(the_plan, dry_run=dry_run, written=written, policy_origin=policy_origin)
        + copy_summary,
        recorded,
    )
