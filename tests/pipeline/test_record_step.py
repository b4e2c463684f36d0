"""The record step with plain values (no front door): the predicate file and its fields.

The registry half (attach, look-up, re-runs, exit 6) runs through the commands in
tests/frontdoor/commands/test_record.py.
"""

from __future__ import annotations

import json
from pathlib import Path

from promote import record
from promote.pipeline.model import Plan, Step
from promote.pipeline.record_step import RecordSettings, write_record
from promote.registry import Manifest

OCI = "application/vnd.oci.image.manifest.v1+json"
SHA = "abc1234" + "0" * 33
MANIFEST = Manifest.from_bytes(
    b'{"schemaVersion":2,"mediaType":"' + OCI.encode() + b'","layers":[]}', OCI
)
TAG = "production-v1.4.3-abc1234-1767225600"


def the_plan() -> Plan:
    return Plan(
        image="ghcr.io/acme/backend",
        digest=MANIFEST.digest,
        media_type=OCI,
        platforms=(),
        source_tag="staging-abc1234-1767000000",
        version="1.4.3",
        previous_version="1.4.2",
        bump="patch",
        short_sha="abc1234",
        sha_origin="source tag",
        timestamp=1_767_225_600,
        tag=TAG,
        floating="production",
        steps=(Step("put", TAG, "new immutable tag"), Step("put", "production", "move")),
        previous_tag="production-v1.4.2-1111111-1766000000",
        previous_digest="sha256:" + "1" * 64,
        flux_tag_pattern="^production-v(?P<version>.*)-(?P<sha>.*)-(?P<ts>[0-9]+)$",
        env="production",
    )


def test_without_record_only_the_predicate_file_is_written(tmp_path: Path) -> None:
    """No registry call is made (the client is never touched): the file lands in
    ``write_dir`` and the output names it under ``seen_dir``, with the given values."""
    settings = RecordSettings(
        enabled=False,
        write_dir=tmp_path / "home",
        seen_dir=Path("/runner/temp/_github_home"),
        runner={"run-id": "42", "environment": "production"},
        commit_sha=SHA.upper(),
    )
    logged: list[str] = []
    recorded = write_record(
        settings,
        the_plan(),
        None,  # type: ignore[arg-type]  # never used without a registry write
        MANIFEST,
        kind="promote",
        known_tags=(),
        written=[TAG, "production"],
        dry_run=False,
        log=logged.append,
        warn=logged.append,
    )
    assert (
        recorded.error is None and recorded.note == "promotion record not written (record: false)"
    )
    path = Path(recorded.outputs["predicate-path"])
    assert path.parent == settings.seen_dir
    assert recorded.outputs["predicate-type"] == record.PREDICATE_TYPE
    assert recorded.outputs["record-digest"] == ""
    predicate = json.loads((settings.write_dir / path.name).read_text())
    assert predicate["commit-sha"] == SHA  # the full sha, lower-cased, matching the plan's
    assert predicate["tags"] == [TAG, "production"]
    assert predicate["run-id"] == "42" and predicate["environment"] == "production"
    assert predicate["previous-tag"] == "production-v1.4.2-1111111-1766000000"
    assert logged == []


def test_a_dry_run_writes_no_record_even_when_asked(tmp_path: Path) -> None:
    settings = RecordSettings(enabled=True, write_dir=tmp_path, seen_dir=tmp_path)
    recorded = write_record(
        settings,
        the_plan(),
        None,  # type: ignore[arg-type]  # a dry run makes no registry call
        MANIFEST,
        kind="rollback",
        known_tags=(),
        written=[],
        dry_run=True,
    )
    assert recorded.note == "promotion record not written (dry run)"
    predicate = json.loads(Path(recorded.outputs["predicate-path"]).read_text())
    assert predicate["kind"] == "rollback" and "commit-sha" in predicate
    assert predicate["commit-sha"] == "abc1234"  # no full sha given: the short one
