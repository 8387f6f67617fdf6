"""The parts of the HTTP/1.1 channel off the per-request path.

:class:`ChannelExtras` is mixed into :class:`~treadle.web._channel.HTTPChannel`:

- the transport's calls that come once per connection or under backpressure
  (``connection_lost``, ``eof_received``, ``pause_writing``, ``resume_writing``);
- Twisted's ``IConsumer`` for the response being answered (push and pull producers, paced by
  the transport's flow control), and ``drain`` for ``async`` writers;
- what the channel answers without a request object: a refusal (see
  :func:`~treadle.web._channel_common.refusal`), and a request object of Twisted's interface
  only;
- ending the connection (``loseConnection``, ``abort``, ``close_when_idle``), its addresses,
  and the connection as a Twisted transport (``channel.transport``, ``channel.site``).

None of it is on the per-request path of a keep-alive connection, so this stays plain Python
while the channel's state machine is compiled.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable
from typing import Any

from treadle.internet.address import IPv4Address, IPv6Address, UNIXAddress, from_sockname
from treadle.internet.error import ConnectionAborted, ConnectionDone, ConnectionLost
from treadle.web._channel_common import Rejection, refusal
from treadle.web._channel_transport import ChannelTransport
from treadle.web._parser import Message
from treadle.web._state import ABORT, ABORTED, LOST, REFUSAL_SENT, STOP, UPGRADED
from treadle.web._twisted_channel import InterfaceRequest

__all__ = ["ChannelExtras"]

error_log = logging.getLogger("treadle.error")


class ChannelExtras:
    """What :class:`~treadle.web._channel.HTTPChannel` does off its per-request path (see
    the module docstring)."""

    # What this reads and calls of the channel (annotations only: the channel's own
    # attributes and methods, which must not be hidden).
    _drop_queue: Callable[[], None]
    _dispatch: Callable[[], None]
    _queue: list[Any] | None
    _reading_paused: bool
    _paused_at: float
    _parser: Any
    _handle: Any
    _deadlines: Any
    _state: int
    _upgrade: Any
    _peer: Any
    _host: Any
    _enter: Callable[[int], int]
    _close: Callable[[], None]
    _resume_reading: Callable[[], None]
    uncork: Callable[[], None]
    factory: Any
    asyncio_transport: Any
    _twisted_transport: Any
    call_soon: Callable[[Callable[[], object]], object]
    _active: Any
    _producer: Any
    _producer_streaming: bool
    _writing_paused: bool
    _drain_waiter: asyncio.Future[None] | None
    _last_activity: float
    _now: Callable[[], float]

    # -- the connection as Twisted sees it --------------------------------------------------

    @property
    def site(self) -> Any:
        """The factory that made the channel (Twisted's ``channel.site``)."""
        return self.factory

    @site.setter
    def site(self, value: Any) -> None:
        self.factory = value

    @property
    def transport(self) -> ChannelTransport | None:
        """The connection as Twisted's ``ITCPTransport`` (None before it is made).

        ``loseConnection`` sends what the response being answered holds, then closes;
        ``abortConnection`` drops the connection at once; ``getPeer``/``getHost`` give address
        objects; producers registered here feed the response being answered. Writing to it
        puts bytes on the wire as they are, after what the response already wrote.
        """
        twisted = self._twisted_transport
        if twisted is None:
            raw = self.asyncio_transport
            if raw is None:
                return None
            twisted = self._twisted_transport = ChannelTransport(raw, self)
        return twisted  # type: ignore[no-any-return]

    # -- the transport's calls (asyncio.Protocol) off the per-request path ------------------

    def connection_lost(self, exc: Exception | None) -> None:
        aborted = self._state == ABORTED
        self._enter(LOST)
        self.factory.connection_closed(self)
        parser, self._parser = self._parser, None
        if parser is not None:
            parser.discard()  # stopped inside a message (or after a refusal)
        if self._handle is not None:
            self._deadlines.discard(self)
        self._drop_queue()
        producer, self._producer = self._producer, None
        if producer is not None:
            try:
                producer.stopProducing()
            except Exception:
                error_log.exception("error stopping producer %r", producer)
        active, self._active = self._active, None
        if active is not None:
            reason: Exception
            if aborted:
                reason = ConnectionAborted()
            elif exc is None:
                reason = ConnectionDone()
            else:
                reason = ConnectionLost(exc)
            active.connectionLost(reason)
        waiter, self._drain_waiter = self._drain_waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        twisted = self._twisted_transport
        if isinstance(twisted, ChannelTransport):
            twisted._lost()
        self.asyncio_transport = None
        upgrade, self._upgrade = self._upgrade, None
        if upgrade is not None and type(upgrade) is not bytearray:
            upgrade.connection_lost(ConnectionAborted() if aborted else exc)

    def eof_received(self) -> bool | None:
        if self._state == UPGRADED:
            return self._upgrade.eof_received()  # type: ignore[no-any-return]
        # A client that half-closes is treated as gone, as Twisted does: a response still
        # being produced for it is abandoned and its notifyFinish Deferreds errback.
        return None

    def pause_writing(self) -> None:
        if self._state == UPGRADED:
            self._upgrade.pause_writing()
            return
        self._writing_paused = True
        self._paused_at = self._now()
        if self._producer is not None and self._producer_streaming:
            self._call_producer(self._producer.pauseProducing)

    def resume_writing(self) -> None:
        if self._state == UPGRADED:
            self._upgrade.resume_writing()
            return
        self._writing_paused = False
        waiter, self._drain_waiter = self._drain_waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        if self._active is None:
            # Pipelined requests waited for the client to read, or reading did (see
            # _dispatch).
            if self._queue or self._reading_paused:
                self._dispatch()
            return
        producer = self._producer
        if producer is not None:
            if self._producer_streaming:
                self._call_producer(producer.resumeProducing)
            else:
                self._pull_more(producer)

    # -- producers (Twisted's IConsumer, for the request being answered) --------------------

    def registerProducer(self, producer: Any, streaming: bool) -> None:
        """Let ``producer`` feed the response being answered, paced by the transport.

        Args:
            producer: Has ``pauseProducing``/``resumeProducing``/``stopProducing`` (push,
                ``streaming=True``) or ``resumeProducing``/``stopProducing`` (pull: called
                whenever more data is wanted).
            streaming: Which of the two it is.

        Raises:
            RuntimeError: A producer is already registered.
        """
        if self._producer is not None:
            raise RuntimeError(f"a producer is already registered: {self._producer!r}")
        if self.asyncio_transport is None:
            producer.stopProducing()
            return
        self._producer = producer
        self._producer_streaming = streaming
        if streaming:
            if self._writing_paused:
                producer.pauseProducing()
        elif not self._writing_paused:
            self.call_soon(functools.partial(self._pull_more, producer))

    def unregisterProducer(self) -> None:
        """Detach the producer (no-op when none)."""
        self._producer = None

    def _call_producer(self, method: Callable[[], object]) -> None:
        """Call a producer's method; an error in it is logged and drops this connection only."""
        try:
            method()
        except Exception:
            error_log.exception("error in producer of %r", self._active)
            self.abort()

    def _pull_more(self, producer: Any) -> None:
        """Drive a pull producer: ask for more while it stays registered and writing is open."""
        if self._producer is not producer or self._writing_paused:
            return
        self._call_producer(producer.resumeProducing)
        if (
            self._producer is producer
            and not self._writing_paused
            and self.asyncio_transport is not None
        ):
            self.call_soon(functools.partial(self._pull_more, producer))

    async def drain(self) -> None:
        """Wait until the transport's buffer is below its low-water mark."""
        transport = self.asyncio_transport
        if transport is None:
            return
        if transport.is_closing():
            # The connection is going (its connection_lost is scheduled, not yet delivered):
            # yield once so that it arrives and later writes are ignored, rather than sent
            # at a dead socket in a loop that never gives the event loop a turn.
            await asyncio.sleep(0)
            return
        if not self._writing_paused:
            return
        waiter = self._drain_waiter
        if waiter is None:
            waiter = self._drain_waiter = asyncio.get_running_loop().create_future()
        await asyncio.shield(waiter)

    # -- what the channel answers by itself -------------------------------------------------

    def _send_rejection(self, rejection: Rejection) -> None:
        transport = self.asyncio_transport
        if transport is None:
            return
        self.uncork()
        transport.write(refusal(rejection.code))
        can_write_eof = getattr(transport, "can_write_eof", None)
        if rejection.code in (408, 503) or can_write_eof is None or not can_write_eof():
            # A client too slow to send its head, or one we will not serve at all, gets no
            # grace; nor does a transport that cannot half-close (TLS).
            self._close()
            return
        # Lingering close (RFC 9112 §9.6): closing with unread request bytes would make the
        # kernel send a reset that can destroy the response before the client reads it. So
        # send our FIN, drop what still arrives, and close after lingerTime or at its EOF.
        transport.write_eof()
        self._enter(REFUSAL_SENT)
        self._last_activity = self._now()
        self._resume_reading()

    def _answer_otherwise(self, request: Any, message: Message) -> bool:
        """After ``receive_message`` raised: answer through Twisted's interface, or give up.

        A request object without ``receive_message`` (one of Twisted's interface only) is
        driven by :class:`~treadle.web._twisted_channel.InterfaceRequest`. Anything else is
        a bug in a request or its factory (requests answer their own errors): the
        connection cannot be trusted any more. Returns whether answering went on.
        """
        if not hasattr(request, "receive_message"):
            adapter = InterfaceRequest(request, self)
            if self._active is request:
                self._active = adapter
            try:
                adapter.receive_message(message)
            except Exception:
                error_log.exception("unhandled error answering %r", request)
                self.abort()
                return False
            return True
        error_log.exception("unhandled error answering %r", request)
        self.abort()
        return False

    # -- ending the connection (Twisted's names) --------------------------------------------

    def close_when_idle(self) -> None:
        """Finish the response in progress (if any), then close; close at once when idle.

        Requests queued behind the one in progress are dropped unanswered. An upgraded
        connection is asked to end by its protocol (``close_when_idle``: a WebSocket sends
        its close frame, ``1001``).
        """
        if self._state == UPGRADED:
            self._upgrade.close_when_idle()
            return
        self._enter(STOP)
        self._drop_queue()
        if self._active is None and self.asyncio_transport is not None:
            self._close()

    def loseConnection(self) -> None:
        """Close after sending what was written so far, including a response's held start."""
        active = self._active
        if active is not None:
            active.flush_held()
        self._enter(STOP)
        self._drop_queue()
        self._close()

    def abort(self) -> None:
        """Drop the connection at once, discarding unsent data (Twisted's abortConnection).

        The request in progress, if any, learns of a
        :class:`~treadle.internet.error.ConnectionAborted`.
        """
        if self._enter(ABORT) == ABORTED and self.asyncio_transport is not None:
            # Responses held for the loop's next turn were finished: they go out first, as
            # they would have had each been written at once.
            self.uncork()
            self.asyncio_transport.abort()

    def abortConnection(self) -> None:
        """Twisted's name for :meth:`abort`."""
        self.abort()

    # -- addresses --------------------------------------------------------------------------

    def peer_address(self) -> IPv4Address | IPv6Address | UNIXAddress:
        """The client's address (computed once)."""
        if self._peer is None:
            transport = self.asyncio_transport
            self._peer = from_sockname(
                transport.get_extra_info("peername") if transport is not None else None
            )
        return self._peer  # type: ignore[no-any-return]

    def host_address(self) -> IPv4Address | IPv6Address | UNIXAddress:
        """Our own address on this connection (computed once)."""
        if self._host is None:
            transport = self.asyncio_transport
            self._host = from_sockname(
                transport.get_extra_info("sockname") if transport is not None else None
            )
        return self._host  # type: ignore[no-any-return]
