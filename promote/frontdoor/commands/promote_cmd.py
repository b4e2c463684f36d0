"""``command: promote`` — re-tag one staging digest as the next production release.

Order of work: validate every input (no I/O) -> read the registry -> plan (pure, includes
the Flux check) -> write (unless ``dry-run``) -> outputs and job summary.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, TypedDict

from promote import naming
from promote.errors import InputError
from promote.frontdoor.actions import markdown_table
from promote.frontdoor.commands import Context, Result

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from promote.errors import PromoteError
    from promote.github import PromotionRecords
    from promote.promotion import Plan, Request, Selector
    from promote.reference import Repository
    from promote.registry import Credentials, Manifest, RegistryClient
    from promote.registry.copy import CopyPlan


def required_image(ctx: Context) -> Repository:
    """The ``image`` input (required by promote and rollback), parsed strictly."""
    from promote.reference import parse_repository

    if not ctx.inputs.given("image"):
        raise InputError(
            "input 'image' is required (e.g. ghcr.io/acme/backend)", input_name="image"
        )
    return with_tls(ctx, parse_repository(ctx.inputs.str("image")))


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


def ca_file(ctx: Context) -> str | None:
    """The ``ca-file`` input: a readable PEM bundle (relative: to the workspace), or None."""
    from pathlib import Path

    if not ctx.inputs.given("ca-file"):
        return None
    path = Path(ctx.inputs.str("ca-file"))
    if not path.is_absolute() and ctx.env.get("GITHUB_WORKSPACE"):
        path = Path(ctx.env["GITHUB_WORKSPACE"]) / path
    try:
        text = path.read_bytes()[: 4 * 1024 * 1024]
    except OSError as exc:
        raise InputError(
            f"ca-file {str(path)[:200]!r} cannot be read: {exc.strerror}", input_name="ca-file"
        ) from None
    if b"-----BEGIN CERTIFICATE-----" not in text:
        raise InputError(
            f"ca-file {str(path)[:200]!r} holds no PEM certificate", input_name="ca-file"
        )
    return str(path)


def with_tls(ctx: Context, repository: Repository) -> Repository:
    """With ``ca-file``, a loopback registry is spoken to over HTTPS too."""
    import dataclasses

    if ctx.inputs.given("ca-file"):
        return dataclasses.replace(repository, tls=True)
    return repository


def source_image(ctx: Context, repository: Repository) -> Repository | None:
    """The ``source-image`` input (None: the source is ``image`` itself)."""
    from promote.reference import parse_repository

    if not ctx.inputs.given("source-image"):
        return None
    source = with_tls(ctx, parse_repository(ctx.inputs.str("source-image")))
    return None if source == repository else source


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


def resolve_credentials(ctx: Context, repository: Repository, *, prefix: str) -> Credentials | None:
    """Credentials for ``repository``: the ``<prefix>username``/``<prefix>password`` inputs,
    else the Docker config, else the ghcr.io default (``github-token``); every secret is
    masked before use."""
    from promote.registry import credentials_for, dockerconfig

    inputs = ctx.inputs
    username, password = inputs.str(f"{prefix}username"), inputs.secret(f"{prefix}password")
    creds = None
    if not (username or password):
        creds = dockerconfig.credentials(repository.registry, ctx.env)
    if creds is None:
        creds = credentials_for(
            repository,
            username=username,
            password=password,
            github_token=inputs.secret("github-token"),
            env=ctx.env,
        )
    if creds is not None:
        ctx.runner.add_secret(creds.password)
    return creds


def registry_client(
    ctx: Context, repository: Repository, credentials: Credentials | None = None
) -> RegistryClient:
    """A registry client with the inputs' credentials; every secret is masked first."""
    from promote.registry import RegistryClient

    creds = credentials or resolve_credentials(ctx, repository, prefix="")
    return RegistryClient(
        repository,
        creds,
        on_secret=ctx.runner.add_secret,
        ca_file=ca_file(ctx),
        **client_limits(ctx.env),
    )


def source_client(ctx: Context, request: Request, target: RegistryClient) -> RegistryClient:
    """The client of ``source-image``: its own inputs, else the target's credentials on the
    same registry host, else the Docker config / ghcr.io default for its host."""
    source = request.source
    inputs = ctx.inputs
    if (
        not inputs.given("source-username")
        and not inputs.given("source-password")
        and source.registry == request.repository.registry
        and target.auth.credentials is not None
    ):
        client = registry_client(ctx, source, target.auth.credentials)
        client.auth.actions = "pull"
        return client
    creds = resolve_credentials(ctx, source, prefix="source-")
    from promote.registry import RegistryClient

    client = RegistryClient(
        source,
        creds,
        on_secret=ctx.runner.add_secret,
        ca_file=ca_file(ctx),
        **client_limits(ctx.env),
    )
    client.auth.actions = "pull"  # only read: a token service may refuse push (Docker Hub)
    return client


def flux_policy(ctx: Context, target_env: str) -> tuple[Selector, str]:
    """The ImagePolicy a promotion must satisfy: the GitOps repo's own, else the project's."""
    from promote.flux import ImagePolicy
    from promote.flux.source import split_policy_ref
    from promote.frontdoor.commands.github_settings import source_from_inputs

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
    from promote.frontdoor.commands.github_settings import records_for as build_records

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
