"""One grammar through all three environments (issue: build tags).

build-tags makes the develop/staging tag; the example GitOps repo's ImagePolicy for that
env selects it (Flux model); a staging build tag is accepted as a promotion source and the
production tag it yields is selected by the production ImagePolicy.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from promote.flux.source import load_policy
from testkit.engine import engine as run_action
from testkit.registry import RegistryServer

ROOT = Path(__file__).resolve().parents[3]
GITOPS = ROOT / "examples" / "gitops"
SHA = "0a1b2c3d4e5f60718293a4b5c6d7e8f901234567"


def build_tags(
    tmp_path: Path, env: str, ts: int, image: str = "ghcr.io/acme/backend"
) -> dict[str, str]:
    run = run_action(
        tmp_path,
        {
            "command": "build-tags",
            "env": env,
            "commit-sha": SHA,
            "timestamp": str(ts),
            "image": image,
        },
    )
    assert run.status == 0, run.log
    return run.outputs


@pytest.mark.parametrize("env", ["develop", "staging"])
@pytest.mark.parametrize("app", ["backend", "frontend"])
def test_build_tag_selected_by_its_env_policy_only(tmp_path: Path, env: str, app: str) -> None:
    now = int(time.time())
    new = build_tags(tmp_path, env, now)["tag"]
    older = build_tags(tmp_path, env, now - 3600)["tag"]
    other_env = "staging" if env == "develop" else "develop"
    foreign = build_tags(tmp_path, other_env, now + 60)["tag"]  # newer, but another env
    tags = [
        older,
        new,
        foreign,
        env,
        "latest",
        "production",
        f"production-v1.0.0-{SHA[:7]}-{now + 120}",
    ]
    own = load_policy(GITOPS, f"flux-system:{app}-{env}")
    assert own.select(tags) == new
    assert load_policy(GITOPS, f"flux-system:{app}-{other_env}").select(tags) == foreign
    assert load_policy(GITOPS, f"flux-system:{app}-production").select(tags) == tags[-1]


@pytest.mark.registry
def test_staging_build_tag_is_a_promotion_source_and_production_selects_the_result(
    tmp_path: Path, registry: RegistryServer, repo_path: str
) -> None:
    image = f"{registry.host}/{repo_path}"
    staging_tag = build_tags(tmp_path, "staging", int(time.time()) - 60, image)["tag"]
    seeded = registry.seeder().oci_image(repo_path, staging_tag)
    run = run_action(tmp_path, {"image": image, "source-tag": staging_tag})
    assert run.status == 0, run.log
    assert run.outputs["digest"] == seeded.digest
    assert run.outputs["short-sha"] == SHA[:7]  # taken from the build tag, no commit-sha input
    tags = registry.seeder().tags(repo_path)
    assert load_policy(GITOPS, "flux-system:backend-production").select(tags) == run.outputs["tag"]
    assert load_policy(GITOPS, "flux-system:backend-staging").select(tags) == staging_tag
