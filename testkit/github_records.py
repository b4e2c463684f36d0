"""GitHub REST endpoints for promotion records and reverts, added to the local test server.

Importing this module registers (with :func:`testkit.github_server.route`) the
endpoints ``promote.github`` and ``promote.gitrevert`` call, shaped on GitHub's REST
documentation (https://docs.github.com/en/rest):

=======  =================================================  ==============================
POST     /repos/{o}/{r}/deployments                         201; 422 unknown ref
GET      /repos/{o}/{r}/deployments[/{id}]                  newest first
POST     /repos/{o}/{r}/deployments/{id}/statuses           201; 422 bad state
GET      /repos/{o}/{r}/deployments/{id}/statuses           newest first
POST     /repos/{o}/{r}/git/refs                            201; 422 "Reference already exists"
PATCH    /repos/{o}/{r}/git/refs/{ref}                      200; 422 "Update is not a fast forward"
POST     /repos/{o}/{r}/git/blobs | git/trees | git/commits 201 (real git objects)
GET      /repos/{o}/{r}/commits/{ref}                       + ``files`` with ``patch``, ``stats``
POST     /repos/{o}/{r}/releases/generate-notes             200 ``{name, body}`` from git log
POST     /repos/{o}/{r}/releases                            201; 422 ``already_exists``
GET      /repos/{o}/{r}/releases/tags/{tag}                 200; 404
=======  =================================================  ==============================

Refs, blobs, trees and commits are written into the repository's real git object store
(``git update-ref``, ``hash-object``, ``update-index`` on a private index, ``commit-tree``),
so the built-in read endpoints and plain git see them. Deployments, statuses and releases
live in ``RepoState.extra`` (``"deployments"``, ``"releases"``); tests assert on them.

Token permissions: ``set_permissions(server, deployments="read")`` makes writes needing
``deployments: write`` answer ``403 {"message": "Resource not accessible by integration"}``
as GitHub does for a ``GITHUB_TOKEN`` without that scope (likewise ``contents``). Without
a call every permission is ``write``.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from testkit.github_server import (
    REPO,
    GitHubServer,
    HTTPError,
    Request,
    Response,
    git_commit_data,
    ref_data,
    rest_commit_data,
    route,
)

DOCS = "https://docs.github.com/rest"
STATES = ("error", "failure", "inactive", "in_progress", "queued", "pending", "success")
BOT = {"login": "github-actions[bot]", "id": 41898282, "type": "Bot", "site_admin": False}
_ids = itertools.count(1000)


def set_permissions(server: GitHubServer, **scopes: str) -> None:
    """``set_permissions(server, deployments="read", contents="write")`` (default write)."""
    with server.lock:
        server.state.setdefault("permissions", {}).update(scopes)


def _need(req: Request, scope: str) -> None:
    granted = req.server.state.get("permissions", {}).get(scope, "write")
    if granted != "write":
        raise HTTPError(403, "Resource not accessible by integration")


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _state(req: Request, key: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = req.repo.extra.setdefault(key, [])
    return items


def _text(body: dict[str, Any], key: str, message: str) -> str:
    """``body[key]``, a non-empty string, else GitHub's 422 ``message``."""
    value = body.get(key)
    if not isinstance(value, str) or not value:
        raise HTTPError(422, message)
    return value


def _user(req: Request) -> dict[str, Any]:
    return {**BOT, "url": req.url("/users/github-actions%5Bbot%5D")}


# -- deployments -----------------------------------------------------------------------------
@route("POST", REPO + r"/deployments")
def create_deployment(req: Request) -> Response:
    _need(req, "deployments")
    body = req.json()
    ref = _text(body, "ref", 'Invalid request.\n\n"ref" wasn\'t supplied.')
    sha = req.repo.resolve(ref)
    if sha is None:
        raise HTTPError(422, f"No ref found for: {ref}")
    payload = body.get("payload", {})
    environment = body.get("environment") or "production"
    with req.server.lock:
        dep_id = next(_ids)
        url = req.repo_url(f"/deployments/{dep_id}")
        deployment = {
            "url": url,
            "id": dep_id,
            "node_id": f"DE_{dep_id}",
            "sha": sha,
            "ref": ref,
            "task": body.get("task", "deploy"),
            "payload": payload,
            "original_environment": environment,
            "environment": environment,
            "description": body.get("description"),
            "creator": _user(req),
            "created_at": _now(),
            "updated_at": _now(),
            "statuses_url": f"{url}/statuses",
            "repository_url": req.repo_url(),
            "transient_environment": bool(body.get("transient_environment", False)),
            "production_environment": bool(
                body.get("production_environment", environment == "production")
            ),
            # kept for assertions, not part of GitHub's response
            "_request": body,
            "_statuses": [],
        }
        _state(req, "deployments").append(deployment)
    return Response(201, _public(deployment))


def _public(item: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in item.items() if not k.startswith("_")}


def _deployment(req: Request) -> dict[str, Any]:
    wanted = int(req.params["id"])
    for item in _state(req, "deployments"):
        if item["id"] == wanted:
            return item
    raise HTTPError(404, "Not Found")


@route("GET", REPO + r"/deployments")
def list_deployments(req: Request) -> Response:
    items = [_public(d) for d in reversed(_state(req, "deployments"))]
    env = req.arg("environment")
    if env:
        items = [d for d in items if d["environment"] == env]
    return Response(200, items)


@route("GET", REPO + r"/deployments/(?P<id>[0-9]+)")
def get_deployment(req: Request) -> Response:
    return Response(200, _public(_deployment(req)))


@route("POST", REPO + r"/deployments/(?P<id>[0-9]+)/statuses")
def create_deployment_status(req: Request) -> Response:
    _need(req, "deployments")
    deployment = _deployment(req)
    body = req.json()
    state = body.get("state")
    if state not in STATES:
        raise HTTPError(422, f"Validation Failed: state {state!r} is not included in the list")
    description = body.get("description") or ""
    if len(description) > 140:
        raise HTTPError(
            422, "Validation Failed: description is too long (maximum is 140 characters)"
        )
    with req.server.lock:
        status_id = next(_ids)
        status = {
            "url": f"{deployment['url']}/statuses/{status_id}",
            "id": status_id,
            "node_id": f"DES_{status_id}",
            "state": state,
            "creator": _user(req),
            "description": description,
            "environment": body.get("environment") or deployment["environment"],
            "target_url": body.get("log_url") or body.get("target_url") or "",
            "log_url": body.get("log_url") or body.get("target_url") or "",
            "environment_url": body.get("environment_url") or "",
            "created_at": _now(),
            "updated_at": _now(),
            "deployment_url": deployment["url"],
            "repository_url": req.repo_url(),
            "_request": body,
        }
        deployment["_statuses"].append(status)
    return Response(201, _public(status))


@route("GET", REPO + r"/deployments/(?P<id>[0-9]+)/statuses")
def list_deployment_statuses(req: Request) -> Response:
    return Response(200, [_public(s) for s in reversed(_deployment(req)["_statuses"])])


# -- git refs and objects --------------------------------------------------------------------
@route("POST", REPO + r"/git/refs")
def create_ref(req: Request) -> Response:
    _need(req, "contents")
    body = req.json()
    ref, sha = body.get("ref", ""), body.get("sha", "")
    if not isinstance(ref, str) or not ref.startswith("refs/") or ref.count("/") < 2:
        raise HTTPError(422, "Reference name must start with 'refs/' and have at least two slashes")
    repo = req.repo
    if not isinstance(sha, str) or repo.resolve(sha, "object") is None:
        raise HTTPError(422, "Object does not exist")
    with req.server.lock:
        if repo.resolve(ref, "object") is not None:
            raise HTTPError(422, "Reference already exists")
        repo.git("update-ref", ref, sha, "")
    return Response(201, ref_data(req, ref))


@route("PATCH", REPO + r"/git/refs/(?P<ref>.+)")
def update_ref(req: Request) -> Response:
    _need(req, "contents")
    body = req.json()
    ref = f"refs/{req.params['ref']}"
    sha = body.get("sha", "")
    repo = req.repo
    with req.server.lock:
        old = repo.resolve(ref)
        if old is None:
            raise HTTPError(422, "Reference does not exist")
        if not isinstance(sha, str) or repo.resolve(sha) is None:
            raise HTTPError(422, "Object does not exist")
        forward = (
            subprocess.run(
                ["git", "-C", str(repo.path), "merge-base", "--is-ancestor", old, sha],
                capture_output=True,
                check=False,
            ).returncode
            == 0
        )
        if not forward and not body.get("force"):
            raise HTTPError(422, "Update is not a fast forward")
        repo.git("update-ref", ref, sha, old)
    return Response(200, ref_data(req, ref))


@route("POST", REPO + r"/git/blobs")
def create_blob(req: Request) -> Response:
    _need(req, "contents")
    import base64

    body = req.json()
    content = body.get("content")
    if not isinstance(content, str):
        raise HTTPError(422, 'Invalid request.\n\n"content" wasn\'t supplied.')
    data = base64.b64decode(content) if body.get("encoding") == "base64" else content.encode()
    sha = req.repo.git("hash-object", "-w", "--stdin", input=data).decode().strip()
    return Response(201, {"url": req.repo_url(f"/git/blobs/{sha}"), "sha": sha})


@route("POST", REPO + r"/git/trees")
def create_tree(req: Request) -> Response:
    _need(req, "contents")
    body = req.json()
    repo = req.repo
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "GIT_INDEX_FILE": str(Path(tmp) / "index")}

        def git(*args: str, data: bytes | None = None) -> str:
            proc = subprocess.run(
                ["git", "-C", str(repo.path), *args],
                input=data,
                capture_output=True,
                env=env,
                check=False,
            )
            if proc.returncode != 0:
                raise HTTPError(422, proc.stderr.decode().strip() or "tree error")
            return proc.stdout.decode().strip()

        base = body.get("base_tree")
        if base:
            git("read-tree", base)
        for entry in body.get("tree") or []:
            path, mode = entry.get("path"), entry.get("mode", "100644")
            sha = entry.get("sha")
            if sha is None and "content" in entry:
                sha = git("hash-object", "-w", "--stdin", data=str(entry["content"]).encode())
            if sha is None:
                git("update-index", "--force-remove", "--", path)
            else:
                git("update-index", "--add", "--cacheinfo", f"{mode},{sha},{path}")
        tree = git("write-tree")
    return Response(201, {"sha": tree, "url": req.repo_url(f"/git/trees/{tree}"), "tree": []})


@route("POST", REPO + r"/git/commits")
def create_commit(req: Request) -> Response:
    _need(req, "contents")
    body = req.json()
    repo = req.repo
    args = ["commit-tree", str(body.get("tree", ""))]
    for parent in body.get("parents") or []:
        args += ["-p", str(parent)]
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "github-actions[bot]",
        "GIT_AUTHOR_EMAIL": "41898282+github-actions[bot]@users.noreply.github.com",
        "GIT_COMMITTER_NAME": "GitHub",
        "GIT_COMMITTER_EMAIL": "noreply@github.com",
    }
    proc = subprocess.run(
        ["git", "-C", str(repo.path), *args],
        input=str(body.get("message", "")).encode(),
        capture_output=True,
        env=env,
        check=False,
    )
    if proc.returncode != 0:
        raise HTTPError(422, proc.stderr.decode().strip() or "commit error")
    sha = proc.stdout.decode().strip()
    return Response(201, git_commit_data(req, sha))


@route("GET", REPO + r"/commits/(?P<ref>.+)")
def get_commit_with_files(req: Request) -> Response:
    """The single-commit endpoint with ``files`` (``patch`` with 3 lines of context)."""
    repo = req.repo
    sha = repo.resolve(req.params["ref"])
    if sha is None:
        raise HTTPError(422, f"No commit found for SHA: {req.params['ref']}")
    data = rest_commit_data(req, sha)
    parents = [p["sha"] for p in data["parents"]]
    base = parents[0] if parents else "4b825dc642cb6eb9a060e54bf8d69288fbee4904"  # empty tree
    files = []
    total_add = total_del = 0
    numstat = repo.git("diff", "--numstat", "--no-renames", base, sha).decode().splitlines()
    for line in numstat:
        added, deleted, path = line.split("\t", 2)
        diff = repo.git("diff", "--no-color", "--no-renames", base, sha, "--", path).decode()
        patch = diff[diff.index("@@") :] if "@@" in diff else ""
        status = "modified"
        if "\nnew file mode" in diff:
            status = "added"
        elif "\ndeleted file mode" in diff:
            status = "removed"
        blob = repo.git("rev-parse", f"{sha}:{path}", check=False).decode().strip()
        files.append(
            {
                "sha": blob or None,
                "filename": path,
                "status": status,
                "additions": int(added),
                "deletions": int(deleted),
                "changes": int(added) + int(deleted),
                "blob_url": f"{req.server.url}/{repo.full_name}/blob/{sha}/{path}",
                "raw_url": f"{req.server.url}/{repo.full_name}/raw/{sha}/{path}",
                "contents_url": req.repo_url(f"/contents/{path}?ref={sha}"),
                "patch": patch.rstrip("\n"),
            }
        )
        total_add, total_del = total_add + int(added), total_del + int(deleted)
    data["files"] = files
    data["stats"] = {"total": total_add + total_del, "additions": total_add, "deletions": total_del}
    return Response(200, data)


# -- releases --------------------------------------------------------------------------------
def _changelog(req: Request, tag: str, target: str, previous: str | None) -> str:
    repo = req.repo
    head = repo.resolve(f"refs/tags/{tag}") or repo.resolve(target)
    if head is None:
        raise HTTPError(422, "Validation Failed: target_commitish is invalid")
    span = f"{previous}..{head}" if previous else head
    lines = repo.git("log", "--no-merges", "--format=%s%x00%an%x00%H", span).decode().splitlines()
    body = "## What's Changed\n"
    for line in lines:
        subject, author, sha = line.split("\x00")
        body += f"* {subject} by @{author.replace(' ', '-')} in {sha[:7]}\n"
    compare = f"{previous}...{tag}" if previous else f"commits/{tag}"
    body += f"\n\n**Full Changelog**: {req.server.url}/{repo.full_name}/compare/{compare}"
    return body


@route("POST", REPO + r"/releases/generate-notes")
def generate_notes(req: Request) -> Response:
    _need(req, "contents")
    body = req.json()
    tag = _text(body, "tag_name", "Validation Failed: tag_name is missing")
    previous = body.get("previous_tag_name")
    if previous and req.repo.resolve(f"refs/tags/{previous}") is None:
        raise HTTPError(404, "Not Found")
    target = body.get("target_commitish") or req.repo.default_branch
    req.server.state.setdefault("generate_notes", []).append(body)
    return Response(200, {"name": tag, "body": _changelog(req, tag, target, previous)})


@route("POST", REPO + r"/releases")
def create_release(req: Request) -> Response:
    _need(req, "contents")
    body = req.json()
    tag = _text(body, "tag_name", "Validation Failed: tag_name is missing")
    repo = req.repo
    releases = _state(req, "releases")
    with req.server.lock:
        if any(r["tag_name"] == tag for r in releases):
            raise HTTPError(
                422,
                "Validation Failed",
                errors=[{"resource": "Release", "code": "already_exists", "field": "tag_name"}],
            )
        if repo.resolve(f"refs/tags/{tag}", "object") is None:
            target = repo.resolve(body.get("target_commitish") or repo.default_branch)
            if target is None:
                raise HTTPError(422, "Validation Failed: target_commitish is invalid")
            repo.git("update-ref", f"refs/tags/{tag}", target, "")
        rel_id = next(_ids)
        url = req.repo_url(f"/releases/{rel_id}")
        release = {
            "url": url,
            "html_url": f"{req.server.url}/{repo.full_name}/releases/tag/{tag}",
            "assets_url": f"{url}/assets",
            "upload_url": f"{url}/assets{{?name,label}}",
            "tarball_url": req.repo_url(f"/tarball/{tag}"),
            "zipball_url": req.repo_url(f"/zipball/{tag}"),
            "id": rel_id,
            "node_id": f"RE_{rel_id}",
            "tag_name": tag,
            "target_commitish": body.get("target_commitish") or repo.default_branch,
            "name": body.get("name") or tag,
            "body": body.get("body") or "",
            "draft": bool(body.get("draft", False)),
            "prerelease": bool(body.get("prerelease", False)),
            "make_latest": body.get("make_latest", "true"),
            "created_at": _now(),
            "published_at": _now(),
            "author": _user(req),
            "assets": [],
        }
        releases.append(release)
    return Response(201, release)


@route("GET", REPO + r"/releases/tags/(?P<tag>.+)")
def get_release_by_tag(req: Request) -> Response:
    for release in _state(req, "releases"):
        if release["tag_name"] == req.params["tag"]:
            return Response(200, release)
    raise HTTPError(404, "Not Found")
