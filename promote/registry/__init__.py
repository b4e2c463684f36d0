"""OCI Distribution client: references in, manifests and tags out, over ``requests``.

Layers (each its own module, like go-containerregistry's ``remote``/``transport``):
:mod:`~promote.registry.mediatypes` (constants) <- :mod:`~promote.registry.transport`
(retries, deadline, redirects, counting) <- :mod:`~promote.registry.auth` (challenges,
Basic/Bearer, credentials) <- :mod:`~promote.registry.client` (the API methods).
See ``docs/registry.md`` for the auth flow, retry figures and registry quirks.
"""

from __future__ import annotations

from promote.registry.auth import (
    Challenge,
    Credentials,
    credentials_for,
    parse_www_authenticate,
)
from promote.registry.client import (
    MAX_MANIFEST_SIZE,
    TAG_PAGE_SIZE,
    Descriptor,
    Manifest,
    RegistryClient,
    sha256_digest,
)
from promote.registry.mediatypes import (
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
    INDEX_MEDIA_TYPES,
    MANIFEST_ACCEPT,
    MANIFEST_MEDIA_TYPES,
    OCI_INDEX,
    OCI_MANIFEST,
)
from promote.registry.transport import RequestRecord, RequestStats

__all__ = [
    "DOCKER_MANIFEST",
    "DOCKER_MANIFEST_LIST",
    "INDEX_MEDIA_TYPES",
    "MANIFEST_ACCEPT",
    "MANIFEST_MEDIA_TYPES",
    "MAX_MANIFEST_SIZE",
    "OCI_INDEX",
    "OCI_MANIFEST",
    "TAG_PAGE_SIZE",
    "Challenge",
    "Credentials",
    "Descriptor",
    "Manifest",
    "RegistryClient",
    "RequestRecord",
    "RequestStats",
    "credentials_for",
    "parse_www_authenticate",
    "sha256_digest",
]
