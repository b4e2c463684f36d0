"""Run the action engine in-process exactly as ``entrypoint.py`` does, capture everything.

``engine(workdir, inputs, env)`` -> :class:`EngineRun` (status, stdout log, parsed
``GITHUB_OUTPUT``, raw ``GITHUB_OUTPUT`` text, step summary, wall time). Thread-safe:
every run gets its own output and summary files, so concurrent promotions can be raced.
"""

from __future__ import annotations

import io
import itertools
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from promote.frontdoor.actions import Runner, parse_github_output
from promote.frontdoor.commands import execute

_counter = itertools.count()
#: (name, value) measured by the reliability and security suites; printed at the end of the
#: run (terminal summary) and quoted in docs/security.md.
FIGURES: list[tuple[str, str]] = []


_printed: list[bool] = []


class Figures:
    def record(self, name: str, value: object) -> None:
        FIGURES.append((name, str(value)))


def print_figures(terminalreporter: Any) -> None:
    """Terminal-summary section with every figure (once, whichever conftest calls it)."""
    if FIGURES and not _printed:
        _printed.append(True)
        terminalreporter.section("reliability/security figures (measured)")
        for name, value in FIGURES:
            terminalreporter.write_line(f"{name}: {value}")


@dataclass
class EngineRun:
    """What one in-process run of the action left behind."""

    status: int
    log: str
    outputs: dict[str, str]
    summary: str
    elapsed: float
    raw_output: str = ""

    @property
    def errors(self) -> list[str]:
        return [ln for ln in self.log.splitlines() if ln.startswith("::error")]

    @property
    def warnings(self) -> list[str]:
        return [ln for ln in self.log.splitlines() if ln.startswith("::warning")]


def engine(
    workdir: Path, inputs: Mapping[str, str], env: Mapping[str, str] | None = None
) -> EngineRun:
    """Run the action engine once (thread-safe: every run gets its own files)."""
    n = next(_counter)
    out, summary = workdir / f"github_output.{n}", workdir / f"summary.{n}.md"
    out.write_text("")
    summary.write_text("")
    buf = io.StringIO()
    runner = Runner(out=buf, github_output=str(out), step_summary=str(summary))
    started = time.monotonic()
    status = execute(dict(inputs), dict(env or {}), runner)
    elapsed = time.monotonic() - started
    raw = out.read_text()
    return EngineRun(
        status, buf.getvalue(), parse_github_output(raw), summary.read_text(), elapsed, raw
    )
