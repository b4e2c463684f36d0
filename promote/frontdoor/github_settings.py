"""The GitHub inputs, read once for every consumer: records, the GitOps source, the revert.

One rule each, the same for :class:`promote.github.PromotionRecords`,
:class:`promote.flux.source.GitHubSource` and :func:`promote.gitrevert.revert_github`:

* token: the ``github-token`` input, else the ``GITHUB_TOKEN`` variable (masked either way);
* API URL: ``GITHUB_API_URL`` (default ``https://api.github.com``), https unless loopback;
* pacing: ``PROMOTE_GITHUB_THROTTLE=false`` turns PyGithub's pacing off;
* ``gitops-repo``: ``owner/name`` as GitHub allows it (``../..`` or ``acme/..`` refused).

Nothing here does I/O: a bad value is an :class:`InputError` before anything is written.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from promote import githubapi
from promote.errors import InputError
from promote.frontdoor.settings import http_url

if TYPE_CHECKING:
    from promote.flux.source import TreeSource
    from promote.frontdoor.commands import Context
    from promote.github import PromotionRecords


@dataclass(frozen=True)
class GitHubAPI:
    """Where and as whom to call the GitHub API."""

    url: str
    token: str = field(repr=False)
    throttle: bool = True


def github_token(ctx: Context) -> str:
    """The ``github-token`` input, else ``GITHUB_TOKEN`` (masked); may be empty."""
    token = ctx.inputs.secret("github-token") or ctx.settings.github_token
    ctx.runner.add_secret(token)
    return token


def github_api(ctx: Context, token: str | None = None) -> GitHubAPI:
    """The API URL, token (:func:`github_token` unless given) and pacing of this run."""
    return GitHubAPI(
        url=ctx.settings.api_url,
        token=github_token(ctx) if token is None else token,
        throttle=ctx.settings.github_throttle,
    )


def gitops_repo(ctx: Context) -> str:
    """The ``gitops-repo`` input, checked (empty when not given)."""
    repo = ctx.inputs.str("gitops-repo")
    if repo and not githubapi.valid_repository(repo):
        raise InputError(
            f"gitops-repo must be owner/name, not {repo[:80]!r}", input_name="gitops-repo"
        )
    return repo


def gitops_choice(ctx: Context) -> tuple[str, str]:
    """(``gitops-path``, ``gitops-repo`` checked): at most one of them is given."""
    path = ctx.inputs.str("gitops-path")
    if path and ctx.inputs.str("gitops-repo"):
        raise InputError("give gitops-path or gitops-repo, not both", input_name="gitops-repo")
    return path, gitops_repo(ctx)


def source_from_inputs(ctx: Context, *, default_workspace: bool = False) -> TreeSource | None:
    """The tree named by ``gitops-path`` or ``gitops-repo`` (+ ``gitops-ref``).

    ``None`` when neither is given (unless ``default_workspace``: then
    ``GITHUB_WORKSPACE``, else the current directory). Both at once is an input error.
    """
    from promote.flux.source import GitHubSource, LocalSource, validate_git_ref

    ref = validate_git_ref(ctx.inputs.str("gitops-ref")) or None
    path, repo = gitops_choice(ctx)
    if repo:
        api = github_api(ctx)
        return GitHubSource(repo, ref=ref, token=api.token or None, base_url=api.url)
    if not path:
        if not default_workspace:
            return None
        path = ctx.settings.workspace or os.getcwd()
    return LocalSource(gitops_dir(ctx, path), ref=ref)


def gitops_dir(ctx: Context, path: str) -> Path:
    """``gitops-path`` (relative: to ``GITHUB_WORKSPACE``), which must be a directory."""
    root = Path(path)
    if not root.is_absolute() and ctx.settings.workspace:
        root = Path(ctx.settings.workspace) / root
    if not root.is_dir():
        raise InputError(f"gitops-path {path!r} is not a directory", input_name="gitops-path")
    return root


def records_for(ctx: Context, *, kind: str) -> PromotionRecords:
    """The GitHub records of a promotion or rollback, every input validated (no I/O)."""
    from promote import naming
    from promote.github import KINDS, PromotionRecords

    if kind not in KINDS:
        raise ValueError(kind)
    inputs, settings = ctx.inputs, ctx.settings
    git_tag, release = inputs.bool("git-tag"), inputs.bool("release")
    if kind == "rollback" and (git_tag or release):
        raise InputError(
            "git-tag and release are for command: promote; a rollback re-deploys a version "
            "that already has its tag and release",
            input_name="git-tag" if git_tag else "release",
        )
    token = github_token(ctx)
    if not token:
        raise InputError(
            "create-deployment, git-tag and release need github-token "
            "(e.g. github-token: ${{ github.token }})",
            input_name="github-token",
        )
    repository = inputs.str("repository") or settings.repository
    if not githubapi.valid_repository(repository):
        raise InputError(
            f"repository {repository[:80]!r} must be owner/name (input repository or "
            "GITHUB_REPOSITORY)",
            input_name="repository",
        )
    api = github_api(ctx, token)
    environment_url = inputs.str("environment-url")
    if environment_url:
        http_url(environment_url, what="environment-url", input_name="environment-url")
    environment = naming.validate_target_env(inputs.str("target-env"), input_name="target-env")
    commit_sha = inputs.str("commit-sha").lower()
    if commit_sha:
        naming.short_sha(commit_sha)
    log_url = settings.run_log_url
    return PromotionRecords(
        kind=kind,
        token=api.token,
        repository=repository,
        api_url=api.url,
        environment=environment,
        environment_url=environment_url,
        log_url=log_url,
        commit_sha=commit_sha,
        create_deployment=inputs.bool("create-deployment"),
        git_tag=git_tag,
        release=release,
        throttle=api.throttle,
        warn=ctx.runner.warning,
        log=ctx.runner.log,
    )
