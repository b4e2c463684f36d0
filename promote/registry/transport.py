"""HTTP transport: one ``requests`` session, retries under one deadline, safe redirects, counts.

What it does for every request the registry client sends:

1. **Retries** on 408, 429, 499 (nginx), 500, 502, 503, 504, 522 (Cloudflare) and on
   connection faults (refused, reset, timeouts, truncated bodies), with exponential backoff
   and jitter (``BACKOFF_BASE`` doubling up to ``BACKOFF_MAX``, each wait multiplied by a
   random factor in [0.5, 1.0)). A ``Retry-After`` header (delta-seconds or HTTP-date) replaces
   the backoff, capped at ``RETRY_AFTER_MAX``. No other 4xx is retried (the one re-auth on
   401 lives in :mod:`promote.registry.auth` and the client). TLS errors are not retried:
   they do not heal by waiting. A PUT is retried too: manifest PUTs are idempotent.
2. **One overall deadline** per transport (so per :class:`~promote.registry.RegistryClient`),
   started by its first request: a retry is only attempted if its wait ends before the
   deadline, and each attempt's timeout is cut to what remains (at least
   ``MIN_ATTEMPT_TIMEOUT``: an attempt started before the deadline gets that long for its
   answer). A body cut off or stalled mid-read is retried alike (:meth:`Transport.fetch`).
   When the budget is spent: :class:`~promote.errors.TransientError` naming the method,
   URL, attempts, elapsed time and the last fault.
3. **Redirects** are followed by hand (GET/HEAD only, at most ``MAX_REDIRECTS``): the
   ``authorize`` callback is asked for an ``Authorization`` value for *each hop's URL*, and
   returns one only for the registry's own origin, so a redirect to blob storage on another
   host is anonymous. HTTPS -> HTTP downgrades are refused, loopback included (a registry
   spoken to over TLS never hands a client to plain HTTP). ``.netrc`` is never consulted
   (``requests`` would otherwise add credentials by itself).
4. **Counting**: every HTTP request sent (each hop, each attempt) is recorded in
   :class:`RequestStats` under its kind; repeated attempts are counted as ``"retry"``.
   The counts are thread-safe: a copy (:mod:`promote.registry.copy`) sends from workers.
5. **Streamed bodies**: ``send(..., retry=False)`` sends once and returns or raises the
   first answer or fault: a body read from an iterator cannot be sent twice, so the caller
   (the blob copy) retries the whole transfer instead.

``sleep``, ``clock`` (monotonic, for the deadline) and ``wallclock`` (for HTTP-date
``Retry-After``) are injectable so tests run without waiting.
"""

from __future__ import annotations

import email.utils
import json
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeVar
from urllib.parse import urljoin, urlsplit, urlunsplit

from promote.errors import RegistryError, TransientError

if TYPE_CHECKING:
    import requests

#: Statuses worth retrying: timeouts, rate limits, overloaded or restarting servers.
RETRYABLE_STATUSES = frozenset({408, 429, 499, 500, 502, 503, 504, 522})
#: First backoff wait in seconds; doubled each attempt.
BACKOFF_BASE = 0.5
#: Longest single backoff wait (before jitter).
BACKOFF_MAX = 8.0
#: Longest ``Retry-After`` we honour; a registry asking for more is waited on this long.
RETRY_AFTER_MAX = 30.0
#: Smallest per-attempt timeout, even when the deadline is nearly spent.
MIN_ATTEMPT_TIMEOUT = 1.0
#: Redirect hops followed for one request (blob storage needs one or two).
MAX_REDIRECTS = 5
#: Error bodies read for messages are cut here: a body is for diagnostics only.
MAX_ERROR_BODY = 64 * 1024
#: Bytes per second a copy's blob transfer must average (beyond the deadline it gets).
MIN_TRANSFER_RATE = 1024 * 1024
#: Seconds an error body may take to arrive when it is read for a message only.
ERROR_BODY_WAIT = 2.0

T = TypeVar("T")


def registry_url(value: str | None, *, base: str, header: str, method: str, url: str) -> str:
    """``value`` (a URL the registry sent in ``header``) resolved against ``base``.

    Registry data is data: a value that is not an absolute-or-relative ``http(s)`` URL with
    a host (``file:``, ``ftp:``, a broken IPv6 literal, a bad port, control characters) is
    a :class:`RegistryError` naming the header, never an internal error.
    """
    where = f"{method} {safe_url(url)}"
    shown = repr(value[:120]) if isinstance(value, str) else "nothing"
    if not value or any(ord(c) < 0x21 or ord(c) == 0x7F for c in value.strip()):
        raise RegistryError(
            f"{where}: the registry sent a malformed {header} header ({shown})",
            method=method,
            url=safe_url(url),
        )
    try:
        target = urljoin(base, value.strip())
        parts = urlsplit(target)
        _port = parts.port
    except ValueError:
        raise RegistryError(
            f"{where}: the registry sent a malformed URL in its {header} header ({shown})",
            method=method,
            url=safe_url(url),
        ) from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise RegistryError(
            f"{where}: the registry's {header} header names a non-HTTP URL ({shown}); "
            "refusing to follow it",
            method=method,
            url=safe_url(url),
        )
    return target


@dataclass(frozen=True)
class RequestRecord:
    """One HTTP request as sent: what for, method, URL (no credentials), status or fault."""

    kind: str
    method: str
    url: str
    status: int | None


@dataclass
class RequestStats:
    """Counts of HTTP requests sent, by kind.

    Kinds: ``ping``, ``token``, ``manifest-get``, ``manifest-head``, ``manifest-put``,
    ``tags``, ``blob``; a repeated attempt of any of them is counted as ``retry`` instead.
    ``records`` keeps every request in order, for assertions and debugging.
    """

    counts: Counter[str] = field(default_factory=Counter)
    records: list[RequestRecord] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, kind: str, method: str, url: str, status: int | None) -> None:
        with self._lock:
            self.counts[kind] += 1
            self.records.append(RequestRecord(kind, method, url, status))

    def __getitem__(self, kind: str) -> int:
        return self.counts[kind]

    def total(self, exclude: Iterable[str] = ()) -> int:
        """All requests sent, minus the kinds in ``exclude``."""
        skip = set(exclude)
        return sum(n for kind, n in self.counts.items() if kind not in skip)

    def as_dict(self) -> dict[str, int]:
        return dict(sorted(self.counts.items()))


def safe_url(url: str) -> str:
    """The URL without any ``user:password@`` part (for messages and records)."""
    parts = urlsplit(url)
    netloc = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))


def origin(url: str) -> tuple[str, str]:
    """``(scheme, host[:port])`` of a URL, lower-cased, default ports made explicit."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    port = parts.port or (443 if scheme == "https" else 80)
    return scheme, f"{host}:{port}"


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` value (delta-seconds or HTTP-date), or None."""
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():  # "²".isdigit() is True, float("²") raises
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - now)


def read_limited(response: requests.Response, limit: int) -> bytes | None:
    """Read at most ``limit`` bytes of a streamed body; None if it is longer. Closes it."""
    try:
        declared = response.headers.get("Content-Length")
        if declared and declared.isdigit() and int(declared) > limit:
            return None
        chunks: list[bytes] = []
        size = 0
        for chunk in response.iter_content(64 * 1024):
            size += len(chunk)
            if size > limit:
                return None
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        response.close()


def connection_faults() -> tuple[type[Exception], ...]:
    """The ``requests`` exceptions that are connection faults (refused, reset, timeouts,
    bodies cut off): retried under the deadline wherever they happen, before the headers
    or while a body arrives. The one list (``requests`` is imported lazily, for start-up)."""
    import requests

    return (
        requests.exceptions.ConnectionError,
        requests.exceptions.Timeout,
        requests.exceptions.ChunkedEncodingError,
    )


def error_details(response: requests.Response) -> tuple[tuple[str, ...], str]:
    """OCI error ``codes`` and a short ``CODE: message; ...`` text from an error body.

    The body is diagnostics only: one cut off or stalled mid-read counts as empty.
    """
    try:
        body = read_limited(response, MAX_ERROR_BODY) or b""
    except connection_faults():
        body = b""
    try:
        doc = json.loads(body)
    except ValueError:
        text = body.decode("utf-8", "replace").strip().splitlines()
        return (), (text[0][:200] if text else "")
    codes: list[str] = []
    parts: list[str] = []
    errors = doc.get("errors") if isinstance(doc, dict) else None
    for err in errors if isinstance(errors, list) else []:
        if not isinstance(err, dict):
            continue
        code = str(err.get("code", "")).strip()
        message = str(err.get("message", "")).strip()
        if code:
            codes.append(code)
        parts.append(f"{code}: {message}" if code and message else code or message)
    return tuple(codes), "; ".join(p for p in parts if p)[:500]


class _NoNetrc:
    """A ``requests`` auth hook that adds nothing, so ``.netrc`` is never consulted."""

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        return request


_NO_NETRC = _NoNetrc()
Authorize = Callable[[str], "str | None"]


class Transport:
    """Sends requests with retries, deadline, anonymous cross-origin redirects, counting."""

    def __init__(
        self,
        session: requests.Session,
        *,
        stats: RequestStats,
        deadline: float,
        timeout: float,
        user_agent: str,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        wallclock: Callable[[], float] = time.time,
        jitter: Callable[[], float] = random.random,
        redact: Callable[[str], str] = lambda s: s,
        ca_file: str | None = None,
    ) -> None:
        self.session = session
        #: a PEM bundle to verify TLS with, passed on every request (so that neither the
        #: system store nor ``REQUESTS_CA_BUNDLE`` replaces it); None: the defaults
        self.ca_file = ca_file
        self.stats = stats
        self.deadline = deadline
        self.timeout = timeout
        self.user_agent = user_agent
        self.sleep = sleep
        self.clock = clock
        self.wallclock = wallclock
        self.jitter = jitter
        self.redact = redact
        self._started: float | None = None

    def remaining(self) -> float:
        """Seconds left of the overall deadline (the full deadline before the first request)."""
        if self._started is None:
            return self.deadline
        return self._started + self.deadline - self.clock()

    def transfer_budget(self, size: int) -> float:
        """Seconds one blob transfer of ``size`` bytes may take: the deadline plus one
        second per MiB (a floor of 1 MiB/s), so a large layer outlasts the deadline while a
        source or target trickling bytes still cannot stretch the run without end."""
        return self.deadline + size / MIN_TRANSFER_RATE

    def deadline_error(self, method: str, url: str, what: str) -> TransientError:
        """The error for an overall deadline spent during ``what``."""
        elapsed = self.clock() - (self._started or self.clock())
        return TransientError(
            f"{method} {safe_url(url)}: the registry deadline of {self.deadline:g}s ran out "
            f"{what} (after {elapsed:.1f}s); giving up (retry deadline {self.deadline:g}s). "
            "The registry is slow or unavailable; try again later",
            status=None,
            method=method,
            url=safe_url(url),
        )

    def bounded(
        self,
        fn: Callable[[], T],
        *,
        method: str,
        url: str,
        what: str,
        budget: float | None = None,
    ) -> T:
        """Run ``fn`` (one blocking exchange: headers or a body) within what is left of
        the overall deadline. Socket timeouts bound each read; this bounds their sum, so a
        registry trickling bytes cannot stretch a run past its deadline. ``budget``: the
        seconds ``fn`` may take instead (a copy's blob transfer, see
        :func:`transfer_budget`)."""
        if self._started is None:
            self._started = self.clock()
        left = self.remaining() if budget is None else budget
        if left <= 0:
            raise self.deadline_error(method, url, what)
        value: list[T] = []
        error: list[BaseException] = []
        done = threading.Event()

        def work() -> None:
            try:
                value.append(fn())
            except BaseException as exc:  # re-raised in the caller's thread
                error.append(exc)
            finally:
                done.set()

        threading.Thread(target=work, name="promote-registry-io", daemon=True).start()
        if not done.wait(left):
            raise self.deadline_error(method, url, what)
        if error:
            raise error[0]
        return value[0]

    def read_body(self, response: requests.Response, limit: int, *, method: str) -> bytes | None:
        """:func:`read_limited` within the overall deadline."""
        return self.bounded(
            lambda: read_limited(response, limit),
            method=method,
            url=response.url or "",
            what="while the body was arriving",
        )

    def error_details(self, response: requests.Response) -> tuple[tuple[str, ...], str]:
        """:func:`error_details` within the deadline (and at most ``ERROR_BODY_WAIT``):
        an error body is diagnostics only, so a slow one counts as empty. The wait is
        ``bounded``'s budget, not a shortened ``deadline``: a copy's workers share it."""
        try:
            return self.bounded(
                lambda: error_details(response),
                method="GET",
                url=response.url or "",
                what="reading an error body",
                budget=min(self.remaining(), ERROR_BODY_WAIT),
            )
        except TransientError:
            response.close()
            return (), ""

    def _answer_budget(self) -> float:
        """Seconds an attempt may wait for its answer (the headers): what remains of the
        deadline, but at least ``MIN_ATTEMPT_TIMEOUT`` for an attempt started before the
        deadline (as its socket timeout is). Cutting the last retry off in flight after a
        few milliseconds would turn a registry's clean "503, nothing written" into an
        unconfirmed write; no attempt starts once the deadline is spent."""
        left = self.remaining()
        return left if left <= 0 else max(left, MIN_ATTEMPT_TIMEOUT)

    def restart_deadline(self) -> None:
        """Start a new deadline at the next request (a new phase: the tags after a copy)."""
        self._started = None

    def backoff(self, attempt: int) -> float:
        """Wait before attempt ``attempt + 1`` (attempt counts from 1), with jitter."""
        base = min(BACKOFF_MAX, BACKOFF_BASE * 2 ** (attempt - 1))
        return float(base * (0.5 + self.jitter() / 2))

    def send(
        self,
        method: str,
        url: str,
        *,
        kind: str,
        headers: Mapping[str, str] | None = None,
        data: bytes | Iterable[bytes] | None = None,
        authorize: Authorize | None = None,
        params: Mapping[str, str | list[str]] | None = None,
        retry: bool = True,
        timeout: float | None = None,
    ) -> requests.Response:
        """Send with retries; return the first non-retryable response (body streamed).

        ``retry=False``: one attempt only (a streamed ``data`` cannot be replayed); the
        first response is returned whatever its status, a connection fault raised as
        :class:`TransientError`. ``timeout``: the per-attempt timeout as given, not cut to
        what remains of the deadline (a blob transfer may outlast the retry budget).
        """
        import requests

        if self._started is None:
            self._started = self.clock()
        attempt = 0
        while True:
            attempt += 1
            retry_after: float | None = None
            status: int | None = None
            cause: Exception | None = None
            try:
                response = self._send_once(
                    method,
                    url,
                    _Request(kind if attempt == 1 else "retry", headers, data, authorize, params),
                    timeout=timeout,
                )
            except requests.exceptions.SSLError as exc:
                raise RegistryError(
                    f"{method} {safe_url(url)}: TLS error: {self.redact(str(exc))[:300]}",
                    method=method,
                    url=safe_url(url),
                ) from exc
            except connection_faults() as exc:
                fault = f"connection error ({type(exc).__name__})"
                cause = exc
            else:
                if response.status_code not in RETRYABLE_STATUSES or not retry:
                    return response
                status = response.status_code
                retry_after = parse_retry_after(
                    response.headers.get("Retry-After"), self.wallclock()
                )
                _codes, detail = self.error_details(response)
                fault = f"HTTP {status}" + (f" ({self.redact(detail)})" if detail else "")
            wait = (
                self.backoff(attempt) if retry_after is None else min(retry_after, RETRY_AFTER_MAX)
            )
            if wait >= self.remaining() or not retry:
                asked = (
                    f"; the registry asked to retry after {retry_after:g}s"
                    if retry_after is not None
                    else ""
                )
                raise self._given_up(
                    method,
                    url,
                    attempt,
                    fault=f"{fault}{asked}",
                    state="unavailable or rate-limiting",
                    status=status,
                ) from cause
            self.sleep(wait)

    def fetch(
        self,
        exchange: Callable[[str], requests.Response],
        *,
        kind: str,
        url: str,
        limit: int,
    ) -> tuple[requests.Response, bytes | None]:
        """A GET through ``exchange`` (given the kind to count) and, for a 200, its body
        (``None``: longer than ``limit``), both retried under the one deadline.

        :meth:`send` retries until the headers arrive; a body cut off or stalled mid-read
        afterwards is a connection fault like a reset before them: the GET is sent again
        (counted as ``retry``) after the same backoff, until the deadline is spent.
        ``exchange`` is the caller's send (the client's adds its one re-auth on a 401).
        """
        attempt = 0
        while True:
            attempt += 1
            response = exchange(kind if attempt == 1 else "retry")
            if response.status_code != 200:
                return response, None
            try:
                return response, self.read_body(response, limit, method="GET")
            except connection_faults() as exc:
                self.body_fault("GET", url, attempt=attempt, exc=exc)

    def body_fault(self, method: str, url: str, *, attempt: int, exc: Exception) -> None:
        """After a body cut off or stalled mid-read (outside :meth:`send`): back off like any
        connection fault, or raise :class:`TransientError` when the deadline is spent."""
        wait = self.backoff(attempt)
        if wait >= self.remaining():
            fault = f"connection error while reading the body ({type(exc).__name__})"
            raise self._given_up(
                method, url, attempt, fault=fault, state="unavailable", status=None
            ) from exc
        self.sleep(wait)

    def _given_up(
        self, method: str, url: str, attempt: int, *, fault: str, state: str, status: int | None
    ) -> TransientError:
        """The error for retries that end with the deadline (``state``: what the registry
        seems to be, for the hint)."""
        elapsed = self.clock() - (self._started or 0.0)
        return TransientError(
            f"{method} {safe_url(url)} failed after {attempt} attempt"
            f"{'s' if attempt > 1 else ''} in {elapsed:.1f}s: last {fault}; giving up (retry "
            f"deadline {self.deadline:g}s). The registry is {state}; try again later.",
            status=status,
            method=method,
            url=safe_url(url),
        )

    def _send_once(
        self,
        method: str,
        url: str,
        request: _Request,
        *,
        timeout: float | None = None,
    ) -> requests.Response:
        """One attempt: the request and the redirects it gets (GET/HEAD), each hop counted."""
        current = url
        params = request.params
        for _hop in range(MAX_REDIRECTS + 1):
            response = self._hop(method, url, current, request, params=params, timeout=timeout)
            if not (response.is_redirect and method in ("GET", "HEAD")):
                return response
            response.close()
            target = registry_url(
                response.headers.get("Location"),
                base=response.url or current,
                header="Location",
                method=method,
                url=url,
            )
            if origin(current)[0] == "https" and origin(target)[0] == "http":
                raise RegistryError(
                    f"{method} {safe_url(url)}: refusing a redirect from HTTPS to plain HTTP "
                    f"({safe_url(target)})",
                    method=method,
                    url=safe_url(url),
                )
            current, params = target, None
        raise RegistryError(
            f"{method} {safe_url(url)}: more than {MAX_REDIRECTS} redirects",
            method=method,
            url=safe_url(url),
        )

    def _hop(
        self,
        method: str,
        url: str,
        current: str,
        request: _Request,
        *,
        params: Mapping[str, str | list[str]] | None,
        timeout: float | None,
    ) -> requests.Response:
        """Send to ``current`` (``url`` or a redirect target) once and count it; the
        ``Authorization`` is asked for this hop's URL."""
        sent = {"User-Agent": self.user_agent, **(request.headers or {})}
        credential = request.authorize(current) if request.authorize else None
        if credential:
            sent["Authorization"] = credential
        fixed = timeout is not None
        if timeout is None:
            timeout = min(self.timeout, max(self.remaining(), MIN_ATTEMPT_TIMEOUT))

        def exchange() -> requests.Response:
            return self.session.request(
                method,
                current,
                headers=sent,
                data=request.data,
                params=params,
                timeout=timeout,
                allow_redirects=False,
                stream=True,
                auth=_NO_NETRC,
                verify=self.ca_file or None,
            )

        try:
            if fixed:
                # a copy's blob transfer: bounded by its own per-attempt timeout, which
                # outlasts the tag phase's deadline (the copy restarts that afterwards)
                response = exchange()
            else:
                response = self.bounded(
                    exchange,
                    method=method,
                    url=current,
                    what="waiting for the answer",
                    budget=self._answer_budget(),
                )
        except ValueError as exc:  # InvalidSchema and InvalidURL are ValueErrors too
            # requests parses a redirect's Location even with allow_redirects=False
            self.stats.add(request.kind, method, safe_url(current), None)
            raise RegistryError(
                f"{method} {safe_url(url)}: the registry sent a malformed URL in its "
                f"Location header ({type(exc).__name__}: {str(exc)[:120]})",
                method=method,
                url=safe_url(url),
            ) from None
        except Exception:
            self.stats.add(request.kind, method, safe_url(current), None)
            raise
        self.stats.add(
            request.kind, method, safe_url(response.url or current), response.status_code
        )
        return response


@dataclass(frozen=True)
class _Request:
    """What one :meth:`Transport.send` attempt sends (the same on every attempt and hop,
    but for the kind it is counted under)."""

    kind: str
    headers: Mapping[str, str] | None
    data: bytes | Iterable[bytes] | None
    authorize: Authorize | None
    params: Mapping[str, str | list[str]] | None
