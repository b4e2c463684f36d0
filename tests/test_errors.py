"""promote/errors.py: the tree drawn in the module's docstring is the real class tree."""

from __future__ import annotations

import re

import promote.errors as errors


def drawn_tree() -> dict[str, str]:
    """class name -> parent name, read from the docstring's drawing (indent = depth)."""
    doc = errors.__doc__ or ""
    parents: dict[str, str] = {}
    stack: list[str] = []
    for line in doc.splitlines():
        found = re.match(r"^ {4}((?:[│ ] {3})*)(?:[├└]── )?([A-Za-z_]+)\s{2,}", line)
        if not found:
            continue
        depth = len(found.group(1)) // 4 + (1 if "──" in line else 0)
        del stack[depth:]
        if stack:
            parents[found.group(2)] = stack[-1]
        stack.append(found.group(2))
    return parents


def test_the_docstring_tree_is_the_class_tree() -> None:
    drawn = drawn_tree()
    real = {
        name: cls.__bases__[0].__name__
        for name, cls in vars(errors).items()
        if isinstance(cls, type)
        and issubclass(cls, errors.PromoteError)
        and cls is not errors.PromoteError
    }
    assert drawn == real
    assert drawn["RaceError"] == "PromoteError"  # not under RefusedError (issue 11)


def test_every_error_class_has_its_exit_code() -> None:
    assert errors.InputError("x").exit_code == 2
    assert errors.RefusedError("x").exit_code == 3
    assert errors.RaceError("x").exit_code == 4
    assert errors.PartialPromotionError("x", written=[], missing=[]).exit_code == 5
    assert errors.RecordError("x").exit_code == 6
