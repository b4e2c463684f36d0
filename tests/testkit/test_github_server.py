"""Self-tests of the local GitHub REST server: shapes, auth, ETags, rate limit, extension."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

import testkit.github_records as github_records
from testkit.github_server import (
    REPO,
    ROUTES,
    GitHubServer,
    HTTPError,
    Request,
    Response,
    commit_all,
    init_repo,
    route,
)

TOKEN = "ghs_selftest0123456789"


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    (root / "dir").mkdir(parents=True)
    (root / "dir" / "a.yaml").write_text("a: 1\n")
    (root / "top.txt").write_text("hello\n")
    init_repo(root)
    (root / "dir" / "a.yaml").write_text("a: 2\n")
    commit_all(root, "second")
    (root / "top.txt").write_text("bye\n")
    commit_all(root, "third")
    return root


@pytest.fixture
def server(repo: Path) -> Iterator[GitHubServer]:
    with GitHubServer(token=TOKEN) as gh:
        gh.add_repo("acme/repo", repo)
        yield gh


def get(server: GitHubServer, path: str, **headers: str) -> requests.Response:
    headers.setdefault("Authorization", f"Bearer {TOKEN}")
    return requests.get(server.url + path, headers=headers, timeout=10)


def test_auth_is_required_and_errors_are_shaped_like_githubs(server: GitHubServer) -> None:
    anonymous = requests.get(server.url + "/repos/acme/repo", timeout=10)
    assert anonymous.status_code == 401
    assert anonymous.json()["message"] == "Requires authentication"
    assert "documentation_url" in anonymous.json()
    wrong = get(server, "/repos/acme/repo", Authorization="token nope")
    assert (wrong.status_code, wrong.json()["message"]) == (401, "Bad credentials")
    assert server.rate_used == 0  # failed authentication is not counted
    ok = get(server, "/repos/acme/repo", Authorization=f"token {TOKEN}")
    assert ok.status_code == 200
    body = ok.json()
    assert body["full_name"] == "acme/repo" and body["default_branch"] == "main"
    assert body["url"] == server.url + "/repos/acme/repo"
    missing = get(server, "/repos/acme/other")
    assert (missing.status_code, missing.json()["message"]) == (404, "Not Found")


def test_etag_and_304_spend_no_rate_limit(server: GitHubServer) -> None:
    first = get(server, "/repos/acme/repo/git/refs/heads/main")
    assert first.status_code == 200
    etag = first.headers["ETag"]
    assert etag.startswith('W/"')
    assert first.headers["X-RateLimit-Remaining"] == "4999"
    again = get(server, "/repos/acme/repo/git/refs/heads/main", **{"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b""
    assert again.headers["X-RateLimit-Remaining"] == "4999"
    other = get(server, "/repos/acme/repo/git/refs/heads/main", **{"If-None-Match": 'W/"x"'})
    assert other.status_code == 200 and other.headers["X-RateLimit-Remaining"] == "4998"
    limits = get(server, "/rate_limit").json()
    assert limits["resources"]["core"]["remaining"] == 4998


def test_rate_limit_exhaustion(repo: Path) -> None:
    with GitHubServer(token=TOKEN, rate_limit=2) as gh:
        gh.add_repo("acme/repo", repo)
        assert get(gh, "/repos/acme/repo").status_code == 200
        assert get(gh, "/repos/acme/repo").status_code == 200
        spent = get(gh, "/repos/acme/repo")
        assert spent.status_code == 403
        assert "rate limit exceeded" in spent.json()["message"]
        assert spent.headers["X-RateLimit-Remaining"] == "0"


def test_contents_files_and_directories(server: GitHubServer, repo: Path) -> None:
    file = get(server, "/repos/acme/repo/contents/dir/a.yaml").json()
    assert file["type"] == "file" and file["encoding"] == "base64"
    assert base64.b64decode(file["content"]) == b"a: 2\n"
    old = get(server, "/repos/acme/repo/contents/dir/a.yaml?ref=HEAD~2").json()
    assert base64.b64decode(old["content"]) == b"a: 1\n"
    listing = get(server, "/repos/acme/repo/contents/dir").json()
    assert [(e["name"], e["type"]) for e in listing] == [("a.yaml", "file")]
    root = get(server, "/repos/acme/repo/contents").json()
    assert sorted((e["name"], e["type"]) for e in root) == [("dir", "dir"), ("top.txt", "file")]
    assert get(server, "/repos/acme/repo/contents/nope").status_code == 404


def test_commits_by_path_with_pagination(server: GitHubServer) -> None:
    page = get(server, "/repos/acme/repo/commits?path=dir/a.yaml&per_page=1")
    assert page.status_code == 200
    assert [c["commit"]["message"] for c in page.json()] == ["second"]
    assert 'rel="next"' in page.headers["Link"]
    next_url = page.headers["Link"].split(">")[0].lstrip("<")
    nxt = requests.get(next_url, headers={"Authorization": f"token {TOKEN}"}, timeout=10)
    assert [c["commit"]["message"] for c in nxt.json()] == ["initial"]
    everything = get(server, "/repos/acme/repo/commits").json()
    assert [c["commit"]["message"] for c in everything] == ["third", "second", "initial"]
    tree = get(server, f"/repos/acme/repo/git/trees/{everything[0]['sha']}?recursive=1").json()
    assert sorted(e["path"] for e in tree["tree"]) == ["dir", "dir/a.yaml", "top.txt"]
    assert tree["truncated"] is False


def test_routes_can_be_added_overridden_and_registered(server: GitHubServer) -> None:
    def teapot(req: Request) -> Response:
        return Response(418, {"message": f"teapot for {req.repo.full_name}"})

    server.add_route("GET", REPO + r"/teapot", teapot)
    assert get(server, "/repos/acme/repo/teapot").status_code == 418
    server.add_route("GET", REPO, lambda req: Response(200, {"overridden": True}))
    assert get(server, "/repos/acme/repo").json() == {"overridden": True}

    @route("POST", REPO + r"/things")
    def create(req: Request) -> Response:
        body = req.json()
        if "name" not in body:
            raise HTTPError(422, "Validation Failed", errors=[{"field": "name"}])
        req.repo.extra.setdefault("things", []).append(body["name"])
        return Response(201, {"name": body["name"]})

    try:
        url = server.url + "/repos/acme/repo/things"
        auth = {"Authorization": f"token {TOKEN}"}
        made = requests.post(url, json={"name": "x"}, headers=auth, timeout=10)
        assert made.status_code == 201
        bad = requests.post(url, json={}, headers=auth, timeout=10)
        assert bad.status_code == 422 and bad.json()["errors"] == [{"field": "name"}]
        assert server.repos["acme/repo"].extra["things"] == ["x"]
    finally:
        ROUTES.pop()


def test_a_handler_bug_answers_500(server: GitHubServer) -> None:
    def broken(req: Request) -> Response:
        raise RuntimeError("boom")

    server.add_route("GET", r"/broken", broken)
    answer = get(server, "/broken")
    assert answer.status_code == 500 and "boom" in answer.json()["message"]


@pytest.mark.parametrize(
    ("path", "body", "message"),
    [
        ("/deployments", {"ref": ""}, 'Invalid request.\n\n"ref" wasn\'t supplied.'),
        ("/releases", {"name": "v1"}, "Validation Failed: tag_name is missing"),
        ("/releases/generate-notes", {"tag_name": 7}, "Validation Failed: tag_name is missing"),
    ],
)
def test_a_missing_required_field_answers_422(
    server: GitHubServer, path: str, body: dict[str, object], message: str
) -> None:
    assert github_records.DOCS  # registers the write endpoints
    auth = {"Authorization": f"Bearer {TOKEN}"}
    url = f"{server.url}/repos/acme/repo{path}"
    answer = requests.post(url, json=body, headers=auth, timeout=10)
    assert (answer.status_code, answer.json()["message"]) == (422, message)
