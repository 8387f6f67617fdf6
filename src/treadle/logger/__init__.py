"""Twisted's ``twisted.logger``: structured events, observers, and Python's :mod:`logging`.

``from twisted.logger import Logger`` ports as ``from treadle.logger import Logger``::

    log = Logger()

    class Counter:
        log = Logger()              # namespace "module.Counter", source the instance

        def add(self, n):
            self.log.info("adding {n} to {self.total}", n=n)

Events are dicts; observers (any callable taking one) receive them from a publisher.
:data:`globalLogPublisher` is the one loggers use by default;
:meth:`globalLogBeginner.beginLoggingTo <LogBeginner.beginLoggingTo>` chooses the program's
observers (:func:`textFileLogObserver`, :func:`jsonFileLogObserver`, a
:class:`FilteringLogObserver` around one, ...).

Beyond Twisted, everything reaches Python's :mod:`logging`, so one :mod:`logging`
configuration sees everything: each event of the global publisher becomes a record of the
stdlib logger named after its namespace (``log.err``/``log.msg`` of
:mod:`treadle.python.log` keep ``treadle.error``/``treadle.log``), and the records of
treadle's own ``treadle.*`` loggers reach the observers. Neither is delivered twice; the
details are in :mod:`treadle.logger._stdlib`.

Layering: imports :mod:`treadle.python.failure`, :mod:`zope.interface` and the standard
library only — never :mod:`treadle.python.log`, which builds on this package.
"""

from treadle.logger._buffer import LimitedHistoryLogObserver
from treadle.logger._capture import capturedLogs
from treadle.logger._file import FileLogObserver, textFileLogObserver
from treadle.logger._filter import (
    FilteringLogObserver,
    ILogFilterPredicate,
    LogLevelFilterPredicate,
    PredicateResult,
)
from treadle.logger._flatten import extractField
from treadle.logger._format import (
    eventAsText,
    formatEvent,
    formatEventAsClassicLogText,
    formatTime,
    timeFormatRFC3339,
)
from treadle.logger._global import LogBeginner, globalLogBeginner
from treadle.logger._interfaces import ILogObserver, LogEvent
from treadle.logger._io import LoggingFile
from treadle.logger._json import (
    eventAsJSON,
    eventFromJSON,
    eventsFromJSONLogFile,
    jsonFileLogObserver,
)
from treadle.logger._legacy import LegacyLogObserverWrapper
from treadle.logger._levels import InvalidLogLevelError, LogLevel
from treadle.logger._logger import Logger, Operation, _loggerFor
from treadle.logger._observer import LogPublisher, globalLogPublisher
from treadle.logger._stdlib import STDLibLogObserver

__all__ = [
    "FileLogObserver",
    "FilteringLogObserver",
    "ILogFilterPredicate",
    "ILogObserver",
    "InvalidLogLevelError",
    "LegacyLogObserverWrapper",
    "LimitedHistoryLogObserver",
    "LogBeginner",
    "LogEvent",
    "LogLevel",
    "LogLevelFilterPredicate",
    "LogPublisher",
    "Logger",
    "LoggingFile",
    "Operation",
    "PredicateResult",
    "STDLibLogObserver",
    "_loggerFor",
    "capturedLogs",
    "eventAsJSON",
    "eventAsText",
    "eventFromJSON",
    "eventsFromJSONLogFile",
    "extractField",
    "formatEvent",
    "formatEventAsClassicLogText",
    "formatTime",
    "globalLogBeginner",
    "globalLogPublisher",
    "jsonFileLogObserver",
    "textFileLogObserver",
    "timeFormatRFC3339",
]
