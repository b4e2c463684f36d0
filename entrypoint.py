#!/usr/bin/env python3
"""Container entrypoint of the promote action: inputs from ``INPUT_*``, outputs to the runner."""

from __future__ import annotations

import os
import sys


def main() -> int:
    from promote.frontdoor.actions import Runner, read_inputs
    from promote.frontdoor.commands import execute
    from promote.frontdoor.inputs import INPUT_NAMES

    env = dict(os.environ)
    runner = Runner.from_env(env)
    return execute(read_inputs(INPUT_NAMES, env), env, runner)


if __name__ == "__main__":
    sys.exit(main())
