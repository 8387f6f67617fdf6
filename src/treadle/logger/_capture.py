""":func:`capturedLogs`: collect the events of the global publisher, for tests."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from treadle.logger._interfaces import LogEvent
from treadle.logger._observer import globalLogPublisher

__all__ = ["capturedLogs"]


@contextmanager
def capturedLogs() -> Iterator[list[LogEvent]]:
    """Yield a list that receives every event published globally inside the ``with`` block."""
    events: list[LogEvent] = []
    globalLogPublisher.addObserver(events.append)
    try:
        yield events
    finally:
        globalLogPublisher.removeObserver(events.append)
