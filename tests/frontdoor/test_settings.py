"""promote/frontdoor/settings.py: every GITHUB_* / PROMOTE_* / RUNNER_* variable, one rule each,
read in one place (the front door) and handed down as plain values."""

from __future__ import annotations

import ast
import io
import re
from pathlib import Path

import pytest

from promote.errors import InputError
from promote.frontdoor.actions import Runner
from promote.frontdoor.commands import Context, execute
from promote.frontdoor.inputs import Inputs
from promote.frontdoor.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
VARIABLE = re.compile(r"(?:GITHUB|PROMOTE|RUNNER)_[A-Z_]+")

#: PENDING (issue 11): modules that still name a variable themselves, as (file, variable).
#: A1's files switch to ``ctx.settings`` (record_step.py, rollback_cmd.py, github_settings.py;
#: record.runner_facts takes plain values); then githubapi.api_url / throttle_enabled have no
#: caller left and go; registry/auth.py (C) takes the actor as a value. The lead deletes
#: this list at merge; an entry that no longer holds fails, so it cannot go stale.
PENDING: frozenset[tuple[str, str]] = frozenset(
    {
        ("promote/frontdoor/commands/record_step.py", "RUNNER_TEMP"),
        ("promote/frontdoor/commands/rollback_cmd.py", "GITHUB_RUN_ID"),
        ("promote/frontdoor/github_settings.py", "GITHUB_REPOSITORY"),
        ("promote/frontdoor/github_settings.py", "GITHUB_RUN_ID"),
        ("promote/frontdoor/github_settings.py", "GITHUB_SERVER_URL"),
        ("promote/frontdoor/github_settings.py", "GITHUB_TOKEN"),
        ("promote/frontdoor/github_settings.py", "GITHUB_WORKSPACE"),
        ("promote/githubapi.py", "GITHUB_API_URL"),
        ("promote/githubapi.py", "PROMOTE_GITHUB_THROTTLE"),
        ("promote/record.py", "GITHUB_ACTOR"),
        ("promote/record.py", "GITHUB_EVENT_NAME"),
        ("promote/record.py", "GITHUB_REPOSITORY"),
        ("promote/record.py", "GITHUB_RUN_ATTEMPT"),
        ("promote/record.py", "GITHUB_RUN_ID"),
        ("promote/record.py", "GITHUB_SERVER_URL"),
        ("promote/record.py", "GITHUB_WORKFLOW_REF"),
        ("promote/registry/auth.py", "GITHUB_ACTOR"),
    }
)


def named_variables(root: Path) -> set[tuple[str, str]]:
    """(file, variable) for every string constant in promote/ that is a variable's name."""
    found = set()
    for path in sorted((root / "promote").rglob("*.py")):
        rel = path.relative_to(root).as_posix()
        for node in ast.walk(ast.parse(path.read_text())):
            text = node.value if isinstance(node, ast.Constant) else None
            if isinstance(text, str) and VARIABLE.fullmatch(text):
                found.add((rel, text))
    return found


def test_only_settings_names_the_variables() -> None:
    found = {
        entry for entry in named_variables(ROOT) if entry[0] != "promote/frontdoor/settings.py"
    }
    assert found - PENDING == set()
    assert PENDING - found == set(), "PENDING entries that no longer hold"


def test_every_variable_in_the_table_is_read_by_its_attribute() -> None:
    """The docstring's table names each variable and the attribute holding it."""
    import promote.frontdoor.settings as module

    doc = module.__doc__ or ""
    rows = re.findall(r"^``([A-Z_]+)``\s+(.*)$", doc, re.M)
    samples = {
        "GITHUB_API_URL": "https://ghe.example/api/v3",
        "PROMOTE_REGISTRY_DEADLINE": "5",
        "PROMOTE_REGISTRY_TIMEOUT": "5",
    }
    assert len(rows) >= 20
    assert {v for v, _ in rows} >= {v for _, v in named_variables(ROOT)}
    for variable, rule in rows:
        attrs = re.findall(r"\(``([a-z_]+)``\)", rule)
        assert attrs, variable
        sample = samples.get(variable, "true")
        for attr in attrs:
            value = getattr(Settings({variable: sample}), attr)
            assert value not in ("", None, False), (variable, attr, value)
            assert value != getattr(Settings({}), attr) or attr == "github_throttle", attr


def test_defaults_without_any_variable() -> None:
    settings = Settings({})
    assert settings.api_url == "https://api.github.com"
    assert settings.github_throttle is True
    assert settings.output_file is None and settings.step_summary is None
    assert settings.client_limits == {}
    assert settings.debug is False and settings.on_runner is False


@pytest.mark.parametrize(
    ("value", "expected"),
    [("false", False), ("0", False), ("FALSE", False), ("true", True), ("", True)],
)
def test_github_throttle(value: str, expected: bool) -> None:
    assert Settings({"PROMOTE_GITHUB_THROTTLE": value}).github_throttle is expected


def test_registry_limits_one_rule() -> None:
    settings = Settings({"PROMOTE_REGISTRY_DEADLINE": " 8 ", "PROMOTE_REGISTRY_TIMEOUT": "2.5"})
    assert settings.client_limits == {"deadline": 8.0, "timeout": 2.5}


@pytest.mark.parametrize("raw", ["0", "-1", "3601", "nan", "inf", "soon"])
def test_bad_registry_limits_are_input_errors_only_when_read(raw: str) -> None:
    settings = Settings({"PROMOTE_REGISTRY_DEADLINE": raw})
    assert settings.workspace == ""  # other values still read: validation is per variable
    with pytest.raises(InputError, match="PROMOTE_REGISTRY_DEADLINE must be seconds"):
        _ = settings.client_limits


@pytest.mark.parametrize(
    ("url", "ok"),
    [
        ("https://ghe.example/api/v3", True),
        ("http://127.0.0.1:8080/api", True),
        ("http://ghe.example/api/v3", False),
        ("ftp://x", False),
        ("https://user:pw@ghe.example", False),
    ],
)
def test_api_url_https_unless_loopback(url: str, ok: bool) -> None:
    settings = Settings({"GITHUB_API_URL": url})
    if ok:
        assert settings.api_url == url
    else:
        with pytest.raises(InputError, match="GITHUB_API_URL"):
            _ = settings.api_url


def test_context_builds_settings_once_from_its_env() -> None:
    ctx = Context(
        inputs=Inputs({}), runner=Runner(out=io.StringIO()), env={"GITHUB_SHA": "abc1234"}
    )
    assert ctx.settings.sha == "abc1234"
    assert ctx.settings is ctx.settings


def test_a_bad_knob_does_not_stop_a_command_that_does_not_use_it(tmp_path: Path) -> None:
    """build-tags talks to no registry: a bad PROMOTE_REGISTRY_DEADLINE is not its problem,
    while the registry client's consumers refuse it (exit 2, one ::error:: line)."""
    out = io.StringIO()
    env = {"PROMOTE_REGISTRY_DEADLINE": "never", "GITHUB_SHA": "a" * 40}
    raw = {"command": "build-tags", "env": "staging", "timestamp": "1767225600"}
    assert execute(raw, env, Runner(out=out)) == 0
    out = io.StringIO()
    raw = {"command": "trace", "image": "127.0.0.1:1/acme/app"}
    assert execute(raw, env, Runner(out=out)) == 2
    assert (
        out.getvalue()
        .splitlines()[-1]
        .startswith("::error::PROMOTE_REGISTRY_DEADLINE must be seconds")
    )
