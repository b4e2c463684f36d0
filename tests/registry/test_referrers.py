"""``promote.registry.referrers`` on a real CNCF distribution registry (2.8: the
``sha256-<hex>`` fallback) and on the same registry behind a small OCI 1.1 front that
answers ``OCI-Subject`` and serves ``GET /v2/<name>/referrers/<digest>`` (the other path).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from promote import record
from promote.reference import parse_repository
from promote.registry import RegistryClient
from promote.registry import referrers as refs
from testkit.engine import engine as run_action
from testkit.proxy import Exchange, Fault, FaultProxy
from testkit.registry import RegistryServer
from testkit.seed import Seeded

INDEX = "application/vnd.oci.image.index.v1+json"
MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def artifact_for(subject: Seeded, layer: bytes, kind: str = "promote") -> bytes:
    predicate = {"kind": kind, "tags": [f"production-v1.0.0-abc1234-{len(layer)}"]}
    return record.artifact_manifest(
        layer,
        {"mediaType": subject.media_type, "digest": subject.digest, "size": len(subject.data)},
        predicate=predicate,
    )


@pytest.mark.registry
def test_attach_on_distribution_takes_the_fallback_index(
    registry: RegistryServer, repo_path: str, client_factory: Any
) -> None:
    seeder = registry.seeder()
    subject = seeder.oci_image(repo_path, "staging-abc1234-1")
    client = client_factory(registry, repo_path)
    assert refs.referrers(client, None, subject.digest) == []  # API 404, no index yet
    layer = b'{"hello":"world"}'
    attached = refs.attach(
        client,
        artifact_for(subject, layer),
        subject=subject.digest,
        blobs=[record.EMPTY_DATA, layer],
    )
    assert attached.via == "fallback" and attached.index_tag == refs.fallback_tag(subject.digest)
    found = refs.referrers(client, client.repository, subject.digest)
    assert [d["digest"] for d in found] == [attached.digest]
    assert found[0]["artifactType"] == record.IN_TOTO_MEDIA_TYPE
    # with the tag list: the index is read directly, and a digest without one costs nothing
    tags = client.list_tags()
    before = len(client.stats.records)
    assert refs.referrers(client, None, subject.digest, tags=tags) == found
    other = "sha256:" + "0" * 64
    assert refs.referrers(client, None, other, tags=tags) == []
    assert len(client.stats.records) == before + 1
    assert refs.referrers(client, None, subject.digest, artifact_type="x/y") == []
    # attaching the same artifact again adds nothing
    again = refs.attach(client, artifact_for(subject, layer), subject=subject.digest, blobs=[layer])
    assert again.digest == attached.digest
    assert len(json.loads(seeder.raw_manifest(repo_path, attached.index_tag)[0])["manifests"]) == 1
    with pytest.raises(ValueError, match="one client per repository"):
        refs.referrers(client, registry.repository("some/other"), subject.digest)


@pytest.mark.registry
def test_a_racing_writer_that_replaces_the_index_is_detected_and_merged(
    registry: RegistryServer, repo_path: str
) -> None:
    from testkit.proxy import Fault, FaultProxy

    seeder = registry.seeder()
    subject = seeder.oci_image(repo_path, "staging-abc1234-1")
    tag = refs.fallback_tag(subject.digest)
    other = seeder.oci_image(repo_path, None, layer_size=77)  # the racer's referrer
    theirs = {"mediaType": other.media_type, "digest": other.digest, "size": len(other.data)}

    def race(_exchange: Any) -> None:
        # another writer read the index before our PUT and writes after it, without ours
        doc = {"schemaVersion": 2, "mediaType": INDEX, "manifests": [theirs]}
        seeder.push_manifest(repo_path, tag, json.dumps(doc).encode(), INDEX)

    with FaultProxy(registry.url) as proxy:
        proxy.add(Fault.hook(race, after=True), method="PUT", path=rf"/manifests/{tag}$", nth=[1])
        client = RegistryClient(parse_repository(f"{proxy.host}/{repo_path}"))
        layer = b'{"race":1}'
        attached = refs.attach(
            client,
            artifact_for(subject, layer),
            subject=subject.digest,
            blobs=[record.EMPTY_DATA, layer],
        )
        index_puts = [e for e in proxy.log if e.method == "PUT" and e.path.endswith(tag)]
    digests = [d["digest"] for d in json.loads(seeder.raw_manifest(repo_path, tag)[0])["manifests"]]
    assert digests == [theirs["digest"], attached.digest]
    assert len(index_puts) == 2  # our first write was lost to the racer, the second merged


class OCI11Front:
    """The real registry behind a front that behaves like an OCI 1.1 registry: a manifest
    PUT with ``subject`` is answered with ``OCI-Subject`` and remembered, and
    ``GET /v2/<name>/referrers/<digest>`` lists what was remembered (a :class:`FaultProxy`
    with two rules)."""

    def __init__(self, upstream: str) -> None:
        self.referrers: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self.proxy = FaultProxy(upstream)
        self.host = self.proxy.host
        for method in ("GET", "HEAD", "POST", "PATCH", "DELETE"):
            self.proxy.add(
                Fault.answer(self._list),
                method=method,
                path=r"^/v2/.+/referrers/sha256:[0-9a-f]{64}$",
            )
        self.proxy.add(
            Fault.hook(self._remember, after=True),
            method="PUT",
            path=r"^/v2/.+/manifests/sha256:[0-9a-f]{64}$",
        )

    def _list(self, exchange: Exchange) -> None:
        m = re.fullmatch(r"/v2/(.+)/referrers/(sha256:[0-9a-f]{64})", exchange.path)
        assert m
        doc = {
            "schemaVersion": 2,
            "mediaType": INDEX,
            "manifests": self.referrers.get((m[1], m[2]), []),
        }
        exchange.status = 200
        exchange.response_headers = {"Content-Type": INDEX}
        exchange.response_body = json.dumps(doc).encode()

    def _remember(self, exchange: Exchange) -> None:
        m = re.fullmatch(r"/v2/(.+)/manifests/(sha256:[0-9a-f]{64})", exchange.path)
        if not m or exchange.status != 201:
            return
        doc = json.loads(exchange.body)
        subject = (doc.get("subject") or {}).get("digest")
        if subject:
            desc = {
                "mediaType": doc["mediaType"],
                "digest": m[2],
                "size": len(exchange.body),
                "artifactType": doc.get("artifactType"),
                "annotations": doc.get("annotations", {}),
            }
            self.referrers.setdefault((m[1], subject), []).append(desc)
            exchange.response_headers = {**exchange.response_headers, "OCI-Subject": subject}

    def __enter__(self) -> OCI11Front:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.proxy.close()


@pytest.fixture
def oci11(registry: RegistryServer) -> Iterator[OCI11Front]:
    with OCI11Front(registry.url) as front:
        yield front


@pytest.mark.registry
def test_a_registry_with_the_referrers_api_takes_the_other_path(
    tmp_path: Path, registry: RegistryServer, repo_path: str, oci11: OCI11Front
) -> None:
    seeder = registry.seeder()
    sha = "a1b2c3d4e5f60718293a4b5c6d7e8f9012345678"
    src = f"staging-{sha[:7]}-1764000000"
    subject = seeder.oci_image(repo_path, src, revision=sha)
    image = f"{oci11.host}/{repo_path}"
    (tmp_path / "p").mkdir()
    run = run_action(tmp_path / "p", {"image": image, "source-tag": src})
    assert run.status == 0, run.log
    artifact = run.outputs["record-digest"]
    assert "referrers API" in run.log
    # no fallback index: the registry lists the record itself
    assert not any(t.startswith("sha256-") for t in seeder.tags(repo_path))
    assert [d["digest"] for d in oci11.referrers[(repo_path, subject.digest)]] == [artifact]
    # a re-run finds it through the API and writes no second record
    (tmp_path / "p2").mkdir()
    again = run_action(tmp_path / "p2", {"image": image, "source-tag": src})
    assert again.status == 0, again.log
    assert again.outputs["record-digest"] == artifact
    assert len(oci11.referrers[(repo_path, subject.digest)]) == 1
    # trace reads the record through the API
    (tmp_path / "t").mkdir()
    traced = run_action(tmp_path / "t", {"command": "trace", "image": image})
    assert traced.status == 0, traced.log
    lineage = json.loads(traced.outputs["lineage"])
    assert lineage["record"] == artifact and lineage["digest"] == subject.digest
