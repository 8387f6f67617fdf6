"""Helpers the cred modules and :mod:`treadle.web.guard` share: text as bytes, Digest hashes.

Private: nothing here is part of treadle's API.
"""

from __future__ import annotations

import hashlib
from typing import Final

__all__ = ["DIGEST_HASHES", "as_bytes", "hex_digest"]

#: HTTP Digest ``algorithm`` values (lowercase) and the :mod:`hashlib` names of their hashes.
DIGEST_HASHES: Final = {b"md5": "md5", b"sha-256": "sha256"}


def as_bytes(value: bytes | str) -> bytes:
    """Return ``value`` as bytes, encoding ``str`` as UTF-8.

    Args:
        value: Text or bytes.

    Returns:
        ``value`` itself when it is bytes, else its UTF-8 encoding.
    """
    return value.encode("utf-8") if isinstance(value, str) else value


def hex_digest(name: str, data: bytes) -> bytes:
    """Return the lowercase hexadecimal digest of ``data``, as bytes.

    Args:
        name: A :mod:`hashlib` algorithm name (a value of :data:`DIGEST_HASHES`).
        data: What to hash.

    Returns:
        The digest in hex, as ASCII bytes (the form HTTP Digest computes with).
    """
    return hashlib.new(name, data).hexdigest().encode("ascii")
