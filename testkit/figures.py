"""Figures the reliability and security suites measure, printed once at the end of the run.

``figures.record(name, value)`` (the suites' ``figures`` fixture) appends to :data:`FIGURES`;
their conftests' ``pytest_terminal_summary`` calls :func:`print_figures`. The figures are
quoted in docs/security.md.
"""

from __future__ import annotations

from typing import Any

#: (name, value) measured by the reliability and security suites
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
