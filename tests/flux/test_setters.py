"""The setters (``promote.flux.apply_setters``) against image-automation-controller's own tests.

``/work/shared/flux-conformance/setter_cases.json`` (path overridable with
``FLUX_SETTER_CASES``): IAC v1.2.1's setter tests as data, every file of the tree before
and after, exact bytes. Every case is replayed byte for byte, and its recorded changes
(``Result``) are compared where the test asserts them. The rest are the edges the
contract names: quoting, styles, update.path confinement, invalid references.
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from promote.errors import GitOpsError
from promote.flux import apply_setters
from promote.flux.setters import is_yaml11_non_string, normalise_update_path, run_setters

CASES_PATH = Path(
    os.environ.get("FLUX_SETTER_CASES", "/work/shared/flux-conformance/setter_cases.json")
)


def _load() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(CASES_PATH.read_text(encoding="utf-8"))
    return data


CASES = _load()["cases"]


def test_the_conformance_file_has_cases() -> None:
    assert len(CASES) >= 4
    assert {c["id"] for c in CASES} >= {"TestUpdateWithSetters"}


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_setter_case_byte_for_byte(case: dict[str, Any]) -> None:
    result = apply_setters(case["files"], case["policies"], case["update_path"])
    assert set(result) == set(case["expected"])
    for path, text in case["expected"].items():
        assert result[path] == text, path


@pytest.mark.parametrize(
    "case", [c for c in CASES if c["changed"] is not None], ids=lambda c: c["id"]
)
def test_setter_case_changes(case: dict[str, Any]) -> None:
    """Changes grouped by file and object, in order within a group (as the test asserts)."""
    result = run_setters(case["files"], case["policies"], case["update_path"])

    def grouped(entries: list[tuple[str, str, str, str, str]]) -> dict[Any, list[Any]]:
        out: dict[Any, list[Any]] = defaultdict(list)
        for file, obj, old, new, setter in entries:
            out[(file, obj)].append((old, new, setter))
        return dict(out)

    want = [
        (
            c["file"],
            json.dumps(c["object"], sort_keys=True),
            c["oldValue"],
            c["newValue"],
            c["setter"],
        )
        for c in case["changed"]
    ]
    got = [
        (c.file, json.dumps(c.object.as_dict(), sort_keys=True), c.old, c.new, c.setter)
        for c in result.changes
    ]
    assert grouped(got) == grouped(want)
    changed = {p for p, t in case["expected"].items() if t != case["files"][p]}
    assert set(result.changed_files) == changed


def test_pure_the_input_is_not_modified() -> None:
    case = CASES[0]
    files = dict(case["files"])
    apply_setters(files, case["policies"])
    assert files == case["files"]


POLICY = {"namespace": "ns", "name": "p", "image": "reg/app", "tag": "v2", "digest": None}


def _one(text: str, policy: dict[str, str | None] = POLICY, path: str = "a.yaml") -> str:
    return apply_setters({path: text}, [policy])[path]


def test_every_other_byte_stays_including_a_leading_document_marker_and_blank_lines() -> None:
    text = '---\n# head\n\nimage: reg/app:v1   # {"$imagepolicy": "ns:p"}\n\n\nother:  keep\n'
    assert _one(text) == text.replace("reg/app:v1", "reg/app:v2")


@pytest.mark.parametrize(
    ("before", "after"),
    [
        ("'reg/app:v1'", "'reg/app:v2'"),
        ('"reg/app:v1"', '"reg/app:v2"'),
    ],
)
def test_a_quoted_scalar_keeps_its_quotes(before: str, after: str) -> None:
    text = f'image: {before} # {{"$imagepolicy": "ns:p"}}\n'
    assert _one(text) == f'image: {after} # {{"$imagepolicy": "ns:p"}}\n'


def test_a_tag_that_yaml_1_1_reads_as_a_number_is_double_quoted() -> None:
    policy = {**POLICY, "tag": "1.10"}
    text = 'tag: v1 # {"$imagepolicy": "ns:p:tag"}\n'
    assert _one(text, policy) == 'tag: "1.10" # {"$imagepolicy": "ns:p:tag"}\n'


@pytest.mark.parametrize(
    ("value", "non_string"),
    [
        ("1.0", True),
        ("10", True),
        ("yes", True),
        ("off", True),
        ("~", True),
        ("0x1F", True),
        ("1e3", True),
        ("v1.0.0", False),
        ("2024-01-01", False),  # go-yaml v2 keeps timestamps as strings in interface{}
        ("2024-13-45", False),  # looks like a date, is none: a string (and no crash)
        ("reg/app:v1", False),
        ("", False),
    ],
)
def test_yaml11_non_string(value: str, non_string: bool) -> None:
    assert is_yaml11_non_string(value) is non_string


def test_full_marker_with_a_digest_and_the_digest_marker_without_one() -> None:
    digest = "sha256:" + "a" * 64
    text = (
        'image: reg/app:v1 # {"$imagepolicy": "ns:p"}\n'
        'digest: sha256:old # {"$imagepolicy": "ns:p:digest"}\n'
    )
    with_digest = _one(text, {**POLICY, "digest": digest})
    assert f"image: reg/app:v2@{digest} #" in with_digest
    assert f"digest: {digest} #" in with_digest
    # no digest: the :digest field is set to "" (Go's empty string). The node was a plain
    # !!str; go-yaml v3's encoder force-quotes a str whose plain text would resolve to
    # another tag (here !!null), with double quotes: "" (a single-quoted field stays '')
    assert 'digest: "" #' in _one(text)
    quoted = text.replace("sha256:old", "'sha256:old'")
    assert "digest: '' #" in _one(quoted)


def test_markers_flux_does_not_read_are_left_alone() -> None:
    text = (
        "a: reg/app:v1 # {'$imagepolicy': 'ns:p'}\n"  # single quotes: not JSON
        'b: reg/app:v1 # see {"$imagepolicy": "ns:p"}\n'  # prose before the object
        '# {"$imagepolicy": "ns:p"}\n'  # own line
        "c: reg/app:v1\n"
        'd: reg/app:v1 # {"$imagepolicy": "ns:other"}\n'  # unknown policy
        'e: reg/app:v1 # {"$imagepolicy": "ns:p:size"}\n'  # unknown suffix
        'reg/app:v1: # {"$imagepolicy": "ns:p"}\n'  # a key is never visited
        "  x: 1\n"
    )
    assert _one(text) == text


def test_only_yaml_files_with_the_quoted_token_are_read_and_bad_yaml_is_skipped() -> None:
    marked = 'image: reg/app:v1 # {"$imagepolicy": "ns:p"}\n'
    files = {
        "a.txt": marked,
        "b.yaml": marked.replace('"$imagepolicy"', "$imagepolicy"),
        "c.yaml": marked + "bad: [\n",
        "Kustomization": marked,
        "d.yml": marked,
    }
    result = run_setters(files, [POLICY])
    assert result.files["a.txt"] == marked
    assert result.files["b.yaml"] == files["b.yaml"]
    assert result.files["c.yaml"] == files["c.yaml"]
    assert result.problem_files == ["c.yaml"]
    assert "reg/app:v2" in result.files["Kustomization"]
    assert "reg/app:v2" in result.files["d.yml"]


def test_a_policy_without_latest_ref_defines_no_setter() -> None:
    text = 'image: reg/app:v1 # {"$imagepolicy": "ns:p"}\n'
    assert _one(text, {**POLICY, "tag": None}) == text


def test_an_invalid_reference_fails_the_whole_update() -> None:
    with pytest.raises(GitOpsError, match="invalid image ref"):
        apply_setters({"a.yaml": "x: 1\n"}, [{**POLICY, "image": "Bad Name"}])


@pytest.mark.parametrize(
    ("given", "folder"),
    [(None, ""), ("./", ""), ("./flux/apps", "flux/apps"), ("/a/../b/", "b"), ("../../x", "x")],
)
def test_update_path_is_confined_to_the_root(given: str | None, folder: str) -> None:
    assert normalise_update_path(given) == folder


def test_update_path_limits_the_files_and_changes_are_relative_to_it() -> None:
    marked = 'image: reg/app:v1 # {"$imagepolicy": "ns:p"}\n'
    files = {"apps/a.yaml": marked, "apps2/b.yaml": marked, "c.yaml": marked}
    result = run_setters(files, [POLICY], "./apps")
    assert [c.file for c in result.changes] == ["a.yaml"]
    assert [c.path for c in result.changes] == ["apps/a.yaml"]
    assert result.files["apps2/b.yaml"] == marked
    assert result.files["c.yaml"] == marked


def test_crlf_and_non_ascii_text_keep_their_bytes() -> None:
    text = 'name: é\r\nimage: reg/app:v1 # {"$imagepolicy": "ns:p"}\r\nx: ü\r\n'
    assert _one(text) == text.replace("v1", "v2")


def test_a_block_scalar_marker_becomes_a_quoted_line_keeping_the_marker() -> None:
    text = 'image: | # {"$imagepolicy": "ns:p"}\n  reg/app:v1\nnext: 1\n'
    assert _one(text) == 'image: "reg/app:v2" # {"$imagepolicy": "ns:p"}\nnext: 1\n'


def test_a_one_line_head_comment_marks_a_list_item_without_a_line_comment() -> None:
    """go-yaml v3 gives a block-sequence item the comment lines right above it as its
    HeadComment, and kyaml's ``FieldMeta.Read`` falls back to it when the item has no line
    comment: Flux updates such an item (marker_grammar of setter_cases.json)."""
    text = 'args:\n  - --flag\n  # {"$imagepolicy": "ns:p"}\n  - reg/app:v1\nnext: 1\n'
    assert _one(text) == text.replace("reg/app:v1", "reg/app:v2")


@pytest.mark.parametrize(
    "text",
    [
        # two comment lines: the head comment is not one JSON object
        'args:\n  # note\n  # {"$imagepolicy": "ns:p"}\n  - reg/app:v1\n',
        # a line comment wins, even one that is not a marker
        'args:\n  # {"$imagepolicy": "ns:p"}\n  - reg/app:v1 # pinned\n',
        # a mapping value: the comment above is the key's head comment, never visited
        'spec:\n  # {"$imagepolicy": "ns:p"}\n  image: reg/app:v1\n',
        # an item that is a mapping: the comment is the mapping's
        'items:\n  # {"$imagepolicy": "ns:p"}\n  - image: reg/app:v1\n',
    ],
)
def test_head_comments_flux_does_not_read(text: str) -> None:
    assert _one(text) == text


def test_a_date_tag_written_over_a_string_is_double_quoted() -> None:
    """go-yaml v3 resolves a plain ``2024-01-15`` as !!timestamp: writing it into a field
    that held a string force-quotes it (kyaml's encoder); a field that already held a date
    stays plain (its tag resolves the same)."""
    policy = {**POLICY, "tag": "2024-01-15"}
    text = 'tag: v1 # {"$imagepolicy": "ns:p:tag"}\n'
    assert _one(text, policy) == 'tag: "2024-01-15" # {"$imagepolicy": "ns:p:tag"}\n'
    dated = 'tag: 2023-12-31 # {"$imagepolicy": "ns:p:tag"}\n'
    assert _one(dated, policy) == dated.replace("2023-12-31", "2024-01-15")
    # not a date go-yaml reads as one: plain
    for tag in ("2024-01-15-rc1", "2024-13-45", "20240115"):
        assert _one(text, {**POLICY, "tag": tag}).startswith(
            f"tag: {tag} #" if tag != "20240115" else 'tag: "20240115" #'
        )


def test_a_file_with_a_scalar_that_only_looks_like_a_date_is_still_updated() -> None:
    text = 'created: 2024-02-30\nimage: reg/app:v1 # {"$imagepolicy": "ns:p"}\n'
    assert _one(text) == text.replace("reg/app:v1", "reg/app:v2")
