"""One owner of the tag grammar: promote/naming.py.

Every module of ``promote/`` but naming.py is parsed (AST, so comments and docstrings never
count) for the ways a module builds, splits or matches tags by hand:

* ``env-literal``: a string that is exactly an environment name (``"production"``, …): the
  names are :data:`promote.naming.ENVS`, :data:`~promote.naming.DEFAULT_TARGET_ENV`, …;
* ``tag-regex``: a regular expression (``re.compile``/``fullmatch``/``match``/``search``/…)
  whose pattern spells a tag shape: the OCI tag grammar, a version part, ``-v`` before a
  version, ``sha256-`` or an environment name (use naming's parse functions and ``TAG_RE``);
* ``tag-split``: ``.split``/``.rsplit``/``.partition``/``.rpartition`` on ``"-v"``
  (use :func:`promote.naming.parse_immutable_tag`);
* ``tag-affix``: ``.endswith``/``.startswith``/``.removesuffix``/``.removeprefix`` on a
  tag piece: a cosign suffix (``".sig"``, …), ``"sha256-"``, ``"-v"`` or an env name and ``-``
  (use :func:`promote.naming.is_cosign_tag`, :func:`~promote.naming.is_referrers_tag`, …);
* ``tag-build``: a tag put together by hand: an f-string whose text between the values is
  only ``-``/``-v`` (``f"{env}-v{version}-{sha}-{ts}"``), or one holding ``sha256-``
  (use :func:`~promote.naming.immutable_tag`, :func:`~promote.naming.build_tag`,
  :func:`~promote.naming.referrers_tag`, :func:`~promote.naming.cosign_tag`).

No module outside naming.py has such a site; the check fails on the first new one.
"""

from __future__ import annotations

import ast
from collections import Counter
from pathlib import Path

from promote import naming

ROOT = Path(__file__).resolve().parent.parent
OWNER = "promote/naming.py"

REGEX_FUNCTIONS = {"compile", "fullmatch", "match", "search", "sub", "subn", "findall", "split"}
SPLITTERS = {"split", "rsplit", "partition", "rpartition"}
AFFIXERS = {"endswith", "startswith", "removesuffix", "removeprefix"}
#: Tag pieces an affix test spells.
TAG_AFFIXES = (*naming.COSIGN_SUFFIXES, "sha256-", "-v", *(f"{e}-" for e in naming.ENVS))
#: Pieces of a regex pattern that spell a tag shape.
TAG_SHAPES = (
    "[A-Za-z0-9_][A-Za-z0-9._-]",  # the OCI tag grammar
    "(0|[1-9][0-9]",  # a version part
    "-v(",
    "-v[",
    "-v{",
    "sha256-",
    *naming.ENVS,
)

Finding = tuple[str, str, str]  # (path, rule, source text of the site)


def _regex_call(node: ast.Call) -> str | None:
    """``re.<fn>`` / ``re2.<fn>`` for a regex call, else None."""
    func = node.func
    if (
        isinstance(func, ast.Attribute)
        and func.attr in REGEX_FUNCTIONS
        and isinstance(func.value, ast.Name)
        and func.value.id in {"re", "re2"}
    ):
        return f"{func.value.id}.{func.attr}"
    return None


def _text(node: ast.expr) -> str:
    """The literal text of a pattern: a string, or an f-string's constant parts."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(
            v.value for v in node.values if isinstance(v, ast.Constant) and isinstance(v.value, str)
        )
    return ""


def _affix_texts(node: ast.expr) -> set[str]:
    """The literal affixes of an ``endswith``-style argument (a string or a tuple of them)."""
    if isinstance(node, ast.Tuple):
        return {_text(e) for e in node.elts}
    return {_text(node)}


def _hand_built_tag(node: ast.JoinedStr) -> bool:
    parts = [v.value for v in node.values if isinstance(v, ast.Constant)]
    values = [v for v in node.values if isinstance(v, ast.FormattedValue)]
    if any(isinstance(p, str) and "sha256-" in p for p in parts):
        return True
    return len(values) >= 3 and bool(parts) and all(p in ("-", "-v") for p in parts)


def scan_source(path: str, source: str) -> list[Finding]:
    """Every hand-made tag site of one module (see the module docstring)."""
    tree = ast.parse(source)
    found: list[Finding] = []
    docstrings = {
        id(n.body[0].value)
        for n in ast.walk(tree)
        if isinstance(n, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
        and n.body
        and isinstance(n.body[0], ast.Expr)
        and isinstance(n.body[0].value, ast.Constant)
    }
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and node.value in naming.ENVS:
            if id(node) not in docstrings:
                found.append((path, "env-literal", f'"{node.value}"'))
        elif isinstance(node, ast.Call):
            name = _regex_call(node)
            if name and node.args and any(s in _text(node.args[0]) for s in TAG_SHAPES):
                found.append((path, "tag-regex", name))
            func = node.func
            if (
                isinstance(func, ast.Attribute)
                and func.attr in SPLITTERS
                and node.args
                and "-v" in _text(node.args[0])
            ):
                found.append((path, "tag-split", ast.get_source_segment(source, node) or ""))
            if (
                isinstance(func, ast.Attribute)
                and func.attr in AFFIXERS
                and node.args
                and _affix_texts(node.args[0]) & set(TAG_AFFIXES)
            ):
                found.append((path, "tag-affix", ast.get_source_segment(source, node) or ""))
        elif isinstance(node, ast.JoinedStr) and _hand_built_tag(node):
            found.append((path, "tag-build", ast.get_source_segment(source, node) or ""))
    return found


def scan_tree(root: Path) -> Counter[Finding]:
    findings: Counter[Finding] = Counter()
    for file in sorted((root / "promote").rglob("*.py")):
        path = file.relative_to(root).as_posix()
        if path != OWNER:
            findings.update(scan_source(path, file.read_text()))
    return findings


def test_only_naming_builds_splits_or_matches_tags() -> None:
    found = scan_tree(ROOT)
    assert not found, f"tags made by hand outside {OWNER} (use promote.naming): {sorted(found)}"


def test_the_scan_catches_each_way_of_making_a_tag_by_hand() -> None:
    """The checker itself can fail: each rule on a synthetic module, and what it spares."""
    source = '''
"""Docstring naming production and staging-<sha>-<ts> is fine."""
import re

DEFAULT = "production"
PATTERN = re.compile(r"production-v(0|[1-9][0-9]*)\\.(0|[1-9][0-9]*)")
OCI = re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}", "x")
REFERRERS = re.match(r"sha256-[0-9a-f]{64}", "x")


def env_of(tag: str) -> str:
    """Not a finding either: production."""
    return tag.split("-v")[0]


def build(env: str, version: str, sha: str, ts: int) -> str:
    return f"{env}-v{version}-{sha}-{ts}"


def index(hexdigest: str) -> str:
    return f"sha256-{hexdigest}"


def signature(tag: str) -> bool:
    return tag.endswith(".sig") or tag.startswith(("x", "sha256-"))


def fine(a: str, b: str) -> str:
    return f"{a}: {b} (production is a word in a message)" + re.sub(r"\\s+", " ", a)
'''
    found = Counter(scan_source("x.py", source))
    assert found == Counter(
        {
            ("x.py", "env-literal", '"production"'): 1,
            ("x.py", "tag-regex", "re.compile"): 1,
            ("x.py", "tag-regex", "re.fullmatch"): 1,
            ("x.py", "tag-regex", "re.match"): 1,
            ("x.py", "tag-split", 'tag.split("-v")'): 1,
            ("x.py", "tag-build", 'f"{env}-v{version}-{sha}-{ts}"'): 1,
            ("x.py", "tag-build", 'f"sha256-{hexdigest}"'): 1,
            ("x.py", "tag-affix", 'tag.endswith(".sig")'): 1,
            ("x.py", "tag-affix", 'tag.startswith(("x", "sha256-"))'): 1,
        }
    )


def test_the_tag_an_env_selects_parses_back_and_only_its_pattern_admits_it() -> None:
    """``env_tag`` (what flux/check.py probes policies with) agrees with naming's parsers and
    Flux patterns: each env's tag parses back and is admitted by its own pattern only."""
    import re

    version = naming.parse_version("1.2.3")
    tags = {
        env: naming.env_tag(env, version=version, short_sha="abc1234", timestamp=1767225600)
        for env in naming.ENVS
    }
    assert tags[naming.DEFAULT_TARGET_ENV] == "production-v1.2.3-abc1234-1767225600"
    assert tags[naming.DEFAULT_SOURCE_ENV] == "staging-abc1234-1767225600"
    for env, tag in tags.items():
        assert naming.TAG_RE.fullmatch(tag)
        parsed = (
            naming.parse_build_tag(env, tag)
            if naming.is_build_env(env)
            else naming.parse_immutable_tag(env, tag)
        )
        assert parsed is not None and parsed.timestamp == 1767225600, tag
        admitted = [t for t in tags.values() if re.search(naming.flux_tag_pattern(env), t)]
        assert admitted == [tag], env
        assert not any(re.search(naming.flux_tag_pattern(env), f) for f in naming.FLOATING_TAGS)
    digest = "sha256:" + "ab" * 32
    assert naming.is_referrers_tag(naming.referrers_tag(digest))
    assert not naming.is_referrers_tag(naming.cosign_tag(digest, ".sig"))
    assert naming.cosign_tag(digest, ".sig") == "sha256-" + "ab" * 32 + ".sig"
    for suffix in naming.COSIGN_SUFFIXES:
        assert naming.is_cosign_tag(naming.cosign_tag(digest, suffix))
        assert not naming.is_referrers_tag(naming.cosign_tag(digest, suffix))
    for other in ("release.sig", naming.referrers_tag(digest), "sha256-ab.sig", "x.sig.bak"):
        assert not naming.is_cosign_tag(other), other
