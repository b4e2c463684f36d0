"""``command: promote`` with ``source-image``: across repositories and registries.

Two real CNCF distribution registries on loopback (one with token auth), seeded through
the Distribution API; the action engine runs in-process; every assertion reads the target
registry itself: manifest bytes, children, blobs, signatures, tags.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from testkit.engine import EngineRun as Run
from testkit.engine import engine as run_action
from testkit.proxy import Fault, FaultProxy
from testkit.registry import RegistryServer
from testkit.seed import OCI_MANIFEST, Seeded, Seeder, odd_bytes, sha256

SHA = "5e1f2a3b4c5d6e7f8091a2b3c4d5e6f708192a3b"
NOW = int(time.time())
STAGING = f"staging-{SHA[:7]}-{NOW - 600}"
COSIGN_LAYER = "application/vnd.dev.cosign.simplesigning.v1+json"
SBOM_TYPE = "application/spdx+json"
COPY_KEYS = [
    "blobs-mounted",
    "blobs-copied",
    "blobs-skipped",
    "bytes-copied",
    "manifests-copied",
    "signatures-copied",
]


@pytest.fixture(scope="module")
def source_registry() -> Iterator[RegistryServer]:
    """The staging registry: token auth (the GHCR / Docker Hub flow)."""
    server = RegistryServer("token").start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def target_registry() -> Iterator[RegistryServer]:
    """The production registry: htpasswd Basic auth (ECR-like)."""
    server = RegistryServer("basic").start()
    yield server
    server.stop()


def inputs_for(
    source: RegistryServer, target: RegistryServer, repo: str, **more: str
) -> dict[str, str]:
    raw = {
        "image": f"{target.host}/{repo}",
        "source-image": f"{source.host}/staging/{repo}",
        "source-tag": STAGING,
        # the copy's own requests and bytes; the promotion record is tested on its own
        "record": "false",
        **more,
    }
    if target.username:
        raw.setdefault("username", target.username)
        raw.setdefault("password", target.password or "")
    if source.username and source.host != target.host:
        raw.setdefault("source-username", source.username)
        raw.setdefault("source-password", source.password or "")
    return raw


def raw_inputs(
    image: str, source: str, login: RegistryServer | None = None, **more: str
) -> dict[str, str]:
    """Inputs promoting ``STAGING`` from ``source`` into ``image`` (``login``: the target's
    credentials)."""
    raw = {"image": image, "source-image": source, "source-tag": STAGING, "record": "false", **more}
    if login is not None and login.username:
        raw |= {"username": login.username, "password": login.password or ""}
    return raw


def nodes(seeded: Seeded) -> list[Seeded]:
    return [seeded, *seeded.children]


def blobs_of(seeder: Seeder, repo: str, digest: str) -> list[str]:
    """Every blob digest a manifest (or index, recursively) needs."""
    data, _type, _digest = seeder.raw_manifest(repo, digest)
    doc = json.loads(data)
    if "manifests" in doc:
        return [b for m in doc["manifests"] for b in blobs_of(seeder, repo, m["digest"])]
    return [doc["config"]["digest"], *(layer["digest"] for layer in doc["layers"])]


def blob_status(seeder: Seeder, repo: str, digest: str) -> int:
    return seeder.request(
        "HEAD", repo, seeder._api(repo, "blobs", digest), expect=(200, 404)
    ).status_code


def assert_same_image(src: Seeder, src_repo: str, dst: Seeder, dst_repo: str, digest: str) -> None:
    """Identical manifest bytes for the digest and every child; every blob present."""
    data, media_type, _ = src.raw_manifest(src_repo, digest)
    got, got_type, got_digest = dst.raw_manifest(dst_repo, digest)
    assert (got, got_type, got_digest) == (data, media_type, digest)
    doc = json.loads(data)
    for child in doc.get("manifests", []):
        assert_same_image(src, src_repo, dst, dst_repo, child["digest"])
    for blob in blobs_of(src, src_repo, digest) if "manifests" not in doc else []:
        assert blob_status(dst, dst_repo, blob) == 200, f"blob {blob} missing in the target"


def push_referrer(
    seeder: Seeder, repo: str, subject: Seeded, name: str = "backend"
) -> tuple[str, bytes]:
    """An SBOM artifact whose ``subject`` is ``subject``, pushed by digest only (no fallback
    index); returns (its digest, its manifest bytes)."""
    sbom = odd_bytes({"spdxVersion": "SPDX-2.3", "name": name})
    sbom_digest = seeder.push_blob(repo, sbom)
    empty = seeder.push_blob(repo, b"{}")
    referrer = odd_bytes(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": SBOM_TYPE,
            "config": {
                "mediaType": "application/vnd.oci.empty.v1+json",
                "digest": empty,
                "size": 2,
            },
            "layers": [{"mediaType": SBOM_TYPE, "digest": sbom_digest, "size": len(sbom)}],
            "subject": {
                "mediaType": subject.media_type,
                "digest": subject.digest,
                "size": subject.size,
            },
        }
    )
    return seeder.push_manifest(repo, sha256(referrer), referrer, OCI_MANIFEST), referrer


def referrers_listing(ref_digest: str, referrer: bytes) -> bytes:
    """The OCI index listing one SBOM referrer (a fallback index, or a referrers API answer)."""
    return odd_bytes(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [
                {
                    "mediaType": OCI_MANIFEST,
                    "digest": ref_digest,
                    "size": len(referrer),
                    "artifactType": SBOM_TYPE,
                }
            ],
        }
    )


def sign(seeder: Seeder, repo: str, subject: Seeded) -> tuple[str, str]:
    """A cosign ``.sig`` tag and an OCI referrer (with its ``sha256-<hex>`` fallback index)
    for ``subject``; returns (signature digest, referrer digest)."""
    payload = odd_bytes({"critical": {"image": {"docker-manifest-digest": subject.digest}}})
    layer = seeder.push_blob(repo, payload)
    config = seeder.push_blob(repo, b"{}")
    signature = odd_bytes(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": config,
                "size": 2,
            },
            "layers": [
                {
                    "mediaType": COSIGN_LAYER,
                    "digest": layer,
                    "size": len(payload),
                    "annotations": {"dev.cosignproject.cosign/signature": "MEUCIQ..."},
                }
            ],
        }
    )
    sig_tag = "sha256-" + subject.digest.split(":")[1] + ".sig"
    sig_digest = seeder.push_manifest(repo, sig_tag, signature, OCI_MANIFEST)
    ref_digest, referrer = push_referrer(seeder, repo, subject)
    # distribution 2.8 has no referrers API: the client keeps the fallback index
    index = referrers_listing(ref_digest, referrer)
    fallback = "sha256-" + subject.digest.split(":")[1]
    seeder.push_manifest(repo, fallback, index, "application/vnd.oci.image.index.v1+json")
    return sig_digest, ref_digest


def copy_counts(run: Run) -> dict[str, int]:
    counts = json.loads(run.outputs["copy"])
    assert list(counts) == COPY_KEYS
    return dict(counts)


# -- across registries ---------------------------------------------------------------------------
@pytest.mark.registry
@pytest.mark.parametrize("kind", ["oci-index", "docker-image", "docker-list"])
def test_cross_registry_copy_is_byte_identical(
    tmp_path: Path,
    source_registry: RegistryServer,
    target_registry: RegistryServer,
    repo_path: str,
    kind: str,
) -> None:
    src, dst = source_registry.seeder(), target_registry.seeder()
    src_repo = f"staging/{repo_path}"
    seeded = src.image(kind, src_repo, STAGING, layer_size=300_000)

    run = run_action(tmp_path, inputs_for(source_registry, target_registry, repo_path))

    assert run.status == 0, run.log
    assert run.outputs["digest"] == seeded.digest
    assert run.outputs["source-image"] == f"{source_registry.host}/{src_repo}"
    tag = run.outputs["tag"]
    for name in (tag, "production"):
        data, _type, digest = dst.raw_manifest(repo_path, name)
        assert (data, digest) == (seeded.data, seeded.digest), name
    assert_same_image(src, src_repo, dst, repo_path, seeded.digest)
    counts = copy_counts(run)
    blobs = {b for n in nodes(seeded) for b in ([n.config_digest] if n.config_digest else [])}
    blobs |= {b for n in nodes(seeded) for b in n.layer_digests}
    assert counts["blobs-copied"] == len(blobs)
    assert counts["blobs-mounted"] == 0
    assert counts["manifests-copied"] == len(nodes(seeded))
    assert counts["bytes-copied"] >= 300_000 * len(seeded.children or [seeded])
    # the target's tags are versions from the TARGET repository (none before: 0.1.0 style)
    assert tag.startswith("production-v") and f"-{SHA[:7]}-" in tag
    assert "Copy" in run.summary and "blobs-copied" in run.summary


@pytest.mark.registry
def test_signatures_and_referrers_are_copied_for_the_index_and_each_child(
    tmp_path: Path,
    source_registry: RegistryServer,
    target_registry: RegistryServer,
    repo_path: str,
) -> None:
    src, dst = source_registry.seeder(), target_registry.seeder()
    src_repo = f"staging/{repo_path}"
    seeded = src.oci_index(src_repo, STAGING)
    signed = [sign(src, src_repo, seeded), sign(src, src_repo, seeded.children[0])]

    run = run_action(tmp_path, inputs_for(source_registry, target_registry, repo_path))

    assert run.status == 0, run.log
    for subject, (sig_digest, ref_digest) in zip([seeded, seeded.children[0]], signed, strict=True):
        hexpart = subject.digest.split(":")[1]
        data, _t, digest = dst.raw_manifest(repo_path, f"sha256-{hexpart}.sig")
        assert digest == sig_digest
        assert data == src.raw_manifest(src_repo, f"sha256-{hexpart}.sig")[0]
        assert (
            dst.raw_manifest(repo_path, ref_digest)[0] == src.raw_manifest(src_repo, ref_digest)[0]
        )
        index = json.loads(dst.raw_manifest(repo_path, f"sha256-{hexpart}")[0])
        assert ref_digest in [m["digest"] for m in index["manifests"]]
        for blob in blobs_of(src, src_repo, ref_digest) + blobs_of(src, src_repo, sig_digest):
            assert blob_status(dst, repo_path, blob) == 200
    assert copy_counts(run)["signatures-copied"] == 4

    # copy-signatures: false leaves them behind
    other = f"{repo_path}-nosig"
    run = run_action(
        tmp_path,
        inputs_for(source_registry, target_registry, other, **{"copy-signatures": "false"})
        | {"source-image": f"{source_registry.host}/{src_repo}"},
    )
    assert run.status == 0, run.log
    assert copy_counts(run)["signatures-copied"] == 0
    hexpart = seeded.digest.split(":")[1]
    assert f"sha256-{hexpart}.sig" not in dst.tags(other)


@pytest.mark.registry
def test_dry_run_lists_the_copy_and_writes_nothing(
    tmp_path: Path,
    source_registry: RegistryServer,
    target_registry: RegistryServer,
    repo_path: str,
) -> None:
    src, dst = source_registry.seeder(), target_registry.seeder()
    seeded = src.oci_image(f"staging/{repo_path}", STAGING, layer_size=5000)

    run = run_action(
        tmp_path, inputs_for(source_registry, target_registry, repo_path, **{"dry-run": "true"})
    )

    assert run.status == 0, run.log
    assert dst.tags(repo_path) == []
    assert blob_status(dst, repo_path, seeded.layer_digests[0]) == 404
    counts = copy_counts(run)
    assert counts["blobs-copied"] == 2 and counts["manifests-copied"] == 1
    assert counts["bytes-copied"] == 5000 + len(
        src.request(
            "GET",
            f"staging/{repo_path}",
            src._api(f"staging/{repo_path}", "blobs", seeded.config_digest or ""),
        ).content
    )
    assert f"copy plan: copy blob {seeded.layer_digests[0]}" in run.log
    assert "copy 2 blobs" in run.log and "put 1 manifests" in run.log
    assert "would be moved" in run.summary


@pytest.mark.registry
def test_secrets_of_both_registries_are_masked_and_never_printed(
    tmp_path: Path,
    source_registry: RegistryServer,
    target_registry: RegistryServer,
    repo_path: str,
) -> None:
    src = source_registry.seeder()
    src.oci_image(f"staging/{repo_path}", STAGING)
    run = run_action(tmp_path, inputs_for(source_registry, target_registry, repo_path))
    assert run.status == 0, run.log
    for secret in (source_registry.password, target_registry.password):
        assert secret
        assert f"::add-mask::{secret}" in run.log
        rest = run.log.replace(f"::add-mask::{secret}", "")
        assert secret not in rest
        assert secret not in run.summary and secret not in json.dumps(run.outputs)
    tokens = source_registry.token_service.tokens if source_registry.token_service else []
    assert tokens
    for token in tokens:
        assert token not in run.log.replace(f"::add-mask::{token}", "")


@pytest.mark.registry
def test_versions_come_from_the_target_and_source_rules_from_the_source(
    tmp_path: Path,
    source_registry: RegistryServer,
    target_registry: RegistryServer,
    repo_path: str,
) -> None:
    src, dst = source_registry.seeder(), target_registry.seeder()
    src_repo = f"staging/{repo_path}"
    src.oci_image(src_repo, STAGING)
    old = dst.oci_image(repo_path, None, revision="1234567")
    dst.tag(repo_path, old.digest, f"production-v2.3.4-1234567-{NOW - 9000}")
    # a release in the SOURCE repository must not count
    src.tag(src_repo, STAGING, f"production-v9.0.0-1234567-{NOW - 9000}")

    run = run_action(tmp_path, inputs_for(source_registry, target_registry, repo_path))
    assert run.status == 0, run.log
    assert run.outputs["version"] == "2.3.5"
    assert run.outputs["previous-digest"] == old.digest

    # the source tag is looked up in the source repository, never the target
    dst.oci_image(repo_path, f"staging-{SHA[:7]}-{NOW - 100}")
    run = run_action(
        tmp_path,
        inputs_for(
            source_registry,
            target_registry,
            repo_path,
            **{"source-tag": f"staging-{SHA[:7]}-{NOW - 100}"},
        ),
    )
    assert run.status == 1, run.log  # the registry's answer (README: exit 1, unchanged)
    assert f"not found in {source_registry.host}/{src_repo}" in run.log


# -- same registry, other repository --------------------------------------------------------------
@pytest.mark.registry
def test_same_registry_mounts_every_blob_and_uploads_nothing(
    tmp_path: Path, token_registry: RegistryServer, repo_path: str
) -> None:
    seeder = token_registry.seeder()
    src_repo = f"staging/{repo_path}"
    seeded = seeder.oci_index(src_repo, STAGING, layer_size=200_000)
    with FaultProxy(token_registry.url) as proxy:
        run = run_action(
            tmp_path,
            raw_inputs(
                f"{proxy.host}/{repo_path}", f"{proxy.host}/{src_repo}", login=token_registry
            ),
        )
        uploads = proxy.requests("blob-upload")
    assert run.status == 0, run.log
    counts = copy_counts(run)
    assert counts["blobs-mounted"] == 6 and counts["blobs-copied"] == 0
    assert counts["bytes-copied"] == 0
    assert all(e.method == "POST" and "mount=" in e.path for e in uploads), uploads
    assert sum(len(e.body) for e in uploads) == 0  # zero blob bytes uploaded
    assert not proxy.requests("blob") or all(e.method == "HEAD" for e in proxy.requests("blob"))
    # one token for both: push,pull on the target, pull on the source
    assert token_registry.token_service is not None
    scopes = {s for t in token_registry.token_service.issued for s in t.scopes}
    assert f"repository:{src_repo}:pull" in scopes
    assert_same_image(seeder, src_repo, seeder, repo_path, seeded.digest)


@pytest.mark.registry
def test_a_registry_ignoring_mount_gets_a_streamed_copy(
    tmp_path: Path, registry: RegistryServer, repo_path: str
) -> None:
    seeder = registry.seeder()
    src_repo = f"staging/{repo_path}"
    seeded = seeder.oci_image(src_repo, STAGING, layer_size=100_000)

    def ignore_mount(exchange: Any) -> None:  # a registry that ignores `mount` (202)
        exchange.path = exchange.path.split("?", 1)[0]

    with FaultProxy(registry.url) as proxy:
        proxy.add(Fault.hook(ignore_mount), method="POST", path=r"mount=")
        run = run_action(
            tmp_path,
            raw_inputs(f"{proxy.host}/{repo_path}", f"{proxy.host}/{src_repo}"),
        )
    assert run.status == 0, run.log
    counts = copy_counts(run)
    assert (counts["blobs-mounted"], counts["blobs-copied"]) == (0, 2)
    assert "refused (HTTP 202): copying it instead" in run.log
    assert_same_image(seeder, src_repo, seeder, repo_path, seeded.digest)


@pytest.mark.registry
def test_same_repository_stays_a_retag_with_nothing_copied(
    tmp_path: Path, registry: RegistryServer, repo_path: str
) -> None:
    seeder = registry.seeder()
    seeder.oci_image(repo_path, STAGING)
    with FaultProxy(registry.url) as proxy:
        run = run_action(
            tmp_path,
            raw_inputs(f"{proxy.host}/{repo_path}", f"{proxy.host}/{repo_path}"),
        )
        kinds = set(proxy.counts)
    assert run.status == 0, run.log
    assert "blob-upload" not in kinds
    assert copy_counts(run) == dict.fromkeys(COPY_KEYS, 0)
    assert run.outputs["source-image"] == f"{proxy.host}/{repo_path}"


# -- faults, re-runs, integrity ------------------------------------------------------------------
@pytest.mark.registry
def test_a_reset_blob_upload_leaves_no_tag_and_the_rerun_uploads_only_what_is_missing(
    tmp_path: Path, registry: RegistryServer, basic_registry: RegistryServer, repo_path: str
) -> None:
    src, dst = registry.seeder(), basic_registry.seeder()
    src_repo = f"staging/{repo_path}"
    seeded = src.oci_index(src_repo, STAGING, layer_size=50_000)
    victim = seeded.children[1].layer_digests[0].split(":")[1]
    with FaultProxy(basic_registry.url) as proxy:
        proxy.add(Fault.reset(), method="PUT", path=rf"digest=sha256%3A{victim}", always=True)
        raw = raw_inputs(
            f"{proxy.host}/{repo_path}",
            f"{registry.host}/{src_repo}",
            login=basic_registry,
            **{"copy-parallelism": "1"},
        )
        env = {"PROMOTE_REGISTRY_DEADLINE": "6"}
        run = run_action(tmp_path, raw, env)
        assert run.status != 0, run.log
        assert "No tag was written" in run.log
        assert dst.tags(repo_path) == []
        first = [e for e in proxy.requests("blob-upload") if e.method == "PUT"]
        landed = {e.path for e in first if e.status == 201}
        assert landed, "some blobs were copied before the fault"

        proxy.clear()
        proxy.reset_counts()
        again = run_action(tmp_path, raw, env)
        assert again.status == 0, again.log
        second = [e for e in proxy.requests("blob-upload") if e.method == "PUT"]
    assert {e.path.split("digest=")[1] for e in second} & {
        p.split("digest=")[1] for p in landed
    } == set(), "the re-run uploaded a blob already there"
    assert any(victim in e.path for e in second)
    counts = copy_counts(again)
    assert counts["blobs-skipped"] == len(landed)
    assert_same_image(src, src_repo, dst, repo_path, seeded.digest)


@pytest.mark.registry
def test_a_lasting_503_on_manifest_put_leaves_no_tag_and_the_rerun_completes(
    tmp_path: Path, registry: RegistryServer, basic_registry: RegistryServer, repo_path: str
) -> None:
    src, dst = registry.seeder(), basic_registry.seeder()
    src_repo = f"staging/{repo_path}"
    seeded = src.oci_index(src_repo, STAGING)
    with FaultProxy(basic_registry.url) as proxy:
        proxy.add(Fault.status(503), method="PUT", path=r"/manifests/", always=True)
        raw = raw_inputs(
            f"{proxy.host}/{repo_path}", f"{registry.host}/{src_repo}", login=basic_registry
        )
        env = {"PROMOTE_REGISTRY_DEADLINE": "3"}
        run = run_action(tmp_path, raw, env)
        assert run.status != 0, run.log
        assert "No tag was written" in run.log
        assert dst.tags(repo_path) == []
        proxy.clear()
        proxy.reset_counts()
        again = run_action(tmp_path, raw, env)
        uploads = [e for e in proxy.requests("blob-upload") if e.method == "PUT"]
    assert again.status == 0, again.log
    assert uploads == [], "the re-run uploaded blobs already there"
    assert copy_counts(again)["blobs-skipped"] == 6
    assert_same_image(src, src_repo, dst, repo_path, seeded.digest)
    assert again.outputs["tag"] in dst.tags(repo_path)


@pytest.mark.registry
def test_a_corrupted_source_blob_is_refused_and_never_lands(
    tmp_path: Path, registry_factory: Any, basic_registry: RegistryServer, repo_path: str
) -> None:
    source = registry_factory("none")
    src, dst = source.seeder(), basic_registry.seeder()
    src_repo = f"staging/{repo_path}"
    seeded = src.oci_image(src_repo, STAGING, layer_size=3 * 1024 * 1024)
    layer = seeded.layer_digests[0].split(":")[1]
    data = source.storage / "docker/registry/v2/blobs/sha256" / layer[:2] / layer / "data"
    raw = bytearray(data.read_bytes())
    raw[len(raw) // 2] ^= 0xFF  # same size, wrong bytes
    data.write_bytes(bytes(raw))

    run = run_action(tmp_path, inputs_for(source, basic_registry, repo_path))

    assert run.status != 0
    assert "not the 3145728 bytes of" in run.log or "sha256" in run.log
    assert "upload was aborted" in run.log
    assert dst.tags(repo_path) == []
    assert blob_status(dst, repo_path, seeded.layer_digests[0]) == 404


# -- registry facts ---------------------------------------------------------------------------
@pytest.mark.registry
def test_a_201_without_location_is_a_success(
    tmp_path: Path, registry: RegistryServer, repo_path: str
) -> None:
    seeder = registry.seeder()
    src_repo = f"staging/{repo_path}"
    seeded = seeder.oci_image(src_repo, STAGING)

    def drop_location(exchange: Any) -> None:
        exchange.response_headers.pop("Location", None)

    with FaultProxy(registry.url) as proxy:
        proxy.add(Fault.hook(drop_location, after=True), method="POST", path=r"mount=")
        run = run_action(
            tmp_path,
            raw_inputs(f"{proxy.host}/{repo_path}", f"{proxy.host}/{src_repo}"),
        )
        mounts = [e for e in proxy.requests("blob-upload") if "mount=" in e.path]
    assert run.status == 0, run.log
    assert mounts and all(e.status == 201 for e in mounts)
    assert all("Location" not in e.response_headers for e in mounts)
    assert copy_counts(run)["blobs-mounted"] == 2
    assert_same_image(seeder, src_repo, seeder, repo_path, seeded.digest)


@pytest.mark.registry
def test_a_tag_immutable_target_names_floating_tag_false(
    tmp_path: Path, registry: RegistryServer, basic_registry: RegistryServer, repo_path: str
) -> None:
    src_repo = f"staging/{repo_path}"
    registry.seeder().oci_image(src_repo, STAGING)
    refusal = (
        "TAG_INVALID",
        "The image tag 'production' already exists in the repository and cannot be "
        "overwritten because the repository is immutable.",
    )
    with FaultProxy(basic_registry.url) as proxy:
        proxy.add(Fault.status(400, error=refusal), method="PUT", path=r"/manifests/production$")
        run = run_action(
            tmp_path,
            raw_inputs(
                f"{proxy.host}/{repo_path}", f"{registry.host}/{src_repo}", login=basic_registry
            ),
        )
    assert run.status == 5, run.log
    assert len(run.errors) == 1
    assert "floating-tag: false" in run.errors[0] and "immutable" in run.errors[0]


@pytest.mark.registry
def test_the_source_token_asks_pull_only(
    tmp_path: Path,
    source_registry: RegistryServer,
    target_registry: RegistryServer,
    repo_path: str,
) -> None:
    """Docker Hub and others refuse (or narrow) push on a repository one only reads."""
    assert source_registry.token_service is not None
    src_repo = f"staging/{repo_path}"
    source_registry.seeder().oci_image(src_repo, STAGING)
    before = len(source_registry.token_service.issued)
    run = run_action(tmp_path, inputs_for(source_registry, target_registry, repo_path))
    assert run.status == 0, run.log
    issued = source_registry.token_service.issued[before:]
    assert issued
    assert all(f"repository:{src_repo}:pull" in t.scopes for t in issued)
    assert not any("push" in s for t in issued for s in t.scopes)


# -- the promotion record (issue 16) in the target ------------------------------------------------
@pytest.mark.registry
def test_the_promotion_record_is_written_in_the_target_and_traced_there(
    tmp_path: Path,
    source_registry: RegistryServer,
    target_registry: RegistryServer,
    repo_path: str,
) -> None:
    """After a cross-registry promotion the record is attached to the digest in the TARGET
    (next to the referrers copied from the source), never in the source; ``trace`` of the
    target answers with it; a re-run writes no second record."""
    from tests.frontdoor.commands.records import check_artifact, fallback_tag, index_of, runner_env

    src, dst = source_registry.seeder(), target_registry.seeder()
    src_repo = f"staging/{repo_path}"
    seeded = src.oci_image(src_repo, STAGING, revision=SHA)
    _sig, copied_referrer = sign(src, src_repo, seeded)
    source_index_before = index_of(src, src_repo, seeded.digest)[1]
    env = runner_env(tmp_path)
    image = f"{target_registry.host}/{repo_path}"
    raw = inputs_for(source_registry, target_registry, repo_path, record="true")

    for name in ("p1", "t", "p2"):
        (tmp_path / name).mkdir()
    run = run_action(tmp_path / "p1", raw, env)

    assert run.status == 0, run.log
    artifact = run.outputs["record-digest"]
    assert artifact.startswith("sha256:")
    # in the target: the fallback index holds the copied referrer AND the record
    listed = [m["digest"] for m in index_of(dst, repo_path, seeded.digest)[1]["manifests"]]
    assert sorted(listed) == sorted([copied_referrer, artifact])
    predicate = check_artifact(dst, repo_path, artifact, seeded, image)
    assert predicate["source-tag"] == STAGING and predicate["source-digest"] == seeded.digest
    assert predicate["tags"] == [run.outputs["tag"], "production"]
    # the source is only read: its referrers index is as it was, no record there
    assert index_of(src, src_repo, seeded.digest)[1] == source_index_before

    # trace of the target finds the record there
    login = {"username": raw["username"], "password": raw["password"]}
    traced = run_action(tmp_path / "t", {"command": "trace", "image": image, **login}, env)
    assert traced.status == 0, traced.log
    lineage = json.loads(traced.outputs["lineage"])
    assert lineage["record"] == artifact and lineage["digest"] == seeded.digest

    # a re-run: no second record, nothing copied again
    again = run_action(tmp_path / "p2", raw, runner_env(tmp_path, attempt="2"))
    assert again.status == 0, again.log
    assert again.outputs["record-digest"] == artifact
    assert copy_counts(again)["blobs-copied"] == 0
    assert copy_counts(again)["signatures-copied"] == 0
    assert fallback_tag(seeded.digest) in dst.tags(repo_path)
    assert len(index_of(dst, repo_path, seeded.digest)[1]["manifests"]) == 2


@pytest.mark.registry
def test_referrers_from_a_source_api_are_copied_when_other_digests_have_fallback_tags(
    tmp_path: Path, registry: RegistryServer, basic_registry: RegistryServer, repo_path: str
) -> None:
    """A source with a referrers API whose repository also holds ``sha256-<hex>`` fallback
    indexes of OTHER digests (history from before the registry had the API, or a tool that
    always writes the tag): the referrers the API lists for the promoted digest are
    copied, not skipped because some fallback tag exists."""
    src, dst = registry.seeder(), basic_registry.seeder()
    src_repo = f"staging/{repo_path}"
    seeded = src.oci_image(src_repo, STAGING)
    older = src.oci_image(src_repo, None, layer_size=2048)
    sign(src, src_repo, older)  # a sha256-<hex> fallback index, for another digest
    ref_digest, referrer = push_referrer(src, src_repo, seeded, "api-only")
    listing = referrers_listing(ref_digest, referrer)

    def referrers_api(exchange: Any) -> None:  # an OCI 1.1 source: the API answers
        exchange.status = 200
        exchange.response_headers = {"Content-Type": "application/vnd.oci.image.index.v1+json"}
        exchange.response_body = listing

    hexpart = seeded.digest.split(":")[1]
    with FaultProxy(registry.url) as proxy:
        proxy.add(
            Fault.hook(referrers_api, after=True),
            method="GET",
            path=rf"/referrers/sha256:{hexpart}",
            always=True,
        )
        run = run_action(
            tmp_path,
            raw_inputs(
                f"{basic_registry.host}/{repo_path}",
                f"{proxy.host}/{src_repo}",
                login=basic_registry,
            ),
        )
    assert run.status == 0, run.log
    assert dst.raw_manifest(repo_path, ref_digest)[0] == referrer
    index = json.loads(dst.raw_manifest(repo_path, f"sha256-{hexpart}")[0])
    assert ref_digest in [m["digest"] for m in index["manifests"]]
    assert copy_counts(run)["signatures-copied"] == 1


@pytest.mark.registry
def test_a_blob_phase_longer_than_the_deadline_still_writes_the_manifests(
    tmp_path: Path, registry: RegistryServer, basic_registry: RegistryServer, repo_path: str
) -> None:
    """The retry deadline (120 s by default) bounds retrying, not the copy: blobs that take
    longer to stream than the deadline (a large image across the internet) must not make
    the manifest PUTs after them give up at once, on the first run."""
    src, dst = registry.seeder(), basic_registry.seeder()
    src_repo = f"staging/{repo_path}"
    seeded = src.oci_image(src_repo, STAGING, layer_size=20_000)
    with FaultProxy(registry.url) as proxy:
        # each blob GET of the source takes 1.5 s: the blob phase outlasts a 2 s deadline
        proxy.add(Fault.delay(1.5), method="GET", path=r"/blobs/sha256:", always=True)
        run = run_action(
            tmp_path,
            raw_inputs(
                f"{basic_registry.host}/{repo_path}",
                f"{proxy.host}/{src_repo}",
                login=basic_registry,
                **{"copy-parallelism": "1"},
            ),
            {"PROMOTE_REGISTRY_DEADLINE": "2"},
        )
    assert run.status == 0, run.log
    assert copy_counts(run)["blobs-copied"] == 2
    assert_same_image(src, src_repo, dst, repo_path, seeded.digest)
    assert run.outputs["tag"] in dst.tags(repo_path)


@pytest.mark.registry
def test_blob_gets_ask_for_the_bytes_as_stored_not_a_compressed_transfer(
    tmp_path: Path, registry: RegistryServer, basic_registry: RegistryServer, repo_path: str
) -> None:
    """A front (nginx ``gzip_types *``, a CDN) that gzips a blob for a client accepting
    gzip: the blob GETs send ``Accept-Encoding: identity``, so the bytes hashed and the
    declared ``Content-Length`` are the blob's own and the copy succeeds."""
    import gzip

    src, dst = registry.seeder(), basic_registry.seeder()
    src_repo = f"staging/{repo_path}"
    seeded = src.oci_image(src_repo, STAGING, layer_size=40_000)

    def gzip_if_accepted(exchange: Any) -> None:
        accepted = {k.lower(): v for k, v in exchange.headers.items()}.get("accept-encoding", "")
        if exchange.method == "GET" and "gzip" in accepted and exchange.status == 200:
            exchange.response_body = gzip.compress(exchange.response_body)
            exchange.response_headers = {
                **exchange.response_headers,
                "Content-Encoding": "gzip",
            }

    with FaultProxy(registry.url) as proxy:
        proxy.add(Fault.hook(gzip_if_accepted, after=True), path=r"/blobs/sha256:", always=True)
        run = run_action(
            tmp_path,
            raw_inputs(
                f"{basic_registry.host}/{repo_path}",
                f"{proxy.host}/{src_repo}",
                login=basic_registry,
            ),
        )
        blob_gets = [e for e in proxy.requests("blob") if e.method == "GET"]
    assert run.status == 0, run.log
    assert blob_gets and all(
        e.headers.get("Accept-Encoding", e.headers.get("accept-encoding")) == "identity"
        for e in blob_gets
    )
    assert_same_image(src, src_repo, dst, repo_path, seeded.digest)


@pytest.mark.registry
def test_a_trickled_source_blob_cannot_outlast_the_deadline(
    tmp_path: Path, registry: RegistryServer, basic_registry: RegistryServer, repo_path: str
) -> None:
    """Issue 17's one deadline on the copy path: a source sending a blob 8 bytes per 0.4 s
    (each read well inside the 3 s timeout) made a copy with PROMOTE_REGISTRY_DEADLINE=8
    run for hours; a blob transfer now gets the deadline plus 1 s per MiB, then fails with
    no tag written."""
    from testkit.proxy import Exchange

    src_repo = f"staging/{repo_path}"
    registry.seeder().oci_image(src_repo, STAGING, layer_size=50_000)

    def trickle(exchange: Exchange) -> None:
        exchange.trickle = (8, 0.4)

    with FaultProxy(registry.url) as proxy:
        proxy.add(Fault.hook(trickle, after=True), method="GET", path=r"/blobs/", always=True)
        raw = raw_inputs(
            f"{basic_registry.host}/{repo_path}", f"{proxy.host}/{src_repo}", login=basic_registry
        )
        env = {"PROMOTE_REGISTRY_DEADLINE": "8", "PROMOTE_REGISTRY_TIMEOUT": "3"}
        started = time.monotonic()
        run = run_action(tmp_path, raw, env)
        elapsed = time.monotonic() - started
    assert run.status == 1, run.log
    assert "No tag was written" in run.log and "deadline" in run.log
    assert "Traceback" not in run.log
    assert elapsed < 12.0, elapsed
    assert basic_registry.seeder().tags(repo_path) == []
