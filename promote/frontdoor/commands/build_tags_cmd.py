"""``command: build-tags`` — the tags, labels and annotations of a develop or staging build.

One grammar for all environments: a build on ``develop`` gets ``develop-<sha7>-<ts>``, a
build on ``main`` gets ``staging-<sha7>-<ts>``; only promotion makes ``production-*``
tags. No registry access. ``commit-sha`` defaults to ``GITHUB_SHA``, which is right at
build time (unlike in a dispatched promotion); ``branch`` to ``GITHUB_REF_NAME``. Off a
runner (neither set) they come from the git checkout in the current directory: ``HEAD``
and the checked-out branch.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from promote import naming
from promote.errors import InputError
from promote.frontdoor.commands import Context, Result

DEFAULT_BRANCH_MAP = naming.DEFAULT_BRANCH_ENVS
#: Environments whose tags only promotion writes.
PROMOTION_ONLY = frozenset({naming.DEFAULT_TARGET_ENV})


def branch_map(ctx: Context) -> dict[str, str]:
    lines = ctx.inputs.lines("branch-map")
    if not lines:
        return dict(DEFAULT_BRANCH_MAP)
    mapping: dict[str, str] = {}
    for line in lines:
        branch, sep, env = (part.strip() for part in line.partition("="))
        if not sep or not branch or not env:
            raise InputError(
                f"branch-map line {line[:60]!r} must look like branch=env", input_name="branch-map"
            )
        mapping[branch] = naming.validate_env(env, input_name="branch-map")
    return mapping


def local_git(*args: str) -> str:
    """``git args`` in the current directory (a local checkout), or ``""`` when it fails."""
    from promote.errors import GitOpsError
    from promote.gitcmd import run_git

    try:
        proc = run_git(Path.cwd(), *args, purpose="read the local checkout", check=False)
    except GitOpsError:
        return ""
    return proc.stdout.decode("utf-8", "replace").strip() if proc.returncode == 0 else ""


def resolve_env(ctx: Context) -> str:
    """``env`` if given, else the environment mapped from ``branch`` (or ``GITHUB_REF_NAME``)."""
    inputs = ctx.inputs
    if inputs.given("env"):
        env = naming.validate_env(inputs.str("env"), input_name="env")
    else:
        branch = (
            inputs.str("branch")
            or ctx.settings.ref_name
            or local_git("symbolic-ref", "-q", "--short", "HEAD")
        )
        if not branch:
            raise InputError(
                "give env (develop or staging) or branch (no branch is checked out here)",
                input_name="env",
            )
        mapping = branch_map(ctx)
        if branch not in mapping:
            known = ", ".join(f"{b} -> {e}" for b, e in mapping.items())
            raise InputError(
                f"branch {branch[:60]!r} has no environment (mapping: {known})",
                input_name="branch",
            )
        env = mapping[branch]
    if env in PROMOTION_ONLY:
        raise InputError(
            f"{env} tags come only from promotion (command: promote), never from a build",
            input_name="env",
        )
    return env


def run(ctx: Context) -> Result:
    from promote.reference import parse_repository

    inputs = ctx.inputs
    env = resolve_env(ctx)
    sha_full = (
        inputs.str("commit-sha")
        or ctx.settings.sha
        or local_git("rev-parse", "--verify", "-q", "HEAD")
    )
    if not sha_full:
        raise InputError(
            "commit-sha is required (GITHUB_SHA is not set and there is no git checkout here)",
            input_name="commit-sha",
        )
    sha = naming.short_sha(sha_full)
    ts = (
        naming.parse_timestamp(inputs.str("timestamp"))
        if inputs.given("timestamp")
        else naming.validate_timestamp(int(ctx.clock()))
    )
    tag = naming.build_tag(env, sha, ts)
    image = parse_repository(inputs.str("image")).name if inputs.given("image") else ""
    created = datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    meta = {
        naming.REVISION_KEY: sha_full.lower(),
        "org.opencontainers.image.created": created,
        "org.opencontainers.image.version": tag,
    }
    server, repo = ctx.settings.server_url, ctx.settings.repository
    if server and repo:
        meta["org.opencontainers.image.source"] = f"{server.rstrip('/')}/{repo}"
    pairs = "\n".join(f"{k}={v}" for k, v in meta.items())
    outputs = {
        "tag": tag,
        "tags": f"{image}:{tag}" if image else tag,
        "env": env,
        "short-sha": sha,
        "timestamp": str(ts),
        "labels": pairs,
        "annotations": pairs,
        "flux-tag-pattern": naming.flux_tag_pattern(env),
    }
    outputs["json"] = json.dumps(
        {
            **{k: v for k, v in outputs.items() if k not in {"labels", "annotations"}},
            "labels": meta,
            "annotations": meta,
        },
        separators=(",", ":"),
    )
    summary = (
        f"## Build tags ({env})\n\n`{outputs['tags']}`\n\nFlux `filterTags.pattern`: "
        f"`{outputs['flux-tag-pattern']}`\n"
    )
    ctx.runner.log(f"build tag for {env}: {outputs['tags']}")
    return Result(outputs=outputs, summary=summary)
