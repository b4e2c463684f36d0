"""Registry settings from the inputs: the image, credentials, TLS and the client limits.

Shared by every command that talks to a registry (promote, rollback, verify-flux, trace,
automate): ``image`` and ``source-image`` parsed strictly, credentials from the inputs, the
Docker config or the ghcr.io default (masked before use), ``ca-file``, and the
``PROMOTE_REGISTRY_DEADLINE`` / ``PROMOTE_REGISTRY_TIMEOUT`` knobs (validated in
:mod:`promote.frontdoor.settings`, read here as ``ctx.settings.client_limits``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from promote.errors import InputError
from promote.frontdoor.commands import Context

if TYPE_CHECKING:
    from promote.pipeline.promotion import Request
    from promote.reference import Repository
    from promote.registry import Credentials, RegistryClient


def required_image(ctx: Context) -> Repository:
    """The ``image`` input (required by promote and rollback), parsed strictly."""
    from promote.reference import parse_repository

    if not ctx.inputs.given("image"):
        raise InputError(
            "input 'image' is required (e.g. ghcr.io/acme/backend)", input_name="image"
        )
    return with_tls(ctx, parse_repository(ctx.inputs.str("image")))


def ca_file(ctx: Context) -> str | None:
    """The ``ca-file`` input: a readable PEM bundle (relative: to the workspace), or None."""
    from pathlib import Path

    if not ctx.inputs.given("ca-file"):
        return None
    path = Path(ctx.inputs.str("ca-file"))
    if not path.is_absolute() and ctx.settings.workspace:
        path = Path(ctx.settings.workspace) / path
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
        **ctx.settings.client_limits,
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
        **ctx.settings.client_limits,
    )
    client.auth.actions = "pull"  # only read: a token service may refuse push (Docker Hub)
    return client
