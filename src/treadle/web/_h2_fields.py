"""HTTP/2 fields to and from what a ``Request`` knows: plain functions, tested without I/O.

- :func:`request_head`: a request's fields (already checked by h2: pseudo-fields, case,
  connection-specific fields, forbidden characters) into method, path and the lowercased
  field dict the request takes, ``Host`` from ``:authority`` (RFC 9113 §8.3.1), with the
  factory's limits applied as HTTP/1.1 applies them (the status that refuses, or 0);
- :func:`response_fields`: the HTTP/1.x head a request writes, read back into HTTP/2 fields
  (``:status``, lowercased names, no connection-specific fields: RFC 9113 §8.2.2);
- :func:`error_fields`: the short page that refuses a request.
"""

from __future__ import annotations

from typing import Final

from treadle.web._framing import valid_host
from treadle.web._parser import Limits
from treadle.web._status import RESPONSES

__all__ = ["CONNECTION_FIELDS", "error_fields", "request_head", "response_fields"]

#: Fields of HTTP/1.1 connection management, which an HTTP/2 response must not carry
#: (RFC 9113 §8.2.2); the request adds ``Connection`` itself.
CONNECTION_FIELDS: Final = frozenset(
    (b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"upgrade")
)
_COLON: Final = ord(":")
#: What the limits count for the request line besides method and target: ``SP`` twice and
#: ``HTTP/1.1`` (see :func:`treadle.web._framing.request_line_size`).
_REQUEST_LINE_EXTRA: Final = 10
#: Bytes a field line has besides name and value: ``": "`` (see ``field_line_size``).
_FIELD_LINE_EXTRA: Final = 2


def request_head(
    headers: list[tuple[bytes, bytes]], limits: Limits
) -> tuple[bytes, bytes, dict[bytes, list[bytes]], int]:
    """Read a request's fields into ``(method, path, fields, refusal)``.

    ``refusal`` is 0 when the request is to be answered, else the status that refuses it,
    by the limits HTTP/1.1 applies: 431 for more than ``limits.fields`` fields or one over
    ``limits.field_line``, 414 for a path over ``limits.request_line``, 400 for an
    ``:authority`` that is no valid host, 413 for a ``Content-Length`` over ``limits.body``.
    """
    method = path = authority = b""
    fields: dict[bytes, list[bytes]] = {}
    count = len(headers)
    too_long = False
    field_line = limits.field_line - _FIELD_LINE_EXTRA
    for name, value in headers:
        if name[0] == _COLON:
            count -= 1
            if name == b":method":
                method = value
            elif name == b":path":
                path = value
            elif name == b":authority":
                authority = value
            continue
        if len(name) + len(value) > field_line:
            too_long = True
        values = fields.get(name)
        if values is None:
            fields[name] = [value]
        else:
            values.append(value)
    if authority and b"host" not in fields:
        fields[b"host"] = [authority]
    if too_long or count > limits.fields:
        return method, path, fields, 431
    if len(path) + len(method) + _REQUEST_LINE_EXTRA > limits.request_line:
        return method, path, fields, 414
    if authority and not valid_host(authority):
        return method, path, fields, 400
    length = fields.get(b"content-length")
    if length is not None and length[0].isdigit() and int(length[0]) > limits.body:
        return method, path, fields, 413
    return method, path, fields, 0


def response_fields(head: bytes) -> list[tuple[bytes, bytes]]:
    """Read an HTTP/1.x response head (without its blank line) back into HTTP/2 fields.

    The status line gives ``:status`` (its reason phrase has no place in HTTP/2); field
    names are lowercased, and connection-specific fields dropped (RFC 9113 §8.2.2).
    """
    lines = iter(head.split(b"\r\n"))
    fields = [(b":status", next(lines)[9:12])]
    for line in lines:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name not in CONNECTION_FIELDS:
            fields.append((name, value.strip()))
    return fields


def error_fields(code: int) -> tuple[list[tuple[bytes, bytes]], bytes]:
    """The fields and body of the short HTML page that refuses a request with ``code``."""
    body = b"<html><body><h1>%d %s</h1></body></html>" % (code, RESPONSES.get(code, b"Error"))
    fields = [
        (b":status", b"%d" % code),
        (b"content-type", b"text/html"),
        (b"content-length", b"%d" % len(body)),
    ]
    return fields, body
