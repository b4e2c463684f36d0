"""Seeding benchmark images through the Distribution API (http.client, streamed, no Docker).

The images are real, runnable-by-Docker OCI images: each layer is an *uncompressed* tar
(``application/vnd.oci.image.layer.v1.tar``) holding one file of random bytes, so its digest
is also its ``diff_id`` and ``docker pull`` can verify and unpack it. A layer is generated
and uploaded as a stream (``POST`` an upload, ``PATCH`` the bytes chunked while hashing
them, ``PUT ?digest=``): a 512 MiB layer never sits in memory.

A *release* of an image is a new config (a unique label) over the same layers, so every
timed run promotes a fresh digest of the same size (a promotion of an already-current
digest would be a no-op, and the blobs stay the same for every tool).
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import secrets
import tarfile
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from urllib.parse import urlsplit

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"
PIECE = 1 << 20
#: The three platforms of the benchmark index.
PLATFORMS = (("linux", "amd64", ""), ("linux", "arm64", ""), ("linux", "arm", "v7"))


@dataclass(frozen=True)
class Blob:
    digest: str
    size: int
    media_type: str

    def descriptor(self) -> dict[str, object]:
        return {"mediaType": self.media_type, "digest": self.digest, "size": self.size}


@dataclass(frozen=True)
class Pushed:
    """A manifest (or index) in the registry: its digest, exact bytes and media type."""

    digest: str
    data: bytes
    media_type: str


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def tar_layer(payload_size: int) -> Iterator[bytes]:
    """A tar archive holding ``payload.bin`` of ``payload_size`` random bytes, in pieces."""
    info = tarfile.TarInfo("payload.bin")
    info.size = payload_size
    info.mode = 0o644
    info.mtime = 1_700_000_000
    yield info.tobuf(format=tarfile.USTAR_FORMAT)
    left = payload_size
    while left:
        n = min(left, PIECE)
        yield os.urandom(n)
        left -= n
    pad = (-payload_size) % tarfile.BLOCKSIZE
    yield b"\0" * (pad + 2 * tarfile.BLOCKSIZE)


class Pusher:
    """Writes blobs, manifests and tags to one registry (``http://127.0.0.1:PORT``)."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self._local = threading.local()
        self._lock = threading.Lock()
        self._all: list[http.client.HTTPConnection] = []

    def _conn(self) -> http.client.HTTPConnection:
        conn: http.client.HTTPConnection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = http.client.HTTPConnection(self.host, self.port, timeout=600, blocksize=PIECE)
            self._local.conn = conn
            with self._lock:
                self._all.append(conn)
        return conn

    def close(self) -> None:
        """Close every connection (of every thread that used this pusher)."""
        with self._lock:
            for conn in self._all:
                conn.close()
            self._all.clear()
        self._local = threading.local()

    def __enter__(self) -> Pusher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request(
        self,
        method: str,
        path: str,
        body: bytes | Iterable[bytes] | None = None,
        headers: dict[str, str] | None = None,
        *,
        chunked: bool = False,
    ) -> tuple[int, dict[str, str], bytes]:
        for attempt in (1, 2):
            conn = self._conn()
            try:
                conn.request(method, path, body=body, headers=headers or {}, encode_chunked=chunked)
                response = conn.getresponse()
                data = response.read()
                return response.status, {k.lower(): v for k, v in response.getheaders()}, data
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                conn.close()
                self._local.conn = None
                if attempt == 2 or not isinstance(body, bytes | None):
                    raise
        raise AssertionError("unreachable")

    @staticmethod
    def _path(location: str) -> str:
        parts = urlsplit(location)
        return parts.path + (f"?{parts.query}" if parts.query else "")

    def _start_upload(self, repo: str) -> str:
        status, headers, body = self.request("POST", f"/v2/{repo}/blobs/uploads/")
        if status != 202:
            raise RuntimeError(f"POST blob upload: HTTP {status} {body[:200]!r}")
        return self._path(headers["location"])

    def _finish_upload(self, location: str, digest: str) -> None:
        sep = "&" if "?" in location else "?"
        status, _h, body = self.request("PUT", f"{location}{sep}digest={digest}", b"")
        if status != 201:
            raise RuntimeError(f"PUT blob {digest}: HTTP {status} {body[:200]!r}")

    def push_blob(self, repo: str, data: bytes, media_type: str) -> Blob:
        digest = sha256(data)
        location = self._start_upload(repo)
        sep = "&" if "?" in location else "?"
        status, _h, body = self.request(
            "PUT",
            f"{location}{sep}digest={digest}",
            data,
            {"Content-Type": "application/octet-stream"},
        )
        if status != 201:
            raise RuntimeError(f"PUT blob {digest}: HTTP {status} {body[:200]!r}")
        return Blob(digest, len(data), media_type)

    def push_blob_stream(self, repo: str, pieces: Iterable[bytes], media_type: str) -> Blob:
        """Upload a blob of unknown digest: PATCH the pieces chunked while hashing them."""
        hasher = hashlib.sha256()
        size = 0

        def hashed() -> Iterator[bytes]:
            nonlocal size
            for piece in pieces:
                hasher.update(piece)
                size += len(piece)
                yield piece

        location = self._start_upload(repo)
        status, headers, body = self.request(
            "PATCH",
            location,
            hashed(),
            {"Content-Type": "application/octet-stream"},
            chunked=True,
        )
        if status != 202:
            raise RuntimeError(f"PATCH blob: HTTP {status} {body[:200]!r}")
        digest = "sha256:" + hasher.hexdigest()
        self._finish_upload(self._path(headers["location"]), digest)
        return Blob(digest, size, media_type)

    def put_manifest(self, repo: str, reference: str, data: bytes, media_type: str) -> str:
        status, headers, body = self.request(
            "PUT", f"/v2/{repo}/manifests/{reference}", data, {"Content-Type": media_type}
        )
        if status != 201:
            raise RuntimeError(f"PUT manifest {repo}:{reference}: HTTP {status} {body[:300]!r}")
        digest = headers.get("docker-content-digest", "")
        if digest != sha256(data):
            raise RuntimeError(f"registry answered digest {digest}, expected {sha256(data)}")
        return digest

    def head_manifest(self, repo: str, reference: str) -> tuple[str, str] | None:
        """(digest, media type) of a manifest, or None when absent."""
        accept = ", ".join(
            [
                OCI_MANIFEST,
                OCI_INDEX,
                "application/vnd.docker.distribution.manifest.v2+json",
                "application/vnd.docker.distribution.manifest.list.v2+json",
            ]
        )
        status, headers, _b = self.request(
            "HEAD", f"/v2/{repo}/manifests/{reference}", None, {"Accept": accept}
        )
        if status != 200:
            return None
        content_type = headers.get("content-type", "").split(";", 1)[0].strip()
        return headers.get("docker-content-digest", ""), content_type

    def tag_many(
        self, repo: str, tags: Sequence[str], pushed: Pushed, *, workers: int = 8
    ) -> float:
        """PUT the same manifest under every tag (a thread pool); return the seconds taken."""
        started = time.perf_counter()
        chunks = [tags[i : i + 500] for i in range(0, len(tags), 500)]

        def put(chunk: Sequence[str]) -> None:
            for tag in chunk:
                self.put_manifest(repo, tag, pushed.data, pushed.media_type)

        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(put, chunks))
        return time.perf_counter() - started


# -- images ----------------------------------------------------------------------------------
def config_bytes(layers: Sequence[Blob], *, os_: str, arch: str, variant: str, label: str) -> bytes:
    config: dict[str, object] = {
        "architecture": arch,
        "os": os_,
        "config": {
            "Cmd": ["/payload.bin"],
            "Labels": {"org.opencontainers.image.title": "promote-bench", "bench.release": label},
        },
        "rootfs": {"type": "layers", "diff_ids": [layer.digest for layer in layers]},
    }
    if variant:
        config["variant"] = variant
    return json.dumps(config, indent=1).encode()


def manifest_bytes(config: Blob, layers: Sequence[Blob]) -> bytes:
    doc = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": config.descriptor(),
        "layers": [layer.descriptor() for layer in layers],
    }
    # deliberately not canonical JSON (indent, key order): a re-serialising tool changes it
    return json.dumps(doc, indent=3).encode()


@dataclass
class ImageSpec:
    """The layers of a benchmark image (one per platform): pushed once, released many times."""

    repo: str
    kind: str  # "single" | "index"
    layers: dict[str, Blob]  # platform -> its layer

    @property
    def payload_bytes(self) -> int:
        return sum(layer.size for layer in self.layers.values())


def make_layers(pusher: Pusher, repo: str, kind: str, payload_size: int) -> ImageSpec:
    """Upload the layer(s): one for a single image, one per platform for an index."""
    platforms = PLATFORMS[:1] if kind == "single" else PLATFORMS
    layers = {
        "/".join(p for p in plat if p): pusher.push_blob_stream(
            repo, tar_layer(payload_size), OCI_LAYER_TAR
        )
        for plat in platforms
    }
    return ImageSpec(repo, kind, layers)


def release(pusher: Pusher, spec: ImageSpec, tag: str, label: str | None = None) -> Pushed:
    """Push a new config per platform over the spec's layers and tag the manifest or index."""
    label = label or secrets.token_hex(8)
    children: list[tuple[str, Pushed]] = []
    for platform, layer in spec.layers.items():
        os_, arch, *rest = platform.split("/")
        variant = rest[0] if rest else ""
        cfg = config_bytes([layer], os_=os_, arch=arch, variant=variant, label=label)
        config = pusher.push_blob(spec.repo, cfg, OCI_CONFIG)
        data = manifest_bytes(config, [layer])
        children.append((platform, Pushed(sha256(data), data, OCI_MANIFEST)))
    if spec.kind == "single":
        pushed = children[0][1]
        pusher.put_manifest(spec.repo, tag, pushed.data, pushed.media_type)
        return pushed
    entries = []
    for platform, child in children:
        pusher.put_manifest(spec.repo, child.digest, child.data, child.media_type)
        os_, arch, *rest = platform.split("/")
        plat: dict[str, str] = {"architecture": arch, "os": os_}
        if rest:
            plat["variant"] = rest[0]
        entries.append(
            {
                "mediaType": child.media_type,
                "digest": child.digest,
                "size": len(child.data),
                "platform": plat,
            }
        )
    data = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}).encode()
    pushed = Pushed(sha256(data), data, OCI_INDEX)
    pusher.put_manifest(spec.repo, tag, data, OCI_INDEX)
    return pushed


# -- tag names -------------------------------------------------------------------------------
def short_sha() -> str:
    return secrets.token_hex(4)[:7]


def staging_tag(ts: int) -> str:
    return f"staging-{short_sha()}-{ts}"


def history_tags(count: int, *, base_ts: int = 1_600_000_000) -> list[str]:
    """``count`` plausible existing tags: half production releases, half staging builds.

    Includes the floating ``production`` tag when ``count`` > 0. Timestamps are far in the
    past, so a promotion's new tag is always the newest.
    """
    if count <= 0:
        return []
    tags = ["production"]
    releases = (count - 1) // 2
    for i in range(releases):
        major, rest = divmod(i, 10_000)
        minor, patch = divmod(rest, 100)
        tags.append(f"production-v{major + 1}.{minor}.{patch}-{short_sha()}-{base_ts + 2 * i}")
    while len(tags) < count:
        tags.append(f"staging-{short_sha()}-{base_ts + 2 * len(tags) + 1}")
    return tags
