"""The release pipeline's data (pure): what was read, what a rule chose, the plan.

A promotion and a rollback share these types; a :class:`Rule` (the request of one or the
other) is what differs: how the source is chosen and which version the new tag gets.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    import semver

    from promote.naming import ImmutableTag
    from promote.reference import Repository
    from promote.registry import Manifest, RegistryClient


class Outcome(Protocol):
    """A policy evaluation (see :class:`promote.flux.Selection`)."""

    @property
    def tag(self) -> str | None: ...
    @property
    def ambiguous(self) -> bool: ...
    @property
    def candidates(self) -> tuple[str, ...]: ...


class Selector(Protocol):
    """What the plan needs of a Flux ImagePolicy (see :class:`promote.flux.ImagePolicy`)."""

    def select(self, tags: Iterable[str]) -> str | None: ...
    def evaluate(self, tags: Iterable[str]) -> Outcome: ...


@dataclass(frozen=True)
class Listing:
    """The target repository's tags, read once: the env's releases and the current one."""

    tags: tuple[str, ...]
    #: the env's immutable tags Flux may select, oldest first
    history: tuple[ImmutableTag, ...]
    #: newest immutable tag of the target env (what Flux deploys now) and its digest
    current: ImmutableTag | None
    current_digest: str | None
    #: immutable tags sharing the newest timestamp (a tie Flux breaks arbitrarily), or ()
    tied: tuple[str, ...] = ()
    #: tag names the registry listed that break the OCI tag grammar (ignored)
    ignored_tags: tuple[str, ...] = ()


@dataclass(frozen=True)
class Source:
    """What a rule chose to release: the manifest and where its tag's parts come from."""

    manifest: Manifest
    #: the plan's ``source_tag`` output (promote: the staging tag given; rollback: the
    #: immutable tag whose digest is restored)
    tag: str
    short_sha: str
    sha_origin: str
    #: rollback: the release restored (its version is reused); promote: ``None``
    restores: ImmutableTag | None = None
    #: how the source was chosen, for the log and summary (rollback)
    origin: str = ""
    #: immutable target tags already naming the source digest (promote refuses those)
    promoted_before: tuple[str, ...] = ()


@dataclass(frozen=True)
class Observed:
    """What the registry said, read once before planning."""

    listing: Listing
    source: Source
    #: digest of the floating tag; looked up only when the source is already current
    floating_digest: str | None = None

    @property
    def manifest(self) -> Manifest:
        return self.source.manifest

    @property
    def tags(self) -> tuple[str, ...]:
        return self.listing.tags

    @property
    def current(self) -> ImmutableTag | None:
        return self.listing.current

    @property
    def current_digest(self) -> str | None:
        return self.listing.current_digest


class Rule(Protocol):
    """A release request: the shared settings, and the two parts promote and rollback do
    differently (see :class:`promote.pipeline.promotion.Request` and
    :class:`promote.pipeline.rollback.RollbackRequest`)."""

    @property
    def repository(self) -> Repository: ...
    @property
    def target_env(self) -> str: ...
    @property
    def timestamp(self) -> int | None: ...
    @property
    def floating_tag(self) -> bool: ...
    @property
    def kind(self) -> str: ...

    def select(
        self,
        client: RegistryClient,
        listing: Callable[[], Listing],
        *,
        log: Callable[[str], None],
        source: RegistryClient | None,
    ) -> Source:
        """Choose (and read) the manifest to release; ``listing()`` reads the tags once."""
        ...

    @property
    def how(self) -> str:
        """The ``bump`` output: the bump of a promotion, ``rollback`` for a rollback."""
        ...

    def previous_version(self, observed: Observed, history: Sequence[ImmutableTag]) -> str:
        """The version reported as the one before (``""``: none)."""
        ...

    def next_version(self, observed: Observed, history: Sequence[ImmutableTag]) -> semver.Version:
        """The new tag's version (pure; an :class:`promote.errors.InputError` here becomes a
        refusal, exit 3: it was judged against what the registry holds)."""
        ...

    def reasons(self, source: Source) -> tuple[str, str]:
        """Why the immutable and the floating tag are written (the plan's steps)."""
        ...

    def notes(self, observed: Observed, history: Sequence[ImmutableTag]) -> list[str]:
        """Refuse (raise) or warn (the returned lines) about this release (pure)."""
        ...


@dataclass(frozen=True)
class Step:
    """One planned registry write: ``put`` a tag, or ``skip`` it (with the reason)."""

    action: str
    tag: str
    reason: str


@dataclass(frozen=True)
class Plan:
    """Everything a promotion or rollback will do and report, as plain data (the summary and
    the outputs are rendered from it)."""

    image: str
    digest: str
    media_type: str
    platforms: tuple[str, ...]
    source_tag: str
    version: str
    previous_version: str
    bump: str
    short_sha: str
    sha_origin: str
    timestamp: int
    tag: str
    floating: str
    steps: tuple[Step, ...]
    previous_tag: str
    previous_digest: str
    flux_tag_pattern: str
    #: the target env (the immutable tag's prefix)
    env: str
    warnings: tuple[str, ...] = ()

    @property
    def changed(self) -> bool:
        return any(s.action == "put" for s in self.steps)

    @property
    def writes(self) -> list[str]:
        return [s.tag for s in self.steps if s.action == "put"]

    def outputs(self, written: Sequence[str] | None = None) -> dict[str, str]:
        """The action's outputs; ``written`` defaults to the planned writes (dry run)."""
        tags = list(self.writes if written is None else written)
        out = {
            "digest": self.digest,
            "version": self.version,
            "tag": self.tag,
            "tags": "\n".join(f"{self.image}:{t}" for t in tags),
            "image": f"{self.image}@{self.digest}",
            "short-sha": self.short_sha,
            "timestamp": str(self.timestamp),
            "source-tag": self.source_tag,
            "previous-tag": self.previous_tag,
            "previous-digest": self.previous_digest,
            "changed": "true" if tags else "false",
            "flux-tag-pattern": self.flux_tag_pattern,
            "platforms": ",".join(self.platforms),
        }
        out["metadata"] = metadata(out)
        return out


def metadata(outputs: dict[str, str]) -> str:
    """The ``metadata`` output: every other output as one JSON object."""
    return json.dumps({k: v for k, v in outputs.items() if k != "metadata"}, separators=(",", ":"))
