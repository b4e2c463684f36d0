"""Architecture rules: pure modules stay pure, start-up stays light."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

#: module -> top-level imports it must never have (I/O, runner, network)
PURE = {
    "promote/reference.py": {
        "requests",
        "os",
        "promote.frontdoor.actions",
        "promote.registry",
        "github",
    },
    "promote/naming.py": {
        "requests",
        "os",
        "promote.frontdoor.actions",
        "promote.registry",
        "github",
    },
    "promote/pipeline/plan.py": {"requests", "os", "promote.frontdoor", "github"},
    "promote/pipeline/model.py": {"requests", "os", "promote.frontdoor", "github"},
    "promote/flux/policy.py": {
        "requests",
        "os",
        "promote.frontdoor.actions",
        "promote.registry",
        "github",
    },
    "promote/flux/setters.py": {
        *(
            "requests",
            "os",
            "subprocess",
            "promote.frontdoor.actions",
            "promote.registry",
            "github",
        ),
    },
    "promote/flux/automation.py": {
        *(
            "requests",
            "os",
            "subprocess",
            "promote.frontdoor.actions",
            "promote.registry",
            "github",
        ),
    },
}


def top_level_imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize("module", sorted(PURE))
def test_pure_modules_do_no_io(module: str) -> None:
    imported = top_level_imports(ROOT / module)
    banned = {
        name
        for name in imported
        if any(name == b or name.startswith(b + ".") for b in PURE[module])
    }
    assert not banned, f"{module} imports {banned} at top level"


def test_only_front_doors_touch_the_process_environment() -> None:
    """Commands get ``ctx.env``; only the runner I/O and the CLI read ``os.environ``."""
    offenders = []
    for path in sorted((ROOT / "promote").rglob("*.py")):
        if path.name in {"actions.py", "cli.py"}:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id == "os"
                and node.attr in {"environ", "getenv", "putenv"}
            ):
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert offenders == []


def test_entrypoint_startup_imports_no_heavy_module() -> None:
    """`import entrypoint` + the engine must not load requests, PyGithub, yaml or re2."""
    code = (
        "import sys, entrypoint, promote.frontdoor.commands, promote.frontdoor.inputs,"
        " promote.frontdoor.actions;"
        "heavy = [m for m in ('requests', 'github', 'yaml', 're2', 'semver', 'urllib3')"
        " if m in sys.modules]; print(','.join(heavy))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == ""
