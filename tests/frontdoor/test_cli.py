"""The ``promote`` console script against a real registry: same engine as the action."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from promote.frontdoor import cli
from testkit.registry import RegistryServer

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
    outputs = json.loads(out)  # stdout is exactly one JSON object
    assert outputs["digest"] == seeded.digest and outputs["changed"] == "true"
    assert seeder.tags(repo_path) == [SOURCE]  # dry run: nothing written

    # On a runner the masks are still announced first (the runner hides them).
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    assert cli.main(argv) == 0
    out, err = capsys.readouterr()
    assert err.startswith(f"::add-mask::{basic_registry.password}\n")
    assert json.loads(out)["digest"] == seeded.digest
    assert seeder.tags(repo_path) == [SOURCE]


EXAMPLE = str(Path(__file__).resolve().parents[2] / "examples" / "gitops")


def test_json_is_one_object_on_stdout_and_a_failed_command_still_prints_its_outputs(
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = [
        "verify-flux",
        "--gitops-path",
        EXAMPLE,
        "--policy",
        "flux-system:backend-production",
        "--expected-tag",
        "production-v9.9.9-abcdef1-1999999999",
        "--json",
    ]
    assert cli.main(argv) == 1
    out, err = capsys.readouterr()
    outputs = json.loads(out)
    assert outputs["synced"] == "false"
    assert outputs["files"] == "flux/apps/backend/production/deployment.yaml"
    assert "::error" in err and "::error" not in out

    assert cli.main(argv[:-1]) == 1
    out, _ = capsys.readouterr()
    assert "synced=false\n" in out.splitlines(keepends=True)


def test_a_command_error_with_json_still_prints_one_object(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert cli.main(["verify-flux", "--json"]) == 2
    out, err = capsys.readouterr()
    assert json.loads(out) == {}
    assert "policy" in err


def test_per_command_help_lists_that_commands_flags(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli.main(["check", "--help"])
    assert exit_.value.code == 0
    out, _ = capsys.readouterr()
    assert out.startswith("usage: promote check ")
    assert "--gitops-path" in out and "--source-tag" not in out
    assert "required check" in out
    with pytest.raises(SystemExit):
        cli.main(["automate", "-h"])
    out, _ = capsys.readouterr()
    assert "--gitops-path" in out and "--rollback-to" not in out


@pytest.mark.parametrize(
    "argv",
    [
        ["automate", "--json", "--bogus", "1"],  # an unknown flag
        ["--json"],  # no command
        ["nonsense", "--json"],  # an unknown command
        ["check", "--json", "--gitops-path"],  # a flag without its value
    ],
)
def test_a_usage_error_with_json_is_one_object_and_one_error_line(
    capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli.main(argv)
    assert exit_.value.code == 2
    out, err = capsys.readouterr()
    assert json.loads(out) == {}
    errors = [line for line in err.splitlines() if line.startswith("::error::")]
    assert len(errors) == 1, err
    assert "Traceback" not in err


def test_a_usage_error_without_json_prints_nothing_on_stdout(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli.main(["automate", "--bogus", "1"])
    assert exit_.value.code == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("::error::") == 1 and "--bogus" in err
    assert "promote automate --help" in err


def test_outputs_printed_by_the_cli_never_carry_a_workflow_command(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Outputs are outside text too (here: file names from the GitOps repository): what
    the CLI prints on a runner must not hold ``##[`` (the legacy command the runner parses
    anywhere in a line) nor a line starting ``::``; the JSON still parses to the values."""
    import shutil

    gitops = tmp_path / "gitops"
    shutil.copytree(EXAMPLE, gitops)
    folder = gitops / "flux" / "apps" / "backend" / "production"
    forged = "##[warning]forged.yaml"
    shutil.copy(folder / "deployment.yaml", folder / forged)
    argv = [
        "verify-flux",
        "--gitops-path",
        str(gitops),
        "--policy",
        "flux-system:backend-production",
        "--expected-tag",
        "production-v1.4.2-3f9c2ab-1764100000",
    ]
    cli.main(argv)
    out, _ = capsys.readouterr()
    assert "flux/apps/backend/production/" in out
    assert "##[" not in out
    assert not [ln for ln in out.splitlines() if ln.lstrip().startswith("::")]

    cli.main([*argv, "--json"])
    out, _ = capsys.readouterr()
    assert "##[" not in out
    assert f"flux/apps/backend/production/{forged}" in json.loads(out)["files"].splitlines()
