"""`make lab` end to end, non-interactively, and its final state checked independently:
the tags in the registry, the commits in the bare GitOps repository, and verify-flux synced
for all six policies; then `make lab-stop`."""

from __future__ import annotations

import json
import os
import re
import subprocess
import urllib.request
from pathlib import Path

import pytest

from testkit.github_server import git

ROOT = Path(__file__).resolve().parent.parent
PROMOTE = str(ROOT / ".venv" / "bin" / "promote")


def _make(target: str, lab_dir: Path) -> subprocess.CompletedProcess[str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("INPUT_", "GITHUB_", "RUNNER_", "LAB_", "MAKE"))
    }
    env["LAB_DIR"] = str(lab_dir)
    return subprocess.run(
        ["make", "-s", "-C", str(ROOT), target],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )


def _tags(host: str, repo: str) -> list[str]:
    with urllib.request.urlopen(f"http://{host}/v2/{repo}/tags/list", timeout=10) as response:
        tags: list[str] = json.loads(response.read())["tags"]
    return sorted(tags)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is not a running registry
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split()[2] == "Z")


@pytest.mark.e2e
def test_make_lab_runs_the_chapter_and_leaves_a_consistent_state(tmp_path: Path) -> None:
    lab_dir = tmp_path / "lab"
    try:
        _check_lab(lab_dir)
    finally:
        pid_file = lab_dir / "registry.pid"
        if pid_file.exists():  # a failed run must not leave its registry behind
            _make("lab-stop", lab_dir)


def _check_lab(lab_dir: Path) -> None:
    run = _make("lab", lab_dir)
    out = run.stdout
    assert run.returncode == 0, out[-3000:] + run.stderr[-3000:]
    assert "== Done" in out
    steps = re.findall(r"== Step (\d+): ", out)
    assert steps == [str(n) for n in range(1, len(steps) + 1)] and len(steps) >= 10
    # every verify-flux the lab runs is synced
    verifies = out.count("$ promote verify-flux ")
    assert verifies >= 25
    assert out.count("> synced=true") == verifies
    assert "synced=false" not in out

    state = json.loads((lab_dir / "lab.json").read_text())
    host, bare, clone = state["registry"], Path(state["bare"]), Path(state["clone"])
    pid = int((lab_dir / "registry.pid").read_text())
    assert _alive(pid)  # the registry stays up after `make lab`

    backend = _tags(host, "acme/backend")
    production = [t for t in backend if t.startswith("production-v")]
    assert [t.split("-")[1] for t in production] == [
        "v1.4.2",  # the release examples/gitops names
        "v1.4.3",  # the promotion
        "v1.4.3",  # rollback 1 (re-promotion)
        "v1.4.3",  # rollback 2 (re-promotion before resuming)
        "v1.4.4",  # the bad release
        "v1.4.5",  # the second bad release
    ]
    assert "production" in backend
    assert set(state["rollbacks"]) <= set(production)
    assert [t.split("-")[1] for t in _tags(host, "acme/frontend") if "production-v" in t] == [
        "v1.4.2",
        "v1.4.3",
    ]

    subjects = git(bare, "log", "--format=%s", "main").splitlines()
    assert subjects[-1] == "GitOps repository from examples/gitops (lab)"
    assert subjects.count("Update images from flux-system/apps") == 6
    assert subjects[:4] == [
        "Update images from flux-system/apps",
        "Resume the image automation",
        'Revert "Update images from flux-system/apps"',
        "Suspend the image automation (incident)",
    ]
    authors = set(
        git(bare, "log", "--format=%an <%ae>", "--grep=^Update images", "main").split("\n")
    )
    assert authors - {""} == {"fluxcdbot <fluxcdbot@users.noreply.github.com>"}

    # the final state, verified independently: Git carries what Flux selects, everywhere
    for app in ("backend", "frontend"):
        for env in ("develop", "staging", "production"):
            policy = f"flux-system:{app}-{env}"
            proc = subprocess.run(
                [
                    PROMOTE,
                    "verify-flux",
                    "--gitops-path",
                    str(clone),
                    "--gitops-ref",
                    "origin/main",
                    "--policy",
                    policy,
                    "--json",
                ],
                capture_output=True,
                text=True,
                check=False,
            )
            outputs = json.loads(proc.stdout)
            assert proc.returncode == 0, proc.stderr
            assert outputs["synced"] == "true"
            assert outputs["predicted-tag"] == state["final"][f"{app}-{env}"]
    assert state["final"]["backend-production"] == state["rollbacks"][1]

    stop = _make("lab-stop", lab_dir)
    assert stop.returncode == 0, stop.stdout + stop.stderr
    assert not _alive(pid)
    assert not lab_dir.exists()


def _lab_module() -> object:
    import importlib.util

    spec = importlib.util.spec_from_file_location("lab_script", ROOT / "scripts" / "lab.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_lab_step_pauses_between_steps_only_when_asked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    lab = _lab_module()
    prompts: list[str] = []
    monkeypatch.setattr("builtins.input", lambda prompt="": prompts.append(prompt) or "")
    monkeypatch.setenv("LAB_STEP", "1")
    paused = lab.Lab(tmp_path)  # type: ignore[attr-defined]
    for n in range(3):
        paused.step(f"step {n}", "what it shows")
    assert len(prompts) == 2 and "LAB_STEP=1" in prompts[0]  # between steps, not before the first
    out = capsys.readouterr().out
    assert "== Step 3: step 2" in out and "shows: what it shows" in out

    monkeypatch.delenv("LAB_STEP")
    prompts.clear()
    quiet = lab.Lab(tmp_path)  # type: ignore[attr-defined]
    for n in range(3):
        quiet.step(f"step {n}", "x")
    assert prompts == []

    def closed(prompt: str = "") -> str:
        raise EOFError

    monkeypatch.setenv("LAB_STEP", "1")
    monkeypatch.setattr("builtins.input", closed)
    no_tty = lab.Lab(tmp_path)  # type: ignore[attr-defined]
    for n in range(3):
        no_tty.step(f"step {n}", "x")  # stdin closed: carries on instead of failing
    assert no_tty.pause is False
