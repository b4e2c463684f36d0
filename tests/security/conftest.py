"""Fixtures of the security suites (the real registries come from tests/support/fixtures.py)."""

from __future__ import annotations

import pytest

from tests.reliability.engine import Figures, print_figures


@pytest.fixture
def figures() -> Figures:
    return Figures()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    print_figures(terminalreporter)
