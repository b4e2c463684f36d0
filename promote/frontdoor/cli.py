"""The ``promote`` console script: the action's engine with command-line flags.

``promote <command> --<input> VALUE ...`` takes exactly the action's inputs as flags
(``--source-tag``, ``--dry-run true`` ...). Secrets are better passed in the environment:
``PROMOTE_PASSWORD`` / ``PROMOTE_USERNAME`` and ``GITHUB_TOKEN`` fill ``--password``,
``--username`` and ``--github-token`` when those flags are absent. Outputs are printed on
stdout as ``name=value`` lines (or one JSON object with ``--json``; for ``trace`` the
lineage itself), also when the command fails, and on a runner also appended to
``$GITHUB_OUTPUT``; the log and annotations go to stderr. ``promote <command> --help``
lists that command's flags.
A usage error (unknown flag or command, missing value) is one ``::error::`` line, exit 2,
and ``{}`` with ``--json``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

from promote.frontdoor.actions import Runner, neutralise, parse_github_output
from promote.frontdoor.commands import COMMANDS, execute
from promote.frontdoor.inputs import INPUTS
from promote.frontdoor.settings import Settings


def env_fallbacks(settings: Settings) -> dict[str, str]:
    """Flag -> value from the environment when the flag is absent (secrets belong there):
    ``PROMOTE_PASSWORD``, ``PROMOTE_USERNAME``, ``GITHUB_TOKEN``."""
    return {
        "password": settings.cli_password,
        "username": settings.cli_username,
        "github-token": settings.github_token,
    }


class _Parser(argparse.ArgumentParser):
    """A usage error is one ``::error::`` line on stderr (with the help to read) and, with
    ``--json``, still one JSON object (``{}``) on stdout; exit 2 as argparse's."""

    as_json = False
    help_hint = ""

    def error(self, message: str) -> NoReturn:
        if message.startswith("unrecognized arguments:"):
            # name the flags only: a stray value may be a secret typed after a wrong flag
            flags = [w for w in message.split(":", 1)[1].split() if w.startswith("-")]
            message = "unrecognized arguments: " + (" ".join(flags) or "values without a flag")
        if self.as_json:
            sys.stdout.write("{}\n")
            sys.stdout.flush()
        hint = self.help_hint or f"{self.prog} --help"
        sys.stderr.write(f"::error::{message} (see `{hint}`)\n")
        raise SystemExit(2)


def _json_text(value: object) -> str:
    """``value`` as indented JSON no runner reads a workflow command in: ``##[`` inside a
    string becomes ``#\\u0023[`` (the same string to any JSON parser), and no line of
    indented JSON can start with ``::``."""
    return json.dumps(value, indent=2).replace("##[", "#\\u0023[") + "\n"


def _command_summary(command: str) -> str:
    """The first paragraph of the command module's docstring (its one-line purpose)."""
    import importlib

    doc = importlib.import_module(COMMANDS[command]).__doc__ or ""
    return " ".join(doc.strip().split("\n\n", 1)[0].split()).replace("``", "`")


def build_parser(command: str | None = None, *, as_json: bool = False) -> _Parser:
    """The global parser, or with ``command`` that command's own (``promote check --help``):
    only the inputs it reads, and its purpose. ``as_json``: a usage error still prints ``{}``."""
    parser: _Parser
    if command is None:
        parser = _Parser(
            prog="promote",
            description="Promote a staging image digest to production without rebuilding it. "
            "`promote <command> --help` lists one command's flags.",
        )
        parser.add_argument("command", choices=sorted(COMMANDS), help="what to do")
    else:
        parser = _Parser(
            prog=f"promote {command}", description=_command_summary(command).replace("%", "%%")
        )
    parser.as_json = as_json
    parser.add_argument(
        "--json", action="store_true", help="print the outputs as one JSON object on stdout"
    )
    for spec in INPUTS:
        if spec.name == "command":
            continue
        if command is not None and "*" not in spec.commands and command not in spec.commands:
            continue
        default = f" (default: {spec.default})" if spec.default else ""
        parser.add_argument(
            f"--{spec.name}",
            dest=spec.name,
            metavar=spec.name.upper().replace("-", "_"),
            help=spec.description.replace("%", "%%") + default,
        )
    return parser


def _help_for(argv: Sequence[str]) -> str | None:
    """The command named before ``-h``/``--help`` (``promote check --help``), if any."""
    words = list(argv)
    if not any(w in {"-h", "--help"} for w in words):
        return None
    for word in words:
        if word in {"-h", "--help"}:
            return None
        if not word.startswith("-"):
            return word if word in COMMANDS else None
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command. stdout carries only the outputs (``name=value`` lines, or one JSON
    object with ``--json``), also when the command fails; the log, annotations and masks go
    to stderr."""
    words = list(sys.argv[1:] if argv is None else argv)
    command = _help_for(words)
    if command is not None:
        build_parser(command).parse_args([w for w in words if w != command])
    parser = build_parser(as_json="--json" in words)
    named = next((w for w in words if w in COMMANDS), None)
    if named is not None:
        parser.help_hint = f"promote {named} --help"  # a usage error points at its flags
    args = vars(parser.parse_args(words))
    as_json = bool(args.pop("json"))
    raw = {k: v for k, v in args.items() if v is not None}
    env = dict(os.environ)
    settings = Settings(env)
    for name, value in env_fallbacks(settings).items():
        if name not in raw and value:
            raw[name] = value
    # Outputs are captured in a private file, then printed (and forwarded to a runner's file).
    capture = io.StringIO()
    # ::add-mask:: only on a GitHub runner, which hides the line; a terminal would show it.
    # The runner reads workflow commands on stderr too, so stdout stays the outputs' alone.
    runner = Runner(
        out=sys.stderr,
        github_output=None,
        step_summary=settings.step_summary,
        mask=settings.on_runner,
    )
    tmp = _TempOutput()
    runner.github_output = tmp.path
    try:
        status = execute(raw, env, runner)
        outputs = parse_github_output(tmp.read())
    finally:
        tmp.close()
    # Outputs carry outside text (registry data, GitOps values and file names): what is
    # printed is neutralised like every log line (the GITHUB_OUTPUT file keeps the values).
    if as_json and raw.get("command") == "trace" and "lineage" in outputs:
        # `promote trace --json` prints the lineage object itself
        capture.write(_json_text(json.loads(outputs["lineage"])))
    elif as_json:
        capture.write(_json_text(outputs))
    else:
        for key, value in outputs.items():
            capture.write(
                f"{key}={value}\n"
                if "\n" not in value
                else f"{key}:\n  " + value.replace("\n", "\n  ") + "\n"
            )
    printed = runner.redact(capture.getvalue())
    if printed and not as_json:
        printed = neutralise(printed) + "\n"
    sys.stdout.write(printed)
    sys.stdout.flush()
    if settings.output_file and outputs:
        Runner(out=io.StringIO(), github_output=settings.output_file).set_outputs(outputs)
    return status


class _TempOutput:
    def __init__(self) -> None:
        import tempfile

        fd, self.path = tempfile.mkstemp(prefix="promote-out-")
        os.close(fd)

    def read(self) -> str:
        with open(self.path, encoding="utf-8") as fh:
            return fh.read()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.unlink(self.path)


if __name__ == "__main__":
    sys.exit(main())
