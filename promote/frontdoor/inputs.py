"""Every input of the action, declared once, and strict readers for their values.

``INPUTS`` is the contract: ``action.yml`` declares exactly these names (a test compares
them), the CLI offers each as ``--<name>``, and the runner passes them as ``INPUT_<NAME>``.
Names are kebab-case and never renamed (workflows depend on them); new ones are added.

Every raw value is screened before any command runs (:func:`screen`), whichever command
reads it: length limits, no control or invisible formatting characters (newlines only in
list inputs), no workflow-command strings (``::set-output ...::``, ``::add-mask::``...),
printable ASCII only except in free-text inputs and secrets. :meth:`Inputs.check_types`
reads every given ``bool`` and ``int`` input strictly. Secrets are never quoted back.
"""

from __future__ import annotations

import builtins
import re
from collections.abc import Mapping
from dataclasses import dataclass

from promote import naming
from promote.errors import InputError

#: Longest value accepted for any single-line input; image references are at most 255
#: for the name plus a 128-character tag, URLs and paths a little more.
MAX_LENGTH = 1024
#: Longest value for list (multi-line) inputs and secrets (tokens can be long JWTs).
MAX_LIST_LENGTH = 16384

TRUE_VALUES = frozenset({"true", "True", "TRUE"})
FALSE_VALUES = frozenset({"false", "False", "FALSE"})

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\u0085\u2028\u2029]")
_NEWLINE = re.compile(r"[\r\n]")
#: Invisible formatting characters (zero-width, bidi overrides, BOM): they make a value
#: read differently from what it is ("trojan source").
_INVISIBLE = re.compile(
    r"[\u00ad\u061c\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]"
)
#: A workflow command (``::name props::``) anywhere in a value: never a legitimate input,
#: and one echo at the start of a log line would make the runner execute it. ``[::1]``
#: (IPv6 loopback) does not match: a command name starts with a letter.
_WORKFLOW_COMMAND = re.compile(r"::[A-Za-z][A-Za-z0-9_-]*(?:[ \t][^\r\n]*?)?::")


@dataclass(frozen=True)
class InputSpec:
    """One action input: name, what it means, its default, and how it is screened."""

    name: str
    description: str
    default: str = ""
    #: "text" single line printable ASCII; "free" single line, any printable Unicode;
    #: "list" newline-separated ASCII; "secret" single line, never echoed; "bool" strict
    #: true/false; "int" a whole number (ranges are checked by the reader).
    kind: str = "text"
    #: the commands that read it ("*" = all): ``promote <command> --help`` lists only these
    commands: tuple[str, ...] = ("*",)


INPUTS: tuple[InputSpec, ...] = (
    InputSpec(
        "command",
        "What to do: `promote` (default), `rollback`, `check`, `verify-flux`, `build-tags`, "
        "`automate`, `predict`, `trace`.",
        "promote",
    ),
    InputSpec(
        "image",
        "Image repository without tag, e.g. `ghcr.io/acme/backend`.",
        commands=("promote", "rollback", "verify-flux", "build-tags", "trace"),
    ),
    InputSpec(
        "source-tag",
        "The `<source-env>-*` tag to promote (resolved to a digest once).",
        commands=("promote",),
    ),
    InputSpec(
        "source-digest",
        "The `sha256:` digest to promote; with `source-tag`, both must agree.",
        commands=("promote",),
    ),
    InputSpec(
        "source-env",
        "Environment of the source tag.",
        naming.DEFAULT_SOURCE_ENV,
        commands=("promote", "trace"),
    ),
    InputSpec(
        "target-env",
        "Environment to promote to; names the floating and immutable tags.",
        naming.DEFAULT_TARGET_ENV,
        commands=("promote", "rollback", "trace"),
    ),
    InputSpec(
        "version",
        "Explicit version `X.Y.Z` (a `v` prefix is accepted); must exceed the current one.",
        commands=("promote",),
    ),
    InputSpec(
        "bump",
        "Part to increase when `version` is empty: `patch`, `minor` or `major`.",
        "patch",
        commands=("promote",),
    ),
    InputSpec(
        "commit-sha",
        "Commit the image was built from (full or short hex). Default: from the source tag or "
        "the image's `org.opencontainers.image.revision`; `GITHUB_SHA` only for `build-tags`.",
        commands=("promote", "rollback", "build-tags"),
    ),
    InputSpec(
        "timestamp",
        "Unix seconds for the immutable tag. Default: max(now, newest existing + 1).",
        commands=("promote", "rollback", "build-tags"),
    ),
    InputSpec(
        "floating-tag",
        "Also move the floating `<target-env>` tag (`true`/`false`).",
        "true",
        kind="bool",
        commands=("promote", "rollback"),
    ),
    InputSpec("username", "Registry user name (default for ghcr.io: `GITHUB_ACTOR`)."),
    InputSpec("password", "Registry password or token.", kind="secret"),
    InputSpec(
        "github-token",
        "GitHub token: ghcr.io password by default, and GitHub API calls.",
        kind="secret",
    ),
    InputSpec(
        "dry-run",
        "Plan and print every output, write nothing (`true`/`false`).",
        "false",
        kind="bool",
    ),
    # --- Flux (issue: Flux fidelity) -------------------------------------------------------
    InputSpec(
        "gitops-path",
        "Path of a GitOps checkout (default: the workspace for `check`).",
        commands=("check", "verify-flux", "promote", "rollback", "automate", "predict", "trace"),
    ),
    InputSpec(
        "gitops-repo",
        "GitOps repository `owner/name`, read through the GitHub API.",
        commands=("verify-flux", "promote", "rollback", "predict", "trace"),
    ),
    InputSpec(
        "gitops-ref",
        "Branch, tag or sha of `gitops-repo` (default: its default branch).",
        commands=("verify-flux", "promote", "rollback", "automate", "predict", "trace"),
    ),
    InputSpec(
        "policy",
        "Flux ImagePolicy as `namespace:name`.",
        commands=("verify-flux", "promote", "rollback", "predict"),
    ),
    InputSpec(
        "expected-tag",
        "Tag the markers must carry (`verify-flux`; default: the tag Flux would select now).",
        commands=("verify-flux",),
    ),
    InputSpec(
        "timeout",
        "Seconds to poll for `verify-flux` (0 = check once).",
        "0",
        kind="int",
        commands=("verify-flux",),
    ),
    # --- rollback and GitHub records (issue: rollback) -------------------------------------
    InputSpec(
        "rollback-to",
        "Immutable tag or digest to restore (default: the production digest before the "
        "current one).",
        commands=("rollback",),
    ),
    InputSpec(
        "revert-commit",
        "Also revert the automation commit in the GitOps repo (`true`/`false`).",
        "false",
        kind="bool",
        commands=("rollback",),
    ),
    InputSpec(
        "create-deployment",
        "Record a GitHub Deployment with statuses (`true`/`false`).",
        "false",
        kind="bool",
        commands=("promote", "rollback"),
    ),
    InputSpec(
        "environment-url",
        "URL shown on the GitHub Deployment.",
        commands=("promote", "rollback"),
    ),
    InputSpec(
        "git-tag",
        "Create the git tag `v<version>` on the commit (`true`/`false`).",
        "false",
        kind="bool",
        commands=("promote",),
    ),
    InputSpec(
        "release",
        "Create a GitHub Release with generated notes (`true`/`false`).",
        "false",
        kind="bool",
        commands=("promote",),
    ),
    InputSpec(
        "repository",
        "Service repository `owner/name` for GitHub records (default `GITHUB_REPOSITORY`).",
        commands=("promote", "rollback"),
    ),
    # --- build tags (issue: one tag grammar) -----------------------------------------------
    InputSpec("env", "Build environment: `develop` or `staging`.", commands=("build-tags",)),
    InputSpec(
        "branch",
        "Branch to map to an environment when `env` is empty.",
        commands=("build-tags",),
    ),
    InputSpec(
        "branch-map",
        "Newline list `branch=env` (default `develop=develop` and `main=staging`).",
        kind="list",
        commands=("build-tags",),
    ),
    # --- issue 15: the chapter on one machine ----------------------------------------------
    InputSpec(
        "revert-local",
        "With `revert-commit` and a `gitops-path` whose branch has no upstream: commit the "
        "revert in the checkout only, with a warning (`true`/`false`; default: refuse).",
        "false",
        kind="bool",
        commands=("rollback",),
    ),
    # --- promotion record and trace (issue 16) ---------------------------------------------
    InputSpec(
        "record",
        "Attach a promotion record (in-toto statement) to the promoted digest as an OCI "
        "referrer (`true`/`false`).",
        "true",
        kind="bool",
        commands=("promote", "rollback"),
    ),
    InputSpec(
        "ref",
        "`trace`: the tag or `sha256:` digest to trace (default: the floating `<target-env>` "
        "tag, i.e. what is deployed now).",
        commands=("trace",),
    ),
    # --- across repositories and registries (issue 13) -------------------------------------
    InputSpec(
        "source-image",
        "Repository holding `source-tag`/`source-digest` (default: `image`). Another "
        "repository or registry: every blob is mounted or copied and every manifest copied "
        "byte for byte into `image` before any tag is written there.",
        commands=("promote",),
    ),
    InputSpec(
        "source-username",
        "User name for `source-image` (default: `username` on the same registry host, else "
        "the Docker config; for ghcr.io `GITHUB_ACTOR`).",
        commands=("promote",),
    ),
    InputSpec(
        "source-password",
        "Password or token for `source-image` (default: `password` on the same registry "
        "host, else the Docker config; for ghcr.io `github-token`).",
        kind="secret",
        commands=("promote",),
    ),
    InputSpec(
        "copy-signatures",
        "Also copy cosign `.sig`/`.att`/`.sbom` tags and OCI referrers of the digest and of "
        "each child (`true`/`false`).",
        "true",
        kind="bool",
        commands=("promote",),
    ),
    InputSpec(
        "copy-parallelism",
        "Blobs copied at once across repositories (1-16).",
        "4",
        kind="int",
        commands=("promote",),
    ),
    InputSpec(
        "ca-file",
        "PEM bundle of CA certificates (a path in the workspace) to trust for the registries' "
        "TLS, e.g. a private CA; loopback registries are then spoken to over HTTPS too.",
        commands=("promote", "rollback"),
    ),
)

INPUT_NAMES: frozenset[str] = frozenset(spec.name for spec in INPUTS)
SPECS: dict[str, InputSpec] = {spec.name: spec for spec in INPUTS}


def screen(name: str, value: str) -> str:
    """Reject hostile or malformed raw values generically; return the stripped value."""
    spec = SPECS.get(name)
    kind = spec.kind if spec else "text"
    limit = MAX_LIST_LENGTH if kind in {"list", "secret"} else MAX_LENGTH
    shown = "the value" if kind == "secret" else "it"
    if len(value) > limit:
        raise InputError(f"input {name!r} is longer than {limit} characters", input_name=name)
    if _CONTROL.search(value):
        raise InputError(
            f"input {name!r} contains a control character; remove {shown}", input_name=name
        )
    if _INVISIBLE.search(value):
        raise InputError(
            f"input {name!r} contains an invisible formatting character (zero-width or "
            f"bidirectional); remove {shown}",
            input_name=name,
        )
    if _WORKFLOW_COMMAND.search(value):
        raise InputError(
            f"input {name!r} contains a workflow command (::name::); remove {shown}",
            input_name=name,
        )
    if kind != "list":
        value = value.strip()
        if _NEWLINE.search(value):
            raise InputError(f"input {name!r} must be a single line", input_name=name)
    if kind not in {"free", "secret"} and not value.isascii():
        raise InputError(
            f"input {name!r} contains non-ASCII characters (look-alikes are refused): "
            f"{ascii(value)[:80]}",
            input_name=name,
        )
    return value


class Inputs:
    """Screened input values with typed readers; an empty value means "use the default"."""

    def __init__(self, raw: Mapping[builtins.str, builtins.str]) -> None:
        unknown = sorted(set(raw) - INPUT_NAMES)
        if unknown:
            raise InputError(f"unknown input(s): {', '.join(unknown)}")
        self._values = {name: screen(name, value) for name, value in raw.items()}

    def check_types(self) -> None:
        """Read every given ``bool`` and ``int`` input once, whichever command reads it.

        A typo in an input the command does not read (``revert-commit: yes`` on a promote)
        is still an error, before any network call, instead of being silently ignored.
        """
        for name in self._values:
            kind = SPECS[name].kind
            if kind == "bool" and self.given(name):
                self.bool(name)
            elif kind == "int" and self.given(name):
                self.int(name)

    def given(self, name: builtins.str) -> builtins.bool:
        """Whether the user set ``name`` to a non-empty value."""
        return bool(self._values.get(name, ""))

    def str(self, name: builtins.str) -> builtins.str:
        """The value, or its declared default."""
        value = self._values.get(name, "")
        return value if value else SPECS[name].default

    def bool(self, name: builtins.str) -> builtins.bool:
        value = self.str(name)
        if value in TRUE_VALUES:
            return True
        if value in FALSE_VALUES:
            return False
        raise InputError(
            f"input {name!r} must be true or false, not {value[:40]!r}", input_name=name
        )

    def int(
        self, name: builtins.str, *, minimum: builtins.int = 0, maximum: builtins.int = 2**53
    ) -> builtins.int:
        value = self.str(name)
        if not re.fullmatch(r"[0-9]{1,16}", value):
            raise InputError(
                f"input {name!r} must be a whole number, not {value[:40]!r}", input_name=name
            )
        number = int(value)
        if not minimum <= number <= maximum:
            raise InputError(
                f"input {name!r} must be between {minimum} and {maximum}", input_name=name
            )
        return number

    def choice(self, name: builtins.str, choices: tuple[builtins.str, ...]) -> builtins.str:
        value = self.str(name)
        if value not in choices:
            raise InputError(
                f"input {name!r} must be one of {', '.join(choices)}, not {value[:40]!r}",
                input_name=name,
            )
        return value

    def lines(self, name: builtins.str) -> list[builtins.str]:
        """A newline list: blank lines and surrounding spaces dropped."""
        return [ln.strip() for ln in self.str(name).splitlines() if ln.strip()]

    def secret(self, name: builtins.str) -> builtins.str:
        return self._values.get(name, "")
