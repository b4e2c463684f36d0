"""Every ``GITHUB_*`` / ``PROMOTE_*`` / ``RUNNER_*`` variable promote reads, in one place.

A command reads one :class:`Settings`, built from the environment by the front door
(``ctx.settings``), which hands plain, validated values down; no other module names these
variables (the runner's files, the CLI's fallbacks and the debug switch are read by wrapping
the same mapping again: plain look-ups, no rule runs twice). Each value has
exactly one rule, applied when it is read (a validated value is kept), so a command is refused
only for a variable it actually uses (a bad ``PROMOTE_REGISTRY_DEADLINE`` does not stop
``check``), with the same :class:`~promote.errors.InputError` wherever it is read:

=============================== =============================================================
variable                        rule (attribute)
=============================== =============================================================
``GITHUB_WORKSPACE``            relative inputs are resolved against it (``workspace``)
``GITHUB_TOKEN``                the GitHub token when ``github-token`` is empty (``github_token``)
``GITHUB_API_URL``              https unless loopback; default api.github.com (``api_url``)
``GITHUB_SERVER_URL``           as given, may be empty (``server_url``); the run's log
                                URL: https unless loopback (``run_log_url``)
``GITHUB_REPOSITORY``           as given, may be empty (``repository``)
``GITHUB_RUN_ID``               stripped (``run_id``)
``GITHUB_RUN_ATTEMPT``          stripped (``run_attempt``)
``GITHUB_WORKFLOW_REF``         stripped (``workflow_ref``)
``GITHUB_EVENT_NAME``           stripped (``event_name``)
``GITHUB_ACTOR``                as given (``actor``)
``GITHUB_REF_NAME``             the branch of a build (``ref_name``)
``GITHUB_SHA``                  the commit of a build (``sha``)
``GITHUB_OUTPUT``               file for outputs, or None (``output_file``)
``GITHUB_STEP_SUMMARY``         file for the job summary, or None (``step_summary``)
``GITHUB_ACTIONS``              ``true``: on a GitHub runner, masks are announced (``on_runner``)
``PROMOTE_GITHUB_THROTTLE``     ``false``/``0`` turns PyGithub's pacing off (``github_throttle``)
``PROMOTE_REGISTRY_DEADLINE``   seconds in (0, 3600], or unset (``registry_deadline``)
``PROMOTE_REGISTRY_TIMEOUT``    seconds in (0, 3600], or unset (``registry_timeout``)
``PROMOTE_USERNAME``            CLI: ``--username`` when absent (``cli_username``)
``PROMOTE_PASSWORD``            CLI: ``--password`` when absent (``cli_password``)
``PROMOTE_DEBUG``               set: an internal error prints its traceback (``debug``)
``RUNNER_DEBUG``                the same, as GitHub's debug logging sets it (``debug``)
``RUNNER_TEMP``                 where the predicate file goes (``runner_temp``)
=============================== =============================================================

The raw mapping stays available as :attr:`Settings.env` for what needs the whole process
environment (git and credential-helper subprocesses, ``PATH``, ``HOME``, ``DOCKER_CONFIG``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import TypedDict

from promote.errors import InputError

#: Environment knobs (seconds) for the registry client: the overall retry deadline and the
#: timeout of one attempt. Unset: the client's defaults (120 s and 30 s).
DEADLINE_ENV = "PROMOTE_REGISTRY_DEADLINE"
TIMEOUT_ENV = "PROMOTE_REGISTRY_TIMEOUT"
MAX_SECONDS = 3600.0


class ClientLimits(TypedDict, total=False):
    """``deadline``/``timeout`` keyword arguments of the registry client."""

    deadline: float
    timeout: float


class _Var:
    """A variable read as text (``""`` when unset), stripped of spaces when ``strip``."""

    def __init__(self, name: str, *, strip: bool = False) -> None:
        self.name, self.strip = name, strip

    def __get__(self, settings: Settings, owner: object = None) -> str:
        value = settings.env.get(self.name, "")
        return value.strip() if self.strip else value


@dataclass(frozen=True)
class Settings:
    """The run's environment variables as typed values (see the module docstring)."""

    env: Mapping[str, str] = field(repr=False)

    # -- GitHub Actions defaults, as given -------------------------------------------------
    workspace = _Var("GITHUB_WORKSPACE")
    github_token = _Var("GITHUB_TOKEN")
    server_url = _Var("GITHUB_SERVER_URL")
    repository = _Var("GITHUB_REPOSITORY")
    run_id = _Var("GITHUB_RUN_ID", strip=True)
    run_attempt = _Var("GITHUB_RUN_ATTEMPT", strip=True)
    workflow_ref = _Var("GITHUB_WORKFLOW_REF", strip=True)
    event_name = _Var("GITHUB_EVENT_NAME", strip=True)
    actor = _Var("GITHUB_ACTOR")
    ref_name = _Var("GITHUB_REF_NAME")
    sha = _Var("GITHUB_SHA")
    runner_temp = _Var("RUNNER_TEMP", strip=True)
    cli_username = _Var("PROMOTE_USERNAME")
    cli_password = _Var("PROMOTE_PASSWORD")

    # -- values with a rule ----------------------------------------------------------------
    @cached_property
    def api_url(self) -> str:
        from promote.githubapi import DEFAULT_API_URL

        return http_url(self.env.get("GITHUB_API_URL") or DEFAULT_API_URL, what="GITHUB_API_URL")

    @property
    def run_log_url(self) -> str:
        """This run's log on GitHub, from ``server_url`` (default github.com, checked like
        ``api_url`` only when used), ``repository`` and a numeric ``run_id``; else empty."""
        from promote.github import DEFAULT_SERVER_URL

        run_id, repository = self.run_id, self.repository
        if not (run_id.isdigit() and repository):
            return ""
        server = http_url(self.server_url or DEFAULT_SERVER_URL, what="GITHUB_SERVER_URL")
        return f"{server.rstrip('/')}/{repository}/actions/runs/{run_id}"

    @property
    def output_file(self) -> str | None:
        return self.env.get("GITHUB_OUTPUT") or None

    @property
    def step_summary(self) -> str | None:
        return self.env.get("GITHUB_STEP_SUMMARY") or None

    @property
    def on_runner(self) -> bool:
        return self.env.get("GITHUB_ACTIONS") == "true"

    @property
    def github_throttle(self) -> bool:
        raw = self.env.get("PROMOTE_GITHUB_THROTTLE") or "true"
        return raw.lower() not in {"0", "false"}

    @cached_property
    def registry_deadline(self) -> float | None:
        return _seconds(self.env, DEADLINE_ENV)

    @cached_property
    def registry_timeout(self) -> float | None:
        return _seconds(self.env, TIMEOUT_ENV)

    @property
    def client_limits(self) -> ClientLimits:
        """``deadline``/``timeout`` keyword arguments for the registry client (validated)."""
        limits = ClientLimits()
        deadline, timeout = self.registry_deadline, self.registry_timeout
        if deadline is not None:
            limits["deadline"] = deadline
        if timeout is not None:
            limits["timeout"] = timeout
        return limits

    @property
    def debug(self) -> bool:
        return bool(self.env.get("PROMOTE_DEBUG") or self.env.get("RUNNER_DEBUG"))


def http_url(value: str, *, what: str, input_name: str | None = None) -> str:
    """An ``http(s)`` URL with a host; plain ``http`` only for loopback hosts (the one rule
    for ``GITHUB_API_URL``, ``GITHUB_SERVER_URL`` and the ``environment-url`` input)."""
    import urllib.parse

    from promote.reference import is_loopback_host

    parsed = urllib.parse.urlsplit(value)
    if parsed.scheme not in {"http", "https"} or not parsed.hostname:
        raise InputError(f"{what} {value[:80]!r} must be an http(s) URL", input_name=input_name)
    if not parsed.hostname.isascii():
        raise InputError(
            f"{what} host must be ASCII (write an international name in punycode, xn--...): "
            f"{ascii(parsed.hostname)[:80]}",
            input_name=input_name,
        )
    if parsed.username or parsed.password:
        raise InputError(f"{what} must not carry credentials", input_name=input_name)
    if parsed.scheme == "http" and not is_loopback_host(parsed.hostname):
        raise InputError(
            f"{what} {value[:80]!r} must use https (plain http only for loopback)",
            input_name=input_name,
        )
    return value


def _seconds(env: Mapping[str, str], var: str) -> float | None:
    raw = env.get(var, "").strip()
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 < value <= MAX_SECONDS:
        raise InputError(f"{var} must be seconds between 0 and {MAX_SECONDS:g}, not {raw[:20]!r}")
    return value
