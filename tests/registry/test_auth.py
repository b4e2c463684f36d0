"""Challenge parsing, credential defaults, and Bearer edge cases on a scripted loopback server."""

from __future__ import annotations

import json
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import pytest

from promote.errors import AuthError, InputError
from promote.reference import parse_repository
from promote.registry import Challenge, Credentials, RegistryClient, credentials_for
from promote.registry.auth import MAX_TOKEN_BODY, parse_www_authenticate
from tests.registry._servers import LoopbackServer, Reply, Seen

GHCR = parse_repository("ghcr.io/acme/app")
OTHER = parse_repository("registry.example.com/acme/app")


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ('Basic realm="x"', [Challenge("basic", {"realm": "x"})]),
        (
            'Bearer realm="https://auth.docker.io/token",service="registry.docker.io"',
            [
                Challenge(
                    "bearer",
                    {"realm": "https://auth.docker.io/token", "service": "registry.docker.io"},
                )
            ],
        ),
        (
            'Bearer realm="https://ghcr.io/token",service="ghcr.io",'
            'scope="repository:acme/app:pull,push", Basic realm="GitHub"',
            [
                Challenge(
                    "bearer",
                    {
                        "realm": "https://ghcr.io/token",
                        "service": "ghcr.io",
                        "scope": "repository:acme/app:pull,push",
                    },
                ),
                Challenge("basic", {"realm": "GitHub"}),
            ],
        ),
        (
            'BEARER Realm = "r" , Error="insufficient_scope"',
            [Challenge("bearer", {"realm": "r", "error": "insufficient_scope"})],
        ),
        ('Basic realm="a \\"quoted\\" realm"', [Challenge("basic", {"realm": 'a "quoted" realm'})]),
        ("Basic realm=plain", [Challenge("basic", {"realm": "plain"})]),
        ("Negotiate", [Challenge("negotiate", {})]),
        ("", []),
    ],
)
def test_parse_www_authenticate(header: str, expected: list[Challenge]) -> None:
    assert parse_www_authenticate(header) == expected


def test_parse_several_header_values() -> None:
    got = parse_www_authenticate(['Basic realm="a"', 'Bearer realm="b",service="s"'])
    assert [c.scheme for c in got] == ["basic", "bearer"]
    assert got[1].params["service"] == "s"


@pytest.mark.parametrize(
    ("repo", "username", "password", "token", "actor", "expected"),
    [
        (OTHER, "u", "p", None, "", Credentials("u", "p")),
        (OTHER, None, None, "ghs_x", "octo", None),
        (OTHER, "", "", None, "", None),
        (GHCR, None, None, "ghs_tok", "octo", Credentials("octo", "ghs_tok")),
        (GHCR, None, None, "ghs_tok", "", Credentials("x-access-token", "ghs_tok")),
        (GHCR, "bot", None, "ghs_tok", "octo", Credentials("bot", "ghs_tok")),
        (GHCR, "bot", "pat", "ghs_tok", "", Credentials("bot", "pat")),
        (GHCR, None, "pat", None, "octo", Credentials("octo", "pat")),
        (GHCR, None, None, None, "octo", None),
    ],
)
def test_credentials_for(
    repo: object,
    username: str | None,
    password: str | None,
    token: str | None,
    actor: str,
    expected: Credentials | None,
) -> None:
    assert credentials_for(repo, username, password, token, actor=actor) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("repo", "username", "password", "name"),
    [(OTHER, "u", None, "password"), (OTHER, None, "p", "username"), (GHCR, "u", None, "password")],
)
def test_credentials_half_pairs_are_input_errors(
    repo: object, username: str | None, password: str | None, name: str
) -> None:
    with pytest.raises(InputError) as info:
        credentials_for(repo, username, password, None)  # type: ignore[arg-type]
    assert info.value.input_name == name


def test_credentials_repr_hides_the_password() -> None:
    creds = Credentials("me", "hunter2-secret")
    assert "hunter2" not in repr(creds)
    assert "hunter2" not in str(creds)
    assert "me" in repr(creds)


class TokenRegistry:
    """A scripted registry whose ``/v2/`` challenges Bearer with a realm on itself."""

    def __init__(self) -> None:
        self.challenge_extra = ""
        self.token_body: bytes | None = None
        self.issued = 0
        self.accept: set[str] = set()
        self.realm: str | None = None
        self.server = LoopbackServer(self.handle)

    def challenge(self) -> dict[str, str]:
        realm = self.realm or f"{self.server.url}/token"
        return {"WWW-Authenticate": f'Bearer realm="{realm}",service="svc"{self.challenge_extra}'}

    def handle(self, seen: Seen) -> Reply:
        path = urlsplit(seen.path).path
        if path == "/token":
            self.issued += 1
            if self.token_body is not None:
                return Reply(200, {"Content-Type": "application/json"}, self.token_body)
            body = json.dumps({"access_token": f"tok-{self.issued}"}).encode()
            return Reply(200, {"Content-Type": "application/json"}, body)
        auth = seen.headers.get("Authorization", "")
        if path == "/v2/" or auth.removeprefix("Bearer ") not in self.accept:
            return Reply(401, self.challenge())
        return Reply(200, {"Content-Type": "application/json"}, b'{"name":"a","tags":["x"]}')


@pytest.fixture
def token_registry_script() -> Iterator[TokenRegistry]:
    reg = TokenRegistry()
    reg.server.start()
    yield reg
    reg.server.stop()


def _client(
    reg: TokenRegistry, secrets: list[str], creds: Credentials | None = None
) -> RegistryClient:
    return RegistryClient(
        parse_repository(f"{reg.server.host}/acme/app"), creds, on_secret=secrets.append
    )


def test_bearer_scope_service_and_access_token(token_registry_script: TokenRegistry) -> None:
    reg = token_registry_script
    reg.accept = {"tok-1"}
    secrets: list[str] = []
    with _client(reg, secrets, Credentials("me", "pw")) as client:
        assert client.list_tags() == ["x"]
    token_requests = [s for s in reg.server.seen if s.path.startswith("/token")]
    assert len(token_requests) == 1
    query = parse_qs(urlsplit(token_requests[0].path).query)
    assert query == {"scope": ["repository:acme/app:push,pull"], "service": ["svc"]}
    assert token_requests[0].headers["Authorization"].startswith("Basic ")
    assert "tok-1" in secrets and "pw" in secrets
    assert client.stats.as_dict() == {"ping": 1, "token": 1, "tags": 1}


def test_second_401_after_a_new_token_is_an_auth_error(
    token_registry_script: TokenRegistry,
) -> None:
    reg = token_registry_script
    reg.accept = set()  # nothing is ever accepted
    secrets: list[str] = []
    with _client(reg, secrets) as client, pytest.raises(AuthError) as info:
        client.list_tags()
    assert reg.issued == 2  # the ping's token, and exactly one more on the re-challenge
    assert client.stats["tags"] == 2
    assert "tok-1" not in str(info.value) and "tok-2" not in str(info.value)
    assert secrets == ["tok-1", "tok-2"]


def test_rechallenge_scope_is_added(token_registry_script: TokenRegistry) -> None:
    reg = token_registry_script
    reg.accept = {"tok-2"}
    reg.challenge_extra = ',scope="repository:other/base:pull"'
    with _client(reg, []) as client:
        assert client.list_tags() == ["x"]
    second = [s for s in reg.server.seen if s.path.startswith("/token")][1]
    assert parse_qs(urlsplit(second.path).query)["scope"] == [
        "repository:acme/app:push,pull",
        "repository:other/base:pull",
    ]


@pytest.mark.parametrize(
    ("realm", "message"),
    [
        ("http://registry.example.com/token", "plain-HTTP token realm"),
        ("ftp://127.0.0.1/token", "invalid token realm"),
        ("http://user:pw@127.0.0.1/token", "realm with credentials"),
        ("/token", "invalid token realm"),
    ],
)
def test_realm_is_validated_before_any_token_request(
    token_registry_script: TokenRegistry, realm: str, message: str
) -> None:
    reg = token_registry_script
    reg.realm = realm
    with (
        _client(reg, [], Credentials("me", "pw")) as client,
        pytest.raises(AuthError, match=message),
    ):
        client.list_tags()
    assert [s.path for s in reg.server.seen] == ["/v2/"]  # no token request anywhere
    assert client.stats.as_dict() == {"ping": 1}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"x" * (MAX_TOKEN_BODY + 1), "larger than"),
        (b'{"token": "has space"}', "invalid characters"),
        (b'{"token": ""}', "no 'token' or 'access_token'"),
        (b'{"expires_in": 60}', "no 'token' or 'access_token'"),
        (b"not json", "no 'token' or 'access_token'"),
    ],
)
def test_bad_token_responses(
    token_registry_script: TokenRegistry, body: bytes, message: str
) -> None:
    reg = token_registry_script
    reg.token_body = body
    secrets: list[str] = []
    with _client(reg, secrets) as client, pytest.raises(AuthError, match=message):
        client.list_tags()
    assert secrets == []  # nothing that could be a token was ever used


def test_bearer_preferred_over_basic_when_both_offered(
    token_registry_script: TokenRegistry,
) -> None:
    reg = token_registry_script
    reg.accept = {"tok-1"}
    reg.challenge_extra = ', Basic realm="fallback"'
    with _client(reg, [], Credentials("me", "pw")) as client:
        assert client.list_tags() == ["x"]
    tags = [s for s in reg.server.seen if "/tags/list" in s.path]
    assert tags[0].headers["Authorization"] == "Bearer tok-1"
