"""Property-based tests (hypothesis) for the pure parts everything else stands on:
image references, the tag grammar and names, versions and timestamps, the output writer.
"""

from __future__ import annotations

import re

import pytest
import semver
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from promote import naming
from promote.errors import InputError, ReferenceError_
from promote.frontdoor.actions import Runner, format_output, parse_github_output
from promote.reference import (
    COMPONENT_RE,
    DIGEST_RE,
    TAG_RE,
    ImageReference,
    parse_reference,
    parse_repository,
    validate_tag,
)

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# -- strategies --------------------------------------------------------------------------------
components = st.from_regex(r"[a-z0-9]{1,8}(?:(?:[._]|__|-{1,2})[a-z0-9]{1,8}){0,2}", fullmatch=True)
paths = st.lists(components, min_size=1, max_size=4).map("/".join)
labels = st.from_regex(r"[a-z0-9](?:[a-z0-9-]{0,10}[a-z0-9])?", fullmatch=True)
domains = st.lists(labels, min_size=2, max_size=4).map(".".join)
ports = st.integers(1, 65535).map(str)
hosts = st.one_of(
    domains,
    st.tuples(domains, ports).map(":".join),
    st.sampled_from(["localhost", "localhost:5000", "127.0.0.1:5000", "[::1]:5000", "ghcr.io"]),
)
tags = st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}", fullmatch=True)
digests = st.from_regex(r"sha256:[0-9a-f]{64}", fullmatch=True)
#: user names and passwords without the characters that end the user-info part
userinfo = st.text(
    alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters="/@:"),
    min_size=1,
    max_size=24,
)
envs = st.from_regex(r"[a-z][a-z0-9]{0,31}", fullmatch=True)
versions = st.builds(
    semver.Version,
    st.integers(0, 999_999_999),
    st.integers(0, 999_999_999),
    st.integers(0, 999_999_999),
)
shas = st.from_regex(r"[0-9a-f]{7}", fullmatch=True)
timestamps = st.integers(naming.MIN_TIMESTAMP, naming.MAX_TIMESTAMP)
output_names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_-]{0,30}", fullmatch=True)


# -- references ----------------------------------------------------------------------------------
@SETTINGS
@given(host=hosts, path=paths, tag=st.none() | tags, digest=st.none() | digests)
def test_reference_str_parse_round_trip(
    host: str, path: str, tag: str | None, digest: str | None
) -> None:
    text = f"{host}/{path}" + (f":{tag}" if tag else "") + (f"@{digest}" if digest else "")
    assume(len(f"{host}/{path}") <= 255)
    ref = parse_reference(text)
    assert ref.tag == tag and ref.digest == digest
    assert ref.repository.path == path
    assert parse_reference(str(ref)) == ref
    if host not in ("docker.io",):
        assert str(ref) == text.replace(host, host.lower(), 1)
    assert ref.repository.scheme == (
        "http"
        if host.split(":", maxsplit=1)[0] in ("localhost", "127.0.0.1", "[") or host.startswith("[")
        else "https"
    )


@SETTINGS
@given(path=components, tag=st.none() | tags)
def test_docker_hub_normalisation(path: str, tag: str | None) -> None:
    assume("." not in path)  # a dotted first part would be a host
    ref = parse_reference(path + (f":{tag}" if tag else ""))
    assert ref.repository.registry == "docker.io"
    assert ref.repository.path == f"library/{path}"
    assert ref.repository.api_host == "registry-1.docker.io"
    for alias in ("docker.io", "index.docker.io", "registry-1.docker.io"):
        assert parse_reference(f"{alias}/library/{path}").repository == ref.repository


@SETTINGS
@given(
    user=userinfo,
    password=userinfo,
    host=hosts,
    path=paths,
    scheme=st.sampled_from(["", "https://", "http://"]),
)
def test_references_never_accept_credentials(
    user: str, password: str, host: str, path: str, scheme: str
) -> None:
    text = f"{scheme}{user}:{password}@{host}/{path}"
    with pytest.raises(ReferenceError_):
        parse_reference(text)
    with pytest.raises(ReferenceError_):
        parse_repository(text)


@SETTINGS
@given(
    user=userinfo,
    host=hosts,
    path=paths,
    secret=st.from_regex(r"[A-Za-z0-9]{12,24}", fullmatch=True),
)
def test_refused_credentials_are_not_echoed(user: str, host: str, path: str, secret: str) -> None:
    """The error for ``user:secret@host/path`` must not print the secret: it is about to
    become an ``::error::`` line in a public log."""
    assume(secret not in f"{user}{host}{path}")
    with pytest.raises(ReferenceError_) as err:
        parse_reference(f"{user}:{secret}@{host}/{path}")
    assert secret not in str(err.value)


@SETTINGS
@given(host=hosts, path=paths, bad=st.sampled_from(["..", ".", ""]), where=st.integers(0, 4))
def test_path_traversal_is_refused(host: str, path: str, bad: str, where: int) -> None:
    parts = path.split("/")
    parts.insert(min(where, len(parts)), bad)
    with pytest.raises(ReferenceError_):
        parse_repository(f"{host}/{'/'.join(parts)}")


@SETTINGS
@given(text=st.text(max_size=200))
@example(text="production-v1.0.0+build")
@example(text="ｐroduction")
def test_tag_grammar_is_one_grammar(text: str) -> None:
    """naming's and reference's tag grammars agree, and validate_tag follows them."""
    ours = naming.TAG_RE.fullmatch(text) is not None
    assert ours == (TAG_RE.fullmatch(text) is not None)
    if ours:
        assert validate_tag(text) == text
        assert len(text) <= 128
    else:
        with pytest.raises(ReferenceError_):
            validate_tag(text)


@SETTINGS
@given(text=st.text(max_size=120))
def test_parse_reference_only_raises_reference_errors(text: str) -> None:
    """Any text: either a reference that round-trips, or a ReferenceError_ (never a crash)."""
    try:
        ref = parse_reference(text)
    except ReferenceError_:
        return
    assert isinstance(ref, ImageReference)
    assert (text.isascii() and "@" not in text.split("/", 1)[0]) or ref.digest
    assert parse_reference(str(ref)) == ref
    assert all(COMPONENT_RE.fullmatch(c) for c in ref.repository.path.split("/"))
    if ref.digest:
        assert DIGEST_RE.fullmatch(ref.digest)


# -- names ---------------------------------------------------------------------------------------
@SETTINGS
@given(env=envs, version=versions, sha=shas, ts=timestamps)
def test_immutable_tag_round_trip(env: str, version: semver.Version, sha: str, ts: int) -> None:
    tag = naming.immutable_tag(env, version, sha, ts)
    assert naming.TAG_RE.fullmatch(tag)
    parsed = naming.parse_immutable_tag(env, tag)
    assert parsed == naming.ImmutableTag(ts, version, sha, env, tag)
    # never mistaken for a build tag, nor for another environment's tag
    assert naming.parse_build_tag(env, tag) is None
    assert naming.parse_immutable_tag(env + "x", tag) is None
    # Flux's filter admits it and extracts the timestamp
    m = re.fullmatch(naming.flux_tag_pattern(env).strip("^$"), tag)
    if env not in ("develop", "staging"):
        assert m is not None and int(m["ts"]) == ts and m["version"] == str(version)


@SETTINGS
@given(env=envs, sha=st.from_regex(r"[0-9a-f]{7,40}", fullmatch=True), ts=timestamps)
def test_build_tag_round_trip(env: str, sha: str, ts: int) -> None:
    tag = naming.build_tag(env, sha, ts)
    assert naming.TAG_RE.fullmatch(tag)
    parsed = naming.parse_build_tag(env, tag)
    assert parsed is not None and parsed.timestamp == ts and parsed.short_sha == sha[:7]
    assert naming.parse_immutable_tag(env, tag) is None


@SETTINGS
@given(tags=st.lists(st.tuples(versions, shas, timestamps), max_size=12), env=envs)
def test_immutable_tags_sorted_by_timestamp(
    tags: list[tuple[semver.Version, str, int]], env: str
) -> None:
    names = [naming.immutable_tag(env, v, s, t) for v, s, t in tags] + ["latest", env]
    parsed = naming.immutable_tags(env, names)
    assert len(parsed) == len(tags)  # every immutable tag, and nothing else
    assert [p.timestamp for p in parsed] == sorted(p.timestamp for p in parsed)


# -- versions and timestamps ----------------------------------------------------------------------
@SETTINGS
@given(current=st.none() | versions, bumps=st.lists(st.sampled_from(naming.BUMPS), max_size=20))
def test_next_version_is_strictly_monotonic(
    current: semver.Version | None, bumps: list[str]
) -> None:
    seen = [] if current is None else [current]
    for bump in bumps:
        expected = None if current is None else getattr(current, f"bump_{bump}")()
        if expected is not None and max(expected.to_tuple()[:3]) > naming.MAX_VERSION_PART:
            # a part the input rules refuse is never produced: a clear refusal instead
            with pytest.raises(InputError, match="longer than 9 digits"):
                naming.next_version(current, bump=bump, explicit=None)
            return
        nxt = naming.next_version(current, bump=bump, explicit=None)
        if current is not None:
            assert nxt > current
            assert nxt == getattr(current, f"bump_{bump}")()
        else:
            assert nxt == semver.Version(1, 0, 0)
        seen.append(nxt)
        current = nxt
    assert seen == sorted(seen) and len(set(seen)) == len(seen)


@SETTINGS
@given(current=versions, explicit=versions)
def test_explicit_version_must_be_greater(
    current: semver.Version, explicit: semver.Version
) -> None:
    if explicit > current:
        assert naming.next_version(current, bump="patch", explicit=explicit) == explicit
    else:
        with pytest.raises(InputError, match="not greater"):
            naming.next_version(current, bump="patch", explicit=explicit)


@SETTINGS
@given(version=versions, prefix=st.sampled_from(["", "v"]))
def test_version_text_round_trip(version: semver.Version, prefix: str) -> None:
    assert naming.parse_version(prefix + str(version)) == version


@SETTINGS
@given(text=st.text(max_size=60))
def test_parse_version_accepts_only_plain_semver(text: str) -> None:
    try:
        version = naming.parse_version(text)
    except InputError:
        return
    assert text.lstrip("v") == str(version)
    assert "+" not in text and "-" not in text


@SETTINGS
@given(
    now=st.floats(naming.MIN_TIMESTAMP, naming.MAX_TIMESTAMP - 100),
    existing=st.lists(st.integers(naming.MIN_TIMESTAMP, naming.MAX_TIMESTAMP - 100), max_size=10),
)
def test_next_timestamp_is_newer_than_everything(now: float, existing: list[int]) -> None:
    ts = naming.next_timestamp(now, existing, None)
    assert ts >= int(now)
    assert all(ts > e for e in existing)
    if existing:
        with pytest.raises(InputError):
            naming.next_timestamp(now, existing, max(existing))


# -- the output writer -----------------------------------------------------------------------------
@SETTINGS
@given(name=output_names, value=st.text(max_size=300))
@example(name="tags", value="a\nchanged<<EOF\ntrue\nEOF")
@example(name="x", value="")
@example(name="x", value="\n\n")
@example(name="x", value="line\r\nwindows\r\n")
def test_output_round_trip(name: str, value: str) -> None:
    assert parse_github_output(format_output(name, value)) == {name: value}


@SETTINGS
@given(
    name=output_names,
    head=st.text(max_size=40),
    tail=st.text(max_size=40),
    delimiter=st.from_regex(r"ghadelimiter_[0-9a-f]{32}", fullmatch=True),
)
def test_value_containing_the_delimiter_is_refused(
    name: str, head: str, tail: str, delimiter: str
) -> None:
    with pytest.raises(InputError, match="delimiter"):
        format_output(name, head + delimiter + tail, delimiter)


@SETTINGS
@given(outputs=st.dictionaries(output_names, st.text(max_size=80), max_size=8))
def test_runner_outputs_file_round_trip(
    outputs: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> None:
    path = tmp_path_factory.mktemp("out") / "github_output"
    path.write_text("")
    Runner(github_output=str(path)).set_outputs(outputs)
    with open(path, encoding="utf-8", newline="") as fh:  # keep a lone CR as written
        assert parse_github_output(fh.read()) == outputs
