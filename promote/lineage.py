"""Release history of an environment, from its immutable tags alone (pure, no I/O).

A *release* is what one promotion made: its version and commit sha. A rollback re-uses
both under a newer timestamp (``production-v2.0.0-a1b2c3d-<new ts>``), so tags with the
same ``(version, sha)`` name the same release, and a tag whose release appeared before it
is a rollback. From the tags, oldest first::

    A  B  C  B'          B' restores B: C was rolled back from
    A  B  C  B'  D  B''  D was rolled back from too

:func:`default_target` is where ``command: rollback`` without ``rollback-to`` goes: the
release that was current just before the current release *first* became current, skipping
every release that was itself rolled back from. After ``A B C B'`` that is ``A`` (a second
rollback by a new run goes one step further back), never ``C`` again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

from promote.naming import ImmutableTag

Release = tuple[object, str]


def release_of(tag: ImmutableTag) -> Release:
    """The release a tag names: its version and short sha."""
    return (tag.version, tag.short_sha)


def rollbacks(history: Sequence[ImmutableTag]) -> list[bool]:
    """For each tag (oldest first): whether its release was current before (a rollback)."""
    seen: set[Release] = set()
    out: list[bool] = []
    for tag in history:
        release = release_of(tag)
        out.append(release in seen)
        seen.add(release)
    return out


def rolled_back_from(history: Sequence[ImmutableTag]) -> set[Release]:
    """Releases that a rollback replaced (the release current just before each rollback)."""
    flags = rollbacks(history)
    return {release_of(history[i - 1]) for i, flag in enumerate(flags) if flag and i > 0}


def candidates(history: Sequence[ImmutableTag]) -> Iterator[ImmutableTag]:
    """Rollback targets of the current (newest) release, best first (see the module doc)."""
    if not history:
        return
    current = release_of(history[-1])
    first = next(i for i, t in enumerate(history) if release_of(t) == current)
    skip = rolled_back_from(history) | {current}
    given: set[Release] = set()
    for tag in reversed(history[:first]):
        release = release_of(tag)
        if release in skip or release in given:
            continue
        given.add(release)
        yield tag


def default_target(history: Sequence[ImmutableTag]) -> ImmutableTag | None:
    """The first of :func:`candidates`, or ``None`` when there is nothing to go back to."""
    return next(candidates(history), None)


def previous_of(history: Sequence[ImmutableTag], tag: str) -> ImmutableTag | None:
    """The tag that was current just before ``tag`` (``None``: the first, or not found)."""
    for i, entry in enumerate(history):
        if entry.tag == tag:
            return history[i - 1] if i > 0 else None
    return None


def target_with_digest(
    history: Sequence[ImmutableTag],
    current_digest: str,
    digest_of: Callable[[str], str | None],
    *,
    limit: int,
) -> tuple[ImmutableTag, str] | None:
    """The first of :func:`candidates` (at most ``limit`` looked up) whose digest, by
    ``digest_of(tag)``, is not ``current_digest``; with that digest."""
    for tried, candidate in enumerate(candidates(history)):
        if tried >= limit:
            break
        digest = digest_of(candidate.tag)
        if digest is not None and digest != current_digest:
            return candidate, digest
    return None
