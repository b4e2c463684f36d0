"""The three ways to promote an image that the benchmarks compare, as subprocesses.

* ``promote``: this project's console script, ``promote promote --image R --source-tag T
  --json`` (the same engine as the action's ``entrypoint.py``); writes the immutable tag
  and the floating ``production`` tag.
* ``skopeo``: Debian's ``skopeo copy`` from ``docker://R:T`` to ``docker://R:<new tag>``
  (plain HTTP: ``--src-tls-verify=false --dest-tls-verify=false``; ``--multi-arch all`` for
  an index); one tag per run.
* ``docker``: ``docker pull R:T`` + ``docker tag`` + ``docker push R:<new tag>`` on the local
  engine (dockerd treats 127.0.0.0/8 as an insecure registry by default); one tag per run.
  The pulled images are removed after each run (untimed), so every pull is cold.

Each run returns its wall time and the digest(s) it wrote, so the benchmark can report
whether the tool kept the source digest.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

TOOLS = ("promote", "skopeo", "docker")
#: what the size benchmark times: the three tools plus promote's engine in-process
TIMED = ("promote", "promote-inprocess", "skopeo", "docker")
ROOT = Path(__file__).resolve().parent.parent


class ToolError(RuntimeError):
    """A tool failed (non-zero exit); the message carries its output."""


@dataclass(frozen=True)
class Run:
    tool: str
    seconds: float
    #: tags this run wrote (without the repository)
    written: tuple[str, ...]


def promote_command() -> list[str]:
    script = Path(sys.executable).parent / "promote"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "promote.frontdoor.cli"]


def _run(argv: list[str], *, env: dict[str, str] | None = None) -> tuple[float, str]:
    started = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        raise ToolError(
            f"{' '.join(argv)} exited {proc.returncode}:\n"
            f"{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
        )
    return seconds, proc.stdout


def clean_env() -> dict[str, str]:
    """The environment for tool runs: no runner inputs, no proxies for loopback."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("INPUT_", "GITHUB_", "RUNNER_", "PROMOTE_"))
    }
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    return env


def run_promote(image: str, source_tag: str, *, record: bool = False) -> Run:
    """The CLI; ``record`` false (the default here) writes only the tags, as skopeo and
    docker do, so the comparisons are like for like (the record: ``bench/records.py``)."""
    argv = [*promote_command(), "promote", "--image", image, "--source-tag", source_tag, "--json"]
    argv += ["--record", "true" if record else "false"]
    seconds, out = _run(argv, env=clean_env())
    outputs = json.loads(out[out.index("{") :])
    written = tuple(line.rsplit(":", 1)[1] for line in outputs["tags"].splitlines() if line)
    return Run("promote", seconds, written)


def run_promote_inprocess(image: str, source_tag: str) -> Run:
    """The same engine as the CLI, called in this process: no interpreter start, no imports.

    Shows how much of a CLI run is protocol work and how much is Python start-up. The
    modules are imported before the clock starts (:func:`warm_up`).
    """
    import tempfile

    from testkit.engine import engine

    raw = {"command": "promote", "image": image, "source-tag": source_tag, "record": "false"}
    with tempfile.TemporaryDirectory(prefix="bench-out-") as workdir:
        run = engine(Path(workdir), raw, clean_env())
    if run.status != 0:
        raise ToolError(f"promote (in-process) exited {run.status}: {run.log}")
    seconds, outputs = run.elapsed, run.outputs
    written = tuple(line.rsplit(":", 1)[1] for line in outputs["tags"].splitlines() if line)
    return Run("promote-inprocess", seconds, written)


#: what a promotion imports besides the CLI (the in-process timing imports them first)
PROMOTION_MODULES = (
    "promote.frontdoor.commands.promote_cmd",
    "promote.pipeline.release",
    "promote.registry",
    "promote.flux",
    "requests",
)


def warm_up() -> None:
    """Import what an in-process promotion needs, so its timing excludes imports."""
    import importlib

    for name in PROMOTION_MODULES:
        importlib.import_module(name)


def run_skopeo(image: str, source_tag: str, new_tag: str, *, index: bool) -> Run:
    argv = ["skopeo", "copy", "-q", "--src-tls-verify=false", "--dest-tls-verify=false"]
    if index:
        argv += ["--multi-arch", "all"]
    argv += [f"docker://{image}:{source_tag}", f"docker://{image}:{new_tag}"]
    seconds, _out = _run(argv, env=clean_env())
    return Run("skopeo", seconds, (new_tag,))


def docker_rmi(*refs: str) -> None:
    subprocess.run(["docker", "rmi", "-f", *refs], capture_output=True, check=False)


def run_docker(image: str, source_tag: str, new_tag: str) -> Run:
    src, dst = f"{image}:{source_tag}", f"{image}:{new_tag}"
    docker_rmi(src, dst)
    started = time.perf_counter()
    for argv in (
        ["docker", "pull", "-q", src],
        ["docker", "tag", src, dst],
        ["docker", "push", "-q", dst],
    ):
        _run(argv)
    seconds = time.perf_counter() - started
    docker_rmi(src, dst)
    return Run("docker", seconds, (new_tag,))


def run_tool(tool: str, image: str, source_tag: str, new_tag: str, *, index: bool) -> Run:
    if tool == "promote":
        return run_promote(image, source_tag)
    if tool == "promote-inprocess":
        return run_promote_inprocess(image, source_tag)
    if tool == "skopeo":
        return run_skopeo(image, source_tag, new_tag, index=index)
    if tool == "docker":
        return run_docker(image, source_tag, new_tag)
    raise ValueError(tool)


def versions() -> dict[str, str]:
    """Versions of every tool involved (the machine section of BENCHMARKS.md)."""

    def first_line(argv: list[str]) -> str:
        if not shutil.which(argv[0]):
            return "not installed"
        proc = subprocess.run(argv, capture_output=True, text=True, check=False)
        return (proc.stdout or proc.stderr).strip().splitlines()[0] if proc.returncode == 0 else "?"

    import platform

    return {
        "python": platform.python_version(),
        "registry": first_line(["docker-registry", "--version"]),
        "skopeo": first_line(["skopeo", "--version"]),
        "docker client": first_line(["docker", "version", "--format", "{{.Client.Version}}"]),
        "docker engine": first_line(["docker", "version", "--format", "{{.Server.Version}}"]),
        "promote": first_line([sys.executable, "-c", "import promote; print(promote.__version__)"]),
    }
