"""The promotion record on a real CNCF distribution registry (2.8: no referrers API, so the
``sha256-<hex>`` fallback index), written by ``command: promote`` and ``command: rollback``.

Every check reads the registry's own bytes: the fallback index, the artifact manifest, the
statement layer, compared with what the record must say.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from promote import record
from tests.frontdoor.commands.records import (
    SHA_A,
    SHA_B,
    T_A,
    T_B,
    Repo,
    act,
    check_artifact,
    fallback_tag,
    index_of,
    promote,
    runner_env,
    runner_part,
    three_releases,
)


@pytest.mark.registry
def test_promote_attaches_the_record_and_a_rerun_writes_no_second_one(
    tmp_path: Path, repo: Repo, clients: list[Any]
) -> None:
    a, src_a = repo.build(SHA_A, T_A, 111)
    env = runner_env(tmp_path)
    run = promote(tmp_path, repo, "p1", src_a, env, version="2.0.0", timestamp=str(T_A))
    assert run.status == 0, run.log
    out = run.outputs
    tag = out["tag"]
    assert tag == f"production-v2.0.0-{SHA_A[:7]}-{T_A}"

    # the fallback index: exactly one descriptor, the record
    assert fallback_tag(a.digest) in repo.tags()
    _data, index = index_of(repo.seeder, repo.repo, a.digest)
    assert index["schemaVersion"] == 2
    assert index["mediaType"] == "application/vnd.oci.image.index.v1+json"
    (desc,) = index["manifests"]
    assert desc["digest"] == out["record-digest"]
    assert desc["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    assert desc["artifactType"] == "application/vnd.in-toto+json"
    assert desc["annotations"][record.ANNOTATION_TAG] == tag
    assert desc["annotations"][record.ANNOTATION_KIND] == "promote"
    assert desc["annotations"][record.ANNOTATION_RUN_ID] == "4242"
    assert desc["size"] == len(repo.seeder.raw_manifest(repo.repo, desc["digest"])[0])

    predicate = check_artifact(repo.seeder, repo.repo, out["record-digest"], a, repo.image)
    assert predicate == {
        "kind": "promote",
        "source-tag": src_a,
        "source-digest": a.digest,
        "tags": [tag, "production"],
        "version": "2.0.0",
        "commit-sha": SHA_A,
        "timestamp": T_A,
        **runner_part(tmp_path),
    }  # no previous release: previous-tag / previous-digest omitted, never guessed
    # the outputs a following actions/attest step signs
    assert out["predicate-type"] == record.PREDICATE_TYPE
    path = Path(out["predicate-path"])
    assert path.parent == Path(env["RUNNER_TEMP"])
    assert json.loads(path.read_text()) == predicate
    assert json.loads(out["metadata"])["record-digest"] == out["record-digest"]
    assert f"promotion record `{out['record-digest']}`" in run.summary

    # a re-run (new attempt) writes nothing: no tag, no second record
    tags_before = repo.tags()
    again = promote(tmp_path, repo, "p1b", src_a, runner_env(tmp_path, attempt="2"))
    assert again.status == 0, again.log
    assert again.outputs["changed"] == "false"
    assert again.outputs["record-digest"] == out["record-digest"]
    assert json.loads(Path(again.outputs["predicate-path"]).read_text()) == predicate
    assert repo.tags() == tags_before
    assert len(index_of(repo.seeder, repo.repo, a.digest)[1]["manifests"]) == 1
    writes = [r for r in clients[-1].stats.records if r.method not in ("GET", "HEAD")]
    assert writes == []


@pytest.mark.registry
def test_two_promotions_of_different_digests_and_the_record_request_budget(
    tmp_path: Path, repo: Repo, clients: list[Any]
) -> None:
    a, src_a = repo.build(SHA_A, T_A, 111)
    b, src_b = repo.build(SHA_B, T_B, 222)
    env = runner_env(tmp_path)
    first = promote(tmp_path, repo, "p1", src_a, env, version="2.0.0", timestamp=str(T_A))
    assert first.status == 0, first.log
    # the first record of the repository also uploads the 2-byte empty config blob, and
    # nothing else: 6 + 2 requests after the tags (this run wrote the immutable tag, so no
    # record can name it yet: no look-up of existing records, no referrers API probe)
    first_kinds = [r.kind for r in clients[-1].stats.records]
    assert first_kinds.count("blob-upload") == 4, first_kinds
    records = clients[-1].stats.records
    last_tag_put = max(i for i, r in enumerate(records) if r.url.endswith("/manifests/production"))
    # issue 17: the promotion re-reads its immutable tag (one HEAD) after the floating PUT;
    # that is the tags' guarantee, not the record's cost
    guard = records[last_tag_put + 1]
    assert (guard.kind, guard.method) == ("manifest-head", "HEAD"), guard
    assert "/manifests/production-v" in guard.url, guard
    first_spent = [(r.kind, r.method) for r in records[last_tag_put + 2 :]]
    assert len(first_spent) == 8, first_spent
    assert not any(r.kind == "referrers" for r in records), first_spent

    second = promote(tmp_path, repo, "p2", src_b, runner_env(tmp_path, run_id="4243"))
    assert second.status == 0, second.log
    records = clients[-1].stats.records
    last_tag_put = max(i for i, r in enumerate(records) if r.url.endswith("/manifests/production"))
    spent = [(r.kind, r.method, r.url.rsplit("/", 2)[-2:]) for r in records[last_tag_put + 1 :]]
    # after its last tag write the run re-reads its immutable tag (issue 17's guarantee; a
    # request of the tags, not of the record) ...
    head_kind, head_method, head_url = spent.pop(0)
    assert (head_kind, head_method) == ("manifest-head", "HEAD")
    assert head_url[-1] == second.outputs["tag"]
    # ... then, once the repository holds a record: layer upload 2, manifest 1, index
    # read/write/re-read 3
    assert [(k, m) for k, m, _ in spent] == [
        ("blob-upload", "POST"),
        ("blob-upload", "PUT"),
        ("manifest-put", "PUT"),
        ("manifest-get", "GET"),
        ("manifest-put", "PUT"),
        ("manifest-get", "GET"),
    ], spent
    assert spent[2][2] == ["manifests", second.outputs["record-digest"]]
    assert spent[3][2] == spent[4][2] == spent[5][2] == ["manifests", fallback_tag(b.digest)]

    # each digest has its own index holding only its own record
    for seeded, run in ((a, first), (b, second)):
        (desc,) = index_of(repo.seeder, repo.repo, seeded.digest)[1]["manifests"]
        assert desc["digest"] == run.outputs["record-digest"]
    predicate = check_artifact(
        repo.seeder, repo.repo, second.outputs["record-digest"], b, repo.image
    )
    assert predicate["previous-tag"] == first.outputs["tag"]
    assert predicate["previous-digest"] == a.digest
    assert predicate["version"] == "2.0.1" and predicate["tags"][0] == second.outputs["tag"]
    assert predicate["run-id"] == "4243" and predicate["commit-sha"] == SHA_B


@pytest.mark.registry
def test_without_record_nothing_is_attached(tmp_path: Path, repo: Repo) -> None:
    a, src_a = repo.build(SHA_A, T_A, 111)
    run = promote(tmp_path, repo, "p1", src_a, runner_env(tmp_path), record="false")
    assert run.status == 0, run.log
    assert run.outputs["record-digest"] == ""
    assert not any(t.startswith("sha256-") for t in repo.tags())
    # the predicate is still there, for a signing step that wants it
    predicate = json.loads(Path(run.outputs["predicate-path"]).read_text())
    assert predicate["source-digest"] == a.digest and predicate["kind"] == "promote"


@pytest.mark.registry
def test_a_refused_record_fails_with_exit_6_and_the_rerun_writes_only_the_record(
    tmp_path: Path, repo: Repo, clients: list[Any]
) -> None:
    from testkit.proxy import Fault, FaultProxy

    a, src_a = repo.build(SHA_A, T_A, 111)
    env = runner_env(tmp_path)
    with FaultProxy(repo.server.url) as proxy:
        # the registry refuses the artifact manifest PUT (by digest)
        proxy.add(Fault.status(403), method="PUT", path=r"/manifests/sha256:", always=True)
        run = act(
            tmp_path,
            "p1",
            {"image": f"{proxy.host}/{repo.repo}", "source-tag": src_a, "version": "2.0.0"},
            env,
        )
    assert run.status == 6, run.log
    (error,) = run.errors
    tag = run.outputs["tag"]
    assert f"written: {tag}, production -> {a.digest}" in error
    assert "promotion record was NOT written" in error and "Re-run" in error
    # the promotion stands and every output is written
    assert repo.digest(tag) == a.digest and repo.digest("production") == a.digest
    assert run.outputs["changed"] == "true" and run.outputs["digest"] == a.digest
    assert run.outputs["record-digest"] == ""
    assert Path(run.outputs["predicate-path"]).is_file()
    assert fallback_tag(a.digest) not in repo.tags()

    rerun = promote(tmp_path, repo, "p2", src_a, runner_env(tmp_path, attempt="2"))
    assert rerun.status == 0, rerun.log
    assert rerun.outputs["changed"] == "false" and rerun.outputs["tag"] == tag
    puts = [r for r in clients[-1].stats.records if r.method == "PUT"]
    assert not any(r.url.endswith((f"/manifests/{tag}", "/manifests/production")) for r in puts)
    (desc,) = index_of(repo.seeder, repo.repo, a.digest)[1]["manifests"]
    assert desc["digest"] == rerun.outputs["record-digest"]
    predicate = check_artifact(repo.seeder, repo.repo, desc["digest"], a, repo.image)
    assert predicate["tags"] == [tag, "production"] and predicate["run-attempt"] == "2"
    assert "previous-tag" not in predicate


@pytest.mark.registry
def test_rollback_record_and_the_rerun_of_the_same_run_changes_nothing(
    tmp_path: Path, repo: Repo
) -> None:
    (a, b, c), (tag_a, tag_b, tag_c) = three_releases(tmp_path, repo)
    inputs = {"command": "rollback", "image": repo.image}
    first = act(tmp_path, "rb1", inputs, runner_env(tmp_path, run_id="900"))
    assert first.status == 0, first.log
    out = first.outputs
    assert out["digest"] == b.digest and out["changed"] == "true"
    # b's index: its promotion record, then the rollback's
    promo, rolled = index_of(repo.seeder, repo.repo, b.digest)[1]["manifests"]
    assert promo["annotations"][record.ANNOTATION_TAG] == tag_b
    assert rolled["digest"] == out["record-digest"]
    assert rolled["annotations"][record.ANNOTATION_KIND] == "rollback"
    predicate = check_artifact(repo.seeder, repo.repo, out["record-digest"], b, repo.image)
    assert predicate == {
        "kind": "rollback",
        "source-tag": tag_b,
        "source-digest": b.digest,
        "tags": [out["tag"], "production"],
        "version": "2.0.1",
        "commit-sha": SHA_B,
        "timestamp": int(out["timestamp"]),
        "previous-tag": tag_c,
        "previous-digest": c.digest,
        **runner_part(tmp_path, run_id="900"),
    }
    tags = repo.tags()

    # "Re-run jobs": the same run id, a new attempt: nothing changes
    for attempt in ("2", "3"):
        rerun = act(
            tmp_path, f"rb1-{attempt}", inputs, runner_env(tmp_path, "900", attempt=attempt)
        )
        assert rerun.status == 0, rerun.log
        assert rerun.outputs["changed"] == "false", rerun.log
        assert rerun.outputs["tag"] == out["tag"] and rerun.outputs["digest"] == b.digest
        assert rerun.outputs["record-digest"] == out["record-digest"]
    assert repo.tags() == tags
    assert len(index_of(repo.seeder, repo.repo, b.digest)[1]["manifests"]) == 2

    # a new run goes one step further back: to a, skipping c (rolled back from)
    second = act(tmp_path, "rb2", inputs, runner_env(tmp_path, run_id="901"))
    assert second.status == 0, second.log
    assert second.outputs["digest"] == a.digest and second.outputs["source-tag"] == tag_a
    assert repo.digest("production") == a.digest


@pytest.mark.registry
def test_rollback_whose_record_failed_is_not_repeated_by_its_rerun(
    tmp_path: Path, repo: Repo
) -> None:
    from testkit.proxy import Fault, FaultProxy

    (_a, b, _c), _tags = three_releases(tmp_path, repo)
    with FaultProxy(repo.server.url) as proxy:
        proxy.add(Fault.status(403), method="PUT", path=r"/manifests/sha256:", always=True)
        first = act(
            tmp_path,
            "rb1",
            {"command": "rollback", "image": f"{proxy.host}/{repo.repo}"},
            runner_env(tmp_path, run_id="900"),
        )
    assert first.status == 6, first.log
    assert repo.digest("production") == b.digest
    rerun = act(
        tmp_path,
        "rb2",
        {"command": "rollback", "image": repo.image},
        runner_env(tmp_path, run_id="900", attempt="2"),
    )
    assert rerun.status == 0, rerun.log
    assert rerun.outputs["changed"] == "false" and rerun.outputs["digest"] == b.digest
    assert repo.digest("production") == b.digest
    (_promo, rolled) = index_of(repo.seeder, repo.repo, b.digest)[1]["manifests"]
    assert rolled["digest"] == rerun.outputs["record-digest"]
    assert rolled["annotations"][record.ANNOTATION_TAG] == first.outputs["tag"]


def test_the_predicate_file_of_a_container_action_is_where_later_steps_see_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In the action's container RUNNER_TEMP is not mounted: the file goes to the mounted
    home, and the output names that directory as the runner sees it."""
    from promote.frontdoor.commands import release as record_step

    home = tmp_path / "github-home"
    home.mkdir()
    monkeypatch.setattr(record_step, "CONTAINER_HOME", str(home))
    env = {"RUNNER_TEMP": "/home/runner/work/_temp", "HOME": str(home)}
    assert record_step.predicate_dirs(env) == (home, Path("/home/runner/work/_temp/_github_home"))
    plain = {"RUNNER_TEMP": str(tmp_path / "rt")}
    assert record_step.predicate_dirs(plain) == (tmp_path / "rt", tmp_path / "rt")
