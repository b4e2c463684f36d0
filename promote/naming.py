"""The tag grammar shared by all three environments, versions and timestamps.

Tags (all lower-case, all valid OCI tags, all ordered by a numeric unix-seconds suffix)::

    develop-<sha7>-<ts>                       build tag of a develop-branch image
    staging-<sha7>-<ts>                       build tag of a main-branch image
    production-v<X.Y.Z>-<sha7>-<ts>           immutable promotion tag
    production                                floating tag (moves; never selected by Flux)

Flux selects the newest immutable tag of an environment with a numerical policy over
``$ts`` (see :func:`flux_tag_pattern`), so the timestamp — not the version — orders
deployments: a rollback is a re-promotion of an old digest under a newer timestamp.

Everything here is pure: no I/O, no clock (``now`` is passed in).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from promote.errors import InputError

if TYPE_CHECKING:
    # semver is imported by _version, so the front door can read the env names at
    # start-up without loading it
    import semver

SHORT_SHA_LENGTH = 7
#: Unix seconds with ten digits: 2001-09-09 .. 2286-11-20. Milliseconds (13 digits) would
#: outrank every seconds tag forever under a numerical policy, so they are refused.
MIN_TIMESTAMP = 1_000_000_000
MAX_TIMESTAMP = 9_999_999_999
#: How far ahead of the clock a timestamp may be (clock skew between machines). A tag
#: further ahead would outrank every later promotion under a numerical policy.
MAX_FUTURE_SECONDS = 600
BUMPS = ("patch", "minor", "major")
#: Environment names become tag prefixes: lower-case, start with a letter.
ENV_RE = re.compile(r"[a-z][a-z0-9]{0,31}")
#: OCI tag length limit (the tag grammar allows 1 + 127 characters).
TAG_MAX = 128
#: The OCI distribution tag grammar (128 characters at most): the one tag-syntax rule
#: (:func:`promote.reference.validate_tag` and the tag listing use it too).
TAG_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}", re.ASCII)
HEX_RE = re.compile(r"[0-9a-fA-F]{7,64}")
#: Each part at most 9 digits: a version must fit the 128-character tag with any env name,
#: and anything longer is a typo or an attack, refused before the first network call.
VERSION_RE = re.compile(r"v?(0|[1-9][0-9]{0,8})\.(0|[1-9][0-9]{0,8})\.(0|[1-9][0-9]{0,8})")
REVISION_KEY = "org.opencontainers.image.revision"
#: Largest version part :data:`VERSION_RE` admits.
MAX_VERSION_PART = 999_999_999
#: The environment of develop-branch builds.
DEVELOP_ENV = "develop"
#: The environment of main-branch builds: where a promotion takes its source by default.
STAGING_ENV = "staging"
#: Environments whose tags are builds (``<env>-<sha>-<ts>``), never promotion targets.
BUILD_ENVS = (DEVELOP_ENV, STAGING_ENV)
#: The production environment: the default promotion target (a release environment:
#: ``<env>-v<X.Y.Z>-<sha>-<ts>``), and what a GitHub Deployment calls production.
PRODUCTION_ENV = "production"
DEFAULT_TARGET_ENV = PRODUCTION_ENV
#: The default source environment of a promotion.
DEFAULT_SOURCE_ENV = STAGING_ENV
#: The environments a GitOps tree has folders for, in promotion order.
ENVS = (*BUILD_ENVS, DEFAULT_TARGET_ENV)
#: Tags that float from build to build (``latest`` and each environment's own name):
#: never selected by Flux, never a release.
FLOATING_TAGS = ("latest", *ENVS)
#: ``build-tags``' default branch -> environment map: the develop branch builds develop-*
#: images, main builds staging-* images.
DEFAULT_BRANCH_ENVS = {"develop": DEVELOP_ENV, "main": STAGING_ENV}
#: The suffixes of cosign's artifact tags (``sha256-<hex>.sig`` and its kin).
COSIGN_SUFFIXES = (".sig", ".att", ".sbom")


@dataclass(frozen=True, order=True)
class ImmutableTag:
    """A parsed ``<env>-v<X.Y.Z>-<sha>-<ts>`` tag; ordering is by timestamp first."""

    timestamp: int
    version: semver.Version
    short_sha: str
    env: str
    tag: str


@dataclass(frozen=True)
class BuildTag:
    """A parsed ``<env>-<sha>-<ts>`` build tag."""

    env: str
    short_sha: str
    timestamp: int
    tag: str


def validate_env(env: str, *, input_name: str = "env") -> str:
    if not ENV_RE.fullmatch(env):
        raise InputError(
            f"environment {env[:40]!r} must be lower-case letters and digits, starting with a "
            "letter",
            input_name=input_name,
        )
    return env


def validate_target_env(env: str, *, input_name: str = "target-env") -> str:
    """A promotion target: a valid env that is not a build env (develop, staging)."""
    validate_env(env, input_name=input_name)
    if env in BUILD_ENVS:
        raise InputError(
            f"{input_name} {env!r} is a build environment: its tags are {env}-<sha>-<ts> "
            f"builds that Flux selects with {flux_tag_pattern(env)}, so a promotion tag "
            f"{env}-v<X.Y.Z>-... would never be deployed; promote into production (or "
            "another release environment)",
            input_name=input_name,
        )
    return env


def immutable_tag(env: str, version: semver.Version, short_sha: str, timestamp: int) -> str:
    tag = f"{env}-v{version}-{short_sha}-{timestamp}"
    if not TAG_RE.fullmatch(tag):
        raise InputError(f"computed tag {tag!r} is not a valid OCI tag")
    return tag


#: Patterns per env, compiled once: the tag listing parses every tag of a repository
#: (10k-100k) with the same env, and building the pattern each call cost more than the match.
@functools.lru_cache(maxsize=64)
def _immutable_re(env: str) -> re.Pattern[str]:
    return re.compile(
        rf"{re.escape(env)}-v(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)"
        r"-([0-9a-f]{7,40})-([0-9]{1,19})"
    )


def parse_immutable_tag(env: str, tag: str) -> ImmutableTag | None:
    """Parse ``tag`` if it is an immutable tag of ``env`` (exactly the Flux pattern's shape)."""
    m = _immutable_re(env).fullmatch(tag)
    if not m:
        return None
    return ImmutableTag(int(m[5]), _version(m[1], m[2], m[3]), m[4], env, tag)


def immutable_tags(env: str, tags: Iterable[str]) -> list[ImmutableTag]:
    """The immutable tags of ``env`` among ``tags``, oldest first (by timestamp, then tag)."""
    parsed = (parse_immutable_tag(env, t) for t in tags)
    return sorted((p for p in parsed if p is not None), key=lambda p: (p.timestamp, p.tag))


def build_tag(env: str, short_sha: str, timestamp: int) -> str:
    return f"{env}-{short_sha}-{timestamp}"


@functools.lru_cache(maxsize=64)
def _build_re(env: str) -> re.Pattern[str]:
    return re.compile(rf"{re.escape(env)}-([0-9a-f]{{7,40}})-([0-9]{{1,19}})")


def parse_build_tag(env: str, tag: str) -> BuildTag | None:
    m = _build_re(env).fullmatch(tag)
    if not m:
        return None
    return BuildTag(env, m[1][:SHORT_SHA_LENGTH], int(m[2]), tag)


def is_build_env(env: str) -> bool:
    """Whether ``env``'s tags are builds (``<env>-<sha>-<ts>``), not promotions."""
    return env in BUILD_ENVS


def env_tag(env: str, *, version: semver.Version, short_sha: str, timestamp: int) -> str:
    """The tag of ``env`` that Flux selects (:func:`flux_tag_pattern`): a build tag in a
    build env, the immutable promotion tag in any other."""
    if is_build_env(env):
        return build_tag(env, short_sha, timestamp)
    return immutable_tag(env, version, short_sha, timestamp)


def flux_tag_pattern(env: str) -> str:
    """The ``filterTags.pattern`` that admits exactly ``env``'s immutable tags (RE2 syntax)."""
    if is_build_env(env):
        return rf"^{env}-(?P<sha>[a-f0-9]{{7,40}})-(?P<ts>[0-9]+)$"
    return rf"^{env}-v(?P<version>[0-9]+\.[0-9]+\.[0-9]+)-(?P<sha>[a-f0-9]+)-(?P<ts>[0-9]+)$"


def flux_policy_spec(env: str) -> dict[str, object]:
    """The ImagePolicy ``spec`` (minus the repository ref) this project recommends for ``env``."""
    return {
        "filterTags": {"pattern": flux_tag_pattern(env), "extract": "$ts"},
        "policy": {"numerical": {"order": "asc"}},
    }


# -- versions --------------------------------------------------------------------------------
def _version(major: str | int, minor: str | int, patch: str | int) -> semver.Version:
    """The one place semver is imported: on first use, not at start-up."""
    import semver

    return semver.Version(int(major), int(minor), int(patch))


def parse_version(text: str, *, input_name: str = "version") -> semver.Version:
    """``X.Y.Z`` with an optional ``v``; no pre-release or build part (tags cannot hold ``+``)."""
    m = VERSION_RE.fullmatch(text)
    if not m:
        raise InputError(
            f"version {text[:40]!r} must be X.Y.Z (a leading v is accepted; no pre-release or "
            "build part, no leading zeros, at most 9 digits per part)",
            input_name=input_name,
        )
    return _version(m[1], m[2], m[3])


def next_version(
    current: semver.Version | None, *, bump: str, explicit: semver.Version | None
) -> semver.Version:
    """The version of the next promotion.

    No earlier version: ``explicit`` or 1.0.0. Otherwise ``explicit`` must be greater than
    ``current``; without it ``current`` is bumped by ``bump``.
    """
    if bump not in BUMPS:
        raise InputError(
            f"bump must be one of {', '.join(BUMPS)}, not {bump[:20]!r}", input_name="bump"
        )
    if current is None:
        return explicit or _version(1, 0, 0)
    if explicit is not None:
        if explicit <= current:
            raise InputError(
                f"version {explicit} is not greater than the current version {current}; "
                "to go back, use command: rollback",
                input_name="version",
            )
        return explicit
    bumped: semver.Version = getattr(current, f"bump_{bump}")()
    if max(bumped.major, bumped.minor, bumped.patch) > MAX_VERSION_PART:
        raise InputError(
            f"bumping {current} ({bump}) gives {bumped}, which has a part longer than 9 "
            "digits (versions are X.Y.Z with at most 9 digits per part): give version, or "
            "bump a higher part",
            input_name="version",
        )
    return bumped


# -- commits ---------------------------------------------------------------------------------
def short_sha(value: str, *, input_name: str = "commit-sha") -> str:
    """Seven lower-case hex characters from a full or short commit sha (upper case folded)."""
    if not HEX_RE.fullmatch(value):
        raise InputError(
            f"commit sha {value[:70]!r} must be 7 to 64 hexadecimal characters",
            input_name=input_name,
        )
    return value[:SHORT_SHA_LENGTH].lower()


def short_sha_from_sources(
    *,
    commit_sha: str,
    source_tag: str | None,
    source_env: str,
    annotations: Mapping[str, str],
) -> tuple[str, str] | None:
    """The short sha and where it came from, from what is known without another request.

    Order: the ``commit-sha`` input; a ``<source-env>-<sha>-<ts>`` source tag; the
    ``org.opencontainers.image.revision`` annotation. ``None`` means: read the image config.
    ``GITHUB_SHA`` is never used: in a dispatched workflow it names the wrong commit.
    """
    if commit_sha:
        return short_sha(commit_sha), "commit-sha input"
    if source_tag:
        build = parse_build_tag(source_env, source_tag)
        if build:
            return build.short_sha, f"source tag {source_tag}"
    revision = annotations.get(REVISION_KEY, "")
    if revision and HEX_RE.fullmatch(revision):
        return revision[:SHORT_SHA_LENGTH].lower(), f"manifest annotation {REVISION_KEY}"
    return None


# -- timestamps ------------------------------------------------------------------------------
def validate_timestamp(value: int, *, input_name: str = "timestamp") -> int:
    if not MIN_TIMESTAMP <= value <= MAX_TIMESTAMP:
        hint = " (that looks like milliseconds)" if value > MAX_TIMESTAMP else ""
        raise InputError(
            f"timestamp {value} must be unix seconds between {MIN_TIMESTAMP} and "
            f"{MAX_TIMESTAMP}{hint}",
            input_name=input_name,
        )
    return value


def parse_timestamp(text: str, *, now: float | None = None, input_name: str = "timestamp") -> int:
    """Unix seconds from an input; with ``now``, at most :data:`MAX_FUTURE_SECONDS` ahead."""
    if not re.fullmatch(r"[0-9]{1,19}", text):
        raise InputError(
            f"timestamp {text[:40]!r} must be unix seconds (digits only)", input_name=input_name
        )
    value = validate_timestamp(int(text), input_name=input_name)
    if now is not None and value > now + MAX_FUTURE_SECONDS:
        raise InputError(
            f"timestamp {value} is {value - int(now)} seconds in the future (more than "
            f"{MAX_FUTURE_SECONDS} s ahead of now, {int(now)}): such a tag would outrank "
            "every later promotion under Flux's numerical $ts policy",
            input_name=input_name,
        )
    return value


def timestamp_problem(value: int, now: float) -> str:
    """Why an existing tag's timestamp poisons the order (``""`` when it does not)."""
    if value > MAX_TIMESTAMP:
        return "which looks like milliseconds, not unix seconds"
    if value > now + MAX_FUTURE_SECONDS:
        return f"{value - int(now)} seconds in the future"
    return ""


def next_timestamp(now: float, existing: Iterable[int], explicit: int | None) -> int:
    """``max(now, newest existing + 1)``; an explicit timestamp must be newer than all.

    Flux's numerical policy selects the largest timestamp: a tag that is not newer than
    every existing one would never be deployed (and an equal one collides).
    """
    newest = max(existing, default=None)
    if explicit is not None:
        validate_timestamp(explicit)
        if newest is not None and explicit <= newest:
            raise InputError(
                f"timestamp {explicit} is not newer than the newest existing tag's {newest}: "
                "Flux would never select it",
                input_name="timestamp",
            )
        return explicit
    candidate = int(now)
    if newest is not None:
        candidate = max(candidate, newest + 1)
    return validate_timestamp(candidate)


# -- referrers tags --------------------------------------------------------------------------
#: The OCI referrers tag schema (``sha256-<64 hex>``): an index of the artifacts attached to
#: a digest (promotion records, signatures). Never a release: Flux must not select one.
REFERRERS_TAG_RE = re.compile(r"sha256-[0-9a-f]{64}")


def is_referrers_tag(tag: str) -> bool:
    """Whether ``tag`` is a referrers-tag-schema index tag (not cosign's ``….sig``)."""
    return REFERRERS_TAG_RE.fullmatch(tag) is not None


def referrers_tag(digest: str) -> str:
    """The referrers-tag-schema tag of a ``sha256:<hex>`` digest: ``sha256-<hex>``."""
    algorithm, _, hexdigest = digest.partition(":")
    return f"{algorithm}-{hexdigest}"


def is_cosign_tag(tag: str) -> bool:
    """Whether ``tag`` is one of cosign's artifact tags (``sha256-<hex>.sig``, ``.att``, …)."""
    stem, dot, suffix = tag.rpartition(".")
    return bool(dot) and f".{suffix}" in COSIGN_SUFFIXES and is_referrers_tag(stem)


def cosign_tag(digest: str, suffix: str) -> str:
    """cosign's tag for an artifact of ``digest``: ``sha256-<hex>`` + ``.sig``/``.att``/…"""
    return referrers_tag(digest) + suffix


#: A version as a release states it (``X.Y.Z``, no ``v`` prefix): :data:`VERSION_RE`'s parts.
RELEASE_VERSION_RE = re.compile(VERSION_RE.pattern.removeprefix("v?"))


def carries_short_sha(tag: str, short: str) -> bool:
    """Whether ``tag`` names the commit ``short``: one of its dash-separated words after the
    first is exactly the short sha (``<env>-<sha>-<ts>``, ``<env>-v<X.Y.Z>-<sha>-<ts>``, or a
    tag of the team's own such as ``pr-7-<sha>``)."""
    return bool(short) and short in tag.split("-")[1:]
