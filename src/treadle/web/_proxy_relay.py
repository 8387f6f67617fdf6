"""How a proxy request reaches its origin: treadle's pooled client, or the reactor given.

Private to :mod:`treadle.web.proxy`. :class:`ForwardingRequest` is what
:class:`~treadle.web.proxy.ProxyRequest` and :class:`~treadle.web.proxy.ReverseProxyRequest`
share: given the :class:`~treadle.web.proxy.ProxyClientFactory` of a request, it either sends
the request through the :class:`~treadle.web._client.HTTPConnectionPool` and drives the
factory's :class:`~treadle.web.proxy.ProxyClient` with the response (treadle's reactor), or
hands the factory to the reactor's ``connectTCP`` as Twisted does (any other reactor; see
:func:`uses_pool`).
"""

from __future__ import annotations

import asyncio
import io
import logging
import weakref
from typing import Any

from treadle.python.failure import Failure
from treadle.web import http
from treadle.web._client import (
    HTTPConnectionPool,
    UpstreamConnectError,
    UpstreamError,
    UpstreamResponse,
)
from treadle.web._proxy_headers import DEFAULT_TIMEOUT, strip_hop_by_hop
from treadle.web.resource import error_page

__all__ = ["ForwardingRequest", "cancel_task", "uses_pool"]

error_log = logging.getLogger("treadle.error")


def uses_pool(reactor: Any) -> bool:
    """Tell whether requests made with ``reactor`` go through treadle's pooled client.

    They do with no reactor given and with any reactor running on an asyncio loop
    (treadle's, which has ``loop``): the pool's connections live on that loop. Any other
    reactor — a ``MemoryReactor`` in a test, a reactor of the program's own — is asked to
    ``connectTCP``, as Twisted's proxy does, so that what it does with the connection is
    what happens.
    """
    return reactor is None or isinstance(getattr(reactor, "loop", None), asyncio.AbstractEventLoop)


def cancel_task(_: object, task: asyncio.Task[Any]) -> None:
    """Cancel ``task`` (a ``notifyFinish`` errback: the client left)."""
    task.cancel()


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


class ForwardingRequest(http.Request):
    """A request answered by an origin server through a :class:`ProxyClientFactory`.

    Args:
        channel: The channel the request arrived on.
        queued: Accepted for Twisted compatibility.
        reactor: Reaches the origin (see :func:`uses_pool`); None: treadle's.

    Attributes:
        reactor: As given.
        pool: The :class:`HTTPConnectionPool` origin connections come from (None: one pool
            shared by every proxy request on the loop).
        timeout: Seconds to wait for the origin's response head, then between two pieces of
            its body (``504`` when nothing came yet), with the pooled client.
    """

    pool: HTTPConnectionPool | None = None
    timeout: float = DEFAULT_TIMEOUT
    # What the origin sent is relayed as it is: no made-up text/html.
    defaultContentType = None

    def __init__(self, channel: Any, queued: object = None, reactor: Any = None) -> None:
        super().__init__(channel, queued)
        self.reactor = reactor

    def forward(self, factory: Any, host: str, port: int) -> None:
        """Send the request ``factory`` describes to ``host:port``; the answer comes later."""
        if not uses_pool(self.reactor):
            self.reactor.connectTCP(host, port, factory)
            return
        task = asyncio.get_running_loop().create_task(self._forward(factory, host, port))
        self._relay_task = task  # keep a reference: the loop holds tasks weakly
        self.notifyFinish().addErrback(cancel_task, task)

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
