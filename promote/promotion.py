"""A promotion: observe the registry, plan (pure), then apply (registry writes).

The request sequence against the registry, for a single image or an index alike::

    GET  manifests/<source-tag or digest>   source bytes, digest computed locally   (1)
    GET  tags/list (every page)             versions, timestamps, history           (1+)
    HEAD manifests/<newest immutable tag>   previous production digest              (0-1)
    PUT  manifests/<env>-vX.Y.Z-<sha>-<ts>  the immutable tag, same bytes           (1)
    GET  tags/list                          race check: did another run write too?  (1)
    PUT  manifests/<env>                    the floating tag, same bytes            (0-1)

No blob is read (except the image config, once, when no commit sha is known otherwise),
no manifest is re-serialised; every PUT is verified by the digest the registry returns.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
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
    from promote.actions import markdown_table

    steps = [(s.action, f"`{s.tag}`", s.reason) for s in the_plan.steps]
    done = "written: " + (", ".join(f"`{t}`" for t in written) if written else "nothing")
    return markdown_table(["step", "tag", "why"], steps) + f"\n{done}\n"


# -- observe (I/O: reads only) -----------------------------------------------------------------
def observe(
    client: RegistryClient,
    request: Request,
    *,
    log: Callable[[str], None] = lambda _m: None,
) -> Observed:
    """Read the source once, list tags once, and look up the current target digest."""
    from promote.errors import DigestMismatchError, NotFoundError

    try:
        manifest = client.get_manifest(request.source_ref)
    except NotFoundError as exc:
        raise InputError(
            f"source {request.source_ref} not found in {request.repository}: {exc}",
            input_name="source-tag" if request.source_tag else "source-digest",
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
        found = _short_sha_from_config(client, manifest)
    sha, origin = found

    tags = tuple(client.list_tags())
    history = naming.immutable_tags(request.target_env, tags)
    current = history[-1] if history else None
    current_digest = None
    if current is not None:
        desc = client.head_manifest(current.tag)
        current_digest = desc.digest if desc else None
    # Tags with the same commit may already name this digest (promoted before).
    promoted: list[str] = []
    for old in history:
        if old is current or old.short_sha != sha:
            continue
        desc = client.head_manifest(old.tag)
        if desc and desc.digest == manifest.digest:
            promoted.append(old.tag)
    if current is not None and current_digest == manifest.digest:
        promoted.append(current.tag)
    floating_digest = None
    if current_digest == manifest.digest and request.floating_tag:
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
    )


def _short_sha_from_config(client: RegistryClient, manifest: Manifest) -> tuple[str, str]:
    """The ``org.opencontainers.image.revision`` label of the image config (one blob read).

    For an index, the first child's manifest is read first (one more request).
    """
    target = manifest
    if manifest.is_index:
        children = manifest.parsed().get("manifests") or []
        first = children[0] if isinstance(children, list) and children else None
        if not isinstance(first, dict) or not isinstance(first.get("digest"), str):
            raise InputError(
                "the source index lists no usable manifest; pass commit-sha",
                input_name="commit-sha",
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
    if not isinstance(revision, str) or not revision:
        raise InputError(
            "cannot tell which commit the image was built from: pass commit-sha, promote a "
            f"<env>-<sha>-<ts> source tag, or build with the {naming.REVISION_KEY} "
            "annotation or label",
            input_name="commit-sha",
        )
    return naming.short_sha(
        revision, input_name="commit-sha"
    ), f"image config label {naming.REVISION_KEY}"


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
    history = naming.immutable_tags(env, observed.tags)
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
    if current is not None and observed.current_digest == manifest.digest:
        return already_current(common, current, observed.floating_digest, manifest.digest)
    if observed.promoted_before:
        raise RefusedError(
            f"{manifest.digest} was promoted before as {', '.join(observed.promoted_before)} "
            f"but is no longer the current {env} release ({current.tag if current else 'none'}); "
            "to go back to it, use command: rollback"
        )

    version = naming.next_version(current_version, bump=request.bump, explicit=request.version)
    ts = naming.next_timestamp(now, (h.timestamp for h in history), request.timestamp)
    tag = naming.immutable_tag(env, version, observed.short_sha, ts)
    if tag in observed.tags:
        raise ClobberError(f"tag {tag} already exists; immutable tags are never overwritten")
    warnings: list[str] = []
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
    log: Callable[[str], None] = lambda _m: None,
    warn: Callable[[str], None] = lambda _m: None,
) -> list[str]:
    """Write the planned tags in order (immutable first), verifying each; return them.

    After the immutable tag is written the tag list is read again: if another promotion
    wrote an immutable tag meanwhile and Flux would prefer it, this run stops before moving
    the floating tag and raises :class:`RaceError`. A failure after the first write raises
    :class:`PartialPromotionError` naming what is and is not written.
    """
    written: list[str] = []
    for step in the_plan.steps:
        if step.action != "put":
            continue
        try:
            client.put_manifest(step.tag, manifest)
        except PromoteError as exc:
            if not written:
                raise
            raise _partial(the_plan, written, exc, attempted=step.tag) from exc
        written.append(step.tag)
        log(f"wrote {the_plan.image}:{step.tag} -> {the_plan.digest}")
        if step.tag == the_plan.tag:
            try:
                _race_check(the_plan, client, known_tags, warn)
            except RaceError:
                raise
            except PromoteError as exc:
                raise _partial(the_plan, written, exc) from exc
    return written


def _race_check(
    the_plan: Plan,
    client: RegistryClient,
    known_tags: Sequence[str],
    warn: Callable[[str], None],
) -> None:
    env_prefix = the_plan.tag.split("-v", 1)[0]
    known = set(known_tags)
    fresh = [
        t
        for t in naming.immutable_tags(env_prefix, client.list_tags())
        if t.tag not in known and t.tag != the_plan.tag
    ]
    if not fresh:
        return
    newest = max(fresh)
    ours = naming.parse_immutable_tag(env_prefix, the_plan.tag)
    assert ours is not None
    if newest.timestamp < ours.timestamp:
        same = [f.tag for f in fresh if f.version == ours.version]
        if same:
            warn(
                f"a concurrent promotion also wrote version {ours.version} ({', '.join(same)}); "
                f"this run's {the_plan.tag} is newer and is the one Flux selects"
            )
        return
    raise RaceError(
        f"another promotion wrote {', '.join(f.tag for f in fresh)} while this one wrote "
        f"{the_plan.tag}; the floating tag was NOT moved. Check which digest should be in "
        f"{env_prefix} (Flux selects the newest timestamp: {max(newest, ours).tag}), then "
        "re-run the promotion you want, or roll back. Serialize promotions with the "
        "workflow's concurrency group."
    )


def _partial(
    the_plan: Plan, written: list[str], exc: Exception, *, attempted: str | None = None
) -> PartialPromotionError:
    """Name the registry state after a failure that followed the first write.

    A write that failed at the connection level (reset, timeout: no status) or with a
    gateway/server error (500, 502, 504...) may still have been applied by the registry, so
    that tag is reported as unconfirmed, not as unwritten. Only statuses that say the
    request was not processed (408, 429, 503) make it "NOT written".
    """
    from promote.errors import TransientError

    missing = [t for t in the_plan.writes if t not in written]
    unsure = (
        attempted
        if attempted in missing
        and isinstance(exc, TransientError)
        and exc.status not in NOT_PROCESSED_STATUSES
        else None
    )
    not_written = [t for t in missing if t != unsure]
    before = the_plan.previous_digest or "what it named before"
    state = f"written: {', '.join(written)} -> {the_plan.digest}"
    if not_written:
        state += f"; NOT written: {', '.join(not_written)}"
        if the_plan.floating in not_written:
            state += f" ({the_plan.floating} still names {before})"
    if unsure:
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
        f"promotion stopped half-way: {exc}. Registry state: {state}. Re-run the same "
        "promotion to complete it (it is idempotent).",
        written=list(written),
        missing=missing,
    )
