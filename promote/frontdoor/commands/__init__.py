"""Commands: one module per ``command`` input value, all run through :func:`execute`.

A command is a function ``run(ctx: Context) -> Result``. It reads typed inputs from
``ctx.inputs``, reports through ``ctx.runner`` (log, annotations, masks) and returns its
outputs and summary; it never touches ``os.environ`` or stdout directly, and raises
:class:`promote.errors.PromoteError` for anything a user can cause. Modules are imported
only when their command runs, so start-up stays fast.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property

from promote.errors import InputError
from promote.frontdoor.actions import Runner
from promote.frontdoor.inputs import Inputs
from promote.frontdoor.settings import Settings

__all__ = ["COMMANDS", "Context", "Result", "execute", "resolve"]

#: command name -> module implementing ``run(ctx)``
COMMANDS: dict[str, str] = {
    "promote": "promote.frontdoor.commands.promote_cmd",
    "rollback": "promote.frontdoor.commands.rollback_cmd",
    "check": "promote.frontdoor.commands.check_cmd",
    "verify-flux": "promote.frontdoor.commands.verify_flux_cmd",
    "build-tags": "promote.frontdoor.commands.build_tags_cmd",
    "automate": "promote.frontdoor.commands.automate_cmd",
    "predict": "promote.frontdoor.commands.predict_cmd",
    "trace": "promote.frontdoor.commands.trace_cmd",
}


@dataclass
class Context:
    """What a command may use: inputs, the runner, the environment (read-only), a clock.

    ``settings`` holds every ``GITHUB_*`` / ``PROMOTE_*`` / ``RUNNER_*`` variable as a
    validated value (:class:`~promote.frontdoor.settings.Settings`, built once from ``env``);
    a command reads those there, never from ``env``, which stays for what needs the whole
    environment (subprocesses, credential helpers)."""

    inputs: Inputs
    runner: Runner
    env: Mapping[str, str]
    clock: Callable[[], float] = time.time

    @cached_property
    def settings(self) -> Settings:
        return Settings(self.env)


@dataclass
class Result:
    """A command's outputs (in order), its job-summary Markdown, and whether it failed.

    ``failed`` is for commands that report many problems as annotations (``check``) and
    must still exit non-zero; ``message`` is then the closing ``::error::`` line. The
    outputs of a failed result are still written (e.g. ``errors``, ``synced=false``).
    """

    outputs: dict[str, str] = field(default_factory=dict)
    summary: str = ""
    failed: bool = False
    message: str = ""
    #: exit status of a failed result (``promote``/``rollback`` whose record failed: 6)
    exit_code: int = 1


def resolve(name: str) -> Callable[[Context], Result]:
    if name not in COMMANDS:
        raise InputError(
            f"unknown command {name[:40]!r}; expected one of {', '.join(COMMANDS)}",
            input_name="command",
        )
    module = importlib.import_module(COMMANDS[name])
    run: Callable[[Context], Result] = module.run
    return run


def execute(raw: Mapping[str, str], env: Mapping[str, str], runner: Runner) -> int:
    """The one engine behind ``entrypoint.py`` and the ``promote`` console script.

    Secrets are masked before anything is read or printed; inputs are screened before any
    command (and so any network call) runs; outputs are written when the command returns
    (a :class:`Result`, failed or not), never when it raises. Returns the process exit
    status. No traceback reaches the user: a :class:`PromoteError` becomes its message,
    anything else a short internal-error line (with the traceback only when
    ``PROMOTE_DEBUG`` or ``RUNNER_DEBUG`` is set).
    """
    from promote.errors import PromoteError

    for name in ("password", "github-token", "source-password"):
        runner.add_secret(raw.get(name, "").strip())
    try:
        inputs = Inputs(raw)
        inputs.check_types()
        run = resolve(inputs.str("command"))
        result = run(Context(inputs=inputs, runner=runner, env=env))
        if result.summary:
            runner.write_summary(result.summary)
        # Outputs are written on failure too (check's counts, verify-flux's synced=false):
        # a failed command's outputs describe the failure, never a half-done write.
        runner.set_outputs(result.outputs)
        if result.failed:
            runner.error(result.message or "command failed")
            return result.exit_code
        return 0
    except PromoteError as exc:
        runner.error(str(exc))
        return exc.exit_code
    except Exception as exc:  # a bug: say so in one line, never dump a traceback by default
        if Settings(env).debug:
            import traceback

            runner.log(traceback.format_exc())
        runner.error(f"internal error ({type(exc).__name__}): {exc}")
        return 70
