"""Pytest fixtures for real components (registered in ``tests/conftest.py``).

Registries (real CNCF distribution 2.8, ``docker-registry serve``, on ``127.0.0.1``):

``registry`` (module scope)
    Open registry (auth ``none``).
``basic_registry`` (module scope)
    htpasswd Basic auth (bcrypt entry from ``htpasswd -Bbc``).
``token_registry`` (module scope)
    Bearer token auth, backed by a :class:`~testkit.tokenserver.TokenService`
    on another loopback port: ``token_registry.token_service`` exposes ``issued``,
    ``tokens``, ``requests`` and the knobs ``field``, ``expired_next``,
    ``allowed_actions``, ``anonymous``. Tests that change a knob must restore it (or use
    ``registry_factory`` for a private one).
``any_registry`` (module scope, parametrised ``none``/``basic``/``token``)
    One of the three, so a test runs in every auth mode.
``registry_factory`` (function scope)
    ``registry_factory(auth="none") -> RegistryServer``: a private registry, stopped at
    the end of the test (use when a test stops it or needs an empty registry).

Every registry object (:class:`~testkit.registry.RegistryServer`) exposes ``.host``
(``127.0.0.1:PORT``), ``.url`` (``http://127.0.0.1:PORT``), ``.auth``, ``.username`` and
``.password`` (None for ``none``), ``.stop()``, ``.seeder()`` (a
:class:`~testkit.seed.Seeder` with its credentials), ``.repository(path)`` (a
:class:`promote.reference.Repository`) and ``.credentials()`` (a
:class:`promote.registry.Credentials` or None). Module-scoped registries are shared, so
use a unique repository per test: the ``repo_path`` fixture gives one.

Seeding: ``seeder = any_registry.seeder()``; ``seeded = seeder.oci_image(repo_path,
"staging-abc1234-1700000000", revision="<sha>")`` (also ``oci_index``, ``docker_image``,
``docker_list``, ``image(kind, ...)``, ``tag``, ``tags``, ``raw_manifest``); a
:class:`~testkit.seed.Seeded` carries ``digest``, ``media_type``, ``data`` (the
exact, deliberately non-canonical bytes) and ``children``.

Clients: ``client_factory(server, repo_path, **kwargs) -> RegistryClient`` builds a
client with the server's credentials (override with ``credentials=``), any
``RegistryClient`` keyword (``session``, ``sleep``, ``clock``, ``deadline``...), and an
``on_secret`` that records into ``client_factory.secrets`` (a list) unless given.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from testkit.registry import RegistryServer, RegistryStartError


def _start(auth: str) -> RegistryServer:
    try:
        return RegistryServer(auth).start()
    except RegistryStartError as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture(scope="module")
def registry() -> Iterator[RegistryServer]:
    """A real open registry (auth ``none``) for this test module."""
    server = _start("none")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def basic_registry() -> Iterator[RegistryServer]:
    """A real registry with htpasswd Basic auth for this test module."""
    server = _start("basic")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def token_registry() -> Iterator[RegistryServer]:
    """A real registry with Bearer token auth and its token service, for this module."""
    server = _start("token")
    yield server
    server.stop()


@pytest.fixture(scope="module", params=["none", "basic", "token"])
def any_registry(request: pytest.FixtureRequest) -> RegistryServer:
    """Each of ``registry``, ``basic_registry``, ``token_registry`` in turn."""
    name = {"none": "registry", "basic": "basic_registry", "token": "token_registry"}
    server: RegistryServer = request.getfixturevalue(name[request.param])
    return server


@pytest.fixture
def registry_factory() -> Iterator[Callable[..., RegistryServer]]:
    """``registry_factory(auth="none")``: a private registry stopped after the test."""
    started: list[RegistryServer] = []

    def make(auth: str = "none") -> RegistryServer:
        server = _start(auth)
        started.append(server)
        return server

    yield make
    for server in started:
        server.stop()


@pytest.fixture
def repo_path(request: pytest.FixtureRequest) -> str:
    """A repository path unique to this test: ``test/<test-name>-<random>``."""
    name = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:60].strip("-")
    return f"test/{name or 'repo'}-{secrets.token_hex(3)}"


class ClientFactory:
    """Callable building ``RegistryClient``s; ``secrets`` collects what ``on_secret`` got."""

    def __init__(self) -> None:
        self.secrets: list[str] = []
        self.clients: list[Any] = []

    def __call__(self, server: RegistryServer, path: str, **kwargs: Any) -> Any:
        from promote.registry import RegistryClient

        kwargs.setdefault("credentials", server.credentials())
        kwargs.setdefault("on_secret", self.secrets.append)
        client = RegistryClient(server.repository(path), **kwargs)
        self.clients.append(client)
        return client


@pytest.fixture
def client_factory() -> Iterator[ClientFactory]:
    """``client_factory(server, repo_path, **kwargs) -> RegistryClient`` (see module doc)."""
    factory = ClientFactory()
    yield factory
    for client in factory.clients:
        client.close()
