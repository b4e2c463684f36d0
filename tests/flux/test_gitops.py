"""Scanning GitOps trees the way Flux's controllers read them."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from promote.flux.gitops import (
    decode_marker_comment,
    env_of,
    env_of_name,
    find_policies,
    parse_setter,
    scan,
    split_image,
)
from promote.flux.source import LocalSource, load_tree

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "gitops"


def line_of(text: str, needle: str) -> int:
    """1-based line of the first line containing ``needle``."""
    for number, line in enumerate(text.splitlines(), start=1):
        if needle in line:
            return number
    raise AssertionError(f"{needle!r} not in text")


def doc(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


# -- the example tree ------------------------------------------------------------------------


def test_example_objects_are_found_with_file_and_line() -> None:
    tree = load_tree(LocalSource(EXAMPLE))
    assert len(tree.objects) == 9
    assert {o.ref for o in tree.policies} == {
        f"flux-system:{app}-{env}"
        for app in ("backend", "frontend")
        for env in ("develop", "staging", "production")
    }
    assert {o.ref for o in tree.repositories} == {"flux-system:backend", "flux-system:frontend"}
    assert [o.ref for o in tree.automations] == ["flux-system:apps"]
    for obj in tree.objects:
        text = (EXAMPLE / obj.file).read_text()
        # the object's line is its document's first key (apiVersion)
        assert text.splitlines()[obj.line - 1].startswith("apiVersion:"), (obj.file, obj.line)
        assert f"name: {obj.name}" in text.splitlines()[obj.line + 2], (obj.file, obj.line)
    prod = tree.find("ImagePolicy", "flux-system:backend-production")
    assert prod is not None
    text = (EXAMPLE / prod.file).read_text()
    pattern_line = prod.line_of("spec", "filterTags", "pattern")
    assert "production-v" in text.splitlines()[pattern_line - 1]


def test_example_markers_are_found_with_form_file_and_line() -> None:
    tree = load_tree(LocalSource(EXAMPLE))
    got = {(m.file, m.setter, m.field) for m in tree.markers}
    want = set()
    for env in ("develop", "staging", "production"):
        want.add((f"flux/apps/backend/{env}/deployment.yaml", f"flux-system:backend-{env}", ""))
        want.add(
            (
                f"flux/apps/frontend/overlays/{env}/kustomization.yaml",
                f"flux-system:frontend-{env}:tag",
                "tag",
            )
        )
    assert got == want
    for marker in tree.markers:
        text = (EXAMPLE / marker.file).read_text()
        line = text.splitlines()[marker.line - 1]
        assert '"$imagepolicy"' in line and marker.value in line
        assert marker.valid
    backend = next(m for m in tree.markers if m.setter == "flux-system:backend-production")
    assert backend.value.startswith("ghcr.io/acme/backend:production-v")
    assert backend.path == "spec.template.spec.containers[0].image"
    assert not tree.ignored and not tree.unparseable


def test_example_images_and_their_markers() -> None:
    tree = load_tree(LocalSource(EXAMPLE))
    by_file = {(i.file, i.kind): i for i in tree.images}
    base = by_file[("flux/apps/frontend/base/deployment.yaml", "container")]
    assert base.tag is None and not base.markers
    overlay = by_file[("flux/apps/frontend/overlays/staging/kustomization.yaml", "kustomize")]
    assert overlay.reference == "ghcr.io/acme/frontend"
    assert overlay.tag and overlay.tag.startswith("staging-")
    assert [m.field for m in overlay.markers] == ["tag"]


def test_find_policies_builds_models_and_reports_invalid_ones() -> None:
    files = {
        "p.yaml": doc(
            """
            apiVersion: image.toolkit.fluxcd.io/v1
            kind: ImagePolicy
            metadata: {name: good, namespace: flux-system}
            spec:
              imageRepositoryRef: {name: app}
              filterTags: {pattern: '^staging-(?P<ts>[0-9]+)$', extract: '$ts'}
              policy: {numerical: {order: asc}}
            ---
            apiVersion: image.toolkit.fluxcd.io/v1beta2
            kind: ImagePolicy
            metadata: {name: bad, namespace: flux-system}
            spec:
              imageRepositoryRef: {name: app}
              filterTags: {pattern: '^staging-(?P<ts>[0-9]+$'}
              policy: {numerical: {order: asc}}
            """
        )
    }
    entries = {e.obj.name: e for e in find_policies(scan(files))}
    assert entries["good"].policy is not None
    assert entries["good"].policy.select(["staging-1", "staging-20", "staging-3"]) == "staging-20"
    assert entries["bad"].policy is None and entries["bad"].error
    assert entries["bad"].obj.line == 9


# -- how markers are read ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("comment", "setter"),
    [
        ('# {"$imagepolicy": "flux-system:app"}', "flux-system:app"),
        ('#{"$imagepolicy":"flux-system:app:tag"}', "flux-system:app:tag"),
        ('## {"$imagepolicy": "ns:app:digest"}', "ns:app:digest"),  # every leading # stripped
        ('# {"$imagepolicy": "ns:app", "note": "x"}', "ns:app"),  # other string keys are fine
        ('# {"$imagepolicy": "ns:app", "n": 1}', None),  # a non-string value: not a marker
        ("# {'$imagepolicy': 'ns:app'}", None),  # single quotes are not JSON
        ('# managed: {"$imagepolicy": "ns:app"}', None),  # extra prose
        ('# {"$imagepolicy": ""}', None),
        ('# {"$imagepolicy": "ns:app"} trailing', None),
        ('# ["$imagepolicy", "ns:app"]', None),
    ],
)
def test_decode_marker_comment(comment: str, setter: str | None) -> None:
    assert decode_marker_comment(comment) == setter


@pytest.mark.parametrize(
    ("setter", "expected"),
    [
        ("ns:app", ("ns", "app", "", True)),
        ("ns:app:tag", ("ns", "app", "tag", True)),
        ("ns:app:name", ("ns", "app", "name", True)),
        ("ns:app:digest", ("ns", "app", "digest", True)),
        ("ns:app:version", ("ns", "app", "version", False)),
        ("app", ("", "app", "", False)),
        (":app", ("", "app", "", False)),
        ("a:b:tag:x", ("a", "b", "tag", False)),
    ],
)
def test_parse_setter(setter: str, expected: tuple[str, str, str, bool]) -> None:
    assert parse_setter(setter) == expected


def test_marker_forms_and_positions() -> None:
    text = doc(
        """
        apiVersion: apps/v1
        kind: Deployment
        metadata:
          name: app
          annotations:
            image-ref: "ghcr.io/acme/app:v1" # {"$imagepolicy": "ns:p:name"}
        spec:
          template:
            spec:
              containers:
                - name: app
                  image: ghcr.io/acme/app:staging-abcdef0-1 # {"$imagepolicy": "ns:p"}
                  args:
                    - --digest
                    - sha256:0000 # {"$imagepolicy": "ns:p:digest"}
              initContainers:
                - image: 'ghcr.io/acme/init:staging-abcdef0-1'  # {"$imagepolicy": "ns:q"}
        """
    )
    tree = scan({"app/deploy.yaml": text})
    got = [(m.line, m.field, m.policy, m.value, m.path) for m in tree.markers]
    assert got == [
        (6, "name", "p", "ghcr.io/acme/app:v1", "metadata.annotations.image-ref"),
        (
            12,
            "",
            "p",
            "ghcr.io/acme/app:staging-abcdef0-1",
            "spec.template.spec.containers[0].image",
        ),
        (15, "digest", "p", "sha256:0000", "spec.template.spec.containers[0].args[1]"),
        (
            17,
            "",
            "q",
            "ghcr.io/acme/init:staging-abcdef0-1",
            "spec.template.spec.initContainers[0].image",
        ),
    ]
    assert {m.column for m in tree.markers if m.line == 12} == {18}


def test_only_double_quoted_key_files_with_manifest_names_are_screened() -> None:
    marker = 'image: ghcr.io/a/b:1 # {"$imagepolicy": "ns:p"}\n'
    files = {
        "a.yaml": marker,
        "b.yml": marker,
        "dir/Kustomization": marker,
        "c.json": marker,  # not a manifest name: never read
        "d.yaml.tmpl": marker,
        "e.YAML": marker,  # the suffix match is case-sensitive, as in the controller
    }
    tree = scan(files)
    assert sorted(m.file for m in tree.markers) == ["a.yaml", "b.yml", "dir/Kustomization"]
    # without the double quotes Flux does not even read the file for markers: warned
    for comment in ("{$imagepolicy: ns:p}", "{'$imagepolicy': 'ns:p'}"):
        tree = scan({"f.yaml": f"image: x:1 # {comment}\n"})
        assert tree.markers == []
        assert [(c.file, c.line) for c in tree.ignored] == [("f.yaml", 1)]
        assert "double quotes" in tree.ignored[0].reason


def test_unparseable_yaml_is_skipped_and_reported() -> None:
    text = doc(
        """
        image: {{ .Values.image }} # {"$imagepolicy": "ns:p"}
        other: [unclosed
        """
    )
    tree = scan({"chart/templates/deploy.yaml": text, "ok.yaml": "a: 1\n"})
    assert tree.markers == []
    # the parser notices the unclosed flow sequence at the end of the stream (line 3)
    assert [(f, line) for f, line, _ in tree.unparseable] == [("chart/templates/deploy.yaml", 3)]
    assert [c.file for c in tree.ignored] == ["chart/templates/deploy.yaml"]
    assert "not valid YAML" in tree.ignored[0].reason


def test_comments_flux_ignores_are_reported_not_counted() -> None:
    text = doc(
        """
        spec:
          # {"$imagepolicy": "ns:above"}
          image: ghcr.io/a/b:1
          other: ghcr.io/a/c:1 # note {"$imagepolicy": "ns:prose"}
          third: ghcr.io/a/d:1 # {'$imagepolicy': 'ns:single'}
          fourth: ghcr.io/a/e:1 # {"$imagepolicy": "ns:good"}
        """
    )
    tree = scan({"x.yaml": text})
    assert [m.setter for m in tree.markers] == ["ns:good"]
    assert sorted(c.line for c in tree.ignored) == [2, 4, 5]
    above = next(c for c in tree.ignored if c.line == 2)
    assert "own line" in above.reason


def test_block_scalar_header_comment_and_keys_are_not_values() -> None:
    text = doc(
        """
        a: | # {"$imagepolicy": "ns:block"}
          text
        "ghcr.io/k:1": value
        ? complex # {"$imagepolicy": "ns:key"}
        : v
        """
    )
    tree = scan({"x.yaml": text})
    assert [(m.setter, m.line) for m in tree.markers] == [("ns:block", 1)]


def test_multi_document_lines_and_namespace_defaulting() -> None:
    files = {
        "infra/kustomization.yaml": "namespace: automation\nresources: [objects.yaml]\n",
        "infra/sub/objects.yaml": doc(
            """
            # leading comment
            apiVersion: image.toolkit.fluxcd.io/v1
            kind: ImageRepository
            metadata:
              name: app
            spec:
              image: ghcr.io/acme/app
            ---
            apiVersion: v1
            kind: ConfigMap
            metadata: {name: unrelated}
            ---

            apiVersion: image.toolkit.fluxcd.io/v1
            kind: ImageUpdateAutomation
            metadata:
              name: apps
              namespace: flux-system
            spec:
              update: {path: ./apps}
            """
        ),
        "elsewhere.yaml": doc(
            """
            apiVersion: image.toolkit.fluxcd.io/v1
            kind: ImagePolicy
            metadata: {name: p}
            spec: {imageRepositoryRef: {name: app}, policy: {numerical: {}}}
            """
        ),
        "other-group.yaml": "apiVersion: example.com/v1\nkind: ImagePolicy\nmetadata: {name: x}\n",
    }
    tree = scan(files)
    found = {(o.kind, o.ref, o.file, o.line) for o in tree.objects}
    assert found == {
        ("ImageRepository", "automation:app", "infra/sub/objects.yaml", 2),
        ("ImageUpdateAutomation", "flux-system:apps", "infra/sub/objects.yaml", 14),
        ("ImagePolicy", "default:p", "elsewhere.yaml", 1),
    }


@pytest.mark.parametrize(
    ("reference", "expected"),
    [
        ("ghcr.io/acme/app", ("ghcr.io/acme/app", None, None)),
        ("ghcr.io/acme/app:v1", ("ghcr.io/acme/app", "v1", None)),
        ("localhost:5000/app", ("localhost:5000/app", None, None)),
        ("localhost:5000/app:t", ("localhost:5000/app", "t", None)),
        ("app@sha256:ab", ("app", None, "sha256:ab")),
        ("r.io/app:t@sha256:ab", ("r.io/app", "t", "sha256:ab")),
    ],
)
def test_split_image(reference: str, expected: tuple[str, str | None, str | None]) -> None:
    assert split_image(reference) == expected


def test_env_of_paths_and_names() -> None:
    assert env_of("flux/apps/backend/production/deployment.yaml") == "production"
    assert env_of("flux/apps/frontend/overlays/staging/kustomization.yaml") == "staging"
    assert env_of("staging/x/develop/a.yaml") == "develop"  # the innermost folder wins
    assert env_of("flux/apps/production.yaml") is None  # file names are not folders
    assert env_of("flux/apps/preproduction/a.yaml") is None
    assert env_of_name("backend-production") == "production"
    assert env_of_name("preproduction-app") is None


# -- properties --------------------------------------------------------------------------------

TAG = st.from_regex(r"[a-z0-9][a-z0-9._-]{0,40}", fullmatch=True)
NAME = st.from_regex(r"[a-z][a-z0-9-]{0,20}", fullmatch=True)


@settings(max_examples=60, deadline=None)
@given(tag=TAG, ns=NAME, policy=NAME, form=st.sampled_from(["", ":tag", ":name", ":digest"]))
def test_any_marker_line_round_trips(tag: str, ns: str, policy: str, form: str) -> None:
    setter = f"{ns}:{policy}{form}"
    value = f"ghcr.io/acme/app:{tag}"
    comment = json.dumps({"$imagepolicy": setter})
    text = f"kind: Deployment\nspec:\n  image: {value} # {comment}\n"
    tree = scan({"env/production/d.yaml": text})
    assert len(tree.markers) == 1
    marker = tree.markers[0]
    assert (marker.setter, marker.value, marker.line, marker.valid) == (setter, value, 3, True)
    assert tree.images[0].tag == tag


def test_markers_on_keys_or_inside_block_text_are_reported_not_counted() -> None:
    text = doc(
        """
        spec:
          images: # {"$imagepolicy": "ns:on-a-key"}
            - a
          patch: |
            image: x:1 # {"$imagepolicy": "ns:inside-text"}
          image: ghcr.io/a/e:1 # {"$imagepolicy": "ns:good"}
        """
    )
    tree = scan({"x.yaml": text})
    assert [m.setter for m in tree.markers] == ["ns:good"]
    assert sorted(c.line for c in tree.ignored) == [2, 5]
    assert all("does not trail a scalar value" in c.reason for c in tree.ignored)


def test_a_one_line_head_comment_on_a_list_item_is_a_marker_flux_reads() -> None:
    """As the setters read it (go-yaml v3 HeadComment, kyaml's fallback): a marker, not a
    comment ``check`` calls ignored; two comment lines above are one comment Flux skips."""
    text = 'args:\n  # {"$imagepolicy": "ns:p"}\n  - reg/app:v1\n'
    tree = scan({"a.yaml": text})
    assert [(m.file, m.line, m.setter, m.value) for m in tree.markers] == [
        ("a.yaml", 2, "ns:p", "reg/app:v1")
    ]
    assert tree.ignored == []
    two = scan({"a.yaml": text.replace("args:\n", "args:\n  # note\n")})
    assert two.markers == []
    assert [(c.file, c.line) for c in two.ignored] == [("a.yaml", 3)]


def test_a_scalar_that_only_looks_like_a_date_is_read_as_text() -> None:
    """``2024-02-30`` is no date: go-yaml (Flux) reads it as a string; the scan must not
    crash on it (PyYAML's timestamp constructor raises ValueError), in a manifest or in a
    kustomization.yaml."""
    text = 'created: 2024-02-30\nimage: reg/app:v1 # {"$imagepolicy": "ns:p"}\n'
    files = {"a/deploy.yaml": text, "a/kustomization.yaml": "namespace: 2024-13-45\n"}
    tree = scan(files)
    assert [(m.file, m.setter) for m in tree.markers] == [("a/deploy.yaml", "ns:p")]
    assert tree.unparseable == []
