"""The front door: the only layer that reads the environment.

The runner protocol (:mod:`.actions`), the input declarations and parsing (:mod:`.inputs`),
the outputs (:mod:`.outputs`), the run's environment variables (:mod:`.settings`), the
commands (:mod:`.commands`) and the CLI (:mod:`.cli`). Nothing below this package imports
it (``tests/test_layering.py``).

The names below are its public surface, each imported from its module on first use (PEP
562), so ``import promote.frontdoor`` stays as light as the entrypoint needs.
"""

from __future__ import annotations

import importlib
from typing import Any

#: public name -> the module that defines it
_HOMES = {
    "Context": "promote.frontdoor.commands",
    "COMMANDS": "promote.frontdoor.commands",
    "INPUTS": "promote.frontdoor.inputs",
    "OUTPUTS": "promote.frontdoor.outputs",
    "Result": "promote.frontdoor.commands",
    "Runner": "promote.frontdoor.actions",
    "Settings": "promote.frontdoor.settings",
    "execute": "promote.frontdoor.commands",
    "main": "promote.frontdoor.cli",
    "read_inputs": "promote.frontdoor.actions",
}

__all__ = [
    "COMMANDS",
    "INPUTS",
    "OUTPUTS",
    "Context",
    "Result",
    "Runner",
    "Settings",
    "execute",
    "main",
    "read_inputs",
]


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        return getattr(importlib.import_module(_HOMES[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
