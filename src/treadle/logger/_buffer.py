""":class:`LimitedHistoryLogObserver`: keeps the last events, to replay them later."""

from __future__ import annotations

from collections import deque
from typing import Any

from zope.interface import implementer

from treadle.logger._interfaces import ILogObserver, LogEvent

__all__ = ["LimitedHistoryLogObserver"]

_DEFAULT_BUFFER_MAXIMUM = 64 * 1024


@implementer(ILogObserver)
class LimitedHistoryLogObserver:
    """An observer keeping the ``size`` most recent events (older ones are dropped).

    Args:
        size: How many events to keep; None keeps all (unbounded: use with care).
    """

    def __init__(self, size: int | None = _DEFAULT_BUFFER_MAXIMUM) -> None:
        self._buffer: deque[LogEvent] = deque(maxlen=size)

    def __call__(self, event: LogEvent) -> None:
        """Keep ``event``."""
        self._buffer.append(event)

    def replayTo(self, otherObserver: Any) -> None:
        """Give every kept event, oldest first, to ``otherObserver``."""
        for event in list(self._buffer):
            otherObserver(event)
