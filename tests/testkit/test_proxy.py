"""The one forwarding proxy (testkit/proxy.py) in its two configurations, on a real registry.

The fault schedule and the rewrites are proved through promotions in
tests/reliability/test_faultproxy.py; here: what the benchmarks need of it (bodies streamed
and counted, never kept; chunked uploads; blob kinds by method) and what both need (repeated
request headers forwarded as sent).
"""

from __future__ import annotations

import hashlib
import http.client
import json
from collections.abc import Iterator

import pytest
import requests

from testkit.proxy import Exchange, Fault, FaultProxy, classify, classify_by_method, counting_proxy
from testkit.registry import RegistryServer
from testkit.seed import DOCKER_MANIFEST, OCI_MANIFEST

MiB = 1 << 20


def chunked_upload(proxy: FaultProxy, repo: str, pieces: list[bytes]) -> str:
    """POST an upload session and PUT the bytes chunked (as ``docker push`` does)."""
    digest = "sha256:" + hashlib.sha256(b"".join(pieces)).hexdigest()
    started = requests.post(f"{proxy.url}/v2/{repo}/blobs/uploads/", timeout=30)
    assert started.status_code == 202, started.text
    location = started.headers["Location"]
    assert location.startswith(proxy.url) or location.startswith("/")
    if location.startswith("/"):
        location = proxy.url + location
    sep = "&" if "?" in location else "?"

    def body() -> Iterator[bytes]:
        yield from pieces

    done = requests.put(f"{location}{sep}digest={digest}", data=body(), timeout=60)
    assert done.status_code == 201, done.text
    return digest


@pytest.mark.registry
@pytest.mark.parametrize("keep", [True, False], ids=["kept", "streamed"])
def test_chunked_upload_lands_and_bytes_are_counted(
    registry: RegistryServer, repo_path: str, keep: bool
) -> None:
    pieces = [bytes([i]) * (MiB + 17 * i) for i in range(3)]
    size = sum(map(len, pieces))
    proxy = (
        FaultProxy(registry.url)
        if keep
        else counting_proxy(registry.url)  # the benchmarks' configuration
    )
    with proxy:
        digest = chunked_upload(proxy, repo_path, pieces)
        got = requests.get(f"{proxy.url}/v2/{repo_path}/blobs/{digest}", timeout=60)
        assert got.status_code == 200
        assert hashlib.sha256(got.content).hexdigest() == digest.removeprefix("sha256:")
        blob_kind = "blob" if keep else "blob-get"
        assert proxy.uploaded["blob-upload"] == size
        assert proxy.downloaded[blob_kind] == size
        assert proxy.snapshot() == {"blob-upload": 2, blob_kind: 1}
        put = next(e for e in proxy.log if e.method == "PUT")
        get = next(e for e in proxy.log if e.method == "GET")
        # kept: the whole bodies are in the log; streamed: only their sizes were counted
        assert len(put.body) == (size if keep else 0)
        assert len(get.response_body) == (size if keep else 0)
        assert put.status == 201 and get.status == 200 and get.forwarded
        proxy.reset_counts()
        assert proxy.snapshot() == {} and not proxy.uploaded and not proxy.log


@pytest.mark.registry
@pytest.mark.parametrize("keep", [True, False], ids=["kept", "streamed"])
def test_repeated_accept_lines_reach_the_registry(
    registry: RegistryServer, repo_path: str, keep: bool
) -> None:
    """distribution answers an OCI manifest GET 404 unless an Accept line names the OCI type:
    with the OCI line first and the Docker line last, collapsing repeats would lose it."""
    seeded = registry.seeder().oci_image(repo_path, "v1")
    proxy = FaultProxy(registry.url, keep_bodies=keep)
    with proxy:
        conn = http.client.HTTPConnection("127.0.0.1", int(proxy.host.rsplit(":", 1)[1]))
        conn.putrequest("GET", f"/v2/{repo_path}/manifests/v1", skip_accept_encoding=True)
        conn.putheader("Accept", OCI_MANIFEST)
        conn.putheader("Accept", DOCKER_MANIFEST)
        conn.endheaders()
        response = conn.getresponse()
        body = response.read()
        conn.close()
    assert response.status == 200, body
    assert response.getheader("Docker-Content-Digest") == seeded.digest
    assert proxy.log[0].headers["Accept"] == DOCKER_MANIFEST  # the inspection dict: last wins


@pytest.mark.registry
def test_a_hook_may_forward_another_path_than_the_client_sent(
    registry: RegistryServer, repo_path: str
) -> None:
    """``upstream_path``: the registry sees the bare path (the whole list), the exchange keeps
    the client's query for the after-hook (how tests/registry paginate by their own cursor)."""
    seeder = registry.seeder()
    seeder.oci_image(repo_path, "a")
    for tag in ("b", "c"):
        seeder.tag(repo_path, "a", tag)
    seen: list[tuple[str, str | None, list[str]]] = []

    def look(exchange: Exchange) -> None:
        tags = json.loads(exchange.response_body)["tags"]
        seen.append((exchange.path, exchange.upstream_path, tags))

    bare = f"/v2/{repo_path}/tags/list"
    with FaultProxy(registry.url) as proxy:
        proxy.add(
            Fault.hook(look, after=True, upstream_path=lambda p: p.split("?", 1)[0]),
            path=r"/tags/list\?",
        )
        paged = requests.get(f"{proxy.url}{bare}?n=1", timeout=30)
        plain = requests.get(f"{proxy.url}{bare}", timeout=30)  # no rule: forwarded as sent
    assert paged.status_code == 200 and sorted(paged.json()["tags"]) == ["a", "b", "c"]
    assert seen == [(f"{bare}?n=1", bare, paged.json()["tags"])]
    assert plain.status_code == 200 and proxy.log[1].upstream_path is None


@pytest.mark.registry
def test_an_answer_fault_replies_without_forwarding(
    registry: RegistryServer, repo_path: str
) -> None:
    """``Fault.answer``: the hook's status, headers and body go back; the registry (which
    would say 404 for this blob) is never asked; an unmatched method still is."""
    digest = "sha256:" + "0" * 64
    location = f"http://127.0.0.1:9/storage/{digest}?sig=abc"

    def redirect(exchange: Exchange) -> None:
        exchange.status = 307
        exchange.response_headers = {"Location": location}
        exchange.response_body = b"moved"

    with FaultProxy(registry.url) as proxy:
        proxy.add(Fault.answer(redirect), method="GET", path=r"/blobs/sha256:")
        url = f"{proxy.url}/v2/{repo_path}/blobs/{digest}"
        got = requests.get(url, allow_redirects=False, timeout=30)
        head = requests.head(url, timeout=30)
    assert (got.status_code, got.headers["Location"], got.content) == (307, location, b"moved")
    assert head.status_code == 404  # forwarded: the registry has no such blob
    assert [(e.method, e.fault, e.forwarded, e.status) for e in proxy.log] == [
        ("GET", "answer", False, 307),
        ("HEAD", None, True, 404),
    ]
    assert proxy.faults == {"answer": 1}


def test_request_kinds_coarse_and_by_method() -> None:
    for method, path, coarse, fine in (
        ("GET", "/v2/", "ping", "ping"),
        ("GET", "/v2/a/b/manifests/staging-1", "manifest-get", "manifest-get"),
        ("HEAD", "/v2/a/manifests/sha256:00", "manifest-head", "manifest-head"),
        ("PUT", "/v2/a/manifests/production", "manifest-put", "manifest-put"),
        ("GET", "/v2/a/tags/list?n=1000", "tags", "tags"),
        ("POST", "/v2/a/blobs/uploads/", "blob-upload", "blob-upload"),
        ("PATCH", "/v2/a/blobs/uploads/uuid?_state=x", "blob-upload", "blob-upload"),
        ("GET", "/token?scope=repository:a:pull", "token", "token"),
        ("GET", "/v2/a/blobs/sha256:00", "blob", "blob-get"),
        ("HEAD", "/v2/a/blobs/sha256:00", "blob", "blob-head"),
        ("DELETE", "/v2/a/blobs/sha256:00", "blob", "blob-other"),
        ("PATCH", "/v2/a/manifests/x", "other", "manifest-other"),
        ("DELETE", "/v2/a/manifests/x", "manifest-delete", "manifest-delete"),
        ("GET", "/v2/a/tags/list", "tags", "tags"),
        ("GET", "/token?scope=x", "token", "token"),
    ):
        assert (classify(method, path), classify_by_method(method, path)) == (coarse, fine)
