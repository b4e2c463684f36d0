"""The GitOps guardrails: the example passes; each broken variant fails at the right line."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from promote import naming
from promote.flux.check import (
    FLOATING_TAGS,
    Finding,
    Report,
    check_tree,
    covers,
    immutable_tag,
    probe_tags,
)
from promote.flux.gitops import find_policies, scan
from promote.flux.source import LocalSource, load_tree
from promote.naming import ENVS

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "gitops"
IA = "flux/bootstrap/infrastructure/image-automation"
BACKEND_POLICIES = f"{IA}/image-policies-backend.yaml"
FRONTEND_POLICIES = f"{IA}/image-policies-frontend.yaml"
IUA = f"{IA}/image-update-automation.yaml"
PROD_DEPLOY = "flux/apps/backend/production/deployment.yaml"
STAGING_DEPLOY = "flux/apps/backend/staging/deployment.yaml"
DEVELOP_DEPLOY = "flux/apps/backend/develop/deployment.yaml"
PROD_OVERLAY = "flux/apps/frontend/overlays/production/kustomization.yaml"
PROD_PATTERN = (
    r"'^production-v(?P<version>[0-9]+\.[0-9]+\.[0-9]+)-(?P<sha>[a-f0-9]+)-(?P<ts>[0-9]+)$'"
)
STAGING_PATTERN = "'^staging-(?P<sha>[a-f0-9]{7,40})-(?P<ts>[0-9]+)$'"


@pytest.fixture
def tree_dir(tmp_path: Path) -> Path:
    root = tmp_path / "gitops"
    shutil.copytree(EXAMPLE, root)
    return root


def edit(root: Path, rel: str, old: str, new: str, *, occurrence: int = 1) -> int:
    """Replace the ``occurrence``-th ``old`` in ``rel``; return the 1-based line it is on."""
    path = root / rel
    text = path.read_text()
    start = -1
    for _ in range(occurrence):
        start = text.index(old, start + 1)
    path.write_text(text[:start] + new + text[start + len(old) :])
    return text.count("\n", 0, start) + 1


def check(root: Path) -> Report:
    return check_tree(load_tree(LocalSource(root)))


def where(report: Report, rule: str) -> set[tuple[str, str, int]]:
    return {(f.level, f.file, f.line) for f in report.findings if f.rule == rule}


def only(report: Report, level: str = "error") -> list[Finding]:
    return [f for f in report.findings if f.level == level]


def test_the_example_passes_without_errors_or_warnings() -> None:
    report = check(EXAMPLE)
    assert report.findings == []
    assert len(report.policies) == 6
    assert all(entry.policy is not None for entry in report.policies)


@pytest.mark.parametrize("env", ENVS)
def test_each_example_policy_admits_exactly_its_envs_tags(env: str) -> None:
    """Issue 8 §2: each env's ImagePolicy selects that env's build or promotion tags only."""
    tree = load_tree(LocalSource(EXAMPLE))
    policies = {e.obj.name: e.policy for e in find_policies(tree)}
    sha, ts = "0a1b2c3", 1764200000
    own = (
        naming.immutable_tag(env, naming.parse_version("2.0.1"), sha, ts)
        if env == "production"
        else naming.build_tag(env, sha, ts)
    )
    older = immutable_tag(env, ts=ts - 100)
    for app in ("backend", "frontend"):
        policy = policies[f"{app}-{env}"]
        assert policy is not None
        assert policy.select([older, own, *FLOATING_TAGS]) == own
        for other in ENVS:
            if other != env:
                assert not policy.matches(immutable_tag(other)), (app, env, other)


def test_probe_tags_cover_the_issue_list() -> None:
    wanted, rejected = probe_tags("staging")
    assert wanted == ["staging-3f9c2ab-1764100000"]
    assert {"production", "latest", "develop", "staging"} <= set(rejected)
    assert "develop-3f9c2ab-1764100000" in rejected
    assert any(t.startswith("production-v") for t in rejected)
    assert any(t.startswith("sha256-") and t.endswith(".sig") for t in rejected)
    # the referrers index tag of a promotion record
    assert any(naming.is_referrers_tag(t) for t in rejected)


# -- image rules ---------------------------------------------------------------------------------


def test_image_on_latest(tree_dir: Path) -> None:
    line = edit(
        tree_dir, PROD_DEPLOY, "backend:production-v1.4.2-3f9c2ab-1764100000", "backend:latest"
    )
    report = check(tree_dir)
    assert where(report, "image-latest") == {("error", PROD_DEPLOY, line)}
    assert line == 20


def test_image_untagged(tree_dir: Path) -> None:
    line = edit(tree_dir, STAGING_DEPLOY, "backend:staging-3f9c2ab-1764093600", "backend")
    report = check(tree_dir)
    assert where(report, "image-untagged") == {("error", STAGING_DEPLOY, line)}


def test_image_on_the_mutable_env_tag(tree_dir: Path) -> None:
    line = edit(tree_dir, DEVELOP_DEPLOY, "backend:develop-3f9c2ab-1764090000", "backend:develop")
    kline = edit(
        tree_dir, PROD_OVERLAY, "newTag: production-v1.4.2-3f9c2ab-1764100000", "newTag: production"
    )
    report = check(tree_dir)
    assert where(report, "image-mutable-tag") == {
        ("error", DEVELOP_DEPLOY, line),
        ("error", PROD_OVERLAY, kline),
    }
    assert len(only(report)) == 2


def test_image_pinned_by_digest_is_fine_and_missing_marker_warns(tree_dir: Path) -> None:
    line = edit(
        tree_dir,
        PROD_DEPLOY,
        "backend:production-v1.4.2-3f9c2ab-1764100000"
        ' # {"$imagepolicy": "flux-system:backend-production"}',
        "backend@sha256:" + "a" * 64,
    )
    report = check(tree_dir)
    assert only(report) == []
    assert where(report, "image-no-marker") == {("warning", PROD_DEPLOY, line)}


def test_images_outside_env_folders_are_not_judged(tree_dir: Path) -> None:
    (tree_dir / "flux/apps/tools").mkdir()
    (tree_dir / "flux/apps/tools/job.yaml").write_text(
        "apiVersion: batch/v1\nkind: Job\nspec:\n  template:\n    spec:\n"
        "      containers:\n        - image: busybox:latest\n"
    )
    assert check(tree_dir).findings == []


# -- marker rules --------------------------------------------------------------------------------


def test_marker_naming_a_missing_policy(tree_dir: Path) -> None:
    line = edit(tree_dir, PROD_DEPLOY, "flux-system:backend-production", "flux-system:backend-prod")
    kline = edit(
        tree_dir, PROD_OVERLAY, "flux-system:frontend-production:tag", "frontend-production"
    )
    report = check(tree_dir)
    assert where(report, "marker-unknown-policy") == {
        ("error", PROD_DEPLOY, line),
        ("error", PROD_OVERLAY, kline),
    }
    messages = " ".join(f.message for f in report.findings)
    assert "flux-system:backend-prod," in messages or "flux-system:backend-prod " in messages
    assert "is not <namespace>:<policy>" in messages


def test_marker_for_a_policy_outside_the_automations_namespace(tree_dir: Path) -> None:
    # the policy exists, but in namespace "apps", which no automation serves
    text = (tree_dir / BACKEND_POLICIES).read_text()
    moved = text.replace(
        "name: backend-production\n  namespace: flux-system",
        "name: backend-production\n  namespace: apps",
    )
    assert moved != text
    (tree_dir / BACKEND_POLICIES).write_text(moved)
    line = edit(tree_dir, PROD_DEPLOY, "flux-system:backend-production", "apps:backend-production")
    report = check(tree_dir)
    assert where(report, "marker-namespace") == {("error", PROD_DEPLOY, line)}
    assert where(report, "marker-unknown-policy") == set()


def test_marker_outside_every_update_path(tree_dir: Path) -> None:
    edit(tree_dir, IUA, "path: ./flux/apps\n", "path: ./flux/apps/backend\n")
    report = check(tree_dir)
    got = where(report, "marker-outside-path")
    assert got == {
        ("error", f"flux/apps/frontend/overlays/{env}/kustomization.yaml", 8) for env in ENVS
    }
    assert "flux-system:apps -> ./flux/apps/backend" in only(report)[0].message


def test_markers_without_any_automation(tree_dir: Path) -> None:
    (tree_dir / IUA).unlink()
    report = check(tree_dir)
    assert len(where(report, "marker-outside-path")) == 6
    assert "no ImageUpdateAutomation" in only(report)[0].message


def test_ignored_marker_comment_warns(tree_dir: Path) -> None:
    line = edit(
        tree_dir,
        STAGING_DEPLOY,
        '# {"$imagepolicy": "flux-system:backend-staging"}',
        "# {'$imagepolicy': 'flux-system:backend-staging'}",
    )
    # the only double-quoted key is gone, so Flux does not even read the file: still warned
    report = check(tree_dir)
    assert ("warning", STAGING_DEPLOY, line) in where(report, "marker-ignored")
    assert ("warning", STAGING_DEPLOY, line) in where(report, "image-no-marker")
    assert only(report) == []


def test_covers() -> None:
    tree = scan(
        {
            "a.yaml": "apiVersion: image.toolkit.fluxcd.io/v1\nkind: ImageUpdateAutomation\n"
            "metadata: {name: a, namespace: ns}\nspec: {update: {path: ./clusters/prod/}}\n",
            "b.yaml": "apiVersion: image.toolkit.fluxcd.io/v1\nkind: ImageUpdateAutomation\n"
            "metadata: {name: b, namespace: ns}\nspec: {}\n",
        }
    )
    a, b = tree.automations
    assert covers(a, "clusters/prod/app.yaml")
    assert not covers(a, "clusters/production/app.yaml")
    assert not covers(a, "apps/x.yaml")
    assert covers(b, "anything/at/all.yaml")


# -- policy rules --------------------------------------------------------------------------------


def test_policy_admitting_the_floating_tag(tree_dir: Path) -> None:
    line = edit(
        tree_dir,
        BACKEND_POLICIES,
        PROD_PATTERN,
        r"'^production(-v(?P<version>[0-9]+\.[0-9]+\.[0-9]+)-(?P<sha>[a-f0-9]+)-(?P<ts>[0-9]+))?$'",
    )
    report = check(tree_dir)
    assert where(report, "policy-admits-mutable") == {("error", BACKEND_POLICIES, line)}
    assert "production" in only(report)[0].message
    assert len(only(report)) == 1


def test_unanchored_policy_admits_signatures_and_floating_tags(tree_dir: Path) -> None:
    line = edit(
        tree_dir,
        FRONTEND_POLICIES,
        "'^develop-(?P<sha>[a-f0-9]{7,40})-(?P<ts>[0-9]+)$'",
        "'(?P<ts>[0-9]+)'",
    )
    report = check(tree_dir)
    mutable = [f for f in only(report) if f.rule == "policy-admits-mutable"]
    assert [(f.file, f.line) for f in mutable] == [(FRONTEND_POLICIES, line)]
    assert ".sig" in mutable[0].message
    assert "sha256-" + "cd" * 32 in mutable[0].message  # a referrers index tag
    # the staging and production probe tags contain digits too: another env's tags
    assert where(report, "policy-admits-other-env") == {("error", FRONTEND_POLICIES, line)}


def test_policy_admitting_another_envs_tags(tree_dir: Path) -> None:
    line = edit(
        tree_dir,
        BACKEND_POLICIES,
        STAGING_PATTERN,
        "'^(staging|develop)-(?P<sha>[a-f0-9]{7,40})-(?P<ts>[0-9]+)$'",
    )
    report = check(tree_dir)
    assert where(report, "policy-admits-other-env") == {("error", BACKEND_POLICIES, line)}
    assert "develop-3f9c2ab-1764100000" in only(report)[0].message


def test_policy_rejecting_its_own_tag(tree_dir: Path) -> None:
    line = edit(tree_dir, BACKEND_POLICIES, PROD_PATTERN, PROD_PATTERN.replace("a-f0-9", "A-F0-9"))
    report = check(tree_dir)
    assert where(report, "policy-rejects-own-tag") == {("error", BACKEND_POLICIES, line)}
    assert "filter does not match" in only(report)[0].message


def test_policy_whose_extract_is_not_numeric(tree_dir: Path) -> None:
    edit(tree_dir, BACKEND_POLICIES, "extract: '$ts'", "extract: '$sha'", occurrence=3)
    report = check(tree_dir)
    (finding,) = only(report)
    assert finding.rule == "policy-rejects-own-tag"
    assert "3f9c2ab" in finding.message  # the controller's ParseFloat error names the value


def test_invalid_policy(tree_dir: Path) -> None:
    edit(tree_dir, FRONTEND_POLICIES, STAGING_PATTERN, "'^staging-(?P<ts>[0-9]+$'")
    text = (tree_dir / FRONTEND_POLICIES).read_text()
    report = check(tree_dir)
    (finding,) = only(report)
    assert finding.rule == "policy-invalid" and finding.file == FRONTEND_POLICIES
    # pointed at the policy's `policy:` field of the staging document
    lines = text.splitlines()
    assert lines[finding.line - 1].strip() == "policy:"
    assert "staging" in "\n".join(lines[finding.line - 12 : finding.line])


def test_alphabetical_timestamps_warn(tree_dir: Path) -> None:
    line = edit(tree_dir, BACKEND_POLICIES, "numerical:", "alphabetical:", occurrence=2)
    report = check(tree_dir)
    assert only(report) == []
    assert where(report, "policy-alphabetical-timestamps") == {("warning", BACKEND_POLICIES, line)}


def test_semver_production_policy_warns_about_rollback(tree_dir: Path) -> None:
    edit(tree_dir, BACKEND_POLICIES, "extract: '$ts'", "extract: '$version'", occurrence=3)
    line = edit(
        tree_dir,
        BACKEND_POLICIES,
        "numerical:\n      order: asc",
        "semver:\n      range: '>=1.0.0'",
        occurrence=3,
    )
    report = check(tree_dir)
    assert only(report) == []
    assert where(report, "policy-semver-rollback") == {("warning", BACKEND_POLICIES, line)}


def test_policy_without_env_warns_but_is_still_probed(tree_dir: Path) -> None:
    (tree_dir / f"{IA}/extra.yaml").write_text(
        "apiVersion: image.toolkit.fluxcd.io/v1\nkind: ImagePolicy\n"
        "metadata: {name: backend-any, namespace: flux-system}\n"
        "spec:\n  imageRepositoryRef: {name: backend}\n"
        "  filterTags: {pattern: '.*', extract: ''}\n  policy: {alphabetical: {}}\n"
    )
    report = check(tree_dir)
    assert where(report, "policy-env-unknown") == {("warning", f"{IA}/extra.yaml", 1)}
    assert where(report, "policy-admits-mutable") == {("error", f"{IA}/extra.yaml", 6)}
