"""Proxies: a reverse proxy resource, and a forward proxy channel (Twisted's ``twisted.web.proxy``).

:class:`ReverseProxyResource` relays everything below it to another server; :class:`Proxy` is an
:class:`~treadle.web.http.HTTPChannel` that serves as a forward (browser) proxy, answering
absolute-URI requests such as ``GET http://example.com/ HTTP/1.1`` by fetching them
(see "The forward proxy" below).

Put one in a resource tree and every request that reaches it is sent to ``host:port`` with
``path`` in front of the rest of the URL, as in Twisted::

    root.putChild(b"api", ReverseProxyResource("127.0.0.1", 8081, b"/v1"))
    # GET /api/users?page=2  ->  GET /v1/users?page=2 on 127.0.0.1:8081

What is forwarded: the method, path and query, the body (``request.content``) and the headers
less the hop-by-hop ones (RFC 9110 §7.6.1: ``Connection`` and the fields it names,
``Keep-Alive``, ``Proxy-Connection``, ``TE``, ``Trailer``, ``Transfer-Encoding``, ``Upgrade``;
``Expect`` too, as the body is already here). ``Host`` becomes the upstream's ``host[:port]``
as in Twisted, unless ``preserve_host=True`` passes the client's on (for upstreams doing virtual
hosting). ``X-Forwarded-For`` gets the client's IP appended; ``X-Forwarded-Host`` (the client's
``Host``) and ``X-Forwarded-Proto`` (``http``/``https``) are set, replacing any the client
sent, since they describe the hop we received and a client could otherwise forge them.

The response comes back as it arrives: status and reason, headers less hop-by-hop ones, then
body pieces through ``request.write`` as the upstream sends them, never held whole. Between
pieces the proxy awaits ``request.drain()``; while its client is slow it stops taking pieces,
the upstream connection's small buffer fills and that socket stops being read, so TCP slows
the upstream down. A response already complete when its head arrives is answered with one
write. Upstream bodies framed by ``Content-Length``, chunked or ended by close all work;
``1xx`` interim responses are skipped.

Failures: an upstream that refuses, cannot be reached, closes before answering or sends
something that is not HTTP gets the client ``502 Bad Gateway``; no response head within
``timeout`` seconds gets ``504 Gateway Timeout``. Once the response has started nothing can
be said any more, so a failure mid-body drops the client's connection (logged). A client that
leaves cancels the relay and closes that upstream connection at once, so the upstream sees its
client go too (its ``notifyFinish`` errbacks).

Deviations from Twisted, on purpose: the upstream is spoken to in HTTP/1.1 with keep-alive
and pooled connections (:class:`HTTPConnectionPool`) where Twisted opens an HTTP/1.0
connection per request; errors are ``502``/``504`` pages where Twisted answers
``501 Gateway error``; the response is streamed with backpressure; a response without
``Content-Type`` is passed on without one (Twisted's server would add ``text/html``).
The upstream client lives in :mod:`treadle.web._client` (httptools' response parser on an
``asyncio.Protocol``): see its docstring for why it is not an external library.

The forward proxy, as Twisted's::

    factory = http.HTTPFactory()
    factory.protocol = proxy.Proxy
    reactor.listenTCP(8080, factory)

Each request of a :class:`Proxy` channel is a :class:`ProxyRequest`. It splits the absolute URI
into host, port and the origin-form target, makes a :class:`ProxyClientFactory` (from
``protocols``, by scheme) and its :class:`ProxyClient`, and sends the request through the same
pooled client as the reverse proxy. The response comes back through the client's Twisted
callbacks (``handleStatus``, ``handleHeader``, ``handleEndHeaders``, ``handleResponsePart``,
``handleResponseEnd``), so subclasses that rewrite headers or bodies there work unchanged;
a connection that cannot be made goes to ``ProxyClientFactory.clientConnectionFailed``
(Twisted's ``501 Gateway error``). Differences from Twisted, on purpose: the origin is spoken
to in HTTP/1.1 with pooled keep-alive connections (Twisted: one HTTP/1.0 connection per
request with ``Connection: close``), hop-by-hop fields are dropped both ways, the response body
streams with backpressure; an upstream that answers garbage or closes early gets ``502``, one
that says nothing within :attr:`ProxyRequest.timeout` seconds ``504``; and a request the proxy
cannot serve is answered instead of dropping the connection with an unhandled error as Twisted
does: ``CONNECT`` and schemes other than those in ``ports`` (``https``) get ``501``, an
origin-form target (``GET /x``) gets ``400``. IPv6 literals and user information in the URI are
understood (Twisted splits the authority at its first ``:``).
"""

from __future__ import annotations

import asyncio
import io
import logging
import weakref
from collections.abc import Iterable
from typing import IO, TYPE_CHECKING, Any, ClassVar, Final
from urllib.parse import quote, urlsplit

from treadle.internet.protocol import ClientFactory
from treadle.python.failure import Failure
from treadle.web import http
from treadle.web._client import (
    HTTPConnectionPool,
    UpstreamConnectError,
    UpstreamError,
    UpstreamResponse,
    connection_tokens,
)
from treadle.web.http_headers import Headers
from treadle.web.resource import Resource, error_page

if TYPE_CHECKING:
    from treadle.web.server import Request

__all__ = [
    "DEFAULT_TIMEOUT",
    "HOP_BY_HOP",
    "HTTPConnectionPool",
    "Proxy",
    "ProxyClient",
    "ProxyClientFactory",
    "ProxyRequest",
    "ReverseProxyResource",
    "UpstreamError",
    "forwarded_request_headers",
    "strip_hop_by_hop",
]

error_log = logging.getLogger("treadle.error")

#: Hop-by-hop fields (RFC 9110 §7.6.1): they describe one connection and are never forwarded,
#: nor are the fields a ``Connection`` header names. ``Proxy-Connection`` is the pre-standard
#: spelling some clients still send.
HOP_BY_HOP: Final = frozenset(
    (
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    )
)

#: Seconds to wait for the upstream's response head, and then between two pieces of its body
#: (nginx's proxy_read_timeout is 60 s too).
DEFAULT_TIMEOUT: Final = 60.0

# Set from the request itself; what the client sent under these names is not forwarded.
_REPLACED: Final = frozenset(
    (
        b"host",
        b"content-length",
        b"expect",
        b"x-forwarded-for",
        b"x-forwarded-host",
        b"x-forwarded-proto",
    )
)


def strip_hop_by_hop(headers: Iterable[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """Return ``headers`` without the hop-by-hop fields (RFC 9110 §7.6.1).

    Args:
        headers: ``(name, value)`` pairs; names in any case.

    Returns:
        The pairs to forward, in their original order, without ``Connection``, the fields it
        names, and the fields in :data:`HOP_BY_HOP`.
    """
    pairs = list(headers)
    named = connection_tokens([v for n, v in pairs if n.lower() == b"connection"])
    return [(n, v) for n, v in pairs if n.lower() not in HOP_BY_HOP and n.lower() not in named]


def forwarded_request_headers(
    headers: Iterable[tuple[bytes, bytes]],
    *,
    host: bytes,
    client_ip: str | None,
    proto: bytes,
    body_length: int | None,
) -> list[tuple[bytes, bytes]]:
    """Return the header fields to send upstream for a request with ``headers``.

    Args:
        headers: The client's ``(name, value)`` pairs.
        host: The ``Host`` to send upstream.
        client_ip: The client's address, appended to ``X-Forwarded-For`` (None: not known,
            e.g. a UNIX socket; nothing is appended).
        proto: ``b"http"`` or ``b"https"``: how the client reached us.
        body_length: ``Content-Length`` to send, or None for a request without a body.

    Returns:
        ``Host`` first, then the client's end-to-end fields in order, then the
        ``X-Forwarded-*`` fields and ``Content-Length``.
    """
    pairs = strip_hop_by_hop(headers)
    out: list[tuple[bytes, bytes]] = [(b"Host", host)]
    forwarded_for: list[bytes] = []
    client_host: bytes | None = None
    for name, value in pairs:
        lower = name.lower()
        if lower in _REPLACED:
            if lower == b"x-forwarded-for":
                forwarded_for.append(value)
            elif lower == b"host" and client_host is None:
                client_host = value
            continue
        out.append((name, value))
    if client_ip is not None:
        forwarded_for.append(client_ip.encode("ascii"))
    if forwarded_for:
        out.append((b"X-Forwarded-For", b", ".join(forwarded_for)))
    if client_host is not None:
        out.append((b"X-Forwarded-Host", client_host))
    out.append((b"X-Forwarded-Proto", proto))
    if body_length is not None:
        out.append((b"Content-Length", b"%d" % body_length))
    return out


def _body_length(content: IO[bytes]) -> int:
    content.seek(0, 2)
    length = content.tell()
    content.seek(0)
    return length


class ReverseProxyResource(Resource):
    """Relays every request below it to ``host:port``, with ``path`` in front (Twisted's API).

    Args:
        host: The upstream server's host name or address.
        port: Its port.
        path: The upstream path this resource stands for, without a trailing slash: with
            ``b"/foo"``, a request for ``/bar`` below this resource goes to ``/foo/bar``.
            Percent-encode it yourself where needed, as in Twisted.
        reactor: Accepted for Twisted compatibility; connections are made on the running
            asyncio loop.
        pool: The :class:`HTTPConnectionPool` to take upstream connections from. By default
            each resource made by the constructor gets its own, shared by the children
            :meth:`getChild` makes; pass one to share it between several proxies.
        timeout: Seconds to wait for the response head, and then between two body pieces
            (see :data:`DEFAULT_TIMEOUT`).
        preserve_host: Send the client's ``Host`` upstream instead of ``host[:port]``.

    Attributes:
        host, port, path, reactor, pool, timeout, preserve_host: As given.
    """

    def __init__(
        self,
        host: str,
        port: int,
        path: bytes,
        reactor: Any = None,
        *,
        pool: HTTPConnectionPool | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        preserve_host: bool = False,
    ) -> None:
        super().__init__()
        self.host = host.decode("ascii") if isinstance(host, bytes) else host
        self.port = port
        self.path = path
        self.reactor = reactor
        self.pool = pool if pool is not None else HTTPConnectionPool(reactor)
        self.timeout = timeout
        self.preserve_host = preserve_host

    def getChild(self, path: bytes, request: Request) -> ReverseProxyResource:
        """Return a proxy for ``self.path + b"/" + path``, the segment percent-encoded again.

        The server decoded the segment; it is encoded again with nothing considered safe (as
        Twisted does), so a ``/`` inside one segment stays ``%2F`` upstream.
        """
        return ReverseProxyResource(
            self.host,
            self.port,
            self.path + b"/" + quote(path, safe="").encode("ascii"),
            self.reactor,
            pool=self.pool,
            timeout=self.timeout,
            preserve_host=self.preserve_host,
        )

    def render(self, request: Request) -> Any:
        """Forward ``request`` upstream (any method); the response is relayed asynchronously.

        Returns:
            A coroutine the server runs: it answers through ``request`` and is cancelled,
            closing the upstream connection, if the client leaves.
        """
        return self._relay(request)

    # -- the relay --------------------------------------------------------------------------

    def _upstream_host(self) -> bytes:
        host = self.host
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"  # an IPv6 literal (RFC 9110 §7.2 uses the URI's authority form)
        # RFC 9110 §7.2 allows leaving out the default port; any other must be there.
        authority = host if self.port == 80 else f"{host}:{self.port}"
        return authority.encode("ascii") if authority.isascii() else authority.encode("idna")

    def _target(self, request: Request) -> bytes:
        query = urlsplit(request.uri).query
        path = self.path if self.path.startswith(b"/") else b"/" + self.path
        return path + b"?" + query if query else path

    def _head(self, request: Request, body_length: int | None) -> bytes:
        headers = request.requestHeaders
        pairs = [(name, value) for name, values in headers.getAllRawHeaders() for value in values]
        host = self._upstream_host()
        if self.preserve_host:
            host = request.getHeader(b"host") or host
        fields = forwarded_request_headers(
            pairs,
            host=host,
            client_ip=request.getClientIP(),
            proto=b"https" if request.isSecure() else b"http",
            body_length=body_length,
        )
        lines = [b"%s %s HTTP/1.1\r\n" % (request.method, self._target(request))]
        lines.extend(name + b": " + value + b"\r\n" for name, value in fields)
        lines.append(b"\r\n")
        return b"".join(lines)

    async def _relay(self, request: Request) -> bytes | None:
        # The server cancels this coroutine when the client leaves; a caller that awaits it
        # some other way might not, so the client's departure cancels it here as well.
        task = asyncio.current_task()
        if task is not None:
            request.notifyFinish().addErrback(_cancel, task)
        content = request.content
        length = _body_length(content)
        has_body = length > 0 or request.requestHeaders.hasHeader(b"content-length")
        has_body = has_body or request.requestHeaders.hasHeader(b"transfer-encoding")
        head = self._head(request, length if has_body else None)
        try:
            async with asyncio.timeout(self.timeout):
                response = await self.pool.request(
                    self.host, self.port, request.method, head, content if has_body else None
                )
        except TimeoutError:
            self._log_failure(request, f"no response within {self.timeout:g}s")
            return _error(request, 504, "Gateway Timeout", "The upstream server did not answer.")
        except UpstreamConnectError as e:
            self._log_failure(request, str(e))
            return _error(request, 502, "Bad Gateway", "The upstream server could not be reached.")
        except UpstreamError as e:
            self._log_failure(request, str(e))
            return _error(
                request, 502, "Bad Gateway", "The upstream server sent no valid response."
            )
        try:
            return await self._relay_response(request, response)
        finally:
            response.release()

    async def _relay_response(self, request: Request, response: UpstreamResponse) -> bytes | None:
        request.setResponseCode(response.code, response.phrase or None)
        out = request.responseHeaders
        for name, value in strip_hop_by_hop(response.headers):
            # The server may set defaults for these: the upstream's values replace them
            # rather than add to them (Twisted's proxy does the same).
            if name.lower() in (b"server", b"date", b"content-type"):
                out.setRawHeaders(name, [value])
            else:
                out.addRawHeader(name, value)
        # A response without a Content-Type must stay without one, not become text/html.
        request.defaultContentType = None
        if request.method == b"HEAD":
            response.release()  # before answering, so the connection is reusable at once
            # Writing nothing sends the head as is: no Content-Length is made up when the
            # upstream sent none.
            request.write(b"")
            request.finish()
            return None
        if response.complete:
            return response.take_buffered()  # the whole answer is here: one write
        timeout = self.timeout
        while True:
            try:
                async with asyncio.timeout(timeout):
                    data = await response.read()
            except (TimeoutError, UpstreamError) as e:
                reason = f"body stalled for {timeout:g}s" if isinstance(e, TimeoutError) else e
                if not request.startedWriting:
                    self._log_failure(request, str(reason))
                    if isinstance(e, TimeoutError):
                        return _error(
                            request, 504, "Gateway Timeout", "The upstream response stalled."
                        )
                    return _error(request, 502, "Bad Gateway", "The upstream response broke off.")
                # Half a response cannot become an error page: raising makes the server log
                # this and drop the client's connection, so the client sees it incomplete.
                raise UpstreamError(
                    f"upstream {self.host}:{self.port} failed mid-response: {reason}"
                ) from None
            if not data:
                return None  # the server finishes the response
            request.write(data)
            await request.drain()

    def _log_failure(self, request: Request, reason: str) -> None:
        error_log.warning(
            "proxy: %s %s to %s:%d failed: %s",
            request.method.decode("latin-1"),
            request.uri.decode("latin-1"),
            self.host,
            self.port,
            reason,
        )


def _cancel(_: object, task: asyncio.Task[Any]) -> None:
    task.cancel()


def _error(request: Request, code: int, brief: str, detail: str) -> bytes:
    request.setResponseCode(code)
    request.responseHeaders = Headers()
    request.setHeader(b"content-type", b"text/html; charset=utf-8")
    return error_page(code, brief, detail)


# -- the forward proxy ----------------------------------------------------------------------


class ProxyClient:
    """Receives one origin response for a :class:`ProxyRequest` and relays it (Twisted's API).

    Twisted's is a protocol parsing the response itself; here the pooled client parses and
    calls the same methods in the same order, so a subclass overriding them (to rewrite a
    header or the body) works unchanged: :meth:`handleStatus`, :meth:`handleHeader` for each
    end-to-end field, :meth:`handleEndHeaders`, :meth:`handleResponsePart` for each piece of
    the body, and :meth:`handleResponseEnd` once.

    Args:
        command: The request method.
        rest: The origin-form target (path and query) to ask the origin for.
        version: The client's protocol version (``b"HTTP/1.1"``); the origin is always
            spoken to in HTTP/1.1.
        headers: The request's fields, ``{lowercased name: value}``; ``Proxy-Connection``
            and ``Keep-Alive`` are removed, and the other hop-by-hop fields are not sent.
        data: The request body.
        father: The :class:`ProxyRequest` to answer.

    Attributes:
        father, command, rest, headers, data: As given.
    """

    _finished = False

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
        headers.pop(b"proxy-connection", None)
        headers.pop(b"keep-alive", None)
        self.headers = headers
        self.data = data

    def handleStatus(self, version: bytes, code: bytes, message: bytes) -> None:
        """Pass the origin's status on (``code`` as digits, e.g. ``b"200"``)."""
        self.father.setResponseCode(int(code), message)

    def handleHeader(self, key: bytes, value: bytes) -> None:
        """Pass one response field on; ``Server``, ``Date`` and ``Content-Type`` replace ours."""
        if key.lower() in (b"server", b"date", b"content-type"):
            self.father.responseHeaders.setRawHeaders(key, [value])
        else:
            self.father.responseHeaders.addRawHeader(key, value)

    def handleEndHeaders(self) -> None:
        """Called after the last :meth:`handleHeader`; does nothing here."""

    def handleResponsePart(self, buffer: bytes) -> None:
        """Pass a piece of the response body on."""
        self.father.write(buffer)

    def handleResponseEnd(self) -> None:
        """Finish the client's response (once, however often it is called)."""
        if not self._finished:
            self._finished = True
            self.father.finish()

    def request_head(self) -> bytes:
        """Return the HTTP/1.1 request head to send to the origin (treadle's)."""
        pairs = strip_hop_by_hop(self.headers.items())
        fields = [(n, v) for n, v in pairs if n.lower() not in (b"content-length", b"expect")]
        if self.data or self._had_body():
            fields.append((b"content-length", b"%d" % len(self.data)))
        lines = [b"%s %s HTTP/1.1\r\n" % (self.command, self.rest)]
        lines.extend(name + b": " + value + b"\r\n" for name, value in fields)
        lines.append(b"\r\n")
        return b"".join(lines)

    def _had_body(self) -> bool:
        names = {name.lower() for name in self.headers}
        return b"content-length" in names or b"transfer-encoding" in names


class ProxyClientFactory(ClientFactory):
    """Makes the :class:`ProxyClient` of one proxied request (Twisted's API).

    Args:
        command, rest, version, headers, data, father: Handed to :attr:`protocol`.

    Attributes:
        protocol: The :class:`ProxyClient` class to make.
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

    def clientConnectionFailed(self, connector: object, reason: Failure) -> None:
        """Answer ``501 Gateway error`` (Twisted's response when the origin cannot be reached)."""
        self.father.setResponseCode(501, b"Gateway error")
        self.father.responseHeaders.addRawHeader(b"Content-Type", b"text/html")
        self.father.write(b"<H1>Could not connect</H1>")
        self.father.finish()


# One pool per event loop: connections are bound to the loop that made them.
_pools: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, HTTPConnectionPool] = (
    weakref.WeakKeyDictionary()
)


def _shared_pool() -> HTTPConnectionPool:
    loop = asyncio.get_running_loop()
    pool = _pools.get(loop)
    if pool is None:
        pool = _pools[loop] = HTTPConnectionPool()
    return pool


class ProxyRequest(http.Request):
    """A request to a forward proxy: ``GET http://host[:port]/path HTTP/1.1`` (Twisted's API).

    Args:
        channel: The :class:`Proxy` channel.
        queued: Accepted for Twisted compatibility.
        reactor: Accepted for Twisted compatibility; the origin is reached on the running
            asyncio loop.

    Attributes:
        protocols: Client factory class by URI scheme.
        ports: Default port by URI scheme; a scheme missing here is answered ``501``.
        pool: The :class:`HTTPConnectionPool` origin connections come from (None: one pool
            shared by every proxy request on the loop).
        timeout: Seconds to wait for the origin's response head, then between two pieces of
            its body (``504`` when nothing came yet).
    """

    protocols: ClassVar[dict[bytes, Any]] = {b"http": ProxyClientFactory}
    ports: ClassVar[dict[bytes, int]] = {b"http": 80}
    pool: HTTPConnectionPool | None = None
    timeout: float = DEFAULT_TIMEOUT
    # What the origin sent is relayed as it is: no made-up text/html.
    defaultContentType = None

    def __init__(self, channel: Any, queued: object = None, reactor: Any = None) -> None:
        super().__init__(channel, queued)
        self.reactor = reactor

    def process(self) -> None:
        """Forward the request to the origin its URI names; the answer comes asynchronously."""
        target = self._origin()
        if target is None:
            return
        scheme, host, port, rest = target
        headers = self.getAllHeaders().copy()
        if b"host" not in headers:
            headers[b"host"] = host.encode("idna")
        self.content.seek(0, 0)
        data = self.content.read()
        factory = self.protocols[scheme](self.method, rest, self.clientproto, headers, data, self)
        task = asyncio.get_running_loop().create_task(self._forward(factory, host, port))
        self._relay_task = task  # keep a reference: the loop holds tasks weakly
        self.notifyFinish().addErrback(_cancel, task)

    def _origin(self) -> tuple[bytes, str, int, bytes] | None:
        """Return ``(scheme, host, port, target)`` for the URI, or answer the request and None."""
        if self.method == b"CONNECT":
            self._refuse(501, "Not Implemented", "This proxy does not make tunnels (CONNECT).")
            return None
        parts = urlsplit(self.uri)
        if not parts.scheme or not parts.hostname:
            self._refuse(400, "Bad Request", "A proxy request needs an absolute URI.")
            return None
        scheme = parts.scheme.lower()
        if scheme not in self.ports or scheme not in self.protocols:
            detail = f"This proxy does not fetch {scheme.decode('ascii', 'replace')} URIs."
            self._refuse(501, "Not Implemented", detail)
            return None
        try:
            port = parts.port or self.ports[scheme]
        except ValueError:
            self._refuse(400, "Bad Request", "The URI's port is not valid.")
            return None
        rest = parts.path or b"/"
        if parts.query:
            rest += b"?" + parts.query
        return scheme, parts.hostname.decode("ascii", "replace"), port, rest

    def _refuse(self, code: int, brief: str, detail: str) -> None:
        self.setResponseCode(code)
        self.setHeader(b"content-type", b"text/html; charset=utf-8")
        self.write(error_page(code, brief, detail))
        self.finish()

    async def _forward(self, factory: Any, host: str, port: int) -> None:
        client = factory.buildProtocol(None)
        pool = self.pool if self.pool is not None else _shared_pool()
        body = io.BytesIO(client.data) if client.data or client._had_body() else None
        try:
            async with asyncio.timeout(self.timeout):
                response = await pool.request(
                    host, port, client.command, client.request_head(), body
                )
        except UpstreamConnectError as e:
            self._log_failure(host, port, str(e))
            factory.clientConnectionFailed(None, Failure(e))
            return
        except (TimeoutError, UpstreamError) as e:
            reason = f"no response within {self.timeout:g}s" if isinstance(e, TimeoutError) else e
            self._log_failure(host, port, str(reason))
            if isinstance(e, TimeoutError):
                self._refuse(504, "Gateway Timeout", "The origin server did not answer.")
            else:
                self._refuse(502, "Bad Gateway", "The origin server sent no valid response.")
            return
        try:
            await self._relay_response(client, response)
        except (TimeoutError, UpstreamError) as e:
            # Half a response cannot become an error page: drop the client's connection so
            # it can tell the response is incomplete.
            self._log_failure(host, port, f"failed mid-response: {e or 'body stalled'}")
            self.loseConnection()
        except Exception:
            error_log.exception("proxy: error relaying the response to %r", self)
            self.loseConnection()
        finally:
            response.release()

    async def _relay_response(self, client: Any, response: UpstreamResponse) -> None:
        client.handleStatus(
            b"HTTP/" + response.version.encode("ascii"),
            b"%d" % response.code,
            response.phrase,
        )
        for name, value in strip_hop_by_hop(response.headers):
            client.handleHeader(name, value)
        client.handleEndHeaders()
        if self.method == b"HEAD":
            response.release()  # before answering, so the connection is reusable at once
        else:
            while True:
                async with asyncio.timeout(self.timeout):
                    data = await response.read()
                if not data:
                    break
                client.handleResponsePart(data)
                await self.drain()
        if not self.finished and not self._disconnected:
            client.handleResponseEnd()

    def _log_failure(self, host: str, port: int, reason: str) -> None:
        error_log.warning(
            "proxy: %s %s via %s:%d failed: %s",
            self.method.decode("latin-1"),
            self.uri.decode("latin-1"),
            host,
            port,
            reason,
        )


class Proxy(http.HTTPChannel):
    """A forward HTTP proxy: an :class:`~treadle.web.http.HTTPChannel` whose requests are
    :class:`ProxyRequest` s (Twisted's API). Serve it with a plain factory::

        factory = http.HTTPFactory()
        factory.protocol = Proxy
    """

    requestFactory = ProxyRequest
