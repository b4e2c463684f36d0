"""OCI 1.1 referrers: list the artifacts attached to a digest, and attach one.

Reading — :func:`referrers` (the one entry point other code needs)::

    GET /v2/<name>/referrers/<digest>        the referrers API (OCI 1.1 registries)
    GET /v2/<name>/manifests/sha256-<hex>    else the referrers tag schema's index

Both answer an OCI image index whose ``manifests`` are the referrer descriptors
(``mediaType``, ``digest``, ``size``, ``artifactType``, ``annotations``). When the caller
already holds the repository's tag list it passes it as ``tags``: then the fallback index is
read only if its tag exists, and the API is asked only when the repository has no
``sha256-<hex>`` tag at all — one request at most, none when there is nothing to find.

Writing — :func:`attach` pushes an artifact whose ``subject`` is the digest::

    POST /v2/<name>/blobs/uploads/            + PUT <location>?digest=   each blob (2 each)
    PUT  /v2/<name>/manifests/<artifact digest>                          the manifest (1)
    (no ``OCI-Subject`` header in the answer: the registry has no referrers API)
    GET  /v2/<name>/manifests/sha256-<hex>    read the fallback index (skipped if given)
    PUT  /v2/<name>/manifests/sha256-<hex>    the index plus this descriptor, deduplicated
    GET  /v2/<name>/manifests/sha256-<hex>    re-read: a racing writer's PUT may have won

A re-read that lacks the descriptor (another writer replaced the index between our read and
our write) starts over from the read, at most :data:`INDEX_ATTEMPTS` times, as the OCI
distribution spec's fallback describes; the update is still not atomic (the spec has no
conditional PUT), so a writer that re-reads before a later overwrite cannot see it.

Blobs are uploaded monolithically (POST, then PUT with the bytes): CNCF distribution 2.8
has no single-request upload. A blob the caller says is present is not uploaded; if the
manifest PUT then answers ``MANIFEST_BLOB_UNKNOWN``, it is uploaded and the PUT repeated.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urljoin, urlsplit, urlunsplit

from promote.errors import NotFoundError, RegistryError
from promote.naming import is_referrers_tag, referrers_tag
from promote.reference import validate_digest
from promote.registry.client import Manifest, sha256_digest
from promote.registry.mediatypes import OCI_INDEX, OCI_MANIFEST

if TYPE_CHECKING:
    from promote.reference import Repository
    from promote.registry.client import RegistryClient

#: Read-append-write rounds before giving up on a fallback index others keep replacing.
INDEX_ATTEMPTS = 3
#: Largest referrers list read (the same bound as a manifest).
MAX_INDEX_SIZE = 4 * 1024 * 1024


def fallback_tag(digest: str) -> str:
    """The referrers tag schema's tag for ``digest``: ``sha256:<hex>`` -> ``sha256-<hex>``."""
    return referrers_tag(validate_digest(digest))


def is_fallback_tag(tag: str) -> bool:
    """A referrers-tag-schema tag, ``sha256-<64 hex>`` (cosign's ``.sig`` ones have suffixes)."""
    return is_referrers_tag(tag)


def _check_client(client: RegistryClient, repository: Repository | None) -> None:
    if repository is not None and repository != client.repository:
        raise ValueError(
            f"the client talks to {client.repository.name}, not {repository.name}; use one "
            "client per repository"
        )


def _manifests(doc: object) -> list[dict[str, Any]]:
    entries = doc.get("manifests") if isinstance(doc, dict) else None
    if not isinstance(entries, list):
        return []
    return [e for e in entries if isinstance(e, dict) and isinstance(e.get("digest"), str)]


def _from_api(client: RegistryClient, digest: str) -> list[dict[str, Any]] | None:
    """The referrers API's answer; ``None`` when the registry has no such API (400, 404, 405,
    or 406 from a registry that does not know the index media type)."""
    url = client._url("referrers", digest)
    response, body = client._get_body(
        url, kind="referrers", limit=MAX_INDEX_SIZE, headers={"Accept": OCI_INDEX}
    )
    if response.status_code in (400, 404, 405, 406):
        response.close()
        return None
    if response.status_code != 200:
        client._raise_for(response, "GET")
    try:
        doc = json.loads(body or b"")
    except ValueError:
        raise RegistryError(f"GET {url}: the referrers list is not JSON", url=url) from None
    return _manifests(doc)


@dataclass(frozen=True)
class FallbackIndex:
    """The ``sha256-<hex>`` index as read (``manifest`` ``None``: the tag does not exist)."""

    tag: str
    manifest: Manifest | None

    @property
    def descriptors(self) -> list[dict[str, Any]]:
        return _manifests(self.manifest.parsed()) if self.manifest is not None else []


def read_fallback(client: RegistryClient, digest: str) -> FallbackIndex:
    """``GET manifests/sha256-<hex>`` (404: an index that does not exist yet)."""
    tag = fallback_tag(digest)
    try:
        manifest = client.get_manifest(tag)
    except NotFoundError:
        return FallbackIndex(tag, None)
    if not manifest.is_index:
        raise RegistryError(
            f"{client.repository.name}:{tag} is a {manifest.media_type}, not the OCI index of "
            "the referrers tag schema"
        )
    return FallbackIndex(tag, manifest)


def referrers(
    client: RegistryClient,
    repository: Repository | None,
    digest: str,
    *,
    tags: Sequence[str] | None = None,
    artifact_type: str | None = None,
) -> list[dict[str, Any]]:
    """The descriptors of every artifact whose ``subject`` is ``digest`` in ``repository``.

    ``client`` must be the client of ``repository`` (``None``: the client's own). The
    referrers API is asked first, the ``sha256-<hex>`` fallback index second; ``tags`` (the
    repository's tag list, if the caller has it) saves the request that cannot find
    anything (see the module docstring). ``artifact_type`` filters the answer. Order: as the
    registry lists them. Registry errors other than "no referrers API" are raised.
    """
    _check_client(client, repository)
    found, _index = lookup(client, digest, tags=tags)
    if artifact_type is not None:
        found = [d for d in found if d.get("artifactType") == artifact_type]
    return found


def lookup(
    client: RegistryClient, digest: str, *, tags: Sequence[str] | None = None
) -> tuple[list[dict[str, Any]], FallbackIndex | None]:
    """:func:`referrers` for writers: also the fallback index when it was read (to pass to
    :func:`attach` as ``known``), ``None`` when it was not."""
    validate_digest(digest)
    if tags is not None:
        if fallback_tag(digest) in tags:
            index = read_fallback(client, digest)
            return index.descriptors, index
        if any(is_fallback_tag(t) for t in tags):
            return [], None  # this registry uses the tag schema; no index names this digest
        return _from_api(client, digest) or [], None
    found = _from_api(client, digest)
    if found is not None:
        return found, None
    index = read_fallback(client, digest)
    return index.descriptors, index


def every_referrer(
    client: RegistryClient, digest: str, *, tags: Sequence[str]
) -> list[dict[str, Any]]:
    """Every referrer of ``digest`` wherever it is listed, for a copy that must leave none
    behind: the referrers API's answer (asked even when other ``sha256-*`` tags exist: a
    registry that gained the API keeps its older fallback indexes), then the entries of
    the ``sha256-<hex>`` index when it is among ``tags``, deduplicated by digest."""
    validate_digest(digest)
    found = list(_from_api(client, digest) or [])
    if fallback_tag(digest) in tags:
        seen = {e["digest"] for e in found}
        found += [e for e in read_fallback(client, digest).descriptors if e["digest"] not in seen]
    return found


def fetch_artifact(client: RegistryClient, digest: str) -> tuple[Manifest, bytes]:
    """An artifact manifest by digest and the bytes of its first layer (2 requests)."""
    manifest = client.get_manifest(digest)
    layers = manifest.parsed().get("layers")
    first = layers[0] if isinstance(layers, list) and layers else None
    layer_digest = first.get("digest") if isinstance(first, dict) else None
    if not isinstance(layer_digest, str):
        raise RegistryError(f"artifact {digest} has no layer")
    return manifest, client.get_blob(layer_digest)


# -- writing ---------------------------------------------------------------------------------
def upload_blob(client: RegistryClient, data: bytes) -> str:
    """Monolithic upload: ``POST blobs/uploads/`` (202 + ``Location``), then ``PUT
    <location>?digest=<digest>`` with the bytes (201). Returns the digest."""
    digest = sha256_digest(data)
    url = client._url("blobs", "uploads", "")
    response = client._send("POST", url, kind="blob-upload")
    if response.status_code != 202 or not response.headers.get("Location"):
        client._raise_for(response, "POST", write=True)
    response.close()
    location = urljoin(response.url or url, response.headers["Location"])
    parts = urlsplit(location)
    query = (parts.query + "&" if parts.query else "") + urlencode({"digest": digest})
    target = urlunsplit((parts.scheme, parts.netloc, parts.path, query, ""))
    response = client._send(
        "PUT",
        target,
        kind="blob-upload",
        headers={"Content-Type": "application/octet-stream"},
        data=data,
    )
    if response.status_code not in (201, 204):
        client._raise_for(response, "PUT", write=True)
    response.close()
    returned = response.headers.get("Docker-Content-Digest")
    if returned and returned != digest:
        raise RegistryError(f"PUT blob: the registry stored {returned}, expected {digest}")
    return digest


@dataclass(frozen=True)
class Attached:
    """What :func:`attach` wrote: the artifact digest, and where the registry lists it."""

    digest: str
    #: ``"api"`` (the registry answered ``OCI-Subject``) or ``"fallback"`` (``sha256-<hex>``)
    via: str
    index_tag: str = ""


def _put_manifest(
    client: RegistryClient, manifest: Manifest, missing: Mapping[str, bytes]
) -> str | None:
    """PUT by digest; returns the ``OCI-Subject`` header (or ``None``). Blobs in
    ``missing`` are uploaded on ``MANIFEST_BLOB_UNKNOWN`` and the PUT is repeated once."""
    from promote.registry.transport import error_details

    url = client._url("manifests", manifest.digest)
    for attempt in (1, 2):
        response = client._send(
            "PUT",
            url,
            kind="manifest-put",
            headers={"Content-Type": manifest.media_type},
            data=manifest.data,
        )
        if response.status_code in (200, 201, 202):
            response.close()
            returned = response.headers.get("Docker-Content-Digest")
            if returned and returned != manifest.digest:
                raise RegistryError(
                    f"PUT {url}: the registry stored {returned}, expected {manifest.digest}"
                )
            return response.headers.get("OCI-Subject")
        if attempt == 2 or response.status_code != 400 or not missing:
            client._raise_for(response, "PUT", write=True)
        codes, detail = error_details(response)
        if not {"MANIFEST_BLOB_UNKNOWN", "BLOB_UNKNOWN"} & set(codes):
            raise RegistryError(
                f"PUT {url}: unexpected HTTP 400 ({detail})",
                status=400,
                method="PUT",
                url=url,
                codes=codes,
            )
        for data in missing.values():
            upload_blob(client, data)
    raise AssertionError("unreachable")  # pragma: no cover


def _index_bytes(descriptors: Sequence[Mapping[str, Any]]) -> bytes:
    doc = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": list(descriptors)}
    return json.dumps(doc, separators=(",", ":"), sort_keys=True).encode()


def add_to_fallback(
    client: RegistryClient,
    subject: str,
    descriptor: Mapping[str, Any],
    *,
    known: FallbackIndex | None = None,
) -> str:
    """Read, append (deduplicated by digest), write and re-read ``sha256-<hex>``.

    ``known`` is an index the caller read just before (saves the first read). Returns the
    tag. Raises :class:`RegistryError` when other writers keep replacing the index.
    """
    index = known
    for _attempt in range(INDEX_ATTEMPTS):
        if index is None:
            index = read_fallback(client, subject)
        entries = index.descriptors
        if any(e.get("digest") == descriptor["digest"] for e in entries):
            return index.tag
        data = _index_bytes([*entries, dict(descriptor)])
        client.put_manifest(index.tag, Manifest.from_bytes(data, OCI_INDEX))
        index = read_fallback(client, subject)
        if any(e.get("digest") == descriptor["digest"] for e in index.descriptors):
            return index.tag
    raise RegistryError(
        f"the referrers index {fallback_tag(subject)} of {client.repository.name} was replaced "
        f"by other writers {INDEX_ATTEMPTS} times while adding {descriptor['digest']}"
    )


def attach(
    client: RegistryClient,
    manifest_bytes: bytes,
    *,
    subject: str,
    blobs: Sequence[bytes],
    maybe_present: Sequence[bytes] = (),
    known: FallbackIndex | None = None,
) -> Attached:
    """Push an artifact (its ``blobs``, then the manifest by digest) whose ``subject`` is
    ``subject``, and list it in the fallback index unless the registry answers
    ``OCI-Subject``. ``maybe_present`` blobs are uploaded only if the registry says they are
    missing (see the module docstring)."""
    validate_digest(subject)
    manifest = Manifest.from_bytes(manifest_bytes, OCI_MANIFEST)
    doc = manifest.parsed()
    if (doc.get("subject") or {}).get("digest") != subject:
        raise ValueError("the artifact's subject is not the digest it is attached to")
    for data in blobs:
        upload_blob(client, data)
    missing = {sha256_digest(d): d for d in maybe_present}
    answered = _put_manifest(client, manifest, missing)
    if answered == subject:
        return Attached(manifest.digest, "api")
    descriptor: dict[str, Any] = {
        "mediaType": OCI_MANIFEST,
        "digest": manifest.digest,
        "size": len(manifest.data),
    }
    if isinstance(doc.get("artifactType"), str):
        descriptor["artifactType"] = doc["artifactType"]
    if isinstance(doc.get("annotations"), dict) and doc["annotations"]:
        descriptor["annotations"] = doc["annotations"]
    tag = add_to_fallback(client, subject, descriptor, known=known)
    return Attached(manifest.digest, "fallback", tag)
