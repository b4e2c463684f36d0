"""Revert, in a GitOps repository, the image-automation commit that wrote a bad tag.

Flux's ImageUpdateAutomation rewrites the value on each setter-marker line
(``image: ghcr.io/acme/backend:production-v2.0.1-abc1234-1767225600 # {"$imagepolicy": ...}``)
and commits. Rolling back in Git at once (rather than at the next automation interval)
means reverting that commit. It is found through the marker history: the newest commit
whose diff *adds* a line carrying the bad tag (``git log -S<bad tag>``). Only commits that
change marker lines and nothing else are reverted automatically; anything else is a human
change and is refused with the commit named.

Two back ends, both producing one normal commit on top of the branch (never a force-push):

* :func:`revert_local` — a checkout (``gitops-path``): ``git revert --no-commit``,
  ``git commit``, and ``git push`` to the branch's upstream when it has one (a rejected push
  is retried once after ``git pull --rebase``).
* :func:`revert_github` — ``gitops-repo`` through the REST API (the one GitHub client,
  :mod:`promote.githubapi`): the commits are
  walked newest first (``GET /commits``, ``GET /commits/{sha}`` for the patch, at most
  :data:`MAX_COMMITS`), the files at the branch head are read (``GET /contents``), the
  marker lines are swapped back, and a commit is made with the Git data API (blobs, tree,
  commit) and the branch ref moved with ``force: false`` — GitHub then refuses anything but
  a fast-forward.

The automation keeps running: after the registry rollback its policy selects the new
rollback tag, which names the same digest as the reverted-to tag, so its next commit
changes the tag string but not what runs.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from promote import githubapi
from promote.errors import GitHubError, GitOpsError
from promote.gitcmd import run_git

#: The setter marker Flux writes on every line it updates.
MARKER = '"$imagepolicy"'
#: Newest commits of the branch inspected through the API.
MAX_COMMITS = 30
BOT_NAME = "github-actions[bot]"
BOT_EMAIL = "41898282+github-actions[bot]@users.noreply.github.com"


@dataclass(frozen=True)
class Change:
    """One marker line the automation changed: ``old`` became ``new`` in ``path``."""

    path: str
    old: str
    new: str


@dataclass(frozen=True)
class AutomationCommit:
    sha: str
    author: str
    subject: str
    changes: tuple[Change, ...]

    @property
    def files(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(c.path for c in self.changes))


@dataclass(frozen=True)
class RevertResult:
    """What happened: ``reverted`` (automation commit) and ``commit`` (the revert)."""

    reverted: str = ""
    commit: str = ""
    files: tuple[str, ...] = ()
    pushed: bool = False
    note: str = ""
    #: the marker lines put back (old) in place of the automation's (new)
    changes: tuple[Change, ...] = ()


# -- pure: diffs and texts ---------------------------------------------------------------------
def parse_diff(text: str) -> dict[str, list[tuple[list[str], list[str]]]]:
    """Hunks of a unified diff (``git show`` of several files, or one GitHub ``patch``).

    Returns ``{path: [(removed lines, added lines), ...]}``; a GitHub file patch has no
    ``+++`` header, so its lines are filed under ``""``.
    """
    files: dict[str, list[tuple[list[str], list[str]]]] = {}
    path = ""
    hunk: tuple[list[str], list[str]] | None = None
    for line in text.splitlines():
        if line.startswith("diff --git "):
            hunk = None
            continue
        if line.startswith("+++ ") and hunk is None:
            target = line[4:]
            path = target[2:] if target.startswith("b/") else target
            hunk = None
            continue
        if line.startswith("--- ") and hunk is None:
            continue
        if line.startswith("@@"):
            hunk = ([], [])
            files.setdefault(path, []).append(hunk)
            continue
        if hunk is None or line.startswith("\\"):
            continue
        if line.startswith("-"):
            hunk[0].append(line[1:])
        elif line.startswith("+"):
            hunk[1].append(line[1:])
        elif (line.startswith(" ") or line == "") and (hunk[0] or hunk[1]):
            # context separates change blocks inside a hunk
            hunk = ([], [])
            files[path].append(hunk)
    return {p: [h for h in hunks if h[0] or h[1]] for p, hunks in files.items()}


def marker_changes(
    sha: str, path: str, hunks: Sequence[tuple[list[str], list[str]]]
) -> list[Change]:
    """The hunks as marker-line changes; refuses anything the automation would not write."""
    changes: list[Change] = []
    for removed, added in hunks:
        if len(removed) != len(added) or not all(MARKER in ln for ln in [*removed, *added]):
            raise GitOpsError(
                f"commit {sha[:12]} changes {path} beyond image-policy marker lines; it is not "
                "an image-automation commit, so it is not reverted automatically (revert it by "
                "hand, or use rollback without revert-commit)"
            )
        changes.extend(Change(path, old, new) for old, new in zip(removed, added, strict=True))
    return changes


def revert_text(text: str, changes: Iterable[Change], *, sha: str) -> str:
    """``text`` with each change's ``new`` line put back to ``old`` (line endings kept)."""
    lines = text.splitlines(keepends=True)
    for change in changes:
        for i, line in enumerate(lines):
            body = line.rstrip("\r\n")
            if body == change.new:
                lines[i] = change.old + line[len(body) :]
                break
        else:
            raise GitOpsError(
                f"cannot revert commit {sha[:12]}: {change.path} no longer holds the line it "
                f"wrote ({change.new.strip()[:120]!r}); a later commit changed it"
            )
    return "".join(lines)


def revert_message(commit: AutomationCommit, reason: str) -> str:
    subject = commit.subject.replace('"', "'")
    return f'Revert "{subject}"\n\nThis reverts commit {commit.sha}.\n\n{reason}\n'


def _adds(hunks: Sequence[tuple[list[str], list[str]]], needle: str) -> bool:
    return any(needle in line for _removed, added in hunks for line in added)


# -- local git ---------------------------------------------------------------------------------
def _git(
    root: Path,
    *args: str,
    check: bool = True,
    stdin: str | None = None,
    env: Mapping[str, str] | None = None,
) -> tuple[int, str]:
    """``git -C root args`` as text; ``env`` (the action's environment) never lets git prompt."""
    proc = run_git(
        root,
        *args,
        purpose="revert the automation commit (revert-commit)",
        stdin=None if stdin is None else stdin.encode(),
        env=env,
        check=check,
    )
    return proc.returncode, proc.stdout.decode("utf-8", "replace")


def find_local(
    root: Path, bad_tag: str, *, rev: str = "HEAD", env: Mapping[str, str] | None = None
) -> AutomationCommit | None:
    """The newest commit of ``rev`` whose diff adds a line holding ``bad_tag``."""
    git = partial(_git, root, env=env)
    _, out = git("log", "--no-merges", "--format=%H", f"-S{bad_tag}", rev)
    for sha in out.split():
        _, show = git(
            "show",
            "--format=%an%x00%s",
            "--unified=0",
            "--no-color",
            "--no-ext-diff",
            "--no-renames",
            sha,
        )
        header, _, diff = show.partition("\n")
        author, _, subject = header.partition("\0")
        hunks_by_file = parse_diff(diff)
        if not any(_adds(h, bad_tag) for h in hunks_by_file.values()):
            continue  # this commit removed the tag
        changes: list[Change] = []
        for path, hunks in hunks_by_file.items():
            changes.extend(marker_changes(sha, path, hunks))
        return AutomationCommit(sha, author, subject, tuple(changes))
    return None


def upstream_of(root: Path, *, env: Mapping[str, str] | None = None) -> tuple[str, str, str] | None:
    """``(branch, remote, merge ref)`` of the checkout's branch, or ``None`` without one."""
    git = partial(_git, root, env=env)
    rc, branch = git("symbolic-ref", "-q", "--short", "HEAD", check=False)
    branch = branch.strip()
    if rc != 0 or not branch:
        return None
    remote = git("config", f"branch.{branch}.remote", check=False)[1].strip()
    merge = git("config", f"branch.{branch}.merge", check=False)[1].strip()
    return (branch, remote, merge) if remote and merge else None


def check_pushable(path: str | os.PathLike[str], *, env: Mapping[str, str] | None = None) -> None:
    """Refuse (before anything is written) a revert that could not be pushed."""
    root = Path(path)
    if upstream_of(root, env=env) is None:
        raise GitOpsError(
            f"gitops-path {root} is not on a branch with an upstream, so a revert could not "
            "be pushed and Flux would never see it; check out the branch that tracks the "
            "GitOps remote (git branch --set-upstream-to), or set revert-local: true to "
            "commit the revert in the checkout only"
        )


def revert_local(
    path: str | os.PathLike[str],
    bad_tag: str,
    *,
    reason: str,
    dry_run: bool = False,
    push: bool = True,
    env: Mapping[str, str] | None = None,
    log: Callable[[str], None] = lambda _m: None,
) -> RevertResult:
    """Revert the automation commit that wrote ``bad_tag`` in the checkout at ``path``.

    ``env`` is the environment git runs in (the action's; ``None``: this process's).
    """
    root = Path(path)
    git = partial(_git, root, env=env)
    if not (root / ".git").exists() and git("rev-parse", "--git-dir", check=False)[0]:
        raise GitOpsError(f"gitops-path {root} is not a git checkout")
    rc, branch = git("symbolic-ref", "-q", "--short", "HEAD", check=False)
    branch = branch.strip()
    if rc != 0 or not branch:
        raise GitOpsError(f"gitops-path {root} is on a detached HEAD; check out the branch")
    remote = git("config", f"branch.{branch}.remote", check=False)[1].strip()
    merge = git("config", f"branch.{branch}.merge", check=False)[1].strip()
    upstream = bool(push and remote and merge)
    if git("status", "--porcelain", "--untracked-files=no")[1].strip():
        raise GitOpsError(f"gitops-path {root} has uncommitted changes; refusing to revert")
    rev = "HEAD"
    if upstream and dry_run:
        # a dry run reads the upstream without touching the checkout's branch or files
        git("fetch", "--quiet", remote, merge)
        rev = "FETCH_HEAD"
    elif upstream:
        git("pull", "--ff-only", "--quiet", remote, merge)
    if git("grep", "-q", "-F", "-e", bad_tag, rev, check=False)[0] != 0:
        return RevertResult(note=f"{bad_tag} is no longer in {branch}: nothing to revert")
    commit = find_local(root, bad_tag, rev=rev, env=env)
    if commit is None:
        raise GitOpsError(f"no commit of {branch} adds {bad_tag}; cannot find what to revert")
    log(f"automation commit {commit.sha[:12]} by {commit.author} wrote {bad_tag}: {commit.subject}")
    if dry_run:
        return RevertResult(
            reverted=commit.sha, files=commit.files, note=f"dry run: would revert {commit.sha[:12]}"
        )
    rc, _ = git("revert", "--no-commit", "--no-edit", commit.sha, check=False)
    if rc != 0:
        git("revert", "--abort", check=False)
        raise GitOpsError(
            f"reverting {commit.sha[:12]} conflicts with later changes to "
            f"{', '.join(commit.files)}; nothing was committed"
        )
    identity: list[str] = []
    if not git("config", "user.name", check=False)[1].strip():
        identity = ["-c", f"user.name={BOT_NAME}", "-c", f"user.email={BOT_EMAIL}"]
    git(*identity, "commit", "--quiet", "--file=-", stdin=revert_message(commit, reason))
    new = git("rev-parse", "HEAD")[1].strip()
    log(f"reverted {commit.sha[:12]} as {new[:12]} on {branch}")
    pushed = False
    if upstream:
        target = f"HEAD:{merge}"
        if git("push", "--quiet", remote, target, check=False)[0] != 0:
            log("push rejected (the branch moved); rebasing once and retrying")
            rc, _ = git("pull", "--rebase", "--quiet", remote, merge, check=False)
            if rc != 0:
                git("rebase", "--abort", check=False)
                raise GitOpsError(
                    f"the revert {new[:12]} is committed in {root} but could not be rebased "
                    f"onto {remote}/{merge.removeprefix('refs/heads/')}; push it by hand"
                )
            git("push", "--quiet", remote, target)
            new = git("rev-parse", "HEAD")[1].strip()
        pushed = True
        log(f"pushed {new[:12]} to {remote} {merge}")
    return RevertResult(
        reverted=commit.sha, commit=new, files=commit.files, pushed=pushed, changes=commit.changes
    )


# -- GitHub API --------------------------------------------------------------------------------
def _api(what: str, fn: Callable[[], Any]) -> Any:
    from promote.github import call

    try:
        return call(what, "contents", fn)
    except GitHubError as exc:
        raise GitOpsError(str(exc)) from None


def find_github(repo: Any, head: str, bad_tag: str) -> AutomationCommit | None:
    """Walk the newest :data:`MAX_COMMITS` commits of ``head`` for the one adding ``bad_tag``."""
    commits = _api("list commits", lambda: list(repo.get_commits(sha=head)[:MAX_COMMITS]))
    for listed in commits:
        sha = str(listed.sha)
        # the listing has no files; GET /commits/{sha} has them, with their patches
        files = _api(f"read commit {sha[:12]}", partial(_files_of, repo, sha))
        by_file = {f.filename: parse_diff(f.patch or "").get("", []) for f in files}
        if not any(_adds(h, bad_tag) for h in by_file.values()):
            continue
        changes: list[Change] = []
        for path, hunks in by_file.items():
            changes.extend(marker_changes(sha, path, hunks))
        info = listed.commit
        subject = str(info.message).splitlines()[0] if info.message else ""
        return AutomationCommit(sha, str(info.author.name), subject, tuple(changes))
    return None


def revert_github(
    repository: str,
    bad_tag: str,
    *,
    token: str,
    api_url: str,
    ref: str = "",
    reason: str,
    dry_run: bool = False,
    throttle: bool = True,
    log: Callable[[str], None] = lambda _m: None,
) -> RevertResult:
    """Revert through the REST API; one fast-forward commit on branch ``ref``."""
    gh = githubapi.client(token, api_url, throttle=throttle)
    repo = _api(f"read {repository}", partial(gh.get_repo, repository))
    branch = ref.removeprefix("refs/heads/") or str(repo.default_branch)
    for attempt in (1, 2):
        result = _revert_once(
            repo, branch, bad_tag, reason=reason, dry_run=dry_run, last=attempt == 2, log=log
        )
        if result is not None:
            return result
        log(f"{branch} moved while reverting; retrying once on its new head")
    raise GitOpsError(f"{branch} kept moving; revert {bad_tag} by hand")  # pragma: no cover


def _revert_once(
    repo: Any,
    branch: str,
    bad_tag: str,
    *,
    reason: str,
    dry_run: bool,
    last: bool,
    log: Callable[[str], None],
) -> RevertResult | None:
    """One attempt; ``None`` when the branch moved under it (and ``last`` is false)."""
    git_ref = _api(
        f"read branch {branch}", partial(githubapi.completed_ref, repo, f"heads/{branch}")
    )
    head = str(git_ref.object.sha)
    commit = find_github(repo, head, bad_tag)
    if commit is None:
        return RevertResult(
            note=f"no commit among the newest {MAX_COMMITS} of {branch} adds {bad_tag}: "
            "nothing to revert"
        )
    texts: dict[str, str] = {}
    for path in commit.files:
        content = _api(f"read {path}", partial(repo.get_contents, path, ref=head))
        texts[path] = content.decoded_content.decode("utf-8")
    if not any(bad_tag in t for t in texts.values()):
        return RevertResult(note=f"{bad_tag} is no longer in {branch}: nothing to revert")
    log(f"automation commit {commit.sha[:12]} by {commit.author} wrote {bad_tag}")
    reverted = {
        p: revert_text(texts[p], [c for c in commit.changes if c.path == p], sha=commit.sha)
        for p in commit.files
    }
    if dry_run:
        note = f"dry run: would revert {commit.sha[:12]}"
        return RevertResult(
            reverted=commit.sha, files=commit.files, note=note, changes=commit.changes
        )
    parent = _api("read head commit", partial(repo.get_git_commit, head))
    elements = []
    for path, text in reverted.items():
        blob = _api(f"write {path}", partial(repo.create_git_blob, text, "utf-8"))
        elements.append(githubapi.tree_element(path, blob.sha))
    tree = _api("write tree", partial(repo.create_git_tree, elements, parent.tree))
    message = revert_message(commit, reason)
    new = _api("write commit", partial(repo.create_git_commit, message, tree, [parent]))
    try:
        githubapi.run(partial(git_ref.edit, new.sha, force=False))
    except githubapi.APIFailure as failure:
        if failure.unreachable:
            raise GitOpsError(
                f"moving {branch} to the revert commit {new.sha[:12]} got no usable answer "
                f"from the GitHub API ({failure.reason}); it may or may not have moved: check "
                f"{branch} before retrying"
            ) from None
        if failure.status == 422 and not last:
            return None
        raise GitOpsError(
            f"could not move {branch} to the revert commit {new.sha[:12]} "
            f"(HTTP {failure.status}): the branch moved or is protected; nothing was changed on it"
        ) from None
    log(f"reverted {commit.sha[:12]} as {new.sha[:12]} on {repo.full_name}@{branch}")
    return RevertResult(
        reverted=commit.sha,
        commit=str(new.sha),
        files=commit.files,
        pushed=True,
        changes=commit.changes,
    )


def _files_of(repo: Any, sha: str) -> list[Any]:
    return list(repo.get_commit(sha).files)


__all__ = [
    "AutomationCommit",
    "Change",
    "RevertResult",
    "find_github",
    "find_local",
    "marker_changes",
    "parse_diff",
    "revert_github",
    "revert_local",
    "revert_text",
]
