"""Escaping for templates: text, attribute values, CDATA sections and comments.

The functions keep the names and results of ``twisted.web._flatten``'s, which some
programs import.
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = [
    "attributeEscapingDoneOutside",
    "escapeForContent",
    "escape_attribute",
    "escapedCDATA",
    "escapedComment",
    "writeWithAttributeEscaping",
]


def escapeForContent(data: bytes | str) -> bytes:
    """Escape ``&``, ``<`` and ``>`` for text in an HTML or XML document.

    Args:
        data: Text (encoded as UTF-8) or bytes.

    Returns:
        The escaped bytes.
    """
    if isinstance(data, str):
        data = data.encode("utf-8")
    return data.replace(b"&", b"&amp;").replace(b"<", b"&lt;").replace(b">", b"&gt;")


def attributeEscapingDoneOutside(data: bytes | str) -> bytes:
    """Return ``data`` as bytes, unescaped: the attribute's writer escapes it.

    Args:
        data: Text (encoded as UTF-8) or bytes.
    """
    if isinstance(data, str):
        return data.encode("utf-8")
    return data


def writeWithAttributeEscaping(write: Callable[[bytes], object]) -> Callable[[bytes], None]:
    """Wrap ``write`` so that everything written is escaped for a double-quoted attribute.

    Args:
        write: Receives the escaped bytes (``&<>"`` replaced by entities).
    """

    def escaped_write(data: bytes) -> None:
        write(escapeForContent(data).replace(b'"', b"&quot;"))

    return escaped_write


def escapedCDATA(data: bytes | str) -> bytes:
    """Escape text for a CDATA section: ``]]>`` ends one section and starts the next.

    Args:
        data: Text (encoded as UTF-8) or bytes.
    """
    if isinstance(data, str):
        data = data.encode("utf-8")
    return data.replace(b"]]>", b"]]]]><![CDATA[>")


def escapedComment(data: bytes | str) -> bytes:
    """Escape text for a comment: ``-->`` becomes ``--&gt;``, a final ``-`` gets a space.

    Args:
        data: Text (encoded as UTF-8) or bytes.
    """
    if isinstance(data, str):
        data = data.encode("utf-8")
    data = data.replace(b"-->", b"--&gt;")
    if data[-1:] == b"-":
        data += b" "
    return data


def escape_attribute(data: bytes) -> bytes:
    """Escape ``&<>"`` in bytes for a double-quoted attribute value."""
    return (
        data.replace(b"&", b"&amp;")
        .replace(b"<", b"&lt;")
        .replace(b">", b"&gt;")
        .replace(b'"', b"&quot;")
    )
