"""The one GitHub REST client: the only module that imports PyGithub.

Used by the GitHub records (:mod:`promote.github`), the GitOps source
(:class:`promote.flux.source.GitHubSource`) and the revert (:mod:`promote.gitrevert`), so
all three get the same client settings and the same failure handling:

* :func:`client` — PyGithub with a 30 s timeout, retries (``GithubRetry``: 3 attempts,
  0.5 s backoff, rate-limit waits up to 60 s) and, with ``throttle``, GitHub's pacing for
  secondary rate limits (0.25 s between requests, 1 s between writes).
* :func:`run` — one call; whatever PyGithub or the connection raises becomes
  :class:`APIFailure` (an HTTP status and GitHub's message, or ``status == 0`` when the API
  could not be reached), never a PyGithub exception and never text holding the token.
* :func:`completed_ref` — a git ref fetched now (PyGithub builds them lazily).

PyGithub is imported inside the functions: it is heavy, and the action's start-up must
not pay for it (``tests/test_layering.py``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from github.Deployment import Deployment
    from github.Repository import Repository

#: Public GitHub's REST endpoint, used when ``GITHUB_API_URL`` is unset.
DEFAULT_API_URL = "https://api.github.com"
REPOSITORY_RE = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})/[A-Za-z0-9._-]{1,100}")

T = TypeVar("T")


class APIFailure(Exception):
    """A failed GitHub API call: ``status`` 0 means no HTTP answer (``reason`` says why)."""

    def __init__(self, status: int, message: str, data: Any = None, reason: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.data = data
        self.reason = reason

    @property
    def unreachable(self) -> bool:
        return self.status == 0


def valid_repository(name: str) -> bool:
    """``owner/name`` as GitHub allows it (no ``.``/``..`` name, nothing else around it)."""
    if not REPOSITORY_RE.fullmatch(name):
        return False
    return name.split("/", 1)[1] not in {".", ".."}


def client(
    token: str | None, url: str, *, throttle: bool = True, timeout: int = 30, lazy: bool = True
) -> Any:
    """A PyGithub client for ``url``; ``token`` ``None`` or empty reads anonymously.

    ``throttle`` keeps PyGithub's pacing (0.25 s between requests, 1 s between writes, as
    GitHub's secondary rate limits ask); tests and serial polls turn it off. ``lazy``
    objects are fetched on first use; otherwise ``get_repo`` reads the repository at once.
    """
    from github import Auth, Github, GithubRetry

    return Github(
        auth=Auth.Token(token) if token else None,
        base_url=url.rstrip("/"),
        timeout=timeout,
        retry=GithubRetry(total=3, backoff_factor=0.5, max_rate_limit_wait=60),
        seconds_between_requests=0.25 if throttle else None,
        seconds_between_writes=1.0 if throttle else None,
        lazy=lazy,
    )


def run(fn: Callable[[], T]) -> T:
    """``fn()``; a PyGithub or connection failure becomes :class:`APIFailure`."""
    from github import GithubException

    try:
        return fn()
    except GithubException as exc:
        status = int(getattr(exc, "status", 0) or 0)
        data = getattr(exc, "data", None)
        raise APIFailure(status, _message(data), data, type(exc).__name__) from None
    except OSError as exc:  # requests' RequestException (and its timeouts) are OSErrors
        raise APIFailure(0, "", None, type(exc).__name__) from None


def _message(data: Any) -> str:
    """GitHub's ``message`` plus each of its ``errors`` entries, ``; ``-joined."""
    if not isinstance(data, dict):
        return ""
    detail = str(data.get("message") or "")
    errors = data.get("errors")
    if isinstance(errors, list):
        parts = [
            str(e.get("message") or e.get("code") or "") if isinstance(e, dict) else str(e)
            for e in errors
        ]
        detail += "".join(f"; {p}" for p in parts if p)
    return detail


def completed_ref(repo: Any, name: str) -> Any:
    """``repo.get_git_ref(name)`` fetched now: a lazy ``GitRef`` would fail later."""
    ref = repo.get_git_ref(name)
    _ = ref.object
    return ref


def tree_element(path: str, sha: str) -> Any:
    """One regular file (mode ``100644``) of a tree written with the Git data API."""
    from github import InputGitTreeElement

    return InputGitTreeElement(path, "100644", "blob", sha=sha)


__all__ = [
    "DEFAULT_API_URL",
    "APIFailure",
    "Deployment",
    "Repository",
    "client",
    "completed_ref",
    "run",
    "tree_element",
    "valid_repository",
]
