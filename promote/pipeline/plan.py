"""The plan (pure): every tag a promotion or rollback writes, decided before any write.

:func:`plan` is shared by both: the already-current case (idempotent re-run), the
timestamp and version rules, the clobber check and the Flux check. The :class:`Rule`
(the request) contributes its version and its own refusals.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING

from promote import naming
from promote.errors import ClobberError, InputError, RefusedError
from promote.pipeline.model import Plan, Step

if TYPE_CHECKING:
    from promote.pipeline.model import Observed, Rule, Selector


def plan(
    request: Rule,
    observed: Observed,
    *,
    now: float,
    policy: Selector | None = None,
) -> Plan:
    """Decide every tag to write; raise before any write when the release is unsafe."""
    env = request.target_env
    source, listing = observed.source, observed.listing
    manifest = source.manifest
    history = release_history(env, observed.tags, now=None, policy=policy)
    current = listing.current
    floating = env if request.floating_tag else ""

    def make(version: str, timestamp: int, tag: str, steps: list[Step], notes: list[str]) -> Plan:
        return Plan(
            image=request.repository.name,
            digest=manifest.digest,
            media_type=manifest.media_type,
            platforms=tuple(manifest.platforms()),
            source_tag=source.tag,
            version=version,
            previous_version=request.previous_version(observed, history),
            bump=request.how,
            short_sha=source.short_sha,
            sha_origin=source.sha_origin,
            timestamp=timestamp,
            tag=tag,
            floating=floating,
            steps=tuple(steps),
            previous_tag=current.tag if current else "",
            previous_digest=listing.current_digest or "",
            flux_tag_pattern=naming.flux_tag_pattern(env),
            env=env,
            warnings=tuple(notes),
        )

    # Already current: idempotent success; only a floating tag left behind is completed.
    # In a tie at the top Flux's choice is arbitrary: releasing again breaks it.
    if current is not None and listing.current_digest == manifest.digest and not listing.tied:
        steps = already_current(current.tag, floating, observed.floating_digest, manifest.digest)
        return make(str(current.version), current.timestamp, current.tag, steps, [])
    notes = [*observation_warnings(listing.ignored_tags, listing.tied)]
    notes += request.notes(observed, history)
    with refused_after_reading():
        version = request.next_version(observed, history)
        taken = taken_timestamps(env, observed.tags, history, now)
        ts = naming.next_timestamp(now, taken, request.timestamp)
    tag = naming.immutable_tag(env, version, source.short_sha, ts)
    if tag in observed.tags:
        raise ClobberError(f"tag {tag} already exists; immutable tags are never overwritten")
    if policy is not None:
        check_flux_selects(policy, observed.tags, tag, manifest.digest)
    why_tag, why_floating = request.reasons(source)
    steps = [Step("put", tag, why_tag)]
    if floating:
        steps.append(Step("put", floating, why_floating))
    return make(str(version), ts, tag, steps, notes)


def already_current(
    tag: str, floating: str, floating_digest: str | None, digest: str
) -> list[Step]:
    """The steps when ``digest`` already is the current release (``tag``): write nothing,
    except a floating tag an earlier run left behind (a re-run completes a partial run)."""
    steps = [Step("skip", tag, "digest is already the current release")]
    if floating:
        if floating_digest == digest:
            steps.append(Step("skip", floating, "floating tag already names the digest"))
        else:
            steps.append(Step("put", floating, "complete an earlier partial run"))
    return steps


@contextmanager
def refused_after_reading() -> Iterator[None]:
    """An input judged against what the registry holds (a version not greater than the
    current one, a timestamp not newer) is a refusal, exit 3: exit 2 means "no network call
    was made", and this check needed the tag list."""
    try:
        yield
    except InputError as exc:
        raise RefusedError(f"{exc}; nothing was written") from exc


def taken_timestamps(
    env: str, tags: Iterable[str], history: Sequence[naming.ImmutableTag], now: float
) -> list[int]:
    """The timestamps ``env``'s immutable tags hold: the releases' (``history``), and those
    of tags the policy excludes (a run never writes a timestamp already present), except
    excluded poisoned ones (see :func:`release_history`), which no tag could follow."""
    releases = {h.tag for h in history}
    return [
        h.timestamp
        for h in naming.immutable_tags(env, tags)
        if h.tag in releases or not naming.timestamp_problem(h.timestamp, now)
    ]


def tied_tags(history: Sequence[naming.ImmutableTag]) -> tuple[str, ...]:
    """The tags sharing the newest timestamp when there are several (else ``()``)."""
    if len(history) < 2 or history[-2].timestamp != history[-1].timestamp:
        return ()
    return tuple(h.tag for h in history if h.timestamp == history[-1].timestamp)


def observation_warnings(ignored: Sequence[str], tied: Sequence[str]) -> list[str]:
    """Warnings about what the registry listed (registry text is quoted with ``repr``)."""
    warnings = []
    if ignored:
        sample = ", ".join(repr(t[:40]) for t in ignored[:3])
        warnings.append(
            f"ignored {len(ignored)} tag name{'s' if len(ignored) > 1 else ''} from the "
            f"registry that break the OCI tag grammar (e.g. {sample})"
        )
    if tied:
        warnings.append(
            f"the newest tags {', '.join(tied)} share one timestamp (Flux picks one "
            "arbitrarily); this promotion writes a newer timestamp, which breaks the tie"
        )
    return warnings


def _admitted(policy: Selector, tags: Sequence[str]) -> set[str]:
    """The tags the policy can see and its ``filterTags`` admits (one pass when the
    policy offers it, else one evaluation per tag)."""
    admitted: Callable[[Sequence[str]], set[str]] | None = getattr(policy, "admitted", None)
    if admitted is not None:
        return admitted(tags)
    return {t for t in tags if policy.evaluate([t]).tag == t}


def release_history(
    env: str, tags: Iterable[str], *, now: float | None, policy: Selector | None
) -> list[naming.ImmutableTag]:
    """``env``'s immutable tags that Flux may select, oldest first.

    A tag the ImagePolicy excludes is no release. A tag it admits whose timestamp is in the
    future (more than :data:`naming.MAX_FUTURE_SECONDS` ahead of ``now``) or in
    milliseconds outranks every tag promote could write, so Flux keeps selecting it: that
    is refused (exit 3), naming the tag and the remedy, instead of failing on a timestamp
    the user never gave.
    """
    history = naming.immutable_tags(env, tags)
    if policy is not None:
        kept = _admitted(policy, [h.tag for h in history])
        history = [h for h in history if h.tag in kept]
    if now is None:
        return history
    poisoned = [h for h in history if naming.timestamp_problem(h.timestamp, now)]
    if poisoned:
        bad = poisoned[-1]
        others = f" (and {len(poisoned) - 1} more)" if len(poisoned) > 1 else ""
        raise RefusedError(
            f"the existing tag {bad.tag}{others} has timestamp {bad.timestamp}, "
            f"{naming.timestamp_problem(bad.timestamp, now)}: Flux's numerical $ts policy "
            "keeps selecting it, since no tag promote can write is newer. Nothing was written. "
            f"Remedy: exclude it (docs/rollback.md, way 3: a filterTags pattern or "
            f"exclusionList that drops {bad.tag}, and pass that policy with gitops-path/"
            "gitops-repo and policy), or delete the tag; then promote again"
        )
    return history


def check_flux_selects(policy: Selector, tags: Sequence[str], tag: str, digest: str = "") -> None:
    """Refuse (before any write) unless Flux would select ``tag`` from ``tags`` plus it.

    The tags are filtered as the ImageRepository stores them (the default exclusion drops
    ``*.sig``); a win that depends on Go map order (a tie) is refused too. Referrers index
    tags (``sha256-<hex>``, promotion records) are never candidates; a policy under which
    they would change Flux's choice is refused, naming them — including the index tag of
    ``digest`` (the promoted digest), which the promotion record (or a signing step)
    creates right after the tags even when it does not exist yet.
    """
    from promote.flux import filter_out_tags

    upcoming = [naming.referrers_tag(digest)] if digest else []
    stored = filter_out_tags(list(dict.fromkeys([*tags, tag, *upcoming])))
    releases = [t for t in stored if not naming.is_referrers_tag(t)]
    outcome = policy.evaluate(releases)
    if len(releases) != len(stored):
        with_referrers = policy.evaluate(stored)
        if (with_referrers.tag, with_referrers.ambiguous) != (outcome.tag, outcome.ambiguous):
            admitted = sorted(set(stored) - set(releases))
            raise RefusedError(
                f"the ImagePolicy admits the referrers tag(s) {', '.join(admitted[:3])} "
                "(OCI artifact indexes such as promotion records, never releases) and Flux "
                f"would select {with_referrers.tag or 'nothing'}; anchor its filterTags "
                "pattern on the release tags. Nothing was written"
            )
    if outcome.tag != tag:
        raise RefusedError(
            f"Flux would not select {tag}: the ImagePolicy selects "
            f"{outcome.tag or 'nothing'} from the existing tags plus the new one; nothing "
            "was written"
        )
    if outcome.ambiguous:
        raise RefusedError(
            f"Flux's choice between {', '.join(outcome.candidates)} depends on map order "
            f"(a tie under the ImagePolicy); {tag} might not be deployed. Nothing was "
            "written; give a newer timestamp"
        )
