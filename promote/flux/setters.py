"""image-automation-controller's setters, as a pure function over ``{path: text}``.

``apply_setters(files, policies, update_path=None) -> dict[str, str]`` is the contract;
:func:`run_setters` returns the same tree plus the changes (file, object, old, new,
setter), which ``automate`` commits and renders into the commit message.

What is mirrored from IAC v1.2.1 (``internal/update/setters.go``, ``filter.go``,
``filereader.go``; the facts are in ``../shared/flux-conformance/setter_cases.json``):

* **setters**: for every policy with a ``latestRef`` (a non-empty ``tag``) four setters
  exist: ``<ns>:<name>`` -> ``image:tag`` (+ ``@digest`` when the digest is non-empty),
  ``:tag``, ``:name`` and ``:digest`` (``""`` without a digest). A full reference that
  does not parse fails the whole update, as go-containerregistry's parse does there.
* **files read**: under ``update_path`` (secure-joined onto the root: ``..`` cannot leave
  it) only ``*.yaml``, ``*.yml`` and ``Kustomization`` whose text holds ``"$imagepolicy"``
  with the double quotes; a file that does not parse is skipped without error.
* **markers**: the trailing comment of a scalar *value* (``#`` stripped, a JSON object of
  strings) naming a defined setter — or, for a block-sequence item without one, its one-line
  head comment (kyaml ``FieldMeta.Read`` falls back to the head comment); anything else is
  left alone silently.
* **values**: the whole scalar is replaced; a plain value that YAML 1.1 would read as a
  non-string (``1.0``, ``true``, ``0x1f``) is double-quoted (kyaml
  ``FormatNonStringStyle``), and so is a value go-yaml v3 would resolve to another tag
  than the string it replaces (``""``, a date such as ``2024-01-15``: its encoder
  force-quotes them); a change is recorded only when the value differs, and only
  files with a change are rewritten.

One deliberate difference: Flux re-serialises a file it writes through kyaml, which can
drop a leading ``---``, blank lines, or re-indent a file not in kyaml's canonical layout.
Here only the marked scalars change and every other byte stays (see docs/flux-model.md).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from promote.errors import GitOpsError
from promote.flux.gitops import (
    SCREEN_TOKEN,
    _load_documents,
    decode_marker_comment,
    is_manifest_name,
    line_comment,
)

#: A YAML line break (PyYAML's marks count these; ``str.splitlines`` knows more).
_BREAK = re.compile("\r\n|[\r\n\x85\u2028\u2029]")


@dataclass(frozen=True)
class ObjectId:
    """The document holding a changed field (kyaml ``ResourceIdentifier``)."""

    api_version: str | None
    kind: str | None
    namespace: str | None
    name: str | None

    def as_dict(self) -> dict[str, str | None]:
        return {
            "apiVersion": self.api_version,
            "kind": self.kind,
            "namespace": self.namespace,
            "name": self.name,
        }


@dataclass(frozen=True)
class Change:
    """One scalar a setter rewrote. ``file`` is relative to the directory the setters ran
    over (``update_path``), as in Flux's ``Result``; ``path`` is relative to the root."""

    file: str
    path: str
    object: ObjectId
    old: str
    new: str
    setter: str


@dataclass
class SetterResult:
    files: dict[str, str]
    changes: list[Change] = field(default_factory=list)
    #: screened files under the update path that do not parse (Flux's ``ProblemFiles``)
    problem_files: list[str] = field(default_factory=list)

    @property
    def changed_files(self) -> list[str]:
        return sorted({c.path for c in self.changes})


def apply_setters(
    files: Mapping[str, str],
    policies: Iterable[Mapping[str, str | None]],
    update_path: str | None = None,
) -> dict[str, str]:
    """Every file's text after the setters ran (unchanged files included).

    ``files`` maps relative posix paths to text; each policy is ``{"namespace", "name",
    "image", "tag", "digest"}`` (its ``status.latestRef``; ``tag`` ``None`` = no latestRef).
    """
    return run_setters(files, policies, update_path).files


def setter_values(policies: Iterable[Mapping[str, str | None]]) -> dict[str, str]:
    """Setter name -> value for every policy with a latestRef (setters.go)."""
    from promote.errors import ReferenceError_
    from promote.reference import parse_reference

    values: dict[str, str] = {}
    for policy in policies:
        tag = policy.get("tag")
        if not tag:
            continue
        image = policy.get("image") or ""
        digest = policy.get("digest") or ""
        full = f"{image}:{tag}" + (f"@{digest}" if digest else "")
        try:
            parse_reference(full)
        except ReferenceError_ as exc:
            raise GitOpsError(f"encountered invalid image ref {full!r}: {exc}") from None
        base = f"{policy.get('namespace') or ''}:{policy.get('name') or ''}"
        values[base] = full
        values[base + ":tag"] = tag
        values[base + ":name"] = image
        values[base + ":digest"] = digest
    return values


def normalise_update_path(update_path: str | None) -> str:
    """``spec.update.path`` as a root-relative folder (``""`` = the whole tree).

    Like ``securejoin.SecureJoin`` on a tree without symlinks: ``..`` never climbs above
    the root, leading ``/`` and ``./`` are dropped.
    """
    parts: list[str] = []
    for part in (update_path or "").replace("\\", "/").split("/"):
        if part in {"", "."}:
            continue
        if part == "..":
            if parts:
                parts.pop()
            continue
        parts.append(part)
    return "/".join(parts)


def run_setters(
    files: Mapping[str, str],
    policies: Iterable[Mapping[str, str | None]],
    update_path: str | None = None,
) -> SetterResult:
    """:func:`apply_setters` with the changes and the problem files."""
    values = setter_values(policies)
    root = normalise_update_path(update_path)
    result = SetterResult(files=dict(files))
    for path in sorted(files):
        if root and not path.startswith(root + "/"):
            continue
        rel = path[len(root) + 1 :] if root else path
        text = files[path]
        if not is_manifest_name(path) or SCREEN_TOKEN not in text:
            continue
        try:
            new_text, changes = _update_file(text, values, rel, path)
        except yaml.YAMLError:
            result.problem_files.append(path)
            continue
        if changes:
            result.files[path] = new_text
            result.changes.extend(changes)
    return result


# -- one file ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Site:
    start: int
    end: int
    style: str
    old: str
    setter: str
    object: ObjectId
    comment: str


def _update_file(
    text: str, values: Mapping[str, str], rel: str, path: str
) -> tuple[str, list[Change]]:
    source = _BREAK.split(text)
    starts = [0]
    for match in _BREAK.finditer(text):
        starts.append(match.end())
    sites: list[_Site] = []
    for node, data in _load_documents(text):
        oid = _object_id(data)
        for scalar in _value_scalars(node):
            found = line_comment(scalar, source)
            if found is None:
                continue
            setter = decode_marker_comment(found[1])
            if setter is None or setter not in values:
                continue
            start = starts[scalar.start_mark.line] + scalar.start_mark.column
            end = starts[scalar.end_mark.line] + scalar.end_mark.column
            style = scalar.style or ""
            sites.append(_Site(start, end, style, str(scalar.value), setter, oid, found[1]))
    changes = [
        Change(rel, path, s.object, s.old, values[s.setter], s.setter)
        for s in sites
        if values[s.setter] != s.old
    ]
    if not changes:
        return text, []
    out = text
    # Every defined setter's field is (re)formatted in a file that is written, as kyaml
    # does; an unchanged plain field only gains quotes when YAML 1.1 misreads it.
    for site in sorted(sites, key=lambda s: s.start, reverse=True):
        value = values[site.setter]
        if value == site.old and not (site.style == "" and is_yaml11_non_string(value)):
            continue
        rendered = _render(value, site.style, site.old)
        if site.style in {"|", ">"}:
            # a block scalar's span runs from its header (which carries the marker) to the
            # next line: the value becomes one double-quoted line with the marker kept
            rendered += " " + site.comment + "\n"
        out = out[: site.start] + rendered + out[site.end :]
    return out, changes


def _value_scalars(node: yaml.Node) -> Iterable[yaml.ScalarNode]:
    """Scalar values (mapping values, sequence items; never keys) in document order."""
    seen: set[int] = set()
    stack = [node]
    out: list[yaml.ScalarNode] = []
    while stack:
        current = stack.pop()
        if id(current) in seen:  # an alias repeats its anchor's node
            continue
        seen.add(id(current))
        if isinstance(current, yaml.MappingNode):
            stack.extend(value for _, value in reversed(current.value))
        elif isinstance(current, yaml.SequenceNode):
            stack.extend(reversed(current.value))
        elif isinstance(current, yaml.ScalarNode):
            if current.tag == "tag:yaml.org,2002:null" and current.value == "":
                continue
            out.append(current)
    return out


def _object_id(data: Any) -> ObjectId:
    if not isinstance(data, Mapping):
        return ObjectId(None, None, None, None)
    meta = data.get("metadata")
    meta = meta if isinstance(meta, Mapping) else {}

    def text(value: Any) -> str | None:
        return value if isinstance(value, str) and value else None

    return ObjectId(
        text(data.get("apiVersion")),
        text(data.get("kind")),
        text(meta.get("namespace")),
        text(meta.get("name")),
    )


# -- writing a scalar --------------------------------------------------------------------------

#: go-yaml v2's (YAML 1.1) special plain scalars that are not strings.
_YAML11_SPECIAL = frozenset(
    (
        *("y", "Y", "yes", "Yes", "YES", "n", "N", "no", "No", "NO"),
        *("true", "True", "TRUE", "false", "False", "FALSE"),
        *("on", "On", "ON", "off", "Off", "OFF", "~", "null", "Null", "NULL"),
        *(".nan", ".NaN", ".NAN", ".inf", ".Inf", ".INF"),
        *("+.inf", "+.Inf", "+.INF", "-.inf", "-.Inf", "-.INF"),
    )
)
_YAML11_INT = re.compile(r"[-+]?(?:0b[01_]+|0x[0-9a-fA-F_]+|0o?[0-7_]+|[0-9][0-9_]*)")
_YAML11_FLOAT = re.compile(r"[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?")
#: Characters that may not start a plain scalar, or sequences that end one early.
_PLAIN_UNSAFE_START = set("-?:,[]{}#&*!|>'\"%@`")
_PLAIN_UNSAFE = re.compile(r": |:$| #|[\[\]{},]|^\s|\s$")


def is_yaml11_non_string(value: str) -> bool:
    """Whether a YAML 1.1 parser (go-yaml v2, as kyaml's ``IsValueNonString``) would read the
    plain ``value`` as something other than a string."""
    if not value or "\n" in value:
        return False
    if value in _YAML11_SPECIAL:
        return True
    if _YAML11_INT.fullmatch(value) and value.strip("-+_"):
        return any(c.isdigit() for c in value)
    if _YAML11_FLOAT.fullmatch(value):
        return True
    try:
        loaded = yaml.safe_load(value)
    except (yaml.YAMLError, ValueError, OverflowError):  # e.g. 2024-13-45: not a real date
        return False
    return isinstance(loaded, (list, dict))


_DATE = re.compile(r"([0-9]{4})-([0-9]{1,2})-([0-9]{1,2})")


def is_yaml12_date(value: str) -> bool:
    """Whether go-yaml v3 resolves the plain ``value`` as a !!timestamp (the only form a tag
    can take: ``YYYY-M-D``, a real date)."""
    import datetime

    m = _DATE.fullmatch(value)
    if m is None:
        return False
    try:
        datetime.date(int(m[1]), int(m[2]), int(m[3]))
    except ValueError:
        return False
    return True


def _forces_quotes(value: str, old: str) -> bool:
    """go-yaml v3's encoder double-quotes a plain !!str whose new text would resolve to
    another tag: ``""`` (null) or a date, when the old text was a string."""
    if not value:
        return True
    return is_yaml12_date(value) and not (is_yaml12_date(old) or is_yaml11_non_string(old))


def _render(value: str, style: str, old: str = "") -> str:
    """``value`` written in the scalar's style (go-yaml's choices when it must change)."""
    if style == "'":
        return "'" + value.replace("'", "''") + "'"
    if style in {'"', "|", ">"} or is_yaml11_non_string(value) or _forces_quotes(value, old):
        return _double_quoted(value)
    if value and value[0] not in _PLAIN_UNSAFE_START and not _PLAIN_UNSAFE.search(value):
        return value
    return "'" + value.replace("'", "''") + "'"


def _double_quoted(value: str) -> str:
    out = []
    for char in value:
        if char in {'"', "\\"}:
            out.append("\\" + char)
        elif char == "\n":
            out.append("\\n")
        elif char == "\t":
            out.append("\\t")
        elif ord(char) < 0x20:
            out.append(f"\\x{ord(char):02x}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'
