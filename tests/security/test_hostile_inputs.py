"""Hostile input, table-driven over every input in ``promote.frontdoor.inputs.INPUTS``.

Each hostile value (see :mod:`tests.security.hostile`) is refused before the first
registry request: the image points at a counting sink (a loopback server that records
every connection), and the sink must see none. The refusal is exactly one ``::error::``
line, exit status 2 (InputError), no traceback, nothing else printed but secret masks,
nothing in ``GITHUB_OUTPUT`` or the step summary, and no secret echoed.

The full table runs through the in-process engine (``promote.frontdoor.commands.execute``, what
``entrypoint.py`` calls); ``test_entrypoint_subprocess.py`` runs a representative subset
through the real ``python entrypoint.py``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from promote.frontdoor.inputs import INPUT_NAMES, SPECS
from testkit.engine import EngineRun, engine
from testkit.figures import Figures
from testkit.gitops import PRODUCTION_POLICY
from testkit.proxy import FaultProxy
from tests.security.hostile import CASES, GITOPS, SINK, VALID, Case, command_for

SECRET_INPUTS = frozenset(n for n, s in SPECS.items() if s.kind == "secret")


@pytest.fixture(scope="module")
def sink() -> Iterator[FaultProxy]:
    """A 'registry' that counts every connection and request and answers 404."""
    with FaultProxy(None) as fp:
        yield fp


@pytest.fixture(scope="module")
def gitops(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A GitOps checkout with the production ImagePolicy the table names."""
    from testkit.registry import write_tls_material

    root = tmp_path_factory.mktemp("gitops")
    (root / "policies.yaml").write_text(PRODUCTION_POLICY)
    write_tls_material(root)  # ca.pem: the valid value of ca-file
    return str(root)


def base_inputs(name: str, host: str) -> dict[str, str]:
    """Valid inputs for the command that reads ``name`` (before the value under test)."""
    if command_for(name) == "build-tags":
        base = {"command": "build-tags", "commit-sha": VALID["commit-sha"]}
        if name == "branch-map":
            base["branch"] = "main"
        return base
    if command_for(name) == "trace":
        return {
            "command": "trace",
            "image": VALID["image"].replace(SINK, host),
            "username": VALID["username"],
            "password": VALID["password"],
        }
    return {
        "image": VALID["image"].replace(SINK, host),
        "source-tag": VALID["source-tag"],
        "username": VALID["username"],
        "password": VALID["password"],
    }


def run_with(
    tmp_path: Path,
    sink: FaultProxy,
    gitops: str,
    name: str,
    value: str,
    context: dict[str, str],
) -> tuple[EngineRun, int]:
    inputs = base_inputs(name, sink.host)
    inputs.update(context)
    inputs[name] = value
    inputs = {k: v.replace(SINK, sink.host).replace(GITOPS, gitops) for k, v in inputs.items()}
    env = {
        "GITHUB_API_URL": f"{sink.url}/api",
        "GITHUB_REPOSITORY": "acme/backend",
        "PROMOTE_REGISTRY_DEADLINE": "2",
    }
    before = sink.connections
    run = engine(tmp_path, inputs, env)
    return run, sink.connections - before


def test_table_covers_every_input() -> None:
    assert set(VALID) == set(INPUT_NAMES)
    per_input = Counter(c.name for c in CASES)
    assert set(per_input) == set(INPUT_NAMES)
    assert min(per_input.values()) >= 15


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_hostile_value_refused_before_any_request(
    tmp_path: Path, sink: FaultProxy, gitops: str, case: Case
) -> None:
    run, connections = run_with(tmp_path, sink, gitops, case.name, case.value, case.context)
    assert connections == 0, f"{connections} connection(s) reached the registry: {run.log}"
    assert run.status == 2, run.log
    lines = run.log.splitlines()
    assert len(run.errors) == 1, run.log
    # nothing but secret masks before the one error line, nothing after it
    assert lines[-1] == run.errors[0]
    assert all(ln.startswith("::add-mask::") for ln in lines[:-1]), run.log
    assert "Traceback" not in run.log
    assert run.raw_output == "" and run.summary == ""
    # a secret input is never quoted back; a credential in a reference or URL neither
    if case.name in SECRET_INPUTS:
        assert case.value.strip() not in run.errors[0]
        assert VALID[case.name] not in run.errors[0]
    assert "hunter2" not in run.errors[0]


@pytest.mark.parametrize("name", sorted(INPUT_NAMES))
def test_valid_value_gets_past_validation(
    tmp_path: Path, sink: FaultProxy, gitops: str, name: str
) -> None:
    """Differential control: the same inputs with the valid value are not an input error,
    so each refusal above is caused by the hostile value alone."""
    context = next((c.context for c in CASES if c.name == name), {})
    run, connections = run_with(tmp_path, sink, gitops, name, VALID[name], context)
    if command_for(name) == "build-tags":
        assert run.status == 0, run.log
        assert connections == 0
    else:
        # validation passed, so the promotion went on to the network (the sink: the
        # registry, or the GitHub API for gitops-repo) and failed there, not on input
        assert run.status not in (0, 2), run.log
        assert connections >= 1
        # with ca-file a loopback registry is spoken to over TLS: the plain sink fails that
        assert ("TLS error" if name == "ca-file" else "404") in run.errors[0], run.log


def test_figures(figures: Figures) -> None:
    by_category = Counter(c.category for c in CASES)
    figures.record(
        "hostile-input cases (in-process engine)",
        f"{len(CASES)} over {len(INPUT_NAMES)} inputs; "
        + ", ".join(f"{k} {v}" for k, v in sorted(by_category.items())),
    )
    assert len(CASES) >= 15 * len(INPUT_NAMES)
