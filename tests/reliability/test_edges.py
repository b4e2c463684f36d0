"""Guarantees at the edges (issue 17), each defect reproduced against the real registry
through the fault proxy:

* a poisoned tag (future or millisecond timestamp) stops promotion with exit 3 naming it,
  until it is excluded (the GitOps ImageRepository's exclusionList) or deleted; an
  explicit future timestamp is refused before any request;
* a wrong ``Docker-Content-Digest`` answer to a PUT is settled by re-reading the tag: a
  warning when it names the digest, else UNCONFIRMED (exit 5), never "unchanged";
* URLs the registry sends (``Link``, ``Location``) are data: malformed or non-HTTP ones
  are a registry error (exit 1) naming the header; tag names outside the tag grammar are
  ignored and counted;
* one deadline bounds a body trickled byte by byte and a ``Link`` chain that never ends.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

from testkit.engine import EngineRun, engine
from testkit.figures import Figures
from testkit.gitops import PRODUCTION_POLICY
from testkit.proxy import Exchange, Fault, FaultProxy
from tests.reliability.conftest import PREVIOUS_TAG, Release, promote_inputs

IMMUTABLE = r"/manifests/production-v"
FLOATING = r"/manifests/production$"
POISONED_MS = "production-v1.1.0-ccccccc-1791000000000"
WRONG = "sha256:" + "0" * 64


def single_error(run: EngineRun) -> str:
    assert len(run.errors) == 1, run.log
    assert "Traceback" not in run.log
    return run.errors[0]


# -- poisoned timestamps ------------------------------------------------------------------------
@pytest.mark.parametrize("ahead", ["9999999999", "+3600"])
def test_explicit_future_timestamp_is_refused_before_any_request(
    tmp_path: Path, proxy: FaultProxy, release: Release, ahead: str
) -> None:
    ts = ahead if not ahead.startswith("+") else str(int(time.time()) + int(ahead[1:]))
    for command in ("promote", "rollback"):
        inputs = promote_inputs(proxy.host, release, timestamp=ts, command=command)
        if command == "rollback":
            del inputs["source-tag"]
        run = engine(tmp_path, inputs)
        assert run.status == 2, run.log
        message = single_error(run)
        assert f"timestamp {ts} is " in message and "seconds in the future" in message
    assert proxy.total == 0
    assert release.new_immutable_tags() == []


def gitops_excluding(tmp_path: Path, image: str, tag: str) -> Path:
    """A GitOps tree whose ImageRepository excludes ``tag`` (docs/rollback.md, way 3)."""
    root = tmp_path / "gitops"
    root.mkdir()
    (root / "images.yaml").write_text(
        f"""apiVersion: image.toolkit.fluxcd.io/v1
kind: ImageRepository
metadata: {{name: backend, namespace: flux-system}}
spec:
  image: {image}
  interval: 5m
  exclusionList:
    - '^.*\\.sig$'
    - '^{re.escape(tag)}$'
---
"""
        + PRODUCTION_POLICY
    )
    return root


@pytest.mark.parametrize("kind", ["milliseconds", "future"])
def test_poisoned_tag_stops_promotion_with_exit_3_until_excluded_or_deleted(
    tmp_path: Path, proxy: FaultProxy, release: Release, kind: str
) -> None:
    poisoned = (
        POISONED_MS
        if kind == "milliseconds"
        else f"production-v1.1.0-ccccccc-{int(time.time()) + 30 * 86400}"
    )
    bad = release.seeder.oci_image(
        release.repo, poisoned, revision="ccccccc" + "0" * 33, layer_size=33
    )
    before = release.production_state()
    for command in ("promote", "rollback"):
        inputs = promote_inputs(proxy.host, release, command=command)
        if command == "rollback":
            del inputs["source-tag"]
        run = engine(tmp_path, inputs)
        assert run.status == 3, run.log
        message = single_error(run)
        assert f"the existing tag {poisoned} has timestamp" in message
        assert "keeps selecting it" in message
        assert "docs/rollback.md, way 3" in message and "exclusionList" in message
        assert "looks like milliseconds" in message if kind == "milliseconds" else True
        assert "Nothing was written" in message
        assert release.production_state() == before

    # remedy 1: the promotion is told about the policy that excludes the tag
    tree = gitops_excluding(tmp_path, f"{proxy.host}/{release.repo}", poisoned)
    excluded = engine(
        tmp_path,
        promote_inputs(
            proxy.host,
            release,
            **{"gitops-path": str(tree), "policy": "flux-system:backend-production"},
        ),
    )
    assert excluded.status == 0, excluded.log
    assert excluded.outputs["previous-tag"] == PREVIOUS_TAG  # the poisoned tag is no release
    assert release.digest(excluded.outputs["tag"]) == release.source.digest

    # remedy 2: the tag is deleted; a plain rollback works again
    release.seeder.request(
        "DELETE",
        release.repo,
        release.seeder._api(release.repo, "manifests", bad.digest),
        expect=(202,),
    )
    assert poisoned not in release.seeder.tags(release.repo)
    back = engine(tmp_path, {"command": "rollback", "image": f"{proxy.host}/{release.repo}"})
    assert back.status == 0, back.log
    assert release.digest("production") == release.previous.digest


# -- state reported exactly -------------------------------------------------------------------
def wrong_digest_answer(exchange: Exchange) -> None:
    exchange.response_headers = {
        k: (WRONG if k.lower() == "docker-content-digest" else v)
        for k, v in exchange.response_headers.items()
    }


def test_wrong_put_digest_answer_with_the_tag_right_warns_and_goes_on(
    tmp_path: Path, proxy: FaultProxy, release: Release
) -> None:
    proxy.add(Fault.hook(wrong_digest_answer, after=True), method="PUT", path=IMMUTABLE)
    run = engine(tmp_path, promote_inputs(proxy.host, release))
    assert run.status == 0, run.log
    assert any("Docker-Content-Digest" in w and WRONG in w for w in run.warnings), run.log
    assert release.digest(run.outputs["tag"]) == release.source.digest
    assert release.digest("production") == release.source.digest


@pytest.mark.parametrize("which", ["immutable", "floating"])
def test_wrong_put_digest_answer_not_confirmed_is_unconfirmed_never_unchanged(
    tmp_path: Path, proxy: FaultProxy, release: Release, which: str
) -> None:
    path = IMMUTABLE if which == "immutable" else FLOATING
    proxy.add(Fault.hook(wrong_digest_answer, after=True), method="PUT", path=path)
    proxy.add(Fault.hook(wrong_digest_answer, after=True), method="HEAD", path=path)
    run = engine(tmp_path, promote_inputs(proxy.host, release))
    assert run.status == 5, run.log
    message = single_error(run)
    written = release.new_immutable_tags()
    [tag] = written
    if which == "immutable":
        assert "written: nothing" in message
        assert f"UNCONFIRMED: {tag}" in message
        assert release.digest(tag) == release.source.digest  # it IS written
    else:
        assert f"written: {tag}" in message
        assert "UNCONFIRMED: production" in message
        assert "NOT written: production" not in message
        assert release.digest("production") == release.source.digest  # it moved
    assert f"a re-read shows {'production' if which == 'floating' else tag} names {WRONG}" in (
        message
    )


# -- registry data is data ----------------------------------------------------------------------
@pytest.mark.parametrize(
    "link", ["<file:///etc/passwd>", "<ftp://127.0.0.1/x>", "<http://[::1/x>", "<http://h:99999/x>"]
)
def test_malformed_or_non_http_link_is_a_registry_error_naming_the_header(
    tmp_path: Path, proxy: FaultProxy, release: Release, link: str
) -> None:
    def add_link(exchange: Exchange) -> None:
        exchange.response_headers = {**exchange.response_headers, "Link": f'{link}; rel="next"'}

    proxy.add(Fault.hook(add_link, after=True), method="GET", path=r"/tags/list")
    run = engine(tmp_path, promote_inputs(proxy.host, release))
    assert run.status == 1, run.log
    message = single_error(run)
    assert "Link header" in message
    assert release.new_immutable_tags() == []


@pytest.mark.parametrize("location", ["http://[::1/x", "file:///etc/passwd", "ftp://h/x"])
def test_malformed_or_non_http_redirect_is_a_registry_error_naming_the_header(
    tmp_path: Path, proxy: FaultProxy, release: Release, location: str
) -> None:
    def redirect(exchange: Exchange) -> None:
        exchange.status = 307
        exchange.response_headers = {"Location": location}
        exchange.response_body = b""

    proxy.add(
        Fault.hook(redirect, after=True), method="GET", path=rf"/manifests/{release.source_tag}"
    )
    run = engine(tmp_path, promote_inputs(proxy.host, release))
    assert run.status == 1, run.log
    assert "Location header" in single_error(run)


def test_tag_names_outside_the_grammar_are_ignored_and_counted(
    tmp_path: Path, proxy: FaultProxy, release: Release
) -> None:
    forged = ["x\n::warning title=Approved::forged", "##[error]forged", "-bad", "a b"]

    def add_tags(exchange: Exchange) -> None:
        doc = json.loads(exchange.response_body)
        doc["tags"] = [*doc["tags"], *forged]
        exchange.response_body = json.dumps(doc).encode()

    proxy.add(Fault.hook(add_tags, after=True), method="GET", path=r"/tags/list")
    run = engine(tmp_path, promote_inputs(proxy.host, release))
    assert run.status == 0, run.log
    assert any("ignored 4 tag names" in w for w in run.warnings), run.log
    assert "##[" not in run.log
    assert not [ln for ln in run.log.splitlines() if ln.lstrip().startswith("::warning title")]


# -- one deadline ---------------------------------------------------------------------------------
def test_a_trickled_manifest_body_cannot_outlast_the_deadline(
    tmp_path: Path, proxy: FaultProxy, release: Release, figures: Figures
) -> None:
    """Defect 6: TIMEOUT=3, DEADLINE=8, the source manifest sent 8 bytes per 0.4 s (each
    read well inside the timeout) took 21 s; the deadline now ends it at ~8 s."""

    def trickle(exchange: Exchange) -> None:
        exchange.trickle = (8, 0.4)

    proxy.add(
        Fault.hook(trickle, after=True), method="GET", path=rf"/manifests/{release.source_tag}"
    )
    env = {"PROMOTE_REGISTRY_DEADLINE": "8", "PROMOTE_REGISTRY_TIMEOUT": "3"}
    run = engine(tmp_path, promote_inputs(proxy.host, release), env)
    assert run.status == 1, run.log
    message = single_error(run)
    assert "deadline of 8s ran out while the body was arriving" in message
    assert run.elapsed < 10.0, run.elapsed
    assert release.new_immutable_tags() == []
    figures.record(
        "manifest trickled 8 B / 0.4 s, deadline 8 s: run ended after", f"{run.elapsed:.2f}s"
    )


def test_a_link_chain_repeating_the_same_tags_ends_as_an_error(
    tmp_path: Path, proxy: FaultProxy, release: Release, figures: Figures
) -> None:
    """Defect 6: a Link whose cursor grows but whose pages repeat the same tags ran 6,352
    requests in 280 s; a page that adds no new tag now ends the listing as an error."""
    cursor = iter(range(1, 1_000_000))

    def endless(exchange: Exchange) -> None:
        link = f'</v2/{release.repo}/tags/list?n=1000&last=c{next(cursor)}>; rel="next"'
        exchange.response_headers = {**exchange.response_headers, "Link": link}

    proxy.add(Fault.hook(endless, after=True), method="GET", path=r"/tags/list")
    env = {"PROMOTE_REGISTRY_DEADLINE": "5"}
    run = engine(tmp_path, promote_inputs(proxy.host, release), env)
    assert run.status == 1, run.log
    assert "added no new tag" in single_error(run)
    assert len(proxy.requests("tags")) == 2
    assert run.elapsed < 5.0
    figures.record("endless Link chain: tag requests before the error", len(proxy.requests("tags")))


def test_a_tag_the_policy_excludes_still_holds_its_timestamp(
    tmp_path: Path, proxy: FaultProxy, release: Release
) -> None:
    """An excluded tag is no release, but a run never writes a timestamp already present."""
    soon = int(time.time()) + 300
    excluded = f"production-v1.5.0-eeeeeee-{soon}"
    release.seeder.tag(release.repo, release.previous.digest, excluded)
    tree = gitops_excluding(tmp_path, f"{proxy.host}/{release.repo}", excluded)
    policy = {"gitops-path": str(tree), "policy": "flux-system:backend-production"}
    run = engine(tmp_path, promote_inputs(proxy.host, release, **policy))
    assert run.status == 0, run.log
    assert run.outputs["previous-tag"] == PREVIOUS_TAG
    assert int(run.outputs["timestamp"]) == soon + 1
