"""Each package's public surface is exactly a pinned list, and every name in it resolves.

A package's ``__all__`` is what other layers (and users of ``promote.flux``) may import;
changing it is a decision, made here in the same commit. Modules that declare ``__all__``
are checked too: every name they export exists.
"""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

#: package -> its ``__all__``, exactly (sorted here; order in the package is free)
PINNED: dict[str, list[str]] = {
    "promote": ["__version__"],
    "promote.flux": [
        "DEFAULT_EXCLUSION_LIST",
        "ImagePolicy",
        "ImageRepositoryRef",
        "PolicyError",
        "SUPPORTED_API_VERSIONS",
        "Selection",
        "TagFilter",
        "apply_setters",
        "filter_out_tags",
        "stored_order",
    ],
    "promote.frontdoor": [
        "COMMANDS",
        "Context",
        "INPUTS",
        "OUTPUTS",
        "Result",
        "Runner",
        "Settings",
        "execute",
        "main",
        "read_inputs",
    ],
    "promote.frontdoor.commands": ["COMMANDS", "Context", "Result", "execute", "resolve"],
    "promote.pipeline": ["model", "promotion", "record_step", "release", "rollback"],
    "promote.registry": [
        "Challenge",
        "Credentials",
        "DOCKER_MANIFEST",
        "DOCKER_MANIFEST_LIST",
        "Descriptor",
        "INDEX_MEDIA_TYPES",
        "MANIFEST_ACCEPT",
        "MANIFEST_MEDIA_TYPES",
        "MAX_MANIFEST_SIZE",
        "Manifest",
        "OCI_INDEX",
        "OCI_MANIFEST",
        "RegistryClient",
        "RequestRecord",
        "RequestStats",
        "TAG_PAGE_SIZE",
        "credentials_for",
        "parse_www_authenticate",
        "sha256_digest",
    ],
}


def modules() -> list[tuple[str, bool]]:
    """(dotted name, is a package) of every module in promote/."""
    out = []
    for path in sorted((ROOT / "promote").rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        package = parts[-1] == "__init__"
        if package:
            parts.pop()
        out.append((".".join(parts), package))
    return out


PACKAGES = [name for name, package in modules() if package]
DECLARING = [name for name, _ in modules() if "__all__" in vars(importlib.import_module(name))]


def test_every_package_is_pinned() -> None:
    assert sorted(PACKAGES) == sorted(PINNED)


@pytest.mark.parametrize("package", sorted(PINNED))
def test_package_surface_is_exactly_the_pinned_list(package: str) -> None:
    module = importlib.import_module(package)
    exported = getattr(module, "__all__", None)
    assert exported is not None, f"{package} declares no __all__"
    assert len(exported) == len(set(exported)), f"{package}.__all__ repeats a name"
    assert sorted(exported) == sorted(PINNED[package])


def type_only_names(module: object) -> set[str]:
    """Names a module binds only under ``if TYPE_CHECKING:`` (PyGithub's classes in
    :mod:`promote.githubapi`, re-exported for annotations so PyGithub stays in one module)."""
    tree = ast.parse(Path(str(getattr(module, "__file__", ""))).read_text())
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.If) and ast.unparse(node.test) in {
            "TYPE_CHECKING",
            "typing.TYPE_CHECKING",
        }:
            for stmt in node.body:
                if isinstance(stmt, ast.Import | ast.ImportFrom):
                    names.update(a.asname or a.name.split(".")[0] for a in stmt.names)
    return names


@pytest.mark.parametrize("name", DECLARING)
def test_every_exported_name_resolves(name: str) -> None:
    """At run time, or (annotations only) as a ``TYPE_CHECKING`` import of the module."""
    module = importlib.import_module(name)
    missing = {member for member in module.__all__ if not hasattr(module, member)}
    assert missing <= type_only_names(module), f"{name}.__all__ names {missing}"


def test_the_flux_contract_is_exported() -> None:
    """``promote.flux.ImagePolicy`` / ``PolicyError``: named by the issue as a contract."""
    from promote.errors import PolicyError
    from promote.flux import ImagePolicy
    from promote.flux.policy import ImagePolicy as Defined

    assert ImagePolicy is Defined
    assert importlib.import_module("promote.flux").PolicyError is PolicyError


def test_the_front_door_surface_loads_lazily() -> None:
    """``import promote.frontdoor`` imports none of its modules until a name is used."""
    code = (
        "import sys, promote.frontdoor as f;"
        "before = sorted(m for m in sys.modules if m.startswith('promote.frontdoor.'));"
        "f.Runner; f.main;"
        "after = sorted(m for m in sys.modules if m.startswith('promote.frontdoor.'));"
        "print(before, 'promote.frontdoor.cli' in after, 'promote.frontdoor.actions' in after)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert result.stdout.split() == ["[]", "True", "True"]
    with pytest.raises(AttributeError):
        _ = importlib.import_module("promote.frontdoor").no_such_name


def front_door_imports(package: str) -> set[str]:
    """The modules of ``package`` that the front door (promote/frontdoor/, promote/cli.py,
    entrypoint.py) imports, anywhere in its code (``from package import x`` counts as x)."""
    files = [*(ROOT / "promote" / "frontdoor").rglob("*.py"), ROOT / "promote/cli.py"]
    found: set[str] = set()
    for path in [*files, ROOT / "entrypoint.py"]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module == package:
                found.update(f"{package}.{a.name}" for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                found.add(node.module or "")
    return {name for name in found if name.startswith(package + ".")}


def test_the_pipeline_surface_is_what_the_front_door_uses() -> None:
    """``promote.pipeline.__all__`` names exactly the modules the front door imports from:
    it never reaches into the sequence's own steps (observe, plan, apply)."""
    import promote.pipeline as pipeline

    used = {name.split(".")[2] for name in front_door_imports("promote.pipeline")}
    assert used == set(pipeline.__all__)
    for name in pipeline.__all__:  # each a submodule (``from promote.pipeline import name``)
        assert importlib.import_module(f"promote.pipeline.{name}") is getattr(pipeline, name)
