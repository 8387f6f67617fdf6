# mypy: disable-error-code="misc, no-untyped-def"
# (zope interfaces declare methods without self and derive from an untyped base.)
"""Filtering: :class:`FilteringLogObserver` passes on the events its predicates let through.

A predicate returns :attr:`PredicateResult.yes` (pass it, ask no more), ``no`` (drop it) or
``maybe`` (ask the next one); an event every predicate said ``maybe`` to passes.
:class:`LogLevelFilterPredicate` drops events below a minimum level, set per namespace.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from typing import Any

from zope.interface import Interface, implementer

from treadle.logger._interfaces import ILogObserver, LogEvent
from treadle.logger._levels import InvalidLogLevelError, LogLevel
from treadle.logger._observer import bitbucketLogObserver

__all__ = [
    "FilteringLogObserver",
    "ILogFilterPredicate",
    "LogLevelFilterPredicate",
    "PredicateResult",
    "shouldLogEvent",
]


class PredicateResult(enum.Enum):
    """What a filter predicate says of an event: ``yes``, ``no`` or ``maybe``."""

    yes = "yes"
    no = "no"
    maybe = "maybe"

    def __repr__(self) -> str:
        return f"<PredicateResult={self.name}>"

    __str__ = __repr__


class ILogFilterPredicate(Interface):
    """A callable judging an event for a :class:`FilteringLogObserver`."""

    def __call__(event):
        """Return a :class:`PredicateResult` for ``event``."""


def shouldLogEvent(predicates: Iterable[Any], event: LogEvent) -> bool:
    """Tell whether ``predicates`` let ``event`` through (see the module docstring).

    Raises:
        TypeError: A predicate returned something other than a :class:`PredicateResult`.
    """
    for predicate in predicates:
        result = predicate(event)
        if result is PredicateResult.yes:
            return True
        if result is PredicateResult.no:
            return False
        if result is not PredicateResult.maybe:
            raise TypeError(f"Invalid predicate result: {result!r}")
    return True


@implementer(ILogObserver)
class FilteringLogObserver:
    """Passes the events ``predicates`` accept to ``observer``, the others elsewhere.

    Args:
        observer: Receives the accepted events.
        predicates: :class:`ILogFilterPredicate` s, asked in order.
        negativeObserver: Receives the refused events (dropped by default).
    """

    def __init__(
        self,
        observer: Any,
        predicates: Iterable[Any],
        negativeObserver: Any = bitbucketLogObserver,
    ) -> None:
        self._observer = observer
        self._predicates = list(predicates)
        self._negativeObserver = negativeObserver

    def __call__(self, event: LogEvent) -> None:
        """Route ``event`` to the observer or the negative observer."""
        if shouldLogEvent(self._predicates, event):
            trace = event.get("log_trace")
            if trace is not None:
                trace.append((self, self._observer))
            self._observer(event)
        else:
            self._negativeObserver(event)


@implementer(ILogFilterPredicate)
class LogLevelFilterPredicate:
    """Refuses events below the level set for their namespace (or its nearest parent).

    Events without a level or a namespace are refused; others get ``maybe``.

    Args:
        defaultLogLevel: The level for namespaces nothing was set for.
    """

    def __init__(self, defaultLogLevel: LogLevel = LogLevel.info) -> None:
        self._levels: dict[str, LogLevel] = {}
        self.defaultLogLevel = defaultLogLevel
        self.clearLogLevels()

    def logLevelForNamespace(self, namespace: str) -> LogLevel:
        """Return the minimum level for ``namespace``: its own, else its nearest parent's
        (``a.b`` for ``a.b.c``), else the default."""
        if not namespace:
            return self._levels[""]
        segments = namespace.split(".")
        for end in range(len(segments), 0, -1):
            level = self._levels.get(".".join(segments[:end]))
            if level is not None:
                return level
        return self._levels[""]

    def setLogLevelForNamespace(self, namespace: str, level: LogLevel) -> None:
        """Set the minimum level of ``namespace`` and the namespaces below it.

        Raises:
            InvalidLogLevelError: ``level`` is not a :class:`LogLevel`.
        """
        if not isinstance(level, LogLevel):
            raise InvalidLogLevelError(level)
        self._levels[namespace or ""] = level

    def clearLogLevels(self) -> None:
        """Forget every level set; the default applies everywhere again."""
        self._levels.clear()
        self._levels[""] = self.defaultLogLevel

    def __call__(self, event: LogEvent) -> PredicateResult:
        """Return ``no`` for events below their namespace's level, else ``maybe``."""
        level = event.get("log_level")
        namespace = event.get("log_namespace")
        if level is None or not namespace:
            return PredicateResult.no
        if level < self.logLevelForNamespace(namespace):
            return PredicateResult.no
        return PredicateResult.maybe
