"""The four manifest media types promote handles, and the ``Accept`` list it always sends.

Why the full list on every manifest GET/HEAD: registries negotiate on ``Accept``. CNCF
distribution answers ``404 MANIFEST_UNKNOWN`` ("OCI manifest found, but accept header does
not support OCI manifests") when an OCI manifest is asked for without the OCI types, and
older registries convert to Docker schema 1 (a different digest) for clients that do not
accept schema 2. Sending all four means the registry returns the stored bytes unchanged, so
the digest we compute is the digest that was tested. Schema 1 is deliberately absent: it
is deprecated, signed, and cannot be re-tagged byte-for-byte on modern registries.
"""

from __future__ import annotations

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"

#: Every manifest media type promote reads and writes, indexes first.
MANIFEST_MEDIA_TYPES: tuple[str, ...] = (
    OCI_INDEX,
    OCI_MANIFEST,
    DOCKER_MANIFEST_LIST,
    DOCKER_MANIFEST,
)
#: Media types of multi-platform indexes.
INDEX_MEDIA_TYPES = frozenset({OCI_INDEX, DOCKER_MANIFEST_LIST})

#: The ``Accept`` header of every manifest GET and HEAD (see the module docstring).
MANIFEST_ACCEPT = ", ".join(MANIFEST_MEDIA_TYPES)
