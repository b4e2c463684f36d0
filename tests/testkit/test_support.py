"""The test infrastructure itself: registry start/stop, token service, seeding helpers."""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
from collections.abc import Callable

import jwt
import pytest
from cryptography import x509

from testkit.registry import RegistryServer, RegistryStartError
from testkit.seed import IMAGE_KINDS, STREAM_THRESHOLD, odd_bytes, sha256
from testkit.tokenserver import TokenService


def test_odd_json_is_valid_but_not_canonical() -> None:
    doc = {"schemaVersion": 2, "mediaType": "x", "layers": [{"a": 1, "b": [1, 2]}], "e": {}}
    data = odd_bytes(doc)
    assert json.loads(data) == doc
    for canonical in (
        json.dumps(doc).encode(),
        json.dumps(doc, separators=(",", ":")).encode(),
        json.dumps(doc, indent=2).encode(),
        json.dumps(doc, sort_keys=True).encode(),
    ):
        assert data != canonical
        assert sha256(data) != sha256(canonical)
    assert data.endswith(b"}\n\n")
    assert b"\t" in data and b" :  " in data


@pytest.mark.parametrize("kind", IMAGE_KINDS)
def test_seeded_bytes_are_stored_exactly(
    any_registry: RegistryServer, repo_path: str, kind: str
) -> None:
    seeder = any_registry.seeder()
    seeded = seeder.image(kind, repo_path, "staging-1")
    raw, _content_type, digest = seeder.raw_manifest(repo_path, "staging-1")
    assert raw == seeded.data
    assert digest == seeded.digest == sha256(raw)
    assert raw != json.dumps(json.loads(raw)).encode()
    if kind in ("oci-index", "docker-list"):
        assert len(seeded.children) == 3
        for child in seeded.children:
            assert seeder.raw_manifest(repo_path, child.digest)[0] == child.data
    assert seeder.tag(repo_path, "staging-1", "copy") == seeded.digest
    assert sorted(seeder.tags(repo_path)) == ["copy", "staging-1"]


def test_large_layers_are_streamed(registry: RegistryServer, repo_path: str) -> None:
    seeder = registry.seeder()
    size = STREAM_THRESHOLD + 123
    seeded = seeder.oci_image(repo_path, "big", layer_size=size)
    response = seeder.request(
        "HEAD", repo_path, f"{registry.url}/v2/{repo_path}/blobs/{seeded.layer_digests[0]}"
    )
    assert int(response.headers["Content-Length"]) == size


def test_registry_modes_answer_as_configured(
    registry_factory: Callable[[str], RegistryServer],
) -> None:
    for mode, status, scheme in [
        ("none", 200, None),
        ("basic", 401, "Basic"),
        ("token", 401, "Bearer"),
    ]:
        server = registry_factory(mode)
        assert server.host.startswith("127.0.0.1:")
        assert server.url == f"http://{server.host}"
        try:
            with urllib.request.urlopen(f"{server.url}/v2/", timeout=5) as response:
                got = response.status
                challenge = None
        except urllib.error.HTTPError as exc:
            got, challenge = exc.code, exc.headers.get("WWW-Authenticate", "")
            exc.close()
        assert got == status
        if scheme:
            assert challenge and challenge.startswith(scheme)
        if mode == "token":
            assert server.token_service is not None
            assert server.token_service.realm in (challenge or "")
        workdir = server.workdir
        assert workdir is not None and workdir.exists()
        server.stop()
        assert not workdir.exists()
        with pytest.raises(urllib.error.URLError):
            urllib.request.urlopen(f"{server.url}/v2/", timeout=2)


def test_missing_binary_is_a_clear_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(RegistryStartError, match="install the Debian package 'docker-registry'"):
        RegistryServer("none").start()


def test_token_service_issues_verifiable_jwts() -> None:
    with TokenService(username="u", password="p", expires_in=120) as service:
        basic = base64.b64encode(b"u:p").decode()
        request = urllib.request.Request(
            f"{service.realm}?service={service.service}&scope=repository:a/b:push,pull"
            "&scope=repository:c/d:pull",
            headers={"Authorization": f"Basic {basic}"},
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            body = json.loads(response.read())
        token = body["token"]
        assert service.tokens == [token]
        header = jwt.get_unverified_header(token)
        der = base64.b64decode(header["x5c"][0])
        cert = x509.load_der_x509_certificate(der)
        assert cert == x509.load_pem_x509_certificate(service.cert_pem)
        claims = jwt.decode(
            token,
            cert.public_key(),
            algorithms=["RS256"],
            audience=service.service,  # type: ignore[arg-type]
        )
        assert claims["iss"] == service.issuer and claims["sub"] == "u"
        assert claims["exp"] - claims["iat"] == 125
        assert {"nbf", "jti"} <= set(claims)
        assert claims["access"] == [
            {"type": "repository", "name": "a/b", "actions": ["push", "pull"]},
            {"type": "repository", "name": "c/d", "actions": ["pull"]},
        ]
        wrong = urllib.request.Request(
            f"{service.realm}?service={service.service}",
            headers={"Authorization": "Basic " + base64.b64encode(b"u:bad").decode()},
        )
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(wrong, timeout=5)
        assert info.value.code == 401
        info.value.close()
        assert len(service.tokens) == 1
