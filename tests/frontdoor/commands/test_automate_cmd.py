"""``command: automate`` and ``command: predict`` on examples/gitops: a real registry (CNCF
distribution), a real bare git repository, all six ImagePolicies."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from testkit.engine import engine as run_action
from testkit.github_server import git
from testkit.gitops import make_gitops_repo
from testkit.registry import RegistryServer

SHA_A = "3f9c2ab0d1e2f3a4b5c6d7e8f9a0b1c2d3e4f5a6"
SHA_B = "9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e"
TS = 1764300000
AUTOMATION = "flux/bootstrap/infrastructure/image-automation/image-update-automation.yaml"
BACKEND = {
    "develop": "flux/apps/backend/develop/deployment.yaml",
    "staging": "flux/apps/backend/staging/deployment.yaml",
    "production": "flux/apps/backend/production/deployment.yaml",
}
FRONTEND = {
    env: f"flux/apps/frontend/overlays/{env}/kustomization.yaml"
    for env in ("develop", "staging", "production")
}


@pytest.fixture
def lab(tmp_path: Path, registry: RegistryServer) -> dict[str, object]:
    """A bare GitOps repo aimed at the registry, and images for all six policies."""
    prefix = f"t{tmp_path.name[-12:].replace('_', '').lower()}"
    host = f"{registry.host}/{prefix}"
    bare, clone = make_gitops_repo(tmp_path / "lab", host)
    seeder = registry.seeder()
    tags: dict[str, dict[str, str]] = {}
    for app in ("backend", "frontend"):
        repo = f"{prefix}/acme/{app}"
        tags[app] = {
            "develop": f"develop-{SHA_B[:7]}-{TS + 10}",
            "staging": f"staging-{SHA_B[:7]}-{TS + 20}",
            "production": f"production-v1.5.0-{SHA_B[:7]}-{TS + 30}",
        }
        old = seeder.oci_image(repo, f"develop-{SHA_A[:7]}-{TS}", revision=SHA_A)
        seeder.tag(repo, old.digest, f"staging-{SHA_A[:7]}-{TS}")
        new = seeder.oci_image(repo, tags[app]["develop"], revision=SHA_B, layer_size=3000)
        for env in ("staging", "production"):
            seeder.tag(repo, new.digest, tags[app][env])
        seeder.tag(repo, new.digest, "production")  # a floating tag no policy admits
        tags[app]["digest"] = new.digest
    return {"bare": bare, "clone": clone, "host": host, "tags": tags}


def _bare_file(bare: Path, path: str, ref: str = "main") -> str:
    return git(bare, "show", f"{ref}:{path}")


def test_automate_updates_all_six_policies_commits_pushes_and_is_idempotent(
    tmp_path: Path, lab: dict[str, object]
) -> None:
    bare, clone, host = Path(str(lab["bare"])), Path(str(lab["clone"])), lab["host"]
    tags: dict[str, dict[str, str]] = lab["tags"]  # type: ignore[assignment]
    before = {p: _bare_file(bare, p) for p in [*BACKEND.values(), *FRONTEND.values()]}

    run = run_action(tmp_path, {"command": "automate", "gitops-path": str(clone)})
    assert run.status == 0, run.log
    commit = run.outputs["commit"]
    assert len(commit) == 40
    assert git(bare, "rev-parse", "main").strip() == commit
    changed = json.loads(run.outputs["changed"])
    assert {c["file"] for c in changed} == set(before)
    assert len(changed) == 6
    for env, path in BACKEND.items():
        text = _bare_file(bare, path)
        want = f"{host}/acme/backend:{tags['backend'][env]}"
        if env == "production":  # digestReflectionPolicy: IfNotPresent
            want += f"@{tags['backend']['digest']}"
        # only the marked scalar changed: every other byte stays
        old_value = next(c["old"] for c in changed if c["file"] == path)
        assert text == before[path].replace(old_value, want)
        assert {"file": path, "old": old_value, "new": want} in [
            {k: c[k] for k in ("file", "old", "new")} for c in changed
        ]
    for env, path in FRONTEND.items():
        text = _bare_file(bare, path)
        old_value = next(c["old"] for c in changed if c["file"] == path)
        assert text == before[path].replace(old_value, tags["frontend"][env])
    # author = committer = git.commit.author; the message is the rendered template
    log = git(bare, "log", "-1", "--format=%an <%ae>|%cn <%ce>|%B", "main")
    author, committer, message = log.split("|", 2)
    assert author == committer == "fluxcdbot <fluxcdbot@users.noreply.github.com>"
    assert message.startswith("Update images from flux-system/apps\n\n- ")
    for c in changed:
        assert f"- {c['old']} -> {c['new']}\n" in message
    assert git(bare, "rev-list", "--count", "main").strip() == "2"

    again = run_action(tmp_path, {"command": "automate", "gitops-path": str(clone)})
    assert again.status == 0, again.log
    assert again.outputs["commit"] == ""
    assert json.loads(again.outputs["changed"]) == []
    assert git(bare, "rev-parse", "main").strip() == commit


def test_predict_names_the_tag_flux_selects_and_whether_git_would_change(
    tmp_path: Path, lab: dict[str, object]
) -> None:
    clone = Path(str(lab["clone"]))
    tags: dict[str, dict[str, str]] = lab["tags"]  # type: ignore[assignment]
    run = run_action(tmp_path, {"command": "predict", "gitops-path": str(clone)})
    assert run.status == 0, run.log
    found = {p["policy"]: p for p in json.loads(run.outputs["predictions"])}
    assert len(found) == 6
    backend = found["flux-system:backend-production"]
    assert backend == {
        "policy": "flux-system:backend-production",
        "selected": tags["backend"]["production"],
        "git": "production-v1.4.2-3f9c2ab-1764100000",
        "changes": True,
    }
    assert found["flux-system:frontend-develop"]["selected"] == tags["frontend"]["develop"]

    assert run_action(tmp_path, {"command": "automate", "gitops-path": str(clone)}).status == 0
    git(clone, "pull", "-q", "--ff-only")
    one = run_action(
        tmp_path,
        {"command": "predict", "gitops-path": str(clone), "policy": "flux-system:backend-staging"},
    )
    assert one.status == 0, one.log
    assert json.loads(one.outputs["predictions"]) == [
        {
            "policy": "flux-system:backend-staging",
            "selected": tags["backend"]["staging"],
            "git": tags["backend"]["staging"],
            "changes": False,
        }
    ]


def _commit_edit(clone: Path, path: str, old: str, new: str) -> None:
    target = clone / path
    target.write_text(target.read_text().replace(old, new))
    git(clone, "commit", "-q", "-am", f"edit {path}")
    git(clone, "push", "-q", "origin", "main")


def test_a_suspended_automation_writes_nothing(tmp_path: Path, lab: dict[str, object]) -> None:
    bare, clone = Path(str(lab["bare"])), Path(str(lab["clone"]))
    _commit_edit(
        clone, AUTOMATION, "spec:\n  interval: 5m\n", "spec:\n  suspend: true\n  interval: 5m\n"
    )
    head = git(bare, "rev-parse", "main").strip()
    run = run_action(tmp_path, {"command": "automate", "gitops-path": str(clone)})
    assert run.status == 0, run.log
    assert "suspended" in run.log
    assert run.outputs == {"commit": "", "changed": "[]"}
    assert git(bare, "rev-parse", "main").strip() == head
    # predict knows a suspended automation changes nothing
    pred = run_action(tmp_path, {"command": "predict", "gitops-path": str(clone)})
    assert not any(p["changes"] for p in json.loads(pred.outputs["predictions"]))


def test_update_path_limits_what_is_written(tmp_path: Path, lab: dict[str, object]) -> None:
    bare, clone = Path(str(lab["bare"])), Path(str(lab["clone"]))
    _commit_edit(clone, AUTOMATION, "path: ./flux/apps\n", "path: ./flux/apps/backend\n")
    run = run_action(tmp_path, {"command": "automate", "gitops-path": str(clone)})
    assert run.status == 0, run.log
    files = {c["file"] for c in json.loads(run.outputs["changed"])}
    assert files == set(BACKEND.values())
    for path in FRONTEND.values():
        assert _bare_file(bare, path) == (clone / path).read_text()


def test_push_branch_other_than_checkout_is_force_pushed_and_main_untouched(
    tmp_path: Path, lab: dict[str, object]
) -> None:
    bare, clone = Path(str(lab["bare"])), Path(str(lab["clone"]))
    _commit_edit(
        clone, AUTOMATION, "    push:\n      branch: main\n", "    push:\n      branch: auto\n"
    )
    head = git(bare, "rev-parse", "main").strip()
    first = run_action(tmp_path, {"command": "automate", "gitops-path": str(clone)})
    assert first.status == 0, first.log
    assert git(bare, "rev-parse", "main").strip() == head
    assert git(bare, "rev-parse", "auto").strip() == first.outputs["commit"]
    assert git(bare, "rev-parse", "auto~1").strip() == head
    # someone else's commit on the push branch: the next run rebuilds the branch from the
    # checkout branch and force-pushes it (Flux's GitForcePushBranch default)
    git(clone, "fetch", "-q", "origin", "auto")
    git(clone, "checkout", "-q", "-b", "auto", "FETCH_HEAD")
    (clone / "NOTES.md").write_text("a commit made on the push branch by hand\n")
    git(clone, "add", "NOTES.md")
    git(clone, "commit", "-qm", "by hand on auto")
    git(clone, "push", "-q", "origin", "auto")
    git(clone, "checkout", "-q", "main")
    second = run_action(tmp_path, {"command": "automate", "gitops-path": str(clone)})
    assert second.status == 0, second.log
    assert git(bare, "rev-parse", "auto").strip() == second.outputs["commit"]
    assert git(bare, "rev-parse", "auto~1").strip() == head
    assert git(bare, "rev-parse", "main").strip() == head


def test_dry_run_plans_and_writes_nothing(tmp_path: Path, lab: dict[str, object]) -> None:
    bare, clone = Path(str(lab["bare"])), Path(str(lab["clone"]))
    head = git(bare, "rev-parse", "main").strip()
    run = run_action(
        tmp_path, {"command": "automate", "gitops-path": str(clone), "dry-run": "true"}
    )
    assert run.status == 0, run.log
    assert run.outputs["commit"] == ""
    assert len(json.loads(run.outputs["changed"])) == 6
    assert git(bare, "rev-parse", "main").strip() == head


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{{ .Updated }}", "RemovedTemplateField"),
        ("{{ range .Changed.Changes }}{{ .OldValue | upper }}{{ end }}", "not supported"),
        ('{{ printf "%s" .Values }}', "not supported"),
        ("{{ if .Changed }}", "missing {{ end }}"),
    ],
)
def test_an_unsupported_message_template_is_one_clear_error_and_nothing_is_written(
    tmp_path: Path, lab: dict[str, object], template: str, message: str
) -> None:
    bare, clone = Path(str(lab["bare"])), Path(str(lab["clone"]))
    path = clone / AUTOMATION
    text = path.read_text()
    start = text.index("      messageTemplate: |")
    end = text.index("    push:")
    path.write_text(text[:start] + f"      messageTemplate: '{template}'\n" + text[end:])
    head = git(bare, "rev-parse", "main").strip()
    run = run_action(tmp_path, {"command": "automate", "gitops-path": str(clone)})
    assert run.status != 0
    assert len(run.errors) == 1 and message in run.errors[0], run.log
    assert "Traceback" not in run.log
    assert git(bare, "rev-parse", "main").strip() == head


def test_verify_flux_without_expected_tag_checks_what_flux_would_select_now(
    tmp_path: Path, lab: dict[str, object]
) -> None:
    clone = Path(str(lab["clone"]))
    tags: dict[str, dict[str, str]] = lab["tags"]  # type: ignore[assignment]
    policy = "flux-system:backend-staging"
    inputs = {
        "command": "verify-flux",
        "gitops-path": str(clone),
        "gitops-ref": "origin/main",
        "policy": policy,
    }
    before = run_action(tmp_path, inputs)
    assert before.status == 1, before.log
    # a failed verification still reports its outputs
    assert before.outputs["synced"] == "false"
    assert before.outputs["predicted-tag"] == tags["backend"]["staging"]
    assert json.loads(before.outputs["predictions"]) == [
        {
            "policy": policy,
            "selected": tags["backend"]["staging"],
            "git": "staging-3f9c2ab-1764093600",
            "changes": True,
        }
    ]
    assert run_action(tmp_path, {"command": "automate", "gitops-path": str(clone)}).status == 0
    for app in ("backend", "frontend"):
        for env in ("develop", "staging", "production"):
            after = run_action(tmp_path, {**inputs, "policy": f"flux-system:{app}-{env}"})
            assert after.status == 0, after.log
            assert after.outputs["synced"] == "true"
            assert after.outputs["predicted-tag"] == tags[app][env]
            assert len(after.outputs["commit"]) == 40


def test_a_rejected_push_is_one_error_and_nothing_is_written(
    tmp_path: Path, lab: dict[str, object]
) -> None:
    bare, clone = Path(str(lab["bare"])), Path(str(lab["clone"]))
    hook = bare / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\necho 'protected branch' >&2\nexit 1\n")
    hook.chmod(0o755)
    head = git(bare, "rev-parse", "main").strip()
    run = run_action(tmp_path, {"command": "automate", "gitops-path": str(clone)})
    assert run.status == 1
    assert len(run.errors) == 1, run.log
    assert "was not pushed to main (nothing was written; re-run to retry)" in run.errors[0]
    assert "Traceback" not in run.log
    assert git(bare, "rev-parse", "main").strip() == head


def test_a_wrong_expected_tag_is_refused_naming_the_tag_flux_would_pick(
    tmp_path: Path, lab: dict[str, object]
) -> None:
    clone, host = Path(str(lab["clone"])), lab["host"]
    tags: dict[str, dict[str, str]] = lab["tags"]  # type: ignore[assignment]
    run = run_action(
        tmp_path,
        {
            "command": "verify-flux",
            "gitops-path": str(clone),
            "policy": "flux-system:backend-staging",
            "expected-tag": f"staging-{SHA_A[:7]}-{TS}",
            "image": f"{host}/acme/backend",
        },
    )
    assert run.status == 1
    assert tags["backend"]["staging"] in run.errors[-1], run.log
    assert run.outputs["predicted-tag"] == tags["backend"]["staging"]
    assert run.outputs["synced"] == "false"


def test_a_later_automation_failing_still_reports_what_the_first_pushed(
    tmp_path: Path, lab: dict[str, object]
) -> None:
    bare, clone = Path(str(lab["bare"])), Path(str(lab["clone"]))
    first = (clone / AUTOMATION).read_text()
    second = first.replace("name: apps\n", "name: zz-second\n", 1).replace(
        "Update images from", "{{ .Updated }}", 1
    )
    (clone / AUTOMATION).with_name("zz-second.yaml").write_text(second)
    git(clone, "add", "-A")
    git(clone, "commit", "-qm", "a second automation")
    git(clone, "push", "-q", "origin", "main")
    run = run_action(tmp_path, {"command": "automate", "gitops-path": str(clone)})
    assert run.status == 1
    assert "zz-second" in run.errors[-1] and "already pushed: flux-system:apps" in run.errors[-1]
    assert run.outputs["commit"] == git(bare, "rev-parse", "main").strip()
    assert len(json.loads(run.outputs["changed"])) == 6


def test_predict_says_when_git_differs_but_no_automation_would_change_it(
    tmp_path: Path, lab: dict[str, object]
) -> None:
    clone = Path(str(lab["clone"]))
    _commit_edit(
        clone, AUTOMATION, "spec:\n  interval: 5m\n", "spec:\n  suspend: true\n  interval: 5m\n"
    )
    run = run_action(
        tmp_path,
        {"command": "predict", "gitops-path": str(clone), "policy": "flux-system:backend-staging"},
    )
    assert run.status == 0, run.log
    assert "Git differs, but no active automation would change it" in run.log
    assert "Git is up to date" not in run.log


def test_git_checkout_ref_picks_the_branch_and_push_defaults_to_it(
    tmp_path: Path, lab: dict[str, object]
) -> None:
    bare, clone = Path(str(lab["bare"])), Path(str(lab["clone"]))
    _commit_edit(
        clone,
        AUTOMATION,
        "    checkout:\n      ref:\n        branch: main\n",
        "    checkout:\n      ref:\n        branch: release\n",
    )
    _commit_edit(clone, AUTOMATION, "    push:\n      branch: main\n", "")
    git(clone, "push", "-q", "origin", "main:release")
    main_head = git(bare, "rev-parse", "main").strip()
    run = run_action(tmp_path, {"command": "automate", "gitops-path": str(clone)})
    assert run.status == 0, run.log
    assert git(bare, "rev-parse", "release").strip() == run.outputs["commit"]
    assert git(bare, "rev-parse", "release~1").strip() == main_head
    assert git(bare, "rev-parse", "main").strip() == main_head
    assert "pushed commit" in run.log and "to branch 'release'" in run.log


def test_an_automation_without_author_email_is_refused(
    tmp_path: Path, lab: dict[str, object]
) -> None:
    clone = Path(str(lab["clone"]))
    _commit_edit(clone, AUTOMATION, "        email: fluxcdbot@users.noreply.github.com\n", "")
    run = run_action(tmp_path, {"command": "automate", "gitops-path": str(clone)})
    assert run.status == 1
    assert run.errors == [
        "::error::ImageUpdateAutomation flux-system:apps ("
        f"{AUTOMATION}:4): git.commit.author.email is required"
    ]


def test_an_unreachable_registry_leaves_its_policies_alone_and_the_rest_proceeds(
    tmp_path: Path, lab: dict[str, object]
) -> None:
    from testkit.registry import free_port

    clone, host = Path(str(lab["clone"])), str(lab["host"])
    repos = "flux/bootstrap/infrastructure/image-automation/image-repositories.yaml"
    _commit_edit(clone, repos, f"{host}/acme/frontend", f"127.0.0.1:{free_port()}/acme/frontend")
    run = run_action(
        tmp_path,
        {"command": "automate", "gitops-path": str(clone)},
        {"PROMOTE_REGISTRY_DEADLINE": "3"},
    )
    assert run.status == 0, run.log
    assert {c["file"] for c in json.loads(run.outputs["changed"])} == set(BACKEND.values())
    warnings = [ln for ln in run.log.splitlines() if ln.startswith("::warning")]
    assert len(warnings) == 3 and all("frontend" in w and "no latestRef" in w for w in warnings)


@pytest.mark.parametrize("remote", ["file", "ssh"])
def test_without_git_it_is_one_clear_error_before_any_registry_call(
    tmp_path: Path, lab: dict[str, object], remote: str
) -> None:
    """The action's image has no git: ``command: automate`` there is one ``::error::``
    naming what is missing, before the registry or the checkout's remote is contacted
    (whether the GitRepository url is local or, as in a real workspace, not)."""
    import os

    clone = Path(str(lab["clone"]))
    if remote == "ssh":
        sync = clone / "flux/bootstrap/flux-system/gotk-sync.yaml"
        text = sync.read_text()
        bare = str(lab["bare"])
        assert f"url: file://{bare}" in text
        sync.write_text(
            text.replace(f"url: file://{bare}", "url: ssh://git@github.com/acme/gitops")
        )
    no_git = tmp_path / "no-git-bin"
    no_git.mkdir()
    run = run_action(
        tmp_path, {"command": "automate", "gitops-path": str(clone)}, {"PATH": str(no_git)}
    )
    assert run.status == 1
    assert [ln for ln in run.log.splitlines() if ln.startswith("::")] == [
        "::error::git is not installed; it is needed to run the image update automation "
        "(command: automate)"
    ], run.log
    assert " -> " not in run.log  # no latestRef was computed: nothing was asked of the registry
    assert os.environ.get("PATH")  # the test's own PATH is untouched


@pytest.mark.parametrize("source", ["flux-system", "mirror", "missing"])
def test_source_ref_names_the_git_repository_pushed_to(
    tmp_path: Path, lab: dict[str, object], source: str
) -> None:
    """Two GitRepositories in the tree: the automation clones and pushes the one its
    ``sourceRef`` names (not the first one found); one it names that is absent is an error."""
    bare, clone = Path(str(lab["bare"])), Path(str(lab["clone"]))
    mirror = tmp_path / "mirror.git"
    git(tmp_path, "clone", "-q", "--bare", str(bare), str(mirror))
    # sorts before gotk-sync.yaml, so it is the first GitRepository read
    (clone / "flux/bootstrap/flux-system/a-mirror.yaml").write_text(
        "apiVersion: source.toolkit.fluxcd.io/v1\nkind: GitRepository\nmetadata:\n"
        "  name: mirror\n  namespace: flux-system\nspec:\n  interval: 1m0s\n"
        f"  ref:\n    branch: main\n  url: file://{mirror}\n"
    )
    git(clone, "add", "-A")
    git(clone, "commit", "-qm", "a second GitRepository")
    git(clone, "push", "-q", "origin", "main")
    git(mirror, "fetch", "-q", str(bare), "main:main")
    if source != "flux-system":
        _commit_edit(clone, AUTOMATION, "    name: flux-system\n", f"    name: {source}\n")
    heads = {p: git(p, "rev-parse", "main").strip() for p in (bare, mirror)}
    run = run_action(tmp_path, {"command": "automate", "gitops-path": str(clone)})
    if source == "missing":
        assert run.status == 1
        assert len(run.errors) == 1, run.log
        assert (
            "its sourceRef GitRepository flux-system:missing is not in the tree" in (run.errors[0])
        )
        assert {p: git(p, "rev-parse", "main").strip() for p in (bare, mirror)} == heads
        return
    assert run.status == 0, run.log
    pushed, untouched = (bare, mirror) if source == "flux-system" else (mirror, bare)
    assert git(pushed, "rev-parse", "main").strip() == run.outputs["commit"]
    assert git(pushed, "rev-parse", "main~1").strip() == heads[pushed]
    assert git(untouched, "rev-parse", "main").strip() == heads[untouched]
