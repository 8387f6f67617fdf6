"""One HTTP request through an ASGI application: its call, ``receive()`` and ``send()``.

An :class:`HTTPCycle` is the request's ``receive``/``send`` pair, the producer registered on
the request (to learn that the client left) and the coroutine its task runs
(:meth:`HTTPCycle.call`); it turns the application's messages into
``setResponseCode``/``write``/``finish``. The scope is built by
:func:`treadle.web._asgi_scope.http_scope`.

What goes out. ``http.response.start`` puts the status and headers on the request; the head
leaves with the body: a start followed by a last ``http.response.body`` in the same step
(the usual response) goes out as one write with a ``Content-Length``; a start alone (a
stream whose first event is not ready) goes out at the next turn of the loop, the body
following chunked. ``more_body`` bodies are written as they come, and ``send()`` then waits
on ``request.drain()``, which waits while the connection's send buffer is above its
high-water mark: a slow client slows the application down. Headers the connection owns
(``Transfer-Encoding``, ``Keep-Alive``, ``TE``, ``Trailer``, ``Upgrade``) are dropped;
``Connection: close`` closes after the response. A body longer than the application's own
``Content-Length`` is cut to it; a shorter one is an error (below): the next response on
the connection is never read as part of this one.

What comes in. The channel has read the whole body before a resource renders (within
``maxRequestBodySize``, spooled to a file past :data:`~treadle.web._parser.SPOOL_SIZE`), as
for every resource; ``receive()`` hands it over in ``http.request`` messages of at most
:data:`BODY_CHUNK` bytes, read when asked for, then waits and returns ``http.disconnect``
once the response is complete or the client has left.

Breaking the protocol. A body before the start, a second start, an unknown message, a
malformed status or header, a body shorter than its ``Content-Length``, an exception, a
return before the response is complete, or no start within the resource's
``startTimeout``: the request gets a 500 page if nothing was sent yet (a start whose head
has not left yet counts as nothing), or its response is cut short (the connection closes)
if it was, and one line on ``treadle.error`` names the application and what it did.
``send()`` raises :class:`ProtocolError` into the application for the protocol errors; an
application that catches it and goes on gets the same error again, and no further log
line.

Trailers. The scope advertises the ``http.response.trailers`` extension. A start with
``"trailers": True`` keeps the response open after its last ``http.response.body`` until an
``http.response.trailers`` with ``more_trailers`` false; their fields (checked as a start's,
and refused when they may not be trailers) become the request's ``responseTrailers``, sent
as :mod:`treadle.web._trailers` says (on HTTP/2, and after a chunked HTTP/1.1 body; dropped
where the response cannot carry them).

The client leaving. The cycle (the request's producer) is stopped: a pending ``receive()``
returns ``http.disconnect``, ``send()`` raises :class:`ClientDisconnected` (an ``OSError``,
as spec 2.4 asks), and an application still running ``disconnect_grace`` seconds later is
cancelled.

What a request costs (this is the hot path of ``treadle web --asgi``). This module, the
scope's (:mod:`~treadle.web._asgi_scope`) and the calls' (:mod:`~treadle.web._asgi_calls`)
run compiled (mypyc), and :func:`serve` is the body of ``ASGIResource.render`` for a
request whose lifespan start-up is done. The application
runs in an asyncio Task of its own, as the specification's world expects: anyio (under
Starlette and FastAPI) keys its cancel scopes and task groups to the current task, and a
call that outlives its response (background tasks) must be cancellable on its own. Running
the first step of the call without a Task (as granian does, with one stand-in task shared
by every call) measured slower here, not faster: the responses of a loop iteration are then
produced one by one between the reads, instead of together after them. What the Task costs
is cut instead:

- it is made named (an unnamed one formats ``Task-N`` as it is made; ``loop.create_task``
  names it only afterwards), and runs :meth:`HTTPCycle.call`, which settles the request
  when the application returns or raises, in line, rather than through a done callback;
- ``send()`` is a plain method returning a future done already for a start and a last
  body (rather than a coroutine made and run for each: two per response); only a body with
  more to come returns a coroutine, which waits for the client (granian's ``send`` is no
  coroutine function either);
- the start timeout of every call of a resource is one entry in an insertion-ordered dict
  (:class:`~treadle.web._asgi_calls.Calls`: every call gets the same timeout, so the
  oldest is due first) under a single timer, rather than a timer entry per request;
- a start whose body does not follow in the same step has its head sent at the next turn
  of the loop by one callback for all the calls that started in that turn
  (:meth:`~treadle.web._asgi_calls.Calls.head_soon`), not by a callback each;
- the header fields are checked once per distinct name (:mod:`~treadle.web._asgi_scope`);
  the checked dict becomes the request's ``responseHeaders`` as it is, and a start and its
  last body leave through the request's one-write response (what ``finish()`` does with a
  body held), without the hold and release of a first ``write``.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import traceback
from collections.abc import Awaitable
from types import CoroutineType
from typing import TYPE_CHECKING, Any, Final

from mypy_extensions import mypyc_attr

from treadle.web._asgi_calls import Calls, Heading
from treadle.web._asgi_scope import http_scope, response_fields
from treadle.web._asgi_types import Application, Message
from treadle.web._channel_core import ChannelCore
from treadle.web._html import processing_failed_page, traceback_page
from treadle.web._request_core import RequestCore, _complete, _start_response
from treadle.web.http_headers import Headers
from treadle.web.server import NOT_DONE_YET

if TYPE_CHECKING:
    from treadle.web.server import Request

__all__ = [
    "BODY_CHUNK",
    "ClientDisconnected",
    "HTTPCycle",
    "ProtocolError",
    "Rendering",
    "serve",
]

error_log = logging.getLogger("treadle.error")

#: Most bytes of request body one ``http.request`` message carries (uvicorn passes what each
#: read gave, hypercorn 64 KiB as well).
BODY_CHUNK: Final = 64 * 1024

# Where the response stands (HTTPCycle._state).
WAITING: Final = 0  # no http.response.start yet
STARTED: Final = 1  # started; the body is going out
DONE: Final = 2  # the last body went out (the call may still run: background tasks)
FAILED: Final = 3  # the application broke the protocol or raised; answered already
GONE: Final = 4  # the client left before the response was complete


# The lifespan phases in which requests are served at once (see treadle.web._asgi_lifespan;
# not imported: that module is plain Python, and these are read at each request).
_RUNNING: Final = "running"
_UNSUPPORTED: Final = "unsupported"
# (A final module variable: a C static compiled, where asyncio.Task is looked up each time.)
_Task: Final = asyncio.Task
_running_loop: Final = asyncio.get_running_loop
# What render returns (kept as the object it is: the resource layer compares by identity).
_NOT_DONE_YET: Final[object] = NOT_DONE_YET


# Exceptions stay Python classes when the module is compiled (mypyc makes no native
# subclass of a builtin exception).
@mypyc_attr(native_class=False)
class ClientDisconnected(ConnectionError):
    """Raised by ``send()`` once the client has gone away (an ``OSError``, as ASGI 2.4 asks)."""


@mypyc_attr(native_class=False)
class ProtocolError(RuntimeError):
    """Raised by ``send()`` into an application that broke the ASGI HTTP protocol."""


class HTTPCycle(Heading):
    """The ``receive``/``send`` pair of one request, and its streaming producer (registered
    to learn, through ``stopProducing``, that the client left).

    Args:
        request: The request being answered.
        calls: The resource's calls (the application's name, timeouts, running tasks).

    Attributes:
        request: As given.
        task: The application's call, once started (None after it ended).
    """

    # No __slots__: most of these stay at their class-level default for the whole of a
    # request, and __init__ then sets two attributes instead of a dozen.
    _state = WAITING
    _more = True  # request body still to hand over
    _content: Any = None
    _size = 0
    # Body bytes the declared Content-Length still allows (None: none declared, or a
    # response without a body: HEAD, 204, 304).
    _remaining: int | None = None
    _waiter: asyncio.Future[None] | None = None  # a receive() waiting for the end
    _raised: ProtocolError | None = None
    _logged = False
    # Trailers: 0 none announced; 1 announced, the last body still to come; 2 awaited.
    _trailing = 0
    _handle: Any = None  # our entry in the deadline heap (the disconnect grace)
    # The request as treadle's own (see _direct_request), whose fields are then read and set
    # directly; None for a request of another kind, asked through its methods.
    _core: RequestCore | None = None
    task: asyncio.Task[Any] | None = None

    def __init__(self, request: Request, calls: Calls) -> None:
        self.request = request
        self._calls = calls

    def begin(self, loop: asyncio.AbstractEventLoop, call: Awaitable[None]) -> None:
        """Run ``call`` (what the application returned when called) in a task of its own."""
        calls = self._calls
        if loop.get_task_factory() is None:
            # Named as it is made: a task made unnamed formats a name of its own ("Task-N",
            # which loop.create_task does before naming it).
            task = _Task(self.call(call), loop=loop, name=calls.task_name)
        else:
            task = loop.create_task(self.call(call), name=calls.task_name)
        self.task = task
        calls.running.add(task)
        if self._state == WAITING:
            calls.wait_start(self)

    async def call(self, call: Awaitable[None]) -> None:
        """Await the application's call, then settle the request as its end says (the
        task's body)."""
        try:
            await call
        except asyncio.CancelledError:
            self._ended()
            if self._state < DONE:
                self._fail("was cancelled before its response was complete")
            raise
        except GeneratorExit:
            # The task was destroyed unfinished (a loop closed with it pending): nothing is
            # left to answer.
            self._ended()
            raise
        except BaseException as error:
            self._ended()
            if error is not self._raised and not (
                self._state == GONE and _caused_by_leaving(error)
            ):
                self._fail("raised an exception", error)
            if not isinstance(error, Exception):
                raise  # KeyboardInterrupt, SystemExit: the loop's to handle
        else:
            self._ended()
            state = self._state
            if state == WAITING:
                self._fail("returned without sending http.response.start")
            elif state == STARTED:
                self._fail("returned before its response was complete")

    def _ended(self) -> None:
        """The application's call is over: forget its task and its timers."""
        task, self.task = self.task, None
        calls = self._calls
        calls.running.discard(task)
        if self._state == WAITING:
            calls.started(self)
        if self._handle is not None:
            calls.deadlines.discard(self)

    @property
    def waiting(self) -> bool:
        """True until the application sends ``http.response.start`` (or fails, or the client
        leaves)."""
        return self._state == WAITING

    # -- receive ---------------------------------------------------------------------------

    async def receive(self) -> Message:
        """ASGI ``receive``: the next piece of the body, then ``http.disconnect`` at the end."""
        if self._state < DONE:
            if self._more:
                return self._next_body()
            waiter = self._waiter
            if waiter is None or waiter.done():
                waiter = self._waiter = asyncio.get_running_loop().create_future()
            await waiter
        return {"type": "http.disconnect"}

    def _next_body(self) -> Message:
        content = self._content
        if content is None:
            content = self._content = self.request.content
            content.seek(0, 2)
            self._size = content.tell()
            content.seek(0)
        data = content.read(BODY_CHUNK) if self._size else b""
        more = self._more = content.tell() < self._size
        return {"type": "http.request", "body": data, "more_body": more}

    # -- send ------------------------------------------------------------------------------

    def send(self, message: Message) -> Awaitable[None]:
        """ASGI ``send``: an awaitable callable, as the specification asks, but no coroutine
        function. A message that needs no waiting (a start, a last body) is acted on in the
        call, which returns a future done already (no coroutine made and run for it, twice
        per response); a body with more to come returns a coroutine that waits while the
        client reads too slowly.

        Raises:
            ClientDisconnected: The client has gone away.
            ProtocolError: The message breaks the ASGI HTTP protocol (the request is answered
                with a 500 page, or cut short, and the error logged).
        """
        if type(message) is dict:
            # (The usual message: compiled, a dict's own look-ups rather than a mapping's
            # methods called by name.)
            fields: dict[str, Any] = message
            kind: object = fields.get("type")
        else:
            try:
                kind = message["type"]
            except (KeyError, TypeError):
                kind = None
            fields = {}
        state = self._state
        if kind == "http.response.body" and state == STARTED and self._trailing < 2:
            if not fields:
                fields = dict(message)
            body = fields.get("body", b"")
            if type(body) is not bytes:
                body = self._as_bytes(body)
            if fields.get("more_body", False):
                return self._more_body(body)
            self._last_body(body)
        elif kind == "http.response.start" and state == WAITING:
            self._start(fields if fields else dict(message))
        elif kind == "http.response.trailers" and state == STARTED and self._trailing:
            self._trailers(fields if fields else dict(message))
        else:
            self._out_of_turn(kind, state)
        return self._calls.done

    def _out_of_turn(self, kind: object, state: int) -> None:
        """Raise what a message the response is not ready for deserves."""
        if state == GONE:
            raise ClientDisconnected("the client has gone away")
        if state == FAILED:
            raise self._raised or ProtocolError("the response has failed already")
        if kind == "http.response.body":
            self._violate(
                "sent http.response.body before http.response.start"
                if state == WAITING
                else "sent http.response.body after its response was complete"
            )
        if kind == "http.response.start":
            self._violate(
                "sent a second http.response.start"
                if state == STARTED
                else "sent http.response.start after its response was complete"
            )
        if kind == "http.response.trailers":
            self._violate(
                "sent http.response.trailers after its response was complete"
                if state == DONE
                else "sent http.response.trailers not announced by its http.response.start"
            )
        self._violate(f"sent {kind!r}, which is no ASGI HTTP response message")

    def _start(self, message: dict[str, Any]) -> None:
        """Put the status and header fields on the request; the head goes out with the
        body, or at the next turn of the loop if no body comes before."""
        status = message.get("status")
        if type(status) is not int or not 200 <= status <= 999:
            status = self._status(status)
        try:
            raw, declared = response_fields(message.get("headers", ()))
        except (TypeError, ValueError) as e:
            self._violate(f"sent http.response.start with a malformed header ({e})")
            raise AssertionError("unreachable") from None  # pragma: no cover
        request = self.request
        core = self._core
        if core is not None:
            # What setResponseCode(status) and the responseHeaders property do, on the fields.
            core.code = status
            core.code_message = None
            headers: Headers | None = core._response_headers
            method = core.method
        else:
            request.setResponseCode(status)
            headers = request.responseHeaders
            method = request.method
        if headers is None or not headers._raw:
            # Checked and lowercased as Headers keeps them: taken as they are.
            if core is not None:
                core._response_headers = Headers._from_raw(raw)
            else:
                request.responseHeaders = Headers._from_raw(raw)
        else:  # set before the application ran (by a resource wrapping this one)
            for name, values in raw.items():
                for value in values:
                    headers.addRawHeader(name, value)
        if b"content-type" not in raw:
            # As uvicorn: no type of the server's choosing on the application's response.
            request.defaultContentType = None
        if message.get("trailers", False):
            self._trailing = 1
        if declared is not None and status != 204 and status != 304 and method != b"HEAD":
            self._remaining = declared
        self._state = STARTED
        calls = self._calls
        calls.waiting.pop(self, None)
        calls.head_soon(self)

    def _status(self, status: object) -> int:
        """``status`` as an int, or the protocol error it is."""
        if isinstance(status, int) and not isinstance(status, bool) and 200 <= status <= 999:
            return int(status)  # an IntEnum (http.HTTPStatus)
        self._violate(f"sent http.response.start with the status {status!r}")
        raise AssertionError("unreachable")  # pragma: no cover

    def send_head(self) -> None:
        """The loop turned after the start and no body came: send the head alone (the body
        follows chunked, unless the application declared its length)."""
        request = self.request
        if self._state == STARTED and not request.startedWriting:
            request.write(b"")
            request.flush_held()

    def _last_body(self, body: bytes) -> None:
        """The response's last body: send it, with the head if it is still here (the usual
        response: one write, with a Content-Length)."""
        request = self.request
        remaining = self._remaining
        if remaining is not None and len(body) != remaining:
            body = self._clip(body)
            if len(body) < remaining:
                request.unregisterProducer()
                self._fail(f"sent {remaining - len(body)} bytes less than its Content-Length")
                return
        if self._trailing:
            self._trailing = 2  # the response ends with its trailers
            if body:
                request.write(body)
            return
        self._state = DONE
        if self._waiter is not None:
            self._wake()
        core = self._core
        if core is not None and not core.startedWriting:
            # The request's own one-write response (what finish() does with a body held),
            # called as its _write_whole would be; then, as unregisterProducer does once the
            # request finished, the request lets go of its producer without telling the
            # channel, which forgot it as the response ended.
            _start_response(core, body, len(body))
            _complete(core)
            core.producer = None
            return
        if not request.startedWriting:
            request._write_whole(body)
        else:
            if body:
                request.write(body)
            request.finish()
        request.unregisterProducer()

    def _trailers(self, message: Message) -> None:
        """``http.response.trailers``: add its fields to the request's; the last ends it."""
        if self._trailing == 1:
            self._violate("sent http.response.trailers before its last http.response.body")
        request = self.request
        try:
            raw, _ = response_fields(message.get("headers", ()))
            trailers = request.responseTrailers
            for name, values in raw.items():
                for value in values:
                    trailers.addRawHeader(name, value)
        except (TypeError, ValueError) as e:
            self._violate(f"sent http.response.trailers with a field it may not carry ({e})")
        if message.get("more_trailers", False):
            return
        self._state = DONE
        if self._waiter is not None:
            self._wake()
        request.finish()
        request.unregisterProducer()

    async def _more_body(self, body: bytes) -> None:
        """A body with more to come: write it, then wait while the client is slow."""
        request = self.request
        if body:
            if self._remaining is not None:
                body = self._clip(body)
                self._remaining -= len(body)
            request.write(body)
        # drain() sends what the request holds back (the head, with this body), so that
        # later writes meet the transport's water marks rather than pile up behind them;
        # waits while the transport is above them; and yields once when the connection is
        # going, so that its loss arrives (writes to it are dropped meanwhile: an
        # application that never awaited anything else would spin).
        await request.drain()
        if self._state == GONE:
            raise ClientDisconnected("the client has gone away")

    def _as_bytes(self, body: object) -> bytes:
        if isinstance(body, bytearray | memoryview):
            return bytes(body)  # Starlette streams memoryviews
        self._violate(f"sent a body of type {type(body).__name__}, not bytes")
        raise AssertionError("unreachable")  # pragma: no cover

    def _clip(self, body: bytes) -> bytes:
        """``body`` cut to what the declared Content-Length still allows."""
        remaining = self._remaining
        assert remaining is not None
        if len(body) > remaining:
            error_log.warning(
                "ASGI application %s sent more than its Content-Length; extra dropped (%s)",
                self._calls.name,
                self._where(),
            )
            body = body[:remaining]
        return body

    # -- the producer the request pauses, resumes and stops ---------------------------------

    def pauseProducing(self) -> None:
        """The transport is full (``send`` waits on ``request.drain()`` for this)."""

    def resumeProducing(self) -> None:
        """The transport drained (``request.drain()`` returns)."""

    def stopProducing(self) -> None:
        """The client left: tell the application, and cancel it if it does not end soon."""
        if self._state > STARTED:
            return
        if self._state == WAITING:
            self._calls.started(self)
        self._state = GONE
        self._wake()
        if self.task is not None:
            self._calls.deadlines.add(self, self._calls.served.disconnectGrace)

    def _wake(self) -> None:
        """Wake a ``receive()`` waiting for the end."""
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # -- timeouts, and failures ------------------------------------------------------------

    def start_timed_out(self, timeout: float | None) -> None:
        """No ``http.response.start`` within ``timeout`` seconds: answer 500, cancel the call."""
        if self._state == WAITING:
            self._fail(f"did not start its response within {timeout:g} s; cancelled")
        self._cancel()

    def _due(self) -> None:
        """The disconnect grace ran out: cancel the call."""
        self._cancel()

    def _cancel(self) -> None:
        task = self.task
        if task is not None and not task.done():
            task.cancel()

    def refuse(self, error: BaseException | None = None) -> None:
        """Answer 500 without running the application.

        Args:
            error: Why calling it failed (logged); None when its lifespan start-up failed,
                which was logged once already.
        """
        if error is None:
            self._logged = True
        self._fail("could not be called", error)

    def _violate(self, what: str) -> None:
        """Answer the protocol error ``what``, and raise it into the application."""
        error = ProtocolError(f"ASGI application {self._calls.name} {what}")
        self._fail(what)
        self._raised = error
        raise error

    def _fail(self, what: str, error: BaseException | None = None) -> None:
        """Answer 500, or cut the response short, and log ``what`` once."""
        state = self._state
        if state == WAITING:
            self._calls.started(self)
        elif state == STARTED and not self.request.startedWriting:
            state = WAITING  # nothing went out yet: a 500 can still be answered
        self._state = FAILED
        self._wake()
        request = self.request
        if state == WAITING:
            outcome = "; answered 500"
        elif state == STARTED:
            outcome = "; response cut short"
        else:
            outcome = ""  # finished (a background task raised) or the client had left
        if not self._logged:
            self._logged = True
            error_log.error(
                "ASGI application %s %s%s (%s)",
                self._calls.name,
                what,
                outcome,
                self._where(),
                exc_info=error,
            )
        if state == WAITING:
            self._answer_500(error)
        elif state == STARTED:
            request.unregisterProducer()
            request.loseConnection()

    def _answer_500(self, error: BaseException | None) -> None:
        request = self.request
        request.unregisterProducer()
        if request.finished or request.startedWriting:
            request.loseConnection()
            return
        request.responseHeaders = Headers()  # nothing of what the application set
        request.setResponseCode(500)
        request.setHeader(b"content-type", b"text/html")
        site = getattr(request, "site", None)
        if error is not None and getattr(site, "displayTracebacks", False):
            text = "".join(traceback.format_exception(type(error), error, error.__traceback__))
            body = traceback_page(text)
        else:
            body = processing_failed_page()
        request.write(body)
        request.finish()

    def _where(self) -> str:
        request = self.request
        return f"{request.method.decode('latin-1')} {request.uri.decode('latin-1')}"


@mypyc_attr(allow_interpreted_subclasses=True)
class Rendering:
    """The per-request part of :class:`~treadle.web.asgi.ASGIResource` (its base class):
    ``render``, compiled, so that a request reaches :func:`serve` without a Python frame of
    the resource's own. The rest of the resource (what ``render`` defers to below) is plain
    Python, in the subclass.

    Attributes:
        app: The ASGI application.
    """

    app: Application
    # The application's lifespan (treadle.web._asgi_lifespan.Lifespan), set by the subclass.
    _lifespan: Any
    # The calls on the loop serving the last request (see ASGIResource._calls_on).
    _http_calls: Calls | None = None

    def render(self, request: Request) -> Any:
        """Start the application for ``request``; the response follows from its messages.

        Returns:
            ``NOT_DONE_YET``.
        """
        calls = self._http_calls
        core = _direct_request(request)
        channel = core._http1 if core is not None else None
        if (
            calls is not None
            and channel is not None
            and channel._deadlines.source is calls.deadlines.source
        ):
            # The connection's timers are on the loop of the last request's calls: this
            # one runs there too (asking asyncio costs a getpid() system call each time).
            loop = calls.loop
        else:
            loop = _running_loop()
            if calls is None or calls.deadlines.source is not loop:
                calls = self._calls_on(loop)
        fields = core.requestHeaders if core is not None else request.requestHeaders
        if fields._has(b"upgrade"):
            return self._render_upgrade(request, loop, calls)
        lifespan = self._lifespan
        phase = lifespan.phase
        if phase in (_RUNNING, _UNSUPPORTED):
            _serve(self.app, request, core, calls, lifespan.state)
            return _NOT_DONE_YET
        return self._render_waiting(request, loop, calls)

    def _calls_on(self, loop: asyncio.AbstractEventLoop) -> Calls:
        """The calls of the application on ``loop`` (made, and kept, by the subclass)."""
        raise NotImplementedError

    def _render_upgrade(
        self, request: Request, loop: asyncio.AbstractEventLoop, calls: Calls
    ) -> Any:
        """Render a request asking to upgrade its connection (the subclass's)."""
        raise NotImplementedError

    def _render_waiting(
        self, request: Request, loop: asyncio.AbstractEventLoop, calls: Calls
    ) -> Any:
        """Render a request that came before the lifespan start-up is done (the subclass's)."""
        raise NotImplementedError


def serve(app: Application, request: Request, calls: Calls, state: dict[str, Any]) -> HTTPCycle:
    """Call ``app`` for ``request`` (its lifespan start-up done) and start its task: the body
    of ``ASGIResource.render`` for the usual request, here to run compiled.

    Returns:
        The request's cycle.
    """
    return _serve(app, request, _direct_request(request), calls, state)


def _serve(
    app: Application,
    request: Request,
    core: RequestCore | None,
    calls: Calls,
    state: dict[str, Any],
) -> HTTPCycle:
    """:func:`serve`, given what :func:`_direct_request` says of ``request``."""
    cycle = HTTPCycle(request, calls)
    if core is not None:
        cycle._core = core
        channel = core._http1
        if (
            channel is not None
            and core.producer is None
            and core._held is None
            and not core.finished
            and not core._disconnected
            and channel._producer is None
            and channel.asyncio_transport is not None
            and _direct_channel(channel)
        ):
            # What request.registerProducer(cycle, True) does, and then the channel's: the
            # usual case of both, on their fields.
            core.producer = cycle
            channel._producer = cycle
            channel._producer_streaming = True
            if channel._writing_paused:
                cycle.pauseProducing()
        else:
            request.registerProducer(cycle, True)
    else:
        request.registerProducer(cycle, True)
    if cycle._state != WAITING:
        return cycle  # the client left already
    scope = http_scope(request, state)
    try:
        call = app(scope, cycle.receive, cycle.send)
        if type(call) is not CoroutineType and not inspect.isawaitable(call):
            raise TypeError(f"it returned {type(call).__name__}, not an awaitable")
    except Exception as e:  # not an ASGI 3 callable, or one that raised at once
        cycle.refuse(e)
        return cycle
    cycle.begin(calls.loop, call)
    return cycle


# Request and channel classes to whether the cycle may act on their fields directly.
_DIRECT_REQUESTS: Final[dict[type, bool]] = {}
_DIRECT_CHANNELS: Final[dict[type, bool]] = {}
# What a request class must take as treadle's Request has them, for the cycle to set its
# fields rather than call these (a subclass overriding one is called, as ever).
_REQUEST_METHODS: Final = (
    "registerProducer",
    "unregisterProducer",
    "setResponseCode",
    "responseHeaders",
    "write",
    "finish",
    "_write_whole",
    "_start_response",
    "_complete",
)
_REQUEST_METHOD_NAMES: Final = frozenset(_REQUEST_METHODS)


class _LastSeen:
    """The request and channel classes met last, and what was found of them: a server sees
    the same two classes request after request (an identity test, not a table look-up)."""

    request_type: object = None
    request_direct = False
    channel_type: object = None
    channel_direct = False


_LAST: Final = _LastSeen()


def _direct_request(request: object) -> RequestCore | None:
    """``request`` as treadle's request, when its class answers the cycle's calls as treadle's
    own :class:`~treadle.web.server.Request` does; None otherwise."""
    cls = type(request)
    last = _LAST
    if cls is last.request_type:
        direct: bool | None = last.request_direct
    else:
        direct = _DIRECT_REQUESTS.get(cls)
    if direct is None:
        from treadle.web.server import Request as Stock

        direct = issubclass(cls, RequestCore) and all(
            getattr(cls, name, None) is getattr(Stock, name) for name in _REQUEST_METHODS
        )
        _DIRECT_REQUESTS[cls] = direct
    last.request_type = cls
    last.request_direct = direct
    if not direct:
        return None
    # An instance may carry its own of these methods too (the shared-session store gives a
    # request its own finish and _write_whole): then they are called, as for a subclass.
    own = getattr(request, "__dict__", None)
    if own and not _REQUEST_METHOD_NAMES.isdisjoint(own):
        return None
    core: RequestCore = request  # type: ignore[assignment]
    return core


def _direct_channel(channel: ChannelCore) -> bool:
    """Whether ``channel``'s class registers producers as treadle's HTTP/1.1 channel does."""
    cls = type(channel)
    last = _LAST
    if cls is last.channel_type:
        return last.channel_direct
    direct = _DIRECT_CHANNELS.get(cls)
    if direct is None:
        from treadle.web._channel import HTTPChannel

        direct = _DIRECT_CHANNELS[cls] = (
            getattr(cls, "registerProducer", None) is HTTPChannel.registerProducer
        )
    last.channel_type = cls
    last.channel_direct = direct
    return direct


def _caused_by_leaving(error: BaseException) -> bool:
    """Whether ``error`` comes of our ClientDisconnected (Starlette re-raises it as its own
    ``ClientDisconnect``): the client left, which is no error of the application's."""
    seen = 0
    current: BaseException | None = error
    while current is not None and seen < 8:
        if isinstance(current, ClientDisconnected):
            return True
        current = current.__cause__ or current.__context__
        seen += 1
    return False
