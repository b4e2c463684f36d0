"""The GitHub Actions runner protocol: inputs, outputs, summary, annotations, masks.

Only this module (and :mod:`promote.frontdoor.cli`) touches the process environment, stdout and the
runner's files. Everything it writes follows the documented workflow-command formats:

* inputs arrive as ``INPUT_<NAME>`` with the name upper-cased and hyphens kept
  (``source-tag`` -> ``INPUT_SOURCE-TAG``); act turns other characters into ``_``, so the
  underscore spelling is read as a fallback;
* outputs are appended to ``$GITHUB_OUTPUT`` in heredoc form with a fresh random delimiter
  per value; a value containing its delimiter is refused (it could forge other outputs);
* annotations are one line: ``%``, CR and LF are escaped as the toolkit does, so a message
  can never start a second workflow command;
* every secret is announced with ``::add-mask::`` before anything else is printed, and
  :meth:`Runner.redact` removes secrets from any text we print ourselves;
* no text is trusted to be ours: registry data, GitOps files, git commits, GitHub answers
  and error bodies reach the log through :func:`neutralise`, so no line printed can start
  a workflow command (``::`` after the whitespace the runner trims) and ``##[`` (the
  legacy form the runner parses anywhere in a line) never appears; summary cells and code
  spans escape Markdown and HTML (:func:`code`, :func:`markdown_table`).
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TextIO, TypedDict, Unpack

from promote.errors import InputError
from promote.redaction import redact

#: Values shorter than this are not masked: masking "a" would blank every "a" in the log.
MIN_MASK_LENGTH = 4


def escape_data(text: str) -> str:
    """Escape a workflow-command message (toolkit ``escapeData``)."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def neutralise_line(line: str) -> str:
    """One log line that the runner cannot read as a workflow command."""
    line = line.replace("##[", "#%23[")
    body = line.lstrip()
    if body.startswith("::"):
        return line[: len(line) - len(body)] + "%3A" + body[1:]
    return line


def neutralise(text: str) -> str:
    """Every line of ``text`` neutralised (see :func:`neutralise_line`)."""
    return "\n".join(neutralise_line(ln) for ln in text.splitlines())


def code(text: str) -> str:
    """``text`` (from outside promote) as one Markdown code span it cannot break out of:
    the fence is longer than any backtick run inside, and line breaks become spaces.
    Inside a code span ``<`` and ``[...](...)`` are shown, never rendered."""
    import re

    text = text.replace("\r", " ").replace("\n", " ")
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def md_text(text: str) -> str:
    """``text`` (from outside promote) as literal Markdown: every character Markdown or
    HTML could act on (links, emphasis, tags, entities) is backslash-escaped."""
    text = text.replace("\r", " ").replace("\n", " ")
    return "".join("\\" + c if c in MARKDOWN_SPECIAL else c for c in text)


#: ASCII punctuation that CommonMark lets a backslash escape and that can change rendering.
MARKDOWN_SPECIAL = frozenset("\\`*_{}[]()<>#+!|~&")


def escape_property(text: str) -> str:
    """Escape a workflow-command property value (toolkit ``escapeProperty``)."""
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def env_input_names(name: str) -> tuple[str, str]:
    """The environment variable names the runner (and act) use for input ``name``."""
    upper = name.replace(" ", "_").upper()
    return f"INPUT_{upper}", f"INPUT_{upper.replace('-', '_')}"


def read_inputs(names: Iterable[str], env: Mapping[str, str]) -> dict[str, str]:
    """Collect the raw values of the named inputs from ``env``; absent inputs are omitted."""
    values: dict[str, str] = {}
    for name in names:
        for key in env_input_names(name):
            if key in env:
                values[name] = env[key]
                break
    return values


def format_output(name: str, value: str, delimiter: str | None = None) -> str:
    """One ``$GITHUB_OUTPUT`` entry in heredoc form.

    The delimiter is random (``ghadelimiter_<hex>``) unless given; a name or value that
    contains it is refused, as in actions/toolkit ``prepareKeyValueMessage``.
    """
    import secrets  # only when writing outputs: an input error does not load it

    delim = delimiter or f"ghadelimiter_{secrets.token_hex(16)}"
    if delim in name or delim in value:
        raise InputError(f"output {name!r} contains its delimiter; refusing to write it")
    if not name or any(c in name for c in "\r\n=<"):
        raise InputError(f"invalid output name {name!r}")
    return f"{name}<<{delim}\n{value}\n{delim}\n"


class Where(TypedDict, total=False):
    """Where an annotation points, and its title (all optional)."""

    file: str | None
    line: int | None
    title: str | None


@dataclass
class Runner:
    """Where a command's side effects on the runner go.

    ``github_output`` and ``step_summary`` are file paths (or ``None`` outside a runner);
    ``out`` carries workflow commands and the human log, ``err`` nothing else but a last
    resort. Secrets registered with :meth:`add_secret` are masked and redacted.
    """

    out: TextIO = field(default_factory=lambda: sys.stdout)
    github_output: str | None = None
    step_summary: str | None = None
    #: announce secrets with ``::add-mask::`` (only a GitHub runner consumes those lines;
    #: anywhere else they would print the secret); redaction happens either way
    mask: bool = True
    _secrets: set[str] = field(default_factory=set)

    @classmethod
    def from_env(cls, env: Mapping[str, str], *, out: TextIO | None = None) -> Runner:
        """The runner's files as ``GITHUB_OUTPUT`` / ``GITHUB_STEP_SUMMARY`` name them."""
        from promote.frontdoor.settings import Settings

        settings = Settings(env)
        return cls(
            out=out or sys.stdout,
            github_output=settings.output_file,
            step_summary=settings.step_summary,
        )

    # -- secrets ---------------------------------------------------------------------------
    def add_secret(self, value: str | None) -> None:
        """Mask ``value`` in the runner log (once) and redact it from everything we print."""
        if not value or len(value) < MIN_MASK_LENGTH or value in self._secrets:
            return
        self._secrets.add(value)
        if not self.mask:
            return
        for line in value.splitlines() or [value]:
            if len(line) >= MIN_MASK_LENGTH:
                self.out.write(f"::add-mask::{escape_data(line)}\n")
        self.out.flush()

    def redact(self, text: str) -> str:
        return redact(text, self._secrets)

    # -- log and annotations -----------------------------------------------------------
    def log(self, message: str) -> None:
        """A plain log line; never interpreted as a workflow command."""
        self.out.write(neutralise(self.redact(message)) + "\n")
        self.out.flush()

    def annotation(self, level: str, message: str, **where: Unpack[Where]) -> None:
        """``::error|warning|notice file=F,line=L,title=T::message`` on one line."""
        file, line, title = where.get("file"), where.get("line"), where.get("title")
        if level not in {"error", "warning", "notice"}:
            raise ValueError(level)
        props = []
        if file:
            props.append(f"file={escape_property(file)}")
            if line:
                props.append(f"line={line}")
        if title:
            props.append(f"title={escape_property(self.redact(title))}")
        head = f"::{level} {','.join(props)}::" if props else f"::{level}::"
        # one line (escape_data); only "##[" inside could still be a command
        body = escape_data(self.redact(message)).replace("##[", "#%23[")
        self.out.write(head.replace("##[", "#%23[") + body + "\n")
        self.out.flush()

    def error(self, message: str, **where: Unpack[Where]) -> None:
        self.annotation("error", message, **where)

    def warning(self, message: str, **where: Unpack[Where]) -> None:
        self.annotation("warning", message, **where)

    def notice(self, message: str, **where: Unpack[Where]) -> None:
        self.annotation("notice", message, **where)

    # -- outputs and summary -------------------------------------------------------------
    def set_outputs(self, outputs: Mapping[str, str]) -> None:
        """Append every output to ``$GITHUB_OUTPUT`` (heredoc form, random delimiters).

        Every entry is formatted (and checked) before the file is touched, so a refused
        value leaves no partial outputs behind.
        """
        chunks = [format_output(k, v) for k, v in outputs.items()]
        for value in outputs.values():
            for secret in self._secrets:
                if secret in value:
                    raise InputError("an output would contain a secret; refusing to write it")
        if not self.github_output:
            return
        with open(self.github_output, "a", encoding="utf-8") as fh:
            fh.write("".join(chunks))

    def write_summary(self, markdown: str) -> None:
        """Append GitHub-flavoured Markdown to the job summary (when on a runner)."""
        if not self.step_summary or not markdown:
            return
        with open(self.step_summary, "a", encoding="utf-8") as fh:
            fh.write(self.redact(markdown).rstrip("\n") + "\n")


def parse_github_output(text: str) -> dict[str, str]:
    """Read a ``$GITHUB_OUTPUT`` file back (both ``k=v`` and heredoc forms); last wins."""
    result: dict[str, str] = {}
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        if not line:
            continue
        if "<<" in line and ("=" not in line or line.index("<<") < line.index("=")):
            name, delim = line.split("<<", 1)
            body: list[str] = []
            while i < len(lines) and lines[i] != delim:
                body.append(lines[i])
                i += 1
            i += 1
            result[name] = "\n".join(body)
        else:
            name, _, value = line.partition("=")
            result[name] = value
    return result


def markdown_table(header: list[str], rows: Iterable[Iterable[str]]) -> str:
    """A GFM table; pipes and newlines in cells are escaped."""

    def cell(value: str) -> str:
        return value.replace("|", "\\|").replace("\n", "<br>")

    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return "\n".join(out) + "\n"
