"""A local, stateful GitHub REST API server for tests (stdlib only, loopback only).

Shaped on GitHub's documented responses (https://docs.github.com/en/rest): JSON bodies
with ``url`` fields pointing back at this server (PyGithub follows them), error bodies
``{"message", "documentation_url"}``, ``ETag`` on every 200 GET and ``304 Not Modified``
for a matching ``If-None-Match`` (not counted against the rate limit, as on GitHub),
``X-RateLimit-*`` headers, ``Link`` pagination, and ``401`` without a valid token.

Repositories are **real git repositories** on disk: every request reads them with git, so
a commit made by a test (say from a thread, while the code under test polls) is visible
at once. ``server.add_repo("acme/gitops", path)``.

Extending (other modules add endpoints without editing this file)::

    from testkit.github_server import HTTPError, Request, Response, route

    @route("POST", r"/repos/(?P<owner>[^/]+)/(?P<repo>[^/]+)/deployments")
    def create_deployment(req: Request) -> Response:
        state = req.repo.extra.setdefault("deployments", [])
        ...
        return Response(201, {...})

Routes registered with :func:`route` apply to every server (import the module before
starting one); ``GitHubServer(routes=[...])`` or ``server.add_route(...)`` add routes to
one server only. Later registrations win over earlier ones for the same path, so a test
can override a built-in endpoint. Handlers run on server threads; ``server.lock`` guards
shared state. ``req.repo`` resolves ``owner``/``repo`` groups (404 when unknown).

Usage::

    with GitHubServer(token="t0ken") as gh:
        gh.add_repo("acme/gitops", repo_dir)
        env = {"GITHUB_API_URL": gh.url}
        ...
        assert gh.count("GET", "/repos/acme/gitops/git/ref/heads/main", status=304) > 0
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

DOCS = "https://docs.github.com/rest"
RATE_LIMIT = 5000
RATE_WINDOW = 3600

Handler = Callable[["Request"], "Response"]


@dataclass(frozen=True)
class Route:
    method: str
    pattern: re.Pattern[str]
    handler: Handler


#: Routes every server serves (built-ins below, plus any module that uses @route).
ROUTES: list[Route] = []


def route(method: str, pattern: str) -> Callable[[Handler], Handler]:
    """Register ``handler`` for ``method`` and a path regex (matched in full) on all servers."""

    def register(handler: Handler) -> Handler:
        ROUTES.append(Route(method.upper(), re.compile(pattern), handler))
        return handler

    return register


class HTTPError(Exception):
    """Raise in a handler to answer ``{"message": ..., "documentation_url": ...}``."""

    def __init__(self, status: int, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.extra = extra


@dataclass
class Response:
    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class RecordedRequest:
    method: str
    path: str
    query: str
    status: int
    headers: dict[str, str]


@dataclass
class RepoState:
    """One repository: a real git work tree (or bare repository) plus free-form state."""

    owner: str
    name: str
    path: Path
    default_branch: str
    id: int
    private: bool = True
    #: state other modules keep for this repository (deployments, releases...)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def full_name(self) -> str:
        return f"{self.owner}/{self.name}"

    def git(self, *args: str, input: bytes | None = None, check: bool = True) -> bytes:
        proc = subprocess.run(
            ["git", "-C", str(self.path), *args],
            input=input,
            capture_output=True,
            check=False,
            timeout=60,
        )
        if check and proc.returncode != 0:
            raise HTTPError(422, proc.stderr.decode("utf-8", "replace").strip() or "git failed")
        return proc.stdout

    def resolve(self, ref: str, kind: str = "commit") -> str | None:
        """The sha of ``ref`` peeled to ``kind`` (commit or tree), or None."""
        out = self.git("rev-parse", "--verify", "-q", f"{ref}^{{{kind}}}", check=False)
        sha = out.decode().strip()
        return sha or None


@dataclass
class Request:
    server: GitHubServer
    method: str
    path: str
    query: dict[str, list[str]]
    headers: Message
    body: bytes
    params: dict[str, str]

    def arg(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[-1] if values else default

    def json(self) -> Any:
        if not self.body:
            return {}
        try:
            return json.loads(self.body)
        except ValueError:
            raise HTTPError(400, "Problems parsing JSON") from None

    @property
    def repo(self) -> RepoState:
        key = f"{self.params.get('owner', '')}/{self.params.get('repo', '')}".lower()
        state = self.server.repos.get(key)
        if state is None:
            raise HTTPError(404, "Not Found")
        return state

    def url(self, path: str) -> str:
        return self.server.url + path

    def repo_url(self, suffix: str = "") -> str:
        return f"{self.server.url}/repos/{self.repo.full_name}{suffix}"


class GitHubServer:
    """The server. ``token`` None accepts anonymous requests; otherwise every request
    needs ``Authorization: token <t>`` or ``Bearer <t>`` (401 otherwise)."""

    def __init__(
        self,
        token: str | None = "ghs_testtoken0123456789",
        *,
        rate_limit: int = RATE_LIMIT,
        routes: Iterable[Route] = (),
    ) -> None:
        self.token = token
        self.rate_limit = rate_limit
        self.rate_used = 0
        self.rate_reset = int(time.time()) + RATE_WINDOW
        self.repos: dict[str, RepoState] = {}
        self.state: dict[str, Any] = {}
        self.requests: list[RecordedRequest] = []
        self.lock = threading.RLock()
        self._routes = list(routes)
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.url = ""

    # -- lifecycle --------------------------------------------------------------------------
    def start(self) -> GitHubServer:
        server = self

        class _Handler(_RequestHandler):
            owner = server

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._httpd.daemon_threads = True
        host, port = self._httpd.server_address[:2]
        self.url = f"http://{host!s}:{port}"
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> GitHubServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- state ------------------------------------------------------------------------------
    def add_repo(
        self, full_name: str, path: Path | str, *, default_branch: str | None = None
    ) -> RepoState:
        owner, name = full_name.split("/")
        path = Path(path)
        if default_branch is None:
            head = subprocess.run(
                ["git", "-C", str(path), "symbolic-ref", "--short", "HEAD"],
                capture_output=True,
                check=False,
            )
            default_branch = head.stdout.decode().strip() or "main"
        with self.lock:
            state = RepoState(owner, name, path, default_branch, id=1000 + len(self.repos))
            self.repos[full_name.lower()] = state
        return state

    def add_route(self, method: str, pattern: str, handler: Handler) -> None:
        self._routes.append(Route(method.upper(), re.compile(pattern), handler))

    @property
    def rate_remaining(self) -> int:
        return max(self.rate_limit - self.rate_used, 0)

    def count(self, method: str, path: str | None = None, *, status: int | None = None) -> int:
        """How many requests matched (``path`` compared without the query string)."""
        with self.lock:
            return sum(
                1
                for r in self.requests
                if r.method == method
                and (path is None or r.path == path)
                and (status is None or r.status == status)
            )

    # -- dispatch ---------------------------------------------------------------------------
    def find_route(self, method: str, path: str) -> tuple[Route, dict[str, str]] | None:
        for candidate in reversed([*ROUTES, *self._routes]):
            if candidate.method != method:
                continue
            m = candidate.pattern.fullmatch(path)
            if m:
                return candidate, {k: unquote(v) for k, v in m.groupdict().items() if v is not None}
        return None

    def check_auth(self, headers: Message) -> None:
        if self.token is None:
            return
        given = headers.get("Authorization", "")
        if not given:
            raise HTTPError(401, "Requires authentication")
        scheme, _, value = given.partition(" ")
        if scheme.lower() not in {"token", "bearer"} or value.strip() != self.token:
            raise HTTPError(401, "Bad credentials")


def _etag(payload: bytes) -> str:
    return 'W/"' + hashlib.sha256(payload).hexdigest()[:40] + '"'


def _strip_weak(tag: str) -> str:
    tag = tag.strip()
    return tag[2:] if tag.startswith("W/") else tag


class _RequestHandler(BaseHTTPRequestHandler):
    owner: GitHubServer
    protocol_version = "HTTP/1.1"
    server_version = "GitHub.com"

    def setup(self) -> None:
        super().setup()
        # headers and body go out as separate writes: without TCP_NODELAY every response
        # waits ~40 ms for the client's delayed ACK
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:  # quiet test output
        return

    def do_GET(self) -> None:
        self._handle("GET")

    def do_HEAD(self) -> None:
        self._handle("HEAD")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PATCH(self) -> None:
        self._handle("PATCH")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def _handle(self, method: str) -> None:
        server = self.owner
        parts = urlsplit(self.path)
        path = parts.path.rstrip("/") or "/"
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        counted = True
        try:
            server.check_auth(self.headers)
            found = server.find_route("GET" if method == "HEAD" else method, path)
            if found is None:
                raise HTTPError(404, "Not Found")
            rt, params = found
            if server.rate_remaining <= 0 and path != "/rate_limit":
                raise HTTPError(403, "API rate limit exceeded for installation.")
            req = Request(server, method, path, parse_qs(parts.query), self.headers, body, params)
            response = rt.handler(req)
        except HTTPError as err:
            response = Response(
                err.status, {"message": err.message, "documentation_url": DOCS, **err.extra}
            )
        except Exception as err:  # a handler bug: answer 500 rather than drop the socket
            response = Response(500, {"message": f"test server: {type(err).__name__}: {err}"})
        payload = b""
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "X-GitHub-Media-Type": "github.v3; format=json",
            "X-GitHub-Api-Version-Selected": "2022-11-28",
            "Vary": "Accept, Authorization, Cookie, X-GitHub-OTP",
        }
        if isinstance(response.body, bytes):
            payload = response.body
        elif response.body is not None:
            payload = json.dumps(response.body, indent=2).encode()
        status = response.status
        if method in {"GET", "HEAD"} and status == 200:
            etag = _etag(payload)
            headers["ETag"] = etag
            headers["Cache-Control"] = "private, max-age=60, s-maxage=60"
            wanted = self.headers.get("If-None-Match")
            if wanted and any(_strip_weak(t) == _strip_weak(etag) for t in wanted.split(",")):
                status, payload, counted = 304, b"", False
        if path == "/rate_limit":
            counted = False
        with server.lock:
            if counted and status != 401:
                server.rate_used += 1
            headers.update(
                {
                    "X-RateLimit-Limit": str(server.rate_limit),
                    "X-RateLimit-Remaining": str(server.rate_remaining),
                    "X-RateLimit-Used": str(server.rate_used),
                    "X-RateLimit-Reset": str(server.rate_reset),
                    "X-RateLimit-Resource": "core",
                }
            )
            server.requests.append(
                RecordedRequest(method, path, parts.query, status, dict(self.headers.items()))
            )
        headers.update(response.headers)
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(payload)) if status != 304 else "0")
        self.end_headers()
        if method != "HEAD" and status != 304:
            self.wfile.write(payload)


# -- helpers for handlers --------------------------------------------------------------------


def paginate(req: Request, items: list[Any]) -> Response:
    """``per_page`` (default 30, max 100) / ``page`` with a ``Link`` header like GitHub's."""
    try:
        per_page = min(max(int(req.arg("per_page", "30") or 30), 1), 100)
        page = max(int(req.arg("page", "1") or 1), 1)
    except ValueError:
        raise HTTPError(400, "Invalid pagination parameter") from None
    last = max((len(items) + per_page - 1) // per_page, 1)
    chunk = items[(page - 1) * per_page : page * per_page]
    links = []

    def link(n: int, rel: str) -> str:
        query = {k: v[-1] for k, v in req.query.items()}
        query.update(per_page=str(per_page), page=str(n))
        text = "&".join(f"{k}={quote(v, safe='')}" for k, v in query.items())
        return f'<{req.url(req.path)}?{text}>; rel="{rel}"'

    if page < last:
        links += [link(page + 1, "next"), link(last, "last")]
    if page > 1:
        links += [link(1, "first"), link(page - 1, "prev")]
    return Response(200, chunk, {"Link": ", ".join(links)} if links else {})


def _iso(ts: str) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(ts)))


def _b64(data: bytes) -> str:
    """Base64 with a newline every 60 characters, as the contents and blobs APIs send it."""
    text = base64.b64encode(data).decode()
    return "".join(text[i : i + 60] + "\n" for i in range(0, len(text), 60))


_COMMIT_FORMAT = "%H%x00%T%x00%P%x00%an%x00%ae%x00%at%x00%cn%x00%ce%x00%ct%x00%B"


def git_commit_data(req: Request, sha: str) -> dict[str, Any]:
    """A git commit object (``GET /git/commits/{sha}`` shape)."""
    repo = req.repo
    out = repo.git("show", "-s", f"--format={_COMMIT_FORMAT}", sha).decode("utf-8", "replace")
    full, tree, parents, an, ae, at, cn, ce, ct, message = out.split("\x00", 9)
    return {
        "sha": full,
        "node_id": f"C_{full[:20]}",
        "url": req.repo_url(f"/git/commits/{full}"),
        "html_url": f"{req.server.url}/{repo.full_name}/commit/{full}",
        "author": {"name": an, "email": ae, "date": _iso(at)},
        "committer": {"name": cn, "email": ce, "date": _iso(ct)},
        "message": message.rstrip("\n"),
        "tree": {"sha": tree, "url": req.repo_url(f"/git/trees/{tree}")},
        "parents": [
            {
                "sha": p,
                "url": req.repo_url(f"/git/commits/{p}"),
                "html_url": f"{req.server.url}/{repo.full_name}/commit/{p}",
            }
            for p in parents.split()
        ],
        "verification": {
            "verified": False,
            "reason": "unsigned",
            "signature": None,
            "payload": None,
        },
    }


def rest_commit_data(req: Request, sha: str) -> dict[str, Any]:
    """A commit as the commits API lists it (``GET /commits`` and ``/commits/{ref}``)."""
    git = git_commit_data(req, sha)
    full = git["sha"]
    return {
        "sha": full,
        "node_id": git["node_id"],
        "commit": {
            "author": git["author"],
            "committer": git["committer"],
            "message": git["message"],
            "tree": git["tree"],
            "url": git["url"],
            "comment_count": 0,
            "verification": git["verification"],
        },
        "url": req.repo_url(f"/commits/{full}"),
        "html_url": git["html_url"],
        "comments_url": req.repo_url(f"/commits/{full}/comments"),
        "author": None,
        "committer": None,
        "parents": [
            {
                "sha": p["sha"],
                "url": req.repo_url(f"/commits/{p['sha']}"),
                "html_url": p["html_url"],
            }
            for p in git["parents"]
        ],
    }


def ref_data(req: Request, full_ref: str) -> dict[str, Any]:
    repo = req.repo
    sha = repo.git("rev-parse", full_ref).decode().strip()
    kind = repo.git("cat-file", "-t", sha).decode().strip()
    short = full_ref.removeprefix("refs/")
    return {
        "ref": full_ref,
        "node_id": f"REF_{hashlib.sha1(full_ref.encode()).hexdigest()[:16]}",
        "url": req.repo_url(f"/git/refs/{short}"),
        "object": {
            "type": kind,
            "sha": sha,
            "url": req.repo_url(f"/git/{'tags' if kind == 'tag' else 'commits'}/{sha}"),
        },
    }


def _list_refs(repo: RepoState, prefix: str) -> list[str]:
    out = repo.git("for-each-ref", "--format=%(refname)", f"refs/{prefix}".rstrip("/"))
    return [line for line in out.decode().splitlines() if line]


def content_data(
    req: Request, path: str, sha: str, size: int, kind: str, ref: str
) -> dict[str, Any]:
    repo = req.repo
    name = path.rsplit("/", 1)[-1]
    api = req.repo_url(f"/contents/{quote(path)}?ref={quote(ref, safe='')}")
    git_url = req.repo_url(f"/git/{'trees' if kind == 'dir' else 'blobs'}/{sha}")
    html = f"{req.server.url}/{repo.full_name}/{'tree' if kind == 'dir' else 'blob'}/{ref}/{path}"
    return {
        "type": kind,
        "size": size,
        "name": name,
        "path": path,
        "sha": sha,
        "url": api,
        "git_url": git_url,
        "html_url": html,
        "download_url": (
            None if kind == "dir" else f"{req.server.url}/raw/{repo.full_name}/{ref}/{path}"
        ),
        "_links": {"self": api, "git": git_url, "html": html},
    }


def _ls_tree(
    repo: RepoState, treeish: str, *options: str, paths: tuple[str, ...] = ()
) -> Iterator[tuple[str, str, str, int | None, str]]:
    """(mode, type, sha, size, path) entries of ``git ls-tree -l``."""
    out = repo.git("ls-tree", "-l", "-z", *options, treeish, "--", *paths)
    for entry in out.split(b"\0"):
        if not entry:
            continue
        meta, _, path = entry.partition(b"\t")
        mode, kind, sha, size = meta.decode().split()
        yield mode, kind, sha, (None if size == "-" else int(size)), path.decode()


# -- built-in endpoints ----------------------------------------------------------------------

REPO = r"/repos/(?P<owner>[^/]+)/(?P<repo>[^/]+)"


@route("GET", r"/rate_limit")
def get_rate_limit(req: Request) -> Response:
    s = req.server
    core = {
        "limit": s.rate_limit,
        "remaining": s.rate_remaining,
        "reset": s.rate_reset,
        "used": s.rate_used,
        "resource": "core",
    }
    return Response(200, {"resources": {"core": core}, "rate": core})


@route("GET", REPO)
def get_repo(req: Request) -> Response:
    repo = req.repo
    owner = {
        "login": repo.owner,
        "id": 1,
        "node_id": "O_1",
        "type": "Organization",
        "url": req.url(f"/users/{repo.owner}"),
        "html_url": f"{req.server.url}/{repo.owner}",
        "site_admin": False,
    }
    return Response(
        200,
        {
            "id": repo.id,
            "node_id": f"R_{repo.id}",
            "name": repo.name,
            "full_name": repo.full_name,
            "private": repo.private,
            "visibility": "private" if repo.private else "public",
            "owner": owner,
            "html_url": f"{req.server.url}/{repo.full_name}",
            "description": None,
            "fork": False,
            "url": req.repo_url(),
            "git_url": f"git://127.0.0.1/{repo.full_name}.git",
            "clone_url": f"{req.server.url}/{repo.full_name}.git",
            "default_branch": repo.default_branch,
            "archived": False,
            "disabled": False,
            "permissions": {
                "admin": False,
                "maintain": False,
                "push": True,
                "triage": True,
                "pull": True,
            },
            "created_at": "2024-01-01T00:00:00Z",
            "updated_at": "2024-01-01T00:00:00Z",
            "pushed_at": "2024-01-01T00:00:00Z",
        },
    )


@route("GET", REPO + r"/branches/(?P<branch>.+)")
def get_branch(req: Request) -> Response:
    branch = req.params["branch"]
    sha = req.repo.resolve(f"refs/heads/{branch}")
    if sha is None:
        raise HTTPError(404, "Branch not found")
    return Response(
        200,
        {
            "name": branch,
            "commit": rest_commit_data(req, sha),
            "protected": False,
            "_links": {"self": req.repo_url(f"/branches/{branch}"), "html": req.server.url},
        },
    )


@route("GET", REPO + r"/git/ref/(?P<ref>.+)")
def get_git_ref(req: Request) -> Response:
    ref = req.params["ref"]
    if not ref.startswith(("heads/", "tags/")) or not req.repo.resolve(f"refs/{ref}", "object"):
        raise HTTPError(404, "Not Found")
    return Response(200, ref_data(req, f"refs/{ref}"))


@route("GET", REPO + r"/git/refs(?:/(?P<prefix>.+))?")
def list_git_refs(req: Request) -> Response:
    """``/git/refs/heads/main`` (GitHub's older single-ref form) answers one object when it
    names a ref exactly, else the list of refs starting with the prefix."""
    prefix = req.params.get("prefix", "")
    refs = _list_refs(req.repo, prefix)
    if prefix and f"refs/{prefix}" in refs:
        return Response(200, ref_data(req, f"refs/{prefix}"))
    refs = [r for r in refs if r.startswith(f"refs/{prefix}")]
    if prefix and not refs:
        raise HTTPError(404, "Not Found")
    return paginate(req, [ref_data(req, r) for r in refs])


@route("GET", REPO + r"/git/commits/(?P<sha>[0-9a-fA-F]{4,40})")
def get_git_commit(req: Request) -> Response:
    sha = req.repo.resolve(req.params["sha"])
    if sha is None:
        raise HTTPError(404, "Not Found")
    return Response(200, git_commit_data(req, sha))


@route("GET", REPO + r"/git/tags/(?P<sha>[0-9a-fA-F]{40})")
def get_git_tag(req: Request) -> Response:
    repo = req.repo
    sha = req.params["sha"]
    if repo.git("cat-file", "-t", sha, check=False).decode().strip() != "tag":
        raise HTTPError(404, "Not Found")
    raw = repo.git("cat-file", "tag", sha).decode("utf-8", "replace")
    head, _, message = raw.partition("\n\n")
    fields = dict(line.split(" ", 1) for line in head.splitlines())
    tagger = fields.get("tagger", "? <?> 0 +0000")
    tname, _, rest = tagger.partition(" <")
    temail, _, tdate = rest.partition("> ")
    return Response(
        200,
        {
            "node_id": f"TAG_{sha[:16]}",
            "tag": fields.get("tag", ""),
            "sha": sha,
            "url": req.repo_url(f"/git/tags/{sha}"),
            "message": message,
            "tagger": {"name": tname, "email": temail, "date": _iso(tdate.split()[0])},
            "object": {
                "type": fields.get("type", "commit"),
                "sha": fields["object"],
                "url": req.repo_url(f"/git/commits/{fields['object']}"),
            },
            "verification": {
                "verified": False,
                "reason": "unsigned",
                "signature": None,
                "payload": None,
            },
        },
    )


@route("GET", REPO + r"/git/trees/(?P<sha>.+)")
def get_git_tree(req: Request) -> Response:
    """Tree-ish (tree sha, commit sha or ref name); ``recursive`` lists every level."""
    repo = req.repo
    tree = repo.resolve(req.params["sha"], "tree")
    if tree is None:
        raise HTTPError(404, "Not Found")
    recursive = req.arg("recursive") not in (None, "", "0", "false")
    entries = []
    for mode, kind, sha, size, path in _ls_tree(repo, tree, *(["-r", "-t"] if recursive else [])):
        item: dict[str, Any] = {"path": path, "mode": mode, "type": kind, "sha": sha}
        if kind == "blob":
            item["size"] = size
            item["url"] = req.repo_url(f"/git/blobs/{sha}")
        elif kind == "tree":
            item["url"] = req.repo_url(f"/git/trees/{sha}")
        entries.append(item)
    return Response(
        200,
        {
            "sha": tree,
            "url": req.repo_url(f"/git/trees/{tree}"),
            "tree": entries,
            "truncated": False,
        },
    )


@route("GET", REPO + r"/git/blobs/(?P<sha>[0-9a-fA-F]{40})")
def get_git_blob(req: Request) -> Response:
    repo = req.repo
    sha = req.params["sha"]
    if repo.git("cat-file", "-t", sha, check=False).decode().strip() != "blob":
        raise HTTPError(404, "Not Found")
    data = repo.git("cat-file", "blob", sha)
    return Response(
        200,
        {
            "sha": sha,
            "node_id": f"B_{sha[:16]}",
            "size": len(data),
            "url": req.repo_url(f"/git/blobs/{sha}"),
            "content": _b64(data),
            "encoding": "base64",
        },
    )


@route("GET", REPO + r"/commits")
def list_commits(req: Request) -> Response:
    """``sha`` (branch, tag or sha; default branch), ``path``, ``per_page``/``page``."""
    repo = req.repo
    start = req.arg("sha") or repo.default_branch
    head = repo.resolve(start)
    if head is None:
        raise HTTPError(404, f"No commit found for SHA: {start}")
    args = ["log", "--format=%H", head]
    path = req.arg("path")
    if path:
        args += ["--", path]
    shas = repo.git(*args).decode().split()
    return paginate(req, [rest_commit_data(req, s) for s in shas[:300]])


@route("GET", REPO + r"/commits/(?P<ref>.+)")
def get_commit(req: Request) -> Response:
    sha = req.repo.resolve(req.params["ref"])
    if sha is None:
        raise HTTPError(422, f"No commit found for SHA: {req.params['ref']}")
    return Response(200, rest_commit_data(req, sha))


@route("GET", REPO + r"/contents(?:/(?P<path>.*))?")
def get_contents(req: Request) -> Response:
    repo = req.repo
    ref = req.arg("ref") or repo.default_branch
    commit = repo.resolve(ref)
    if commit is None:
        raise HTTPError(404, f"No commit found for the ref {ref}")
    path = (req.params.get("path") or "").strip("/")
    if not path:
        items = [
            content_data(req, p, s, z or 0, "dir" if k == "tree" else "file", ref)
            for _, k, s, z, p in _ls_tree(repo, commit)
        ]
        return Response(200, items)
    found = list(_ls_tree(repo, commit, paths=(path,)))
    exact = [e for e in found if e[4] == path]
    if not exact:
        raise HTTPError(404, "Not Found")
    _, kind, sha, size, _ = exact[0]
    if kind == "tree":
        children = [
            content_data(req, p, s, z or 0, "dir" if k == "tree" else "file", ref)
            for _, k, s, z, p in _ls_tree(repo, commit, paths=(path + "/",))
        ]
        return Response(200, children)
    data = repo.git("cat-file", "blob", sha)
    item = content_data(req, path, sha, size or 0, "file", ref)
    item.update(encoding="base64", content=_b64(data))
    return Response(200, item)


# -- git helpers for tests -------------------------------------------------------------------

GIT_ENV = {
    "GIT_AUTHOR_NAME": "Test Author",
    "GIT_AUTHOR_EMAIL": "author@example.invalid",
    "GIT_COMMITTER_NAME": "Test Author",
    "GIT_COMMITTER_EMAIL": "author@example.invalid",
    "GIT_CONFIG_NOSYSTEM": "1",
    "HOME": "/nonexistent",
}


def git(path: Path, *args: str, env: dict[str, str] | None = None) -> str:
    """Run git in ``path`` with a fixed identity and no user/system config."""
    import os

    full_env = {**os.environ, **GIT_ENV, **(env or {})}
    proc = subprocess.run(
        ["git", "-C", str(path), *args], capture_output=True, check=False, env=full_env, timeout=60
    )
    if proc.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)}: {proc.stderr.decode().strip()}")
    return proc.stdout.decode()


def init_repo(path: Path, *, branch: str = "main", message: str = "initial") -> str:
    """``git init`` ``path`` (files already in it), commit everything; returns the sha."""
    git(path, "init", "-q", "-b", branch)
    return commit_all(path, message)


def commit_all(path: Path, message: str, *, author: tuple[str, str] | None = None) -> str:
    """Stage everything and commit (as ``author`` = (name, email) if given); returns the sha."""
    env = {}
    if author:
        env = {
            "GIT_AUTHOR_NAME": author[0],
            "GIT_AUTHOR_EMAIL": author[1],
            "GIT_COMMITTER_NAME": author[0],
            "GIT_COMMITTER_EMAIL": author[1],
        }
    git(path, "add", "-A")
    git(path, "commit", "-q", "--allow-empty", "-m", message, env=env)
    return git(path, "rev-parse", "HEAD").strip()
