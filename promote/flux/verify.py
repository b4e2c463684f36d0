"""Did Flux pick the promotion? Marker contents, polling, and a prediction from the registry.

Three questions, answered by pure functions plus one polling loop:

1. **Does Git carry the tag?** (:func:`verify_tree`) Every setter marker for the policy is
   read as image-automation-controller writes it: the full marker holds
   ``<image>:<tag>[@<digest>]``, ``:tag`` holds the tag; ``:name`` and ``:digest`` markers
   say nothing about the tag and are reported, not judged. Synced = at least one
   tag-bearing marker, and all of them carry ``expected-tag``.
2. **Will it?** (:func:`poll`) re-reads the source with exponential backoff (1 s, x1.5,
   at most 30 s between reads) until synced or the timeout passes; ``timeout`` 0 reads
   once. Through the GitHub API a re-read is a conditional request (see
   :mod:`promote.flux.source`).
3. **Would Flux select it at all?** (:func:`predict`) the repository's ImagePolicy run over
   the registry's real tag list, minus the ImageRepository ``exclusionList`` (default
   ``^.*\\.sig$``; a custom list replaces it), exactly as image-reflector-controller does.
   When the answer is not ``expected-tag`` the reason is named: not in the registry,
   excluded, not admitted by the pattern, a failing evaluation, or the tag that wins and
   its extracted value.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from promote.errors import GitOpsError, PolicyError
from promote.flux.gitops import FluxObject, GitOpsTree, Marker, split_image
from promote.flux.source import TreeSource, load_tree

if TYPE_CHECKING:
    from promote.flux import ImagePolicy

#: Polling: first wait, growth factor, longest wait (seconds). The automation reacts to a
#: new ``latestRef`` within seconds, but GitHub's content may lag a push slightly.
FIRST_DELAY = 1.0
BACKOFF = 1.5
MAX_DELAY = 30.0


@dataclass(frozen=True)
class MarkerState:
    marker: Marker
    #: the tag the marker currently carries (``None`` for ``:name``/``:digest`` markers)
    tag: str | None
    #: ``True``/``False`` whether it carries the expected tag; ``None`` cannot tell
    carries: bool | None
    #: why it does not carry what it must, beyond the tag (a foreign image), or ""
    problem: str = ""


@dataclass
class Verification:
    policy: str
    expected: str
    markers: list[MarkerState]
    revision: str | None = None
    reads: int = 1
    problems: list[str] = field(default_factory=list)

    @property
    def decisive(self) -> list[MarkerState]:
        return [s for s in self.markers if s.carries is not None]

    @property
    def synced(self) -> bool:
        return bool(self.decisive) and all(s.carries for s in self.decisive)

    @property
    def files(self) -> list[str]:
        return sorted({s.marker.file for s in self.markers})

    @property
    def stale(self) -> list[MarkerState]:
        return [s for s in self.decisive if not s.carries]


def marker_tag(marker: Marker) -> str | None:
    """The tag a marker's scalar holds (full form ``image:tag[@digest]``, or ``:tag``)."""
    if marker.field == "tag":
        return marker.value
    if marker.field == "":
        return split_image(marker.value)[1]
    return None


def normalise_image(image: str) -> str:
    """``image`` as Flux compares repositories: Docker Hub spelled ``docker.io`` with the
    ``library/`` prefix (``nginx`` -> ``docker.io/library/nginx``); unparsable: as given."""
    from promote.errors import InputError
    from promote.reference import parse_repository

    try:
        return parse_repository(image).name
    except InputError:
        return image


def repository_image(tree: GitOpsTree, policy_ref: str) -> str | None:
    """The ``spec.image`` of the ImageRepository the policy reads, or ``None``."""
    obj = tree.find("ImagePolicy", policy_ref)
    ref = obj.spec.get("imageRepositoryRef") if obj is not None else None
    if obj is None or not isinstance(ref, dict) or not isinstance(ref.get("name"), str):
        return None
    repo = tree.find("ImageRepository", f"{ref.get('namespace') or obj.namespace}:{ref['name']}")
    image = repo.spec.get("image") if repo is not None else None
    return image if isinstance(image, str) and image else None


def _judge(marker: Marker, expected: str, image: str | None) -> MarkerState:
    """What one marker carries: a full marker must hold ``<image>:<expected>``, a ``:tag``
    marker the tag, a ``:name`` marker the image (``:digest`` is reported only)."""
    tag = marker_tag(marker)
    want = normalise_image(image) if image else None
    if marker.field == "name":
        if want is not None and normalise_image(marker.value) != want:
            return MarkerState(marker, None, False, f"names image {marker.value!r}, not {image}")
        return MarkerState(marker, None, None)
    if marker.field == "digest":
        return MarkerState(marker, None, None)
    if marker.field == "" and want is not None:
        name = split_image(marker.value)[0]
        if normalise_image(name) != want:
            return MarkerState(marker, tag, False, f"holds image {name!r}, not {image}")
    return MarkerState(marker, tag, tag == expected)


def verify_tree(tree: GitOpsTree, policy_ref: str, expected: str) -> Verification:
    """Whether every tag-bearing marker for ``policy_ref`` carries ``expected`` (and the
    policy's ImageRepository image, where the marker holds an image)."""
    image = repository_image(tree, policy_ref)
    states = [_judge(m, expected, image) for m in tree.markers_for(policy_ref)]
    result = Verification(policy_ref, expected, states, revision=tree.revision)
    if not states:
        result.problems.append(f"no setter marker for ImagePolicy {policy_ref} in the tree")
    elif not result.decisive:
        result.problems.append(
            f"the markers for {policy_ref} are all :name or :digest markers; none holds a tag"
        )
    return result


def poll(
    source: TreeSource,
    policy_ref: str,
    expected: str,
    timeout: float,
    *,
    first: GitOpsTree | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    log: Callable[[str], None] = lambda message: None,
    first_delay: float = FIRST_DELAY,
    max_delay: float = MAX_DELAY,
) -> Verification:
    """Read ``source`` until the markers carry ``expected`` or ``timeout`` seconds pass.

    Stops at once when there is no marker for the policy (polling cannot fix that).
    ``first`` is an already loaded tree to use for the first check.
    """
    deadline = clock() + timeout
    delay = first_delay
    reads = 0
    tree = first
    while True:
        if tree is None:
            tree = load_tree(source)
        reads += 1
        result = verify_tree(tree, policy_ref, expected)
        result.reads = reads
        remaining = deadline - clock()
        if result.synced or not result.decisive or remaining <= 0:
            return result
        wait = min(delay, remaining)
        log(
            f"{len(result.stale)} marker(s) for {policy_ref} not on {expected} yet "
            f"(e.g. {result.stale[0].problem or result.stale[0].tag}); next read in {wait:.1f}s"
        )
        sleep(wait)
        delay = min(delay * BACKOFF, max_delay)
        tree = None


# -- prediction --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Prediction:
    """What Flux would select from ``tags`` and, when it is not the expected tag, why."""

    tag: str | None
    ok: bool
    reason: str
    ambiguous: bool = False
    warnings: tuple[str, ...] = ()
    considered: int = 0


def predict(
    policy: ImagePolicy, tags: Sequence[str], expected: str, exclusions: Sequence[str] = ()
) -> Prediction:
    """Run the policy over the registry's tags as image-reflector-controller would.

    ``exclusions`` is the ImageRepository ``exclusionList`` (empty = the default). A tie
    that includes ``expected`` is reported as a warning, not a failure: the markers, read
    afterwards, show what the controller actually chose.
    """
    from promote.flux import filter_out_tags

    present = set(tags)
    kept = filter_out_tags(sorted(present, reverse=True), list(exclusions) or None)
    try:
        selection = policy.evaluate(kept)
    except PolicyError as exc:
        reason = f"the policy fails on the registry's tags: {exc}"
        return Prediction(None, False, reason, considered=len(kept))
    warnings = tuple(selection.warnings)
    if selection.tag == expected or (selection.ambiguous and expected in selection.candidates):
        return Prediction(selection.tag, True, "", selection.ambiguous, warnings, len(kept))
    if expected not in present:
        reason = f"{expected} is not in the registry ({len(present)} tags listed)"
    elif expected not in kept:
        reason = f"{expected} is excluded by the ImageRepository exclusionList"
    else:
        reason = policy.explain(kept, expected) or f"Flux would select {selection.tag}"
    return Prediction(selection.tag, False, reason, selection.ambiguous, warnings, len(kept))


def policy_object(tree: GitOpsTree, policy_ref: str) -> FluxObject:
    obj = tree.find("ImagePolicy", policy_ref)
    if obj is None:
        known = ", ".join(sorted(p.ref for p in tree.policies)) or "none"
        raise GitOpsError(f"ImagePolicy {policy_ref} is not in the GitOps tree (found: {known})")
    return obj
