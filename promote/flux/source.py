"""Where a GitOps tree comes from: a checkout, a git revision, or a GitHub repository.

Every source returns :class:`Snapshot` (``{path: text}`` of the manifest files plus the
commit they were read at) for :func:`promote.flux.gitops.scan`:

:class:`LocalSource`
    a directory (normally the root of a checkout). Without ``ref`` the working tree is
    read as it is on disk (``.git`` skipped); with ``ref`` the files are read from that
    revision with ``git ls-tree``/``git cat-file``, and a remote-tracking ref
    (``origin/main``) is fetched before every read, so polling sees new pushes.
:class:`GitHubSource`
    ``owner/name`` through the REST API, with the one GitHub client of
    :mod:`promote.githubapi` (its retries; no pacing: polls are serial reads).
    The first read costs: repository, ref, recursive tree, one blob per manifest. Every
    later read is a *conditional* ``GET /git/ref/heads/<branch>`` (PyGithub's
    ``GitRef.update()`` sends ``If-None-Match`` with the last ETag): GitHub answers
    ``304 Not Modified`` while the branch has not moved, and 304s do not count against
    the rate limit. When it moved, only the tree and the blobs not seen before (blobs are
    immutable, cached by sha) are fetched.

:func:`load_policy` serves the ``promote`` command, which refuses a tag the repository's
own ImagePolicy would not select. The inputs that name a source (``gitops-path``,
``gitops-repo``, ``gitops-ref``, the token and API URL) are read by the front door:
:func:`promote.frontdoor.github_settings.source_from_inputs`.
"""

from __future__ import annotations

import base64
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from promote import githubapi
from promote.errors import GitOpsError, InputError, PolicyError
from promote.flux.gitops import (
    MAX_FILE_BYTES,
    GitOpsTree,
    PolicyEntry,
    exclusions_for,
    find_policies,
    is_manifest_name,
    scan,
)

if TYPE_CHECKING:
    from promote.flux import ImagePolicy
    from promote.flux.policy import RepositoryPolicy

__all__ = [
    "GitHubSource",
    "LocalSource",
    "PolicyEntry",
    "Snapshot",
    "TreeSource",
    "find_policies",
    "load_policy",
    "load_tree",
]

#: Commits examined (per marker file) when looking for the one that wrote a tag.
MAX_COMMITS_SEARCHED = 20
_SHA_RE = re.compile(r"[0-9a-f]{40}")


@dataclass
class Snapshot:
    """Manifest files of a tree, and the commit they come from (``None`` if unknown)."""

    files: dict[str, str]
    revision: str | None = None


class TreeSource(Protocol):
    """Anything :func:`load_tree` can read; ``label`` names it in messages."""

    label: str

    def read(self) -> Snapshot: ...

    def commit_for(self, needle: str, files: list[str], revision: str | None) -> str | None:
        """The newest commit (at or before ``revision``) that brought ``needle`` into
        ``files``, or ``None`` when it cannot be told."""
        ...


def load_tree(source: TreeSource) -> GitOpsTree:
    snapshot = source.read()
    return scan(snapshot.files, revision=snapshot.revision)


def load_policy(source: TreeSource | str | os.PathLike[str], ref: str) -> ImagePolicy:
    """The ImagePolicy ``namespace:name`` of a GitOps tree, as the selection model.

    ``source`` is a path to a checkout or any :class:`TreeSource` (``gitops-repo``: see
    :func:`promote.frontdoor.github_settings.source_from_inputs`). Raises
    :class:`GitOpsError` when the policy is absent and :class:`PolicyError` when invalid.
    """
    if isinstance(source, (str, os.PathLike)):
        source = LocalSource(Path(source))
    return _policy_in(load_tree(source), source, ref)


def _policy_in(tree: GitOpsTree, source: TreeSource, ref: str) -> ImagePolicy:
    namespace, name = split_policy_ref(ref)
    for entry in find_policies(tree):
        if entry.obj.namespace == namespace and entry.obj.name == name:
            if entry.policy is None:
                raise PolicyError(
                    f"ImagePolicy {ref} ({entry.obj.file}:{entry.obj.line}) is invalid: "
                    f"{entry.error}"
                )
            return entry.policy
    known = ", ".join(sorted(p.ref for p in tree.policies)) or "none"
    raise GitOpsError(f"ImagePolicy {ref} not found in {source.label} (found: {known})")


def load_selector(source: TreeSource | str | os.PathLike[str], ref: str) -> RepositoryPolicy:
    """:func:`load_policy` plus its ImageRepository's ``exclusionList``: what the policy
    sees, so a promotion honours a tag excluded there (docs/rollback.md, way 3)."""
    from promote.flux.policy import RepositoryPolicy

    if isinstance(source, (str, os.PathLike)):
        source = LocalSource(Path(source))
    tree = load_tree(source)
    policy = _policy_in(tree, source, ref)
    namespace, name = split_policy_ref(ref)
    obj = tree.find("ImagePolicy", f"{namespace}:{name}")
    exclusions = exclusions_for(tree, obj) if obj is not None else []
    return RepositoryPolicy(policy, tuple(exclusions))


#: What ``git check-ref-format`` allows, as far as a branch, tag or sha name needs: no
#: ``..``, no ``@{``, no control or special characters, no leading ``-`` or ``/``, no
#: trailing ``/``, ``.`` or ``.lock``; it reaches ``git`` arguments and API paths.
_GIT_REF_RE = re.compile(
    r"(?!-)(?!/)(?!.*\.\.)(?!.*@\{)(?!.*//)[A-Za-z0-9._/@+-]{1,255}(?<![/.])(?<!\.lock)"
)


def validate_git_ref(ref: str, *, input_name: str = "gitops-ref") -> str:
    """``ref`` if it is a safe branch, tag or commit name (empty stays empty)."""
    if ref and not _GIT_REF_RE.fullmatch(ref):
        raise InputError(
            f"{input_name} {ref[:80]!r} is not a valid branch, tag or commit name",
            input_name=input_name,
        )
    return ref


def split_policy_ref(ref: str, *, input_name: str = "policy") -> tuple[str, str]:
    """``namespace:name`` -> (namespace, name)."""
    parts = ref.split(":")
    if len(parts) != 2 or not all(parts):
        raise InputError(
            f"policy must be <namespace>:<name> (e.g. flux-system:backend-production), "
            f"not {ref[:80]!r}",
            input_name=input_name,
        )
    return parts[0], parts[1]


# -- local -------------------------------------------------------------------------------------


def _git(root: Path, *args: str, input: bytes | None = None) -> bytes:
    from promote.gitcmd import run_git

    return run_git(root, *args, purpose="read gitops-ref", stdin=input).stdout


@dataclass
class LocalSource:
    """A directory; ``ref`` (branch, tag, sha, ``origin/main``) reads a git revision."""

    root: Path
    ref: str | None = None
    fetch: bool = True
    label: str = ""

    def __post_init__(self) -> None:
        self.root = Path(self.root)
        if not self.label:
            self.label = f"{self.root}" + (f" at {self.ref}" if self.ref else "")

    def read(self) -> Snapshot:
        if self.ref:
            return self._read_revision(self.ref)
        return Snapshot(self._read_worktree(), self._head())

    def _head(self) -> str | None:
        try:
            return _git(self.root, "rev-parse", "--verify", "-q", "HEAD").decode().strip() or None
        except GitOpsError:
            return None

    def _read_worktree(self) -> dict[str, str]:
        files: dict[str, str] = {}
        real_root = os.path.realpath(self.root)
        for dirpath, dirnames, filenames in os.walk(self.root):
            dirnames[:] = sorted(d for d in dirnames if d != ".git")
            for name in filenames:
                full = Path(dirpath) / name
                rel = full.relative_to(self.root).as_posix()
                if not is_manifest_name(rel):
                    continue
                # a symlink may not lead out of the tree (the controller confines paths too)
                if not os.path.realpath(full).startswith(real_root + os.sep):
                    continue
                try:
                    if full.stat().st_size > MAX_FILE_BYTES:
                        continue
                    files[rel] = full.read_bytes().decode("utf-8", "replace")
                except OSError:
                    continue  # unreadable or dangling symlink: the controller skips it too
        return files

    def _remote_of(self, ref: str) -> str | None:
        remotes = _git(self.root, "remote").decode().split()
        head = ref.split("/", 1)[0]
        return head if "/" in ref and head in remotes else None

    def _read_revision(self, ref: str) -> Snapshot:
        remote = self._remote_of(ref) if self.fetch else None
        if remote:
            _git(self.root, "fetch", "--quiet", remote)
        sha = _git(self.root, "rev-parse", "--verify", "-q", f"{ref}^{{commit}}").decode().strip()
        listing = _git(self.root, "ls-tree", "-r", "-z", "--full-tree", sha)
        wanted: list[tuple[str, str]] = []
        for entry in listing.split(b"\0"):
            if not entry:
                continue
            meta, _, path_bytes = entry.partition(b"\t")
            mode, kind, blob = meta.decode().split()
            path = path_bytes.decode("utf-8", "replace")
            if kind == "blob" and mode != "120000" and is_manifest_name(path):
                wanted.append((path, blob))
        return Snapshot(self._cat(wanted), sha)

    def _cat(self, wanted: list[tuple[str, str]]) -> dict[str, str]:
        if not wanted:
            return {}
        out = _git(
            self.root, "cat-file", "--batch", input="".join(f"{b}\n" for _, b in wanted).encode()
        )
        files: dict[str, str] = {}
        pos = 0
        for path, _ in wanted:
            header_end = out.index(b"\n", pos)
            header = out[pos:header_end].split()
            size = int(header[2])
            body = out[header_end + 1 : header_end + 1 + size]
            pos = header_end + 1 + size + 1
            if size <= MAX_FILE_BYTES:
                files[path] = body.decode("utf-8", "replace")
        return files

    def commit_for(self, needle: str, files: list[str], revision: str | None) -> str | None:
        if not files:
            return None
        try:
            out = _git(
                self.root,
                "log",
                "-1",
                "--format=%H",
                f"-S{needle}",
                revision or "HEAD",
                "--",
                *files,
            )
        except GitOpsError:
            return None
        return out.decode().strip() or None


# -- GitHub ------------------------------------------------------------------------------------


@dataclass
class GitHubSource:
    """A GitHub repository read through the REST API (see the module doc for the costs).

    ``ref``: a branch, a tag or a 40-hex commit sha; default the repository's default
    branch. A sha never changes, so it is read once. ``reads``/``not_modified`` count polls.
    """

    repo: str
    ref: str | None = None
    token: str | None = None
    base_url: str = githubapi.DEFAULT_API_URL
    timeout: int = 30
    label: str = ""
    reads: int = 0
    not_modified: int = 0
    _client: Any = field(default=None, repr=False)
    _repo: Any = field(default=None, repr=False)
    _ref: Any = field(default=None, repr=False)
    _fixed_sha: str | None = field(default=None, repr=False)
    _snapshot: Snapshot | None = field(default=None, repr=False)
    _blobs: dict[str, str] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if not self.label:
            self.label = f"{self.repo}" + (f"@{self.ref}" if self.ref else "")

    def _github(self) -> Any:
        if self._repo is None:
            # throttle off: polls are serial reads, PyGithub's 0.25 s spacing only adds latency
            self._client = githubapi.client(
                self.token, self.base_url, throttle=False, timeout=self.timeout, lazy=False
            )
            self._repo = self._call(lambda: self._client.get_repo(self.repo), "read the repository")
        return self._repo

    def _call(self, fn: Any, what: str) -> Any:
        try:
            return githubapi.run(fn)
        except githubapi.APIFailure as failure:
            raise self._error(failure, what) from None

    def _error(self, failure: githubapi.APIFailure, what: str) -> GitOpsError:
        if failure.unreachable:
            return GitOpsError(f"GitHub API unreachable at {self.base_url}: {failure.reason}")
        data = failure.data
        detail = data.get("message") if isinstance(data, dict) else None
        hint = {
            401: "the github-token is missing or invalid",
            403: "the github-token may not read this repository, or the rate limit is spent",
            404: "no such repository or ref, or the token cannot see it",
        }.get(failure.status, "")
        return GitOpsError(
            f"GitHub API: cannot {what} ({self.repo}): {failure.status} {detail or ''}".rstrip()
            + (f"; {hint}" if hint else "")
        )

    def _resolve(self) -> str:
        """The commit sha of ``ref`` now; conditional after the first call (may be 304)."""
        repo = self._github()
        if self._fixed_sha:
            return self._fixed_sha
        if self.ref and _SHA_RE.fullmatch(self.ref):
            self._fixed_sha = self.ref
            return self.ref
        if self._ref is None:
            self._ref = self._first_ref(repo)
        else:
            changed = self._call(self._ref.update, "poll ref")
            if not changed:
                self.not_modified += 1
        return self._peel(self._ref)

    def _first_ref(self, repo: Any) -> Any:
        completed = githubapi.completed_ref
        if not self.ref:
            branch = self._call(lambda: repo.default_branch, "read the default branch")
            return self._call(lambda: completed(repo, f"heads/{branch}"), "read ref")
        try:
            return githubapi.run(lambda: completed(repo, f"heads/{self.ref}"))
        except githubapi.APIFailure as failure:
            if failure.unreachable:
                raise self._error(failure, "read ref") from None
            if failure.status != 404:
                raise GitOpsError(
                    f"GitHub API: cannot read ref {self.ref}: {failure.status}"
                ) from None
        return self._call(lambda: completed(repo, f"tags/{self.ref}"), "read ref")

    def _peel(self, ref: Any) -> str:
        obj = ref.object
        if obj.type == "tag":  # an annotated tag: its object is the commit
            tag = self._call(lambda: self._github().get_git_tag(obj.sha), "read tag")
            return str(tag.object.sha)
        return str(obj.sha)

    def read(self) -> Snapshot:
        self.reads += 1
        sha = self._resolve()
        if self._snapshot is not None and self._snapshot.revision == sha:
            return self._snapshot
        repo = self._github()
        tree = self._call(lambda: repo.get_git_tree(sha, recursive=True), "read the tree")
        if tree.truncated:
            raise GitOpsError(
                f"GitHub truncated the tree of {self.repo} at {sha[:12]} (too many files); "
                "use a checkout and gitops-path instead"
            )
        files: dict[str, str] = {}
        for element in tree.tree:
            if element.type != "blob" or element.mode == "120000":
                continue
            if not is_manifest_name(element.path) or (element.size or 0) > MAX_FILE_BYTES:
                continue
            if element.sha not in self._blobs:
                blob = self._call(lambda e=element: repo.get_git_blob(e.sha), "read a blob")
                self._blobs[element.sha] = _decode_blob(blob.content, blob.encoding)
            files[element.path] = self._blobs[element.sha]
        self._snapshot = Snapshot(files, sha)
        return self._snapshot

    def commit_for(self, needle: str, files: list[str], revision: str | None) -> str | None:
        """Walk the commits touching each file (commits API with ``path``), newest first,
        and return the oldest of the newest run whose file version contains ``needle``."""
        repo = self._github()
        for path in files:
            commits = self._call(
                lambda p=path: list(
                    repo.get_commits(sha=revision or self.ref or repo.default_branch, path=p)[
                        :MAX_COMMITS_SEARCHED
                    ]
                ),
                "list commits",
            )
            writer = None
            for commit in commits:
                content = self._call(
                    lambda p=path, c=commit: repo.get_contents(p, ref=c.sha), "read a file"
                )
                if needle not in content.decoded_content.decode("utf-8", "replace"):
                    break
                writer = commit.sha
            if writer:
                return str(writer)
        return None


def _decode_blob(content: str, encoding: str) -> str:
    if encoding == "base64":
        return base64.b64decode(content).decode("utf-8", "replace")
    return content
