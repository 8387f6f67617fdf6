"""``HTTPClient``: Twisted's old line-based HTTP/1.0 client protocol (deprecated there too).

Kept so that programs written against it port; new code uses
:class:`treadle.web.client.Agent`. It sends a request line and headers the caller writes one
at a time, then reads the response: the status line, the header lines (a line starting with
a space or tab continues the one before), and the body, either ``Content-Length`` bytes or
everything up to the connection's end. It speaks neither chunked coding nor keep-alive.
"""

from __future__ import annotations

import io
from typing import Any

from treadle.protocols.basic import LineReceiver

__all__ = ["HTTPClient"]


def _one_line(component: bytes) -> bytes:
    """``component`` with every line break (CR, LF or CRLF) turned into one space."""
    return b" ".join(component.splitlines())


class HTTPClient(LineReceiver):
    """A client for one HTTP/1.0 request and its response, as Twisted's ``http.HTTPClient``.

    Write the request with :meth:`sendCommand`, :meth:`sendHeader` and :meth:`endHeaders`
    (then any body through ``transport.write``), usually from ``connectionMade``. Override
    the ``handle*`` methods to receive the response.

    Attributes:
        length: Body bytes still expected (from ``Content-Length``), or None when the body
            runs to the end of the connection.
        firstLine: True until the status line has been read.
    """

    length: int | None = None
    firstLine: bool = True
    _header: bytes = b""
    # The body read so far; None before the headers end and after it was handed over.
    _body: io.BytesIO | None = None

    # -- sending --------------------------------------------------------------------------

    def sendCommand(self, command: bytes, path: bytes) -> None:
        """Write the request line: ``command path HTTP/1.0``."""
        self.transport.writeSequence([command, b" ", path, b" HTTP/1.0\r\n"])

    def sendHeader(self, name: bytes, value: Any) -> None:
        """Write one header line; line breaks in ``name`` or ``value`` become spaces.

        Args:
            name: The header's name.
            value: Its value: bytes, or anything else, written as its ``str`` in ASCII.
        """
        if not isinstance(value, bytes):
            value = str(value).encode("ascii")
        self.transport.writeSequence([_one_line(name), b": ", _one_line(value), b"\r\n"])

    def endHeaders(self) -> None:
        """End the request's head (write the empty line)."""
        self.transport.write(b"\r\n")

    # -- receiving ------------------------------------------------------------------------

    def lineReceived(self, line: bytes) -> None:
        """Read the status line, then header lines, until the empty line ends the head."""
        if self.firstLine:
            self.firstLine = False
            parts = line.split(None, 2)
            version, status = parts[0], parts[1]
            message = parts[2] if len(parts) > 2 else b""
            self.handleStatus(version, status, message)
            return
        if not line:
            if self._header:
                self.extractHeader(self._header)
            self._body = io.BytesIO()
            self.handleEndHeaders()
            self.setRawMode()
            return
        if line[:1] in (b" ", b"\t"):
            # A folded line continues the header before it (kept as sent, RFC 9112 §5.2).
            self._header += line
        else:
            if self._header:
                self.extractHeader(self._header)
            self._header = line

    def extractHeader(self, header: bytes) -> None:
        """Split a whole header line into name and value and pass them to :meth:`handleHeader`.

        A ``Content-Length`` header also sets :attr:`length`.
        """
        key, value = header.split(b":", 1)
        value = value.lstrip()
        self.handleHeader(key, value)
        if key.lower() == b"content-length":
            self.length = int(value)

    def rawDataReceived(self, data: bytes) -> None:
        """Body bytes: pass them on, and end the response once ``length`` bytes came."""
        rest = b""
        if self.length is not None:
            data, rest = data[: self.length], data[self.length :]
            self.length -= len(data)
        self.handleResponsePart(data)
        if self.length == 0:
            self.handleResponseEnd()
            self.setLineMode(rest)

    def connectionLost(self, reason: Any = None) -> None:
        """The connection ended: whatever body arrived is the response."""
        self.handleResponseEnd()

    def handleResponseEnd(self) -> None:
        """The response is complete: hand its body to :meth:`handleResponse` (once)."""
        body, self._body = self._body, None
        if body is not None:
            self.handleResponse(body.getvalue())

    def handleResponsePart(self, data: bytes) -> None:
        """Keep a piece of the body (override to stream it instead)."""
        if self._body is not None:
            self._body.write(data)

    # -- to override ----------------------------------------------------------------------

    def handleStatus(self, version: bytes, status: bytes, message: bytes) -> None:
        """The status line arrived, e.g. ``(b"HTTP/1.0", b"200", b"OK")``."""

    def handleHeader(self, key: bytes, val: bytes) -> None:
        """A header of the response arrived (once per header line)."""

    def handleEndHeaders(self) -> None:
        """All the response's headers arrived."""

    def handleResponse(self, response: bytes) -> None:
        """The whole response body arrived."""
