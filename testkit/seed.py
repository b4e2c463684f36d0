"""Seed a real registry through the Distribution API, independently of promote's client.

The seeder is deliberately separate from :mod:`promote.registry` (its own tiny auth flow,
plain ``requests``), so tests never check the client against itself.

Manifests and configs are written as **deliberately non-canonical JSON** (:func:`odd_json`):
keys in reverse order, tab indentation, a space before colons and commas, a trailing blank
line. Any client that re-serialises them changes the digest, which is what the tests catch.

What it can push (each returns a :class:`Seeded` with the digest, media type and raw bytes):

* :meth:`Seeder.oci_image` - OCI image manifest (optional ``revision`` annotation,
  optional ``org.opencontainers.image.revision`` config label, ``layer_size`` bytes of
  layer, streamed from a generator when large, e.g. 64 MiB for benchmarks);
* :meth:`Seeder.oci_index` - OCI index over 3 platforms (children pushed by digest first);
* :meth:`Seeder.docker_image` - Docker schema 2 image;
* :meth:`Seeder.docker_list` - Docker manifest list;

plus :meth:`Seeder.tag` (re-tag an existing manifest byte-for-byte), :meth:`Seeder.tags`
(all tags, following ``Link``), :meth:`Seeder.raw_manifest` (bytes, ``Content-Type`` and
``Docker-Content-Digest`` by tag or digest) and :meth:`Seeder.push_manifest`.

Auth: works against ``none``, ``basic`` and ``token`` registries given the user/password
(Basic header, or a Bearer token fetched from the challenge's realm per scope).
"""

from __future__ import annotations

import base64
import hashlib
import json
import random
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin

import requests

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
ACCEPT_ALL = ", ".join([OCI_INDEX, OCI_MANIFEST, DOCKER_LIST, DOCKER_MANIFEST])
REVISION = "org.opencontainers.image.revision"
DEFAULT_PLATFORMS = ("linux/amd64", "linux/arm64/v8", "linux/s390x")
#: Layers above this size are streamed from a generator instead of held in memory.
STREAM_THRESHOLD = 8 * 1024 * 1024
CHUNK = 1024 * 1024


def odd_json(value: Any, depth: int = 0) -> str:
    """Valid JSON, but nothing like ``json.dumps`` would write (see the module docstring)."""
    pad = "\t" * (depth + 1)
    if isinstance(value, dict):
        if not value:
            return "{ }"
        items = [f"{pad}{json.dumps(k)} :  {odd_json(v, depth + 1)}" for k, v in value.items()]
        items.reverse()
        return "{\n" + " ,\n".join(items) + "\n" + "\t" * depth + "}"
    if isinstance(value, list):
        if not value:
            return "[ ]"
        return "[ " + " , ".join(odd_json(v, depth + 1) for v in value) + " ]"
    return json.dumps(value)


def odd_bytes(value: Any) -> bytes:
    """:func:`odd_json` encoded, with a trailing blank line."""
    return (odd_json(value) + "\n\n").encode()


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass
class Seeded:
    """A manifest pushed: where, what, and the exact bytes."""

    repo: str
    digest: str
    media_type: str
    data: bytes
    tag: str | None = None
    config_digest: str | None = None
    layer_digests: list[str] = field(default_factory=list)
    children: list[Seeded] = field(default_factory=list)
    platform: str | None = None

    @property
    def size(self) -> int:
        return len(self.data)


def _platform_dict(platform: str) -> dict[str, str]:
    parts = platform.split("/")
    result = {"os": parts[0], "architecture": parts[1]}
    if len(parts) > 2:
        result["variant"] = parts[2]
    return result


class Seeder:
    """Pushes content to one registry (``url`` like ``http://127.0.0.1:PORT``)."""

    def __init__(
        self,
        url: str,
        username: str | None = None,
        password: str | None = None,
        *,
        session: requests.Session | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.username = username
        self.password = password
        self.session = session or requests.Session()
        self._auth: dict[str, str] = {}
        self._counter = random.Random()
        self.requests_sent = 0

    def close(self) -> None:
        self.session.close()

    # -- auth + HTTP -----------------------------------------------------------------------
    def _basic(self) -> str:
        raw = f"{self.username}:{self.password}".encode()
        return "Basic " + base64.b64encode(raw).decode()

    def _authenticate(self, repo: str, challenge: str) -> str:
        scheme = challenge.split(" ", 1)[0].lower()
        if scheme == "basic":
            return self._basic()
        params = dict(re.findall(r'(\w+)="([^"]*)"', challenge))
        scope = f"repository:{repo}:push,pull"
        query: dict[str, str] = {"service": params.get("service", ""), "scope": scope}
        headers = {"Authorization": self._basic()} if self.username else {}
        response = self.session.get(params["realm"], params=query, headers=headers, timeout=30)
        self.requests_sent += 1
        response.raise_for_status()
        doc: dict[str, str] = response.json()
        return "Bearer " + (doc.get("token") or doc["access_token"])

    def request(
        self,
        method: str,
        repo: str,
        url: str,
        *,
        expect: tuple[int, ...] = (200, 201, 202),
        **kwargs: Any,
    ) -> requests.Response:
        """Send with auth for ``repo``; one challenge round on 401; check the status."""
        headers = dict(kwargs.pop("headers", {}))
        for _round in range(2):
            if repo in self._auth:
                headers["Authorization"] = self._auth[repo]
            response = self.session.request(
                method, url, headers=headers, timeout=120, allow_redirects=False, **kwargs
            )
            self.requests_sent += 1
            if response.status_code == 401 and "WWW-Authenticate" in response.headers:
                self._auth[repo] = self._authenticate(repo, response.headers["WWW-Authenticate"])
                continue
            break
        if response.status_code not in expect:
            raise AssertionError(
                f"seed: {method} {url} -> {response.status_code} {response.text[:300]}"
            )
        return response

    def _api(self, repo: str, *parts: str) -> str:
        return f"{self.url}/v2/{repo}/" + "/".join(parts)

    # -- blobs -----------------------------------------------------------------------------
    def push_blob(self, repo: str, data: bytes) -> str:
        """Monolithic upload: ``POST .../blobs/uploads/`` then ``PUT <Location>&digest=``."""
        digest = sha256(data)
        self._upload(repo, digest, data, len(data))
        return digest

    def push_stream(self, repo: str, chunks: Callable[[], Iterator[bytes]]) -> tuple[str, int]:
        """Upload a blob produced twice by ``chunks()`` (once to hash, once to send)."""
        hasher = hashlib.sha256()
        size = 0
        for chunk in chunks():
            hasher.update(chunk)
            size += len(chunk)
        digest = "sha256:" + hasher.hexdigest()
        self._upload(repo, digest, chunks(), size)
        return digest, size

    def _upload(self, repo: str, digest: str, body: bytes | Iterator[bytes], size: int) -> None:
        head = self.request("HEAD", repo, self._api(repo, "blobs", digest), expect=(200, 404))
        if head.status_code == 200:
            return
        start = self.request("POST", repo, self._api(repo, "blobs", "uploads") + "/", expect=(202,))
        location = urljoin(self.url + "/", start.headers["Location"])
        sep = "&" if "?" in location else "?"
        headers = {"Content-Type": "application/octet-stream"}
        if isinstance(body, bytes):
            headers["Content-Length"] = str(size)
        self.request(
            "PUT",
            repo,
            f"{location}{sep}digest={digest}",
            expect=(201,),
            data=body,
            headers=headers,
        )

    def _layer(self, repo: str, size: int) -> tuple[str, int]:
        seed = self._counter.getrandbits(64)
        if size <= STREAM_THRESHOLD:
            data = random.Random(seed).randbytes(size)
            return self.push_blob(repo, data), size

        def chunks() -> Iterator[bytes]:
            rng = random.Random(seed)
            left = size
            while left > 0:
                n = min(CHUNK, left)
                yield rng.randbytes(n)
                left -= n

        return self.push_stream(repo, chunks)

    # -- manifests -------------------------------------------------------------------------
    def push_manifest(self, repo: str, reference: str, data: bytes, media_type: str) -> str:
        """PUT raw bytes; assert the registry's digest is ``sha256(data)``."""
        response = self.request(
            "PUT",
            repo,
            self._api(repo, "manifests", reference),
            data=data,
            headers={"Content-Type": media_type},
            expect=(201,),
        )
        digest = sha256(data)
        returned = response.headers.get("Docker-Content-Digest")
        assert returned == digest, f"registry returned {returned}, bytes are {digest}"
        return digest

    def raw_manifest(self, repo: str, reference: str) -> tuple[bytes, str, str]:
        """``(bytes, Content-Type, Docker-Content-Digest)`` with the full Accept list."""
        response = self.request(
            "GET",
            repo,
            self._api(repo, "manifests", reference),
            headers={"Accept": ACCEPT_ALL},
            expect=(200,),
        )
        return (
            response.content,
            response.headers.get("Content-Type", ""),
            response.headers.get("Docker-Content-Digest", ""),
        )

    def manifest_status(self, repo: str, reference: str, accept: str = ACCEPT_ALL) -> int:
        """Status of a manifest GET with the given ``Accept`` (for negotiation tests)."""
        response = self.request(
            "GET",
            repo,
            self._api(repo, "manifests", reference),
            headers={"Accept": accept},
            expect=(200, 404),
        )
        return response.status_code

    def tag(self, repo: str, reference: str, new_tag: str) -> str:
        """Re-tag ``reference`` as ``new_tag`` byte-for-byte; returns the digest."""
        data, content_type, _ = self.raw_manifest(repo, reference)
        media_type = json.loads(data).get("mediaType") or content_type.split(";")[0]
        return self.push_manifest(repo, new_tag, data, media_type)

    def tags(self, repo: str) -> list[str]:
        """Every tag (follows ``Link``); [] for an unknown repository."""
        url: str | None = self._api(repo, "tags", "list")
        found: list[str] = []
        while url:
            response = self.request("GET", repo, url, expect=(200, 404))
            if response.status_code == 404:
                return found
            found.extend(response.json().get("tags") or [])
            nxt = response.links.get("next", {}).get("url")
            url = urljoin(self.url + "/", nxt) if nxt else None
        return found

    # -- images ----------------------------------------------------------------------------
    def _image(
        self,
        repo: str,
        tag: str | None,
        *,
        oci: bool,
        platform: str,
        revision: str | None,
        label_revision: str | None,
        layer_size: int,
        annotations: dict[str, str] | None,
    ) -> Seeded:
        layer_digest, size = self._layer(repo, layer_size)
        plat = _platform_dict(platform)
        config_doc: dict[str, Any] = {
            "created": "2026-01-02T03:04:05Z",
            **plat,
            "config": {"Labels": {REVISION: label_revision}} if label_revision else {},
            "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
        }
        config = odd_bytes(config_doc)
        config_digest = self.push_blob(repo, config)
        manifest: dict[str, Any] = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST if oci else DOCKER_MANIFEST,
            "config": {
                "mediaType": OCI_CONFIG if oci else DOCKER_CONFIG,
                "digest": config_digest,
                "size": len(config),
            },
            "layers": [
                {
                    "mediaType": OCI_LAYER if oci else DOCKER_LAYER,
                    "digest": layer_digest,
                    "size": size,
                }
            ],
        }
        notes = dict(annotations or {})
        if revision:
            notes[REVISION] = revision
        if notes and oci:
            manifest["annotations"] = notes
        data = odd_bytes(manifest)
        media_type = manifest["mediaType"]
        digest = self.push_manifest(repo, tag or sha256(data), data, media_type)
        return Seeded(
            repo=repo,
            digest=digest,
            media_type=media_type,
            data=data,
            tag=tag,
            config_digest=config_digest,
            layer_digests=[layer_digest],
            platform=platform,
        )

    def oci_image(
        self,
        repo: str,
        tag: str | None,
        *,
        revision: str | None = None,
        label_revision: str | None = None,
        layer_size: int = 1024,
        platform: str = "linux/amd64",
        annotations: dict[str, str] | None = None,
    ) -> Seeded:
        """Push an OCI image manifest (by digest only when ``tag`` is None)."""
        return self._image(
            repo,
            tag,
            oci=True,
            platform=platform,
            revision=revision,
            label_revision=label_revision,
            layer_size=layer_size,
            annotations=annotations,
        )

    def docker_image(
        self,
        repo: str,
        tag: str | None,
        *,
        label_revision: str | None = None,
        layer_size: int = 1024,
        platform: str = "linux/amd64",
    ) -> Seeded:
        """Push a Docker schema 2 image manifest."""
        return self._image(
            repo,
            tag,
            oci=False,
            platform=platform,
            revision=None,
            label_revision=label_revision,
            layer_size=layer_size,
            annotations=None,
        )

    def _index(
        self,
        repo: str,
        tag: str | None,
        *,
        oci: bool,
        platforms: tuple[str, ...],
        revision: str | None,
        layer_size: int,
    ) -> Seeded:
        children = [
            self._image(
                repo,
                None,
                oci=oci,
                platform=p,
                revision=None,
                label_revision=revision,
                layer_size=layer_size,
                annotations=None,
            )
            for p in platforms
        ]
        index: dict[str, Any] = {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX if oci else DOCKER_LIST,
            "manifests": [
                {
                    "mediaType": c.media_type,
                    "digest": c.digest,
                    "size": c.size,
                    "platform": _platform_dict(c.platform or ""),
                }
                for c in children
            ],
        }
        if revision and oci:
            index["annotations"] = {REVISION: revision}
        data = odd_bytes(index)
        digest = self.push_manifest(repo, tag or sha256(data), data, index["mediaType"])
        return Seeded(
            repo=repo,
            digest=digest,
            media_type=index["mediaType"],
            data=data,
            tag=tag,
            children=children,
        )

    def oci_index(
        self,
        repo: str,
        tag: str | None,
        *,
        platforms: tuple[str, ...] = DEFAULT_PLATFORMS,
        revision: str | None = None,
        layer_size: int = 512,
    ) -> Seeded:
        """Push an OCI index over ``platforms`` (children by digest first)."""
        return self._index(
            repo, tag, oci=True, platforms=platforms, revision=revision, layer_size=layer_size
        )

    def docker_list(
        self,
        repo: str,
        tag: str | None,
        *,
        platforms: tuple[str, ...] = DEFAULT_PLATFORMS,
        layer_size: int = 512,
    ) -> Seeded:
        """Push a Docker manifest list over ``platforms`` (children by digest first)."""
        return self._index(
            repo, tag, oci=False, platforms=platforms, revision=None, layer_size=layer_size
        )

    def image(self, kind: str, repo: str, tag: str | None, **kwargs: Any) -> Seeded:
        """Dispatch by kind: ``oci-image``, ``oci-index``, ``docker-image``, ``docker-list``."""
        pushers: dict[str, Callable[..., Seeded]] = {
            "oci-image": self.oci_image,
            "oci-index": self.oci_index,
            "docker-image": self.docker_image,
            "docker-list": self.docker_list,
        }
        return pushers[kind](repo, tag, **kwargs)


IMAGE_KINDS = ("oci-image", "oci-index", "docker-image", "docker-list")
