"""One release, promote or rollback alike: observe -> plan (pure) -> apply -> record.

:func:`release` runs the sequence every release command shares; the :class:`Rule` (the
request) is what differs. :class:`Hooks` let a command add its own work at fixed points
(the copy before any tag, the GitOps revert after the immutable tag). :func:`outputs` is
the one writer of the action's outputs for both.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from promote.errors import PromoteError
    from promote.github import PromotionRecords
    from promote.pipeline.model import Observed, Plan, Rule, Selector
    from promote.pipeline.record_step import Recorded, RecordSettings
    from promote.registry import Manifest, RegistryClient


@dataclass(frozen=True)
class Hooks:
    """A command's own work at the pipeline's fixed points (each optional)."""

    #: after the plan, before anything is announced or written (a copy into the target)
    prepare: Callable[[Observed, Plan], None] | None = None
    #: with the written tags, right after the writes (inside the GitHub records)
    after_write: Callable[[list[str]], None] | None = None
    #: may replace a write's error with a more precise one for this command
    explain: Callable[[PromoteError], PromoteError] | None = None
    #: after the writes (or the dry run) were reported, before the record step
    after_apply: Callable[[list[str]], None] | None = None


@dataclass(frozen=True)
class Released:
    """What a release did: the plan, what was read, what was written, the record."""

    plan: Plan
    observed: Observed
    written: list[str]
    recorded: Recorded


def release(
    request: Rule,
    client: RegistryClient,
    *,
    now: float,
    policy: Selector,
    dry_run: bool,
    records: PromotionRecords | None,
    record: RecordSettings,
    log: Callable[[str], None],
    warn: Callable[[str], None],
    source: RegistryClient | None = None,
    hooks: Hooks | None = None,
) -> Released:
    """Observe, plan, apply (unless ``dry_run``) and record one release."""
    from promote.pipeline.observe import observe
    from promote.pipeline.plan import plan
    from promote.pipeline.record_step import write_record

    hooks = hooks or Hooks()
    observed = observe(client, request, log=log, now=now, policy=policy, source=source)
    the_plan = plan(request, observed, now=now, policy=policy)
    if hooks.prepare is not None:
        hooks.prepare(observed, the_plan)
    for warning in the_plan.warnings:
        warn(warning)
    for step in the_plan.steps:
        log(f"plan: {step.action} {the_plan.image}:{step.tag} ({step.reason})")
    written: list[str] = []
    if dry_run:
        log("dry run: nothing written")
    else:
        written = apply_recorded(
            the_plan, client, observed.manifest, known_tags=observed.tags, records=records,
            policy=policy, log=log, warn=warn, hooks=hooks,
        )  # fmt: skip
        if not written:
            log(f"{the_plan.digest} is already {the_plan.env} as {the_plan.tag}: no change")
    if hooks.after_apply is not None:
        hooks.after_apply(written)
    recorded = write_record(
        record, the_plan, client, observed.manifest, kind=request.kind,
        known_tags=observed.tags, written=written, dry_run=dry_run, log=log, warn=warn,
    )  # fmt: skip
    return Released(the_plan, observed, written, recorded)


def apply_recorded(
    the_plan: Plan,
    client: RegistryClient,
    manifest: Manifest,
    *,
    known_tags: Sequence[str],
    records: PromotionRecords | None,
    policy: Selector | None,
    log: Callable[[str], None],
    warn: Callable[[str], None],
    hooks: Hooks,
) -> list[str]:
    """Apply ``the_plan`` inside the GitHub records (``in_progress`` -> ``failure``)."""
    from promote.errors import PromoteError
    from promote.pipeline.apply import apply

    if records is not None:
        records.start(the_plan.outputs())
    try:
        written = apply(
            the_plan, client, manifest, known_tags=known_tags, policy=policy, log=log, warn=warn
        )
        if hooks.after_write is not None:
            hooks.after_write(written)
    except PromoteError as exc:
        error = hooks.explain(exc) if hooks.explain is not None else exc
        if records is not None:
            records.fail(str(error))
        if error is exc:
            raise
        raise error from exc
    return written


def outputs(
    released: Released,
    *,
    dry_run: bool,
    records: PromotionRecords | None,
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The action's outputs of a release: the plan's (the tags written; a dry run: the
    tags it would write), the GitHub records' (``deployment-id``, ``release-url``), the
    command's ``extra`` ones, the record's, and ``metadata`` over all of them."""
    from promote.pipeline.model import metadata

    the_plan = released.plan
    out = the_plan.outputs() if dry_run else the_plan.outputs(released.written)
    if not dry_run and records is not None:
        out.update(records.finish(out))
    out.update(extra or {})
    out.update(released.recorded.outputs)
    out["metadata"] = metadata(out)
    return out
