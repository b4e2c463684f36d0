"""Flux image automation, modelled exactly enough to predict and verify what it will do.

``from promote.flux import ImagePolicy, PolicyError``::

    policy = ImagePolicy.from_manifest(yaml.safe_load(text))   # PolicyError if invalid
    policy.select(tags)      # the tag Flux writes to status.latestRef.tag, or None
    policy.evaluate(tags)    # Selection(tag, ambiguous, candidates, warnings)

See ``docs/flux-model.md`` for what is modelled, the sources, and the known differences.
"""

from __future__ import annotations

from promote.errors import PolicyError
from promote.flux.policy import (
    DEFAULT_EXCLUSION_LIST,
    SUPPORTED_API_VERSIONS,
    ImagePolicy,
    ImageRepositoryRef,
    Selection,
    TagFilter,
    filter_out_tags,
    stored_order,
)
from promote.flux.setters import apply_setters

__all__ = [
    "DEFAULT_EXCLUSION_LIST",
    "SUPPORTED_API_VERSIONS",
    "ImagePolicy",
    "ImageRepositoryRef",
    "PolicyError",
    "Selection",
    "TagFilter",
    "apply_setters",
    "filter_out_tags",
    "stored_order",
]
