"""Files: :class:`FileLogObserver` writes each event's text; :func:`textFileLogObserver`."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import IO, Any

from zope.interface import implementer

from treadle.logger._format import formatEventAsClassicLogText, formatTime, timeFormatRFC3339
from treadle.logger._interfaces import ILogObserver, LogEvent

__all__ = ["FileLogObserver", "textFileLogObserver"]


def _is_binary(outFile: object) -> bool:
    if isinstance(outFile, io.TextIOBase):
        return False
    if isinstance(outFile, io.BufferedIOBase | io.RawIOBase):
        return True
    return "b" in str(getattr(outFile, "mode", ""))


@implementer(ILogObserver)
class FileLogObserver:
    """Writes ``formatEvent(event)`` to a file for each event, and flushes.

    Args:
        outFile: A text file, or a binary one (the text is then written as UTF-8).
        formatEvent: Returns an event's text (with its newline), or None/``""`` to skip it.
    """

    def __init__(self, outFile: IO[Any], formatEvent: Callable[[LogEvent], str | None]) -> None:
        self._encoding = "utf-8" if _is_binary(outFile) else None
        self._outFile = outFile
        self.formatEvent = formatEvent

    def __call__(self, event: LogEvent) -> None:
        """Write ``event``'s text, if it has one."""
        text = self.formatEvent(event)
        if not text:
            return
        if self._encoding is None:
            self._outFile.write(text)
        else:
            self._outFile.write(text.encode(self._encoding))
        self._outFile.flush()


def textFileLogObserver(
    outFile: IO[Any], timeFormat: str | None = timeFormatRFC3339
) -> FileLogObserver:
    """Return an observer writing ``time [namespace#level] message`` lines to ``outFile``.

    Args:
        outFile: Where to write.
        timeFormat: :meth:`~datetime.datetime.strftime` format of the time; None writes
            ``-`` instead.
    """

    def format_time(when: float | None) -> str:
        return formatTime(when, timeFormat)

    def format_event(event: LogEvent) -> str | None:
        return formatEventAsClassicLogText(event, formatTime=format_time)

    return FileLogObserver(outFile, format_event)
