"""Running ``git`` for GitOps checkouts: one place for the timeout, prompts and errors.

Used by :mod:`promote.flux.source` (reading a revision of a checkout) and
:mod:`promote.gitrevert` (reverting an automation commit). Failures become one
:class:`~promote.errors.GitOpsError` line naming the git subcommand and its last message.
"""

from __future__ import annotations

import subprocess
from collections.abc import Mapping
from pathlib import Path

from promote.errors import GitOpsError

#: A fetch of a large GitOps repository over a slow link fits; a hung credential helper or
#: network does not block a promotion for ever.
GIT_TIMEOUT = 120.0


def run_git(
    root: Path,
    *args: str,
    purpose: str,
    stdin: bytes | None = None,
    env: Mapping[str, str] | None = None,
    check: bool = True,
) -> subprocess.CompletedProcess[bytes]:
    """``git -C root args``. With ``env`` (the action's environment) git never prompts.

    ``purpose`` completes "git is not installed; it is needed to ...".
    """
    full_env = None if env is None else {**env, "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"}
    try:
        proc = subprocess.run(
            ["git", "-C", str(root), *args],
            input=stdin,
            capture_output=True,
            timeout=GIT_TIMEOUT,
            check=False,
            env=full_env,
        )
    except FileNotFoundError as exc:
        raise GitOpsError(f"git is not installed; it is needed to {purpose}") from exc
    except subprocess.TimeoutExpired as exc:
        raise GitOpsError(f"git {args[0]} took longer than {GIT_TIMEOUT:.0f}s") from exc
    if check and proc.returncode != 0:
        text = (proc.stderr or proc.stdout).decode("utf-8", "replace").strip().splitlines()
        raise GitOpsError(f"git {args[0]} failed in {root}: {text[-1] if text else ''}")
    return proc
