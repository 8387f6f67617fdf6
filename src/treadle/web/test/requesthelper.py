"""``DummyRequest`` and ``DummyChannel``: render resources in tests without a server.

``twisted.web.test.requesthelper`` ports to this module, for the test suites of applications:
build a ``DummyRequest(postpath)``, hand it to a resource's ``render`` (or to
:meth:`DummyRequest.render`), then read what was written (``written``, ``finished``,
``responseCode``, ``responseHeaders``). Nothing goes over a network and nothing waits: a
``NOT_DONE_YET`` resource is driven by the test, which calls ``write``/``finish`` through the
resource's own code and watches :meth:`DummyRequest.notifyFinish`.

As in Twisted, ``DummyRequest`` is deliberately simple: it knows no HTTP semantics (no ``HEAD``
body suppression, no default headers) and ``render`` handles bytes and ``NOT_DONE_YET`` results.
Beyond Twisted's, it answers ``isSecure()``, ``path``, ``prePathURL()``, ``URLPath()`` and
``childLink()`` (Twisted's lacks them, so resources using them could not be tested with it),
and ``render`` accepts ``str`` (UTF-8), as treadle's server does; misuse (a response code set
after writing) raises ``RuntimeError`` rather than failing an ``assert``.
"""

from __future__ import annotations

import warnings
from io import BytesIO
from typing import Any

from zope.interface import implementer

from treadle.internet.address import IPv4Address, IPv6Address
from treadle.internet.defer import Deferred
from treadle.internet.interfaces import IAddress, ISSLTransport
from treadle.internet.task import Clock
from treadle.python.failure import Failure
from treadle.python.urlpath import URLPath
from treadle.web.http_headers import Headers
from treadle.web.resource import Resource
from treadle.web.server import NOT_DONE_YET, Session, Site

__all__ = [
    "DummyChannel",
    "DummyRequest",
    "NullAddress",
    "bytesLinearWhitespaceComponents",
    "sanitizedBytes",
    "sanitizedText",
    "textLinearWhitespaceComponents",
]

_FOUND = 302

#: Header values broken by each kind of line break (``"Foo\rbar"``, ``"Foo\nbar"``,
#: ``"Foo\r\nbar"``): what a header sanitiser must not let through.
textLinearWhitespaceComponents: list[str] = ["Foo" + brk + "bar" for brk in ("\r", "\n", "\r\n")]
#: :data:`textLinearWhitespaceComponents` as bytes.
bytesLinearWhitespaceComponents: list[bytes] = [
    text.encode("ascii") for text in textLinearWhitespaceComponents
]
#: What Twisted makes of each of them (the break replaced by one space). treadle refuses
#: such values instead (``ValueError``): see "Differences from Twisted Web" in the README.
sanitizedText: str = "Foo bar"
#: :data:`sanitizedText` as bytes.
sanitizedBytes: bytes = sanitizedText.encode("ascii")


@implementer(IAddress)
class NullAddress:
    """The client address of a request that has none (``DummyRequest(client=None)``)."""


class _DummyTCP:
    """A transport that records what is written and remembers ``loseConnection``.

    Args:
        peer: The address ``getPeer`` answers (default ``192.168.1.1:12344``).

    Attributes:
        written: A ``BytesIO`` holding every byte written.
        producers: ``(producer, streaming)`` pairs registered, in order.
        disconnected: True after ``loseConnection``.
        port: The port of ``getHost`` (80).
    """

    port = 80
    disconnected = False

    def __init__(self, peer: Any = None) -> None:
        self._peer = peer if peer is not None else IPv4Address("TCP", "192.168.1.1", 12344)
        self.written = BytesIO()
        self.producers: list[tuple[Any, bool]] = []

    def getPeer(self) -> Any:
        """Return the peer address given (or the default one)."""
        return self._peer

    def getHost(self) -> IPv4Address:
        """Return ``10.0.0.1`` on :attr:`port`."""
        return IPv4Address("TCP", "10.0.0.1", self.port)

    def write(self, data: bytes) -> None:
        """Record ``data``.

        Raises:
            TypeError: ``data`` is not bytes.
        """
        if not isinstance(data, bytes):
            raise TypeError(f"Can only write bytes to a transport, not {data!r}")
        self.written.write(data)

    def writeSequence(self, iovec: Any) -> None:
        """Record each item of ``iovec``."""
        for data in iovec:
            self.write(data)

    def registerProducer(self, producer: Any, streaming: bool) -> None:
        """Record the producer."""
        self.producers.append((producer, streaming))

    def unregisterProducer(self) -> None:
        """Do nothing (the producers stay listed)."""

    def loseConnection(self) -> None:
        """Mark the transport disconnected."""
        self.disconnected = True


@implementer(ISSLTransport)
class _DummySSL(_DummyTCP):
    """As :class:`DummyChannel.TCP`, but a TLS transport: the request is secure."""

    def abortConnection(self) -> None:
        """Do nothing."""

    def getTcpKeepAlive(self) -> None:
        """Do nothing."""

    def getTcpNoDelay(self) -> None:
        """Do nothing."""

    def loseWriteConnection(self) -> None:
        """Do nothing."""

    def setTcpKeepAlive(self, enabled: bool) -> None:
        """Do nothing."""

    def setTcpNoDelay(self, enabled: bool) -> None:
        """Do nothing."""

    def getPeerCertificate(self) -> None:
        """No certificate: None."""


class DummyChannel:
    """A channel for hand-built requests: its transport records what is written.

    Args:
        peer: The client address (default ``192.168.1.1:12344``).

    Attributes:
        transport: A :class:`DummyChannel.TCP` (replace it with a ``DummyChannel.SSL`` for
            a secure channel).
        site: A :class:`~treadle.web.server.Site` of an empty resource (shared by the class,
            as in Twisted; assign your own).
        requests: The requests finished on this channel (``requestDone``), in order.
    """

    TCP = _DummyTCP
    SSL = _DummySSL

    site: Any = Site(Resource())

    def __init__(self, peer: Any = None) -> None:
        self.transport: _DummyTCP = self.TCP(peer)
        self.requests: list[Any] = []

    def requestDone(self, request: Any) -> None:
        """Record that ``request`` is done."""
        self.requests.append(request)

    def writeHeaders(self, version: bytes, code: bytes, reason: bytes, headers: Any) -> None:
        """Write a status line and headers (a list of pairs, or :class:`Headers`)."""
        if isinstance(headers, Headers):
            headers = [(k, v) for k, values in headers.getAllRawHeaders() for v in values]
        lines = [version + b" " + code + b" " + reason + b"\r\n"]
        lines.extend(name + b": " + value + b"\r\n" for name, value in headers)
        lines.append(b"\r\n")
        self.transport.writeSequence(lines)

    def getPeer(self) -> Any:
        """The transport's peer."""
        return self.transport.getPeer()

    def getHost(self) -> Any:
        """The transport's host."""
        return self.transport.getHost()

    def registerProducer(self, producer: Any, streaming: bool) -> None:
        """Register with the transport."""
        self.transport.registerProducer(producer, streaming)

    def unregisterProducer(self) -> None:
        """Unregister from the transport."""
        self.transport.unregisterProducer()

    def write(self, data: bytes) -> None:
        """Write to the transport."""
        self.transport.write(data)

    def writeSequence(self, iovec: Any) -> None:
        """Write each item to the transport."""
        self.transport.writeSequence(iovec)

    def loseConnection(self) -> None:
        """Close the transport."""
        self.transport.loseConnection()

    def endRequest(self) -> None:
        """Do nothing."""

    def isSecure(self) -> bool:
        """True when the transport is a :class:`DummyChannel.SSL`."""
        return isinstance(self.transport, self.SSL)

    def abortConnection(self) -> None:
        """Do nothing."""

    def getTcpKeepAlive(self) -> None:
        """Do nothing."""

    def getTcpNoDelay(self) -> None:
        """Do nothing."""

    def loseWriteConnection(self) -> None:
        """Do nothing."""

    def setTcpKeepAlive(self) -> None:
        """Do nothing."""

    def setTcpNoDelay(self) -> None:
        """Do nothing."""

    def getPeerCertificate(self) -> None:
        """No certificate: None."""


class DummyRequest:
    """A request for tests: records what a resource writes, without HTTP semantics.

    Args:
        postpath: The path segments still to traverse (``[b"a", b"b"]`` for ``/a/b``).
        session: The session :meth:`getSession` returns (default: a fresh one on a Clock).
        client: The client's address (:meth:`getClientAddress`); None gives a
            :class:`NullAddress`.

    Attributes:
        written: The bytes written, one item per ``write``.
        finished: How many times ``finish`` was called (0 or 1 for correct code).
        responseCode: The code given to :meth:`setResponseCode`, or None.
        responseMessage: The message given with it, or None.
        responseHeaders: The response headers (:class:`~treadle.web.http_headers.Headers`).
        requestHeaders: The request headers, for the test to fill.
        args: The request arguments (``{b"name": [b"value"]}``), for the test to fill (or
            :meth:`addArg`).
        method: ``b"GET"`` unless the test sets it.
        uri: ``b"http://dummy/"`` unless the test sets it.
        path: ``/`` and the postpath given, joined (worked out when first read).
        prepath: The segments traversed (empty at first).
        postpath: As given.
        sitepath: Empty.
        content: A ``BytesIO`` request body (empty unless the test replaces it).
        clientproto: ``b"HTTP/1.0"``.
        channel: A :class:`DummyChannel`.
        session: The session once :meth:`getSession` was called.
    """

    uri = b"http://dummy/"
    method = b"GET"
    client: Any = None

    def __init__(self, postpath: list[bytes], session: Any = None, client: Any = None) -> None:
        self.sitepath: list[bytes] = []
        self.written: list[bytes] = []
        self.finished = 0
        self.postpath = postpath
        self.prepath: list[bytes] = []
        self._path: bytes | None = None
        self._initial_postpath = postpath
        self.session: Any = None
        self.protoSession = session or Session(site=None, uid=b"0", reactor=Clock())  # type: ignore[arg-type]
        self.args: dict[bytes, list[bytes]] = {}
        self.requestHeaders = Headers()
        self.responseHeaders = Headers()
        self.responseCode: int | None = None
        self.responseMessage: bytes | None = None
        self.content = BytesIO()
        self.clientproto = b"HTTP/1.0"
        self.channel = DummyChannel()
        if client is not None:
            # Otherwise a subclass's class attribute ``client`` stays visible, as in Twisted.
            self.client = client
        self._finished_deferreds: list[Deferred[None]] | None = []
        self._server_name = b"dummy"
        self._force_ssl = False
        self.go = 0

    @property
    def path(self) -> bytes:
        """``/`` and the postpath given at construction, joined (unless set since)."""
        path = self._path
        if path is None:
            # Worked out on first use: Twisted's tests pass things other than a list of
            # segments as ``postpath`` to requests whose path nobody reads.
            path = self._path = b"/" + b"/".join(self._initial_postpath)
        return path

    @path.setter
    def path(self, value: bytes) -> None:
        self._path = value

    # -- producers ----------------------------------------------------------------------------

    def registerProducer(self, prod: Any, s: bool) -> None:
        """Call a pull producer's ``resumeProducing`` until it unregisters itself."""
        self.go = 1
        while self.go:
            prod.resumeProducing()

    def unregisterProducer(self) -> None:
        """Stop the loop of :meth:`registerProducer`."""
        self.go = 0

    # -- headers ------------------------------------------------------------------------------

    def getAllHeaders(self) -> dict[bytes, bytes]:
        """Return each request header's last value, by lower-case name."""
        return {k.lower(): v[-1] for k, v in self.requestHeaders.getAllRawHeaders()}

    def getHeader(self, name: bytes) -> bytes | None:
        """Return the first value of request header ``name`` (any case), or None."""
        values = self.requestHeaders.getRawHeaders(name.lower())
        return values[0] if values else None

    def setHeader(self, name: bytes, value: bytes) -> None:
        """Add a response header value (Twisted's double adds; it does not replace)."""
        self.responseHeaders.addRawHeader(name, value)

    def setResponseCode(self, code: int, message: bytes | None = None) -> None:
        """Record the response code.

        Raises:
            RuntimeError: Something was written already.
        """
        self._refuse_after_write("Response code")
        self.responseCode = code
        self.responseMessage = message

    def setLastModified(self, when: float) -> None:
        """Accept (and ignore) a modification time, before anything is written."""
        self._refuse_after_write("Last-Modified")

    def setETag(self, tag: bytes) -> None:
        """Accept (and ignore) an entity tag, before anything is written."""
        self._refuse_after_write("ETag")

    def _refuse_after_write(self, what: str) -> None:
        if self.written:
            raise RuntimeError(f"{what} cannot be set after data has been written")

    def redirect(self, url: bytes) -> None:
        """Set ``302 Found`` and ``Location: url``; the caller finishes the request."""
        self.setResponseCode(_FOUND)
        self.setHeader(b"location", url)

    # -- body and lifetime ------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        """Record ``data``.

        Raises:
            TypeError: ``data`` is not bytes.
        """
        if not isinstance(data, bytes):
            raise TypeError("write() only accepts bytes")
        self.written.append(data)

    def finish(self) -> None:
        """Count the finish and fire the :meth:`notifyFinish` Deferreds with None."""
        self.finished += 1
        observers, self._finished_deferreds = self._finished_deferreds, None
        for d in observers or ():
            d.callback(None)

    def notifyFinish(self) -> Deferred[None]:
        """Return a Deferred firing with None at :meth:`finish` (or failing at
        :meth:`processingFailed`); one asked for afterwards never fires, as in Twisted."""
        d: Deferred[None] = Deferred()
        if self._finished_deferreds is not None:
            self._finished_deferreds.append(d)
        return d

    def processingFailed(self, reason: Failure | BaseException) -> None:
        """Fail the :meth:`notifyFinish` Deferreds with ``reason``."""
        observers, self._finished_deferreds = self._finished_deferreds, None
        for d in observers or ():
            d.errback(reason)

    def render(self, resource: Any) -> None:
        """Render ``resource``: bytes (or ``str``, UTF-8) are written and the request finished;
        ``NOT_DONE_YET`` leaves both to the resource.

        Args:
            resource: Anything with ``render(request)``.
        """
        result = resource.render(self)
        if result is NOT_DONE_YET:
            return
        self.write(result.encode("utf-8") if isinstance(result, str) else result)
        self.finish()

    # -- arguments and session ----------------------------------------------------------------

    def addArg(self, name: bytes, value: bytes) -> None:
        """Set argument ``name`` to the single value ``value``."""
        self.args[name] = [value]

    def getSession(self, sessionInterface: Any = None) -> Any:
        """Return the session given (or made) at construction.

        Raises:
            RuntimeError: First asked for after something was written.
        """
        if self.session:
            return self.session
        if self.written:
            raise RuntimeError("Session cannot be requested after data has been written.")
        self.session = self.protoSession
        return self.session

    # -- addresses and URLs -------------------------------------------------------------------

    def getClientAddress(self) -> Any:
        """Return the client address given, or a :class:`NullAddress`."""
        return NullAddress() if self.client is None else self.client

    def getClientIP(self) -> str | None:
        """Return the client's IP address, if it has one (deprecated: use
        :meth:`getClientAddress`)."""
        warnings.warn(
            "DummyRequest.getClientIP is deprecated; use getClientAddress",
            DeprecationWarning,
            stacklevel=2,
        )
        if isinstance(self.client, IPv4Address | IPv6Address):
            return self.client.host
        return None

    def getRequestHostname(self) -> bytes:
        """Return ``b"dummy"``."""
        return self._server_name

    def getHost(self) -> IPv4Address:
        """Return ``127.0.0.1:80``."""
        return IPv4Address("TCP", "127.0.0.1", 80)

    def setHost(self, host: bytes, port: int, ssl: bool = False) -> None:
        """Say the request came for ``host``:``port`` (adds a ``Host`` header), over TLS if
        ``ssl``."""
        self._force_ssl = bool(ssl)
        default = 443 if self.isSecure() else 80
        header = host if port == default else b"%b:%d" % (host, port)
        self.requestHeaders.addRawHeader(b"host", header)

    def isSecure(self) -> bool:
        """True after ``setHost(..., ssl=True)`` or on a ``DummyChannel.SSL`` channel."""
        return self._force_ssl or self.channel.isSecure()

    def prePathURL(self) -> bytes:
        """The URL of the segments traversed: ``http://dummy/`` and :attr:`prepath`."""
        scheme = b"https" if self.isSecure() else b"http"
        return b"%s://%s/%s" % (scheme, self.getRequestHostname(), b"/".join(self.prepath))

    def URLPath(self) -> URLPath:
        """:meth:`prePathURL` as a :class:`~treadle.python.urlpath.URLPath`."""
        return URLPath.fromBytes(self.prePathURL())

    def childLink(self, name: bytes) -> bytes:
        """A link to child ``name`` relative to this request's path, as ``Request.childLink``."""
        if self.postpath:
            return name
        if self.prepath:
            return self.prepath[-1] + b"/" + name
        return name
