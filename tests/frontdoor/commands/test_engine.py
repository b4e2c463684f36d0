from __future__ import annotations

from pathlib import Path

import pytest

from testkit.engine import engine as run_action


def test_unknown_command_is_one_error_and_nonzero(tmp_path: Path) -> None:
    run = run_action(tmp_path, {"command": "deploy"})
    assert run.status == 2
    assert run.errors == [
        "::error::unknown command 'deploy'; expected one of "
        "promote, rollback, check, verify-flux, build-tags, automate, predict, trace"
    ]
    assert run.outputs == {}
    assert "Traceback" not in run.log


def test_secrets_are_masked_before_anything_else(tmp_path: Path) -> None:
    run = run_action(
        tmp_path, {"command": "nope", "password": "pa55word-x", "github-token": "ghs_token123"}
    )
    lines = run.log.splitlines()
    assert lines[:2] == ["::add-mask::pa55word-x", "::add-mask::ghs_token123"]
    assert "pa55word-x" not in "\n".join(lines[2:])


def test_internal_errors_have_no_traceback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import promote.frontdoor.commands.build_tags_cmd as cmd

    def boom(_ctx: object) -> object:
        raise RuntimeError("kaput")

    monkeypatch.setattr(cmd, "run", boom)
    run = run_action(tmp_path, {"command": "build-tags"})
    assert run.status == 70
    assert run.errors == ["::error::internal error (RuntimeError): kaput"]
    assert "Traceback" not in run.log
