"""Credentials from a Docker config: ``auths``, ``credsStore``, ``credHelpers`` through a
real ``docker-credential-<name>`` program (a shell script), and the action using them."""

from __future__ import annotations

import base64
import json
import os
import stat
import time
from pathlib import Path

import pytest

from promote.errors import AuthError, InputError
from promote.registry import Credentials
from promote.registry.dockerconfig import config_path, credentials, key_host
from testkit.engine import EngineRun as Run
from testkit.engine import engine as run_action
from testkit.registry import RegistryServer
from testkit.seed import Seeded

SHA = "9b8a7c6d5e4f30211223344556677889900aabbc"
STAGING = f"staging-{SHA[:7]}-{int(time.time()) - 600}"


def write_config(directory: Path, doc: dict[str, object]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.json").write_text(json.dumps(doc))
    return directory


def helper(bin_dir: Path, name: str, answers: dict[str, tuple[str, str]]) -> Path:
    """A ``docker-credential-<name>`` shell script answering ``get`` for ``answers``; it
    logs each server URL asked for to ``<bin_dir>/<name>.log``."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    cases = "\n".join(
        f'  "{server}") printf \'{{"ServerURL":"%s","Username":"{user}","Secret":"{secret}"}}\' '
        f'"$server" ;;'
        for server, (user, secret) in answers.items()
    )
    script = bin_dir / f"docker-credential-{name}"
    script.write_text(
        f"""#!/bin/sh
[ "$1" = get ] || exit 2
read -r server
echo "$server" >> "{bin_dir}/{name}.log"
case "$server" in
{cases}
  *) echo "credentials not found in native keychain"; exit 1 ;;
esac
"""
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script


def env_with(config_dir: Path, bin_dir: Path | None = None) -> dict[str, str]:
    path = os.environ.get("PATH", "/usr/bin:/bin")
    return {"DOCKER_CONFIG": str(config_dir), "PATH": f"{bin_dir}:{path}" if bin_dir else path}


def test_config_path_and_key_matching(tmp_path: Path) -> None:
    assert config_path({"DOCKER_CONFIG": "/x", "HOME": "/h"}) == Path("/x/config.json")
    assert config_path({"HOME": "/h"}) == Path("/h/.docker/config.json")
    assert config_path({}) is None
    assert key_host("https://index.docker.io/v1/") == "docker.io"
    assert key_host("https://GHCR.io") == "ghcr.io"
    assert key_host("127.0.0.1:5000") == "127.0.0.1:5000"


def test_auths_entries(tmp_path: Path) -> None:
    auth = base64.b64encode(b"alice:s3cret").decode()
    config = write_config(
        tmp_path / "cfg",
        {
            "auths": {
                "https://ghcr.io": {"auth": auth},
                "https://index.docker.io/v1/": {"username": "bob", "password": "hub-pw"},
                "quay.io": {"identitytoken": "refresh"},
            }
        },
    )
    env = env_with(config)
    assert credentials("ghcr.io", env) == Credentials("alice", "s3cret")
    assert credentials("docker.io", env) == Credentials("bob", "hub-pw")
    assert credentials("example.com", env) is None
    with pytest.raises(AuthError, match="identity/registry token"):
        credentials("quay.io", env)
    assert credentials("ghcr.io", {"DOCKER_CONFIG": str(tmp_path / "none")}) is None
    (config / "config.json").write_text("{not json")
    with pytest.raises(InputError, match="not valid JSON"):
        credentials("ghcr.io", env)


def test_cred_helpers_win_and_fall_back_to_auths(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    helper(bin_dir, "acme", {"registry.acme.test": ("robot", "helper-pw")})
    helper(bin_dir, "store", {"https://index.docker.io/v1/": ("hubby", "store-pw")})
    auth = base64.b64encode(b"fallback:pw").decode()
    config = write_config(
        tmp_path / "cfg",
        {
            "credsStore": "store",
            "credHelpers": {"registry.acme.test": "acme"},
            "auths": {"other.test": {"auth": auth}},
        },
    )
    env = env_with(config, bin_dir)
    assert credentials("registry.acme.test", env) == Credentials("robot", "helper-pw")
    assert credentials("docker.io", env) == Credentials("hubby", "store-pw")
    # the store has nothing for other.test: the auths entry is used
    assert credentials("other.test", env) == Credentials("fallback", "pw")
    assert "https://index.docker.io/v1/" in (bin_dir / "store.log").read_text()
    missing = write_config(tmp_path / "cfg2", {"credsStore": "nope"})
    with pytest.raises(AuthError, match="docker-credential-nope is not on PATH"):
        credentials("x.test", env_with(missing, bin_dir))


def promote_across(
    tmp_path: Path,
    source: RegistryServer,
    target: RegistryServer,
    repo_path: str,
    seeded: Seeded,
    config: Path,
    bin_dir: Path,
    **more: str,
) -> Run:
    """Promote ``STAGING`` from ``source`` into ``target`` with the Docker config ``config``
    (helpers in ``bin_dir``); checks it succeeded with the source's bytes."""
    run = run_action(
        tmp_path,
        {
            "image": f"{target.host}/{repo_path}",
            "source-image": f"{source.host}/staging/{repo_path}",
            "source-tag": STAGING,
            **more,
        },
        env_with(config, bin_dir),
    )
    assert run.status == 0, run.log
    data, _t, digest = target.seeder().raw_manifest(repo_path, run.outputs["tag"])
    assert (data, digest) == (seeded.data, seeded.digest)
    return run


@pytest.mark.registry
def test_promote_takes_both_registries_credentials_from_a_docker_config(
    tmp_path: Path,
    token_registry: RegistryServer,
    basic_registry: RegistryServer,
    repo_path: str,
) -> None:
    """The target from ``auths`` (what docker/login-action writes), the source through a
    credential helper; no username/password inputs at all."""
    src_repo = f"staging/{repo_path}"
    seeded = token_registry.seeder().oci_image(src_repo, STAGING)
    bin_dir = tmp_path / "bin"
    helper(
        bin_dir,
        "test",
        {token_registry.host: (token_registry.username or "", token_registry.password or "")},
    )
    auth = base64.b64encode(
        f"{basic_registry.username}:{basic_registry.password}".encode()
    ).decode()
    config = write_config(
        tmp_path / "docker",
        {
            "auths": {basic_registry.host: {"auth": auth}},
            "credHelpers": {token_registry.host: "test"},
        },
    )
    run = promote_across(
        tmp_path, token_registry, basic_registry, repo_path, seeded, config, bin_dir
    )
    for secret in (token_registry.password or "", basic_registry.password or ""):
        assert f"::add-mask::{secret}" in run.log
        assert secret not in run.log.replace(f"::add-mask::{secret}", "")
    assert token_registry.host in (bin_dir / "test.log").read_text()


@pytest.mark.registry
def test_inputs_win_over_the_docker_config(
    tmp_path: Path,
    token_registry: RegistryServer,
    basic_registry: RegistryServer,
    repo_path: str,
) -> None:
    """A Docker config with wrong credentials for both hosts: the username/password and
    source-username/source-password inputs are used, the config's entries never."""
    src_repo = f"staging/{repo_path}"
    seeded = token_registry.seeder().oci_image(src_repo, STAGING)
    bin_dir = tmp_path / "bin"
    helper(bin_dir, "test", {token_registry.host: ("nobody", "helper-wrong")})
    wrong = base64.b64encode(b"nobody:auths-wrong").decode()
    config = write_config(
        tmp_path / "docker",
        {
            "auths": {basic_registry.host: {"auth": wrong}},
            "credHelpers": {token_registry.host: "test"},
        },
    )
    logins = {
        "username": basic_registry.username or "",
        "password": basic_registry.password or "",
        "source-username": token_registry.username or "",
        "source-password": token_registry.password or "",
    }
    run = promote_across(
        tmp_path, token_registry, basic_registry, repo_path, seeded, config, bin_dir, **logins
    )
    assert not (bin_dir / "test.log").exists(), "the helper was asked although inputs were given"
    assert "helper-wrong" not in run.log and "auths-wrong" not in run.log
