"""ImageUpdateAutomation, modelled for a local run: its spec, its policies, its commit message.

Pure: :func:`automation_spec` reads one ``ImageUpdateAutomation`` (``image.toolkit.fluxcd.io/
v1``) from a scanned tree the way image-automation-controller does (IAC
``api/v1/imageupdateautomation_types.go``, ``internal/source``, ``internal/policy``):

* ``sourceRef`` must name a ``GitRepository`` (namespace default: the automation's);
* the checkout branch is ``git.checkout.ref.branch``, else the GitRepository's
  ``spec.ref.branch``; a tag, semver or commit checkout needs ``git.push.branch``;
* the push branch is ``git.push.branch``, else the checkout branch;
* ``update.strategy`` must be ``Setters`` (the default); ``update.path`` is confined to the
  root (see :func:`promote.flux.setters.normalise_update_path`);
* ``git.commit.author.email`` is required; the committer is the author;
* the policies are the ImagePolicies in the automation's namespace matching
  ``policySelector`` (``matchLabels`` and ``matchExpressions``; none = all).

:func:`render_message` renders ``git.commit.messageTemplate`` with the data Flux offers
(``.AutomationObject``, ``.Changed`` with ``.FileChanges``, ``.Objects``, ``.Changes``, and
``.Values`` from ``messageTemplateValues``) in the subset of Go ``text/template`` the Flux
docs and examples use: fields, variables, ``range`` (with ``$k, $v :=``), ``if``/``else``,
``with``, comments and ``{{-``/``-}}`` trimming. Anything else (functions, Sprig, pipes) is
a :class:`~promote.errors.GitOpsError` naming it, as are the removed fields ``.Updated``
and ``.Changed.ImageResult`` (Flux stalls with ``RemovedTemplateField``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from promote.errors import GitOpsError
from promote.flux.gitops import FluxObject, GitOpsTree
from promote.flux.setters import Change, ObjectId, normalise_update_path

#: image-automation-controller's ``defaultMessageTemplate``.
DEFAULT_MESSAGE = "Update from image update automation"
REMOVED_FIELDS = (".Updated", ".Changed.ImageResult")


@dataclass(frozen=True)
class AutomationSpec:
    """What a run of one ImageUpdateAutomation needs, read from its manifest."""

    obj: FluxObject
    suspend: bool
    source: FluxObject  # the GitRepository
    url: str
    checkout_branch: str
    push_branch: str
    update_path: str
    author_name: str
    author_email: str
    message_template: str
    values: Mapping[str, str]
    selector: Mapping[str, Any] | None

    @property
    def ref(self) -> str:
        return self.obj.ref

    @property
    def force_push(self) -> bool:
        """A push branch other than the checkout branch is rebuilt from it and force-pushed."""
        return self.push_branch != self.checkout_branch


def _get(doc: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(doc, Mapping):
            return None
        doc = doc.get(key)
    return doc


def automation_spec(tree: GitOpsTree, obj: FluxObject) -> AutomationSpec:
    """Read ``obj`` (an ImageUpdateAutomation); a spec Flux would refuse raises GitOpsError."""
    where = f"ImageUpdateAutomation {obj.ref} ({obj.file}:{obj.line})"
    spec = obj.spec
    source_ref = spec.get("sourceRef")
    if not isinstance(source_ref, Mapping) or not source_ref.get("name"):
        raise GitOpsError(f"{where}: spec.sourceRef.name is required")
    kind = source_ref.get("kind") or "GitRepository"
    if kind != "GitRepository":
        raise GitOpsError(f"{where}: sourceRef.kind {kind!r} is not supported (GitRepository)")
    source_ns = source_ref.get("namespace") or obj.namespace
    source_name = f"{source_ns}:{source_ref['name']}"
    source = next((o for o in tree.sources if o.ref == source_name), None)
    if source is None:
        raise GitOpsError(f"{where}: its sourceRef GitRepository {source_name} is not in the tree")
    url = _get(source.doc, "spec", "url")
    if not isinstance(url, str) or not url:
        raise GitOpsError(f"GitRepository {source_name}: spec.url is empty")
    checkout = _get(spec, "git", "checkout", "ref")
    if checkout is None:
        checkout = _get(source.doc, "spec", "ref")
    checkout_branch = _get(checkout, "branch") if isinstance(checkout, Mapping) else None
    push_branch = _get(spec, "git", "push", "branch")
    if isinstance(checkout, Mapping) and not checkout_branch and checkout:
        others = ", ".join(k for k in ("tag", "semver", "commit", "name") if checkout.get(k))
        raise GitOpsError(
            f"{where}: checking out {others or 'this ref'} is not supported here; give "
            "git.checkout.ref.branch"
        )
    checkout_branch = checkout_branch or "master"  # source-controller's default branch
    if _get(spec, "git", "push", "refspec"):
        raise GitOpsError(f"{where}: git.push.refspec is not supported by promote automate")
    strategy = _get(spec, "update", "strategy") or "Setters"
    if strategy != "Setters":
        raise GitOpsError(f"{where}: update.strategy {strategy!r} is invalid (only Setters)")
    author = _get(spec, "git", "commit", "author")
    email = _get(author, "email")
    if not isinstance(email, str) or not email:
        raise GitOpsError(f"{where}: git.commit.author.email is required")
    name = _get(author, "name")
    template = _get(spec, "git", "commit", "messageTemplate")
    values = _get(spec, "git", "commit", "messageTemplateValues")
    selector = spec.get("policySelector")
    return AutomationSpec(
        obj=obj,
        suspend=spec.get("suspend") is True,
        source=source,
        url=url,
        checkout_branch=str(checkout_branch),
        push_branch=str(push_branch or checkout_branch),
        update_path=normalise_update_path(_get(spec, "update", "path")),
        author_name=str(name) if name else "",
        author_email=email,
        message_template=template if isinstance(template, str) and template else DEFAULT_MESSAGE,
        values={str(k): str(v) for k, v in values.items()} if isinstance(values, Mapping) else {},
        selector=selector if isinstance(selector, Mapping) else None,
    )


def matches_selector(labels: Mapping[str, Any], selector: Mapping[str, Any] | None) -> bool:
    """A Kubernetes label selector (``matchLabels`` AND ``matchExpressions``); none = all."""
    if not selector:
        return True
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op = expr.get("key"), expr.get("operator")
        values = [str(v) for v in expr.get("values") or []]
        present = key in labels
        if op == "In" and not (present and str(labels[key]) in values):
            return False
        if op == "NotIn" and present and str(labels[key]) in values:
            return False
        if op == "Exists" and not present:
            return False
        if op == "DoesNotExist" and present:
            return False
        if op not in {"In", "NotIn", "Exists", "DoesNotExist"}:
            raise GitOpsError(f"policySelector operator {op!r} is not a label selector operator")
    return True


def automation_policies(tree: GitOpsTree, spec: AutomationSpec) -> list[FluxObject]:
    """The ImagePolicies the automation applies: same namespace, matching its selector."""
    out = []
    for policy in tree.policies:
        labels = _get(policy.doc, "metadata", "labels")
        if policy.namespace == spec.obj.namespace and matches_selector(
            labels if isinstance(labels, Mapping) else {}, spec.selector
        ):
            out.append(policy)
    return out


# -- the commit message --------------------------------------------------------------------


@dataclass(frozen=True)
class _NamespacedName:
    Namespace: str
    Name: str

    def __str__(self) -> str:
        return f"{self.Namespace}/{self.Name}"


@dataclass(frozen=True)
class _Change:
    OldValue: str
    NewValue: str
    Setter: str

    def __str__(self) -> str:
        return f"{{{self.OldValue} {self.NewValue} {self.Setter}}}"


@dataclass(frozen=True)
class _Object:
    APIVersion: str
    Kind: str
    Name: str
    Namespace: str

    def __str__(self) -> str:
        return f"{self.Kind}/{self.Namespace + '/' if self.Namespace else ''}{self.Name}"


def _obj(oid: ObjectId) -> _Object:
    return _Object(oid.api_version or "", oid.kind or "", oid.name or "", oid.namespace or "")


@dataclass
class _Result:
    """``.Changed``: Flux's ``update.Result``."""

    FileChanges: dict[str, dict[_Object, list[_Change]]] = field(default_factory=dict)

    def Objects(self) -> dict[_Object, list[_Change]]:
        out: dict[_Object, list[_Change]] = {}
        for objects in self.FileChanges.values():
            for obj, changes in objects.items():
                out.setdefault(obj, []).extend(changes)
        return out

    def Changes(self) -> list[_Change]:
        seen: dict[_Change, None] = {}
        for objects in self.FileChanges.values():
            for changes in objects.values():
                for change in changes:
                    seen.setdefault(change, None)
        return list(seen)


@dataclass(frozen=True)
class _TemplateData:
    AutomationObject: _NamespacedName
    Changed: _Result
    Values: Mapping[str, str]


def template_data(spec: AutomationSpec, changes: Iterable[Change]) -> _TemplateData:
    result = _Result()
    for change in changes:
        by_obj = result.FileChanges.setdefault(change.file, {})
        by_obj.setdefault(_obj(change.object), []).append(
            _Change(change.old, change.new, change.setter)
        )
    return _TemplateData(
        _NamespacedName(spec.obj.namespace, spec.obj.name), result, dict(spec.values)
    )


def render_message(template: str, data: Any) -> str:
    """Render the Go-template subset described in the module doc; errors name the action."""
    for removed in REMOVED_FIELDS:
        if re.search(re.escape(removed) + r"\b", template):
            raise GitOpsError(
                f"messageTemplate uses {removed}, which Flux removed (RemovedTemplateField); "
                "use .Changed.Changes or .Changed.Objects"
            )
    nodes = _parse(_tokens(template))
    out: list[str] = []
    _exec(nodes, data, {"$": data}, out)
    return "".join(out)


_ACTION = re.compile(r"\{\{(-\s)?(.*?)(\s-)?\}\}", re.S)


def _tokens(template: str) -> list[tuple[str, str]]:
    """``("text", s)`` and ``("action", body)`` with Go's trim markers applied."""
    tokens: list[tuple[str, str]] = []
    pos = 0
    trim_next = False
    for match in _ACTION.finditer(template):
        text = template[pos : match.start()]
        if trim_next:
            text = text.lstrip(" \t\r\n")
        if match.group(1):
            text = text.rstrip(" \t\r\n")
        if text:
            tokens.append(("text", text))
        body = match.group(2).strip()
        if not (body.startswith("/*") and body.endswith("*/")):
            tokens.append(("action", body))
        trim_next = bool(match.group(3))
        pos = match.end()
    text = template[pos:]
    if trim_next:
        text = text.lstrip(" \t\r\n")
    if "{{" in text:
        raise GitOpsError("messageTemplate has an unclosed {{ action")
    if text:
        tokens.append(("text", text))
    return tokens


@dataclass
class _Node:
    kind: str  # text, print, range, if, with
    arg: str = ""
    body: list[_Node] = field(default_factory=list)
    other: list[_Node] = field(default_factory=list)
    names: tuple[str, ...] = ()


_RANGE_VARS = re.compile(r"(\$\w*)\s*(?:,\s*(\$\w*)\s*)?:=\s*(.+)")
_OPERAND = re.compile(r"(\$\w*)?((?:\.\w+)*)|\.")


def _parse(tokens: Sequence[tuple[str, str]]) -> list[_Node]:
    stack: list[tuple[_Node | None, list[_Node]]] = [(None, [])]
    for kind, value in tokens:
        current = stack[-1][1]
        if kind == "text":
            current.append(_Node("text", value))
            continue
        word = value.split(None, 1)[0] if value else ""
        rest = value[len(word) :].strip()
        if word in {"range", "if", "with"}:
            node = _Node(word, rest)
            if word == "range":
                m = _RANGE_VARS.fullmatch(rest)
                if m:
                    node.names = tuple(n for n in (m.group(1), m.group(2)) if n)
                    node.arg = m.group(3).strip()
            _check_operand(node.arg)
            current.append(node)
            stack.append((node, node.body))
        elif word == "else" and not rest:
            owner = stack[-1][0]
            if owner is None or stack[-1][1] is owner.other:
                raise GitOpsError("messageTemplate: {{ else }} outside range/if/with")
            stack[-1] = (owner, owner.other)
        elif word == "end" and not rest:
            if len(stack) == 1:
                raise GitOpsError("messageTemplate: unexpected {{ end }}")
            stack.pop()
        else:
            _check_operand(value)
            current.append(_Node("print", value))
    if len(stack) != 1:
        raise GitOpsError("messageTemplate: missing {{ end }}")
    return stack[0][1]


def _check_operand(text: str) -> None:
    if not _OPERAND.fullmatch(text) or not text:
        raise GitOpsError(
            f"messageTemplate action {{{{ {text[:60]} }}}} is not supported by promote automate "
            "(fields, variables, range, if, with and else only; no functions or pipes)"
        )


def _eval(text: str, dot: Any, variables: Mapping[str, Any]) -> Any:
    m = _OPERAND.fullmatch(text)
    assert m is not None  # checked at parse time
    if text == ".":
        return dot
    var, chain = m.group(1), m.group(2)
    value = dot
    if var:
        if var not in variables:
            raise GitOpsError(f"messageTemplate: undefined variable {var}")
        value = variables[var]
    for name in [p for p in chain.split(".") if p]:
        value = _field(value, name, text)
    return value


def _field(value: Any, name: str, text: str) -> Any:
    if isinstance(value, Mapping):
        return value.get(name, "")
    attr = getattr(value, name, None)
    if attr is None or name.startswith("_"):
        raise GitOpsError(f"messageTemplate: can't evaluate field {name} in {text}")
    return attr() if callable(attr) else attr


def _truth(value: Any) -> bool:
    return bool(value)


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Mapping):
        return "map[" + " ".join(f"{k}:{_show(v)}" for k, v in _sorted_items(value)) + "]"
    if isinstance(value, list):
        return "[" + " ".join(_show(v) for v in value) + "]"
    return str(value)


def _sorted_items(value: Mapping[Any, Any]) -> list[tuple[Any, Any]]:
    """Go's ``range`` over a map visits keys in sorted order (structs field by field)."""

    def key(item: tuple[Any, Any]) -> Any:
        k = item[0]
        if isinstance(k, _Object):
            return (k.APIVersion, k.Kind, k.Name, k.Namespace)
        return (str(k),)

    return sorted(value.items(), key=key)


def _exec(nodes: Sequence[_Node], dot: Any, variables: dict[str, Any], out: list[str]) -> None:
    for node in nodes:
        if node.kind == "text":
            out.append(node.arg)
        elif node.kind == "print":
            out.append(_show(_eval(node.arg, dot, variables)))
        elif node.kind == "if":
            branch = node.body if _truth(_eval(node.arg, dot, variables)) else node.other
            _exec(branch, dot, variables, out)
        elif node.kind == "with":
            value = _eval(node.arg, dot, variables)
            if _truth(value):
                _exec(node.body, value, variables, out)
            else:
                _exec(node.other, dot, variables, out)
        elif node.kind == "range":
            value = _eval(node.arg, dot, variables)
            if isinstance(value, Mapping):
                items = _sorted_items(value)
            elif isinstance(value, (list, tuple)):
                items = list(enumerate(value))
            else:
                raise GitOpsError(f"messageTemplate: can't range over {node.arg}")
            if not items:
                _exec(node.other, dot, variables, out)
            for k, v in items:
                scope = dict(variables)
                if len(node.names) == 2:
                    scope[node.names[0]], scope[node.names[1]] = k, v
                elif len(node.names) == 1:
                    scope[node.names[0]] = v
                _exec(node.body, v, scope, out)
