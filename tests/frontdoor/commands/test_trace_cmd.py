"""``command: trace`` on a real CNCF distribution registry: history made by the real
``promote`` and ``rollback`` commands, then traced by every kind of ref. Asserts the whole
``lineage`` object, that trace sends no write, and its request budget."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from promote import record
from promote.frontdoor.commands.trace_cmd import LINEAGE_KEYS
from testkit.gitops import PRODUCTION_POLICY
from testkit.seed import Seeded
from tests.frontdoor.commands.records import (
    SHA_A,
    SHA_B,
    SHA_C,
    T_A,
    T_B,
    T_C,
    Repo,
    act,
    bundle_for,
    fallback_tag,
    index_of,
    promote,
    runner_env,
    three_releases,
)

RUN_URL = "https://github.example/acme/backend/actions/runs/{}"


def trace(tmp_path: Path, repo: Repo, name: str, **inputs: str) -> dict[str, Any]:
    run = act(tmp_path, name, {"command": "trace", "image": repo.image, **inputs})
    assert run.status == 0, run.log
    assert set(run.outputs) == {"lineage"}
    lineage: dict[str, Any] = json.loads(run.outputs["lineage"])
    assert tuple(lineage) == LINEAGE_KEYS
    assert "## Trace of" in run.summary and "```mermaid\ntimeline" in run.summary
    return lineage


def no_writes(clients: list[Any]) -> None:
    for client in clients:
        assert [r for r in client.stats.records if r.method not in ("GET", "HEAD")] == []


@pytest.mark.registry
def test_trace_answers_the_same_lineage_by_floating_immutable_staging_tag_and_digest(
    tmp_path: Path,
    repo: Repo,
    clients: list[Any],
) -> None:
    (a, b, c), (tag_a, tag_b, tag_c) = three_releases(tmp_path, repo)
    src_c = f"staging-{SHA_C[:7]}-{T_C - 60}"
    (desc,) = index_of(repo.seeder, repo.repo, c.digest)[1]["manifests"]
    expected = {
        "digest": c.digest,
        "image": repo.image,
        "tags": sorted([tag_c, "production", src_c]),
        "source-tag": src_c,
        "commit-sha": SHA_C,
        "version": "2.0.2",
        "promoted-at": T_C,
        "promoted-by": "octo-releaser",
        "run-url": RUN_URL.format(102),
        "kind": "promote",
        "previous-tag": tag_b,
        "previous-digest": b.digest,
        "rollback-tag": tag_b,
        "rollback-digest": b.digest,
        "record": desc["digest"],
        "history": [
            {
                "tag": tag_c,
                "version": "2.0.2",
                "digest": c.digest,
                "commit-sha": SHA_C,
                "timestamp": T_C,
                "rollback": False,
            },
            {
                "tag": tag_b,
                "version": "2.0.1",
                "digest": b.digest,
                "commit-sha": SHA_B[:7],
                "timestamp": T_B,
                "rollback": False,
            },
            {
                "tag": tag_a,
                "version": "2.0.0",
                "digest": a.digest,
                "commit-sha": SHA_A[:7],
                "timestamp": T_A,
                "rollback": False,
            },
        ],
        "environments": None,
    }
    clients.clear()
    assert trace(tmp_path, repo, "t0") == expected  # default ref: the floating tag
    for i, ref in enumerate(["production", tag_c, src_c, c.digest]):
        assert trace(tmp_path, repo, f"t{i + 1}", ref=ref) == expected, ref
    no_writes(clients)
    # budget: one tag list; every HEAD a distinct tag; 3 requests for the one record
    for client in clients:
        kinds = [r.kind for r in client.stats.records]
        assert kinds.count("tags") == 1
        heads = [r.url for r in client.stats.records if r.method == "HEAD"]
        assert len(heads) == len(set(heads))
        record_reads = [
            r
            for r in client.stats.records
            if fallback_tag(c.digest) in r.url or desc["digest"] in r.url or "/blobs/" in r.url
        ]
        assert len(record_reads) == 3, record_reads


@pytest.mark.registry
def test_trace_an_older_release_and_after_a_rollback(
    tmp_path: Path,
    repo: Repo,
) -> None:
    (a, b, c), (tag_a, tag_b, tag_c) = three_releases(tmp_path, repo)
    older = trace(tmp_path, repo, "t-b", ref=tag_b)
    assert older["digest"] == b.digest and older["version"] == "2.0.1"
    assert older["previous-tag"] == tag_a and older["kind"] == "promote"
    # what a rollback would restore is about production now, whatever is traced
    assert older["rollback-tag"] == tag_b

    rb = act(
        tmp_path, "rb", {"command": "rollback", "image": repo.image}, runner_env(tmp_path, "900")
    )
    assert rb.status == 0, rb.log
    now = trace(tmp_path, repo, "t-now")
    assert now["digest"] == b.digest and now["kind"] == "rollback"
    assert now["record"] == rb.outputs["record-digest"]
    assert now["run-url"] == RUN_URL.format(900)
    assert now["previous-tag"] == tag_c and now["previous-digest"] == c.digest
    assert now["source-tag"] == tag_b
    src_b = f"staging-{SHA_B[:7]}-{T_B - 60}"
    assert now["tags"] == sorted([rb.outputs["tag"], tag_b, "production", src_b])
    # the next rollback skips c (rolled back from) and goes to a
    assert (now["rollback-tag"], now["rollback-digest"]) == (tag_a, a.digest)
    first = now["history"][0]
    assert first["tag"] == rb.outputs["tag"] and first["rollback"] is True
    assert [h["rollback"] for h in now["history"][1:]] == [False, False, False]


@pytest.mark.registry
def test_trace_without_a_record_answers_what_the_tags_prove(
    tmp_path: Path,
    repo: Repo,
) -> None:
    a, src_a = repo.build(SHA_A, T_A, 111)
    b, src_b = repo.build(SHA_B, T_B, 222)
    env = runner_env(tmp_path)
    for name, src, ts in (("p1", src_a, T_A), ("p2", src_b, T_B)):
        run = promote(tmp_path, repo, name, src, env, timestamp=str(ts), record="false")
        assert run.status == 0, run.log
    tag_a = f"production-v1.0.0-{SHA_A[:7]}-{T_A}"
    tag_b = f"production-v1.0.1-{SHA_B[:7]}-{T_B}"
    lineage = trace(tmp_path, repo, "t")
    assert lineage["record"] is None
    assert lineage["digest"] == b.digest
    assert lineage["tags"] == sorted([tag_b, "production", src_b])
    assert lineage["source-tag"] == src_b and lineage["version"] == "1.0.1"
    assert lineage["commit-sha"] == SHA_B  # the image's revision annotation
    assert lineage["kind"] == "promote" and lineage["promoted-at"] == T_B
    assert (lineage["previous-tag"], lineage["previous-digest"]) == (tag_a, a.digest)
    assert (lineage["rollback-tag"], lineage["rollback-digest"]) == (tag_a, a.digest)
    # unknown without a record: null, never a guess
    assert lineage["promoted-by"] is None and lineage["run-url"] is None


@pytest.mark.registry
def test_trace_never_answers_with_the_record_of_an_earlier_promotion(
    tmp_path: Path, repo: Repo
) -> None:
    """A and B promoted with records, then a rollback to A with ``record: false``: the
    current tag has no record, and A's old promotion record does not describe it (another
    kind, time, run and previous release). The answer is what the tags prove."""
    a, src_a = repo.build(SHA_A, T_A, 111)
    b, src_b = repo.build(SHA_B, T_B, 222)
    tags = []
    for name, src, ts, run_id in (("p1", src_a, T_A, "100"), ("p2", src_b, T_B, "101")):
        run = promote(tmp_path, repo, name, src, runner_env(tmp_path, run_id), timestamp=str(ts))
        assert run.status == 0, run.log
        tags.append(run.outputs["tag"])
    rb = act(
        tmp_path,
        "rb",
        {"command": "rollback", "image": repo.image, "record": "false"},
        runner_env(tmp_path, "900"),
    )
    assert rb.status == 0, rb.log
    assert rb.outputs["digest"] == a.digest and rb.outputs["record-digest"] == ""
    now = trace(tmp_path, repo, "t")
    assert now["digest"] == a.digest
    assert now["record"] is None
    assert now["kind"] == "rollback"
    assert now["promoted-at"] == int(rb.outputs["timestamp"])
    assert (now["previous-tag"], now["previous-digest"]) == (tags[1], b.digest)
    assert now["promoted-by"] is None and now["run-url"] is None
    # traced by its own immutable tag, the first promotion of A answers with its record
    older = trace(tmp_path, repo, "t-a", ref=tags[0])
    assert older["digest"] == a.digest and older["record"] is not None
    assert older["kind"] == "promote" and older["promoted-at"] == T_A
    assert older["run-url"] == RUN_URL.format(100) and older["previous-tag"] is None


@pytest.mark.registry
def test_trace_with_the_record_layer_deleted_is_a_clear_answer(
    tmp_path: Path,
    repo: Repo,
) -> None:
    a, src_a = repo.build(SHA_A, T_A, 111)
    run = promote(tmp_path, repo, "p1", src_a, runner_env(tmp_path), timestamp=str(T_A))
    assert run.status == 0, run.log
    artifact = json.loads(repo.seeder.raw_manifest(repo.repo, run.outputs["record-digest"])[0])
    layer = artifact["layers"][0]["digest"]
    repo.seeder.request(
        "DELETE", repo.repo, f"{repo.seeder.url}/v2/{repo.repo}/blobs/{layer}", expect=(202,)
    )
    result = act(tmp_path, "t", {"command": "trace", "image": repo.image})
    assert result.status == 0, result.log
    lineage = json.loads(result.outputs["lineage"])
    assert lineage["record"] is None and lineage["digest"] == a.digest
    assert lineage["version"] == "1.0.0" and lineage["kind"] == "promote"
    assert lineage["promoted-by"] is None
    warnings = [ln for ln in result.log.splitlines() if ln.startswith("::warning")]
    assert any(run.outputs["record-digest"] in w and "cannot be read" in w for w in warnings)


def push_bundle(repo: Repo, subject: Seeded, statement: dict[str, Any]) -> str:
    """Attach a Sigstore bundle the way actions/attest (push-to-registry) does."""
    data = bundle_for(statement)
    layer = repo.seeder.push_blob(repo.repo, data)
    empty = repo.seeder.push_blob(repo.repo, b"{}")
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "artifactType": "application/vnd.dev.sigstore.bundle.v0.3+json",
            "config": {"mediaType": record.EMPTY_MEDIA_TYPE, "digest": empty, "size": 2},
            "layers": [
                {
                    "mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
                    "digest": layer,
                    "size": len(data),
                }
            ],
            "subject": {
                "mediaType": subject.media_type,
                "digest": subject.digest,
                "size": len(subject.data),
            },
            "annotations": {"dev.sigstore.bundle.predicateType": record.PREDICATE_TYPE},
        }
    ).encode()
    digest = "sha256:" + hashlib.sha256(manifest).hexdigest()
    repo.seeder.push_manifest(
        repo.repo, digest, manifest, "application/vnd.oci.image.manifest.v1+json"
    )
    index = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": digest,
                "size": len(manifest),
                "artifactType": "application/vnd.dev.sigstore.bundle.v0.3+json",
            }
        ],
    }
    repo.seeder.push_manifest(
        repo.repo,
        fallback_tag(subject.digest),
        json.dumps(index).encode(),
        "application/vnd.oci.image.index.v1+json",
    )
    return digest


@pytest.mark.registry
def test_trace_reads_a_record_from_a_sigstore_bundle_marked_unverified(
    tmp_path: Path,
    repo: Repo,
) -> None:
    a, src_a = repo.build(SHA_A, T_A, 111)
    run = promote(tmp_path, repo, "p1", src_a, runner_env(tmp_path), record="false")
    assert run.status == 0, run.log
    predicate = json.loads(Path(run.outputs["predicate-path"]).read_text())
    statement = record.build_statement(repo.image, a.digest, predicate)
    bundle = push_bundle(repo, a, statement)
    result = act(tmp_path, "t", {"command": "trace", "image": repo.image})
    assert result.status == 0, result.log
    lineage = json.loads(result.outputs["lineage"])
    assert lineage["record"] == bundle
    assert lineage["promoted-by"] == "octo-releaser"
    assert lineage["run-url"] == RUN_URL.format(4242)
    assert "signature not verified" in result.summary
    assert any("does not verify" in ln for ln in result.log.splitlines() if "::warning" in ln)


@pytest.mark.registry
def test_trace_ignores_malformed_record_fields(tmp_path: Path, repo: Repo) -> None:
    """A record is registry content: fields without their expected shape are unknown."""
    a, src_a = repo.build(SHA_A, T_A, 111)
    run = promote(tmp_path, repo, "p1", src_a, runner_env(tmp_path), record="false")
    assert run.status == 0, run.log
    predicate = json.loads(Path(run.outputs["predicate-path"]).read_text())
    predicate.update(
        {"actor": "::error::pwned", "kind": "deploy", "version": "1.0.0\n::x", "timestamp": True}
    )
    push_bundle(repo, a, record.build_statement(repo.image, a.digest, predicate))
    result = act(tmp_path, "t", {"command": "trace", "image": repo.image})
    assert result.status == 0, result.log
    lineage = json.loads(result.outputs["lineage"])
    assert lineage["promoted-by"] is None
    assert lineage["kind"] == "promote" and lineage["version"] == "1.0.0"  # from the tags
    assert lineage["promoted-at"] == int(run.outputs["timestamp"])
    assert not any(ln.startswith("::error::pwned") for ln in result.log.splitlines())
    assert sum("malformed" in ln for ln in result.log.splitlines()) == 3


GITOPS_POLICY = (
    """\
apiVersion: image.toolkit.fluxcd.io/v1
kind: ImageRepository
metadata: {{name: backend, namespace: flux-system}}
spec: {{image: {image}}}
---
"""
    + PRODUCTION_POLICY
)
DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata: {{name: backend}}
spec:
  template:
    spec:
      containers:
        - name: backend
          image: {image}:{tag} # {{"$imagepolicy": "flux-system:backend-production"}}
"""


@pytest.mark.registry
def test_trace_with_gitops_names_the_tag_git_carries(
    tmp_path: Path,
    repo: Repo,
) -> None:
    (_a, b, c), (_tag_a, tag_b, tag_c) = three_releases(tmp_path, repo)
    tree = tmp_path / "gitops"
    (tree / "flux/apps/backend/production").mkdir(parents=True)
    (tree / "flux/policies.yaml").write_text(GITOPS_POLICY.format(image=repo.image))
    dep = tree / "flux/apps/backend/production/deployment.yaml"
    dep.write_text(DEPLOYMENT.format(image=repo.image, tag=tag_b))
    lineage = trace(tmp_path, repo, "t", **{"gitops-path": str(tree)})
    assert lineage["digest"] == c.digest
    assert lineage["environments"] == [
        {
            "policy": "flux-system:backend-production",
            "environment": "production",
            "tag": tag_b,
            "names-digest": False,
        }
    ]
    dep.write_text(DEPLOYMENT.format(image=repo.image, tag=tag_c))
    again = trace(tmp_path, repo, "t2", **{"gitops-path": str(tree)})
    assert again["environments"][0]["names-digest"] is True
    assert b.digest != c.digest


@pytest.mark.registry
def test_trace_of_an_unknown_ref_is_one_clear_error(
    tmp_path: Path,
    repo: Repo,
) -> None:
    run = act(tmp_path, "t", {"command": "trace", "image": repo.image, "ref": "production"})
    # the registry's answer: exit 1 (README: exit 2 is for bad input, before any call)
    assert run.status == 1, run.log
    (error,) = run.errors
    assert "ref production is not in" in error
    assert "lineage" not in run.outputs


def test_cli_trace_json_prints_the_lineage_object(
    tmp_path: Path, registry: Any, repo_path: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from promote.frontdoor.cli import main

    repo_ = Repo(registry, repo_path)
    a, src_a = repo_.build(SHA_A, T_A, 111)
    run = promote(tmp_path, repo_, "p1", src_a, runner_env(tmp_path))
    assert run.status == 0, run.log
    capsys.readouterr()
    assert main(["trace", "--image", repo_.image, "--ref", src_a, "--json"]) == 0
    printed = capsys.readouterr().out
    lineage = json.loads(printed[printed.index("{") :])
    assert tuple(lineage) == LINEAGE_KEYS
    assert lineage["digest"] == a.digest and lineage["record"] == run.outputs["record-digest"]
