"""The fault proxy itself: it forwards faithfully, rewrites what must be rewritten, counts,
and injects exactly the faults scheduled (so the other suites' claims mean something)."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests

from promote.errors import TransientError
from testkit.engine import engine
from testkit.figures import Figures
from testkit.proxy import Fault, FaultProxy
from testkit.registry import RegistryServer
from tests.reliability.conftest import Release, promote_inputs


def test_healthy_promotion_through_the_proxy_is_counted(
    tmp_path: Path, proxy: FaultProxy, release: Release, figures: Figures
) -> None:
    run = engine(tmp_path, promote_inputs(proxy.host, release))
    assert run.status == 0, run.log
    assert dict(proxy.counts) == {
        "ping": 1,
        "manifest-get": 1,
        "tags": 2,
        "manifest-head": 3,
        "manifest-put": 2,
    }
    assert proxy.faults == {}
    assert all(e.forwarded and e.status in (200, 201) for e in proxy.log)
    figures.record("healthy promotion through the proxy: requests by kind", dict(proxy.counts))


def test_location_header_is_rewritten_to_the_proxy(proxy: FaultProxy, release: Release) -> None:
    data = release.source.data
    response = requests.put(
        f"{proxy.url}/v2/{release.repo}/manifests/extra",
        data=data,
        headers={"Content-Type": release.source.media_type},
        timeout=10,
    )
    assert response.status_code == 201
    assert response.headers["Location"].startswith(f"{proxy.url}/v2/{release.repo}/manifests/")
    upstream = proxy.log[-1]
    assert upstream.response_headers["Location"] == response.headers["Location"]


def test_faults_fire_exactly_as_scheduled(proxy: FaultProxy, release: Release) -> None:
    url = f"{proxy.url}/v2/{release.repo}/tags/list"
    proxy.add(Fault.status(429, retry_after="7"), method="GET", path=r"/tags/list", nth=[2])
    proxy.add(Fault.reset(), method="GET", path=r"/tags/list", nth=[3])
    first = requests.get(url, timeout=10)
    second = requests.get(url, timeout=10)
    assert (first.status_code, second.status_code) == (200, 429)
    assert second.headers["Retry-After"] == "7"
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(url, timeout=10)
    assert requests.get(url, timeout=10).status_code == 200
    assert proxy.counts["tags"] == 4
    assert proxy.faults == {"status-429": 1, "reset": 1}
    assert [e.forwarded for e in proxy.log] == [True, False, False, True]


def test_sink_counts_connections_and_answers_404() -> None:
    with FaultProxy(None) as sink:
        assert requests.get(f"{sink.url}/v2/", timeout=5).status_code == 404
        assert sink.connections == 1 and sink.counts["ping"] == 1


def test_token_service_behind_its_own_proxy_realm_rewritten(
    tmp_path: Path, token_registry: RegistryServer, repo_path: str, figures: Figures
) -> None:
    """Token auth with both hops faulty: the registry's challenge names the token proxy
    (realm rewritten), the first token request fails with 503, and the promotion lands."""
    service = token_registry.token_service
    assert service is not None and token_registry.username and token_registry.password
    seeder = token_registry.seeder()
    source = seeder.oci_image(
        repo_path, "staging-abc1234-1700000500", revision="abc1234" + "0" * 33
    )
    token_origin = service.realm.rsplit("/", 1)[0]
    with (
        FaultProxy(token_origin) as token_proxy,
        FaultProxy(token_registry.url, rewrite={token_origin: token_proxy.url}) as reg_proxy,
    ):
        token_proxy.add(Fault.status(503), path=r"^/token", nth=[1])
        reg_proxy.add(Fault.reset(), method="PUT", path=r"/manifests/production-v", nth=[1])
        run = engine(
            tmp_path,
            {
                "image": f"{reg_proxy.host}/{repo_path}",
                "source-tag": "staging-abc1234-1700000500",
                "username": token_registry.username,
                "password": token_registry.password,
            },
            {"PROMOTE_REGISTRY_DEADLINE": "20"},
        )
        assert run.status == 0, run.log
        challenge = reg_proxy.requests("ping")[0].response_headers["Www-Authenticate"]
        assert f'realm="{token_proxy.url}/token"' in challenge
        assert token_proxy.counts["token"] >= 2 and token_proxy.faults["status-503"] == 1
        assert reg_proxy.faults["reset"] == 1
    _data, _ctype, digest = seeder.raw_manifest(repo_path, "production")
    assert digest == source.digest
    seeder.close()
    figures.record(
        "token auth, token service 503 once + immutable PUT reset once",
        f"landed in {run.elapsed:.2f}s",
    )


def test_lasting_token_service_outage_is_a_transient_error(
    tmp_path: Path, token_registry: RegistryServer, repo_path: str
) -> None:
    service = token_registry.token_service
    assert service is not None and token_registry.username and token_registry.password
    token_origin = service.realm.rsplit("/", 1)[0]
    with (
        FaultProxy(token_origin) as token_proxy,
        FaultProxy(token_registry.url, rewrite={token_origin: token_proxy.url}) as reg_proxy,
    ):
        token_proxy.add(Fault.status(503), always=True)
        run = engine(
            tmp_path,
            {
                "image": f"{reg_proxy.host}/{repo_path}",
                "source-tag": "staging-abc1234-1700000500",
                "username": token_registry.username,
                "password": token_registry.password,
            },
            {"PROMOTE_REGISTRY_DEADLINE": "1"},
        )
    assert run.status == TransientError.exit_code
    assert "giving up (retry deadline 1s)" in run.errors[0]
    assert f"::add-mask::{token_registry.password}" in run.log
    shown = [ln for ln in run.log.splitlines() if not ln.startswith("::add-mask::")]
    assert not any(token_registry.password in ln for ln in shown)
