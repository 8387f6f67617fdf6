"""The bridge between events and Python's :mod:`logging`, both ways.

treadle's promise is that one :mod:`logging` configuration sees everything, whichever API wrote
it. So:

* Every event published to :data:`~treadle.logger.globalLogPublisher` becomes a
  :class:`logging.LogRecord` (:class:`StdlibBridge`). The stdlib logger is named after the
  event's ``log_namespace`` — for ``log = Logger()`` that is the module (or ``module.Class``),
  the very name ``logging.getLogger(__name__)`` would use — so per-module levels and handlers
  configured in :mod:`logging` apply to Twisted-style loggers unchanged. No ``treadle.``
  prefix is added: the namespace is the user's module, not treadle's. Legacy
  ``treadle.python.log`` events keep treadle's existing loggers: ``log.err`` goes to
  ``treadle.error`` at ERROR (message: the ``why``, ``exc_info``: the failure) and ``log.msg``
  to ``treadle.log`` at INFO. Levels map ``debug``/``info``/``warn``/``error``/``critical`` to
  ``DEBUG``/``INFO``/``WARNING``/``ERROR``/``CRITICAL``; the record's time is the event's, its
  file and line those of the code that logged.
* Records of treadle's own stdlib loggers (``treadle.*``: ``treadle.error`` and the rest) are
  handed to the observers of the global publisher as events (:class:`ObserversHandler`), so
  ``startLogging``/``beginLoggingTo`` observers see treadle's errors as they would Twisted's:
  the record's message as a literal ``log_format`` and its exception as ``log_failure`` (the
  very Failure when the code logged it with ``extra={"log_failure": failure}``). They see
  what the :mod:`logging` configuration lets through (WARNING and up by default). Where an
  error must reach the observers as particular Twisted events instead, treadle's modules use
  :func:`treadle.logger._report.report`.

Nothing is delivered twice and nothing loops: records made from events carry the event
(``record.log_event``) and are not handed back to the observers; events made from records are
given to the observers only; :class:`STDLibLogObserver` and ``PythonLoggingObserver`` do
nothing for an event the global publisher is already bridging; an event emitted while the
bridge is inside :mod:`logging` (by a handler, say) still reaches the observers but is not
bridged again.

When :mod:`logging` has no handler for a record, Python prints WARNING and worse to standard
error (``logging.lastResort``). treadle keeps that until a program begins logging to observers
(``startLogging``, ``beginLoggingTo``): from then on the observers are where the program wants
its log, and an unconfigured :mod:`logging` stays silent rather than printing every error a
second time. A configured :mod:`logging` always gets everything.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Callable
from contextvars import ContextVar
from types import TracebackType
from typing import Any

from zope.interface import implementer

from treadle.logger._format import formatEvent
from treadle.logger._interfaces import ILogObserver, LogEvent
from treadle.logger._levels import LogLevel
from treadle.python.failure import Failure

__all__ = [
    "ERRORS_LOGGER",
    "LEGACY_NAMESPACE",
    "MESSAGES_LOGGER",
    "ObserversHandler",
    "STDLibLogObserver",
    "StdlibBridge",
    "StringifiableFromEvent",
    "fromStdlibLogLevelMapping",
    "hide_caller_file",
    "toStdlibLogLevelMapping",
]

#: The namespace of events made by the legacy ``treadle.python.log`` API (Twisted's name).
LEGACY_NAMESPACE = "log_legacy"
#: Where legacy errors (``log.err``) go in :mod:`logging`.
ERRORS_LOGGER = "treadle.error"
#: Where legacy messages (``log.msg``) and events without a namespace go.
MESSAGES_LOGGER = "treadle.log"

toStdlibLogLevelMapping: dict[LogLevel, int] = {
    LogLevel.debug: logging.DEBUG,
    LogLevel.info: logging.INFO,
    LogLevel.warn: logging.WARNING,
    LogLevel.error: logging.ERROR,
    LogLevel.critical: logging.CRITICAL,
}

#: Exact stdlib levels (numbers and names) to :class:`LogLevel`, as Twisted's table.
fromStdlibLogLevelMapping: dict[str | int, LogLevel] = {
    **{number: level for level, number in toStdlibLogLevelMapping.items()},
    **{logging.getLevelName(n): level for level, n in toStdlibLogLevelMapping.items()},
}

# The event the global publisher is delivering in this thread or task, if any.
_dispatching: ContextVar[LogEvent | None] = ContextVar("treadle_log_dispatching", default=None)
# True while the bridge is inside logging (its handlers run in the same call).
_bridging: ContextVar[bool] = ContextVar("treadle_log_bridging", default=False)

_PACKAGE_DIR = os.path.normcase(os.path.dirname(os.path.abspath(__file__)))
_hidden_files: set[str] = set()


def hide_caller_file(filename: str) -> None:
    """Skip frames of ``filename`` when finding the caller a record is attributed to.

    ``treadle.python.log`` registers itself, so ``log.msg`` records name the code that called
    ``log.msg``, not the logging machinery.
    """
    _hidden_files.add(os.path.normcase(os.path.abspath(filename)))
    _machinery.clear()


_LOGGING_FILE = os.path.normcase(os.path.abspath(logging.__file__))
# Frame file name -> whether it is logging machinery; file names are few, frames many.
_machinery: dict[str, bool] = {}


def _is_machinery(filename: str) -> bool:
    known = _machinery.get(filename)
    if known is None:
        path = os.path.normcase(os.path.abspath(filename))
        known = path.startswith(_PACKAGE_DIR) or path in _hidden_files or path == _LOGGING_FILE
        _machinery[filename] = known
    return known


def _caller() -> tuple[str, int, str]:
    frame = sys._getframe(1)
    while frame is not None:
        code = frame.f_code
        if not _is_machinery(code.co_filename):
            return code.co_filename, frame.f_lineno, code.co_name
        frame = frame.f_back  # type: ignore[assignment]
    return "(unknown file)", 0, "(unknown function)"


def stdlib_level(level: object) -> int:
    """Return the :mod:`logging` level for a :class:`LogLevel` (INFO for anything else)."""
    if isinstance(level, LogLevel):
        return toStdlibLogLevelMapping[level]
    return logging.INFO


def level_for_stdlib(levelno: int) -> LogLevel:
    """Return the :class:`LogLevel` for a :mod:`logging` level; levels between round down."""
    if levelno >= logging.CRITICAL:
        return LogLevel.critical
    if levelno >= logging.ERROR:
        return LogLevel.error
    if levelno >= logging.WARNING:
        return LogLevel.warn
    if levelno >= logging.INFO:
        return LogLevel.info
    return LogLevel.debug


class StringifiableFromEvent:
    """An event standing for its text: ``str()`` formats it (Twisted's helper).

    Args:
        event: The event.
    """

    def __init__(self, event: LogEvent) -> None:
        self.event = event

    def __str__(self) -> str:
        return formatEvent(self.event)

    def __bytes__(self) -> bytes:
        return str(self).encode("utf-8")


def _is_legacy_error(event: LogEvent) -> bool:
    return event.get("log_namespace") == LEGACY_NAMESPACE and bool(event.get("isError"))


def _destination(event: LogEvent) -> tuple[str, int]:
    """The stdlib logger name and level an event of the global publisher goes to."""
    if event.get("log_namespace") == LEGACY_NAMESPACE:
        explicit = event.get("logLevel")
        if _is_legacy_error(event):
            return ERRORS_LOGGER, explicit if isinstance(explicit, int) else logging.ERROR
        if isinstance(explicit, int):
            return MESSAGES_LOGGER, explicit
        return MESSAGES_LOGGER, stdlib_level(event.get("log_level", LogLevel.info))
    namespace = event.get("log_namespace")
    name = namespace if isinstance(namespace, str) else MESSAGES_LOGGER
    return name, stdlib_level(event.get("log_level", LogLevel.info))


def _message(event: LogEvent) -> str:
    if _is_legacy_error(event) and "failure" in event:
        why = event.get("why")
        try:
            return str(why) if why else "Unhandled Error"
        except Exception:
            return "Unhandled Error"
    return formatEvent(event)


ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None]


def _failure_of(event: LogEvent) -> Any:
    failure = event.get("log_failure", event.get("failure"))
    return failure if hasattr(failure, "value") and hasattr(failure, "type") else None


def make_record(
    logger: logging.Logger, level: int, event: LogEvent, message: str
) -> logging.LogRecord:
    """Return the :class:`logging.LogRecord` for ``event`` on ``logger``.

    The record keeps the event as ``record.log_event``, carries the failure as ``exc_info``
    and is stamped with the event's time.
    """
    exc_info: ExcInfo | None = None
    failure = _failure_of(event)
    if failure is not None:
        exc_info = (failure.type, failure.value, getattr(failure, "tb", None))
    filename, lineno, function = _caller()
    record = logger.makeRecord(
        logger.name,
        level,
        filename,
        lineno,
        message,
        (),
        exc_info,
        function,
        extra={"log_event": event},
    )
    if failure is not None and exc_info is not None and exc_info[2] is None:
        # A cleaned Failure has dropped its frames but still knows them: give formatters its
        # text, or they would print the exception line alone.
        with contextlib.suppress(Exception):
            record.exc_text = str(failure.getTraceback()).rstrip("\n")
    when = event.get("log_time")
    if isinstance(when, int | float):
        record.created = float(when)
        record.msecs = (record.created - int(record.created)) * 1000
        record.relativeCreated = (record.created - logging._startTime) * 1000  # type: ignore[attr-defined]
    return record


def _configured_handlers(logger: logging.Logger) -> bool:
    """Whether a handler other than treadle's own would see a record of ``logger``."""
    current: logging.Logger | None = logger
    while current is not None:
        if any(not isinstance(h, ObserversHandler) for h in current.handlers):
            return True
        if not current.propagate:
            return False
        current = current.parent
    return False


class StdlibBridge:
    """Gives each event of the global publisher to :mod:`logging`, as described above.

    Args:
        observersAreTheSink: Returns True once the program began logging to observers; an
            unconfigured :mod:`logging` then no longer prints to standard error.
    """

    def __init__(self, observersAreTheSink: Callable[[], bool]) -> None:
        self._observers_are_the_sink = observersAreTheSink
        # logging.getLogger takes the module lock on every call; loggers live for ever.
        self._loggers: dict[str, logging.Logger] = {}

    def __call__(self, event: LogEvent) -> None:
        """Hand ``event`` to its stdlib logger, if that logger is enabled for its level."""
        if _bridging.get():
            return
        name, level = _destination(event)
        logger = self._loggers.get(name)
        if logger is None:
            logger = self._loggers[name] = logging.getLogger(name)
        if not logger.isEnabledFor(level):
            return
        if self._observers_are_the_sink() and not _configured_handlers(logger):
            return
        message = _message(event)
        if not message and _failure_of(event) is None:
            return
        token = _bridging.set(True)
        try:
            logger.handle(make_record(logger, level, event, message))
        finally:
            _bridging.reset(token)


def event_for_record(record: logging.LogRecord) -> LogEvent:
    """Return the event that stands for a stdlib ``record``.

    Its ``log_format`` is the record's message with braces doubled, so it reads as the
    literal message of a Twisted event (``"Timing out" in event["log_format"]``) and formats
    to exactly that text, which is also kept in ``log_text``. The failure (``log_failure``) is
    the one the record was given as ``extra={"log_failure": failure}`` — so an observer gets
    the very Failure the code logged — or else one made from ``exc_info``.
    """
    try:
        text = record.getMessage()
    except Exception:
        text = str(record.msg)
    event: LogEvent = {
        "log_level": level_for_stdlib(record.levelno),
        "log_namespace": record.name,
        "log_format": text.replace("{", "{{").replace("}", "}}"),
        "log_text": text,
        "log_time": record.created,
        "log_source": None,
    }
    failure = getattr(record, "log_failure", None)
    if isinstance(failure, Failure):
        event["log_failure"] = failure
    elif record.exc_info and record.exc_info[1] is not None:
        kind, value, tb = record.exc_info
        event["log_failure"] = Failure(value, kind, tb)
    return event


class ObserversHandler(logging.Handler):
    """A :mod:`logging` handler giving records to the observers of a publisher.

    treadle attaches one to the ``treadle`` logger, so the observers see treadle's own
    errors. It also stands in for ``logging.lastResort`` (which Python skips once any
    handler exists) while no observer is the program's log.

    Args:
        publish: Delivers an event to the observers (and not back to :mod:`logging`).
        observersAreTheSink: As for :class:`StdlibBridge`.
    """

    def __init__(
        self, publish: Callable[[LogEvent], None], observersAreTheSink: Callable[[], bool]
    ) -> None:
        super().__init__()
        self._publish = publish
        self._observers_are_the_sink = observersAreTheSink

    def emit(self, record: logging.LogRecord) -> None:
        """Publish ``record`` to the observers unless it came from an event."""
        try:
            # A record made from an event: its observers had it already. A record logged
            # by an observer while an event is delivered is not fed back (no loops).
            if getattr(record, "log_event", None) is None and _dispatching.get() is None:
                self._publish(event_for_record(record))
            self._last_resort(record)
        except Exception:
            self.handleError(record)

    def _last_resort(self, record: logging.LogRecord) -> None:
        if self._observers_are_the_sink():
            return
        if _configured_handlers(logging.getLogger(record.name)):
            return
        last = logging.lastResort
        if last is not None and record.levelno >= last.level:
            last.handle(record)


@implementer(ILogObserver)
class STDLibLogObserver:
    """An observer writing events to a :mod:`logging` logger.

    Every event of the global publisher reaches :mod:`logging` already (under its namespace's
    logger), so for those this observer does nothing rather than log them twice; on any other
    publisher it logs each event to the logger ``name``, with the failure as ``exc_info``.

    Args:
        name: The logger's name (Twisted's default is ``"twisted"``).
        stackDepth: Accepted for compatibility; the caller is found by skipping the logging
            machinery's frames instead.
    """

    defaultStackDepth = 4

    def __init__(self, name: str = "treadle", stackDepth: int = defaultStackDepth) -> None:
        self.logger = logging.getLogger(name)
        self.stackDepth = stackDepth

    def __call__(self, event: LogEvent) -> None:
        """Log ``event`` at its level (INFO when it has none)."""
        if _dispatching.get() is event:
            return
        level = stdlib_level(event.get("log_level", LogLevel.info))
        if self.logger.isEnabledFor(level):
            self.logger.handle(make_record(self.logger, level, event, _message(event)))
