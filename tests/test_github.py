"""GitHub records (deployment, statuses, tag, release) against the local GitHub REST server.

PyGithub is pointed at the server through ``GITHUB_API_URL``; the service repository is a
real git repository the server reads. Assertions are on the requests the server saw and
on its resulting state (deployments, statuses, refs, releases).
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import testkit.github_records as records_api
from promote.errors import GitHubError, InputError
from promote.frontdoor.actions import Runner
from promote.frontdoor.commands import Context
from promote.frontdoor.github_settings import records_for
from promote.frontdoor.inputs import Inputs
from testkit.github_server import GitHubServer, commit_all, git, init_repo

TOKEN = "ghs_recordsToken0123456789abcdef"
REPO = "acme/backend"
DIGEST = "sha256:" + "ab" * 32
OLD_DIGEST = "sha256:" + "cd" * 32


@pytest.fixture
def service(tmp_path: Path) -> Path:
    """The service repository: v2.0.0 tagged, then two more commits (the 2.0.1 release)."""
    path = tmp_path / "backend"
    path.mkdir()
    (path / "app.py").write_text("print('v1')\n")
    init_repo(path, message="Initial import")
    (path / "app.py").write_text("print('v2')\n")
    commit_all(path, "feat: the 2.0.0 feature", author=("Alice", "alice@example.invalid"))
    git(path, "tag", "v2.0.0")
    (path / "app.py").write_text("print('v2.0.1')\n")
    commit_all(path, "fix: crash on start", author=("Bob", "bob@example.invalid"))
    (path / "README.md").write_text("docs\n")
    commit_all(path, "docs: readme", author=("Bob", "bob@example.invalid"))
    return path


@pytest.fixture
def server(service: Path) -> Iterator[GitHubServer]:
    assert records_api.DOCS  # the record endpoints are registered by the import
    with GitHubServer(token=TOKEN) as gh:
        gh.add_repo(REPO, service)
        yield gh


def head(path: Path, rev: str = "HEAD") -> str:
    return git(path, "rev-parse", rev).strip()


def context(
    server: GitHubServer | None, *, out: io.StringIO | None = None, **inputs: str
) -> Context:
    raw = {"github-token": TOKEN, "create-deployment": "true", **inputs}
    env = {
        "GITHUB_API_URL": server.url if server else "http://127.0.0.1:9",
        "GITHUB_REPOSITORY": REPO,
        "GITHUB_SERVER_URL": "https://github.com",
        "GITHUB_RUN_ID": "4242",
        "PROMOTE_GITHUB_THROTTLE": "false",
    }
    runner = Runner(out=out or io.StringIO())
    runner.add_secret(TOKEN)
    return Context(inputs=Inputs(raw), runner=runner, env=env)


def outputs(short_sha: str, *, version: str = "2.0.1") -> dict[str, str]:
    tag = f"production-v{version}-{short_sha}-1767229200"
    return {
        "digest": DIGEST,
        "version": version,
        "tag": tag,
        "tags": f"ghcr.io/acme/backend:{tag}\nghcr.io/acme/backend:production",
        "image": f"ghcr.io/acme/backend@{DIGEST}",
        "short-sha": short_sha,
        "source-tag": f"staging-{short_sha}-1767229000",
        "previous-tag": "production-v2.0.0-1234567-1767225600",
        "previous-digest": OLD_DIGEST,
    }


def calls(server: GitHubServer) -> list[tuple[str, str]]:
    prefix = f"/repos/{REPO}"
    return [(r.method, r.path.removeprefix(prefix)) for r in server.requests]


def deployments(server: GitHubServer) -> list[dict[str, Any]]:
    state: list[dict[str, Any]] = server.repos[REPO].extra.get("deployments", [])
    return state


def test_promotion_records_deployment_tag_and_release(server: GitHubServer, service: Path) -> None:
    full = head(service)
    out = io.StringIO()
    ctx = context(
        server,
        out=out,
        **{"git-tag": "true", "release": "true", "environment-url": "https://backend.acme.test"},
    )
    records = records_for(ctx, kind="promote")
    assert server.requests == []  # validation made no request

    o = outputs(full[:7])
    records.start(o)
    result = records.finish(o)

    dep_id = deployments(server)[0]["id"]
    assert calls(server) == [
        ("GET", f"/commits/{full[:7]}"),
        ("GET", "/git/ref/tags/v2.0.1"),  # 404: the tag is free (checked before writing)
        ("POST", "/deployments"),
        ("POST", f"/deployments/{dep_id}/statuses"),
        ("POST", f"/deployments/{dep_id}/statuses"),
        ("POST", "/git/refs"),
        ("GET", "/git/ref/tags/v2.0.0"),
        ("POST", "/releases/generate-notes"),
        ("POST", "/releases"),
    ]
    (dep,) = deployments(server)
    assert dep["sha"] == full and dep["ref"] == full and dep["environment"] == "production"
    sent = dep["_request"]
    assert sent["auto_merge"] is False and sent["required_contexts"] == []
    assert sent["production_environment"] is True and sent["transient_environment"] is False
    assert sent["payload"] == {
        "image": f"ghcr.io/acme/backend@{DIGEST}",
        "digest": DIGEST,
        "tag": o["tag"],
        "tags": o["tags"].splitlines(),
        "source_tag": o["source-tag"],
        "version": "2.0.1",
        "previous_tag": o["previous-tag"],
        "previous_digest": OLD_DIGEST,
        "rollback": False,
    }
    assert sent["description"] == f"Promote {o['tag']} to production"
    states = [(s["state"], s["log_url"], s["environment_url"]) for s in dep["_statuses"]]
    run_url = "https://github.com/acme/backend/actions/runs/4242"
    assert states == [
        ("in_progress", run_url, "https://backend.acme.test"),
        ("success", run_url, "https://backend.acme.test"),
    ]
    # lightweight tag on the full commit
    assert git(service, "cat-file", "-t", "refs/tags/v2.0.1").strip() == "commit"
    assert head(service, "refs/tags/v2.0.1") == full
    # release with the notes generate-notes produced from v2.0.0
    (notes_request,) = server.state["generate_notes"]
    assert notes_request["previous_tag_name"] == "v2.0.0"
    assert notes_request["tag_name"] == "v2.0.1"
    (release,) = server.repos[REPO].extra["releases"]
    assert release["tag_name"] == "v2.0.1" and release["name"] == "v2.0.1"
    assert "fix: crash on start" in release["body"] and "docs: readme" in release["body"]
    assert "the 2.0.0 feature" not in release["body"]
    assert "compare/v2.0.0...v2.0.1" in release["body"]
    assert result == {"deployment-id": str(dep_id), "release-url": release["html_url"]}
    printed = [ln for ln in out.getvalue().splitlines() if not ln.startswith("::add-mask::")]
    assert printed and not any(TOKEN in ln for ln in printed)


def test_rollback_deployment_marks_itself(server: GitHubServer, service: Path) -> None:
    full = head(service, "HEAD~2")
    ctx = context(server, **{"commit-sha": full})
    records = records_for(ctx, kind="rollback")
    o = outputs(full[:7], version="2.0.0")
    records.start(o)
    result = records.finish(o)
    assert ("GET", f"/commits/{full[:7]}") not in calls(server)  # a full sha needs no lookup
    (dep,) = deployments(server)
    assert dep["sha"] == full and dep["_request"]["payload"]["rollback"] is True
    assert dep["description"].startswith("Rollback of production to production-v2.0.0-")
    assert [s["state"] for s in dep["_statuses"]] == ["in_progress", "success"]
    assert result == {"deployment-id": str(dep["id"]), "release-url": ""}


def test_staging_deployment_is_not_a_production_environment(
    server: GitHubServer, service: Path
) -> None:
    full = head(service)
    records = records_for(context(server, **{"target-env": "canary"}), kind="promote")
    records.start(outputs(full[:7]))
    (dep,) = deployments(server)
    assert dep["environment"] == "canary"
    assert dep["_request"]["production_environment"] is False


def test_403_without_deployments_write_is_a_clear_error(
    server: GitHubServer, service: Path
) -> None:
    records_api.set_permissions(server, deployments="read")
    records = records_for(context(server), kind="promote")
    with pytest.raises(GitHubError, match=r"HTTP 403.*deployments: write") as info:
        records.start(outputs(head(service)[:7]))
    assert info.value.status == 403
    assert TOKEN not in str(info.value)
    assert deployments(server) == []
    assert server.count("POST", f"/repos/{REPO}/deployments") == 1  # not retried


def test_existing_tag_on_another_commit_is_refused(server: GitHubServer, service: Path) -> None:
    older = head(service, "HEAD~1")
    git(service, "tag", "v2.0.1", older)
    records = records_for(
        context(server, **{"create-deployment": "false", "git-tag": "true"}), kind="promote"
    )
    with pytest.raises(GitHubError, match=r"v2\.0\.1 already exists on .* never moved") as info:
        records.finish(outputs(head(service)[:7]))
    assert info.value.status == 422
    assert server.count("POST", f"/repos/{REPO}/git/refs", status=422) == 1
    assert head(service, "refs/tags/v2.0.1") == older  # untouched


def test_existing_tag_elsewhere_is_refused_before_the_registry_write(
    server: GitHubServer, service: Path
) -> None:
    older = head(service, "HEAD~1")
    git(service, "tag", "v2.0.1", older)
    records = records_for(context(server, **{"git-tag": "true"}), kind="promote")
    with pytest.raises(GitHubError, match=r"already exists on .* nothing was written"):
        records.start(outputs(head(service)[:7]))
    assert deployments(server) == []  # refused before the deployment too


def test_a_failed_record_after_the_promotion_says_the_promotion_is_complete(
    server: GitHubServer, service: Path
) -> None:
    full = head(service)
    records = records_for(context(server, **{"git-tag": "true", "release": "true"}), kind="promote")
    o = outputs(full[:7])
    records.start(o)
    records_api.set_permissions(server, contents="read")
    with pytest.raises(GitHubError, match=r"promote itself is complete .* HTTP 403.*contents"):
        records.finish(o)
    (dep,) = deployments(server)
    assert [s["state"] for s in dep["_statuses"]] == ["in_progress", "success"]


def test_a_failed_success_status_says_the_promotion_is_complete(
    server: GitHubServer, service: Path
) -> None:
    """The registry writes are done when the success status is posted: its failure must
    say so, not read like a failed promotion."""
    records = records_for(context(server), kind="promote")
    o = outputs(head(service)[:7])
    records.start(o)
    records_api.set_permissions(server, deployments="read")
    with pytest.raises(GitHubError, match=r"promote itself is complete .* HTTP 403") as info:
        records.finish(o)
    assert info.value.status == 403 and TOKEN not in str(info.value)
    (dep,) = deployments(server)
    assert [s["state"] for s in dep["_statuses"]] == ["in_progress"]


def test_a_failed_in_progress_status_leaves_no_pending_deployment(
    server: GitHubServer, service: Path
) -> None:
    """Creating the deployment worked, marking it in_progress did not: nothing is written to
    the registry, so the deployment is closed as `error` rather than left pending."""
    from testkit.github_server import Response

    def refuse_in_progress(req: Any) -> Response:
        if req.json().get("state") == "in_progress":
            return Response(502, {"message": "Bad Gateway"})
        return records_api.create_deployment_status(req)

    server.add_route(
        "POST", records_api.REPO + r"/deployments/(?P<id>[0-9]+)/statuses", refuse_in_progress
    )
    records = records_for(context(server), kind="promote")
    with pytest.raises(GitHubError):
        records.start(outputs(head(service)[:7]))
    (dep,) = deployments(server)
    assert [s["state"] for s in dep["_statuses"]] == ["error"]


def test_unreachable_api_for_tags_is_a_github_error_not_an_internal_error() -> None:
    """Connection faults in the tag/release calls become GitHubError (one clear message;
    after the registry writes it says the promotion is complete), never a bare
    requests exception that the engine reports as an internal error."""
    inputs = {"create-deployment": "false", "git-tag": "true", "commit-sha": "a" * 40}
    records = records_for(context(None, **inputs), kind="promote")
    with pytest.raises(GitHubError, match=r"cannot reach the GitHub API") as before:
        records.start(outputs("a" * 7))
    assert "complete" not in str(before.value)
    with pytest.raises(GitHubError, match=r"promote itself is complete .*cannot reach"):
        records.finish(outputs("a" * 7))


def test_existing_tag_on_the_same_commit_is_fine(server: GitHubServer, service: Path) -> None:
    full = head(service)
    git(service, "tag", "-a", "-m", "release", "v2.0.1", full)  # annotated: peeled
    records = records_for(
        context(server, **{"create-deployment": "false", "git-tag": "true"}), kind="promote"
    )
    assert records.finish(outputs(full[:7])) == {"deployment-id": "", "release-url": ""}
    assert head(service, "refs/tags/v2.0.1^{commit}") == full


def test_release_without_previous_version_tag_and_rerun(
    server: GitHubServer, service: Path
) -> None:
    git(service, "tag", "-d", "v2.0.0")
    full = head(service)
    records = records_for(
        context(server, **{"create-deployment": "false", "release": "true"}), kind="promote"
    )
    first = records.finish(outputs(full[:7]))
    (notes_request,) = server.state["generate_notes"]
    assert "previous_tag_name" not in notes_request
    (release,) = server.repos[REPO].extra["releases"]
    assert "Initial import" in release["body"]
    # a re-run finds the release instead of failing
    second = records.finish(outputs(full[:7]))
    assert second == first
    assert len(server.repos[REPO].extra["releases"]) == 1


def test_fail_marks_failure_and_never_raises(server: GitHubServer, service: Path) -> None:
    out = io.StringIO()
    records = records_for(context(server, out=out), kind="promote")
    records.start(outputs(head(service)[:7]))
    records.fail("promotion stopped half-way: boom")
    (dep,) = deployments(server)
    assert [(s["state"], s["description"]) for s in dep["_statuses"]] == [
        ("in_progress", dep["description"]),
        ("failure", "promotion stopped half-way: boom"),
    ]
    records_api.set_permissions(server, deployments="read")
    records.fail("again")  # the 403 becomes a warning, not an exception
    assert "::warning::could not mark deployment" in out.getvalue()


def test_unknown_short_sha_is_a_clear_error(server: GitHubServer) -> None:
    records = records_for(context(server), kind="promote")
    with pytest.raises(GitHubError, match=r"resolve commit 0000000.*HTTP 422"):
        records.start(outputs("0000000"))
    assert deployments(server) == []


def test_bad_token_is_a_clear_error(server: GitHubServer, service: Path) -> None:
    ctx = context(server, **{"github-token": "ghs_wrongwrongwrong"})
    records = records_for(ctx, kind="promote")
    with pytest.raises(GitHubError, match=r"HTTP 401.*invalid or expired") as info:
        records.start(outputs(head(service)[:7]))
    assert "ghs_wrongwrongwrong" not in str(info.value)


@pytest.mark.parametrize(
    ("inputs", "env", "match"),
    [
        ({"github-token": ""}, {}, "need github-token"),
        ({"repository": "not a repo"}, {}, "must be owner/name"),
        ({"repository": "acme/.."}, {}, "must be owner/name"),
        ({}, {"GITHUB_API_URL": "https://\u0430pi.github.com"}, "punycode"),
        ({"environment-url": "https://u:hunter2@backend.acme.test/"}, {}, "credentials"),
        ({}, {"GITHUB_REPOSITORY": "", "GITHUB_RUN_ID": ""}, "must be owner/name"),
        ({"environment-url": "ftp://x.test"}, {}, "environment-url .* http"),
        ({"environment-url": "http://backend.acme.test"}, {}, "must use https"),
        ({}, {"GITHUB_API_URL": "http://api.example.test"}, "GITHUB_API_URL .* https"),
        ({"commit-sha": "xyz"}, {}, "commit sha"),
        ({"target-env": "Prod"}, {}, "lower-case"),
    ],
)
def test_inputs_are_validated_without_network(
    inputs: dict[str, str], env: dict[str, str], match: str
) -> None:
    ctx = context(None, **inputs)
    ctx.env = {**ctx.env, **env}
    with pytest.raises(InputError, match=match):
        records_for(ctx, kind="promote")


def test_git_tag_and_release_are_for_promote_only() -> None:
    with pytest.raises(InputError, match="for command: promote"):
        records_for(context(None, release="true"), kind="rollback")


def test_repository_input_overrides_github_repository(server: GitHubServer, service: Path) -> None:
    server.add_repo("acme/other", service)
    ctx = context(server, repository="acme/other")
    records = records_for(ctx, kind="promote")
    records.start(outputs(head(service)[:7]))
    assert server.count("POST", "/repos/acme/other/deployments") == 1
    assert server.count("POST", f"/repos/{REPO}/deployments") == 0


@pytest.mark.registry
def test_promote_command_records_everything(
    tmp_path: Path, server: GitHubServer, service: Path, registry: Any, repo_path: str
) -> None:
    """``command: promote`` with all three records, on a real registry."""
    from testkit.engine import engine as run_action

    full = head(service)
    seeder = registry.seeder()
    source = f"staging-{full[:7]}-1767229000"
    seeded = seeder.oci_image(repo_path, source, revision=full)
    old = seeder.oci_image(repo_path, None, revision="1234567" * 5 + "12345", layer_size=77)
    seeder.tag(repo_path, old.digest, "production-v2.0.0-1234567-1767225600")
    run = run_action(
        tmp_path,
        {
            "image": f"{registry.host}/{repo_path}",
            "source-tag": source,
            "timestamp": "1767229200",
            "github-token": TOKEN,
            "create-deployment": "true",
            "git-tag": "true",
            "release": "true",
        },
        {
            "GITHUB_API_URL": server.url,
            "GITHUB_REPOSITORY": REPO,
            "GITHUB_SERVER_URL": "https://github.com",
            "GITHUB_RUN_ID": "9",
            "PROMOTE_GITHUB_THROTTLE": "false",
        },
    )
    assert run.status == 0, run.log
    (dep,) = deployments(server)
    (release,) = server.repos[REPO].extra["releases"]
    assert run.outputs["deployment-id"] == str(dep["id"])
    assert run.outputs["release-url"] == release["html_url"]
    assert dep["sha"] == full and dep["_request"]["payload"]["digest"] == seeded.digest
    assert dep["_request"]["payload"]["rollback"] is False
    assert [s["state"] for s in dep["_statuses"]] == ["in_progress", "success"]
    assert head(service, "refs/tags/v2.0.1") == full
    assert release["tag_name"] == "v2.0.1" and "fix: crash on start" in release["body"]
