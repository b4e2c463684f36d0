"""``make release`` end to end: a real Docker engine, a loopback registry, real git, act.

The project's files (as they are in the work tree) are committed into a fresh git repository
that plays the promote repository; ``make release`` runs there with the local debootstrap
base image (``BASE_IMAGE=``), the project's venv and a CNCF distribution registry on
127.0.0.1 as ``IMAGE``. Then:

* the registry: ``staging-*``, ``production-vX.Y.Z-*`` and ``production`` name one digest,
  an OCI manifest annotated like ``build-tags``;
* git: the branch, index and work tree are untouched; ``vX.Y.Z`` is annotated with the
  digest; the release commits' ``action.yml`` runs ``docker://IMAGE@sha256:…``, their
  workflows pin the action commit, the examples call the release's workflows, zizmor
  pedantic is clean on them (and catches a tag-pinned image);
* a second ``make release`` of the same version is refused before any build;
* a release whose image fails its smoke test leaves no ``production*`` tag, no commit, no tag;
* act: a service repository calling the released ``promote.yml`` promotes on the loopback
  registry from the prebuilt image, pulled by digest, with no ``docker build`` in act's log.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import tarfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from testkit import docker as d
from testkit.docker import ROOT
from testkit.registry import RegistryServer
from tests.e2e.conftest import ServiceRepo
from tests.e2e.test_packaging import _zizmor as zizmor
from tests.e2e.test_workflows_act import (
    EXAMPLE_IMAGE_LINE,
    History,
    assert_planned_then_promoted,
    report,
)
from tests.test_release_script import RESULT_KEYS

pytestmark = pytest.mark.e2e

VERSION = "1.2.3"
REPOSITORY = d.ACTION_REPOSITORY
IMAGE_PATH = "acme/promote"
GIT = ["git", "-c", "user.name=e2e", "-c", "user.email=e2e@example.invalid"]


@dataclass
class Release:
    repo: Path
    head: str
    returncode: int
    stdout: str
    stderr: str

    @property
    def result(self) -> dict[str, str]:
        last = self.stdout.strip().splitlines()[-1]
        doc: dict[str, str] = json.loads(last)
        return doc


def git(repo: Path, *args: str) -> str:
    proc = subprocess.run([*GIT, *args], cwd=repo, capture_output=True, text=True, check=True)
    return proc.stdout.strip()


def promote_repository(dest: Path, edit: Callable[[Path], None] | None = None) -> Path:
    """The project's tracked files as in the work tree, committed in a new repository."""
    files = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True
    ).stdout.split(b"\0")
    for name in filter(None, (f.decode() for f in files)):
        src = ROOT / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    if edit is not None:
        edit(dest)
    git(dest, "init", "-q", "-b", "main")
    git(dest, "add", "-A")
    git(dest, "commit", "-q", "-m", "promote")
    return dest


def make_release(repo: Path, image: str, base: str, **variables: str) -> Release:
    """``make release`` in ``repo`` with the project's venv (already installed)."""
    venv = ROOT / ".venv"
    args = [f"IMAGE={image}", f"BASE_IMAGE={base}", f"VENV={venv}"]
    args += [f"{k}={v}" for k, v in variables.items()]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "MAKE"))}
    proc = subprocess.run(
        ["make", "-s", "-o", f"{venv}/.installed", "release", *args],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
        check=False,
    )
    print(f"\n[e2e] make release in {repo.name}: exit {proc.returncode}\n{proc.stderr[-3000:]}")
    return Release(repo, git(repo, "rev-parse", "HEAD"), proc.returncode, proc.stdout, proc.stderr)


def show(repo: Path, rev: str, path: str) -> str:
    return git(repo, "show", f"{rev}:{path}") + "\n"


def extract(repo: Path, rev: str, dest: Path) -> Path:
    """The tree of ``rev`` in ``dest`` (``git archive``)."""
    data = subprocess.run(
        ["git", "archive", "--format=tar", rev], cwd=repo, capture_output=True, check=True
    ).stdout
    dest.mkdir(parents=True)
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        tar.extractall(dest, filter="data")
    return dest


def uses(text: str) -> list[str]:
    doc = yaml.safe_load(text)
    found = []
    for job in doc["jobs"].values():
        if "uses" in job:
            found.append(job["uses"])
        found += [s["uses"] for s in job.get("steps", []) if "uses" in s]
    return found


def action_commit_of(release: Release) -> str:
    """The action commit: the first after HEAD in the tagged chain, as the tag names it."""
    out = release.result
    chain = git(release.repo, "rev-list", "--reverse", f"{release.head}..{out['commit']}")
    message = git(release.repo, "tag", "-l", "--format=%(contents)", out["tag"])
    first = chain.split()[0]
    assert f"action commit: {first}" in message, message
    return first


def remove_local_images(image: str) -> None:
    """Forget every local name of the release's image (so act has to pull it by digest)."""
    refs = d.image_refs(image)
    if refs:
        d.docker("rmi", *refs, check=False)


@pytest.fixture(scope="module")
def release_registry(registry: RegistryServer) -> RegistryServer:
    """The registry the release is pushed to (IMAGE) and the service promotes in."""
    return registry


@pytest.fixture(scope="module")
def released(
    e2e_base: str, release_registry: RegistryServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Release]:
    repo = promote_repository(tmp_path_factory.mktemp("promote-repo"))
    image = f"{release_registry.host}/{IMAGE_PATH}"
    release = make_release(repo, image, e2e_base, VERSION=VERSION)
    try:
        assert release.returncode == 0, release.stderr[-6000:]
        yield release
    finally:
        remove_local_images(image)


def test_release_pushes_one_digest_under_every_tag(
    released: Release, release_registry: RegistryServer
) -> None:
    out = released.result
    image = f"{release_registry.host}/{IMAGE_PATH}"
    sha = released.head
    # Exactly the keys: the release workflow turns every one into a step output.
    assert set(out) == set(RESULT_KEYS)
    assert out["version"] == VERSION and out["tag"] == f"v{VERSION}"
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", out["digest"])
    assert out["image"] == f"{image}@{out['digest']}"
    staging = re.fullmatch(rf"staging-{sha[:7]}-(?P<ts>[0-9]{{10}})", out["staging-tag"])
    assert staging, out
    assert out["production-tag"].startswith(f"production-v{VERSION}-{sha[:7]}-")
    # The steps ran in the order, the smoke test and the promotion on the pushed digest.
    steps = re.findall(r"^\[release\] (\d)\. (.*)$", released.stderr, flags=re.MULTILINE)
    order = [int(n) for n, _ in steps]
    assert order == sorted(order) and set(order) == {0, 1, 2, 3, 4}, steps
    said = [text for _n, text in steps]
    assert f"smoke test {out['image']}: build-tags" in said
    assert any(t.startswith(f"smoke test {out['image']}: dry-run promote") for t in said)
    assert any(t.startswith(f"{out['image']} promotes itself") for t in said)
    assert said[-1] == f"tagged {out['tag']} -> {out['commit']}"
    assert int(out["production-tag"].rsplit("-", 1)[1]) >= int(staging.group("ts"))

    seeder = release_registry.seeder()
    tags = sorted(seeder.tags(IMAGE_PATH))
    # the self-promotion attaches its promotion record: the referrers index of the digest
    index_tag = "sha256-" + out["digest"].split(":", 1)[1]
    releases = sorted([out["staging-tag"], out["production-tag"], "production"])
    assert tags == sorted([*releases, index_tag])
    index = json.loads(seeder.raw_manifest(IMAGE_PATH, index_tag)[0])
    (record,) = index["manifests"]
    assert record["artifactType"] == "application/vnd.in-toto+json"
    assert record["annotations"]["dev.promote.record.tag"] == out["production-tag"]
    for tag in releases:
        data, media_type, digest = seeder.raw_manifest(IMAGE_PATH, tag)
        assert digest == out["digest"], tag
    manifest = json.loads(data)
    assert media_type.split(";")[0] == "application/vnd.oci.image.manifest.v1+json"
    annotations = manifest["annotations"]
    assert annotations["org.opencontainers.image.revision"] == sha
    assert annotations["org.opencontainers.image.version"] == out["staging-tag"]
    # The config is the one docker built, with the same keys as labels.
    config = json.loads(
        seeder.request(
            "GET", IMAGE_PATH, seeder._api(IMAGE_PATH, "blobs", manifest["config"]["digest"])
        ).content
    )
    assert config["config"]["Labels"]["org.opencontainers.image.revision"] == sha
    assert config["config"]["Entrypoint"] == ["/usr/local/bin/python", "/opt/promote/entrypoint.py"]


def test_release_commits_pin_the_digest_and_leave_the_branch_alone(
    released: Release, release_registry: RegistryServer, tmp_path: Path
) -> None:
    repo, out = released.repo, released.result
    image_ref = out["image"]
    # The branch, the index and the work tree are as they were.
    assert git(repo, "rev-parse", "HEAD") == released.head
    assert git(repo, "symbolic-ref", "HEAD") == "refs/heads/main"
    assert git(repo, "status", "--porcelain") == ""
    assert yaml.safe_load((repo / "action.yml").read_text())["runs"]["image"] == "Dockerfile"
    # The annotated tag names the tagged commit and carries the digest and the image tags.
    assert git(repo, "cat-file", "-t", out["tag"]) == "tag"
    assert git(repo, "rev-parse", f"{out['tag']}^{{commit}}") == out["commit"]
    message = git(repo, "tag", "-l", "--format=%(contents)", out["tag"])
    assert out["digest"] in message and out["production-tag"] in message
    assert out["staging-tag"] in message
    # action commit -> release commit -> (examples commit, tagged); all on top of HEAD.
    action_commit = action_commit_of(released)
    assert git(repo, "rev-parse", f"{action_commit}^") == released.head
    chain = git(repo, "rev-list", f"{released.head}..{out['commit']}").split()
    assert chain[-1] == action_commit and len(chain) in (2, 3)
    release_commit = chain[-2]
    for rev in (action_commit, *chain):
        action = yaml.safe_load(show(repo, rev, "action.yml"))
        assert action["runs"] == {"using": "docker", "image": f"docker://{image_ref}"}
    # Every reference to the action in the reusable workflows is the action commit.
    tagged = out["commit"]
    for name in ("promote.yml", "gate.yml"):
        refs = [u for u in uses(show(repo, tagged, f".github/workflows/{name}")) if "acme/" in u]
        assert refs and set(refs) == {f"{REPOSITORY}@{action_commit}"}, (name, refs)
        assert f"@{action_commit} # v{VERSION}" in show(repo, tagged, f".github/workflows/{name}")
    # The examples call the release's workflows (and its action).
    for example in ("service-promote.yml", "gitops-gate.yml", "service-build.yml"):
        for ref in uses(show(repo, tagged, f"examples/workflows/{example}")):
            if ref.startswith(f"{REPOSITORY}/"):
                assert ref.endswith(f"@{release_commit}"), ref
            elif ref.startswith(f"{REPOSITORY}@"):
                assert ref == f"{REPOSITORY}@{action_commit}", ref
    # Nothing but the pins changed: the workflows are the same YAML otherwise.
    head_promote = yaml.safe_load(show(repo, released.head, ".github/workflows/promote.yml"))
    tagged_promote = yaml.safe_load(show(repo, tagged, ".github/workflows/promote.yml"))
    for doc in (head_promote, tagged_promote):
        for job in doc["jobs"].values():
            for step in job.get("steps", []):
                step.pop("uses", None)
    assert head_promote == tagged_promote
    changelog = show(repo, tagged, "CHANGELOG.md")
    assert f"## v{VERSION} (" in changelog and image_ref in changelog
    assert "## Unreleased" not in changelog
    # zizmor pedantic, unpinned-images included, on the tagged tree: clean ...
    tree = extract(repo, tagged, tmp_path / "tagged")
    files = [tree / "action.yml", *sorted((tree / "examples/workflows").glob("*.yml"))]
    clean = zizmor(tree / ".github/workflows", *files)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    # ... and it would catch the image pinned by tag only.
    by_tag = tmp_path / "by-tag" / "action.yml"
    by_tag.parent.mkdir()
    by_tag.write_text(
        (tree / "action.yml")
        .read_text()
        .replace(image_ref, f"{image_ref.split('@')[0]}:production")
    )
    caught = zizmor(by_tag)
    assert caught.returncode != 0 and "unpinned-images" in caught.stdout, caught.stdout


def test_a_released_version_is_refused_before_any_build(
    released: Release, release_registry: RegistryServer, e2e_base: str
) -> None:
    image = f"{release_registry.host}/{IMAGE_PATH}"
    seeder = release_registry.seeder()
    tags_before = sorted(seeder.tags(IMAGE_PATH))
    refs_before = git(released.repo, "for-each-ref")
    for version in (VERSION, "1.0.0"):
        again = make_release(released.repo, image, e2e_base, VERSION=version)
        assert again.returncode != 0
        errors = [line for line in again.stderr.splitlines() if line.startswith("::error::")]
        assert len(errors) == 1, again.stderr
        assert "nothing was built" in errors[0]
        assert "Traceback" not in again.stderr
        assert "docker build" not in again.stderr
        assert again.stdout.strip() == ""
    assert (
        "already released" in make_release(released.repo, image, e2e_base, VERSION=VERSION).stderr
    )
    assert sorted(seeder.tags(IMAGE_PATH)) == tags_before
    assert git(released.repo, "for-each-ref") == refs_before


def _drop_runtime_dependency(repo: Path) -> None:
    """A broken release: the image lacks semver (the venv has it, the image does not)."""
    path = repo / "requirements/runtime.txt"
    text = path.read_text()
    broken = re.sub(r"^semver==[^\n]*(?:\\\n[^\n]*)*\n", "", text, flags=re.MULTILINE)
    assert broken != text and "semver==" not in broken
    path.write_text(broken)


def test_a_failed_smoke_test_leaves_no_production_tag_and_no_release_commit(
    e2e_base: str,
    registry_factory: Callable[..., RegistryServer],
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    server = registry_factory()
    request.addfinalizer(lambda: remove_local_images(f"{server.host}/{IMAGE_PATH}"))
    repo = promote_repository(tmp_path / "broken", _drop_runtime_dependency)
    refs_before = git(repo, "for-each-ref")
    objects_before = git(repo, "count-objects", "-v")
    failed = make_release(repo, f"{server.host}/{IMAGE_PATH}", e2e_base, VERSION=VERSION)
    assert failed.returncode != 0
    errors = [line for line in failed.stderr.splitlines() if line.startswith("::error::")]
    assert len(errors) == 1 and "smoke test" in errors[0], failed.stderr
    assert failed.stdout.strip() == ""
    tags = server.seeder().tags(IMAGE_PATH)
    # The build was pushed (a staging build, never a release); nothing was promoted.
    assert len(tags) == 1 and tags[0].startswith("staging-"), tags
    assert git(repo, "for-each-ref") == refs_before
    assert git(repo, "tag", "-l") == ""
    assert git(repo, "status", "--porcelain") == ""
    assert git(repo, "count-objects", "-v") == objects_before  # no commit, tree or tag object


def test_a_service_repository_runs_the_released_workflow_from_the_prebuilt_image(
    released: Release,
    release_registry: RegistryServer,
    service_repo: ServiceRepo,
    tmp_path: Path,
    repo_path: str,
    request: pytest.FixtureRequest,
) -> None:
    repo, out = released.repo, released.result
    chain = git(repo, "rev-list", f"{released.head}..{out['commit']}").split()
    action_commit, release_commit = action_commit_of(released), chain[-2]
    # act maps acme/promote@<sha> to the release's own trees (as GitHub would fetch them).
    local = {
        f"{REPOSITORY}@{action_commit}": extract(repo, action_commit, tmp_path / "action"),
        f"{REPOSITORY}@{release_commit}": extract(repo, release_commit, tmp_path / "release"),
    }
    released_caller = show(repo, out["commit"], "examples/workflows/service-promote.yml")
    assert f"{REPOSITORY}/.github/workflows/promote.yml@{release_commit}" in released_caller
    history = History(release_registry, repo_path)
    request.addfinalizer(history.close)
    # The example fixes its image (ghcr.io/acme/backend): only that line is pointed at the
    # loopback registry, as in test_workflows_act.py; the released pins stay as tagged.
    assert released_caller.count(EXAMPLE_IMAGE_LINE) == 1
    caller = released_caller.replace(EXAMPLE_IMAGE_LINE, f"      image: {history.image}\n")
    remove_local_images(f"{release_registry.host}/{IMAGE_PATH}")
    service = service_repo({"promote.yml": caller})
    result = d.run_act(
        service,
        "workflow_dispatch",
        workflow=".github/workflows/promote.yml",
        home=tmp_path / "act-home",
        inputs={"source-tag": history.source_tag},
        local_repositories=local,
    )
    report("service repo -> released promote.yml -> prebuilt image", result)
    assert result.returncode == 0, result.log[-8000:]
    assert "docker build" not in result.log
    assert "ghcr.io" not in result.log  # loopback only: the example's own image never reached
    # Both the plan and the gated job ran the released image, pulled by digest.
    for job in ("plan", "promote"):
        pulls = [
            line
            for line in result.log.splitlines()
            if f"/{job}]" in line and "docker pull" in line and out["image"] in line
        ]
        assert pulls, (job, result.log[-4000:])
    assert_planned_then_promoted(result, history)
    promoted = result.values("promoted.")
    assert promoted["digest"] == history.staging.digest
    assert promoted["version"] == "1.4.3"
    assert promoted["tag"] in history.tags()
    history.assert_points_at_staging(promoted["tag"])
    history.assert_points_at_staging("production")
