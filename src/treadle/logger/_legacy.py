"""Between the two APIs: legacy observers on new events, legacy events to new observers.

``twisted.python.log`` observers take dicts with ``message`` (a tuple), ``isError``,
``failure``, ``why``, ``system``, ``time`` and ``format``; :class:`LegacyLogObserverWrapper`
adds those keys to new events. :func:`publishToNewObserver` adds the ``log_*`` keys to a legacy
event (namespace ``log_legacy``, text in ``log_text``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from zope.interface import implementer

from treadle.logger._format import formatEvent
from treadle.logger._interfaces import ILogObserver, LogEvent
from treadle.logger._levels import LogLevel
from treadle.logger._stdlib import (
    LEGACY_NAMESPACE,
    StringifiableFromEvent,
    fromStdlibLogLevelMapping,
)

__all__ = ["LegacyLogObserverWrapper", "publishToNewObserver"]


@implementer(ILogObserver)
class LegacyLogObserverWrapper:
    """Makes a legacy observer (one taking a legacy event dict) a new-style observer.

    Adds the legacy keys to each event (in place, as Twisted) before calling it: ``message``
    (``()``), ``time``, ``system`` (``log_system`` or ``-``), ``format`` (``%(log_legacy)s``,
    the new event's text), and for failures ``failure``, ``isError`` and ``why``.

    Args:
        legacyObserver: The legacy observer.
    """

    def __init__(self, legacyObserver: Callable[[dict[str, Any]], None]) -> None:
        self.legacyObserver = legacyObserver

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.legacyObserver})"

    def __call__(self, event: LogEvent) -> None:
        """Complete ``event`` with the legacy keys and pass it on."""
        event.setdefault("message", ())
        if "time" not in event:
            event["time"] = event.get("log_time")
        if "system" not in event:
            event["system"] = event.get("log_system", "-")
        if "format" not in event and event.get("log_format") is not None:
            event["format"] = "%(log_legacy)s"
            event["log_legacy"] = StringifiableFromEvent(event.copy())
            if not isinstance(event["message"], tuple):
                event["message"] = ()
        if "log_failure" in event:
            event.setdefault("failure", event["log_failure"])
            event.setdefault("isError", 1)
            if "why" not in event:
                event["why"] = formatEvent(event)
        elif "isError" not in event:
            level = event.get("log_level")
            event["isError"] = 1 if level in (LogLevel.error, LogLevel.critical) else 0
        self.legacyObserver(event)


def _legacy_level(event: dict[str, Any]) -> LogLevel | None:
    if "logLevel" in event:
        return fromStdlibLogLevelMapping.get(event["logLevel"])
    if event.get("isError"):
        return LogLevel.critical
    return LogLevel.info


def publishToNewObserver(
    observer: Callable[[LogEvent], None],
    eventDict: dict[str, Any],
    textFromEventDict: Callable[[dict[str, Any]], str | None],
) -> None:
    """Give a legacy event to a new-style observer, adding the ``log_*`` keys it lacks.

    Args:
        observer: The new-style observer.
        eventDict: The legacy event (completed in place).
        textFromEventDict: Returns the legacy event's text (stored as ``log_text``).
    """
    if "log_time" not in eventDict:
        eventDict["log_time"] = eventDict["time"]
    if "log_format" not in eventDict:
        text = textFromEventDict(eventDict)
        if text is not None:
            eventDict["log_text"] = text
            eventDict["log_format"] = "{log_text}"
    if "log_level" not in eventDict:
        level = _legacy_level(eventDict)
        if level is not None:
            eventDict["log_level"] = level
    eventDict.setdefault("log_namespace", LEGACY_NAMESPACE)
    if "log_system" not in eventDict and "system" in eventDict:
        eventDict["log_system"] = eventDict["system"]
    observer(eventDict)
