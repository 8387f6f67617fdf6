"""Twisted's HTTP client, ``twisted.web.client``: ``Agent``, its pool, and the agents that wrap it.

A Twisted program ports with its imports::

    from treadle.internet import reactor
    from treadle.web.client import Agent, HTTPConnectionPool, readBody

    pool = HTTPConnectionPool(reactor)
    agent = Agent(reactor, pool=pool)
    d = agent.request(b"GET", b"https://example.com/")
    d.addCallback(readBody)

``Agent.request`` returns a Deferred that fires with a ``Response`` once the response head has
arrived; the body follows through ``response.deliverBody(protocol)`` (or ``readBody``). The
wire work is :mod:`treadle.web._client`'s, the stack the reverse proxy and XML-RPC use too:
an :class:`asyncio.Protocol` per connection with httptools' (llhttp's) response parser,
keep-alive pooling and flow control both ways. TLS is the standard library's
(:mod:`treadle.internet.ssl`): ``BrowserLikePolicyForHTTPS`` verifies the server's
certificate and name against the platform's authorities, or the ``trustRoot`` given.

What the agent does as Twisted's does: ``Host`` from the URI; ``Content-Length`` when the
body producer knows its length and ``Transfer-Encoding: chunked`` otherwise; ``Connection:
close`` and a connection per request without a persistent pool (the default); a request on
a pooled connection that the server had closed is sent again once on a new one when it is
idempotent and has no body; response headers without the connection-control fields;
cancelling the request's Deferred aborts the connection (``ConnectingCancelledError`` while
connecting, ``ResponseNeverReceived([CancelledError])`` while waiting for the response).

Differences from Twisted:

- The default ``Agent`` connects with the loop's ``create_connection`` directly rather than
  through a ``HostnameEndpoint`` (same outcome: the addresses a name resolves to are tried
  in turn, ``connectTimeout`` bounds the attempt, the same errors); ``usingEndpointFactory``
  and ``ProxyAgent`` use the endpoints they are given. The TLS context of a host is made
  when a connection is opened, not for every request.
- A response that arrives before its request body was all sent is delivered at once (and
  the producer stopped), where Twisted waits for a complete response to do so.
- A response body is buffered up to 64 KiB before ``deliverBody`` is called (Twisted stops
  reading at once), so short responses release their connection to the pool right away.
- Not provided: ``HTTPClientFactory``, ``getPage``, ``downloadPage`` and
  ``WebClientContextFactory`` (removed or deprecated in Twisted), HTTPS through
  ``ProxyAgent`` (Twisted has none either).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import os
from collections.abc import Callable, Coroutine, Hashable
from typing import IO, Any

from zope.interface import implementer

from treadle.internet import task as _task
from treadle.internet.address import HostnameAddress
from treadle.internet.defer import CancelledError, Deferred, fail
from treadle.internet.protocol import Protocol
from treadle.internet.ssl import optionsForClientTLS
from treadle.python.failure import Failure
from treadle.web import _client
from treadle.web._agents import (
    BrowserLikeRedirectAgent,
    ContentDecoderAgent,
    CookieAgent,
    GzipDecoder,
    RedirectAgent,
)
from treadle.web._connecting import StandardEndpointFactory, open_endpoint
from treadle.web._iclient import IAgent, IPolicyForHTTPS
from treadle.web._newclient import (
    URI,
    Exchange,
    PotentialDataLoss,
    Request,
    RequestGenerationFailed,
    RequestNotSent,
    RequestTransmissionFailed,
    Response,
    ResponseDone,
    ResponseFailed,
    ResponseNeverReceived,
    ensure_valid_method,
    ensure_valid_uri,
    host_value,
)
from treadle.web.error import Error, SchemeNotSupported
from treadle.web.http_headers import Headers
from treadle.web.iweb import UNKNOWN_LENGTH, IBodyProducer

__all__ = [
    "URI",
    "Agent",
    "BrowserLikePolicyForHTTPS",
    "BrowserLikeRedirectAgent",
    "ContentDecoderAgent",
    "CookieAgent",
    "FileBodyProducer",
    "GzipDecoder",
    "HTTPConnectionPool",
    "HostnameCachingHTTPSPolicy",
    "PartialDownloadError",
    "PotentialDataLoss",
    "ProxyAgent",
    "RedirectAgent",
    "RequestGenerationFailed",
    "RequestNotSent",
    "RequestTransmissionFailed",
    "Response",
    "ResponseDone",
    "ResponseFailed",
    "ResponseNeverReceived",
    "readBody",
]

# RFC 9110 §9.2.2 idempotent methods Twisted retries on a fresh connection (PUT excluded,
# as there).
_RETRYABLE_METHODS = frozenset((b"GET", b"HEAD", b"OPTIONS", b"DELETE", b"TRACE"))
#: Parsed URIs an Agent keeps (forgotten all at once when full: a crawler's endless URIs
#: must not grow it, a service's few are parsed once).
_REMEMBERED_URIS = 256


class PartialDownloadError(Error):
    """The body of a response ended without its end being certain (the server closed the
    connection to end it): ``response`` holds the bytes that did arrive."""


# -- TLS policies ------------------------------------------------------------------------------


@implementer(IPolicyForHTTPS)
class BrowserLikePolicyForHTTPS:
    """Verifies HTTPS servers as browsers do: a trusted chain and the host's name.

    Args:
        trustRoot: The authorities to trust (``treadle.internet.ssl.platformTrust()`` by
            default, a ``Certificate``, or ``trustRootFromCertificates([...])``).
    """

    def __init__(self, trustRoot: Any = None) -> None:
        self._trustRoot = trustRoot

    def creatorForNetloc(self, hostname: bytes, port: int) -> Any:
        """Return the client TLS options for ``hostname`` (bytes) on ``port``.

        Raises:
            UnicodeDecodeError: ``hostname`` is not ASCII (use its IDNA form).
        """
        return optionsForClientTLS(hostname.decode("ascii"), trustRoot=self._trustRoot)


@implementer(IPolicyForHTTPS)
class HostnameCachingHTTPSPolicy:
    """Wraps a policy and keeps the TLS options of the last ``cacheSize`` host names.

    Args:
        policyforHTTPS: The policy whose options are kept.
        cacheSize: How many host names to remember (least recently used dropped first).
    """

    def __init__(self, policyforHTTPS: Any, cacheSize: int = 20) -> None:
        self._policyForHTTPS = policyforHTTPS
        self._cache: collections.OrderedDict[str, Any] = collections.OrderedDict()
        self._cacheSize = cacheSize

    def creatorForNetloc(self, hostname: bytes, port: int) -> Any:
        """Return the (cached) TLS options for ``hostname``."""
        host = hostname.decode("ascii")
        creator = self._cache.pop(host, None)
        if creator is None:
            creator = self._policyForHTTPS.creatorForNetloc(hostname, port)
        self._cache[host] = creator
        if len(self._cache) > self._cacheSize:
            self._cache.popitem(last=False)
        return creator


# -- the pool ----------------------------------------------------------------------------------


class HTTPConnectionPool(_client.HTTPConnectionPool):
    """Keeps idle HTTP/1.1 connections for reuse, per destination (Twisted's pool).

    The same pool class as the reverse proxy's (:mod:`treadle.web._client`), with
    Twisted's defaults: two idle connections kept per destination, each for 240 seconds.

    Args:
        reactor: The reactor (connections are made on its loop).
        persistent: False closes every connection after its exchange and sends
            ``Connection: close``.

    Attributes:
        maxPersistentPerHost: Idle connections kept per destination.
        cachedConnectionTimeout: Seconds an idle connection is kept.
        retryAutomatically: Send an idempotent request without a body again, once, on a
            new connection when a pooled one turns out to be closed.
    """

    maxPersistentPerHost: int = 2
    cachedConnectionTimeout: float = 240
    retryAutomatically: bool = True


def _loop_of(reactor: Any) -> asyncio.AbstractEventLoop:
    loop = getattr(reactor, "loop", None)
    if isinstance(loop, asyncio.AbstractEventLoop):
        return loop
    from treadle.internet import reactor as default

    default_loop: asyncio.AbstractEventLoop = default.loop
    return default_loop


# -- agents ------------------------------------------------------------------------------------

Opener = Callable[[], Coroutine[Any, Any, _client._Connection]]


class _Target:
    """What a request needs of its URI, worked out once: the parsed URI, the request path
    (origin form, or the absolute URI for a proxy), the ``Host`` value, the absolute URI."""

    __slots__ = ("absolute", "host", "request_path", "uri")

    def __init__(self, uri: URI, request_path: bytes) -> None:
        self.uri = uri
        self.request_path = request_path
        self.host = host_value(uri.scheme, uri.host, uri.port)
        self.absolute = uri.toBytes()


class _AgentBase:
    """What Agent and ProxyAgent share: the pool, the ``Host`` field, the exchange."""

    def __init__(self, reactor: Any, pool: HTTPConnectionPool | None) -> None:
        if pool is None:
            pool = HTTPConnectionPool(reactor, False)
        self._reactor = reactor
        self._pool = pool

    def _computeHostValue(self, scheme: bytes, host: bytes, port: int) -> bytes:
        return host_value(scheme, host, port)

    def _requestWith(
        self,
        key: Hashable,
        opener: Opener,
        method: bytes,
        target: _Target,
        headers: Headers | None,
        bodyProducer: Any,
    ) -> Deferred[Response]:
        method = ensure_valid_method(method)
        if headers is None:
            headers = Headers()
        if not headers.hasHeader(b"host"):
            headers = headers.copy()
            headers.addRawHeader(b"Host", target.host)
        pool = self._pool
        request = Request(
            method, target.request_path, headers, bodyProducer, pool.persistent, target.absolute
        )
        loop = _loop_of(self._reactor)
        exchange = Exchange(request, loop)
        exchange.address = HostnameAddress(target.uri.host, target.uri.port)
        retry = method in _RETRYABLE_METHODS and bodyProducer is None
        task = loop.create_task(_run(pool, key, opener, exchange, retry))
        exchange.task = task
        task.add_done_callback(functools.partial(_fire, exchange))
        return exchange.deferred


async def _run(
    pool: HTTPConnectionPool, key: Hashable, opener: Opener, exchange: Exchange, retry: bool
) -> Response:
    exchange.prepare()
    conn = pool._take(key)
    if conn is not None:
        try:
            return await exchange.send(conn)
        except (RequestNotSent, RequestTransmissionFailed, ResponseNeverReceived):
            # The server closed the pooled connection (its keep-alive timeout) before it
            # read the request: once more on a new one, when that is harmless.
            if not (retry and pool.retryAutomatically):
                raise
        exchange.phase = "connecting"
    conn = await opener()
    if exchange.phase == "done":  # cancelled while the connection was being made
        conn.abort()
        raise asyncio.CancelledError()
    return await exchange.send(conn)


def _fire(exchange: Exchange, task: asyncio.Task[Response]) -> None:
    d = exchange.deferred
    if task.cancelled():
        if not d.called:
            d.errback(CancelledError())
        return
    exc = task.exception()
    if d.called:
        return  # cancelled: the canceller gave the outcome already
    if exc is None:
        d.callback(task.result())
    else:
        d.errback(Failure(exc, type(exc), exc.__traceback__))


@implementer(IAgent)
class Agent(_AgentBase):
    """An HTTP/1.1 client for ``http`` and ``https`` URIs (Twisted's ``Agent``).

    Args:
        reactor: The reactor; connections are made on its loop.
        contextFactory: An ``IPolicyForHTTPS``: how to verify HTTPS servers.
        connectTimeout: Seconds a connection attempt may take (30 when None).
        bindAddress: Local address to connect from: ``"host"`` or ``(host, port)``.
        pool: An :class:`HTTPConnectionPool`; None makes a non-persistent one (a
            connection per request, with ``Connection: close``).
    """

    def __init__(
        self,
        reactor: Any,
        contextFactory: Any = BrowserLikePolicyForHTTPS(),  # noqa: B008  # Twisted's default
        connectTimeout: float | None = None,
        bindAddress: Any = None,
        pool: HTTPConnectionPool | None = None,
    ) -> None:
        factory = StandardEndpointFactory(reactor, contextFactory, connectTimeout, bindAddress)
        self._init(reactor, factory, pool)

    @classmethod
    def usingEndpointFactory(
        cls, reactor: Any, endpointFactory: Any, pool: HTTPConnectionPool | None = None
    ) -> Agent:
        """Return an Agent that connects to the endpoints ``endpointFactory`` gives.

        Args:
            reactor: The reactor.
            endpointFactory: An ``IAgentEndpointFactory``: ``endpointForURI(uri)`` returns
                an endpoint (or raises ``SchemeNotSupported``).
            pool: As for :class:`Agent`.
        """
        agent = cls.__new__(cls)
        agent._init(reactor, endpointFactory, pool)
        return agent

    def _init(self, reactor: Any, endpointFactory: Any, pool: HTTPConnectionPool | None) -> None:
        _AgentBase.__init__(self, reactor, pool)
        self._endpointFactory = endpointFactory
        self._targets: dict[bytes, _Target] = {}

    def request(
        self,
        method: bytes,
        uri: bytes,
        headers: Headers | None = None,
        bodyProducer: Any = None,
    ) -> Deferred[Response]:
        """Send a request; return a Deferred of its :class:`Response`.

        A pooled connection to the same scheme, host and port is used when there is one,
        else a new one is made.

        Args:
            method: The method, e.g. ``b"GET"``.
            uri: The absolute ``http``/``https`` URI.
            headers: Request headers (``Host`` is added from the URI unless present).
            bodyProducer: An ``IBodyProducer`` for the body (e.g. :class:`FileBodyProducer`),
                or None.

        Returns:
            A Deferred firing with the response once its head arrived; it fails with
            ``SchemeNotSupported``, a connection error (``ConnectionRefusedError``,
            ``TimeoutError``, ``DNSLookupError``), ``ResponseNeverReceived``,
            ``ResponseFailed``, ``RequestTransmissionFailed`` or
            ``RequestGenerationFailed``. Cancelling it aborts the request.

        Raises:
            TypeError: ``method`` is not bytes.
            ValueError: ``method`` is not a token, or ``uri`` has spaces or control bytes.
        """
        factory = self._endpointFactory
        if isinstance(factory, StandardEndpointFactory):
            # The same URIs come back again and again: their parsing is kept.
            target = self._targets.get(uri)
            if target is None:
                uri = ensure_valid_uri(uri.strip())
                parsed = URI.fromBytes(uri)
                try:
                    factory._check(parsed)
                except SchemeNotSupported:
                    return fail()
                target = self._remember(uri, _Target(parsed, parsed.originForm))
            parsed = target.uri
            key = (parsed.scheme, parsed.host, parsed.port)
            opener = functools.partial(factory.open, self._pool, key, parsed)
            return self._requestWith(key, opener, method, target, headers, bodyProducer)
        uri = ensure_valid_uri(uri.strip())
        parsed = URI.fromBytes(uri)
        try:
            endpoint = factory.endpointForURI(parsed)
        except SchemeNotSupported:
            return fail()
        key = (parsed.scheme, parsed.host, parsed.port)
        opener = functools.partial(open_endpoint, self._pool, key, endpoint)
        target = _Target(parsed, parsed.originForm)
        return self._requestWith(key, opener, method, target, headers, bodyProducer)

    def _remember(self, uri: bytes, target: _Target) -> _Target:
        if len(self._targets) >= _REMEMBERED_URIS:
            self._targets.clear()
        self._targets[uri] = target
        return target


@implementer(IAgent)
class ProxyAgent(_AgentBase):
    """Sends every request to an HTTP proxy, with the absolute URI as the target.

    Args:
        endpoint: The proxy's endpoint (``TCP4ClientEndpoint(reactor, host, port)``).
        reactor: The reactor (treadle's by default).
        pool: As for :class:`Agent`; all connections go to the one proxy.
    """

    def __init__(
        self, endpoint: Any, reactor: Any = None, pool: HTTPConnectionPool | None = None
    ) -> None:
        if reactor is None:
            from treadle.internet import reactor as default

            reactor = default
        _AgentBase.__init__(self, reactor, pool)
        self._proxyEndpoint = endpoint

    def request(
        self,
        method: bytes,
        uri: bytes,
        headers: Headers | None = None,
        bodyProducer: Any = None,
    ) -> Deferred[Response]:
        """Send a request through the proxy; as :meth:`Agent.request`."""
        uri = ensure_valid_uri(uri.strip())
        key = ("http-proxy", self._proxyEndpoint)
        opener = functools.partial(open_endpoint, self._pool, key, self._proxyEndpoint)
        target = _Target(URI.fromBytes(uri), uri)
        return self._requestWith(key, opener, method, target, headers, bodyProducer)


# -- bodies ------------------------------------------------------------------------------------


@implementer(IBodyProducer)
class FileBodyProducer:
    """Sends a file as a request body, ``readSize`` bytes at a time (Twisted's producer).

    Its ``length`` is what remains from the file's position to its end when the file can
    seek, ``UNKNOWN_LENGTH`` otherwise (the body is then sent chunked). The file is closed
    once read, or when the producer is stopped.

    Args:
        inputFile: A binary file object.
        cooperator: What schedules the reads (``cooperate(iterator)``): the
            ``treadle.internet.task`` module's global cooperator by default.
        readSize: Bytes per read.
    """

    def __init__(
        self, inputFile: IO[bytes], cooperator: Any = _task, readSize: int = 2**16
    ) -> None:
        self._inputFile = inputFile
        self._cooperate = cooperator.cooperate
        self._readSize = readSize
        self._task: Any = None
        self.length: int | str = self._determineLength(inputFile)

    def _determineLength(self, fObj: Any) -> int | str:
        seek = getattr(fObj, "seek", None)
        tell = getattr(fObj, "tell", None)
        if seek is None or tell is None:
            return UNKNOWN_LENGTH
        try:
            here = tell()
            seek(0, os.SEEK_END)
            end = tell()
            seek(here, os.SEEK_SET)
        except (OSError, ValueError):
            return UNKNOWN_LENGTH  # a pipe or socket file: seekable in name only
        return int(end - here)

    def startProducing(self, consumer: Any) -> Deferred[None]:
        """Write the file to ``consumer``.

        Returns:
            A Deferred firing once all of it is written; cancelling it stops the producer
            (and it then never fires).
        """
        self._task = self._cooperate(self._writeloop(consumer))
        d: Deferred[None] = self._task.whenDone()

        def stopped(reason: Failure) -> Any:
            if reason.check(CancelledError):
                self.stopProducing()
            elif not reason.check(_task.TaskStopped):
                return reason
            return Deferred()  # stopped: never fires, as the interface says

        d.addCallbacks(lambda _: None, stopped)
        return d

    def _writeloop(self, consumer: Any) -> Any:
        while True:
            data = self._inputFile.read(self._readSize)
            if not data:
                self._inputFile.close()
                break
            consumer.write(data)
            yield None

    def pauseProducing(self) -> None:
        """Stop reading until resumed."""
        if self._task is not None:
            self._task.pause()

    def resumeProducing(self) -> None:
        """Go on reading."""
        if self._task is not None:
            self._task.resume()

    def stopProducing(self) -> None:
        """Stop for good and close the file."""
        self._inputFile.close()
        if self._task is not None:
            with contextlib.suppress(_task.TaskFinished):
                self._task.stop()


class _ReadBodyProtocol(Protocol):
    """Collects a body for :func:`readBody`."""

    def __init__(self, status: int, message: bytes, deferred: Deferred[bytes]) -> None:
        self.deferred = deferred
        self.status = status
        self.message = message
        self.dataBuffer: list[bytes] = []

    def dataReceived(self, data: bytes) -> None:
        self.dataBuffer.append(data)

    def connectionLost(self, reason: Failure | None = None) -> None:
        if reason is None or reason.check(ResponseDone):
            self.deferred.callback(b"".join(self.dataBuffer))
        elif reason.check(PotentialDataLoss):
            self.deferred.errback(
                PartialDownloadError(self.status, self.message, b"".join(self.dataBuffer))
            )
        else:
            self.deferred.errback(reason)


def readBody(response: Any) -> Deferred[bytes]:
    """Return a Deferred of ``response``'s whole body.

    Args:
        response: A response (from an agent, or any ``IResponse``).

    Returns:
        A Deferred firing with the body bytes. It fails with
        :class:`PartialDownloadError` (its ``response`` holds the bytes received) when the
        server ended the body by closing the connection, and with ``ResponseFailed`` when
        the body was cut off. Cancelling it closes the connection at once.
    """
    protocol: _ReadBodyProtocol

    def cancel(deferred: Deferred[bytes]) -> None:
        abort = getattr(protocol.transport, "abortConnection", None)
        if abort is not None:
            abort()

    d: Deferred[bytes] = Deferred(cancel)
    protocol = _ReadBodyProtocol(response.code, response.phrase, d)
    response.deliverBody(protocol)
    return d
