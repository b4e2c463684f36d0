"""Every error promote raises on purpose, in one tree.

::

    PromoteError                      anything a user can cause or must act on (no traceback)
    ├── InputError                    a workflow input or CLI flag is invalid (before any I/O)
    │   └── ReferenceError_           an image reference, repository or tag is malformed
    ├── RefusedError                  the request is valid but unsafe: nothing was written
    │   └── ClobberError              an immutable tag already names another digest
    ├── RaceError                     another promotion wrote a conflicting tag concurrently
    ├── RegistryError                 the registry answered unexpectedly (status, OCI codes)
    │   ├── AuthError                 401/403 after the auth flow (wrong credentials, no push)
    │   ├── NotFoundError             404 manifest/tag unknown
    │   ├── TransientError            408/429/5xx or a connection fault after every retry
    │   └── DigestMismatchError       bytes or a returned digest disagree with the expected one
    ├── PartialPromotionError         some tags were written and some not: the state is named
    ├── PolicyError                   a Flux ImagePolicy is invalid or its evaluation failed
    ├── GitOpsError                   a GitOps tree or repository cannot be read as Flux does
    ├── GitHubError                   a GitHub REST call failed (deployments, tags, releases)
    └── RecordError                   the tags are written, the promotion record is not (exit 6)

The front door prints ``str(error)`` as one ``::error::`` line and exits with the class's
``exit_code``; nothing else (programming errors) ever reaches the user as a bare traceback
either — see :func:`promote.frontdoor.commands.execute`.
"""

from __future__ import annotations


class PromoteError(Exception):
    """Base class: an error with a message meant for the person running the promotion."""

    #: exit status used by the front doors
    exit_code = 1


class InputError(PromoteError):
    """An input is invalid; raised before the first network call."""

    exit_code = 2

    def __init__(self, message: str, *, input_name: str | None = None) -> None:
        super().__init__(message)
        self.input_name = input_name


class ReferenceError_(InputError):
    """An image reference, repository name or tag does not follow the OCI grammar."""


class RefusedError(PromoteError):
    """The request is well formed but unsafe; nothing was written."""

    exit_code = 3


class ClobberError(RefusedError):
    """An immutable tag already exists on another digest; immutable tags are never moved."""


class RaceError(PromoteError):
    """A concurrent promotion produced a conflicting tag (detected after writing)."""

    exit_code = 4


class RegistryError(PromoteError):
    """The registry answered with an unexpected status.

    ``method`` and ``url`` are kept for the message (the URL never carries credentials);
    ``codes`` are the OCI error codes of the body (``MANIFEST_UNKNOWN``, ``DENIED``...).
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        method: str | None = None,
        url: str | None = None,
        codes: tuple[str, ...] = (),
    ) -> None:
        super().__init__(message)
        self.status = status
        self.method = method
        self.url = url
        self.codes = codes


class AuthError(RegistryError):
    """Authentication or authorisation failed after the challenge flow."""


class NotFoundError(RegistryError):
    """The manifest, tag or repository is unknown to the registry."""


class TransientError(RegistryError):
    """Retryable faults (408, 429, 5xx, resets) outlasted the retry deadline."""


class DigestMismatchError(RegistryError):
    """Content and digest disagree: the bytes, a header, or a returned digest."""


class PartialPromotionError(PromoteError):
    """Some target tags were written, others not. ``written``/``missing`` name the state."""

    exit_code = 5

    def __init__(self, message: str, *, written: list[str], missing: list[str]) -> None:
        super().__init__(message)
        self.written = written
        self.missing = missing


class PolicyError(PromoteError):
    """A Flux ImagePolicy is invalid, or evaluating it failed as the controller would."""


class GitOpsError(PromoteError):
    """A GitOps checkout or repository could not be read."""


class GitHubError(PromoteError):
    """A GitHub REST API call failed; ``status`` is the HTTP status when there was one."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class RecordError(PromoteError):
    """The promotion's tags are written and stand, but its promotion record could not be
    written. The outputs are written anyway; a re-run writes only the missing record."""

    exit_code = 6
