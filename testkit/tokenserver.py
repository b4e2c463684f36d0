"""A real Docker/OCI token service on loopback, for CNCF distribution's ``auth.token`` mode.

This is the GHCR / Docker Hub flow: the registry answers ``401`` with
``WWW-Authenticate: Bearer realm="<this service>/token",service="<service>"``; the client
calls ``GET /token?service=...&scope=repository:<name>:push,pull`` with Basic credentials;
this service answers ``{"token": <JWT>}`` (or ``access_token``). The JWT is RS256-signed
with a throwaway key whose self-signed certificate is both in the JWT ``x5c`` header
(base64 DER) and in the registry's ``rootcertbundle``, so the registry verifies it for real.

Claims: ``iss`` (issuer), ``sub`` (user), ``aud`` (service), ``exp``, ``nbf``, ``iat``,
``jti``, ``access: [{type: repository, name, actions}]`` where actions are the
intersection of what was asked and :attr:`TokenService.allowed_actions` (the spec's rule).

Knobs for tests (attributes, change them at any time):

* ``field``: ``"token"`` or ``"access_token"`` (or ``"both"``);
* ``expired_next``: the next N tokens are issued already expired (``exp`` one hour ago,
  beyond distribution's 60 s leeway), to force a re-challenge;
* ``expires_in``: lifetime of normal tokens (seconds);
* ``allowed_actions``: actions granted at most (``("pull",)`` to test a denied push);
* ``anonymous``: whether requests without credentials get (pull-only) tokens.

Everything issued is recorded in :attr:`TokenService.issued` (token, user, scopes,
User-Agent), every request in :attr:`TokenService.requests`, so tests can assert that no
token ever leaks into output.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import threading
import time
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass(frozen=True)
class IssuedToken:
    """One token handed out, with who asked for what."""

    token: str
    user: str
    scopes: tuple[str, ...]
    access: tuple[tuple[str, tuple[str, ...]], ...]
    expired: bool
    user_agent: str


@dataclass(frozen=True)
class TokenRequest:
    """One request seen by the token service."""

    path: str
    query: dict[str, list[str]]
    user: str | None
    status: int
    user_agent: str


def make_signing_material(common_name: str = "promote-test-token-issuer") -> tuple[bytes, bytes]:
    """A fresh RSA key and self-signed certificate: ``(key_pem, cert_pem)``."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=7))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return key_pem, cert.public_bytes(serialization.Encoding.PEM)


class TokenService:
    """Threaded HTTP token service on ``127.0.0.1``; use as a context manager or start/stop."""

    def __init__(
        self,
        *,
        username: str,
        password: str,
        service: str = "promote-test-registry",
        issuer: str = "promote-test-token-issuer",
        field: str = "token",
        expires_in: int = 300,
        allowed_actions: tuple[str, ...] = ("pull", "push"),
        anonymous: bool = False,
    ) -> None:
        self.username = username
        self.password = password
        self.service = service
        self.issuer = issuer
        self.field = field
        self.expires_in = expires_in
        self.allowed_actions = allowed_actions
        self.anonymous = anonymous
        self.expired_next = 0
        self.issued: list[IssuedToken] = []
        self.requests: list[TokenRequest] = []
        self.key_pem, self.cert_pem = make_signing_material(issuer)
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------
    @property
    def port(self) -> int:
        assert self._server is not None, "token service not started"
        return int(self._server.server_address[1])

    @property
    def realm(self) -> str:
        """The URL the registry puts in its Bearer challenge."""
        return f"http://127.0.0.1:{self.port}/token"

    def start(self) -> TokenService:
        service = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                service._handle(self)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.02},
            name="token-service",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> TokenService:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- issuing ---------------------------------------------------------------------------
    @property
    def tokens(self) -> list[str]:
        """Every token issued so far."""
        with self._lock:
            return [t.token for t in self.issued]

    def _user(self, header: str | None) -> tuple[str | None, bool]:
        """(user, ok): user None for anonymous; ok False for wrong credentials."""
        if not header:
            return None, True
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "basic":
            return "?", False
        try:
            user, _, password = base64.b64decode(value).decode().partition(":")
        except ValueError:
            return "?", False
        return user, (user == self.username and password == self.password)

    def _grant(self, scopes: list[str], anonymous: bool) -> list[dict[str, Any]]:
        allowed = ("pull",) if anonymous else self.allowed_actions
        access: list[dict[str, Any]] = []
        for scope in scopes:
            kind, _, rest = scope.partition(":")
            name, _, actions = rest.rpartition(":")
            if kind != "repository" or not name:
                continue
            granted = [a for a in actions.split(",") if a in allowed]
            access.append({"type": "repository", "name": name, "actions": granted})
        return access

    def issue(self, user: str, scopes: list[str], *, anonymous: bool, user_agent: str) -> str:
        """Sign a token for ``user`` granting ``scopes`` (intersected); record it."""
        import jwt

        with self._lock:
            expired = self.expired_next > 0
            if expired:
                self.expired_next -= 1
        now = int(time.time())
        if expired:
            iat, exp = now - 7200, now - 3600
        else:
            iat, exp = now - 5, now + self.expires_in
        access = self._grant(scopes, anonymous)
        claims = {
            "iss": self.issuer,
            "sub": user,
            "aud": self.service,
            "exp": exp,
            "nbf": iat,
            "iat": iat,
            "jti": uuid.uuid4().hex,
            "access": access,
        }
        der = _pem_to_der(self.cert_pem)
        token = jwt.encode(
            claims,
            self.key_pem,
            algorithm="RS256",
            headers={"x5c": [base64.b64encode(der).decode()]},
        )
        with self._lock:
            self.issued.append(
                IssuedToken(
                    token=token,
                    user=user,
                    scopes=tuple(scopes),
                    access=tuple((a["name"], tuple(a["actions"])) for a in access),
                    expired=expired,
                    user_agent=user_agent,
                )
            )
        return token

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(handler.path)
        query = parse_qs(parts.query)
        user, ok = self._user(handler.headers.get("Authorization"))
        agent = handler.headers.get("User-Agent", "")
        status = 200
        body: dict[str, Any]
        if parts.path != "/token":
            status, body = 404, {"errors": [{"code": "NOT_FOUND", "message": "no such path"}]}
        elif not ok or (user is None and not self.anonymous):
            status = 401
            body = {"errors": [{"code": "UNAUTHORIZED", "message": "invalid credentials"}]}
        elif query.get("service", [""])[0] != self.service:
            status = 400
            body = {"errors": [{"code": "INVALID", "message": "unknown service"}]}
        else:
            scopes = [s for value in query.get("scope", []) for s in value.split(" ") if s]
            token = self.issue(
                user or "anonymous", scopes, anonymous=user is None, user_agent=agent
            )
            if self.field == "both":
                body = {"token": token, "access_token": token}
            else:
                body = {self.field: token}
            body["issued_at"] = dt.datetime.now(dt.UTC).isoformat()
            body["expires_in"] = self.expires_in
        with self._lock:
            self.requests.append(TokenRequest(parts.path, query, user, status, agent))
        payload = json.dumps(body).encode()
        handler.send_response(status)
        if status == 401:
            handler.send_header("WWW-Authenticate", 'Basic realm="promote-test-token"')
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(payload)))
        handler.end_headers()
        handler.wfile.write(payload)


def _pem_to_der(pem: bytes) -> bytes:
    lines = [line for line in pem.decode().splitlines() if line and not line.startswith("-----")]
    return base64.b64decode("".join(lines))
