"""The calls of an ASGI application on one loop: their tasks, and their start timeout.

:class:`Calls` holds what every :class:`~treadle.web._asgi_http.HTTPCycle` of one
resource shares on one loop: the resource (its name, ``startTimeout`` and
``disconnectGrace``, read when needed, so that a change applies at once), the loop's
deadline heap, the tasks still running (the resource waits for them at shut-down), a future
done already (what ``send()`` returns when there is nothing to wait for) and the calls yet
to start their response.

The start timeout is kept for all of them at once: every call of a resource gets the same
timeout, so the calls in the order they began are in the order they are due, and an
insertion-ordered dict of call to deadline, under one entry of the deadline heap for the
oldest, does what a timer per request would, for a dict insertion and a deletion each.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any, Final, Protocol

if TYPE_CHECKING:
    from treadle.internet._timers import TimerHeap

__all__ = ["Calls", "Heading", "Served", "Starting"]

# How early the start timeout may fire (the deadline heap's own slack): nothing can tell.
_START_SLACK: Final = 0.001


class Starting(Protocol):
    """What :class:`Calls` needs of a call yet to start its response (an
    :class:`~treadle.web._asgi_http.HTTPCycle`)."""

    def start_timed_out(self, timeout: float | None) -> None:
        """No start within ``timeout`` seconds: fail the call."""


class Heading:
    """What :class:`Calls` needs of a call that started its response: its ``send_head``.

    A base class (:class:`~treadle.web._asgi_http.HTTPCycle` is one), not a Protocol:
    compiled, the heads are then sent by direct calls, and this module needs no import of
    the cycle's (which imports this one).
    """

    def send_head(self) -> None:
        """Send the head if no body went out with it yet."""
        raise NotImplementedError


class Served(Protocol):
    """What :class:`Calls` reads of the resource serving the application."""

    name: str
    startTimeout: float | None
    disconnectGrace: float


class Calls:
    """The calls of one resource's application on one loop.

    Args:
        served: The resource: its ``name`` (for log lines), ``startTimeout`` (seconds a call
            has to send ``http.response.start``; None: no limit) and ``disconnectGrace``
            (seconds a call may run on after its client left), read when needed.
        loop: The loop they run on.
        deadlines: The loop's deadline heap (the start timeout and the disconnect grace).
        running: The calls' tasks, each until it ends (the resource waits for them at
            shut-down).
    """

    __slots__ = (
        "_handle",
        "_heads",
        "_send_heads_soon",
        "_timeout",
        "call_soon",
        "deadlines",
        "done",
        "loop",
        "running",
        "served",
        "task_name",
        "waiting",
    )

    def __init__(
        self,
        served: Served,
        loop: asyncio.AbstractEventLoop,
        deadlines: TimerHeap,
        running: set[asyncio.Task[Any]],
    ) -> None:
        self.served = served
        #: The loop the calls run on.
        self.loop = loop
        self.deadlines = deadlines
        self.running = running
        self.call_soon = loop.call_soon
        # Calls that started their response in this turn of the loop; their heads go out,
        # if no body took them first, in one callback at the next turn (not one each).
        # (Typed as Heading, a native class: each one's send_head is then called directly.)
        self._heads: list[Heading] = []
        # Bound once: call_soon is given it at each turn of the loop with a start in it.
        self._send_heads_soon = self._send_heads
        #: What the calls' tasks are named.
        self.task_name = f"ASGI {served.name}"
        self._handle: Any = None  # our entry in ``deadlines``
        self._timeout: float | None = None  # the timeout of the calls waiting
        #: Calls yet to start, to the time they must have started by: oldest first, since
        #: every call gets the same timeout.
        self.waiting: dict[Starting, float] = {}
        #: What ``send()`` returns when there is nothing to wait for.
        self.done: asyncio.Future[None] = loop.create_future()
        self.done.set_result(None)

    @property
    def name(self) -> str:
        """How log lines name the application."""
        return self.served.name

    def wait_start(self, cycle: Starting) -> None:
        """Fail ``cycle`` if it has not started its response within the timeout."""
        timeout = self.served.startTimeout
        if timeout:
            waiting = self.waiting
            if timeout != self._timeout:
                # The resource's timeout changed: the order of the calls waiting with the
                # old one may not be that of their deadlines any more; sort them once.
                self._timeout = timeout
                ordered = sorted(waiting.items(), key=lambda item: item[1])
                waiting.clear()
                waiting.update(ordered)
                if self._handle is not None:
                    self.deadlines.discard(self)
            waiting[cycle] = self.deadlines.now() + timeout
            if self._handle is None:
                self.deadlines.add_at(self, next(iter(waiting.values())))

    def head_soon(self, cycle: Heading) -> None:
        """Send ``cycle``'s head at the next turn of the loop, unless a body took it first."""
        heads = self._heads
        if not heads:
            self.call_soon(self._send_heads_soon)
        heads.append(cycle)

    def _send_heads(self) -> None:
        heads, self._heads = self._heads, []
        for cycle in heads:
            try:
                cycle.send_head()
            except Exception:  # one failing head must not keep the others back
                logging.getLogger("treadle.error").exception(
                    "ASGI application %s: sending a response head failed", self.name
                )

    def started(self, cycle: Starting) -> None:
        """``cycle`` started its response (or ended): it has no start timeout any more."""
        self.waiting.pop(cycle, None)

    def _due(self) -> None:
        """The oldest call's deadline came: fail those past theirs, wait for the next."""
        waiting = self.waiting
        now = self.deadlines.now() + _START_SLACK
        while waiting:
            cycle = next(iter(waiting))
            due = waiting[cycle]
            if due > now:
                self.deadlines.add_at(self, due)
                return
            del waiting[cycle]
            cycle.start_timed_out(self._timeout)
