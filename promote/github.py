"""GitHub records of a promotion or rollback: a Deployment with statuses, a git tag, a Release.

Called by ``promote`` and ``rollback`` around their registry writes::

    records = PromotionRecords(kind="promote", token=..., repository=..., ...)  # no I/O
    records.start(plan_outputs)        # POST deployments; POST statuses (in_progress)
    ...registry writes...
    records.fail(message)              # POST statuses (failure) — never raises
    records.finish(outputs)            # POST statuses (success); POST git/refs; releases

REST calls (PyGithub, ``base_url`` from ``GITHUB_API_URL`` so GitHub Enterprise Server
works; the token needs ``deployments: write`` and, for tags and releases, ``contents:
write``)::

    GET  /repos/{o}/{r}/commits/{short sha}        full sha (only when 7 chars are known)
    POST /repos/{o}/{r}/deployments                environment, ref = full sha, payload
    POST /repos/{o}/{r}/deployments/{id}/statuses  in_progress, then success | failure
    POST /repos/{o}/{r}/git/refs                   refs/tags/v<version> (lightweight)
    GET  /repos/{o}/{r}/git/ref/tags/v<version>    only after a 422: same sha is fine
    GET  /repos/{o}/{r}/git/ref/tags/v<previous>   does the previous version tag exist?
    POST /repos/{o}/{r}/releases/generate-notes    notes since the previous version tag
    POST /repos/{o}/{r}/releases                   Release v<version> with those notes

The inputs are read and checked (without I/O) by the front door,
:func:`promote.frontdoor.github_settings.records_for`; every call goes through the one
GitHub client, :mod:`promote.githubapi`. Errors become :class:`GitHubError` with the HTTP
status and what permission to grant; the token is never part of a message.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from promote import githubapi
from promote.errors import GitHubError
from promote.githubapi import APIFailure

if TYPE_CHECKING:
    from promote.githubapi import Deployment, Repository

DEFAULT_SERVER_URL = "https://github.com"
FULL_SHA_RE = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
#: GitHub truncates nothing: it refuses descriptions longer than 140 characters.
MAX_DESCRIPTION = 140
KINDS = ("promote", "rollback")

T = TypeVar("T")

#: what each kind of call needs, for the hint of a 403/404
PERMISSION_HINTS = {
    "deployment": "the token needs `deployments: write` (workflow `permissions:`)",
    "tag": "the token needs `contents: write` to create tags",
    "release": "the token needs `contents: write` to create releases",
    "commit": "the token needs `contents: read` on the repository",
}


def call(what: str, kind: str, fn: Callable[[], T]) -> T:
    """Run one GitHub API call; map its failure to :class:`GitHubError` (no token in text)."""
    try:
        return githubapi.run(fn)
    except APIFailure as failure:
        raise github_error(what, kind, failure) from None


def github_error(what: str, kind: str, failure: APIFailure) -> GitHubError:
    """The message of a failed call: what failed, the HTTP status, and what to grant."""
    if failure.unreachable:
        return GitHubError(f"{what}: cannot reach the GitHub API ({failure.reason})")
    status = failure.status
    hint = ""
    if status == 401:
        hint = " (the github-token is invalid or expired)"
    elif status in {403, 404}:
        hint = f" ({PERMISSION_HINTS.get(kind, 'check the token permissions')})"
    elif status == 422:
        hint = " (GitHub refused the request as invalid)"
    return GitHubError(
        f"{what}: HTTP {status}: {failure.message[:300] or 'no message'}{hint}", status=status
    )


@dataclass
class PromotionRecords:
    """Deployment, statuses, git tag and release for one promotion or rollback."""

    kind: str
    token: str = field(repr=False)
    repository: str
    api_url: str
    environment: str
    environment_url: str = ""
    log_url: str = ""
    commit_sha: str = ""
    create_deployment: bool = False
    git_tag: bool = False
    release: bool = False
    throttle: bool = True
    warn: Callable[[str], None] = lambda _m: None
    log: Callable[[str], None] = lambda _m: None
    #: filled as the records are made
    deployment_id: int | None = None
    full_sha: str = ""
    _repo: Any = field(default=None, repr=False)
    _deployment: Any = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(self.kind)

    # -- helpers ------------------------------------------------------------------------------
    @property
    def repo(self) -> Repository:
        if self._repo is None:
            gh = githubapi.client(self.token, self.api_url, throttle=self.throttle)
            self._repo = gh.get_repo(self.repository)
        repo: Repository = self._repo
        return repo

    def resolve_sha(self, outputs: Mapping[str, str]) -> str:
        """The full commit sha: the ``commit-sha`` input, else the commits API on a short one."""
        if self.full_sha:
            return self.full_sha
        known = self.commit_sha or outputs.get("short-sha", "")
        if FULL_SHA_RE.fullmatch(known):
            self.full_sha = known
            return known
        if not known:
            raise GitHubError("no commit sha is known for the GitHub records; pass commit-sha")
        commit = call(
            f"resolve commit {known} in {self.repository}",
            "commit",
            lambda: self.repo.get_commit(known).raw_data["sha"],
        )
        self.full_sha = str(commit)
        return self.full_sha

    def _description(self, outputs: Mapping[str, str], state: str = "") -> str:
        tag = outputs.get("tag", "")
        if self.kind == "rollback":
            text = f"Rollback of {self.environment} to {tag}"
        else:
            text = f"Promote {tag} to {self.environment}"
        if state:
            text += f": {state}"
        if len(text) > MAX_DESCRIPTION:
            text = text[: MAX_DESCRIPTION - 1] + "…"
        return text

    def payload(self, outputs: Mapping[str, str]) -> dict[str, Any]:
        return {
            "image": outputs.get("image", ""),
            "digest": outputs.get("digest", ""),
            "tag": outputs.get("tag", ""),
            "tags": [t for t in outputs.get("tags", "").splitlines() if t],
            "source_tag": outputs.get("source-tag", ""),
            "version": outputs.get("version", ""),
            "previous_tag": outputs.get("previous-tag", ""),
            "previous_digest": outputs.get("previous-digest", ""),
            "rollback": self.kind == "rollback",
        }

    def _status(self, state: str, description: str) -> None:
        """POST a deployment status with ``log_url`` (PyGithub's helper lacks that field)."""
        deployment: Deployment = self._deployment
        body: dict[str, Any] = {"state": state, "description": description[:MAX_DESCRIPTION]}
        body["environment"] = self.environment
        if self.log_url:
            body["log_url"] = self.log_url
        if self.environment_url:
            body["environment_url"] = self.environment_url
        call(
            f"set deployment {self.deployment_id} status {state}",
            "deployment",
            lambda: deployment.requester.requestJsonAndCheck(
                "POST", f"{deployment.url}/statuses", input=body
            ),
        )

    # -- the three phases ---------------------------------------------------------------
    def start(self, outputs: dict[str, str]) -> None:
        """Create the Deployment (when asked) and mark it ``in_progress``."""
        if not (self.create_deployment or self.git_tag or self.release):
            return
        sha = self.resolve_sha(outputs)
        version = outputs.get("version", "")
        if self.git_tag and version:
            # refuse before the registry write rather than after it
            self._check_tag_free(f"v{version}", sha)
        if not self.create_deployment:
            return
        from promote import naming

        production = self.environment == naming.PRODUCTION_ENV
        deployment = call(
            f"create a deployment of {sha[:12]} to {self.environment} in {self.repository}",
            "deployment",
            lambda: self.repo.create_deployment(
                ref=sha,
                task="deploy",
                auto_merge=False,
                required_contexts=[],
                payload=self.payload(outputs),
                environment=self.environment,
                description=self._description(outputs),
                transient_environment=False,
                production_environment=production,
            ),
        )
        self._deployment = deployment
        self.deployment_id = int(deployment.id)
        self.log(f"GitHub deployment {self.deployment_id} ({self.environment}) created")
        try:
            self._status("in_progress", self._description(outputs))
        except GitHubError as exc:
            # Nothing was written to the registry: do not leave a deployment pending forever.
            try:
                self._status("error", f"promotion not started: {exc}")
            except Exception as inner:
                self.warn(f"deployment {self.deployment_id} is left pending: {inner}")
            raise

    def fail(self, message: str) -> None:
        """Mark the deployment ``failure``; a GitHub error here only becomes a warning."""
        if self._deployment is None:
            return
        try:
            self._status("failure", message)
        except Exception as exc:  # never hide the original error behind this one
            self.warn(f"could not mark deployment {self.deployment_id} as failed: {exc}")

    def finish(self, outputs: dict[str, str]) -> dict[str, str]:
        """Mark success, create the git tag and the release; return their outputs."""
        from promote import naming

        result = {"deployment-id": "", "release-url": ""}
        version = outputs.get("version", "")
        try:
            if self._deployment is not None:
                self._status("success", self._description(outputs))
                result["deployment-id"] = str(self.deployment_id)
            if not (self.git_tag or self.release):
                return result
            if not version:
                raise GitHubError("no version is known for the git tag / release")
            sha = self.resolve_sha(outputs)
            if self.git_tag:
                self.create_tag(f"v{version}", sha)
            if self.release:
                previous = naming.parse_immutable_tag(
                    self.environment, outputs.get("previous-tag", "")
                )
                result["release-url"] = self.create_release(
                    f"v{version}", sha, previous=str(previous.version) if previous else ""
                )
        except GitHubError as exc:
            done = outputs.get("tag", "")
            raise GitHubError(
                f"the {self.kind} itself is complete ({done} -> {outputs.get('digest', '')}), "
                f"but a GitHub record failed: {exc}",
                status=exc.status,
            ) from exc
        return result

    def _check_tag_free(self, name: str, sha: str) -> None:
        existing = self.tag_sha(name)
        if existing is not None and existing != sha:
            raise GitHubError(
                f"git tag {name} already exists on {existing[:12]}, not on {sha[:12]}: tags "
                "are never moved; nothing was written (pick another version, or delete the "
                "tag by hand)",
                status=422,
            )

    # -- tags and releases ----------------------------------------------------------------
    def tag_sha(self, name: str) -> str | None:
        """The commit a tag names (annotated tags dereferenced); ``None`` when it is absent."""

        def read() -> str:
            ref = self.repo.get_git_ref(f"tags/{name}")
            obj_type, obj_sha = ref.object.type, ref.object.sha
            if obj_type == "tag":
                obj_sha = self.repo.get_git_tag(obj_sha).object.sha
            return str(obj_sha)

        try:
            return githubapi.run(read)
        except APIFailure as failure:
            if failure.status == 404:
                return None
            raise github_error(f"read tag {name}", "tag", failure) from None

    def create_tag(self, name: str, sha: str) -> None:
        """``refs/tags/<name>`` on ``sha``; existing on ``sha``: fine; elsewhere: refused."""
        try:
            githubapi.run(lambda: self.repo.create_git_ref(f"refs/tags/{name}", sha))
            self.log(f"git tag {name} -> {sha[:12]} created in {self.repository}")
            return
        except APIFailure as failure:
            if failure.status != 422:
                raise github_error(f"create tag {name}", "tag", failure) from None
            refused = failure
        existing = self.tag_sha(name)
        if existing == sha:
            self.log(f"git tag {name} already names {sha[:12]}")
            return
        if existing is None:
            raise github_error(f"create tag {name}", "tag", refused)
        raise GitHubError(
            f"git tag {name} already exists on {existing[:12]}, not on {sha[:12]}: tags are "
            "never moved; pick another version or delete the tag by hand",
            status=422,
        )

    def create_release(self, name: str, sha: str, *, previous: str) -> str:
        """A Release ``name`` with notes generated since ``v<previous>``; returns its URL."""
        previous_tag = f"v{previous}" if previous and f"v{previous}" != name else ""
        if previous_tag and self.tag_sha(previous_tag) is None:
            self.log(f"previous version tag {previous_tag} does not exist; notes use the default")
            previous_tag = ""
        repo = self.repo

        def notes() -> str:
            if previous_tag:
                generated = repo.generate_release_notes(
                    name, previous_tag_name=previous_tag, target_commitish=sha
                )
            else:
                generated = repo.generate_release_notes(name, target_commitish=sha)
            return str(generated.body)

        body = call(f"generate release notes for {name}", "release", notes)
        try:
            release = githubapi.run(
                lambda: repo.create_git_release(
                    name, name=name, message=body, target_commitish=sha, make_latest="true"
                )
            )
        except APIFailure as failure:
            already = failure.status == 422 and "already_exists" in str(failure.data)
            if not already:
                raise github_error(f"create release {name}", "release", failure) from None
            release = call(f"read release {name}", "release", lambda: repo.get_release(name))
        url = str(release.html_url)
        self.log(f"GitHub release {name}: {url}")
        return url
