"""``command: rollback`` end to end in-process: real registry, real git, local GitHub server.

History is made by the real ``promote`` command (2.0.0, then 2.0.1); the rollback runs
through the same engine as ``entrypoint.py``. Assertions are on the registry's tags and
bytes, the GitOps repository's commits, and the GitHub server's deployments.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import testkit.github_records as github_records
from promote import naming
from promote.flux import ImagePolicy
from testkit.engine import EngineRun as Run
from testkit.engine import engine as run_action
from testkit.github_server import GitHubServer, commit_all, git, init_repo
from testkit.gitops import PRODUCTION_POLICY as POLICY
from testkit.registry import RegistryServer
from testkit.seed import Seeded, Seeder

NOW = int(time.time())
SHA_A = "a1b2c3d4e5f60718293a4b5c6d7e8f9012345678"
SHA_B = "b2c3d4e5f60718293a4b5c6d7e8f901234567890"
T_A, T_B = NOW - 7200, NOW - 3600
MARK = '# {"$imagepolicy": "flux-system:backend-production"}'
TOKEN = "ghs_rollbackToken0123456789"
FLUXBOT = ("fluxcdbot", "fluxcdbot@users.noreply.github.com")


@dataclass
class History:
    server: RegistryServer
    repo: str
    seeder: Seeder
    a: Seeded
    b: Seeded
    tag_a: str
    tag_b: str

    @property
    def image(self) -> str:
        return f"{self.server.host}/{self.repo}"

    def tags(self) -> list[str]:
        return sorted(self.seeder.tags(self.repo))

    def digest(self, tag: str) -> str:
        return self.seeder.raw_manifest(self.repo, tag)[2]


def action(tmp_path: Path, inputs: dict[str, str], env: dict[str, str] | None = None) -> Run:
    tmp_path.mkdir(parents=True, exist_ok=True)
    return run_action(tmp_path, inputs, env)


@pytest.fixture
def history(tmp_path: Path, registry: RegistryServer, repo_path: str) -> History:
    """Two real promotions: 2.0.0 (image A), then 2.0.1 (image B)."""
    seeder = registry.seeder()
    src_a, src_b = f"staging-{SHA_A[:7]}-{T_A - 60}", f"staging-{SHA_B[:7]}-{T_B - 60}"
    a = seeder.oci_image(repo_path, src_a, revision=SHA_A, layer_size=111)
    b = seeder.oci_image(repo_path, src_b, revision=SHA_B, layer_size=222)
    image = f"{registry.host}/{repo_path}"
    first = action(
        tmp_path / "p1",
        {"image": image, "source-tag": src_a, "version": "2.0.0", "timestamp": str(T_A)},
    )
    assert first.status == 0, first.log
    second = action(tmp_path / "p2", {"image": image, "source-tag": src_b, "timestamp": str(T_B)})
    assert second.status == 0, second.log
    assert second.outputs["version"] == "2.0.1"
    return History(registry, repo_path, seeder, a, b, first.outputs["tag"], second.outputs["tag"])


def flux_selects(tags: list[str]) -> str | None:
    return ImagePolicy.from_spec(naming.flux_policy_spec("production")).select(tags)


@pytest.mark.registry
def test_rollback_after_two_promotions(tmp_path: Path, history: History) -> None:
    before = set(history.tags())
    run = action(tmp_path / "rb", {"command": "rollback", "image": history.image})
    assert run.status == 0, run.log
    out = run.outputs
    assert out["digest"] == history.a.digest
    assert out["previous-digest"] == history.b.digest
    assert out["previous-tag"] == history.tag_b
    assert out["source-tag"] == history.tag_a
    assert out["changed"] == "true" and out["version"] == "2.0.0"
    assert out["tag"].startswith(f"production-v2.0.0-{SHA_A[:7]}-")
    assert int(out["timestamp"]) >= NOW
    assert out["tags"].splitlines() == [
        f"{history.image}:{out['tag']}",
        f"{history.image}:production",
    ]
    assert json.loads(out["metadata"])["digest"] == history.a.digest
    after = history.tags()
    assert set(after) == before | {out["tag"]}
    assert history.digest(out["tag"]) == history.a.digest
    assert history.digest("production") == history.a.digest
    assert history.digest(history.tag_b) == history.b.digest  # never rewritten
    assert flux_selects(after) == out["tag"]
    assert "## Rollback" in run.summary and history.tag_a in run.summary
    assert run.errors == []


@pytest.mark.registry
def test_dry_run_plans_and_writes_nothing(tmp_path: Path, history: History) -> None:
    before = history.tags()
    run = action(
        tmp_path / "rb",
        {"command": "rollback", "image": history.image, "dry-run": "true"},
    )
    assert run.status == 0, run.log
    assert run.outputs["digest"] == history.a.digest and run.outputs["changed"] == "true"
    assert history.tags() == before
    assert history.digest("production") == history.b.digest
    assert "dry run: nothing written" in run.summary


@pytest.mark.registry
def test_rollback_to_a_tag_then_rerun_is_a_no_op(tmp_path: Path, history: History) -> None:
    inputs = {"command": "rollback", "image": history.image, "rollback-to": history.tag_a}
    first = action(tmp_path / "rb1", inputs)
    assert first.status == 0, first.log
    tags = history.tags()
    second = action(tmp_path / "rb2", inputs)
    assert second.status == 0, second.log
    assert second.outputs["changed"] == "false" and second.outputs["tags"] == ""
    assert second.outputs["tag"] == first.outputs["tag"]
    assert history.tags() == tags


@pytest.mark.registry
def test_empty_history_is_refused_with_no_write(
    tmp_path: Path, registry: RegistryServer, repo_path: str
) -> None:
    seeder = registry.seeder()
    seeder.oci_image(repo_path, f"staging-{SHA_A[:7]}-{T_A}", revision=SHA_A)
    run = action(tmp_path / "rb", {"command": "rollback", "image": f"{registry.host}/{repo_path}"})
    assert run.status == 3
    assert len(run.errors) == 1 and "no production release to roll back" in run.errors[0]
    assert run.outputs == {}
    assert seeder.tags(repo_path) == [f"staging-{SHA_A[:7]}-{T_A}"]


@pytest.mark.parametrize(
    ("inputs", "match"),
    [
        ({"rollback-to": "production"}, "must be an immutable production-v"),
        ({"rollback-to": "staging-abc1234-1767000000"}, "must be an immutable"),
        ({"rollback-to": "sha256:zz"}, "digest"),
        ({"revert-commit": "true"}, "needs gitops-path"),
        ({"revert-commit": "true", "gitops-repo": "acme/gitops"}, "needs github-token"),
        ({"create-deployment": "true"}, "need github-token"),
        # promote-only records are refused, not silently ignored, with or without a deployment
        ({"git-tag": "true", "github-token": "ghs_x123456"}, "git-tag and release are for"),
        ({"release": "true", "github-token": "ghs_x123456"}, "git-tag and release are for"),
        ({"timestamp": "1767225600000"}, "milliseconds"),
    ],
)
def test_inputs_are_refused_before_any_network_call(
    tmp_path: Path, inputs: dict[str, str], match: str
) -> None:
    # port 9 on loopback: nothing listens, so any request would fail differently
    run = action(tmp_path, {"command": "rollback", "image": "127.0.0.1:9/acme/backend", **inputs})
    assert run.status == 2, run.log
    assert len(run.errors) == 1 and any(re.search(match, e) for e in run.errors), run.errors


# -- GitOps-first: revert the automation commit -------------------------------------------
def gitops_repo(tmp_path: Path, image: str, good: str, bad: str) -> tuple[Path, Path, str]:
    """A bare origin and a clone: policy + deployment at ``good``, then the automation's
    commit writing ``bad``. Returns (origin, clone, automation commit)."""
    seed = tmp_path / "seed"
    policy_dir = seed / "flux/bootstrap/image-automation"
    app = seed / "flux/apps/backend/production"
    policy_dir.mkdir(parents=True)
    app.mkdir(parents=True)
    (policy_dir / "image-policy.yaml").write_text(POLICY)
    deployment = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: backend\nspec:\n"
    deployment += "  template:\n    spec:\n      containers:\n        - name: backend\n"
    (app / "deployment.yaml").write_text(deployment + f"          image: {image}:{good} {MARK}\n")
    init_repo(seed, message="Bootstrap")
    text = (app / "deployment.yaml").read_text().replace(good, bad)
    (app / "deployment.yaml").write_text(text)
    bad_commit = commit_all(
        seed, f"Update from image update automation\n\n- {image}:{bad}\n", author=FLUXBOT
    )
    origin = tmp_path / "origin.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(seed), str(origin)], check=True)
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(origin), str(clone)], check=True)
    return origin, clone, bad_commit


@pytest.mark.registry
def test_revert_commit_in_a_gitops_checkout(tmp_path: Path, history: History) -> None:
    origin, clone, bad_commit = gitops_repo(
        tmp_path / "git", history.image, history.tag_a, history.tag_b
    )
    run = action(
        tmp_path / "rb",
        {
            "command": "rollback",
            "image": history.image,
            "revert-commit": "true",
            "gitops-path": str(clone),
            "policy": "flux-system:backend-production",
        },
    )
    assert run.status == 0, run.log
    assert history.digest("production") == history.a.digest
    head = git(origin, "rev-parse", "HEAD").strip()
    assert git(origin, "rev-parse", "HEAD^").strip() == bad_commit
    text = git(origin, "show", "HEAD:flux/apps/backend/production/deployment.yaml")
    assert f"{history.image}:{history.tag_a} {MARK}" in text
    message = git(origin, "log", "-1", "--format=%B")
    assert f"This reverts commit {bad_commit}." in message
    assert run.outputs["reverted-commit"] == bad_commit
    assert run.outputs["tag"] in message  # names the tag the automation will write next
    assert "GitOps revert" in run.summary and head[:12] in run.summary
    assert "ImagePolicy flux-system:backend-production" in run.summary


@pytest.fixture
def github(tmp_path: Path) -> Iterator[tuple[GitHubServer, Path]]:
    service = tmp_path / "service"
    service.mkdir()
    (service / "app.py").write_text("a\n")
    init_repo(service, message="feat: A")
    assert github_records.DOCS
    with GitHubServer(token=TOKEN) as server:
        server.add_repo("acme/backend", service)
        yield server, service


@pytest.mark.registry
def test_rollback_records_a_deployment_marked_as_rollback(
    tmp_path: Path, history: History, github: tuple[GitHubServer, Path]
) -> None:
    server, service = github
    sha = git(service, "rev-parse", "HEAD").strip()
    run = action(
        tmp_path / "rb",
        {
            "command": "rollback",
            "image": history.image,
            "create-deployment": "true",
            "github-token": TOKEN,
            "environment-url": "https://backend.acme.test",
        },
        {
            "GITHUB_API_URL": server.url,
            "GITHUB_REPOSITORY": "acme/backend",
            "GITHUB_SERVER_URL": "https://github.com",
            "GITHUB_RUN_ID": "77",
            "PROMOTE_GITHUB_THROTTLE": "false",
        },
    )
    # the short sha of image A's commit is unknown to this repository: clear error, no write
    assert run.status == 1
    assert "resolve commit a1b2c3d" in run.errors[0] and "HTTP 422" in run.errors[0]
    assert history.digest("production") == history.b.digest
    # with the service commit given explicitly, the deployment is recorded
    run = action(
        tmp_path / "rb2",
        {
            "command": "rollback",
            "image": history.image,
            "create-deployment": "true",
            "github-token": TOKEN,
            "environment-url": "https://backend.acme.test",
            "commit-sha": sha,
        },
        {
            "GITHUB_API_URL": server.url,
            "GITHUB_REPOSITORY": "acme/backend",
            "GITHUB_SERVER_URL": "https://github.com",
            "GITHUB_RUN_ID": "77",
            "PROMOTE_GITHUB_THROTTLE": "false",
        },
    )
    assert run.status == 0, run.log
    (dep,) = server.repos["acme/backend"].extra["deployments"]
    assert run.outputs["deployment-id"] == str(dep["id"])
    assert json.loads(run.outputs["metadata"])["deployment-id"] == str(dep["id"])
    assert dep["sha"] == sha and dep["environment"] == "production"
    payload = dep["_request"]["payload"]
    assert payload["rollback"] is True
    assert payload["digest"] == history.a.digest
    assert payload["previous_digest"] == history.b.digest
    assert [s["state"] for s in dep["_statuses"]] == ["in_progress", "success"]
    assert dep["_statuses"][0]["log_url"] == "https://github.com/acme/backend/actions/runs/77"
    assert TOKEN not in run.log.replace(f"::add-mask::{TOKEN}", "")


@pytest.mark.registry
def test_failed_revert_marks_the_deployment_failed_after_the_registry_rollback(
    tmp_path: Path, history: History, github: tuple[GitHubServer, Path]
) -> None:
    server, service = github
    _, clone, _ = gitops_repo(tmp_path / "git", history.image, history.tag_a, history.tag_b)
    (clone / "flux/apps/backend/production/deployment.yaml").write_text("dirty\n")
    run = action(
        tmp_path / "rb",
        {
            "command": "rollback",
            "image": history.image,
            "revert-commit": "true",
            "gitops-path": str(clone),
            "policy": "flux-system:backend-production",
            "create-deployment": "true",
            "github-token": TOKEN,
            "commit-sha": git(service, "rev-parse", "HEAD").strip(),
        },
        {
            "GITHUB_API_URL": server.url,
            "GITHUB_REPOSITORY": "acme/backend",
            "PROMOTE_GITHUB_THROTTLE": "false",
        },
    )
    assert run.status == 1
    assert "registry rollback is done" in run.errors[0] and "uncommitted changes" in run.errors[0]
    assert history.digest("production") == history.a.digest
    (dep,) = server.repos["acme/backend"].extra["deployments"]
    assert [s["state"] for s in dep["_statuses"]] == ["in_progress", "failure"]


@pytest.mark.registry
def test_dry_run_with_revert_names_the_commit_and_changes_nothing(
    tmp_path: Path, history: History
) -> None:
    origin, clone, bad_commit = gitops_repo(
        tmp_path / "git", history.image, history.tag_a, history.tag_b
    )
    before = git(origin, "rev-parse", "HEAD").strip()
    run = action(
        tmp_path / "rb",
        {
            "command": "rollback",
            "image": history.image,
            "dry-run": "true",
            "revert-commit": "true",
            "gitops-path": str(clone),
            "policy": "flux-system:backend-production",
        },
    )
    assert run.status == 0, run.log
    assert f"dry run: would revert {bad_commit[:12]}" in run.log
    # nothing was reverted, so nothing is reported as reverted
    assert "reverted-commit" not in run.outputs
    assert f"would revert `{bad_commit[:12]}` (dry run)" in run.summary
    assert git(origin, "rev-parse", "HEAD").strip() == before
    assert git(clone, "rev-parse", "HEAD").strip() == before
    assert history.digest("production") == history.b.digest


@pytest.mark.registry
def test_revert_commit_through_the_github_api(
    tmp_path: Path, history: History, github: tuple[GitHubServer, Path]
) -> None:
    server, _ = github
    origin, _, bad_commit = gitops_repo(
        tmp_path / "git", history.image, history.tag_a, history.tag_b
    )
    server.add_repo("acme/gitops", origin)
    run = action(
        tmp_path / "rb",
        {
            "command": "rollback",
            "image": history.image,
            "revert-commit": "true",
            "gitops-repo": "acme/gitops",
            "gitops-ref": "main",
            "policy": "flux-system:backend-production",
            "github-token": TOKEN,
            "username": "unused",
            "password": "unused-password",
        },
        {"GITHUB_API_URL": server.url, "PROMOTE_GITHUB_THROTTLE": "false"},
    )
    assert run.status == 0, run.log
    assert history.digest("production") == history.a.digest
    assert git(origin, "rev-parse", "main^").strip() == bad_commit
    text = git(origin, "show", "main:flux/apps/backend/production/deployment.yaml")
    assert f"{history.image}:{history.tag_a} {MARK}" in text
    assert server.count("PATCH", "/repos/acme/gitops/git/refs/heads/main", status=200) == 1


@pytest.mark.registry
def test_half_done_rollback_names_the_rerun_that_completes_it(
    tmp_path: Path, history: History
) -> None:
    """The floating-tag PUT is refused: exit 5, and the suggested re-run completes it."""
    from testkit.proxy import Fault, FaultProxy

    with FaultProxy(history.server.url) as proxy:
        proxy.add(Fault.status(403), method="PUT", path=r"/manifests/production$", always=True)
        run = action(
            tmp_path / "rb1", {"command": "rollback", "image": f"{proxy.host}/{history.repo}"}
        )
    assert run.status == 5, run.log
    (error,) = run.errors
    assert f"re-run with rollback-to: {history.a.digest}" in error
    assert history.digest("production") == history.b.digest  # not moved
    written = [
        t for t in history.tags() if t.startswith("production-v2.0.0-") and t != history.tag_a
    ]
    assert len(written) == 1 and history.digest(written[0]) == history.a.digest
    rerun = action(
        tmp_path / "rb2",
        {"command": "rollback", "image": history.image, "rollback-to": history.a.digest},
    )
    assert rerun.status == 0, rerun.log
    assert rerun.outputs["tags"] == f"{history.image}:production"
    assert rerun.outputs["tag"] == written[0]
    assert history.digest("production") == history.a.digest


@pytest.mark.registry
def test_rerun_of_a_half_done_rollback_never_reverts_the_rollback_itself(
    tmp_path: Path, history: History
) -> None:
    """The re-run after a partial rollback finds the rollback tag current: with
    revert-commit it must not revert the automation commit that deployed that very tag
    (that would put the bad release back in Git)."""
    from testkit.proxy import Fault, FaultProxy

    origin, clone, _bad_commit = gitops_repo(
        tmp_path / "git", history.image, history.tag_a, history.tag_b
    )
    inputs = {
        "command": "rollback",
        "revert-commit": "true",
        "gitops-path": str(clone),
        "policy": "flux-system:backend-production",
    }
    with FaultProxy(history.server.url) as proxy:
        proxy.add(Fault.status(403), method="PUT", path=r"/manifests/production$", always=True)
        first = action(tmp_path / "rb1", {**inputs, "image": f"{proxy.host}/{history.repo}"})
    assert first.status == 5, first.log
    (rollback_tag,) = [
        t for t in history.tags() if t.startswith("production-v2.0.0-") and t != history.tag_a
    ]
    # Flux selects the rollback tag; its image automation commits it to the GitOps repo.
    other = tmp_path / "automation"
    subprocess.run(["git", "clone", "-q", str(origin), str(other)], check=True)
    dep = other / "flux/apps/backend/production/deployment.yaml"
    dep.write_text(dep.read_text().replace(history.tag_b, rollback_tag))
    automation = commit_all(
        other, f"Update from image update automation\n\n- {rollback_tag}\n", author=FLUXBOT
    )
    git(other, "push", "-q", "origin", "HEAD")
    rerun = action(
        tmp_path / "rb2",
        {**inputs, "image": history.image, "rollback-to": history.a.digest},
    )
    assert rerun.status == 0, rerun.log
    assert history.digest("production") == history.a.digest
    assert git(origin, "rev-parse", "HEAD").strip() == automation  # nothing reverted
    text = git(origin, "show", "HEAD:flux/apps/backend/production/deployment.yaml")
    assert rollback_tag in text and history.tag_b not in text
    assert "reverted-commit" not in rerun.outputs


@pytest.mark.registry
def test_revert_whose_branch_update_answer_is_lost_says_the_registry_rollback_is_done(
    tmp_path: Path, history: History, github: tuple[GitHubServer, Path]
) -> None:
    """The PATCH of the branch is applied but its answer is unusable (conflicting
    Content-Length, as from a broken proxy): one GitOps error
    that says the registry rollback is complete and that the branch may have moved — not
    an internal error."""
    from testkit.github_server import Request, Response

    server, _ = github
    origin, _, _bad_commit = gitops_repo(
        tmp_path / "git", history.image, history.tag_a, history.tag_b
    )
    server.add_repo("acme/gitops", origin)

    def truncated(req: Request) -> Response:
        done = github_records.update_ref(req)
        return Response(done.status, done.body, {"Content-Length": "999999"})

    server.add_route(
        "PATCH", r"/repos/(?P<owner>[^/]+)/(?P<repo>[^/]+)/git/refs/(?P<ref>.+)", truncated
    )
    run = action(
        tmp_path / "rb",
        {
            "command": "rollback",
            "image": history.image,
            "revert-commit": "true",
            "gitops-repo": "acme/gitops",
            "gitops-ref": "main",
            "policy": "flux-system:backend-production",
            "github-token": TOKEN,
        },
        {"GITHUB_API_URL": server.url, "PROMOTE_GITHUB_THROTTLE": "false"},
    )
    assert run.status != 0 and run.status != 70, run.log
    (error,) = run.errors
    assert "internal error" not in error
    assert "registry rollback is done" in error and "may or may not have moved" in error
    assert history.digest("production") == history.a.digest


# -- a revert that cannot be pushed; a dry run never reports a revert as done ---------------
def _rollback_without_upstream(
    tmp_path: Path, history: History, **extra: str
) -> tuple[Path, Path, str, Run]:
    origin, clone, bad_commit = gitops_repo(
        tmp_path / "git", history.image, history.tag_a, history.tag_b
    )
    git(clone, "branch", "--unset-upstream")
    inputs = {
        "command": "rollback",
        "image": history.image,
        "revert-commit": "true",
        "gitops-path": str(clone),
        "policy": "flux-system:backend-production",
        **extra,
    }
    return origin, clone, bad_commit, action(tmp_path / "rb", inputs)


@pytest.mark.registry
def test_revert_in_a_checkout_without_upstream_is_refused_before_anything_is_written(
    tmp_path: Path, history: History
) -> None:
    origin, clone, bad_commit, run = _rollback_without_upstream(tmp_path, history)
    assert run.status != 0
    assert len(run.errors) == 1, run.log
    assert "could not be pushed" in run.errors[0] and "revert-local" in run.errors[0]
    assert history.digest("production") == history.b.digest  # registry untouched
    assert git(clone, "rev-parse", "HEAD").strip() == bad_commit
    assert git(origin, "rev-parse", "HEAD").strip() == bad_commit


@pytest.mark.registry
def test_revert_local_commits_in_the_checkout_and_warns_that_it_is_not_pushed(
    tmp_path: Path, history: History
) -> None:
    origin, clone, bad_commit, run = _rollback_without_upstream(
        tmp_path, history, **{"revert-local": "true"}
    )
    assert run.status == 0, run.log
    assert git(clone, "rev-parse", "HEAD^").strip() == bad_commit
    assert git(origin, "rev-parse", "HEAD").strip() == bad_commit  # nothing pushed
    warnings = [ln for ln in run.log.splitlines() if ln.startswith("::warning")]
    assert any("NOT pushed" in w for w in warnings), run.log
    assert "local only, not pushed" in run.summary


def test_the_tags_a_revert_puts_back_are_read_with_the_tag_grammar() -> None:
    """The reverted lines' tags are found by naming's parser (no regex of its own): an
    image reference, a setter's tag field, quoted or not; never a digest, a build tag or a
    near-miss of the grammar."""
    from promote.frontdoor.commands.rollback_cmd import _put_back

    old = "production-v1.4.2-1111111-1766000000"
    other = "production-v1.4.3-2222222-1766500000"
    lines = [
        f'image: ghcr.io/acme/backend:{old} # {{"$imagepolicy": "flux-system:backend"}}',
        f'  tag: "{other}" # {{"$imagepolicy": "flux-system:backend:tag"}}',
        f"  - {old}",
        "image: ghcr.io/acme/backend@sha256:" + "a" * 64,
        "image: ghcr.io/acme/backend:staging-abc1234-1767000000",
        "tag: production-v1.4-1111111-1766000000",
        "tag: staging-v1.4.2-1111111-1766000000",
    ]
    assert _put_back("production", lines) == [old, other]
    assert _put_back("staging", lines) == ["staging-v1.4.2-1111111-1766000000"]
