"""``DelayedCall``: the handle ``callLater`` returns, shared by the reactor and ``task.Clock``.

The class knows nothing of any event loop: whoever schedules it passes a ``canceller`` and a
``resetter`` and runs ``func`` when ``time`` comes. This keeps the asyncio reactor and the
test clock behaving identically, down to the errors raised on misuse.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from zope.interface import implementer

from treadle.internet.error import AlreadyCalled, AlreadyCancelled
from treadle.internet.interfaces import IDelayedCall

__all__ = ["DelayedCall"]


@implementer(IDelayedCall)
class DelayedCall:
    """A call scheduled to run at ``time`` (in the scheduler's ``seconds()`` units).

    Attributes:
        time: Absolute time the call is due, as returned by ``getTime()``.
        func, args, kw: What will be called.
        called: True once the scheduler ran the call.
        cancelled: True once ``cancel()`` succeeded.
    """

    __slots__ = (
        "_canceller",
        "_resetter",
        "_seconds",
        "args",
        "called",
        "cancelled",
        "func",
        "kw",
        "time",
    )

    def __init__(
        self,
        time: float,
        func: Callable[..., Any],
        args: tuple[Any, ...],
        kw: dict[str, Any],
        cancel: Callable[[DelayedCall], None],
        reset: Callable[[DelayedCall], None],
        seconds: Callable[[], float],
    ) -> None:
        self.time = time
        self.func = func
        self.args = args
        self.kw = kw
        self._canceller = cancel
        self._resetter = reset
        self._seconds = seconds
        self.called = False
        self.cancelled = False

    def getTime(self) -> float:
        """Return the absolute time at which this call is due."""
        return self.time

    def active(self) -> bool:
        """Return True while the call has neither run nor been cancelled."""
        return not (self.called or self.cancelled)

    def _check_active(self) -> None:
        if self.cancelled:
            raise AlreadyCancelled(self)
        if self.called:
            raise AlreadyCalled(self)

    def cancel(self) -> None:
        """Unschedule the call.

        Raises:
            AlreadyCancelled: It was cancelled before.
            AlreadyCalled: It already ran.
        """
        self._check_active()
        self.cancelled = True
        self._canceller(self)

    def reset(self, secondsFromNow: float) -> None:
        """Reschedule the call to run ``secondsFromNow`` seconds from now.

        Raises:
            AlreadyCancelled: It was cancelled before.
            AlreadyCalled: It already ran.
        """
        self._check_active()
        self.time = self._seconds() + secondsFromNow
        self._resetter(self)

    def delay(self, secondsLater: float) -> None:
        """Push the call ``secondsLater`` seconds further into the future (may be negative).

        Raises:
            AlreadyCancelled: It was cancelled before.
            AlreadyCalled: It already ran.
        """
        self._check_active()
        self.time += secondsLater
        self._resetter(self)

    def __repr__(self) -> str:
        name = getattr(self.func, "__qualname__", repr(self.func))
        state = "called" if self.called else "cancelled" if self.cancelled else "pending"
        return f"<DelayedCall {name} at {self.time:.3f} ({state})>"
