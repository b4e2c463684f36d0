"""Rollback on a real CNCF distribution registry, checked with the Flux ImagePolicy model.

History is seeded through the Distribution API exactly as promotions leave it (the same
bytes under ``production-v<X.Y.Z>-<sha>-<ts>`` and ``production``); the rollback then runs
through the pipeline (:func:`promote.pipeline.observe.observe`, :func:`~promote.pipeline.plan.plan`,
:func:`~promote.pipeline.apply.apply`) with the rollback's rule
(:class:`promote.pipeline.rollback.RollbackRequest`).
"""

from __future__ import annotations

import time
from typing import Any

import pytest
import semver

from promote import naming
from promote.errors import RefusedError
from promote.flux import ImagePolicy
from promote.pipeline import rollback
from promote.pipeline.apply import apply
from promote.pipeline.model import Listing, Observed, Plan, Source
from promote.pipeline.observe import observe
from promote.pipeline.plan import plan
from promote.reference import parse_repository
from promote.registry import Manifest
from testkit.registry import RegistryServer
from testkit.seed import Seeded, Seeder

NOW = int(time.time())
SHA_A = "a1b2c3d4e5f60718293a4b5c6d7e8f9012345678"
SHA_B = "b2c3d4e5f60718293a4b5c6d7e8f901234567890"
T_A = NOW - 7200
T_B = NOW - 3600
TAG_A = f"production-v2.0.0-{SHA_A[:7]}-{T_A}"
TAG_B = f"production-v2.0.1-{SHA_B[:7]}-{T_B}"


def flux() -> ImagePolicy:
    return ImagePolicy.from_spec(naming.flux_policy_spec("production"), name="production")


def release(seeder: Seeder, repo: str, seeded: Seeded, tag: str) -> None:
    """What a promotion leaves behind: the immutable tag and the floating one."""
    seeder.tag(repo, seeded.digest, tag)
    seeder.tag(repo, seeded.digest, "production")


def two_releases(server: RegistryServer, repo: str) -> tuple[Seeder, Seeded, Seeded]:
    """2.0.0 (image A) then 2.0.1 (image B), each first pushed as a staging build."""
    seeder = server.seeder()
    a = seeder.oci_image(repo, f"staging-{SHA_A[:7]}-{T_A - 60}", revision=SHA_A, layer_size=101)
    b = seeder.oci_index(repo, f"staging-{SHA_B[:7]}-{T_B - 60}", revision=SHA_B)
    release(seeder, repo, a, TAG_A)
    release(seeder, repo, b, TAG_B)
    return seeder, a, b


def run_rollback(
    client: Any, repo: str, server: RegistryServer, *, now: float = NOW, **kw: Any
) -> tuple[Plan, list[str], Observed]:
    request = rollback.RollbackRequest(repository=server.repository(repo), **kw)
    observed = observe(client, request)
    the_plan = plan(request, observed, now=now, policy=flux())
    written = apply(the_plan, client, observed.manifest, known_tags=observed.tags)
    return the_plan, written, observed


def digest_of(seeder: Seeder, repo: str, tag: str) -> str:
    return seeder.raw_manifest(repo, tag)[2]


@pytest.mark.registry
def test_default_rollback_restores_the_previous_digest_under_a_tag_flux_selects(
    any_registry: RegistryServer, repo_path: str, client_factory: Any
) -> None:
    seeder, a, b = two_releases(any_registry, repo_path)
    before = set(seeder.tags(repo_path))
    client = client_factory(any_registry, repo_path)

    the_plan, written, observed = run_rollback(client, repo_path, any_registry)

    new_tag = f"production-v2.0.0-{SHA_A[:7]}-{NOW}"
    assert the_plan.tag == new_tag
    assert written == [new_tag, "production"]
    assert observed.source.tag == TAG_A and observed.current.tag == TAG_B
    # the same bytes as 2.0.0, under the new tag and the floating one
    for name in (new_tag, "production"):
        data, media_type, digest = seeder.raw_manifest(repo_path, name)
        assert (data, media_type, digest) == (a.data, a.media_type, a.digest)
    # nothing deleted or rewritten
    after = seeder.tags(repo_path)
    assert set(after) == before | {new_tag}
    assert digest_of(seeder, repo_path, TAG_A) == a.digest
    assert digest_of(seeder, repo_path, TAG_B) == b.digest
    # Flux's numerical $ts policy now picks the rollback tag
    assert flux().select(after) == new_tag
    out = the_plan.outputs(written)
    assert out["digest"] == a.digest and out["previous-digest"] == b.digest
    assert out["previous-tag"] == TAG_B and out["source-tag"] == TAG_A
    assert out["version"] == "2.0.0" and out["short-sha"] == SHA_A[:7]
    assert out["changed"] == "true" and out["timestamp"] == str(NOW)
    # request budget: tags, HEAD current, HEAD previous, GET, PUT, tags, PUT; no blob
    stats = client.stats
    assert stats["blob"] == 0
    assert stats.as_dict().get("manifest-put") == 2
    # 7 + the two HEADs of the new immutable tag (before and after the floating write)
    assert stats.total(exclude=("ping", "token")) <= 9, stats.as_dict()


@pytest.mark.registry
def test_rollback_timestamp_is_newer_than_every_tag_even_with_a_slow_clock(
    registry: RegistryServer, repo_path: str, client_factory: Any
) -> None:
    two_releases(registry, repo_path)
    client = client_factory(registry, repo_path)
    the_plan, _, _ = run_rollback(client, repo_path, registry, now=T_A - 1000)
    assert the_plan.timestamp == T_B + 1
    assert flux().select(client.list_tags()) == the_plan.tag
    assert not any("itself a rollback" in w for w in the_plan.warnings)  # B is no rollback


@pytest.mark.registry
def test_rollback_skips_older_tags_of_the_current_digest(
    registry: RegistryServer, repo_path: str, client_factory: Any
) -> None:
    """History A, B, C where C re-tags B's digest: the target is A, not B."""
    seeder, a, b = two_releases(registry, repo_path)
    again = f"production-v2.0.1-{SHA_B[:7]}-{T_B + 10}"
    release(seeder, repo_path, b, again)
    client = client_factory(registry, repo_path)
    the_plan, _, observed = run_rollback(client, repo_path, registry)
    assert observed.source.tag == TAG_A
    assert digest_of(seeder, repo_path, "production") == a.digest
    assert the_plan.previous_tag == again
    assert any("itself a rollback" in w for w in the_plan.warnings)


@pytest.mark.registry
@pytest.mark.parametrize("by", ["tag", "digest"])
def test_explicit_rollback_to(
    registry: RegistryServer, repo_path: str, client_factory: Any, by: str
) -> None:
    seeder, a, b = two_releases(registry, repo_path)
    sha_c = "c" * 40
    c = seeder.oci_image(repo_path, None, revision=sha_c, layer_size=103)
    tag_c = f"production-v2.1.0-{sha_c[:7]}-{T_B + 100}"
    release(seeder, repo_path, c, tag_c)
    client = client_factory(registry, repo_path)
    target = TAG_A if by == "tag" else a.digest
    the_plan, written, observed = run_rollback(client, repo_path, registry, rollback_to=target)
    assert observed.source.tag == TAG_A
    assert the_plan.tag == f"production-v2.0.0-{SHA_A[:7]}-{NOW}"
    assert digest_of(seeder, repo_path, the_plan.tag) == a.digest
    assert digest_of(seeder, repo_path, "production") == a.digest
    assert the_plan.previous_digest == c.digest
    assert flux().select(seeder.tags(repo_path)) == the_plan.tag
    del b, written


@pytest.mark.registry
def test_rollback_to_the_current_release_is_a_no_op(
    registry: RegistryServer, repo_path: str, client_factory: Any
) -> None:
    seeder, _, b = two_releases(registry, repo_path)
    before = seeder.tags(repo_path)
    client = client_factory(registry, repo_path)
    the_plan, written, _ = run_rollback(client, repo_path, registry, rollback_to=b.digest)
    assert written == [] and not the_plan.changed
    assert the_plan.tag == TAG_B
    assert sorted(seeder.tags(repo_path)) == sorted(before)
    assert client.stats["manifest-put"] == 0


@pytest.mark.registry
def test_rerun_after_a_lost_floating_tag_completes_it(
    registry: RegistryServer, repo_path: str, client_factory: Any
) -> None:
    """A rollback that wrote its immutable tag but not ``production``: the re-run moves it."""
    seeder, a, b = two_releases(registry, repo_path)
    rolled = f"production-v2.0.0-{SHA_A[:7]}-{NOW}"
    seeder.tag(repo_path, a.digest, rolled)  # production still names b
    client = client_factory(registry, repo_path)
    the_plan, written, _ = run_rollback(client, repo_path, registry, rollback_to=rolled)
    assert written == ["production"]
    assert digest_of(seeder, repo_path, "production") == a.digest
    del b, the_plan


def _refused_without_write(
    registry: RegistryServer,
    repo_path: str,
    client_factory: Any,
    error: type[Exception],
    match: str,
    **kw: Any,
) -> None:
    seeder = registry.seeder()
    before = sorted(seeder.tags(repo_path))
    client = client_factory(registry, repo_path)
    request = rollback.RollbackRequest(repository=registry.repository(repo_path), **kw)
    with pytest.raises(error, match=match):
        observed = observe(client, request)
        plan(request, observed, now=NOW, policy=flux())
    assert sorted(seeder.tags(repo_path)) == before
    assert client.stats["manifest-put"] == 0


@pytest.mark.registry
def test_empty_history_is_refused_with_no_write(
    registry: RegistryServer, repo_path: str, client_factory: Any
) -> None:
    seeder = registry.seeder()
    seeder.oci_image(repo_path, f"staging-{SHA_A[:7]}-{T_A}", revision=SHA_A)
    _refused_without_write(
        registry, repo_path, client_factory, RefusedError, "no production-v<X.Y.Z>"
    )
    assert seeder.tags(repo_path) == [f"staging-{SHA_A[:7]}-{T_A}"]


@pytest.mark.registry
def test_single_release_has_no_earlier_digest(
    registry: RegistryServer, repo_path: str, client_factory: Any
) -> None:
    seeder = registry.seeder()
    a = seeder.oci_image(repo_path, None, revision=SHA_A)
    release(seeder, repo_path, a, TAG_A)
    release(seeder, repo_path, a, f"production-v2.0.0-{SHA_A[:7]}-{T_B}")
    _refused_without_write(
        registry, repo_path, client_factory, RefusedError, "no earlier production digest"
    )


@pytest.mark.registry
@pytest.mark.parametrize(
    ("target", "match"),
    [
        (f"production-v1.0.0-{'d' * 7}-{T_A - 5}", "does not exist"),
        ("sha256:" + "e" * 64, "never released to production"),
    ],
)
def test_unknown_target_is_refused_with_no_write(
    registry: RegistryServer, repo_path: str, client_factory: Any, target: str, match: str
) -> None:
    two_releases(registry, repo_path)
    _refused_without_write(
        registry, repo_path, client_factory, RefusedError, match, rollback_to=target
    )


@pytest.mark.registry
def test_staging_digest_never_released_is_refused(
    registry: RegistryServer, repo_path: str, client_factory: Any
) -> None:
    seeder, _, _ = two_releases(registry, repo_path)
    never = seeder.oci_image(repo_path, f"staging-{'f' * 7}-{NOW}", revision="f" * 40)
    _refused_without_write(
        registry,
        repo_path,
        client_factory,
        RefusedError,
        "never released",
        rollback_to=never.digest,
    )


# -- the pure plan ------------------------------------------------------------------------
OCI = "application/vnd.oci.image.manifest.v1+json"
MANIFEST = Manifest.from_bytes(b'{"schemaVersion":2,"mediaType":"' + OCI.encode() + b'"}', OCI)
REPO = parse_repository("ghcr.io/acme/backend")


def observed(tags: list[str], target: str, *, current_digest: str = "sha256:" + "0" * 64) -> Any:
    history = naming.immutable_tags("production", tags)
    parsed = naming.parse_immutable_tag("production", target)
    assert parsed is not None
    listing = Listing(
        tags=tuple(tags), history=tuple(history), current=history[-1], current_digest=current_digest
    )
    source = Source(MANIFEST, parsed.tag, parsed.short_sha, f"rollback target {parsed.tag}", parsed)
    return Observed(listing=listing, source=source)


def test_plan_refuses_a_timestamp_flux_would_never_select() -> None:
    obs = observed([TAG_A, TAG_B], TAG_A)
    request = rollback.RollbackRequest(repository=REPO, timestamp=T_B)
    with pytest.raises(RefusedError, match="Flux would never select"):
        plan(request, obs, now=NOW)
    ok = plan(rollback.RollbackRequest(repository=REPO, timestamp=T_B + 1), obs, now=NOW)
    assert ok.tag == f"production-v2.0.0-{SHA_A[:7]}-{T_B + 1}"


def _pinned(tag: str) -> ImagePolicy:
    """A policy pinned to one release (an incident pin in the GitOps repo)."""
    return ImagePolicy.from_spec(
        {"filterTags": {"pattern": f"^{tag}$"}, "policy": {"alphabetical": {}}}
    )


def test_plan_refuses_when_the_policy_would_not_select_the_new_tag() -> None:
    obs = observed([TAG_A, TAG_B], TAG_A)
    with pytest.raises(RefusedError, match="Flux would not select"):
        plan(rollback.RollbackRequest(repository=REPO), obs, now=NOW, policy=_pinned(TAG_B))


def test_plan_without_floating_tag() -> None:
    obs = observed([TAG_A, TAG_B], TAG_A)
    p = plan(rollback.RollbackRequest(repository=REPO, floating_tag=False), obs, now=NOW)
    assert [(s.action, s.tag) for s in p.steps] == [("put", p.tag)]
    assert p.bump == "rollback" and p.version == "2.0.0"
    assert semver.Version.parse(p.previous_version) == semver.Version(2, 0, 1)
    assert p.outputs()["tags"] == f"ghcr.io/acme/backend:{p.tag}"
