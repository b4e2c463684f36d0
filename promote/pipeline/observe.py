"""Observe (I/O: reads only): what a release needs from the registry, read once.

:func:`observe` is shared by promote and rollback: the rule chooses the source (it reads
the tag list through :func:`listing` when it needs it: a promotion reads its source
first, a rollback the history first), then the floating tag is looked up when the source
already is the current release. Nothing is written here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from promote.pipeline.model import Listing, Observed
from promote.pipeline.plan import release_history, tied_tags

if TYPE_CHECKING:
    from promote.pipeline.model import Rule, Selector
    from promote.registry import RegistryClient


def observe(
    client: RegistryClient,
    request: Rule,
    *,
    log: Callable[[str], None] = lambda _m: None,
    now: float | None = None,
    policy: Selector | None = None,
    source: RegistryClient | None = None,
) -> Observed:
    """Choose and read the source (:meth:`Rule.select`), list the tags once, and look up
    the current release's digest and, when the source is current, the floating tag's.

    With ``now``, a tag Flux would keep selecting although it can never be outranked (a
    future or millisecond timestamp) is refused (:func:`release_history`). ``source`` is
    the client of another repository holding the source (a copy).
    """
    read: list[Listing] = []

    def listed() -> Listing:
        if not read:
            read.append(listing(client, request.target_env, now=now, policy=policy))
        return read[0]

    chosen = request.select(client, listed, log=log, source=source)
    tags = listed()
    floating_digest = None
    current_ok = tags.current_digest == chosen.manifest.digest and not tags.tied
    if current_ok and request.floating_tag:
        floating_digest = digest_of(client, request.target_env)
    return Observed(listing=tags, source=chosen, floating_digest=floating_digest)


def listing(
    client: RegistryClient, env: str, *, now: float | None, policy: Selector | None
) -> Listing:
    """List the tags (every page) and HEAD the current release of ``env``."""
    tags = tuple(client.list_tags())
    history = release_history(env, tags, now=now, policy=policy)
    current = history[-1] if history else None
    return Listing(
        tags=tags,
        history=tuple(history),
        current=current,
        current_digest=digest_of(client, current.tag) if current is not None else None,
        tied=tied_tags(history),
        ignored_tags=tuple(client.ignored_tags),
    )


def digest_of(client: RegistryClient, tag: str) -> str | None:
    """The digest ``tag`` names (one HEAD), or ``None`` when it does not exist."""
    desc = client.head_manifest(tag)
    return desc.digest if desc else None
