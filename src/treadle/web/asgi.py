"""ASGI applications in a resource tree: ``ASGIResource(app)``.

treadle's own (Twisted has no ASGI): an `ASGI 3 <https://asgi.readthedocs.io/>`_ application
(Starlette, FastAPI, Quart, Django's ``asgi.py``...) mounted anywhere in a resource tree, or
served at the root by ``treadle web --asgi pkg.mod:app``. It runs on the event loop serving
the request, one task per request (named ``ASGI <name>``), with the site's limits, timeouts
and access log, as every other resource.

The resource is a leaf: the path segments consumed to reach it become the scope's
``root_path`` (WSGI's ``SCRIPT_NAME``), and ``path`` is the whole path
(:mod:`treadle.web._asgi_scope`). How ``receive()``/``send()`` behave (request bodies handed
over in pieces, response bodies streamed at the client's pace, ``http.disconnect``), what an
application that breaks the protocol gets (a 500 page or a response cut short, and one line
on the ``treadle.error`` log naming it, never a hung connection) and what a request costs,
and why, is told in :mod:`treadle.web._asgi_http`. ``send`` is an awaitable callable, as the
specification asks, but not a coroutine function: what it returns may be awaited, or given
to ``asyncio.ensure_future``/``wait_for``, but not to ``asyncio.create_task`` (as under
granian).

Two bounds keep an application from holding a connection for ever. ``startTimeout``
(:data:`DEFAULT_START_TIMEOUT`, 60 s, nginx's ``proxy_read_timeout``): an application that
has not sent ``http.response.start`` by then is cancelled and its request answered 500; a
response that started may stream for as long as it likes (server-sent events...). And
:attr:`ASGIResource.disconnectGrace`: once the client has left, the application learns it
(``http.disconnect``, or ``ClientDisconnected`` from ``send()``) and is cancelled if it is still
running that many seconds later. Graceful shutdown closes connections as for any resource,
then :meth:`ASGIResource.shutdown` waits for the calls still running (background tasks) and
runs the lifespan shut-down.

Lifespan (:mod:`treadle.web._asgi_lifespan`). :meth:`ASGIResource.startup` runs the
application's start-up, :meth:`ASGIResource.shutdown` its shut-down; ``treadle web --asgi``
calls them before serving and after the graceful shutdown. A program that calls neither gets
the start-up on the first request (requests wait for it, and get a 500 page if it fails), and,
when treadle's reactor is running, the shut-down when the reactor stops.

WebSocket (:mod:`treadle.web._asgi_websocket`). A ``GET`` asking to upgrade to WebSocket on
an HTTP/1.1 connection gets the ``websocket`` scope: the application accepts (``101``, then
the connection is a WebSocket with :mod:`treadle.web.websocket`'s limits, keepalive and
shutdown with ``1001``) or closes (``403``); other requests, HTTP/2 streams included, get
the ``http`` scope.

Differences from uvicorn, on purpose: the request body is read whole by the channel before
the application is called (as every treadle resource sees it, spooled to a file past 1 MiB
and bounded by ``maxRequestBodySize``), so an application never waits on a slow upload; an
application that does not start its response within ``startTimeout`` is cancelled (uvicorn
waits for ever), and one still running ``disconnectGrace`` seconds after its client left is
cancelled too; the lifespan ``state`` is a shallow copy per request, as the specification
asks; ASGI 2 (double-callable) applications are not recognised.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

from zope.interface import implementer

from treadle.internet._timers import TimerHeap
from treadle.web._app_import import import_application
from treadle.web._asgi_calls import Calls
from treadle.web._asgi_http import (
    BODY_CHUNK,
    ClientDisconnected,
    HTTPCycle,
    ProtocolError,
    Rendering,
    serve,
)
from treadle.web._asgi_lifespan import (
    FAILED,
    IDLE,
    LIFESPAN_MODES,
    RUNNING,
    UNSUPPORTED,
    Lifespan,
    LifespanFailure,
)
from treadle.web._asgi_scope import http_scope
from treadle.web._asgi_types import Application, Receive, Scope, Send
from treadle.web._asgi_websocket import WebSocketCycle, is_websocket, websocket_scope
from treadle.web._websocket_limits import WebSocketLimits
from treadle.web.resource import IResource
from treadle.web.server import NOT_DONE_YET

if TYPE_CHECKING:
    from treadle.web.resource import ResourceLike
    from treadle.web.server import Request

__all__ = [
    "BODY_CHUNK",
    "DEFAULT_LIFESPAN_TIMEOUT",
    "DEFAULT_START_TIMEOUT",
    "LIFESPAN_MODES",
    "ASGIResource",
    "ClientDisconnected",
    "LifespanFailure",
    "ProtocolError",
    "resource_from_name",
]

error_log = logging.getLogger("treadle.error")

# The lifespan phases in which requests are served at once (Lifespan.ready, inline).
READY: Final = (RUNNING, UNSUPPORTED)

#: Seconds an application has to send ``http.response.start`` (nginx's ``proxy_read_timeout``
#: for the first byte of an upstream's answer is the same 60 s).
DEFAULT_START_TIMEOUT: Final = 60.0
#: Seconds the lifespan start-up, and again the shut-down, may take (hypercorn's default).
DEFAULT_LIFESPAN_TIMEOUT: Final = 60.0


def _log_failure(failure: LifespanFailure) -> None:
    extra = f"\n{failure.details}" if failure.details else ""
    error_log.error("%s%s", failure, extra, exc_info=failure.__cause__)


def describe(app: object) -> str:
    """``module:qualname`` of an application (or of its class, for an instance)."""
    target = app if hasattr(app, "__qualname__") else type(app)
    module = getattr(target, "__module__", None) or "?"
    return f"{module}:{getattr(target, '__qualname__', repr(target))}"


@implementer(IResource)
class ASGIResource(Rendering):
    """A leaf resource that answers every request below it with an ASGI 3 application.

    Args:
        app: The application: ``async def app(scope, receive, send)``.
        name: How log lines and errors name it (default: its ``module:qualname``).
        lifespan: ``"auto"`` (run the lifespan protocol if the application speaks it),
            ``"on"`` (it must: a start-up that fails or is not understood is an error) or
            ``"off"``.
        startTimeout: Seconds the application has to send ``http.response.start`` before
            it is cancelled and the request answered 500 (None: no limit).
        lifespanTimeout: Seconds the lifespan start-up, and the shut-down, may take.
        websocketLimits: The limits of the application's WebSocket connections
            (:class:`~treadle.web.websocket.WebSocketLimits`' defaults when None).

    Attributes:
        disconnectGrace: Seconds an application may go on running after its client left
            (it gets ``http.disconnect``) before it is cancelled.
    """

    isLeaf = True
    disconnectGrace: float = 1.0

    def __init__(
        self,
        app: Application,
        *,
        name: str | None = None,
        lifespan: str = "auto",
        startTimeout: float | None = DEFAULT_START_TIMEOUT,
        lifespanTimeout: float | None = DEFAULT_LIFESPAN_TIMEOUT,
        websocketLimits: WebSocketLimits | None = None,
    ) -> None:
        if not callable(app):
            raise TypeError(f"an ASGI application is callable; {app!r} is not")
        self.app = app
        self.name = name if name is not None else describe(app)
        self.startTimeout = startTimeout
        self.websocketLimits = websocketLimits if websocketLimits is not None else WebSocketLimits()
        self._lifespan: Lifespan = Lifespan(app, self.name, lifespan, lifespanTimeout)
        self._calls: set[asyncio.Task[Any]] = set()
        self._http_calls = None
        self._shutdown_trigger: Any = None
        self._lazy_start: asyncio.Future[None] | None = None

    @property
    def lifespanState(self) -> dict[str, Any]:
        """The lifespan ``state`` the application filled in at start-up (requests get a copy)."""
        return self._lifespan.state

    # -- serving ---------------------------------------------------------------------------

    # render(request), the usual request's way in, is Rendering's (compiled): it starts the
    # application at once when the lifespan start-up is done, and defers to the methods
    # below otherwise.

    def _render_upgrade(
        self, request: Request, loop: asyncio.AbstractEventLoop, calls: Calls
    ) -> int:
        """A request with an ``Upgrade`` field: a WebSocket handshake, or the usual request."""
        if is_websocket(request):
            return self._render_websocket(request, loop, calls.deadlines)
        lifespan = self._lifespan
        if lifespan.phase in READY:
            serve(self.app, request, calls, lifespan.state)
            return NOT_DONE_YET
        return self._render_waiting(request, loop, calls)

    def _render_waiting(
        self, request: Request, loop: asyncio.AbstractEventLoop, calls: Calls
    ) -> int:
        """A request that came before the lifespan start-up is done: served after it."""
        lifespan = self._lifespan
        cycle = HTTPCycle(request, calls)
        request.registerProducer(cycle, True)
        if not cycle.waiting:
            return NOT_DONE_YET  # the client left already
        scope = http_scope(request, lifespan.state)
        cycle.begin(loop, self._after_startup(scope, cycle.receive, cycle.send, cycle.refuse))
        return NOT_DONE_YET

    def _calls_on(self, loop: asyncio.AbstractEventLoop) -> Calls:
        """The deadline heap and the start timeouts of this resource's calls on ``loop``."""
        deadlines = TimerHeap(loop, loop.call_later, loop.time, 0.001, 0.001)
        calls = Calls(self, loop, deadlines, self._calls)
        self._http_calls = calls
        return calls

    def _render_websocket(
        self, request: Request, loop: asyncio.AbstractEventLoop, deadlines: TimerHeap
    ) -> int:
        cycle = WebSocketCycle(request, self.name, self.websocketLimits, deadlines)
        if not cycle.negotiate():
            return NOT_DONE_YET  # a malformed handshake: answered 400
        scope = websocket_scope(http_scope(request, self._lifespan.state), request)
        try:
            task = self._call(loop, scope, cycle.receive, cycle.send, cycle.refuse)
        except Exception as e:
            cycle.refuse(e)
            return NOT_DONE_YET
        cycle.run(task, self._calls, self.startTimeout)
        return NOT_DONE_YET

    def _call(
        self,
        loop: asyncio.AbstractEventLoop,
        scope: Scope,
        receive: Receive,
        send: Send,
        refuse: Callable[[], None],
    ) -> asyncio.Task[Any]:
        """Start the application's call, after the lifespan start-up when it is not done."""
        if self._lifespan.ready:
            return loop.create_task(self.app(scope, receive, send))  # type: ignore[arg-type]
        return loop.create_task(self._after_startup(scope, receive, send, refuse))

    async def _after_startup(
        self, scope: Scope, receive: Receive, send: Send, refuse: Callable[[], None]
    ) -> None:
        """Serve ``scope`` once the lifespan start-up (started here if need be) is done."""
        lifespan = self._lifespan
        if lifespan.phase == IDLE and self._lazy_start is None:
            self._watch_reactor_shutdown()
            self._lazy_start = asyncio.ensure_future(self._start_lazily())
        try:
            await lifespan.startup()
        except LifespanFailure:
            refuse()  # logged once, by _start_lazily or by whoever called startup()
            return
        scope["state"] = dict(lifespan.state)
        await self.app(scope, receive, send)

    async def _start_lazily(self) -> None:
        try:
            await self._lifespan.startup()
        except LifespanFailure as failure:
            _log_failure(failure)

    def _watch_reactor_shutdown(self) -> None:
        """Run the lifespan shut-down when treadle's reactor stops, if it is running."""
        from treadle.internet import reactor

        if reactor.running and self._shutdown_trigger is None:
            self._shutdown_trigger = reactor.addSystemEventTrigger(
                "before", "shutdown", self._shutdown_logged
            )

    async def _shutdown_logged(self) -> None:
        try:
            await self.shutdown()
        except LifespanFailure as failure:
            _log_failure(failure)

    # -- lifespan --------------------------------------------------------------------------

    async def startup(self) -> None:
        """Run the application's lifespan start-up (once); call before serving.

        Raises:
            LifespanFailure: The start-up failed, or took longer than ``lifespanTimeout``;
                with ``lifespan="on"``, also when the application does not speak lifespan.
        """
        await self._lifespan.startup()

    async def shutdown(self, timeout: float | None = 10.0) -> None:
        """Let running calls end, then run the application's lifespan shut-down (once).

        Args:
            timeout: Seconds to wait for calls still running (responses, background tasks
                after them) before cancelling them; None waits for ever.

        Raises:
            LifespanFailure: The shut-down failed, or took longer than ``lifespanTimeout``.
        """
        calls = set(self._calls)
        if calls:
            _, running = await asyncio.wait(calls, timeout=timeout)
            for task in running:
                task.cancel()
            if running:
                await asyncio.wait(running, timeout=1.0)
        if self._shutdown_trigger is not None:
            from treadle.internet import reactor

            trigger, self._shutdown_trigger = self._shutdown_trigger, None
            with contextlib.suppress(ValueError):  # running as that very trigger
                reactor.removeSystemEventTrigger(trigger)
        await self._lifespan.shutdown()

    @property
    def lifespanFailed(self) -> bool:
        """Whether the lifespan start-up or shut-down failed."""
        return self._lifespan.phase == FAILED

    # -- the resource interface ------------------------------------------------------------

    def getChildWithDefault(self, name: bytes, request: Request) -> ResourceLike:
        """Never called for a leaf.

        Raises:
            RuntimeError: Always.
        """
        raise RuntimeError("Cannot get ResourceLike children from ASGIResource")

    def putChild(self, path: bytes, child: ResourceLike) -> None:
        """An ASGI application has no resource children (it routes its own paths).

        Raises:
            RuntimeError: Always.
        """
        raise RuntimeError("Cannot put ResourceLike children under ASGIResource")

    def __repr__(self) -> str:
        return f"<ASGIResource {self.name}>"


def resource_from_name(name: str, **kwargs: Any) -> ASGIResource:
    """Import the ASGI application ``name`` and wrap it in an :class:`ASGIResource`.

    Args:
        name: ``"package.module:app"`` (the attribute may be dotted: ``"main:api.app"``) or
            ``"package.module.app"``.
        **kwargs: For :class:`ASGIResource` (``name`` defaults to ``name``).

    Returns:
        A resource serving the application.

    Raises:
        ValueError: ``name`` has neither form, or the module has no such attribute.
        ImportError: The module cannot be imported.
        TypeError: The attribute is not callable.
    """
    found = import_application(name, "ASGI", "app")
    kwargs.setdefault("name", name)
    return ASGIResource(found, **kwargs)
