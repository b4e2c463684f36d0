"""GitHub records of a promotion or rollback: a Deployment with statuses, a git tag, a Release.

Called by ``promote`` and ``rollback`` around their registry writes::

    records = PromotionRecords.from_context(ctx, kind="promote")   # inputs checked, no I/O
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

Errors become :class:`GitHubError` with the HTTP status and what permission to grant; the
token is never part of a message.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from promote.errors import GitHubError, InputError

if TYPE_CHECKING:
    from github.Deployment import Deployment
    from github.Repository import Repository

    from promote.commands import Context

DEFAULT_API_URL = "https://api.github.com"
DEFAULT_SERVER_URL = "https://github.com"
REPOSITORY_RE = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})/[A-Za-z0-9._-]{1,100}")
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


def valid_repository(name: str) -> bool:
    """``owner/name`` as GitHub allows it (no ``.``/``..`` name, nothing else around it)."""
    if not REPOSITORY_RE.fullmatch(name):
        return False
    return name.split("/", 1)[1] not in {".", ".."}


def throttle_enabled(env: Mapping[str, str]) -> bool:
    """PyGithub's pacing between calls; ``PROMOTE_GITHUB_THROTTLE=false`` turns it off."""
    return env.get("PROMOTE_GITHUB_THROTTLE", "true").lower() not in {"0", "false"}


def http_url(value: str, *, what: str, input_name: str | None = None) -> str:
    """An ``http(s)`` URL with a host; plain ``http`` only for loopback hosts."""
    from promote.reference import is_loopback_host

    parsed = urllib.parse.urlsplit(value)
    if parsed.scheme not in {"http", "https"} or not parsed.hostname:
        raise InputError(f"{what} {value[:80]!r} must be an http(s) URL", input_name=input_name)
    if not parsed.hostname.isascii():
        raise InputError(
            f"{what} host must be ASCII (write an international name in punycode, xn--...): "
            f"{ascii(parsed.hostname)[:80]}",
            input_name=input_name,
        )
    if parsed.username or parsed.password:
        raise InputError(f"{what} must not carry credentials", input_name=input_name)
    if parsed.scheme == "http" and not is_loopback_host(parsed.hostname):
        raise InputError(
            f"{what} {value[:80]!r} must use https (plain http only for loopback)",
            input_name=input_name,
        )
    return value


def github_client(token: str, api_url: str, *, throttle: bool = True) -> Any:
    """A PyGithub client for ``api_url`` (imported lazily: it costs start-up time).

    ``throttle`` keeps PyGithub's pacing (0.25 s between requests, 1 s between writes, as
    GitHub's secondary rate limits ask); tests turn it off.
    """
    from github import Auth, Github, GithubRetry

    return Github(
        auth=Auth.Token(token),
        base_url=api_url.rstrip("/"),
        timeout=30,
        retry=GithubRetry(total=3, backoff_factor=0.5, max_rate_limit_wait=60),
        seconds_between_requests=0.25 if throttle else None,
        seconds_between_writes=1.0 if throttle else None,
        lazy=True,
    )


def call(what: str, kind: str, fn: Callable[[], T]) -> T:
    """Run one PyGithub call; map its failures to :class:`GitHubError` (no token in text)."""
    import requests
    from github import GithubException

    try:
        return fn()
    except GithubException as exc:
        raise github_error(what, kind, exc) from None
    except requests.RequestException as exc:
        raise unreachable(what, exc) from None


def unreachable(what: str, exc: Exception) -> GitHubError:
    """A connection-level failure of a GitHub API call (no URL or token in the text)."""
    return GitHubError(f"{what}: cannot reach the GitHub API ({type(exc).__name__})")


def github_error(what: str, kind: str, exc: Any) -> GitHubError:
    status = int(getattr(exc, "status", 0) or 0)
    data = getattr(exc, "data", None)
    detail = ""
    if isinstance(data, dict):
        detail = str(data.get("message") or "")
        errors = data.get("errors")
        if isinstance(errors, list):
            parts = [
                str(e.get("message") or e.get("code") or "") if isinstance(e, dict) else str(e)
                for e in errors
            ]
            detail += "".join(f"; {p}" for p in parts if p)
    hint = ""
    if status == 401:
        hint = " (the github-token is invalid or expired)"
    elif status in {403, 404}:
        hint = f" ({PERMISSION_HINTS.get(kind, 'check the token permissions')})"
    elif status == 422:
        hint = " (GitHub refused the request as invalid)"
    return GitHubError(
        f"{what}: HTTP {status}: {detail[:300] or 'no message'}{hint}", status=status
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

    # -- construction (no network) ----------------------------------------------------------
    @classmethod
    def from_context(cls, ctx: Context, *, kind: str) -> PromotionRecords:
        """Validate every GitHub input without a network call."""
        from promote import naming

        if kind not in KINDS:
            raise ValueError(kind)
        inputs, env = ctx.inputs, ctx.env
        create_deployment = inputs.bool("create-deployment")
        git_tag = inputs.bool("git-tag")
        release = inputs.bool("release")
        if kind == "rollback" and (git_tag or release):
            raise InputError(
                "git-tag and release are for command: promote; a rollback re-deploys a version "
                "that already has its tag and release",
                input_name="git-tag" if git_tag else "release",
            )
        token = inputs.secret("github-token")
        if not token:
            raise InputError(
                "create-deployment, git-tag and release need github-token "
                "(e.g. github-token: ${{ github.token }})",
                input_name="github-token",
            )
        ctx.runner.add_secret(token)
        repository = inputs.str("repository") or env.get("GITHUB_REPOSITORY", "")
        if not valid_repository(repository):
            raise InputError(
                f"repository {repository[:80]!r} must be owner/name (input repository or "
                "GITHUB_REPOSITORY)",
                input_name="repository",
            )
        api_url = http_url(env.get("GITHUB_API_URL") or DEFAULT_API_URL, what="GITHUB_API_URL")
        environment_url = inputs.str("environment-url")
        if environment_url:
            http_url(environment_url, what="environment-url", input_name="environment-url")
        environment = naming.validate_env(inputs.str("target-env"), input_name="target-env")
        commit_sha = inputs.str("commit-sha").lower()
        if commit_sha:
            naming.short_sha(commit_sha)
        server = env.get("GITHUB_SERVER_URL") or DEFAULT_SERVER_URL
        run_id = env.get("GITHUB_RUN_ID", "")
        log_url = ""
        if run_id.isdigit() and env.get("GITHUB_REPOSITORY"):
            http_url(server, what="GITHUB_SERVER_URL")
            log_url = f"{server.rstrip('/')}/{env['GITHUB_REPOSITORY']}/actions/runs/{run_id}"
        throttle = throttle_enabled(env)
        return cls(
            kind=kind,
            token=token,
            repository=repository,
            api_url=api_url,
            environment=environment,
            environment_url=environment_url,
            log_url=log_url,
            commit_sha=commit_sha,
            create_deployment=create_deployment,
            git_tag=git_tag,
            release=release,
            throttle=throttle,
            warn=ctx.runner.warning,
            log=ctx.runner.log,
        )

    # -- helpers ------------------------------------------------------------------------------
    @property
    def repo(self) -> Repository:
        if self._repo is None:
            gh = github_client(self.token, self.api_url, throttle=self.throttle)
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
        production = self.environment == "production"
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
        import requests
        from github import GithubException

        try:
            ref = self.repo.get_git_ref(f"tags/{name}")
            obj_type, obj_sha = ref.object.type, ref.object.sha
            if obj_type == "tag":
                obj_sha = self.repo.get_git_tag(obj_sha).object.sha
        except GithubException as exc:
            if exc.status == 404:
                return None
            raise github_error(f"read tag {name}", "tag", exc) from None
        except requests.RequestException as exc:
            raise unreachable(f"read tag {name}", exc) from None
        return str(obj_sha)

    def create_tag(self, name: str, sha: str) -> None:
        """``refs/tags/<name>`` on ``sha``; existing on ``sha``: fine; elsewhere: refused."""
        import requests
        from github import GithubException

        try:
            self.repo.create_git_ref(f"refs/tags/{name}", sha)
            self.log(f"git tag {name} -> {sha[:12]} created in {self.repository}")
            return
        except GithubException as exc:
            if exc.status != 422:
                raise github_error(f"create tag {name}", "tag", exc) from None
            refused = exc
        except requests.RequestException as exc:
            raise unreachable(f"create tag {name}", exc) from None
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
        import requests
        from github import GithubException

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
            release = repo.create_git_release(
                name, name=name, message=body, target_commitish=sha, make_latest="true"
            )
        except requests.RequestException as exc:
            raise unreachable(f"create release {name}", exc) from None
        except GithubException as exc:
            already = exc.status == 422 and "already_exists" in str(exc.data)
            if not already:
                raise github_error(f"create release {name}", "release", exc) from None
            release = call(f"read release {name}", "release", lambda: repo.get_release(name))
        url = str(release.html_url)
        self.log(f"GitHub release {name}: {url}")
        return url
