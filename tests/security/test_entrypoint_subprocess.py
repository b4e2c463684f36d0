"""The real front door: ``python entrypoint.py`` with ``INPUT_*`` variables, as the runner
starts the container. A representative subset of the hostile table (one case per input
and category pair that a process environment can carry: no NUL bytes) must be refused
before any connection to the registry sink, with one ``::error::`` line on stdout, nothing
on stderr, exit status 2, and an empty ``GITHUB_OUTPUT`` and step summary.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from promote.frontdoor.actions import env_input_names
from tests.reliability.engine import Figures
from tests.security.hostile import CASES, SINK, VALID, Case
from tests.support.faultproxy import FaultProxy

ROOT = Path(__file__).resolve().parents[2]
ENTRYPOINT = ROOT / "entrypoint.py"
#: categories every input gets, and one grammar attack of each kind
WANTED = (
    ("image", "credentials"),
    ("image", "traversal"),
    ("image", "lookalike"),
    ("image", "newline"),
    ("image", "heredoc"),
    ("source-tag", "workflow-command"),
    ("source-tag", "type"),
    ("source-digest", "type"),
    ("version", "range"),
    ("version", "invisible"),
    ("timestamp", "range"),
    ("dry-run", "type"),
    ("floating-tag", "newline"),
    ("password", "workflow-command"),
    ("password", "overlong"),
    ("github-token", "invisible"),
    ("username", "lookalike"),
    ("command", "type"),
    ("target-env", "traversal"),
    ("revert-commit", "type"),
    ("environment-url", "lookalike"),
    ("bump", "control"),
)


def subset() -> list[Case]:
    picked: list[Case] = []
    for name, category in WANTED:
        case = next(
            c for c in CASES if c.name == name and c.category == category and "\x00" not in c.value
        )
        picked.append(case)
    return picked


SUBSET = subset()


@pytest.fixture(scope="module")
def sink() -> Iterator[FaultProxy]:
    with FaultProxy(None) as fp:
        yield fp


def run_entrypoint(
    tmp_path: Path, inputs: dict[str, str]
) -> tuple[subprocess.CompletedProcess[str], str, str]:
    out, summary = tmp_path / "github_output", tmp_path / "summary.md"
    out.write_text("")
    summary.write_text("")
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path),
        "PYTHONPATH": str(ROOT),
        "GITHUB_OUTPUT": str(out),
        "GITHUB_STEP_SUMMARY": str(summary),
        "GITHUB_API_URL": "http://127.0.0.1:9/api",
        "PROMOTE_REGISTRY_DEADLINE": "2",
    }
    for name, value in inputs.items():
        env[env_input_names(name)[0]] = value
    proc = subprocess.run(
        [sys.executable, str(ENTRYPOINT)],
        check=False,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    return proc, out.read_text(), summary.read_text()


@pytest.mark.parametrize("case", SUBSET, ids=[c.id for c in SUBSET])
def test_entrypoint_refuses_hostile_input(tmp_path: Path, sink: FaultProxy, case: Case) -> None:
    inputs = {
        "image": VALID["image"],
        "source-tag": VALID["source-tag"],
        "username": VALID["username"],
        "password": VALID["password"],
    }
    inputs.update(case.context)
    inputs[case.name] = case.value
    inputs = {k: v.replace(SINK, sink.host) for k, v in inputs.items()}
    before = sink.connections
    proc, output, summary = run_entrypoint(tmp_path, inputs)
    assert sink.connections == before, proc.stdout
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert proc.stderr == ""
    lines = proc.stdout.splitlines()
    errors = [ln for ln in lines if ln.startswith("::error")]
    assert len(errors) == 1 and lines[-1] == errors[0], proc.stdout
    assert all(ln.startswith("::add-mask::") for ln in lines[:-1]), proc.stdout
    assert "Traceback" not in proc.stdout
    assert output == "" and summary == ""
    assert "hunter2" not in proc.stdout
    if case.name in ("password", "github-token"):
        assert case.value.strip() not in errors[0]


def test_entrypoint_valid_control_reaches_the_registry(tmp_path: Path, sink: FaultProxy) -> None:
    """The same front door with valid inputs does get to the (sink) registry."""
    before = sink.connections
    proc, output, _summary = run_entrypoint(
        tmp_path,
        {"image": VALID["image"].replace(SINK, sink.host), "source-tag": VALID["source-tag"]},
    )
    assert proc.returncode == 1, proc.stdout
    assert sink.connections > before
    assert output == ""


def test_figures(figures: Figures) -> None:
    figures.record("hostile-input cases through the real entrypoint (subprocess)", len(SUBSET))
    assert len({c.name for c in SUBSET}) >= 15
