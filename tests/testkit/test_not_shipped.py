"""testkit is test support: the action image and the wheel never carry it, and the shipped
code never imports it."""

from __future__ import annotations

import ast
import re
import tomllib
from pathlib import Path

import setuptools

import testkit

ROOT = Path(__file__).resolve().parents[2]


def test_the_wheel_packages_exclude_testkit() -> None:
    find = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    # the discovery setuptools runs for [tool.setuptools.packages.find]
    packages = setuptools.find_packages(str(ROOT), include=find["find"]["include"])
    assert "promote" in packages
    assert not [p for p in packages if not p.startswith("promote")], packages
    assert Path(testkit.__file__).resolve().parent == ROOT / "testkit"


def test_the_image_build_context_and_copies_exclude_testkit() -> None:
    kept = [
        line[1:].strip().rstrip("/")
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.startswith("!")
    ]
    assert kept and not [k for k in kept if k.split("/")[0] == "testkit"], kept
    dockerfile = (ROOT / "Dockerfile").read_text()
    copied = re.findall(r"^COPY\s+(\S+)", dockerfile, flags=re.MULTILINE)
    assert copied and not [c for c in copied if c.startswith("testkit")], copied


def test_shipped_code_never_imports_testkit() -> None:
    shipped = [*sorted((ROOT / "promote").rglob("*.py")), ROOT / "entrypoint.py"]
    offenders = []
    for path in shipped:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            offenders += [f"{path}: {n}" for n in names if n.split(".")[0] in {"testkit", "tests"}]
    assert len(shipped) > 10 and offenders == []
