"""The real front door: ``python entrypoint.py`` with ``INPUT_*`` variables, as the runner
starts the container. A representative subset of the hostile table (one case per input
and category pair that a process environment can carry: no NUL bytes) must be refused
before any connection to the registry sink, with one ``::error::`` line on stdout, nothing
on stderr, exit status 2, and an empty ``GITHUB_OUTPUT`` and step summary.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from testkit.engine import EntrypointRun, entrypoint
from testkit.figures import Figures
from testkit.proxy import FaultProxy
from tests.security.hostile import CASES, SINK, VALID, Case

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


def run_entrypoint(tmp_path: Path, inputs: dict[str, str]) -> tuple[EntrypointRun, str, str]:
    env = {"GITHUB_API_URL": "http://127.0.0.1:9/api", "PROMOTE_REGISTRY_DEADLINE": "2"}
    run = entrypoint(tmp_path, inputs, env, timeout=60)
    return run, run.output, run.summary


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
    assert proc.status == 2, (proc.stdout, proc.stderr)
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
    assert proc.status == 1, proc.stdout
    assert sink.connections > before
    assert output == ""


def test_figures(figures: Figures) -> None:
    figures.record("hostile-input cases through the real entrypoint (subprocess)", len(SUBSET))
    assert len({c.name for c in SUBSET}) >= 15
