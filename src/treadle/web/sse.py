"""Server-Sent Events: a resource that answers ``text/event-stream`` and keeps the request open.

Twisted has no counterpart; this is treadle's own, written in Twisted's style (a
:class:`~treadle.web.resource.Resource` whose render returns ``NOT_DONE_YET``, Deferreds,
``notifyFinish``) and open to ``async`` code. Its names follow the camelCase of the
``twisted.web`` objects it is used with.

Twisted style: subclass :class:`EventSource` and start each stream in :meth:`startStream`::

    class Clock(EventSource):
        def startStream(self, stream):
            loop = task.LoopingCall(lambda: stream.send(time.strftime("%H:%M:%S")))
            stream.notifyFinish().addBoth(lambda _: loop.running and loop.stop())
            loop.start(1.0)

Async style: give :class:`EventSource` a function of the stream that returns an async
iterable of events (an ``async def`` generator); each item is sent as it comes, the next is
not asked for while the client is behind, and the stream ends when the iterable does::

    async def clock(stream):
        while True:
            yield Event(time.strftime("%H:%M:%S"), event="tick")
            await asyncio.sleep(1)

    resource = EventSource(clock)

What every stream does:

- **Headers**: ``Content-Type: text/event-stream``, ``Cache-Control: no-cache`` and
  ``X-Accel-Buffering: no`` (nginx's switch for its response buffering), sent at once so the
  browser's ``open`` fires without waiting for the first event. The stream is never
  content-coded: :class:`~treadle.web.server.GzipEncoderFactory` leaves ``text/event-stream``
  alone (a proxy or browser might hold compressed bytes back).
- **Resumption**: :attr:`EventStream.lastEventID` is the ``Last-Event-ID`` a reconnecting
  browser sent: the id of the last event it received. Replaying what came after it is the
  application's business (only it knows its events).
- **Heartbeats**: after ``heartbeat`` seconds (15 by default) without a byte written, a
  comment line goes out, so proxies and load balancers (nginx's ``proxy_read_timeout`` and
  AWS's idle timeout are 60 s) do not close a quiet stream, and a client that has gone away
  is noticed.
- **The end**: when the client goes away, :meth:`EventStream.notifyFinish` errbacks (its
  connection error), the heartbeat stops and an async source is cancelled (its ``finally``
  runs). When the server shuts down gracefully (``treadle web`` on SIGTERM,
  :meth:`~treadle.web.http.HTTPFactory.shutdown`) every stream is finished at once, so
  shutdown does not wait out its grace period for streams that never end; browsers then
  reconnect, to the next server, after their ``retry`` delay.
- **Backpressure**: while the client reads more slowly than events are sent, the
  connection's transport pauses the stream (it is the request's push producer) and events
  wait in the stream's queue. The queue is bounded by ``maxQueuedBytes`` (256 KiB by
  default): a client that falls further behind is **disconnected**, with a warning in the
  ``treadle.error`` log. Disconnecting rather than dropping events keeps what a client
  receives a true prefix of what was sent: the browser reconnects with the
  ``Last-Event-ID`` of the last event it did receive, and the application can resume from
  there. An application whose events replace each other (a clock, a price) can instead
  skip sending while :attr:`EventStream.paused` is true; an async source is simply not
  asked for its next event until the client has caught up.

The wire format and its escaping rules are in :mod:`treadle.web._sse_wire`.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import AsyncIterable, Callable
from typing import Any, Final

from treadle.internet.defer import Deferred
from treadle.python.failure import Failure
from treadle.web._sse_wire import HEARTBEAT, Event, encode_comment, last_event_id
from treadle.web.resource import Resource
from treadle.web.server import NOT_DONE_YET, Request

__all__ = [
    "DEFAULT_HEARTBEAT",
    "DEFAULT_MAX_QUEUED_BYTES",
    "Event",
    "EventSource",
    "EventStream",
]

error_log = logging.getLogger("treadle.error")

#: Seconds of silence before a heartbeat comment: well under the 60 s idle timeouts of
#: nginx (``proxy_read_timeout``) and AWS load balancers, and the 55 s of Heroku's router.
DEFAULT_HEARTBEAT: Final = 15.0
#: Bytes of events a stream keeps for a client that is not reading, beyond what the
#: transport buffers (64 KiB): a few hundred typical events. More, and the client is cut off.
DEFAULT_MAX_QUEUED_BYTES: Final = 256 * 1024

_RESPONSE_HEADERS: Final = (
    (b"content-type", b"text/event-stream"),
    # Caches and the browser's own must not keep or replay a stream (WHATWG HTML §9.2.8).
    (b"cache-control", b"no-cache"),
    # nginx buffers proxied responses unless the upstream says this.
    (b"x-accel-buffering", b"no"),
)

#: What :class:`EventSource` calls with each new stream (see :meth:`EventSource.startStream`).
Handler = Callable[["EventStream"], object]


class _Producer:
    """The stream as the request's push producer: the transport pauses and resumes it."""

    __slots__ = ("_stream",)

    def __init__(self, stream: EventStream) -> None:
        self._stream = stream

    def pauseProducing(self) -> None:
        self._stream._pause()

    def resumeProducing(self) -> None:
        self._stream._resume()

    def stopProducing(self) -> None:
        self._stream._end()


class EventStream:
    """One client's event stream: the open response of one request.

    Making one starts the response (status 200 and the headers of the module
    documentation, sent at once); call it from a render method that then returns
    ``NOT_DONE_YET``, or let :class:`EventSource` do both.

    Args:
        request: The request to answer.
        heartbeat: Seconds without a write after which a comment is sent; None or 0: never.
        retry: Milliseconds the browser should wait before reconnecting, sent first; None
            leaves the browser's default (a few seconds).
        maxQueuedBytes: Bytes kept for a client that reads too slowly before it is
            disconnected (see the module documentation).
        reactor: Runs the heartbeat timer (``callLater``, ``seconds``): by default the
            site's reactor (a ``task.Clock`` in tests).

    Attributes:
        request: The request being answered.
        lastEventID: The id the client resumes from (its ``Last-Event-ID``), or None for a
            new client.
    """

    # Many streams stay open at once: no __dict__ for each.
    __slots__ = (
        "__weakref__",
        "_clock",
        "_closing",
        "_drained",
        "_ended",
        "_forget_shutdown",
        "_heartbeat",
        "_last_write",
        "_paused",
        "_queue",
        "_queued",
        "_registering",
        "_task",
        "_timer",
        "lastEventID",
        "maxQueuedBytes",
        "request",
    )

    def __init__(
        self,
        request: Request,
        *,
        heartbeat: float | None = DEFAULT_HEARTBEAT,
        retry: int | None = None,
        maxQueuedBytes: int = DEFAULT_MAX_QUEUED_BYTES,
        reactor: Any = None,
    ) -> None:
        self.request = request
        self.lastEventID: str | None = last_event_id(
            request.requestHeaders.getRawHeaders(b"last-event-id")
        )
        self.maxQueuedBytes = maxQueuedBytes
        site = getattr(request, "site", None)
        self._clock = reactor if reactor is not None else _reactor_of(site)
        self._heartbeat = heartbeat or None
        self._registering = False
        self._closing = False  # no more events: close() or overflow began
        self._ended = False  # the response is over, either way
        self._paused = False
        self._queue: list[bytes] = []
        self._queued = 0
        self._drained: asyncio.Future[None] | None = None
        self._timer: Any = None
        self._task: asyncio.Task[None] | None = None
        self._last_write = 0.0
        self._forget_shutdown: Callable[[], None] | None = None

        for name, value in _RESPONSE_HEADERS:
            request.setHeader(name, value)
        request.notifyFinish().addBoth(self._finished)
        # The first write is held back until the loop turns; registering the producer sends
        # it (and the head) now, so the client's "open" comes at once.
        request.write(b"" if retry is None else bytes(Event(retry=retry)))
        self._registering = True
        request.registerProducer(_Producer(self), True)
        self._registering = False
        if self._heartbeat is not None and not self._ended:
            self._last_write = self._clock.seconds()
            self._timer = self._clock.callLater(self._heartbeat, self._beat)
        on_shutdown = getattr(site, "on_shutdown", None)
        if on_shutdown is not None and not self._ended:
            self._forget_shutdown = on_shutdown(self.close)

    # -- what applications call ---------------------------------------------------------------

    @property
    def closed(self) -> bool:
        """True once the stream takes no more events (closed, cut off, or the client left)."""
        return self._closing or self._ended

    @property
    def queuedBytes(self) -> int:
        """Bytes of events waiting for a slow client (at most ``maxQueuedBytes``)."""
        return self._queued

    @property
    def paused(self) -> bool:
        """True while the client is behind: events sent now wait in the queue."""
        return self._paused and not self.closed

    def send(
        self,
        data: str | None = None,
        *,
        event: str | None = None,
        id: str | None = None,
        retry: int | None = None,
    ) -> bool:
        """Send one event made of these fields (see :class:`Event` for each).

        Returns:
            True when the event was written or queued; False when the stream is closed (the
            event is dropped) or when queueing it went over ``maxQueuedBytes`` (the client
            is then disconnected).

        Raises:
            ValueError: A field would break the stream's framing (see :class:`Event`).
        """
        return self._write(bytes(Event(data, event, id, retry)))

    def sendEvent(self, event: Event | str) -> bool:
        """Send an :class:`Event` (a ``str`` is the data of a default-type event).

        Returns:
            As :meth:`send`.
        """
        if isinstance(event, str):
            event = Event(event)
        return self._write(bytes(event))

    def sendComment(self, text: str = "") -> bool:
        """Send comment lines: the client ignores them (heartbeats are empty comments).

        Returns:
            As :meth:`send`.
        """
        return self._write(encode_comment(text))

    def close(self) -> None:
        """End the stream: send what is queued, then finish the response.

        A browser reconnects after its ``retry`` delay; to stop it, answer its next request
        with 204 No Content (WHATWG HTML §9.2.3), e.g. from an :class:`EventSource`
        subclass's ``render_GET``. Closing an ended stream does nothing.
        """
        if self.closed:
            return
        self._closing = True
        request = self.request
        if self._queue:
            request.write(b"".join(self._queue))
            self._queue.clear()
            self._queued = 0
        request.unregisterProducer()
        request.finish()

    def notifyFinish(self) -> Deferred[None]:
        """Return a Deferred that fires when the stream ends.

        It fires with None when the server ended it (:meth:`close`, an async source that
        ran out, shutdown) and errbacks with the connection error when the client went away
        or was disconnected (a :class:`~treadle.internet.error.ConnectionAborted` for one
        that fell too far behind). Use ``addBoth`` to stop producing either way.
        """
        return self.request.notifyFinish()

    async def drained(self) -> None:
        """Wait until the client has caught up (returns at once when it has, or the stream
        is closed): what an ``async`` producer awaits between events."""
        if not self.paused:
            return
        waiter = self._drained
        if waiter is None:
            waiter = self._drained = asyncio.get_running_loop().create_future()
        # Shielded: one waiter cancelled must not cancel the future the others wait on.
        await asyncio.shield(waiter)

    # -- internals ----------------------------------------------------------------------------

    def _write(self, data: bytes) -> bool:
        if self._closing or self._ended:
            return False
        if self._paused:
            self._queued += len(data)
            if self._queued > self.maxQueuedBytes:
                self._overflow()
                return False
            self._queue.append(data)
            return True
        self.request.write(data)
        if self._heartbeat is not None:
            self._last_write = self._clock.seconds()
        return True

    def _beat(self) -> None:
        """The heartbeat timer: a comment after ``heartbeat`` seconds of silence."""
        self._timer = None
        if self.closed:
            return
        assert self._heartbeat is not None
        now = self._clock.seconds()
        due = self._last_write + self._heartbeat
        # A paused stream is not quiet: the client has bytes to read already.
        if now >= due and not self._paused:
            self.request.write(HEARTBEAT)
            self._last_write = now
            due = now + self._heartbeat
        elif now >= due:
            due = now + self._heartbeat
        self._timer = self._clock.callLater(due - now, self._beat)

    def _pause(self) -> None:
        self._paused = True

    def _resume(self) -> None:
        if self._registering:
            # Asked for data while being registered: this request pulls from every producer
            # until it unregisters (Twisted's DummyRequest does), which would never end. An
            # event stream has nothing to pull: it writes as events come.
            self.request.unregisterProducer()
            return
        self._paused = False
        if self.closed:
            return
        if self._queue:
            data = b"".join(self._queue)
            self._queue.clear()
            self._queued = 0
            # This write may pause the stream again; the queue is empty either way.
            self.request.write(data)
            if self._heartbeat is not None:
                self._last_write = self._clock.seconds()
        if not self._paused:
            self._wake()

    def _overflow(self) -> None:
        """The client fell more than ``maxQueuedBytes`` behind: cut it off."""
        self._closing = True
        queued, self._queued = self._queued, 0
        self._queue.clear()
        request = self.request
        error_log.warning(
            "event stream %s to %s: the client is too slow (%d bytes queued, more than "
            "maxQueuedBytes=%d); disconnecting it",
            request.uri.decode("latin-1"),
            _client(request),
            queued,
            self.maxQueuedBytes,
        )
        _cut_off(request)

    def _finished(self, result: object) -> None:
        """The response is over: finished, or the connection lost."""
        self._end()
        # The failure (client left) is the application's to see through notifyFinish().

    def _end(self) -> None:
        if self._ended:
            return
        self._ended = True
        self._queue.clear()
        self._queued = 0
        if self._timer is not None:
            if self._timer.active():
                self._timer.cancel()
            self._timer = None
        forget, self._forget_shutdown = self._forget_shutdown, None
        if forget is not None:
            forget()
        task, self._task = self._task, None
        # Not the task that is ending the stream itself: it is on its way out already, and
        # a cancel would interrupt the clean-up of its source.
        if task is not None and not task.done() and task is not _current_task():
            task.cancel()
        self._wake()

    def _wake(self) -> None:
        waiter, self._drained = self._drained, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _follow(self, result: object) -> None:
        """Let what an :class:`EventSource` handler returned drive the stream."""
        if result is None:
            return
        if isinstance(result, Deferred):
            self._follow_deferred(result)
        elif isinstance(result, AsyncIterable):
            self._run(self._pump(result))
        elif inspect.isawaitable(result):
            self._run(self._await(result))
        else:
            error_log.error(
                "event stream %s: the handler returned %r, not None, an async iterable, an "
                "awaitable or a Deferred",
                self.request.uri.decode("latin-1"),
                result,
            )
            self.close()

    def _run(self, coroutine: Any) -> None:
        if self.closed:
            coroutine.close()
            return
        self._task = asyncio.get_running_loop().create_task(coroutine)

    def _follow_deferred(self, result: Deferred[Any]) -> None:
        def done(_: object) -> None:
            self.close()

        def failed(failure: Failure) -> None:
            if not self._ended:
                self._failed(failure.value)

        def stop(_: object) -> None:
            if not result.called:
                result.cancel()

        result.addCallbacks(done, failed)
        self.notifyFinish().addBoth(stop)

    async def _pump(self, events: AsyncIterable[Event | str]) -> None:
        iterator = aiter(events)
        try:
            async for item in iterator:
                if not self.sendEvent(item):
                    break
                if self._paused:
                    await self.drained()
        except Exception as e:
            self._failed(e)
        finally:
            aclose = getattr(iterator, "aclose", None)
            if aclose is not None:
                await aclose()
        self.close()

    async def _await(self, awaitable: Any) -> None:
        try:
            await awaitable
        except Exception as e:
            self._failed(e)
        self.close()

    def _failed(self, error: BaseException) -> None:
        error_log.error(
            "event stream %s: the event source failed; ending the stream",
            self.request.uri.decode("latin-1"),
            exc_info=error,
        )
        self.close()


class EventSource(Resource):
    """A resource answering ``GET`` with an event stream (an :class:`EventStream` each).

    ``HEAD`` gets the stream's headers and no body; other methods get 405. The resource is
    a leaf: path segments below it reach it too (``request.postpath``).

    Args:
        handler: Called with each new :class:`EventStream` by the default
            :meth:`startStream`; see there for what it may return.
        heartbeat: Seconds of silence before a heartbeat comment; None: never.
        retry: Reconnection delay in milliseconds sent at the start of each stream; None
            leaves the browser's default.
        maxQueuedBytes: Bytes kept for a slow client before it is disconnected.
    """

    isLeaf = True

    def __init__(
        self,
        handler: Handler | None = None,
        *,
        heartbeat: float | None = DEFAULT_HEARTBEAT,
        retry: int | None = None,
        maxQueuedBytes: int = DEFAULT_MAX_QUEUED_BYTES,
    ) -> None:
        super().__init__()
        if retry is not None:
            Event(retry=retry)  # refuse a bad value now rather than at each request
        self.handler = handler
        self.heartbeat = heartbeat
        self.retry = retry
        self.maxQueuedBytes = maxQueuedBytes

    def startStream(self, stream: EventStream) -> object:
        """Start producing events on a new ``stream``; override it, or give a handler.

        The default calls the handler with the stream and lets its result drive it:

        - None: the handler keeps the stream and sends on it (Twisted style); the stream
          stays open until :meth:`EventStream.close`, the client leaves or shutdown.
        - an async iterable (``async def`` generator) of :class:`Event` or ``str``: each
          item is sent; the next is asked for only once the client has caught up; the
          stream closes when it is exhausted. It is cancelled if the stream ends first.
        - an awaitable (a coroutine sending on the stream) or a Deferred: the stream closes
          when it completes, and it is cancelled if the stream ends first.

        An exception from the handler or its result is logged and ends the stream.

        Args:
            stream: The new stream; ``stream.lastEventID`` says where the client resumes.

        Returns:
            What drives the stream, as above.
        """
        if self.handler is None:
            raise NotImplementedError(
                f"{type(self).__name__} needs a handler or its own startStream()"
            )
        return self.handler(stream)

    def render_GET(self, request: Request) -> object:
        """Start the event stream of ``request`` and keep it open (``NOT_DONE_YET``)."""
        stream = EventStream(
            request,
            heartbeat=self.heartbeat,
            retry=self.retry,
            maxQueuedBytes=self.maxQueuedBytes,
        )
        try:
            result = self.startStream(stream)
        except Exception as e:
            stream._failed(e)
            return NOT_DONE_YET
        stream._follow(result)
        return NOT_DONE_YET

    def render_HEAD(self, request: Request) -> bytes:
        """The headers of a stream, without one."""
        for name, value in _RESPONSE_HEADERS:
            request.setHeader(name, value)
        return b""


def _reactor_of(site: object) -> Any:
    reactor = getattr(site, "reactor", None)
    if reactor is None:
        from treadle.internet import reactor
    return reactor


def _cut_off(request: Request) -> None:
    """Drop ``request``'s connection at once, discarding what it has not sent."""
    abort = getattr(request.transport, "abortConnection", None)
    if abort is None:  # a transport of another kind (an HTTP/2 stream): its channel's abort
        abort = getattr(request.channel, "abort", None)
    if abort is not None:
        abort()
    else:
        request.loseConnection()


def _current_task() -> asyncio.Task[Any] | None:
    try:
        return asyncio.current_task()
    except RuntimeError:  # no loop running: a stream driven by hand
        return None


def _client(request: Request) -> str:
    address = request.getClientAddress()
    host = getattr(address, "host", None)
    return str(address) if host is None else f"{host}:{getattr(address, 'port', '')}"
