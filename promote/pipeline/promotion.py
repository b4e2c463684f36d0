"""A promotion's rule: a staging source chosen by tag or digest, the next semver version.

The request sequence against the registry, for a single image or an index alike::

    GET  manifests/<source-tag or digest>   source bytes, digest computed locally   (1)
    GET  tags/list (every page)             versions, timestamps, history           (1+)
    HEAD manifests/<newest immutable tag>   previous production digest              (0-1)
    PUT  manifests/<env>-vX.Y.Z-<sha>-<ts>  the immutable tag, same bytes           (1)
    GET  tags/list                          race check: did another run write too?  (1)
    HEAD manifests/<immutable tag>          it still names this digest              (1)
    PUT  manifests/<env>                    the floating tag, same bytes            (0-1)
    HEAD manifests/<immutable tag>          after the last write: still ours        (0-1)

No blob is read (except the image config, once, when no commit sha is known otherwise),
no manifest is re-serialised; every PUT is verified by the digest the registry returns.
The pipeline (:func:`promote.pipeline.observe.observe`, :func:`promote.pipeline.plan.plan`,
:func:`promote.pipeline.apply.apply`) is shared with rollback; :class:`Request` contributes
only how the source is read (:meth:`Request.select`) and its version rule.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import semver

from promote import naming
from promote.errors import RefusedError
from promote.pipeline.model import Source

if TYPE_CHECKING:
    from promote.pipeline.model import Listing, Observed
    from promote.reference import Repository
    from promote.registry import Manifest, RegistryClient


@dataclass(frozen=True)
class Request:
    """A validated promotion request (all inputs checked; no I/O done yet)."""

    kind: ClassVar[str] = "promote"

    repository: Repository
    source_tag: str | None
    source_digest: str | None
    source_env: str = naming.DEFAULT_SOURCE_ENV
    target_env: str = naming.DEFAULT_TARGET_ENV
    version: semver.Version | None = None
    bump: str = "patch"
    commit_sha: str = ""
    timestamp: int | None = None
    floating_tag: bool = True
    #: where ``source_tag``/``source_digest`` live when not in ``repository`` (a copy)
    source_repository: Repository | None = None

    @property
    def source(self) -> Repository:
        """The repository the source is read from (``repository`` unless another)."""
        return self.source_repository or self.repository

    @property
    def across(self) -> bool:
        """True when the source is another repository (the image is copied first)."""
        return self.source != self.repository

    @property
    def source_ref(self) -> str:
        """What to GET: the tag when given (its digest is then checked), else the digest."""
        ref = self.source_tag or self.source_digest
        assert ref is not None
        return ref

    @property
    def how(self) -> str:
        return self.bump

    def select(
        self,
        client: RegistryClient,
        listing: Callable[[], Listing],
        *,
        log: Callable[[str], None],
        source: RegistryClient | None,
    ) -> Source:
        """Read the source once (in ``source`` when given: a copy), find its commit sha,
        then list the target's tags and find the tags that named this digest before."""
        reader = source or client
        manifest = _read_source(reader, self)
        log(f"source {self.source_ref} -> {manifest.digest} ({manifest.media_type})")
        found = naming.short_sha_from_sources(
            commit_sha=self.commit_sha,
            source_tag=self.source_tag,
            source_env=self.source_env,
            annotations=manifest.annotations,
        )
        if found is None:
            found = _short_sha_from_config(
                reader, manifest, source_tag=self.source_tag, source_env=self.source_env
            )
        sha, origin = found
        before = _promoted_before(client, listing(), sha, manifest.digest)
        return Source(manifest, self.source_tag or "", sha, origin, promoted_before=before)

    def previous_version(self, observed: Observed, history: Sequence[naming.ImmutableTag]) -> str:
        current = _highest(history)
        return str(current) if current else ""

    def next_version(
        self, observed: Observed, history: Sequence[naming.ImmutableTag]
    ) -> semver.Version:
        return naming.next_version(_highest(history), bump=self.bump, explicit=self.version)

    def reasons(self, source: Source) -> tuple[str, str]:
        return "new immutable tag", "move the floating tag"

    def notes(self, observed: Observed, history: Sequence[naming.ImmutableTag]) -> list[str]:
        """Refuse a digest released before that is no longer current: that is a rollback.

        (``source-env`` equal to ``target-env`` is refused by the front door before any read:
        :func:`promote.frontdoor.commands.promote_cmd.parse_request`.)"""
        before = observed.source.promoted_before
        if before:
            current = observed.current
            raise RefusedError(
                f"{observed.manifest.digest} was promoted before as {', '.join(before)} "
                f"but is no longer the current {self.target_env} release "
                f"({current.tag if current else 'none'}); to go back to it, use command: rollback"
            )
        return []


def _highest(history: Sequence[naming.ImmutableTag]) -> semver.Version | None:
    versions = [h.version for h in history]
    return max(versions) if versions else None


def _read_source(reader: RegistryClient, request: Request) -> Manifest:
    """GET the source manifest; a tag that moved off the given digest is refused."""
    from promote.errors import DigestMismatchError, NotFoundError

    try:
        manifest = reader.get_manifest(request.source_ref)
    except NotFoundError as exc:
        # the registry's answer, after a network call: exit 1, not a bad input (exit 2)
        raise NotFoundError(
            f"source {request.source_ref} not found in {reader.repository}: {exc}; nothing "
            "was written",
            status=exc.status,
            method=exc.method,
            url=exc.url,
            codes=exc.codes,
        ) from exc
    if request.source_digest and manifest.digest != request.source_digest:
        raise DigestMismatchError(
            f"source-tag {request.source_tag} now names {manifest.digest}, not the given "
            f"source-digest {request.source_digest}; nothing was written"
        )
    return manifest


def _promoted_before(
    client: RegistryClient, listing: Listing, sha: str, digest: str
) -> tuple[str, ...]:
    """Tags with the same commit that already name ``digest`` (promoted before). Tags in a
    tie at the top are not "before": the tie is broken by promoting again."""
    from promote.pipeline.observe import digest_of

    current, tied = listing.current, listing.tied
    promoted = [
        old.tag
        for old in listing.history
        if old is not current
        and old.short_sha == sha
        and old.tag not in tied
        and digest_of(client, old.tag) == digest
    ]
    if current is not None and listing.current_digest == digest and not tied:
        promoted.append(current.tag)
    return tuple(promoted)


def _short_sha_from_config(
    client: RegistryClient, manifest: Manifest, *, source_tag: str | None, source_env: str
) -> tuple[str, str]:
    """The ``org.opencontainers.image.revision`` label of the image config (one blob read).

    For an index, the first child's manifest is read first (one more request).
    """
    target = manifest
    if manifest.is_index:
        children = manifest.parsed().get("manifests") or []
        first = children[0] if isinstance(children, list) and children else None
        if not isinstance(first, dict) or not isinstance(first.get("digest"), str):
            raise RefusedError(
                "the source index lists no usable manifest to read the commit from: pass "
                "commit-sha; nothing was written"
            )
        target = client.get_manifest(first["digest"])
    config_digest = target.config_digest
    revision: object = ""
    if config_digest:
        # an artifact's config need not be an image config (or JSON at all)
        try:
            config = json.loads(client.get_blob(config_digest))
        except ValueError:
            config = None
        inner = config.get("config") if isinstance(config, dict) else None
        labels = inner.get("Labels") if isinstance(inner, dict) else None
        revision = labels.get(naming.REVISION_KEY, "") if isinstance(labels, dict) else ""
    if isinstance(revision, str) and revision and naming.HEX_RE.fullmatch(revision):
        return naming.short_sha(revision), f"image config label {naming.REVISION_KEY}"
    if isinstance(revision, str) and revision:
        # found after reading the registry: a refusal (exit 3), not a bad input (exit 2)
        raise RefusedError(
            f"the image config label {naming.REVISION_KEY} is {revision[:70]!r}, not a commit "
            "sha (7 to 64 hexadecimal characters): pass commit-sha; nothing was written"
        )
    hint = ""
    if source_tag and naming.parse_build_tag(source_env, source_tag.lower()) is not None:
        hint = (
            f" (the source tag {source_tag} has an upper-case sha: build tags are "
            f"{source_env}-<sha>-<ts> with a lower-case sha)"
        )
    raise RefusedError(
        "cannot tell which commit the image was built from"
        f"{hint}: pass commit-sha, promote a {source_env}-<sha>-<ts> source tag, or build with "
        f"the {naming.REVISION_KEY} annotation or label; nothing was written"
    )
