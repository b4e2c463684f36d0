"""Fixtures of the security suites (the real registries come from testkit/fixtures.py)."""

from __future__ import annotations

import pytest

from testkit.figures import Figures, print_figures


@pytest.fixture
def figures() -> Figures:
    return Figures()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    print_figures(terminalreporter)
