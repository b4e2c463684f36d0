"""``command: check`` through the action engine: annotations, outputs, summary, exit status."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from testkit.engine import engine as run_action

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "gitops"
PROD_DEPLOY = "flux/apps/backend/production/deployment.yaml"
PROD_TAG = "production-v1.4.2-3f9c2ab-1764100000"


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    ws = tmp_path / "workspace"
    shutil.copytree(EXAMPLE, ws / "gitops")
    return ws


def test_example_passes(tmp_path: Path) -> None:
    run = run_action(tmp_path, {"command": "check", "gitops-path": str(EXAMPLE)})
    assert run.status == 0, run.log
    assert run.outputs == {"errors": "0", "warnings": "0"}
    assert run.errors == []
    assert "GitOps check passed: 0 error(s), 0 warning(s)" in run.summary
    assert "| `flux-system:backend-production` | production | numerical asc |" in run.summary
    assert "6 ImagePolicy, 6 marker(s)" in run.log


def test_defaults_to_the_workspace(tmp_path: Path, workspace: Path) -> None:
    run = run_action(
        tmp_path, {"command": "check"}, env={"GITHUB_WORKSPACE": str(workspace / "gitops")}
    )
    assert run.status == 0, run.log
    assert run.outputs["errors"] == "0"


def test_defaults_to_the_current_directory(
    tmp_path: Path, workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(workspace / "gitops")
    run = run_action(tmp_path, {"command": "check"})
    assert run.status == 0, run.log
    assert "6 ImagePolicy" in run.log


def test_errors_are_annotations_relative_to_the_workspace(tmp_path: Path, workspace: Path) -> None:
    deploy = workspace / "gitops" / PROD_DEPLOY
    deploy.write_text(deploy.read_text().replace(PROD_TAG, "latest"))
    run = run_action(
        tmp_path,
        {"command": "check", "gitops-path": "gitops"},
        env={"GITHUB_WORKSPACE": str(workspace)},
    )
    assert run.status == 1
    assert run.errors[0].startswith(
        f"::error file=gitops/{PROD_DEPLOY},line=20,title=image-latest::"
        "image ghcr.io/acme/backend:latest"
    )
    assert run.errors[-1] == "::error::GitOps check failed: 1 error(s), 0 warning(s)"
    assert run.outputs == {"errors": "1", "warnings": "0"}
    assert "GitOps check failed" in run.summary
    assert f"`gitops/{PROD_DEPLOY}:20`" in run.summary


def test_warnings_alone_pass(tmp_path: Path, workspace: Path) -> None:
    deploy = workspace / "gitops" / PROD_DEPLOY
    text = deploy.read_text()
    deploy.write_text(text.replace(' # {"$imagepolicy": "flux-system:backend-production"}', ""))
    run = run_action(tmp_path, {"command": "check", "gitops-path": str(workspace / "gitops")})
    assert run.status == 0, run.log
    assert run.outputs == {"errors": "0", "warnings": "1"}
    warnings = [ln for ln in run.log.splitlines() if ln.startswith("::warning")]
    assert warnings == [
        f"::warning file={PROD_DEPLOY},line=20,title=image-no-marker::image "
        f"ghcr.io/acme/backend:{PROD_TAG} (spec.template.spec.containers[0].image) has no "
        "setter marker; Flux will never update it"
    ]


def test_missing_directory_is_an_input_error(tmp_path: Path) -> None:
    run = run_action(tmp_path, {"command": "check", "gitops-path": str(tmp_path / "absent")})
    assert run.status == 2
    assert run.errors == [f"::error::gitops-path '{tmp_path / 'absent'}' is not a directory"]
    assert "Traceback" not in run.log
