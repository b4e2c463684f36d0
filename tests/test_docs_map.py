"""docs/README.md is a true map: every path it cites exists, every name it cites is defined.

In the behaviours table's code column and the layers table, a backticked path
(``promote/pipeline/plan.py``, ``testkit/``) must exist, and each backticked name after a
Python path (``plan``, ``Request.notes``, ``observe.observe`` after a folder) must be
defined there: a function, class or assignment (``Class.member`` inside the class; after a
folder, ``module.name`` or a module of it).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
MAP = DOCS / "README.md"

PATH_RE = re.compile(r"^(?:\.\./)?[\w.-]+(?:/[\w.-]+)*(?:/|\.\w+)$|^Makefile$")
CODE_RE = re.compile(r"`([^`]+)`")


def _defined(tree: ast.Module) -> dict[str, set[str]]:
    """Every name a module defines, at any depth (a method may be cited without its
    class) -> the names defined inside it (a class's members)."""
    names: dict[str, set[str]] = {}
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            inner = {
                n.name
                for n in ast.walk(node)
                if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
            }
            inner |= {
                t.id
                for n in ast.walk(node)
                for t in (n.targets if isinstance(n, ast.Assign) else [getattr(n, "target", None)])
                if isinstance(n, (ast.Assign, ast.AnnAssign)) and isinstance(t, ast.Name)
            }
            names.setdefault(node.name, set()).update(inner)
        elif isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    names.setdefault(target.id, set())
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.setdefault(node.target.id, set())
    return names


def _in_module(path: Path, name: str) -> bool:
    names = _defined(ast.parse(path.read_text()))
    head, _, member = name.partition(".")
    return head in names and (not member or member in names[head])


def _resolves(path: Path, name: str) -> bool:
    """Whether ``name`` (``f``, ``C.m``; after a folder ``mod``, ``mod.f``) is defined."""
    name = name.split("(", maxsplit=1)[0].strip()
    if path.is_dir():
        head, _, rest = name.partition(".")
        module = path / f"{head}.py"
        if not module.exists():
            return (path / head / "__init__.py").exists() and not rest
        return not rest or _in_module(module, rest)
    return _in_module(path, name)


def _is_path(item: str) -> bool:
    looks_like = "/" in item or item.endswith(".py")
    return item == "Makefile" or (looks_like and bool(PATH_RE.match(item)))


def cited(text: str, root: Path = ROOT) -> list[tuple[str, str | None]]:
    """(path, name or None) for every citation in the map's tables' second column: the
    behaviours' code and the layers' modules. A bare ``x.py`` or ``dir/`` is a file of the
    folder cited before it (inside parentheses, or when that file exists); inside
    parentheses other items name no code (``(RaceError, exit 4)``, ``(from ctx.settings)``)."""
    found: list[tuple[str, str | None]] = []
    for line in text.splitlines():
        if not line.startswith("|"):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 2 or set(cells[1]) <= {"-"}:
            continue
        path: str | None = None
        folder: str | None = None
        for depth_text in _with_depth(cells[1]):
            item, nested = depth_text
            if _is_path(item):
                relative = f"{folder}{item}" if folder and "/" not in item.rstrip("/") else ""
                if relative and (nested or (root / relative).exists()):
                    item = relative
                elif not nested:
                    path = item
                    folder = item if item.endswith("/") else item.rpartition("/")[0] + "/"
                found.append((item, None))
            elif not nested and path is not None and path.endswith((".py", "/")):
                found.append((path, item))
    return found


def _with_depth(cell: str) -> list[tuple[str, bool]]:
    """The backticked items of ``cell``, each with whether it is inside parentheses."""
    items, depth, i = [], 0, 0
    while i < len(cell):
        char = cell[i]
        if char == "`":
            end = cell.index("`", i + 1)
            items.append((cell[i + 1 : end], depth > 0))
            i = end + 1
            continue
        depth += {"(": 1, ")": -1}.get(char, 0)
        i += 1
    return items


def problems(root: Path, text: str) -> list[str]:
    bad = []
    for rel, name in cited(text, root):
        path = (root / "docs" / rel).resolve() if rel.startswith("../") else root / rel
        if not path.exists():
            bad.append(f"{rel} does not exist")
        elif (
            name is not None
            and (path.suffix == ".py" or path.is_dir())
            and not _resolves(path, name)
        ):
            bad.append(f"{rel} has no {name}")
    return sorted(set(bad))


def test_every_path_and_name_the_map_cites_exists() -> None:
    assert problems(ROOT, MAP.read_text()) == []


def test_the_checker_finds_a_missing_path_and_a_missing_name(tmp_path: Path) -> None:
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "mod.py").write_text("class C:\n    def m(self): ...\ndef f(): ...\n")
    text = (
        "| b | c | d |\n|---|---|---|\n"
        "| ok | `pkg/mod.py` `f`, `C.m`; `pkg/` `mod.f`, `mod` | x |\n"
        "| gone | `pkg/old.py` `f` | x |\n"
        "| renamed | `pkg/mod.py` `g`, `C.n`; `pkg/` `mod.h`, `other` | x |\n"
    )
    assert problems(tmp_path, text) == [
        "pkg/ has no mod.h",
        "pkg/ has no other",
        "pkg/mod.py has no C.n",
        "pkg/mod.py has no g",
        "pkg/old.py does not exist",
    ]
