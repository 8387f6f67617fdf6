"""The rules of :pep:`3333` that need no thread: the environ, ``wsgi.errors`` and the checks
of ``start_response``. :mod:`treadle.web.wsgi` runs applications with them.

Native strings are Latin-1 "bytes as str" (PEP 3333); where Twisted's checks and messages
differ from the PEP, a program sees Twisted's (a sequence that is not a list is accepted
with a :class:`RuntimeWarning`), and treadle adds the checks that keep a response's head
well-formed (Latin-1, no line breaks, no hop-by-hop fields).
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterable, Sequence
from typing import IO, TYPE_CHECKING, Any, Final

from treadle.logger import Logger

if TYPE_CHECKING:
    from treadle.web.server import Request

__all__ = ["ErrorStream", "check_headers", "environ_of", "latin1"]

# RFC 9110 §7.6.1: hop-by-hop fields are the connection's business; PEP 3333 forbids them
# to applications.
_HOP_BY_HOP: Final = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"te",
        b"trailer",
        b"trailers",
        b"transfer-encoding",
        b"upgrade",
    }
)
# Fields the server always sends itself; an application's are dropped, as in Twisted.
_SERVER_OWN: Final = frozenset({b"server", b"date"})
_TOKEN: Final = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_BAD_VALUE: Final = re.compile(rb"[\x00\r\n]")


# wsgi.errors events: namespace "treadle.error", so Python's logging files them with the
# container's other errors.
_errors_log = Logger(namespace="treadle.error")


class ErrorStream:
    """``wsgi.errors``: text written here becomes error events of the log.

    The complete lines one ``write`` (or ``writelines``) holds go out as one error event,
    shaped as Twisted's (``system="wsgi"``, ``isError=True``, ``message=(text,)``), which
    Python's logging sees as a ``treadle.error`` record. An unterminated rest waits for the
    next write or for ``flush`` (Twisted logs every write as it comes, so ``print()`` to the
    stream would make one event per argument).
    """

    def __init__(self, request: Request) -> None:
        self._where = f"{latin1(request.method)} {latin1(request.uri)}"
        self._partial = ""

    def write(self, text: str) -> None:
        """Log complete lines of ``text``; keep the unterminated rest for later.

        Raises:
            TypeError: ``text`` is not ``str`` (PEP 3333's error stream is a text stream).
        """
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {text!r} ({type(text).__name__})")
        text = self._partial + text
        complete, newline, self._partial = text.rpartition("\n")
        if newline:
            self._emit(complete, newline)

    def writelines(self, lines: Iterable[str]) -> None:
        """Write the items of ``lines``, joined (one event, as Twisted's)."""
        self.write("".join(lines))

    def flush(self) -> None:
        """Log whatever was written without a final newline."""
        if self._partial:
            rest, self._partial = self._partial, ""
            self._emit(rest, "")

    def _emit(self, text: str, end: str) -> None:
        _errors_log.error(
            "WSGI application ({where}): {text}",
            where=self._where,
            text=text,
            system="wsgi",
            isError=True,
            message=(text + end,),
        )


def latin1(value: bytes | str) -> str:
    """Return ``value`` as PEP 3333's native string: bytes decoded as Latin-1.

    A ``str`` (a program driving a request by hand may set one) is returned as it is once
    it is known to be Latin-1, as Twisted's.

    Raises:
        UnicodeEncodeError: A ``str`` with characters beyond Latin-1.
    """
    if isinstance(value, str):
        value.encode("latin-1")
        return value
    return value.decode("latin-1")


def environ_of(request: Request, errors: ErrorStream) -> dict[str, Any]:
    """Build the PEP 3333 environ of ``request`` (on the loop: requests are not thread-safe)."""
    prepath, postpath = request.prepath, request.postpath
    script = b"/" + b"/".join(prepath) if prepath else b""
    path_info = b"/" + b"/".join(postpath) if postpath else b""
    if script.endswith(b"/"):
        # Mounted at an empty segment: SCRIPT_NAME may not end in "/" (it would be "/" for
        # a root mount, which PEP 3333 spells "" with PATH_INFO "/"). Twisted passes "/"
        # and "", which wsgiref's validator refuses and frameworks turn into "//" links.
        script, path_info = script[:-1], b"/" + path_info
    uri = request.uri
    query = uri.find(b"?")
    headers = request.requestHeaders
    content: IO[bytes] = request.content
    content.seek(0, 2)
    size = content.tell()
    content.seek(0)
    content_type = headers.getRawHeaders(b"content-type")
    length = headers.getRawHeaders(b"content-length")
    secure = request.isSecure()
    host = request.getHost()
    client = request.getClientAddress()
    environ: dict[str, Any] = {
        "REQUEST_METHOD": latin1(request.method),
        "SCRIPT_NAME": latin1(script),
        "PATH_INFO": latin1(path_info),
        "QUERY_STRING": latin1(uri[query + 1 :]) if query >= 0 else "",
        "CONTENT_TYPE": latin1(content_type[0]) if content_type else "",
        # The request's own field; a chunked body has none, so its size stands in.
        "CONTENT_LENGTH": latin1(length[0]) if length else str(size) if size else "",
        "SERVER_NAME": latin1(request.getRequestHostname()),
        "SERVER_PORT": str(getattr(host, "port", None) or (443 if secure else 80)),
        "SERVER_PROTOCOL": latin1(request.clientproto),
        "REMOTE_ADDR": getattr(client, "host", ""),
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "https" if secure else "http",
        "wsgi.input": content,
        "wsgi.errors": errors,
        "wsgi.multithread": True,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }
    port = getattr(client, "port", None)
    if port is not None:
        environ["REMOTE_PORT"] = str(port)
    for name, values in headers.getAllRawHeaders():
        lowered = name.lower()
        if lowered in (b"content-type", b"content-length") or b"_" in name:
            continue
        # "," as Twisted (and gunicorn); cookies with "; " (RFC 6265 §5.4), since a comma
        # would run two cookies into one value.
        separator = b"; " if lowered == b"cookie" else b","
        key = "HTTP_" + latin1(name).upper().replace("-", "_")
        environ[key] = latin1(separator.join(values))
    return environ


def check_headers(
    status: object, headers: object
) -> tuple[int, bytes, list[tuple[bytes, bytes]], int | None]:
    """Validate what the application gave ``start_response``; return it encoded.

    The type checks and their messages are Twisted's: a sequence that is not a list (or a
    header that is not a tuple) is accepted with a :class:`RuntimeWarning`. ``Server`` and
    ``Date`` are left out: the server sends its own (as Twisted's).

    Returns:
        ``(code, reason, headers, declared Content-Length or None)``.
    """
    if not isinstance(status, str):
        raise TypeError(f"status must be str, not {status!r} ({type(status).__name__})")
    code_text, _, reason = status.partition(" ")
    if len(code_text) != 3 or not code_text.isdigit() or int(code_text) < 100:
        raise ValueError(f"status must be a three-digit code, a space and a reason: {status!r}")
    try:
        reason_bytes = reason.encode("latin-1")
    except UnicodeEncodeError:
        raise ValueError(f"status is not Latin-1: {status!r}") from None
    if _BAD_VALUE.search(reason_bytes):
        raise ValueError(f"status contains a line break: {status!r}")
    encoded: list[tuple[bytes, bytes]] = []
    declared: int | None = None
    for header in sequence_of(headers, list, "headers", "a list"):
        item = sequence_of(header, tuple, "header", "a (str, str) tuple")
        if len(item) != 2:
            raise TypeError(f"header must be a (str, str) tuple, not {item!r}")
        name, value = item
        if not isinstance(name, str) or not isinstance(value, str):
            raise TypeError(f"header must be (str, str) tuple, not {item!r}")
        try:
            name_bytes, value_bytes = name.encode("latin-1"), value.encode("latin-1")
        except UnicodeEncodeError:
            raise ValueError(f"header is not Latin-1: {item!r}") from None
        if not _TOKEN.fullmatch(name_bytes):
            raise ValueError(f"invalid header name: {name!r}")
        if _BAD_VALUE.search(value_bytes):
            raise ValueError(f"header value contains a line break or NUL: {item!r}")
        lowered = name_bytes.lower()
        if lowered in _HOP_BY_HOP:
            raise ValueError(f"hop-by-hop header {name!r} is the server's to send (PEP 3333)")
        if lowered == b"content-length":
            if not value_bytes.strip().isdigit():
                raise ValueError(f"invalid Content-Length: {value!r}")
            declared = int(value_bytes)
        elif lowered in _SERVER_OWN:
            continue
        encoded.append((name_bytes, value_bytes))
    return int(code_text), reason_bytes, encoded, declared


def sequence_of(value: object, wanted: type, what: str, described: str) -> Sequence[Any]:
    """Return ``value`` if of type ``wanted``, or any sequence with a warning (as Twisted).

    Raises:
        TypeError: ``value`` is not even a sequence.
    """
    if isinstance(value, wanted) and isinstance(value, Sequence):
        return value
    found = f"{value!r} ({type(value).__name__})"
    if not isinstance(value, Sequence):
        raise TypeError(f"{what} must be {described}, not {found}")
    # stacklevel 4: warn <- sequence_of <- check_headers <- start_response <- application.
    warnings.warn(f"{what} should be {described}, not {found}", RuntimeWarning, stacklevel=4)
    return value
