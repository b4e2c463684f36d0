"""The one GitHub client: the only importer of PyGithub, with retries and error translation.

The import check walks every import node of every module (module level, inside functions,
under ``if TYPE_CHECKING:``); the client is exercised against the local GitHub REST server.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

from promote import githubapi
from promote.errors import GitHubError
from promote.github import call
from promote.githubapi import APIFailure
from testkit.github_server import GitHubServer, Request, Response, init_repo
from testkit.registry import free_port

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "ghs_clientToken0123456789abcdef"


def modules() -> list[Path]:
    return [*sorted((ROOT / "promote").rglob("*.py")), ROOT / "entrypoint.py"]


def imported(tree: ast.AST) -> Iterator[tuple[str, int]]:
    """Every module name an import node names, wherever it stands, with its line."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module, node.lineno
        elif isinstance(node, ast.Call) and node.args:
            func, first = node.func, node.args[0]
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name in {"import_module", "__import__"} and isinstance(first, ast.Constant):
                yield str(first.value), node.lineno


def is_pygithub(name: str) -> bool:
    return name == "github" or name.startswith("github.")


def test_pygithub_is_imported_in_exactly_one_module() -> None:
    importers = {
        f"{path.relative_to(ROOT)}:{line}"
        for path in modules()
        for name, line in imported(ast.parse(path.read_text(), str(path)))
        if is_pygithub(name)
    }
    assert importers, "the walk must see githubapi's own PyGithub imports"
    assert {i.split(":")[0] for i in importers} == {"promote/githubapi.py"}, importers


def test_the_walk_sees_function_local_and_type_checking_imports() -> None:
    source = (
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from github.Repository import Repository\n"
        "def f():\n    import github\n    from github import Auth\n"
        "importlib.import_module('github')\n"
    )
    assert [n for n, _ in imported(ast.parse(source)) if is_pygithub(n)] == [
        "github.Repository",
        "github",
        "github",
        "github",
    ]


def defined(name: str) -> set[str]:
    """Modules of promote/ that bind ``name`` at their top level (def, class or assignment)."""
    found = set()
    for path in modules():
        for node in ast.parse(path.read_text()).body:
            names: list[str] = []
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                names = [node.name]
            elif isinstance(node, (ast.Assign, ast.AnnAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                names = [t.id for t in targets if isinstance(t, ast.Name)]
            if name in names:
                found.add(str(path.relative_to(ROOT)))
    return found


def test_one_default_api_url_and_one_completed_ref() -> None:
    assert defined("DEFAULT_API_URL") == {"promote/githubapi.py"}
    assert defined("completed_ref") == {"promote/githubapi.py"}
    assert defined("_completed") == defined("_completed_ref") == set()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[GitHubServer]:
    (tmp_path / "gitops").mkdir()
    (tmp_path / "gitops" / "README.md").write_text("gitops\n")
    init_repo(tmp_path / "gitops")
    with GitHubServer(token=TOKEN) as gh:
        gh.add_repo("acme/gitops", tmp_path / "gitops")
        yield gh


def test_an_http_error_becomes_an_api_failure_with_githubs_message(server: GitHubServer) -> None:
    gh = githubapi.client(TOKEN, server.url, throttle=False, lazy=False)
    with pytest.raises(APIFailure) as info:
        githubapi.run(lambda: gh.get_repo("acme/absent"))
    assert info.value.status == 404
    assert not info.value.unreachable
    assert info.value.message  # GitHub's "message", not a PyGithub repr
    with pytest.raises(GitHubError, match=r"read acme/absent: HTTP 404: .*contents: read"):
        call("read acme/absent", "commit", lambda: gh.get_repo("acme/absent"))


def test_a_bad_token_is_a_401_without_the_token_in_the_text(server: GitHubServer) -> None:
    wrong = "ghs_wrongwrongwrongwrong0123"
    gh = githubapi.client(wrong, server.url, throttle=False, lazy=False)
    with pytest.raises(GitHubError, match="invalid or expired") as info:
        call("read acme/gitops", "deployment", lambda: gh.get_repo("acme/gitops"))
    assert info.value.status == 401
    assert wrong not in str(info.value)


def test_no_answer_is_an_unreachable_failure() -> None:
    gh = githubapi.client(TOKEN, f"http://127.0.0.1:{free_port()}", throttle=False, lazy=False)
    with pytest.raises(APIFailure) as info:
        githubapi.run(lambda: gh.get_repo("acme/gitops"))
    assert info.value.unreachable
    assert info.value.reason  # the exception's kind, never its URL-bearing text
    with pytest.raises(GitHubError, match="cannot reach the GitHub API"):
        call("read acme/gitops", "commit", lambda: gh.get_repo("acme/gitops"))


def test_server_errors_are_retried(server: GitHubServer) -> None:
    """Every consumer gets the one client, so a 502 blip is retried for all of them."""
    failures = [502, 503]
    builtin = server.find_route("GET", "/repos/acme/gitops")
    assert builtin is not None

    def flaky(req: Request) -> Response:
        if failures:
            return Response(failures.pop(0), {"message": "bad gateway"})
        return builtin[0].handler(req)

    server.add_route("GET", r"/repos/(?P<owner>acme)/(?P<repo>gitops)", flaky)
    gh = githubapi.client(TOKEN, server.url, throttle=False, lazy=False)
    repo = githubapi.run(lambda: gh.get_repo("acme/gitops"))
    assert repo.full_name == "acme/gitops"
    assert server.count("GET", "/repos/acme/gitops") == 3
    assert failures == []


def test_completed_ref_fails_at_once_not_later(server: GitHubServer) -> None:
    gh = githubapi.client(TOKEN, server.url, throttle=False)
    repo = gh.get_repo("acme/gitops")  # lazy: no request yet
    with pytest.raises(APIFailure) as info:
        githubapi.run(lambda: githubapi.completed_ref(repo, "heads/absent"))
    assert info.value.status == 404
    ref = githubapi.run(lambda: githubapi.completed_ref(repo, "heads/main"))
    assert len(ref.object.sha) == 40
