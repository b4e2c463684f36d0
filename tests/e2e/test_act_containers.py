"""act leaves no job container behind, whether the job passed or failed.

act keeps a failed job's container for debugging unless it is given ``--rm``, and a
killed act removes nothing: either way a test session would leave containers running on
a shared engine. ``run_act`` lists the ``act-*`` containers before and after each run
(under the act lock, so no other act run starts one meanwhile) and reports any new one.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from testkit import docker as d
from tests.e2e.conftest import ServiceRepo

pytestmark = pytest.mark.e2e

WORKFLOW = """\
name: leftover-check
on: workflow_dispatch
jobs:
  passes:
    runs-on: ubuntu-latest
    steps:
      - run: echo passed
  fails:
    runs-on: ubuntu-latest
    steps:
      - run: echo failing; exit 3
"""

HANGS = """\
name: leftover-hang
on: workflow_dispatch
jobs:
  hangs:
    runs-on: ubuntu-latest
    steps:
      - run: echo hanging; sleep 600
"""


def test_a_failed_job_leaves_no_container(service_repo: ServiceRepo, tmp_path: Path) -> None:
    repo = service_repo({"leftover.yml": WORKFLOW})
    result = d.run_act(
        repo,
        "workflow_dispatch",
        workflow=".github/workflows/leftover.yml",
        home=tmp_path / "act-home",
    )
    assert result.returncode != 0, result.log
    assert "| passed" in result.log and "| failing" in result.log, result.log
    assert result.left_containers == ()
    assert [n for n in d.act_containers() if n.startswith("act-leftover-check-")] == []


def test_an_act_run_over_its_time_is_stopped_and_leaves_no_container(
    service_repo: ServiceRepo, tmp_path: Path
) -> None:
    repo = service_repo({"hang.yml": HANGS})
    with pytest.raises(d.DockerError, match="act ran over 20 s") as raised:
        d.run_act(
            repo,
            "workflow_dispatch",
            workflow=".github/workflows/hang.yml",
            home=tmp_path / "act-home",
            timeout=20,
        )
    assert "| hanging" in str(raised.value)
    assert [n for n in d.act_containers() if n.startswith("act-leftover-hang-")] == []
