"""The pure parts of ``scripts/release.py``: version choice, pins, action.yml, CHANGELOG, OCI.

The whole ``make release`` runs in tests/e2e/test_release.py; these pin down the rewriting
rules on inputs the e2e run does not meet (workflows restructured, quoted ``uses:``, a
second release's CHANGELOG).
"""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from types import ModuleType
from typing import Any

import pytest
import yaml

from testkit.docker import ROOT


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("release_script", ROOT / "scripts/release.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["release_script"] = module
    spec.loader.exec_module(module)
    return module


release = _load()
#: The keys of ``make release``'s JSON line, as issue 12 spells them (exactly these).
RESULT_KEYS = ("version", "digest", "image", "staging-tag", "production-tag", "tag", "commit")
SHA = "1" * 40
CALL = "acme/promote/.github/workflows/promote.yml"


def test_version_from_bump_over_registry_and_git_tags() -> None:
    tags = ["production", "production-v1.4.2-aaaaaaa-1700000000", "staging-bbbbbbb-1700000001"]
    assert release.choose_version("", "patch", tags, []) == "1.4.3"
    assert release.choose_version("", "minor", tags, ["v1.5.0"]) == "1.6.0"
    assert release.choose_version("", "patch", [], []) == "1.0.0"
    assert release.choose_version("2.0.0", "patch", tags, []) == "2.0.0"


@pytest.mark.parametrize(
    ("version", "why"),
    [("1.4.2", "already released"), ("v1.4.2", "already released"), ("1.4.1", "not greater")],
)
def test_an_existing_or_older_version_is_refused(version: str, why: str) -> None:
    tags = ["production-v1.4.2-aaaaaaa-1700000000"]
    with pytest.raises(release.ReleaseError, match=why):
        release.choose_version(version, "patch", tags, [])
    with pytest.raises(release.ReleaseError, match="already released"):
        release.choose_version("1.4.3", "patch", tags, ["v1.4.3"])


def test_every_action_reference_is_pinned_wherever_the_jobs_are() -> None:
    # A layout other than today's promote.yml: a plan job and a gated promote job, one
    # reference quoted, one without a comment, a foreign action left alone.
    text = """\
name: promote
on: workflow_dispatch
jobs:
  plan:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@3d3c42e5aac5ba805825da76410c181273ba90b1 # v7.0.1
      - name: Plan
        uses: "acme/promote@0000000000000000000000000000000000000000"
        with: {dry-run: "true"}
  promote:
    needs: plan
    environment: production
    runs-on: ubuntu-latest
    steps:
      -   uses: acme/promote@0000000000000000000000000000000000000000 # v0.1.0
          id: promote
"""
    new = release.pin(text, "acme/promote", workflows=False, sha=SHA, version="1.2.3")
    doc = yaml.safe_load(new)
    assert doc["jobs"]["plan"]["steps"][1]["uses"] == f"acme/promote@{SHA}"
    assert doc["jobs"]["promote"]["steps"][0]["uses"] == f"acme/promote@{SHA}"
    assert doc["jobs"]["plan"]["steps"][0]["uses"].startswith("actions/checkout@3d3c42e")
    assert new.count(f"@{SHA} # v1.2.3") == 2
    assert len(new.splitlines()) == len(text.splitlines())
    # Reusable-workflow calls are a separate pass.
    assert release.pin(new, "acme/promote", workflows=True, sha=SHA, version="1.2.3") == new


def test_reusable_workflow_calls_are_pinned_and_the_action_left_alone() -> None:
    text = f"""\
on: workflow_dispatch
jobs:
  promote:
    uses: {CALL}@0000000000000000000000000000000000000000 # v0.1.0
  build:
    runs-on: ubuntu-latest
    steps:
      - uses: acme/promote@{"2" * 40} # v1.2.3
"""
    new = release.pin(text, "acme/promote", workflows=True, sha=SHA, version="1.2.3")
    assert yaml.safe_load(new)["jobs"]["promote"]["uses"] == f"{CALL}@{SHA}"
    assert f"acme/promote@{'2' * 40} # v1.2.3" in new


def test_a_reference_the_line_rewrite_cannot_reach_is_an_error() -> None:
    # A flow mapping hides the `uses:` key from the line rewrite: refuse, never half-pin.
    text = """\
on: workflow_dispatch
jobs:
  a:
    runs-on: ubuntu-latest
    steps:
      - {uses: "acme/promote@0000000000000000000000000000000000000000"}
"""
    with pytest.raises(release.ReleaseError, match="could not pin"):
        release.pin(text, "acme/promote", workflows=False, sha=SHA, version="1.2.3")


def test_action_yml_runs_the_image_by_digest_and_nothing_else_changes() -> None:
    text = (ROOT / "action.yml").read_text(encoding="utf-8")
    ref = "ghcr.io/acme/promote@sha256:" + "a" * 64
    new = release.action_yml_for(text, ref)
    before, after = yaml.safe_load(text), yaml.safe_load(new)
    assert after["runs"] == {"using": "docker", "image": f"docker://{ref}"}
    after["runs"]["image"] = before["runs"]["image"]
    assert after == before
    with pytest.raises(release.ReleaseError, match="runs"):
        release.action_yml_for("name: x\nruns:\n  using: node20\n  main: index.js\n", ref)


def test_changelog_moves_unreleased_notes_and_keeps_earlier_releases() -> None:
    main = "# Changelog\n\nintro\n\n## Unreleased\n\n- a note\n"
    first = release.changelog_for(main, None, "1.0.0", "Image: `x@sha256:1`", "2026-12-01")
    assert first.index("## v1.0.0 (2026-12-01)") < first.index("Image: `x@sha256:1`")
    assert "- a note" in first and "## Unreleased" not in first
    second_main = "# Changelog\n\nintro\n\n## Unreleased\n\n- later\n"
    second = release.changelog_for(second_main, first, "1.1.0", "Image: `y`", "2026-12-02")
    assert second.index("## v1.1.0") < second.index("- later") < second.index("## v1.0.0")
    assert second.count("- a note") == 1 and second.startswith("# Changelog\n\nintro\n")


def test_the_pushed_manifest_becomes_an_annotated_oci_manifest_over_the_same_blobs() -> None:
    docker_manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {
            "mediaType": "application/vnd.docker.container.image.v1+json",
            "size": 10,
            "digest": "sha256:" + "c" * 64,
        },
        "layers": [
            {
                "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                "size": 20,
                "digest": "sha256:" + "d" * 64,
            }
        ],
    }
    data = release.oci_with_annotations(
        json.dumps(docker_manifest).encode(), {"org.opencontainers.image.revision": SHA}
    )
    oci = json.loads(data)
    assert oci["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    assert oci["config"] == {
        "mediaType": "application/vnd.oci.image.config.v1+json",
        "digest": "sha256:" + "c" * 64,
        "size": 10,
    }
    assert [layer["digest"] for layer in oci["layers"]] == ["sha256:" + "d" * 64]
    assert oci["layers"][0]["mediaType"] == "application/vnd.oci.image.layer.v1.tar+gzip"
    assert oci["annotations"] == {"org.opencontainers.image.revision": SHA}
    with pytest.raises(release.ReleaseError):
        release.oci_with_annotations(b'{"schemaVersion": 2, "manifests": []}', {})


def test_main_branch_files_name_the_action_the_release_pins() -> None:
    # The release rewrites `uses: acme/promote@...`: the workflows on main must use it.
    for path in sorted((ROOT / ".github/workflows").glob("*.yml")):
        actions, _calls = release.repository_refs(path.read_text(), release.DEFAULT_REPOSITORY)
        if path.name in {"promote.yml", "gate.yml"}:
            assert actions, path.name


def _workflow(name: str) -> dict[str, Any]:
    doc: dict[Any, Any] = yaml.safe_load((ROOT / ".github/workflows" / name).read_text())
    doc["on"] = doc.pop(True, doc.get("on"))
    return doc


def test_release_workflow_contract() -> None:
    from testkit.docker import dockerfile_base

    wf = _workflow("release.yml")
    assert set(wf["on"]) == {"workflow_dispatch"}
    assert set(wf["on"]["workflow_dispatch"]["inputs"]) == {"version", "bump"}
    assert wf["permissions"] == {}
    assert wf["concurrency"]["cancel-in-progress"] is False
    test, job = wf["jobs"]["test"], wf["jobs"]["release"]
    assert test["permissions"] == {"contents": "read"}
    assert test["steps"][-1]["run"] == ".ci/run"
    base = (ROOT / "Dockerfile").read_text()
    assert test["steps"][-1]["env"]["PROMOTE_TEST_BASE_IMAGE"] == dockerfile_base(base)
    assert job["needs"] == "test" and job["environment"] == "release"
    # Per-job permissions: tests/security/test_workflow_policy.py RELEASE_PERMISSIONS.
    assert job["permissions"]["packages"] == "write"
    steps = {step.get("id") or step["name"]: step for step in job["steps"]}
    make = steps["release"]
    assert make["env"]["IMAGE"] == "ghcr.io/${{ github.repository }}"
    assert "make release " in make["run"] and 'IMAGE="${IMAGE,,}"' in make["run"]
    # The job outputs are the JSON line's keys (plus the two derived ones), passed through.
    assert job["outputs"] == {
        key: f"${{{{ steps.release.outputs.{key} }}}}"
        for key in (*RESULT_KEYS, "repository", "major")
    }
    attest_job, publish = wf["jobs"]["attest"], wf["jobs"]["publish"]
    assert attest_job["needs"] == "release"
    attest = next(s for s in attest_job["steps"] if "attest-build-provenance" in s.get("uses", ""))
    assert re.fullmatch(r"actions/attest-build-provenance@[0-9a-f]{40}", attest["uses"])
    assert attest["with"]["subject-digest"] == "${{ needs.release.outputs.digest }}"
    assert attest["with"]["subject-name"] == "${{ needs.release.outputs.repository }}"
    assert "push-to-registry" not in attest["with"]  # attest writes no package (no env)
    push = next(s for s in publish["steps"] if "git tag --force" in s.get("run", ""))
    # vX.Y.Z is pushed without `+` (never overwritten); only the major tag vX is forced.
    assert '"refs/tags/$TAG" "+refs/tags/$MAJOR"' in push["run"]
    assert 'git fetch --no-tags release.bundle "refs/tags/$TAG:refs/tags/$TAG"' in push["run"]
    notes = publish["steps"][-1]
    assert "gh release create" in notes["run"] and "$DIGEST" in notes["run"]
    assert notes["env"]["DIGEST"] == "${{ needs.release.outputs.digest }}"
    # The JSON line's names are what the later jobs read.
    job = wf["jobs"]
    used = set(re.findall(r"(?:steps|needs)\.release\.outputs\.([\w-]+)", str(job)))
    assert used <= {*RESULT_KEYS, "repository", "major"}


def test_notes_an_earlier_release_shipped_are_not_repeated() -> None:
    # Releases live on their own commits: main's *Unreleased* still holds the notes the last
    # release shipped until someone deletes them. The next release must not list them again.
    main = "# Changelog\n\n## Unreleased\n\n- shipped in 1.0.0\n  (two lines)\n"
    first = release.changelog_for(main, None, "1.0.0", "Image: `x`", "2026-12-01")
    later_main = main + "- new in 1.0.1\n"
    second = release.changelog_for(later_main, first, "1.0.1", "Image: `y`", "2026-12-02")
    assert second.count("- shipped in 1.0.0") == 1
    assert second.index("## v1.0.1") < second.index("- new in 1.0.1") < second.index("## v1.0.0")
    assert second.index("## v1.0.0") < second.index("- shipped in 1.0.0")
    # Nothing new at all: the section has the release's own lines only.
    third = release.changelog_for(main, second, "1.0.2", "Image: `z`", "2026-12-03")
    assert third.count("- shipped in 1.0.0") == 1 and third.count("- new in 1.0.1") == 1


def test_a_file_that_is_not_yaml_is_a_release_error_not_a_traceback() -> None:
    with pytest.raises(release.ReleaseError, match="not valid YAML"):
        release.pin("jobs:\n  a: [\n", "acme/promote", workflows=False, sha=SHA, version="1.0.0")
    with pytest.raises(release.ReleaseError, match=r"action\.yml is not valid YAML"):
        release.action_yml_for("runs:\n  using: docker\n  image: [\n", f"x@sha256:{'0' * 64}")
