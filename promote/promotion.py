"""A promotion: observe the registry, plan (pure), then apply (registry writes).

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
The checks after the writes (:func:`apply`) are shared by promote and rollback.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Protocol

import semver

from promote import naming
from promote.errors import (
    ClobberError,
    InputError,
    PartialPromotionError,
    PromoteError,
    RaceError,
    RefusedError,
)

if TYPE_CHECKING:
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
class Request:
    """A validated promotion request (all inputs checked; no I/O done yet)."""

    repository: Repository
    source_tag: str | None
    source_digest: str | None
    source_env: str = "staging"
    target_env: str = "production"
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


@dataclass(frozen=True)
class Observed:
    """What the registry said, read once before planning."""

    manifest: Manifest
    tags: tuple[str, ...]
    short_sha: str
    sha_origin: str
    #: newest immutable tag of the target env (what Flux deploys now) and its digest
    current: naming.ImmutableTag | None = None
    current_digest: str | None = None
    #: immutable target tags already naming the source digest
    promoted_before: tuple[str, ...] = ()
    #: digest of the floating tag; looked up only when the source is already current
    floating_digest: str | None = None
    #: immutable tags sharing the newest timestamp (a tie Flux breaks arbitrarily), or ()
    tied: tuple[str, ...] = ()
    #: tag names the registry listed that break the OCI tag grammar (ignored)
    ignored_tags: tuple[str, ...] = ()


@dataclass(frozen=True)
class Step:
    """One planned registry write: ``put`` a tag, or ``skip`` it (with the reason)."""

    action: str
    tag: str
    reason: str


@dataclass(frozen=True)
class Plan:
    """Everything a promotion will do and report, as data (printed in dry runs)."""

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
    warnings: tuple[str, ...] = field(default=())

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

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)


def metadata(outputs: dict[str, str]) -> str:
    """The ``metadata`` output: every other output as one JSON object."""
    return json.dumps({k: v for k, v in outputs.items() if k != "metadata"}, separators=(",", ":"))


def steps_markdown(the_plan: Plan, written: Sequence[str]) -> str:
    """The job-summary table of planned steps, and what was written."""
    from promote.frontdoor.actions import markdown_table

    steps = [(s.action, f"`{s.tag}`", s.reason) for s in the_plan.steps]
    done = "written: " + (", ".join(f"`{t}`" for t in written) if written else "nothing")
    return markdown_table(["step", "tag", "why"], steps) + f"\n{done}\n"


# -- observe (I/O: reads only) -----------------------------------------------------------------
def observe(
    client: RegistryClient,
    request: Request,
    *,
    log: Callable[[str], None] = lambda _m: None,
    now: float | None = None,
    policy: Selector | None = None,
    source: RegistryClient | None = None,
) -> Observed:
    """Read the source once, list tags once, and look up the current target digest.

    With ``now``, a tag Flux would keep selecting although it can never be outranked (a
    future or millisecond timestamp) is refused (:func:`release_history`). ``source`` is
    the client of another repository holding the source (a copy); the source manifest and
    its config are read there, everything else from ``client``.
    """
    from promote.errors import DigestMismatchError, NotFoundError

    reader = source or client
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
    log(f"source {request.source_ref} -> {manifest.digest} ({manifest.media_type})")

    found = naming.short_sha_from_sources(
        commit_sha=request.commit_sha,
        source_tag=request.source_tag,
        source_env=request.source_env,
        annotations=manifest.annotations,
    )
    if found is None:
        found = _short_sha_from_config(
            reader, manifest, source_tag=request.source_tag, source_env=request.source_env
        )
    sha, origin = found

    tags = tuple(client.list_tags())
    history = release_history(request.target_env, tags, now=now, policy=policy)
    current = history[-1] if history else None
    tied = tied_tags(history)
    current_digest = None
    if current is not None:
        desc = client.head_manifest(current.tag)
        current_digest = desc.digest if desc else None
    # Tags with the same commit may already name this digest (promoted before). Tags in a
    # tie at the top are not "before": the tie is broken by promoting again.
    promoted: list[str] = []
    for old in history:
        if old is current or old.short_sha != sha or old.tag in tied:
            continue
        desc = client.head_manifest(old.tag)
        if desc and desc.digest == manifest.digest:
            promoted.append(old.tag)
    if current is not None and current_digest == manifest.digest and not tied:
        promoted.append(current.tag)
    floating_digest = None
    if current_digest == manifest.digest and request.floating_tag and not tied:
        desc = client.head_manifest(request.target_env)
        floating_digest = desc.digest if desc else None
    return Observed(
        manifest=manifest,
        tags=tags,
        short_sha=sha,
        sha_origin=origin,
        current=current,
        current_digest=current_digest,
        promoted_before=tuple(promoted),
        floating_digest=floating_digest,
        tied=tied,
        ignored_tags=tuple(client.ignored_tags),
    )


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
    """``env``'s immutable tags that Flux may select, oldest first (shared by promote and
    rollback).

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


def already_current(
    common: Mapping[str, object],
    current: naming.ImmutableTag,
    floating_digest: str | None,
    digest: str,
) -> Plan:
    """The plan when ``digest`` already is the current release: write nothing, except a
    floating tag an earlier run left behind (so a re-run completes a partial promotion)."""
    steps = [Step("skip", current.tag, "digest is already the current release")]
    floating = str(common["floating"])
    if floating:
        if floating_digest == digest:
            steps.append(Step("skip", floating, "floating tag already names the digest"))
        else:
            steps.append(Step("put", floating, "complete an earlier partial run"))
    return Plan(
        **common,  # type: ignore[arg-type]
        version=str(current.version),
        timestamp=current.timestamp,
        tag=current.tag,
        steps=tuple(steps),
    )


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


# -- plan (pure) -----------------------------------------------------------------------------
def plan(
    request: Request,
    observed: Observed,
    *,
    now: float,
    policy: Selector | None = None,
) -> Plan:
    """Decide every tag to write; raise before any write when the promotion is unsafe."""
    if request.source_env == request.target_env:
        raise InputError("target-env must differ from source-env", input_name="target-env")
    env = request.target_env
    manifest = observed.manifest
    history = release_history(env, observed.tags, now=None, policy=policy)
    current = observed.current
    versions = [h.version for h in history]
    current_version = max(versions) if versions else None
    floating = env if request.floating_tag else ""
    common = {
        "image": request.repository.name,
        "digest": manifest.digest,
        "media_type": manifest.media_type,
        "platforms": tuple(manifest.platforms()),
        "source_tag": request.source_tag or "",
        "bump": request.bump,
        "short_sha": observed.short_sha,
        "sha_origin": observed.sha_origin,
        "floating": floating,
        "previous_tag": current.tag if current else "",
        "previous_digest": observed.current_digest or "",
        "previous_version": str(current_version) if current_version else "",
        "flux_tag_pattern": naming.flux_tag_pattern(env),
    }

    # Already current: idempotent success; only a floating tag left behind is completed.
    # In a tie at the top Flux's choice is arbitrary: promoting again breaks it.
    if current is not None and observed.current_digest == manifest.digest and not observed.tied:
        return already_current(common, current, observed.floating_digest, manifest.digest)
    if observed.promoted_before:
        raise RefusedError(
            f"{manifest.digest} was promoted before as {', '.join(observed.promoted_before)} "
            f"but is no longer the current {env} release ({current.tag if current else 'none'}); "
            "to go back to it, use command: rollback"
        )

    with refused_after_reading():
        version = naming.next_version(current_version, bump=request.bump, explicit=request.version)
        taken = taken_timestamps(env, observed.tags, history, now)
        ts = naming.next_timestamp(now, taken, request.timestamp)
    tag = naming.immutable_tag(env, version, observed.short_sha, ts)
    if tag in observed.tags:
        raise ClobberError(f"tag {tag} already exists; immutable tags are never overwritten")
    warnings = list(observation_warnings(observed.ignored_tags, observed.tied))
    if policy is not None:
        check_flux_selects(policy, observed.tags, tag, manifest.digest)
    steps = [Step("put", tag, "new immutable tag")]
    if floating:
        steps.append(Step("put", floating, "move the floating tag"))
    return Plan(
        **common,  # type: ignore[arg-type]
        version=str(version),
        timestamp=ts,
        tag=tag,
        steps=tuple(steps),
        warnings=tuple(warnings),
    )


# -- apply (I/O: writes) ---------------------------------------------------------------------
#: Retryable statuses that say the request was not processed: a PUT ending in one of these
#: did not store the tag. Any other retryable failure (connection reset, 500, 502, 504...)
#: may have been stored before the answer was lost.
NOT_PROCESSED_STATUSES = frozenset({408, 429, 503})


def apply(
    the_plan: Plan,
    client: RegistryClient,
    manifest: Manifest,
    *,
    known_tags: Sequence[str],
    policy: Selector | None = None,
    log: Callable[[str], None] = lambda _m: None,
    warn: Callable[[str], None] = lambda _m: None,
) -> list[str]:
    """Write the planned tags in order (immutable first), verifying each; return them.

    The guarantees promote and rollback share, in one place:

    * before the floating tag moves, the tags are listed again and the immutable tag is
      re-read: it must still name this digest, no other immutable tag may share its
      version and timestamp, and the Flux model must select it, unambiguously;
    * after the last write the immutable tag is read once more (the floating tag's own PUT
      answer says what it names);
    * a run that finds a conflict leaves the floating tag on the digest the Flux model
      selects and raises :class:`RaceError` (exit 4) naming the state and the one command
      that resolves it;
    * a failure after a write, or a write whose outcome is unknown, raises
      :class:`PartialPromotionError` (exit 5) naming what is and is not written.
    """
    selector = policy if policy is not None else _default_policy(the_plan.tag)
    guard = _Guard(the_plan, client, manifest, policy=selector, known_tags=known_tags, log=log)
    written: list[str] = []
    for step in the_plan.steps:
        if step.action != "put":
            continue
        try:
            _put_verified(client, step.tag, manifest, warn)
        except PromoteError as exc:
            if not written and not _unsure(exc):
                raise
            raise _partial(the_plan, written, exc, attempted=step.tag) from exc
        written.append(step.tag)
        log(f"wrote {the_plan.image}:{step.tag} -> {the_plan.digest}")
        try:
            if step.tag == the_plan.tag:
                guard.before_floating(warn)
            elif step.tag == the_plan.floating and the_plan.tag in written:
                guard.after_last_write()
        except RaceError:
            raise
        except PromoteError as exc:
            raise _partial(the_plan, written, exc) from exc
    return written


def _default_policy(tag: str) -> Selector:
    from promote.flux import ImagePolicy

    env = tag.split("-v", 1)[0]
    return ImagePolicy.from_spec(naming.flux_policy_spec(env), name=env)


def _unsure(exc: Exception) -> bool:
    """Whether a failed PUT may still have stored its tag."""
    from promote.errors import DigestMismatchError, TransientError

    if isinstance(exc, DigestMismatchError):
        return exc.method == "PUT"
    return isinstance(exc, TransientError) and exc.status not in NOT_PROCESSED_STATUSES


def _put_verified(
    client: RegistryClient, tag: str, manifest: Manifest, warn: Callable[[str], None]
) -> None:
    """PUT ``tag``; a wrong digest in the answer is settled by re-reading the tag."""
    from promote.errors import DigestMismatchError

    try:
        client.put_manifest(tag, manifest)
    except DigestMismatchError as exc:
        if exc.method != "PUT":
            raise
        desc = client.head_manifest(tag)
        if desc is not None and desc.digest == manifest.digest:
            warn(
                f"the registry's Docker-Content-Digest answer to PUT {tag} was wrong ({exc}); "
                f"a re-read shows {tag} names {manifest.digest}, as written: going on"
            )
            return
        found = desc.digest if desc else "nothing"
        raise DigestMismatchError(
            f"{exc}; a re-read shows {tag} names {found}",
            method="PUT",
            url=exc.url,
        ) from exc


class _Guard:
    """The checks around the floating tag's write (see :func:`apply`)."""

    def __init__(
        self,
        the_plan: Plan,
        client: RegistryClient,
        manifest: Manifest,
        *,
        policy: Selector,
        known_tags: Sequence[str],
        log: Callable[[str], None],
    ) -> None:
        self.plan = the_plan
        self.client = client
        self.manifest = manifest
        self.policy = policy
        self.known = set(known_tags)
        self.log = log
        self.env = the_plan.tag.split("-v", 1)[0]
        self.tags: list[str] = [*known_tags, the_plan.tag]
        self.floating_moved = False

    def _names(self, tag: str) -> str | None:
        desc = self.client.head_manifest(tag)
        return desc.digest if desc else None

    def before_floating(self, warn: Callable[[str], None]) -> None:
        """List again, re-read the immutable tag: prove it is ours and Flux's choice."""
        from promote.flux import filter_out_tags

        listed = self.client.list_tags()
        self.tags = [*listed, *([self.plan.tag] if self.plan.tag not in listed else [])]
        names = self._names(self.plan.tag)
        ours = naming.parse_immutable_tag(self.env, self.plan.tag)
        assert ours is not None
        history = naming.immutable_tags(self.env, self.tags)
        fresh = [h for h in history if h.tag not in self.known and h.tag != self.plan.tag]
        twins = [h.tag for h in history if h.tag != ours.tag and h.timestamp == ours.timestamp]
        outcome = self.policy.evaluate(filter_out_tags(self.tags))
        if names != self.plan.digest:
            self.conflict(f"{self.plan.tag} was overwritten right after this run wrote it", names)
        if twins or outcome.ambiguous or outcome.tag != self.plan.tag:
            what = (
                f"{', '.join(twins)} share{'s' if len(twins) == 1 else ''} the timestamp of "
                f"{self.plan.tag} (a tie Flux breaks arbitrarily)"
                if twins or outcome.ambiguous
                else f"another promotion wrote {', '.join(f.tag for f in fresh) or outcome.tag} "
                f"while this one wrote {self.plan.tag}"
            )
            self.conflict(what, names)
        same = [f.tag for f in fresh if f.version == ours.version]
        if same:
            warn(
                f"a concurrent promotion also wrote version {ours.version} ({', '.join(same)}); "
                f"this run's {self.plan.tag} is newer and is the one Flux selects"
            )

    def after_last_write(self) -> None:
        """The floating tag moved: the immutable tag must still name this digest."""
        self.floating_moved = True
        names = self._names(self.plan.tag)
        if names != self.plan.digest:
            self.conflict(
                f"{self.plan.tag} was overwritten while this run moved {self.plan.floating}",
                names,
            )

    def conflict(self, what: str, names: str | None) -> None:
        """Leave the floating tag on Flux's choice, then raise :class:`RaceError`."""
        from promote.flux import filter_out_tags

        plan = self.plan
        outcome = self.policy.evaluate(filter_out_tags(self.tags))
        winner = outcome.tag
        winner_digest = names if winner == plan.tag else (self._names(winner) if winner else None)
        if outcome.ambiguous:
            choice = (
                f"Flux's choice between {', '.join(outcome.candidates)} is a tie; the "
                f"project's Flux model picks {winner} ({winner_digest})"
            )
        else:
            choice = f"Flux selects {winner or 'nothing'} ({winner_digest or 'no digest'})"
        floating = ""
        if plan.floating:
            floating = self._settle_floating(winner_digest)
        ours = f"{plan.tag} names {names or 'nothing'}"
        if names != plan.digest:
            ours += (
                f", not this run's {plan.digest} (another run wrote it; its promotion "
                f"record, once written, names that run: command: trace with ref: {names})"
                if names
                else f", not this run's {plan.digest} (another run deleted it)"
            )
        if names == plan.digest:
            fix = (
                f"only if {plan.digest} should be deployed instead, run command: rollback "
                f"with rollback-to: {plan.digest} (it writes a newer timestamp)"
            )
        else:
            fix = (
                f"only if {plan.digest} should be deployed instead, re-run this promotion "
                "(it writes a new tag with a newer timestamp)"
            )
        raise RaceError(
            f"concurrent promotion: {what}. Registry state: {ours}; {choice}{floating}. "
            f"To resolve: {fix}. Serialize promotions with the workflow's concurrency group."
        )

    def _settle_floating(self, digest: str | None) -> str:
        """Point the floating tag at ``digest`` (Flux's choice) and say where it is."""
        floating = self.plan.floating
        try:
            now = self._names(floating)
            if digest is None or now == digest:
                moved = "moved by this run, " if self.floating_moved else ""
                return f"; {floating} names {now or 'nothing'} ({moved}left there)"
            source = (
                self.manifest
                if digest == self.manifest.digest
                else self.client.get_manifest(digest)
            )
            self.client.put_manifest(floating, source)
        except PromoteError as exc:
            return f"; {floating} could not be set to Flux's choice ({exc})"
        self.log(f"moved {floating} -> {digest} (Flux's choice)")
        return f"; {floating} now names {digest} (Flux's choice; set by this run)"


def _partial(
    the_plan: Plan, written: list[str], exc: Exception, *, attempted: str | None = None
) -> PartialPromotionError:
    """Name the registry state after a failure that followed (or was) a write.

    A write that failed at the connection level (reset, timeout: no status), with a
    gateway/server error (500, 502, 504...), or whose answer named the wrong digest may
    still have been applied by the registry, so that tag is reported as unconfirmed, not
    as unwritten. Only statuses that say the request was not processed (408, 429, 503)
    make it "NOT written".
    """
    from promote.errors import DigestMismatchError, TransientError

    missing = [t for t in the_plan.writes if t not in written]
    unsure = attempted if attempted in missing and _unsure(exc) else None
    not_written = [t for t in missing if t != unsure]
    before = the_plan.previous_digest or "what it named before"
    state = f"written: {', '.join(written) or 'nothing'}"
    if written:
        state += f" -> {the_plan.digest}"
    if not_written:
        state += f"; NOT written: {', '.join(not_written)}"
        if the_plan.floating in not_written:
            state += f" ({the_plan.floating} still names {before})"
    if unsure:
        if isinstance(exc, DigestMismatchError):
            why = "the registry's answer named another digest and a re-read did not confirm it"
            state += f"; UNCONFIRMED: {unsure} ({why})"
        else:
            status = exc.status if isinstance(exc, TransientError) else None
            why = (
                "the registry stopped answering during its write"
                if status is None
                else f"its write ended in HTTP {status}, which does not tell whether it was stored"
            )
            state += (
                f"; UNCONFIRMED: {unsure} ({why}: it "
                f"names {the_plan.digest} if the last attempt landed, else still {before})"
            )
    return PartialPromotionError(
        f"promotion stopped half-way: {str(exc).rstrip('. ')}. Registry state: {state}. "
        "Re-run the same promotion to complete it (it is idempotent).",
        written=list(written),
        missing=missing,
    )
