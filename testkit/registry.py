"""A real CNCF distribution registry (Debian ``docker-registry``, 2.8) on a free loopback port.

:class:`RegistryServer` writes a config into a temp dir, runs
``docker-registry serve <config>`` with ``http.addr: 127.0.0.1:<port>`` and filesystem
storage in that temp dir, waits until ``GET /v2/`` answers, and on :meth:`stop` terminates
the process and deletes the dir. Three auth modes:

* ``none``  - open registry;
* ``basic`` - ``auth.htpasswd`` with a bcrypt entry written by ``htpasswd -Bbc``
  (Debian ``apache2-utils``); distribution only accepts bcrypt;
* ``token`` - ``auth.token`` (realm, service, issuer, rootcertbundle) backed by a
  :class:`~testkit.tokenserver.TokenService` started alongside.

The Debian package also installs a system service listening on ``:5000``; nothing here uses
that port, and the server checks that the process answering ``/v2/`` is its own (the
process must still be alive once the port answers, and the answer must match the mode).

A missing binary raises :class:`RegistryStartError` with the package to install; the
fixtures turn that into a test *failure*, never a skip.
"""

from __future__ import annotations

import atexit
import os
import secrets
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING

from testkit.tokenserver import TokenService

if TYPE_CHECKING:
    from promote.reference import Repository
    from promote.registry import Credentials
    from testkit.seed import Seeder

REGISTRY_BINARY = "docker-registry"
HTPASSWD_BINARY = "htpasswd"
START_TIMEOUT = 15.0
MODES = ("none", "basic", "token")


#: Servers still running; stopped at interpreter exit if a test run is cut short.
_LIVE: set[RegistryServer] = set()


@atexit.register
def _stop_all() -> None:
    for server in list(_LIVE):
        server.stop()


class RegistryStartError(RuntimeError):
    """The registry could not be started (binary missing, crashed, never answered)."""


def write_tls_material(directory: Path) -> tuple[Path, Path]:
    """A throwaway CA (``ca.pem``) and a server certificate for 127.0.0.1 it signed."""
    import datetime as dt
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "promote-test-private-ca")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=7))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=7))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    (directory / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_path, key_path = directory / "server.pem", directory / "server.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def require_binary(name: str, package: str) -> str:
    path = shutil.which(name)
    if not path:
        raise RegistryStartError(
            f"{name!r} is not installed: install the Debian package {package!r} "
            "(scripts/install-system-deps.sh does it). Registry tests cannot run without it."
        )
    return path


class RegistryServer:
    """One running registry. ``host`` is ``127.0.0.1:PORT``, ``url`` ``http://host``."""

    def __init__(
        self,
        auth: str = "none",
        *,
        username: str = "promoter",
        tls: bool = False,
        extra_config: str = "",
        keep_in: Path | None = None,
    ) -> None:
        if auth not in MODES:
            raise ValueError(f"auth must be one of {MODES}")
        self.auth = auth
        #: serve HTTPS with a certificate for 127.0.0.1 from a throwaway CA (``ca_path``)
        self.tls = tls
        #: top-level YAML appended to the config (e.g. a ``middleware:`` section)
        self.extra_config = extra_config
        self.username: str | None = username if auth != "none" else None
        self.password: str | None = f"pw-{secrets.token_hex(12)}" if auth != "none" else None
        self.token_service: TokenService | None = None
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None
        self.workdir: Path | None = None
        self._seeder: Seeder | None = None
        #: `make lab`: storage in this folder and a registry that outlives this process
        #: (its own session, not stopped at exit; ``scripts/lab.py stop`` ends it by pid)
        self.keep_in = keep_in

    # -- properties ------------------------------------------------------------------------
    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}"

    @property
    def ca_path(self) -> Path:
        """The PEM of the CA that signed this registry's certificate (``tls=True``)."""
        assert self.workdir is not None and self.tls
        return self.workdir / "ca.pem"

    @property
    def storage(self) -> Path:
        """The filesystem storage root (blobs under ``docker/registry/v2/blobs``)."""
        assert self.workdir is not None
        return self.workdir / "storage"

    @property
    def log_path(self) -> Path:
        assert self.workdir is not None
        return self.workdir / "registry.log"

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    # -- lifecycle -------------------------------------------------------------------------
    def _config(self) -> str:
        assert self.workdir is not None
        storage = self.workdir / "storage"
        storage.mkdir()
        config = f"""version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: {storage}
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: 127.0.0.1:{self.port}
  secret: {secrets.token_hex(16)}
  headers:
    X-Content-Type-Options: [nosniff]
"""
        if self.tls:
            cert, key = write_tls_material(self.workdir)
            config += f"""  tls:
    certificate: {cert}
    key: {key}
"""
        if self.auth == "basic":
            assert self.username and self.password
            htpasswd = require_binary(HTPASSWD_BINARY, "apache2-utils")
            path = self.workdir / "htpasswd"
            subprocess.run(
                [htpasswd, "-Bbc", str(path), self.username, self.password],
                check=True,
                capture_output=True,
            )
            config += f"""auth:
  htpasswd:
    realm: promote-test-basic
    path: {path}
"""
        elif self.auth == "token":
            assert self.username and self.password
            self.token_service = TokenService(
                username=self.username, password=self.password
            ).start()
            bundle = self.workdir / "token-root.pem"
            bundle.write_bytes(self.token_service.cert_pem)
            config += f"""auth:
  token:
    realm: {self.token_service.realm}
    service: {self.token_service.service}
    issuer: {self.token_service.issuer}
    rootcertbundle: {bundle}
"""
        return config + self.extra_config

    def start(self) -> RegistryServer:
        binary = require_binary(REGISTRY_BINARY, "docker-registry")
        last_error = ""
        for _attempt in range(3):
            if self.keep_in is not None:
                shutil.rmtree(self.keep_in, ignore_errors=True)
                self.keep_in.mkdir(parents=True)
                self.workdir = self.keep_in
            else:
                self.workdir = Path(tempfile.mkdtemp(prefix=f"promote-registry-{self.auth}-"))
            self.port = free_port()
            config_path = self.workdir / "config.yml"
            config_path.write_text(self._config())
            env = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")}
            with open(self.log_path, "wb") as log:
                self.process = subprocess.Popen(
                    [binary, "serve", str(config_path)],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    env=env,
                    start_new_session=self.keep_in is not None,
                )
            if self.keep_in is None:
                _LIVE.add(self)
            error = self._wait_ready()
            if error is None:
                return self
            last_error = error
            self.stop()
        raise RegistryStartError(f"docker-registry ({self.auth}) did not start: {last_error}")

    def _wait_ready(self) -> str | None:
        assert self.process is not None
        deadline = time.monotonic() + START_TIMEOUT
        expected = 200 if self.auth == "none" else 401
        context = ssl.create_default_context(cafile=str(self.ca_path)) if self.tls else None
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return f"exited with {self.process.returncode}; log:\n{self.log_tail()}"
            try:
                with urllib.request.urlopen(
                    f"{self.url}/v2/", timeout=1, context=context
                ) as response:
                    status = response.status
            except urllib.error.HTTPError as exc:
                status = exc.code
                exc.close()
            except (urllib.error.URLError, OSError):
                time.sleep(0.05)
                continue
            if self.process.poll() is not None:
                return f"port {self.port} answered but our process exited; log:\n{self.log_tail()}"
            if status != expected:
                return f"/v2/ answered {status}, expected {expected}: not our registry?"
            return None
        return f"no answer on {self.url}/v2/ within {START_TIMEOUT}s; log:\n{self.log_tail()}"

    def stop(self) -> None:
        """Stop the registry (and token service) and delete its storage. Idempotent."""
        _LIVE.discard(self)
        if self.process is not None:
            if self.process.poll() is None:
                self.process.terminate()
                try:
                    self.process.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait(timeout=5)
            self.process = None
        if self._seeder is not None:
            self._seeder.close()
            self._seeder = None
        if self.token_service is not None:
            self.token_service.stop()
            self.token_service = None
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None

    def __enter__(self) -> RegistryServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- helpers ---------------------------------------------------------------------------
    def seeder(self) -> Seeder:
        """The :class:`~testkit.seed.Seeder` of this registry (with its credentials)."""
        from testkit.seed import Seeder

        if self._seeder is None:
            self._seeder = Seeder(self.url, self.username, self.password)
            if self.tls:
                # REQUESTS_CA_BUNDLE (set on machines behind a TLS proxy) would win otherwise
                self._seeder.session.trust_env = False
                self._seeder.session.verify = str(self.ca_path)
        return self._seeder

    def repository(self, path: str) -> Repository:
        """``promote.reference.Repository`` for ``path`` on this registry."""
        from promote.reference import parse_repository

        repository = parse_repository(f"{self.host}/{path}")
        if self.tls:
            import dataclasses

            repository = dataclasses.replace(repository, tls=True)
        return repository

    def credentials(self) -> Credentials | None:
        """``promote.registry.Credentials`` for this registry, or None (auth ``none``)."""
        from promote.registry import Credentials

        if self.username is None or self.password is None:
            return None
        return Credentials(self.username, self.password)
