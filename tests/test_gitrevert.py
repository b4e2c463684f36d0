"""Reverting the image-automation commit in a real local git repository (and pure helpers)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import testkit.github_records as github_records
from promote import gitrevert
from promote.errors import GitOpsError
from testkit.github_server import GitHubServer, Request, Response

IMAGE = "ghcr.io/acme/backend"
MARK = '# {"$imagepolicy": "flux-system:backend-production"}'
GOOD = "production-v2.0.0-aaaaaaa-1767225600"
BAD = "production-v2.0.1-bbbbbbb-1767229200"
FLUX_ENV = {
    "GIT_AUTHOR_NAME": "fluxcdbot",
    "GIT_AUTHOR_EMAIL": "fluxcdbot@users.noreply.github.com",
    "GIT_COMMITTER_NAME": "fluxcdbot",
    "GIT_COMMITTER_EMAIL": "fluxcdbot@users.noreply.github.com",
}
HUMAN_ENV = {
    "GIT_AUTHOR_NAME": "Alice",
    "GIT_AUTHOR_EMAIL": "alice@example.com",
    "GIT_COMMITTER_NAME": "Alice",
    "GIT_COMMITTER_EMAIL": "alice@example.com",
}


def git(root: Path, *args: str, env: dict[str, str] | None = None) -> str:
    import os

    full_env = {**os.environ, "GIT_CONFIG_NOSYSTEM": "1", "HOME": str(root.parent), **(env or {})}
    return subprocess.run(
        ["git", "-C", str(root), *args], check=True, capture_output=True, text=True, env=full_env
    ).stdout.strip()


def deployment(tag: str, replicas: int = 2) -> str:
    return (
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: backend\nspec:\n"
        f"  replicas: {replicas}\n  template:\n    spec:\n      containers:\n"
        f"        - name: backend\n          image: {IMAGE}:{tag} {MARK}\n"
    )


def kustomization(tag: str) -> str:
    return (
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nimages:\n"
        f"  - name: {IMAGE}\n    newTag: {tag} {MARK.replace('production', 'production:tag')}\n"
    )


def automation_commit(root: Path, tag: str) -> str:
    """Write ``tag`` into both marker files as Flux's automation does, and commit it."""
    app = root / "flux/apps/backend/production"
    (app / "deployment.yaml").write_text(deployment(tag, _replicas(app)))
    (app / "kustomization.yaml").write_text(kustomization(tag))
    git(root, "add", "-A")
    message = f"Update from image update automation\n\n- {IMAGE}:{tag}\n"
    git(root, "commit", "-q", "-m", message, env=FLUX_ENV)
    return git(root, "rev-parse", "HEAD")


def _replicas(app: Path) -> int:
    text = (app / "deployment.yaml").read_text()
    return int(text.split("replicas: ")[1].split("\n")[0])


@pytest.fixture
def gitops(tmp_path: Path) -> tuple[Path, Path, str]:
    """A bare origin and a clone with history: human setup, 2.0.0, a human edit, 2.0.1."""
    origin = tmp_path / "origin.git"
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(origin)], check=True)
    work = tmp_path / "work"
    subprocess.run(["git", "clone", "-q", str(origin), str(work)], check=True, capture_output=True)
    git(work, "checkout", "-q", "-b", "main")
    app = work / "flux/apps/backend/production"
    app.mkdir(parents=True)
    (app / "deployment.yaml").write_text(deployment("production-v1.9.0-ccccccc-1767000000"))
    (app / "kustomization.yaml").write_text(kustomization("production-v1.9.0-ccccccc-1767000000"))
    (work / "README.md").write_text("gitops\n")
    git(work, "add", "-A")
    git(work, "commit", "-q", "-m", "Bootstrap backend", env=HUMAN_ENV)
    automation_commit(work, GOOD)
    # a human change elsewhere in the same file, after 2.0.0 and before 2.0.1
    dep = app / "deployment.yaml"
    dep.write_text(dep.read_text().replace("replicas: 2", "replicas: 3"))
    git(work, "commit", "-q", "-am", "Scale backend to 3", env=HUMAN_ENV)
    bad_commit = automation_commit(work, BAD)
    git(work, "push", "-q", "-u", "origin", "main")
    return origin, work, bad_commit


def test_revert_local_reverts_the_automation_commit_and_pushes(
    gitops: tuple[Path, Path, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    origin, work, bad_commit = gitops
    # no identity configured anywhere: the revert is authored by the Actions bot
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", "/dev/null")
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    logs: list[str] = []
    result = gitrevert.revert_local(work, BAD, reason="Rollback of backend.", log=logs.append)
    assert result.reverted == bad_commit
    assert result.pushed is True
    assert set(result.files) == {
        "flux/apps/backend/production/deployment.yaml",
        "flux/apps/backend/production/kustomization.yaml",
    }
    app = work / "flux/apps/backend/production"
    text = (app / "deployment.yaml").read_text()
    assert f"{IMAGE}:{GOOD} {MARK}" in text and BAD not in text
    assert "replicas: 3" in text  # the later human change is kept
    assert GOOD in (app / "kustomization.yaml").read_text()
    # a normal commit on top, pushed to origin as a fast-forward (history intact)
    assert git(work, "rev-parse", "HEAD^") == bad_commit
    assert git(origin, "rev-parse", "main") == result.commit
    message = git(work, "log", "-1", "--format=%B")
    assert message.startswith('Revert "Update from image update automation"')
    assert f"This reverts commit {bad_commit}." in message
    assert "Rollback of backend." in message
    assert git(work, "log", "-1", "--format=%an") == "github-actions[bot]"
    assert any(bad_commit[:12] in line and "fluxcdbot" in line for line in logs)


def test_revert_local_dry_run_changes_nothing(gitops: tuple[Path, Path, str]) -> None:
    origin, work, bad_commit = gitops
    before = git(work, "rev-parse", "HEAD")
    result = gitrevert.revert_local(work, BAD, reason="r", dry_run=True)
    assert result.reverted == bad_commit and result.commit == "" and not result.pushed
    assert git(work, "rev-parse", "HEAD") == before == git(origin, "rev-parse", "main")
    assert git(work, "status", "--porcelain") == ""


def test_revert_local_dry_run_does_not_pull_into_the_checkout(
    gitops: tuple[Path, Path, str], tmp_path: Path
) -> None:
    """The upstream moved: a dry run reads it but leaves the checkout's branch and files."""
    origin, work, bad_commit = gitops
    other = tmp_path / "other"
    subprocess.run(["git", "clone", "-q", str(origin), str(other)], check=True)
    (other / "README.md").write_text("gitops, edited\n")
    git(other, "commit", "-q", "-am", "Docs", env=HUMAN_ENV)
    git(other, "push", "-q", "origin", "main")
    before = git(work, "rev-parse", "HEAD")
    result = gitrevert.revert_local(work, BAD, reason="r", dry_run=True)
    assert result.reverted == bad_commit and result.commit == "" and not result.pushed
    assert git(work, "rev-parse", "HEAD") == before != git(origin, "rev-parse", "main")
    assert (work / "README.md").read_text() == "gitops\n"
    assert git(work, "status", "--porcelain") == ""


def test_revert_local_is_idempotent(gitops: tuple[Path, Path, str]) -> None:
    origin, work, _ = gitops
    first = gitrevert.revert_local(work, BAD, reason="r")
    second = gitrevert.revert_local(work, BAD, reason="r")
    assert first.commit and second.commit == "" and second.reverted == ""
    assert "nothing to revert" in second.note
    assert git(origin, "rev-parse", "main") == first.commit


def test_revert_local_pulls_first_and_retries_a_rejected_push(
    gitops: tuple[Path, Path, str], tmp_path: Path
) -> None:
    """Another clone pushes an unrelated commit: the revert lands on top of it."""
    origin, work, bad_commit = gitops
    other = tmp_path / "other"
    subprocess.run(["git", "clone", "-q", str(origin), str(other)], check=True)
    (other / "README.md").write_text("gitops, edited\n")
    git(other, "commit", "-q", "-am", "Docs", env=HUMAN_ENV)
    git(other, "push", "-q", "origin", "main")
    result = gitrevert.revert_local(work, BAD, reason="r")
    assert result.pushed
    assert git(origin, "rev-parse", "main") == result.commit
    assert git(origin, "log", "--format=%s", "-3").splitlines()[1] == "Docs"
    assert git(origin, "cat-file", "-p", f"{result.commit}:README.md") == "gitops, edited"
    del bad_commit


def test_revert_local_refuses_a_human_commit(tmp_path: Path) -> None:
    work = tmp_path / "repo"
    subprocess.run(["git", "init", "-q", "-b", "main", str(work)], check=True)
    (work / "app.yaml").write_text(f"image: {IMAGE}:{GOOD} {MARK}\nreplicas: 1\n")
    git(work, "add", "-A")
    git(work, "commit", "-q", "-m", "init", env=HUMAN_ENV)
    (work / "app.yaml").write_text(f"image: {IMAGE}:{BAD} {MARK}\nreplicas: 5\n")
    git(work, "commit", "-q", "-am", "bump and scale by hand", env=HUMAN_ENV)
    head = git(work, "rev-parse", "HEAD")
    with pytest.raises(GitOpsError, match="not an image-automation commit"):
        gitrevert.revert_local(work, BAD, reason="r")
    assert git(work, "rev-parse", "HEAD") == head


def test_revert_local_conflict_aborts_cleanly(gitops: tuple[Path, Path, str]) -> None:
    """A later human edit of the same marker line: the revert conflicts; nothing committed."""
    origin, work, _ = gitops
    dep = work / "flux/apps/backend/production/deployment.yaml"
    dep.write_text(dep.read_text().replace(f"{BAD} {MARK}", f"{BAD} {MARK} # pinned"))
    git(work, "commit", "-q", "-am", "pin", env=HUMAN_ENV)
    head = git(work, "rev-parse", "HEAD")
    with pytest.raises(GitOpsError, match="conflicts with later changes"):
        gitrevert.revert_local(work, BAD, reason="r", push=False)
    assert git(work, "rev-parse", "HEAD") == head
    assert git(work, "status", "--porcelain") == ""
    del origin


def test_revert_local_refuses_dirty_tree_and_detached_head(gitops: tuple[Path, Path, str]) -> None:
    _, work, _ = gitops
    (work / "README.md").write_text("dirty\n")
    with pytest.raises(GitOpsError, match="uncommitted changes"):
        gitrevert.revert_local(work, BAD, reason="r")
    git(work, "checkout", "-q", "--", "README.md")
    git(work, "checkout", "-q", "--detach")
    with pytest.raises(GitOpsError, match="detached HEAD"):
        gitrevert.revert_local(work, BAD, reason="r")


def test_parse_diff_pairs_github_patch_lines() -> None:
    patch = (
        "@@ -8,4 +8,4 @@ spec:\n"
        "       containers:\n"
        "         - name: backend\n"
        f"-          image: {IMAGE}:{GOOD} {MARK}\n"
        f"+          image: {IMAGE}:{BAD} {MARK}\n"
        "\\ No newline at end of file"
    )
    hunks = gitrevert.parse_diff(patch)[""]
    changes = gitrevert.marker_changes("f" * 40, "d.yaml", hunks)
    assert [(c.old.strip(), c.new.strip()) for c in changes] == [
        (f"image: {IMAGE}:{GOOD} {MARK}", f"image: {IMAGE}:{BAD} {MARK}")
    ]
    text = f"a: 1\r\n          image: {IMAGE}:{BAD} {MARK}\r\n"
    assert gitrevert.revert_text(text, changes, sha="f" * 40) == (
        f"a: 1\r\n          image: {IMAGE}:{GOOD} {MARK}\r\n"
    )
    with pytest.raises(GitOpsError, match="a later commit changed it"):
        gitrevert.revert_text("a: 1\n", changes, sha="f" * 40)


# -- through the GitHub REST API (local stateful server over the bare origin) ---------------
TOKEN = "ghs_gitopsToken0123456789"


@pytest.fixture
def api(gitops: tuple[Path, Path, str]) -> Iterator[GitHubServer]:
    origin, _, _ = gitops
    assert github_records.DOCS  # registers the write endpoints
    with GitHubServer(token=TOKEN) as server:
        server.add_repo("acme/gitops", origin)
        yield server


def revert_api(server: GitHubServer, **kw: Any) -> gitrevert.RevertResult:
    return gitrevert.revert_github(
        "acme/gitops",
        BAD,
        token=TOKEN,
        api_url=server.url,
        reason=kw.pop("reason", "Rollback of backend."),
        throttle=False,
        **kw,
    )


def test_revert_github_makes_one_fast_forward_commit(
    gitops: tuple[Path, Path, str], api: GitHubServer
) -> None:
    origin, _, bad_commit = gitops
    result = revert_api(api)
    new = git(origin, "rev-parse", "main")
    assert result.commit == new and result.reverted == bad_commit and result.pushed
    assert git(origin, "rev-parse", "main^") == bad_commit  # on top, history intact
    dep = git(origin, "show", "main:flux/apps/backend/production/deployment.yaml")
    assert f"{IMAGE}:{GOOD} {MARK}" in dep and BAD not in dep and "replicas: 3" in dep
    kus = git(origin, "show", "main:flux/apps/backend/production/kustomization.yaml")
    assert GOOD in kus and BAD not in kus
    assert git(origin, "diff", "--stat", f"{bad_commit}~1", "main", "--", "README.md") == ""
    message = git(origin, "log", "-1", "--format=%B", "main")
    assert message.startswith('Revert "Update from image update automation"')
    assert f"This reverts commit {bad_commit}." in message
    assert api.count("PATCH", "/repos/acme/gitops/git/refs/heads/main") == 1
    # only the newest commit had to be read to find the automation commit
    assert api.count("GET", f"/repos/acme/gitops/commits/{bad_commit}") == 1


def test_revert_github_dry_run_and_nothing_to_revert(
    gitops: tuple[Path, Path, str], api: GitHubServer
) -> None:
    origin, _, bad_commit = gitops
    before = git(origin, "rev-parse", "main")
    dry = revert_api(api, dry_run=True)
    assert dry.reverted == bad_commit and dry.commit == ""
    assert git(origin, "rev-parse", "main") == before
    assert api.count("POST") == 0 and api.count("PATCH") == 0
    revert_api(api)
    again = revert_api(api)
    assert again.commit == "" and "nothing to revert" in again.note


def test_revert_github_retries_once_when_the_branch_moves(
    gitops: tuple[Path, Path, str], api: GitHubServer
) -> None:
    """The automation pushes between our commit and the ref update: 422, then a retry."""
    origin, work, bad_commit = gitops
    builtin = api.find_route("PATCH", "/repos/acme/gitops/git/refs/heads/main")
    assert builtin is not None
    moved: list[str] = []

    def racing_patch(req: Request) -> Response:
        if not moved:
            (work / "README.md").write_text("edited meanwhile\n")
            git(work, "commit", "-q", "-am", "Docs meanwhile", env=HUMAN_ENV)
            git(work, "push", "-q", "origin", "main")
            moved.append(git(work, "rev-parse", "HEAD"))
        return builtin[0].handler(req)

    api.add_route(
        "PATCH", r"/repos/(?P<owner>[^/]+)/(?P<repo>[^/]+)/git/refs/(?P<ref>.+)", racing_patch
    )
    logs: list[str] = []
    result = revert_api(api, log=logs.append)
    assert api.count("PATCH", status=422) == 1 and api.count("PATCH", status=200) == 1
    assert git(origin, "rev-parse", "main") == result.commit
    assert git(origin, "rev-parse", "main^") == moved[0]
    assert git(origin, "show", "main:README.md") == "edited meanwhile"
    assert result.reverted == bad_commit
    assert any("retrying once" in line for line in logs)


def test_revert_github_refuses_a_protected_branch(
    gitops: tuple[Path, Path, str], api: GitHubServer
) -> None:
    origin, _, _ = gitops
    before = git(origin, "rev-parse", "main")
    github_records.set_permissions(api, contents="read")
    with pytest.raises(GitOpsError, match=r"HTTP 403"):
        revert_api(api)
    assert git(origin, "rev-parse", "main") == before
