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
from treadle.web._request_core import RequestCore
from treadle.web.http_headers import Headers

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
# field of the connection (dropped). Bounded: an application may make names up. (Final: the
# compiled build keeps a final module variable in a C static, where it looks any other up in
# the module's dict at each use.)
_NAMES: Final[dict[bytes, bytes]] = {}
_NAMES_KEPT: Final = 1024
# Field values checked already (no CR, LF or NUL): a set look-up, where the three searches
# are a call each. Bounded: values vary more than names (dates, cookies), and past the bound
# a value is searched each time.
_CLEAN: Final[set[bytes]] = set()
_VALUES_KEPT: Final = 4096
# Content-Length values met already, to their number (a response's length repeats: int() of
# bytes costs several times a dict look-up). Bounded as _NAMES.
_LENGTHS: Final[dict[bytes, int]] = {}
# Bytes are searched for as ints: a bytes needle (b"%" in path) goes through the buffer
# protocol, after a TypeError raised (with its message formatted) and cleared inside.
_PERCENT: Final = 37
_QUESTION: Final = 63
_CR: Final = 13
_LF: Final = 10
_NUL: Final = 0


# What a connection's requests share in their scope: (scheme, client, server).
Parts: TypeAlias = "tuple[str, tuple[str, int] | None, tuple[Any, int | None]]"
# The attribute of a channel keeping the scope its requests start from (_TEMPLATE with the
# connection's scheme, client and server in it).
_KEPT: Final = "_asgi_scope_template"
# Request classes to whether they answer isSecure/getHost/getClientAddress as treadle's own
# (and are treadle's request, whose fields the compiled build may read directly).
_STOCK: Final[dict[type, bool]] = {}

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
    "extensions": None,
}


# The scope's "asgi" entry (copied: each request gets its own).
_ASGI: Final[dict[str, str]] = {"version": "3.0", "spec_version": "2.4"}


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
    cls = type(request)
    stock = _STOCK.get(cls)
    if stock is None:
        stock = _STOCK[cls] = _is_stock(cls)
    if stock:
        # treadle's own request: its fields read directly (compiled, a struct read each, where
        # an attribute of a request typed as the public class is looked up by name).
        core: RequestCore = request
        raw_path = core.path
        uri = core.uri
        method = core.method
        version = core.clientproto
        fields: Headers = core.requestHeaders
        scope = _connection_scope(core)
        # The slot behind the prepath property, which would make a list of the empty
        # tuple standing for it until it is read.
        consumed: Any = request._prepath
        # The core's path is its target itself when the target has no query: no search.
        queried = uri is not raw_path
    else:
        raw_path = request.path
        uri = request.uri
        method = request.method
        version = request.clientproto
        fields = request.requestHeaders
        scope = _TEMPLATE.copy()
        scope["scheme"], scope["client"], scope["server"] = _parts_of(request)
        consumed = request.prepath
        queried = True
    if consumed or _PERCENT in raw_path:
        scope["root_path"], scope["path"] = _paths(request.prepath, request.postpath)
        scope["raw_path"] = raw_path
    elif raw_path != b"/":  # (the template's paths are the root's)
        # At the root, nothing consumed and nothing to decode: the path is the request's.
        scope["path"] = raw_path.decode("utf-8", "replace")
        scope["raw_path"] = raw_path
    if queried and _QUESTION in uri:
        scope["query_string"] = uri[uri.find(b"?") + 1 :]
    if method != b"GET":
        scope["method"] = _METHODS.get(method) or method.decode("latin-1")
    if version != b"HTTP/1.1":
        scope["http_version"] = (
            _VERSIONS.get(version) or version.decode("latin-1").partition("/")[2]
        )
    scope["asgi"] = _ASGI.copy()  # (a copy of a table, where a literal inserts each entry)
    scope["headers"] = fields._pairs()
    scope["state"] = state.copy()
    # Response trailers (``http.response.trailers``: see treadle.web._asgi_http).
    scope["extensions"] = {"http.response.trailers": {}}
    return scope


def _connection_scope(request: RequestCore) -> dict[str, Any]:
    """A copy of the scope ``request``'s connection starts from: ``_TEMPLATE`` with its
    ``scheme``, ``client`` and ``server``, computed once per connection and kept on its
    channel, unless a proxy (``proxyHeaders``) or ``setHost`` changed them for this request."""
    rare = request._rare
    if request._forced_secure or (
        rare is not None
        and (
            rare.forwarded_client is not None
            or rare.forwarded_secure is not None
            or rare.forced_host is not None
        )
    ):
        scope = _TEMPLATE.copy()
        scope["scheme"], scope["client"], scope["server"] = _parts_of(request)
        return scope
    wire = request._wire
    kept: dict[str, Any] | None = getattr(wire, _KEPT, None)
    if kept is None:
        kept = _TEMPLATE.copy()
        kept["scheme"], kept["client"], kept["server"] = _parts_of(request)
        # A wire with no room for it (slots) gets them computed each time.
        with contextlib.suppress(AttributeError):
            setattr(wire, _KEPT, kept)
    return kept.copy()


def _is_stock(cls: type) -> bool:
    """Whether ``cls`` is treadle's request, answering the connection's questions as its own
    Request does, with the paths of its resource layer's (:class:`treadle.web.server.Request`)."""
    from treadle.web._request import Request as Stock
    from treadle.web.server import Request as Traversed

    return (
        issubclass(cls, RequestCore)
        and getattr(cls, "prepath", None) is Traversed.prepath
        and getattr(cls, "_prepath", None) is vars(Traversed)["_prepath"]
    ) and all(
        getattr(cls, name, None) is getattr(Stock, name)
        for name in ("isSecure", "getHost", "getClientAddress")
    )


def _parts_of(request: Any) -> Parts:
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
    length_value = b""  # the last Content-Length value
    lengths = 0  # how many Content-Length values
    for field in headers:
        if type(field) is tuple and len(field) == 2:
            # The usual pair (Starlette's): indexed, where unpacking an object of unknown
            # type iterates over it.
            name = field[0]
            value = field[1]
        else:
            name, value = field
        lowered = _NAMES.get(name)
        if lowered is None:
            lowered = _check_name(name)
        if type(value) is not bytes:
            raise _bad_value(lowered, value)
        if value not in _CLEAN:
            if _CR in value or _LF in value or _NUL in value:
                raise _bad_value(lowered, value)
            if len(_CLEAN) < _VALUES_KEPT:
                _CLEAN.add(value)
        if lowered:  # else a field of the connection, dropped
            values = raw.get(lowered)
            if values is None:
                raw[lowered] = [value]
            else:
                values.append(value)
            if lowered == b"content-length":
                length_value = value
                lengths += 1
    if not lengths:
        return raw, None
    if lengths == 1:
        length = _LENGTHS.get(length_value)
        if length is not None:
            return raw, length
        if length_value.isdigit():
            length = int(length_value)
            if len(_LENGTHS) < _NAMES_KEPT:
                _LENGTHS[length_value] = length
            return raw, length
    return raw, _content_length(raw[b"content-length"])


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
