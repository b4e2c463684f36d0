"""`make demo` (scripts/demo.py): the one-minute promotion, run as a user runs it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_demo_promotes_and_runs_only_the_backend_policies_over_backend_tags() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("INPUT_", "GITHUB_"))}
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "demo.py")],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    selection = proc.stdout.split("what Flux would select", 1)[1]
    assert "flux-system:backend-production" in selection
    assert "production-v1.4.3-3f2c1ab-" in selection
    assert "frontend" not in selection
