"""The Manifest value: digest from bytes, index detection, platforms, annotations."""

from __future__ import annotations

import hashlib
import json

import pytest

from promote.errors import RegistryError
from promote.registry import (
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
    MANIFEST_ACCEPT,
    MANIFEST_MEDIA_TYPES,
    OCI_INDEX,
    OCI_MANIFEST,
    Manifest,
)

INDEX = {
    "schemaVersion": 2,
    "mediaType": OCI_INDEX,
    "manifests": [
        {"digest": "sha256:" + "1" * 64, "platform": {"os": "linux", "architecture": "amd64"}},
        {
            "digest": "sha256:" + "2" * 64,
            "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"},
        },
        {
            "digest": "sha256:" + "3" * 64,
            "platform": {"os": "unknown", "architecture": "unknown"},
            "annotations": {"vnd.docker.reference.type": "attestation-manifest"},
        },
        {"digest": "sha256:" + "4" * 64},
    ],
    "annotations": {"org.opencontainers.image.revision": "abc", "n": 3},
}


def test_digest_is_sha256_of_the_exact_bytes() -> None:
    data = b'{ "schemaVersion":2 }\n\n'
    manifest = Manifest.from_bytes(data, OCI_MANIFEST)
    assert manifest.digest == "sha256:" + hashlib.sha256(data).hexdigest()
    assert manifest.data is not None and manifest.data == data
    assert Manifest.from_bytes(data.strip(), OCI_MANIFEST).digest != manifest.digest
    assert "schemaVersion" not in repr(manifest)  # bytes stay out of reprs and logs


@pytest.mark.parametrize("media_type", [OCI_INDEX, DOCKER_MANIFEST_LIST])
def test_index_platforms(media_type: str) -> None:
    manifest = Manifest.from_bytes(json.dumps(INDEX).encode(), media_type)
    assert manifest.is_index
    assert manifest.platforms() == ["linux/amd64", "linux/arm64/v8"]
    assert manifest.config_digest is None
    assert manifest.annotations == {"org.opencontainers.image.revision": "abc"}


@pytest.mark.parametrize("media_type", [OCI_MANIFEST, DOCKER_MANIFEST])
def test_single_image(media_type: str) -> None:
    doc = {"schemaVersion": 2, "config": {"digest": "sha256:" + "c" * 64}, "layers": []}
    manifest = Manifest.from_bytes(json.dumps(doc).encode(), media_type)
    assert not manifest.is_index
    assert manifest.platforms() == []
    assert manifest.config_digest == "sha256:" + "c" * 64
    assert manifest.annotations == {}
    assert manifest.parsed() is manifest.parsed()  # parsed once


@pytest.mark.parametrize("data", [b"not json", b"[1, 2]", b'"x"'])
def test_from_bytes_requires_a_json_object(data: bytes) -> None:
    with pytest.raises(RegistryError):
        Manifest.from_bytes(data, OCI_MANIFEST)


def test_accept_list_has_all_four_types() -> None:
    assert len(MANIFEST_MEDIA_TYPES) == 4
    assert MANIFEST_ACCEPT.split(", ") == list(MANIFEST_MEDIA_TYPES)
    assert {OCI_INDEX, OCI_MANIFEST, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST} == set(
        MANIFEST_MEDIA_TYPES
    )
