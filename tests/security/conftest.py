"""Fixtures of the security suites (the real registries come from tests/support/fixtures.py)."""

from __future__ import annotations

import pytest

from tests.reliability.engine import Figures


@pytest.fixture
def figures() -> Figures:
    return Figures()
