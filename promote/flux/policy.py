"""Flux ``ImagePolicy``: predict the tag image-reflector-controller writes to ``latestRef.tag``.

Mirrors image-reflector-controller v1.2.0 (API ``image.toolkit.fluxcd.io/v1``; ``v1beta2`` has
the same spec):

- ``internal/policy/factory.go`` ``PolicerFromSpec``: semver, else alphabetical, else
  numerical, else invalid; ``order`` is upper-cased, ``""`` means ``ASC``.
- ``internal/policy/filter.go`` ``RegexFilter``: unanchored RE2 search, ``Expand`` of
  ``extract`` (``""`` = the whole tag), a map from key to original tag where a later tag
  overwrites an earlier one with the same key (:mod:`promote.flux.expand`).
- ``alphabetical.go`` (byte-wise), ``numerical.go`` (Go ``ParseFloat``, running best where an
  equal value replaces the earlier one; :mod:`promote.flux.numeric`), ``semver.go``
  (Masterminds ranges, fluxcd/pkg ``ParseVersion``, strict greater-than so the first of equal
  versions wins; :mod:`promote.flux.semver_range`).
- ``internal/controller/imagepolicy_controller.go`` ``applyPolicy`` and
  ``imagerepository_controller.go`` ``scan``: tags are stored sorted byte-wise descending
  (since v1.0.0) after removing the ImageRepository ``exclusionList`` matches.

Iteration order, the part Go leaves to chance. Without ``filterTags`` the policer sees the
stored list, so ties are settled by that order. With ``filterTags`` (even an empty pattern)
the keys come out of a Go map in random order: a tie between keys may go either way and can
flip between reconciliations. A key collision (two tags, one extracted key) is settled by the
stored order: the later, byte-wise smaller tag overwrites. :meth:`ImagePolicy.evaluate`
reports every such case as ``ambiguous`` with the tied tags; its ``tag`` (and
:meth:`ImagePolicy.select`) is the choice of the current controller when iterating keys in
insertion order (first appearance in the stored, descending list): for numerical ties the
last key wins (equal replaces), for semver ties the first; within a key, the byte-wise
smallest tag.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from promote.errors import PolicyError
from promote.flux.expand import GoRegexp, GoRegexpError, Template, to_bytes, to_text
from promote.flux.numeric import GoFloatError, parse_float64
from promote.flux.semver_range import Constraints, SemverError, parse_version

__all__ = [
    "API_GROUP",
    "DEFAULT_EXCLUSION_LIST",
    "SUPPORTED_API_VERSIONS",
    "ImagePolicy",
    "ImageRepositoryRef",
    "Selection",
    "TagFilter",
    "filter_out_tags",
    "stored_order",
]

API_GROUP = "image.toolkit.fluxcd.io"
#: apiVersions whose ImagePolicy spec this model implements (identical specs)
SUPPORTED_API_VERSIONS = (f"{API_GROUP}/v1", f"{API_GROUP}/v1beta2")
#: ImageRepository ``GetExclusionList()`` default; a custom list *replaces* it
DEFAULT_EXCLUSION_LIST: tuple[str, ...] = (r"^.*\.sig$",)

Kind = Literal["semver", "alphabetical", "numerical"]
Order = Literal["asc", "desc"]

# Messages of the controller, kept verbatim so users can search for them.
_EMPTY_LIST = "version list argument cannot be empty"
_NO_SEMVER = "unable to determine latest version from provided list"


def stored_order(tags: Iterable[str]) -> list[str]:
    """Tags as the ImageRepository stores them: distinct, byte-wise descending.

    Python compares ``str`` by code point, which is the UTF-8 byte order Go uses.
    """
    return sorted(set(tags), reverse=True)


def filter_out_tags(tags: Iterable[str], exclusion_list: Sequence[str] | None = None) -> list[str]:
    """ImageRepository ``filterOutTags``: drop tags any exclusion pattern finds.

    ``None`` or an empty list means the default ``^.*\\.sig$`` (``GetExclusionList``).
    Raises :class:`PolicyError` for a pattern that does not compile.
    """
    patterns = tuple(exclusion_list) if exclusion_list else DEFAULT_EXCLUSION_LIST
    compiled: list[GoRegexp] = []
    for pattern in patterns:
        try:
            compiled.append(GoRegexp(pattern))
        except GoRegexpError as err:
            raise PolicyError(f"failed to compile regex {pattern}: {err}") from None
    return [tag for tag in tags if not any(rx.search(tag) for rx in compiled)]


class TagFilter:
    """``filterTags``: Go ``RegexFilter`` (compiled once; matching and extraction per tag)."""

    __slots__ = ("_regexp", "_template", "extract_template", "pattern")

    def __init__(self, pattern: str, extract: str = "") -> None:
        self.pattern = pattern
        self.extract_template = extract
        try:
            self._regexp = GoRegexp(pattern)
        except GoRegexpError as err:
            raise PolicyError(f"invalid regular expression pattern '{pattern}': {err}") from None
        self._template = Template(extract, self._regexp.subexp_names) if extract else None

    def matches(self, tag: str) -> bool:
        """Whether the pattern finds a match anywhere in ``tag`` (unanchored)."""
        return self._regexp.search(tag)

    def extract(self, tag: str) -> str | None:
        """The key Flux orders by: the expanded template (or the tag), ``None`` if no match."""
        data = to_bytes(tag)
        spans = self._regexp.find_submatch_index(data)
        if spans is None:
            return None
        if self._template is None:
            return tag
        return to_text(self._template.expand(data, spans))

    def apply(self, tags: Iterable[str]) -> dict[str, list[str]]:
        """Key -> every tag that produced it, in the order given (insertion-ordered).

        The controller keeps only the last tag of each list (later entries overwrite).
        """
        keyed: dict[str, list[str]] = {}
        for tag, key in self._regexp.extract_all(tags, self._template):
            bucket = keyed.get(key)
            if bucket is None:
                keyed[key] = [tag]
            else:
                bucket.append(tag)
        return keyed


@dataclass(frozen=True)
class ImageRepositoryRef:
    """``spec.imageRepositoryRef``; ``namespace`` defaults to the policy's namespace."""

    name: str
    namespace: str


@dataclass(frozen=True)
class Selection:
    """The outcome of one evaluation.

    ``tag``: what the controller writes to ``status.latestRef.tag`` (its most likely choice
    when ``ambiguous``), ``None`` when there is nothing to select. ``ambiguous``: the choice
    depends on iteration order (ties or key collisions at the top); ``candidates`` then lists
    every tag that could be chosen (byte-wise ascending), otherwise it is ``(tag,)`` (or
    ``()`` when ``tag`` is ``None``). ``warnings``: why, in words (also policy-level notes).
    """

    tag: str | None
    ambiguous: bool = False
    candidates: tuple[str, ...] = ()
    warnings: tuple[str, ...] = field(default_factory=tuple)


def _as_str(value: Any, where: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise PolicyError(f"{where} must be a string, got {type(value).__name__}")
    return value


def _as_mapping(value: Any, where: str) -> Mapping[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise PolicyError(f"{where} must be a mapping, got {type(value).__name__}")
    return value


def _parse_order(value: Any, where: str) -> Order:
    """``NewAlphabetical``/``NewNumerical`` after ``strings.ToUpper``: "", ASC or DESC."""
    text = _as_str(value, where).upper()
    if text in ("", "ASC"):
        return "asc"
    if text == "DESC":
        return "desc"
    raise PolicyError(
        f"invalid order argument provided: '{text}', must be one of: ASC, DESC ({where})"
    )


class ImagePolicy:
    """One ImagePolicy, validated once; evaluate it against tag lists as often as needed."""

    def __init__(
        self,
        *,
        kind: Kind,
        order: Order | None = None,
        range: str | None = None,
        pattern: str | None = None,
        extract: str | None = None,
        name: str = "",
        namespace: str = "",
        image_repository_ref: ImageRepositoryRef | None = None,
        digest_reflection_policy: str = "Never",
        suspend: bool = False,
        warnings: Sequence[str] = (),
    ) -> None:
        self.name = name
        self.namespace = namespace
        self.kind: Kind = kind
        self.order: Order | None = None if kind == "semver" else (order or "asc")
        self.range = range if kind == "semver" else None
        self.image_repository_ref = image_repository_ref
        self.digest_reflection_policy = digest_reflection_policy
        self.suspend = suspend
        self.warnings: tuple[str, ...] = tuple(warnings)
        self._constraints: Constraints | None = None
        if kind == "semver":
            try:
                self._constraints = Constraints.parse(range if range is not None else "")
            except SemverError as err:
                raise PolicyError(f"{self._label()}invalid policy: {err}") from None
        #: ``None`` when the spec has no ``filterTags`` (not the same as an empty pattern)
        self.pattern: str | None = pattern
        self.extract_template: str | None = None
        self.filter: TagFilter | None = None
        if pattern is not None:
            self.extract_template = extract or ""
            try:
                self.filter = TagFilter(pattern, self.extract_template)
            except PolicyError as err:
                raise PolicyError(f"{self._label()}failed to filter tags: {err}") from None

    # -- construction -------------------------------------------------------------------

    @classmethod
    def from_manifest(cls, doc: Mapping[str, Any]) -> ImagePolicy:
        """Build from a whole ImagePolicy document; :class:`PolicyError` if it is invalid."""
        if not isinstance(doc, Mapping):
            raise PolicyError(
                f"an ImagePolicy document must be a mapping, got {type(doc).__name__}"
            )
        api_version = doc.get("apiVersion")
        kind = doc.get("kind")
        metadata = _as_mapping(doc.get("metadata"), "metadata") or {}
        name = _as_str(metadata.get("name"), "metadata.name")
        namespace = _as_str(metadata.get("namespace"), "metadata.namespace")
        label = f"ImagePolicy {namespace}/{name}" if namespace else f"ImagePolicy {name}"
        if kind != "ImagePolicy":
            raise PolicyError(f"{label}: kind is {kind!r}, expected 'ImagePolicy'")
        if api_version not in SUPPORTED_API_VERSIONS:
            raise PolicyError(
                f"{label}: apiVersion {api_version!r} is not supported "
                f"(expected one of {', '.join(SUPPORTED_API_VERSIONS)})"
            )
        spec = _as_mapping(doc.get("spec"), f"{label}: spec")
        if spec is None:
            raise PolicyError(f"{label}: spec is missing")
        policy = cls.from_spec(spec, name=name, namespace=namespace)
        if policy.image_repository_ref is None:
            policy.warnings += (
                f"{label}: spec.imageRepositoryRef is missing (the CRD requires it)",
            )
        return policy

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any], name: str = "", namespace: str = "") -> ImagePolicy:
        """Build from a bare ``.spec`` mapping; :class:`PolicyError` if it is invalid."""
        label = _label(name, namespace)
        spec_map = _as_mapping(spec, f"{label}spec")
        if spec_map is None:
            raise PolicyError(f"{label}spec is missing")
        warnings: list[str] = []
        choice = _as_mapping(spec_map.get("policy"), f"{label}spec.policy") or {}
        semver = _as_mapping(choice.get("semver"), f"{label}spec.policy.semver")
        alphabetical = _as_mapping(choice.get("alphabetical"), f"{label}spec.policy.alphabetical")
        numerical = _as_mapping(choice.get("numerical"), f"{label}spec.policy.numerical")
        kind: Kind
        order: Order | None = None
        range_: str | None = None
        if semver is not None:
            kind = "semver"
            range_ = _as_str(semver.get("range"), f"{label}spec.policy.semver.range")
        elif alphabetical is not None:
            kind = "alphabetical"
            raw_order = alphabetical.get("order")
            order = _parse_order(raw_order, f"{label}spec.policy.alphabetical.order")
        elif numerical is not None:
            kind = "numerical"
            raw_order = numerical.get("order")
            order = _parse_order(raw_order, f"{label}spec.policy.numerical.order")
        else:
            raise PolicyError(
                f"{label}invalid policy: given ImagePolicyChoice object is invalid "
                "(set one of spec.policy.semver, .alphabetical or .numerical)"
            )
        chosen = [k for k in ("semver", "alphabetical", "numerical") if choice.get(k) is not None]
        if len(chosen) > 1:
            warnings.append(
                f"{label}spec.policy sets {', '.join(chosen)}; the controller uses only "
                f"{kind} (semver > alphabetical > numerical)"
            )
        if kind != "semver":
            raw = (alphabetical if kind == "alphabetical" else numerical) or {}
            raw_order = raw.get("order")
            if raw_order not in (None, "asc", "desc"):
                warnings.append(
                    f"{label}spec.policy.{kind}.order {raw_order!r}: the CRD admits only "
                    "'asc' or 'desc', so the API server would reject this manifest"
                )
        filter_tags = _as_mapping(spec_map.get("filterTags"), f"{label}spec.filterTags")
        pattern: str | None = None
        extract: str | None = None
        if filter_tags is not None:
            pattern = _as_str(filter_tags.get("pattern"), f"{label}spec.filterTags.pattern")
            extract = _as_str(filter_tags.get("extract"), f"{label}spec.filterTags.extract")
        ref_spec = _as_mapping(
            spec_map.get("imageRepositoryRef"), f"{label}spec.imageRepositoryRef"
        )
        ref: ImageRepositoryRef | None = None
        if ref_spec is not None:
            ref = ImageRepositoryRef(
                name=_as_str(ref_spec.get("name"), f"{label}spec.imageRepositoryRef.name"),
                namespace=_as_str(
                    ref_spec.get("namespace"), f"{label}spec.imageRepositoryRef.namespace"
                )
                or namespace,
            )
        reflection = _as_str(spec_map.get("digestReflectionPolicy"), "digestReflectionPolicy")
        suspend = spec_map.get("suspend", False)
        if not isinstance(suspend, bool):
            raise PolicyError(f"{label}spec.suspend must be a boolean")
        return cls(
            kind=kind,
            order=order,
            range=range_,
            pattern=pattern,
            extract=extract,
            name=name,
            namespace=namespace,
            image_repository_ref=ref,
            digest_reflection_policy=reflection or "Never",
            suspend=suspend,
            warnings=warnings,
        )

    # -- per tag --------------------------------------------------------------------------

    def matches(self, tag: str) -> bool:
        """Whether ``tag`` passes ``filterTags`` (always true without ``filterTags``)."""
        return True if self.filter is None else self.filter.matches(tag)

    def extract(self, tag: str) -> str | None:
        """The key ``tag`` is ordered by, or ``None`` when it does not pass the filter."""
        return tag if self.filter is None else self.filter.extract(tag)

    # -- evaluation -----------------------------------------------------------------------

    def select(self, tags: Iterable[str]) -> str | None:
        """The tag Flux writes to ``status.latestRef.tag``; ``None`` when nothing qualifies.

        Raises :class:`PolicyError` when the controller's evaluation fails (a numerical policy
        meeting a value Go's ``ParseFloat`` rejects).
        """
        return self.evaluate(tags).tag

    def evaluate(self, tags: Iterable[str]) -> Selection:
        """Like :meth:`select`, with ambiguity (order-dependent ties) and warnings."""
        stored = stored_order(tags)
        warnings = list(self.warnings)
        if not stored:
            warnings.append("no tags: the controller reports 'no tags in database'")
            return Selection(None, warnings=tuple(warnings))
        keyed = self._keyed(stored)
        if not keyed:
            warnings.append(
                f"no tag matches filterTags.pattern {self.pattern!r}: the controller reports "
                f"'{_EMPTY_LIST}' and keeps the previous latestRef"
            )
            return Selection(None, warnings=tuple(warnings))
        winners = self._winning_keys(list(keyed))
        if winners is None:
            warnings.append(
                f"no tag satisfies the semver range {self.range!r}: the controller reports "
                f"'{_NO_SEMVER}' and keeps the previous latestRef"
            )
            return Selection(None, warnings=tuple(warnings))
        chosen_key, tied_keys = winners
        chosen = keyed[chosen_key][-1]
        candidates = sorted({tag for key in tied_keys for tag in keyed[key]})
        ambiguous = len(candidates) > 1
        if ambiguous:
            warnings.extend(self._ambiguity_warnings(keyed, tied_keys, chosen))
        return Selection(
            chosen,
            ambiguous=ambiguous,
            candidates=tuple(candidates) if ambiguous else (chosen,),
            warnings=tuple(warnings),
        )

    def explain(self, tags: Iterable[str], tag: str) -> str | None:
        """Why Flux would not select ``tag`` from ``tags`` (``tag`` is added to them), or
        ``None`` when it would (unambiguously). Raises :class:`PolicyError` like :meth:`select`.
        """
        all_tags = {*tags, tag}
        key = self.extract(tag)
        if key is None:
            return f"tag {tag!r} does not match filterTags.pattern {self.pattern!r}"
        selection = self.evaluate(all_tags)
        if selection.tag == tag and not selection.ambiguous:
            return None
        if self.kind == "semver":
            try:
                version = parse_version(key)
            except SemverError:
                return f"key {key!r} of tag {tag!r} is not a version Flux can parse (X.Y.Z)"
            assert self._constraints is not None
            if not self._constraints.check(version):
                return f"version {key!r} of tag {tag!r} is outside the range {self.range!r}"
        if tag in selection.candidates and selection.ambiguous:
            others = ", ".join(c for c in selection.candidates if c != tag)
            return (
                f"tag {tag!r} ties with {others}; the controller's choice depends on iteration "
                f"order (most likely {selection.tag!r})"
            )
        winner = selection.tag
        assert winner is not None
        winner_key = self.extract(winner)
        if winner_key == key:
            return (
                f"tag {tag!r} has the same key {key!r} as {winner!r}; the controller keeps "
                f"the byte-wise smallest tag for a key, {winner!r}"
            )
        what = {"semver": "version", "alphabetical": "key", "numerical": "value"}[self.kind]
        better = "lower" if self.order == "desc" else "higher"
        return f"tag {winner!r} has a {better} {what} ({winner_key!r}) than {tag!r} ({key!r})"

    def admitted(self, tags: Iterable[str]) -> set[str]:
        """The tags ``filterTags`` admits (all of them without ``filterTags``): one pass."""
        return {tag for bucket in self._keyed(list(tags)).values() for tag in bucket}

    # -- internals ------------------------------------------------------------------------

    def _label(self) -> str:
        return _label(self.name, self.namespace)

    def _keyed(self, stored: list[str]) -> dict[str, list[str]]:
        if self.filter is None:
            return {tag: [tag] for tag in stored}
        return self.filter.apply(stored)

    def _winning_keys(self, keys: list[str]) -> tuple[str, list[str]] | None:
        """(the key the controller picks iterating ``keys`` in order, all keys tied with it)."""
        if self.kind == "alphabetical":
            best = min(keys) if self.order == "desc" else max(keys)
            return best, [best]
        if self.kind == "numerical":
            return self._numerical(keys)
        return self._semver(keys)

    def _numerical(self, keys: list[str]) -> tuple[str, list[str]]:
        values: list[float] = []
        for key in keys:
            try:
                values.append(parse_float64(key))
            except GoFloatError:
                raise PolicyError(
                    f"{self._label()}failed to parse invalid numeric value '{key}'"
                ) from None
        desc = self.order == "desc"
        # Port of Numerical.Latest: the first value is taken, then every value that is not
        # worse replaces it (equal values and NaN included).
        best_i = 0
        best = values[0]
        for i in range(1, len(values)):
            value = values[i]
            if (value > best) if desc else (value < best):
                continue
            best_i, best = i, value
        if any(math.isnan(v) for v in values) and len(values) > 1:
            return keys[best_i], list(keys)  # NaN compares false: any key can win
        optimum = min(values) if desc else max(values)
        return keys[best_i], [k for k, v in zip(keys, values, strict=True) if v == optimum]

    def _semver(self, keys: list[str]) -> tuple[str, list[str]] | None:
        assert self._constraints is not None
        check = self._constraints.check
        ranked: list[tuple[str, Any]] = []
        for key in keys:
            try:
                version = parse_version(key)
            except SemverError:
                continue  # unparseable tags are skipped silently
            if check(version):
                # Version.precedence() orders exactly like Masterminds' Compare
                ranked.append((key, version.precedence()))
        if not ranked:
            return None
        best_key, best = ranked[0]
        for key, rank in ranked:
            if rank > best:  # strict: the first of equal versions wins (GreaterThan)
                best_key, best = key, rank
        return best_key, [key for key, rank in ranked if rank == best]

    def _ambiguity_warnings(
        self, keyed: Mapping[str, list[str]], tied_keys: list[str], chosen: str
    ) -> list[str]:
        notes: list[str] = []
        if len(tied_keys) > 1:
            listed = ", ".join(repr(k) for k in sorted(tied_keys))
            if self.filter is not None:
                how = (
                    "filterTags puts keys in a Go map, so the controller may pick any of them "
                    "and can flip between reconciliations"
                )
            else:
                how = (
                    "the controller settles it by its stored order (byte-wise descending "
                    "since image-reflector-controller v1.0.0; registry order before)"
                )
            if self.kind == "numerical" and any(_is_nan(k) for k in tied_keys):
                what = "a NaN value makes every candidate a possible winner"
            else:
                what = f"{len(tied_keys)} keys tie at the top ({listed})"
            notes.append(f"{what}: {how}; most likely {chosen!r}")
        for key in tied_keys:
            sources = keyed[key]
            if len(sources) > 1:
                notes.append(
                    f"tags {', '.join(repr(t) for t in sorted(sources))} all extract to key "
                    f"{key!r}; the controller keeps the byte-wise smallest, "
                    f"{sorted(sources)[0]!r} (image-reflector-controller >= v1.0.0)"
                )
        return notes

    def __repr__(self) -> str:
        detail = f"range={self.range!r}" if self.kind == "semver" else f"order={self.order!r}"
        return (
            f"ImagePolicy(name={self.name!r}, namespace={self.namespace!r}, kind={self.kind!r}, "
            f"{detail}, pattern={self.pattern!r}, extract={self.extract_template!r})"
        )


def _label(name: str, namespace: str) -> str:
    if not name:
        return ""
    return f"ImagePolicy {namespace}/{name}: " if namespace else f"ImagePolicy {name}: "


def _is_nan(key: str) -> bool:
    try:
        return math.isnan(parse_float64(key))
    except GoFloatError:
        return False


@dataclass(frozen=True)
class RepositoryPolicy:
    """An ImagePolicy as it sees tags: through its ImageRepository's ``exclusionList``
    (empty: the default ``^.*\\.sig$``). Same ``select``/``evaluate`` as the policy."""

    policy: ImagePolicy
    exclusions: tuple[str, ...] = ()

    def _kept(self, tags: Iterable[str]) -> list[str]:
        return filter_out_tags(tags, list(self.exclusions) or None)

    def select(self, tags: Iterable[str]) -> str | None:
        return self.policy.select(self._kept(tags))

    def evaluate(self, tags: Iterable[str]) -> Selection:
        return self.policy.evaluate(self._kept(tags))

    def admitted(self, tags: Iterable[str]) -> set[str]:
        return self.policy.admitted(self._kept(tags))
