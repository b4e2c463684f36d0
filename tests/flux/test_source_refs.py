"""gitops-ref reaches git arguments and GitHub API paths: only safe ref names pass."""

from __future__ import annotations

from pathlib import Path

import pytest

from promote.errors import InputError
from promote.flux.source import validate_git_ref
from testkit.engine import engine as run_action
from testkit.registry import free_port


@pytest.mark.parametrize(
    "ref", ["main", "origin/main", "refs/heads/main", "v1.2.3", "release/2026-11", "a" * 40, ""]
)
def test_accepts_branch_tag_and_sha_names(ref: str) -> None:
    assert validate_git_ref(ref) == ref


@pytest.mark.parametrize(
    "ref",
    ["../x", "a..b", "-x", "/x", "x/", "x.lock", "a//b", "x@{1}", "a~1", "a^", "a:b", "x.", "a?b"],
)
def test_refuses_what_git_or_a_path_would_misread(ref: str) -> None:
    with pytest.raises(InputError, match="not a valid branch"):
        validate_git_ref(ref)


@pytest.mark.parametrize("command", ["verify-flux", "rollback"])
def test_refused_before_any_request(tmp_path: Path, command: str) -> None:
    closed = f"http://127.0.0.1:{free_port()}"  # nothing listens: a request would fail differently
    inputs = {
        "command": command,
        "gitops-repo": "acme/gitops",
        "gitops-ref": "../../repos/other/x",
        "policy": "flux-system:backend-production",
        "expected-tag": "production-v1.0.0-abcdef0-1767225600",
        "github-token": "ghs_sentinel0123456789",
        "image": "127.0.0.1:5999/acme/backend",
    }
    if command == "rollback":
        inputs = {k: v for k, v in inputs.items() if k != "expected-tag"} | {
            "revert-commit": "true"
        }
    run = run_action(tmp_path, inputs, {"GITHUB_API_URL": closed})
    assert run.status == 2, run.log
    assert len(run.errors) == 1 and "gitops-ref" in run.errors[0], run.log
