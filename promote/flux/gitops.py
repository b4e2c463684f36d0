"""Read a GitOps tree the way Flux's controllers do: Flux objects, setter markers, images.

:func:`scan` is pure: it takes ``{relative posix path: text}`` (see
:mod:`promote.flux.source` for reading that from a checkout, a git revision or the GitHub
API) and returns a :class:`GitOpsTree` with every finding located by file and 1-based line.

What is read, and how it mirrors the controllers:

* **Flux objects** (``ImageRepository``, ``ImagePolicy``, ``ImageUpdateAutomation`` of
  ``image.toolkit.fluxcd.io/*``) from every ``*.yaml``/``*.yml``/``Kustomization`` file,
  multi-document, parsed with PyYAML. A missing ``metadata.namespace`` is taken from the
  nearest ``kustomization.yaml`` setting ``namespace:`` in the same or a parent folder,
  else ``default`` (kustomize's and the API server's defaulting).
* **Setter markers**, as image-automation-controller's ``ScreeningLocalReader`` and kyaml's
  ``FieldMeta.Read`` see them (IAC ``internal/update/setters.go``, ``filter.go``):
  only ``*.yaml``, ``*.yml`` and ``Kustomization`` files whose text contains
  ``"$imagepolicy"`` *with the double quotes* are read; a file that does not parse is
  skipped silently; every scalar *value* (mapping values and sequence items, never keys)
  is visited; its trailing line comment, with leading ``#`` characters stripped, must
  JSON-decode into an object of strings holding a non-empty ``$imagepolicy``. Extra prose,
  single quotes or non-string values mean "not a marker" — Flux ignores the comment
  without a word, so we record it in :attr:`GitOpsTree.ignored` for ``check`` to warn.
  Head comments (a comment on the line above) are not read: for ``key: value`` go-yaml
  attaches them to the key, which the setter filter never visits.
* **Images** in workload manifests: every scalar under a key ``image`` (containers, init
  containers, CronJobs...) and every kustomize ``images:`` entry (``name``/``newName``/
  ``newTag``/``digest``, in ``kustomization.yaml`` or a Flux ``Kustomization.spec.images``),
  with the markers found on them. HelmRelease values with ``image: {repository, tag}`` are
  not interpreted.

Environment folders are path segments named ``develop``, ``staging`` or ``production``;
a file's environment is the last such folder on its path.
"""

from __future__ import annotations

import json
import posixpath
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import yaml

from promote.naming import ENVS

if TYPE_CHECKING:
    from promote.flux import ImagePolicy

#: Flux's image automation API group; ``v1`` and ``v1beta2`` share one spec.
IMAGE_API_GROUP = "image.toolkit.fluxcd.io"
FLUX_KINDS = ("ImageRepository", "ImagePolicy", "ImageUpdateAutomation")
#: source-controller's API group and the source kind an automation checks out.
SOURCE_API_GROUP = "source.toolkit.fluxcd.io"
SOURCE_KINDS = ("GitRepository",)
#: The marker key; the reader screens files for it *with* the double quotes.
MARKER_KEY = "$imagepolicy"
SCREEN_TOKEN = '"$imagepolicy"'  # noqa: S105 - a marker key, not a secret
#: Setter suffixes besides the full ``ns:name`` form (IAC ``setters.go``).
MARKER_FIELDS = ("tag", "name", "digest")
#: Files larger than this are not read (no GitOps manifest comes close).
MAX_FILE_BYTES = 2 * 1024 * 1024


def is_manifest_name(path: str) -> bool:
    """Whether the controllers read ``path``: ``*.yaml``, ``*.yml`` or ``Kustomization``."""
    base = posixpath.basename(path)
    return base.endswith((".yaml", ".yml")) or base == "Kustomization"


def env_of(path: str) -> str | None:
    """The environment folder of ``path`` (its last ``develop``/``staging``/``production``
    directory segment), or ``None``."""
    found = None
    for segment in posixpath.dirname(path).split("/"):
        if segment in ENVS:
            found = segment
    return found


def env_of_name(name: str) -> str | None:
    """The environment named as a ``-``-separated word of ``name`` (``backend-production``)."""
    found = None
    for word in name.split("-"):
        if word in ENVS:
            found = word
    return found


@dataclass(frozen=True)
class FluxObject:
    """One image-automation object with where it is written.

    ``lines`` maps a field path (``("spec", "filterTags", "pattern")``) to its line, so
    findings can point at the exact field; :meth:`line_of` falls back to the document.
    """

    kind: str
    api_version: str
    name: str
    namespace: str
    file: str
    line: int
    doc: Mapping[str, Any]
    lines: Mapping[tuple[str | int, ...], int] = field(default_factory=dict, repr=False)

    @property
    def ref(self) -> str:
        return f"{self.namespace}:{self.name}"

    @property
    def spec(self) -> Mapping[str, Any]:
        spec = self.doc.get("spec")
        return spec if isinstance(spec, Mapping) else {}

    def line_of(self, *path: str | int) -> int:
        """The line of the deepest existing field along ``path``."""
        for end in range(len(path), 0, -1):
            if path[:end] in self.lines:
                return self.lines[path[:end]]
        return self.line


@dataclass(frozen=True)
class Marker:
    """A setter marker as Flux reads it: ``# {"$imagepolicy": "<ns>:<name>[:<field>]"}``.

    ``field`` is ``""`` for the full form (the scalar becomes ``image:tag[@digest]``), or
    ``tag``/``name``/``digest``. ``valid`` is false when the setter value has another shape
    (Flux then matches no policy and silently leaves the scalar alone).
    """

    file: str
    line: int
    column: int
    setter: str
    namespace: str
    policy: str
    field: str
    valid: bool
    value: str
    path: str

    @property
    def policy_ref(self) -> str:
        return f"{self.namespace}:{self.policy}"


@dataclass(frozen=True)
class IgnoredComment:
    """A comment mentioning ``$imagepolicy`` that Flux will not treat as a marker."""

    file: str
    line: int
    reason: str


@dataclass(frozen=True)
class ImageField:
    """An image reference in a workload manifest or a kustomize ``images:`` entry."""

    file: str
    line: int
    kind: str  # "container" or "kustomize"
    reference: str  # what is written: the image field, or the entry's name/newName
    tag: str | None
    digest: str | None
    markers: tuple[Marker, ...]
    path: str


@dataclass
class GitOpsTree:
    """Everything :func:`scan` found; paths are relative posix paths."""

    files: list[str] = field(default_factory=list)
    objects: list[FluxObject] = field(default_factory=list)
    markers: list[Marker] = field(default_factory=list)
    ignored: list[IgnoredComment] = field(default_factory=list)
    images: list[ImageField] = field(default_factory=list)
    #: manifest files that do not parse as YAML: (file, line, message)
    unparseable: list[tuple[str, int, str]] = field(default_factory=list)
    #: the revision the tree was read at (a commit sha), when known
    revision: str | None = None
    #: source-controller ``GitRepository`` objects (what an automation's sourceRef names)
    sources: list[FluxObject] = field(default_factory=list)

    def of_kind(self, kind: str) -> list[FluxObject]:
        return [o for o in self.objects if o.kind == kind]

    @property
    def policies(self) -> list[FluxObject]:
        return self.of_kind("ImagePolicy")

    @property
    def repositories(self) -> list[FluxObject]:
        return self.of_kind("ImageRepository")

    @property
    def automations(self) -> list[FluxObject]:
        return self.of_kind("ImageUpdateAutomation")

    def find(self, kind: str, ref: str) -> FluxObject | None:
        """The object of ``kind`` named ``namespace:name`` (the first, if duplicated)."""
        for obj in self.objects:
            if obj.kind == kind and obj.ref == ref:
                return obj
        return None

    def markers_for(self, ref: str) -> list[Marker]:
        return [m for m in self.markers if m.valid and m.policy_ref == ref]


def parse_setter(setter: str) -> tuple[str, str, str, bool]:
    """Split a setter value into ``(namespace, policy, field, valid)``."""
    parts = setter.split(":")
    if len(parts) == 2 and all(parts):
        return parts[0], parts[1], "", True
    if len(parts) == 3 and parts[0] and parts[1] and parts[2] in MARKER_FIELDS:
        return parts[0], parts[1], parts[2], True
    ns = parts[0] if len(parts) > 1 else ""
    name = parts[1] if len(parts) > 1 else parts[0]
    return ns, name, parts[2] if len(parts) > 2 else "", False


def decode_marker_comment(comment: str) -> str | None:
    """The setter of a line comment (``# {...}``) as kyaml's ``FieldMeta.Read`` decodes it.

    Leading ``#`` characters are stripped, the rest must be a JSON object of strings with a
    non-empty ``$imagepolicy``; anything else returns ``None``.
    """
    text = comment.lstrip("#")
    try:
        value = json.loads(text)
    except ValueError:
        return None
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        return None
    setter = value.get(MARKER_KEY, "")
    return setter or None


def split_image(reference: str) -> tuple[str, str | None, str | None]:
    """``repo[:tag][@digest]`` -> (repository, tag, digest); a port is not a tag."""
    digest = None
    if "@" in reference:
        reference, digest = reference.split("@", 1)
    tag = None
    slash = reference.rfind("/")
    colon = reference.rfind(":")
    if colon > slash:
        reference, tag = reference[:colon], reference[colon + 1 :]
    return reference, tag, digest


# -- scanning --------------------------------------------------------------------------------


def scan(files: Mapping[str, str], *, revision: str | None = None) -> GitOpsTree:
    """Scan ``{path: text}`` for Flux objects, markers and images (see the module doc)."""
    tree = GitOpsTree(revision=revision)
    paths = sorted(p for p in files if is_manifest_name(p))
    tree.files = paths
    namespaces = _kustomize_namespaces(files, paths)
    for path in paths:
        text = files[path]
        screened = SCREEN_TOKEN in text
        # comments naming the key without the double quotes are read only to warn: Flux
        # does not even parse such a file for markers
        mentions = screened or MARKER_KEY in text
        try:
            docs = _load_documents(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            line = mark.line + 1 if mark is not None else 1
            tree.unparseable.append((path, line, str(exc).splitlines()[0]))
            if screened:
                tree.ignored.append(
                    IgnoredComment(path, line, "the file is not valid YAML, so Flux skips it")
                )
            continue
        lines = text.splitlines()
        found_markers: list[Marker] = []
        for node, data in docs:
            walker = _Walker(path, lines, screened, mentions=mentions)
            walker.walk(node, ())
            found_markers.extend(walker.markers)
            tree.ignored.extend(walker.ignored)
            obj = _flux_object(path, node, data, walker.lines, namespaces)
            if obj is not None:
                tree.objects.append(obj)
            elif isinstance(data, Mapping):
                tree.images.extend(_images(path, node, data, walker.markers_by_pos))
                source = _flux_object(
                    path,
                    node,
                    data,
                    walker.lines,
                    namespaces,
                    kinds=SOURCE_KINDS,
                    group=SOURCE_API_GROUP,
                )
                if source is not None:
                    tree.sources.append(source)
        tree.markers.extend(found_markers)
        if mentions:
            reported = {c.line for c in tree.ignored if c.file == path}
            tree.ignored.extend(_unread_comments(path, lines, found_markers, reported))
    return tree


#: libyaml's loader when PyYAML was built with it (10x faster; same nodes and marks).
if TYPE_CHECKING:
    _SafeLoader = yaml.SafeLoader
else:
    _SafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Loader(_SafeLoader):
    """The safe loader, except that a scalar which only looks like a date (``2024-02-30``)
    stays text, as go-yaml reads it, instead of raising ValueError."""


def _timestamp_or_text(loader: Any, node: yaml.ScalarNode) -> Any:
    try:
        return yaml.SafeLoader.construct_yaml_timestamp(loader, node)
    except (ValueError, OverflowError):
        return loader.construct_scalar(node)


_Loader.add_constructor("tag:yaml.org,2002:timestamp", _timestamp_or_text)


def _load_documents(text: str) -> list[tuple[yaml.Node, Any]]:
    loader = _Loader(text)
    out: list[tuple[yaml.Node, Any]] = []
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                continue
            out.append((node, loader.construct_document(node)))
    finally:
        loader.dispose()
    return out


def _kustomize_namespaces(files: Mapping[str, str], paths: list[str]) -> dict[str, str]:
    """Folder -> ``namespace`` set by the ``kustomization.yaml`` in it."""
    result: dict[str, str] = {}
    for path in paths:
        if posixpath.basename(path) not in {"kustomization.yaml", "kustomization.yml"}:
            continue
        try:
            data = yaml.load(files[path], Loader=_Loader)  # noqa: S506 - a safe loader
        except yaml.YAMLError:
            continue
        if isinstance(data, Mapping) and isinstance(data.get("namespace"), str):
            result[posixpath.dirname(path)] = data["namespace"]
    return result


def _namespace_for(path: str, namespaces: Mapping[str, str]) -> str:
    folder = posixpath.dirname(path)
    while True:
        if folder in namespaces:
            return namespaces[folder]
        if not folder:
            return "default"
        folder = posixpath.dirname(folder)


def _flux_object(
    path: str,
    node: yaml.Node,
    data: Any,
    lines: Mapping[tuple[str | int, ...], int],
    namespaces: Mapping[str, str],
    *,
    kinds: tuple[str, ...] = FLUX_KINDS,
    group: str = IMAGE_API_GROUP,
) -> FluxObject | None:
    if not isinstance(data, Mapping):
        return None
    api = data.get("apiVersion")
    kind = data.get("kind")
    if not isinstance(api, str) or kind not in kinds:
        return None
    if api.split("/", 1)[0] != group:
        return None
    meta = data.get("metadata")
    meta = meta if isinstance(meta, Mapping) else {}
    name = meta.get("name")
    ns = meta.get("namespace")
    return FluxObject(
        kind=str(kind),
        api_version=api,
        name=name if isinstance(name, str) else "",
        namespace=ns if isinstance(ns, str) and ns else _namespace_for(path, namespaces),
        file=path,
        line=node.start_mark.line + 1,
        doc=data,
        lines=dict(lines),
    )


class _Walker:
    """Visits one document's nodes: field lines, and markers on scalar values."""

    def __init__(
        self, path: str, lines: list[str], screened: bool, *, mentions: bool = False
    ) -> None:
        self.path = path
        self.source = lines
        self.screened = screened
        self.mentions = mentions or screened
        self.lines: dict[tuple[str | int, ...], int] = {}
        self.markers: list[Marker] = []
        self.markers_by_pos: dict[tuple[int, int], Marker] = {}
        self.ignored: list[IgnoredComment] = []

    def walk(self, node: yaml.Node, path: tuple[str | int, ...]) -> None:
        self.lines.setdefault(path, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                name = key.value if isinstance(key, yaml.ScalarNode) else "?"
                self.lines.setdefault((*path, name), key.start_mark.line + 1)
                self.walk(value, (*path, name))
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                self.walk(item, (*path, index))
        elif isinstance(node, yaml.ScalarNode) and self.mentions:
            self._scalar(node, path)

    def _scalar(self, node: yaml.ScalarNode, path: tuple[str | int, ...]) -> None:
        if node.tag == "tag:yaml.org,2002:null" and node.value == "":
            return  # an empty value: no scalar text the comment could trail
        found = line_comment(node, self.source)
        if found is None:
            return
        line_no, comment = found
        setter = decode_marker_comment(comment)
        if setter is None or not self.screened:
            if MARKER_KEY in comment:
                quoted = "" if self.screened else " (single quotes or no quotes)"
                self.ignored.append(
                    IgnoredComment(
                        self.path,
                        line_no + 1,
                        f"this comment is not a JSON object of strings with "
                        f'"{MARKER_KEY}"{quoted}, so Flux ignores it'
                        + (
                            ""
                            if self.screened
                            else f'; Flux reads only files containing "{MARKER_KEY}" '
                            "with the double quotes"
                        ),
                    )
                )
            return
        ns, name, fld, valid = parse_setter(setter)
        marker = Marker(
            file=self.path,
            line=line_no + 1,
            column=node.start_mark.column + 1,
            setter=setter,
            namespace=ns,
            policy=name,
            field=fld,
            valid=valid,
            value=str(node.value),
            path=_dotted(path),
        )
        self.markers.append(marker)
        self.markers_by_pos[(node.start_mark.line, node.start_mark.column)] = marker


def line_comment(node: yaml.ScalarNode, source: list[str]) -> tuple[int, str] | None:
    """The comment kyaml reads for a scalar value as ``(0-based line, "# ...")``, or ``None``.

    Its line comment: a block scalar's follows its header (``|`` / ``>``) on the first line;
    any other scalar's follows its last character, after at least one space. Without one, a
    block-sequence item's one-line head comment (:func:`_head_comment`).
    """
    end = node.end_mark
    if node.style in {"|", ">"}:
        line_no = node.start_mark.line
        text = source[line_no] if line_no < len(source) else ""
        rest = text[node.start_mark.column + 1 :].lstrip("+-0123456789")
    else:
        line_no = end.line
        text = source[line_no] if line_no < len(source) else ""
        rest = text[end.column :]
    if not rest[:1].isspace() or not rest.strip().startswith("#"):
        if rest.strip():
            return None  # more text on the line (a flow collection): no comment of its own
        return _head_comment(node, source)
    return line_no, rest.strip()


def _head_comment(node: yaml.ScalarNode, source: list[str]) -> tuple[int, str] | None:
    """The one comment line right above a block-sequence item (``- value``) with no line
    comment: go-yaml v3 makes the comment lines above an item its ``HeadComment``, and kyaml's
    ``FieldMeta.Read`` reads that when the line comment is empty. Two or more lines are one
    comment that no longer parses as JSON; a mapping value's comment above belongs to its key.
    """
    if node.style in {"|", ">"}:
        return None
    line_no = node.start_mark.line
    text = source[line_no] if line_no < len(source) else ""
    if text[: node.start_mark.column].strip() != "-":
        return None
    above = line_no - 1
    while above >= 0 and source[above].lstrip().startswith("#"):
        above -= 1
    if above != line_no - 2:
        return None
    return line_no - 1, source[line_no - 1].strip()


def _unread_comments(
    path: str, lines: list[str], markers: list[Marker], reported: Collection[int] = ()
) -> Iterator[IgnoredComment]:
    """Comment lines naming ``$imagepolicy`` that no scalar value carries: on their own
    line, after a key whose value is a mapping or list, or inside a block scalar's text."""
    seen = {m.line for m in markers} | set(reported)
    for number, text in enumerate(lines, start=1):
        if number in seen or MARKER_KEY not in text or "#" not in text:
            continue
        if text.lstrip().startswith("#"):
            reason = (
                "a marker on its own line is not read: Flux reads the trailing comment on "
                "the value's line"
            )
        else:
            reason = (
                "this comment does not trail a scalar value Flux visits (it follows a key, a "
                "list or a mapping, or sits inside a block of text), so Flux ignores it"
            )
        yield IgnoredComment(path, number, reason)


def _dotted(path: tuple[str | int, ...]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


def _images(
    path: str,
    node: yaml.Node,
    data: Mapping[str, Any],
    markers: Mapping[tuple[int, int], Marker],
) -> Iterator[ImageField]:
    """Image references in one (non-Flux-image) document."""

    def marker_on(value: yaml.Node) -> tuple[Marker, ...]:
        m = markers.get((value.start_mark.line, value.start_mark.column))
        return (m,) if m is not None else ()

    def visit(n: yaml.Node, trail: tuple[str | int, ...]) -> Iterator[ImageField]:
        if isinstance(n, yaml.MappingNode):
            for key, value in n.value:
                name = key.value if isinstance(key, yaml.ScalarNode) else "?"
                if name == "image" and isinstance(value, yaml.ScalarNode) and value.value:
                    _, tag, digest = split_image(str(value.value))
                    yield ImageField(
                        file=path,
                        line=value.start_mark.line + 1,
                        kind="container",
                        reference=str(value.value),
                        tag=tag,
                        digest=digest,
                        markers=marker_on(value),
                        path=_dotted((*trail, name)),
                    )
                elif name == "images" and isinstance(value, yaml.SequenceNode):
                    yield from kustomize_entries(value, (*trail, name))
                else:
                    yield from visit(value, (*trail, name))
        elif isinstance(n, yaml.SequenceNode):
            for index, item in enumerate(n.value):
                yield from visit(item, (*trail, index))

    def kustomize_entries(
        seq: yaml.SequenceNode, trail: tuple[str | int, ...]
    ) -> Iterator[ImageField]:
        for index, item in enumerate(seq.value):
            if not isinstance(item, yaml.MappingNode):
                continue
            fields = {
                k.value: v
                for k, v in item.value
                if isinstance(k, yaml.ScalarNode) and isinstance(v, yaml.ScalarNode)
            }
            if "name" not in fields:
                continue
            found: tuple[Marker, ...] = ()
            for value in fields.values():
                found += marker_on(value)
            shown = fields.get("newTag") or fields.get("newName") or fields["name"]
            tag = fields["newTag"].value if "newTag" in fields else None
            digest = fields["digest"].value if "digest" in fields else None
            yield ImageField(
                file=path,
                line=shown.start_mark.line + 1,
                kind="kustomize",
                reference=str((fields.get("newName") or fields["name"]).value),
                tag=str(tag) if tag not in (None, "") else None,
                digest=str(digest) if digest not in (None, "") else None,
                markers=found,
                path=_dotted((*trail, index)),
            )

    yield from visit(node, ())


# -- policies ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class PolicyEntry:
    """An ImagePolicy object with its model (``None`` and an ``error`` when invalid)."""

    obj: FluxObject
    policy: ImagePolicy | None
    error: str | None


def find_policies(tree: GitOpsTree) -> list[PolicyEntry]:
    """Every ImagePolicy of ``tree`` turned into the selection model (or its error)."""
    from promote.errors import PromoteError
    from promote.flux import ImagePolicy

    entries = []
    for obj in tree.policies:
        doc = dict(obj.doc)
        meta = dict(doc.get("metadata") or {})
        meta.setdefault("namespace", obj.namespace)
        doc["metadata"] = meta
        try:
            entries.append(PolicyEntry(obj, ImagePolicy.from_manifest(doc), None))
        except PromoteError as exc:
            entries.append(PolicyEntry(obj, None, str(exc)))
    return entries


def exclusions_for(tree: GitOpsTree, policy_obj: FluxObject) -> list[str]:
    """The ``exclusionList`` of the ImageRepository the policy reads ([] = the default)."""
    ref = policy_obj.spec.get("imageRepositoryRef")
    if not isinstance(ref, dict) or not isinstance(ref.get("name"), str):
        return []
    ns = ref.get("namespace") or policy_obj.namespace
    repo = tree.find("ImageRepository", f"{ns}:{ref['name']}")
    if repo is None:
        return []
    listed = repo.spec.get("exclusionList")
    if isinstance(listed, list) and listed:
        return [str(p) for p in listed]
    return []
