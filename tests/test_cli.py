"""The ``promote`` console script against a real registry: same engine as the action."""

from __future__ import annotations

import base64
import json

import pytest

from promote import cli
from tests.support.registry import RegistryServer

SOURCE = "staging-abcdef1-1700000000"


@pytest.mark.registry
def test_cli_dry_run_prints_the_plan_and_never_the_password(
    basic_registry: RegistryServer,
    repo_path: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Off a GitHub runner nobody consumes ``::add-mask::``: printing it would show the
    password (and its Basic header) in the terminal or another CI system's log."""
    seeder = basic_registry.seeder()
    seeded = seeder.oci_image(repo_path, SOURCE, revision="abcdef1234567")
    assert basic_registry.username and basic_registry.password
    for var in ("GITHUB_ACTIONS", "GITHUB_OUTPUT", "GITHUB_STEP_SUMMARY", "GITHUB_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("PROMOTE_USERNAME", basic_registry.username)
    monkeypatch.setenv("PROMOTE_PASSWORD", basic_registry.password)
    image = f"{basic_registry.host}/{repo_path}"
    argv = ["promote", "--image", image, "--source-tag", SOURCE, "--dry-run", "true", "--json"]
    status = cli.main(argv)
    out, err = capsys.readouterr()
    assert status == 0, out + err
    basic = base64.b64encode(
        f"{basic_registry.username}:{basic_registry.password}".encode()
    ).decode()
    for secret in (basic_registry.password, basic):
        assert secret not in out and secret not in err
    assert "::add-mask::" not in out
    outputs = json.loads(out[out.index("{\n") :])
    assert outputs["digest"] == seeded.digest and outputs["changed"] == "true"
    assert seeder.tags(repo_path) == [SOURCE]  # dry run: nothing written

    # On a runner the masks are still announced first (the runner hides them).
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    assert cli.main(argv) == 0
    out, _ = capsys.readouterr()
    assert out.startswith(f"::add-mask::{basic_registry.password}\n")
    assert seeder.tags(repo_path) == [SOURCE]
