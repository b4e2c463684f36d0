"""The promotion record model (pure): predicate, statement, artifact manifest, parsing."""

from __future__ import annotations

import base64
import hashlib
import json

import pytest

from promote import record

DIGEST = "sha256:" + "ab" * 32


def predicate(**over: object) -> dict[str, object]:
    args: dict[str, object] = {
        "kind": "promote",
        "source-tag": "staging-abc1234-1700000000",
        "source-digest": DIGEST,
        "tags": ["production-v1.0.0-abc1234-1700000100", "production"],
        "version": "1.0.0",
        "commit-sha": "abc1234" + "0" * 33,
        "timestamp": 1_700_000_100,
        "previous-tag": "",
        "previous-digest": "",
        "runner": {},
    }
    args.update(over)
    return record.build_predicate(**{k.replace("-", "_"): v for k, v in args.items()})  # type: ignore[arg-type]


def test_unknown_fields_are_omitted_never_guessed() -> None:
    pred = predicate()
    assert "previous-tag" not in pred and "previous-digest" not in pred
    assert "actor" not in pred and "run-url" not in pred
    assert list(pred) == [k for k in record.PREDICATE_KEYS if k in pred]
    with pytest.raises(ValueError, match="kind"):
        predicate(kind="deploy")


def test_runner_facts_from_plain_values() -> None:
    given = {
        "actor": "octo",
        "run_id": "77",
        "run_attempt": "2",
        "server_url": "https://github.com",
        "repository": "acme/app",
        "workflow_ref": "acme/app/.github/workflows/p.yml@refs/heads/main",
        "event": "workflow_dispatch",
    }
    facts = record.runner_facts(**given, environment="production")
    assert facts["run-url"] == "https://github.com/acme/app/actions/runs/77"
    assert facts["environment"] == "production" and facts["run-attempt"] == "2"
    assert facts["actor"] == "octo" and facts["event"] == "workflow_dispatch"
    # every value stripped; the server's trailing slash dropped
    spaced = {k: f" {v} " for k, v in given.items()}
    assert record.runner_facts(**{**spaced, "server_url": " https://github.com/ "}) == {
        k: v for k, v in facts.items() if k != "environment"
    }
    # no run url from a non-numeric run id, a missing or non-http server
    assert "run-url" not in record.runner_facts(**{**given, "run_id": "x"})
    assert "run-url" not in record.runner_facts(**{**given, "server_url": ""})
    assert "run-url" not in record.runner_facts(**{**given, "server_url": "ftp://github.com"})
    assert record.runner_facts() == {}


def test_statement_and_artifact_manifest() -> None:
    pred = predicate()
    statement = record.build_statement("ghcr.io/acme/app", DIGEST, pred)
    assert statement["subject"] == [{"name": "ghcr.io/acme/app", "digest": {"sha256": "ab" * 32}}]
    layer = record.statement_bytes(statement)
    assert json.loads(layer) == statement and b" " not in layer.replace(b"Statement/v1", b"")
    subject = {
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": DIGEST,
        "size": 9,
    }
    manifest = json.loads(record.artifact_manifest(layer, subject, predicate=pred))
    assert manifest["artifactType"] == record.IN_TOTO_MEDIA_TYPE
    assert manifest["config"]["digest"] == record.EMPTY_DIGEST
    assert "sha256:" + hashlib.sha256(b"{}").hexdigest() == record.EMPTY_DIGEST
    assert manifest["layers"] == [
        {
            "mediaType": record.IN_TOTO_MEDIA_TYPE,
            "digest": "sha256:" + hashlib.sha256(layer).hexdigest(),
            "size": len(layer),
        }
    ]
    assert manifest["subject"] == subject
    assert manifest["annotations"][record.ANNOTATION_TAG] == pred["tags"][0]  # type: ignore[index]
    assert manifest["annotations"][record.ANNOTATION_CREATED] == "2023-11-14T22:15:00Z"
    with pytest.raises(ValueError):
        record.build_statement("x", "sha512:" + "0" * 128, pred)


def test_parse_plain_record_and_sigstore_bundle() -> None:
    statement = record.build_statement("r", DIGEST, predicate())
    plain = record.parse_record("sha256:1", record.statement_bytes(statement))
    assert plain.verified and plain.subject_digest == DIGEST and plain.get("version") == "1.0.0"
    payload = base64.b64encode(json.dumps(statement).encode()).decode()
    bundle = json.dumps({"dsseEnvelope": {"payload": payload, "signatures": []}}).encode()
    signed = record.parse_record("sha256:2", bundle, bundle=True)
    assert not signed.verified and signed.predicate == statement["predicate"]
    other = dict(statement, predicateType="https://slsa.dev/provenance/v1")
    with pytest.raises(record.RecordFormatError, match="predicate type"):
        record.parse_record("sha256:3", json.dumps(other).encode())
    with pytest.raises(record.RecordFormatError):
        record.parse_record("sha256:4", b"not json")
    with pytest.raises(record.RecordFormatError, match="DSSE"):
        record.parse_record("sha256:5", b"{}", bundle=True)


def test_record_refs_keep_only_records_and_bundles() -> None:
    refs = record.record_refs(
        [
            {
                "digest": "sha256:1",
                "artifactType": record.IN_TOTO_MEDIA_TYPE,
                "annotations": {record.ANNOTATION_PREDICATE_TYPE: record.PREDICATE_TYPE},
            },
            {"digest": "sha256:2", "artifactType": "application/vnd.dev.sigstore.bundle.v0.3+json"},
            {"digest": "sha256:3", "artifactType": "application/vnd.example.sbom"},
            {"digest": "sha256:4", "artifactType": record.IN_TOTO_MEDIA_TYPE},  # not ours
        ]
    )
    assert [(r.digest, r.ours, r.bundle) for r in refs] == [
        ("sha256:1", True, False),
        ("sha256:2", False, True),
    ]
