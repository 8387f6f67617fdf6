"""One HTTP request through an ASGI application: its scope, ``receive()`` and ``send()``.

:func:`http_scope` builds the ``http`` scope (ASGI HTTP spec 2.4) from a request; an
:class:`HTTPCycle` is the request's ``receive``/``send`` pair and the producer registered on
it, and turns the application's messages into ``setResponseCode``/``write``/``finish``.

What goes out. ``http.response.start`` puts the status and headers on the request and makes
the first (empty) ``write``, which the request holds until the loop turns: a start followed
by a last ``http.response.body`` in the same step (the usual response) goes out as one
write with a ``Content-Length``; a start alone (a stream whose first event is not ready)
goes out chunked at the next turn. ``more_body`` bodies are written as they come (the
first of them sends the held head at once), and ``send()`` then awaits ``request.drain()``,
which waits while the connection's send buffer is above its high-water mark: a slow client
slows the application down. Headers the
connection owns (``Transfer-Encoding``, ``Keep-Alive``, ``TE``, ``Trailer``, ``Upgrade``) are
dropped; ``Connection: close`` closes after the response. A body longer than the
application's own ``Content-Length`` is cut to it; a shorter one closes the connection, so
the next response on it is never read as part of this one.

What comes in. The channel has read the whole body before a resource renders (within
``maxRequestBodySize``, spooled to a file past :data:`~treadle.web._parser.SPOOL_SIZE`), as
for every resource; ``receive()`` hands it over in ``http.request`` messages of at most
:data:`BODY_CHUNK` bytes, read when asked for, then waits and returns ``http.disconnect``
once the response is complete or the client has left.

Breaking the protocol. A body before the start, a second start, an unknown message, a
malformed status or header, an exception, a return before the response is complete, or no
start within the resource's ``startTimeout``: the request gets a 500 page if nothing was
sent yet, or its response is cut short (the connection closes) if it was, and one line on
``treadle.error`` names the application and what it did. ``send()`` raises
:class:`ProtocolError` into the application for the protocol errors; an application that
catches it and goes on gets the same error again, and no further log line.

The client leaving. The cycle (the request's producer) is stopped: a pending ``receive()``
returns ``http.disconnect``, ``send()`` raises :class:`ClientDisconnected` (an ``OSError``,
as spec 2.4 asks), and an application still running ``disconnect_grace`` seconds later is
cancelled.
"""

from __future__ import annotations

import asyncio
import logging
import traceback
from typing import TYPE_CHECKING, Any, Final

from treadle.web._asgi_types import Message, Scope
from treadle.web._html import processing_failed_page, traceback_page
from treadle.web.http_headers import Headers

if TYPE_CHECKING:
    from treadle.internet._timers import TimerHeap
    from treadle.web.server import Request

__all__ = [
    "BODY_CHUNK",
    "ClientDisconnected",
    "HTTPCycle",
    "ProtocolError",
    "http_scope",
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

# Fields of the connection, not of the response (RFC 9110 §7.6.1): treadle frames the body
# itself, so an application's framing fields would contradict its own.
_DROPPED: Final = frozenset({b"transfer-encoding", b"keep-alive", b"te", b"trailer", b"upgrade"})

_METHODS: Final = {
    m: m.decode() for m in (b"GET", b"HEAD", b"POST", b"PUT", b"DELETE", b"PATCH", b"OPTIONS")
}
_VERSIONS: Final = {b"HTTP/1.1": "1.1", b"HTTP/1.0": "1.0", b"HTTP/2": "2"}


class ClientDisconnected(ConnectionError):
    """Raised by ``send()`` once the client has gone away (an ``OSError``, as ASGI 2.4 asks)."""


class ProtocolError(RuntimeError):
    """Raised by ``send()`` into an application that broke the ASGI HTTP protocol."""


def http_scope(request: Request, state: dict[str, Any]) -> Scope:
    """The ASGI ``http`` scope of ``request``.

    ``root_path`` is the part of the path traversal consumed to reach the resource (WSGI's
    ``SCRIPT_NAME``) and ``path`` the whole path, root included (as uvicorn's ``--root-path``
    gives it, and as Starlette's routing expects); both percent-decoded, as UTF-8.
    ``raw_path`` is the path as the client sent it. Behind trusted proxies (the site's
    ``proxyHeaders``) ``client``, ``server`` and ``scheme`` describe the client's view.

    Args:
        request: The request being rendered.
        state: The lifespan state; the scope gets a shallow copy.
    """
    prepath = request.prepath
    postpath = request.postpath
    if prepath:
        script = b"/" + b"/".join(prepath)
        rest = b"/" + b"/".join(postpath) if postpath else b""
        if script.endswith(b"/"):
            # Mounted at an empty segment: the root path may not end in "/" (it would be "/"
            # for a root mount, which ASGI spells "" with the path "/"), as for WSGI.
            script, rest = script[:-1], b"/" + rest
        root_path = script.decode("utf-8", "replace")
        path = root_path + rest.decode("utf-8", "replace")
    else:
        root_path = ""
        path = (b"/" + b"/".join(postpath)).decode("utf-8", "replace")
    uri = request.uri
    query = uri.find(b"?")
    method = request.method
    peer = request.getClientAddress()
    host = request.getHost()
    peer_host = getattr(peer, "host", None)
    host_host = getattr(host, "host", None)
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": _VERSIONS.get(request.clientproto)
        or request.clientproto.decode("latin-1").partition("/")[2],
        "method": _METHODS.get(method) or method.decode("latin-1"),
        "scheme": "https" if request.isSecure() else "http",
        "path": path,
        "raw_path": request.path,
        "root_path": root_path,
        "query_string": uri[query + 1 :] if query >= 0 else b"",
        # Names are lowercase already (the parser's dict, read directly: the public
        # getAllRawHeaders would capitalise them only for us to lower them again).
        "headers": [
            (name, value)
            for name, values in request.requestHeaders._raw.items()
            for value in values
        ],
        "client": (peer_host, peer.port) if peer_host is not None else None,  # type: ignore[union-attr]
        "server": (
            (host_host, host.port)  # type: ignore[union-attr]
            if host_host is not None
            else (getattr(host, "name", None), None)
        ),
        "state": dict(state),
    }


class HTTPCycle:
    """The ``receive``/``send`` pair of one request, and its streaming producer (registered
    to learn, through ``stopProducing``, that the client left).

    Args:
        request: The request being answered.
        name: How log lines name the application.
        deadlines: Where the start timeout and the disconnect grace are scheduled.
        disconnect_grace: Seconds the application may run on after its client left.

    Attributes:
        request: As given.
        task: The application's call, once started (None after it ended).
    """

    __slots__ = (
        "_content",
        "_deadlines",
        "_grace",
        "_handle",
        "_logged",
        "_more",
        "_name",
        "_raised",
        "_remaining",
        "_size",
        "_state",
        "_timeout",
        "_waiter",
        "calls",
        "request",
        "task",
    )

    def __init__(
        self, request: Request, name: str, deadlines: TimerHeap, disconnect_grace: float
    ) -> None:
        self.request = request
        self._name = name
        self._deadlines = deadlines
        self._grace = disconnect_grace
        self._handle: Any = None  # our entry in ``deadlines``
        self._timeout: float | None = None
        self._state = WAITING
        self._more = True  # request body still to hand over
        self._content: Any = None
        self._size = 0
        self._remaining: int | None = None  # body bytes the declared Content-Length allows
        self._waiter: asyncio.Future[None] | None = None  # a receive() waiting for the end
        self._raised: ProtocolError | None = None
        self._logged = False
        self.task: asyncio.Task[Any] | None = None
        self.calls: set[asyncio.Task[Any]] | None = None

    def run(
        self, task: asyncio.Task[Any], calls: set[asyncio.Task[Any]], timeout: float | None
    ) -> None:
        """Follow the application's call ``task``; fail it after ``timeout`` without a start.

        Args:
            task: The call.
            calls: The resource's running calls: ``task`` is in it until it ends.
            timeout: Seconds before the start is given up on (None: never).
        """
        self.task = task
        self.calls = calls
        calls.add(task)
        task.add_done_callback(self._ended)
        if timeout and self._state == WAITING:
            self._timeout = timeout
            self._deadlines.add(self, timeout)

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

    async def send(self, message: Message) -> None:
        """ASGI ``send``.

        Raises:
            ClientDisconnected: The client has gone away.
            ProtocolError: The message breaks the ASGI HTTP protocol (the request is answered
                with a 500 page, or cut short, and the error logged).
        """
        state = self._state
        if state >= FAILED:
            if state == GONE:
                raise ClientDisconnected("the client has gone away")
            raise self._raised or ProtocolError("the response has failed already")
        try:
            kind = message["type"]
        except (KeyError, TypeError):
            kind = None
        if kind == "http.response.body":
            if state != STARTED:
                self._violate(
                    "sent http.response.body before http.response.start"
                    if state == WAITING
                    else "sent http.response.body after its response was complete"
                )
            body = message.get("body", b"")
            if type(body) is not bytes:
                body = self._as_bytes(body)
            request = self.request
            if body:
                if self._remaining is not None:
                    body = self._clip(body)
                request.write(body)
            if message.get("more_body", False):
                # drain() sends what the request holds back (see _start), so that later
                # writes meet the transport's water marks rather than pile up behind them;
                # waits while the transport is above them; and yields once when the
                # connection is going, so that its loss arrives (writes to it are dropped
                # meanwhile: an application that never awaited anything else would spin).
                await request.drain()
                if self._state == GONE:
                    raise ClientDisconnected("the client has gone away")
                return
            self._complete()
        elif kind == "http.response.start":
            if state != WAITING:
                self._violate(
                    "sent a second http.response.start"
                    if state == STARTED
                    else "sent http.response.start after its response was complete"
                )
            self._start(message)
        else:
            self._violate(f"sent {kind!r}, which is no ASGI HTTP response message")

    def _start(self, message: Message) -> None:
        status = message.get("status")
        if not isinstance(status, int) or isinstance(status, bool) or not 200 <= status <= 999:
            self._violate(f"sent http.response.start with the status {status!r}")
        request = self.request
        request.setResponseCode(int(status))  # type: ignore[arg-type]  # checked above
        headers = request.responseHeaders
        declared: int | None = None
        typed = False
        try:
            for name, value in message.get("headers", ()):
                if type(name) is not bytes or type(value) is not bytes:
                    raise TypeError("names and values must be bytes")
                name = name.lower()
                if name in _DROPPED:
                    continue
                if name == b"content-length":
                    length = int(value) if value.strip().isdigit() else -1
                    if length < 0 or (declared is not None and length != declared):
                        raise ValueError(f"Content-Length {value!r}")
                    declared = length
                elif name == b"content-type":
                    typed = True
                headers.addRawHeader(name, value)
        except (TypeError, ValueError) as e:
            self._violate(f"sent http.response.start with a malformed header ({e})")
        if not typed:
            # As uvicorn: no type of the server's choosing on the application's response.
            request.defaultContentType = None
        code = request.code
        if declared is not None and request.method != b"HEAD" and code not in (204, 304):
            self._remaining = declared
        self._state = STARTED
        if self._handle is not None:
            self._deadlines.discard(self)
        # Held by the request until the loop turns: a body sent meanwhile joins it.
        request.write(b"")

    def _as_bytes(self, body: object) -> bytes:
        if isinstance(body, bytearray | memoryview):
            return bytes(body)  # Starlette streams memoryviews
        self._violate(f"sent a body of type {type(body).__name__}, not bytes")
        raise AssertionError("unreachable")  # pragma: no cover

    def _clip(self, body: bytes) -> bytes:
        remaining = self._remaining
        assert remaining is not None
        if len(body) > remaining:
            error_log.warning(
                "ASGI application %s sent more than its Content-Length; extra dropped (%s)",
                self._name,
                self._where(),
            )
            body = body[:remaining]
        self._remaining = remaining - len(body)
        return body

    def _complete(self) -> None:
        """The last body went out: finish the response (or cut it if it was too short)."""
        request = self.request
        request.unregisterProducer()
        if self._remaining:
            self._fail(f"sent {self._remaining} bytes less than its Content-Length")
            return
        self._state = DONE
        self._wake()
        request.finish()

    # -- the producer the request pauses, resumes and stops ---------------------------------

    def pauseProducing(self) -> None:
        """The transport is full (``send`` waits on ``request.drain()`` for this)."""

    def resumeProducing(self) -> None:
        """The transport drained (``request.drain()`` returns)."""

    def stopProducing(self) -> None:
        """The client left: tell the application, and cancel it if it does not end soon."""
        if self._state > STARTED:
            return
        self._state = GONE
        self._wake()
        if self._handle is not None:
            self._deadlines.discard(self)
        if self.task is not None:
            self._deadlines.add(self, self._grace)

    def _wake(self) -> None:
        """Wake a ``receive()`` waiting for the end."""
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # -- the end of the call, and timeouts ------------------------------------------------

    def _due(self) -> None:
        """The start timeout ran out, or the disconnect grace did."""
        task = self.task
        if self._state == WAITING:
            self._fail(f"did not start its response within {self._timeout:g} s; cancelled")
        if task is not None and not task.done():
            task.cancel()

    def _ended(self, task: asyncio.Task[Any]) -> None:
        """The application's call returned, raised or was cancelled."""
        self.task = None
        if self.calls is not None:
            self.calls.discard(task)
        if self._handle is not None:
            self._deadlines.discard(self)
        state = self._state
        if task.cancelled():
            if state < DONE:
                self._fail("was cancelled before its response was complete")
            return
        error = task.exception()
        if error is None:
            if state == WAITING:
                self._fail("returned without sending http.response.start")
            elif state == STARTED:
                self._fail("returned before its response was complete")
            return
        if error is self._raised or (state == GONE and _caused_by_leaving(error)):
            return
        self._fail("raised an exception", error)

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
        error = ProtocolError(f"ASGI application {self._name} {what}")
        self._fail(what)
        self._raised = error
        raise error

    def _fail(self, what: str, error: BaseException | None = None) -> None:
        """Answer 500, or cut the response short, and log ``what`` once."""
        state = self._state
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
                self._name,
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
