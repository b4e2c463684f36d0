#!/usr/bin/env python3
"""``make release``: build the action image, test it by digest, promote it with itself, tag it.

``make release VERSION=X.Y.Z IMAGE=<registry>/<repo> [BUMP=patch|minor|major] [BASE_IMAGE=...]``
runs ``scripts/release.py --version ... --image ...``. In order, stopping at the first failure:

0. checks, before anything is built: a clean work tree, the version (``VERSION``, or
   ``BUMP`` over the newest of the image's ``production-v*`` tags and the ``v*`` git tags)
   not released yet and greater than the current one;
1. ``docker build`` of the Dockerfile (legacy builder; ``BASE_IMAGE`` is passed as the build
   argument of that name) with the OCI labels of ``build-tags``, ``docker push`` as
   ``IMAGE:staging-<sha7>-<ts>``, then the pushed manifest re-written as an OCI manifest that
   carries the same keys as annotations (same config and layer blobs) under that tag: its
   digest is *the* digest of the release;
2. smoke tests of ``IMAGE@<digest>`` run as the runner runs a Docker action (``INPUT_*``,
   ``GITHUB_OUTPUT`` and ``GITHUB_STEP_SUMMARY`` mounted): ``build-tags``, and a dry-run
   ``promote`` against a throwaway loopback registry;
3. ``promote`` run *from that image* (not from this checkout): ``IMAGE@<digest>`` becomes
   ``production`` and ``production-vX.Y.Z-<sha7>-<ts>`` in ``IMAGE``; then both tags are
   checked to name the digest;
4. release commits made with git plumbing (the branch, index and work tree stay as they are):
   the *action commit* (``action.yml`` runs ``docker://IMAGE@<digest>``, CHANGELOG.md gains
   the release's section), then the *release commit* on top, whose workflows pin
   ``<repository>@<action commit>`` (every such ``uses:`` found by parsing the YAML), then, when
   a file calls a reusable workflow of this repository, the *examples commit* pinning those
   calls to the release commit. The last one is tagged ``vX.Y.Z`` (annotated: the digest and
   the image tags);
5. prints, last, one JSON line: ``version``, ``digest``, ``image``, ``staging-tag``,
   ``production-tag``, ``tag``, ``commit`` (exactly these; the action commit is named in the
   tag's message and is the first commit after ``HEAD`` in the tagged chain).

A staging tag pushed before a failed smoke test stays (it is a build, never a release); no
``production*`` tag, commit or git tag exists until the steps before it passed. Registry
credentials come from ``PROMOTE_USERNAME``/``PROMOTE_PASSWORD`` or, for ghcr.io,
``GITHUB_TOKEN`` (as for the CLI); ``docker push`` uses ``docker login``'s.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from promote import naming  # noqa: E402
from promote.errors import PromoteError  # noqa: E402
from promote.reference import Repository, parse_repository  # noqa: E402

#: How the workflows name this repository's action (``uses: acme/promote@<sha>``).
DEFAULT_REPOSITORY = "acme/promote"
#: Files whose ``uses:`` lines the release commits rewrite.
WORKFLOW_GLOBS = (".github/workflows/*.yml", ".github/workflows/*.yaml", "examples/workflows/*.yml")
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
#: Docker schema 2 media types -> their OCI equivalents (same bytes, other name).
OCI_EQUIVALENT = {
    "application/vnd.docker.container.image.v1+json": OCI_CONFIG,
    "application/vnd.docker.image.rootfs.diff.tar.gzip": (
        "application/vnd.oci.image.layer.v1.tar+gzip"
    ),
    "application/vnd.docker.image.rootfs.diff.tar": "application/vnd.oci.image.layer.v1.tar",
}
CHANGELOG = "CHANGELOG.md"
SMOKE_REPO = "smoke/backend"
#: The image's inputs for registry credentials, from the variables the CLI reads.
CREDENTIAL_INPUTS = {
    "username": "PROMOTE_USERNAME",
    "password": "PROMOTE_PASSWORD",
    "github-token": "GITHUB_TOKEN",
}
IDENTITY = {"GIT_AUTHOR_NAME": "promote release", "GIT_AUTHOR_EMAIL": "release@promote.invalid"}


class ReleaseError(Exception):
    """One line for the user; the release stopped here."""


def log(msg: str) -> None:
    print(f"[release] {msg}", file=sys.stderr, flush=True)


# -- running things ----------------------------------------------------------------------------
def run(
    cmd: Sequence[str],
    *,
    what: str,
    cwd: Path = ROOT,
    env: Mapping[str, str] | None = None,
    stdin: bytes | None = None,
    timeout: float = 1800,
) -> str:
    """Run ``cmd``; its stdout (text). A failure is a ReleaseError naming ``what``."""
    try:
        proc = subprocess.run(
            list(cmd),
            cwd=cwd,
            env=dict(env) if env is not None else None,
            input=stdin,
            capture_output=True,
            timeout=timeout,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ReleaseError(f"{what}: {exc}") from None
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).decode("utf-8", "replace").strip().splitlines()
        last = " | ".join(tail[-3:]) if tail else "no output"
        raise ReleaseError(f"{what} failed (exit {proc.returncode}): {last[-600:]}")
    return proc.stdout.decode("utf-8", "replace")


def git(*args: str, stdin: bytes | None = None, env: Mapping[str, str] | None = None) -> str:
    return run(["git", *args], what=f"git {args[0]}", stdin=stdin, env=env).strip()


def show(commit: str, path: str) -> str:
    """``path`` as committed in ``commit``, byte for byte."""
    return run(["git", "show", f"{commit}:{path}"], what=f"git show {commit}:{path}")


def docker(*args: str, timeout: float = 1800) -> str:
    env = {**os.environ, "DOCKER_BUILDKIT": "0"}  # the legacy builder: no buildx needed
    return run(["docker", *args], what=f"docker {args[0]}", env=env, timeout=timeout)


# -- the version ---------------------------------------------------------------------------
def git_versions() -> dict[str, str]:
    """``vX.Y.Z`` git tags of this repository -> the commit they name."""
    out = git("for-each-ref", "--format=%(refname:short) %(objectname)", "refs/tags/v*")
    found: dict[str, str] = {}
    for line in out.splitlines():
        name, _, obj = line.partition(" ")
        if re.fullmatch(r"v\d+\.\d+\.\d+", name):
            found[name] = obj
    return found


def choose_version(
    explicit: str, bump: str, registry_tags: Sequence[str], git_tags: Sequence[str]
) -> str:
    """The version to release; refuses one that exists (registry or git) or is not newer."""
    in_registry = [t.version for t in naming.immutable_tags("production", registry_tags)]
    in_git = [naming.parse_version(t) for t in git_tags]
    known = in_registry + in_git
    wanted = naming.parse_version(explicit) if explicit else None
    if wanted is not None and wanted in in_git:
        raise ReleaseError(
            f"version {wanted} is already released (git tag v{wanted}); nothing was built"
        )
    if wanted is not None and wanted in in_registry:
        raise ReleaseError(
            f"version {wanted} is already released: the image has production-v{wanted}-* but "
            f"there is no git tag v{wanted} here (fetch the tags; or a release stopped after its "
            "promotion: release the next version); nothing was built"
        )
    try:
        return str(naming.next_version(max(known, default=None), bump=bump, explicit=wanted))
    except PromoteError as exc:
        raise ReleaseError(f"{exc}; nothing was built") from None


# -- registry access with the checkout's engine (before and after the image's own run) --------
def registry_client(repository: Repository) -> Any:
    from promote.registry import RegistryClient, credentials_for

    env = os.environ
    username, password, token = (env.get(var) for var in CREDENTIAL_INPUTS.values())
    creds = credentials_for(repository, username, password, token, env)
    return RegistryClient(repository, creds)


# -- step 1: build and push ---------------------------------------------------------------------
def build_tags(sha: str, ts: int, image: str) -> dict[str, Any]:
    """``promote build-tags`` (this checkout's engine) for the staging build."""
    out = run(
        [
            sys.executable,
            "-m",
            "promote.frontdoor.cli",
            "build-tags",
            "--env",
            "staging",
            "--commit-sha",
            sha,
            "--timestamp",
            str(ts),
            "--image",
            image,
            "--json",
        ],
        what="promote build-tags",
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    doc: dict[str, Any] = json.loads(out[out.index("{") :])
    return json.loads(doc["json"])  # type: ignore[no-any-return]


def oci_with_annotations(data: bytes, annotations: Mapping[str, str]) -> bytes:
    """The pushed Docker schema 2 (or OCI) manifest as an OCI manifest with ``annotations``.

    Same config and layer blobs (digests and sizes); only the media type names change.
    """
    doc = json.loads(data)
    if doc.get("schemaVersion") != 2 or "config" not in doc or "layers" not in doc:
        raise ReleaseError("docker push wrote no single-image schema 2 manifest")

    def descriptor(d: Mapping[str, Any]) -> dict[str, Any]:
        media_type = OCI_EQUIVALENT.get(d["mediaType"], d["mediaType"])
        return {"mediaType": media_type, "digest": d["digest"], "size": d["size"]}

    oci = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": descriptor(doc["config"]),
        "layers": [descriptor(layer) for layer in doc["layers"]],
        "annotations": dict(annotations),
    }
    return json.dumps(oci, indent=2, sort_keys=False).encode() + b"\n"


def build_and_push(image: str, staging_tag: str, meta: dict[str, Any], base: str) -> str:
    """Build, push, annotate; the digest of the staging tag."""
    ref = f"{image}:{staging_tag}"
    args = ["build", "-q", "-t", ref]
    if base:
        args += ["--build-arg", f"BASE_IMAGE={base}"]
    for key, value in meta["labels"].items():
        args += ["--label", f"{key}={value}"]
    log(f"1. docker build -t {ref}" + (f" (BASE_IMAGE={base})" if base else ""))
    docker(*args, str(ROOT))
    log(f"1. docker push {ref}")
    docker("push", "-q", ref)
    from promote.registry import Manifest

    client = registry_client(parse_repository(image))
    try:
        pushed = client.get_manifest(staging_tag)
        oci = Manifest.from_bytes(
            oci_with_annotations(pushed.data, meta["annotations"]), OCI_MANIFEST
        )
        digest: str = client.put_manifest(staging_tag, oci)
    except PromoteError as exc:
        raise ReleaseError(f"annotating {ref}: {exc}") from None
    finally:
        client.close()
    log(f"1. {ref} = {digest} (OCI manifest, build-tags annotations)")
    return digest


# -- steps 2 and 3: the image, run as the runner runs it --------------------------------------
@dataclass
class ActionRun:
    returncode: int
    log: str
    outputs: dict[str, str]
    summary: str


def run_action(
    ref: str, inputs: Mapping[str, str], *, network: str, pass_env: Sequence[str] = ()
) -> ActionRun:
    """``docker run`` of ``ref`` with ``INPUT_*`` variables and the runner's command files."""
    from promote.frontdoor.actions import parse_github_output

    with tempfile.TemporaryDirectory(prefix="promote-release-") as tmp:
        files = Path(tmp)
        (files / "output").touch()
        (files / "summary").touch()
        cmd = [
            "docker",
            "run",
            "--rm",
            "--network",
            network,
            "-v",
            f"{files}:/github/file_commands",
        ]
        cmd += ["-e", "GITHUB_OUTPUT=/github/file_commands/output"]
        cmd += ["-e", "GITHUB_STEP_SUMMARY=/github/file_commands/summary"]
        cmd += ["-e", "GITHUB_ACTIONS=true"]
        env = dict(os.environ)
        for name, value in inputs.items():
            var = f"INPUT_{name.upper()}"
            env[var] = value
            cmd += ["-e", var]  # the value stays in the environment, off the command line
        for name in pass_env:
            if os.environ.get(name):
                cmd += ["-e", name]
        proc = subprocess.run(
            [*cmd, ref], env=env, capture_output=True, text=True, timeout=600, check=False
        )
        outputs = parse_github_output((files / "output").read_text(encoding="utf-8"))
        summary = (files / "summary").read_text(encoding="utf-8")
    return ActionRun(proc.returncode, proc.stdout + proc.stderr, outputs, summary)


def _failed(what: str, result: ActionRun) -> ReleaseError:
    errors = [line for line in result.log.splitlines() if "::error" in line]
    shown = errors[0] if errors else (result.log.strip().splitlines() or ["no output"])[-1]
    return ReleaseError(f"{what} (exit {result.returncode}): {shown[:400]}")


def smoke_test(ref: str, sha: str, ts: int, staging_tag: str, meta: dict[str, Any]) -> None:
    """``build-tags`` and a dry-run ``promote`` of the pushed image, by digest."""
    log(f"2. smoke test {ref}: build-tags")
    result = run_action(
        ref,
        {"command": "build-tags", "env": "staging", "commit-sha": sha, "timestamp": str(ts)},
        network="none",
    )
    if result.returncode != 0:
        raise _failed("smoke test build-tags failed", result)
    if (
        result.outputs.get("tag") != staging_tag
        or json.loads(result.outputs.get("json", "{}")).get("labels") != meta["labels"]
    ):
        raise ReleaseError(f"smoke test build-tags: unexpected outputs {result.outputs}")
    if "Build tags" not in result.summary:
        raise ReleaseError("smoke test build-tags: no step summary written")

    log(f"2. smoke test {ref}: dry-run promote on a throwaway loopback registry")
    from testkit.registry import RegistryServer

    with RegistryServer("none") as server:
        seeder = server.seeder()
        try:
            source = f"staging-{sha[:7]}-{ts}"
            seeded = seeder.oci_image(SMOKE_REPO, source, revision=sha)
            before = sorted(seeder.tags(SMOKE_REPO))
            result = run_action(
                ref,
                {
                    "command": "promote",
                    "image": f"{server.host}/{SMOKE_REPO}",
                    "source-tag": source,
                    "dry-run": "true",
                },
                network="host",
            )
            after = sorted(seeder.tags(SMOKE_REPO))
        finally:
            seeder.close()
    if result.returncode != 0:
        raise _failed("smoke test dry-run promote failed", result)
    planned = result.outputs.get("tag", "")
    if result.outputs.get("digest") != seeded.digest or not planned.startswith(
        f"production-v1.0.0-{sha[:7]}-"
    ):
        raise ReleaseError(f"smoke test dry-run promote: unexpected outputs {result.outputs}")
    if after != before:
        raise ReleaseError(
            f"smoke test dry-run promote wrote tags: {sorted(set(after) - set(before))}"
        )


def self_promote(
    ref: str, image: str, digest: str, *, staging_tag: str, version: str, sha: str
) -> str:
    """Promote ``digest`` with the image itself; the immutable tag written."""
    log(f"3. {ref} promotes itself to production (v{version})")
    inputs = {
        "command": "promote",
        "image": image,
        "source-tag": staging_tag,
        "source-digest": digest,
        "version": version,
        "commit-sha": sha,
    }
    for name, var in CREDENTIAL_INPUTS.items():
        if os.environ.get(var):
            inputs[name] = os.environ[var]  # handed over in the environment, never argv
    result = run_action(ref, inputs, network="host", pass_env=("GITHUB_ACTOR",))
    if result.returncode != 0:
        raise _failed(
            "promote (run from the released image) failed; no release commit or git tag was "
            "made, see its message for the tags written",
            result,
        )
    tag = result.outputs.get("tag", "")
    if result.outputs.get("digest") != digest or not tag.startswith(
        f"production-v{version}-{sha[:7]}-"
    ):
        raise ReleaseError(f"promote wrote unexpected outputs {result.outputs}")
    client = registry_client(parse_repository(image))
    try:
        for name in (tag, "production"):
            found = client.get_manifest(name).digest
            if found != digest:
                raise ReleaseError(f"{image}:{name} is {found}, not the released {digest}")
    finally:
        client.close()
    return tag


# -- step 4: the release commits -------------------------------------------------------------------
def _yaml(text: str, what: str) -> Any:
    """``text`` parsed; a file that is not YAML stops the release with one line."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise ReleaseError(f"{what} is not valid YAML{where}") from None


def _uses_values(doc: Any) -> list[str]:
    """Every ``uses:`` value of a workflow (jobs calling workflows, steps using actions)."""
    found: list[str] = []
    jobs = doc.get("jobs") if isinstance(doc, dict) else None
    for job in (jobs or {}).values():
        if not isinstance(job, dict):
            continue
        if isinstance(job.get("uses"), str):
            found.append(job["uses"])
        for step in job.get("steps") or []:
            if isinstance(step, dict) and isinstance(step.get("uses"), str):
                found.append(step["uses"])
    return found


def repository_refs(text: str, repository: str) -> tuple[list[str], list[str]]:
    """(action references, reusable-workflow references) of ``repository`` in a workflow."""
    actions, workflows = [], []
    for value in _uses_values(_yaml(text, "a workflow")):
        name, _, _ref = value.partition("@")
        if name == repository:
            actions.append(value)
        elif name.startswith(f"{repository}/.github/workflows/"):
            workflows.append(value)
    return actions, workflows


_USES_LINE = re.compile(
    r"^(?P<lead>\s*(?:-\s+)?uses:\s*)(?P<q>['\"]?)(?P<name>[^@\s'\"]+)@(?P<ref>[^\s'\"#]+)"
    r"(?P=q)(?P<comment>\s+#.*)?$",
    re.MULTILINE,
)


def pin(text: str, repository: str, *, workflows: bool, sha: str, version: str) -> str:
    """``text`` with every action (or reusable-workflow) reference of ``repository`` pinned.

    The references are found by parsing the YAML; the matching ``uses:`` lines are rewritten
    in place (comments and layout kept) to ``<name>@<sha> # v<version>``, and the result is
    parsed again: every reference found must now be exactly that, nothing else may change.
    """
    actions, calls = repository_refs(text, repository)
    wanted = calls if workflows else actions
    if not wanted:
        return text

    def matches(name: str) -> bool:
        if workflows:
            return name.startswith(f"{repository}/.github/workflows/")
        return name == repository

    def replace(m: re.Match[str]) -> str:
        if not matches(m.group("name")):
            return m.group(0)
        return f"{m.group('lead')}{m.group('name')}@{sha} # v{version}"

    new = _USES_LINE.sub(replace, text)
    new_actions, new_calls = repository_refs(new, repository)
    got = new_calls if workflows else new_actions
    expected = [f"{value.partition('@')[0]}@{sha}" for value in wanted]
    if got != expected:
        raise ReleaseError(f"could not pin every {repository} reference: {wanted} -> {got}")
    old_doc, new_doc = _yaml(text, "a workflow"), _yaml(new, "a pinned workflow")
    if _strip_uses(old_doc, repository) != _strip_uses(new_doc, repository):
        raise ReleaseError("pinning changed more than the uses: lines")
    return new


def _strip_uses(doc: Any, repository: str) -> Any:
    if isinstance(doc, dict):
        return {
            k: (
                "<pinned>"
                if k == "uses" and str(v).startswith(repository)
                else _strip_uses(v, repository)
            )
            for k, v in doc.items()
        }
    if isinstance(doc, list):
        return [_strip_uses(v, repository) for v in doc]
    return doc


_RUNS_IMAGE = re.compile(r"^(?P<lead>runs:\n(?:[ \t]+.*\n)*?[ \t]+image:[ \t]*).*$", re.MULTILINE)


def action_yml_for(text: str, image_ref: str) -> str:
    """``action.yml`` with ``runs.image: docker://<image_ref>`` (checked by parsing)."""
    _yaml(text, "action.yml")
    new = _RUNS_IMAGE.sub(
        lambda m: f"{m.group('lead')}{json.dumps('docker://' + image_ref)}", text, count=1
    )
    doc = _yaml(new, "action.yml")
    if (
        doc.get("runs", {}).get("image") != f"docker://{image_ref}"
        or doc.get("runs", {}).get("using") != "docker"
    ):
        raise ReleaseError("action.yml has no `runs: using: docker, image: ...` to pin")
    old = _yaml(text, "action.yml")
    old["runs"]["image"] = doc["runs"]["image"]
    if old != doc:
        raise ReleaseError("pinning action.yml changed more than runs.image")
    return new


def changelog_for(
    current: str, previous: str | None, version: str, section_body: str, date: str
) -> str:
    """CHANGELOG.md of the release: header, ``## Unreleased`` notes moved into the new
    version's section, then the earlier versions' sections (from the previous release's
    CHANGELOG when there is one: releases live on their own commits, not on main)."""
    header, sections = _split_changelog(current)
    unreleased = sections.pop("Unreleased", "").strip()
    if previous is not None:
        _h, sections = _split_changelog(previous)
        sections.pop("Unreleased", None)
    older = "".join(f"## {title}\n{text}" for title, text in sections.items())
    # main's notes stay on main after a release: the ones an earlier release shipped are not
    # listed again.
    unreleased = "\n".join(item for item in _notes(unreleased) if item.strip() not in older).strip()
    body = f"## v{version} ({date})\n\n{section_body.strip()}\n"
    if unreleased:
        body += f"\n{unreleased}\n"
    return f"{header.rstrip()}\n\n{body}\n{older}".rstrip() + "\n"


def _notes(text: str) -> list[str]:
    """The items of a notes block: each ``- ``/``* `` line with its continuation lines."""
    return [item.rstrip("\n") for item in re.split(r"(?m)^(?=[-*] )", text) if item.strip()]


def _split_changelog(text: str) -> tuple[str, dict[str, str]]:
    parts = re.split(r"^## (.+)$", text, flags=re.MULTILINE)
    header, rest = parts[0], parts[1:]
    return header, {rest[i].strip(): rest[i + 1] for i in range(0, len(rest), 2)}


@contextlib.contextmanager
def _identity() -> Iterator[dict[str, str]]:
    """git's environment for commits and tags, with a fallback identity when none is set."""
    env = dict(os.environ)
    if not subprocess.run(
        ["git", "config", "user.email"], cwd=ROOT, capture_output=True, check=False
    ).stdout.strip():
        for key, value in IDENTITY.items():
            env.setdefault(key, value)
            env.setdefault(key.replace("AUTHOR", "COMMITTER"), value)
    yield env


def commit_files(
    parent: str, files: Mapping[str, str], message: str, env: Mapping[str, str]
) -> str:
    """A commit on top of ``parent`` with ``files`` replaced; nothing checked out changes."""
    with tempfile.TemporaryDirectory(prefix="promote-release-index-") as tmp:
        idx_env = {**env, "GIT_INDEX_FILE": str(Path(tmp) / "index")}
        git("read-tree", parent, env=idx_env)
        for path, text in files.items():
            blob = git("hash-object", "-w", "--stdin", stdin=text.encode(), env=idx_env)
            mode = git("ls-tree", parent, "--", path, env=idx_env).split(" ")[0] or "100644"
            git("update-index", "--add", "--cacheinfo", f"{mode},{blob},{path}", env=idx_env)
        tree = git("write-tree", env=idx_env)
    return git("commit-tree", tree, "-p", parent, "-m", message, env=env)


def tree_files(commit: str) -> dict[str, str]:
    """The workflow files of ``commit``: path -> text."""
    names = git("ls-tree", "-r", "--name-only", commit).splitlines()
    pattern = re.compile(r"^(\.github/workflows/[^/]+\.ya?ml|examples/workflows/[^/]+\.yml)$")
    return {n: show(commit, n) for n in names if pattern.match(n)}


def pin_tree(commit: str, repository: str, *, workflows: bool, version: str) -> dict[str, str]:
    """The workflow files of ``commit`` whose references ``pin`` changes, pinned to it."""
    changed = {}
    for path, text in tree_files(commit).items():
        try:
            new = pin(text, repository, workflows=workflows, sha=commit, version=version)
        except ReleaseError as exc:
            raise ReleaseError(f"{path}: {exc}") from None
        if new != text:
            changed[path] = new
    return changed


def release_commits(
    *,
    head: str,
    repository: str,
    image_ref: str,
    version: str,
    changelog: str,
    message: str,
    env: Mapping[str, str],
) -> tuple[str, str]:
    """(action commit, tagged commit) on top of ``head``."""
    action = action_yml_for(show(head, "action.yml"), image_ref)
    action_commit = commit_files(
        head,
        {"action.yml": action, CHANGELOG: changelog},
        f"Release v{version}: the action runs {image_ref}\n\n{message}",
        env,
    )
    log(f"4. action commit {action_commit}: action.yml runs docker://{image_ref}")
    pinned = pin_tree(action_commit, repository, workflows=False, version=version)
    if not any(path.startswith(".github/workflows/") for path in pinned):
        raise ReleaseError(f"no workflow in .github/workflows uses {repository}@<ref>")
    commit = commit_files(
        action_commit,
        pinned,
        f"Release v{version}: the workflows run {repository}@{action_commit}\n\n{message}",
        env,
    )
    log(f"4. release commit {commit}: {len(pinned)} workflow file(s) pin the action commit")
    calls = pin_tree(commit, repository, workflows=True, version=version)
    if calls:
        commit = commit_files(
            commit,
            calls,
            f"Release v{version}: the callers call the workflows of {commit}\n\n{message}",
            env,
        )
        log(f"4. examples commit {commit}: {len(calls)} file(s) call the release's workflows")
    return action_commit, commit


def preflight(head: str, repository: str) -> None:
    """Step 4's rewrites, tried on HEAD before anything is built: they cannot fail later."""
    action_yml_for(show(head, "action.yml"), f"registry.invalid/x@sha256:{'0' * 64}")
    pinned = pin_tree(head, repository, workflows=False, version="0.0.0")
    if not any(path.startswith(".github/workflows/") for path in pinned):
        raise ReleaseError(f"no workflow in .github/workflows uses {repository}@<ref>")
    pin_tree(head, repository, workflows=True, version="0.0.0")


# -- the whole release --------------------------------------------------------------------------
def release(args: argparse.Namespace) -> dict[str, str]:
    image = parse_repository(args.image).name if args.image else ""
    if not image:
        raise ReleaseError("IMAGE is required, e.g. make release IMAGE=ghcr.io/acme/promote")
    if args.bump not in naming.BUMPS:
        raise ReleaseError(f"BUMP must be one of {', '.join(naming.BUMPS)}, not {args.bump!r}")
    if git("status", "--porcelain", "--untracked-files=no"):
        raise ReleaseError("the work tree has uncommitted changes: a release builds HEAD only")
    head = git("rev-parse", "HEAD")
    client = registry_client(parse_repository(image))
    try:
        registry_tags = client.list_tags()
    except PromoteError as exc:
        raise ReleaseError(f"listing the tags of {image}: {exc}") from None
    finally:
        client.close()
    released = git_versions()
    version = choose_version(args.version, args.bump, registry_tags, list(released))
    tag = f"v{version}"
    preflight(head, args.repository)
    log(f"0. releasing {tag} of {head} as {image}")

    ts = max(int(time.time()), 1)
    meta = build_tags(head, ts, image)
    staging_tag = meta["tag"]
    digest = build_and_push(image, staging_tag, meta, args.base_image)
    ref = f"{image}@{digest}"
    smoke_test(ref, head, ts, staging_tag, meta)
    production_tag = self_promote(
        ref, image, digest, staging_tag=staging_tag, version=version, sha=head
    )

    previous = max(
        (v for v in released if naming.parse_version(v) < naming.parse_version(version)),
        key=naming.parse_version,
        default=None,
    )
    base = git("merge-base", previous, head) if previous else ""
    commits = git("log", "--format=- %s (%h)", f"{base}..{head}" if base else head).splitlines()
    listed = "\n".join(commits) if base else f"First release ({len(commits)} commits)."
    date = dt.datetime.fromtimestamp(ts, tz=dt.UTC).strftime("%Y-%m-%d")
    section = (
        f"Image: `{ref}`\n\nTags: `{staging_tag}` (the build, from {head}), `{production_tag}`, "
        f"`production`.\n\nChanges{f' since {previous}' if previous else ''}:\n\n{listed}"
    )
    current_log = _read(head, CHANGELOG) or "# Changelog\n"
    previous_log = _read(previous, CHANGELOG) if previous else None
    changelog = changelog_for(current_log, previous_log, version, section, date)
    message = (
        f"digest: {digest}\nimage: {ref}\ntags: {image}:{staging_tag} {image}:{production_tag} "
        f"{image}:production\nsource: {head}"
    )
    with _identity() as env:
        action_commit, commit = release_commits(
            head=head,
            repository=args.repository,
            image_ref=ref,
            version=version,
            changelog=changelog,
            message=message,
            env=env,
        )
        git(
            "tag",
            "-a",
            tag,
            "-m",
            f"promote {tag}\n\n{message}\naction commit: {action_commit}",
            commit,
            env=env,
        )
    log(f"4. tagged {tag} -> {commit}")
    return {
        "version": version,
        "digest": digest,
        "image": ref,
        "staging-tag": staging_tag,
        "production-tag": production_tag,
        "tag": tag,
        "commit": commit,
    }


def _read(commit: str, path: str) -> str | None:
    """``path`` at ``commit``, None when it has no such file."""
    proc = subprocess.run(
        ["git", "show", f"{commit}:{path}"], cwd=ROOT, capture_output=True, check=False
    )
    return proc.stdout.decode() if proc.returncode == 0 else None


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/release.py", description=__doc__.split("\n")[0])
    parser.add_argument("--image", default="", help="registry/repository of the action image")
    parser.add_argument("--version", default="", help="X.Y.Z (default: BUMP over the last)")
    parser.add_argument("--bump", default="patch", help="patch, minor or major")
    parser.add_argument("--base-image", default="", help="BASE_IMAGE build argument")
    parser.add_argument("--repository", default=DEFAULT_REPOSITORY, help="owner/name in uses:")
    args = parser.parse_args(argv)
    args.bump = args.bump or "patch"
    try:
        result = release(args)
    except (ReleaseError, PromoteError) as exc:
        print(f"::error::release: {exc}", file=sys.stderr, flush=True)
        return 1
    print(json.dumps(result, separators=(",", ":")), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
