"""``command: promote`` end to end in-process, against a real CNCF distribution registry.

Each test seeds its own repository through the Distribution API (deliberately
non-canonical JSON), runs the action engine exactly as ``entrypoint.py`` does, and checks
the registry itself: tags, digests and the raw bytes under every new tag.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from testkit.engine import EngineRun as Run
from testkit.engine import engine as run_action
from testkit.registry import RegistryServer
from testkit.seed import DEFAULT_PLATFORMS, Seeder

SHA = "3f2c1ab9d0e4c7f1a2b3c4d5e6f708192a3b4c5d"
NOW = int(time.time())
STAGING = f"staging-{SHA[:7]}-{NOW - 600}"


def promote(tmp_path: Path, server: RegistryServer, repo: str, **inputs: str) -> Run:
    raw = {"image": f"{server.host}/{repo}", **inputs}
    if server.username:
        raw.setdefault("username", server.username)
        raw.setdefault("password", server.password or "")
    return run_action(tmp_path, raw)


def seed_history(seeder: Seeder, repo: str, versions: list[str]) -> list[str]:
    """Earlier production releases, oldest first; the last one is also `production`."""
    digests = []
    for i, version in enumerate(versions):
        sha = f"{i + 1:07x}"
        old = seeder.oci_image(repo, None, revision=sha, layer_size=100 + i)
        seeder.tag(repo, old.digest, f"production-v{version}-{sha}-{NOW - 86400 + i}")
        seeder.tag(repo, old.digest, "production")
        digests.append(old.digest)
    return digests


@pytest.mark.registry
@pytest.mark.parametrize("kind", ["oci-image", "oci-index", "docker-image", "docker-list"])
def test_promotes_every_manifest_kind_byte_identically(
    tmp_path: Path, any_registry: RegistryServer, repo_path: str, kind: str, clients: list[Any]
) -> None:
    seeder = any_registry.seeder()
    history = seed_history(seeder, repo_path, ["1.4.2", "1.10.0"])
    seeded = seeder.image(kind, repo_path, STAGING)

    # the tag writes alone (the record's requests: tests/frontdoor/commands/test_record.py)
    run = promote(tmp_path, any_registry, repo_path, **{"source-tag": STAGING, "record": "false"})

    assert run.status == 0, run.log
    tag = run.outputs["tag"]
    assert tag.startswith(f"production-v1.10.1-{SHA[:7]}-")
    for name in (tag, "production"):
        data, media_type, digest = seeder.raw_manifest(repo_path, name)
        assert data == seeded.data, f"{name}: bytes differ from the source"
        assert (media_type, digest) == (seeded.media_type, seeded.digest)
    out = run.outputs
    assert out["digest"] == seeded.digest
    assert out["image"] == f"{any_registry.host}/{repo_path}@{seeded.digest}"
    assert out["tags"].splitlines() == [
        f"{any_registry.host}/{repo_path}:{tag}",
        f"{any_registry.host}/{repo_path}:production",
    ]
    assert (out["version"], out["short-sha"], out["changed"]) == ("1.10.1", SHA[:7], "true")
    assert out["previous-digest"] == history[-1]
    assert out["previous-tag"].startswith("production-v1.10.0-")
    assert out["source-tag"] == STAGING
    assert json.loads(out["metadata"])["digest"] == seeded.digest
    if kind in {"oci-index", "docker-list"}:
        assert out["platforms"] == ",".join(DEFAULT_PLATFORMS)
    else:
        assert out["platforms"] == ""
    # the request budget: no blob, at most 8 requests besides the ping and auth
    stats = clients[0].stats
    assert stats["blob"] == 0
    assert stats.total(exclude=("ping", "token")) <= 8, stats.as_dict()
    assert stats.as_dict().get("manifest-put") == 2
    assert f"| Source | `{STAGING}` → `{seeded.digest}` |" in run.summary


@pytest.mark.registry
def test_exact_request_sequence_for_a_single_image(
    tmp_path: Path, registry: RegistryServer, repo_path: str, clients: list[Any]
) -> None:
    seeder = registry.seeder()
    seed_history(seeder, repo_path, ["2.0.0"])
    seeder.oci_image(repo_path, STAGING)
    run = promote(tmp_path, registry, repo_path, **{"source-tag": STAGING, "record": "false"})
    assert run.status == 0, run.log
    kinds = [r.kind for r in clients[0].stats.records if r.kind not in {"ping", "token"}]
    assert kinds == [
        "manifest-get",
        "tags",
        "manifest-head",
        "manifest-put",
        "tags",
        "manifest-head",  # the immutable tag still names this digest
        "manifest-put",
        "manifest-head",  # ... and still does after the floating write
    ]


@pytest.mark.registry
def test_idempotent_rerun_and_dry_run_write_nothing(
    tmp_path: Path, registry: RegistryServer, repo_path: str, clients: list[Any]
) -> None:
    seeder = registry.seeder()
    seed_history(seeder, repo_path, ["1.0.0"])
    seeded = seeder.oci_image(repo_path, STAGING)

    dry = promote(tmp_path, registry, repo_path, **{"source-tag": STAGING, "dry-run": "true"})
    assert dry.status == 0, dry.log
    assert dry.outputs["tag"].startswith("production-v1.0.1-")
    assert "dry run" in dry.summary
    before = sorted(seeder.tags(repo_path))
    assert not any(t.startswith("production-v1.0.1") for t in before)
    assert clients[0].stats["manifest-put"] == 0

    first = promote(tmp_path, registry, repo_path, **{"source-tag": STAGING})
    assert first.status == 0 and first.outputs["changed"] == "true", first.log
    after_first = sorted(seeder.tags(repo_path))

    again = promote(tmp_path, registry, repo_path, **{"source-tag": STAGING})
    assert again.status == 0, again.log
    assert again.outputs["changed"] == "false"
    assert again.outputs["tags"] == ""
    assert again.outputs["tag"] == first.outputs["tag"]
    assert again.outputs["digest"] == seeded.digest
    assert clients[-1].stats["manifest-put"] == 0
    assert sorted(seeder.tags(repo_path)) == after_first


@pytest.mark.registry
def test_first_promotion_and_digest_source(
    tmp_path: Path, registry: RegistryServer, repo_path: str
) -> None:
    seeder = registry.seeder()
    seeded = seeder.oci_image(repo_path, None, revision=SHA)
    run = promote(
        tmp_path, registry, repo_path, **{"source-digest": seeded.digest, "version": "v3.1.0"}
    )
    assert run.status == 0, run.log
    assert run.outputs["tag"].startswith(f"production-v3.1.0-{SHA[:7]}-")  # sha from the annotation
    assert run.outputs["previous-tag"] == "" and run.outputs["previous-digest"] == ""


@pytest.mark.registry
def test_sha_from_config_label_costs_one_blob_read(
    tmp_path: Path, registry: RegistryServer, repo_path: str, clients: list[Any]
) -> None:
    seeder = registry.seeder()
    seeded = seeder.docker_image(repo_path, None, label_revision=SHA.upper())
    run = promote(tmp_path, registry, repo_path, **{"source-digest": seeded.digest})
    assert run.status == 0, run.log
    assert run.outputs["short-sha"] == SHA[:7]
    assert clients[0].stats["blob"] == 1


def _guard_cases() -> list[tuple[str, dict[str, str], str]]:
    return [
        ("latest", {"source-tag": "latest"}, "must be a staging-* tag"),
        ("floating", {"source-tag": "staging"}, "must be a staging-* tag"),
        ("same env", {"source-tag": STAGING, "target-env": "staging"}, "is a build environment"),
        ("build env", {"source-tag": STAGING, "target-env": "develop"}, "is a build environment"),
        (
            "same release env",
            {"source-tag": STAGING, "source-env": "qa", "target-env": "qa"},
            "must differ from source-env",
        ),
        ("unknown tag", {"source-tag": "staging-0000000-1700000000"}, "not found"),
        (
            "digest mismatch",
            {"source-tag": STAGING, "source-digest": "sha256:" + "1" * 64},
            "not the given",
        ),
        ("version not greater", {"source-tag": STAGING, "version": "1.4.2"}, "not greater"),
        ("old timestamp", {"source-tag": STAGING, "timestamp": str(NOW - 86400)}, "never select"),
        ("bad bump", {"source-tag": STAGING, "bump": "huge"}, "bump"),
        ("bad boolean", {"source-tag": STAGING, "floating-tag": "yes"}, "true or false"),
        ("tag in image", {"source-tag": STAGING, "image": "IMAGE:latest"}, "tag"),
        ("prerelease", {"source-tag": STAGING, "version": "2.0.0-rc.1"}, "X.Y.Z"),
        ("no source", {}, "source-tag"),
    ]


@pytest.mark.registry
@pytest.mark.parametrize(
    ("name", "inputs", "message"), _guard_cases(), ids=[c[0] for c in _guard_cases()]
)
def test_guards_exit_nonzero_with_one_error_and_no_write(
    tmp_path: Path,
    registry: RegistryServer,
    repo_path: str,
    name: str,
    inputs: dict[str, str],
    message: str,
) -> None:
    seeder = registry.seeder()
    seed_history(seeder, repo_path, ["1.4.2"])
    seeder.oci_image(repo_path, STAGING)
    before = sorted(seeder.tags(repo_path))
    if "image" in inputs:
        inputs = {
            **inputs,
            "image": inputs["image"].replace("IMAGE", f"{registry.host}/{repo_path}"),
        }
    run = promote(tmp_path, registry, repo_path, **inputs)
    assert run.status != 0
    assert len(run.errors) == 1 and message in run.errors[0], run.log
    assert "Traceback" not in run.log
    assert run.outputs == {}
    assert sorted(seeder.tags(repo_path)) == before


@pytest.mark.registry
def test_promoted_before_but_not_current_is_refused(
    tmp_path: Path, registry: RegistryServer, repo_path: str
) -> None:
    seeder = registry.seeder()
    old = seeder.oci_image(repo_path, "staging-aaaaaaa-1700000000")
    first = promote(tmp_path, registry, repo_path, **{"source-tag": "staging-aaaaaaa-1700000000"})
    assert first.status == 0, first.log
    seeder.oci_image(repo_path, STAGING, layer_size=999)
    second = promote(tmp_path, registry, repo_path, **{"source-tag": STAGING})
    assert second.status == 0, second.log
    before = sorted(seeder.tags(repo_path))
    again = promote(tmp_path, registry, repo_path, **{"source-tag": "staging-aaaaaaa-1700000000"})
    assert again.status != 0
    assert old.digest in again.errors[0] and "command: rollback" in again.errors[0]
    assert sorted(seeder.tags(repo_path)) == before


@pytest.mark.registry
def test_secrets_never_printed(
    tmp_path: Path, token_registry: RegistryServer, repo_path: str
) -> None:
    seeder = token_registry.seeder()
    seeder.oci_image(repo_path, STAGING)
    run = promote(tmp_path, token_registry, repo_path, **{"source-tag": STAGING})
    assert run.status == 0, run.log
    issued = list(token_registry.token_service.tokens)  # type: ignore[attr-defined]
    assert issued, "the token service issued no token"
    body = run.log.split("\n")
    masked = [ln for ln in body if ln.startswith("::add-mask::")]
    rest = "\n".join(ln for ln in body if not ln.startswith("::add-mask::"))
    everything = rest + json.dumps(run.outputs) + run.summary
    for secret in [token_registry.password or "", *issued]:
        assert secret and secret not in everything
    assert f"::add-mask::{token_registry.password}" in masked


@pytest.mark.registry
def test_flux_model_refuses_a_tag_the_repo_policy_would_not_select(
    tmp_path: Path, registry: RegistryServer, repo_path: str
) -> None:
    """A GitOps repo whose production policy is pinned to an old release (an incident pin)."""
    seeder = registry.seeder()
    seed_history(seeder, repo_path, ["1.0.0"])
    seeder.oci_image(repo_path, STAGING)
    pinned = next(t for t in seeder.tags(repo_path) if t.startswith("production-v"))
    gitops = tmp_path / "gitops"
    gitops.mkdir()
    (gitops / "policy.yaml").write_text(
        "apiVersion: image.toolkit.fluxcd.io/v1\nkind: ImagePolicy\n"
        "metadata: {name: backend-production, namespace: flux-system}\n"
        "spec:\n  imageRepositoryRef: {name: backend}\n"
        f"  filterTags: {{pattern: '^{pinned}$', extract: '$0'}}\n"
        "  policy: {alphabetical: {order: asc}}\n"
    )
    before = sorted(seeder.tags(repo_path))
    run = promote(
        tmp_path,
        registry,
        repo_path,
        **{
            "source-tag": STAGING,
            "gitops-path": str(gitops),
            "policy": "flux-system:backend-production",
        },
    )
    assert run.status != 0
    assert "Flux would not select" in run.errors[0] and pinned in run.errors[0], run.log
    assert sorted(seeder.tags(repo_path)) == before


@pytest.mark.registry
@pytest.mark.parametrize(
    ("config", "config_type"),
    [
        (b"\x00\x01 not json", "application/vnd.example.blob"),
        (b'["a JSON list"]', "application/vnd.oci.image.config.v1+json"),
        (b'{"config": "not an object"}', "application/vnd.oci.image.config.v1+json"),
    ],
)
def test_artifact_without_a_readable_revision_is_one_clear_error(
    tmp_path: Path, registry: RegistryServer, repo_path: str, config: bytes, config_type: str
) -> None:
    """No commit sha anywhere and a config that is not an image config (an OCI artifact):
    a refusal (exit 3: the registry was read) naming commit-sha, not an internal error;
    nothing written."""
    seeder = registry.seeder()
    config_digest = seeder.push_blob(repo_path, config)
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": config_type, "digest": config_digest, "size": len(config)},
        "layers": [],
    }
    data = json.dumps(manifest).encode()
    seeder.push_manifest(repo_path, "staging-artifact", data, manifest["mediaType"])
    run = promote(tmp_path, registry, repo_path, **{"source-tag": "staging-artifact"})
    assert run.status == 3, run.log  # found after reading the registry: a refusal
    (error,) = run.errors
    assert "commit-sha" in error and "internal error" not in error
    assert seeder.tags(repo_path) == ["staging-artifact"]


@pytest.mark.registry
def test_a_tag_moved_since_the_plan_is_refused_before_any_write(
    tmp_path: Path, registry: RegistryServer, repo_path: str, clients: list[Any]
) -> None:
    """promote.yml's gated job passes the planned digest with the tag: if the tag was moved
    while the run waited for approval, the promotion stops with one error (exit 1, the
    registry row of the README's exit-code table) before anything is written."""
    seeder = registry.seeder()
    seed_history(seeder, repo_path, ["1.4.2"])
    planned = seeder.oci_image(repo_path, STAGING)
    plan = promote(tmp_path, registry, repo_path, **{"source-tag": STAGING, "dry-run": "true"})
    assert plan.status == 0, plan.log
    assert plan.outputs["digest"] == planned.digest
    moved = seeder.oci_image(repo_path, STAGING, layer_size=999)
    assert moved.digest != planned.digest
    before = sorted(seeder.tags(repo_path))

    run = promote(
        tmp_path,
        registry,
        repo_path,
        **{"source-tag": STAGING, "source-digest": planned.digest},
    )

    assert run.status == 1, run.log
    assert run.errors == [
        f"::error::source-tag {STAGING} now names {moved.digest}, not the given source-digest "
        f"{planned.digest}; nothing was written"
    ], run.log
    assert "Traceback" not in run.log
    assert run.outputs == {}
    assert clients[-1].stats["manifest-put"] == 0
    assert sorted(seeder.tags(repo_path)) == before
    # The same request with the digest the tag names now goes through: the check is exact.
    again = promote(
        tmp_path,
        registry,
        repo_path,
        **{"source-tag": STAGING, "source-digest": moved.digest},
    )
    assert again.status == 0, again.log
    assert again.outputs["digest"] == moved.digest


# -- messages that misled (issue 17, "smaller, same cause"): each failed first -------------------
@pytest.mark.registry
def test_an_upper_case_build_tag_sha_is_named_as_the_problem(
    tmp_path: Path, registry: RegistryServer, repo_path: str
) -> None:
    seeder = registry.seeder()
    seeder.oci_image(repo_path, "staging-ABCDEF0-1700000000")  # no revision anywhere
    run = promote(tmp_path, registry, repo_path, **{"source-tag": "staging-ABCDEF0-1700000000"})
    assert run.status == 3, run.log
    (error,) = run.errors
    assert "the source tag staging-ABCDEF0-1700000000 has an upper-case sha" in error


@pytest.mark.registry
def test_a_bad_revision_label_is_named_not_blamed_on_the_commit_sha_input(
    tmp_path: Path, registry: RegistryServer, repo_path: str
) -> None:
    seeder = registry.seeder()
    seeder.oci_image(repo_path, "staging-build", label_revision="not-a-sha")
    run = promote(tmp_path, registry, repo_path, **{"source-tag": "staging-build"})
    assert run.status == 3, run.log  # found after reading the registry, not a bad input
    (error,) = run.errors
    assert "the image config label org.opencontainers.image.revision is 'not-a-sha'" in error
    assert "commit sha 'not-a-sha' must be" not in error


@pytest.mark.registry
def test_a_refused_timestamp_is_exit_3_as_documented(
    tmp_path: Path, registry: RegistryServer, repo_path: str
) -> None:
    """docs/rollback.md: an explicit timestamp not newer than every tag is a refusal (3)."""
    seeder = registry.seeder()
    seed_history(seeder, repo_path, ["1.0.0"])
    seeder.oci_image(repo_path, STAGING)
    older = str(NOW - 86400 - 10)
    run = promote(tmp_path, registry, repo_path, **{"source-tag": STAGING, "timestamp": older})
    assert run.status == 3, run.log
    assert "is not newer than the newest existing tag" in run.errors[0]
