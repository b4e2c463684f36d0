"""One rule each for the GitHub inputs: records, the GitOps source and the revert agree.

The three consumers are built through the front door exactly as their commands build them:
:func:`records_for` (``create-deployment``), :func:`source_from_inputs` (``gitops-repo``)
and :func:`rollback_cmd.parse_revert` (``revert-commit`` with ``gitops-repo``).
"""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import pytest

from promote.errors import InputError
from promote.flux.source import GitHubSource, load_tree
from promote.frontdoor.actions import Runner
from promote.frontdoor.commands import Context
from promote.frontdoor.commands.rollback_cmd import parse_revert
from promote.frontdoor.github_settings import records_for, source_from_inputs
from promote.frontdoor.inputs import Inputs
from testkit.github_server import GitHubServer, init_repo

TOKEN = "ghs_settingsToken0123456789abcdef"
ENV_TOKEN = "ghs_fromTheEnvironment0123456789"

#: consumer -> (its inputs, what it was given: (api url, token))
Consumer = Callable[[Context], tuple[str, str]]


def records(ctx: Context) -> tuple[str, str]:
    built = records_for(ctx, kind="promote")
    return built.api_url, built.token


def source(ctx: Context) -> tuple[str, str]:
    built = source_from_inputs(ctx)
    assert isinstance(built, GitHubSource)
    return built.base_url, built.token or ""


def revert(ctx: Context) -> tuple[str, str]:
    built = parse_revert(ctx)
    assert built is not None and built.path is None
    return built.api_url, built.token


CONSUMERS: dict[str, tuple[dict[str, str], Consumer]] = {
    "records": ({"create-deployment": "true"}, records),
    "source": ({"gitops-repo": "acme/gitops"}, source),
    "revert": ({"revert-commit": "true", "gitops-repo": "acme/gitops"}, revert),
}


def context(consumer: str, env: dict[str, str], **inputs: str) -> Context:
    raw = {"github-token": TOKEN, **CONSUMERS[consumer][0], **inputs}
    base = {"GITHUB_REPOSITORY": "acme/backend", "PROMOTE_GITHUB_THROTTLE": "false"}
    return Context(inputs=Inputs(raw), runner=Runner(out=io.StringIO()), env={**base, **env})


def build(ctx: Context, consumer: str) -> tuple[str, str]:
    return CONSUMERS[consumer][1](ctx)


@pytest.mark.parametrize("consumer", CONSUMERS)
@pytest.mark.parametrize(
    "url", ["http://api.example.test", "ftp://api.example.test", "https://u:p@ghe.test/api/v3"]
)
def test_github_api_url_is_checked_alike(consumer: str, url: str) -> None:
    ctx = context(consumer, {"GITHUB_API_URL": url})
    with pytest.raises(InputError, match="GITHUB_API_URL"):
        build(ctx, consumer)


@pytest.mark.parametrize("consumer", CONSUMERS)
def test_github_api_url_default_and_loopback_http_alike(consumer: str) -> None:
    assert build(context(consumer, {}), consumer)[0] == "https://api.github.com"
    loopback = "http://127.0.0.1:8080/api/v3"
    assert build(context(consumer, {"GITHUB_API_URL": loopback}), consumer)[0] == loopback


@pytest.mark.parametrize("consumer", CONSUMERS)
def test_github_token_falls_back_alike_and_is_masked(consumer: str) -> None:
    ctx = context(consumer, {"GITHUB_TOKEN": ENV_TOKEN}, **{"github-token": ""})
    assert build(ctx, consumer)[1] == ENV_TOKEN
    assert ctx.runner.redact(f"x {ENV_TOKEN} y") == "x *** y"
    assert f"::add-mask::{ENV_TOKEN}" in ctx.runner.out.getvalue()  # type: ignore[attr-defined]


@pytest.mark.parametrize("consumer", CONSUMERS)
def test_the_input_wins_over_github_token_alike(consumer: str) -> None:
    assert build(context(consumer, {"GITHUB_TOKEN": ENV_TOKEN}), consumer)[1] == TOKEN


@pytest.mark.parametrize("consumer", ["source", "revert"])
@pytest.mark.parametrize("repo", ["../..", "acme/..", "acme/.", "-acme/gitops", "acme/git ops"])
def test_gitops_repo_rule_is_the_stricter_for_every_consumer(consumer: str, repo: str) -> None:
    with pytest.raises(InputError, match="gitops-repo must be owner/name"):
        build(context(consumer, {}, **{"gitops-repo": repo}), consumer)


@pytest.mark.parametrize("repo", ["../..", "acme/.."])
def test_records_refuse_the_same_names(repo: str) -> None:
    with pytest.raises(InputError, match="must be owner/name"):
        build(context("records", {}, repository=repo), "records")


def test_without_any_token_writers_refuse_and_the_reader_reads_anonymously() -> None:
    for consumer in ("records", "revert"):
        with pytest.raises(InputError, match="github-token"):
            build(context(consumer, {}, **{"github-token": ""}), consumer)
    assert build(context("source", {}, **{"github-token": ""}), "source")[1] == ""


def test_the_source_reads_with_the_fallback_token(tmp_path: Path) -> None:
    (tmp_path / "gitops").mkdir()
    (tmp_path / "gitops" / "app.yaml").write_text("kind: ConfigMap\n")
    sha = init_repo(tmp_path / "gitops")
    with GitHubServer(token=ENV_TOKEN) as gh:
        gh.add_repo("acme/gitops", tmp_path / "gitops")
        env = {"GITHUB_API_URL": gh.url, "GITHUB_TOKEN": ENV_TOKEN}
        built = source_from_inputs(context("source", env, **{"github-token": ""}))
        assert built is not None
        assert load_tree(built).revision == sha


@pytest.mark.parametrize("consumer", ["source", "revert"])
def test_gitops_path_and_repo_together_are_refused_alike(consumer: str, tmp_path: Path) -> None:
    ctx = context(consumer, {}, **{"gitops-path": str(tmp_path)})
    with pytest.raises(InputError, match="give gitops-path or gitops-repo, not both") as caught:
        build(ctx, consumer)
    assert caught.value.input_name == "gitops-repo"


def test_the_gitops_choice_has_one_rule() -> None:
    """``gitops-path`` xor ``gitops-repo``, and ``gitops-repo``'s check, are written once
    (:func:`promote.frontdoor.github_settings.gitops_choice`), for the source and the revert."""
    root = Path(__file__).resolve().parents[2] / "promote"
    sites = [
        f"{path.relative_to(root)}"
        for path in sorted(root.rglob("*.py"))
        for line in path.read_text().splitlines()
        if "not both" in line and "gitops-repo" in line
    ]
    assert sites == ["frontdoor/github_settings.py"]


@pytest.mark.parametrize("env", ["staging", "develop", "Prod"])
def test_records_judge_target_env_by_the_commands_rule(env: str) -> None:
    """``target-env`` has one rule (:func:`promote.naming.validate_target_env`): the records
    refuse what promote and rollback refuse, with the same message."""
    from promote import naming

    with pytest.raises(InputError) as expected:
        naming.validate_target_env(env)
    with pytest.raises(InputError) as caught:
        build(context("records", {}, **{"target-env": env}), "records")
    assert (str(caught.value), caught.value.input_name) == (str(expected.value), "target-env")
