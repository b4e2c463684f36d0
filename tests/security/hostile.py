"""The hostile-input table: for every input in ``promote.frontdoor.inputs.INPUTS``, values that must
be refused before the first registry request.

Every input gets the *generic* attacks (newline / CR / heredoc-delimiter injection, control
and invisible characters, workflow-command strings, overlong values). Inputs with a
grammar also get the attacks on that grammar (Unicode look-alikes, credentials in the
image reference, path traversal in repository names, wrong types and ranges).

Each case says which command reads the input and what context makes the input matter
(e.g. ``environment-url`` only matters with ``create-deployment: true``), so the refusal
is proved on the code path that would use the value. The same context with the *valid*
value must get past validation (:data:`VALID`): a differential control that proves the
refusal is caused by the hostile value and nothing else.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field

from promote.frontdoor.inputs import INPUTS, MAX_LENGTH, MAX_LIST_LENGTH, SPECS

SINK = "{sink}"  # replaced by the counting sink's host:port
GITOPS = "{gitops}"  # replaced by a GitOps checkout holding POLICY
POLICY = "flux-system:backend-production"

#: A valid value for every input (same keys as INPUTS: a test checks it).
VALID: dict[str, str] = {
    "command": "promote",
    "image": f"{SINK}/team/app",
    "source-tag": "staging-abc1234-1767000000",
    "source-digest": "sha256:" + "a" * 64,
    "source-env": "staging",
    "target-env": "production",
    "version": "2.0.0",
    "bump": "minor",
    "commit-sha": "abc1234def5678",
    "timestamp": "1767225600",
    "floating-tag": "true",
    "username": "promoter",
    "password": "s3cret-Pa55word",
    "github-token": "ghs_SENTINELtoken0123456789",
    "dry-run": "false",
    "gitops-path": GITOPS,
    "gitops-repo": "acme/gitops",
    "gitops-ref": "main",
    "policy": POLICY,
    "expected-tag": "production-v1.0.0-abc1234-1767225600",
    "timeout": "30",
    "rollback-to": "production-v1.0.0-abc1234-1767225600",
    "revert-commit": "false",
    "create-deployment": "false",
    "environment-url": "https://backend.example.com/",
    "git-tag": "false",
    "release": "false",
    "repository": "acme/backend",
    "env": "staging",
    "branch": "main",
    "branch-map": "main=staging\ndevelop=develop",
    "revert-local": "false",
    "record": "true",
    "ref": "production",
    "source-image": f"{SINK}/staging/app",
    "source-username": "source-promoter",
    "source-password": "s0urce-Pa55word",
    "copy-signatures": "true",
    "copy-parallelism": "4",
    "ca-file": f"{GITOPS}/ca.pem",
}

#: Inputs the promote command only reads in some context: that context, for every case.
CONTEXT: dict[str, dict[str, str]] = {
    "gitops-path": {"policy": POLICY},
    "policy": {"gitops-path": GITOPS},
    "gitops-repo": {"policy": POLICY},
    "gitops-ref": {"gitops-repo": "acme/gitops", "policy": POLICY},
    "repository": {"create-deployment": "true", "github-token": "ghs_ctx0123456789"},
    "environment-url": {"create-deployment": "true", "github-token": "ghs_ctx0123456789"},
    "copy-parallelism": {"source-image": f"{SINK}/staging/app"},
    "copy-signatures": {"source-image": f"{SINK}/staging/app"},
}
#: Inputs read by build-tags only (no registry at all; the sink proves it stays so).
BUILD_TAGS_ONLY = frozenset({"env", "branch", "branch-map"})
#: Inputs read by trace only.
TRACE_ONLY = frozenset({"ref"})

BOOLEANS = (
    *("floating-tag", "dry-run", "revert-commit", "create-deployment", "git-tag", "release"),
    "revert-local",
    "record",
    "copy-signatures",
)
BAD_BOOLEANS = ("yes", "1", "tRue", "on", "false!")

#: Grammar attacks per input: (category, value).
SPECIFIC: dict[str, list[tuple[str, str]]] = {
    "command": [("type", "deploy"), ("type", "PROMOTE"), ("type", "promote;rollback")],
    "image": [
        ("credentials", f"promoter:hunter2-in-ref@{SINK}/team/app"),
        ("credentials", f"https://promoter:hunter2-in-ref@{SINK}/team/app"),
        ("credentials", f"http://{SINK}/team/app"),
        ("traversal", f"{SINK}/../etc/passwd"),
        ("traversal", f"{SINK}/team/../../app"),
        ("traversal", f"{SINK}/team/./app"),
        ("traversal", f"{SINK}//team/app"),
        ("traversal", f"{SINK}/team/%2e%2e/app"),
        ("traversal", f"{SINK}/team/app/.."),
        ("lookalike", f"{SINK}/t\u0435am/app"),  # Cyrillic e
        ("lookalike", f"{SINK}/team/\uff41pp"),  # fullwidth a
        ("type", f"{SINK}/team/app:staging-abc1234-1767000000"),
        ("type", f"{SINK}/team/app@sha256:" + "a" * 64),
        ("type", f"{SINK}/Team/App"),
        ("range", f"{SINK}/" + "a" * 300),
    ],
    "source-tag": [
        ("type", "latest"),
        ("type", "production"),
        ("type", "production-v1.0.0-abc1234-1767225600"),
        ("traversal", "../staging-abc1234-1767000000"),
        ("traversal", "staging-abc1234/../../x"),
        ("lookalike", "st\u0430ging-abc1234-1767000000"),  # Cyrillic a
        ("range", "staging-" + "a" * 130),
        ("type", "-staging-abc1234"),
    ],
    "source-digest": [
        ("type", "sha512:" + "a" * 128),
        ("type", "sha256:" + "A" * 64),
        ("type", "sha256:abc"),
        ("type", "md5:0123456789abcdef"),
        ("type", "sha256:" + "g" * 64),
        ("traversal", "sha256:../../" + "a" * 58),
    ],
    "source-env": [
        ("type", "Staging"),
        ("type", "1staging"),
        ("type", "production"),  # equal to target-env
        ("traversal", "../staging"),
        ("range", "s" * 40),
    ],
    "target-env": [
        ("type", "staging"),  # equal to source-env
        ("type", "Production"),
        ("type", "prod-1"),
        ("traversal", "../production"),
        ("range", "p" * 40),
    ],
    "version": [
        ("type", "1.2"),
        ("type", "1.2.3-rc.1"),
        ("type", "1.2.3+build.7"),
        ("type", "01.2.3"),
        ("type", "v"),
        ("type", "1.0.0.0"),
        ("range", "9" * 40 + ".0.0"),
        ("range", "1." + "9" * 200 + ".0"),
    ],
    "bump": [("type", "huge"), ("type", "PATCH"), ("type", "patch,major")],
    "commit-sha": [
        ("type", "xyz1234"),
        ("type", "12345"),
        ("type", "g" * 40),
        ("range", "a" * 65),
        ("traversal", "../abc1234"),
    ],
    "timestamp": [
        ("range", "1767225600000"),  # milliseconds
        ("range", "999"),
        ("type", "-5"),
        ("type", "1e9"),
        ("type", "soon"),
        ("range", "0"),
        ("range", "9" * 25),
    ],
    "timeout": [("type", "-1"), ("type", "1e3"), ("type", "ten"), ("range", "9" * 25)],
    "repository": [
        ("traversal", "../backend"),
        ("traversal", "acme/../../backend"),
        ("traversal", "acme/.."),
        ("traversal", "/etc/passwd"),
        ("type", "acme"),
        ("type", "acme/backend/extra"),
        ("lookalike", "\u0430cme/backend"),
    ],
    "environment-url": [
        ("lookalike", "https://b\u0430ckend.example.com/"),  # Cyrillic a: IDN homograph
        ("credentials", "https://user:hunter2-in-url@backend.example.com/"),
        ("type", "javascript:alert(1)"),
        ("type", "http://backend.example.com/"),  # plain http off loopback
    ],
    "username": [("lookalike", "pr\u043emoter")],  # Cyrillic o
    "env": [("lookalike", "st\u0430ging")],
    "branch": [("lookalike", "m\u0430in")],
    "branch-map": [("lookalike", "m\u0430in=staging")],
    "ref": [
        ("type", "sha256:abc"),
        ("type", "sha512:" + "a" * 128),
        ("type", "production:latest"),
        ("traversal", "../production"),
        ("traversal", "production/../../x"),
        ("lookalike", "pr\u043eduction"),  # Cyrillic o
        ("range", "p" * 129),
    ],
    "source-image": [
        ("credentials", f"promoter:hunter2-in-ref@{SINK}/staging/app"),
        ("credentials", f"https://{SINK}/staging/app"),
        ("traversal", f"{SINK}/staging/../../app"),
        ("traversal", f"{SINK}//staging/app"),
        ("lookalike", f"{SINK}/st\u0430ging/app"),
        ("type", f"{SINK}/staging/app:staging-abc1234-1767000000"),
        ("type", f"{SINK}/Staging/App"),
        ("range", f"{SINK}/" + "a" * 300),
    ],
    "source-username": [("lookalike", "s\u043eurce-promoter")],
    "copy-parallelism": [
        ("range", "0"),
        ("range", "17"),
        ("type", "-1"),
        ("type", "four"),
        ("type", "2.5"),
        ("range", "9" * 25),
    ],
    "ca-file": [
        ("type", "/nonexistent/ca.pem"),
        ("type", f"{GITOPS}/policies.yaml"),  # readable, but no PEM certificate
        ("traversal", "../../../../../../nonexistent/ca.pem"),
        ("type", f"{GITOPS}"),  # a directory
    ],
}
for _name in BOOLEANS:
    SPECIFIC.setdefault(_name, []).extend(("type", v) for v in BAD_BOOLEANS)


def generic_attacks(name: str) -> list[tuple[str, str]]:
    """Attacks every input must refuse, whatever its grammar."""
    valid = VALID[name]
    kind = SPECS[name].kind
    limit = MAX_LIST_LENGTH if kind in {"list", "secret"} else MAX_LENGTH
    cases = [
        ("newline", f"{valid}\n::set-output name=changed::true"),
        ("newline", f"{valid}\r::set-output name=changed::true"),
        ("newline", f"{valid}\u2028::set-output name=changed::true"),
        ("heredoc", f"{valid}\nghadelimiter_00000000\nchanged<<EOF\ntrue\nEOF"),
        ("control", f"{valid}\x00"),
        ("control", f"\x1b[2K{valid}"),
        ("control", f"{valid}\x7f"),
        ("invisible", f"{valid[:1]}\u200b{valid[1:]}"),
        ("invisible", f"{valid}\u202e"),
        ("invisible", f"\ufeff{valid}"),
        ("workflow-command", "::set-output name=changed::true"),
        ("workflow-command", f"::add-mask::{valid}"),
        ("workflow-command", "::stop-commands::pwned"),
        ("workflow-command", f"{valid}::error file=x::boom"),
        ("overlong", "a" * (limit + 1)),
    ]
    return cases


@dataclass(frozen=True)
class Case:
    name: str
    category: str
    value: str
    command: str = "promote"
    context: dict[str, str] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return f"{self.name}-{self.category}-{zlib.crc32(self.value.encode()) % 10_000:04d}"


def command_for(name: str) -> str:
    if name in TRACE_ONLY:
        return "trace"
    return "build-tags" if name in BUILD_TAGS_ONLY else "promote"


def all_cases() -> list[Case]:
    cases: list[Case] = []
    for spec in INPUTS:
        attacks = generic_attacks(spec.name) + SPECIFIC.get(spec.name, [])
        for category, value in attacks:
            cases.append(
                Case(
                    spec.name,
                    category,
                    value,
                    command_for(spec.name),
                    CONTEXT.get(spec.name, {}),
                )
            )
    return cases


CASES = all_cases()
