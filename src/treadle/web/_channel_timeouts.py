"""How one timer per HTTP/1.1 connection enforces every timeout, by state.

:class:`TimeoutsMixin` is mixed into :class:`~treadle.web._channel.HTTPChannel`. A connection
has one entry in its loop's deadline heap (:class:`~treadle.internet._timers.TimerHeap`);
when it comes due the heap calls :meth:`TimeoutsMixin._due`, which looks at the state the
connection is in, acts if its deadline passed, and re-arms the entry. That runs once per
timer period per connection, never per request, so it stays plain Python while the
channel's state machine is compiled.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from treadle.web._channel_common import ChannelFactory
from treadle.web._state import (
    ABORTED,
    BODY,
    CLOSING,
    CONTINUE,
    DONE,
    HEAD,
    LINGER,
    UPGRADED,
    UPGRADING,
)

__all__ = ["TimeoutsMixin"]


class TimeoutsMixin:
    """The timeouts of :class:`~treadle.web._channel.HTTPChannel` (see the module docstring)."""

    # What this reads and calls of the channel (annotations only: the channel's own
    # attributes and methods, which must not be hidden).
    abort: Callable[[], None]
    _close: Callable[[], None]
    _reject: Callable[[int, str], None]
    _dispatch: Callable[[], None]
    asyncio_transport: Any
    _settings: Any
    _state: int
    _active: Any
    _parser: Any
    _handle: Any
    _deadlines: Any
    _now: Callable[[], float]
    _unsent: int
    _last_activity: float
    _writing_paused: bool
    _paused_at: float
    _head_started: float
    _body_started: float
    _connected_at: float
    _requests_seen: int

    def _timer_period(self) -> float:
        factory: ChannelFactory = self._settings
        return min(factory.timeOut, factory.headTimeout, factory.bodyTimeout)

    def _due(self) -> None:
        """One timer per connection enforces every timeout, by state (the deadline heap
        calls this when the connection's entry is due).

        - ``IDLE`` between requests: ``timeOut`` of silence closes the connection (a new
          connection that never sends a byte gets ``headTimeout``); empty lines between
          requests are no activity;
        - ``HEAD``: ``headTimeout`` from its first byte, however the bytes trickle in
          (slowloris), then ``408``;
        - ``BODY``: ``bodyTimeout`` between two pieces of body data, and, after
          ``minBodyRateGrace`` seconds, at least ``minBodyRate`` bytes a second on average
          since the head; then ``408``;
        - answering (a response outstanding, ``CONTINUE`` or ``DONE``): never; a response
          may take as long as its resource wants, but a client that reads nothing for
          ``timeOut`` while output waits for it is dropped (a slow-read attack or a dead
          peer; nginx's send_timeout is 60 s);
        - ``LINGER``: ``lingerTime``, then close;
        - ``CLOSING``: as long as the client keeps taking what the transport still holds,
          then abort after ``timeOut`` without progress.

        The timer re-arms at most every ``_timer_period()`` seconds, so a state entered
        between two checks is caught within that period of its deadline.
        """
        transport = self.asyncio_transport
        if transport is None:
            return
        factory = self._settings
        now = self._now()
        state = self._state
        if state == CLOSING:
            unsent = transport.get_write_buffer_size()
            if unsent != self._unsent:
                self._unsent = unsent
                self._last_activity = now
            elif now - self._last_activity >= factory.timeOut:
                self.abort()  # the client takes none of what is left for it
                return
            self._deadlines.add(self, self._timer_period())
            return
        if state in (ABORTED, UPGRADED):
            return  # (an upgraded connection keeps time by its own protocol)
        if self._writing_paused and now - self._paused_at >= factory.timeOut:
            self.abort()
            return
        deadline, status = self._deadline(now)
        if now < deadline:
            self._deadlines.add(self, min(deadline - now, self._timer_period()))
            return
        if status:
            self._reject(status, "request timed out")
            self._dispatch()
        else:
            self._close()
        if self.asyncio_transport is not None and self._handle is None:
            self._deadlines.add(self, self._timer_period())

    def _deadline(self, now: float) -> tuple[float, int]:
        """When the state in force times out, and the status to answer then (0: close)."""
        factory = self._settings
        state = self._state
        if state == LINGER:
            return self._last_activity + factory.lingerTime, 0
        if self._active is not None or state in (DONE, CONTINUE, UPGRADING):
            return now + factory.timeOut, 0  # answering (or about to refuse): no deadline
        if state == HEAD:
            return self._head_started + factory.headTimeout, 408
        if state == BODY:
            deadline: float = self._last_activity + factory.bodyTimeout
            rate: float = factory.minBodyRate
            parser = self._parser
            if rate > 0 and parser is not None:
                # The time by which the body received so far falls below the rate.
                grace: float = factory.minBodyRateGrace
                behind = self._body_started + max(grace, parser.body_size / rate)
                deadline = min(deadline, behind)
            return deadline, 408
        if self._requests_seen == 0:
            return self._connected_at + factory.headTimeout, 0
        return self._last_activity + factory.timeOut, 0
