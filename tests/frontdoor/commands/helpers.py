"""Run the action engine in-process the way entrypoint.py does, and capture everything."""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

from promote.frontdoor.actions import Runner, parse_github_output
from promote.frontdoor.commands import execute


@dataclass
class Run:
    status: int
    log: str
    outputs: dict[str, str]
    summary: str

    @property
    def errors(self) -> list[str]:
        return [ln for ln in self.log.splitlines() if ln.startswith("::error")]


def run_action(tmp_path: Path, inputs: dict[str, str], env: dict[str, str] | None = None) -> Run:
    out, summary = tmp_path / "github_output", tmp_path / "summary.md"
    out.write_text("")
    summary.write_text("")
    buf = io.StringIO()
    runner = Runner(out=buf, github_output=str(out), step_summary=str(summary))
    status = execute(inputs, env or {}, runner)
    return Run(status, buf.getvalue(), parse_github_output(out.read_text()), summary.read_text())
