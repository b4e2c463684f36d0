"""``command: promote`` — re-tag one staging digest as the next production release.

Order of work: validate every input (no I/O) -> read the registry -> plan (pure, includes
the Flux check) -> write (unless ``dry-run``) -> outputs and job summary.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, TypedDict

from promote import naming
from promote.actions import markdown_table
from promote.commands import Context, Result
from promote.errors import InputError

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from promote.errors import PromoteError
    from promote.github import PromotionRecords
    from promote.promotion import Plan, Request, Selector
    from promote.reference import Repository
    from promote.registry import Manifest, RegistryClient


def required_image(ctx: Context) -> Repository:
    """The ``image`` input (required by promote and rollback), parsed strictly."""
    from promote.reference import parse_repository

    if not ctx.inputs.given("image"):
        raise InputError(
            "input 'image' is required (e.g. ghcr.io/acme/backend)", input_name="image"
        )
    return parse_repository(ctx.inputs.str("image"))


def parse_request(ctx: Context) -> Request:
    """Every promote input, validated before the first network call."""
    from promote.promotion import Request
    from promote.reference import validate_digest, validate_tag

    inputs = ctx.inputs
    repository = required_image(ctx)
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
    )


#: Environment knobs (seconds) for the registry client: the overall retry deadline and the
#: timeout of one attempt. Unset: the client's defaults (120 s and 30 s).
DEADLINE_ENV = "PROMOTE_REGISTRY_DEADLINE"
TIMEOUT_ENV = "PROMOTE_REGISTRY_TIMEOUT"
MAX_SECONDS = 3600.0


class ClientLimits(TypedDict, total=False):
    deadline: float
    timeout: float


def _seconds(env: Mapping[str, str], var: str) -> float | None:
    raw = env.get(var, "").strip()
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 < value <= MAX_SECONDS:
        raise InputError(f"{var} must be seconds between 0 and {MAX_SECONDS:g}, not {raw[:20]!r}")
    return value


def client_limits(env: Mapping[str, str]) -> ClientLimits:
    """``deadline``/``timeout`` keyword arguments from the environment (validated)."""
    limits = ClientLimits()
    deadline, timeout = _seconds(env, DEADLINE_ENV), _seconds(env, TIMEOUT_ENV)
    if deadline is not None:
        limits["deadline"] = deadline
    if timeout is not None:
        limits["timeout"] = timeout
    return limits


def registry_client(ctx: Context, repository: Repository) -> RegistryClient:
    """A registry client with the inputs' credentials; every secret is masked first."""
    from promote.registry import RegistryClient, credentials_for

    inputs = ctx.inputs
    creds = credentials_for(
        repository,
        username=inputs.str("username"),
        password=inputs.secret("password"),
        github_token=inputs.secret("github-token"),
        env=ctx.env,
    )
    if creds is not None:
        ctx.runner.add_secret(creds.password)
    return RegistryClient(
        repository, creds, on_secret=ctx.runner.add_secret, **client_limits(ctx.env)
    )


def flux_policy(ctx: Context, target_env: str) -> tuple[Selector, str]:
    """The ImagePolicy a promotion must satisfy: the GitOps repo's own, else the project's."""
    from promote.flux import ImagePolicy
    from promote.flux.source import source_from_inputs, split_policy_ref

    inputs = ctx.inputs
    source = source_from_inputs(inputs, ctx.env)
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
    from promote.github import PromotionRecords

    return PromotionRecords.from_context(ctx, kind=kind)


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


def run(ctx: Context) -> Result:
    from promote import promotion

    request = parse_request(ctx)
    dry_run = ctx.inputs.bool("dry-run")
    records = records_for(ctx, "promote")
    policy, policy_origin = flux_policy(ctx, request.target_env)
    client = registry_client(ctx, request.repository)
    now = ctx.clock()
    observed = promotion.observe(client, request, log=ctx.runner.log, now=now, policy=policy)
    the_plan = promotion.plan(request, observed, now=now, policy=policy)
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
        )
        if not written:
            ctx.runner.log(
                f"{the_plan.digest} is already {request.target_env} as {the_plan.tag}: no change"
            )
    from promote.commands.record_step import conclude, record_and_finish

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
    return conclude(
        outputs,
        summary(the_plan, dry_run=dry_run, written=written, policy_origin=policy_origin),
        recorded,
    )
