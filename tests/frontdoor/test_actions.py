from __future__ import annotations

import io
from pathlib import Path

import pytest

from promote.errors import InputError
from promote.frontdoor.actions import (
    Runner,
    escape_data,
    format_output,
    markdown_table,
    parse_github_output,
    read_inputs,
)


def test_inputs_hyphen_form_then_underscore_fallback() -> None:
    env = {"INPUT_SOURCE-TAG": "staging-abc1234-1", "INPUT_DRY_RUN": "true", "INPUT_IMAGE": "x"}
    assert read_inputs(["source-tag", "dry-run", "image", "bump"], env) == {
        "source-tag": "staging-abc1234-1",
        "dry-run": "true",
        "image": "x",
    }


def test_output_heredoc_round_trip(tmp_path: Path) -> None:
    out = tmp_path / "out"
    runner = Runner(out=io.StringIO(), github_output=str(out))
    values = {"tags": "a:1\nb:2", "digest": "sha256:" + "0" * 64, "empty": ""}
    runner.set_outputs(values)
    text = out.read_text()
    assert parse_github_output(text) == values
    # every entry uses a different random delimiter
    delims = [ln.split("<<", 1)[1] for ln in text.splitlines() if "<<ghadelimiter_" in ln]
    assert len(set(delims)) == 3


def test_output_refuses_value_containing_delimiter() -> None:
    with pytest.raises(InputError, match="delimiter"):
        format_output("tag", "x\nDELIM\nforged=1", delimiter="DELIM")


def test_outputs_are_all_or_nothing(tmp_path: Path) -> None:
    out = tmp_path / "out"
    runner = Runner(out=io.StringIO(), github_output=str(out))
    runner.add_secret("s3cr3t-value")
    with pytest.raises(InputError):
        runner.set_outputs({"ok": "fine", "bad": "leaks s3cr3t-value"})
    assert not out.exists()


def test_annotation_is_one_line_and_cannot_start_a_command() -> None:
    buf = io.StringIO()
    runner = Runner(out=buf)
    runner.error("bad\n::set-output name=x::y\r%", file="a,b:c.yaml", line=3)
    lines = buf.getvalue().splitlines()
    assert lines == ["::error file=a%2Cb%3Ac.yaml,line=3::bad%0A::set-output name=x::y%0D%25"]


def test_secrets_masked_first_and_redacted() -> None:
    buf = io.StringIO()
    runner = Runner(out=buf)
    runner.add_secret("hunter2-token")
    runner.add_secret("abc")  # too short to mask: masking it would blank the log
    runner.log("using hunter2-token now")
    runner.error("denied for hunter2-token")
    assert buf.getvalue().splitlines() == [
        "::add-mask::hunter2-token",
        "using *** now",
        "::error::denied for ***",
    ]


def test_log_lines_never_become_workflow_commands() -> None:
    buf = io.StringIO()
    Runner(out=buf).log("::add-mask::x\nok")
    assert buf.getvalue() == "%3A:add-mask::x\nok\n"


FORGED = [
    "old\n::warning title=Approved::forged",  # the GitOps marker value of issue 17
    "  \t::error::indented (the runner trims leading whitespace)",
    "text ##[warning]legacy form anywhere in a line",
    "##[group]x",
    "\u00a0::notice::no-break space",
]


def _commands(text: str) -> list[str]:
    """Lines the runner would parse as workflow commands (ActionCommand.TryParseV2 trims
    whitespace; the legacy ``##[`` form is found anywhere in a line)."""
    return [ln for ln in text.splitlines() if ln.strip().startswith("::") or "##[" in ln]


@pytest.mark.parametrize("forged", FORGED)
def test_no_text_from_outside_can_forge_a_command_in_any_output_path(forged: str) -> None:
    """Defect 7 of issue 17: log() only indented '::' lines, which the runner trims."""
    buf = io.StringIO()
    runner = Runner(out=buf)
    runner.log(forged)
    runner.warning(forged, title=forged)
    runner.error(forged)
    ours = [ln for ln in buf.getvalue().splitlines() if ln.startswith(("::warning", "::error"))]
    assert len(ours) == 2  # exactly the annotations promote itself wrote
    assert _commands(buf.getvalue()) == ours
    assert "##[" not in buf.getvalue()


def test_code_spans_and_text_cannot_break_out_of_the_summary() -> None:
    from promote.frontdoor.actions import code, md_text

    assert code("a`b") == "``a`b``"
    assert code("``x") == "``` ``x ```"
    assert code("x\ny") == "`x y`"
    assert md_text("[click](http://evil) <img src=x> *a*") == (
        "\\[click\\]\\(http://evil\\) \\<img src=x\\> \\*a\\*"
    )


def test_summary_appends_and_redacts(tmp_path: Path) -> None:
    path = tmp_path / "summary.md"
    runner = Runner(out=io.StringIO(), step_summary=str(path))
    runner.add_secret("password-123")
    runner.write_summary("# one password-123")
    runner.write_summary(markdown_table(["a", "b"], [["x|y", "1\n2"]]))
    assert path.read_text() == "# one ***\n| a | b |\n|---|---|\n| x\\|y | 1<br>2 |\n"


def test_escape_data() -> None:
    assert escape_data("%\r\n") == "%25%0D%0A"
