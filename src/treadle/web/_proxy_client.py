"""``ProxyClient`` and ``ProxyClientFactory``: one proxied request to an origin server.

Private to :mod:`treadle.web.proxy`, which re-exports both (Twisted's names and API).

A :class:`ProxyClient` runs in one of two ways, and answers its ``father`` request through
the same methods in both:

- **As a protocol**, the way Twisted runs it: a :class:`ProxyClientFactory` given to a
  reactor's ``connectTCP``. Once connected it sends the request in HTTP/1.0 with
  ``Connection: close``, parses the response as :class:`~treadle.web.http.HTTPClient` does
  and closes the connection when the response is complete. :mod:`treadle.web.proxy` takes
  this way for a reactor that is not treadle's (a ``MemoryReactor`` in tests, say).
- **Driven by treadle's pooled client**, with treadle's reactor: the proxy sends
  :meth:`ProxyClient.request_head` over a pooled HTTP/1.1 connection and calls
  :meth:`~ProxyClient.handleStatus`, :meth:`~ProxyClient.handleHeader`,
  :meth:`~ProxyClient.handleEndHeaders`, :meth:`~ProxyClient.handleResponsePart` and
  :meth:`~ProxyClient.handleResponseEnd` with what comes back. ``transport`` stays None.

Either way, a subclass overriding those methods (to rewrite a header or the body) works
unchanged.
"""

from __future__ import annotations

from typing import Any, Final

from treadle.internet.protocol import ClientFactory
from treadle.python.failure import Failure
from treadle.web._httpclient import HTTPClient
from treadle.web._proxy_headers import HOP_BY_HOP, origin_request_headers, strip_hop_by_hop

__all__ = ["ProxyClient", "ProxyClientFactory"]

#: Response fields the server may have set a default for: the origin's value replaces it
#: instead of being added next to it (as in Twisted).
_REPLACING: Final = frozenset((b"server", b"date", b"content-type"))


class ProxyClient(HTTPClient):
    """Sends one request to an origin server and relays its response (Twisted's API).

    Args:
        command: The request method.
        rest: The origin-form target (path and query) to ask the origin for.
        version: The client's protocol version; the origin is spoken to in HTTP/1.0 as a
            protocol (Twisted's way), in HTTP/1.1 when driven by the pooled client.
        headers: The request's fields, ``{lowercase name: value}``. Changed in place, as
            in Twisted: ``Proxy-Connection``, ``Keep-Alive`` and the other hop-by-hop fields
            (RFC 9110 §7.6.1) are removed and ``Connection: close`` is set; ``Expect`` is
            removed too, and a chunked body gets a ``Content-Length``.
        data: The request body.
        father: The request to answer.

    Attributes:
        father, command, rest, headers, data: As given.
    """

    _finished = False
    # Set once the father request ended (finished, or its client left): nothing more is
    # written to it.
    _father_gone = False

    def __init__(
        self,
        command: bytes,
        rest: bytes,
        version: bytes,
        headers: dict[bytes, bytes],
        data: bytes,
        father: Any,
    ) -> None:
        self.father = father
        self.command = command
        self.rest = rest
        origin_request_headers(headers, len(data))
        self.headers = headers
        self.data = data

    # -- as a protocol ----------------------------------------------------------------------

    def connectionMade(self) -> None:
        """Send the request: request line, :attr:`headers`, then :attr:`data`."""
        notify = getattr(self.father, "notifyFinish", None)
        if notify is not None:
            notify().addBoth(self._father_ended)
        self.sendCommand(self.command, self.rest)
        for name, value in self.headers.items():
            self.sendHeader(name, value)
        self.endHeaders()
        self.transport.write(self.data)

    def _father_ended(self, result: object) -> None:
        self._father_gone = True
        if isinstance(result, Failure) and self.transport is not None:
            # The client left: the origin's answer is no use any more.
            self.transport.loseConnection()

    # -- the response -----------------------------------------------------------------------

    def handleStatus(self, version: bytes, code: bytes, message: bytes) -> None:
        """Pass the origin's status on (``code`` as digits, e.g. ``b"200"``)."""
        self.father.setResponseCode(int(code), message)

    def handleHeader(self, key: bytes, value: bytes) -> None:
        """Pass one response field on.

        ``Server``, ``Date`` and ``Content-Type`` replace the server's defaults; hop-by-hop
        fields (``Connection``, ``Keep-Alive``, ``Transfer-Encoding``, ...) describe the
        origin's connection, not the client's, and are not passed on.
        """
        lower = key.lower()
        if lower in HOP_BY_HOP:
            return
        if lower in _REPLACING:
            self.father.responseHeaders.setRawHeaders(key, [value])
        else:
            self.father.responseHeaders.addRawHeader(key, value)

    def handleEndHeaders(self) -> None:
        """Called after the last :meth:`handleHeader`; does nothing here."""

    def handleResponsePart(self, buffer: bytes) -> None:
        """Pass a piece of the response body on."""
        if not self._father_gone:
            self.father.write(buffer)

    def handleResponseEnd(self) -> None:
        """Finish the father request and close the origin connection (once, however often
        it is called: the end of the body and the end of the connection both call it)."""
        if self._finished:
            return
        self._finished = True
        if not self._father_gone:
            self.father.finish()
        if self.transport is not None:
            self.transport.loseConnection()

    # -- for the pooled client --------------------------------------------------------------

    def request_head(self) -> bytes:
        """Return the HTTP/1.1 request head to send to the origin (treadle's pooled way)."""
        pairs = strip_hop_by_hop(self.headers.items())
        fields = [(n, v) for n, v in pairs if n.lower() != b"content-length"]
        if self.data or self._had_body():
            fields.append((b"content-length", b"%d" % len(self.data)))
        lines = [b"%s %s HTTP/1.1\r\n" % (self.command, self.rest)]
        lines.extend(name + b": " + value + b"\r\n" for name, value in fields)
        lines.append(b"\r\n")
        return b"".join(lines)

    def _had_body(self) -> bool:
        return any(name.lower() == b"content-length" for name in self.headers)


class ProxyClientFactory(ClientFactory):
    """Makes the :class:`ProxyClient` of one proxied request (Twisted's API).

    Args:
        command, rest, version, headers, data, father: Handed to :attr:`protocol`.

    Attributes:
        protocol: The :class:`ProxyClient` class to make.
        command, rest, version, headers, data, father: As given.
    """

    protocol: Any = ProxyClient

    def __init__(
        self,
        command: bytes,
        rest: bytes,
        version: bytes,
        headers: dict[bytes, bytes],
        data: bytes,
        father: Any,
    ) -> None:
        self.father = father
        self.command = command
        self.rest = rest
        self.headers = headers
        self.data = data
        self.version = version

    def buildProtocol(self, addr: object) -> Any:
        """Return the :class:`ProxyClient` for the request."""
        return self.protocol(
            self.command, self.rest, self.version, self.headers, self.data, self.father
        )

    def clientConnectionFailed(self, connector: object, reason: Failure | None) -> None:
        """Answer ``501 Gateway error`` (Twisted's response when the origin cannot be reached)."""
        self.father.setResponseCode(501, b"Gateway error")
        self.father.responseHeaders.addRawHeader(b"Content-Type", b"text/html")
        self.father.write(b"<H1>Could not connect</H1>")
        self.father.finish()
