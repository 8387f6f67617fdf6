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

The reactor. The pooled client serves treadle's reactor (the default) and any reactor running
on an asyncio loop. Given any other reactor — a ``MemoryReactor`` in a test, say — the proxies
do exactly what Twisted's do: :class:`ReverseProxyResource`, :class:`ProxyRequest` and
:class:`ReverseProxyRequest` hand a :class:`ProxyClientFactory` to its ``connectTCP``, and the
:class:`ProxyClient` it builds speaks HTTP/1.0 over that connection. So tests written for
Twisted's proxies, which check what was asked of the reactor, pass unchanged.

The forward proxy, as Twisted's::

    factory = http.HTTPFactory()
    factory.protocol = proxy.Proxy
    reactor.listenTCP(8080, factory)

Each request of a :class:`Proxy` channel is a :class:`ProxyRequest`. It splits the absolute URI
into host, port and the origin-form target, makes a :class:`ProxyClientFactory` (from
``protocols``, by scheme) and its :class:`ProxyClient`, and sends the request through the same
pooled client as the reverse proxy. :class:`ReverseProxy` is the channel whose requests
(:class:`ReverseProxyRequest`) all go to one server, named by ``request.factory``'s ``host`` and
``port`` (the channel's factory unless set on the request), as in Twisted. The response comes back
through the client's Twisted callbacks (``handleStatus``, ``handleHeader``, ``handleEndHeaders``,
``handleResponsePart``, ``handleResponseEnd``), so subclasses that rewrite headers or bodies there
work unchanged; a connection that cannot be made goes to
``ProxyClientFactory.clientConnectionFailed`` (Twisted's ``501 Gateway error``). Differences from
Twisted, on purpose: the origin is spoken to in HTTP/1.1 with pooled keep-alive connections
(Twisted: one HTTP/1.0 connection per request with ``Connection: close``), hop-by-hop fields are
dropped both ways, the response body streams with backpressure; an upstream that answers garbage or
closes early gets ``502``, one that says nothing within :attr:`ProxyRequest.timeout` seconds
``504``; and a request the proxy cannot serve is answered instead of dropping the connection with
an unhandled error as Twisted does: ``CONNECT`` and schemes other than those in ``ports``
(``https``) get ``501``, an origin-form target (``GET /x``) gets ``400``. IPv6 literals and user
information in the URI are understood (Twisted splits the authority at its first ``:``).
"""

from __future__ import annotations

import asyncio
import logging
from typing import IO, TYPE_CHECKING, Any, ClassVar
from urllib.parse import quote, urlsplit

from treadle.web import http
from treadle.web._client import (
    HTTPConnectionPool,
    UpstreamConnectError,
    UpstreamError,
    UpstreamResponse,
)
from treadle.web._proxy_client import ProxyClient, ProxyClientFactory
from treadle.web._proxy_headers import (
    DEFAULT_TIMEOUT,
    HOP_BY_HOP,
    forwarded_request_headers,
    strip_hop_by_hop,
)
from treadle.web._proxy_relay import ForwardingRequest, cancel_task, uses_pool
from treadle.web.http_headers import Headers
from treadle.web.resource import Resource, error_page
from treadle.web.server import NOT_DONE_YET

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
    "ReverseProxy",
    "ReverseProxyRequest",
    "ReverseProxyResource",
    "UpstreamError",
    "forwarded_request_headers",
    "strip_hop_by_hop",
]

error_log = logging.getLogger("treadle.error")


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
        reactor: None (treadle's) or a reactor on an asyncio loop: upstream connections
            come from ``pool``. Any other reactor is asked to ``connectTCP`` with a
            :attr:`proxyClientFactoryClass`, as Twisted does (see the module docstring).
        pool: The :class:`HTTPConnectionPool` to take upstream connections from. By default
            each resource made by the constructor gets its own, shared by the children
            :meth:`getChild` makes; pass one to share it between several proxies.
        timeout: Seconds to wait for the response head, and then between two body pieces
            (see :data:`DEFAULT_TIMEOUT`).
        preserve_host: Send the client's ``Host`` upstream instead of ``host[:port]``.

    Attributes:
        host, port, path, reactor, pool, timeout, preserve_host: As given.
        proxyClientFactoryClass: The factory made for a reactor that is not treadle's.
    """

    proxyClientFactoryClass: Any = ProxyClientFactory

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
            closing the upstream connection, if the client leaves. With a reactor that is
            not treadle's, ``NOT_DONE_YET`` once the reactor was asked to connect.
        """
        if uses_pool(self.reactor):
            return self._relay(request)
        return self._connect(request)

    def _connect(self, request: Request) -> object:
        """Twisted's way: a :attr:`proxyClientFactoryClass` for the reactor's ``connectTCP``."""
        if not self.preserve_host:
            request.requestHeaders.setRawHeaders(b"host", [self._upstream_host()])
        content = request.content
        content.seek(0, 0)
        factory = self.proxyClientFactoryClass(
            request.method,
            self._target(request),
            request.clientproto,
            request.getAllHeaders(),
            content.read(),
            request,
        )
        self.reactor.connectTCP(self.host, self.port, factory)
        return NOT_DONE_YET

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
            request.notifyFinish().addErrback(cancel_task, task)
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


def _error(request: Request, code: int, brief: str, detail: str) -> bytes:
    request.setResponseCode(code)
    request.responseHeaders = Headers()
    request.setHeader(b"content-type", b"text/html; charset=utf-8")
    return error_page(code, brief, detail)


class ProxyRequest(ForwardingRequest):
    """A request to a forward proxy: ``GET http://host[:port]/path HTTP/1.1`` (Twisted's API).

    Args:
        channel: The :class:`Proxy` channel.
        queued: Accepted for Twisted compatibility.
        reactor: None (treadle's) or a reactor on an asyncio loop: the origin is reached
            through the pooled client. Any other reactor is asked to ``connectTCP``, as in
            Twisted.

    Attributes:
        protocols: Client factory class by URI scheme.
        ports: Default port by URI scheme; a scheme missing here is answered ``501``.
        reactor: As given.
        pool: The :class:`HTTPConnectionPool` origin connections come from (None: one pool
            shared by every proxy request on the loop).
        timeout: Seconds to wait for the origin's response head, then between two pieces of
            its body (``504`` when nothing came yet).
    """

    protocols: ClassVar[dict[bytes, Any]] = {b"http": ProxyClientFactory}
    ports: ClassVar[dict[bytes, int]] = {b"http": 80}

    def process(self) -> None:
        """Forward the request to the origin its URI names; the answer comes asynchronously."""
        target = self._origin()
        if target is None:
            return
        scheme, host, port, rest = target
        headers = self.getAllHeaders().copy()
        if b"host" not in headers:
            authority = host if port == self.ports[scheme] else f"{host}:{port}"
            headers[b"host"] = authority.encode("idna")
        self.content.seek(0, 0)
        data = self.content.read()
        factory = self.protocols[scheme](self.method, rest, self.clientproto, headers, data, self)
        self.forward(factory, host, port)

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


class ReverseProxyRequest(ForwardingRequest):
    """A request a :class:`ReverseProxy` channel passes, as it is, to one server (Twisted's API).

    The server is ``self.factory.host`` and ``self.factory.port``; ``Host`` is set to that
    host, and the request's target, method, headers and body are sent on.

    Args:
        channel: The :class:`ReverseProxy` channel.
        queued: Accepted for Twisted compatibility.
        reactor: As for :class:`ProxyRequest`.

    Attributes:
        factory: What names the server (``host``, ``port``): the channel's factory unless
            set on the request.
        proxyClientFactoryClass: The client factory class to make.
    """

    proxyClientFactoryClass: Any = ProxyClientFactory
    _factory: Any = None

    @property
    def factory(self) -> Any:
        """What names the server: set on the request, else the channel's factory."""
        if self._factory is not None:
            return self._factory
        return getattr(self.channel, "factory", None)

    @factory.setter
    def factory(self, value: Any) -> None:
        self._factory = value

    def process(self) -> None:
        """Send the request to the factory's server; the answer comes asynchronously."""
        host, port = self.factory.host, self.factory.port
        self.requestHeaders.setRawHeaders(b"host", [host.encode("idna")])
        self.content.seek(0, 0)
        factory = self.proxyClientFactoryClass(
            self.method, self.uri, self.clientproto, self.getAllHeaders(), self.content.read(), self
        )
        self.forward(factory, host, port)


class Proxy(http.HTTPChannel):
    """A forward HTTP proxy: an :class:`~treadle.web.http.HTTPChannel` whose requests are
    :class:`ProxyRequest` s (Twisted's API). Serve it with a plain factory::

        factory = http.HTTPFactory()
        factory.protocol = Proxy
    """

    requestFactory = ProxyRequest


class ReverseProxy(http.HTTPChannel):
    """A reverse proxy channel: every request goes to the server its factory names (Twisted's
    API)::

        factory = http.HTTPFactory()
        factory.protocol = ReverseProxy
        factory.host, factory.port = "10.0.0.2", 8080

    A :class:`ReverseProxyResource` in a resource tree does the same for part of a site.
    """

    requestFactory = ReverseProxyRequest
