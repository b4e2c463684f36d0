"""Registry credentials from a Docker config, as ``docker login`` and ``docker/login-action``
leave them.

Where: ``$DOCKER_CONFIG/config.json``, else ``$HOME/.docker/config.json`` (the docker CLI's
rule; a missing file or directory means "no credentials", an unreadable or invalid one is
an error). What, for one registry host, in the docker CLI's order:

1. ``credHelpers[<host>]`` names a helper: run ``docker-credential-<name> get`` with the
   server URL on stdin; it prints ``{"ServerURL", "Username", "Secret"}``.
2. else ``credsStore`` names the helper for every registry, the same way.
3. ``auths[<key>]``: ``auth`` (base64 ``user:password``) or ``username`` + ``password``.
   A helper that answers "not found" (non-zero exit) falls through to ``auths``.

Keys are matched by host: ``ghcr.io``, ``https://ghcr.io``, ``https://ghcr.io/v1/`` all name
``ghcr.io``; Docker Hub is ``https://index.docker.io/v1/`` (also ``docker.io``,
``index.docker.io``, ``registry-1.docker.io``), and its helper is asked for that URL.
Identity tokens (``identitytoken``, a helper's ``<token>`` user: OAuth2 refresh tokens) are
not supported: such an entry is skipped with a message, never sent as a password.

Pure of the process environment: the caller passes ``env`` (``HOME``, ``DOCKER_CONFIG``,
``PATH`` for the helpers); the helper runs with that environment and a timeout.
"""

from __future__ import annotations

import base64
import binascii
import json
import shutil
import subprocess
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from promote.errors import AuthError, InputError
from promote.reference import DOCKER_HUB
from promote.registry.auth import Credentials

#: Docker Hub's key in a Docker config (and the server URL its helper is asked for).
DOCKER_HUB_KEY = "https://index.docker.io/v1/"
_HUB_HOSTS = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io"})
#: Seconds a credential helper may take.
HELPER_TIMEOUT = 30.0
#: Largest config file or helper answer read.
MAX_CONFIG_SIZE = 1024 * 1024
#: The user name a helper gives for an identity (refresh) token.
IDENTITY_TOKEN_USER = "<token>"  # noqa: S105 (a marker, not a secret)


def config_path(env: Mapping[str, str]) -> Path | None:
    """``$DOCKER_CONFIG/config.json``, else ``$HOME/.docker/config.json``; None: neither set."""
    if env.get("DOCKER_CONFIG"):
        return Path(env["DOCKER_CONFIG"]) / "config.json"
    if env.get("HOME"):
        return Path(env["HOME"]) / ".docker" / "config.json"
    return None


def key_host(key: str) -> str:
    """The registry host a config key names (scheme and path dropped, Hub normalised)."""
    text = key.strip().lower()
    if "://" in text:
        text = text.split("://", 1)[1]
    host = text.split("/", 1)[0]
    return DOCKER_HUB if host in _HUB_HOSTS else host


def load(path: Path) -> dict[str, Any] | None:
    """The parsed config, or None when the file does not exist."""
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_CONFIG_SIZE + 1)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise InputError(f"cannot read the Docker config {path}: {exc.strerror}") from None
    if len(raw) > MAX_CONFIG_SIZE:
        raise InputError(f"the Docker config {path} is larger than {MAX_CONFIG_SIZE} bytes")
    try:
        doc = json.loads(raw)
    except ValueError:
        raise InputError(f"the Docker config {path} is not valid JSON") from None
    if not isinstance(doc, dict):
        raise InputError(f"the Docker config {path} is not a JSON object")
    return doc


Runner = Callable[..., "subprocess.CompletedProcess[bytes]"]


def from_helper(
    name: str,
    server: str,
    env: Mapping[str, str],
    *,
    run: Runner = subprocess.run,
) -> Credentials | None:
    """``docker-credential-<name> get`` for ``server``; None when it has nothing for it."""
    program = f"docker-credential-{name}"
    if not name or "/" in name or not all(c.isalnum() or c in "-_." for c in name):
        raise InputError(f"invalid credential helper name {name!r} in the Docker config")
    found = shutil.which(program, path=env.get("PATH"))
    if found is None:
        raise AuthError(
            f"the Docker config names the credential helper {name!r} for {server}, but "
            f"{program} is not on PATH"
        )
    try:
        done = run(
            [found, "get"],
            input=server.encode(),
            capture_output=True,
            timeout=HELPER_TIMEOUT,
            env=dict(env),
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise AuthError(f"{program} get did not answer within {HELPER_TIMEOUT:g}s") from None
    except OSError as exc:
        raise AuthError(f"{program} could not be run: {exc.strerror}") from None
    if done.returncode != 0:
        return None  # "credentials not found in native keychain"
    try:
        doc = json.loads(done.stdout[:MAX_CONFIG_SIZE])
    except ValueError:
        raise AuthError(f"{program} get printed no JSON") from None
    user = doc.get("Username") if isinstance(doc, dict) else None
    secret = doc.get("Secret") if isinstance(doc, dict) else None
    if not isinstance(user, str) or not isinstance(secret, str) or not secret:
        return None
    if user == IDENTITY_TOKEN_USER:
        raise AuthError(
            f"{program} gave an identity token for {server}, which promote does not "
            "support; give username and password inputs instead"
        )
    return Credentials(user, secret)


def _from_auths(auths: Mapping[str, Any], host: str, path: Path) -> Credentials | None:
    for key, entry in auths.items():
        if key_host(str(key)) != host or not isinstance(entry, dict):
            continue
        if entry.get("auth"):
            try:
                user, sep, password = (
                    base64.b64decode(str(entry["auth"]), validate=True).decode().partition(":")
                )
            except (binascii.Error, UnicodeDecodeError, ValueError):
                raise InputError(
                    f"the Docker config {path} has an invalid 'auth' for {key}"
                ) from None
            if sep and user and password:
                return Credentials(user, password)
        name, secret = entry.get("username"), entry.get("password")
        if isinstance(name, str) and isinstance(secret, str) and name and secret:
            return Credentials(name, secret)
        if entry.get("identitytoken") or entry.get("registrytoken"):
            raise AuthError(
                f"the Docker config {path} holds an identity/registry token for {key}, which "
                "promote does not support; give username and password inputs instead"
            )
    return None


def credentials(
    registry: str,
    env: Mapping[str, str],
    *,
    run: Runner = subprocess.run,
) -> Credentials | None:
    """The Docker config's credentials for ``registry`` (a normalised host), or None."""
    path = config_path(env)
    if path is None:
        return None
    doc = load(path)
    if doc is None:
        return None
    host = key_host(registry)
    server = DOCKER_HUB_KEY if host == DOCKER_HUB else host
    helpers = doc.get("credHelpers")
    helper = None
    if isinstance(helpers, dict):
        helper = next((v for k, v in helpers.items() if key_host(str(k)) == host), None)
    if helper is None and isinstance(doc.get("credsStore"), str) and doc["credsStore"]:
        helper = doc["credsStore"]
    if isinstance(helper, str) and helper:
        found = from_helper(helper, server, env, run=run)
        if found is not None:
            return found
    auths = doc.get("auths")
    return _from_auths(auths, host, path) if isinstance(auths, dict) else None
