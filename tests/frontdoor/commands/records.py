"""Helpers for the promotion record and trace tests (real registry, real commands)."""

from __future__ import annotations

import base64
import hashlib
import json
import time
from pathlib import Path
from typing import Any

from promote import record
from testkit.engine import EngineRun as Run
from testkit.engine import engine as run_action
from testkit.registry import RegistryServer
from testkit.seed import Seeded, Seeder

NOW = int(time.time())
SHA_A = "a1b2c3d4e5f60718293a4b5c6d7e8f9012345678"
SHA_B = "b2c3d4e5f60718293a4b5c6d7e8f901234567890"
SHA_C = "c3d4e5f60718293a4b5c6d7e8f90123456789012"
T_A, T_B, T_C = NOW - 7200, NOW - 3600, NOW - 1800
EMPTY = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"


def runner_env(tmp_path: Path, run_id: str = "4242", attempt: str = "1") -> dict[str, str]:
    """What a GitHub runner sets (the predicate's runner part comes from these)."""
    (tmp_path / "runner-temp").mkdir(parents=True, exist_ok=True)
    return {
        "GITHUB_ACTOR": "octo-releaser",
        "GITHUB_RUN_ID": run_id,
        "GITHUB_RUN_ATTEMPT": attempt,
        "GITHUB_SERVER_URL": "https://github.example",
        "GITHUB_REPOSITORY": "acme/backend",
        "GITHUB_WORKFLOW_REF": "acme/backend/.github/workflows/promote.yml@refs/heads/main",
        "GITHUB_EVENT_NAME": "workflow_dispatch",
        "RUNNER_TEMP": str(tmp_path / "runner-temp"),
    }


def act(
    tmp_path: Path, name: str, inputs: dict[str, str], env: dict[str, str] | None = None
) -> Run:
    where = tmp_path / name
    where.mkdir(parents=True, exist_ok=True)
    return run_action(where, inputs, env)


def fallback_tag(digest: str) -> str:
    return "sha256-" + digest.split(":", 1)[1]


def index_of(seeder: Seeder, repo: str, digest: str) -> tuple[bytes, dict[str, Any]]:
    data, content_type, _ = seeder.raw_manifest(repo, fallback_tag(digest))
    assert content_type.startswith("application/vnd.oci.image.index.v1+json")
    return data, json.loads(data)


def blob(seeder: Seeder, repo: str, digest: str) -> bytes:
    response = seeder.request("GET", repo, f"{seeder.url}/v2/{repo}/blobs/{digest}")
    assert "sha256:" + hashlib.sha256(response.content).hexdigest() == digest
    return response.content


def read_record(seeder: Seeder, repo: str, artifact: str) -> tuple[dict[str, Any], bytes]:
    data, content_type, returned = seeder.raw_manifest(repo, artifact)
    assert returned == artifact == "sha256:" + hashlib.sha256(data).hexdigest()
    assert content_type.startswith("application/vnd.oci.image.manifest.v1+json")
    manifest = json.loads(data)
    (layer,) = manifest["layers"]
    return manifest, blob(seeder, repo, layer["digest"])


def check_artifact(
    seeder: Seeder, repo: str, artifact: str, subject: Seeded, image: str
) -> dict[str, Any]:
    """The artifact's structure, its subject, and the statement's bytes; returns the
    predicate."""
    manifest, layer = read_record(seeder, repo, artifact)
    assert manifest["schemaVersion"] == 2
    assert manifest["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    assert manifest["artifactType"] == "application/vnd.in-toto+json"
    assert manifest["config"] == {
        "mediaType": "application/vnd.oci.empty.v1+json",
        "digest": EMPTY,
        "size": 2,
        "data": "e30=",
    }
    assert blob(seeder, repo, EMPTY) == b"{}"
    assert manifest["layers"][0]["mediaType"] == "application/vnd.in-toto+json"
    assert manifest["layers"][0]["size"] == len(layer)
    assert manifest["subject"] == {
        "mediaType": subject.media_type,
        "digest": subject.digest,
        "size": len(subject.data),
    }
    statement = json.loads(layer)
    # stored canonically: sorted keys, no spaces
    assert layer == json.dumps(statement, sort_keys=True, separators=(",", ":")).encode()
    assert statement["_type"] == "https://in-toto.io/Statement/v1"
    assert statement["subject"] == [
        {"name": image, "digest": {"sha256": subject.digest.split(":", 1)[1]}}
    ]
    assert "promotion" in statement["predicateType"]
    assert statement["predicateType"] == record.PREDICATE_TYPE
    return dict(statement["predicate"])


def runner_part(tmp_path: Path, run_id: str = "4242", attempt: str = "1") -> dict[str, str]:
    return {
        "actor": "octo-releaser",
        "run-id": run_id,
        "run-attempt": attempt,
        "run-url": f"https://github.example/acme/backend/actions/runs/{run_id}",
        "workflow-ref": "acme/backend/.github/workflows/promote.yml@refs/heads/main",
        "repository": "acme/backend",
        "event": "workflow_dispatch",
        "environment": "production",
    }


class Repo:
    def __init__(self, server: RegistryServer, repo: str) -> None:
        self.server, self.repo = server, repo
        self.seeder = server.seeder()
        self.image = f"{server.host}/{repo}"

    def build(self, sha: str, ts: int, size: int) -> tuple[Seeded, str]:
        tag = f"staging-{sha[:7]}-{ts - 60}"
        return self.seeder.oci_image(self.repo, tag, revision=sha, layer_size=size), tag

    def tags(self) -> list[str]:
        return sorted(self.seeder.tags(self.repo))

    def digest(self, tag: str) -> str:
        return self.seeder.raw_manifest(self.repo, tag)[2]


def promote(
    tmp_path: Path, repo: Repo, name: str, source: str, env: dict[str, str], **extra: str
) -> Run:
    return act(tmp_path, name, {"image": repo.image, "source-tag": source, **extra}, env)


def three_releases(tmp_path: Path, repo: Repo) -> tuple[list[Seeded], list[str]]:
    built = [repo.build(SHA_A, T_A, 111), repo.build(SHA_B, T_B, 222), repo.build(SHA_C, T_C, 333)]
    tags = []
    for i, ((_seeded, src), ts) in enumerate(zip(built, (T_A, T_B, T_C), strict=True)):
        extra = {"version": "2.0.0"} if i == 0 else {}
        run = promote(
            tmp_path,
            repo,
            f"p{i}",
            src,
            runner_env(tmp_path, run_id=str(100 + i)),
            timestamp=str(ts),
            **extra,
        )
        assert run.status == 0, run.log
        tags.append(run.outputs["tag"])
    return [s for s, _ in built], tags


def bundle_for(statement: dict[str, Any]) -> bytes:
    """A Sigstore bundle v0.3 as actions/attest pushes it (signature bytes are not checked)."""
    payload = base64.b64encode(json.dumps(statement).encode()).decode()
    return json.dumps(
        {
            "mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
            "verificationMaterial": {"certificate": {"rawBytes": "MIIB"}},
            "dsseEnvelope": {
                "payload": payload,
                "payloadType": "application/vnd.in-toto+json",
                "signatures": [{"sig": base64.b64encode(b"not-checked").decode()}],
            },
        }
    ).encode()
