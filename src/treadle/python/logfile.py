"""Log files that rotate: by size (:class:`LogFile`) or by day (:class:`DailyLogFile`).

``twisted.python.logfile`` ports to this module. A log file is an open binary file with a
``write`` that takes bytes or text (UTF-8), which is what the log observers write to; a
``.tac`` file gives one to the application's log observer::

    from treadle.logger import ILogObserver, textFileLogObserver
    from treadle.python.logfile import DailyLogFile

    logfile = DailyLogFile("app.log", "/var/log/app")
    application.setComponent(ILogObserver, textFileLogObserver(logfile))

A :class:`LogFile` past ``rotateLength`` bytes is renamed ``app.log.1`` (the older ones
``.2``, ``.3``, ...; at most ``maxRotatedFiles`` are kept) and a new one started; a
:class:`DailyLogFile` written on a later day than its last write is renamed with that day's
suffix (``app.log.2026_12_6``). Writes and rotations hold a lock, so threads may share one.

Differences from Twisted, on purpose:

* A :class:`LogFile` counts its size in bytes written, also for text beyond ASCII (Twisted
  counts characters, and rotates late).
* When a :class:`DailyLogFile` cannot rotate because the day's file exists already (two
  processes, or a clock set back), it goes on writing to its file until the next day
  rather than trying again, and failing again, at every write.
"""

from __future__ import annotations

import contextlib
import glob
import os
import stat
import threading
import time
from collections.abc import Sequence
from typing import IO, Any

__all__ = ["BaseLogFile", "DailyLogFile", "LogFile", "LogReader"]


class BaseLogFile:
    """A log file that can be rotated (subclasses say when, and how).

    Args:
        name: The file's name.
        directory: The directory it is in.
        defaultMode: The permissions to create it with (and set on it); by default those of
            the file already there, if any.

    Attributes:
        path: ``directory`` joined with ``name``.
        closed: Whether :meth:`close` was called.
    """

    def __init__(self, name: str, directory: str, defaultMode: int | None = None) -> None:
        self.directory = directory
        self.name = name
        self.path = os.path.join(directory, name)
        if defaultMode is None and os.path.exists(self.path):
            defaultMode = stat.S_IMODE(os.stat(self.path).st_mode)
        self.defaultMode = defaultMode
        self._lock = threading.RLock()
        self._openFile()

    @classmethod
    def fromFullPath(cls, filename: str, *args: Any, **kwargs: Any) -> Any:
        """Make a log file from the path of the file."""
        path = os.path.abspath(filename)
        return cls(os.path.basename(path), os.path.dirname(path), *args, **kwargs)

    def shouldRotate(self) -> bool:
        """Whether the next write goes to a new file (the subclass says)."""
        raise NotImplementedError

    def rotate(self) -> None:
        """Put the current file aside and start a new one (the subclass says how)."""
        raise NotImplementedError

    def _openFile(self) -> None:
        self.closed = False
        if os.path.exists(self.path):
            self._file: IO[bytes] = open(self.path, "rb+", 0)  # noqa: SIM115
            self._file.seek(0, os.SEEK_END)
        elif self.defaultMode is not None:
            # Created with no permission at all, then given its mode: never readable by
            # others in between.
            old = os.umask(0o777)
            try:
                self._file = open(self.path, "wb+", 0)  # noqa: SIM115
            finally:
                os.umask(old)
        else:
            self._file = open(self.path, "wb+", 0)  # noqa: SIM115
        if self.defaultMode is not None:
            with contextlib.suppress(OSError):  # /dev/null, or a file we do not own
                os.chmod(self.path, self.defaultMode)

    def write(self, data: bytes | str) -> None:
        """Write ``data`` (text as UTF-8), rotating first if it is time to."""
        if isinstance(data, str):
            data = data.encode("utf-8")
        with self._lock:
            if self.shouldRotate():
                self.flush()
                self.rotate()
            self._file.write(data)
            self._wrote(len(data))

    def _wrote(self, size: int) -> None:
        """``size`` bytes were written (for a subclass that counts)."""

    def flush(self) -> None:
        """Flush the file."""
        self._file.flush()

    def close(self) -> None:
        """Close the file (it cannot be written any more, until :meth:`reopen`)."""
        self.closed = True
        self._file.close()

    def reopen(self) -> None:
        """Close and open the file again: for a file moved away by an outside rotation
        tool (``logrotate``)."""
        with self._lock:
            self.close()
            self._openFile()

    def getCurrentLog(self) -> LogReader:
        """A :class:`LogReader` of the current file."""
        return LogReader(self.path)

    def _rotated(self, suffix: str) -> LogReader:
        """A :class:`LogReader` of the rotated file with ``suffix``.

        Raises:
            ValueError: There is no such file.
        """
        filename = f"{self.path}.{suffix}"
        if not os.path.exists(filename):
            raise ValueError("no such logfile exists")
        return LogReader(filename)

    def __getstate__(self) -> dict[str, Any]:
        """What a pickle keeps: not the open file, nor the lock."""
        state = dict(self.__dict__)
        for name in ("_file", "_lock", "closed"):
            state.pop(name, None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Open the file again after unpickling."""
        self.__dict__.update(state)
        self._lock = threading.RLock()
        self._openFile()


class LogFile(BaseLogFile):
    """A log file rotated when it reaches ``rotateLength`` bytes.

    Args:
        name: The file's name.
        directory: The directory it is in.
        rotateLength: The size past which it is rotated (None or 0: never).
        defaultMode: As for :class:`BaseLogFile`.
        maxRotatedFiles: The most rotated files kept (``.1`` to ``.N``; older ones are
            removed); None keeps them all.

    Attributes:
        size: Bytes in the current file.
    """

    def __init__(
        self,
        name: str,
        directory: str,
        rotateLength: int | None = 1000000,
        defaultMode: int | None = None,
        maxRotatedFiles: int | None = None,
    ) -> None:
        self.rotateLength = rotateLength
        self.maxRotatedFiles = maxRotatedFiles
        super().__init__(name, directory, defaultMode)

    def _openFile(self) -> None:
        super()._openFile()
        self.size = self._file.tell()

    def _wrote(self, size: int) -> None:
        self.size += size

    def shouldRotate(self) -> bool:
        """Whether the file has reached ``rotateLength`` bytes."""
        return bool(self.rotateLength) and self.size >= (self.rotateLength or 0)

    def rotate(self) -> None:
        """Rename the file ``.1`` (the older ones one number up) and start a new one.

        Nothing happens when the directory or the file cannot be written: the log goes on
        in the current file.
        """
        with self._lock:
            if not (os.access(self.directory, os.W_OK) and os.access(self.path, os.W_OK)):
                return
            for number in reversed(self.listLogs()):
                older = f"{self.path}.{number}"
                if self.maxRotatedFiles is not None and number >= self.maxRotatedFiles:
                    os.remove(older)
                else:
                    os.rename(older, f"{self.path}.{number + 1}")
            self._file.close()
            os.rename(self.path, f"{self.path}.1")
            self._openFile()

    def listLogs(self) -> list[int]:
        """The numbers of the rotated files, in order."""
        numbers = []
        for name in glob.glob(glob.escape(self.path) + ".*"):
            suffix = name.rsplit(".", 1)[-1]
            if suffix.isdigit() and int(suffix):
                numbers.append(int(suffix))
        return sorted(numbers)

    def getLog(self, identifier: int) -> LogReader:
        """A :class:`LogReader` of rotated file number ``identifier``.

        Raises:
            ValueError: There is no such file.
        """
        return self._rotated(str(identifier))

    def __getstate__(self) -> dict[str, Any]:
        """What a pickle keeps (the size is read again from the file)."""
        state = super().__getstate__()
        state.pop("size", None)
        return state


class DailyLogFile(BaseLogFile):
    """A log file rotated at the first write of a new day (local time).

    The file written on a day is renamed with that day's suffix (``app.log.2026_12_6``,
    see :meth:`suffix`).

    Attributes:
        lastDate: The ``(year, month, day)`` of the last write (of the file's change, when
            it was opened).
    """

    def _openFile(self) -> None:
        super()._openFile()
        self.lastDate = self.toDate(os.stat(self.path).st_mtime)

    def toDate(self, *args: float) -> tuple[int, int, int]:
        """``(year, month, day)`` in local time, of the Unix time given or of now."""
        year, month, day = time.localtime(*args)[:3]
        return (year, month, day)

    def suffix(self, tupledate: Sequence[int] | float) -> str:
        """The suffix of the file of a day (``2026_12_6``), given as ``(year, month, day)``
        or as a Unix time."""
        if isinstance(tupledate, int | float):
            tupledate = self.toDate(tupledate)
        return "_".join(map(str, tupledate))

    def shouldRotate(self) -> bool:
        """Whether today is later than the day of the last write."""
        return self.toDate() > self.lastDate

    def _wrote(self, size: int) -> None:
        # Never back: a clock set back a day must not make yesterday's file today's.
        self.lastDate = max(self.lastDate, self.toDate())

    def rotate(self) -> None:
        """Rename the file with the suffix of its day and start a new one.

        Nothing happens when the directory or the file cannot be written; when the day's
        file exists already, the log goes on in the current file until the next day.
        """
        with self._lock:
            if not (os.access(self.directory, os.W_OK) and os.access(self.path, os.W_OK)):
                return
            target = f"{self.path}.{self.suffix(self.lastDate)}"
            if os.path.exists(target):
                self.lastDate = self.toDate()
                return
            self._file.close()
            os.rename(self.path, target)
            self._openFile()

    def getLog(self, identifier: float) -> LogReader:
        """A :class:`LogReader` of the file of the day of Unix time ``identifier``.

        Raises:
            ValueError: There is no such file.
        """
        if self.toDate(identifier) == self.lastDate:
            return self.getCurrentLog()
        return self._rotated(self.suffix(identifier))

    def __getstate__(self) -> dict[str, Any]:
        """What a pickle keeps (the date is read again from the file)."""
        state = super().__getstate__()
        state.pop("lastDate", None)
        return state


class LogReader:
    """Lines of a log file, a few at a time.

    Args:
        name: The file's path.
    """

    def __init__(self, name: str) -> None:
        self._file = open(name)  # noqa: SIM115

    def readLines(self, lines: int = 10) -> list[str]:
        """Up to ``lines`` more lines (fewer at the end of the file)."""
        result = []
        for _ in range(lines):
            line = self._file.readline()
            if not line:
                break
            result.append(line)
        return result

    def close(self) -> None:
        """Close the file."""
        self._file.close()
