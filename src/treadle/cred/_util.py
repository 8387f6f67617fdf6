"""Helpers the cred modules and :mod:`treadle.web.guard` share: text as bytes, Digest hashes,
the parameters of an HTTP authentication header.

Private: nothing here is part of treadle's API.
"""

from __future__ import annotations

import hashlib
import re
from typing import Final

from treadle.cred.error import LoginFailed

__all__ = ["DIGEST_HASHES", "as_bytes", "hex_digest", "parse_auth_params"]

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


# One auth-param (RFC 9110 §11.2): token = ( token / quoted-string ), then a comma or the end.
_AUTH_PARAM: Final = re.compile(
    rb"\s*([!#$%&'*+\-.^_`|~0-9A-Za-z]+)\s*=\s*"
    rb'(?:"((?:[^"\\]|\\.)*)"|([!#$%&\'*+\-.^_`|~0-9A-Za-z/=]*))\s*(?:,|$)'
)
_QUOTED_PAIR: Final = re.compile(rb"\\(.)")


def parse_auth_params(value: bytes) -> dict[str, bytes]:
    """Parse ``a=b, c="d"`` into ``{"a": b"b", "c": b"d"}`` (names lowercased).

    Args:
        value: The parameters of an ``Authorization`` header, after the scheme.

    Returns:
        Each parameter's value, unquoted.

    Raises:
        LoginFailed: Malformed, or a parameter repeated.
    """
    params: dict[str, bytes] = {}
    pos = 0
    value = value.strip()
    while pos < len(value):
        m = _AUTH_PARAM.match(value, pos)
        if m is None or m.end() == pos:
            raise LoginFailed("Invalid response, malformed parameters")
        name = m.group(1).decode("ascii").lower()
        quoted = m.group(2)
        param = _QUOTED_PAIR.sub(rb"\1", quoted) if quoted is not None else m.group(3)
        if name in params:
            raise LoginFailed(f"Invalid response, {name} given twice")
        params[name] = param
        pos = m.end()
    return params
