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
    GET  tags/list                              race check (promotion.apply)      (1)
    HEAD manifests/<new immutable tag>          still names the digest            (1)
    PUT  manifests/<env>                        floating tag, same bytes          (0-1)
    HEAD manifests/<new immutable tag>          after the last write              (0-1)

The default target comes from the history (:func:`promote.lineage.default_target`): the
release before the current one *first* became current, skipping releases that were rolled
back from; a re-run of the workflow run whose rollback wrote the current tag (its promotion
record names the run) changes nothing. ``k`` is bounded by :data:`MAX_LOOKBACK`. The
version and sha of the new tag come from the tag that named the restored digest, so the
tag still says which release it is.

``observe`` reads, :func:`plan` is pure and returns a :class:`promotion.Plan` (the outputs
are those of a promotion), and :func:`promotion.apply` writes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from promote import lineage, naming
from promote.errors import ClobberError, InputError, NotFoundError, RefusedError
from promote.promotion import (
    Plan,
    Selector,
    Step,
    already_current,
    check_flux_selects,
    observation_warnings,
    refused_after_reading,
    release_history,
    taken_timestamps,
    tied_tags,
)

if TYPE_CHECKING:
    from promote.reference import Repository
    from promote.registry import Manifest, RegistryClient

#: Most older immutable tags HEADed when looking for the previous production digest (or for
#: the tag naming a ``rollback-to`` digest). Each is one small request.
MAX_LOOKBACK = 25


@dataclass(frozen=True)
class RollbackRequest:
    """A validated rollback request (no I/O done yet)."""

    repository: Repository
    #: ``None``: the production digest before the current one
    rollback_to: str | None = None
    target_env: str = "production"
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


@dataclass(frozen=True)
class RollbackObserved:
    """What the registry said before planning."""

    tags: tuple[str, ...]
    current: naming.ImmutableTag
    current_digest: str
    #: the immutable tag whose digest is restored (its version and sha are reused)
    target: naming.ImmutableTag
    manifest: Manifest
    #: digest of the floating tag; looked up only when the target is already current
    floating_digest: str | None = None
    #: how the target was chosen, for the log and summary
    origin: str = ""
    #: immutable tags sharing the newest timestamp (a tie), or ()
    tied: tuple[str, ...] = ()
    #: tag names the registry listed that break the OCI tag grammar (ignored)
    ignored_tags: tuple[str, ...] = ()


def _digest_of(client: RegistryClient, tag: str) -> str | None:
    desc = client.head_manifest(tag)
    return desc.digest if desc else None


def observe(
    client: RegistryClient,
    request: RollbackRequest,
    *,
    log: Callable[[str], None] = lambda _m: None,
    now: float | None = None,
    policy: Selector | None = None,
) -> RollbackObserved:
    """Find the current release and the one to restore; raise before any write."""
    env = request.target_env
    tags = tuple(client.list_tags())
    history = release_history(env, tags, now=now, policy=policy)
    if not history:
        raise RefusedError(
            f"{request.repository.name} has no {env}-v<X.Y.Z>-<sha>-<ts> tag: there is no "
            f"{env} release to roll back from; nothing was written"
        )
    current = history[-1]
    current_digest = _digest_of(client, current.tag)
    if current_digest is None:
        raise RefusedError(
            f"the current {env} tag {current.tag} vanished while reading it; nothing was written"
        )
    log(f"current {env}: {current.tag} -> {current_digest}")
    older = list(reversed(history[:-1]))[:MAX_LOOKBACK]
    target: naming.ImmutableTag | None = None
    target_digest: str | None = None
    origin = ""
    if request.rollback_to is None:
        done = (
            _already_done(client, request, history, current_digest, tags) if request.records else ""
        )
        if done:
            target, target_digest, origin = current, current_digest, done
            log(f"{current.tag}: {done}")
        else:
            first = next(h for h in history if lineage.release_of(h) == lineage.release_of(current))
            found = lineage.target_with_digest(
                history, current_digest, lambda t: _digest_of(client, t), limit=MAX_LOOKBACK
            )
            if found is None:
                raise RefusedError(
                    f"no earlier {env} digest to roll back to: nothing was {env} before "
                    f"{first.tag} (when {current_digest} first became {env}) except releases "
                    "that were rolled back from; nothing was written (pass rollback-to)"
                )
            target, target_digest = found
            origin = f"the {env} release before {first.tag}"
    elif request.to_digest:
        target_digest = request.rollback_to
        if target_digest == current_digest:
            target = current
        else:
            for candidate in older:
                if _digest_of(client, candidate.tag) == target_digest:
                    target = candidate
                    break
        if target is None:
            raise RefusedError(
                f"rollback-to {target_digest} is not named by any of the newest "
                f"{min(len(history), MAX_LOOKBACK + 1)} {env} tags: it was never released to "
                f"{env} (use command: promote for a new release) or pass its {env}-v* tag; "
                "nothing was written"
            )
        origin = f"rollback-to digest (named by {target.tag})"
    else:
        assert request.rollback_to is not None
        target = naming.parse_immutable_tag(env, request.rollback_to)
        if target is None:
            raise InputError(
                f"rollback-to {request.rollback_to!r} must be an immutable "
                f"{env}-v<X.Y.Z>-<sha>-<ts> tag or a sha256: digest (not a floating or build tag)",
                input_name="rollback-to",
            )
        if target.tag not in tags:
            raise RefusedError(
                f"rollback-to {target.tag} does not exist in {request.repository.name}; "
                "nothing was written"
            )
        origin = "rollback-to tag"
    try:
        manifest = client.get_manifest(target_digest or target.tag)
    except NotFoundError as exc:
        raise RefusedError(
            f"rollback target {target_digest or target.tag} cannot be read: {exc}; "
            "nothing was written"
        ) from exc
    if (
        target_digest is not None and manifest.digest != target_digest
    ):  # pragma: no cover - client checks
        raise RefusedError(f"{target.tag} changed while reading it; nothing was written")
    log(f"restore: {target.tag} -> {manifest.digest} ({origin})")
    tied = tied_tags(history)
    floating_digest = None
    if manifest.digest == current_digest and request.floating_tag and not tied:
        floating_digest = _digest_of(client, env)
    return RollbackObserved(
        tags=tags,
        current=current,
        current_digest=current_digest,
        target=target,
        manifest=manifest,
        floating_digest=floating_digest,
        origin=origin,
        tied=tied,
        ignored_tags=tuple(client.ignored_tags),
    )


def plan(
    request: RollbackRequest,
    observed: RollbackObserved,
    *,
    now: float,
    policy: Selector | None = None,
) -> Plan:
    """The tags to write (pure); refuses before any write when Flux would not deploy it."""
    env = request.target_env
    manifest = observed.manifest
    target = observed.target
    current = observed.current
    history = release_history(env, observed.tags, now=None, policy=policy)
    floating = env if request.floating_tag else ""
    warnings = observation_warnings(observed.ignored_tags, observed.tied)
    common = {
        "image": request.repository.name,
        "digest": manifest.digest,
        "media_type": manifest.media_type,
        "platforms": tuple(manifest.platforms()),
        "source_tag": target.tag,
        "previous_version": str(current.version),
        "bump": "rollback",
        "short_sha": target.short_sha,
        "sha_origin": f"rollback target {target.tag}",
        "floating": floating,
        "previous_tag": current.tag,
        "previous_digest": observed.current_digest,
        "flux_tag_pattern": naming.flux_tag_pattern(env),
    }
    if manifest.digest == observed.current_digest and not observed.tied:
        # Already deployed (e.g. a re-run of the same rollback): write nothing new.
        return already_current(common, current, observed.floating_digest, manifest.digest)
    earlier = {h.tag for h in history if h.timestamp < current.timestamp}
    if _is_rollback(current, history, earlier):
        warnings.append(
            f"the current {env} release {current.tag} is itself a rollback; this restores "
            f"{target.tag} ({manifest.digest})"
        )
    with refused_after_reading():
        taken = taken_timestamps(env, observed.tags, history, now)
        ts = naming.next_timestamp(now, taken, request.timestamp)
    tag = naming.immutable_tag(env, target.version, target.short_sha, ts)
    if tag in observed.tags:
        raise ClobberError(f"tag {tag} already exists; immutable tags are never overwritten")
    if policy is not None:
        check_flux_selects(policy, observed.tags, tag, manifest.digest)
    steps = [Step("put", tag, f"re-promote {target.tag} with a newer timestamp")]
    if floating:
        steps.append(Step("put", floating, "move the floating tag back"))
    return Plan(
        **common,  # type: ignore[arg-type]
        version=str(target.version),
        timestamp=ts,
        tag=tag,
        steps=tuple(steps),
        warnings=tuple(warnings),
    )


def _is_rollback(
    current: naming.ImmutableTag, history: Sequence[naming.ImmutableTag], earlier: set[str]
) -> bool:
    """Whether ``current`` re-uses the version and sha of an older tag (a past rollback)."""
    return any(
        h.tag in earlier and h.version == current.version and h.short_sha == current.short_sha
        for h in history
    )


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
