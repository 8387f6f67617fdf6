"""Twisted's legacy logging API, ``twisted.python.log``, on :mod:`treadle.logger`.

``from twisted.python import log`` ports as ``from treadle.python import log``: ``log.msg``,
``log.err``, ``log.startLogging(sys.stdout)``, ``log.addObserver``, legacy observers taking
event dicts (``message``, ``isError``, ``failure``, ``why``, ``system``, ``time``,
``format``) and ``callWithLogger``/``callWithContext`` for the ``system`` of a line.

Messages are events of :data:`treadle.logger.globalLogPublisher` (namespace ``log_legacy``),
so legacy and new observers see the same stream, and every message also reaches Python's
:mod:`logging`: ``log.err`` the ``treadle.error`` logger at ERROR, with the ``why`` as message
and the failure as ``exc_info``; ``log.msg`` the ``treadle.log`` logger at INFO (or at the
level given as ``logLevel=logging.WARNING``, as Twisted's ``PythonLoggingObserver`` reads it).

Differences from Twisted: ``err()`` with nothing to report outside an ``except`` block logs
its ``why`` as an error instead of raising; the log context follows :mod:`contextvars` (so
asyncio tasks inherit it); :class:`PythonLoggingObserver` logs only events that do not already
reach :mod:`logging` (every event of the global publisher does). ``msg`` takes no lock:
observers run in the calling thread.

Layering: this module builds on :mod:`treadle.logger`, which never imports it back.
"""

from __future__ import annotations

import sys
import time
import warnings
from collections.abc import Callable, Iterable
from contextvars import ContextVar
from datetime import UTC, datetime
from io import UnsupportedOperation
from typing import IO, Any, NoReturn, TypeAlias, TypeVar

from zope.interface import Interface

from treadle.logger import LegacyLogObserverWrapper, LoggingFile, LogLevel, globalLogPublisher
from treadle.logger import LogBeginner as _LogBeginner
from treadle.logger import Logger as _NewLogger
from treadle.logger import LogPublisher as _NewPublisher
from treadle.logger import STDLibLogObserver as _NewSTDLibLogObserver
from treadle.logger import globalLogBeginner as _globalLogBeginner
from treadle.logger._legacy import publishToNewObserver
from treadle.logger._stdlib import hide_caller_file
from treadle.python.failure import Failure

__all__ = [
    "DefaultObserver",
    "EventDict",
    "FileLogObserver",
    "ILogContext",
    "ILogObserver",
    "LogPublisher",
    "Logger",
    "NullFile",
    "PythonLoggingObserver",
    "StdioOnnaStick",
    "addObserver",
    "callWithContext",
    "callWithLogger",
    "defaultObserver",
    "deferr",
    "discardLogs",
    "err",
    "logerr",
    "logfile",
    "msg",
    "removeObserver",
    "showwarning",
    "startLogging",
    "startLoggingWithObserver",
    "textFromEventDict",
    "theLogPublisher",
]

# Records made from log.msg/log.err name the code that called them, not this module.
hide_caller_file(__file__)

#: A legacy event: ``message`` (tuple), ``isError``, ``time``, ``system``, and maybe
#: ``failure``, ``why``, ``format``.
EventDict: TypeAlias = dict[str, Any]
_T = TypeVar("_T")


class ILogContext:
    """The key of the log context (``system`` and friends) in Twisted's context API."""


class ILogObserver(Interface):  # type: ignore[misc]  # zope's Interface is untyped
    """A legacy observer: a callable taking an :data:`EventDict`."""

    def __call__(eventDict):  # type: ignore[no-untyped-def]  # zope's method spec: no self
        """Handle ``eventDict``."""


_DEFAULT_CONTEXT: dict[str, Any] = {"system": "-"}
# None stands for _DEFAULT_CONTEXT (a ContextVar default should not be mutable).
_context: ContextVar[dict[str, Any] | None] = ContextVar("treadle_log_context", default=None)


def _current_context() -> dict[str, Any]:
    return _context.get() or _DEFAULT_CONTEXT


def callWithContext(ctx: dict[str, Any], func: Callable[..., _T], *args: Any, **kw: Any) -> _T:
    """Call ``func(*args, **kw)`` with ``ctx`` added to the keys of every message it logs.

    ``callWithContext({"system": "worker"}, job)`` makes ``job``'s messages say
    ``[worker]``. Contexts nest; the outer one is back once ``func`` returns or raises.
    """
    token = _context.set({**_current_context(), **ctx})
    try:
        return func(*args, **kw)
    finally:
        _context.reset(token)


def callWithLogger(logger: Any, func: Callable[..., _T], *args: Any, **kw: Any) -> _T | None:
    """Call ``func`` with ``logger.logPrefix()`` as the ``system``; log what it raises.

    Returns:
        What ``func`` returned, or None when it raised (the error is logged with ``err``).
        ``KeyboardInterrupt`` is re-raised.
    """
    try:
        prefix = logger.logPrefix()
    except KeyboardInterrupt:
        raise
    except BaseException:
        prefix = "(buggy logPrefix method)"
        err(system=prefix)
    try:
        return callWithContext({"system": prefix}, func, *args, **kw)
    except KeyboardInterrupt:
        raise
    except BaseException:
        err(system=prefix)
        return None


def err(_stuff: Any = None, _why: str | None = None, **kw: Any) -> None:
    """Log an error with its traceback.

    Args:
        _stuff: A :class:`~treadle.python.failure.Failure`, an exception, or None for the
            exception being handled; anything else is logged as its repr.
        _why: What was being done when it happened (default ``Unhandled Error``).
        **kw: More keys for the event (``system=...``).
    """
    if _stuff is None:
        if sys.exc_info()[1] is None:
            # Twisted raises here; an error report that itself fails helps nobody.
            msg(_why or "Unhandled Error", why=_why, isError=1, **kw)
            return
        _stuff = Failure()
    if isinstance(_stuff, Failure):
        msg(failure=_stuff, why=_why, isError=1, **kw)
    elif isinstance(_stuff, BaseException):
        msg(failure=Failure(_stuff), why=_why, isError=1, **kw)
    else:
        text = repr(_stuff) if not _why else f"{_why}: {_stuff!r}"
        msg(text, why=_why, isError=1, **kw)


deferr = err


class Logger:
    """Base for objects that name their log lines (``logPrefix``), as Twisted's protocols."""

    def logPrefix(self) -> str:
        """Return the ``system`` for lines logged on this object's behalf (``-``)."""
        return "-"


class LogPublisher:
    """The legacy publisher: ``msg`` publishes, legacy observers are wrapped and added.

    Args:
        observerPublisher: Where observers are added (a new :class:`~treadle.logger.LogPublisher`
            by default).
        publishPublisher: Where messages are published (by default the same).
        logBeginner: Used by :func:`startLoggingWithObserver`.
        warningsModule: Whose ``showwarning`` ``startLogging`` replaces.
    """

    def __init__(
        self,
        observerPublisher: Any = None,
        publishPublisher: Any = None,
        logBeginner: _LogBeginner | None = None,
        warningsModule: Any = warnings,
    ) -> None:
        if publishPublisher is None:
            publishPublisher = _NewPublisher()
            if observerPublisher is None:
                observerPublisher = publishPublisher
        if observerPublisher is None:
            observerPublisher = _NewPublisher()
        self._observerPublisher = observerPublisher
        self._publishPublisher = publishPublisher
        self._legacyObservers: list[LegacyLogObserverWrapper] = []
        if logBeginner is None:
            beginnerPublisher = _NewPublisher()
            beginnerPublisher.addObserver(observerPublisher)
            logBeginner = _LogBeginner(beginnerPublisher, NullFile(), sys, warnings)  # type: ignore[arg-type]
        self._logBeginner = logBeginner
        self._warningsModule = warningsModule
        self._oldshowwarning = warningsModule.showwarning
        self.showwarning = self._logBeginner.showwarning

    @property
    def observers(self) -> list[Callable[[EventDict], None]]:
        """The legacy observers added, in order."""
        return [wrapped.legacyObserver for wrapped in self._legacyObservers]

    def _startLogging(self, other: Callable[[EventDict], None], setStdout: bool) -> None:
        wrapped = LegacyLogObserverWrapper(other)
        self._legacyObservers.append(wrapped)
        self._logBeginner.beginLoggingTo([wrapped], True, setStdout)

    def _stopLogging(self) -> None:
        if self._warningsModule.showwarning == self.showwarning:
            self._warningsModule.showwarning = self._oldshowwarning

    def addObserver(self, other: Callable[[EventDict], None]) -> None:
        """Add a legacy observer."""
        wrapped = LegacyLogObserverWrapper(other)
        self._legacyObservers.append(wrapped)
        self._observerPublisher.addObserver(wrapped)

    def removeObserver(self, other: Callable[[EventDict], None]) -> None:
        """Remove a legacy observer (one never added is ignored)."""
        for wrapped in self._legacyObservers:
            if wrapped.legacyObserver == other:
                self._legacyObservers.remove(wrapped)
                self._observerPublisher.removeObserver(wrapped)
                return

    def msg(self, *message: Any, **kw: Any) -> None:
        """Log a message: the ``message`` parts joined by spaces, or ``format % kw``.

        Keyword arguments become keys of the event: ``isError=1`` makes it an error,
        ``system=`` names its source, ``format="%(n)d items"`` (with ``n=3``) formats it,
        ``logLevel=logging.WARNING`` sets its level.
        """
        event: EventDict = {**_current_context(), **kw}
        event["message"] = message
        event["time"] = time.time()
        event.setdefault("isError", 0)
        publishToNewObserver(self._publishPublisher, event, textFromEventDict)


#: The publisher behind :func:`msg`, :func:`addObserver` and :func:`startLogging`.
theLogPublisher = LogPublisher(
    observerPublisher=globalLogPublisher,
    publishPublisher=globalLogPublisher,
    logBeginner=_globalLogBeginner,
)

#: Log a message (see :meth:`LogPublisher.msg`).
msg = theLogPublisher.msg
#: Add a legacy observer to the global log.
addObserver = theLogPublisher.addObserver
#: Remove a legacy observer from the global log.
removeObserver = theLogPublisher.removeObserver
#: Log a warning (a replacement for :func:`warnings.showwarning`).
showwarning = theLogPublisher.showwarning


def _safe_str(value: object) -> str:
    try:
        return str(value)
    except Exception:
        try:
            return repr(value)
        except Exception:
            return f"<unprintable {type(value).__name__} object>"


def _safeFormat(fmtString: str, fmtDict: dict[str, Any]) -> str:
    try:
        return fmtString % fmtDict
    except KeyboardInterrupt:
        raise
    except BaseException:
        try:
            return (
                "Invalid format string or unformattable object in log message: "
                f"{fmtString!r}, {fmtDict}"
            )
        except BaseException:
            return f"UNFORMATTABLE OBJECT WRITTEN TO LOG with fmt {fmtString!r}, MESSAGE LOST"


def textFromEventDict(eventDict: EventDict) -> str | None:
    """Return the text of a legacy event.

    The ``message`` parts joined by spaces; for an error without message, ``why`` (or
    ``Unhandled Error``) and the failure's traceback; else ``format % eventDict``.

    Returns:
        The text, or None when the event has none.
    """
    parts = eventDict.get("message")
    if parts:
        return " ".join(_safe_str(part) for part in parts)
    if eventDict.get("isError") and "failure" in eventDict:
        why = eventDict.get("why")
        text = _safe_str(why) if why else "Unhandled Error"
        try:
            tb = eventDict["failure"].getTraceback()
        except Exception as e:
            tb = f"(unable to obtain traceback): {e}"
        return f"{text}\n{tb}"
    if "format" in eventDict:
        return _safeFormat(eventDict["format"], eventDict)
    return None


class _GlobalStartStopObserver:
    """A legacy observer with :meth:`start`/:meth:`stop` on the global log."""

    def emit(self, eventDict: EventDict) -> None:
        """Handle one legacy event."""
        raise NotImplementedError

    def start(self) -> None:
        """Start observing the global log."""
        addObserver(self.emit)

    def stop(self) -> None:
        """Stop observing the global log."""
        removeObserver(self.emit)


class FileLogObserver(_GlobalStartStopObserver):
    """Writes ``2024-05-01 12:30:00+0200 [system] text`` lines to a file.

    Args:
        f: A text file (its ``write`` and ``flush`` are used).

    Attributes:
        timeFormat: A :meth:`~datetime.datetime.strftime` format replacing the default time.
    """

    timeFormat: str | None = None

    def __init__(self, f: IO[str]) -> None:
        self.write = f.write
        self.flush = f.flush

    def getTimezoneOffset(self, when: float) -> int:
        """Return the local zone's offset at ``when``, in seconds west of UTC."""
        utc = datetime.fromtimestamp(when, UTC).replace(tzinfo=None)
        offset = utc - datetime.fromtimestamp(when)
        return offset.days * 86400 + offset.seconds

    def formatTime(self, when: float) -> str:
        """Return ``when`` as local time, ``YYYY-MM-DD HH:MM:SS+HHMM`` unless
        :attr:`timeFormat` says otherwise."""
        if self.timeFormat is not None:
            return datetime.fromtimestamp(when).strftime(self.timeFormat)
        offset = -self.getTimezoneOffset(when)
        local = datetime.fromtimestamp(when + offset, UTC)
        sign = "-" if offset < 0 else "+"
        hours, minutes = abs(int(offset / 3600)), abs(int(offset / 60 % 60))
        return f"{local:%Y-%m-%d %H:%M:%S}{sign}{hours:02d}{minutes:02d}"

    def emit(self, eventDict: EventDict) -> None:
        """Write one line (continuation lines indented with a tab) and flush."""
        text = textFromEventDict(eventDict)
        if text is None:
            return
        stamp = self.formatTime(eventDict["time"])
        line = _safeFormat(
            "[%(system)s] %(text)s\n",
            {"system": eventDict.get("system", "-"), "text": text.replace("\n", "\n\t")},
        )
        self.write(f"{stamp} {line}")
        self.flush()


class PythonLoggingObserver(_GlobalStartStopObserver):
    """Sends legacy events to a :mod:`logging` logger (``loggerName``).

    Events of the global log reach :mod:`logging` already, so for those this does nothing;
    it logs the events of other publishers it is added to.

    Args:
        loggerName: The logger (Twisted's default is ``"twisted"``).
    """

    def __init__(self, loggerName: str = "treadle") -> None:
        self._newObserver = _NewSTDLibLogObserver(loggerName)

    def emit(self, eventDict: EventDict) -> None:
        """Log ``eventDict`` (only events the new-style API formatted)."""
        if "log_format" in eventDict:
            publishToNewObserver(self._newObserver, eventDict, textFromEventDict)


class StdioOnnaStick:
    """A file-like object logging each line written to it with :func:`msg`.

    Args:
        isError: Log the lines as errors.
        encoding: Reported as the file's encoding.
    """

    closed = 0
    softspace = 0
    mode = "wb"
    name = "<stdio (log)>"

    def __init__(self, isError: int = 0, encoding: str | None = None) -> None:
        self.isError = isError
        self.encoding = encoding or sys.getdefaultencoding()
        self.buf = ""

    def close(self) -> None:
        """Do nothing."""

    def fileno(self) -> NoReturn:
        """Raise :class:`io.UnsupportedOperation`."""
        raise UnsupportedOperation("StdioOnnaStick has no file descriptor.")

    def flush(self) -> None:
        """Do nothing."""

    def read(self, *args: Any) -> NoReturn:
        """Raise :class:`OSError`: the log cannot be read."""
        raise OSError("can't read from the log!")

    readline = readlines = seek = tell = read

    def write(self, data: str) -> None:
        """Log each complete line of ``data``."""
        lines = (self.buf + data).split("\n")
        self.buf = lines.pop()
        for line in lines:
            msg(line, printed=1, isError=self.isError)

    def writelines(self, lines: Iterable[str]) -> None:
        """Log each of ``lines``."""
        for line in lines:
            msg(line, printed=1, isError=self.isError)


def startLoggingWithObserver(observer: Callable[[EventDict], None], setStdout: bool = True) -> None:
    """Begin logging to the legacy ``observer`` (see ``beginLoggingTo``), then log
    ``Log opened.``.

    Args:
        observer: The legacy observer.
        setStdout: Also redirect ``sys.stdout``/``sys.stderr`` to the log.
    """
    theLogPublisher._startLogging(observer, setStdout)
    msg("Log opened.")


def startLogging(file: Any, *a: Any, **kw: Any) -> FileLogObserver | None:
    """Begin logging to ``file`` with a :class:`FileLogObserver`.

    Args:
        file: A text file (``sys.stdout``, an open log file). A :class:`LoggingFile` (the
            log itself: ``sys.stdout`` once redirected) is refused silently.
        *a, **kw: ``setStdout`` as for :func:`startLoggingWithObserver`.

    Returns:
        The observer, or None when ``file`` was the log itself.
    """
    if isinstance(file, LoggingFile):
        return None
    observer = FileLogObserver(file)
    startLoggingWithObserver(observer.emit, *a, **kw)
    return observer


class NullFile:
    """A file that discards what is written."""

    softspace = 0

    def read(self) -> None:
        """Return nothing."""

    def write(self, bytes: Any) -> None:
        """Discard ``bytes``."""

    def flush(self) -> None:
        """Do nothing."""

    def close(self) -> None:
        """Do nothing."""


#: A file whose lines are logged as info events (namespace ``treadle.python.log``).
logfile: Any = LoggingFile(
    _NewLogger(namespace=__name__), LogLevel.info, getattr(sys.stdout, "encoding", None)
)
#: A file whose lines are logged as error events.
logerr: Any = LoggingFile(
    _NewLogger(namespace=__name__), LogLevel.error, getattr(sys.stderr, "encoding", None)
)


def discardLogs() -> None:
    """Make :data:`logfile` a :class:`NullFile`."""
    global logfile
    logfile = NullFile()


class DefaultObserver(_GlobalStartStopObserver):
    """A legacy observer writing the text of error events to standard error."""

    stderr = sys.stderr

    def emit(self, eventDict: EventDict) -> None:
        """Write the text of ``eventDict`` if it is an error."""
        if eventDict.get("isError"):
            text = textFromEventDict(eventDict)
            if text is not None:
                self.stderr.write(text)
            self.stderr.flush()


#: A :class:`DefaultObserver`, not started.
defaultObserver = DefaultObserver()
