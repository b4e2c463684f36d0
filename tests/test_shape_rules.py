"""Shape rules for promote/: no function longer than 80 lines, no ``type: ignore``."""

from __future__ import annotations

import ast
import io
import tokenize
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "promote"
MAX_LINES = 80


def long_functions(root: Path, limit: int = MAX_LINES) -> list[str]:
    """``path:line name (n lines)`` for every function or method over ``limit`` lines
    (decorators and docstring included, as a reader sees it)."""
    found = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
                length = (node.end_lineno or node.lineno) - first + 1
                if length > limit:
                    rel = path.relative_to(root.parent)
                    found.append(f"{rel}:{first} {node.name} ({length} lines)")
    return found


def type_ignores(root: Path) -> list[str]:
    """``path:line`` of every ``# type: ignore`` comment (comments only, not strings)."""
    found = []
    for path in sorted(root.rglob("*.py")):
        tokens = tokenize.generate_tokens(io.StringIO(path.read_text()).readline)
        for tok in tokens:
            if tok.type == tokenize.COMMENT and "type: ignore" in tok.string:
                found.append(f"{path.relative_to(root.parent)}:{tok.start[0]}")
    return found


def test_no_function_in_promote_is_longer_than_80_lines() -> None:
    assert long_functions(PACKAGE) == []


def test_no_type_ignore_in_promote() -> None:
    assert type_ignores(PACKAGE) == []


def test_the_checks_see_what_they_forbid(tmp_path: Path) -> None:
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_LINES))
    (pkg / "long.py").write_text(
        "class C:\n    @staticmethod\n    def method() -> None:\n"
        + body.replace("    ", "        ")
        + "\n\ndef fits() -> None:\n    pass\n"
        + "\ndef hidden() -> int:\n    return 1  # type: ignore[return-value]\n"
        + "\nTEXT = 'type: ignore in a string is not a comment'\n"
    )
    assert long_functions(pkg) == [f"pkg/long.py:2 method ({MAX_LINES + 2} lines)"]
    assert type_ignores(pkg) == [f"pkg/long.py:{MAX_LINES + 9}"]
