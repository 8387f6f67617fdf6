"""One error, two audiences: a :mod:`logging` record for people, Twisted's events for observers.

treadle's modules report their errors on the ``treadle.error`` stdlib logger, and an
observer of :data:`~treadle.logger.globalLogPublisher` normally receives each such record as
an event (see :mod:`._stdlib`). Where Twisted reports an error as particular events — the
failure itself as ``log_failure`` and a ``log_format`` of its own, sometimes more than one
event (an unhandled error in a Deferred is a critical ``Unhandled error in Deferred:`` event
followed by the failure) — programs and Twisted's tests count and inspect those events.
:func:`report` gives the observers exactly those events *in place of* the record's event,
while :mod:`logging` keeps the single record it always had: nothing is delivered twice.

Private: used by treadle's own modules, which sit above this package.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

from treadle.logger._interfaces import LogEvent
from treadle.logger._observer import globalLogPublisher
from treadle.logger._stdlib import level_for_stdlib

__all__ = ["report"]


def report(
    logger: logging.Logger, level: int, events: Sequence[LogEvent], msg: str, *args: object
) -> None:
    """Log ``msg % args`` to ``logger`` and give the observers ``events`` instead.

    Each event is completed with what it lacks of ``log_time`` (now), ``log_level`` (the
    :class:`~treadle.logger.LogLevel` of ``level``), ``log_namespace`` (the logger's name)
    and ``log_source`` (None), then handed to the observers of the global publisher only.
    The record goes to ``logger`` as ``logger.log`` would send it (attributed to the
    caller), marked as already delivered so that it is not turned into an event again.

    Args:
        logger: The stdlib logger (``treadle.error`` for errors).
        level: The stdlib level of the record (and, by default, of the events).
        events: The events observers see, in order; a failure goes in ``log_failure``.
        msg: The record's message, ``%``-formatted with ``args``.
        *args: The message's arguments.
    """
    now = time.time()
    for event in events:
        event.setdefault("log_time", now)
        event.setdefault("log_level", level_for_stdlib(level))
        event.setdefault("log_namespace", logger.name)
        event.setdefault("log_source", None)
        globalLogPublisher.publishToObservers(event)
    if logger.isEnabledFor(level):
        # log_event marks the record as one the observers already had (._stdlib).
        marker = events[-1] if events else {}
        logger.log(level, msg, *args, extra={"log_event": marker}, stacklevel=2)
