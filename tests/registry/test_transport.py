"""Retries, backoff, Retry-After, the deadline, redirects and response checks.

A scripted loopback server plays the registry for the cases a real one cannot produce on
demand; time is a fake clock, so no test waits for a backoff.
"""

from __future__ import annotations

import email.utils
import hashlib
import json
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from promote.errors import (
    AuthError,
    DigestMismatchError,
    NotFoundError,
    RegistryError,
    TransientError,
)
from promote.reference import parse_repository
from promote.registry import Credentials, Manifest, RegistryClient
from promote.registry.transport import (
    BACKOFF_BASE,
    BACKOFF_MAX,
    MIN_ATTEMPT_TIMEOUT,
    RETRY_AFTER_MAX,
    RequestStats,
    parse_retry_after,
)
from tests.registry._servers import LoopbackServer, Reply, Seen

OCI = "application/vnd.oci.image.manifest.v1+json"
BODY = b'{ "schemaVersion" : 2, "mediaType" : "application/vnd.oci.image.manifest.v1+json" }\n'
DIGEST = "sha256:" + hashlib.sha256(BODY).hexdigest()


@dataclass
class FakeTime:
    """Monotonic clock that only moves when the code under test sleeps."""

    now: float = 1000.0
    sleeps: list[float] = field(default_factory=list)

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0
        self.sleeps.append(seconds)
        self.now += seconds


Script = Callable[[Seen], Reply | None]


class Scripted:
    """Route table: ``(method, path-prefix) -> list of replies`` consumed in order (the last
    one repeats); ``/v2/`` answers 200 unless scripted."""

    def __init__(self) -> None:
        self.routes: dict[tuple[str, str], list[Reply]] = {}
        self.server = LoopbackServer(self.handle)

    def on(self, method: str, path: str, *replies: Reply) -> None:
        self.routes[(method, path)] = list(replies)

    def handle(self, seen: Seen) -> Reply:
        path = seen.path.split("?")[0]
        for (method, prefix), replies in self.routes.items():
            if method == seen.method and path == prefix:
                return replies.pop(0) if len(replies) > 1 else replies[0]
        if path == "/v2/":
            return Reply(200, {"Content-Type": "application/json"}, b"{}")
        return Reply(404, {"Content-Type": "application/json"}, b'{"errors":[{"code":"X"}]}')

    def seen(self, method: str, path: str) -> list[Seen]:
        return [s for s in self.server.seen if s.method == method and s.path.startswith(path)]


@pytest.fixture
def scripted() -> Iterator[Scripted]:
    s = Scripted()
    s.server.start()
    yield s
    s.server.stop()


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()


def make_client(
    scripted: Scripted, fake_time: FakeTime, *, jitter: float | None = 0.0, **kwargs: object
) -> RegistryClient:
    kwargs.setdefault("deadline", 120.0)
    client = RegistryClient(
        parse_repository(f"{scripted.server.host}/acme/app"),
        sleep=fake_time.sleep,
        clock=fake_time.clock,
        **kwargs,  # type: ignore[arg-type]
    )
    if jitter is not None:
        client.transport.jitter = lambda: jitter
    return client


def manifest_reply(body: bytes = BODY, digest: str | None = DIGEST, **extra: str) -> Reply:
    headers = {"Content-Type": OCI, **extra}
    if digest:
        headers["Docker-Content-Digest"] = digest
    return Reply(200, headers, body)


M = "/v2/acme/app/manifests/"


def test_retries_5xx_with_exponential_backoff(scripted: Scripted, fake_time: FakeTime) -> None:
    scripted.on("GET", M + "v1", Reply(503), Reply(502), Reply(500), manifest_reply())
    client = make_client(scripted, fake_time)
    assert client.get_manifest("v1").digest == DIGEST
    # jitter fixed at 0 -> factor 0.5: 0.25, 0.5, 1.0
    assert fake_time.sleeps == [BACKOFF_BASE * 0.5, BACKOFF_BASE, BACKOFF_BASE * 2]
    assert client.stats["manifest-get"] == 1
    assert client.stats["retry"] == 3
    assert client.stats.total(exclude=("ping",)) == 4
    assert len(scripted.seen("GET", M)) == 4


def test_backoff_jitter_bounds_and_cap(scripted: Scripted, fake_time: FakeTime) -> None:
    client = make_client(scripted, fake_time, jitter=None)
    for attempt in range(1, 12):
        base = min(BACKOFF_MAX, BACKOFF_BASE * 2 ** (attempt - 1))
        waits = {client.transport.backoff(attempt) for _ in range(50)}
        assert all(base * 0.5 <= w < base for w in waits)
        assert len(waits) > 1  # jitter really varies


def test_retry_after_seconds(scripted: Scripted, fake_time: FakeTime) -> None:
    scripted.on("GET", M + "v1", Reply(429, {"Retry-After": "3"}), manifest_reply())
    client = make_client(scripted, fake_time)
    client.get_manifest("v1")
    assert fake_time.sleeps == [3.0]
    assert client.stats["retry"] == 1


def test_retry_after_http_date(scripted: Scripted, fake_time: FakeTime) -> None:
    wall = 1_800_000_000.0
    when = email.utils.formatdate(wall + 7, usegmt=True)
    scripted.on("GET", M + "v1", Reply(503, {"Retry-After": when}), manifest_reply())
    client = make_client(scripted, fake_time, wallclock=lambda: wall)
    client.get_manifest("v1")
    assert fake_time.sleeps == [7.0]


def test_retry_after_is_capped(scripted: Scripted, fake_time: FakeTime) -> None:
    scripted.on("GET", M + "v1", Reply(429, {"Retry-After": "3600"}), manifest_reply())
    client = make_client(scripted, fake_time)
    client.get_manifest("v1")
    assert fake_time.sleeps == [RETRY_AFTER_MAX]


def test_retry_after_beyond_deadline_gives_up_at_once(
    scripted: Scripted, fake_time: FakeTime
) -> None:
    scripted.on("GET", M + "v1", Reply(429, {"Retry-After": "60"}), manifest_reply())
    client = make_client(scripted, fake_time, deadline=20.0)
    with pytest.raises(TransientError) as info:
        client.get_manifest("v1")
    assert fake_time.sleeps == []
    assert "asked to retry after 60s" in str(info.value)
    assert info.value.status == 429


def test_deadline_bounds_all_retries(scripted: Scripted, fake_time: FakeTime) -> None:
    body = json.dumps({"errors": [{"code": "UNAVAILABLE", "message": "down for repair"}]})
    scripted.on("GET", M + "v1", Reply(503, {}, body.encode()))
    client = make_client(scripted, fake_time, deadline=10.0)
    started = time.monotonic()
    with pytest.raises(TransientError) as info:
        client.get_manifest("v1")
    assert time.monotonic() - started < 5  # no real waiting
    # waits 0.25 + 0.5 + 1 + 2 + 4 = 7.75; the next (8) would end past 10 s
    assert fake_time.sleeps == [0.25, 0.5, 1.0, 2.0, 4.0]
    assert sum(fake_time.sleeps) < 10.0
    assert len(scripted.seen("GET", M)) == 6
    message = str(info.value)
    assert f"GET http://{scripted.server.host}{M}v1 failed after 6 attempts" in message
    assert "HTTP 503 (UNAVAILABLE: down for repair)" in message
    assert "retry deadline 10s" in message
    assert client.stats.as_dict() == {"ping": 1, "manifest-get": 1, "retry": 5}


def test_deadline_is_shared_by_all_requests_of_a_client(
    scripted: Scripted, fake_time: FakeTime
) -> None:
    scripted.on("GET", M + "a", Reply(503), Reply(503), Reply(503), manifest_reply())
    scripted.on("GET", M + "b", Reply(503))
    client = make_client(scripted, fake_time, deadline=4.0)
    client.get_manifest("a")  # spends 0.25 + 0.5 + 1.0 = 1.75 of 4 s
    with pytest.raises(TransientError):
        client.get_manifest("b")  # 0.25 + 0.5 -> 2.5; +1.0 -> 3.5; +2.0 would pass 4
    assert fake_time.sleeps == [0.25, 0.5, 1.0, 0.25, 0.5, 1.0]


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_connection_errors_are_retried_until_the_deadline(fake_time: FakeTime) -> None:
    client = RegistryClient(
        parse_repository(f"127.0.0.1:{_closed_port()}/acme/app"),
        sleep=fake_time.sleep,
        clock=fake_time.clock,
        deadline=3.0,
    )
    client.transport.jitter = lambda: 0.0
    with pytest.raises(TransientError) as info:
        client.list_tags()
    assert "connection error (ConnectionError)" in str(info.value)
    assert fake_time.sleeps == [0.25, 0.5, 1.0]
    assert client.stats.as_dict() == {"ping": 1, "retry": 3}
    assert all(r.status is None for r in client.stats.records)


@pytest.mark.parametrize(
    ("status", "error"),
    [(400, RegistryError), (404, NotFoundError), (405, RegistryError), (409, RegistryError)],
)
def test_other_4xx_are_not_retried(
    scripted: Scripted, fake_time: FakeTime, status: int, error: type[Exception]
) -> None:
    body = b'{"errors":[{"code":"MANIFEST_INVALID","message":"bad"}]}'
    scripted.on("GET", M + "v1", Reply(status, {"Content-Type": "application/json"}, body))
    client = make_client(scripted, fake_time)
    with pytest.raises(error) as info:
        client.get_manifest("v1")
    assert fake_time.sleeps == []
    assert len(scripted.seen("GET", M)) == 1
    assert isinstance(info.value, RegistryError)
    assert info.value.codes == ("MANIFEST_INVALID",)
    assert f"GET http://{scripted.server.host}{M}v1" in str(info.value)
    assert f"HTTP {status}" in str(info.value) or status == 404


def test_put_is_retried_with_the_same_bytes(scripted: Scripted, fake_time: FakeTime) -> None:
    scripted.on("PUT", M + "production", Reply(503), Reply(201, {"Docker-Content-Digest": DIGEST}))
    client = make_client(scripted, fake_time)
    manifest = Manifest.from_bytes(BODY, OCI)
    assert client.put_manifest("production", manifest) == DIGEST
    puts = scripted.seen("PUT", M)
    assert [p.body for p in puts] == [BODY, BODY]
    assert {p.headers["Content-Type"] for p in puts} == {OCI}
    assert client.stats["manifest-put"] == 1
    assert client.stats["retry"] == 1


def test_put_without_digest_header_is_verified_by_one_head(
    scripted: Scripted, fake_time: FakeTime
) -> None:
    scripted.on("PUT", M + "production", Reply(201))
    scripted.on(
        "HEAD",
        M + "production",
        Reply(
            200,
            {"Docker-Content-Digest": DIGEST, "Content-Type": OCI, "Content-Length": "84"},
        ),
    )
    client = make_client(scripted, fake_time)
    assert client.put_manifest("production", Manifest.from_bytes(BODY, OCI)) == DIGEST
    assert client.stats["manifest-head"] == 1
    scripted.on(
        "HEAD",
        M + "production",
        Reply(200, {"Docker-Content-Digest": "sha256:" + "e" * 64, "Content-Length": "3"}),
    )
    with pytest.raises(DigestMismatchError, match="returned no digest"):
        client.put_manifest("production", Manifest.from_bytes(BODY, OCI))


@pytest.mark.parametrize("status", [200, 201, 202])
def test_put_accepts_200_201_202_but_checks_the_digest(
    scripted: Scripted, fake_time: FakeTime, status: int
) -> None:
    scripted.on(
        "PUT",
        M + "production",
        Reply(status, {"Docker-Content-Digest": DIGEST}),
        Reply(status, {"Docker-Content-Digest": "sha256:" + "f" * 64}),
    )
    client = make_client(scripted, fake_time)
    manifest = Manifest.from_bytes(BODY, OCI)
    assert client.put_manifest("production", manifest) == DIGEST
    with pytest.raises(DigestMismatchError, match="changed the manifest bytes"):
        client.put_manifest("production", manifest)


def test_get_checks_digests(scripted: Scripted, fake_time: FakeTime) -> None:
    wrong = "sha256:" + "a" * 64
    scripted.on("GET", M + "by-tag", manifest_reply(digest=wrong))
    scripted.on("GET", M + wrong, manifest_reply(digest=None))
    scripted.on("GET", M + "no-header", manifest_reply(digest=None))
    client = make_client(scripted, fake_time)
    with pytest.raises(DigestMismatchError, match="disagrees with the sha256"):
        client.get_manifest("by-tag")
    with pytest.raises(DigestMismatchError, match="not the digest asked for"):
        client.get_manifest(wrong)
    assert client.get_manifest("no-header").digest == DIGEST


def test_manifest_size_is_capped(scripted: Scripted, fake_time: FakeTime) -> None:
    big = b'{"schemaVersion": 2, "pad": "' + b"x" * (4 * 1024 * 1024) + b'"}'
    scripted.on("GET", M + "big", manifest_reply(body=big, digest=None))
    client = make_client(scripted, fake_time)
    with pytest.raises(RegistryError, match="larger than 4194304 bytes"):
        client.get_manifest("big")


def test_unsupported_media_types_are_refused(scripted: Scripted, fake_time: FakeTime) -> None:
    schema1 = b'{"schemaVersion": 1, "name": "acme/app"}'
    scripted.on(
        "GET",
        M + "old",
        Reply(
            200,
            {"Content-Type": "application/vnd.docker.distribution.manifest.v1+prettyjws"},
            schema1,
        ),
    )
    client = make_client(scripted, fake_time)
    with pytest.raises(RegistryError, match="unsupported manifest media type") as info:
        client.get_manifest("old")
    # OCI artifacts with an image manifest ARE promoted: the refusal must not deny them
    assert "non-image artifacts cannot be promoted" not in str(info.value)
    assert "artifacts included" in str(info.value)


def test_media_type_from_content_type_when_body_has_none(
    scripted: Scripted, fake_time: FakeTime
) -> None:
    body = b'{"schemaVersion":2,"config":{"digest":"sha256:' + b"c" * 64 + b'"}}'
    scripted.on("GET", M + "v1", Reply(200, {"Content-Type": OCI + "; charset=utf-8"}, body))
    client = make_client(scripted, fake_time)
    manifest = client.get_manifest("v1")
    assert manifest.media_type == OCI
    assert manifest.config_digest == "sha256:" + "c" * 64


def test_head_without_digest_falls_back_to_get(scripted: Scripted, fake_time: FakeTime) -> None:
    scripted.on("HEAD", M + "v1", Reply(200, {"Content-Type": OCI}))
    scripted.on("GET", M + "v1", manifest_reply(digest=None))
    client = make_client(scripted, fake_time)
    head = client.head_manifest("v1")
    assert head is not None
    assert (head.digest, head.media_type, head.size) == (DIGEST, OCI, len(BODY))
    assert client.stats["manifest-head"] == 1
    assert client.stats["manifest-get"] == 1


def test_redirect_loops_are_cut(scripted: Scripted, fake_time: FakeTime) -> None:
    scripted.on("GET", M + "v1", Reply(302, {"Location": M + "v1"}))
    client = make_client(scripted, fake_time)
    with pytest.raises(RegistryError, match="more than 5 redirects"):
        client.get_manifest("v1")


def test_ping_that_is_not_a_registry(scripted: Scripted, fake_time: FakeTime) -> None:
    scripted.on("GET", "/v2/", Reply(404, {}, b"<html>nope</html>"))
    client = make_client(scripted, fake_time)
    with pytest.raises(RegistryError, match=r"is 127\.0\.0\.1:\d+ an OCI registry"):
        client.list_tags()


def test_error_bodies_are_redacted(scripted: Scripted, fake_time: FakeTime) -> None:
    password = "s3cret-password-value"
    scripted.on("GET", "/v2/", Reply(401, {"WWW-Authenticate": 'Basic realm="r"'}))
    scripted.on(
        "GET",
        M + "v1",
        Reply(400, {}, json.dumps({"errors": [{"code": "BAD", "message": password}]}).encode()),
    )
    client = make_client(scripted, fake_time, credentials=Credentials("me", password))
    with pytest.raises(RegistryError) as info:
        client.get_manifest("v1")
    assert password not in str(info.value)
    assert "BAD: ***" in str(info.value)


def test_request_stats_totals() -> None:
    stats = RequestStats()
    for kind in ["ping", "token", "manifest-get", "manifest-put", "retry", "manifest-put"]:
        stats.add(kind, "GET", "http://x/", 200)
    assert stats.total() == 6
    assert stats.total(exclude=("ping", "token")) == 4
    assert stats["manifest-put"] == 2
    assert stats["blob"] == 0
    assert len(stats.records) == 6


@pytest.mark.parametrize(
    ("value", "now", "expected"),
    [
        (None, 0.0, None),
        ("", 0.0, None),
        ("0", 0.0, 0.0),
        ("12", 0.0, 12.0),
        ("-3", 0.0, None),
        ("soon", 0.0, None),
        ("\u00b2", 0.0, None),  # latin-1 header byte 0xB2: str.isdigit() but not a number
        ("\u0663", 0.0, None),  # ARABIC-INDIC DIGIT THREE
        ("Wed, 21 Oct 2015 07:28:00 GMT", 1445412470.0, 10.0),
        ("Wed, 21 Oct 2015 07:28:00 GMT", 1445412490.0, 0.0),
    ],
)
def test_parse_retry_after(value: str | None, now: float, expected: float | None) -> None:
    assert parse_retry_after(value, now) == expected


def test_auth_error_body_never_carries_the_authorization_header(
    scripted: Scripted, fake_time: FakeTime
) -> None:
    scripted.on("GET", "/v2/", Reply(401, {"WWW-Authenticate": 'Basic realm="r"'}))
    scripted.on(
        "PUT",
        M + "production",
        Reply(403, {}, b'{"errors":[{"code":"DENIED","message":"requested access denied"}]}'),
    )
    client = make_client(scripted, fake_time, credentials=Credentials("me", "pw-abcdef"))
    with pytest.raises(AuthError) as info:
        client.put_manifest("production", Manifest.from_bytes(BODY, OCI))
    message = str(info.value)
    assert "denied: check the token has push access to 127.0.0.1" in message
    assert "DENIED: requested access denied" in message
    assert info.value.codes == ("DENIED",)
    sent = scripted.seen("PUT", M)[0].headers["Authorization"]
    assert sent.startswith("Basic ")
    assert sent.split()[1] not in message
    assert "pw-abcdef" not in message


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b'{"schemaVersion":2,"manifests":[]}', "application/vnd.oci.image.index.v1+json"),
        (b'{"schemaVersion":2,"config":{"digest":"x"},"layers":[]}', OCI),
    ],
)
def test_media_type_inferred_when_neither_body_nor_header_names_one(
    scripted: Scripted, fake_time: FakeTime, body: bytes, expected: str
) -> None:
    scripted.on("GET", M + "v1", Reply(200, {"Content-Type": "application/json"}, body))
    client = make_client(scripted, fake_time)
    assert client.get_manifest("v1").media_type == expected


class RawServer:
    """Raw HTTP/1.1 on a free loopback port: ``respond(path, headers, wfile)`` writes each
    answer by hand (so a test can cut a body mid-way); threaded, stopped by :meth:`close`."""

    def __init__(self) -> None:
        import socketserver
        import threading

        owner = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                line = self.rfile.readline().decode()
                headers: dict[str, str] = {}
                while (raw := self.rfile.readline()) not in (b"\r\n", b"\n", b""):
                    name, _, value = raw.decode().partition(":")
                    headers[name.strip().lower()] = value.strip()
                path = line.split(" ")[1] if " " in line else "/"
                owner.respond(path, headers, self.wfile)

        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def respond(self, path: str, headers: dict[str, str], wfile: Any) -> None:
        raise NotImplementedError

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class CutBodyServer(RawServer):
    """``/v2/`` answers 200; each other GET consumes one plan entry: ``"cut"`` sends the
    headers and half the body then closes, ``"stall"`` sends half and goes silent, ``"ok"``
    sends it all (the last entry repeats)."""

    def __init__(
        self, body: bytes, headers: dict[str, str], plan: list[str], status: str = "200 OK"
    ) -> None:
        self.body, self.headers, self.plan, self.status = body, headers, list(plan), status
        self.gets = 0
        super().__init__()

    def respond(self, path: str, headers: dict[str, str], wfile: Any) -> None:
        if path == "/v2/":
            wfile.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
            return
        self.gets += 1
        step = self.plan.pop(0) if len(self.plan) > 1 else self.plan[0]
        head = "".join(f"{k}: {v}\r\n" for k, v in self.headers.items())
        wfile.write(
            f"HTTP/1.1 {self.status}\r\n{head}Content-Length: {len(self.body)}\r\n"
            "Connection: close\r\n\r\n".encode()
        )
        if step == "ok":
            wfile.write(self.body)
            return
        wfile.write(self.body[: len(self.body) // 2])
        wfile.flush()
        if step == "stall":
            time.sleep(2.0)


@pytest.mark.parametrize("fault", ["cut", "stall"])
def test_a_body_cut_off_or_stalled_mid_read_is_retried(fault: str, fake_time: FakeTime) -> None:
    """Headers arrive, the body does not (reset or stall past the read timeout): that is a
    connection fault like any other, retried under the deadline — not an internal error."""
    server = CutBodyServer(
        BODY, {"Content-Type": OCI, "Docker-Content-Digest": DIGEST}, [fault, "ok"]
    )
    try:
        client = RegistryClient(
            parse_repository(f"{server.host}/acme/app"),
            sleep=fake_time.sleep,
            clock=fake_time.clock,
            timeout=0.5,
        )
        assert client.get_manifest("v1").digest == DIGEST
        assert server.gets == 2
        assert client.stats["retry"] == 1 and len(fake_time.sleeps) == 1
    finally:
        server.close()


def test_a_body_cut_off_for_good_gives_up_with_a_transient_error(fake_time: FakeTime) -> None:
    server = CutBodyServer(BODY, {"Content-Type": OCI}, ["cut"])
    try:
        client = RegistryClient(
            parse_repository(f"{server.host}/acme/app"),
            sleep=fake_time.sleep,
            clock=fake_time.clock,
            deadline=5.0,
        )
        with pytest.raises(TransientError, match=r"body.*giving up") as info:
            client.get_manifest("v1")
        assert info.value.status is None
        assert server.gets >= 3 and sum(fake_time.sleeps) < 5.0
    finally:
        server.close()


@pytest.mark.parametrize("status", ["503 Service Unavailable", "404 Not Found"])
def test_an_error_body_cut_off_still_gives_the_status_error(
    status: str, fake_time: FakeTime
) -> None:
    """The error body is for diagnostics only: cut off, the status still decides."""
    body = b'{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}'
    server = CutBodyServer(body, {"Content-Type": "application/json"}, ["cut"], status=status)
    try:
        client = RegistryClient(
            parse_repository(f"{server.host}/acme/app"),
            sleep=fake_time.sleep,
            clock=fake_time.clock,
            deadline=3.0,
        )
        expected = TransientError if status.startswith("503") else NotFoundError
        with pytest.raises(expected, match=r"HTTP 503|not found"):
            client.get_manifest("v1")
    finally:
        server.close()


class CutTokenServer(RawServer):
    """A Bearer registry that is its own token service. ``/v2/`` and an unauthorised GET
    answer 401 with the challenge; each ``/token`` GET consumes one plan entry (``"cut"``:
    headers and half the body, then close; ``"ok"``: the whole token); an authorised
    manifest GET answers the manifest."""

    TOKEN = "tok-0123456789abcdef"

    def __init__(self, plan: list[str], realm: str = "") -> None:
        self.plan, self.token_gets, self.realm = list(plan), 0, realm
        super().__init__()

    def respond(self, path: str, headers: dict[str, str], wfile: Any) -> None:
        if path.startswith("/token"):
            self.token_gets += 1
            step = self.plan.pop(0) if len(self.plan) > 1 else self.plan[0]
            body = json.dumps({"token": self.TOKEN}).encode()
            wfile.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                + f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
            )
            if step == "trickle":  # each byte well inside the attempt timeout
                for i in range(len(body)):
                    wfile.write(body[i : i + 1])
                    wfile.flush()
                    time.sleep(0.3)
                return
            wfile.write(body if step == "ok" else body[: len(body) // 2])
            return
        if headers.get("authorization") != f"Bearer {self.TOKEN}":
            realm = self.realm or f"http://{self.host}/token"
            wfile.write(
                b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n"
                + f'WWW-Authenticate: Bearer realm="{realm}",service="t"\r\n'.encode()
                + b"Connection: close\r\n\r\n"
            )
            return
        wfile.write(
            f"HTTP/1.1 200 OK\r\nContent-Type: {OCI}\r\nDocker-Content-Digest: "
            f"{DIGEST}\r\nContent-Length: {len(BODY)}\r\nConnection: close\r\n\r\n".encode()
            + BODY
        )


def test_a_token_body_cut_off_is_retried(fake_time: FakeTime) -> None:
    server = CutTokenServer(["cut", "ok"])
    try:
        client = RegistryClient(
            parse_repository(f"{server.host}/acme/app"),
            sleep=fake_time.sleep,
            clock=fake_time.clock,
        )
        assert client.get_manifest("v1").digest == DIGEST
        assert server.token_gets == 2
        assert client.stats["token"] == 1 and client.stats["retry"] == 1
    finally:
        server.close()


def test_a_token_body_cut_off_for_good_is_a_transient_error(fake_time: FakeTime) -> None:
    server = CutTokenServer(["cut"])
    try:
        client = RegistryClient(
            parse_repository(f"{server.host}/acme/app"),
            sleep=fake_time.sleep,
            clock=fake_time.clock,
            deadline=5.0,
        )
        with pytest.raises(TransientError, match=r"body.*giving up"):
            client.get_manifest("v1")
        assert server.token_gets >= 3
    finally:
        server.close()


def test_a_trickled_token_body_cannot_outlast_the_deadline() -> None:
    """Issue 17: one deadline bounds token fetches too (real clock: the bytes arrive 0.3 s
    apart, inside the 1 s attempt timeout, for about 9 s in all)."""
    server = CutTokenServer(["trickle"])
    try:
        client = RegistryClient(
            parse_repository(f"{server.host}/acme/app"), deadline=2.0, timeout=1.0
        )
        started = time.monotonic()
        with pytest.raises(TransientError, match=r"deadline of 2s ran out while the body"):
            client.get_manifest("v1")
        assert time.monotonic() - started < 3.0
    finally:
        server.close()


@pytest.mark.parametrize("realm", ["http://[::1/token", "file:///etc/passwd", "http://h:99999/t"])
def test_a_malformed_token_realm_is_a_registry_error_naming_the_header(
    fake_time: FakeTime, realm: str
) -> None:
    server = CutTokenServer(["ok"], realm=realm)
    try:
        client = RegistryClient(
            parse_repository(f"{server.host}/acme/app"),
            sleep=fake_time.sleep,
            clock=fake_time.clock,
        )
        with pytest.raises(RegistryError, match="invalid token realm in its WWW-Authenticate"):
            client.get_manifest("v1")
        assert server.token_gets == 0
    finally:
        server.close()


def _put_near_the_deadline(
    fake_time: FakeTime, third_put_sleeps: float
) -> tuple[TransientError, list[float], float]:
    """A manifest PUT a registry answers 503, the third attempt after ``third_put_sleeps``
    real seconds, under a 0.8 s deadline (waits 0.25 + 0.5: the third attempt starts with
    0.05 s left). The error, when each PUT arrived, seconds from the last PUT to the error."""
    puts: list[float] = []

    def answer(seen: Seen) -> Reply:
        if seen.method == "PUT":
            puts.append(time.monotonic())
            if len(puts) == 3:
                time.sleep(third_put_sleeps)
            return Reply(503, {"Content-Type": "application/json"}, b"{}")
        return Reply(200, {"Content-Type": "application/json"}, b"{}")

    server = LoopbackServer(answer)
    server.start()
    try:
        client = RegistryClient(
            parse_repository(f"{server.host}/acme/app"),
            sleep=fake_time.sleep,
            clock=fake_time.clock,
            deadline=0.8,
        )
        client.transport.jitter = lambda: 0.0
        with pytest.raises(TransientError) as info:
            client.put_manifest("v1", Manifest.from_bytes(BODY, OCI))
        cut_after = time.monotonic() - puts[-1]
    finally:
        server.stop()
    assert fake_time.sleeps == [0.25, 0.5]
    assert len(puts) == 3
    return info.value, puts, cut_after


def test_the_last_retry_gets_its_answer_not_a_cut_off(fake_time: FakeTime) -> None:
    """An attempt started with almost nothing left of the deadline (0.05 s here) still waits
    at least MIN_ATTEMPT_TIMEOUT for its answer: a slow 503 is a clean "not written"
    (status 503), not a write cut off in flight, which the promotion must call UNCONFIRMED.
    """
    # real time: longer than the 0.05 s left at the third attempt
    error, _puts, _cut = _put_near_the_deadline(fake_time, 0.3)
    assert error.status == 503
    assert "failed after 3 attempts" in str(error)
    assert "last HTTP 503" in str(error)


def test_the_last_retry_overruns_the_deadline_by_at_most_min_attempt_timeout(
    fake_time: FakeTime,
) -> None:
    """The documented bound of the one exception: an attempt started just before the
    deadline (0.05 s left) whose answer never comes is cut off after MIN_ATTEMPT_TIMEOUT,
    so a run's registry I/O ends within the deadline + 1 s, never later."""
    # real time: far past the bound
    error, _puts, cut_after = _put_near_the_deadline(fake_time, 3 * MIN_ATTEMPT_TIMEOUT)
    assert error.status is None  # no answer: the write is unconfirmed, not refused
    assert MIN_ATTEMPT_TIMEOUT * 0.9 <= cut_after < 2 * MIN_ATTEMPT_TIMEOUT, cut_after


def test_reading_an_error_body_leaves_the_shared_deadline_alone(
    scripted: Scripted, fake_time: FakeTime
) -> None:
    """The error body's short wait is its own budget: a copy's other workers share the
    transport, so the deadline they see (and the one restored after) never shrinks."""
    error = b'{"errors":[{"code":"UNAVAILABLE","message":"try later"}]}'
    busy = Reply(503, {"Content-Type": "application/json"}, error)
    scripted.on("GET", M + "v1", busy, manifest_reply())
    client = make_client(scripted, fake_time)
    seen: list[float] = []

    def clock() -> float:
        seen.append(client.transport.deadline)
        return fake_time.clock()

    client.transport.clock = clock
    assert client.get_manifest("v1").digest == DIGEST
    assert client.stats["retry"] == 1
    assert seen and set(seen) == {120.0}
