"""Secrets never leak: promotions against real Basic and token-auth registries, with
sentinel secrets, through the real ``python entrypoint.py``.

Every captured byte (stdout, stderr, ``GITHUB_OUTPUT``, the step summary) is scanned for
the registry password, the github-token, their URL-encoded forms, the Basic header value
``base64(user:password)``, and every token the token service issued (whole and its
signature part). Masks: each of those secrets that the run used is announced with
``::add-mask::`` before any other line that mentions authentication, and the two input
secrets are masked before anything else is printed.
"""

from __future__ import annotations

import base64
import re
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest

from testkit.engine import EntrypointRun as Capture
from testkit.engine import entrypoint
from testkit.figures import Figures
from testkit.proxy import Fault, FaultProxy
from testkit.registry import RegistryServer

ROOT = Path(__file__).resolve().parents[2]
GITHUB_TOKEN = "ghs_SENTINELgithubTOKEN0123456789abcdef"
SOURCE_TAG = "staging-abc1234-1700000500"
AUTH_LINE = re.compile(r"auth|token|bearer|basic|password|credential|login", re.IGNORECASE)
SCANNED: list[int] = []


def secret_forms(server: RegistryServer, password: str) -> dict[str, str]:
    """Every form of every secret that must never appear (name -> value)."""
    assert server.username is not None
    forms = {
        "password": password,
        "password (url-encoded)": urllib.parse.quote(password, safe=""),
        "github-token": GITHUB_TOKEN,
        "basic header": base64.b64encode(f"{server.username}:{password}".encode()).decode(),
    }
    if server.token_service is not None:
        for i, token in enumerate(server.token_service.tokens):
            forms[f"token {i}"] = token
            forms[f"token {i} signature"] = token.rsplit(".", 1)[-1]
    return forms


def assert_no_leak(capture: Capture, forms: dict[str, str]) -> None:
    text = capture.everything
    masked = {
        ln[len("::add-mask::") :]
        for ln in capture.stdout.splitlines()
        if ln.startswith("::add-mask::")
    }
    for name, value in forms.items():
        # the only place a secret may appear is its own ::add-mask:: line
        count = text.count(value)
        allowed = sum(1 for m in masked if value in m)
        assert count <= allowed, f"{name} leaked ({count} occurrence(s), {allowed} in masks)"
    SCANNED.append(len(forms))


def assert_masked_first(capture: Capture, used: dict[str, str]) -> None:
    lines = capture.stdout.splitlines()
    masks = [i for i, ln in enumerate(lines) if ln.startswith("::add-mask::")]
    # the input secrets before anything else
    assert lines[0] == f"::add-mask::{used['password']}"
    assert lines[1] == f"::add-mask::{GITHUB_TOKEN}"
    # every secret the run used is masked, before any line that mentions auth
    first_auth = next(
        (
            i
            for i, ln in enumerate(lines)
            if not ln.startswith("::add-mask::") and AUTH_LINE.search(ln)
        ),
        len(lines),
    )
    for name, value in used.items():
        where = [i for i in masks if lines[i] == f"::add-mask::{value}"]
        assert where, f"{name} was never masked"
        assert where[0] < first_auth, f"{name} masked only after: {lines[first_auth]}"


@pytest.fixture
def seeded(request: pytest.FixtureRequest, repo_path: str) -> Iterator[tuple[RegistryServer, str]]:
    server: RegistryServer = request.getfixturevalue(request.param)
    seeder = server.seeder()
    seeder.oci_image(repo_path, SOURCE_TAG, revision="abc1234" + "0" * 33)
    seeder.close()
    yield server, repo_path


def inputs_for(
    server: RegistryServer, repo: str, host: str | None = None, **extra: str
) -> dict[str, str]:
    assert server.username and server.password
    return {
        "image": f"{host or server.host}/{repo}",
        "source-tag": SOURCE_TAG,
        "username": server.username,
        "password": server.password,
        "github-token": GITHUB_TOKEN,
        **extra,
    }


def used_secrets(server: RegistryServer, before: int) -> dict[str, str]:
    """The secrets a run used: password, github-token, Basic value, tokens issued to it."""
    assert server.username and server.password
    used = {"password": server.password, "github-token": GITHUB_TOKEN}
    if server.token_service is None:
        used["basic header"] = base64.b64encode(
            f"{server.username}:{server.password}".encode()
        ).decode()
    else:
        for i, token in enumerate(server.token_service.tokens[before:]):
            used[f"token {i}"] = token
    return used


BOTH = pytest.mark.parametrize("seeded", ["basic_registry", "token_registry"], indirect=True)


@BOTH
def test_successful_promotion_leaks_nothing(
    tmp_path: Path, seeded: tuple[RegistryServer, str]
) -> None:
    server, repo = seeded
    before = len(server.token_service.tokens) if server.token_service else 0
    capture = entrypoint(tmp_path, inputs_for(server, repo), {"RUNNER_DEBUG": "1"})
    assert capture.status == 0, capture.stdout + capture.stderr
    assert "changed<<" in capture.output  # it did write outputs, and they were scanned
    assert server.password
    if server.token_service is not None:
        assert len(server.token_service.tokens) > before  # tokens were issued
    assert_no_leak(capture, secret_forms(server, server.password))
    assert_masked_first(capture, used_secrets(server, before))


@BOTH
def test_dry_run_leaks_nothing(tmp_path: Path, seeded: tuple[RegistryServer, str]) -> None:
    server, repo = seeded
    before = len(server.token_service.tokens) if server.token_service else 0
    capture = entrypoint(tmp_path, inputs_for(server, repo, **{"dry-run": "true"}), {})
    assert capture.status == 0, capture.stdout
    assert server.password
    assert_no_leak(capture, secret_forms(server, server.password))
    assert_masked_first(capture, used_secrets(server, before))


@BOTH
def test_wrong_password_error_leaks_nothing(
    tmp_path: Path, seeded: tuple[RegistryServer, str]
) -> None:
    server, repo = seeded
    wrong = "pw-WRONG-sentinel-" + "7" * 12
    inputs = inputs_for(server, repo)
    inputs["password"] = wrong
    capture = entrypoint(tmp_path, inputs, {})
    assert capture.status == 1, capture.stdout
    [error] = [ln for ln in capture.stdout.splitlines() if ln.startswith("::error")]
    assert "check the username and password" in error or "HTTP 401" in error
    assert capture.output == ""
    assert_no_leak(capture, secret_forms(server, wrong))
    assert capture.stdout.splitlines()[0] == f"::add-mask::{wrong}"


def test_expired_token_rechallenge_leaks_neither_token(
    tmp_path: Path, request: pytest.FixtureRequest, repo_path: str
) -> None:
    server: RegistryServer = request.getfixturevalue("token_registry")
    assert server.token_service is not None and server.password
    seeder = server.seeder()
    seeder.oci_image(repo_path, SOURCE_TAG, revision="abc1234" + "0" * 33)
    seeder.close()
    before = len(server.token_service.tokens)
    server.token_service.expired_next = 1
    try:
        capture = entrypoint(tmp_path, inputs_for(server, repo_path), {})
    finally:
        server.token_service.expired_next = 0
    assert capture.status == 0, capture.stdout
    issued = server.token_service.issued[before:]
    assert issued[0].expired and len(issued) >= 2  # a second token after the re-challenge
    assert_no_leak(capture, secret_forms(server, server.password))
    assert_masked_first(capture, used_secrets(server, before))


def test_transient_failure_after_auth_leaks_nothing(
    tmp_path: Path, request: pytest.FixtureRequest, repo_path: str
) -> None:
    """A lasting 503 on writes, after the token flow: the error names URLs, never tokens."""
    server: RegistryServer = request.getfixturevalue("token_registry")
    assert server.password
    seeder = server.seeder()
    seeder.oci_image(repo_path, SOURCE_TAG, revision="abc1234" + "0" * 33)
    seeder.close()
    with FaultProxy(server.url) as proxy:
        proxy.add(Fault.status(503), method="PUT", path=r"/manifests/", always=True)
        capture = entrypoint(
            tmp_path,
            inputs_for(server, repo_path, host=proxy.host),
            # 3 s: the token flow and the reads before the PUT spend the same deadline
            # (a subprocess, default backoff): a loaded machine must still leave the PUT
            # its retry
            {"PROMOTE_REGISTRY_DEADLINE": "3"},
        )
        assert proxy.counts["manifest-put"] >= 2
        # the client did send its bearer token through the proxy: it was live, and secret
        assert any(e.headers.get("Authorization", "").startswith("Bearer ") for e in proxy.log)
    assert capture.status == 1, capture.stdout
    assert "giving up" in capture.stdout
    assert_no_leak(capture, secret_forms(server, server.password))


def test_figures(figures: Figures) -> None:
    assert SCANNED, "run the whole module"
    figures.record(
        "secret scans (runs x secret forms checked)", f"{len(SCANNED)} runs, {sum(SCANNED)} checks"
    )


def test_the_scanner_catches_leaks() -> None:
    """The scan itself can fail: a secret outside its mask line, in any stream, is caught."""
    forms = {"password": "pw-sentinel-123456"}
    clean = Capture(0, "::add-mask::pw-sentinel-123456\nok\n", "", "", "")
    assert_no_leak(clean, forms)
    for leaked in (
        Capture(0, "::add-mask::pw-sentinel-123456\nuser pw-sentinel-123456\n", "", "", ""),
        Capture(0, "", "pw-sentinel-123456", "", ""),
        Capture(0, "", "", "x<<d\npw-sentinel-123456\nd\n", ""),
        Capture(0, "", "", "", "| pw-sentinel-123456 |"),
    ):
        with pytest.raises(AssertionError, match="password leaked"):
            assert_no_leak(leaked, forms)
    SCANNED.pop()
