"""``command: trace`` — what is deployed, where it came from, and what to roll back to.

Reads only (no PUT, POST or DELETE is ever sent). Inputs: ``image``, ``ref`` (a tag or
``sha256:`` digest; default the floating ``<target-env>`` tag: what is in production now),
``target-env``, ``source-env``, and optionally ``gitops-path``/``gitops-repo`` (+
``gitops-ref``) to say, for each ImagePolicy of this image, which tag Git carries.

Requests (a repository of any size)::

    GET  manifests/<ref>                  the digest, and its annotations                 (1)
    GET  tags/list                        every tag, once                                 (1+)
    HEAD manifests/<tag>                  one per tag whose digest must be compared:
                                          the newest 20 releases, floating tags, and tags
                                          carrying the digest's commit sha                (k)
    GET  manifests/sha256-<hex>           the referrers index of the digest               (0-1)
    GET  manifests/<record> + blobs/<l>   the record and its statement layer             (2)

Output ``lineage``: one JSON object with exactly :data:`LINEAGE_KEYS`; what is not known is
``null``. Without a record, the answer is what the tags and annotations prove. A record
that ``actions/attest`` pushed (a Sigstore bundle whose DSSE payload is a promotion
statement) is read too, and reported as unverified (its signature is not checked here).
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from promote import lineage, naming
from promote.errors import NotFoundError, PromoteError
from promote.frontdoor import actions
from promote.frontdoor.actions import markdown_table
from promote.frontdoor.commands import Context, Result

if TYPE_CHECKING:
    from promote.flux.gitops import GitOpsTree
    from promote.naming import ImmutableTag
    from promote.record import Record
    from promote.reference import Repository
    from promote.registry import Manifest, RegistryClient

#: The keys of the ``lineage`` output, in order (a contract: never renamed).
LINEAGE_KEYS = (
    "digest",
    "image",
    "tags",
    "source-tag",
    "commit-sha",
    "version",
    "promoted-at",
    "promoted-by",
    "run-url",
    "kind",
    "previous-tag",
    "previous-digest",
    "rollback-tag",
    "rollback-digest",
    "record",
    "history",
    "environments",
)
#: Releases of the target env listed in ``history`` (newest first).
HISTORY_LENGTH = 20
#: Tags that float from build to build: always compared.
FLOATING = naming.FLOATING_TAGS


@dataclass
class Digests:
    """HEADs of tags, each sent at most once (the request budget)."""

    client: RegistryClient
    known: dict[str, str | None] = field(default_factory=dict)

    def __call__(self, tag: str) -> str | None:
        if tag not in self.known:
            desc = self.client.head_manifest(tag)
            self.known[tag] = desc.digest if desc else None
        return self.known[tag]


@dataclass
class Traced:
    lineage: dict[str, Any]
    record: Record | None
    warnings: list[str]


def _read_record(
    client: RegistryClient, tags: list[str], digest: str, preferred: str, warnings: list[str]
) -> Record | None:
    """The promotion record of ``digest``: promote's own, else a Sigstore bundle holding
    one. With ``preferred`` (the immutable tag of the promotion traced) only a record of
    that promotion (naming that tag) is used: an earlier promotion's record of the same
    digest describes another run, time and previous release. Without it, the newest."""
    from promote import record
    from promote.registry.referrers import fetch_artifact, referrers

    refs = record.record_refs(referrers(client, None, digest, tags=tags))
    ours = [r for r in refs if r.ours]
    ordered = [r for r in ours if r.tag == preferred] if preferred else ours[-1:]
    ordered += [r for r in refs if r.bundle]
    for ref in ordered:
        try:
            _manifest, layer = fetch_artifact(client, ref.digest)
            found = record.parse_record(ref.digest, layer, bundle=ref.bundle)
        except NotFoundError as exc:
            warnings.append(
                f"the promotion record {ref.digest} of {digest} cannot be read ({exc}); "
                "answering from the tags alone"
            )
            continue
        except (PromoteError, record.RecordFormatError) as exc:
            if not ref.bundle:
                warnings.append(f"the promotion record {ref.digest} is unreadable: {exc}")
            continue
        if found.subject_digest != digest:
            warnings.append(f"the record {ref.digest} is about {found.subject_digest}, ignored")
            continue
        named = found.get("tags")
        if preferred and not (isinstance(named, list) and preferred in named):
            continue  # a bundle signing another promotion of this digest
        if not found.verified:
            warnings.append(
                f"the promotion record comes from a Sigstore bundle ({ref.digest}) whose "
                "signature promote does not verify: check it with `gh attestation verify`"
            )
        return found
    return None


#: What each string field read from a record must look like; anything else (the record is
#: registry content anyone with push access can write) is treated as unknown.
_FIELD_RES = {
    "kind": re.compile(r"promote|rollback"),
    "source-tag": naming.TAG_RE,
    "previous-tag": naming.TAG_RE,
    "commit-sha": naming.HEX_RE,
    "version": naming.RELEASE_VERSION_RE,
    "previous-digest": re.compile(r"sha256:[0-9a-f]{64}"),
    "actor": re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\[\]-]{0,99}"),
    "run-url": re.compile(r"https?://[A-Za-z0-9._~%/?#@!$&'()*+,;=-]{1,400}(?<!:)"),
}


def _field(pred: Mapping[str, Any], key: str, warnings: list[str]) -> str | None:
    """A string field of the record's predicate, only if it has its expected shape."""
    value = pred.get(key)
    if value is None or value == "":
        return None
    if isinstance(value, str) and _FIELD_RES[key].fullmatch(value) and "::" not in value:
        return value
    warnings.append(f"the promotion record's {key} is malformed; ignored")
    return None


def trace(
    client: RegistryClient,
    repository: Repository,
    ref: str,
    *,
    target_env: str,
    source_env: str,
    tree: GitOpsTree | None = None,
) -> Traced:
    """Every read of ``command: trace``; returns the lineage (see the module docstring)."""
    warnings: list[str] = []
    manifest = _manifest(client, repository, ref)
    digest = manifest.digest
    tags = client.list_tags()
    digests = Digests(client)
    if not ref.startswith("sha256:"):
        digests.known[ref] = digest

    history = naming.immutable_tags(target_env, tags)
    recent = history[-HISTORY_LENGTH:]
    for entry in reversed(recent):
        digests(entry.tag)
    # the promotion traced: the immutable tag `ref` names, else the digest's newest one
    ref_entry = next((h for h in history if h.tag == ref), None)
    current_mine = _current(history, ref_entry, digests, digest)

    found = _read_record(client, tags, digest, current_mine.tag if current_mine else "", warnings)
    pred = found.predicate if found is not None else {}
    envs = (target_env, source_env)
    sha, short = _commit(
        pred, manifest.annotations, ref, current_mine, envs=envs, warnings=warnings
    )
    naming_tags = _naming_tags(tags, short, digests, digest, envs)
    current_mine = _current(history, ref_entry, digests, digest)
    is_rollback = dict(zip((h.tag for h in history), lineage.rollbacks(history), strict=True))
    facts = _provenance(
        pred,
        history,
        current_mine,
        digests,
        recorded=found is not None,
        naming_tags=naming_tags,
        source_env=source_env,
        warnings=warnings,
    )
    if facts["kind"] is None and current_mine is not None:
        facts["kind"] = "rollback" if is_rollback[current_mine.tag] else "promote"
    rollback_tag, rollback_digest = _rollback_target(history, digests)

    out: dict[str, Any] = {
        "digest": digest,
        "image": repository.name,
        "tags": naming_tags,
        "source-tag": facts["source-tag"],
        "commit-sha": sha or (short or None),
        "version": _field(pred, "version", warnings)
        or (str(current_mine.version) if current_mine else None),
        "promoted-at": facts["promoted-at"],
        "promoted-by": _field(pred, "actor", warnings),
        "run-url": _field(pred, "run-url", warnings),
        "kind": facts["kind"],
        "previous-tag": facts["previous-tag"],
        "previous-digest": facts["previous-digest"],
        "rollback-tag": rollback_tag,
        "rollback-digest": rollback_digest,
        "record": found.digest if found is not None else None,
        "history": _history(
            history, len(recent), digests, digest, sha=sha, is_rollback=is_rollback
        ),
        "environments": _environments(tree, repository, digests, digest) if tree else None,
    }
    assert tuple(out) == LINEAGE_KEYS
    return Traced(out, found, warnings)


def _manifest(client: RegistryClient, repository: Repository, ref: str) -> Manifest:
    """The manifest ``ref`` names; not there is the registry's answer, after a network call:
    exit 1 like a missing source (exit 2 means no network call was made)."""
    try:
        return client.get_manifest(ref)
    except NotFoundError as exc:
        raise NotFoundError(
            f"ref {ref} is not in {repository.name}: {exc}",
            status=exc.status,
            method=exc.method,
            url=exc.url,
            codes=exc.codes,
        ) from exc


def _current(
    history: list[ImmutableTag], ref_entry: ImmutableTag | None, digests: Digests, digest: str
) -> ImmutableTag | None:
    """The promotion traced: ``ref``'s own immutable tag, else the newest release tag known
    to name ``digest`` (from the HEADs sent so far)."""
    mine = [h for h in history if digests.known.get(h.tag) == digest]
    return ref_entry or (mine[-1] if mine else None)


def _commit(
    pred: Mapping[str, Any],
    annotations: Mapping[str, str],
    ref: str,
    current: ImmutableTag | None,
    *,
    envs: tuple[str, str],
    warnings: list[str],
) -> tuple[str | None, str]:
    """(full commit sha if known, short sha): the record, the revision annotation, then the
    ref's own tag or the traced release tag. ``envs``: (target env, source env)."""
    sha = _field(pred, "commit-sha", warnings)
    target_env, source_env = envs
    parsed_ref = naming.parse_immutable_tag(target_env, ref) or naming.parse_build_tag(
        source_env, ref
    )
    revision = annotations.get(naming.REVISION_KEY, "")
    if sha is None and naming.HEX_RE.fullmatch(revision):
        sha = revision.lower()
    short = (sha or "")[: naming.SHORT_SHA_LENGTH] or (
        parsed_ref.short_sha if parsed_ref else (current.short_sha if current else "")
    )
    return sha, short


def _naming_tags(
    tags: list[str], short: str, digests: Digests, digest: str, envs: tuple[str, str]
) -> list[str]:
    """The tags naming ``digest``: with a commit sha known, only the floating tags and those
    carrying the sha are compared (HEADs); else every tag but referrers and signatures."""
    if short:
        candidates = [
            t for t in tags if t in FLOATING or t in envs or naming.carries_short_sha(t, short)
        ]
    else:
        candidates = [
            t for t in tags if not (naming.is_referrers_tag(t) or naming.is_cosign_tag(t))
        ]
    return sorted(t for t in candidates if digests(t) == digest)


def _provenance(
    pred: Mapping[str, Any],
    history: list[ImmutableTag],
    current: ImmutableTag | None,
    digests: Digests,
    *,
    recorded: bool,
    naming_tags: list[str],
    source_env: str,
    warnings: list[str],
) -> dict[str, Any]:
    """``source-tag``, ``previous-tag``/``-digest``, ``kind`` and ``promoted-at``: the
    record's word, else what the tags prove (``kind`` None: decided from the history)."""
    source_tag = _field(pred, "source-tag", warnings)
    if source_tag is None:
        builds = [t for t in naming_tags if naming.parse_build_tag(source_env, t)]
        source_tag = builds[-1] if builds else None
    previous_tag = _field(pred, "previous-tag", warnings)
    previous_digest = _field(pred, "previous-digest", warnings)
    if not recorded and current is not None:
        before = lineage.previous_of(history, current.tag)
        if before is not None:
            previous_tag, previous_digest = before.tag, digests(before.tag)
    kind = _field(pred, "kind", warnings)
    timestamp = pred.get("timestamp")
    if not isinstance(timestamp, int) or isinstance(timestamp, bool) or timestamp < 0:
        timestamp = current.timestamp if current else None
    return {
        "source-tag": source_tag,
        "previous-tag": previous_tag,
        "previous-digest": previous_digest,
        "kind": kind,
        "promoted-at": timestamp,
    }


def _rollback_target(
    history: list[ImmutableTag], digests: Digests
) -> tuple[str | None, str | None]:
    """(tag, digest) a ``command: rollback`` without ``rollback-to`` would restore now."""
    from promote.pipeline.rollback import MAX_LOOKBACK

    if not history:
        return None, None
    current_digest = digests(history[-1].tag)
    if current_digest is None:
        return None, None
    target = lineage.target_with_digest(history, current_digest, digests, limit=MAX_LOOKBACK)
    return (target[0].tag, target[1]) if target is not None else (None, None)


def _history(
    history: list[ImmutableTag],
    recent: int,
    digests: Digests,
    digest: str,
    *,
    sha: str | None,
    is_rollback: Mapping[str, bool],
) -> list[dict[str, Any]]:
    """The newest ``recent`` releases, newest first; a release is a rollback when its
    release or its digest was current before (older tags' digests, as far as known)."""
    seen_digests: set[str] = set()
    for h in history[: len(history) - recent]:
        known = digests.known.get(h.tag)
        if known:
            seen_digests.add(known)
    older_first = []
    for h in history[len(history) - recent :]:
        d = digests.known.get(h.tag)
        older_first.append(
            {
                "tag": h.tag,
                "version": str(h.version),
                "digest": d,
                "commit-sha": sha if d == digest and sha else h.short_sha,
                "timestamp": h.timestamp,
                "rollback": bool(is_rollback[h.tag] or (d is not None and d in seen_digests)),
            }
        )
        if d:
            seen_digests.add(d)
    return list(reversed(older_first))


def _environments(
    tree: GitOpsTree, repository: Repository, digests: Digests, digest: str
) -> list[dict[str, Any]]:
    """For each ImagePolicy of this image: the tag its markers carry in Git, and whether
    that tag names ``digest`` (``null`` when Git carries no tag for it)."""
    from promote.flux.check import policy_env
    from promote.flux.gitops import split_image
    from promote.reference import parse_repository

    out: list[dict[str, Any]] = []
    for policy in tree.policies:
        spec_ref = policy.spec.get("imageRepositoryRef")
        name = spec_ref.get("name") if isinstance(spec_ref, dict) else None
        namespace = (spec_ref.get("namespace") if isinstance(spec_ref, dict) else None) or (
            policy.namespace
        )
        repo = tree.find("ImageRepository", f"{namespace}:{name}") if name else None
        image = repo.spec.get("image") if repo is not None else None
        try:
            same = isinstance(image, str) and parse_repository(image).name == repository.name
        except PromoteError:
            same = False
        if not same:
            continue
        carried: list[str] = []
        for marker in tree.markers_for(policy.ref):
            tag = marker.value if marker.field == "tag" else split_image(marker.value)[1]
            if marker.field in ("", "tag") and tag and tag not in carried:
                carried.append(tag)
        tag = carried[0] if len(carried) == 1 else None
        entry: dict[str, Any] = {
            "policy": policy.ref,
            "environment": policy_env(policy),
            "tag": tag,
            "names-digest": (digests(tag) == digest) if tag else None,
        }
        if len(carried) > 1:
            entry["tags"] = carried
        out.append(entry)
    return out


# -- the front door ----------------------------------------------------------------------------
def _when(ts: object) -> str:
    if not isinstance(ts, int):
        return "unknown"
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d %H.%M UTC")


def summary(traced: Traced, ref: str, target_env: str) -> str:
    lin = traced.lineage

    def code(value: object) -> str:
        # record fields and GitOps names are outside text: a code span they cannot leave
        return actions.code(str(value)) if value not in (None, "", []) else "unknown"

    record = code(lin["record"])
    if traced.record is not None and not traced.record.verified:
        record += " (Sigstore bundle, signature not verified)"
    rows = [
        ("Traced", f"`{ref}` → `{lin['digest']}`"),
        ("Tags", ", ".join(f"`{t}`" for t in lin["tags"]) or "none"),
        ("Source tag", code(lin["source-tag"])),
        ("Commit", code(lin["commit-sha"])),
        ("Version", code(lin["version"])),
        ("Kind", code(lin["kind"])),
        ("Promoted at", _when(lin["promoted-at"])),
        ("Promoted by", code(lin["promoted-by"])),
        ("Run", lin["run-url"] or "unknown"),
        ("Previous", f"{code(lin['previous-tag'])} {code(lin['previous-digest'])}"),
        ("Rollback would restore", f"{code(lin['rollback-tag'])} {code(lin['rollback-digest'])}"),
        ("Record", record),
    ]
    for env in lin["environments"] or []:
        names = {True: "names this digest", False: "**another digest**", None: "no tag"}
        rows.append(
            (f"Git: {code(env['policy'])}", f"{code(env['tag'])} ({names[env['names-digest']]})")
        )
    parts = [f"## Trace of `{lin['image']}`\n", markdown_table(["", ""], rows)]
    if lin["history"]:
        lines = ["```mermaid", "timeline", f"    title {target_env} releases (oldest first)"]
        for entry in reversed(lin["history"]):
            what = f"v{entry['version']} {entry['commit-sha'][:7]}"
            if entry["rollback"]:
                what += " (rollback)"
            if entry["digest"] == lin["digest"]:
                what += " ← traced"
            lines.append(f"    {_when(entry['timestamp'])} : {what}")
        lines.append("```")
        parts.append("\n".join(lines) + "\n")
    return "\n".join(parts)


def run(ctx: Context) -> Result:
    from promote.flux.source import load_tree
    from promote.frontdoor.github_settings import source_from_inputs
    from promote.frontdoor.registry_settings import registry_client, required_image
    from promote.reference import validate_digest, validate_tag

    inputs = ctx.inputs
    repository = required_image(ctx)
    target_env = naming.validate_env(inputs.str("target-env"), input_name="target-env")
    source_env = naming.validate_env(inputs.str("source-env"), input_name="source-env")
    ref = inputs.str("ref") or target_env
    if ref.startswith("sha256:") or ":" in ref:
        validate_digest(ref)
    else:
        validate_tag(ref)
    source = source_from_inputs(ctx)
    tree = load_tree(source) if source is not None else None
    with registry_client(ctx, repository) as client:
        traced = trace(
            client, repository, ref, target_env=target_env, source_env=source_env, tree=tree
        )
    for warning in traced.warnings:
        ctx.runner.warning(warning)
    lin = traced.lineage
    ctx.runner.log(
        f"{ref} -> {lin['digest']}: {lin['kind'] or 'unknown kind'} of "
        f"{lin['version'] or 'unknown version'}"
        + (f", record {lin['record']}" if lin["record"] else ", no record")
    )
    outputs = {"lineage": json.dumps(lin, separators=(",", ":"))}
    return Result(outputs=outputs, summary=summary(traced, ref, target_env))
