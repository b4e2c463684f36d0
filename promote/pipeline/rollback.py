"""A rollback: re-promote an earlier production digest under a newer timestamp.

With Flux image automation a bare ``git revert`` is undone at the automation's next run,
because the ImagePolicy still selects the newest tag. A rollback that works *with* the
automation is a promotion of the old digest: it gets a fresh immutable tag
``<env>-v<its version>-<its sha>-<new ts>``, which the numerical ``$ts`` policy selects, and
the floating tag moves back to it. Nothing is deleted or rewritten.

The request sequence against the registry (default target)::

    GET  tags/list (every page)                 history                          (1+)
    HEAD manifests/<newest immutable tag>       current production digest         (1)
    GET  manifests/sha256-<hex>                 records of the current digest      (0-1)
    HEAD manifests/<rollback candidates>        until one names another digest    (1..k)
    GET  manifests/<target digest>              the exact bytes to re-tag         (1)
    PUT  manifests/<env>-vX.Y.Z-<sha>-<new ts>  same bytes                        (1)
    GET  tags/list                              race check (pipeline.apply)        (1)
    HEAD manifests/<new immutable tag>          still names the digest            (1)
    PUT  manifests/<env>                        floating tag, same bytes          (0-1)
    HEAD manifests/<new immutable tag>          after the last write              (0-1)

The default target comes from the history (:func:`promote.lineage.default_target`): the
release before the current one *first* became current, skipping releases that were rolled
back from; a re-run of the workflow run whose rollback wrote the current tag (its promotion
record names the run) changes nothing. ``k`` is bounded by :data:`MAX_LOOKBACK`. The
version and sha of the new tag come from the tag that named the restored digest, so the
tag still says which release it is.

The pipeline is the promotion's (:mod:`promote.pipeline`): :class:`RollbackRequest`
contributes only its source selection (:meth:`RollbackRequest.select`) and its version
rule (the restored release's version), so the outputs are those of a promotion.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from promote import lineage, naming
from promote.errors import InputError, NotFoundError, RefusedError
from promote.pipeline.model import Source
from promote.pipeline.observe import digest_of

if TYPE_CHECKING:
    import semver

    from promote.pipeline.model import Listing, Observed
    from promote.reference import Repository
    from promote.registry import RegistryClient

#: Most older immutable tags HEADed when looking for the previous production digest (or for
#: the tag naming a ``rollback-to`` digest). Each is one small request.
MAX_LOOKBACK = 25


@dataclass(frozen=True)
class RollbackRequest:
    """A validated rollback request (no I/O done yet)."""

    kind: ClassVar[str] = "rollback"

    repository: Repository
    #: ``None``: the production digest before the current one
    rollback_to: str | None = None
    target_env: str = naming.DEFAULT_TARGET_ENV
    timestamp: int | None = None
    floating_tag: bool = True
    #: the workflow run asking (``GITHUB_RUN_ID``): a default rollback whose record says
    #: this run already wrote the current tag changes nothing (a "Re-run jobs")
    run_id: str = ""
    #: read the promotion records of the current digest (``record: true``)
    records: bool = False

    @property
    def to_digest(self) -> bool:
        return bool(self.rollback_to and self.rollback_to.startswith("sha256:"))

    @property
    def how(self) -> str:
        return "rollback"

    def select(
        self,
        client: RegistryClient,
        listing: Callable[[], Listing],
        *,
        log: Callable[[str], None],
        source: RegistryClient | None,
    ) -> Source:
        """Find the current release and the one to restore, and read its manifest."""
        env = self.target_env
        listed = listing()
        current, current_digest = _current(self, listed)
        log(f"current {env}: {current.tag} -> {current_digest}")
        target_digest: str | None = None
        if self.rollback_to is None:
            target, target_digest, origin = _default_target(client, self, listed, current_digest)
        elif self.to_digest:
            target = _named_by(client, self, listed.history, current_digest)
            target_digest = self.rollback_to
            origin = f"rollback-to digest (named by {target.tag})"
        else:
            target, origin = _given_tag(self, listed), "rollback-to tag"
        ref = target_digest or target.tag
        try:
            manifest = client.get_manifest(ref)
        except NotFoundError as exc:
            raise RefusedError(
                f"rollback target {ref} cannot be read: {exc}; nothing was written"
            ) from exc
        if target_digest is not None and manifest.digest != target_digest:  # pragma: no cover
            raise RefusedError(f"{target.tag} changed while reading it; nothing was written")
        log(f"restore: {target.tag} -> {manifest.digest} ({origin})")
        sha_origin = f"rollback target {target.tag}"
        return Source(manifest, target.tag, target.short_sha, sha_origin, target, origin)

    def previous_version(self, observed: Observed, history: Sequence[naming.ImmutableTag]) -> str:
        return str(observed.current.version) if observed.current else ""

    def next_version(
        self, observed: Observed, history: Sequence[naming.ImmutableTag]
    ) -> semver.Version:
        restores = observed.source.restores
        assert restores is not None
        return restores.version

    def reasons(self, source: Source) -> tuple[str, str]:
        return f"re-promote {source.tag} with a newer timestamp", "move the floating tag back"

    def notes(self, observed: Observed, history: Sequence[naming.ImmutableTag]) -> list[str]:
        """Warn when the current release is itself a rollback."""
        current = observed.current
        assert current is not None
        # the current release is the newest of the observed history, by construction
        if not lineage.rollbacks(observed.listing.history)[-1]:
            return []
        return [
            f"the current {self.target_env} release {current.tag} is itself a rollback; this "
            f"restores {observed.source.tag} ({observed.manifest.digest})"
        ]


def _current(request: RollbackRequest, listed: Listing) -> tuple[naming.ImmutableTag, str]:
    """The current release and its digest; refused when there is none."""
    env = request.target_env
    if listed.current is None:
        raise RefusedError(
            f"{request.repository.name} has no {env}-v<X.Y.Z>-<sha>-<ts> tag: there is no "
            f"{env} release to roll back from; nothing was written"
        )
    if listed.current_digest is None:
        raise RefusedError(
            f"the current {env} tag {listed.current.tag} vanished while reading it; nothing "
            "was written"
        )
    return listed.current, listed.current_digest


def _default_target(
    client: RegistryClient, request: RollbackRequest, listed: Listing, current_digest: str
) -> tuple[naming.ImmutableTag, str, str]:
    """The release before the current one first became current (see :mod:`lineage`),
    or the current one when this run already rolled back (a re-run)."""
    env, history, current = request.target_env, listed.history, listed.history[-1]
    done = (
        _already_done(client, request, history, current_digest, listed.tags)
        if request.records
        else ""
    )
    if done:
        return current, current_digest, done
    first = next(h for h in history if lineage.release_of(h) == lineage.release_of(current))
    found = lineage.target_with_digest(
        history, current_digest, lambda t: digest_of(client, t), limit=MAX_LOOKBACK
    )
    if found is None:
        raise RefusedError(
            f"no earlier {env} digest to roll back to: nothing was {env} before "
            f"{first.tag} (when {current_digest} first became {env}) except releases "
            "that were rolled back from; nothing was written (pass rollback-to)"
        )
    return found[0], found[1], f"the {env} release before {first.tag}"


def _named_by(
    client: RegistryClient,
    request: RollbackRequest,
    history: Sequence[naming.ImmutableTag],
    current_digest: str,
) -> naming.ImmutableTag:
    """The newest tag (of the last :data:`MAX_LOOKBACK`) naming the ``rollback-to`` digest."""
    env, digest = request.target_env, request.rollback_to
    if digest == current_digest:
        return history[-1]
    for candidate in list(reversed(history[:-1]))[:MAX_LOOKBACK]:
        if digest_of(client, candidate.tag) == digest:
            return candidate
    raise RefusedError(
        f"rollback-to {digest} is not named by any of the newest "
        f"{min(len(history), MAX_LOOKBACK + 1)} {env} tags: it was never released to "
        f"{env} (use command: promote for a new release) or pass its {env}-v* tag; "
        "nothing was written"
    )


def rollback_to_tag(env: str, value: str) -> naming.ImmutableTag:
    """``rollback-to`` as an immutable tag of ``env`` (the one rule: the front door checks
    the input with it before any I/O)."""
    target = naming.parse_immutable_tag(env, value)
    if target is None:
        raise InputError(
            f"rollback-to {value!r} must be an immutable {env}-v<X.Y.Z>-<sha>-<ts> tag or "
            "a sha256: digest",
            input_name="rollback-to",
        )
    return target


def _given_tag(request: RollbackRequest, listed: Listing) -> naming.ImmutableTag:
    """The ``rollback-to`` immutable tag, which must exist."""
    assert request.rollback_to is not None
    target = rollback_to_tag(request.target_env, request.rollback_to)
    if target.tag not in listed.tags:
        raise RefusedError(
            f"rollback-to {target.tag} does not exist in {request.repository.name}; "
            "nothing was written"
        )
    return target


def _already_done(
    client: RegistryClient,
    request: RollbackRequest,
    history: Sequence[naming.ImmutableTag],
    current_digest: str,
    tags: Sequence[str],
) -> str:
    """Why the current tag already is this rollback ("" when it is not).

    The record of the current tag says which run wrote it: the same ``GITHUB_RUN_ID`` (any
    attempt) means a re-run of a rollback that completed. A current tag that is itself a
    rollback but has no record (its record could not be written) is treated as done too:
    going one step further back on a guess is the dangerous choice.
    """
    from promote.record import record_refs
    from promote.registry.referrers import referrers

    current = history[-1]
    refs = [
        r
        for r in record_refs(referrers(client, None, current_digest, tags=tags))
        if r.ours and r.tag == current.tag
    ]
    if refs:
        if request.run_id and any(
            r.kind == "rollback" and r.run_id == request.run_id for r in refs
        ):
            return f"this workflow run (run id {request.run_id}) already rolled back to it"
        return ""
    if lineage.rollbacks(history)[-1]:
        return (
            "the current release is a rollback without a promotion record, so promote cannot "
            "tell which run made it; nothing further is rolled back (pass rollback-to to go "
            "further back)"
        )
    return ""
