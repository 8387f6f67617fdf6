""":class:`LoggingFile`: a file whose lines become events (for ``print`` redirected to the log)."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable
from io import UnsupportedOperation
from typing import IO, Any, NoReturn

from treadle.logger._levels import LogLevel
from treadle.logger._logger import Logger
from treadle.logger._stdlib import _dispatching

__all__ = ["LoggingFile"]


_HANDLER_CODE = logging.Handler.handle.__code__
# How far up to look for a logging handler: write <- emit <- handle, plus a few frames for
# handlers that wrap their stream.
_HANDLER_DEPTH = 6


def _inside_logging_handler() -> bool:
    frame = sys._getframe(2)
    for _ in range(_HANDLER_DEPTH):
        if frame is None:
            return False
        if frame.f_code is _HANDLER_CODE:
            return True
        frame = frame.f_back  # type: ignore[assignment]
    return False


class LoggingFile:
    """A write-only text file emitting each complete line as an event (``{log_io}``).

    ``beginLoggingTo`` puts two of these in ``sys.stdout`` (info) and ``sys.stderr``
    (error). Unlike Twisted's, text written while an event is being delivered (by an observer
    that prints) or by a :mod:`logging` handler (a ``StreamHandler`` on ``sys.stderr``) goes
    to the stream this file replaced (``fallback``) instead of becoming another event: it is
    log output already, and as an event it would be logged twice or loop.

    Args:
        logger: Emits the lines.
        level: Their level.
        encoding: Used to decode bytes written (default: the interpreter's).
        fallback: Where lines written during delivery go (dropped when None).
    """

    def __init__(
        self,
        logger: Logger,
        level: LogLevel = LogLevel.info,
        encoding: str | None = None,
        fallback: IO[str] | None = None,
    ) -> None:
        self.level = level
        self.log = logger
        self._encoding = encoding or sys.getdefaultencoding()
        self._fallback = fallback
        self._buffer = ""
        self._closed = False

    @property
    def closed(self) -> bool:
        """True after :meth:`close`."""
        return self._closed

    @property
    def encoding(self) -> str:
        """The encoding bytes are decoded with."""
        return self._encoding

    @property
    def mode(self) -> str:
        """``"w"``."""
        return "w"

    @property
    def newlines(self) -> None:
        """None, as for any write-only file."""
        return None

    @property
    def name(self) -> str:
        """``<LoggingFile namespace#level>``."""
        return f"<{self.__class__.__name__} {self.log.namespace}#{self.level.name}>"

    def close(self) -> None:
        """Refuse further writes."""
        self._closed = True

    def flush(self) -> None:
        """Do nothing: a line is emitted as soon as it is complete."""

    def fileno(self) -> NoReturn:
        """Raise :class:`io.UnsupportedOperation`: there is no descriptor."""
        raise UnsupportedOperation("LoggingFile has no file descriptor.")

    def isatty(self) -> bool:
        """False."""
        return False

    def writable(self) -> bool:
        """True while open."""
        return not self._closed

    def readable(self) -> bool:
        """False."""
        return False

    def write(self, message: str | bytes) -> int:
        """Emit each line completed by ``message``; keep the rest for the next write.

        Raises:
            ValueError: The file is closed.
        """
        if self._closed:
            raise ValueError("I/O operation on closed file")
        text = message.decode(self._encoding) if isinstance(message, bytes) else message
        if _dispatching.get() is not None or _inside_logging_handler():
            if self._fallback is not None:
                self._fallback.write(text)
            return len(message)
        lines = (self._buffer + text).split("\n")
        self._buffer = lines.pop()
        for line in lines:
            self.log.emit(self.level, format="{log_io}", log_io=line)
        return len(message)

    def writelines(self, lines: Iterable[str | bytes]) -> None:
        """Write each of ``lines`` (they are not joined with newlines)."""
        for line in lines:
            self.write(line)

    def _unsupported(self, *args: Any) -> NoReturn:
        raise OSError("unsupported operation")

    read = readline = readlines = seek = tell = truncate = _unsupported
