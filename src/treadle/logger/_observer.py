"""Publishers: :class:`LogPublisher` fans events out, and the global one also feeds logging."""

from __future__ import annotations

import contextlib
import time
from typing import Any

from zope.interface import alsoProvides, implementer

from treadle.logger._interfaces import ILogObserver, LogEvent
from treadle.logger._levels import LogLevel
from treadle.logger._stdlib import StdlibBridge, _dispatching
from treadle.python.failure import Failure

__all__ = ["LogPublisher", "bitbucketLogObserver", "globalLogPublisher"]

OBSERVER_DISABLED = "Temporarily disabling observer {observer} due to exception: {log_failure}"


@implementer(ILogObserver)
class LogPublisher:
    """An observer that hands each event to the observers added to it, in order.

    An observer that raises does not stop the others: once all have run, the error is
    reported as a critical event to the other observers (the failing one is kept, as in
    Twisted; "temporarily" means for that report only).

    Args:
        *observers: The first observers.
    """

    def __init__(self, *observers: Any) -> None:
        self._observers: list[Any] = list(observers)

    def addObserver(self, observer: Any) -> None:
        """Add ``observer`` (once: adding it again does nothing).

        Raises:
            TypeError: ``observer`` is not callable.
        """
        if not callable(observer):
            raise TypeError(f"Observer is not callable: {observer!r}")
        if observer not in self._observers:
            self._observers.append(observer)

    def removeObserver(self, observer: Any) -> None:
        """Remove ``observer``; removing one that was never added does nothing."""
        with contextlib.suppress(ValueError):
            self._observers.remove(observer)

    def __call__(self, event: LogEvent) -> None:
        """Give ``event`` to every observer."""
        self._deliver(event, self._observers)

    def _deliver(self, event: LogEvent, observers: list[Any]) -> None:
        trace = event.get("log_trace")
        broken = []
        # A copy: an observer may add or remove observers while the event is delivered.
        for observer in list(observers):
            if trace is not None:
                trace.append((self, observer))
            try:
                observer(event)
            except Exception:
                broken.append((observer, Failure()))
        for observer, failure in broken:
            self._report_broken(observer, failure)

    def _report_broken(self, observer: Any, failure: Failure) -> None:
        others = [other for other in self._observers if other is not observer]
        report = _observer_failed_event(observer, failure)
        for other in others:
            with contextlib.suppress(Exception):
                other(report)


def _observer_failed_event(observer: Any, failure: Failure) -> LogEvent:
    return {
        "log_level": LogLevel.critical,
        "log_namespace": __name__,
        "log_format": OBSERVER_DISABLED,
        "log_failure": failure,
        "log_time": time.time(),
        "log_source": None,
        "observer": observer,
    }


class _GlobalLogPublisher(LogPublisher):
    """The publisher every :class:`~treadle.logger.Logger` uses by default.

    Besides its observers, every event goes to :mod:`logging` (see :mod:`._stdlib`); that
    delivery cannot be removed. :attr:`observersAreTheSink` is set by
    :meth:`~treadle.logger.LogBeginner.beginLoggingTo`.
    """

    def __init__(self) -> None:
        super().__init__()
        self.observersAreTheSink = False
        self._bridge = StdlibBridge(lambda: self.observersAreTheSink)

    def __call__(self, event: LogEvent) -> None:
        """Give ``event`` to :mod:`logging`, then to every observer."""
        token = _dispatching.set(event)
        try:
            try:
                self._bridge(event)
            except Exception:
                self._report_broken(self._bridge, Failure())
            self._deliver(event, self._observers)
        finally:
            _dispatching.reset(token)

    def publishToObservers(self, event: LogEvent, observers: list[Any] | None = None) -> None:
        """Give ``event`` to the observers only: it reached :mod:`logging` already.

        Args:
            event: An event made from a stdlib record, or one replayed.
            observers: Whom to give it to (default: every observer).
        """
        token = _dispatching.set(event)
        try:
            self._deliver(event, self._observers if observers is None else observers)
        finally:
            _dispatching.reset(token)

    def _report_broken(self, observer: Any, failure: Failure) -> None:
        super()._report_broken(observer, failure)
        if observer is not self._bridge:
            self._bridge(_observer_failed_event(observer, failure))


def bitbucketLogObserver(event: LogEvent) -> None:
    """An observer that drops every event."""


alsoProvides(bitbucketLogObserver, ILogObserver)


#: The publisher :class:`~treadle.logger.Logger` s use unless given another observer. Its
#: events also reach :mod:`logging`.
globalLogPublisher = _GlobalLogPublisher()
