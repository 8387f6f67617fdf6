"""Starting the log: :data:`globalLogBeginner` and :class:`LogBeginner`.

Until a program calls :meth:`LogBeginner.beginLoggingTo`, the global publisher keeps its
most recent events (200, as Twisted) and replays them to the observers the program then
chooses, so what was logged during start-up is not lost. Meanwhile :mod:`logging` gets every
event as always, and with no :mod:`logging` configuration Python's own fallback prints the
warnings and errors to standard error: that replaces Twisted's printing of critical events
to standard error before logging begins (doing both would print them twice).

This module also attaches the handler that gives the records of treadle's ``treadle.*``
stdlib loggers to the observers (see :mod:`._stdlib`).
"""

from __future__ import annotations

import logging
import sys
import warnings
from collections.abc import Iterable
from typing import IO, Any

from treadle.logger._buffer import LimitedHistoryLogObserver
from treadle.logger._file import FileLogObserver
from treadle.logger._filter import FilteringLogObserver, LogLevelFilterPredicate
from treadle.logger._format import eventAsText
from treadle.logger._interfaces import LogEvent
from treadle.logger._io import LoggingFile
from treadle.logger._levels import LogLevel
from treadle.logger._logger import Logger
from treadle.logger._observer import LogPublisher, _GlobalLogPublisher, globalLogPublisher
from treadle.logger._stdlib import ObserversHandler

__all__ = ["LogBeginner", "globalLogBeginner", "globalLogPublisher"]

MORE_THAN_ONCE_WARNING = (
    "Warning: primary log target selected twice at <{fileNow}:{lineNow}> - previously "
    "selected at <{fileThen}:{lineThen}>.  Remove one of the calls to beginLoggingTo."
)

#: The stdlib logger whose records (and its children's) the observers receive.
OBSERVED_STDLIB_LOGGER = "treadle"


def _qualified(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


class LogBeginner:
    """Starts logging to a program's observers, once (Twisted's ``LogBeginner``).

    Args:
        publisher: The publisher observers are added to.
        errorStream: Where critical events are printed before logging begins — only for a
            publisher that does not feed :mod:`logging` already (not the global one).
        stdio: The object whose ``stdout``/``stderr`` are redirected (normally :mod:`sys`).
        warningsModule: The object whose ``showwarning`` is replaced (normally
            :mod:`warnings`).
        initialBufferSize: How many events to keep until logging begins (default 200).
    """

    _DEFAULT_BUFFER_SIZE = 200

    def __init__(
        self,
        publisher: LogPublisher,
        errorStream: IO[Any],
        stdio: object,
        warningsModule: Any,
        initialBufferSize: int | None = None,
    ) -> None:
        size = self._DEFAULT_BUFFER_SIZE if initialBufferSize is None else initialBufferSize
        self._initialBuffer = LimitedHistoryLogObserver(size=size)
        self._publisher = publisher
        self._log = Logger(namespace="py.warnings", observer=publisher)
        self._stdio = stdio
        self._warningsModule = warningsModule
        self._temporaryObserver: Any = self._initialBuffer
        if not isinstance(publisher, _GlobalLogPublisher):
            self._temporaryObserver = LogPublisher(
                self._initialBuffer,
                FilteringLogObserver(
                    FileLogObserver(errorStream, _critical_line),
                    [LogLevelFilterPredicate(defaultLogLevel=LogLevel.critical)],
                ),
            )
        self._previousBegin = ("", 0)
        publisher.addObserver(self._temporaryObserver)
        self._oldshowwarning = warningsModule.showwarning

    def beginLoggingTo(
        self,
        observers: Iterable[Any],
        discardBuffer: bool = False,
        redirectStandardIO: bool = True,
    ) -> None:
        """Add ``observers`` to the publisher: from now on they are the program's log.

        The first call replays the buffered events to ``observers`` (unless
        ``discardBuffer``), stops buffering and routes :mod:`warnings` to the log (as
        ``py.warnings`` events). A later call adds its observers and logs a warning naming
        both places it was called from.

        Args:
            observers: The observers.
            discardBuffer: Drop the events logged before this call instead of replaying them.
            redirectStandardIO: Make ``stdout`` and ``stderr`` :class:`LoggingFile` s, whose
                lines become ``stdout``/``stderr`` events at info/error level.
        """
        caller = sys._getframe(1)
        here = (caller.f_code.co_filename, caller.f_lineno)
        observers = list(observers)
        for observer in observers:
            self._publisher.addObserver(observer)
        if isinstance(self._publisher, _GlobalLogPublisher):
            self._publisher.observersAreTheSink = True
        if self._temporaryObserver is not None:
            self._publisher.removeObserver(self._temporaryObserver)
            self._temporaryObserver = None
            if not discardBuffer:
                self._replay(observers)
            self._initialBuffer = LimitedHistoryLogObserver(size=0)
            self._warningsModule.showwarning = self.showwarning
        else:
            self._log.warn(
                MORE_THAN_ONCE_WARNING,
                fileNow=here[0],
                lineNow=here[1],
                fileThen=self._previousBegin[0],
                lineThen=self._previousBegin[1],
            )
        self._previousBegin = here
        if redirectStandardIO:
            self._redirect("stdout", LogLevel.info)
            self._redirect("stderr", LogLevel.error)

    def _replay(self, observers: list[Any]) -> None:
        # Only to the new observers: replaying through the publisher would hand the events to
        # logging (and to earlier observers) a second time.
        if isinstance(self._publisher, _GlobalLogPublisher):
            publisher = self._publisher
            self._initialBuffer.replayTo(lambda e: publisher.publishToObservers(e, observers))
        else:
            for observer in observers:
                self._initialBuffer.replayTo(observer)

    def _redirect(self, stream: str, level: LogLevel) -> None:
        old = getattr(self._stdio, stream)
        fallback = old._fallback if isinstance(old, LoggingFile) else old
        logging_file = LoggingFile(
            Logger(namespace=stream, observer=self._publisher),
            level,
            encoding=getattr(old, "encoding", None),
            fallback=fallback,
        )
        setattr(self._stdio, stream, logging_file)

    def showwarning(
        self,
        message: Warning | str,
        category: type[Warning],
        filename: str,
        lineno: int,
        file: IO[str] | None = None,
        line: str | None = None,
    ) -> None:
        """Log a warning as a ``py.warnings`` event (write it to ``file`` if one is given)."""
        if file is None:
            self._log.warn(
                "{filename}:{lineno}: {category}: {warning}",
                warning=message,
                category=_qualified(category),
                filename=filename,
                lineno=lineno,
            )
        else:
            self._oldshowwarning(message, category, filename, lineno, file, line)


def _critical_line(event: LogEvent) -> str:
    return eventAsText(event, includeTimestamp=False, includeSystem=False) + "\n"


def _attach_observers_handler() -> None:
    logger = logging.getLogger(OBSERVED_STDLIB_LOGGER)
    if any(isinstance(handler, ObserversHandler) for handler in logger.handlers):
        return
    logger.addHandler(
        ObserversHandler(
            globalLogPublisher.publishToObservers, lambda: globalLogPublisher.observersAreTheSink
        )
    )


#: Starts the program's log on :data:`globalLogPublisher`.
globalLogBeginner = LogBeginner(globalLogPublisher, sys.stderr, sys, warnings)
_attach_observers_handler()
