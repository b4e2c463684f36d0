"""The pipeline's shape: one sequence for promote and rollback, below the front door."""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

from promote.pipeline.promotion import Request
from promote.pipeline.rollback import RollbackRequest

PIPELINE = Path(__file__).resolve().parents[2] / "promote" / "pipeline"


def imported(path: Path) -> set[str]:
    """Every module ``path`` imports: module level, in functions, under TYPE_CHECKING."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_the_pipeline_never_imports_the_front_door() -> None:
    modules = sorted(PIPELINE.glob("*.py"))
    assert len(modules) >= 8
    offenders = {
        f"{path.name}: {name}"
        for path in modules
        for name in imported(path)
        if name == "promote.frontdoor" or name.startswith("promote.frontdoor.")
    }
    assert offenders == set()


def test_the_checker_sees_a_function_local_import(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from promote.frontdoor.actions import markdown_table\n")
    assert "promote.frontdoor.actions" in imported(bad)


def test_promote_and_rollback_are_rules_of_one_pipeline() -> None:
    """Both requests carry the settings the shared observe/plan/apply use, and each its
    own rule: a ``kind`` and the rule's methods, nothing else of the pipeline."""
    members = ("select", "previous_version", "next_version", "reasons", "notes")
    shared = {"repository", "target_env", "timestamp", "floating_tag"}
    for rule, kind in ((Request, "promote"), (RollbackRequest, "rollback")):
        assert rule.kind == kind
        assert shared <= {f.name for f in dataclasses.fields(rule)}
        assert all(callable(getattr(rule, name)) for name in members)
