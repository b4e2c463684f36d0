"""Shared test set-up. Fixtures for real components live in testkit/fixtures.py."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

pytest_plugins = ["testkit.fixtures"]


@pytest.fixture(autouse=True)
def _clean_runner_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Tests never inherit the runner's inputs, outputs or credentials."""
    for key in list(os.environ):
        if key.startswith(("INPUT_", "GITHUB_", "RUNNER_", "ACTIONS_")) or key in {
            "DOCKER_CONFIG",
            "PROMOTE_PASSWORD",
            "PROMOTE_USERNAME",
        }:
            monkeypatch.delenv(key, raising=False)
    yield
