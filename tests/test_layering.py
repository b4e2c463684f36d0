"""Architecture rules: layers point one way, pure modules stay pure, start-up stays light."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

#: The layers, highest first: a module may import only its own layer or lower ones, at
#: module level, inside a function and under ``TYPE_CHECKING`` alike, and by name
#: (``importlib.import_module``, ``__import__``, a table of module names). A module belongs to
#: the layer of the longest prefix below that names it (``promote.flux.source`` is an
#: adapter although ``promote.flux`` is a model). Every module in promote/ must have one.
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("front door", ("promote.frontdoor", "promote.cli", "entrypoint")),
    ("pipeline", ("promote.pipeline",)),
    (
        "adapters",
        (
            "promote.registry",
            "promote.githubapi",
            "promote.github",
            "promote.gitrevert",
            "promote.gitcmd",
            "promote.flux.source",
            # verify polls a TreeSource (the GitOps source I/O) with a clock: not pure
            "promote.flux.verify",
        ),
    ),
    (
        "models",
        (
            "promote.__init__",  # the package itself (``__version__``), not its modules
            "promote.reference",
            "promote.naming",
            "promote.errors",
            "promote.flux",
            "promote.record",
            "promote.lineage",
            "promote.redaction",  # the one redactor (issue 11 C), pure
        ),
    ),
)


def module_name(root: Path, path: Path) -> str:
    """``promote/flux/source.py`` -> ``promote.flux.source``; a package is its ``__init__``."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def layer_of(module: str) -> int | None:
    """Index into :data:`LAYERS` (0 = highest) of the longest prefix naming ``module``."""
    module = "promote.__init__" if module == "promote" else module
    best: tuple[int, int] | None = None
    for index, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            named = module == prefix or module.startswith(prefix + ".")
            if named and (best is None or len(prefix) > best[0]):
                best = (len(prefix), index)
    return None if best is None else best[1]


def imported_modules(path: Path, importer: str, known: set[str]) -> list[tuple[int, str]]:
    """Every promote module ``tree`` imports, wherever the import statement is (``ast.walk``
    sees function bodies and ``if TYPE_CHECKING:`` blocks); ``from pkg import mod`` counts
    as importing ``pkg.mod`` when that is a module, relative imports are resolved."""
    package = importer.split(".")
    if path.name != "__init__.py":
        package.pop()
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            for alias in node.names:
                candidate = f"{module}.{alias.name}"
                found.append((node.lineno, candidate if candidate in known else module))
    found += dynamic_imports(path, known)
    return [
        (line, name)
        for line, name in found
        if name in {"promote", COMPUTED} or name.startswith("promote.")
    ]


#: what :func:`dynamic_imports` reports for an import whose module name is computed
COMPUTED = "<computed>"


def dynamic_imports(path: Path, known: set[str]) -> list[tuple[int, str]]:
    """Imports by name: a string constant that is a promote module's name (a table read by
    ``importlib.import_module``), and every ``import_module``/``__import__`` call whose name
    is computed (:data:`COMPUTED`), except ``f"{__name__}.{x}"``: the package's own."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            if node.value in known and node.value.startswith("promote."):
                found.append((node.lineno, node.value))
        elif isinstance(node, ast.Call) and node.args:
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name not in {"import_module", "__import__"}:
                continue
            arg = node.args[0]
            if isinstance(arg, ast.Constant):
                continue  # a literal name is seen as a constant above (or is no promote module)
            if isinstance(arg, ast.JoinedStr) and _own_package(arg):
                continue
            found.append((node.lineno, COMPUTED))
    return found


def _own_package(name: ast.JoinedStr) -> bool:
    """``f"{__name__}.<anything>"``: a module of the importing package itself."""
    first = name.values[0] if name.values else None
    return (
        isinstance(first, ast.FormattedValue)
        and isinstance(first.value, ast.Name)
        and first.value.id == "__name__"
    )


def python_files(root: Path) -> list[Path]:
    files = sorted((root / "promote").rglob("*.py"))
    if (root / "entrypoint.py").exists():
        files.append(root / "entrypoint.py")
    return files


def layer_violations(root: Path) -> tuple[list[tuple[str, str, str]], list[str]]:
    """(violations as (file:line, imported module, why), modules without a layer)."""
    files = python_files(root)
    known = {module_name(root, path) for path in files}
    unplaced = sorted(name for name in known if layer_of(name) is None)
    violations = []
    for path in files:
        importer = module_name(root, path)
        own = layer_of(importer)
        if own is None:
            continue
        for line, target in imported_modules(path, importer, known):
            if target == COMPUTED:
                if own > 0:
                    rel = path.relative_to(root).as_posix()
                    why = f"{LAYERS[own][0]} imports a module named at run time"
                    violations.append((f"{rel}:{line}", target, why))
                continue
            theirs = layer_of(target)
            if theirs is None:
                unplaced.append(f"{target} (imported by {importer})")
            elif theirs < own:
                rel = path.relative_to(root).as_posix()
                why = f"{LAYERS[own][0]} imports {LAYERS[theirs][0]}"
                violations.append((f"{rel}:{line}", target, why))
    return violations, sorted(set(unplaced))


def test_every_import_points_down_the_layers() -> None:
    violations, unplaced = layer_violations(ROOT)
    assert unplaced == [], f"modules with no layer in LAYERS: {unplaced}"
    assert violations == [], "\n".join(f"{w}: {t} ({why})" for w, t, why in violations)


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    for rel, text in {"promote/__init__.py": "", **files}.items():
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        for parent in path.relative_to(tmp_path).parents:
            if parent.parts and parent.parts[0] == "promote":
                init = tmp_path / parent / "__init__.py"
                if not init.exists():
                    init.write_text("")
        path.write_text(text)
    return tmp_path


@pytest.mark.parametrize(
    "source",
    [
        "from promote.frontdoor.actions import markdown_table\n",
        "def steps_markdown():\n    from promote.frontdoor.actions import markdown_table\n",
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
        "    from promote.frontdoor.actions import Runner\n",
        "def f():\n    import promote.frontdoor.actions\n",
        "def f():\n    from promote.frontdoor import actions\n",
        "class C:\n    def m(self):\n        try:\n            from ..frontdoor import actions\n"
        "        except ImportError:\n            pass\n",
    ],
    ids=[
        "module-level",
        "function-local",
        "type-checking",
        "import-stmt",
        "from-package",
        "relative",
    ],
)
def test_checker_finds_a_pipeline_importing_the_front_door(tmp_path: Path, source: str) -> None:
    """The checker on a synthetic tree: ``pipeline/promotion.py -> promote.frontdoor.actions``, in
    every spelling an import can take, is a violation."""
    root = _tree(
        tmp_path,
        {"promote/frontdoor/actions.py": "", "promote/pipeline/promotion.py": source},
    )
    violations, unplaced = layer_violations(root)
    assert unplaced == []
    assert [(w.split(":")[0], t, why) for w, t, why in violations] == [
        (
            "promote/pipeline/promotion.py",
            "promote.frontdoor.actions",
            "pipeline imports front door",
        )
    ]


@pytest.mark.parametrize(
    "source",
    [
        "import importlib\ndef f():\n"
        "    return importlib.import_module('promote.frontdoor.actions')\n",
        "from importlib import import_module\nM = import_module('promote.frontdoor.actions')\n",
        "def f():\n    return __import__('promote.frontdoor.actions')\n",
        "import importlib\nHOMES = {'x': 'promote.frontdoor.actions'}\n"
        "def f(n):\n    return importlib.import_module(HOMES[n])\n",
    ],
    ids=["import_module", "from-importlib", "dunder-import", "string-table"],
)
def test_checker_finds_a_dynamic_import_of_the_front_door(tmp_path: Path, source: str) -> None:
    """An import by name (``importlib.import_module``, ``__import__``, a table of module
    names) is an import too: a pipeline module naming the front door is a violation."""
    root = _tree(
        tmp_path,
        {"promote/frontdoor/actions.py": "", "promote/pipeline/promotion.py": source},
    )
    violations, _ = layer_violations(root)
    named = [(w.split(":")[0], t, why) for w, t, why in violations if t != COMPUTED]
    assert named == [
        (
            "promote/pipeline/promotion.py",
            "promote.frontdoor.actions",
            "pipeline imports front door",
        )
    ]


def test_checker_refuses_an_unresolvable_dynamic_import_below_the_front_door(
    tmp_path: Path,
) -> None:
    """An import by a computed name the checker cannot resolve is refused below the top
    layer (it could reach anywhere); ``f"{__name__}.{x}"`` (the package's own modules, as a
    PEP 562 ``__getattr__`` does) stays allowed."""
    root = _tree(
        tmp_path,
        {
            "promote/frontdoor/actions.py": "",
            "promote/naming.py": "import importlib\ndef f(n):\n"
            "    return importlib.import_module('promote.' + n)\n",
            "promote/flux/__init__.py": "import importlib\ndef __getattr__(n):\n"
            "    return importlib.import_module(f'{__name__}.{n}')\n",
        },
    )
    violations, _ = layer_violations(root)
    assert [(w, t, why) for w, t, why in violations] == [
        ("promote/naming.py:3", "<computed>", "models imports a module named at run time")
    ]


def test_every_layer_prefix_names_a_module() -> None:
    """No stale entry in :data:`LAYERS`: each prefix is a module or package of the tree."""
    known = {module_name(ROOT, path) for path in python_files(ROOT)} | {"promote.__init__"}
    stale = [
        prefix
        for _, prefixes in LAYERS
        for prefix in prefixes
        if not any(k == prefix or k.startswith(prefix + ".") for k in known)
    ]
    assert stale == []


def test_checker_accepts_imports_down_and_sideways(tmp_path: Path) -> None:
    root = _tree(
        tmp_path,
        {
            "promote/frontdoor/cli.py": "from promote.frontdoor import actions\n",
            "promote/frontdoor/actions.py": "import promote.pipeline.promotion\n",
            "promote/pipeline/promotion.py": "def f():\n    from promote.registry import client\n",
            "promote/registry/client.py": "from promote import naming, __version__\n",
            "promote/naming.py": "from promote.errors import InputError\n",
            "promote/errors.py": "",
        },
    )
    assert layer_violations(root) == ([], [])


def test_checker_finds_a_model_reaching_an_adapter(tmp_path: Path) -> None:
    root = _tree(
        tmp_path,
        {
            "promote/flux/policy.py": "def f():\n    from promote.flux.source import load\n",
            "promote/flux/source.py": "",
        },
    )
    violations, _ = layer_violations(root)
    assert [(w, t, why) for w, t, why in violations] == [
        ("promote/flux/policy.py:2", "promote.flux.source", "models imports adapters")
    ]


def test_checker_names_a_module_without_a_layer(tmp_path: Path) -> None:
    root = _tree(tmp_path, {"promote/newthing.py": ""})
    assert layer_violations(root)[1] == ["promote.newthing"]


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


#: the only modules that may read the process environment: the runner I/O and the CLI
ENVIRONMENT_READERS = {"promote/frontdoor/actions.py", "promote/frontdoor/cli.py"}


def environment_reads(root: Path) -> list[str]:
    """``file:line`` of every read of the process environment in promote/ outside
    :data:`ENVIRONMENT_READERS`: ``os.environ`` / ``os.getenv`` / ``os.putenv``, and the
    same names imported from ``os`` (``from os import environ``)."""
    names = {"environ", "getenv", "putenv", "environb", "getenvb"}
    offenders = []
    for path in sorted((root / "promote").rglob("*.py")):
        rel = path.relative_to(root).as_posix()
        if rel in ENVIRONMENT_READERS:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id == "os"
                and node.attr in names
            ) or (
                isinstance(node, ast.ImportFrom)
                and node.module == "os"
                and any(alias.name in names for alias in node.names)
            ):
                offenders.append(f"{rel}:{node.lineno}")
    return offenders


def test_only_front_doors_touch_the_process_environment() -> None:
    """Commands get ``ctx.env``; only the runner I/O and the CLI read ``os.environ``."""
    assert environment_reads(ROOT) == []


def test_the_environment_check_goes_by_path_and_sees_from_imports(tmp_path: Path) -> None:
    """A module named like a front door elsewhere is not one, and ``from os import
    environ`` is a read too."""
    root = _tree(
        tmp_path,
        {
            "promote/frontdoor/cli.py": "import os\nENV = os.environ\n",
            "promote/pipeline/cli.py": "import os\nENV = os.environ\n",
            "promote/naming.py": "from os import environ\n",
            "promote/flux/actions.py": "import os\nX = os.getenv('HOME')\n",
        },
    )
    assert environment_reads(root) == [
        "promote/flux/actions.py:2",
        "promote/naming.py:1",
        "promote/pipeline/cli.py:2",
    ]


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


def test_a_promote_input_error_loads_no_pipeline_module(tmp_path: Path) -> None:
    """An input error is reported before the release pipeline, semver or the output
    writer's ``secrets`` (its heredoc delimiter) is imported."""
    code = (
        "import sys, entrypoint; status = entrypoint.main();"
        "loaded = [m for m in sys.modules"
        " if m in ('semver', 'secrets') or m.startswith('promote.pipeline')];"
        "print(status, ','.join(sorted(loaded)), file=sys.stderr)"
    )
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "INPUT_COMMAND": "promote",
        "INPUT_IMAGE": "BAD IMAGE",
        "GITHUB_OUTPUT": str(tmp_path / "out"),
    }
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert "::error::invalid image reference" in result.stdout
    assert result.stderr.strip() == "2"
