"""The one step after the tags, shared by ``promote`` and ``rollback``: the promotion record.

:func:`write_record` runs once the tags are written (or found already written). It builds
the in-toto statement (:mod:`promote.record`), writes the predicate to a file under
``RUNNER_TEMP`` (output ``predicate-path``, for ``actions/attest``), and — with
``record: true`` and outside a dry run — attaches the statement to the promoted digest
(:func:`promote.registry.referrers.attach`) unless a record of this very promotion (same
immutable tag) is already there. Requests, once the repository holds a record::

    POST + PUT blobs/uploads         the statement layer
    PUT  manifests/<artifact>        the artifact, by digest
    GET + PUT + GET sha256-<hex>     the referrers fallback index (read, write, re-read)

Existing records are looked up only when this run did not write the immutable tag (a
re-run): then the index read above doubles as that look-up (the referrers API instead when
the repository has no ``sha256-*`` tag at all).

The very first record of a repository also uploads the 2-byte empty config blob.

A failure here never undoes the promotion: the outputs are written, and the command fails
with :class:`promote.errors.RecordError` (exit 6) naming what was and was not written. A
re-run finds the tags current, writes nothing but the missing record, and never a second
record for the same promotion.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from promote import naming
from promote.errors import PromoteError, RecordError
from promote.frontdoor.commands import Context, Result

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from promote.github import PromotionRecords
    from promote.promotion import Plan
    from promote.registry import Manifest, RegistryClient


@dataclass
class Recorded:
    """What the record step adds to the outputs, and its error (if the record failed)."""

    outputs: dict[str, str] = field(default_factory=dict)
    error: RecordError | None = None
    note: str = ""


def _full_sha(ctx: Context, kind: str, the_plan: Plan, manifest: Manifest) -> str:
    """The full commit sha when known (input, then the revision annotation), else the short."""
    given = ctx.inputs.str("commit-sha") if kind == "promote" else ""
    revision = manifest.annotations.get(naming.REVISION_KEY, "")
    for candidate in (given, revision):
        short = candidate[: naming.SHORT_SHA_LENGTH].lower()
        if naming.HEX_RE.fullmatch(candidate) and short == the_plan.short_sha:
            return candidate.lower()
    return the_plan.short_sha


def _previous(
    the_plan: Plan, client: RegistryClient | None, known_tags: Sequence[str]
) -> tuple[str, str]:
    """The release current before this promotion. When this run wrote the immutable tag,
    the plan says; on a re-run (the tag was already there) the history does, and a HEAD
    of that tag gives its digest."""
    if the_plan.tag in the_plan.writes or client is None:
        return the_plan.previous_tag, the_plan.previous_digest
    from promote import lineage

    env = the_plan.tag.split("-v", 1)[0]
    before = lineage.previous_of(naming.immutable_tags(env, known_tags), the_plan.tag)
    if before is None:
        return "", ""
    desc = client.head_manifest(before.tag)
    return before.tag, desc.digest if desc else ""


def predicate_for(
    ctx: Context,
    the_plan: Plan,
    manifest: Manifest,
    *,
    kind: str,
    client: RegistryClient | None,
    known_tags: Sequence[str],
) -> dict[str, Any]:
    from promote import record

    env = the_plan.tag.split("-v", 1)[0]
    previous_tag, previous_digest = _previous(the_plan, client, known_tags)
    return record.build_predicate(
        kind=kind,
        source_tag=the_plan.source_tag,
        source_digest=manifest.digest,
        tags=[t for t in (the_plan.tag, the_plan.floating) if t],
        version=the_plan.version,
        commit_sha=_full_sha(ctx, kind, the_plan, manifest),
        timestamp=the_plan.timestamp,
        previous_tag=previous_tag,
        previous_digest=previous_digest,
        runner=record.runner_facts(ctx.env, environment=env),
    )


#: ``HOME`` of a Docker container action: the runner mounts ``$RUNNER_TEMP/_github_home``
#: there, while ``RUNNER_TEMP`` itself is not mounted into the container.
CONTAINER_HOME = "/github/home"


def predicate_dirs(env: Mapping[str, str]) -> tuple[Path, Path]:
    """(where to write the predicate file, the same directory as later steps see it).

    In the action's container the file goes to ``/github/home``, which later steps (on the
    runner) see as ``$RUNNER_TEMP/_github_home``; elsewhere (the CLI, a runner without a
    container) straight into ``RUNNER_TEMP``, else the system temp dir.
    """
    runner_temp = env.get("RUNNER_TEMP", "").strip()
    home = env.get("HOME", "").strip()
    if runner_temp and home == CONTAINER_HOME and Path(home).is_dir():
        return Path(home), Path(runner_temp) / "_github_home"
    base = Path(runner_temp or tempfile.gettempdir())
    return base, base


def _predicate_file(ctx: Context, digest: str, predicate: dict[str, Any]) -> str:
    """Write the predicate JSON (see :func:`predicate_dirs`); returns the path later steps
    use (output ``predicate-path``)."""
    write_dir, seen_dir = predicate_dirs(ctx.env)
    write_dir.mkdir(parents=True, exist_ok=True)
    name = f"promote-predicate-{digest.partition(':')[2][:16]}.json"
    text = json.dumps(predicate, indent=2, sort_keys=False) + "\n"
    (write_dir / name).write_text(text, encoding="utf-8")
    return str(seen_dir / name)


def write_record(
    ctx: Context,
    the_plan: Plan,
    client: RegistryClient,
    manifest: Manifest,
    *,
    kind: str,
    known_tags: Sequence[str],
    written: Sequence[str],
    dry_run: bool,
) -> Recorded:
    """The record step (see the module docstring). Never raises for a registry failure."""
    from promote import record
    from promote.registry import referrers as refs

    enabled = ctx.inputs.bool("record")
    writes = enabled and not dry_run
    predicate = predicate_for(ctx, the_plan, manifest, kind=kind, client=None, known_tags=())
    out = {
        "record-digest": "",
        "predicate-type": record.PREDICATE_TYPE,
        "predicate-path": "",
    }
    if not writes:
        out["predicate-path"] = _predicate_file(ctx, the_plan.digest, predicate)
        why = "dry run" if dry_run else "record: false"
        return Recorded(out, note=f"promotion record not written ({why})")
    try:
        # This run wrote the immutable tag: no record can name it yet, so nothing is looked
        # up (the fallback index is read by the append below). Otherwise (a re-run) the
        # records of the digest say whether this promotion already has one.
        fresh = the_plan.tag in written
        found, index = (
            ([], None) if fresh else refs.lookup(client, the_plan.digest, tags=known_tags)
        )
        mine = [r for r in record.record_refs(found) if r.ours and r.tag == the_plan.tag]
        if mine:
            out["record-digest"] = mine[0].digest
            try:
                _artifact, layer = refs.fetch_artifact(client, mine[0].digest)
                predicate = dict(record.parse_record(mine[0].digest, layer).predicate)
            except (PromoteError, record.RecordFormatError) as exc:
                ctx.runner.warning(f"the existing record {mine[0].digest} cannot be read: {exc}")
            out["predicate-path"] = _predicate_file(ctx, the_plan.digest, predicate)
            ctx.runner.log(f"promotion record {mine[0].digest} already names {the_plan.tag}")
            return Recorded(out, note=f"promotion record `{mine[0].digest}` (already there)")
        if the_plan.tag not in the_plan.writes:
            predicate = predicate_for(
                ctx, the_plan, manifest, kind=kind, client=client, known_tags=known_tags
            )
        statement = record.build_statement(the_plan.image, the_plan.digest, predicate)
        layer = record.statement_bytes(statement)
        subject = {
            "mediaType": manifest.media_type,
            "digest": manifest.digest,
            "size": len(manifest.data),
        }
        artifact = record.artifact_manifest(layer, subject, predicate=predicate)
        # The empty config blob is in the repository once any referrer is (distribution
        # refuses a manifest whose blobs are missing); a sha256-<hex> tag shows one is.
        seen = any(refs.is_fallback_tag(t) for t in known_tags)
        attached = refs.attach(
            client,
            artifact,
            subject=the_plan.digest,
            blobs=[layer] if seen else [record.EMPTY_DATA, layer],
            maybe_present=[record.EMPTY_DATA] if seen else [],
            known=index,
        )
    except PromoteError as exc:
        out["predicate-path"] = _predicate_file(ctx, the_plan.digest, predicate)
        state = (
            f"written: {', '.join(written)} -> {the_plan.digest}"
            if written
            else f"{the_plan.tag} already named {the_plan.digest}"
        )
        return Recorded(
            out,
            RecordError(
                f"the {kind} stands ({state}), but its promotion record was NOT written: "
                f"{exc}. Re-run the same {kind}: it writes only the missing record."
            ),
            note="promotion record **not written**",
        )
    out["record-digest"] = attached.digest
    out["predicate-path"] = _predicate_file(ctx, the_plan.digest, predicate)
    where = f"listed in {attached.index_tag}" if attached.via == "fallback" else "referrers API"
    ctx.runner.log(f"wrote promotion record {attached.digest} for {the_plan.digest} ({where})")
    return Recorded(out, note=f"promotion record `{attached.digest}` ({where})")


def record_and_finish(
    ctx: Context,
    the_plan: Plan,
    client: RegistryClient,
    manifest: Manifest,
    *,
    kind: str,
    known_tags: Sequence[str],
    written: Sequence[str],
    dry_run: bool,
    records: PromotionRecords | None,
) -> tuple[dict[str, str], Recorded]:
    """The shared end of ``promote`` and ``rollback`` after the tags: the promotion record
    (:func:`write_record`), then the outputs with the GitHub records' (``finish``)."""
    from promote.frontdoor.commands.promote_cmd import finish

    recorded = write_record(
        ctx,
        the_plan,
        client,
        manifest,
        kind=kind,
        known_tags=known_tags,
        written=written,
        dry_run=dry_run,
    )
    if dry_run:
        return the_plan.outputs(), recorded
    return finish(the_plan.outputs(list(written)), records), recorded


def conclude(outputs: dict[str, str], summary: str, recorded: Recorded) -> Result:
    """The command's result: the record's outputs merged in (and into ``metadata``); a
    failed record fails the step with exit 6 after every output is written."""
    from promote import promotion

    outputs.update(recorded.outputs)
    outputs["metadata"] = promotion.metadata(outputs)
    if recorded.note:
        summary = summary.rstrip("\n") + f"\n\n{recorded.note}\n"
    if recorded.error is None:
        return Result(outputs=outputs, summary=summary)
    return Result(
        outputs=outputs,
        summary=summary,
        failed=True,
        message=str(recorded.error),
        exit_code=recorded.error.exit_code,
    )
