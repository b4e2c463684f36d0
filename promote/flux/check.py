"""The GitOps guardrails behind ``command: check`` — pure functions over a scanned tree.

Errors (the pull request must not merge):

``image-latest`` / ``image-untagged`` / ``image-mutable-tag``
    an image in an environment folder on ``latest``, without tag or digest, or on a
    floating environment tag (``develop``, ``staging``, ``production``): Flux would never
    move it and nobody can tell which build runs.
``marker-unknown-policy``
    a setter marker whose value is not ``<ns>:<name>[:tag|:name|:digest]``, or names an
    ImagePolicy that is not in the tree: Flux silently leaves the field alone.
``marker-namespace``
    the marker's policy lives outside the namespace of the automation that covers the
    file: image-automation-controller only lists policies in its own namespace.
``marker-outside-path``
    the marker's file is outside every ImageUpdateAutomation's ``spec.update.path``.
``policy-invalid``
    the ImagePolicy cannot be evaluated at all (bad regex, no policy chosen...).
``policy-rejects-own-tag`` / ``policy-admits-mutable`` / ``policy-admits-other-env``
    each ImagePolicy is tried on a synthetic tag set: its own environment's immutable tag
    must be selected; the floating tags, ``latest``, other environments' build tags,
    cosign ``sha256-….sig`` tags and referrers index tags ``sha256-<hex>`` (promotion
    records) must not pass its filter.

Warnings: ``policy-alphabetical-timestamps`` (byte-wise order of numbers breaks when the
width changes), ``policy-semver-rollback`` (a semver policy never selects a re-promoted
older version, so rollback by re-promotion does not work), ``image-no-marker``,
``marker-ignored`` (a comment mentioning ``$imagepolicy`` that Flux will not read),
``policy-env-unknown`` (no environment in the policy's name or folder).

A policy's environment is the environment word of its name (``backend-production``), else
its folder's; a file's environment is its folder's (:func:`promote.flux.gitops.env_of`).
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from promote.flux.gitops import (
    FluxObject,
    GitOpsTree,
    Marker,
    PolicyEntry,
    env_of,
    env_of_name,
    find_policies,
)
from promote.naming import (
    ENVS,
    FLOATING_TAGS,
    cosign_tag,
    env_tag,
    is_build_env,
    parse_version,
    referrers_tag,
)

if TYPE_CHECKING:
    from promote.flux import ImagePolicy

#: Synthetic build identity used to probe policies (any lowercase sha7 and unix time would do).
PROBE_SHA = "3f9c2ab"
PROBE_TS = 1764100000
PROBE_VERSION = "1.4.2"
#: A cosign signature tag: ``sha256-<hex>.sig``.
PROBE_SIG = cosign_tag("sha256:" + "ab" * 32, ".sig")
#: A referrers index tag (``sha256-<hex>``: promotion records, Sigstore bundles).
PROBE_REFERRERS = referrers_tag("sha256:" + "cd" * 32)


def immutable_tag(env: str, *, sha: str = PROBE_SHA, ts: int = PROBE_TS) -> str:
    """The tag ``env``'s policy must select (:func:`promote.naming.env_tag`): a build tag in
    a build env, ``<env>-v<X.Y.Z>-<sha7>-<ts>`` in a release env such as production."""
    return env_tag(env, version=parse_version(PROBE_VERSION), short_sha=sha, timestamp=ts)


@dataclass(frozen=True)
class Finding:
    level: str  # "error" or "warning"
    rule: str
    message: str
    file: str
    line: int


@dataclass
class Report:
    findings: list[Finding]
    policies: list[PolicyEntry]

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.level == "error"]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.level == "warning"]


def check_tree(tree: GitOpsTree) -> Report:
    """Apply every rule to ``tree``; findings are sorted by file, line and rule."""
    entries = find_policies(tree)
    findings: list[Finding] = []
    findings += check_images(tree)
    findings += check_markers(tree)
    for entry in entries:
        findings += check_policy(entry)
    findings += [
        Finding("warning", "marker-ignored", c.reason, c.file, c.line) for c in tree.ignored
    ]
    findings.sort(key=lambda f: (f.file, f.line, f.rule))
    return Report(findings, entries)


# -- images ------------------------------------------------------------------------------------


def check_images(tree: GitOpsTree) -> Iterable[Finding]:
    for image in tree.images:
        env = env_of(image.file)
        if env is None:
            continue
        where = f"{image.reference!s}" + (f" ({image.path})" if image.path else "")
        if image.digest is None and image.tag is None:
            yield Finding(
                "error",
                "image-untagged",
                f"image {where} has no tag or digest in the {env} folder; pin an immutable "
                f"{env} tag and mark it for Flux",
                image.file,
                image.line,
            )
        elif image.digest is None and image.tag == "latest":
            yield Finding(
                "error",
                "image-latest",
                f"image {where} is on 'latest' in the {env} folder; use an immutable {env} tag",
                image.file,
                image.line,
            )
        elif image.digest is None and image.tag in ENVS:
            yield Finding(
                "error",
                "image-mutable-tag",
                f"image {where} is on the floating tag {image.tag!r}, which moves with every "
                f"promotion; use the immutable tag Flux selects",
                image.file,
                image.line,
            )
        if not image.markers:
            yield Finding(
                "warning",
                "image-no-marker",
                f"image {where} has no setter marker; Flux will never update it",
                image.file,
                image.line,
            )


# -- markers -----------------------------------------------------------------------------------


def covers(automation: FluxObject, file: str) -> bool:
    """Whether ``file`` is under the automation's ``spec.update.path`` (default: the root)."""
    update = automation.spec.get("update")
    raw = update.get("path") if isinstance(update, dict) else None
    base = posixpath.normpath(str(raw or ".")).lstrip("/")
    if base in {".", ""}:
        return True
    return file == base or file.startswith(base.rstrip("/") + "/")


def check_markers(tree: GitOpsTree) -> Iterable[Finding]:
    automations = tree.automations
    for marker in tree.markers:
        yield from _check_marker(tree, marker, automations)


def _check_marker(
    tree: GitOpsTree, marker: Marker, automations: list[FluxObject]
) -> Iterable[Finding]:
    if not marker.valid:
        yield Finding(
            "error",
            "marker-unknown-policy",
            f'marker "{marker.setter}" is not <namespace>:<policy>[:tag|:name|:digest]; '
            "Flux ignores it",
            marker.file,
            marker.line,
        )
        return
    policy = tree.find("ImagePolicy", marker.policy_ref)
    if policy is None:
        known = ", ".join(sorted(p.ref for p in tree.policies)) or "none"
        yield Finding(
            "error",
            "marker-unknown-policy",
            f"marker names ImagePolicy {marker.policy_ref}, which is not in the tree "
            f"(policies: {known})",
            marker.file,
            marker.line,
        )
    covering = [a for a in automations if covers(a, marker.file)]
    if not covering:
        paths = (
            ", ".join(f"{a.ref} -> {_update_path(a)}" for a in automations)
            or "no ImageUpdateAutomation in the tree"
        )
        yield Finding(
            "error",
            "marker-outside-path",
            f"marker for {marker.policy_ref} is outside every automation's update.path "
            f"({paths}); Flux will never write it",
            marker.file,
            marker.line,
        )
        return
    namespaces = sorted({a.namespace for a in covering})
    if marker.namespace not in namespaces:
        yield Finding(
            "error",
            "marker-namespace",
            f"marker names a policy in namespace {marker.namespace!r}, but the automation "
            f"covering this file runs in {', '.join(namespaces)}; Flux only applies policies "
            "from its own namespace",
            marker.file,
            marker.line,
        )


def _update_path(automation: FluxObject) -> str:
    update = automation.spec.get("update")
    raw = update.get("path") if isinstance(update, dict) else None
    return str(raw or "./")


# -- policies ----------------------------------------------------------------------------------


def policy_env(obj: FluxObject) -> str | None:
    """The environment an ImagePolicy serves: from its name, else from its folder."""
    return env_of_name(obj.name) or env_of(obj.file)


def probe_tags(env: str | None) -> tuple[list[str], list[str]]:
    """(tags the policy must select, tags its filter must reject) for ``env``."""
    others = [immutable_tag(e) for e in ENVS if e != env]
    rejected = [*FLOATING_TAGS, *others, PROBE_SIG, PROBE_REFERRERS]
    return ([immutable_tag(env)] if env else []), rejected


def check_policy(entry: PolicyEntry) -> Iterable[Finding]:
    obj = entry.obj
    pattern_line = obj.line_of("spec", "filterTags", "pattern")
    if entry.policy is None:
        yield Finding(
            "error",
            "policy-invalid",
            f"ImagePolicy {obj.ref} is invalid: {entry.error}",
            obj.file,
            obj.line_of("spec", "policy"),
        )
        return
    policy = entry.policy
    env = policy_env(obj)
    wanted, rejected = probe_tags(env)
    if env is None:
        yield Finding(
            "warning",
            "policy-env-unknown",
            f"cannot tell which environment ImagePolicy {obj.ref} serves; name it "
            f"<app>-<env> or keep it in a {'/'.join(ENVS)} folder",
            obj.file,
            obj.line,
        )
    for tag in wanted:
        yield from _check_selects(obj, policy, tag, env or "", pattern_line)
    admitted = [t for t in rejected if policy.matches(t)]
    mutable = [t for t in admitted if t in FLOATING_TAGS or t in (PROBE_SIG, PROBE_REFERRERS)]
    other = [t for t in admitted if t not in mutable]
    if mutable:
        yield Finding(
            "error",
            "policy-admits-mutable",
            f"ImagePolicy {obj.ref} admits mutable tag(s) {', '.join(mutable)}; anchor the "
            "pattern (^...$) on the immutable tag",
            obj.file,
            pattern_line,
        )
    if other:
        yield Finding(
            "error",
            "policy-admits-other-env",
            f"ImagePolicy {obj.ref} ({env or 'unknown env'}) admits another environment's "
            f"tag(s) {', '.join(other)}",
            obj.file,
            pattern_line,
        )
    kind = str(getattr(policy, "kind", ""))
    if kind == "alphabetical" and wanted:
        value = policy.extract(wanted[0])
        if value is not None and value.isdigit():
            yield Finding(
                "warning",
                "policy-alphabetical-timestamps",
                f"ImagePolicy {obj.ref} orders numeric values ({value!r}) alphabetically: "
                "9… sorts after 10…, so a wider timestamp never wins; use numerical",
                obj.file,
                obj.line_of("spec", "policy", "alphabetical"),
            )
    if kind == "semver" and env is not None and not is_build_env(env):
        yield Finding(
            "warning",
            "policy-semver-rollback",
            f"ImagePolicy {obj.ref} orders by semver: re-promoting an older version for a "
            "rollback will never be selected; order numerically by the timestamp",
            obj.file,
            obj.line_of("spec", "policy", "semver"),
        )


def _check_selects(
    obj: FluxObject, policy: ImagePolicy, tag: str, env: str, line: int
) -> Iterable[Finding]:
    from promote.errors import PromoteError

    try:
        selected = policy.select([tag])
    except PromoteError as exc:
        yield Finding(
            "error",
            "policy-rejects-own-tag",
            f"ImagePolicy {obj.ref} fails on the {env} tag {tag}: {exc}",
            obj.file,
            line,
        )
        return
    if selected != tag:
        yield Finding(
            "error",
            "policy-rejects-own-tag",
            f"ImagePolicy {obj.ref} does not select the {env} tag {tag}"
            + ("" if policy.matches(tag) else " (its filter does not match)"),
            obj.file,
            line,
        )
