"""The forwarding HTTP proxy for loopback registries, with fault hooks (stdlib only, threaded).

One proxy for the test suites (faults, hooks, every exchange kept for inspection) and the
benchmarks (requests and body bytes counted; :func:`counting_proxy`).

The proxy listens on ``127.0.0.1:<free port>`` and forwards every request to one upstream
(a real CNCF distribution registry, or a token service). A *schedule* of :class:`Rule`\\ s
decides, per request, whether to inject a fault::

    proxy = FaultProxy(registry.url)                  # upstream origin, e.g. http://127.0.0.1:5000
    proxy.add(Fault.status(429, retry_after="1"), method="GET", path=r"/manifests/", nth=[1])
    proxy.add(Fault.reset(), method="PUT", path=r"/manifests/production$", nth=[1, 2])
    proxy.add(Fault.status(503), method="PUT", path=r"/manifests/", always=True)  # lasting
    proxy.add(Fault.delay(0.5), path=r"/tags/list")   # slow, then forwarded normally
    proxy.add(Fault.hook(fn, after=True), method="GET", path=r"/manifests/staging-")
    image = f"{proxy.host}/team/app"                   # the client only ever sees the proxy

Faults (``Fault.*``):

* ``status(code, retry_after=None, after=False)``: answer ``code`` (429/500/502/503...) with
  an OCI error body instead of forwarding; ``after=True`` forwards first (the upstream
  *did* the work, e.g. stored the manifest) and then replaces the answer — the "response
  lost" case.
* ``reset(after=False)``: read the request, then close the socket with an RST (``SO_LINGER``
  0) and no answer — "connection reset by peer" for the client. ``after=True`` forwards first.
* ``delay(seconds)``: wait, then forward normally (slow registry; longer than the client's
  per-attempt timeout makes it a read timeout).
* ``hook(fn, after=False, upstream_path=None)``: call ``fn(request)`` (an :class:`Exchange`)
  before or after forwarding, then go on normally (before: it may edit ``path``; after: the
  answer's ``status``, ``response_headers``, ``response_body``). ``upstream_path(path)``
  names the path sent upstream instead of the client's, which the exchange keeps (a test
  paginating the registry's whole tag list by its own query). Used to move tags in the
  real registry at an exact point, or to pause a request until a test releases it
  (:class:`Gate`).
* ``answer(fn)``: call ``fn(request)``, which sets ``status`` (and ``response_headers``,
  ``response_body``), and answer that instead of forwarding (a 307 to blob storage).

Matching: ``method`` (exact, or ``None`` for any), ``path`` (``re.search`` on the path with
query string), and which occurrences of *that rule's* matches fault: ``nth=[1, 3]``
(1-based), or every one (the default; ``always=True`` says so). The first rule that matches *and*
is due fires; every rule counts its own matches whether or not it fires.

Rewriting: ``Location``, ``Link``, ``WWW-Authenticate`` and ``Content-Location`` values that
name the upstream origin are rewritten to the proxy's origin, so the client keeps talking
through the proxy; ``rewrite`` maps further origins (a token service behind its own proxy:
``FaultProxy(registry.url, rewrite={token.url: token_proxy.url})``).

Counting: ``counts`` (a Counter by kind: ``ping``, ``token``, ``manifest-get``,
``manifest-head``, ``manifest-put``, ``manifest-delete``, ``tags``, ``blob``, ``blob-upload``,
``other``; ``classifier=classify_by_method`` splits blobs by method, as the benchmarks
count), ``faults`` (a Counter by kind of faults injected), ``connections`` (TCP
connections accepted), ``uploaded`` / ``downloaded`` (body bytes by kind, sent by clients
and by the upstream) and ``log`` (every :class:`Exchange`, in order). ``upstream=None``
makes a *sink*: every request is counted and answered 404 (not retried,
so a test that does reach it fails fast) — a "registry" for tests that must prove no
request is ever sent.

Bodies: by default (``keep_bodies=True``) every request and answer body is read whole and
kept in its :class:`Exchange` (tests look at them; hooks may rewrite them). With
``keep_bodies=False`` (the benchmarks: 512 MiB pushes) a request that no rule faults is
streamed both ways in 1 MiB pieces (chunked request bodies stay chunked, as ``docker push``
sends them) and only its sizes are counted; a request a rule does fault is still read whole.
Request headers are forwarded as sent, repeats included (skopeo sends one ``Accept`` line
per media type); ``Exchange.headers`` is a dict of them for inspection (the last repeat wins).
"""

from __future__ import annotations

import contextlib
import http.client
import json
import re
import socket
import struct
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from urllib.parse import urlsplit

#: Hop-by-hop headers never forwarded (RFC 9110 §7.6.1) plus the ones we recompute.
_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "content-length",
        "host",
    }
)
_REWRITTEN = ("location", "link", "www-authenticate", "content-location")
#: How long a forwarded request may take upstream (the registry is local and fast).
UPSTREAM_TIMEOUT = 30.0
#: Streamed bodies move in pieces of this size.
PIECE = 1 << 20
#: Kinds that are not part of a promotion's own cost (issue 7 counts "besides ping and auth").
OVERHEAD_KINDS = frozenset({"ping", "token"})
#: The blob kinds of :func:`classify_by_method`.
BLOB_KINDS = frozenset({"blob-get", "blob-head", "blob-upload"})


def classify(method: str, path: str) -> str:
    """The kind of a registry request (same names as ``promote.registry`` ``RequestStats``)."""
    bare = path.split("?", 1)[0]
    if bare in ("/v2", "/v2/"):
        return "ping"
    if "/manifests/" in bare:
        return {
            "GET": "manifest-get",
            "HEAD": "manifest-head",
            "PUT": "manifest-put",
            "DELETE": "manifest-delete",
        }.get(method, "other")
    if bare.endswith("/tags/list"):
        return "tags"
    if "/blobs/uploads" in bare:
        return "blob-upload"
    if "/blobs/" in bare:
        return "blob"
    if bare.startswith("/v2/"):
        return "other"
    return "token"


def classify_by_method(method: str, path: str) -> str:
    """:func:`classify`, with blob reads split by method (``blob-get``, ``blob-head``) and any
    other manifest method ``manifest-other``: the kinds the benchmarks report."""
    kind = classify(method, path)
    if kind == "blob":
        return {"GET": "blob-get", "HEAD": "blob-head"}.get(method, "blob-other")
    if kind == "other" and "/manifests/" in path.split("?", 1)[0]:
        return "manifest-other"
    return kind


@dataclass
class Exchange:
    """One request through the proxy: what came in, what went out, which fault fired."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    kind: str
    started: float = field(default_factory=time.monotonic)
    #: wall-clock time (``time.time()``) the request arrived at the proxy
    at: float = field(default_factory=time.time)
    status: int | None = None
    fault: str | None = None
    forwarded: bool = False
    response_headers: dict[str, str] = field(default_factory=dict)
    response_body: bytes = b""
    #: set by an ``after`` hook: send the body ``(n bytes, every s seconds)``
    trickle: tuple[int, float] | None = None
    #: the request headers as received, repeats included (what is forwarded)
    header_list: list[tuple[str, str]] = field(default_factory=list, repr=False)
    #: the path sent upstream, when a fault's ``upstream_path`` named another than ``path``
    upstream_path: str | None = None

    def forwarded_headers(self) -> list[tuple[str, str]]:
        """The headers to send upstream: as received, unless a hook edited ``headers``."""
        if dict(self.header_list) != self.headers:
            return list(self.headers.items())
        return list(self.header_list)


@dataclass(frozen=True)
class Fault:
    """What to do to a matching request (build with the class methods)."""

    kind: str
    code: int = 0
    retry_after: str | None = None
    seconds: float = 0.0
    after: bool = False
    fn: Callable[[Exchange], None] | None = None
    #: OCI error code and message of the answer's body (default: by status)
    error: tuple[str, str] | None = None
    #: the path to forward instead of the client's (``hook``)
    upstream_path: Callable[[str], str] | None = None

    @classmethod
    def status(
        cls,
        code: int,
        *,
        retry_after: str | None = None,
        after: bool = False,
        error: tuple[str, str] | None = None,
    ) -> Fault:
        return cls("status", code=code, retry_after=retry_after, after=after, error=error)

    @classmethod
    def reset(cls, *, after: bool = False) -> Fault:
        return cls("reset", after=after)

    @classmethod
    def delay(cls, seconds: float) -> Fault:
        return cls("delay", seconds=seconds)

    @classmethod
    def hook(
        cls,
        fn: Callable[[Exchange], None],
        *,
        after: bool = False,
        upstream_path: Callable[[str], str] | None = None,
    ) -> Fault:
        return cls("hook", fn=fn, after=after, upstream_path=upstream_path)

    @classmethod
    def answer(cls, fn: Callable[[Exchange], None]) -> Fault:
        return cls("answer", fn=fn)

    @property
    def label(self) -> str:
        if self.kind == "status":
            return f"status-{self.code}" + ("-after" if self.after else "")
        if self.kind == "reset":
            return "reset" + ("-after" if self.after else "")
        return self.kind


@dataclass
class Rule:
    """Fault ``fault`` on the requests matching ``method`` and ``path`` that are due."""

    fault: Fault
    method: str | None = None
    path: str = ""
    nth: frozenset[int] | None = None
    always: bool = False
    seen: int = 0
    fired: int = 0

    def matches(self, method: str, path: str) -> bool:
        if self.method is not None and self.method != method:
            return False
        return re.search(self.path, path) is not None

    def due(self) -> bool:
        """Call once per match (after ``seen`` was incremented)."""
        if self.always:
            return True
        if self.nth is not None:
            return self.seen in self.nth
        return True


class Gate:
    """Pause requests at a hook until the test releases them (deterministic interleaving).

    ``proxy.add(Fault.hook(gate.hold), method="PUT", path=...)``; ``gate.wait_arrived()``
    returns once a request is held; ``gate.release()`` lets it (and later ones) through.
    """

    def __init__(self, timeout: float = 20.0) -> None:
        self.timeout = timeout
        self._arrived = threading.Event()
        self._released = threading.Event()

    def hold(self, exchange: Exchange) -> None:
        self._arrived.set()
        if not self._released.wait(self.timeout):
            raise TimeoutError("gate was never released")

    def wait_arrived(self, timeout: float | None = None) -> bool:
        return self._arrived.wait(self.timeout if timeout is None else timeout)

    def release(self) -> None:
        self._released.set()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    proxy: FaultProxy

    def verify_request(self, request: object, client_address: object) -> bool:
        with self.proxy.lock:
            self.proxy.connections += 1
        return True

    def handle_error(self, request: object, client_address: object) -> None:
        # A client that hangs up mid-answer is normal under fault injection: stay quiet,
        # but keep the error for tests that want to look.
        import sys

        self.proxy.errors.append(repr(sys.exc_info()[1]))


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: object) -> None:
        return

    def _handle(self) -> None:
        self.server.proxy.handle(self)

    do_GET = do_HEAD = do_PUT = do_POST = do_DELETE = do_PATCH = _handle


def _request_body(handler: BaseHTTPRequestHandler) -> tuple[Iterator[bytes], bool]:
    """The request body as pieces of at most :data:`PIECE` bytes, and whether it is chunked."""
    rfile = handler.rfile

    def fixed(length: int) -> Iterator[bytes]:
        left = length
        while left:
            piece = rfile.read(min(left, PIECE))
            if not piece:
                return
            left -= len(piece)
            yield piece

    if handler.headers.get("Transfer-Encoding", "").lower() == "chunked":

        def chunks() -> Iterator[bytes]:
            while True:
                line = rfile.readline(65537)
                size = int(line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass
                    return
                yield from fixed(size)
                rfile.readline(3)

        return chunks(), True

    return fixed(int(handler.headers.get("Content-Length") or 0)), False


class FaultProxy:
    """A loopback HTTP proxy in front of ``upstream`` with a programmable fault schedule."""

    def __init__(
        self,
        upstream: str | None,
        *,
        rewrite: Mapping[str, str] | None = None,
        keep_bodies: bool = True,
        classifier: Callable[[str, str], str] = classify,
        upstream_timeout: float = UPSTREAM_TIMEOUT,
    ) -> None:
        self.keep_bodies = keep_bodies
        self.classifier = classifier
        self.upstream_timeout = upstream_timeout
        #: body bytes by kind: sent by clients (``uploaded``) and by the upstream
        self.uploaded: Counter[str] = Counter()
        self.downloaded: Counter[str] = Counter()
        self.upstream = upstream.rstrip("/") if upstream else None
        self.rules: list[Rule] = []
        self.counts: Counter[str] = Counter()
        self.faults: Counter[str] = Counter()
        self.log: list[Exchange] = []
        self.errors: list[str] = []
        self.connections = 0
        self.lock = threading.Lock()
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.proxy = self
        port = self._server.server_address[1]
        self.host = f"127.0.0.1:{port}"
        self.url = f"http://{self.host}"
        self._rewrite: dict[str, str] = {}
        if self.upstream:
            parts = urlsplit(self.upstream)
            if parts.hostname not in ("127.0.0.1", "localhost", "::1"):
                raise ValueError(f"faultproxy forwards to loopback only, not {self.upstream}")
            self._rewrite[f"{parts.scheme}://{parts.netloc}"] = self.url
        for src, dst in (rewrite or {}).items():
            self._rewrite[src.rstrip("/")] = dst.rstrip("/")
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    # -- schedule ----------------------------------------------------------------------------
    def add(
        self,
        fault: Fault,
        *,
        method: str | None = None,
        path: str = "",
        nth: Iterable[int] | None = None,
        always: bool = False,
    ) -> Rule:
        """Add a rule; without ``nth`` it fires on every match."""
        rule = Rule(
            fault=fault,
            method=method,
            path=path,
            nth=frozenset(nth) if nth is not None else None,
            always=always,
        )
        with self.lock:
            self.rules.append(rule)
        return rule

    def clear(self) -> None:
        """Drop every rule (the registry is healthy again)."""
        with self.lock:
            self.rules.clear()

    def reset_counts(self) -> None:
        with self.lock:
            self.counts.clear()
            self.faults.clear()
            self.log.clear()
            self.uploaded.clear()
            self.downloaded.clear()
            self.connections = 0

    def snapshot(self) -> dict[str, int]:
        """The request counts by kind, sorted by kind."""
        with self.lock:
            return dict(sorted(self.counts.items()))

    def requests(self, kind: str | None = None) -> list[Exchange]:
        with self.lock:
            return [e for e in self.log if kind is None or e.kind == kind]

    @property
    def total(self) -> int:
        with self.lock:
            return sum(self.counts.values())

    def _pick(self, method: str, path: str) -> Fault | None:
        chosen: Fault | None = None
        with self.lock:
            for rule in self.rules:
                if not rule.matches(method, path):
                    continue
                rule.seen += 1
                if chosen is None and rule.due():
                    rule.fired += 1
                    chosen = rule.fault
        return chosen

    # -- the request path -------------------------------------------------------------------
    def handle(self, handler: _Handler) -> None:
        method, path = handler.command, handler.path
        header_list = list(handler.headers.items())
        exchange = Exchange(
            method,
            path,
            dict(header_list),
            b"",
            self.classifier(method, path),
            header_list=header_list,
        )
        with self.lock:
            self.counts[exchange.kind] += 1
            self.log.append(exchange)
        fault = self._pick(method, path)
        if fault is not None:
            exchange.fault = fault.label
            with self.lock:
                self.faults[fault.label] += 1
        pieces, chunked = _request_body(handler)
        if fault is None and not self.keep_bodies and self.upstream is not None:
            self._stream(handler, exchange, pieces, chunked)
            return
        exchange.body = b"".join(pieces)
        self._count(self.uploaded, exchange.kind, len(exchange.body))

        if fault is not None and not fault.after:
            if self._instead(handler, exchange, fault):
                return
            if fault.kind == "delay":
                time.sleep(fault.seconds)
            if fault.kind == "hook" and fault.fn is not None:
                fault.fn(exchange)
        if fault is not None and fault.upstream_path is not None:
            exchange.upstream_path = fault.upstream_path(exchange.path)

        status, resp_headers, resp_body, head_length = self._forward(exchange)
        exchange.forwarded = True
        exchange.status = status
        exchange.response_headers = dict(resp_headers)
        exchange.response_body = resp_body
        self._count(self.downloaded, exchange.kind, len(resp_body))

        if fault is not None and fault.after:
            if self._instead(handler, exchange, fault):
                return
            if fault.kind == "hook" and fault.fn is not None:
                # an after-hook may rewrite the answer: status, headers, body, pace
                before = (exchange.status, dict(exchange.response_headers), resp_body)
                fault.fn(exchange)
                if (exchange.status, exchange.response_headers, exchange.response_body) != before:
                    status = exchange.status or status
                    resp_headers = list(exchange.response_headers.items())
                    resp_body = exchange.response_body

        self._send(handler, exchange, status, resp_headers, resp_body, head_length)

    def _send(
        self,
        handler: _Handler,
        exchange: Exchange,
        status: int,
        resp_headers: list[tuple[str, str]],
        resp_body: bytes,
        head_length: str | None,
    ) -> None:
        """Send an answer read whole (paced by ``exchange.trickle`` when an after-hook set it)."""
        handler.send_response(status)
        for key, value in resp_headers:
            handler.send_header(key, value)
        if exchange.method == "HEAD":
            handler.send_header("Content-Length", head_length or "0")
        else:
            handler.send_header("Content-Length", str(len(resp_body)))
        handler.end_headers()
        if exchange.method != "HEAD" and resp_body:
            if exchange.trickle is None:
                handler.wfile.write(resp_body)
            else:
                size, every = exchange.trickle
                for i in range(0, len(resp_body), size):
                    handler.wfile.write(resp_body[i : i + size])
                    handler.wfile.flush()
                    time.sleep(every)
        handler.wfile.flush()

    def _instead(self, handler: _Handler, exchange: Exchange, fault: Fault) -> bool:
        """Answer a ``status``, ``reset`` or ``answer`` fault in place of the upstream's answer."""
        if fault.kind == "answer" and fault.fn is not None:
            fault.fn(exchange)
            status = exchange.status or 200
            headers = list(exchange.response_headers.items())
            body = exchange.response_body
            self._send(handler, exchange, status, headers, body, str(len(body)))
            return True
        if fault.kind == "status":
            self._answer_fault(handler, exchange, fault)
            return True
        if fault.kind == "reset":
            self._reset(handler, exchange)
            return True
        return False

    def _count(self, counter: Counter[str], kind: str, size: int) -> None:
        if size:
            with self.lock:
                counter[kind] += size

    def _connect(self) -> tuple[http.client.HTTPConnection, str]:
        """A connection to the upstream, and the ``Host`` to name it by."""
        assert self.upstream is not None
        parts = urlsplit(self.upstream)
        conn = http.client.HTTPConnection(
            parts.hostname or "127.0.0.1", parts.port or 80, timeout=self.upstream_timeout
        )
        return conn, parts.netloc

    def _request_headers(self, exchange: Exchange, netloc: str) -> list[tuple[str, str]]:
        headers = [(k, v) for k, v in exchange.forwarded_headers() if k.lower() not in _HOP]
        return [*headers, ("Host", netloc), ("Connection", "close")]

    @staticmethod
    def _put_headers(
        conn: http.client.HTTPConnection, exchange: Exchange, headers: list[tuple[str, str]]
    ) -> None:
        """Request line and headers (``Accept-Encoding: identity`` when the client sent none)."""
        has_encoding = any(k.lower() == "accept-encoding" for k, _ in headers)
        conn.putrequest(
            exchange.method,
            exchange.upstream_path or exchange.path,
            skip_host=True,
            skip_accept_encoding=has_encoding,
        )
        for key, value in headers:
            conn.putheader(key, value)

    def _response_headers(
        self, response: http.client.HTTPResponse
    ) -> tuple[list[tuple[str, str]], str | None]:
        """The upstream answer's headers to pass on (rewritten), and its ``Content-Length``."""
        headers: list[tuple[str, str]] = []
        content_length: str | None = None
        for key, value in response.getheaders():
            low = key.lower()
            if low == "content-length":
                content_length = value
            if low in _HOP:
                continue
            headers.append((key, self._rewrite_value(value) if low in _REWRITTEN else value))
        return headers, content_length

    def _forward(self, exchange: Exchange) -> tuple[int, list[tuple[str, str]], bytes, str | None]:
        """Send the request upstream; (status, headers to pass on, body, HEAD's length)."""
        if self.upstream is None:
            body = json.dumps(
                {"errors": [{"code": "UNAVAILABLE", "message": "faultproxy sink: no upstream"}]}
            ).encode()
            return 404, [("Content-Type", "application/json")], body, None
        conn, netloc = self._connect()
        try:
            out_headers = self._request_headers(exchange, netloc)
            if exchange.body or exchange.method in ("PUT", "POST", "PATCH"):
                out_headers.append(("Content-Length", str(len(exchange.body))))
            self._put_headers(conn, exchange, out_headers)
            conn.endheaders(exchange.body or None)
            response = conn.getresponse()
            data = response.read()
            headers, content_length = self._response_headers(response)
            return response.status, headers, data, content_length
        finally:
            conn.close()

    def _stream(
        self,
        handler: _Handler,
        exchange: Exchange,
        pieces: Iterator[bytes],
        chunked: bool,
    ) -> None:
        """Forward one request with both bodies streamed in pieces (``keep_bodies=False``)."""
        conn, netloc = self._connect()
        try:
            out_headers = self._request_headers(exchange, netloc)
            length = handler.headers.get("Content-Length")
            if chunked:
                out_headers.append(("Transfer-Encoding", "chunked"))
            elif length or exchange.method in ("PUT", "POST", "PATCH"):
                out_headers.append(("Content-Length", length or "0"))
            self._put_headers(conn, exchange, out_headers)
            conn.endheaders()
            for piece in pieces:
                self._count(self.uploaded, exchange.kind, len(piece))
                conn.send(f"{len(piece):X}\r\n".encode() + piece + b"\r\n" if chunked else piece)
            if chunked:
                conn.send(b"0\r\n\r\n")
            response = conn.getresponse()
            exchange.forwarded = True
            exchange.status = response.status
            headers, content_length = self._response_headers(response)
            exchange.response_headers = dict(headers)
            self._stream_answer(handler, exchange, response, headers, content_length)
        finally:
            conn.close()

    def _stream_answer(
        self,
        handler: _Handler,
        exchange: Exchange,
        response: http.client.HTTPResponse,
        headers: list[tuple[str, str]],
        length: str | None,
    ) -> None:
        handler.send_response(response.status)
        for key, value in headers:
            handler.send_header(key, value)
        if exchange.method == "HEAD" or response.status in (204, 304):
            handler.send_header("Content-Length", length or "0")
            handler.end_headers()
            response.read()
        elif length is not None:
            handler.send_header("Content-Length", length)
            handler.end_headers()
            while piece := response.read(PIECE):
                self._count(self.downloaded, exchange.kind, len(piece))
                handler.wfile.write(piece)
        else:
            data = response.read()
            self._count(self.downloaded, exchange.kind, len(data))
            handler.send_header("Content-Length", str(len(data)))
            handler.end_headers()
            handler.wfile.write(data)
        handler.wfile.flush()

    def _rewrite_value(self, value: str) -> str:
        for src, dst in self._rewrite.items():
            value = value.replace(src, dst)
        return value

    @staticmethod
    def _answer_fault(handler: _Handler, exchange: Exchange, fault: Fault) -> None:
        code, message = fault.error or (
            "TOOMANYREQUESTS" if fault.code == 429 else "UNAVAILABLE",
            f"faultproxy injected HTTP {fault.code}",
        )
        body = json.dumps({"errors": [{"code": code, "message": message}]}).encode()
        exchange.status = fault.code
        handler.send_response(fault.code)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(body)))
        if fault.retry_after is not None:
            handler.send_header("Retry-After", fault.retry_after)
        handler.end_headers()
        if exchange.method != "HEAD":
            handler.wfile.write(body)
        handler.wfile.flush()

    @staticmethod
    def _reset(handler: _Handler, exchange: Exchange) -> None:
        exchange.status = None
        sock = handler.connection
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        handler.close_connection = True
        sock.close()

    # -- life cycle --------------------------------------------------------------------------
    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> FaultProxy:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def counting_proxy(upstream: str) -> FaultProxy:
    """The benchmarks' proxy: bodies streamed and only counted, blobs split by method
    (:func:`classify_by_method`), 600 s upstream (512 MiB pushes), no faults scheduled."""
    return FaultProxy(
        upstream, keep_bodies=False, classifier=classify_by_method, upstream_timeout=600.0
    )
