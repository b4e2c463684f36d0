"""The front door: the only layer that reads the environment.

The runner protocol (:mod:`.actions`), the input declarations and parsing (:mod:`.inputs`),
the outputs (:mod:`.outputs`), the commands (:mod:`.commands`) and the CLI (:mod:`.cli`).
Nothing below this package imports it."""
