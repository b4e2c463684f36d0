"""The console script's fixed address (``promote = "promote.cli:main"``).

The CLI lives in :mod:`promote.frontdoor.cli`; this alias keeps ``promote.cli:main`` and
``python -m promote.cli`` working."""

from promote.frontdoor.cli import main

__all__ = ["main"]

if __name__ == "__main__":
    raise SystemExit(main())
