#!/usr/bin/env python3
"""`make demo`: a whole promotion on a throwaway CNCF distribution registry on loopback.

1. start `docker-registry` on a free 127.0.0.1 port (temporary storage, deleted at the end);
2. seed `acme/backend`: three earlier production releases and a 3-platform staging index
   built from commit 3f2c1ab (with deliberately non-canonical manifest JSON);
3. run the `promote` console script exactly as a user would (first a dry run, then for real,
   then once more to show it is idempotent);
4. print the outputs, every tag with its digest, and the tag each backend ImagePolicy of
   examples/gitops/ would select from the registry's tags (the Flux model).

The one-minute version: the registry is deleted at the end. `make lab` (docs/lab.md) is the
whole chapter — builds, the automation, verification, both rollbacks — with a registry and a
GitOps repository that stay up.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from testkit.registry import RegistryServer  # noqa: E402

if TYPE_CHECKING:
    from promote.flux.gitops import PolicyEntry

REPO = "acme/backend"
SHA = "3f2c1ab9d0e4c7f1a2b3c4d5e6f708192a3b4c5d"


def banner(text: str) -> None:
    print(f"\n\033[1m== {text}\033[0m", flush=True)


def promote(image: str, *args: str, command: str = "promote") -> int:
    cmd = [str(ROOT / ".venv" / "bin" / "promote"), command, "--image", image, *args]
    print("$ " + " ".join(["promote", *cmd[1:]]), flush=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("INPUT_", "GITHUB_"))}
    return subprocess.run(cmd, env=env, check=False).returncode


def backend_policies(entries: list[PolicyEntry]) -> list[PolicyEntry]:
    """The ImagePolicies that read the backend's ImageRepository: the frontend's policies
    would say nothing true about these (backend) tags."""
    out = []
    for entry in entries:
        ref = entry.obj.spec.get("imageRepositoryRef")
        if isinstance(ref, dict) and ref.get("name") == REPO.rsplit("/", 1)[-1]:
            out.append(entry)
    return out


def main() -> int:
    now = int(time.time())
    with RegistryServer("none") as registry:
        seeder = registry.seeder()
        image = f"{registry.host}/{REPO}"
        banner(f"throwaway registry at {registry.url}; seeding {image}")
        for i, (version, sha) in enumerate(
            [("1.3.0", "1a2b3c4"), ("1.4.0", "5d6e7f8"), ("1.4.2", "9a8b7c6")]
        ):
            old = seeder.oci_image(REPO, None, revision=sha * 5, layer_size=2048 + i)
            tag = f"production-v{version}-{sha}-{now - 86400 * (3 - i)}"
            seeder.tag(REPO, old.digest, tag)
            seeder.tag(REPO, old.digest, "production")
        staging_tag = f"staging-{SHA[:7]}-{now - 600}"
        staged = seeder.oci_index(REPO, staging_tag, revision=SHA)
        print(f"staging: {staging_tag} -> {staged.digest} (OCI index, 3 platforms)")

        banner("dry run: the whole plan and every output, nothing written")
        if promote(image, "--source-tag", staging_tag, "--dry-run", "true") != 0:
            return 1
        banner("promote: re-tag the staging digest, no rebuild")
        if promote(image, "--source-tag", staging_tag) != 0:
            return 1
        banner("again: idempotent, changed=false, nothing written")
        if promote(image, "--source-tag", staging_tag) != 0:
            return 1

        banner("trace: what is in production, where it came from, what to roll back to")
        if promote(image, "--json", command="trace") != 0:
            return 1

        banner("registry tags (sha256-<hex>: the promotion record's referrers index)")
        tags = sorted(seeder.tags(REPO))
        for tag in tags:
            _, _, digest = seeder.raw_manifest(REPO, tag)
            print(f"  {tag:45} {digest}")

        banner("what Flux would select (examples/gitops backend ImagePolicies over these tags)")
        from promote.flux.gitops import find_policies
        from promote.flux.source import LocalSource, load_tree

        tree = load_tree(LocalSource(ROOT / "examples" / "gitops"))
        for entry in backend_policies(find_policies(tree)):
            name = f"{entry.obj.namespace}:{entry.obj.name}"
            if entry.policy is None:
                print(f"  {name:40} invalid: {entry.error}")
                continue
            print(f"  {name:40} -> {entry.policy.select(tags) or '(nothing matches)'}")
    banner("registry stopped and its storage deleted; `make lab` is the whole chapter")
    return 0


if __name__ == "__main__":
    sys.exit(main())
