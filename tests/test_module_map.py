"""README's module map (the block under "## Development") names every module and package
of ``promote/`` and the test support package ``testkit/``, and nothing that is gone."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _map_block() -> str:
    text = (ROOT / "README.md").read_text()
    development = text.split("\n## Development\n", 1)[1]
    return development.split("```", 2)[1]


def _named(block: str, root: Path = ROOT) -> set[str]:
    """Every path a map line names: ``a/b.py, c.py`` names ``a/b.py`` and ``a/c.py`` (or
    ``c.py`` at the root, ``entrypoint.py`` say, when ``a/c.py`` does not exist)."""
    named: set[str] = set()
    for line in block.splitlines():
        head = re.split(r"\s{2,}", line.strip(), maxsplit=1)[0]
        base = ""
        for piece in (p.strip() for p in head.split(",")):
            if "/" in piece.rstrip("/"):
                base = piece.rsplit("/", 1)[0] if not piece.endswith("/") else ""
                named.add(piece)
            elif piece:
                sibling = f"{base}/{piece}"
                named.add(sibling if base and (root / sibling).exists() else piece)
    return named


def test_the_module_map_names_every_module_and_only_those() -> None:
    named = _named(_map_block())
    wanted = {
        f"promote/{p.name}" + ("/" if p.is_dir() else "")
        for p in (ROOT / "promote").iterdir()
        if p.name != "__init__.py" and (p.suffix == ".py" or (p / "__init__.py").exists())
    } | {"testkit/"}
    missing = sorted(w for w in wanted if not any(n.startswith(w) for n in named))
    gone = sorted(n for n in named if n.endswith((".py", "/")) and not (ROOT / n).exists())
    assert not missing, f"README's module map lacks {missing}"
    assert not gone, f"README's module map names what does not exist: {gone}"


def test_the_map_reader_sees_each_form_of_line(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "c.py").write_text("")
    block = "a/b.py, c.py, top.py  x\nd/           y\ne.py, f/g.py  z\n"
    assert _named(block, tmp_path) == {"a/b.py", "a/c.py", "top.py", "d/", "e.py", "f/g.py"}
