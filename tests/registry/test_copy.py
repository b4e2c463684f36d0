"""``promote.registry.copy``: the pure plan, and the transfer against real registries
(blob storage redirects, TLS with a private CA, HTTPS -> HTTP refused)."""

from __future__ import annotations

import functools
import json
import threading
import time
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from promote.naming import cosign_tag
from promote.registry import Manifest
from promote.registry.copy import (
    COUNT_KEYS,
    Blob,
    Graph,
    Node,
    Target,
    counts_json,
    plan,
)
from testkit.engine import engine as run_action
from testkit.registry import RegistryServer

SHA = "7a1b2c3d4e5f60718293a4b5c6d7e8f901234567"
STAGING = f"staging-{SHA[:7]}-{int(time.time()) - 600}"


def manifest(doc: dict[str, Any], media_type: str = "application/vnd.oci.image.manifest.v1+json"):
    return Manifest.from_bytes(json.dumps(doc).encode(), media_type)


def d(n: int) -> str:
    return f"sha256:{n:064x}"


# -- plan (pure) -------------------------------------------------------------------------------
def graph() -> Graph:
    child = Node(
        manifest({"schemaVersion": 2, "layers": [], "config": {}}),
        "child",
        "linux/amd64",
        (Blob(d(1), 10, "config"), Blob(d(2), 1000, "layer")),
    )
    other = Node(
        manifest({"schemaVersion": 2, "layers": [1], "config": {}}),
        "child",
        "linux/arm64",
        (Blob(d(1), 10, "config"), Blob(d(3), 2000, "layer")),
    )
    root = Node(
        manifest({"manifests": []}, "application/vnd.oci.image.index.v1+json"),
        "image",
        "index",
        children=(child, other),
    )
    sig = Node(
        manifest({"schemaVersion": 2, "sig": 1}),
        "signature",
        "cosign",
        (Blob(d(4), 5, "sig layer"),),
        tag=cosign_tag(root.manifest.digest, ".sig"),
    )
    return Graph(root, (sig,))


def test_plan_copies_what_is_missing_children_first_and_dedups_blobs() -> None:
    g = graph()
    the_plan = plan(
        g, Target(frozenset({d(2)})), source="a/s", destination="b/t", same_registry=False
    )
    blobs = [(s.action, s.digest) for s in the_plan.steps if s.kind == "blob"]
    assert blobs == [("copy", d(1)), ("skip", d(2)), ("copy", d(3)), ("copy", d(4))]
    manifests = [s for s in the_plan.steps if s.kind == "manifest"]
    assert [s.role for s in manifests] == ["child", "child", "image", "signature"]
    assert manifests[-1].tag.endswith(".sig")
    assert the_plan.predicted() == {
        "blobs-mounted": 0,
        "blobs-copied": 3,
        "blobs-skipped": 1,
        "bytes-copied": 2015,
        "manifests-copied": 3,
        "signatures-copied": 1,
    }
    assert list(json.loads(counts_json(the_plan.predicted()))) == list(COUNT_KEYS)


def test_plan_mounts_on_the_same_registry_and_skips_everything_present() -> None:
    g = graph()
    mounted = plan(g, Target(frozenset()), source="a/s", destination="a/t", same_registry=True)
    assert {s.action for s in mounted.steps if s.kind == "blob"} == {"mount"}
    assert mounted.predicted()["bytes-copied"] == 0
    everything = frozenset({b.digest for b in g.blobs()} | {n.manifest.digest for n in g.nodes()})
    sig = g.artifacts[0]
    done = plan(
        g,
        Target(everything, {sig.tag: sig.manifest.digest}),
        source="a/s",
        destination="b/t",
        same_registry=False,
    )
    assert {s.action for s in done.steps} == {"skip"}


def test_plan_leaves_a_different_signature_tag_in_the_target_alone() -> None:
    g = graph()
    sig = g.artifacts[0]
    the_plan = plan(
        g,
        Target(frozenset(), {sig.tag: d(99)}),
        source="a/s",
        destination="b/t",
        same_registry=False,
    )
    step = next(s for s in the_plan.steps if s.tag == sig.tag)
    assert step.action == "skip"
    assert the_plan.warnings and d(99) in the_plan.warnings[0]


# -- redirects, TLS --------------------------------------------------------------------------------
class BlobStore:
    """Blob storage on its own loopback origin: serves the registry's files, keeps headers."""

    def __init__(self, root: Path) -> None:
        self.seen: list[dict[str, str]] = []
        store = self

        class Handler(SimpleHTTPRequestHandler):
            def send_head(self) -> Any:
                store.seen.append(dict(self.headers.items()))
                return super().send_head()

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(
            ("127.0.0.1", 0), functools.partial(Handler, directory=str(root))
        )
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def redirecting_registry(tmp_path: Path) -> Iterator[tuple[RegistryServer, BlobStore]]:
    """A token-auth registry whose blob GETs redirect to another origin (storage)."""
    storage = tmp_path / "blobstore"
    storage.mkdir()
    store = BlobStore(storage)
    server = RegistryServer(
        "token",
        extra_config=f"""middleware:
  storage:
    - name: redirect
      options:
        baseurl: {store.url}/
""",
    )
    server.start()
    # the middleware redirects to <baseurl>/<storage path>: serve the storage root there
    storage.rmdir()
    storage.symlink_to(server.storage)
    yield server, store
    server.stop()
    store.close()


@pytest.mark.registry
def test_blob_redirects_are_followed_without_credentials(
    tmp_path: Path,
    redirecting_registry: tuple[RegistryServer, BlobStore],
    registry: RegistryServer,
    repo_path: str,
) -> None:
    source, store = redirecting_registry
    seeded = source.seeder().oci_image(f"staging/{repo_path}", STAGING, layer_size=70_000)
    run = run_action(
        tmp_path,
        {
            "image": f"{registry.host}/{repo_path}",
            "source-image": f"{source.host}/staging/{repo_path}",
            "source-tag": STAGING,
            "source-username": source.username or "",
            "source-password": source.password or "",
        },
    )
    assert run.status == 0, run.log
    assert json.loads(run.outputs["copy"])["blobs-copied"] == 2
    assert store.seen, "the registry did not redirect: the test proves nothing"
    assert all("Authorization" not in h and "authorization" not in h for h in store.seen)
    data, _t, digest = registry.seeder().raw_manifest(repo_path, run.outputs["tag"])
    assert (data, digest) == (seeded.data, seeded.digest)


@pytest.fixture
def tls_registries() -> Iterator[tuple[RegistryServer, RegistryServer]]:
    source = RegistryServer("none", tls=True).start()
    target = RegistryServer("basic", tls=True).start()
    yield source, target
    source.stop()
    target.stop()


def bundle(tmp_path: Path, *servers: RegistryServer) -> Path:
    path = tmp_path / "cas.pem"
    path.write_bytes(b"".join(s.ca_path.read_bytes() for s in servers))
    return path


@pytest.mark.registry
def test_tls_with_a_private_ca_from_ca_file(
    tmp_path: Path, tls_registries: tuple[RegistryServer, RegistryServer], repo_path: str
) -> None:
    source, target = tls_registries
    seeded = source.seeder().oci_index(f"staging/{repo_path}", STAGING)
    workspace = tmp_path / "ws"
    workspace.mkdir()
    bundle(workspace, source, target)
    raw = {
        "image": f"{target.host}/{repo_path}",
        "source-image": f"{source.host}/staging/{repo_path}",
        "source-tag": STAGING,
        "username": target.username or "",
        "password": target.password or "",
        "ca-file": "cas.pem",  # relative to the workspace
    }
    run = run_action(tmp_path, raw, {"GITHUB_WORKSPACE": str(workspace)})
    assert run.status == 0, run.log
    data, _t, digest = target.seeder().raw_manifest(repo_path, run.outputs["tag"])
    assert (data, digest) == (seeded.data, seeded.digest)

    # only the target's CA: the source's certificate is refused, one clear line, no tag
    other = f"{repo_path}-x"
    bundle(workspace, target)
    run = run_action(
        tmp_path, raw | {"image": f"{target.host}/{other}"}, {"GITHUB_WORKSPACE": str(workspace)}
    )
    assert run.status != 0
    assert len(run.errors) == 1 and "TLS error" in run.errors[0], run.log
    assert "Traceback" not in run.log
    assert target.seeder().tags(other) == []

    # a ca-file that is not a PEM bundle: an input error before any request
    (workspace / "cas.pem").write_text("not a certificate\n")
    run = run_action(tmp_path, raw, {"GITHUB_WORKSPACE": str(workspace)})
    assert run.status == 2 and "ca-file" in run.errors[0]


@pytest.mark.registry
def test_an_https_to_http_redirect_is_refused(tmp_path: Path, repo_path: str) -> None:
    storage = tmp_path / "plain"
    storage.mkdir()
    store = BlobStore(storage)
    source = RegistryServer(
        "none",
        tls=True,
        extra_config=f"""middleware:
  storage:
    - name: redirect
      options:
        baseurl: {store.url}/
""",
    ).start()
    target = RegistryServer("none", tls=True).start()
    try:
        storage.rmdir()
        storage.symlink_to(source.storage)
        source.seeder().oci_image(f"staging/{repo_path}", STAGING)
        (tmp_path / "cas.pem").write_bytes(
            source.ca_path.read_bytes() + target.ca_path.read_bytes()
        )
        run = run_action(
            tmp_path,
            {
                "image": f"{target.host}/{repo_path}",
                "source-image": f"{source.host}/staging/{repo_path}",
                "source-tag": STAGING,
                "ca-file": str(tmp_path / "cas.pem"),
            },
        )
        assert run.status != 0
        assert "refusing a redirect from HTTPS to plain HTTP" in run.log
        assert store.seen == []
        assert target.seeder().tags(repo_path) == []
    finally:
        source.stop()
        target.stop()
        store.close()


class RecordingSession:
    """A stand-in session that answers 200 and keeps each request's timeout."""

    def __init__(self) -> None:
        self.timeouts: list[float] = []

    def request(self, method: str, url: str, **kwargs: Any) -> Any:
        import requests

        self.timeouts.append(kwargs["timeout"])
        response = requests.Response()
        response.status_code, response.url, response._content = 200, url, b""
        return response


def test_a_transfer_timeout_is_not_cut_by_the_deadline_and_a_phase_restarts_it() -> None:
    from promote.errors import TransientError
    from promote.registry.transport import RequestStats, Transport

    now = [0.0]
    session = RecordingSession()
    transport = Transport(
        session,  # type: ignore[arg-type]
        stats=RequestStats(),
        deadline=10.0,
        timeout=30.0,
        user_agent="t",
        clock=lambda: now[0],
    )
    url = "http://127.0.0.1:9/v2/x/blobs/sha256:" + "0" * 64
    transport.send("GET", url, kind="blob")
    now[0] = 50.0  # the retry budget is spent: an ordinary request gives up at once
    with pytest.raises(TransientError, match="deadline of 10s ran out"):
        transport.send("GET", url, kind="blob")
    transport.send("GET", url, kind="blob", timeout=30.0)  # a blob transfer still runs
    transport.restart_deadline()  # the tag writes after the copy
    transport.send("GET", url, kind="manifest-get")
    assert session.timeouts == [10.0, 30.0, 10.0]


def test_an_upload_the_transport_gave_up_on_is_not_started_again() -> None:
    """The blob POST is retried by the transport under the deadline; once it gives up,
    the whole-transfer retry (for a streamed body cut off) must not run that schedule
    again, and the error is the POST's own, not a PUT "reading the body"."""
    from promote.errors import TransientError
    from promote.registry.copy import Copier, CopyStep
    from tests.registry._servers import Reply
    from tests.registry.test_transport import FakeTime, Scripted, make_client

    scripted, fake_time = Scripted(), FakeTime()
    busy = b'{"errors":[{"code":"UNAVAILABLE","message":"busy"}]}'
    uploads = "/v2/acme/app/blobs/uploads/"
    scripted.on("POST", uploads, Reply(503, {"Content-Type": "application/json"}, busy))
    scripted.server.start()
    try:
        source = make_client(scripted, fake_time, deadline=10.0)
        target = make_client(scripted, fake_time, deadline=10.0)
        logged: list[str] = []
        copier = Copier(source, target, log=logged.append)
        step = CopyStep("copy", "blob", "sha256:" + "a" * 64, 10, "layer")
        with pytest.raises(TransientError, match=r"POST .*/uploads/ failed after 6 attempts"):
            copier._copy_blob(step)
        assert len(scripted.seen("POST", uploads)) == 6
        assert logged == []
    finally:
        scripted.server.stop()
