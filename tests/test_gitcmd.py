from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from promote.errors import GitOpsError
from promote.gitcmd import run_git


def test_runs_git_and_returns_its_output(tmp_path: Path) -> None:
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    proc = run_git(tmp_path, "rev-parse", "--git-dir", purpose="test")
    assert proc.stdout.strip() == b".git"


def test_failure_is_one_gitops_error_with_git_s_last_line(tmp_path: Path) -> None:
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    with pytest.raises(GitOpsError, match=r"git rev-parse failed in .*: fatal: .*") as info:
        run_git(tmp_path, "rev-parse", "--verify", "no-such-ref", purpose="test")
    assert "\n" not in str(info.value)
    assert run_git(tmp_path, "rev-parse", "--verify", "x", purpose="t", check=False).returncode


def test_missing_git_names_what_it_was_needed_for(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no git on this PATH
    with pytest.raises(GitOpsError, match="git is not installed; it is needed to read gitops-ref"):
        run_git(tmp_path, "status", purpose="read gitops-ref")


def test_never_prompts_when_given_the_action_environment(tmp_path: Path) -> None:
    """With the action's environment, git runs with GIT_TERMINAL_PROMPT=0 (no password
    prompt can hang a promotion) and the C locale (messages we can quote)."""
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    proc = run_git(
        tmp_path, "-c", "alias.envp=!env", "envp", purpose="t", env={"PATH": "/usr/bin:/bin"}
    )
    seen = proc.stdout.decode().splitlines()
    assert "GIT_TERMINAL_PROMPT=0" in seen and "LC_ALL=C" in seen
