"""Run the action the way the runner does, and capture everything it leaves behind.

Two runners, one for each way the action is started:

* :func:`engine` ``(workdir, inputs, env)`` -> :class:`EngineRun`: in-process, exactly as
  ``entrypoint.py`` does (``promote.frontdoor.commands.execute`` with a
  :class:`~promote.frontdoor.actions.Runner` writing ``GITHUB_OUTPUT`` and the step summary
  to files in ``workdir``). Status, stdout log, parsed and raw ``GITHUB_OUTPUT``, step
  summary, wall time. Thread-safe: every run gets its own output and summary files, so
  concurrent promotions can be raced.
* :func:`entrypoint` ``(workdir, inputs, env)`` -> :class:`EntrypointRun`: the real front
  door, ``python entrypoint.py`` as a subprocess with ``INPUT_*`` variables (as the runner
  starts the container) in a minimal environment. :func:`entrypoint_env` builds that
  environment for a caller that starts the process itself (to sample its memory, say).
"""

from __future__ import annotations

import io
import itertools
import os
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from promote.frontdoor.actions import Runner, env_input_names, parse_github_output
from promote.frontdoor.commands import execute

ROOT = Path(__file__).resolve().parents[1]
ENTRYPOINT = ROOT / "entrypoint.py"

_counter = itertools.count()


def _files(workdir: Path) -> tuple[Path, Path]:
    """A fresh, empty ``GITHUB_OUTPUT`` file and step summary file in ``workdir``."""
    n = next(_counter)
    out, summary = workdir / f"github_output.{n}", workdir / f"summary.{n}.md"
    out.write_text("")
    summary.write_text("")
    return out, summary


def _lines(text: str, prefix: str) -> list[str]:
    return [ln for ln in text.splitlines() if ln.startswith(prefix)]


@dataclass
class EngineRun:
    """What one in-process run of the action left behind."""

    status: int
    log: str
    outputs: dict[str, str]
    summary: str
    elapsed: float = 0.0
    raw_output: str = ""

    @property
    def errors(self) -> list[str]:
        return _lines(self.log, "::error")

    @property
    def warnings(self) -> list[str]:
        return _lines(self.log, "::warning")


def engine(
    workdir: Path, inputs: Mapping[str, str], env: Mapping[str, str] | None = None
) -> EngineRun:
    """Run the action engine once, in this process (thread-safe: every run gets its own files)."""
    out, summary = _files(workdir)
    buf = io.StringIO()
    runner = Runner(out=buf, github_output=str(out), step_summary=str(summary))
    started = time.monotonic()
    status = execute(dict(inputs), dict(env or {}), runner)
    elapsed = time.monotonic() - started
    raw = out.read_text()
    return EngineRun(
        status, buf.getvalue(), parse_github_output(raw), summary.read_text(), elapsed, raw
    )


@dataclass
class EntrypointRun:
    """What one ``python entrypoint.py`` process left behind (``output``: raw ``GITHUB_OUTPUT``)."""

    status: int
    stdout: str
    stderr: str
    output: str
    summary: str

    @property
    def everything(self) -> str:
        """Every byte the run left anywhere a user could read it."""
        return "\n".join((self.stdout, self.stderr, self.output, self.summary))

    @property
    def errors(self) -> list[str]:
        return _lines(self.stdout, "::error")


def entrypoint_env(
    workdir: Path, inputs: Mapping[str, str], env: Mapping[str, str] | None = None
) -> tuple[dict[str, str], Path, Path]:
    """The process environment of one entrypoint run, and its output and summary files.

    Only ``PATH``, ``HOME`` (``workdir``), ``PYTHONPATH`` (the repository), the two runner
    files, ``env`` and one ``INPUT_*`` variable per input (named as the runner names them).
    """
    out, summary = _files(workdir)
    variables = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(workdir),
        "PYTHONPATH": str(ROOT),
        "GITHUB_OUTPUT": str(out),
        "GITHUB_STEP_SUMMARY": str(summary),
        **(env or {}),
    }
    for name, value in inputs.items():
        variables[env_input_names(name)[0]] = value
    return variables, out, summary


def entrypoint(
    workdir: Path,
    inputs: Mapping[str, str],
    env: Mapping[str, str] | None = None,
    *,
    timeout: float = 120,
) -> EntrypointRun:
    """Run ``python entrypoint.py`` once (cwd ``workdir``) and capture everything."""
    variables, out, summary = entrypoint_env(workdir, inputs, env)
    proc = subprocess.run(
        [sys.executable, str(ENTRYPOINT)],
        check=False,
        env=variables,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=workdir,
    )
    return EntrypointRun(
        proc.returncode, proc.stdout, proc.stderr, out.read_text(), summary.read_text()
    )
