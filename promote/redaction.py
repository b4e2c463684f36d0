"""The one redactor: every secret we know replaced by ``***`` in text we print or raise.

Pure and stdlib-only (a model: the runner protocol and the registry client both use it).
The longest secret is replaced first, so a secret that contains another (a Basic
``base64(user:password)`` value and the password) leaves no readable piece behind.
"""

from __future__ import annotations

from collections.abc import Iterable

#: What a secret is replaced by (the runner's own mask shows the same).
MASK = "***"


def redact(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every non-empty one of ``secrets`` replaced by :data:`MASK`."""
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        text = text.replace(secret, MASK)
    return text
