"""``command: promote`` — re-tag one staging digest as the next production release.

Order of work: validate every input (no I/O) -> the shared release pipeline
(:mod:`promote.pipeline`: read the registry -> plan, pure, includes the Flux check -> copy
into the target when the source is another repository -> write, unless ``dry-run`` ->
the promotion record) -> outputs and job summary (:mod:`.release`).
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
    from promote.errors import PromoteError
    from promote.pipeline.model import Observed, Plan
    from promote.pipeline.promotion import Request
    from promote.registry import Manifest, RegistryClient
    from promote.registry.copy import CopyPlan


def parse_request(ctx: Context) -> Request:
    """Every promote input, validated before the first network call."""
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
    from promote.pipeline.promotion import Request  # after validation: an input error stays fast

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


class _CopyFirst:
    """The promotion's own step: with ``source-image``, copy the image into the target
    after the plan and before any tag (see :func:`copy_image`)."""

    def __init__(
        self,
        ctx: Context,
        request: Request,
        target: RegistryClient,
        source: RegistryClient | None,
        *,
        dry_run: bool,
    ) -> None:
        self.ctx, self.request, self.target, self.source = ctx, request, target, source
        self.dry_run = dry_run
        self.counts: dict[str, int] = {}
        self.summary = ""

    def prepare(self, observed: Observed, _plan: Plan) -> None:
        if self.source is None:
            return
        copy_plan, self.counts = copy_image(
            self.ctx, self.request, self.target, self.source, observed.manifest,
            dry_run=self.dry_run,
        )  # fmt: skip
        self.summary = copy_rows(copy_plan, self.counts, dry_run=self.dry_run)


def run(ctx: Context) -> Result:
    """Parse the inputs, then one release (:func:`release.run_release`) with the copy first."""
    request = parse_request(ctx)  # before the heavier imports: an input error stays fast
    from promote.frontdoor.commands import release
    from promote.frontdoor.registry_settings import registry_client
    from promote.pipeline.release import Hooks, outputs
    from promote.registry.copy import counts_json

    dry_run = ctx.inputs.bool("dry-run")
    records = release.records_for(ctx, "promote")
    policy, policy_origin = release.flux_policy(ctx, request.target_env)
    if request.across:
        copy_parallelism(ctx)  # validated before the first network call
    client = registry_client(ctx, request.repository)
    source = source_client(ctx, request, client) if request.across else None
    copy = _CopyFirst(ctx, request, client, source, dry_run=dry_run)
    released = release.run_release(
        ctx,
        request,
        client,
        policy=policy,
        records=records,
        dry_run=dry_run,
        source=source,
        hooks=Hooks(prepare=copy.prepare, explain=immutable_hint),
        commit_sha=request.commit_sha,
    )
    extra = {"source-image": request.source.name, "copy": counts_json(copy.counts)}
    text = release.summary(released, kind="promote", dry_run=dry_run, policy_origin=policy_origin)
    return release.conclude(
        outputs(released, dry_run=dry_run, records=records, extra=extra),
        text + copy.summary,
        released.recorded,
    )
