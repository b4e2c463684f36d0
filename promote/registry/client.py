"""The OCI Distribution client: manifests by tag or digest, tag lists, one blob read.

One :class:`RegistryClient` per repository. It never re-serialises a manifest: the bytes a
GET returns are hashed locally (:class:`Manifest` ``digest``) and PUT back unchanged with
``Content-Type`` equal to their media type (spec §Pushing Manifests: registries store the
exact bytes and MUST answer with the same digest).

Every method states the statuses and headers it expects. Errors are mapped in one place,
:meth:`RegistryClient._raise_for`: 401/403 -> :class:`AuthError`, 404 ->
:class:`NotFoundError`, anything else unexpected -> :class:`RegistryError` naming method and
URL with the OCI error codes of the body; retryable faults that outlast the deadline are a
:class:`TransientError` from the transport. Messages never contain credentials or tokens.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

from promote import __version__
from promote.errors import (
    AuthError,
    DigestMismatchError,
    NotFoundError,
    RegistryError,
)
from promote.naming import TAG_RE
from promote.reference import DIGEST_RE, Repository, validate_digest, validate_tag
from promote.registry import mediatypes
from promote.registry.auth import Authenticator, Credentials
from promote.registry.transport import (
    RequestStats,
    Transport,
    origin,
    registry_url,
    safe_url,
)

if TYPE_CHECKING:
    import requests

#: Largest manifest we read: the distribution spec requires registries to accept at least
#: 4 MB and lets them refuse more (413), so a larger one could not be pushed back anyway.
MAX_MANIFEST_SIZE = 4 * 1024 * 1024
#: Largest blob :meth:`RegistryClient.get_blob` reads (it only reads image configs).
MAX_BLOB_SIZE = 16 * 1024 * 1024
#: Tag page size: as large as possible, but ECR rejects ``n`` > 1000 (ggcr #1091).
TAG_PAGE_SIZE = 1000
#: Safety stop for tag pagination (a registry that loops its ``Link`` header).
MAX_TAG_PAGES = 10_000
#: PUT statuses accepted: 201 per spec; 200 and 202 seen in the wild (ggcr, regclient).
PUT_OK = frozenset({200, 201, 202})
#: Index entries that are not runnable platforms (buildx attestation manifests).
_ATTESTATION_REFERENCE_TYPE = "attestation-manifest"


def sha256_digest(data: bytes) -> str:
    """``sha256:<hex>`` of ``data``."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def entry_reference_type(entry: dict[str, Any]) -> str:
    """``vnd.docker.reference.type`` of an index entry (buildx attestations), else ``""``."""
    annotations = entry.get("annotations") or {}
    kind = annotations.get("vnd.docker.reference.type") if isinstance(annotations, dict) else ""
    return str(kind) if kind == _ATTESTATION_REFERENCE_TYPE else ""


def entry_platform(entry: dict[str, Any]) -> str | None:
    """``os/arch[/variant]`` of an index entry; None without a ``platform``."""
    platform = entry.get("platform")
    if not isinstance(platform, dict):
        return None
    parts = [str(platform.get("os", "")), str(platform.get("architecture", ""))]
    if platform.get("variant"):
        parts.append(str(platform["variant"]))
    return "/".join(parts)


def _strip_params(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


@dataclass(frozen=True)
class Descriptor:
    """What a HEAD tells: digest, media type and size of a manifest."""

    digest: str
    media_type: str
    size: int


@dataclass(frozen=True)
class Manifest:
    """Manifest bytes exactly as the registry returned them, their media type and digest.

    ``digest`` is always computed locally from ``data`` (:meth:`from_bytes`).
    """

    data: bytes = field(repr=False)
    media_type: str
    digest: str

    @classmethod
    def from_bytes(cls, data: bytes, media_type: str) -> Manifest:
        """Wrap raw bytes; the digest is ``sha256(data)``. The bytes must be a JSON object."""
        manifest = cls(data=bytes(data), media_type=media_type, digest=sha256_digest(data))
        manifest.parsed()
        return manifest

    @cached_property
    def _json(self) -> dict[str, Any]:
        try:
            doc = json.loads(self.data)
        except ValueError as exc:
            raise RegistryError(f"manifest {self.digest} is not valid JSON: {exc}") from None
        if not isinstance(doc, dict):
            raise RegistryError(f"manifest {self.digest} is not a JSON object")
        return doc

    def parsed(self) -> dict[str, Any]:
        """The manifest as JSON (parsed once, cached). Never serialise it back for a PUT."""
        return self._json

    @property
    def is_index(self) -> bool:
        """True for an OCI image index or a Docker manifest list."""
        return self.media_type in mediatypes.INDEX_MEDIA_TYPES

    def platforms(self) -> list[str]:
        """``os/arch[/variant]`` of each index entry (attestation entries skipped); [] else."""
        if not self.is_index:
            return []
        result: list[str] = []
        for entry in self.parsed().get("manifests") or []:
            if not isinstance(entry, dict) or entry_reference_type(entry):
                continue
            platform = entry_platform(entry)
            if platform is not None:
                result.append(platform)
        return result

    @property
    def annotations(self) -> dict[str, str]:
        """Top-level ``annotations`` (string values only)."""
        raw = self.parsed().get("annotations") or {}
        if not isinstance(raw, dict):
            return {}
        return {str(k): v for k, v in raw.items() if isinstance(v, str)}

    @property
    def config_digest(self) -> str | None:
        """``config.digest`` of a single image manifest; None for an index."""
        if self.is_index:
            return None
        config = self.parsed().get("config")
        digest = config.get("digest") if isinstance(config, dict) else None
        return digest if isinstance(digest, str) else None


class RegistryClient:
    """Talks to one repository of one registry over the OCI Distribution API.

    ``credentials`` None means anonymous (still fine for Bearer registries allowing it).
    ``on_secret`` receives every password and token before it is used. ``deadline`` bounds
    all retrying of this client (seconds, from its first request), ``timeout`` one attempt.
    ``session``, ``sleep`` and ``clock`` are injectable for tests and fault proxies.
    ``ca_file`` names a PEM bundle of CAs to trust for TLS (a registry behind a private CA)
    instead of the system store.
    """

    def __init__(
        self,
        repository: Repository,
        credentials: Credentials | None = None,
        *,
        on_secret: Callable[[str], None] = lambda s: None,
        deadline: float = 120.0,
        timeout: float = 30.0,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        user_agent: str = f"promote/{__version__}",
        wallclock: Callable[[], float] = time.time,
        ca_file: str | None = None,
    ) -> None:
        self._owns_session = session is None
        if session is None:
            import requests

            session = requests.Session()
        self.repository = repository
        self.stats = RequestStats()
        self.transport = Transport(
            session,
            stats=self.stats,
            deadline=deadline,
            timeout=timeout,
            user_agent=user_agent,
            sleep=sleep,
            clock=clock,
            wallclock=wallclock,
            redact=self._redact,
            ca_file=ca_file,
        )
        self.auth = Authenticator(repository, credentials, self.transport, on_secret)
        self._pinged = False
        #: tags the last :meth:`list_tags` dropped because they break the OCI tag grammar
        self.ignored_tags: list[str] = []

    # -- plumbing --------------------------------------------------------------------------
    def _redact(self, text: str) -> str:
        return self.auth.redact(text)

    def _url(self, *parts: str) -> str:
        return f"{self.repository.base_url}/v2/{self.repository.path}/" + "/".join(parts)

    def ping(self) -> None:
        """``GET /v2/``: 200 (no auth) or 401 + ``WWW-Authenticate``. Done once, lazily."""
        if self._pinged:
            return
        url = f"{self.repository.base_url}/v2/"
        response = self.transport.send("GET", url, kind="ping")
        try:
            if response.status_code not in (200, 401):
                _codes, detail = self.transport.error_details(response)
                raise RegistryError(
                    f"GET {url}: HTTP {response.status_code}"
                    f"{': ' + detail if detail else ''}; is {self.repository.registry} an OCI "
                    "registry?",
                    status=response.status_code,
                    method="GET",
                    url=url,
                )
            self.auth.configure(response)
        finally:
            response.close()
        self._pinged = True

    def _send(
        self,
        method: str,
        url: str,
        *,
        kind: str,
        headers: dict[str, str] | None = None,
        data: bytes | None = None,
        params: dict[str, str | list[str]] | None = None,
        timeout: float | None = None,
    ) -> requests.Response:
        """Ping if needed, send with auth; one new token and one retry on a 401 challenge.

        ``timeout`` fixes the per-attempt timeout (see :meth:`Transport.send`).
        """
        self.ping()
        response = self.transport.send(
            method,
            url,
            kind=kind,
            headers=headers,
            data=data,
            params=params,
            authorize=self.auth.header_for,
            timeout=timeout,
        )
        if response.status_code == 401 and self.auth.refresh(response):
            response.close()
            response = self.transport.send(
                method,
                url,
                kind=kind,
                headers=headers,
                data=data,
                params=params,
                authorize=self.auth.header_for,
                timeout=timeout,
            )
        return response

    def _get_body(
        self,
        url: str,
        *,
        kind: str,
        limit: int,
        headers: dict[str, str] | None = None,
        params: dict[str, str | list[str]] | None = None,
    ) -> tuple[requests.Response, bytes | None]:
        """GET; for a 200 also read the body (``None``: longer than ``limit``); header and
        body faults retried under the one deadline (:meth:`Transport.fetch`)."""
        return self.transport.fetch(
            lambda sent_as: self._send("GET", url, kind=sent_as, headers=headers, params=params),
            kind=kind,
            url=url,
            limit=limit,
        )

    def _raise_for(self, response: requests.Response, method: str, *, write: bool = False) -> None:
        """Turn an unexpected response into the right :class:`RegistryError` (and close it)."""
        status = response.status_code
        url = safe_url(response.url)
        if origin(url) != origin(self.repository.base_url):
            # a redirect target (blob storage): its query is a presigned signature/token
            url = url.partition("?")[0]
        codes, detail = self.transport.error_details(response)
        detail = self.auth.redact(detail)
        where = f"{method} {url}"
        suffix = f" ({detail})" if detail else ""
        if status in (401, 403):
            if self.auth.credentials is None:
                hint = "the registry refused anonymous access: give username and password"
            elif status == 401 and self.auth.scheme == "basic":
                hint = (
                    f"the registry refused the credentials of user "
                    f"{self.auth.credentials.username!r}: check the username and password"
                )
            elif write:
                hint = f"denied: check the token has push access to {self.repository.name}"
            else:
                hint = f"denied: check the credentials have pull access to {self.repository.name}"
            raise AuthError(
                f"{where}: HTTP {status}{suffix}; {hint}",
                status=status,
                method=method,
                url=url,
                codes=codes,
            )
        if status == 404:
            raise NotFoundError(
                f"{where}: not found (HTTP 404){suffix}",
                status=status,
                method=method,
                url=url,
                codes=codes,
            )
        raise RegistryError(
            f"{where}: unexpected HTTP {status}{suffix}",
            status=status,
            method=method,
            url=url,
            codes=codes,
        )

    @staticmethod
    def _check_reference(reference: str) -> str:
        if reference.startswith("sha256:") or ":" in reference:
            return validate_digest(reference)
        return validate_tag(reference)

    # -- manifests -------------------------------------------------------------------------
    def get_manifest(self, reference: str) -> Manifest:
        """``GET /v2/<name>/manifests/<tag|digest>`` with the full Accept list.

        Expects 200 with the body; reads ``Content-Type`` (the media type when the body has
        no ``mediaType``) and ``Docker-Content-Digest``. The body is read once, at most
        ``MAX_MANIFEST_SIZE`` bytes. By digest: ``sha256(body)`` must equal it. By tag: a
        ``Docker-Content-Digest`` that disagrees with ``sha256(body)`` is refused
        (:class:`DigestMismatchError`). 404 -> :class:`NotFoundError`.
        """
        self._check_reference(reference)
        url = self._url("manifests", reference)
        response, data = self._get_body(
            url,
            kind="manifest-get",
            limit=MAX_MANIFEST_SIZE,
            headers={"Accept": mediatypes.MANIFEST_ACCEPT},
        )
        if response.status_code != 200:
            self._raise_for(response, "GET")
        header_digest = response.headers.get("Docker-Content-Digest")
        content_type = _strip_params(response.headers.get("Content-Type"))
        if data is None:
            raise RegistryError(
                f"GET {url}: the manifest is larger than {MAX_MANIFEST_SIZE} bytes; registries "
                "need only accept 4 MB manifests, so promote refuses to copy it",
                method="GET",
                url=url,
            )
        digest = sha256_digest(data)
        if DIGEST_RE.fullmatch(reference) and digest != reference:
            raise DigestMismatchError(
                f"GET {url}: the registry returned bytes whose sha256 is {digest}, "
                f"not the digest asked for",
                method="GET",
                url=url,
            )
        if header_digest and header_digest.startswith("sha256:") and header_digest != digest:
            raise DigestMismatchError(
                f"GET {url}: Docker-Content-Digest {header_digest} disagrees with the sha256 "
                f"of the bytes received ({digest})",
                method="GET",
                url=url,
            )
        try:
            doc = json.loads(data)
        except ValueError:
            doc = None
        if not isinstance(doc, dict):
            raise RegistryError(f"GET {url}: the manifest is not a JSON object", url=url)
        body_type = doc.get("mediaType")
        media_type = body_type if isinstance(body_type, str) and body_type else content_type
        if media_type not in mediatypes.MANIFEST_MEDIA_TYPES and not body_type:
            # OCI allows omitting mediaType; a registry answering a generic Content-Type
            # (application/json) then leaves only the structure to go by.
            if doc.get("schemaVersion") == 2 and isinstance(doc.get("manifests"), list):
                media_type = mediatypes.OCI_INDEX
            elif doc.get("schemaVersion") == 2 and isinstance(doc.get("config"), dict):
                media_type = mediatypes.OCI_MANIFEST
        if media_type not in mediatypes.MANIFEST_MEDIA_TYPES:
            raise RegistryError(
                f"GET {url}: unsupported manifest media type {media_type!r} (only OCI and "
                "Docker image manifests and indexes can be promoted, artifacts included; "
                f"schema 1 and other media types cannot); supported: "
                f"{', '.join(mediatypes.MANIFEST_MEDIA_TYPES)}",
                method="GET",
                url=url,
            )
        return Manifest(data=data, media_type=media_type, digest=digest)

    def head_manifest(self, reference: str) -> Descriptor | None:
        """``HEAD /v2/<name>/manifests/<tag|digest>`` with the full Accept list.

        Expects 200 with ``Docker-Content-Digest``, ``Content-Type``, ``Content-Length``;
        404 -> None. A registry that omits the digest header costs one GET instead.
        """
        self._check_reference(reference)
        url = self._url("manifests", reference)
        response = self._send(
            "HEAD", url, kind="manifest-head", headers={"Accept": mediatypes.MANIFEST_ACCEPT}
        )
        if response.status_code == 404:
            response.close()
            return None
        if response.status_code != 200:
            self._raise_for(response, "HEAD")
        response.close()
        digest = response.headers.get("Docker-Content-Digest", "")
        media_type = _strip_params(response.headers.get("Content-Type"))
        length = response.headers.get("Content-Length", "")
        if not DIGEST_RE.fullmatch(digest) or not length.isdigit():
            manifest = self.get_manifest(reference)
            return Descriptor(manifest.digest, manifest.media_type, len(manifest.data))
        return Descriptor(digest=digest, media_type=media_type, size=int(length))

    def put_manifest(self, tag: str, manifest: Manifest) -> str:
        """``PUT /v2/<name>/manifests/<tag>`` with exactly ``manifest.data``.

        ``Content-Type`` is ``manifest.media_type``. Expects 201 (200/202 tolerated). The
        returned ``Docker-Content-Digest`` must equal ``manifest.digest``; without one, a
        HEAD of the tag verifies it. Returns the digest. ``tag`` may also be the digest
        itself (a push by digest, as index children are pushed).
        """
        self._check_reference(tag)
        if DIGEST_RE.fullmatch(tag) and tag != manifest.digest:
            raise DigestMismatchError(f"cannot PUT manifest {manifest.digest} under digest {tag}")
        if manifest.digest != sha256_digest(manifest.data):
            raise DigestMismatchError(f"manifest {manifest.digest} does not match its bytes")
        url = self._url("manifests", tag)
        response = self._send(
            "PUT",
            url,
            kind="manifest-put",
            headers={"Content-Type": manifest.media_type},
            data=manifest.data,
        )
        if response.status_code not in PUT_OK:
            self._raise_for(response, "PUT", write=True)
        response.close()
        returned = response.headers.get("Docker-Content-Digest")
        if returned:
            if returned != manifest.digest:
                raise DigestMismatchError(
                    f"PUT {url}: the registry stored digest {returned}, expected "
                    f"{manifest.digest}; it changed the manifest bytes",
                    method="PUT",
                    url=url,
                )
            return returned
        head = self.head_manifest(tag)
        if head is None or head.digest != manifest.digest:
            found = head.digest if head else "nothing"
            raise DigestMismatchError(
                f"PUT {url}: the registry returned no digest and the tag now names {found}, "
                f"expected {manifest.digest}",
                method="PUT",
                url=url,
            )
        return manifest.digest

    # -- tags ------------------------------------------------------------------------------
    def list_tags(self, *, page_size: int = TAG_PAGE_SIZE) -> list[str]:
        """All tags: ``GET /v2/<name>/tags/list?n=<page_size>``, following every page.

        Expects 200 ``{"name", "tags"}``. Pages: ``Link: <url>; rel="next"`` (relative URLs
        resolved against the request, opaque query tokens kept as given); without a Link but
        with a page of exactly ``n`` tags, ``last=<last tag>`` is tried (stopping when a page
        brings nothing new); a page of more than ``n`` tags is a registry ignoring ``n``, and
        complete. 404 ``NAME_UNKNOWN`` on the first page (no such repository yet) -> [].
        A list that cannot be read whole (a 404 on a later page, a looping ``Link``, more
        than ``MAX_TAG_PAGES`` pages) is an error, never a partial answer: versions and
        timestamps are computed from it. Order as the registry sends it, duplicates dropped.
        """
        if page_size < 1:
            raise ValueError("page_size must be positive")
        url: str | None = self._url("tags", "list")
        params: dict[str, str | list[str]] | None = {"n": str(page_size)}
        tags: list[str] = []
        seen: set[str] = set()
        visited: set[str] = set()
        self.ignored_tags = []
        for page_number in range(MAX_TAG_PAGES):
            if url is None:
                return tags
            read = self._tags_page(url, params, page_number=page_number, so_far=len(tags))
            if read is None:
                return tags
            page, request_url, link = read
            visited.add(request_url)
            new = [t for t in page if t not in seen]
            seen.update(new)
            tags.extend(new)
            if link:
                if not new:
                    raise RegistryError(
                        f"GET {safe_url(request_url)}: a tag list page with a Link to a next "
                        f"page added no new tag (after {len(tags)} tags); refusing to page on",
                        method="GET",
                        url=safe_url(request_url),
                    )
                url, params = link, None
                if url in visited:
                    raise RegistryError(
                        f"GET {safe_url(request_url)}: the tag list's Link header loops "
                        f"back to a page already read, after {len(tags)} tags"
                    )
            elif len(page) == page_size and new:
                # A full page and no Link: ask for what follows. A page LONGER than asked
                # for means the registry ignores `n` (distribution 2.8 does) and sent all.
                url = self._url("tags", "list")
                params = {"n": str(page_size), "last": page[-1]}
            else:
                url = None
        if url is None:
            return tags
        raise RegistryError(
            f"the tag list of {self.repository.name} has more than {MAX_TAG_PAGES} pages; "
            "refusing to work from a partial list"
        )

    def _tags_page(
        self,
        url: str,
        params: dict[str, str | list[str]] | None,
        *,
        page_number: int,
        so_far: int,
    ) -> tuple[list[str], str, str | None] | None:
        """One page of the tag list: its tags in the grammar, the URL read, the next
        page's ``Link`` (resolved). ``None``: no such repository (404 on the first page)."""
        response, body = self._get_body(
            url, kind="tags", limit=MAX_MANIFEST_SIZE * 4, params=params
        )
        if response.status_code == 404:
            codes, _detail = self.transport.error_details(response)
            if page_number == 0 and (not codes or "NAME_UNKNOWN" in codes):
                return None
            if page_number > 0:
                # A repository cannot vanish between pages: a partial list would hide
                # versions and timestamps, so it is an error, never a short answer.
                raise RegistryError(
                    f"GET {safe_url(response.url)}: the tag listing broke off after "
                    f"{so_far} tags (HTTP 404 on page {page_number + 1}); nothing "
                    "was written",
                    status=404,
                    method="GET",
                    url=safe_url(response.url),
                    codes=codes,
                )
            raise NotFoundError(
                f"GET {safe_url(response.url)}: not found ({', '.join(codes)})",
                status=404,
                method="GET",
                url=safe_url(response.url),
                codes=codes,
            )
        if response.status_code != 200:
            self._raise_for(response, "GET")
        request_url = response.url
        try:
            raw_link = response.links.get("next", {}).get("url")
        except Exception:  # requests' Link parser on a garbled header
            raw_link = response.headers.get("Link")
        link = (
            registry_url(raw_link, base=request_url, header="Link", method="GET", url=url)
            if raw_link is not None
            else None
        )
        try:
            doc = json.loads(body or b"")
        except ValueError:
            doc = None
        page = doc.get("tags") if isinstance(doc, dict) else None
        if page is None and isinstance(doc, dict):
            page = []
        if not isinstance(page, list) or not all(isinstance(t, str) for t in page):
            raise RegistryError(
                f"GET {safe_url(request_url)}: the tag list is not valid JSON",
                url=safe_url(request_url),
            )
        # Registry data is data: a name outside the OCI tag grammar is no tag of ours
        # (and could carry newlines or workflow commands into the log).
        bad = [t for t in page if not TAG_RE.fullmatch(t)]
        if bad:
            self.ignored_tags.extend(bad)
            page = [t for t in page if TAG_RE.fullmatch(t)]
        return page, request_url, link

    # -- blobs -----------------------------------------------------------------------------
    def get_blob(self, digest: str) -> bytes:
        """``GET /v2/<name>/blobs/<digest>``; redirects followed anonymously off-origin.

        Expects 200 (after redirects) with at most ``MAX_BLOB_SIZE`` bytes, whose sha256
        must equal ``digest``. Only used to read an image config label.
        """
        validate_digest(digest)
        url = self._url("blobs", digest)
        response, data = self._get_body(url, kind="blob", limit=MAX_BLOB_SIZE)
        if response.status_code != 200:
            self._raise_for(response, "GET")
        if data is None:
            raise RegistryError(
                f"GET {url}: blob larger than {MAX_BLOB_SIZE} bytes", method="GET", url=url
            )
        if sha256_digest(data) != digest:
            raise DigestMismatchError(
                f"GET {url}: the blob's sha256 is {sha256_digest(data)}, not {digest}",
                method="GET",
                url=url,
            )
        return data

    def close(self) -> None:
        """Close the HTTP session (only if this client created it)."""
        if self._owns_session:
            self.transport.session.close()

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
