"""Registry authentication: challenge parsing, anonymous / Basic / Bearer, credentials.

The handshake (distribution ``docs/spec/auth/token.md``; ggcr ``transport/transport.go``):

1. ``GET /v2/`` once (the *ping*). ``200``: no auth, credentials are not sent at all.
   ``401`` with ``WWW-Authenticate``: one or several challenges (in one header or several).
   Bearer is preferred over Basic when both are offered.
2. **Basic**: every request to the registry's own origin carries
   ``Authorization: Basic base64(user:password)`` (htpasswd registries, ECR).
3. **Bearer**: ``GET <realm>?service=<service>&scope=repository:<path>:push,pull`` (push
   first: a few registries only read the first action), with Basic credentials when we have
   them, anonymously otherwise. The body's ``token`` or ``access_token`` (OAuth2 spelling)
   is the token; the body is capped at ``MAX_TOKEN_BODY``. Every token is handed to
   ``on_secret`` (the runner masks it) *before* it is used. The realm must be ``https``
   (``http`` only for a loopback realm). The token service may grant fewer actions than
   asked (the spec's "intersection" rule); the write then fails with 401/403 ``DENIED`` and
   the client says so.
4. A later ``401`` carrying a Bearer challenge (an expired token, a new scope) gets one new
   token and one retry of that request; a second ``401`` is an :class:`AuthError`.

Credentials and tokens only ever go to the registry's origin (scheme, host, port) and the
token realm the registry named: a redirect to blob storage on another host is anonymous
(:func:`Authenticator.header_for` is asked per hop by the transport).
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from promote.errors import AuthError, InputError, RegistryError
from promote.redaction import redact
from promote.reference import Repository, is_loopback_host
from promote.registry.transport import Transport, origin, safe_url

if TYPE_CHECKING:
    import requests

#: Largest token response we read (JWTs are a few KiB; GHCR's are ~1 KiB).
MAX_TOKEN_BODY = 1024 * 1024
#: GHCR accepts any user name with a token; GitHub's own tools use this one.
GHCR_DEFAULT_USER = "x-access-token"
GHCR = "ghcr.io"

#: An RFC 7230 ``token`` (scheme and parameter names).
_TOKEN_RE = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_QUOTED_RE = re.compile(r'"((?:[^"\\]|\\.)*)"')


@dataclass(frozen=True)
class Credentials:
    """A user name and password (or token). ``repr`` never shows the password."""

    username: str
    password: str = field(repr=False)


@dataclass(frozen=True)
class Challenge:
    """One ``WWW-Authenticate`` challenge: lower-case ``scheme`` and its parameters."""

    scheme: str
    params: Mapping[str, str] = field(default_factory=dict)


def parse_www_authenticate(values: str | Iterable[str]) -> list[Challenge]:
    """Parse one or several ``WWW-Authenticate`` values into challenges (RFC 7235).

    ``Bearer realm="https://a/token",service="reg", Basic realm="x"`` gives two challenges;
    parameter names are lower-cased, quoted values unescaped. Malformed parts are skipped.
    """
    if isinstance(values, str):
        values = [values]
    challenges: list[Challenge] = []
    for text in values:
        current: dict[str, str] | None = None
        pos = 0
        while pos < len(text):
            if text[pos] in " \t,":
                pos += 1
                continue
            match = _TOKEN_RE.match(text, pos)
            if not match:
                pos += 1
                continue
            word, pos = match.group(0), match.end()
            rest = pos
            while rest < len(text) and text[rest] in " \t":
                rest += 1
            if rest < len(text) and text[rest] == "=" and current is not None:
                rest += 1
                while rest < len(text) and text[rest] in " \t":
                    rest += 1
                quoted = _QUOTED_RE.match(text, rest)
                if quoted:
                    value = re.sub(r"\\(.)", r"\1", quoted.group(1))
                    pos = quoted.end()
                else:
                    plain = _TOKEN_RE.match(text, rest)
                    value = plain.group(0) if plain else ""
                    pos = plain.end() if plain else rest
                current[word.lower()] = value
            else:
                current = {}
                challenges.append(Challenge(scheme=word.lower(), params=current))
    return challenges


def credentials_for(
    repository: Repository,
    username: str | None,
    password: str | None,
    github_token: str | None,
    *,
    actor: str = "",
) -> Credentials | None:
    """The credentials to use for ``repository``, or None for anonymous access.

    Explicit ``username``/``password`` win. For ``ghcr.io`` the password defaults to the
    GitHub token and the user to ``actor`` (the run's ``GITHUB_ACTOR``, else
    ``x-access-token``; GHCR does not check it). Elsewhere no credentials means anonymous.
    Half a pair is an input error.
    """
    username = username or None
    password = password or None
    if repository.registry == GHCR:
        password = password or github_token or None
        if password:
            return Credentials(username or actor or GHCR_DEFAULT_USER, password)
        if username:
            raise InputError(
                "username is set but neither password nor github-token is", input_name="password"
            )
        return None
    if username and password:
        return Credentials(username, password)
    if username:
        raise InputError("username is set but password is empty", input_name="password")
    if password:
        raise InputError("password is set but username is empty", input_name="username")
    return None


def _check_realm(realm: str, registry: Repository) -> str:
    try:
        parts = urlsplit(realm)
        valid = parts.scheme in ("http", "https") and bool(parts.hostname) and parts.port != -1
    except ValueError:  # a broken IPv6 literal or port
        valid = False
    if not valid or any(ord(c) < 0x21 or ord(c) == 0x7F for c in realm):
        raise AuthError(
            f"registry {registry.registry} named an invalid token realm in its "
            f"WWW-Authenticate header ({realm[:120]!r}): not an http(s) URL"
        )
    if parts.username or parts.password:
        raise AuthError(f"registry {registry.registry} named a token realm with credentials")
    if parts.scheme == "http" and not is_loopback_host(parts.netloc):
        raise AuthError(
            f"registry {registry.registry} named a plain-HTTP token realm "
            f"{safe_url(realm)!r}; refusing to send credentials without TLS"
        )
    return realm


class Authenticator:
    """Holds the auth state for one repository and answers ``Authorization`` per URL."""

    def __init__(
        self,
        repository: Repository,
        credentials: Credentials | None,
        transport: Transport,
        on_secret: Callable[[str], None],
        actions: str = "push,pull",
    ) -> None:
        self.repository = repository
        self.credentials = credentials
        self.transport = transport
        self.on_secret = on_secret
        self.actions = actions
        self.scheme = "anonymous"
        self.token: str | None = None
        self.bearer: Challenge | None = None
        self._origin = origin(repository.base_url)
        self._secrets: list[str] = []
        #: more scopes asked with ours (a cross-repository mount: ``pull`` on the source)
        self.extra_scopes: list[str] = []
        if credentials:
            self._remember(credentials.password)

    # -- secrets ---------------------------------------------------------------------------
    def _remember(self, secret: str) -> None:
        if secret and secret not in self._secrets:
            self.on_secret(secret)
            self._secrets.append(secret)

    def redact(self, text: str) -> str:
        """``text`` with every credential and token we know replaced by ``***``."""
        return redact(text, self._secrets)

    def _basic_value(self) -> str:
        assert self.credentials is not None
        raw = f"{self.credentials.username}:{self.credentials.password}".encode()
        value = base64.b64encode(raw).decode("ascii")
        self._remember(value)
        return f"Basic {value}"

    # -- state machine ---------------------------------------------------------------------
    def header_for(self, url: str) -> str | None:
        """The ``Authorization`` value for ``url``: only for the registry's own origin."""
        if origin(url) != self._origin:
            return None
        if self.scheme == "bearer" and self.token:
            return f"Bearer {self.token}"
        if self.scheme == "basic" and self.credentials:
            return self._basic_value()
        return None

    def configure(self, ping: requests.Response) -> None:
        """Learn the scheme from the ``/v2/`` answer; fetch a Bearer token up front."""
        if ping.status_code != 401:
            self.scheme = "anonymous"
            return
        challenges = parse_www_authenticate(ping.headers.get("WWW-Authenticate", ""))
        bearer = next((c for c in challenges if c.scheme == "bearer"), None)
        basic = next((c for c in challenges if c.scheme == "basic"), None)
        if bearer is not None and "realm" in bearer.params:
            self.scheme = "bearer"
            self.bearer = bearer
            self.fetch_token(bearer)
        elif basic is not None:
            self.scheme = "basic" if self.credentials else "anonymous"
        else:
            raise AuthError(
                f"registry {self.repository.registry} asks for an unsupported authentication "
                f"scheme ({ping.headers.get('WWW-Authenticate', 'no WWW-Authenticate header')!r})"
            )

    def refresh(self, response: requests.Response) -> bool:
        """After a ``401`` from the registry: get new auth if that can help; True to retry."""
        challenges = parse_www_authenticate(response.headers.get("WWW-Authenticate", ""))
        bearer = next((c for c in challenges if c.scheme == "bearer" and "realm" in c.params), None)
        if bearer is not None:
            self.scheme = "bearer"
            self.bearer = bearer
            self.fetch_token(bearer)
            return True
        basic = any(c.scheme == "basic" for c in challenges)
        if basic and self.credentials and self.scheme != "basic":
            self.scheme = "basic"
            return True
        return False

    def scopes(self, challenge: Challenge) -> list[str]:
        """Our ``push,pull`` scope plus any different scope the challenge names."""
        wanted = [self.repository.scope(self.actions), *self.extra_scopes]
        for extra in challenge.params.get("scope", "").split(" "):
            if extra and extra not in wanted:
                wanted.append(extra)
        return wanted

    def add_scope(self, scope: str) -> None:
        """Ask for ``scope`` too from now on (a Bearer token held is fetched again)."""
        if scope in self.extra_scopes or scope == self.repository.scope(self.actions):
            return
        self.extra_scopes.append(scope)
        if self.scheme == "bearer" and self.bearer is not None:
            self.fetch_token(self.bearer)

    def _token_response(
        self,
        realm: str,
        authorize: Callable[[str], str | None],
        params: dict[str, str | list[str]],
    ) -> tuple[requests.Response, bytes | None]:
        """GET the realm; for a 200 also read the body (``None``: over the size cap).

        A body cut off or stalled mid-read is retried under the client's deadline like a
        connection fault before the headers (:meth:`Transport.fetch`).
        """
        return self.transport.fetch(
            lambda sent_as: self.transport.send(
                "GET", realm, kind=sent_as, authorize=authorize, params=params
            ),
            kind="token",
            url=realm,
            limit=MAX_TOKEN_BODY,
        )

    def fetch_token(self, challenge: Challenge) -> str:
        """``GET <realm>?service&scope`` and keep the token (masked before use)."""
        realm = _check_realm(challenge.params["realm"], self.repository)
        realm_origin = origin(realm)
        params: dict[str, str | list[str]] = {"scope": self.scopes(challenge)}
        if challenge.params.get("service"):
            params["service"] = challenge.params["service"]

        def authorize(url: str) -> str | None:
            if self.credentials and origin(url) == realm_origin:
                return self._basic_value()
            return None

        where = f"token service {realm_origin[0]}://{realm_origin[1]}"
        response, body = self._token_response(realm, authorize, params)
        if response.status_code in (401, 403):
            _codes, detail = self.transport.error_details(response)
            if self.credentials:
                who = f"user {self.credentials.username!r}"
                hint = "check the username and password/token"
            else:
                who = "anonymous access"
                hint = "give username and password (for ghcr.io: github-token)"
            raise AuthError(
                self.redact(
                    f"the {where} refused {who} (HTTP {response.status_code}"
                    f"{': ' + detail if detail else ''}); {hint}"
                ),
                status=response.status_code,
                method="GET",
                url=safe_url(realm),
            )
        if response.status_code != 200:
            _codes, detail = self.transport.error_details(response)
            raise RegistryError(
                self.redact(
                    f"GET {safe_url(realm)}: the {where} answered HTTP {response.status_code}"
                    f"{': ' + detail if detail else ''}"
                ),
                status=response.status_code,
                method="GET",
                url=safe_url(realm),
            )
        if body is None:
            raise AuthError(f"the {where} sent a token response larger than {MAX_TOKEN_BODY} bytes")
        try:
            doc = json.loads(body)
        except ValueError:
            doc = None
        token = None
        if isinstance(doc, dict):
            token = doc.get("token") or doc.get("access_token")
        if not isinstance(token, str) or not token:
            raise AuthError(f"the {where} sent no 'token' or 'access_token'")
        if any(c.isspace() or ord(c) < 0x21 or ord(c) > 0x7E for c in token):
            raise AuthError(f"the {where} sent a token with invalid characters")
        self._remember(token)
        self.token = token
        return token
