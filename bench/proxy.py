"""A counting HTTP proxy in front of one loopback registry (stdlib only, threaded, streaming).

Every request a client sends to ``proxy.host`` is classified, counted and forwarded to the
registry unchanged; bodies are streamed both ways (1 MiB pieces, chunked request bodies
included, as ``docker push`` sends them), so nothing large is held in memory. The ``Host``
header is kept, so the registry builds upload ``Location`` URLs that point back at the
proxy; any that still name the registry's own origin are rewritten.

Kinds (the names of ``promote.registry`` ``RequestStats``, with blobs split by method)::

    ping          GET /v2/
    manifest-get  GET  /v2/<name>/manifests/<ref>      manifest-head, manifest-put likewise
    tags          GET  /v2/<name>/tags/list
    blob-get      GET  /v2/<name>/blobs/<digest>       blob-head likewise
    blob-upload   POST/PATCH/PUT /v2/<name>/blobs/uploads/...
    other         anything else under /v2/
    token         anything outside /v2/ (a token service; none in these benchmarks)
"""

from __future__ import annotations

import http.client
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from urllib.parse import urlsplit

PIECE = 1 << 20
#: Kinds that are not part of a promotion's own cost (issue 7 counts "besides ping and auth").
OVERHEAD_KINDS = frozenset({"ping", "token"})
BLOB_KINDS = frozenset({"blob-get", "blob-head", "blob-upload"})
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
    }
)


def classify(method: str, path: str) -> str:
    """The kind of one registry request (see the module docstring)."""
    bare = path.split("?", 1)[0]
    if bare in ("/v2", "/v2/"):
        return "ping"
    if not bare.startswith("/v2/"):
        return "token"
    if "/manifests/" in bare:
        return {"GET": "manifest-get", "HEAD": "manifest-head", "PUT": "manifest-put"}.get(
            method, "manifest-other"
        )
    if bare.endswith("/tags/list"):
        return "tags"
    if "/blobs/uploads" in bare:
        return "blob-upload"
    if "/blobs/" in bare:
        return {"GET": "blob-get", "HEAD": "blob-head"}.get(method, "blob-other")
    return "other"


@dataclass(frozen=True)
class Seen:
    """One request through the proxy."""

    method: str
    path: str
    kind: str
    status: int
    #: wall-clock time (``time.time()``) the request arrived at the proxy
    at: float = 0.0


class CountingProxy:
    """``CountingProxy(upstream_url)``: listen on 127.0.0.1:<free port>, count, forward.

    ``host`` is ``127.0.0.1:PORT`` (use it in image references), ``counts`` a Counter by
    kind, ``log`` every :class:`Seen` in order; :meth:`reset` clears both.
    """

    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        if parts.hostname not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError("the counting proxy only forwards to a loopback registry")
        self.upstream_host = parts.hostname or "127.0.0.1"
        self.upstream_port = parts.port or 80
        self.upstream_origin = f"{parts.scheme}://{parts.netloc}"
        self.lock = threading.Lock()
        self.counts: Counter[str] = Counter()
        self.log: list[Seen] = []
        #: body bytes by kind: sent by clients (``uploaded``) and by the registry
        self.uploaded: Counter[str] = Counter()
        self.downloaded: Counter[str] = Counter()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                proxy._handle(self)

            do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = do_GET

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request: object, client_address: object) -> None:
                pass  # a client hanging up mid-connection is not the benchmark's business

        self._server = Server(("127.0.0.1", 0), Handler)
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def origin(self) -> str:
        return f"http://{self.host}"

    def reset(self) -> None:
        with self.lock:
            self.counts.clear()
            self.log.clear()
            self.uploaded.clear()
            self.downloaded.clear()

    def snapshot(self) -> dict[str, int]:
        with self.lock:
            return dict(sorted(self.counts.items()))

    # -- forwarding --------------------------------------------------------------------------
    def _request_body(self, handler: BaseHTTPRequestHandler) -> tuple[Iterator[bytes] | None, bool]:
        """The request body as pieces, and whether it must be sent chunked."""
        rfile = handler.rfile
        if handler.headers.get("Transfer-Encoding", "").lower() == "chunked":

            def chunks() -> Iterator[bytes]:
                while True:
                    line = rfile.readline(65537)
                    size = int(line.split(b";", 1)[0].strip() or b"0", 16)
                    if size == 0:
                        while rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                            pass
                        return
                    left = size
                    while left:
                        piece = rfile.read(min(left, PIECE))
                        if not piece:
                            return
                        left -= len(piece)
                        yield piece
                    rfile.readline(3)

            return chunks(), True
        length = int(handler.headers.get("Content-Length") or 0)
        if not length:
            return None, False

        def fixed() -> Iterator[bytes]:
            left = length
            while left:
                piece = rfile.read(min(left, PIECE))
                if not piece:
                    return
                left -= len(piece)
                yield piece

        return fixed(), False

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        arrived = time.time()
        method, path = handler.command, handler.path
        kind = classify(method, path)
        # a list, not a dict: clients repeat headers (skopeo sends one Accept line per type)
        headers = [(k, v) for k, v in handler.headers.items() if k.lower() not in _HOP]
        body, chunked = self._request_body(handler)
        if body is not None and not chunked:
            headers.append(("Content-Length", handler.headers["Content-Length"]))
        conn = http.client.HTTPConnection(self.upstream_host, self.upstream_port, timeout=600)
        try:
            conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
            for key, value in headers:
                conn.putheader(key, value)
            if chunked:
                conn.putheader("Transfer-Encoding", "chunked")
            conn.endheaders()
            if body is not None:
                for piece in body:
                    with self.lock:
                        self.uploaded[kind] += len(piece)
                    if chunked:
                        conn.send(f"{len(piece):X}\r\n".encode() + piece + b"\r\n")
                    else:
                        conn.send(piece)
                if chunked:
                    conn.send(b"0\r\n\r\n")
            response = conn.getresponse()
            with self.lock:
                self.counts[kind] += 1
                self.log.append(Seen(method, path, kind, response.status, arrived))
            handler.send_response(response.status)
            length: str | None = None
            for key, value in response.getheaders():
                low = key.lower()
                if low == "content-length":
                    length = value
                if low in _HOP:
                    continue
                if low == "location":
                    handler.send_header(key, value.replace(self.upstream_origin, self.origin))
                else:
                    handler.send_header(key, value)
            if method == "HEAD" or response.status in (204, 304):
                handler.send_header("Content-Length", length or "0")
                handler.end_headers()
                response.read()
            elif length is not None:
                handler.send_header("Content-Length", length)
                handler.end_headers()
                while piece := response.read(PIECE):
                    with self.lock:
                        self.downloaded[kind] += len(piece)
                    handler.wfile.write(piece)
            else:
                data = response.read()
                handler.send_header("Content-Length", str(len(data)))
                handler.end_headers()
                handler.wfile.write(data)
            handler.wfile.flush()
        finally:
            conn.close()

    # -- life cycle --------------------------------------------------------------------------
    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> CountingProxy:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
