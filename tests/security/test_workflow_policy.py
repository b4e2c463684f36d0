"""The threat model's claims about the shipped workflow, checked on the file itself
(docs/security.md §1, docs/concurrency.md): who can trigger it, the environment gate,
least-privilege tokens, the concurrency group, inputs passed only through ``with:``."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = ROOT / ".github" / "workflows" / "promote.yml"


def load() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(WORKFLOW.read_text())
    # PyYAML reads the bare key `on` as the boolean True (YAML 1.1)
    doc["on"] = doc.pop(True, doc.get("on"))
    return doc


def test_only_dispatch_and_call_can_start_a_promotion() -> None:
    assert set(load()["on"]) == {"workflow_dispatch", "workflow_call"}


def test_promote_job_is_gated_by_the_production_environment() -> None:
    job = load()["jobs"]["promote"]
    env = job["environment"]
    assert (env if isinstance(env, str) else env["name"]) == "production"


def test_least_privilege_tokens() -> None:
    doc = load()
    assert doc["permissions"] == {}
    assert doc["jobs"]["promote"]["permissions"] == {"contents": "read", "packages": "write"}
    for name, job in doc["jobs"].items():
        perms = job.get("permissions")
        assert isinstance(perms, dict), f"job {name} must declare its permissions"
        writes = {k for k, v in perms.items() if v == "write"}
        assert writes <= {"packages"}, f"job {name} asks for {writes}"
        assert "id-token" not in perms


def test_one_promotion_per_image_never_cancelled() -> None:
    concurrency = load()["jobs"]["promote"]["concurrency"]
    assert "inputs.image" in concurrency["group"]
    assert concurrency["group"].startswith("promote-production-")
    assert concurrency["cancel-in-progress"] is False


def test_inputs_reach_the_action_only_through_with_and_secrets_only_as_secrets() -> None:
    text = WORKFLOW.read_text()
    for name, job in load()["jobs"].items():
        for step in job.get("steps", []):
            assert "run" not in step, f"{name}: an inline script could be injected into"
            uses = step.get("uses", "")
            assert re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", uses), f"{name}: unpinned {uses}"
            for key, value in (step.get("with") or {}).items():
                if key in ("password", "github-token"):
                    assert "secrets." in str(value) or "github.token" in str(value)
    assert "secrets: inherit" not in text
