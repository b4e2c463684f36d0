"""The promotion record: an in-toto Statement v1 about one promoted digest (pure, no I/O).

``promote`` and ``rollback`` write one record per promotion, stored next to the image as an
OCI 1.1 artifact (see :mod:`promote.registry.referrers`)::

    {"_type": "https://in-toto.io/Statement/v1",
     "subject": [{"name": "<registry>/<repository>", "digest": {"sha256": "<hex>"}}],
     "predicateType": "urn:promote:promotion:v1",
     "predicate": {"kind": "promote", "source-tag": ..., "source-digest": ..., "tags": [...],
                   "version": ..., "commit-sha": ..., "timestamp": <unix s>,
                   "previous-tag": ..., "previous-digest": ..., "actor": ..., "run-id": ...,
                   "run-attempt": ..., "run-url": ..., "workflow-ref": ..., "repository": ...,
                   "event": ..., "environment": ...}}

A field that is not known is omitted, never guessed. The statement is serialised once
(:func:`statement_bytes`, sorted keys, no spaces) and those bytes are the artifact's one
layer. The artifact manifest (:func:`artifact_manifest`) carries a few annotations copied
into the referrers index, so that "is there already a record of this promotion?" and "which
run wrote this tag?" are answered from the index alone, without reading the layer.

:func:`parse_record` reads a record back: the plain statement this module writes, or a
Sigstore bundle (what ``actions/attest`` pushes) whose DSSE payload is such a statement —
the bundle's signature is not verified here, so such a record is marked ``verified=False``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

#: in-toto Statement v1
STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
#: The project's predicate type (a URN: the project has no web site to resolve it);
#: documented in docs/rollback.md#the-promotion-record.
PREDICATE_TYPE = "urn:promote:promotion:v1"
#: Media type of the statement layer, and the artifact's ``artifactType``.
IN_TOTO_MEDIA_TYPE = "application/vnd.in-toto+json"
#: Sigstore bundles (``actions/attest``, cosign v3): ``artifactType`` starts with this.
SIGSTORE_BUNDLE_PREFIX = "application/vnd.dev.sigstore.bundle"
#: The OCI empty descriptor (image-spec ``manifest.md``: the config of an artifact).
EMPTY_MEDIA_TYPE = "application/vnd.oci.empty.v1+json"
EMPTY_DATA = b"{}"
EMPTY_DIGEST = "sha256:" + hashlib.sha256(EMPTY_DATA).hexdigest()
EMPTY_DESCRIPTOR: dict[str, Any] = {
    "mediaType": EMPTY_MEDIA_TYPE,
    "digest": EMPTY_DIGEST,
    "size": len(EMPTY_DATA),
    "data": base64.b64encode(EMPTY_DATA).decode(),
}
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
KINDS = ("promote", "rollback")

#: Annotations of the artifact manifest (copied into the referrers index descriptors).
ANNOTATION_CREATED = "org.opencontainers.image.created"
ANNOTATION_PREFIX = "dev.promote.record."
ANNOTATION_KIND = ANNOTATION_PREFIX + "kind"
ANNOTATION_TAG = ANNOTATION_PREFIX + "tag"
ANNOTATION_RUN_ID = ANNOTATION_PREFIX + "run-id"
ANNOTATION_PREDICATE_TYPE = ANNOTATION_PREFIX + "predicate-type"

#: The predicate's keys, in the order the issue lists them.
PREDICATE_KEYS = (
    "kind",
    "source-tag",
    "source-digest",
    "tags",
    "version",
    "commit-sha",
    "timestamp",
    "previous-tag",
    "previous-digest",
    "actor",
    "run-id",
    "run-attempt",
    "run-url",
    "workflow-ref",
    "repository",
    "event",
    "environment",
)


class RecordFormatError(ValueError):
    """Bytes that are not a promotion record (or not one this version understands)."""


def runner_facts(
    *,
    actor: str = "",
    run_id: str = "",
    run_attempt: str = "",
    workflow_ref: str = "",
    repository: str = "",
    event: str = "",
    server_url: str = "",
    environment: str = "",
) -> dict[str, str]:
    """The runner's part of the predicate, from plain values (the front door reads them
    from the GitHub Actions default variables: ``ctx.settings``).

    Each value is stripped of spaces; ``run-url`` is built only from an http(s)
    ``server_url``, a ``repository`` and a numeric ``run_id``; anything missing is left out.
    """
    given = {
        "actor": actor,
        "run-id": run_id,
        "run-attempt": run_attempt,
        "workflow-ref": workflow_ref,
        "repository": repository,
        "event": event,
    }
    facts = {key: value.strip() for key, value in given.items()}
    server = server_url.strip().rstrip("/")
    run_id, repository = facts["run-id"], facts["repository"]
    if server.startswith(("https://", "http://")) and repository and run_id.isdigit():
        facts["run-url"] = f"{server}/{repository}/actions/runs/{run_id}"
    if environment:
        facts["environment"] = environment
    return {k: v for k, v in facts.items() if v}


def build_predicate(
    *,
    kind: str,
    source_tag: str,
    source_digest: str,
    tags: Sequence[str],
    version: str,
    commit_sha: str,
    timestamp: int,
    previous_tag: str,
    previous_digest: str,
    runner: Mapping[str, str],
) -> dict[str, Any]:
    """The predicate: every known field, in :data:`PREDICATE_KEYS` order; empty ones omitted."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}")
    values: dict[str, Any] = {
        "kind": kind,
        "source-tag": source_tag,
        "source-digest": source_digest,
        "tags": list(tags),
        "version": version,
        "commit-sha": commit_sha,
        "timestamp": timestamp,
        "previous-tag": previous_tag,
        "previous-digest": previous_digest,
        **{k: v for k, v in runner.items() if k in PREDICATE_KEYS},
    }
    return {k: values[k] for k in PREDICATE_KEYS if values.get(k) not in (None, "", [])}


def build_statement(subject_name: str, digest: str, predicate: Mapping[str, Any]) -> dict[str, Any]:
    """The in-toto Statement v1 about ``digest`` (``sha256:<hex>``) of ``subject_name``."""
    algorithm, _, hexdigest = digest.partition(":")
    if algorithm != "sha256" or len(hexdigest) != 64:
        raise ValueError(f"not a sha256 digest: {digest[:80]!r}")
    return {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": subject_name, "digest": {"sha256": hexdigest}}],
        "predicateType": PREDICATE_TYPE,
        "predicate": dict(predicate),
    }


def canonical_json(doc: object) -> bytes:
    """Sorted keys, no insignificant whitespace, UTF-8: the bytes that are stored."""
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def statement_bytes(statement: Mapping[str, Any]) -> bytes:
    return canonical_json(statement)


def _rfc3339(timestamp: int) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(timestamp, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def artifact_manifest(
    layer: bytes,
    subject: Mapping[str, Any],
    *,
    predicate: Mapping[str, Any],
) -> bytes:
    """The OCI 1.1 artifact manifest holding one statement layer, ``subject`` the promoted
    manifest's descriptor (``mediaType``, ``digest``, ``size``)."""
    annotations = {
        ANNOTATION_PREDICATE_TYPE: PREDICATE_TYPE,
        ANNOTATION_KIND: str(predicate.get("kind", "")),
    }
    tags = predicate.get("tags") or []
    if tags:
        annotations[ANNOTATION_TAG] = str(tags[0])
    if predicate.get("run-id"):
        annotations[ANNOTATION_RUN_ID] = str(predicate["run-id"])
    if isinstance(predicate.get("timestamp"), int):
        annotations[ANNOTATION_CREATED] = _rfc3339(predicate["timestamp"])
    doc = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": IN_TOTO_MEDIA_TYPE,
        "config": EMPTY_DESCRIPTOR,
        "layers": [
            {
                "mediaType": IN_TOTO_MEDIA_TYPE,
                "digest": "sha256:" + hashlib.sha256(layer).hexdigest(),
                "size": len(layer),
            }
        ],
        "subject": {k: subject[k] for k in ("mediaType", "digest", "size")},
        "annotations": annotations,
    }
    return canonical_json(doc)


# -- reading records back ------------------------------------------------------------------
@dataclass(frozen=True)
class RecordRef:
    """A referrer descriptor that is (or may be) a promotion record."""

    digest: str
    artifact_type: str
    annotations: Mapping[str, str] = field(default_factory=dict)

    @property
    def ours(self) -> bool:
        """A plain record written by promote (annotated with the predicate type)."""
        return (
            self.artifact_type == IN_TOTO_MEDIA_TYPE
            and self.annotations.get(ANNOTATION_PREDICATE_TYPE) == PREDICATE_TYPE
        )

    @property
    def bundle(self) -> bool:
        """A Sigstore bundle (its predicate type is only known once the layer is read)."""
        return self.artifact_type.startswith(SIGSTORE_BUNDLE_PREFIX)

    @property
    def tag(self) -> str:
        return self.annotations.get(ANNOTATION_TAG, "")

    @property
    def kind(self) -> str:
        return self.annotations.get(ANNOTATION_KIND, "")

    @property
    def run_id(self) -> str:
        return self.annotations.get(ANNOTATION_RUN_ID, "")


def record_refs(descriptors: Sequence[Mapping[str, Any]]) -> list[RecordRef]:
    """The referrers that are promotion records or Sigstore bundles, in index order."""
    refs: list[RecordRef] = []
    for desc in descriptors:
        digest = desc.get("digest")
        artifact_type = desc.get("artifactType")
        raw = desc.get("annotations")
        annotations = (
            {str(k): v for k, v in raw.items() if isinstance(v, str)}
            if isinstance(raw, dict)
            else {}
        )
        if not isinstance(digest, str) or not isinstance(artifact_type, str):
            continue
        ref = RecordRef(digest, artifact_type, annotations)
        if ref.ours or ref.bundle:
            refs.append(ref)
    return refs


@dataclass(frozen=True)
class Record:
    """A promotion record read back: its artifact digest, the statement, and whether the
    statement is a plain record (``verified``: promote wrote it) or came from an unverified
    Sigstore bundle."""

    digest: str
    statement: Mapping[str, Any]
    verified: bool = True

    @property
    def predicate(self) -> Mapping[str, Any]:
        pred = self.statement.get("predicate")
        return pred if isinstance(pred, dict) else {}

    @property
    def subject_digest(self) -> str | None:
        subjects = self.statement.get("subject")
        first = subjects[0] if isinstance(subjects, list) and subjects else None
        digest = first.get("digest") if isinstance(first, dict) else None
        hexdigest = digest.get("sha256") if isinstance(digest, dict) else None
        return f"sha256:{hexdigest}" if isinstance(hexdigest, str) else None

    def get(self, key: str) -> Any:
        return self.predicate.get(key)


def _statement(doc: object) -> dict[str, Any]:
    if not isinstance(doc, dict) or doc.get("_type") != STATEMENT_TYPE:
        raise RecordFormatError("not an in-toto Statement v1")
    if doc.get("predicateType") != PREDICATE_TYPE:
        raise RecordFormatError(f"predicate type {str(doc.get('predicateType'))[:80]!r}")
    if not isinstance(doc.get("predicate"), dict):
        raise RecordFormatError("the statement has no predicate object")
    return doc


def parse_record(digest: str, layer: bytes, *, bundle: bool = False) -> Record:
    """A record from its layer bytes: a plain statement, or (``bundle``) a Sigstore bundle
    whose ``dsseEnvelope.payload`` (base64) is the statement. Raises
    :class:`RecordFormatError` for anything else."""
    try:
        doc = json.loads(layer)
    except ValueError as exc:
        raise RecordFormatError(f"the layer is not JSON: {exc}") from None
    if not bundle:
        return Record(digest, _statement(doc), verified=True)
    envelope = doc.get("dsseEnvelope") if isinstance(doc, dict) else None
    payload = envelope.get("payload") if isinstance(envelope, dict) else None
    if not isinstance(payload, str):
        raise RecordFormatError("the Sigstore bundle has no DSSE payload")
    try:
        statement = json.loads(base64.b64decode(payload, validate=True))
    except (binascii.Error, ValueError) as exc:
        raise RecordFormatError(f"the DSSE payload is not base64 JSON: {exc}") from None
    return Record(digest, _statement(statement), verified=False)
