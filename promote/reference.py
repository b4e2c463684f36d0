"""Image references: ``[registry/]path[:tag][@digest]``, parsed once, validated before I/O.

Pure (layering: nothing in :mod:`promote` is imported here but the errors and the tag
grammar, whose one owner is :mod:`promote.naming`).

Grammar (CNCF distribution ``reference/regexp.go``, OCI distribution-spec)::

    reference  := name [ ":" tag ] [ "@" digest ]
    name       := [ host "/" ] path                     (whole canonical name <= 255 chars)
    host       := domain [ ":" port ] | "[" ipv6 "]" [ ":" port ]
    domain     := label ( "." label )*
    label      := [A-Za-z0-9] | [A-Za-z0-9][A-Za-z0-9-]*[A-Za-z0-9]
    path       := component ( "/" component )*
    component  := [a-z0-9]+ ( ( "." | "_" | "__" | "-"+ ) [a-z0-9]+ )*
    tag        := [A-Za-z0-9_][A-Za-z0-9._-]{0,127}   (promote.naming.TAG_RE)
    digest     := "sha256:" [0-9a-f]{64}                (the only algorithm promote accepts)

The first ``/``-separated part is a registry host only when it looks like one: it contains a
``.`` or a ``:``, is ``localhost``, or is a bracketed IPv6 address. Otherwise the whole text
is a Docker Hub path, as the Docker CLI reads it.

Docker Hub defaulting (the only defaulting done): no host, ``index.docker.io`` and
``registry-1.docker.io`` all become ``docker.io``; a one-component Hub path gets the
``library/`` prefix (``nginx`` -> ``docker.io/library/nginx``). The API host for Hub is
``registry-1.docker.io`` (:attr:`Repository.api_host`).

Transport: plain HTTP is used only for loopback hosts (``localhost``, ``127.0.0.0/8``,
``[::1]``, any port); everything else is HTTPS. There is no "insecure registry" switch.
A loopback registry served over TLS (a private CA, the ``ca-file`` input) is a
:class:`Repository` with ``tls=True``: HTTPS then, like any other host.

Refused with :class:`~promote.errors.ReferenceError_` and one clear message: credentials
(``user:pass@host/...``), a URL scheme, whitespace, non-ASCII, upper case in the path,
``..``/empty components (path traversal), digests other than lower-case ``sha256``.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from promote.errors import ReferenceError_
from promote.naming import TAG_MAX, TAG_RE

#: Canonical name of Docker Hub, as users write it and as we print it.
DOCKER_HUB = "docker.io"
#: Where Docker Hub's registry API actually lives.
DOCKER_HUB_API = "registry-1.docker.io"
#: Other spellings of Docker Hub that are normalised to ``docker.io``.
DOCKER_HUB_ALIASES = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io"})
#: distribution's ``NameTotalLengthMax``.
NAME_MAX = 255

_A = re.ASCII
_LABEL = r"(?:[A-Za-z0-9]|[A-Za-z0-9][A-Za-z0-9-]*[A-Za-z0-9])"
_DOMAIN = rf"{_LABEL}(?:\.{_LABEL})*"
_IPV6 = r"\[[0-9A-Fa-f:.]+\]"
_PORT = r"[0-9]{1,5}"
HOST_RE = re.compile(rf"(?:{_DOMAIN}|{_IPV6})(?::{_PORT})?", _A)
COMPONENT_RE = re.compile(r"[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*", _A)
DIGEST_RE = re.compile(r"sha256:[0-9a-f]{64}", _A)
_ALGO_RE = re.compile(r"[A-Za-z0-9]+(?:[.+_-][A-Za-z0-9]+)*:.*", _A)


def _shown(text: str) -> str:
    """``text`` for a message: any ``user:password@`` before the host is replaced by ``***@``."""
    scheme, sep, rest = text.partition("://")
    if not sep:
        scheme, rest = "", text
    host, slash, path = rest.partition("/")
    if "@" in host:
        host = "***@" + host.rsplit("@", 1)[1]
    return f"{scheme}{sep}{host}{slash}{path}"


def _fail(text: str, why: str) -> ReferenceError_:
    return ReferenceError_(f"invalid image reference {_shown(text)!r}: {why}")


def _check_text(text: str) -> None:
    if not isinstance(text, str) or not text:
        raise ReferenceError_("invalid image reference: it is empty")
    if not text.isascii():
        raise _fail(text, "it contains non-ASCII characters")
    if any(c.isspace() or ord(c) < 0x20 or ord(c) == 0x7F for c in text):
        raise _fail(text, "it contains whitespace or control characters")
    if "://" in text:
        raise _fail(text, "drop the URL scheme; write 'registry.example.com/team/app'")


def is_loopback_host(host: str) -> bool:
    """True for ``localhost``, ``127.0.0.0/8`` and ``[::1]``, with or without a port."""
    h = host.strip().lower()
    if h.startswith("["):
        end = h.find("]")
        if end < 0:
            return False
        h = h[1:end]
    elif h.count(":") == 1:
        h = h.split(":", 1)[0]
    if h == "localhost":
        return True
    try:
        return ipaddress.ip_address(h).is_loopback
    except ValueError:
        return False


def validate_tag(tag: str) -> str:
    """Return ``tag`` if it follows the OCI tag grammar, else raise ``ReferenceError_``."""
    if not isinstance(tag, str) or not TAG_RE.fullmatch(tag):
        hint = ""
        if isinstance(tag, str) and "+" in tag:
            hint = " ('+' is not allowed in OCI tags: semver build metadata cannot be used)"
        elif isinstance(tag, str) and len(tag) > TAG_MAX:
            hint = f" (longer than {TAG_MAX} characters)"
        raise ReferenceError_(
            f"invalid tag {tag!r}: a tag is 1-128 characters of [A-Za-z0-9_.-] "
            f"and may not start with '.' or '-'{hint}"
        )
    return tag


def validate_digest(digest: str) -> str:
    """Return ``digest`` if it is ``sha256:`` + 64 lower-case hex, else raise."""
    if isinstance(digest, str) and DIGEST_RE.fullmatch(digest):
        return digest
    if isinstance(digest, str) and _ALGO_RE.fullmatch(digest):
        algo, _, hexpart = digest.partition(":")
        if algo != "sha256":
            raise ReferenceError_(
                f"invalid digest {digest!r}: only sha256 digests are supported, not {algo!r}"
            )
        if hexpart.lower() != hexpart and re.fullmatch(r"[0-9a-fA-F]{64}", hexpart, _A):
            raise ReferenceError_(f"invalid digest {digest!r}: the hex part must be lower case")
    raise ReferenceError_(
        f"invalid digest {digest!r}: expected 'sha256:' followed by 64 hex digits"
    )


@dataclass(frozen=True)
class Repository:
    """A repository in a registry: ``registry`` (normalised host[:port]) + ``path``."""

    registry: str
    path: str
    #: HTTPS even for a loopback host (set when a ``ca-file`` names the registry's CA)
    tls: bool = False

    @property
    def name(self) -> str:
        """Canonical name, as users see it: ``docker.io/library/nginx``."""
        return f"{self.registry}/{self.path}"

    @property
    def api_host(self) -> str:
        """Host[:port] the registry API is served from (``registry-1.docker.io`` for Hub)."""
        return DOCKER_HUB_API if self.registry == DOCKER_HUB else self.registry

    @property
    def scheme(self) -> str:
        """``http`` only for loopback registries (unless ``tls``), ``https`` otherwise."""
        return "http" if is_loopback_host(self.registry) and not self.tls else "https"

    @property
    def base_url(self) -> str:
        """``<scheme>://<api_host>``; API paths start with ``/v2/``."""
        return f"{self.scheme}://{self.api_host}"

    def scope(self, actions: str = "push,pull") -> str:
        """Token scope for this repository (push first: some registries read only the first)."""
        return f"repository:{self.path}:{actions}"

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True)
class ImageReference:
    """A repository plus an optional tag and an optional digest (both may be present)."""

    repository: Repository
    tag: str | None = None
    digest: str | None = None

    @property
    def reference(self) -> str | None:
        """What to ask the registry for: the digest when known (immutable), else the tag."""
        return self.digest or self.tag

    def __str__(self) -> str:
        text = self.repository.name
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text


def _split_host(text: str) -> tuple[str | None, str]:
    first, sep, rest = text.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost" or first.startswith("[")):
        return first, rest
    return None, text


def _normalise_host(text: str, host: str) -> str:
    if not HOST_RE.fullmatch(host):
        raise _fail(text, f"{host!r} is not a valid registry host[:port]")
    if host.startswith("["):
        inner = host[1 : host.index("]")]
        try:
            if ipaddress.ip_address(inner).version != 6:
                raise ValueError(inner)
        except ValueError:
            raise _fail(text, f"{host!r} is not a valid bracketed IPv6 address") from None
    tail = host[host.index("]") + 1 :] if host.startswith("[") else host
    if ":" in tail:
        number = int(tail.rsplit(":", 1)[1])
        if not 0 < number < 65536:
            raise _fail(text, f"port {number} is out of range")
    host = host.lower()
    return DOCKER_HUB if host in DOCKER_HUB_ALIASES else host


def _parse_name(text: str, original: str) -> Repository:
    host, path = _split_host(text)
    registry = DOCKER_HUB if host is None else _normalise_host(original, host)
    if not path:
        raise _fail(original, "the repository path is missing")
    components = path.split("/")
    for comp in components:
        if comp in ("", ".", ".."):
            raise _fail(original, "empty, '.' or '..' path components are not allowed")
        if not COMPONENT_RE.fullmatch(comp):
            why = f"path component {comp!r} must match [a-z0-9]+ joined by '.', '_', '__' or '-'"
            if comp.lower() != comp:
                why = f"path component {comp!r} has upper case; repository paths are lower case"
            raise _fail(original, why)
    if registry == DOCKER_HUB and len(components) == 1:
        path = f"library/{path}"
    repo = Repository(registry=registry, path=path)
    if len(repo.name) > NAME_MAX:
        raise _fail(original, f"the repository name is longer than {NAME_MAX} characters")
    return repo


def _split(text: str) -> tuple[str, str | None, str | None]:
    _check_text(text)
    first = text.split("/", 1)[0]
    if "@" in first and "/" in text:
        raise _fail(text, "credentials in the reference are not accepted; use the inputs")
    name, at, digest = text.partition("@")
    if at and "@" in digest:
        raise _fail(text, "more than one '@'")
    tag: str | None = None
    head, slash, last = name.rpartition("/")
    if ":" in last:
        last, _, tag = last.partition(":")
        name = f"{head}{slash}{last}"
    return name, tag, (digest if at else None)


def parse_repository(text: str) -> Repository:
    """Parse a repository name without tag or digest (``ghcr.io/acme/app``, ``nginx``)."""
    name, tag, digest = _split(text)
    # "127.0.0.1:15123" or "registry.example:5000": a host and port, no repository
    if (
        "/" not in text.split("@", 1)[0]
        and tag is not None
        and HOST_RE.fullmatch(text)
        and ("." in name or name == "localhost")
    ):
        raise _fail(text, f"the repository path is missing (give {text}/<path>)")
    if tag is not None or digest is not None:
        raise _fail(text, "give the repository only, without ':tag' or '@digest'")
    return _parse_name(name, text)


def parse_reference(text: str) -> ImageReference:
    """Parse ``[registry/]path[:tag][@sha256:...]``; tag and digest are both optional."""
    name, tag, digest = _split(text)
    repo = _parse_name(name, text)
    if tag is not None:
        try:
            validate_tag(tag)
        except ReferenceError_ as exc:
            raise _fail(text, str(exc)) from None
    if digest is not None:
        try:
            validate_digest(digest)
        except ReferenceError_ as exc:
            raise _fail(text, str(exc)) from None
    return ImageReference(repository=repo, tag=tag, digest=digest)
