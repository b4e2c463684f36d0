"""Fixtures shared by the command tests (test modules may override them)."""

from __future__ import annotations

from typing import Any

import pytest

import promote.frontdoor.registry_settings as registry_settings
from testkit.registry import RegistryServer
from tests.frontdoor.commands.records import Repo


@pytest.fixture
def clients(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every RegistryClient a command builds (to read its request stats)."""
    built: list[Any] = []
    original = registry_settings.registry_client

    def keep(ctx: Any, repository: Any) -> Any:
        client = original(ctx, repository)
        built.append(client)
        return client

    monkeypatch.setattr(registry_settings, "registry_client", keep)
    return built


@pytest.fixture
def repo(registry: RegistryServer, repo_path: str) -> Repo:
    """A fresh repository on the module's registry, with its seeder."""
    return Repo(registry, repo_path)
