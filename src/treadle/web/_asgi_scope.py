"""The ASGI ``http`` scope of a request, and the checks on a response's header fields.

Both run once per request, so both are written for the usual case: a resource at the root
whose path has no percent-escape takes the request's path as it is, and a header name is
checked (a token, lowercased, not a field of the connection) once per distinct name, the
result kept in a bounded table, while each value is scanned for CR, LF and NUL every time.
What a connection's requests share (``scheme``, ``client``, ``server``) is computed for its
first request and kept on its channel, unless a request says otherwise (a trusted proxy's
headers, ``setHost``, or a request class answering ``isSecure``/``getHost``/
``getClientAddress`` its own way).
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any, Final, TypeAlias

from treadle.web._asgi_types import Scope

if TYPE_CHECKING:
    from collections.abc import Iterable

    from treadle.web.server import Request

__all__ = ["http_scope", "response_fields"]

_METHODS: Final = {
    m: m.decode() for m in (b"GET", b"HEAD", b"POST", b"PUT", b"DELETE", b"PATCH", b"OPTIONS")
}
_VERSIONS: Final = {b"HTTP/1.1": "1.1", b"HTTP/1.0": "1.0", b"HTTP/2": "2"}

# Fields of the connection, not of the response (RFC 9110 §7.6.1): treadle frames the body
# itself, so an application's framing fields would contradict its own.
_DROPPED: Final = frozenset({b"transfer-encoding", b"keep-alive", b"te", b"trailer", b"upgrade"})
# RFC 9110 §5.6.2: field-name = token.
_TOKEN: Final = b"!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
# Names checked already, as the application spelt them: their lowercase form, or b"" for a
# field of the connection (dropped). Bounded: an application may make names up.
_NAMES: dict[bytes, bytes] = {}
_NAMES_KEPT: Final = 1024
# Bytes are searched for as ints: a bytes needle (b"%" in path) goes through the buffer
# protocol, after a TypeError raised (with its message formatted) and cleared inside.
_PERCENT: Final = 37
_QUESTION: Final = 63
_CR: Final = 13
_LF: Final = 10
_NUL: Final = 0


# What a connection's requests share in their scope: (scheme, client, server).
Parts: TypeAlias = "tuple[str, tuple[str, int] | None, tuple[Any, int | None]]"
# The attribute of a channel keeping its Parts.
_KEPT: Final = "_asgi_scope_parts"
# Request classes to whether they answer isSecure/getHost/getClientAddress as treadle's own.
_STOCK: dict[type, bool] = {}

# The scope of the usual request, copied and then changed where a request differs: a copy of
# a dict is a copy of its table, where a dict built from a literal of this size inserts each
# entry and grows its table twice on the way.
_TEMPLATE: Final[dict[str, Any]] = {
    "type": "http",
    "asgi": None,
    "http_version": "1.1",
    "method": "GET",
    "scheme": "http",
    "path": "/",
    "raw_path": b"/",
    "root_path": "",
    "query_string": b"",
    "headers": None,
    "client": None,
    "server": None,
    "state": None,
}


def http_scope(request: Request, state: dict[str, Any]) -> Scope:
    """The ASGI ``http`` scope of ``request``.

    ``root_path`` is the part of the path traversal consumed to reach the resource (WSGI's
    ``SCRIPT_NAME``) and ``path`` the whole path, root included (as uvicorn's ``--root-path``
    gives it, and as Starlette's routing expects); both percent-decoded, as UTF-8.
    ``raw_path`` is the path as the client sent it. Behind trusted proxies (the site's
    ``proxyHeaders``) ``client``, ``server`` and ``scheme`` describe the client's view.

    Args:
        request: The request being rendered.
        state: The lifespan state; the scope gets a shallow copy.
    """
    scope = _TEMPLATE.copy()
    raw_path = request.path
    prepath = request.prepath
    if not prepath and _PERCENT not in raw_path:
        # At the root, nothing consumed and nothing to decode: the path is the request's.
        scope["path"] = raw_path.decode("utf-8", "replace")
    else:
        scope["root_path"], scope["path"] = _paths(prepath, request.postpath)
    scope["raw_path"] = raw_path
    uri = request.uri
    if _QUESTION in uri:
        scope["query_string"] = uri[uri.find(b"?") + 1 :]
    method = request.method
    if method != b"GET":
        scope["method"] = _METHODS.get(method) or method.decode("latin-1")
    version = request.clientproto
    if version != b"HTTP/1.1":
        scope["http_version"] = (
            _VERSIONS.get(version) or version.decode("latin-1").partition("/")[2]
        )
    scope["scheme"], scope["client"], scope["server"] = _connection_parts(request)
    scope["asgi"] = {"version": "3.0", "spec_version": "2.4"}
    scope["headers"] = _header_list(request.requestHeaders._raw)
    scope["state"] = dict(state)
    return scope


def _connection_parts(request: Request) -> Parts:
    """``(scheme, client, server)`` of ``request``: computed once per connection and kept on
    its channel, unless a proxy (``proxyHeaders``) or ``setHost`` changed them for this
    request, or the request's class answers ``isSecure``/``getHost``/``getClientAddress``
    its own way."""
    cls = type(request)
    stock = _STOCK.get(cls)
    if stock is None:
        stock = _STOCK[cls] = _is_stock(cls)
    if (
        not stock  # first: a class of a program's own may have none of the fields below
        or request._forwarded_client is not None
        or request._forwarded_secure is not None
        or request._forced_host is not None
        or request._forced_secure
    ):
        return _parts_of(request)
    wire = request._wire
    parts: Parts | None = getattr(wire, _KEPT, None)
    if parts is None:
        parts = _parts_of(request)
        # A wire with no room for it (slots) gets them computed each time.
        with contextlib.suppress(AttributeError):
            setattr(wire, _KEPT, parts)
    return parts


def _is_stock(cls: type) -> bool:
    """Whether ``cls`` answers the connection's questions as treadle's own Request does."""
    from treadle.web._request import Request as Stock

    return all(
        getattr(cls, name, None) is getattr(Stock, name)
        for name in ("isSecure", "getHost", "getClientAddress")
    )


def _parts_of(request: Request) -> Parts:
    """``(scheme, client, server)`` of ``request``, asked of it."""
    scheme = "https" if request.isSecure() else "http"
    peer: Any = request.getClientAddress()
    peer_host = getattr(peer, "host", None)
    client = (peer_host, peer.port) if peer_host is not None else None
    host: Any = request.getHost()
    host_host = getattr(host, "host", None)
    server = (
        (host_host, host.port) if host_host is not None else (getattr(host, "name", None), None)
    )
    return scheme, client, server


def _header_list(raw: dict[bytes, list[bytes]]) -> list[tuple[bytes, bytes]]:
    """The request's header fields as ASGI pairs (the names are lowercase already: the
    parser's dict is read directly, as the public ``getAllRawHeaders`` would capitalise
    them only for us to lower them again). A loop, not a comprehension, which in Python
    3.11 makes and calls a function of its own."""
    headers = []
    for name, values in raw.items():
        for value in values:
            headers.append((name, value))
    return headers


def _paths(prepath: list[bytes], postpath: list[bytes]) -> tuple[str, str]:
    """``(root_path, path)`` from what traversal consumed and what it left."""
    if not prepath:
        return "", (b"/" + b"/".join(postpath)).decode("utf-8", "replace")
    script = b"/" + b"/".join(prepath)
    rest = b"/" + b"/".join(postpath) if postpath else b""
    if script.endswith(b"/"):
        # Mounted at an empty segment: the root path may not end in "/" (it would be "/"
        # for a root mount, which ASGI spells "" with the path "/"), as for WSGI.
        script, rest = script[:-1], b"/" + rest
    root_path = script.decode("utf-8", "replace")
    return root_path, root_path + rest.decode("utf-8", "replace")


def response_fields(headers: Iterable[Any]) -> tuple[dict[bytes, list[bytes]], int | None]:
    """Check the ``headers`` of an ``http.response.start`` and gather them by name.

    Returns:
        ``(raw, length)``: lowercase name to values, the connection's own fields left out;
        and the ``Content-Length`` the application declared (None: none).

    Raises:
        TypeError: A name or value is not ``bytes``, or ``headers`` no iterable of pairs.
        ValueError: A name is not a token, a value holds CR, LF or NUL (it would split the
            response), or a ``Content-Length`` is not a number or disagrees with another.
    """
    raw: dict[bytes, list[bytes]] = {}
    for name, value in headers:
        lowered = _NAMES.get(name)
        if lowered is None:
            lowered = _check_name(name)
        if type(value) is not bytes or _CR in value or _LF in value or _NUL in value:
            raise _bad_value(lowered, value)
        if lowered:  # else a field of the connection, dropped
            values = raw.get(lowered)
            if values is None:
                raw[lowered] = [value]
            else:
                values.append(value)
    declared = raw.get(b"content-length")
    if declared is None:
        return raw, None
    if len(declared) == 1 and declared[0].isdigit():
        return raw, int(declared[0])
    return raw, _content_length(declared)


def _bad_value(name: bytes, value: object) -> Exception:
    if type(value) is not bytes:
        return TypeError("names and values must be bytes")
    return ValueError(f"{name!r} has CR, LF or NUL in its value")


def _content_length(values: list[bytes]) -> int:
    """The one length the ``Content-Length`` values agree on (RFC 9110 §8.6)."""
    length = -1
    for value in values:
        declared = int(value) if value.strip().isdigit() else -1
        if declared < 0 or (length >= 0 and declared != length):
            raise ValueError(f"Content-Length {value!r}")
        length = declared
    return length


def _check_name(name: object) -> bytes:
    """The lowercase form of a field name met for the first time (b"" to drop it)."""
    if type(name) is not bytes:
        raise TypeError("names and values must be bytes")
    if not name or name.translate(None, _TOKEN):
        raise ValueError(f"the name {name!r} is not a token")
    lowered = name.lower()
    if lowered in _DROPPED:
        lowered = b""
    if len(_NAMES) < _NAMES_KEPT:
        _NAMES[name] = lowered
    return lowered
