"""Fixtures for the end-to-end tests: the action staged for act, service repos, act itself.

``action_stage`` (session): the project's action files copied for ``--local-repository``
with only the Dockerfile's base image substituted (see :mod:`testkit.docker`);
``local_repositories`` maps ``acme/promote@<pinned sha>`` to it, for the action and for the
reusable workflows. ``service_repo(workflow_files)`` makes a git repository (origin
``acme/backend``) holding the given workflows. ``act(repo, event, workflow, ...)`` runs
act there and returns an :class:`~testkit.docker.ActResult`, failing the test if the run left
a job container behind.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from testkit import docker as d


@pytest.fixture(scope="session")
def e2e_base() -> str:
    """The base image (local debootstrap image, built once per machine)."""
    try:
        return d.base_image()
    except d.DockerError as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture(scope="session")
def action_stage(e2e_base: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return d.stage_action_repo(tmp_path_factory.mktemp("acme-promote"), e2e_base)


@pytest.fixture(scope="session")
def local_repositories(action_stage: Path) -> dict[str, Path]:
    return {f"{d.ACTION_REPOSITORY}@{d.action_ref()}": action_stage}


ServiceRepo = Callable[[Mapping[str, str]], Path]


@pytest.fixture
def service_repo(tmp_path: Path) -> ServiceRepo:
    """``service_repo({"promote.yml": text})``: a committed git repo with those workflows."""

    def make(workflows: Mapping[str, str]) -> Path:
        repo = tmp_path / "service"
        wf_dir = repo / ".github" / "workflows"
        wf_dir.mkdir(parents=True)
        for name, text in workflows.items():
            (wf_dir / name).write_text(text, encoding="utf-8")
        (repo / "README.md").write_text("backend\n", encoding="utf-8")
        git = ["git", "-c", "user.name=e2e", "-c", "user.email=e2e@example.invalid"]
        for cmd in (
            ["init", "-q", "-b", "main"],
            ["remote", "add", "origin", "https://github.com/acme/backend.git"],
            ["add", "."],
            ["commit", "-q", "-m", "service"],
        ):
            subprocess.run([*git, *cmd], cwd=repo, check=True, capture_output=True)
        return repo

    return make


ActRunner = Callable[..., d.ActResult]


@pytest.fixture
def act(tmp_path: Path, local_repositories: dict[str, Path], e2e_base: str) -> ActRunner:
    """``act(repo, event, workflow, inputs=..., secrets=..., env=...)`` with the mapping."""

    def run(repo: Path, event: str, workflow: str, **kwargs: Any) -> d.ActResult:
        kwargs.setdefault("local_repositories", local_repositories)
        result = d.run_act(repo, event, workflow=workflow, home=tmp_path / "act-home", **kwargs)
        assert result.left_containers == (), f"act left containers: {result.left_containers}"
        return result

    return run
