"""``command: verify-flux`` end to end: real git repositories, the local GitHub REST server,
and a real registry for the prediction."""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from testkit.engine import engine as run_action
from testkit.github_server import GitHubServer, commit_all, git, init_repo
from testkit.registry import RegistryServer

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "gitops"
POLICY = "flux-system:backend-production"
DEPLOY = "flux/apps/backend/production/deployment.yaml"
OLD = "production-v1.4.2-3f9c2ab-1764100000"
NEW = "production-v1.5.0-9d8e7f6-1764200000"
TOKEN = "ghs_verifyflux0123456789abcdef"


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "gitops"
    shutil.copytree(EXAMPLE, root)
    init_repo(root)
    return root


def automation_commit(root: Path) -> str:
    path = root / DEPLOY
    path.write_text(path.read_text().replace(OLD, NEW))
    return commit_all(
        root,
        "Update from image update automation",
        author=("fluxcdbot", "fluxcdbot@users.noreply.github.com"),
    )


class Later:
    """Run the automation's commit on a thread after ``delay`` seconds (and, if given, once
    ``ready()`` is true: e.g. after the poller got its first 304)."""

    def __init__(self, root: Path, delay: float, ready: Callable[[], bool] = lambda: True) -> None:
        self.sha = ""
        self.thread = threading.Thread(target=self._run, args=(root, delay, ready))
        self.thread.start()

    def _run(self, root: Path, delay: float, ready: Callable[[], bool]) -> None:
        time.sleep(delay)
        deadline = time.monotonic() + 15
        while not ready() and time.monotonic() < deadline:
            time.sleep(0.02)
        self.sha = automation_commit(root)

    def join(self) -> str:
        self.thread.join()
        return self.sha


def inputs(**extra: str) -> dict[str, str]:
    return {"command": "verify-flux", "policy": POLICY, **extra}


def test_already_synced_checkout(tmp_path: Path, repo: Path) -> None:
    initial = git(repo, "rev-parse", "HEAD").strip()
    run = run_action(tmp_path, inputs(**{"gitops-path": str(repo), "expected-tag": OLD}))
    assert run.status == 0, run.log
    assert run.outputs == {
        "synced": "true",
        "predicted-tag": "",
        "files": DEPLOY,
        "commit": initial,
    }
    assert "synced to" in run.summary and f"`{DEPLOY}:20`" in run.summary


def test_stale_checkout_fails_at_the_marker(tmp_path: Path, repo: Path) -> None:
    run = run_action(tmp_path, inputs(**{"gitops-path": str(repo), "expected-tag": NEW}))
    assert run.status == 1
    assert run.errors[0] == (
        f"::error file={DEPLOY},line=20::marker for {POLICY} carries {OLD}, not {NEW}"
    )
    assert run.errors[-1] == (
        f"::error::markers for {POLICY} do not carry {NEW}: {DEPLOY}:20 has {OLD}"
    )
    assert run.outputs["synced"] == "false"
    assert "**not synced**" in run.summary


def test_checkout_polls_until_the_automation_commits(tmp_path: Path, repo: Path) -> None:
    started = time.monotonic()
    later = Later(repo, 0.4)
    run = run_action(
        tmp_path, inputs(**{"gitops-path": str(repo), "expected-tag": NEW, "timeout": "20"})
    )
    sha = later.join()
    assert run.status == 0, run.log
    assert run.outputs["synced"] == "true"
    assert run.outputs["commit"] == sha
    assert time.monotonic() - started < 5
    assert "not on " + NEW in run.log  # it did wait at least once


@pytest.fixture
def github(repo: Path) -> Iterator[GitHubServer]:
    with GitHubServer(token=TOKEN) as server:
        server.add_repo("acme/gitops", repo)
        yield server


def test_api_polls_with_conditional_requests_until_the_commit_arrives(
    tmp_path: Path, repo: Path, github: GitHubServer
) -> None:
    ref_path = "/repos/acme/gitops/git/refs/heads/main"
    later = Later(repo, 0.0, ready=lambda: github.count("GET", ref_path, status=304) >= 1)
    run = run_action(
        tmp_path,
        inputs(
            **{
                "gitops-repo": "acme/gitops",
                "github-token": TOKEN,
                "expected-tag": NEW,
                "timeout": "20",
            }
        ),
        env={"GITHUB_API_URL": github.url},
    )
    sha = later.join()
    assert run.status == 0, run.log
    assert run.outputs == {"synced": "true", "predicted-tag": "", "files": DEPLOY, "commit": sha}
    not_modified = github.count("GET", ref_path, status=304)
    assert not_modified >= 1
    assert github.rate_used == len(github.requests) - not_modified
    assert f"{not_modified} of " in run.log and "304 Not Modified" in run.log
    # the token was masked and never printed
    assert all(TOKEN not in line for line in run.log.splitlines() if "add-mask" not in line)


def test_api_with_a_bad_token_fails_cleanly(
    tmp_path: Path, repo: Path, github: GitHubServer
) -> None:
    run = run_action(
        tmp_path,
        inputs(
            **{
                "gitops-repo": "acme/gitops",
                "github-token": "ghs_wrong_token_1234",
                "expected-tag": OLD,
            }
        ),
        env={"GITHUB_API_URL": github.url},
    )
    assert run.status == 1
    assert run.errors == [
        "::error::GitHub API: cannot read the repository (acme/gitops): 401 Bad credentials; "
        "the github-token is missing or invalid"
    ]
    assert "Traceback" not in run.log and "ghs_wrong_token_1234" not in run.log.replace(
        "::add-mask::ghs_wrong_token_1234", ""
    )


@pytest.mark.parametrize(
    ("given", "message"),
    [
        (
            {"gitops-path": ".", "expected-tag": OLD, "policy": "backend-production"},
            "policy must be",
        ),
        ({"expected-tag": OLD}, "needs gitops-path or gitops-repo"),
        (
            {"expected-tag": OLD, "gitops-path": ".", "gitops-repo": "acme/gitops"},
            "not both",
        ),
        ({"expected-tag": OLD, "gitops-repo": "acme"}, "owner/name"),
        ({"expected-tag": OLD, "gitops-path": ".", "timeout": "soon"}, "whole number"),
        ({"expected-tag": "bad tag!", "gitops-path": "."}, "tag"),
    ],
)
def test_input_errors(tmp_path: Path, given: dict[str, str], message: str) -> None:
    run = run_action(tmp_path, {**inputs(), **given})
    assert run.status == 2, run.log
    assert message in run.errors[-1]


@pytest.mark.registry
def test_prediction_from_the_registry(
    tmp_path: Path, repo: Path, registry: RegistryServer, repo_path: str
) -> None:
    seeder = registry.seeder()
    seeder.oci_image(repo_path, OLD)
    for tag in (NEW, "production", "staging-9d8e7f6-1764190000", "latest"):
        seeder.tag(repo_path, OLD, tag)
    automation_commit(repo)
    image = f"{registry.host}/{repo_path}"
    ok = run_action(
        tmp_path, inputs(**{"gitops-path": str(repo), "expected-tag": NEW, "image": image})
    )
    assert ok.status == 0, ok.log
    assert ok.outputs["predicted-tag"] == NEW and ok.outputs["synced"] == "true"
    assert f"Predicted selection `{NEW}` (as expected)" in ok.summary
    # the registry read is not the image Flux watches: said, naming both
    assert any(
        f"image {image} is not the image the ImageRepository of {POLICY} watches "
        "(ghcr.io/acme/backend)" in line
        for line in ok.log.splitlines()
        if line.startswith("::warning")
    ), ok.log

    # a newer timestamp is already in the registry: Flux will pick it, so fail at once
    newer = "production-v1.4.3-1111111-1764300000"
    seeder.tag(repo_path, OLD, newer)
    started = time.monotonic()
    stale = run_action(
        tmp_path,
        inputs(**{"gitops-path": str(repo), "expected-tag": NEW, "image": image, "timeout": "60"}),
    )
    assert time.monotonic() - started < 10  # no polling: waiting cannot change the outcome
    assert stale.status == 1
    assert stale.outputs["predicted-tag"] == newer
    assert stale.errors[-1].startswith(f"::error::Flux would not select {NEW}: tag '{newer}'")
    assert "1764300000" in stale.errors[-1]

    missing = run_action(
        tmp_path,
        inputs(
            **{
                "gitops-path": str(repo),
                "expected-tag": "production-v2.0.0-2222222-1764400000",
                "image": image,
            }
        ),
    )
    assert missing.status == 1
    assert "is not in the registry" in missing.errors[-1]


@pytest.mark.parametrize(
    ("policy", "tag", "marker_file"),
    [
        (
            "flux-system:backend-develop",
            "develop-3f9c2ab-1764090000",
            "flux/apps/backend/develop/deployment.yaml",
        ),
        (
            "flux-system:frontend-staging",
            "staging-3f9c2ab-1764093600",
            "flux/apps/frontend/overlays/staging/kustomization.yaml",
        ),
        (
            "flux-system:frontend-production",
            OLD,
            "flux/apps/frontend/overlays/production/kustomization.yaml",
        ),
    ],
)
def test_every_environment_verifies(
    tmp_path: Path, repo: Path, policy: str, tag: str, marker_file: str
) -> None:
    """Issue 8 §3: verification for develop and staging as well as production."""
    run = run_action(
        tmp_path,
        {"command": "verify-flux", "policy": policy, "expected-tag": tag, "gitops-path": str(repo)},
    )
    assert run.status == 0, run.log
    assert run.outputs["files"] == marker_file
    assert run.outputs["commit"] == git(repo, "rev-parse", "HEAD").strip()
    other = run_action(
        tmp_path,
        {"command": "verify-flux", "policy": policy, "expected-tag": NEW, "gitops-path": str(repo)},
    )
    assert other.status == 1 and other.outputs["synced"] == "false"


def _set_marker_value(root: Path, value: str) -> None:
    path = root / DEPLOY
    text = path.read_text()
    old = f"ghcr.io/acme/backend:{OLD}"
    assert old in text
    path.write_text(text.replace(old, value))
    commit_all(root, "edit the marker")


def test_full_marker_must_carry_the_image_repository_image(tmp_path: Path, repo: Path) -> None:
    """Defect 8 of issue 17: a full marker holding another image counted as synced."""
    _set_marker_value(repo, f"docker.io/evil/other:{OLD}")
    run = run_action(tmp_path, inputs(**{"gitops-path": str(repo), "expected-tag": OLD}))
    assert run.status == 1, run.log
    assert run.outputs["synced"] == "false"
    assert "holds image 'docker.io/evil/other', not ghcr.io/acme/backend" in run.errors[-1]


def test_image_comparison_is_normalised_like_flux(tmp_path: Path, repo: Path) -> None:
    images = repo / "flux/bootstrap/infrastructure/image-automation/image-repositories.yaml"
    images.write_text(images.read_text().replace("image: ghcr.io/acme/backend", "image: nginx"))
    _set_marker_value(repo, f"index.docker.io/library/nginx:{OLD}")
    run = run_action(tmp_path, inputs(**{"gitops-path": str(repo), "expected-tag": OLD}))
    assert run.status == 0, run.log
    assert run.outputs["synced"] == "true"


def test_a_forged_marker_value_prints_no_workflow_command(tmp_path: Path, repo: Path) -> None:
    """Defect 7 of issue 17: a GitOps value with a newline and '::warning' reached the log
    as a line the runner turns into a real warning."""
    path = repo / DEPLOY
    text = path.read_text()
    forged = '"ghcr.io/acme/backend:old\\n::warning title=Approved::forged ##[error]x"'
    path.write_text(text.replace(f"ghcr.io/acme/backend:{OLD}", forged))
    commit_all(repo, "forge")
    run = run_action(tmp_path, inputs(**{"gitops-path": str(repo), "expected-tag": OLD}))
    assert run.status == 1, run.log
    assert "##[" not in run.log
    commands = [ln for ln in run.log.splitlines() if ln.strip().startswith("::")]
    assert commands and all(ln.startswith("::error") for ln in commands), commands
    assert not any("title=Approved" in ln.split("::")[1] for ln in commands)
