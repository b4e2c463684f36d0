"""The threat model's claims about the shipped workflows, checked on the parsed files
(docs/security.md §1, docs/concurrency.md, docs/workflows.md).

Not grep: each workflow is loaded as YAML, and the expressions that decide something (a
job's ``if:``, the reusable workflow's outputs, credentials) are evaluated with
:mod:`testkit.expressions` for the cases that matter (dry run, nothing to change, a
real promotion), so a change that keeps the words but changes the decision fails here.
What act and these files cannot show (environments, protection rules, token permissions,
OIDC, concurrency on GitHub) is listed in docs/workflows.md.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from promote.frontdoor.commands import verify_flux_cmd
from testkit.expressions import evaluate, interpolate, job_runs

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = ROOT / ".github" / "workflows"
PROMOTE = WORKFLOWS / "promote.yml"
GATE = WORKFLOWS / "gate.yml"
EXAMPLES = ROOT / "examples" / "workflows"
SHIPPED = sorted(WORKFLOWS.glob("*.yml"))
ALL = [*SHIPPED, *sorted(EXAMPLES.glob("*.yml"))]
PLAN_OUTPUTS = (
    "digest",
    "tag",
    "version",
    "tags",
    "image",
    "previous-tag",
    "previous-digest",
    # the promotion record (issue 16); predicate-path is a file on the gated job's runner,
    # which no caller job can read, so it is not a workflow output
    "record-digest",
    "predicate-type",
)
#: What the gated job can write with, and the only place it may be read.
PRODUCTION_SECRET = "PRODUCTION_REGISTRY_PASSWORD"
#: verify-timeout above this is refused; the verify job's own limit must leave room for it.
MAX_VERIFY_TIMEOUT = 21000


def load(path: Path) -> dict[str, Any]:
    doc: dict[Any, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    # PyYAML reads the bare key `on` as the boolean True (YAML 1.1)
    if True in doc:
        doc["on"] = doc.pop(True)
    return doc


def jobs(path: Path) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = load(path)["jobs"]
    return found


def action_steps(job: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for step in job.get("steps", []):
        if str(step.get("uses", "")).startswith("acme/promote@"):
            yield step


def only_action_step(job: dict[str, Any]) -> dict[str, Any]:
    (step,) = list(action_steps(job))
    return step


def strings(node: Any) -> Iterator[str]:
    """Every string value under ``node`` (for "where is this secret read" checks)."""
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for value in node.values():
            yield from strings(value)
    elif isinstance(node, list):
        for value in node:
            yield from strings(value)


def context(*, dry_run: bool, changed: str, gated: dict[str, str] | None) -> dict[str, Any]:
    """The expression context after the plan job, for one of the cases below."""
    plan = {name: f"plan-{name}" for name in PLAN_OUTPUTS} | {"changed": changed}
    promote = gated or {}
    return {
        "inputs": {"dry-run": dry_run, "image": "ghcr.io/acme/backend"},
        "needs": {"plan": {"outputs": plan}},
        "jobs": {"plan": {"outputs": plan}, "promote": {"outputs": promote}},
    }


#: (id, dry-run, the plan's `changed`, whether the gated job must run)
CASES = [
    ("promotion", False, "true", True),
    ("dry-run", True, "true", False),
    ("dry-run-no-change", True, "false", False),
    ("no-change", False, "false", False),
]


# --- triggers, the split and what flows between the jobs ---------------------------------


def test_only_dispatch_and_call_can_start_a_promotion() -> None:
    assert set(load(PROMOTE)["on"]) == {"workflow_dispatch", "workflow_call"}


def test_plan_then_a_gated_job_that_promotes_the_planned_digest() -> None:
    plan, promote = jobs(PROMOTE)["plan"], jobs(PROMOTE)["promote"]
    # The plan: no environment, a dry run of the same request, its results as outputs.
    assert "environment" not in plan and "needs" not in plan
    planned = only_action_step(plan)["with"]
    assert planned["command"] == "promote" and planned["dry-run"] == "true"
    for name in ("image", "source-tag", "source-digest", "version", "bump", "commit-sha"):
        assert planned[name] == f"${{{{ inputs.{name} }}}}", name
    step_id = only_action_step(plan)["id"]
    for name in (*PLAN_OUTPUTS, "changed"):
        assert plan["outputs"][name] == f"${{{{ steps.{step_id}.outputs.{name} }}}}"
    # The gated job: after the plan, in production, the PLANNED digest plus the tag (the
    # action refuses the tag if it names another digest by then).
    assert promote["needs"] in ("plan", ["plan"])
    env = promote["environment"]
    assert (env if isinstance(env, str) else env["name"]) == "production"
    written = only_action_step(promote)["with"]
    assert written["command"] == "promote" and "dry-run" not in written
    assert written["source-digest"] == "${{ needs.plan.outputs.digest }}"
    assert written["source-tag"] == "${{ inputs.source-tag }}"
    assert written["image"] == planned["image"]
    # `record` (issue 16) reaches the step that writes; both triggers take it, default true
    assert written["record"] == "${{ inputs.record }}"
    for trigger in ("workflow_call", "workflow_dispatch"):
        spec = load(PROMOTE)["on"][trigger]["inputs"]["record"]
        assert (spec["type"], spec["default"]) == ("boolean", True), trigger


@pytest.mark.parametrize(("case", "dry_run", "changed", "runs"), CASES, ids=[c[0] for c in CASES])
def test_dry_runs_and_no_change_plans_never_reach_the_gated_job(
    case: str, dry_run: bool, changed: str, runs: bool
) -> None:
    gate = jobs(PROMOTE)["promote"]["if"]
    assert evaluate(gate, context(dry_run=dry_run, changed=changed, gated=None)) is runs


@pytest.mark.parametrize(("case", "dry_run", "changed", "runs"), CASES, ids=[c[0] for c in CASES])
def test_outputs_come_from_the_gated_job_or_when_it_is_skipped_from_the_plan(
    case: str, dry_run: bool, changed: str, runs: bool
) -> None:
    outputs = load(PROMOTE)["on"]["workflow_call"]["outputs"]
    gated = {name: f"gated-{name}" for name in (*PLAN_OUTPUTS, "changed")} if runs else None
    ctx = context(dry_run=dry_run, changed=changed, gated=gated)
    for name in (*PLAN_OUTPUTS, "changed"):
        got = interpolate(outputs[name]["value"], ctx)
        if runs:
            assert got == f"gated-{name}", (case, name)
        else:
            assert got == (changed if name == "changed" else f"plan-{name}"), (case, name)
    # The gated job failed (ran, set nothing): the plan's values are NOT reported as done.
    failed = context(dry_run=False, changed="true", gated={})
    for name in (*PLAN_OUTPUTS, "changed"):
        assert interpolate(outputs[name]["value"], failed) == "", name


def test_callers_see_image_and_tag_in_the_run_name() -> None:
    ctx = {"inputs": {"image": "ghcr.io/acme/backend", "source-tag": "staging-abc1234-1"}}
    name = interpolate(load(PROMOTE)["run-name"], ctx | {"inputs": ctx["inputs"] | {}})
    assert "ghcr.io/acme/backend" in name and "staging-abc1234-1" in name
    dry = interpolate(load(PROMOTE)["run-name"], {"inputs": ctx["inputs"] | {"dry-run": True}})
    assert dry.endswith("(dry run)")
    caller = load(EXAMPLES / "service-promote.yml")["run-name"]
    assert "staging-abc1234-1" in interpolate(caller, ctx)


def test_the_example_caller_fixes_its_image() -> None:
    caller = load(EXAMPLES / "service-promote.yml")
    assert "image" not in caller["on"]["workflow_dispatch"]["inputs"]
    image = caller["jobs"]["promote"]["with"]["image"]
    assert re.fullmatch(r"[a-z0-9.-]+/[a-z0-9./-]+", image), image  # a literal, no ${{ }}
    assert "inputs.image" not in caller["concurrency"]["group"]


# --- credentials and permissions ---------------------------------------------------------


RELEASE = WORKFLOWS / "release.yml"
#: The release workflow is the one that writes more than packages; each write sits in the one
#: job that uses it, so no step holds a permission another job's step needs.
RELEASE_PERMISSIONS = {
    "test": {"contents": "read"},
    # make release: push the image and its tags; builds and runs code, writes nothing else.
    "release": {"contents": "read", "packages": "write"},
    # actions/attest-build-provenance only: sign (OIDC) and store the attestation.
    "attest": {"id-token": "write", "attestations": "write"},
    # push vX.Y.Z, move vX, create the GitHub Release; runs no build.
    "publish": {"contents": "write"},
}


@pytest.mark.parametrize("path", ALL, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_job_declares_least_privilege(path: Path) -> None:
    doc = load(path)
    assert doc["permissions"] == {}
    for name, job in doc["jobs"].items():
        perms = job.get("permissions")
        assert isinstance(perms, dict), f"{path.name}:{name} must declare its permissions"
        if path == RELEASE:
            assert perms == RELEASE_PERMISSIONS.get(name), f"release.yml:{name} asks for {perms}"
            continue
        writes = {k for k, v in perms.items() if v == "write"}
        assert writes <= {"packages"}, f"{path.name}:{name} asks for {writes}"
        assert "id-token" not in perms


def test_release_writes_sit_in_the_jobs_that_use_them() -> None:
    found = jobs(RELEASE)
    assert set(found) == set(RELEASE_PERMISSIONS)
    # Only the attest job can mint an OIDC token, and it runs nothing but the pinned action.
    attest = found["attest"]["steps"]
    assert [s.get("uses", "").split("@")[0] for s in attest] == ["actions/attest-build-provenance"]
    # The job holding contents: write builds nothing and runs no project code.
    publish = " ".join(s.get("run", "") for s in found["publish"]["steps"])
    assert "make" not in publish.split() and ".ci/run" not in publish
    # The job that builds and runs code never sees a token that can push to the repository.
    assert found["release"]["environment"] == "release"
    assert found["publish"]["needs"] == ["release", "attest"]


def test_permissions_per_job() -> None:
    want = {
        PROMOTE: {
            "plan": {"contents": "read", "packages": "read"},
            "promote": {"contents": "read", "packages": "write"},
            "verify": {"contents": "read", "packages": "read"},
        },
        GATE: {
            "check": {"contents": "read"},
            "plan": {"contents": "read", "packages": "read"},
            "result": {},
        },
    }
    for path, per_job in want.items():
        assert {name: job["permissions"] for name, job in jobs(path).items()} == per_job


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_no_job_that_can_write_packages_lacks_an_environment(path: Path) -> None:
    for name, job in jobs(path).items():
        if job.get("permissions", {}).get("packages") == "write":
            assert job.get("environment"), f"{path.name}:{name} writes without an environment"


def test_the_production_credential_is_read_only_by_the_gated_job() -> None:
    doc = load(PROMOTE)
    declared = doc["on"]["workflow_call"]["secrets"][PRODUCTION_SECRET]
    assert declared["required"] is False
    for name, job in doc["jobs"].items():
        reads = [s for s in strings(job) if PRODUCTION_SECRET in s]
        if name == "promote":
            assert reads
        else:
            assert not reads, f"{name} reads {PRODUCTION_SECRET}"
    # With it set it is the password (and its user name applies); without it, simple mode.
    written = only_action_step(doc["jobs"]["promote"])["with"]
    hardened = {
        "secrets": {PRODUCTION_SECRET: "env-secret", "REGISTRY_PASSWORD": "repo-secret"},
        "inputs": {"username": "builder", "production-username": "promoter"},
    }
    assert interpolate(written["password"], hardened) == "env-secret"
    assert interpolate(written["username"], hardened) == "promoter"
    simple = {"secrets": {"REGISTRY_PASSWORD": "repo-secret"}, "inputs": {"username": "builder"}}
    assert interpolate(written["password"], simple) == "repo-secret"
    assert interpolate(written["username"], simple) == "builder"
    # Callers never pass it: it lives in their production environment.
    assert "secrets" not in load(EXAMPLES / "service-promote.yml")["jobs"]["promote"]


def test_the_gated_job_runs_only_the_pinned_action() -> None:
    promote = jobs(PROMOTE)["promote"]
    assert [s["uses"] for s in promote["steps"] if "uses" in s] == [
        only_action_step(promote)["uses"]
    ]
    # Any other step is a guard before the write that never sees a secret's value.
    for step in promote["steps"]:
        if "uses" not in step:
            for value in strings(step.get("env", {})):
                assert re.fullmatch(r"\$\{\{ secrets\.[A-Z_]+ != '' \}\}", value) or (
                    "secrets." not in value
                ), value


def _run_guard(step: dict[str, Any], ctx: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    env = {k: interpolate(str(v), ctx) for k, v in step.get("env", {}).items()}
    return subprocess.run(
        ["bash", "-e", "-c", step["run"]],
        env={"PATH": os.environ["PATH"], **env},
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.mark.parametrize(
    ("required", "secret", "refused"),
    [(True, None, True), (True, "env-secret", False), (False, None, False)],
    ids=["hardened-without-credential", "hardened", "simple"],
)
def test_hardened_mode_fails_closed_without_the_environment_credential(
    required: bool, secret: str | None, refused: bool
) -> None:
    """With require-production-credential the gated job never falls back to
    REGISTRY_PASSWORD or github.token: an environment without the secret (a new one GitHub
    created on first use, a renamed one) fails the job before the write."""
    doc = load(PROMOTE)
    for trigger in ("workflow_call", "workflow_dispatch"):
        spec = doc["on"][trigger]["inputs"]["require-production-credential"]
        assert spec["type"] == "boolean" and spec["default"] is False, trigger
    promote = doc["jobs"]["promote"]
    steps = promote["steps"]
    before_write = steps[: steps.index(only_action_step(promote))]
    (guard,) = [s for s in before_write if "run" in s]
    assert "secrets." not in guard.get("if", "")  # GitHub refuses secrets in a step's if:
    secrets = {"REGISTRY_PASSWORD": "repo-secret"} | ({PRODUCTION_SECRET: secret} if secret else {})
    ctx = {"inputs": {"require-production-credential": required}, "secrets": secrets}
    ran = evaluate(guard.get("if", "true"), ctx) is True
    result = _run_guard(guard, ctx) if ran else None
    assert (result is not None and result.returncode != 0) is refused, result
    if result is not None and refused:
        errors = [line for line in result.stdout.splitlines() if line.startswith("::error::")]
        assert len(errors) == 1 and PRODUCTION_SECRET in errors[0], result.stdout
        assert "nothing was written" in errors[0]


#: (id, dry-run, plan result, plan's `changed`, gated job result, verify runs, expected tag)
VERIFY_CASES = [
    ("promotion", False, "success", "true", "success", True, "gated-tag"),
    # the digest already is production: no approval asked, but Flux is still verified (as
    # before the split; a re-dispatch after a verify timeout verifies again)
    ("no-change", False, "success", "false", "skipped", True, "plan-tag"),
    ("dry-run", True, "success", "true", "skipped", False, None),
    ("gated-job-failed", False, "success", "true", "failure", False, None),
    ("gated-job-not-approved", False, "success", "true", "skipped", False, None),
    ("plan-failed", False, "failure", "", "skipped", False, None),
]


@pytest.mark.parametrize(
    ("case", "dry_run", "planned", "changed", "gated", "runs", "expected"),
    VERIFY_CASES,
    ids=[c[0] for c in VERIFY_CASES],
)
def test_verify_flux_runs_after_a_promotion_and_after_a_no_change_plan(
    case: str,
    dry_run: bool,
    planned: str,
    changed: str,
    gated: str,
    runs: bool,
    expected: str | None,
) -> None:
    verify = jobs(PROMOTE)["verify"]
    plan_outputs = {"changed": changed, "tag": "plan-tag"} if planned == "success" else {}
    gated_outputs = {"tag": "gated-tag"} if gated == "success" else {}
    ctx: dict[str, Any] = {
        "inputs": {"dry-run": dry_run, "gitops-repo": "acme/gitops"},
        "needs": {
            "plan": {"result": planned, "outputs": plan_outputs},
            "promote": {"result": gated, "outputs": gated_outputs},
        },
    }
    assert job_runs(verify, ctx) is runs
    assert job_runs(verify, ctx | {"cancelled": True}) is False
    assert job_runs(verify, ctx | {"inputs": ctx["inputs"] | {"gitops-repo": ""}}) is False
    if runs:
        step = only_action_step(verify)
        assert interpolate(step["with"]["expected-tag"], ctx) == expected


def test_the_plan_predicts_flux_with_the_callers_image_policy() -> None:
    """With gitops-repo the plan checks the new tag against the GitOps repository's own
    ImagePolicy before anyone is asked to approve (not only the default policy)."""
    planned = only_action_step(jobs(PROMOTE)["plan"])["with"]
    for name in ("gitops-repo", "gitops-ref", "policy"):
        assert planned.get(name) == f"${{{{ inputs.{name} }}}}", name


@pytest.mark.parametrize("job", ["plan", "verify"])
def test_verify_reads_the_registry_with_its_own_token_never_the_gitops_token(job: str) -> None:
    step = only_action_step(jobs(PROMOTE)[job])
    secrets = {"GITOPS_TOKEN": "gitops-token"}
    for image, want in (("ghcr.io/acme/backend", "job-token"), ("registry.example/app", "")):
        ctx = {"secrets": secrets, "github": {"token": "job-token"}, "inputs": {"image": image}}
        assert interpolate(step["with"]["password"], ctx) == want, image
        assert interpolate(step["with"]["github-token"], ctx) == "gitops-token"
    ctx = {"secrets": secrets | {"REGISTRY_PASSWORD": "pw"}, "inputs": {"image": "ghcr.io/a/b"}}
    assert interpolate(step["with"]["password"], ctx) == "pw"


@pytest.mark.parametrize("path", ALL, ids=lambda p: str(p.relative_to(ROOT)))
def test_actions_pinned_scripts_take_values_only_from_env(path: Path) -> None:
    for name, job in load(path)["jobs"].items():
        if "uses" in job:
            assert re.fullmatch(
                r"[\w.-]+/[\w.-]+/\.github/workflows/[\w.-]+@[0-9a-f]{40}", job["uses"]
            )
        for step in job.get("steps", []):
            if "uses" in step:
                assert re.fullmatch(r"[\w.-]+/[\w./-]+@[0-9a-f]{40}", step["uses"]), step["uses"]
            else:
                assert "${{" not in step["run"], f"{path.name}:{name}: use env:"
            for key, value in (step.get("with") or {}).items():
                if key in ("password", "github-token"):
                    assert "secrets." in str(value) or "github.token" in str(value)
    assert "secrets: inherit" not in path.read_text(encoding="utf-8")


# --- concurrency and time limits ---------------------------------------------------------


def test_one_promotion_per_image_never_cancelled() -> None:
    concurrency = jobs(PROMOTE)["promote"]["concurrency"]
    assert concurrency["group"] == "promote-production-${{ inputs.image }}"
    assert concurrency["cancel-in-progress"] is False
    # The plan never queues behind another request: its group is this run's own.
    plan = jobs(PROMOTE)["plan"]["concurrency"]
    a = {"github": {"run_id": "1"}, "inputs": {"image": "ghcr.io/acme/backend"}}
    b = {"github": {"run_id": "2"}, "inputs": {"image": "ghcr.io/acme/backend"}}
    c = {"github": {"run_id": "1"}, "inputs": {"image": "ghcr.io/acme/frontend"}}
    groups = {interpolate(plan["group"], ctx) for ctx in (a, b, c)}
    assert len(groups) == 3 and plan["cancel-in-progress"] is False
    # A caller's own group must not be the callee's (it would wait for itself).
    caller = load(EXAMPLES / "service-promote.yml")["concurrency"]["group"]
    assert not caller.startswith("promote-production-")


def test_two_gate_calls_in_one_run_never_share_a_group() -> None:
    doc = load(GATE)
    inputs = doc["on"]["workflow_call"]["inputs"]
    base = {name: spec.get("default", "") for name, spec in inputs.items()}
    github = {"workflow": "gate", "ref": "refs/pull/7/merge"}
    for job_id in ("check", "plan"):
        concurrency = doc["jobs"][job_id]["concurrency"]
        group = concurrency["group"]
        one = interpolate(group, {"github": github, "inputs": base})
        for name in inputs:  # any input differing between two calls separates them
            other = base | {name: f"{base[name]}x"}
            assert interpolate(group, {"github": github, "inputs": other}) != one, name
        for key, value in (("workflow", "other"), ("ref", "refs/heads/main")):
            assert interpolate(group, {"github": github | {key: value}, "inputs": base}) != one


def test_timeouts_agree() -> None:
    doc = load(PROMOTE)
    verify = doc["jobs"]["verify"]
    assert verify_flux_cmd.MAX_TIMEOUT >= MAX_VERIFY_TIMEOUT
    # The job limit leaves at least 5 minutes beyond the longest wait for start-up.
    assert verify["timeout-minutes"] * 60 >= MAX_VERIFY_TIMEOUT + 300
    assert verify["timeout-minutes"] <= 360  # GitHub-hosted runners' job limit
    guard = verify["steps"][0]
    for seconds, refused in ((600, False), (MAX_VERIFY_TIMEOUT, False), (21001, True)):
        assert evaluate(guard["if"], {"inputs": {"verify-timeout": seconds}}) is refused
    assert "exit 1" in guard["run"] and "::error::" in guard["run"]
    for trigger in ("workflow_call", "workflow_dispatch"):
        assert (
            str(MAX_VERIFY_TIMEOUT) in doc["on"][trigger]["inputs"]["verify-timeout"]["description"]
        )
