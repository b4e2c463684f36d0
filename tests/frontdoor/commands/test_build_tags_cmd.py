from __future__ import annotations

import json
from pathlib import Path

import pytest

from testkit.engine import engine as run_action

SHA = "0123456789abcdef0123456789abcdef01234567"
ENV = {
    "GITHUB_SHA": SHA,
    "GITHUB_SERVER_URL": "https://github.com",
    "GITHUB_REPOSITORY": "acme/backend",
}


@pytest.mark.parametrize(("branch", "env"), [("develop", "develop"), ("main", "staging")])
def test_branch_maps_to_env(tmp_path: Path, branch: str, env: str) -> None:
    run = run_action(
        tmp_path,
        {
            "command": "build-tags",
            "branch": branch,
            "image": "ghcr.io/acme/backend",
            "timestamp": "1767225600",
        },
        ENV,
    )
    assert run.status == 0, run.log
    assert run.outputs["tag"] == f"{env}-0123456-1767225600"
    assert run.outputs["tags"] == f"ghcr.io/acme/backend:{env}-0123456-1767225600"
    assert run.outputs["env"] == env
    labels = dict(line.split("=", 1) for line in run.outputs["labels"].splitlines())
    assert labels == {
        "org.opencontainers.image.revision": SHA,
        "org.opencontainers.image.created": "2026-01-01T00:00:00Z",
        "org.opencontainers.image.version": f"{env}-0123456-1767225600",
        "org.opencontainers.image.source": "https://github.com/acme/backend",
    }
    assert run.outputs["annotations"] == run.outputs["labels"]
    assert json.loads(run.outputs["json"])["tag"] == run.outputs["tag"]


def test_custom_branch_map_and_clock(tmp_path: Path) -> None:
    run = run_action(
        tmp_path,
        {
            "command": "build-tags",
            "branch": "release",
            "branch-map": "release=staging\nmain=staging",
            "commit-sha": "ABCDEF1234",
        },
        {},
    )
    assert run.status == 0, run.log
    env, sha, ts = run.outputs["tag"].split("-")
    assert (env, sha) == ("staging", "abcdef1")
    assert 1_700_000_000 < int(ts) < 9_999_999_999


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        ({"branch": "feature/x"}, "has no environment"),
        ({"env": "production"}, "come only from promotion"),
        ({"branch": "main", "branch-map": "main=production"}, "come only from promotion"),
        ({"env": "staging", "commit-sha": "not-a-sha"}, "hexadecimal"),
        ({"env": "staging", "timestamp": "1767225600000"}, "milliseconds"),
        ({"env": "staging", "timestamp": "yesterday"}, "digits only"),
        ({"env": "Staging"}, "lower-case"),
        ({"env": "staging", "image": "ghcr.io/acme/backend:latest"}, "tag"),
    ],
)
def test_bad_input_one_error_no_outputs(
    tmp_path: Path, inputs: dict[str, str], message: str
) -> None:
    run = run_action(tmp_path, {"command": "build-tags", **inputs}, ENV)
    assert run.status != 0
    assert len(run.errors) == 1 and message in run.errors[0], run.log
    assert run.outputs == {}
    assert "Traceback" not in run.log


def test_off_a_runner_head_and_the_checked_out_branch_are_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from testkit.github_server import git, init_repo

    checkout = tmp_path / "service"
    checkout.mkdir()
    (checkout / "app.py").write_text("print('hi')\n")
    head = init_repo(checkout, branch="main")
    monkeypatch.chdir(checkout)
    run = run_action(tmp_path, {"command": "build-tags", "timestamp": "1767225600"}, {})
    assert run.status == 0, run.log
    assert run.outputs["tag"] == f"staging-{head[:7]}-1767225600"
    assert f"org.opencontainers.image.revision={head}" in run.outputs["labels"]

    git(checkout, "checkout", "-q", "-b", "develop")
    run = run_action(tmp_path, {"command": "build-tags", "timestamp": "1767225600"}, {})
    assert run.outputs["tag"] == f"develop-{head[:7]}-1767225600"

    git(checkout, "checkout", "-q", "--detach")
    run = run_action(tmp_path, {"command": "build-tags"}, {})
    assert run.status == 2
    assert "no branch is checked out here" in run.errors[0]


def test_outside_any_checkout_commit_sha_is_asked_for(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
    run = run_action(tmp_path, {"command": "build-tags", "env": "develop"}, {})
    assert run.status == 2
    assert "commit-sha is required" in run.errors[0]
