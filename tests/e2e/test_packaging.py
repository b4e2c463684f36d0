"""The action image and the workflows, checked statically (fast) and built for real (e2e).

Static rules: the base image pinned by tag and digest behind the one ``BASE_IMAGE`` build
argument; hash-locked wheels; no USER/WORKDIR/``# syntax=``/``RUN --mount``; absolute
exec-form ENTRYPOINT. Every ``uses:`` pinned by a full sha with a version comment, one
action sha everywhere, no expression inside a ``run:`` script, the action's ``with:`` keys
and outputs as ``action.yml`` declares them, the promote job's environment, concurrency
and permissions, and the gate's always-running aggregator.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from promote.frontdoor.commands import COMMANDS
from testkit import docker as d
from testkit.docker import ROOT

DOCKERFILE = (ROOT / "Dockerfile").read_text(encoding="utf-8")
WORKFLOW_FILES = sorted(
    [*(ROOT / ".github/workflows").glob("*.yml"), *(ROOT / "examples/workflows").glob("*.yml")]
)
SHA_PIN = re.compile(r"^[\w.-]+/[\w.-]+(/[\w./-]+)?@[0-9a-f]{40}$")
#: Most an image may add on top of its base: the wheels (~35 MB) and the package.
MAX_IMAGE_GROWTH = 60 * 1024 * 1024


def load(path: Path) -> dict[str, Any]:
    data: dict[Any, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    if True in data:  # YAML 1.1 reads the key `on` as a boolean
        data["on"] = data.pop(True)
    return data


def action_yml() -> dict[str, Any]:
    return load(ROOT / "action.yml")


def steps(workflow: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for job_id, job in workflow["jobs"].items():
        for step in job.get("steps", []):
            yield job_id, step


# --- Dockerfile and requirements ---------------------------------------------------------


def test_base_image_is_pinned_by_tag_and_digest() -> None:
    base = d.dockerfile_base(DOCKERFILE)
    assert re.fullmatch(r"python:3\.11-slim-bookworm@sha256:[0-9a-f]{64}", base), base
    froms = [line for line in DOCKERFILE.splitlines() if line.upper().startswith("FROM ")]
    assert froms == ["FROM ${BASE_IMAGE}"]


def test_substituting_the_base_changes_one_line_only() -> None:
    swapped = d.with_base_image(DOCKERFILE, "promote-test-base:abc")
    before, after = DOCKERFILE.splitlines(), swapped.splitlines()
    assert len(before) == len(after)
    diff = [(a, b) for a, b in zip(before, after, strict=True) if a != b]
    assert diff == [
        (f"ARG BASE_IMAGE={d.dockerfile_base(DOCKERFILE)}", "ARG BASE_IMAGE=promote-test-base:abc")
    ]


def test_dockerfile_follows_the_runner_rules() -> None:
    instructions = [
        line.split()[0].upper()
        for line in DOCKERFILE.splitlines()
        if line.strip() and not line.startswith((" ", "#"))
    ]
    assert "USER" not in instructions
    assert "WORKDIR" not in instructions
    assert not re.search(r"^#\s*syntax\s*=", DOCKERFILE, re.MULTILINE | re.IGNORECASE)
    assert "--mount" not in DOCKERFILE
    entrypoints = [line for line in DOCKERFILE.splitlines() if line.startswith("ENTRYPOINT")]
    assert len(entrypoints) == 1
    exec_form = json.loads(entrypoints[0].removeprefix("ENTRYPOINT"))
    assert isinstance(exec_form, list) and exec_form[0].startswith("/"), exec_form
    copies = [line.split()[1] for line in DOCKERFILE.splitlines() if line.startswith("COPY")]
    assert sorted(copies) == ["entrypoint.py", "promote", "requirements/runtime.txt"]
    assert re.search(r"pip install --require-hashes --no-deps --only-binary=:all:", DOCKERFILE)
    assert "PYTHONDONTWRITEBYTECODE=1" in DOCKERFILE
    assert "PIP_NO_CACHE_DIR=1" in DOCKERFILE


def _requirements(name: str = "runtime.txt") -> dict[str, list[str]]:
    """name -> hashes, from requirements/<name> (backslash-continued entries)."""
    text = (ROOT / "requirements" / name).read_text(encoding="utf-8")
    found: dict[str, list[str]] = {}
    for line in re.sub(r"\\\n\s*", " ", text).splitlines():
        entry = line.split("#", 1)[0].strip()
        if not entry:
            continue
        requirement, *options = entry.split()
        assert "==" in requirement, f"not pinned: {entry}"
        hashes = [o.removeprefix("--hash=sha256:") for o in options if o.startswith("--hash=")]
        assert hashes and all(re.fullmatch(r"[0-9a-f]{64}", h) for h in hashes), entry
        found[_norm(requirement.split("==")[0])] = hashes
    return found


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_runtime_requirements_are_hash_locked_and_match_the_project() -> None:
    import tomllib

    locked = _requirements()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    declared = {
        _norm(re.split(r"[<>=!~\[; ]", dep)[0]) for dep in project["project"]["dependencies"]
    }
    assert declared <= set(locked), declared - set(locked)
    lines = (ROOT / "requirements/runtime.in").read_text(encoding="utf-8").splitlines()
    direct = {_norm(re.split(r"[<>=!~\[; ]", s)[0]) for s in lines if s and not s.startswith("#")}
    assert direct == declared


def _versions(name: str) -> dict[str, str]:
    text = (ROOT / "requirements" / name).read_text(encoding="utf-8")
    pins = re.findall(r"^([A-Za-z0-9_.-]+)==(\S+)", text, re.MULTILINE)
    return {_norm(n): v for n, v in pins}


def test_dev_tools_are_hash_locked_and_installed_only_from_the_lock() -> None:
    import tomllib

    locked = _requirements("dev.txt")  # every entry pinned with ==, every one hashed
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    wanted = [
        *project["project"]["dependencies"],
        *project["project"]["optional-dependencies"]["dev"],
    ]
    declared = {_norm(re.split(r"[<>=!~\[; ]", dep)[0]) for dep in wanted}
    assert declared <= set(locked), declared - set(locked)
    # pip and the build backend come from the lock too (no unpinned upgrade, no isolated
    # build fetching setuptools), and the runtime packages match the image's lock exactly.
    assert {"pip", "setuptools"} <= set(locked)
    backend = project["build-system"]["requires"]
    assert backend == ["setuptools>=77"], backend
    assert int(_versions("dev.txt")["setuptools"].split(".")[0]) >= 77
    runtime, dev = _versions("runtime.txt"), _versions("dev.txt")
    assert {n: dev[n] for n in runtime} == runtime
    recipe = (ROOT / "Makefile").read_text(encoding="utf-8").split("$(STAMP):", 1)[1]
    recipe = recipe.split("\n\n", 1)[0]
    installs = [line.strip() for line in recipe.splitlines() if "pip install" in line]
    assert installs == [
        "$(PY) -m pip install -q --require-hashes --no-deps -r requirements/dev.txt",
        "$(PY) -m pip install -q --no-deps --no-build-isolation -e .",
    ]
    assert "--upgrade" not in recipe
    assert "requirements/dev.txt" in recipe.splitlines()[0]  # a new lock re-installs


def _scorecard_from_lines(dockerfile: str) -> list[tuple[str, bool]]:
    """FROM lines as OpenSSF Scorecard's Pinned-Dependencies reads them (v5.3.0 and later,
    ossf/scorecard#4780): ARG defaults substituted into ``${NAME}`` (not ``$NAME``), then
    pinned iff the image matches ``@sha256:<64 hex>`` or names an earlier pinned stage."""
    args: dict[str, str] = {}
    stages: dict[str, bool] = {}
    found: list[tuple[str, bool]] = []
    pinned_re = re.compile(r".*@sha256:([a-f\d]{64}|\$\{.*\})")
    for line in dockerfile.splitlines():
        word, _, rest = line.partition(" ")
        if word.upper() == "ARG":
            for item in rest.split():
                key, eq, value = item.partition("=")
                if eq:
                    args[key] = value
        elif word.upper() == "FROM":
            parts = rest.split()
            for key, value in args.items():
                parts = [p.replace("${" + key + "}", value) for p in parts]
            pinned = stages.get(parts[0], False) or bool(pinned_re.match(parts[0]))
            if len(parts) == 3 and parts[1].lower() == "as":
                stages[parts[2]] = pinned
            found.append((line, pinned))
    return found


def test_scorecard_reads_the_base_image_as_pinned() -> None:
    froms = _scorecard_from_lines(DOCKERFILE)
    assert froms and all(pinned for _, pinned in froms), froms
    # The rule is strict enough to matter: the forms it does not resolve are refused.
    assert not _scorecard_from_lines(DOCKERFILE.replace("${BASE_IMAGE}", "$BASE_IMAGE"))[0][1]
    unpinned = DOCKERFILE.replace(d.dockerfile_base(DOCKERFILE), "python:3.11-slim-bookworm")
    assert not _scorecard_from_lines(unpinned)[0][1]


# --- workflows ---------------------------------------------------------------------------


@pytest.mark.parametrize("path", WORKFLOW_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_action_is_pinned_by_sha_with_a_version_comment(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    uses = re.findall(r"^\s*(?:- )?uses:\s*(\S+)(.*)$", text, re.MULTILINE)
    assert uses, path
    for ref, rest in uses:
        assert SHA_PIN.match(ref), ref
        assert re.match(r"\s+# v\d", rest), f"{ref}: no version comment"


@pytest.mark.parametrize("path", WORKFLOW_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_expression_reaches_a_shell(path: Path) -> None:
    for job_id, step in steps(load(path)):
        assert "${{" not in step.get("run", ""), f"{path.name}:{job_id}: use env: instead"


def test_one_action_sha_everywhere() -> None:
    shas = set()
    for path in WORKFLOW_FILES:
        shas |= set(re.findall(r"acme/promote[^@\s]*@([0-9a-f]{40})", path.read_text()))
    assert shas == {d.action_ref()}


@pytest.mark.parametrize("path", WORKFLOW_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_action_steps_match_action_yml(path: Path) -> None:
    action = action_yml()
    inputs, outputs = set(action["inputs"]), set(action["outputs"])
    workflow = load(path)
    ids: dict[str, str] = {}
    for job_id, step in steps(workflow):
        if str(step.get("uses", "")).startswith("acme/promote@"):
            assert set(step["with"]) <= inputs, set(step["with"]) - inputs
            assert step["with"].get("command", "promote") in COMMANDS
            ids[step["id"]] = job_id
    text = path.read_text(encoding="utf-8")
    for step_id, name in re.findall(r"steps\.([\w-]+)\.outputs\.([\w-]+)", text):
        if step_id in ids:
            assert name in outputs, f"{path.name}: {step_id}.{name} is not an action output"


def test_promote_workflow_contract() -> None:
    wf = load(ROOT / ".github/workflows/promote.yml")
    call, dispatch = wf["on"]["workflow_call"], wf["on"]["workflow_dispatch"]
    wanted = {"image", "source-tag", "source-digest", "version", "bump", "dry-run"}
    wanted |= {"gitops-repo", "policy", "verify-timeout"}
    assert wanted <= set(call["inputs"]) and wanted <= set(dispatch["inputs"])
    assert set(call["inputs"]) == set(dispatch["inputs"])
    for name in ("digest", "tag", "version", "tags", "image", "previous-tag", "previous-digest"):
        # the gated job's value; the plan's when that job is skipped on purpose (what each
        # case yields is evaluated in tests/security/test_workflow_policy.py)
        value = call["outputs"][name]["value"]
        assert f"jobs.promote.outputs.{name} }}}}" in value
        assert f"jobs.plan.outputs.{name} " in value
        assert name in wf["jobs"]["promote"]["outputs"]
        assert name in wf["jobs"]["plan"]["outputs"]
    assert wf["permissions"] == {}
    job = wf["jobs"]["promote"]
    assert job["environment"] == "production"
    assert job["concurrency"]["cancel-in-progress"] is False
    assert "inputs.image" in job["concurrency"]["group"]
    assert job["permissions"] == {"contents": "read", "packages": "write"}
    verify = wf["jobs"]["verify"]
    assert verify["needs"] == ["plan", "promote"] and "inputs.gitops-repo" in verify["if"]
    (action,) = [s for s in verify["steps"] if "uses" in s]
    assert action["with"]["command"] == "verify-flux"
    # the gated job's tag, or the plan's (the current one) when there was nothing to change;
    # when each applies is evaluated in tests/security/test_workflow_policy.py
    assert "needs.promote.outputs.tag }}" in action["with"]["expected-tag"]
    assert "needs.plan.outputs.tag " in action["with"]["expected-tag"]


def test_gate_has_one_always_running_aggregator() -> None:
    wf = load(ROOT / ".github/workflows/gate.yml")
    assert set(wf["on"]) == {"workflow_call"}
    jobs = wf["jobs"]
    always = [job_id for job_id, job in jobs.items() if "always()" in str(job.get("if", ""))]
    assert always == ["result"]
    assert sorted(jobs["result"]["needs"]) == sorted(set(jobs) - {"result"})
    script = jobs["result"]["steps"][0]["run"]
    for job_id in set(jobs) - {"result"}:
        assert f"${job_id.upper()}_RESULT" in script
    assert jobs["check"]["steps"][-1]["with"]["command"] == "check"
    assert jobs["plan"]["steps"][0]["with"]["dry-run"] == "true"


def test_example_caller_reads_declared_outputs() -> None:
    caller = load(ROOT / "examples/workflows/service-promote.yml")
    declared = set(load(ROOT / ".github/workflows/promote.yml")["on"]["workflow_call"]["outputs"])
    text = (ROOT / "examples/workflows/service-promote.yml").read_text(encoding="utf-8")
    used = set(re.findall(r"needs\.promote\.outputs\.([\w-]+)", text))
    assert used and used <= declared
    assert "environment" not in caller["jobs"]["promote"]  # callers cannot set it


# --- the image, built for real -----------------------------------------------------------


@pytest.mark.e2e
def test_action_image_builds_small_and_fails_cleanly_without_inputs() -> None:
    base = d.base_image()
    tag = "promote-action:e2e"
    seconds = d.build_action_image(tag, base)
    growth = d.image_size(tag) - d.image_size(base)
    print(f"\n[e2e] action image: +{growth / 1e6:.1f} MB over the base, built in {seconds:.1f}s")
    assert 0 < growth < MAX_IMAGE_GROWTH
    config = json.loads(d.docker("image", "inspect", "--format", "{{json .Config}}", tag).stdout)
    assert not config.get("User") and not config.get("WorkingDir")
    assert config["Entrypoint"] == ["/usr/local/bin/python", "/opt/promote/entrypoint.py"]
    start = time.monotonic()
    proc = subprocess.run(
        ["docker", "run", "--rm", "--network", "none", tag],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    elapsed = time.monotonic() - start
    print(f"[e2e] container start to ::error:: exit: {elapsed:.2f}s")
    assert proc.returncode != 0
    assert proc.stdout.startswith("::error::") or "::error::" in proc.stdout + proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    imports = "import promote.frontdoor.commands, requests, semver, yaml, re2, github, nacl, jwt"
    check = d.docker(
        "run",
        "--rm",
        "--network",
        "none",
        "-w",
        "/opt/promote",
        "--entrypoint",
        "python",
        tag,
        "-c",
        imports,
    )
    assert check.returncode == 0


def test_ci_uses_the_dockerfile_base_when_docker_hub_is_reachable() -> None:
    ci = load(ROOT / ".github/workflows/ci.yml")
    env = ci["jobs"]["test"]["steps"][-1]["env"]
    assert env["PROMOTE_TEST_BASE_IMAGE"] == d.dockerfile_base(DOCKERFILE)
    assert ci["jobs"]["test"]["steps"][-1]["run"] == ".ci/run"


def _zizmor(*paths: Path) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).parent / "zizmor"
    return subprocess.run(
        [str(exe), "--offline", "--persona=pedantic", "--format=plain", *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_make_lint_fails_on_a_workflow_zizmor_cannot_parse(tmp_path: Path) -> None:
    """Without --strict-collection zizmor only warns about a file it cannot parse and then
    reports "No findings": a broken workflow would pass `make lint` unaudited."""
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    (line,) = [x for x in makefile.splitlines() if "/bin/zizmor " in x]
    flags = [word for word in line.split() if word.startswith("--")]
    text = (ROOT / ".github/workflows/promote.yml").read_text(encoding="utf-8")
    # a plain scalar holding ": " is not YAML (the mistake this test was written after)
    broken = text.replace(
        "        description: Plan only, write nothing.\n",
        "        description: Plan only: write nothing.\n",
    )
    assert broken != text
    workflows = tmp_path / ".github" / "workflows"  # collected as `make lint` collects it
    workflows.mkdir(parents=True)
    (workflows / "promote.yml").write_text(broken, encoding="utf-8")
    # next to a file that parses, as in the repository (with nothing collected zizmor fails)
    gate = (ROOT / ".github/workflows/gate.yml").read_text(encoding="utf-8")
    (workflows / "gate.yml").write_text(gate, encoding="utf-8")
    exe = Path(sys.executable).parent / "zizmor"
    result = subprocess.run(
        [str(exe), *flags, str(workflows)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode != 0, (flags, result.stdout + result.stderr)


def test_zizmor_pedantic_is_clean_and_would_catch_an_injection(tmp_path: Path) -> None:
    # Example files are named one by one: given as a directory, zizmor collects nothing
    # outside .github/workflows and would pass them unaudited.
    examples = sorted((ROOT / "examples/workflows").glob("*.yml"))
    assert len(examples) >= 3
    clean = _zizmor(ROOT / ".github/workflows", *examples, ROOT / "action.yml")
    assert clean.returncode == 0, clean.stdout + clean.stderr
    for example in examples:
        text = example.read_text(encoding="utf-8")
        hurt = text.rstrip("\n") + (
            "\n  injected:\n    runs-on: ubuntu-latest\n    steps:\n"
            "      - run: echo ${{ github.head_ref }}\n"
        )
        assert "injected" in yaml.safe_load(hurt)["jobs"]
        (tmp_path / example.name).write_text(hurt, encoding="utf-8")
        assert "template-injection" in _zizmor(tmp_path / example.name).stdout, example.name
    text = (ROOT / ".github/workflows/promote.yml").read_text(encoding="utf-8")
    injected = text.replace(
        "      - name: Promote the approved digest\n",
        "      - name: Echo\n        run: echo ${{ inputs.source-tag }}\n"
        "      - name: Promote the approved digest\n",
    )
    assert injected != text
    bad = tmp_path / "promote.yml"
    bad.write_text(injected, encoding="utf-8")
    caught = _zizmor(bad)
    assert caught.returncode != 0
    assert "template-injection" in caught.stdout
