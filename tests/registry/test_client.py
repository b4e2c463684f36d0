"""RegistryClient against a real CNCF distribution registry, in all three auth modes."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import requests

from promote.errors import AuthError, DigestMismatchError, NotFoundError, ReferenceError_
from promote.registry import (
    MANIFEST_ACCEPT,
    Credentials,
    Manifest,
    RegistryClient,
)
from testkit.fixtures import ClientFactory
from testkit.proxy import Exchange, Fault, FaultProxy
from testkit.registry import RegistryServer
from testkit.seed import DOCKER_MANIFEST, IMAGE_KINDS, OCI_MANIFEST
from tests.registry._servers import LoopbackServer, Reply

pytestmark = pytest.mark.registry

EXPECTED_TYPES = {
    "oci-image": "application/vnd.oci.image.manifest.v1+json",
    "oci-index": "application/vnd.oci.image.index.v1+json",
    "docker-image": "application/vnd.docker.distribution.manifest.v2+json",
    "docker-list": "application/vnd.docker.distribution.manifest.list.v2+json",
}


def _auth_requests(server: RegistryServer) -> int:
    """Requests the client is expected to spend on auth besides the ping."""
    return 1 if server.auth == "token" else 0


@pytest.mark.parametrize("kind", IMAGE_KINDS)
def test_every_media_type_round_trips_byte_identically(
    any_registry: RegistryServer, client_factory: ClientFactory, repo_path: str, kind: str
) -> None:
    seeder = any_registry.seeder()
    seeded = seeder.image(kind, repo_path, "staging-abc1234-1700000000")
    client = client_factory(any_registry, repo_path)

    manifest = client.get_manifest("staging-abc1234-1700000000")
    assert manifest.data == seeded.data  # the non-canonical bytes, untouched
    assert manifest.digest == seeded.digest
    assert manifest.media_type == EXPECTED_TYPES[kind]
    assert client.put_manifest("production", manifest) == seeded.digest

    raw, content_type, header_digest = seeder.raw_manifest(repo_path, "production")
    assert raw == seeded.data
    assert header_digest == seeded.digest
    assert content_type.split(";")[0] == EXPECTED_TYPES[kind]
    assert client.head_manifest("production") is not None
    head = client.head_manifest("production")
    assert head is not None
    assert (head.digest, head.media_type, head.size) == (
        seeded.digest,
        EXPECTED_TYPES[kind],
        len(seeded.data),
    )
    by_digest = client.get_manifest(seeded.digest)
    assert by_digest.data == seeded.data

    # ping once, one token in token mode, no blob and no child request at all
    assert client.stats["ping"] == 1
    assert client.stats["token"] == _auth_requests(any_registry)
    assert client.stats["blob"] == 0
    assert client.stats.as_dict() == {
        "ping": 1,
        **({"token": 1} if any_registry.auth == "token" else {}),
        "manifest-get": 2,
        "manifest-put": 1,
        "manifest-head": 2,
    }
    assert client.stats.total(exclude=("ping", "token")) == 5
    assert all(not r.url.split("/v2/")[-1].count("/blobs/") for r in client.stats.records)
    if kind in ("oci-index", "docker-list"):
        assert len(manifest.platforms()) == 3
        assert manifest.platforms() == ["linux/amd64", "linux/arm64/v8", "linux/s390x"]
        assert manifest.config_digest is None
    else:
        assert manifest.platforms() == []
        assert manifest.config_digest == seeded.config_digest


def test_annotations_and_config_label(
    any_registry: RegistryServer, client_factory: ClientFactory, repo_path: str
) -> None:
    sha = "0123456789abcdef0123456789abcdef01234567"
    seeded = any_registry.seeder().oci_image(
        repo_path, "staging-1", revision=sha, label_revision=sha
    )
    client = client_factory(any_registry, repo_path)
    manifest = client.get_manifest("staging-1")
    assert manifest.annotations == {"org.opencontainers.image.revision": sha}
    assert manifest.config_digest == seeded.config_digest
    config = client.get_blob(manifest.config_digest)
    assert f'"{sha}"' in config.decode()
    assert client.stats["blob"] == 1


def test_full_accept_list_is_what_makes_oci_manifests_visible(
    registry: RegistryServer, client_factory: ClientFactory, repo_path: str
) -> None:
    seeder = registry.seeder()
    seeded = seeder.oci_image(repo_path, "staging-1")
    # The quirk: CNCF distribution hides an OCI manifest from a Docker-only Accept.
    assert seeder.manifest_status(repo_path, "staging-1", accept=DOCKER_MANIFEST) == 404
    assert seeder.manifest_status(repo_path, "staging-1", accept=OCI_MANIFEST) == 200

    session = requests.Session()
    sent: list[tuple[str, str | None]] = []

    def record(response: requests.Response, *args: object, **kwargs: object) -> None:
        sent.append((response.request.method or "", response.request.headers.get("Accept")))

    session.hooks["response"].append(record)
    client = client_factory(registry, repo_path, session=session)
    assert client.get_manifest("staging-1").digest == seeded.digest
    assert client.head_manifest("staging-1") is not None
    manifest_requests = [a for m, a in sent if m in ("GET", "HEAD")][1:]  # skip the ping
    assert manifest_requests == [MANIFEST_ACCEPT, MANIFEST_ACCEPT]
    for media_type in EXPECTED_TYPES.values():
        assert media_type in MANIFEST_ACCEPT
    session.close()


def test_not_found(
    any_registry: RegistryServer, client_factory: ClientFactory, repo_path: str
) -> None:
    any_registry.seeder().oci_image(repo_path, "staging-1")
    client = client_factory(any_registry, repo_path)
    with pytest.raises(NotFoundError) as info:
        client.get_manifest("nope")
    assert "MANIFEST_UNKNOWN" in info.value.codes
    assert info.value.status == 404
    assert "GET http://" in str(info.value)
    assert client.head_manifest("nope") is None
    assert client.head_manifest("sha256:" + "0" * 64) is None
    with pytest.raises(NotFoundError):
        client.get_blob("sha256:" + "1" * 64)
    other = client_factory(any_registry, repo_path + "-never-pushed")
    assert other.list_tags() == []
    with pytest.raises(NotFoundError):
        other.get_manifest("latest")


def test_references_are_validated_before_any_request(
    registry: RegistryServer, client_factory: ClientFactory, repo_path: str
) -> None:
    client = client_factory(registry, repo_path)
    for bad in ("", "-x", "a b", "v1+build", "sha512:" + "a" * 128, "sha256:ABC"):
        with pytest.raises(ReferenceError_):
            client.get_manifest(bad)
        with pytest.raises(ReferenceError_):
            client.head_manifest(bad)
    manifest = Manifest.from_bytes(b'{"schemaVersion": 2}', OCI_MANIFEST)
    with pytest.raises(ReferenceError_):
        client.put_manifest("bad tag", manifest)
    assert client.stats.total() == 0


def test_list_tags_real_registry(
    any_registry: RegistryServer, client_factory: ClientFactory, repo_path: str
) -> None:
    seeder = any_registry.seeder()
    seeder.oci_image(repo_path, "t-000")
    wanted = {f"t-{i:03d}" for i in range(25)}
    for tag in sorted(wanted - {"t-000"}):
        seeder.tag(repo_path, "t-000", tag)
    client = client_factory(any_registry, repo_path)
    assert set(client.list_tags()) == wanted
    assert client.stats["tags"] == 1
    # distribution 2.8 ignores ``n``/``last``: a page longer than ``n`` is the whole list,
    # so no ``last`` request follows.
    paged = client_factory(any_registry, repo_path)
    tags = paged.list_tags(page_size=10)
    assert sorted(tags) == sorted(wanted)
    assert len(tags) == len(wanted)
    assert paged.stats["tags"] == 1
    # a page of exactly ``n`` without Link may be followed by more: ``last`` is asked once,
    # brings nothing new, and the listing stops (no endless loop)
    exact = client_factory(any_registry, repo_path)
    assert sorted(exact.list_tags(page_size=25)) == sorted(wanted)
    assert exact.stats["tags"] == 2


def _paginating_proxy(server: RegistryServer, *, link: bool, fault: str = "") -> FaultProxy:
    """A proxy paginating the real registry's tag list (sorted) by ``n`` and an opaque
    cursor in a relative ``Link`` (``link=True``) or by ``n``/``last`` without Link.
    ``fault``: ``"404"`` answers the third page 404; ``"loop"`` links page 3 back to page 2."""

    def paginate(exchange: Exchange) -> None:  # the whole list was forwarded: page it
        parts = urlsplit(exchange.path)
        query = parse_qs(parts.query)
        if exchange.status != 200:
            return
        import json

        tags = sorted(json.loads(exchange.response_body)["tags"])
        n = int(query.get("n", ["1000"])[0])
        if "cursor" in query:
            start = int(query["cursor"][0].removeprefix("opaque-"))
        elif "last" in query:
            start = len([t for t in tags if t <= query["last"][0]])
        else:
            start = 0
        page = tags[start : start + n]
        headers = {"Content-Type": "application/json"}
        exchange.response_headers = headers
        if fault == "404" and start == 2 * n:
            body = b'{"errors":[{"code":"NAME_UNKNOWN","message":"repository name not known"}]}'
            exchange.status, exchange.response_body = 404, body
            return
        if link and start + n < len(tags):
            target = n if fault == "loop" and start == 2 * n else start + n
            nxt = urlencode({"n": n, "cursor": f"opaque-{target}"})
            headers["Link"] = f'<{parts.path}?{nxt}>; rel="next"'
        exchange.response_body = json.dumps({"name": "x", "tags": page}).encode()

    def whole_list(path: str) -> str:
        return urlsplit(path).path

    proxy = FaultProxy(server.url)
    proxy.add(Fault.hook(paginate, after=True, upstream_path=whole_list), path=r"/tags/list(\?|$)")
    return proxy


@pytest.mark.parametrize(
    ("fault", "message"), [("404", "broke off after 10 tags"), ("loop", "loops back")]
)
def test_list_tags_never_returns_a_partial_list(
    registry: RegistryServer, repo_path: str, fault: str, message: str
) -> None:
    """Versions and timestamps come from the list: a short one must be an error."""
    from promote.errors import RegistryError
    from promote.reference import parse_repository

    seeder = registry.seeder()
    seeder.oci_image(repo_path, "t-000")
    for i in range(1, 23):
        seeder.tag(repo_path, "t-000", f"t-{i:03d}")
    proxy = _paginating_proxy(registry, link=True, fault=fault)
    try:
        with (
            RegistryClient(parse_repository(f"{proxy.host}/{repo_path}")) as client,
            pytest.raises(RegistryError, match=message),
        ):
            client.list_tags(page_size=5)
    finally:
        proxy.close()


@pytest.mark.parametrize("link", [True, False], ids=["link", "last"])
def test_list_tags_follows_every_page(
    any_registry: RegistryServer, repo_path: str, link: bool
) -> None:
    seeder = any_registry.seeder()
    seeder.oci_image(repo_path, "t-000")
    wanted = [f"t-{i:03d}" for i in range(23)]
    for tag in wanted[1:]:
        seeder.tag(repo_path, "t-000", tag)
    proxy = _paginating_proxy(any_registry, link=link)
    try:
        from promote.reference import parse_repository

        with RegistryClient(
            parse_repository(f"{proxy.host}/{repo_path}"), any_registry.credentials()
        ) as client:
            assert client.list_tags(page_size=5) == wanted
            assert client.stats["tags"] == 5  # 5 + 5 + 5 + 5 + 3
        tag_requests = [e.path for e in proxy.requests() if "/tags/list" in e.path]
        if link:
            assert [parse_qs(urlsplit(p).query).get("cursor") for p in tag_requests] == [
                None,
                ["opaque-5"],
                ["opaque-10"],
                ["opaque-15"],
                ["opaque-20"],
            ]
        else:
            assert [parse_qs(urlsplit(p).query).get("last") for p in tag_requests] == [
                None,
                ["t-004"],
                ["t-009"],
                ["t-014"],
                ["t-019"],
            ]
        assert all("n=5" in p for p in tag_requests)
    finally:
        proxy.close()


@pytest.fixture
def recorded_session() -> Iterator[tuple[requests.Session, list[tuple[str, str]]]]:
    """A session recording (url, Authorization) of every request sent."""
    session = requests.Session()
    sent: list[tuple[str, str]] = []

    def record(response: requests.Response, *args: object, **kwargs: object) -> None:
        sent.append((response.request.url or "", response.request.headers.get("Authorization", "")))

    session.hooks["response"].append(record)
    yield session, sent
    session.close()


@pytest.mark.parametrize("mode", ["basic", "token"])
def test_wrong_password_is_an_auth_error_without_secrets(
    request: pytest.FixtureRequest,
    client_factory: ClientFactory,
    repo_path: str,
    mode: str,
) -> None:
    server: RegistryServer = request.getfixturevalue(f"{mode}_registry")
    server.seeder().oci_image(repo_path, "staging-1")
    wrong = "wrong-" + (server.password or "")
    client = client_factory(server, repo_path, credentials=Credentials("promoter", wrong))
    with pytest.raises(AuthError) as info:
        client.get_manifest("staging-1")
    message = str(info.value)
    assert wrong not in message
    assert (server.password or "") not in message
    assert "promoter" in message
    assert "check the username and password" in message
    if server.token_service is not None:
        for token in server.token_service.tokens:
            assert token not in message
    assert wrong in client_factory.secrets
    assert "wrong" not in repr(Credentials("promoter", wrong))


@pytest.mark.parametrize("mode", ["basic", "token"])
def test_anonymous_access_refused_clearly(
    request: pytest.FixtureRequest, client_factory: ClientFactory, repo_path: str, mode: str
) -> None:
    server: RegistryServer = request.getfixturevalue(f"{mode}_registry")
    client = client_factory(server, repo_path, credentials=None)
    with pytest.raises(AuthError, match="give username and password"):
        client.list_tags()


def test_basic_credentials_stay_on_the_registry_origin(
    basic_registry: RegistryServer,
    client_factory: ClientFactory,
    repo_path: str,
    recorded_session: tuple[requests.Session, list[tuple[str, str]]],
) -> None:
    session, sent = recorded_session
    seeded = basic_registry.seeder().oci_image(repo_path, "staging-1")
    client = client_factory(basic_registry, repo_path, session=session)
    client.get_manifest("staging-1")
    assert sent[0] == (f"{basic_registry.url}/v2/", "")  # the ping carries nothing
    assert all(auth.startswith("Basic ") for _url, auth in sent[1:])
    assert seeded.digest


def _redirecting_proxy(server: RegistryServer, blob_host: LoopbackServer) -> FaultProxy:
    """Forwards to the real registry, but redirects blob GETs to ``blob_host``."""

    def redirect(exchange: Exchange) -> None:
        digest = exchange.path.rsplit("/", 1)[1]
        exchange.status = 307
        exchange.response_headers = {"Location": f"{blob_host.url}/storage/{digest}?sig=abc"}

    proxy = FaultProxy(server.url)
    proxy.add(Fault.answer(redirect), method="GET", path=r"/blobs/sha256:[0-9a-f]{64}$")
    return proxy


@pytest.mark.parametrize("mode", ["basic", "token"])
def test_no_credentials_on_cross_host_redirect(
    request: pytest.FixtureRequest, client_factory: ClientFactory, repo_path: str, mode: str
) -> None:
    server: RegistryServer = request.getfixturevalue(f"{mode}_registry")
    seeder = server.seeder()
    seeded = seeder.oci_image(repo_path, "staging-1", label_revision="a" * 40)
    assert seeded.config_digest
    config_bytes = seeder.request(
        "GET", repo_path, f"{server.url}/v2/{repo_path}/blobs/{seeded.config_digest}"
    ).content

    blob_host = LoopbackServer(lambda seen: Reply(200, {}, config_bytes)).start()
    proxy = _redirecting_proxy(server, blob_host)
    try:
        from promote.reference import parse_repository

        client = RegistryClient(
            parse_repository(f"{proxy.host}/{repo_path}"),
            server.credentials(),
            on_secret=client_factory.secrets.append,
        )
        with client:
            assert client.get_blob(seeded.config_digest) == config_bytes
        assert len(blob_host.seen) == 1
        assert blob_host.seen[0].path == f"/storage/{seeded.config_digest}?sig=abc"
        assert "Authorization" not in blob_host.seen[0].headers
        for secret in client_factory.secrets:
            assert all(secret not in v for v in blob_host.seen[0].headers.values())
        # ...while the registry origin did get credentials for the same blob request
        blob_on_proxy = [e for e in proxy.requests() if "/blobs/" in e.path]
        assert blob_on_proxy and "Authorization" in blob_on_proxy[0].headers
        assert client.stats["blob"] == 2  # the registry hop and the storage hop
    finally:
        proxy.close()
        blob_host.stop()


def test_failed_cross_host_redirect_error_hides_the_signed_query(
    basic_registry: RegistryServer, client_factory: ClientFactory, repo_path: str
) -> None:
    """Blob storage refuses the presigned URL: the error names the host and path, never
    the query (S3/CloudFront signatures, X-Amz-Security-Token are credentials)."""
    seeded = basic_registry.seeder().oci_image(repo_path, "staging-1", label_revision="a" * 40)
    assert seeded.config_digest
    blob_host = LoopbackServer(lambda seen: Reply(403, {}, b"AccessDenied")).start()
    proxy = _redirecting_proxy(basic_registry, blob_host)
    try:
        from promote.reference import parse_repository

        client = RegistryClient(
            parse_repository(f"{proxy.host}/{repo_path}"), basic_registry.credentials()
        )
        with client, pytest.raises(AuthError) as info:
            client.get_blob(seeded.config_digest)
        assert blob_host.seen and blob_host.seen[0].path.endswith("?sig=abc")
        message = str(info.value)
        assert f"{blob_host.url}/storage/{seeded.config_digest}" in message
        assert "sig=abc" not in message and "sig=abc" not in (info.value.url or "")
    finally:
        proxy.close()
        blob_host.stop()


def test_tokens_go_to_on_secret_before_use(
    token_registry: RegistryServer,
    repo_path: str,
    recorded_session: tuple[requests.Session, list[tuple[str, str]]],
) -> None:
    session, sent = recorded_session
    service = token_registry.token_service
    assert service is not None
    token_registry.seeder().oci_image(repo_path, "staging-1")
    events: list[str] = []
    masked: list[str] = []

    def on_secret(secret: str) -> None:
        masked.append(secret)
        events.append(f"mask:{len(sent)}")

    with RegistryClient(
        token_registry.repository(repo_path),
        token_registry.credentials(),
        on_secret=on_secret,
        session=session,
        user_agent="promote-test/on-secret",
    ) as client:
        manifest = client.get_manifest("staging-1")
        client.put_manifest("production", manifest)
    ours = [t.token for t in service.issued if t.user_agent == "promote-test/on-secret"]
    assert len(ours) == 1
    assert ours[0] in masked
    first_use = next(i for i, (_u, auth) in enumerate(sent) if auth == f"Bearer {ours[0]}")
    mask_at = int(events[masked.index(ours[0])].split(":")[1])
    assert mask_at <= first_use  # masked before the request that used it was sent
    assert token_registry.password in masked
    issued = next(t for t in service.issued if t.token == ours[0])
    assert issued.scopes == (f"repository:{repo_path}:push,pull",)
    assert issued.access == ((repo_path, ("push", "pull")),)
    # the token service got Basic credentials; the registry never did
    registry_auth = [a for u, a in sent if u.startswith(token_registry.url)]
    assert all(not a.startswith("Basic") for a in registry_auth)


def test_expired_token_is_rechallenged_once(
    token_registry: RegistryServer, client_factory: ClientFactory, repo_path: str
) -> None:
    service = token_registry.token_service
    assert service is not None
    seeded = token_registry.seeder().oci_image(repo_path, "staging-1")
    service.expired_next = 1
    try:
        client = client_factory(token_registry, repo_path, user_agent="promote-test/expired")
        assert client.get_manifest("staging-1").digest == seeded.digest
    finally:
        service.expired_next = 0
    ours = [t for t in service.issued if t.user_agent == "promote-test/expired"]
    assert [t.expired for t in ours] == [True, False]
    assert client.stats["token"] == 2
    assert client.stats["manifest-get"] == 2  # 401 with the expired token, then 200
    assert [t.token for t in ours] == [
        s for s in client_factory.secrets if s in {t.token for t in ours}
    ]


def test_access_token_field_is_accepted(
    token_registry: RegistryServer, client_factory: ClientFactory, repo_path: str
) -> None:
    service = token_registry.token_service
    assert service is not None
    seeded = token_registry.seeder().docker_image(repo_path, "staging-1")
    service.field = "access_token"
    try:
        client = client_factory(token_registry, repo_path)
        assert client.get_manifest("staging-1").digest == seeded.digest
    finally:
        service.field = "token"
    assert client.stats["token"] == 1


def test_pull_only_token_reports_missing_push_access(
    token_registry: RegistryServer, client_factory: ClientFactory, repo_path: str
) -> None:
    service = token_registry.token_service
    assert service is not None
    token_registry.seeder().oci_image(repo_path, "staging-1")
    service.allowed_actions = ("pull",)
    try:
        client = client_factory(token_registry, repo_path, user_agent="promote-test/pull-only")
        manifest = client.get_manifest("staging-1")
        with pytest.raises(AuthError) as info:
            client.put_manifest("production", manifest)
    finally:
        service.allowed_actions = ("pull", "push")
    message = str(info.value)
    assert "check the token has push access" in message
    assert info.value.codes  # the OCI error code of the body is kept
    ours = [t.token for t in service.issued if t.user_agent == "promote-test/pull-only"]
    assert len(ours) == 2  # the 401 on PUT earned exactly one new token
    assert all(token not in message for token in ours)
    assert client.stats["manifest-put"] == 2
    assert "production" not in token_registry.seeder().tags(repo_path)


def test_digest_must_match_bytes_on_put(
    registry: RegistryServer, client_factory: ClientFactory, repo_path: str
) -> None:
    seeded = registry.seeder().oci_image(repo_path, "staging-1")
    client = client_factory(registry, repo_path)
    manifest = client.get_manifest("staging-1")
    forged = Manifest(
        data=manifest.data + b" ", media_type=manifest.media_type, digest=seeded.digest
    )
    with pytest.raises(DigestMismatchError):
        client.put_manifest("production", forged)
    with pytest.raises(DigestMismatchError):
        client.put_manifest("sha256:" + "0" * 64, manifest)
    assert client.stats["manifest-put"] == 0
    assert client.put_manifest(seeded.digest, manifest) == seeded.digest
