"""The one step after the tags, shared by ``promote`` and ``rollback``: the promotion record.

:func:`write_record` runs once the tags are written (or found already written). It builds
the in-toto statement (:mod:`promote.record`), writes the predicate to a file under
the directory the front door names (``RUNNER_TEMP``; output ``predicate-path``, for
``actions/attest``), and — with
``record: true`` and outside a dry run — attaches the statement to the promoted digest
(:func:`promote.registry.referrers.attach`) unless a record of this very promotion (same
immutable tag) is already there. Requests, once the repository holds a record::

    POST + PUT blobs/uploads         the statement layer
    PUT  manifests/<artifact>        the artifact, by digest
    GET + PUT + GET sha256-<hex>     the referrers fallback index (read, write, re-read)

Existing records are looked up only when this run did not write the immutable tag (a
re-run): then the index read above doubles as that look-up (the referrers API instead when
the repository has no ``sha256-*`` tag at all).

The very first record of a repository also uploads the 2-byte empty config blob.

A failure here never undoes the promotion: the outputs are written, and the command fails
with :class:`promote.errors.RecordError` (exit 6) naming what was and was not written. A
re-run finds the tags current, writes nothing but the missing record, and never a second
record for the same promotion.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from promote import naming
from promote.errors import PromoteError, RecordError

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    from promote.pipeline.model import Plan
    from promote.registry import Manifest, RegistryClient


@dataclass(frozen=True)
class RecordSettings:
    """What the record step needs from the front door, as plain values."""

    #: the ``record`` input: attach the statement to the digest (outside a dry run)
    enabled: bool
    #: where the predicate file is written, and the same directory as later steps see it
    write_dir: Path
    seen_dir: Path
    #: the runner's part of the predicate (:func:`promote.record.runner_facts`)
    runner: Mapping[str, str] = field(default_factory=dict)
    #: the ``commit-sha`` input of a promotion (the full sha when it matches the plan's)
    commit_sha: str = ""


@dataclass
class Recorded:
    """What the record step adds to the outputs, and its error (if the record failed)."""

    outputs: dict[str, str] = field(default_factory=dict)
    error: RecordError | None = None
    note: str = ""


def _full_sha(settings: RecordSettings, the_plan: Plan, manifest: Manifest) -> str:
    """The full commit sha when known (input, then the revision annotation), else the short."""
    revision = manifest.annotations.get(naming.REVISION_KEY, "")
    for candidate in (settings.commit_sha, revision):
        short = candidate[: naming.SHORT_SHA_LENGTH].lower()
        if naming.HEX_RE.fullmatch(candidate) and short == the_plan.short_sha:
            return candidate.lower()
    return the_plan.short_sha


def _previous(
    the_plan: Plan, client: RegistryClient | None, known_tags: Sequence[str]
) -> tuple[str, str]:
    """The release current before this promotion. When this run wrote the immutable tag,
    the plan says; on a re-run (the tag was already there) the history does, and a HEAD
    of that tag gives its digest."""
    if the_plan.tag in the_plan.writes or client is None:
        return the_plan.previous_tag, the_plan.previous_digest
    from promote import lineage

    before = lineage.previous_of(naming.immutable_tags(the_plan.env, known_tags), the_plan.tag)
    if before is None:
        return "", ""
    desc = client.head_manifest(before.tag)
    return before.tag, desc.digest if desc else ""


def predicate_for(
    settings: RecordSettings,
    the_plan: Plan,
    manifest: Manifest,
    *,
    kind: str,
    client: RegistryClient | None,
    known_tags: Sequence[str],
) -> dict[str, Any]:
    from promote import record

    previous_tag, previous_digest = _previous(the_plan, client, known_tags)
    return record.build_predicate(
        kind=kind,
        source_tag=the_plan.source_tag,
        source_digest=manifest.digest,
        tags=[t for t in (the_plan.tag, the_plan.floating) if t],
        version=the_plan.version,
        commit_sha=_full_sha(settings, the_plan, manifest),
        timestamp=the_plan.timestamp,
        previous_tag=previous_tag,
        previous_digest=previous_digest,
        runner=settings.runner,
    )


def _predicate_file(settings: RecordSettings, digest: str, predicate: dict[str, Any]) -> str:
    """Write the predicate JSON; returns the path later steps use (``predicate-path``)."""
    settings.write_dir.mkdir(parents=True, exist_ok=True)
    name = f"promote-predicate-{digest.partition(':')[2][:16]}.json"
    text = json.dumps(predicate, indent=2, sort_keys=False) + "\n"
    (settings.write_dir / name).write_text(text, encoding="utf-8")
    return str(settings.seen_dir / name)


def write_record(
    settings: RecordSettings,
    the_plan: Plan,
    client: RegistryClient,
    manifest: Manifest,
    *,
    kind: str,
    known_tags: Sequence[str],
    written: Sequence[str],
    dry_run: bool,
    log: Callable[[str], None] = lambda _m: None,
    warn: Callable[[str], None] = lambda _m: None,
) -> Recorded:
    """The record step (see the module docstring). Never raises for a registry failure."""
    from promote import record

    predicate = predicate_for(settings, the_plan, manifest, kind=kind, client=None, known_tags=())
    out = {"record-digest": "", "predicate-type": record.PREDICATE_TYPE, "predicate-path": ""}
    if not settings.enabled or dry_run:
        out["predicate-path"] = _predicate_file(settings, the_plan.digest, predicate)
        why = "dry run" if dry_run else "record: false"
        return Recorded(out, note=f"promotion record not written ({why})")
    step = _RecordWrite(settings, the_plan, client, manifest, kind, known_tags, log, warn)
    try:
        return step.run(out, predicate, written)
    except PromoteError as exc:
        out["predicate-path"] = _predicate_file(settings, the_plan.digest, step.predicate)
        state = (
            f"written: {', '.join(written)} -> {the_plan.digest}"
            if written
            else f"{the_plan.tag} already named {the_plan.digest}"
        )
        return Recorded(
            out,
            RecordError(
                f"the {kind} stands ({state}), but its promotion record was NOT written: "
                f"{exc}. Re-run the same {kind}: it writes only the missing record."
            ),
            note="promotion record **not written**",
        )


@dataclass
class _RecordWrite:
    """The registry part of :func:`write_record` (look up, then attach)."""

    settings: RecordSettings
    plan: Plan
    client: RegistryClient
    manifest: Manifest
    kind: str
    known_tags: Sequence[str]
    log: Callable[[str], None]
    warn: Callable[[str], None]
    predicate: dict[str, Any] = field(default_factory=dict)

    def run(
        self, out: dict[str, str], predicate: dict[str, Any], written: Sequence[str]
    ) -> Recorded:
        from promote import record
        from promote.registry import referrers as refs

        the_plan, client = self.plan, self.client
        self.predicate = predicate
        # This run wrote the immutable tag: no record can name it yet, so nothing is looked
        # up (the fallback index is read by the append below). Otherwise (a re-run) the
        # records of the digest say whether this promotion already has one.
        fresh = the_plan.tag in written
        found, index = (
            ([], None) if fresh else refs.lookup(client, the_plan.digest, tags=self.known_tags)
        )
        mine = [r for r in record.record_refs(found) if r.ours and r.tag == the_plan.tag]
        if mine:
            return self.existing(out, mine[0].digest)
        if the_plan.tag not in the_plan.writes:
            self.predicate = predicate_for(
                self.settings,
                the_plan,
                self.manifest,
                kind=self.kind,
                client=client,
                known_tags=self.known_tags,
            )
        statement = record.build_statement(the_plan.image, the_plan.digest, self.predicate)
        layer = record.statement_bytes(statement)
        subject = {
            "mediaType": self.manifest.media_type,
            "digest": self.manifest.digest,
            "size": len(self.manifest.data),
        }
        artifact = record.artifact_manifest(layer, subject, predicate=self.predicate)
        # The empty config blob is in the repository once any referrer is (distribution
        # refuses a manifest whose blobs are missing); a sha256-<hex> tag shows one is.
        seen = any(refs.is_fallback_tag(t) for t in self.known_tags)
        attached = refs.attach(
            client,
            artifact,
            subject=the_plan.digest,
            blobs=[layer] if seen else [record.EMPTY_DATA, layer],
            maybe_present=[record.EMPTY_DATA] if seen else [],
            known=index,
        )
        out["record-digest"] = attached.digest
        out["predicate-path"] = _predicate_file(self.settings, the_plan.digest, self.predicate)
        where = f"listed in {attached.index_tag}" if attached.via == "fallback" else "referrers API"
        self.log(f"wrote promotion record {attached.digest} for {the_plan.digest} ({where})")
        return Recorded(out, note=f"promotion record `{attached.digest}` ({where})")

    def existing(self, out: dict[str, str], digest: str) -> Recorded:
        """This promotion's record is there already: its predicate is the file's."""
        from promote import record
        from promote.registry import referrers as refs

        out["record-digest"] = digest
        try:
            _artifact, layer = refs.fetch_artifact(self.client, digest)
            self.predicate = dict(record.parse_record(digest, layer).predicate)
        except (PromoteError, record.RecordFormatError) as exc:
            self.warn(f"the existing record {digest} cannot be read: {exc}")
        out["predicate-path"] = _predicate_file(self.settings, self.plan.digest, self.predicate)
        self.log(f"promotion record {digest} already names {self.plan.tag}")
        return Recorded(out, note=f"promotion record `{digest}` (already there)")
