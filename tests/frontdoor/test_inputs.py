from __future__ import annotations

import pytest
import yaml

from promote.errors import InputError
from promote.frontdoor.inputs import INPUT_NAMES, INPUTS, Inputs, screen


def test_unknown_input_refused() -> None:
    with pytest.raises(InputError, match="unknown input"):
        Inputs({"imgae": "x"})


@pytest.mark.parametrize("value", ["true", "True", "TRUE", "false", "False", "FALSE"])
def test_strict_booleans_accept(value: str) -> None:
    assert Inputs({"dry-run": value}).bool("dry-run") is (value.lower() == "true")


@pytest.mark.parametrize("value", ["yes", "1", "on", "tRue", "t", "false "])
def test_strict_booleans_refuse(value: str) -> None:
    inputs = Inputs({"dry-run": value})
    if value.strip() in {"false"}:  # surrounding spaces are stripped by screening
        assert inputs.bool("dry-run") is False
        return
    with pytest.raises(InputError, match="true or false"):
        inputs.bool("dry-run")


def test_defaults_apply_to_empty_values() -> None:
    inputs = Inputs({"bump": "", "source-env": ""})
    assert inputs.str("bump") == "patch"
    assert inputs.str("source-env") == "staging"
    assert inputs.str("command") == "promote"
    assert not inputs.given("bump")


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("image", "ghcr.io/a/b\nINPUT_X=1", "single line"),
        ("source-tag", "staging\x00", "control character"),
        ("image", "ghcr.io/аcme/app", "non-ASCII"),  # Cyrillic a
        ("version", "1" * 2000, "longer than"),
        ("password", "x" * 20000, "longer than"),
    ],
)
def test_screening(name: str, value: str, message: str) -> None:
    with pytest.raises(InputError, match=message):
        screen(name, value)


def test_secret_values_are_not_echoed() -> None:
    with pytest.raises(InputError) as err:
        screen("password", "hunter2\x07")
    assert "hunter2" not in str(err.value)


def test_list_input_keeps_newlines() -> None:
    assert Inputs({"branch-map": "main=staging\n\n dev = develop \n"}).lines("branch-map") == [
        "main=staging",
        "dev = develop",
    ]


def test_int_reader_bounds() -> None:
    assert Inputs({"timeout": "30"}).int("timeout", maximum=3600) == 30
    for bad in ["-1", "1e3", "3601", "ten"]:
        with pytest.raises(InputError):
            Inputs({"timeout": bad}).int("timeout", maximum=3600)


def test_action_yml_declares_exactly_the_inputs_and_outputs() -> None:
    from pathlib import Path

    from promote.frontdoor.outputs import OUTPUTS

    root = Path(__file__).resolve().parents[2]
    action = yaml.safe_load((root / "action.yml").read_text())
    assert set(action["inputs"]) == INPUT_NAMES
    assert list(action["outputs"]) == [name for name, _ in OUTPUTS]
    for spec in INPUTS:
        declared = action["inputs"][spec.name]
        assert declared["description"] == spec.description
        assert declared.get("default", "") == spec.default
    assert action["runs"] == {"using": "docker", "image": "Dockerfile"}


def test_action_yml_is_generated() -> None:
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    result = subprocess.run(
        [sys.executable, "scripts/gen_action_yml.py", "--check"],
        cwd=root,
        check=False,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr


def test_env_defaults_are_the_grammar_s() -> None:
    """inputs.py spells the env defaults itself (importing naming would load semver at
    start-up); they must be naming's names."""
    from promote import naming
    from promote.frontdoor.inputs import SPECS

    assert SPECS["target-env"].default == naming.DEFAULT_TARGET_ENV
    assert SPECS["source-env"].default == naming.DEFAULT_SOURCE_ENV
