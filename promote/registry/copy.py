"""Copy an image to another repository or registry without changing a byte of it.

Three stages, like the promotion itself (observe -> plan -> apply):

1. :func:`observe` (reads only): the manifest graph from the source (an index's children
   by digest, each image's config and layers, and with ``signatures`` the cosign tags
   ``sha256-<hex>.sig`` / ``.att`` / ``.sbom`` and the OCI referrers of the top digest and
   of every child), then a ``HEAD`` in the target of every blob and manifest.
2. :func:`plan` (pure): each blob is ``skip`` (already in the target), ``mount`` (same
   registry: ``POST /v2/<target>/blobs/uploads/?mount=<digest>&from=<source>``) or
   ``copy`` (streamed ``GET`` -> upload); each manifest ``skip`` or ``put``.
3. :func:`apply` (writes, never a release tag): blobs first (``parallelism`` at a time,
   :data:`DEFAULT_PARALLELISM`), then the manifests bottom-up, each PUT **by digest** with
   the bytes exactly as read (registries refuse children pushed by tag, and a tag is a
   release), the top manifest last by digest too, then signatures and referrers (cosign
   ``.sig``/``.att``/``.sbom`` under their own tags, the ``sha256-<hex>`` referrers index
   when the target has no referrers API). The promotion then writes the immutable and the
   floating tag through its usual apply path: no release tag exists in the target before
   every blob and manifest is there and verified, and a re-run skips what is present.

How a blob moves (:func:`_copy_blob`): ``GET`` from the source (redirects to blob storage
followed *without* credentials, by the transport), ``POST`` an upload in the target, ``PUT
<location>?digest=<digest>`` with the body streamed through in ``CHUNK`` pieces and a
``Content-Length``; the sha256 and size are computed while streaming and the **last piece
is held back** until they are checked, so a source serving the wrong bytes aborts the
upload before the target could commit it (:class:`~promote.errors.DigestMismatchError`).
A mount refused (``202``: distribution without pull access on the source, Harbor, a
registry that ignores ``mount``) falls back to a streamed copy into the upload session
the ``202`` opened. A ``201`` without ``Location`` is a success (nothing more is needed).
A transfer cut off (reset, timeout, 5xx) is retried whole, at most ``BLOB_ATTEMPTS``
times under the client's deadline; a blob that landed meanwhile is found by a ``HEAD``.
The deadline bounds retrying, not the copy: it starts again when a blob has landed and
before the manifests (``Copier._progressed``), so a blob phase longer than the deadline
does not make the manifest PUTs after it give up at once.
Memory stays flat: at most ``parallelism`` x 2 x ``CHUNK`` bytes of blob data are held.

Referrers are read from the source through :mod:`promote.registry.referrers`
``every_referrer`` (the referrers API, always asked, and the ``sha256-<hex>`` fallback index
when that tag exists: a registry that gained the API keeps its older indexes) and made
findable in the target through ``lookup`` / ``add_to_fallback``.
"""

from __future__ import annotations

import hashlib
import json
import queue
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin

from promote.errors import DigestMismatchError, PromoteError, RegistryError, TransientError
from promote.naming import COSIGN_SUFFIXES, cosign_tag
from promote.reference import DIGEST_RE, validate_digest
from promote.registry.client import Manifest, entry_platform, entry_reference_type
from promote.registry.referrers import add_to_fallback, every_referrer, lookup
from promote.registry.transport import RETRYABLE_STATUSES, error_details, safe_url

if TYPE_CHECKING:
    import requests

    from promote.registry.client import RegistryClient

#: Blobs moved at once (the ``copy-parallelism`` input). Four keeps a 2-core runner busy
#: and stays under every registry's per-client connection limits (GHCR, Hub, ECR).
DEFAULT_PARALLELISM = 4
#: Most blobs moved at once, whatever is asked.
MAX_PARALLELISM = 16
#: Piece size of a streamed blob (read from the source, written to the target).
CHUNK = 1024 * 1024
#: Pieces read ahead of the upload, per blob (memory: ``parallelism`` x this x ``CHUNK``).
READ_AHEAD = 4
#: Whole-transfer attempts of one blob (each after a fault cut the previous one off).
BLOB_ATTEMPTS = 3

#: The JSON keys of the ``copy`` output, in order.
COUNT_KEYS = (
    "blobs-mounted",
    "blobs-copied",
    "blobs-skipped",
    "bytes-copied",
    "manifests-copied",
    "signatures-copied",
)


@dataclass(frozen=True)
class Blob:
    """A blob a manifest needs: digest, size, and what it is (for logs and dry runs)."""

    digest: str
    size: int
    what: str


@dataclass(frozen=True)
class Node:
    """One manifest to copy: its bytes, the blobs and child manifests it needs first.

    ``tag`` is set for cosign artifacts (``sha256-<hex>.sig``...) and the fallback
    referrers index, which live under a tag; everything else is written by digest.
    ``role``: ``image`` (the promoted manifest), ``child``, ``signature`` or ``referrer``.
    """

    manifest: Manifest
    role: str
    what: str
    blobs: tuple[Blob, ...] = ()
    children: tuple[Node, ...] = ()
    tag: str = ""

    def walk(self) -> Iterator[Node]:
        """This node's children (depth first, bottom-up), then the node itself."""
        for child in self.children:
            yield from child.walk()
        yield self


@dataclass(frozen=True)
class Graph:
    """What the source holds for one promotion: the image and its signatures/referrers.

    ``referrers`` maps each subject digest to the referrer descriptors found for it (the
    target's ``sha256-<hex>`` index gets them when the target has no referrers API).
    """

    root: Node
    artifacts: tuple[Node, ...] = ()
    referrers: Mapping[str, tuple[dict[str, Any], ...]] = field(default_factory=dict)

    def nodes(self) -> list[Node]:
        """Every manifest to write, in write order (children first, artifacts last)."""
        order: list[Node] = []
        seen: set[tuple[str, str]] = set()
        for top in (self.root, *self.artifacts):
            for node in top.walk():
                key = (node.manifest.digest, node.tag)
                if key not in seen:
                    seen.add(key)
                    order.append(node)
        return order

    def blobs(self) -> list[Blob]:
        """Every blob, once, in first-needed order."""
        found: dict[str, Blob] = {}
        for node in self.nodes():
            for blob in node.blobs:
                found.setdefault(blob.digest, blob)
        return list(found.values())


@dataclass(frozen=True)
class Target:
    """What the target already holds (from HEADs): digests present, tags' digests."""

    present: frozenset[str]
    tags: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class CopyStep:
    """One planned copy action: ``mount``/``copy``/``skip`` a blob, ``put``/``skip`` a
    manifest (``tag`` set when it is written under a tag)."""

    action: str
    kind: str
    digest: str
    size: int
    what: str
    role: str = ""
    tag: str = ""

    def line(self) -> str:
        where = f" as {self.tag}" if self.tag else ""
        return f"{self.action} {self.kind} {self.digest}{where} ({self.size} bytes, {self.what})"


@dataclass(frozen=True)
class CopyPlan:
    """Every blob and manifest the copy will move or skip, in order (pure data)."""

    source: str
    target: str
    same_registry: bool
    steps: tuple[CopyStep, ...]
    warnings: tuple[str, ...] = ()

    def predicted(self) -> dict[str, int]:
        """The ``copy`` counts if every step goes as planned (the dry-run answer)."""
        counts = dict.fromkeys(COUNT_KEYS, 0)
        for step in self.steps:
            if step.kind == "blob":
                key = {"mount": "blobs-mounted", "copy": "blobs-copied", "skip": "blobs-skipped"}
                counts[key[step.action]] += 1
                if step.action == "copy":
                    counts["bytes-copied"] += step.size
            elif step.action == "put":
                signature = step.role in ("signature", "referrer")
                counts["signatures-copied" if signature else "manifests-copied"] += 1
        return counts

    def summary(self) -> str:
        """``mount 3 blobs (12 bytes), copy 0 blobs (0 bytes), skip 2 ...`` for logs."""
        parts = []
        for action in ("mount", "copy", "skip"):
            steps = [s for s in self.steps if s.kind == "blob" and s.action == action]
            parts.append(f"{action} {len(steps)} blobs ({sum(s.size for s in steps)} bytes)")
        puts = [s for s in self.steps if s.kind == "manifest" and s.action == "put"]
        skips = [s for s in self.steps if s.kind == "manifest" and s.action == "skip"]
        parts.append(f"put {len(puts)} manifests, skip {len(skips)}")
        return ", ".join(parts)


@dataclass
class CopyResult:
    """What the copy did (the ``copy`` output), filled in as it goes (thread-safe)."""

    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNT_KEYS, 0))
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, key: str, n: int = 1) -> None:
        with self._lock:
            self.counts[key] += n

    def to_json(self) -> str:
        return json.dumps(self.counts, separators=(",", ":"))


def counts_json(counts: Mapping[str, int]) -> str:
    """The ``copy`` output: the counts as compact JSON, keys in :data:`COUNT_KEYS` order."""
    return json.dumps({k: int(counts.get(k, 0)) for k in COUNT_KEYS}, separators=(",", ":"))


# -- observe (reads) -----------------------------------------------------------------------------
def _descriptor_blobs(doc: Mapping[str, Any], what: str) -> tuple[Blob, ...]:
    """Config and layers of an image manifest (foreign layers with ``urls`` left out)."""
    blobs: list[Blob] = []
    config = doc.get("config")
    entries: list[tuple[str, Any]] = [("config", config)] if isinstance(config, dict) else []
    layers = doc.get("layers")
    entries += [("layer", layer) for layer in (layers if isinstance(layers, list) else [])]
    for kind, entry in entries:
        if not isinstance(entry, dict) or entry.get("urls"):
            continue
        digest, size = entry.get("digest"), entry.get("size")
        if not isinstance(digest, str) or not DIGEST_RE.fullmatch(digest):
            raise RegistryError(f"{what}: a {kind} has no valid sha256 digest ({digest!r})")
        if not isinstance(size, int) or size < 0:
            raise RegistryError(f"{what}: {kind} {digest} has no valid size")
        blobs.append(Blob(digest, size, f"{kind} of {what}"))
    return tuple(blobs)


def _platform(entry: dict[str, Any]) -> str:
    return entry_reference_type(entry) or entry_platform(entry) or "child"


def _node(
    source: RegistryClient,
    manifest: Manifest,
    *,
    role: str,
    what: str,
    tag: str = "",
    depth: int = 0,
) -> Node:
    """A manifest with its blobs and (for an index) its children read from ``source``."""
    doc = manifest.parsed()
    if not manifest.is_index:
        return Node(manifest, role, what, _descriptor_blobs(doc, what), tag=tag)
    if depth > 3:
        raise RegistryError(f"{what}: indexes nested more than 3 deep")
    children: list[Node] = []
    entries = doc.get("manifests")
    for entry in entries if isinstance(entries, list) else []:
        digest = entry.get("digest") if isinstance(entry, dict) else None
        if not isinstance(digest, str) or not DIGEST_RE.fullmatch(digest):
            raise RegistryError(f"{what}: an index entry has no valid sha256 digest")
        child = source.get_manifest(digest)
        label = f"{_platform(entry)} of {what}"
        children.append(
            _node(
                source,
                child,
                role="child" if role == "image" else role,
                what=label,
                depth=depth + 1,
            )
        )
    return Node(manifest, role, what, (), tuple(children), tag=tag)


def _signatures(
    source: RegistryClient,
    subjects: Sequence[str],
    warn: Callable[[str], None],
) -> tuple[list[Node], dict[str, tuple[dict[str, Any], ...]]]:
    """cosign tags and OCI referrers of every subject digest, as nodes to copy."""
    tags = source.list_tags()
    tag_set = set(tags)
    artifacts: list[Node] = []
    referrers: dict[str, tuple[dict[str, Any], ...]] = {}
    for subject in subjects:
        for suffix in COSIGN_SUFFIXES:
            tag = cosign_tag(validate_digest(subject), suffix)
            if tag in tag_set:
                manifest = source.get_manifest(tag)
                artifacts.append(
                    _node(source, manifest, role="signature", what=f"cosign {tag}", tag=tag)
                )
        found = every_referrer(source, subject, tags=list(tags))
        kept: list[dict[str, Any]] = []
        for entry in found:
            try:
                manifest = source.get_manifest(entry["digest"])
            except PromoteError as exc:
                warn(f"referrer {entry['digest']} of {subject} not copied: {exc}")
                continue
            kind = entry.get("artifactType") or manifest.media_type
            artifacts.append(
                _node(source, manifest, role="referrer", what=f"referrer {kind} of {subject}")
            )
            kept.append(entry)
        if kept:
            referrers[subject] = tuple(kept)
    return artifacts, referrers


def _map(parallelism: int, fn: Callable[[Any], Any], items: Sequence[Any]) -> list[Any]:
    """``fn`` over ``items`` with at most ``parallelism`` threads; the first error raised."""
    if parallelism <= 1 or len(items) <= 1:
        return [fn(item) for item in items]
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=min(parallelism, len(items))) as pool:
        futures = [pool.submit(fn, item) for item in items]
        return [f.result() for f in futures]


def blob_exists(client: RegistryClient, digest: str) -> bool:
    """``HEAD /v2/<name>/blobs/<digest>``: 200 -> True, 404 -> False, else an error."""
    response = client._send("HEAD", client._url("blobs", digest), kind="blob-head")
    if response.status_code == 200:
        response.close()
        return True
    if response.status_code == 404:
        response.close()
        return False
    client._raise_for(response, "HEAD")
    raise AssertionError("unreachable")


def _manifest_exists(client: RegistryClient, digest: str) -> bool:
    try:
        found = client.head_manifest(digest)
    except RegistryError as exc:
        if exc.status == 400:  # ECR answers 400 to some HEADs by digest (ggcr#1320)
            return False
        raise
    return found is not None and found.digest == digest


def observe(
    source: RegistryClient,
    target: RegistryClient,
    manifest: Manifest,
    *,
    signatures: bool,
    parallelism: int = DEFAULT_PARALLELISM,
    warn: Callable[[str], None] = lambda _m: None,
) -> tuple[Graph, Target]:
    """Read the graph from ``source`` and what of it ``target`` holds (reads only)."""
    root = _node(source, manifest, role="image", what=source.repository.name)
    artifacts: list[Node] = []
    referrers: dict[str, tuple[dict[str, Any], ...]] = {}
    if signatures:
        subjects = [n.manifest.digest for n in root.walk()]
        artifacts, referrers = _signatures(source, subjects, warn)
    graph = Graph(root, tuple(artifacts), referrers)
    if source.repository == target.repository:
        return graph, Target(
            frozenset(n.manifest.digest for n in graph.nodes())
            | frozenset(b.digest for b in graph.blobs())
        )
    blobs = graph.blobs()
    digests = sorted({n.manifest.digest for n in graph.nodes()})
    blob_found = _map(parallelism, lambda b: blob_exists(target, b.digest), blobs)
    manifest_found = _map(parallelism, lambda d: _manifest_exists(target, d), digests)
    present = {b.digest for b, ok in zip(blobs, blob_found, strict=True) if ok}
    present |= {d for d, ok in zip(digests, manifest_found, strict=True) if ok}
    tags: dict[str, str] = {}
    tagged = sorted({n.tag for n in graph.nodes() if n.tag})
    if tagged:
        for tag in tagged:
            found = target.head_manifest(tag)
            if found is not None:
                tags[tag] = found.digest
    return graph, Target(frozenset(present), tags)


# -- plan (pure) ---------------------------------------------------------------------------------
def plan(
    graph: Graph,
    target: Target,
    *,
    source: str,
    destination: str,
    same_registry: bool,
    same_repository: bool = False,
) -> CopyPlan:
    """Decide every blob's mount/copy/skip and every manifest's put/skip (pure)."""
    steps: list[CopyStep] = []
    warnings: list[str] = []
    if same_repository:
        return CopyPlan(source, destination, same_registry, ())
    for blob in graph.blobs():
        fresh = "mount" if same_registry else "copy"
        action = "skip" if blob.digest in target.present else fresh
        steps.append(CopyStep(action, "blob", blob.digest, blob.size, blob.what))
    for node in graph.nodes():
        manifest = node.manifest
        action = "put"
        if node.tag:
            held = target.tags.get(node.tag)
            if held == manifest.digest:
                action = "skip"
            elif held is not None:
                warnings.append(
                    f"{destination}:{node.tag} already names {held}, not the source's "
                    f"{manifest.digest}; left as it is (cosign appends to it there)"
                )
                action = "skip"
        elif manifest.digest in target.present:
            action = "skip"
        steps.append(
            CopyStep(
                action,
                "manifest",
                manifest.digest,
                len(manifest.data),
                node.what,
                role=node.role,
                tag=node.tag,
            )
        )
    return CopyPlan(source, destination, same_registry, tuple(steps), tuple(warnings))


# -- apply (writes; never a release tag) ---------------------------------------------------------
class _HashingBody:
    """A blob body streamed from ``response`` with its sha256 and size checked on the way.

    A reader thread receives and hashes the next pieces while the upload sends the previous
    ones (at most ``READ_AHEAD`` pieces in between, so memory stays bounded). The last
    piece is held back until the whole body has been read and checked, so a wrong body
    ends the upload short (the target never commits it). ``len()`` is the declared size,
    sent as ``Content-Length``.
    """

    def __init__(self, response: requests.Response, blob: Blob, where: str) -> None:
        self.response = response
        self.blob = blob
        self.where = where
        self.sent = 0

    def __len__(self) -> int:
        return self.blob.size

    def _read(self, pieces: queue.Queue[object], stop: threading.Event) -> None:
        """Reader thread: pieces, then the digest string (or the exception) at the end."""
        digest = hashlib.sha256()
        size = 0

        def put(item: object) -> bool:
            while not stop.is_set():
                try:
                    pieces.put(item, timeout=0.2)
                    return True
                except queue.Full:
                    continue
            return False

        try:
            for piece in self.response.iter_content(CHUNK):
                if not piece:
                    continue
                size += len(piece)
                if size > self.blob.size:
                    raise DigestMismatchError(
                        f"GET {self.where}: the source sent more than the {self.blob.size} "
                        f"bytes its manifest declares for {self.blob.digest}; the upload was "
                        "aborted, nothing was written"
                    )
                digest.update(piece)
                if not put(piece):
                    return
            got = "sha256:" + digest.hexdigest()
            if size != self.blob.size or got != self.blob.digest:
                raise DigestMismatchError(
                    f"GET {self.where}: the source sent {size} bytes with sha256 {got}, not "
                    f"the {self.blob.size} bytes of {self.blob.digest}; the upload was "
                    "aborted, nothing was written"
                )
            put(_Verified())
        except BaseException as exc:  # handed to the sending side, raised there
            put(exc)

    def __iter__(self) -> Iterator[bytes]:
        pieces: queue.Queue[object] = queue.Queue(maxsize=READ_AHEAD)
        stop = threading.Event()
        reader = threading.Thread(target=self._read, args=(pieces, stop), daemon=True)
        reader.start()
        held = b""
        try:
            while True:
                item = pieces.get()
                if isinstance(item, BaseException):
                    raise item
                if isinstance(item, _Verified):
                    break
                assert isinstance(item, bytes)
                if held:
                    self.sent += len(held)
                    yield held
                held = item
            if held:
                self.sent += len(held)
                yield held
        finally:
            stop.set()
            reader.join(timeout=5)


class _Verified:
    """End of a body whose size and sha256 were checked."""


def _upload_location(response: requests.Response) -> str:
    location = response.headers.get("Location")
    if not location:
        raise RegistryError(
            f"POST {safe_url(response.url)}: the registry started an upload (HTTP "
            f"{response.status_code}) but sent no Location",
            status=response.status_code,
            method="POST",
            url=safe_url(response.url),
        )
    return urljoin(response.url, location)


class Copier:
    """Moves the planned blobs and manifests from ``source`` to ``target``."""

    def __init__(
        self,
        source: RegistryClient,
        target: RegistryClient,
        *,
        parallelism: int = DEFAULT_PARALLELISM,
        log: Callable[[str], None] = lambda _m: None,
    ) -> None:
        self.source = source
        self.target = target
        self.parallelism = max(1, min(parallelism, MAX_PARALLELISM))
        self.log = log
        self.result = CopyResult()
        _widen_pool(source, self.parallelism)
        _widen_pool(target, self.parallelism)

    # -- blobs -----------------------------------------------------------------------------
    def _start_upload(self, blob: Blob, *, mount: bool) -> tuple[str | None, bool]:
        """``POST`` an upload (with ``mount``/``from`` when asked): (location, mounted)."""
        params: dict[str, str | list[str]] = {}
        if mount:
            params = {"mount": blob.digest, "from": self.source.repository.path}
        url = self.target._url("blobs", "uploads") + "/"
        response = self.target._send(
            "POST",
            url,
            timeout=self.target.transport.timeout,
            kind="blob-upload",
            params=params or None,
            headers={"Content-Length": "0"},
        )
        if mount and response.status_code == 201:
            response.close()  # mounted; a missing Location does not matter
            return None, True
        if response.status_code != 202:
            self.target._raise_for(response, "POST", write=True)
        response.close()
        return _upload_location(response), False

    def _stream(self, blob: Blob, location: str) -> None:
        """GET the blob from the source and PUT it to ``location`` while hashing it."""
        url = self.source._url("blobs", blob.digest)
        # a transfer is not cut short by the retry deadline: each socket wait gets the
        # client's full per-attempt timeout however long the whole copy has taken; the
        # transfer as a whole gets the deadline plus 1 s per MiB (Transport.transfer_budget),
        # so a registry trickling bytes cannot stretch the run without end. Identity: the
        # bytes as stored (a front that gzips for a client accepting it, as requests does by
        # default, would change the length and what is hashed)
        transport = self.target.transport
        ends = transport.clock() + transport.transfer_budget(blob.size)
        what = (
            f"while blob {blob.digest} was transferring (a transfer gets the deadline plus "
            "1 s per MiB)"
        )
        response = transport.bounded(
            lambda: self.source._send(
                "GET",
                url,
                kind="blob",
                timeout=self.source.transport.timeout,
                headers={"Accept-Encoding": "identity"},
            ),
            method="GET",
            url=url,
            what=what,
            budget=ends - transport.clock(),
        )
        if response.status_code != 200:
            self.source._raise_for(response, "GET")
        declared = response.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) != blob.size:
            response.close()
            raise DigestMismatchError(
                f"GET {safe_url(url)}: the source declares {declared} bytes for "
                f"{blob.digest}, its manifest {blob.size}; nothing was written",
                method="GET",
                url=safe_url(url),
            )
        try:
            put = self._put_blob(
                _HashingBody(response, blob, safe_url(url)), location, what=what, ends=ends
            )
        finally:
            _abort(response)
        self._check_put(put, blob, location)
        self.result.add("bytes-copied", blob.size)

    def _put_blob(
        self, body: _HashingBody, location: str, *, what: str, ends: float
    ) -> requests.Response:
        """The one PUT of a streamed blob, within the transfer's budget (until ``ends``)."""
        # one attempt: the body cannot be replayed (``_copy_blob`` retries the whole
        # transfer); a DigestMismatchError raised by the body propagates as it is
        transport = self.target.transport
        blob = body.blob
        return transport.bounded(
            lambda: transport.send(
                "PUT",
                location,
                kind="blob-upload",
                headers={
                    "Content-Type": "application/octet-stream",
                    "Content-Length": str(blob.size),
                },
                data=body,
                params={"digest": blob.digest},
                authorize=self.target.auth.header_for,
                retry=False,
                timeout=transport.timeout,
            ),
            method="PUT",
            url=location,
            what=what,
            budget=ends - transport.clock(),
        )

    def _check_put(self, put: requests.Response, blob: Blob, location: str) -> None:
        """The blob PUT's answer: retryable statuses are transient (the transfer is tried
        again), a stored digest other than the blob's is refused."""
        if put.status_code in RETRYABLE_STATUSES:
            _codes, detail = error_details(put)
            raise TransientError(
                f"PUT {safe_url(location)}: HTTP {put.status_code} ({detail})",
                status=put.status_code,
                method="PUT",
                url=safe_url(location),
            )
        if put.status_code not in (201, 204, 200):
            self.target._raise_for(put, "PUT", write=True)
        put.close()
        returned = put.headers.get("Docker-Content-Digest")
        if returned and returned != blob.digest:
            raise DigestMismatchError(
                f"PUT {safe_url(location)}: the target stored {returned}, not {blob.digest}"
            )

    def _progressed(self) -> None:
        """A new retry deadline for both clients from their next request: the deadline
        bounds retrying a stalled exchange, never the copy as a whole (streaming the blobs
        of a large image may take longer than it; the manifest PUTs, HEADs and token
        requests after that must not give up at once)."""
        self.source.transport.restart_deadline()
        self.target.transport.restart_deadline()

    def _copy_blob(self, step: CopyStep) -> None:
        self._move_blob(step)
        self._progressed()  # a blob landed: what follows gets the whole deadline

    def _move_blob(self, step: CopyStep) -> None:
        blob = Blob(step.digest, step.size, step.what)
        attempt = 0
        while True:
            attempt += 1
            # the POST is retried by the transport under the deadline: its giving up is
            # final, not a transfer cut off (which is what this loop retries)
            location, mounted = self._start_upload(blob, mount=step.action == "mount")
            if mounted:
                self.result.add("blobs-mounted")
                return
            assert location is not None
            if step.action == "mount":
                self.log(f"mount of {blob.digest} refused (HTTP 202): copying it instead")
            try:
                self._stream(blob, location)
                self.result.add("blobs-copied")
                return
            except DigestMismatchError:
                raise
            except (TransientError, OSError) as exc:  # requests' exceptions are OSErrors
                if attempt >= BLOB_ATTEMPTS:
                    raise
                self.log(f"copy of {blob.digest} cut off ({exc}); trying again")
                self.target.transport.body_fault(
                    "PUT", self.target._url("blobs", blob.digest), attempt=attempt, exc=exc
                )
                if blob_exists(self.target, blob.digest):
                    self.result.add("blobs-copied")
                    return

    # -- everything --------------------------------------------------------------------------
    def apply(self, the_plan: CopyPlan, graph: Graph) -> CopyResult:
        """Blobs (parallel), then manifests bottom-up by digest, then artifact tags."""
        blobs = [s for s in the_plan.steps if s.kind == "blob"]
        self.result.add("blobs-skipped", sum(1 for b in blobs if b.action == "skip"))
        _map(self.parallelism, self._copy_blob, [s for s in blobs if s.action != "skip"])
        self._progressed()  # the manifests get a retry budget of their own
        steps = {(s.digest, s.tag): s for s in the_plan.steps if s.kind == "manifest"}
        for node in graph.nodes():
            step = steps.get((node.manifest.digest, node.tag))
            if step is None or step.action != "put":
                continue
            reference = node.tag or node.manifest.digest
            self.target.put_manifest(reference, node.manifest)
            self.log(
                f"copied {step.role} manifest {node.manifest.digest}"
                + (f" as {node.tag}" if node.tag else "")
            )
            self.result.add(
                "signatures-copied"
                if node.role in ("signature", "referrer")
                else "manifests-copied"
            )
        for subject, entries in graph.referrers.items():
            self._index_referrers(subject, entries)
        return self.result

    def _index_referrers(self, subject: str, entries: Sequence[dict[str, Any]]) -> None:
        """Make the referrers findable in the target: nothing to do with a referrers API
        (it indexes ``subject`` by itself), else each one is added to the ``sha256-<hex>``
        index (:func:`promote.registry.referrers.add_to_fallback`: read, append, dedupe,
        write, re-read)."""
        found, index = lookup(self.target, subject, tags=self.target.list_tags())
        have = {e["digest"] for e in found}
        missing = [e for e in entries if e["digest"] not in have]
        for entry in missing:
            tag = add_to_fallback(self.target, subject, entry, known=index)
            index = None  # the next one reads the index just written
        if missing:
            self.log(f"referrers index {tag}: {len(missing)} added")


def _abort(response: requests.Response) -> None:
    """Close ``response`` even while the reader thread is blocked in its body: the socket
    is shut down first (closing alone waits for the read in progress, which a source
    trickling bytes never ends)."""
    import contextlib
    import socket

    raw = response.raw
    conn = getattr(raw, "_connection", None) or getattr(raw, "connection", None)
    sock = getattr(conn, "sock", None)
    if isinstance(sock, socket.socket):
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
    response.close()


def _widen_pool(client: RegistryClient, parallelism: int) -> None:
    """Enough pooled connections for ``parallelism`` workers (requests keeps 10)."""
    if parallelism <= 8:
        return
    import requests.adapters

    session = client.transport.session
    for prefix in ("http://", "https://"):
        session.mount(prefix, requests.adapters.HTTPAdapter(pool_maxsize=parallelism + 2))
