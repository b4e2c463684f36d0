"""promote/frontdoor/registry_settings.py: the registry's credentials from the inputs and the
run's settings (``GITHUB_ACTOR`` reaches the registry adapter as a plain value)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from promote.frontdoor.actions import Runner
from promote.frontdoor.commands import Context
from promote.frontdoor.inputs import Inputs
from promote.frontdoor.registry_settings import resolve_credentials
from promote.reference import parse_repository
from promote.registry import Credentials


@pytest.mark.parametrize(
    ("actor", "user"), [("octo", "octo"), ("", "x-access-token")], ids=["actor", "no-actor"]
)
def test_ghcr_user_is_the_run_actor(tmp_path: Path, actor: str, user: str) -> None:
    env = {"HOME": str(tmp_path), "DOCKER_CONFIG": str(tmp_path / "none")}
    if actor:
        env["GITHUB_ACTOR"] = actor
    runner = Runner(out=io.StringIO())
    ctx = Context(inputs=Inputs({"github-token": "ghs_secret"}), runner=runner, env=env)
    creds = resolve_credentials(ctx, parse_repository("ghcr.io/acme/app"), prefix="")
    assert creds == Credentials(user, "ghs_secret")
    assert runner.redact("token ghs_secret") == "token ***"
