"""The pure plan: every decision a promotion makes, without a registry."""

from __future__ import annotations

import dataclasses
import json

import pytest
import semver

from promote import naming
from promote.errors import RefusedError
from promote.flux import ImagePolicy
from promote.pipeline.model import Listing, Observed, Source
from promote.pipeline.plan import plan
from promote.pipeline.promotion import Request
from promote.reference import parse_repository
from promote.registry import Manifest

OCI = "application/vnd.oci.image.manifest.v1+json"
MANIFEST = Manifest.from_bytes(
    b'{ "schemaVersion":2, "mediaType":"' + OCI.encode() + b'", "layers":[] }\n', OCI
)
REPO = parse_repository("ghcr.io/acme/backend")
NOW = 1_767_225_600.0
OLD = "0" * 64


def request(**kw: object) -> Request:
    base: dict[str, object] = {
        "repository": REPO,
        "source_tag": "staging-abc1234-1767000000",
        "source_digest": None,
    }
    base.update(kw)
    return Request(**base)  # type: ignore[arg-type]


def observed(
    tags: list[str],
    *,
    current_digest: str | None = None,
    promoted_before: tuple[str, ...] = (),
    floating_digest: str | None = None,
) -> Observed:
    history = naming.immutable_tags("production", tags)
    listing = Listing(
        tags=tuple(tags),
        history=tuple(history),
        current=history[-1] if history else None,
        current_digest=current_digest if history else None,
    )
    source = Source(
        MANIFEST,
        "staging-abc1234-1767000000",
        "abc1234",
        "source tag",
        promoted_before=promoted_before,
    )
    return Observed(listing=listing, source=source, floating_digest=floating_digest)


HISTORY = [
    "staging-abc1234-1767000000",
    "production",
    "production-v1.4.2-1111111-1766000000",
    "production-v1.10.0-2222222-1766500000",
]


def test_first_promotion_is_1_0_0() -> None:
    p = plan(request(), observed(["staging-abc1234-1767000000"]), now=NOW)
    assert p.tag == "production-v1.0.0-abc1234-1767225600"
    assert [(s.action, s.tag) for s in p.steps] == [("put", p.tag), ("put", "production")]
    assert p.previous_tag == "" and p.previous_digest == ""


def test_bump_from_highest_semver_and_outputs() -> None:
    p = plan(request(bump="minor"), observed(HISTORY, current_digest="sha256:" + OLD), now=NOW)
    assert p.version == "1.11.0"
    assert p.tag == "production-v1.11.0-abc1234-1767225600"
    out = p.outputs()
    assert out["tags"] == f"ghcr.io/acme/backend:{p.tag}\nghcr.io/acme/backend:production"
    assert out["image"] == f"ghcr.io/acme/backend@{MANIFEST.digest}"
    assert out["previous-tag"] == "production-v1.10.0-2222222-1766500000"
    assert out["previous-digest"] == "sha256:" + OLD
    assert out["changed"] == "true"
    assert json.loads(out["metadata"])["tag"] == p.tag
    assert out["flux-tag-pattern"] == naming.flux_tag_pattern("production")


def test_timestamp_newer_than_every_existing_tag_even_with_a_slow_clock() -> None:
    tags = [*HISTORY, "production-v1.10.1-3333333-1767999999"]
    p = plan(request(), observed(tags, current_digest="sha256:" + OLD), now=NOW)
    assert p.timestamp == 1_768_000_000


def test_floating_tag_can_be_disabled() -> None:
    p = plan(
        request(floating_tag=False), observed(HISTORY, current_digest="sha256:" + OLD), now=NOW
    )
    assert [s.tag for s in p.steps] == [p.tag]


def test_idempotent_when_already_current() -> None:
    obs = observed(
        HISTORY,
        current_digest=MANIFEST.digest,
        floating_digest=MANIFEST.digest,
        promoted_before=("production-v1.10.0-2222222-1766500000",),
    )
    p = plan(request(), obs, now=NOW)
    assert not p.changed
    assert p.tag == "production-v1.10.0-2222222-1766500000"
    assert p.outputs(written=[])["changed"] == "false"


def test_rerun_completes_a_floating_tag_left_behind() -> None:
    obs = observed(HISTORY, current_digest=MANIFEST.digest, floating_digest="sha256:" + OLD)
    p = plan(request(), obs, now=NOW)
    assert [(s.action, s.tag) for s in p.steps if s.action == "put"] == [("put", "production")]


def test_promoted_before_but_not_current_points_to_rollback() -> None:
    obs = observed(
        HISTORY,
        current_digest="sha256:" + OLD,
        promoted_before=("production-v1.4.2-1111111-1766000000",),
    )
    with pytest.raises(RefusedError, match="command: rollback"):
        plan(request(), obs, now=NOW)


def test_explicit_version_and_timestamp_rules() -> None:
    obs = observed(HISTORY, current_digest="sha256:" + OLD)
    with pytest.raises(RefusedError, match="not greater"):  # judged after reading: exit 3
        plan(request(version=semver.Version(1, 10, 0)), obs, now=NOW)
    with pytest.raises(RefusedError, match="Flux would never select"):
        plan(request(timestamp=1_766_500_000), obs, now=NOW)
    p = plan(request(version=semver.Version(2, 0, 0), timestamp=1_766_500_001), obs, now=NOW)
    assert p.tag == "production-v2.0.0-abc1234-1766500001"


def _pinned(tag: str) -> ImagePolicy:
    """A policy pinned to one release (an incident pin in the GitOps repo)."""
    return ImagePolicy.from_spec(
        {"filterTags": {"pattern": f"^{tag}$"}, "policy": {"alphabetical": {}}}
    )


def test_refuses_when_flux_would_not_select_the_new_tag() -> None:
    obs = observed(HISTORY, current_digest="sha256:" + OLD)
    with pytest.raises(RefusedError, match="Flux would not select"):
        plan(request(), obs, now=NOW, policy=_pinned(HISTORY[-1]))


def test_plan_is_plain_data() -> None:
    p = plan(request(), observed(HISTORY, current_digest="sha256:" + OLD), now=NOW)
    data = json.loads(json.dumps(dataclasses.asdict(p)))
    assert data["steps"][0] == {"action": "put", "tag": p.tag, "reason": "new immutable tag"}


def test_default_policy_ignores_signature_tags_and_selects_the_new_tag() -> None:
    policy = ImagePolicy.from_spec(naming.flux_policy_spec("production"))
    tags = [*HISTORY, "sha256-" + "a" * 64 + ".sig"]
    p = plan(request(), observed(tags, current_digest="sha256:" + OLD), now=NOW, policy=policy)
    assert p.tag.startswith("production-v1.10.1-")


def test_referrers_index_tags_are_never_candidates() -> None:
    """``sha256-<hex>`` (promotion records): the default policy never sees them; a policy
    under which one would win is refused before any write, naming it."""
    referrers = "sha256-" + "b" * 64
    tags = [*HISTORY, referrers]
    policy = ImagePolicy.from_spec(naming.flux_policy_spec("production"))
    p = plan(request(), observed(tags, current_digest="sha256:" + OLD), now=NOW, policy=policy)
    assert p.tag.startswith("production-v1.10.1-")
    loose = ImagePolicy.from_spec(
        {"filterTags": {"pattern": "^(production-v|sha256-)"}, "policy": {"alphabetical": {}}}
    )
    with pytest.raises(RefusedError, match=f"admits the referrers tag.*{referrers}"):
        plan(request(), observed(tags, current_digest="sha256:" + OLD), now=NOW, policy=loose)


def test_the_referrers_tag_this_promotion_creates_is_checked_too() -> None:
    """No ``sha256-*`` tag exists yet, but the promotion record (or an ``actions/attest``
    step) creates ``sha256-<promoted hex>`` right after the tags: a policy under which that
    tag would win is refused before any write, not discovered by Flux afterwards."""
    loose = ImagePolicy.from_spec(
        {
            "filterTags": {
                "pattern": "^(?:production-v[0-9.]+-[0-9a-f]+-|sha256-)(?P<ts>.+)$",
                "extract": "$ts",
            },
            "policy": {"alphabetical": {}},
        }
    )
    created = "sha256-" + MANIFEST.digest.split(":", 1)[1]
    assert created[7] > "1"  # the hex sorts after every timestamp: the record's tag would win
    assert not any(naming.is_referrers_tag(t) for t in HISTORY)
    with pytest.raises(RefusedError, match=f"admits the referrers tag.*{created}"):
        plan(request(), observed(HISTORY, current_digest="sha256:" + OLD), now=NOW, policy=loose)
    # the project's own policy never admits it
    policy = ImagePolicy.from_spec(naming.flux_policy_spec("production"))
    p = plan(request(), observed(HISTORY, current_digest="sha256:" + OLD), now=NOW, policy=policy)
    assert p.tag.startswith("production-v1.10.1-")


def test_refuses_a_tie_flux_would_break_by_map_order() -> None:
    """A policy keyed on the major version only: every 1.x tag collides on the key "1"."""
    policy = ImagePolicy.from_spec(
        {
            "filterTags": {"pattern": r"^production-v(?P<major>[0-9]+)\.", "extract": "$major"},
            "policy": {"numerical": {"order": "asc"}},
        }
    )
    obs = observed(HISTORY, current_digest="sha256:" + OLD)
    with pytest.raises(RefusedError, match=r"would not select"):
        plan(request(), obs, now=NOW, policy=policy)
    # the new tag would win, but only by iteration order: refused as a tie
    obs = observed([*HISTORY, "production-v2.0.0-rc"], current_digest="sha256:" + OLD)
    with pytest.raises(RefusedError, match=r"depends on map order"):
        plan(request(bump="major"), obs, now=NOW, policy=policy)
