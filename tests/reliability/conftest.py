"""Shared set-up for the reliability suites: a real registry behind a fault proxy, the
engine run in-process, registry-state snapshots, and measured figures.

* ``proxy``: a :class:`~testkit.proxy.FaultProxy` in front of the module's real
  open ``registry``; the image under test is ``<proxy.host>/<repo_path>``.
* ``fast_retries`` (autouse): the transport's backoff base/max are shortened so retries
  cost milliseconds, not seconds. Deadlines are set per run with
  ``PROMOTE_REGISTRY_DEADLINE`` (and per-attempt timeouts with ``PROMOTE_REGISTRY_TIMEOUT``).
* ``release``: a staging image plus a previous production release (immutable tag and
  floating tag on another digest), so every promotion has a "before" state to protect.
* ``engine(...)``: runs ``promote.frontdoor.commands.execute`` like ``entrypoint.py`` does, with its
  own ``GITHUB_OUTPUT`` and step summary files, and times it.
* ``figures``: ``figures.record(name, value)``; printed in the terminal summary and used
  for ``docs/security.md``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from testkit.figures import Figures, print_figures
from testkit.proxy import FaultProxy
from testkit.registry import RegistryServer
from testkit.seed import Seeded, Seeder

PREVIOUS_TAG = "production-v1.4.2-1111111-1700000000"
SOURCE_SHA = "abc1234"
SOURCE_TAG = f"staging-{SOURCE_SHA}-1700000500"
#: retry knobs injected into the transport for these suites (seconds)
FAST_BACKOFF_BASE = 0.02
FAST_BACKOFF_MAX = 0.2


@dataclass
class Release:
    """A repository with a staging image and a previous production release."""

    repo: str
    source: Seeded
    previous: Seeded
    seeder: Seeder

    @property
    def source_tag(self) -> str:
        assert self.source.tag is not None
        return self.source.tag

    def digest(self, tag: str) -> str | None:
        """The digest ``tag`` names in the registry now (None if absent), read directly."""
        if tag not in self.seeder.tags(self.repo):
            return None
        _data, _ctype, digest = self.seeder.raw_manifest(self.repo, tag)
        return digest

    def production_state(self) -> dict[str, str]:
        """Every ``production*`` tag and the digest it names, read directly."""
        return {
            t: self.digest(t) or ""
            for t in sorted(self.seeder.tags(self.repo))
            if t.startswith("production")
        }

    def new_immutable_tags(self) -> list[str]:
        return [
            t for t in self.production_state() if t.startswith("production-v") and t != PREVIOUS_TAG
        ]

    def assert_no_wrong_digest(self) -> None:
        """No production tag names anything but the source or the previous release."""
        allowed = {self.source.digest, self.previous.digest}
        state = self.production_state()
        wrong = {t: d for t, d in state.items() if d not in allowed}
        assert not wrong, f"tags on a wrong digest: {wrong}"
        assert state[PREVIOUS_TAG] == self.previous.digest
        for tag in self.new_immutable_tags():
            assert state[tag] == self.source.digest, (tag, state)


@pytest.fixture
def figures() -> Figures:
    return Figures()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    print_figures(terminalreporter)


@pytest.fixture(autouse=True)
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """Backoff in milliseconds; the overall deadline is what bounds a lasting fault."""
    import promote.registry.transport as transport

    monkeypatch.setattr(transport, "BACKOFF_BASE", FAST_BACKOFF_BASE)
    monkeypatch.setattr(transport, "BACKOFF_MAX", FAST_BACKOFF_MAX)


@pytest.fixture
def proxy(registry: RegistryServer) -> Iterator[FaultProxy]:
    with FaultProxy(registry.url) as fp:
        yield fp


@pytest.fixture
def release(registry: RegistryServer, repo_path: str) -> Iterator[Release]:
    seeder = registry.seeder()
    previous = seeder.oci_image(repo_path, PREVIOUS_TAG, revision="1111111" + "0" * 33)
    seeder.tag(repo_path, PREVIOUS_TAG, "production")
    source = seeder.oci_image(repo_path, SOURCE_TAG, revision=SOURCE_SHA + "0" * 33)
    assert source.digest != previous.digest
    yield Release(repo_path, source, previous, seeder)
    seeder.close()


def promote_inputs(host: str, release: Release, **extra: str) -> dict[str, str]:
    """The tag writes alone (``record: false``): the faults here are the tags'; the promotion
    record's failure and re-run are tests/frontdoor/commands/test_record.py."""
    inputs = {
        "image": f"{host}/{release.repo}",
        "source-tag": release.source_tag,
        "record": "false",
    }
    inputs.update(extra)
    return inputs
