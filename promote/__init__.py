"""promote: re-tag a tested staging digest as production, without rebuilding it."""

__version__ = "0.1.0"

__all__ = ["__version__"]
