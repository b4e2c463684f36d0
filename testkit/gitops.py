"""examples/gitops aimed at a local registry and a local bare repository (tests and `make lab`).

:func:`aimed_tree` returns the example tree's files with every ``ghcr.io/acme/`` image
pointed at ``registry_host`` (the ImageRepositories lose their ``secretRef``: the lab
registry is open) and the ``flux-system`` GitRepository's ``url`` set to the bare
repository (``file://``), without its ``secretRef``. :func:`make_gitops_repo` writes that
tree into a new bare repository (branch ``main``) and a working clone of it.
:data:`PRODUCTION_POLICY` is the ``flux-system:backend-production`` ImagePolicy alone, for
tests that write a small tree of their own.
"""

from __future__ import annotations

from pathlib import Path

from testkit.github_server import git

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "gitops"
EXAMPLE_IMAGE_PREFIX = "ghcr.io/acme/"
EXAMPLE_URL = "ssh://git@github.com/acme/gitops"

#: ``flux-system:backend-production``: the newest immutable production tag by its timestamp
#: (no braces, so it can end a ``str.format`` template).
PRODUCTION_POLICY = """\
apiVersion: image.toolkit.fluxcd.io/v1
kind: ImagePolicy
metadata:
  name: backend-production
  namespace: flux-system
spec:
  imageRepositoryRef:
    name: backend
  filterTags:
    pattern: '^production-v(?P<version>[0-9]+\\.[0-9]+\\.[0-9]+)-(?P<sha>[a-f0-9]+)-(?P<ts>[0-9]+)$'
    extract: '$ts'
  policy:
    numerical:
      order: asc
"""


def aimed_tree(registry_host: str, bare: Path) -> dict[str, str]:
    """``{relative path: text}`` of examples/gitops aimed at the lab's registry and repo."""
    files: dict[str, str] = {}
    for path in sorted(EXAMPLE.rglob("*")):
        if not path.is_file():
            continue
        text = path.read_text(encoding="utf-8")
        text = text.replace(EXAMPLE_IMAGE_PREFIX, f"{registry_host}/acme/")
        text = text.replace("  secretRef:\n    name: ghcr-auth\n", "")
        text = text.replace(
            f"  secretRef:\n    name: flux-system\n  url: {EXAMPLE_URL}\n",
            f"  url: file://{bare}\n",
        )
        files[path.relative_to(EXAMPLE).as_posix()] = text
    return files


def make_gitops_repo(root: Path, registry_host: str) -> tuple[Path, Path]:
    """A bare repository ``root/gitops.git`` holding the aimed tree on ``main``, and a
    working clone ``root/gitops``; returns (bare, clone)."""
    bare, clone = root / "gitops.git", root / "gitops"
    root.mkdir(parents=True, exist_ok=True)
    git(root, "init", "-q", "--bare", "-b", "main", str(bare))
    git(root, "clone", "-q", str(bare), str(clone))
    git(clone, "checkout", "-q", "-b", "main")
    for rel, text in aimed_tree(registry_host, bare).items():
        target = clone / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
    git(clone, "add", "-A")
    git(clone, "commit", "-q", "-m", "GitOps repository from examples/gitops (lab)")
    git(clone, "push", "-q", "origin", "main")
    git(clone, "branch", "-q", "--set-upstream-to=origin/main")
    return bare, clone
