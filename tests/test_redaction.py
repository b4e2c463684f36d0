"""The one redactor (promote/redaction.py), used by the runner and the registry client."""

from __future__ import annotations

from promote.frontdoor.actions import Runner
from promote.redaction import MASK, redact
from promote.reference import parse_repository
from promote.registry import Credentials
from promote.registry.auth import Authenticator


def test_longest_secret_first_and_empty_ones_ignored() -> None:
    # "pass" inside "password1": replacing the short one first would leave "***word1"
    assert redact("user password1 and pass", ["pass", "password1", ""]) == "user *** and ***"
    assert redact("nothing secret", []) == "nothing secret"
    assert MASK == "***"


def test_the_runner_and_the_registry_client_redact_alike() -> None:
    """Both sides of a run hide the same secrets the same way (one function)."""
    text = "token sk-abcdef123456 for alice:hunter2-secret"
    runner = Runner(mask=False)
    for secret in ("sk-abcdef123456", "hunter2-secret"):
        runner.add_secret(secret)
    seen: list[str] = []
    auth = Authenticator(
        parse_repository("127.0.0.1:5000/acme/app"),
        Credentials("alice", "hunter2-secret"),
        transport=None,  # type: ignore[arg-type]  # not used: no request is sent
        on_secret=seen.append,
    )
    auth._remember("sk-abcdef123456")
    assert seen == ["hunter2-secret", "sk-abcdef123456"]
    assert runner.redact(text) == auth.redact(text) == "token *** for alice:***"
