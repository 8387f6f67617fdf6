"""Shared fixtures: a real treadle server on 127.0.0.1 in a background thread.

``serve(resource_or_site)`` starts listening on an ephemeral port and returns the base URL.
The server's loop runs in its own thread, so test code can use blocking clients
(``http.client``, ``httpx``, raw sockets) with deadlines. Socket tests run under both the
stdlib asyncio loop and uvloop (the ``loop_kind`` parameter).

Helpers many test files share live here too: :func:`wait_for` (poll a condition with a
deadline) and :func:`eventually` (its async form), :func:`run_scenario` (a coroutine in a
fresh loop, with a deadline), :func:`host_port`, :func:`raw_request`, and the :class:`Hello`
and :class:`Held` resources.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from typing import Any, TypeVar
from urllib.parse import urlsplit

import pytest

from treadle.internet import reactor
from treadle.internet._reactor import new_event_loop
from treadle.internet._timers import SoonBatch
from treadle.web.resource import Resource
from treadle.web.server import NOT_DONE_YET, Request, Site
from treadle.web.testing import StringTransport

try:
    import uvloop  # noqa: F401

    LOOP_KINDS = ["asyncio", "uvloop"]
except ImportError:  # pragma: no cover
    LOOP_KINDS = ["asyncio"]

# The throwaway redis-server (fixture ``redis_server``) of the Redis client's and store's tests.
pytest_plugins = ("tests.redis_server",)


class ServerThread:
    """An event loop in a thread, serving Sites started with :meth:`serve`."""

    def __init__(self, loop_kind: str) -> None:
        self.loop = asyncio.new_event_loop() if loop_kind == "asyncio" else new_event_loop()
        self.ports: list[Any] = []
        self._thread = threading.Thread(target=self._run, daemon=True)
        ready = threading.Event()
        self.loop.call_soon(ready.set)
        self._thread.start()
        assert ready.wait(10), "server loop did not start"

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def call(self, fn: Callable[..., Any], *args: Any, timeout: float = 10) -> Any:
        """Run ``fn(*args)`` on the server loop and return its result."""

        async def runner() -> Any:
            return fn(*args)

        return asyncio.run_coroutine_threadsafe(runner(), self.loop).result(timeout)

    def serve(self, resource: Any, **site_kwargs: Any) -> str:
        """Serve ``resource`` (or a ready Site) and return ``http://127.0.0.1:PORT``."""
        site = resource if hasattr(resource, "buildProtocol") else Site(resource, **site_kwargs)
        port = self.call(lambda: reactor.listenTCP(0, site, interface="127.0.0.1"))
        self.ports.append(port)
        return f"http://127.0.0.1:{port.getHost().port}"

    def stop(self) -> None:
        def close_everything() -> None:
            for port in self.ports:
                port.stopListening()
                # A connection a test left open would keep uvloop's close() waiting.
                for channel in getattr(port.factory, "connections", ()):
                    channel.abort()

        self.call(close_everything)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()


@pytest.fixture(params=LOOP_KINDS)
def loop_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def server(loop_kind: str) -> Iterator[ServerThread]:
    thread = ServerThread(loop_kind)
    try:
        yield thread
    finally:
        thread.stop()


@pytest.fixture
def serve(server: ServerThread) -> Callable[..., str]:
    return server.serve


#: How long a test waits for something that should happen at once, before it fails. Generous,
#: because a loaded 2-core machine can stall a thread for seconds; a passing test never waits
#: this long.
DEADLINE = 10.0


def wait_for(
    condition: Callable[[], Any], what: str = "the condition", timeout: float = DEADLINE
) -> Any:
    """Poll ``condition`` until it returns something true and return that, or fail.

    Args:
        condition: Called every few milliseconds.
        what: Named in the failure message.
        timeout: Seconds before the test fails.
    """
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.005)


_T = TypeVar("_T")


def run_on_loop(loop_kind: str, coro: Coroutine[Any, Any, _T]) -> _T:
    """Run ``coro`` to completion on a fresh loop of the given kind (``loop_kind``), failing the
    test if it takes longer than :data:`DEADLINE`."""
    loop = asyncio.new_event_loop() if loop_kind == "asyncio" else new_event_loop()
    try:
        return loop.run_until_complete(asyncio.wait_for(coro, DEADLINE))
    finally:
        loop.close()


def run_scenario(scenario: Callable[[], Awaitable[Any]]) -> Any:
    """Run ``scenario()`` (a coroutine, or a Deferred) in a fresh loop and return its result,
    failing the test if it takes longer than :data:`DEADLINE`."""

    async def main() -> Any:
        return await asyncio.wait_for(scenario(), DEADLINE)

    return asyncio.run(main())


async def eventually(condition: Callable[[], Awaitable[Any]], what: str) -> Any:
    """Await ``condition()`` every few milliseconds until it is true and return that, or fail
    the test at the deadline."""
    deadline = time.monotonic() + DEADLINE
    while True:
        result = await condition()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {DEADLINE} s waiting for {what}")
        await asyncio.sleep(0.01)


def host_port(url: str) -> tuple[str, int]:
    """Return ``(host, port)`` of a ``http://host:port`` URL."""
    parts = urlsplit(url)
    assert parts.hostname and parts.port
    return parts.hostname, parts.port


class Hello(Resource):
    """A leaf answering every GET with ``Hello, world!`` at once."""

    isLeaf = True

    def render_GET(self, request: Request) -> bytes:
        return b"Hello, world!"


def raw_request(url: str, data: bytes, *, timeout: float = 10, until_close: bool = True) -> bytes:
    """Send raw bytes to the server at ``url`` and return what comes back until it closes."""
    parts = urlsplit(url)
    assert parts.hostname is not None and parts.port is not None
    with socket.create_connection((parts.hostname, parts.port), timeout=timeout) as sock:
        sock.sendall(data)
        chunks = []
        while True:
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                if until_close:
                    raise
                break
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks)


class Held(Resource):
    """Keeps every GET open until the test finishes it (``pending``, ``release``).

    Args:
        immediate: Paths answered at once instead, e.g. ``{b"/now": b"now"}``.
    """

    isLeaf = True

    def __init__(self, immediate: dict[bytes, bytes] | None = None) -> None:
        super().__init__()
        self.immediate = immediate or {}
        self.pending: list[Request] = []

    def render_GET(self, request: Request) -> object:
        answer = self.immediate.get(request.path)
        if answer is not None:
            return answer
        self.pending.append(request)
        return NOT_DONE_YET

    def release(self, body: bytes = b"released") -> None:
        """Answer every pending request with ``body``."""
        for request in self.pending:
            request.write(body)
            request.finish()
        self.pending.clear()


def on_loop(resource: Resource | Site) -> tuple[Any, StringTransport]:
    """A channel of a ``Site`` (a new one for a resource) on the running loop, as a server's
    (no test clock): its small responses wait for the loop's next turn."""
    site = resource if isinstance(resource, Site) else Site(resource)
    channel = site.buildProtocol(None)
    transport = StringTransport()
    channel.connection_made(transport)
    return channel, transport


def still_clock(site: Site) -> list[float]:
    """Give ``site``, on the running loop, a batch whose clock moves only when the test moves
    it (``now[0] += ...``, the list returned): no turn lasts ``MAX_WAIT`` unless it says so."""
    site.timing()  # the loop's own deadline heap and batch, made now
    now = [0.0]
    site._soon = SoonBatch(asyncio.get_running_loop().call_soon, on_loop=True, now=lambda: now[0])
    return now
