"""Access-log lines written in batches: one write per turn of the event loop, not per request.

A line per request written and flushed on its own costs a system call per request, and going
through :mod:`logging` costs a ``LogRecord`` (caller lookup, thread and process names) on
top: together they made a logged request about four times the cost of an unlogged one.
:class:`AccessLogWriter` keeps the lines a loop turn produces and writes them when the turn
is over, so under load one write carries many lines and at rest a line still appears at once
(the next turn).

The batch is cut into writes of at most :data:`ATOMIC_WRITE` bytes ending at a line
boundary: the workers of ``--workers`` share one standard output, and a write to a pipe no
larger than ``PIPE_BUF`` is never interleaved with another process's, so no line is ever
torn. (A single line longer than that is written alone.)
"""

from __future__ import annotations

import asyncio
from typing import IO, Final

__all__ = ["ATOMIC_WRITE", "AccessLogWriter"]

#: Bytes a single write carries at most (Linux's ``PIPE_BUF``: atomic on a pipe).
ATOMIC_WRITE: Final = 4096


class AccessLogWriter:
    """Writes access-log lines to a text stream, in one batch per event-loop turn.

    Args:
        stream: Where the lines go (a file opened for appending, standard output).
        owns_stream: Whether :meth:`close` closes ``stream`` too (a file the writer was
            given to own) or only flushes it (standard output).

    Lines must be ASCII for the batches to stay within :data:`ATOMIC_WRITE` bytes exactly;
    the combined formats escape everything else, so theirs are.
    """

    __slots__ = ("_lines", "_size", "owns_stream", "stream")

    def __init__(self, stream: IO[str], *, owns_stream: bool = False) -> None:
        self.stream = stream
        self.owns_stream = owns_stream
        self._lines: list[str] = []
        self._size = 0

    def write(self, line: str) -> None:
        """Queue ``line`` (ending in a newline); it is written when this loop turn ends.

        Outside a running event loop (a program driving a request by hand), it is written
        at once.
        """
        lines = self._lines
        if not lines:
            try:
                asyncio.get_running_loop().call_soon(self.flush)
            except RuntimeError:
                self._write(line)
                return
        lines.append(line)
        self._size += len(line)
        if self._size >= 16 * ATOMIC_WRITE:
            self._write_queued()  # a huge turn: keep the queue short

    def flush(self) -> None:
        """Write every queued line now and flush the stream."""
        if self._lines:
            self._write_queued()

    def close(self) -> None:
        """Write what is queued; close the stream if the writer owns it."""
        self.flush()
        if self.owns_stream:
            self.stream.close()

    def _write_queued(self) -> None:
        lines, total = self._lines, self._size
        self._lines, self._size = [], 0
        if total <= ATOMIC_WRITE:
            self._write("".join(lines))
            return
        batch: list[str] = []
        size = 0
        for line in lines:
            if batch and size + len(line) > ATOMIC_WRITE:
                self._write("".join(batch))
                batch, size = [], 0
            batch.append(line)
            size += len(line)
        if batch:
            self._write("".join(batch))

    def _write(self, text: str) -> None:
        stream = self.stream
        if stream.closed:
            return  # the log closed under a request still finishing: nothing to write to
        stream.write(text)
        stream.flush()
