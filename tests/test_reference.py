"""Image reference grammar, Docker Hub normalisation, loopback detection (pure)."""

from __future__ import annotations

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from promote.errors import InputError, ReferenceError_
from promote.reference import (
    ImageReference,
    Repository,
    is_loopback_host,
    parse_reference,
    parse_repository,
    validate_digest,
    validate_tag,
)

D = "sha256:" + "0123456789abcdef" * 4


@pytest.mark.parametrize(
    ("text", "registry", "path"),
    [
        ("nginx", "docker.io", "library/nginx"),
        ("acme/x", "docker.io", "acme/x"),
        ("docker.io/nginx", "docker.io", "library/nginx"),
        ("index.docker.io/nginx", "docker.io", "library/nginx"),
        ("registry-1.docker.io/acme/x", "docker.io", "acme/x"),
        ("INDEX.Docker.IO/acme/x", "docker.io", "acme/x"),
        ("ghcr.io/acme/backend", "ghcr.io", "acme/backend"),
        ("GHCR.IO/acme/backend", "ghcr.io", "acme/backend"),
        ("localhost/app", "localhost", "app"),
        ("localhost:5000/team/app", "localhost:5000", "team/app"),
        ("127.0.0.1:41234/a/b/c", "127.0.0.1:41234", "a/b/c"),
        ("[::1]:5000/app", "[::1]:5000", "app"),
        (
            "registry.example.com:443/a_b/c__d/e-f/g--h/i.j",
            "registry.example.com:443",
            "a_b/c__d/e-f/g--h/i.j",
        ),
        ("my-registry:5000/app", "my-registry:5000", "app"),
        ("a.b/c", "a.b", "c"),
    ],
)
def test_parse_repository_normalises(text: str, registry: str, path: str) -> None:
    repo = parse_repository(text)
    assert (repo.registry, repo.path) == (registry, path)
    assert str(repo) == repo.name == f"{registry}/{path}"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("nginx:latest", "without ':tag' or '@digest'"),
        (f"nginx@{D}", "without ':tag' or '@digest'"),
        ("ghcr.io/acme/app:v1", "without ':tag'"),
        ("localhost:5000", "the repository path is missing (give localhost:5000/<path>)"),
        ("127.0.0.1:15123", "the repository path is missing (give 127.0.0.1:15123/<path>)"),
        ("user:pass@ghcr.io/acme/app", "credentials"),
        ("user@ghcr.io/acme/app", "credentials"),
        ("https://ghcr.io/acme/app", "URL scheme"),
        ("ghcr.io/Acme/app", "upper case"),
        ("Nginx", "upper case"),
        ("ghcr.io/acme/../app", "'..'"),
        ("ghcr.io/acme/./app", "'.'"),
        ("ghcr.io//app", "empty"),
        ("ghcr.io/acme/app/", "empty"),
        ("ghcr.io/", "missing"),
        ("ghcr.io/ac me", "whitespace"),
        ("ghcr.io/acme\n", "whitespace"),
        ("ghcr.io/acmé", "non-ASCII"),
        ("ghcr.io/-acme", "must match"),
        ("ghcr.io/acme-", "must match"),
        ("ghcr.io/a...b", "must match"),
        ("ghcr.io/a___b", "must match"),
        ("-bad.host/app", "not a valid registry host"),
        ("bad_host.io/app", "not a valid registry host"),
        ("host.io:99999/app", "out of range"),
        ("host.io:0/app", "out of range"),
        ("[not-ipv6]:5000/app", "registry host"),
        ("[127.0.0.1]:5000/app", "IPv6"),
        ("ghcr.io/" + "a" * 250, "255"),
    ],
)
def test_parse_repository_refuses(text: str, message: str) -> None:
    with pytest.raises(ReferenceError_) as info:
        parse_repository(text)
    assert message in str(info.value)
    assert isinstance(info.value, InputError)


@pytest.mark.parametrize(
    ("registry", "api_host", "scheme"),
    [
        ("docker.io", "registry-1.docker.io", "https"),
        ("ghcr.io", "ghcr.io", "https"),
        ("localhost", "localhost", "http"),
        ("localhost:5000", "localhost:5000", "http"),
        ("127.0.0.1:5000", "127.0.0.1:5000", "http"),
        ("127.9.8.7", "127.9.8.7", "http"),
        ("[::1]:5000", "[::1]:5000", "http"),
        ("128.0.0.1:5000", "128.0.0.1:5000", "https"),
        ("10.0.0.1:5000", "10.0.0.1:5000", "https"),
        ("localhost.example.com", "localhost.example.com", "https"),
        ("[::2]:5000", "[::2]:5000", "https"),
    ],
)
def test_repository_urls(registry: str, api_host: str, scheme: str) -> None:
    repo = Repository(registry, "acme/app")
    assert repo.api_host == api_host
    assert repo.scheme == scheme
    assert repo.base_url == f"{scheme}://{api_host}"
    assert repo.scope() == "repository:acme/app:push,pull"
    assert repo.scope("pull") == "repository:acme/app:pull"


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("localhost", True),
        ("LOCALHOST:80", True),
        ("127.0.0.1", True),
        ("127.255.0.3:9", True),
        ("[::1]", True),
        ("[::1]:5000", True),
        ("::1", True),
        ("128.0.0.1", False),
        ("0.0.0.0", False),
        ("localhost.evil.com", False),
        ("[::ffff:8.8.8.8]", False),
        ("[::1", False),
        ("ghcr.io", False),
    ],
)
def test_is_loopback_host(host: str, loopback: bool) -> None:
    assert is_loopback_host(host) is loopback


@pytest.mark.parametrize(
    ("text", "tag", "digest", "canonical"),
    [
        ("nginx", None, None, "docker.io/library/nginx"),
        ("nginx:1.25", "1.25", None, "docker.io/library/nginx:1.25"),
        (f"ghcr.io/a/b@{D}", None, D, f"ghcr.io/a/b@{D}"),
        (f"ghcr.io/a/b:staging-1@{D}", "staging-1", D, f"ghcr.io/a/b:staging-1@{D}"),
        ("localhost:5000/app:v1", "v1", None, "localhost:5000/app:v1"),
        ("[::1]:5000/app:_x", "_x", None, "[::1]:5000/app:_x"),
    ],
)
def test_parse_reference(text: str, tag: str | None, digest: str | None, canonical: str) -> None:
    ref = parse_reference(text)
    assert (ref.tag, ref.digest) == (tag, digest)
    assert str(ref) == canonical
    assert ref.reference == (digest or tag)
    assert parse_reference(str(ref)) == ref


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("ghcr.io/a/b:", "invalid tag"),
        ("ghcr.io/a/b:.hidden", "invalid tag"),
        ("ghcr.io/a/b:-x", "invalid tag"),
        ("ghcr.io/a/b:v1+build", "'+' is not allowed"),
        ("ghcr.io/a/b:" + "x" * 129, "longer than 128"),
        ("ghcr.io/a/b@sha512:" + "a" * 128, "only sha256"),
        ("ghcr.io/a/b@sha256:" + "A" * 64, "lower case"),
        ("ghcr.io/a/b@sha256:abc", "64"),
        (f"ghcr.io/a/b@{D}@{D}", "more than one '@'"),
        (f"u:p@ghcr.io/a/b@{D}", "credentials"),
    ],
)
def test_parse_reference_refuses(text: str, message: str) -> None:
    with pytest.raises(ReferenceError_) as info:
        parse_reference(text)
    assert message in str(info.value)


@pytest.mark.parametrize("tag", ["a", "_", "A9", "staging-abc1234-1700000000", "v1.2.3", "x" * 128])
def test_validate_tag_accepts(tag: str) -> None:
    assert validate_tag(tag) == tag


@pytest.mark.parametrize("tag", ["", ".a", "-a", "a b", "a/b", "a:b", "é", "x" * 129, "a+b"])
def test_validate_tag_refuses(tag: str) -> None:
    with pytest.raises(ReferenceError_, match="invalid tag"):
        validate_tag(tag)


def test_validate_digest() -> None:
    assert validate_digest(D) == D
    for bad, why in [
        ("sha384:" + "a" * 96, "only sha256"),
        ("md5:" + "a" * 32, "only sha256"),
        ("sha256:" + "a" * 63, "64"),
        ("sha256:" + "g" * 64, "64"),
        ("SHA256:" + "a" * 64, "only sha256"),
        ("a" * 64, "sha256:"),
        ("", "sha256:"),
    ]:
        with pytest.raises(ReferenceError_, match=why):
            validate_digest(bad)


# -- properties ----------------------------------------------------------------------------
# No per-example deadline: CI machines are shared and a slow example is not a failure.
_props = settings(deadline=None)

_alnum = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=6)
_sep = st.sampled_from([".", "_", "__", "-", "--"])
_component = st.builds(
    lambda first, rest: first + "".join(s + a for s, a in rest),
    _alnum,
    st.lists(st.tuples(_sep, _alnum), max_size=2),
)
_path = st.lists(_component, min_size=1, max_size=4).map("/".join)
_label = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,6}[a-z0-9])?", fullmatch=True)
_domain = st.lists(_label, min_size=2, max_size=3).map(".".join)
_host = st.one_of(
    _domain,
    st.builds(lambda d, p: f"{d}:{p}", _domain, st.integers(1, 65535)),
    st.builds(lambda p: f"localhost:{p}", st.integers(1, 65535)),
    st.builds(lambda a, p: f"127.0.0.{a}:{p}", st.integers(0, 255), st.integers(1, 65535)),
    st.just("[::1]:5000"),
)
_tag = st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,20}", fullmatch=True)
_digest = st.from_regex(r"sha256:[0-9a-f]{64}", fullmatch=True)


@_props
@given(host=_host, path=_path)
def test_repository_round_trip(host: str, path: str) -> None:
    repo = parse_repository(f"{host}/{path}")
    assert parse_repository(str(repo)) == repo
    assert str(parse_repository(str(repo))) == str(repo)
    if host not in {"docker.io"}:
        assert repo.path == path
    assert repo.scheme == ("http" if host.startswith(("localhost", "127.", "[::1]")) else "https")


@_props
@given(path=_path)
def test_hub_round_trip(path: str) -> None:
    # A first component with a '.' names a host (as the Docker CLI reads it), not Hub.
    assume("/" not in path or "." not in path.split("/", maxsplit=1)[0])
    repo = parse_repository(path)
    assert repo.registry == "docker.io"
    assert repo.path == (path if "/" in path else f"library/{path}")
    assert parse_repository(str(repo)) == repo


@_props
@given(host=_host, path=_path, tag=st.none() | _tag, digest=st.none() | _digest)
def test_reference_round_trip(host: str, path: str, tag: str | None, digest: str | None) -> None:
    text = f"{host}/{path}" + (f":{tag}" if tag else "") + (f"@{digest}" if digest else "")
    ref = parse_reference(text)
    assert isinstance(ref, ImageReference)
    assert (ref.tag, ref.digest) == (tag, digest)
    assert str(ref) == text.replace(host, ref.repository.registry, 1)
    assert parse_reference(str(ref)) == ref


_userinfo = st.builds(
    lambda u, p: f"{u}:{p}@" if p else f"{u}@",
    st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789._-", min_size=1, max_size=8),
    st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789._-!$", max_size=8),
)


@_props
@given(userinfo=_userinfo, host=_host, path=_path)
def test_never_accepts_credentials(userinfo: str, host: str, path: str) -> None:
    for parse in (parse_repository, parse_reference):
        with pytest.raises(ReferenceError_):
            parse(f"{userinfo}{host}/{path}")


@_props
@given(host=_host, path=_path, junk=st.characters(min_codepoint=0x80), where=st.integers(0, 200))
def test_never_accepts_non_ascii(host: str, path: str, junk: str, where: int) -> None:
    text = f"{host}/{path}"
    pos = where % (len(text) + 1)
    with pytest.raises(ReferenceError_, match="non-ASCII"):
        parse_reference(text[:pos] + junk + text[pos:])


@_props
@given(
    host=_host,
    before=st.lists(_component, max_size=2),
    after=st.lists(_component, min_size=1, max_size=2),
    bad=st.sampled_from(["..", ".", "", "%2e%2e", "..%2f"]),
)
def test_never_accepts_path_traversal(
    host: str, before: list[str], after: list[str], bad: str
) -> None:
    path = "/".join([*before, bad, *after])
    with pytest.raises(ReferenceError_):
        parse_repository(f"{host}/{path}")


@_props
@given(text=st.text(max_size=40))
def test_parse_never_crashes(text: str) -> None:
    """Any input either parses to a valid, round-tripping reference or raises our error."""
    try:
        ref = parse_reference(text)
    except ReferenceError_:
        return
    assert parse_reference(str(ref)) == ref
    assert all(c.isascii() and not c.isspace() for c in str(ref))
