"""The workflows as users run them: act on a real Docker engine, a real registry on loopback.

act builds the action from the project's own Dockerfile (only the base image substituted,
see testkit/docker.py), runs the reusable workflow through ``--local-repository``
exactly as a service repository calls ``acme/promote/.github/workflows/promote.yml@<sha>``,
and the action talks to a CNCF distribution registry on 127.0.0.1. Each test asserts the
registry state (tags and the exact manifest bytes behind them) and the outputs that reach
later jobs, not just exit codes.
"""

from __future__ import annotations

import re
import secrets
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from testkit.docker import ROOT, ActResult, action_ref
from testkit.github_server import GitHubServer, commit_all, init_repo
from testkit.proxy import Exchange, Fault, FaultProxy
from testkit.registry import RegistryServer
from testkit.seed import Seeded, Seeder
from tests.e2e.conftest import ActRunner, ServiceRepo

pytestmark = pytest.mark.e2e

EXAMPLE_CALLER_TEXT = (ROOT / "examples/workflows/service-promote.yml").read_text(encoding="utf-8")
EXAMPLE_IMAGE_LINE = "      image: ghcr.io/acme/backend\n"
REUSABLE = (ROOT / ".github/workflows/promote.yml").read_text(encoding="utf-8")
GATE_CALLER = (ROOT / "examples/workflows/gitops-gate.yml").read_text(encoding="utf-8")
GITOPS_EXAMPLE = ROOT / "examples" / "gitops"

OLD_TAG = "production-v1.4.2-aaaaaaa-1700000000"
_SET_OUTPUT = re.compile(r"::set-output:: (?P<name>[a-z-]+)=(?P<value>.*)$")


class History:
    """A repository with production at 1.4.2 (an older image) and a new staging image."""

    def __init__(self, server: RegistryServer, repo: str) -> None:
        self.server = server
        self.repo = repo
        self.image = f"{server.host}/{repo}"
        self.seeder: Seeder = server.seeder()
        self.old: Seeded = self.seeder.oci_image(repo, OLD_TAG, revision="a" * 40, layer_size=2048)
        self.seeder.tag(repo, OLD_TAG, "production")
        self.sha = secrets.token_hex(20)
        self.source_tag = f"staging-{self.sha[:7]}-1700000100"
        self.staging: Seeded = self.seeder.oci_image(repo, self.source_tag, revision=self.sha)
        self.tags_before = sorted(self.seeder.tags(repo))

    def close(self) -> None:
        self.seeder.close()

    def tags(self) -> list[str]:
        return sorted(self.seeder.tags(self.repo))

    def assert_points_at_staging(self, tag: str) -> None:
        """``tag`` serves the staging manifest byte for byte, with its media type."""
        data, content_type, digest = self.seeder.raw_manifest(self.repo, tag)
        assert data == self.staging.data
        assert content_type.split(";")[0] == self.staging.media_type
        assert digest == self.staging.digest

    def assert_unchanged(self) -> None:
        assert self.tags() == self.tags_before
        data, _, digest = self.seeder.raw_manifest(self.repo, "production")
        assert (data, digest) == (self.old.data, self.old.digest)


def example_caller(image: str) -> str:
    """The example caller with only its fixed image line pointed at the test registry."""
    assert EXAMPLE_CALLER_TEXT.count(EXAMPLE_IMAGE_LINE) == 1
    return EXAMPLE_CALLER_TEXT.replace(EXAMPLE_IMAGE_LINE, f"      image: {image}\n")


def dispatch_example(
    service_repo: ServiceRepo, act: ActRunner, history: History, inputs: dict[str, str]
) -> ActResult:
    """Run the example caller (image pointed at ``history``) with ``workflow_dispatch``."""
    repo = service_repo({"promote.yml": example_caller(history.image)})
    return act(repo, "workflow_dispatch", ".github/workflows/promote.yml", inputs=inputs)


def set_outputs(result: ActResult) -> dict[str, str]:
    """Single-line outputs the action set, as act logs them (``::set-output:: k=v``)."""
    found: dict[str, str] = {}
    for line in result.log.splitlines():
        match = _SET_OUTPUT.search(line)
        if match:
            found[match.group("name")] = match.group("value")
    return found


def job_ran(result: ActResult, job: str) -> bool:
    """Whether act ran a step of the reusable workflow's job ``job`` (``plan``, ``promote``)."""
    return f"/{job}] ⭐ Run Main" in result.log


def plan_summary(result: ActResult) -> dict[str, str]:
    """The plan job's approval summary rows (``| key | value |``), as act logs the step."""
    rows: dict[str, str] = {}
    for line in result.step_lines("| "):
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 2 and cells[0] and not cells[0].startswith("-"):
            rows[cells[0]] = cells[1].strip("`")
    return rows


def assert_planned_then_promoted(result: ActResult, history: History) -> None:
    """The plan job resolved the tag and summarised it before the gated job promoted it."""
    plan = plan_summary(result)
    assert plan["digest"] == history.staging.digest, plan
    assert plan["source"] == history.source_tag
    assert plan["previous production"].startswith(OLD_TAG)
    assert result.log.index("/plan] ⭐ Run Main") < result.log.index("/promote] ⭐ Run Main")
    assert any("Approve the promote job" in line for line in result.step_lines("Approve"))


def report(name: str, result: ActResult) -> None:
    print(f"\n[e2e] {name}: act exit {result.returncode} in {result.seconds:.1f}s")


def assert_new_tag(tag: str, version: str, sha: str, started: float) -> None:
    """``production-v<version>-<sha7>-<ts>`` with ts taken during the run."""
    match = re.fullmatch(rf"production-v{re.escape(version)}-{sha[:7]}-(?P<ts>[0-9]{{10}})", tag)
    assert match, tag
    assert started - 5 <= int(match.group("ts")) <= time.time() + 5


@pytest.fixture
def history(registry: RegistryServer, repo_path: str) -> Iterator[History]:
    seeded = History(registry, repo_path)
    yield seeded
    seeded.close()


def test_caller_workflow_promotes_and_a_later_job_reads_the_outputs(
    history: History, service_repo: ServiceRepo, act: ActRunner
) -> None:
    started = time.time()
    result = dispatch_example(service_repo, act, history, {"source-tag": history.source_tag})
    report("caller -> reusable workflow -> later job", result)
    assert result.returncode == 0, result.log[-8000:]

    out = result.values("promoted.")
    tag = out["tag"]
    assert_new_tag(tag, "1.4.3", history.sha, started)
    assert out == {
        "digest": history.staging.digest,
        "tag": tag,
        "version": "1.4.3",
        "tags": f"{history.image}:{tag} {history.image}:production",
        "image": f"{history.image}@{history.staging.digest}",
        "previous-tag": OLD_TAG,
        "previous-digest": history.old.digest,
    }
    # The registry: one new release tag (and the promotion record's referrers index), the
    # floating tag moved, bytes identical.
    record_index = "sha256-" + history.staging.digest.split(":", 1)[1]
    assert history.tags() == sorted([*history.tags_before, tag, record_index])
    history.assert_points_at_staging(tag)
    history.assert_points_at_staging("production")
    data, _, digest = history.seeder.raw_manifest(history.repo, OLD_TAG)
    assert (data, digest) == (history.old.data, history.old.digest)
    # The verify job is opt-in: no gitops-repo, so it did not run.
    assert "verify-flux" not in result.log
    # Planned (digest and tags shown for the approval), then the gated job promoted it.
    assert_planned_then_promoted(result, history)
    assert result.step_lines("record: ") == ["record: Production is now 1.4.3"]


def test_workflow_dispatch_with_inputs_and_a_registry_secret(
    basic_registry: RegistryServer,
    repo_path: str,
    service_repo: ServiceRepo,
    act: ActRunner,
    request: pytest.FixtureRequest,
) -> None:
    history = History(basic_registry, repo_path)
    request.addfinalizer(history.close)
    assert basic_registry.username and basic_registry.password
    repo = service_repo({"promote.yml": REUSABLE})
    started = time.time()
    result = act(
        repo,
        "workflow_dispatch",
        ".github/workflows/promote.yml",
        inputs={
            "image": history.image,
            "source-tag": history.source_tag,
            "version": "2.0.0",
            "username": basic_registry.username,
        },
        secrets={"REGISTRY_PASSWORD": basic_registry.password},
    )
    report("workflow_dispatch --input", result)
    assert result.returncode == 0, result.log[-8000:]

    out = set_outputs(result)
    assert_new_tag(out["tag"], "2.0.0", history.sha, started)
    assert out["version"] == "2.0.0"
    assert out["digest"] == history.staging.digest
    assert out["image"] == f"{history.image}@{history.staging.digest}"
    assert out["previous-tag"] == OLD_TAG
    assert out["previous-digest"] == history.old.digest
    assert out["changed"] == "true"
    record_index = "sha256-" + history.staging.digest.split(":", 1)[1]
    assert history.tags() == sorted([*history.tags_before, out["tag"], record_index])
    assert out["record-digest"].startswith("sha256:")
    history.assert_points_at_staging(out["tag"])
    history.assert_points_at_staging("production")
    assert basic_registry.password not in result.log
    assert_planned_then_promoted(result, history)


def test_dry_run_plans_everything_and_writes_nothing(
    history: History, service_repo: ServiceRepo, act: ActRunner
) -> None:
    started = time.time()
    result = dispatch_example(
        service_repo, act, history, {"source-tag": history.source_tag, "dry-run": "true"}
    )
    report("dry run", result)
    assert result.returncode == 0, result.log[-8000:]

    out = result.values("promoted.")
    assert_new_tag(out["tag"], "1.4.3", history.sha, started)
    assert out["digest"] == history.staging.digest
    assert out["previous-tag"] == OLD_TAG
    history.assert_unchanged()
    assert out["tag"] not in history.tags()
    # A dry run is planned and summarised, and never reaches the production job.
    assert plan_summary(result)["digest"] == history.staging.digest
    assert job_ran(result, "plan") and not job_ran(result, "promote")
    assert result.step_lines("record: ") == [
        "record: Dry run: production would become 1.4.3 (nothing written)"
    ]


def test_a_digest_already_in_production_asks_no_approval(
    history: History, service_repo: ServiceRepo, act: ActRunner
) -> None:
    history.seeder.tag(history.repo, history.source_tag, "production")
    history.seeder.tag(history.repo, history.source_tag, "production-v1.4.3-aaaaaaa-1700000200")
    before = history.tags()
    result = dispatch_example(service_repo, act, history, {"source-tag": history.source_tag})
    report("no change", result)
    assert result.returncode == 0, result.log[-8000:]
    assert job_ran(result, "plan") and not job_ran(result, "promote")
    assert result.step_lines("record: ") == [
        "record: Production already is 1.4.3 (nothing written)"
    ]
    assert history.tags() == before


def test_bad_input_fails_the_job_with_the_error_in_the_log(
    history: History, service_repo: ServiceRepo, act: ActRunner
) -> None:
    result = dispatch_example(service_repo, act, history, {"source-tag": "latest"})
    report("bad input", result)
    assert result.returncode != 0
    errors = [line for line in result.log.splitlines() if "::error::" in line]
    assert errors, result.log[-8000:]
    assert any("latest" in line and "source-tag" in line for line in errors), errors
    assert "Traceback" not in result.log
    # The plan failed: the production job and the later job never ran, nothing was written.
    assert result.values("promoted.") == {}
    assert not job_ran(result, "promote")
    history.assert_unchanged()


def test_a_tag_moved_after_the_plan_fails_the_gated_job_and_writes_nothing(
    history: History, service_repo: ServiceRepo, act: ActRunner
) -> None:
    """The approval is for the planned digest: the gated job gets it as source-digest, so a
    staging tag moved while the run waited for approval fails loudly instead of promoting
    the new image. The tag is moved (in the real registry) exactly when the gated job asks
    for it: the second GET of the tag through a proxy (the plan made the first)."""
    moved: list[str] = []

    def move_tag(_exchange: Exchange) -> None:
        other = history.seeder.oci_image(history.repo, history.source_tag, layer_size=4321)
        moved.append(other.digest)

    repo = service_repo({"promote.yml": REUSABLE})
    with FaultProxy(history.server.url) as proxy:
        tag_path = rf"/manifests/{re.escape(history.source_tag)}$"
        proxy.add(Fault.hook(move_tag), method="GET", path=tag_path, nth=[2])
        image = f"{proxy.host}/{history.repo}"
        result = act(
            repo,
            "workflow_dispatch",
            ".github/workflows/promote.yml",
            inputs={"image": image, "source-tag": history.source_tag},
        )
    report("tag moved after the plan", result)
    assert result.returncode != 0
    assert moved, "the gated job never asked for the tag"
    assert plan_summary(result)["digest"] == history.staging.digest
    errors = [line for line in result.log.splitlines() if "::error::" in line]
    assert any(
        f"now names {moved[0]}, not the given source-digest {history.staging.digest}" in line
        for line in errors
    ), errors
    assert "Traceback" not in result.log
    # Nothing was written: no production tag, production still the old release.
    tags = history.tags()
    assert not [t for t in tags if t.startswith("production-v") and t != OLD_TAG], tags
    data, _, digest = history.seeder.raw_manifest(history.repo, "production")
    assert (data, digest) == (history.old.data, history.old.digest)


@pytest.mark.parametrize("broken", [False, True], ids=["clean-tree", "latest-tag"])
def test_gitops_gate_aggregates_the_check(
    broken: bool, service_repo: ServiceRepo, act: ActRunner
) -> None:
    repo = service_repo({"gate.yml": GATE_CALLER})
    shutil.copytree(GITOPS_EXAMPLE, repo, dirs_exist_ok=True, ignore=_ignore_workflows)
    deployment = repo / "flux/apps/backend/production/deployment.yaml"
    if broken:
        text = deployment.read_text(encoding="utf-8")
        changed = re.sub(r"(image: \S+?):[^\s:]+(\s+#)", r"\1:latest\2", text, count=1)
        assert changed != text
        deployment.write_text(changed, encoding="utf-8")
    _commit(repo)
    result = act(repo, "push", ".github/workflows/gate.yml")
    report(f"gate ({'broken' if broken else 'clean'})", result)
    verdict = result.step_lines("gate: ")
    if broken:
        assert result.returncode != 0
        annotations = [line for line in result.log.splitlines() if "::error" in line]
        assert any("deployment.yaml" in line for line in annotations), annotations
        assert verdict == ["gate: check=failure plan=skipped"], result.log[-8000:]
        assert "::error::check: failure" in result.log
    else:
        assert result.returncode == 0, result.log[-8000:]
        assert verdict == ["gate: check=success plan=skipped"], result.log[-8000:]


def _ignore_workflows(directory: str, names: list[str]) -> list[str]:
    return [n for n in names if n in {".github", "__pycache__"}]


def _commit(repo: Path) -> None:
    git = ["git", "-c", "user.name=e2e", "-c", "user.email=e2e@example.invalid"]
    subprocess.run([*git, "add", "-A"], cwd=repo, check=True, capture_output=True)
    subprocess.run(
        [*git, "commit", "-q", "-m", "gitops"], cwd=repo, check=True, capture_output=True
    )


POLICY = "flux-system:backend-production"
DEPLOY = "flux/apps/backend/production/deployment.yaml"
GITOPS_TOKEN = "ghs_e2eGitopsToken0123456789abcdef"
_MARKER = re.compile(r'(image: \S+?):(\S+)(\s+# \{"\$imagepolicy": "' + POLICY + r'"\})')


class FluxAutomation:
    """Plays Flux's image automation: once a new production tag appears in the registry,
    commit it into the GitOps repository's marker (the verify job is polling meanwhile)."""

    def __init__(self, history: History, gitops: Path, polled: Callable[[], bool]) -> None:
        self.history, self.gitops, self.polled = history, gitops, polled
        self.tag = ""
        self.sha = ""
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        deadline = time.monotonic() + 240
        while not self._stop.is_set() and time.monotonic() < deadline:
            new = [
                t
                for t in self.history.seeder.tags(self.history.repo)
                if t.startswith("production-v") and t not in self.history.tags_before
            ]
            if new:
                while not self.polled() and time.monotonic() < deadline:
                    time.sleep(0.1)  # the verify job must see the stale marker first
                path = self.gitops / DEPLOY
                text = path.read_text(encoding="utf-8")
                path.write_text(_MARKER.sub(rf"\1:{new[0]}\3", text), encoding="utf-8")
                self.sha = commit_all(
                    self.gitops,
                    "Update from image update automation",
                    author=("fluxcdbot", "fluxcdbot@users.noreply.github.com"),
                )
                self.tag = new[0]
                return
            time.sleep(0.2)

    def stop(self) -> None:
        self._stop.set()
        self.thread.join(timeout=10)


@dataclass
class GitOpsRun:
    result: ActResult
    flux: FluxAutomation | None
    polls_unchanged: int  # conditional GETs of the GitOps ref answered 304


def dispatch_with_gitops(
    history: History,
    service_repo: ServiceRepo,
    act: ActRunner,
    tmp_path: Path,
    *,
    edit: Callable[[Path], None] | None = None,
    flux: bool = True,
    verify_timeout: str = "90",
) -> GitOpsRun:
    """Dispatch promote.yml with ``gitops-repo`` set: the example GitOps tree (``edit``
    may change it first) behind the local GitHub server, with a thread playing Flux's
    automation unless ``flux`` is false."""
    gitops = tmp_path / "gitops"
    shutil.copytree(GITOPS_EXAMPLE, gitops)
    if edit is not None:
        edit(gitops)
    init_repo(gitops)
    repo = service_repo({"promote.yml": REUSABLE})
    with GitHubServer(token=GITOPS_TOKEN) as github:
        github.add_repo("acme/gitops", gitops)
        ref_path = "/repos/acme/gitops/git/refs/heads/main"
        automation = (
            FluxAutomation(history, gitops, lambda: github.count("GET", ref_path, status=304) >= 1)
            if flux
            else None
        )
        try:
            result = act(
                repo,
                "workflow_dispatch",
                ".github/workflows/promote.yml",
                inputs={
                    "image": history.image,
                    "source-tag": history.source_tag,
                    "gitops-repo": "acme/gitops",
                    "policy": POLICY,
                    "verify-timeout": verify_timeout,
                },
                secrets={"GITOPS_TOKEN": GITOPS_TOKEN},
                env={"GITHUB_API_URL": github.url},
            )
        finally:
            if automation is not None:
                automation.stop()
        return GitOpsRun(result, automation, github.count("GET", ref_path, status=304))


def test_promotion_then_verify_flux_job_waits_for_the_automation_commit(
    history: History, service_repo: ServiceRepo, act: ActRunner, tmp_path: Path
) -> None:
    run = dispatch_with_gitops(history, service_repo, act, tmp_path)
    result, flux = run.result, run.flux
    assert flux is not None
    report("promote + verify-flux", result)
    assert result.returncode == 0, result.log[-8000:]
    out = set_outputs(result)
    assert flux.tag and out["tag"] == flux.tag
    assert out["synced"] == "true"
    assert out["commit"] == flux.sha
    assert out["files"] == DEPLOY
    history.assert_points_at_staging(flux.tag)
    # It polled (conditionally) before the automation's commit existed, then saw it.
    assert run.polls_unchanged >= 1
    assert GITOPS_TOKEN not in result.log


def test_a_no_change_plan_still_verifies_flux_for_the_current_tag(
    history: History, service_repo: ServiceRepo, act: ActRunner, tmp_path: Path
) -> None:
    """The digest already is production (e.g. a re-dispatch after verify-flux timed out):
    no approval is asked, but verify-flux still checks that Flux committed the current tag,
    the plan's, exactly as the single-job workflow did before the plan/promote split."""
    current = "production-v1.4.3-aaaaaaa-1700000200"
    history.seeder.tag(history.repo, history.source_tag, "production")
    history.seeder.tag(history.repo, history.source_tag, current)
    # Flux commits the current tag once verify-flux has seen the stale marker.
    run = dispatch_with_gitops(history, service_repo, act, tmp_path)
    result, flux = run.result, run.flux
    assert flux is not None
    report("no change + verify-flux", result)
    assert result.returncode == 0, result.log[-8000:]
    assert job_ran(result, "plan") and not job_ran(result, "promote")
    assert job_ran(result, "verify-flux")
    out = set_outputs(result)
    assert flux.tag == current
    assert out["synced"] == "true" and out["commit"] == flux.sha


def _production_policy_keeps_the_oldest(gitops: Path) -> None:
    policies = gitops / "flux/bootstrap/infrastructure/image-automation/image-policies-backend.yaml"
    head, sep, production = policies.read_text(encoding="utf-8").rpartition(
        "name: backend-production"
    )
    assert sep and production.count("order: asc") == 1
    policies.write_text(head + sep + production.replace("order: asc", "order: desc"))


def test_the_plan_refuses_a_tag_the_gitops_image_policy_would_not_select(
    history: History, service_repo: ServiceRepo, act: ActRunner, tmp_path: Path
) -> None:
    """With gitops-repo the plan checks the new tag against that repository's own
    ImagePolicy, so reviewers are never asked to approve a promotion Flux would not deploy:
    here the production policy orders by timestamp descending (Flux keeps the oldest), the
    plan fails with the reason, the gated job never runs and nothing is written."""
    run = dispatch_with_gitops(
        history,
        service_repo,
        act,
        tmp_path,
        edit=_production_policy_keeps_the_oldest,
        flux=False,
        verify_timeout="30",
    )
    result = run.result
    report("plan against the GitOps ImagePolicy", result)
    assert result.returncode != 0
    errors = [line for line in result.log.splitlines() if "::error::" in line]
    assert any("/plan]" in line and "Flux would not select" in line for line in errors), errors
    assert not job_ran(result, "promote") and not job_ran(result, "verify-flux")
    assert "Traceback" not in result.log and GITOPS_TOKEN not in result.log
    history.assert_unchanged()


def gate_caller_with_plan(sha: str) -> str:
    """A GitOps repo's gate that also asks for a dry-run plan (inputs from the dispatch)."""
    return f"""name: gate
on:
  workflow_dispatch:
    inputs:
      image: {{type: string, required: true}}
      source-tag: {{type: string, required: true}}
permissions: {{}}
jobs:
  gate:
    permissions:
      contents: read
      packages: read
    uses: acme/promote/.github/workflows/gate.yml@{sha} # v0.1.0
    with:
      gitops-path: .
      image: ${{{{ inputs.image }}}}
      source-tag: ${{{{ inputs.source-tag }}}}
"""


@pytest.mark.parametrize("good_source", [True, False], ids=["plan-ok", "plan-fails"])
def test_gate_plan_is_a_dry_run_and_counts_in_the_result(
    good_source: bool, history: History, service_repo: ServiceRepo, act: ActRunner
) -> None:
    repo = service_repo({"gate.yml": gate_caller_with_plan(action_ref())})
    shutil.copytree(GITOPS_EXAMPLE, repo, dirs_exist_ok=True, ignore=_ignore_workflows)
    _commit(repo)
    source = history.source_tag if good_source else "staging-nosuchtag-1700000000"
    result = act(
        repo,
        "workflow_dispatch",
        ".github/workflows/gate.yml",
        inputs={"image": history.image, "source-tag": source},
    )
    report(f"gate with plan ({'ok' if good_source else 'failing'})", result)
    verdict = result.step_lines("gate: ")
    if good_source:
        assert result.returncode == 0, result.log[-8000:]
        assert verdict == ["gate: check=success plan=success"]
        assert re.search(r"::set-output:: tag=production-v1\.4\.3-", result.log)
    else:
        assert result.returncode != 0
        assert verdict == ["gate: check=success plan=failure"], result.log[-8000:]
        assert "::error::plan: failure" in result.log
    history.assert_unchanged()
