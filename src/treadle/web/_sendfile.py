"""Sending a file's bytes for :class:`treadle.web.static.File`: zero-copy where possible.

Sending. A body of at most :data:`treadle.web.static.SMALL_BODY` bytes is read and returned from
``render_GET`` (one ``transport.write``, no Task). A larger one is sent by a
:class:`FileSender` task that never holds the file in memory: the head goes out with
``request.write(b"")`` (explicit ``Content-Length``, hence length framing), then the bytes
are sent zero-copy by the first of these that the loop and transport allow:

1. ``loop.sendfile`` — asyncio's own loops on a plain socket transport;
2. ``os.sendfile`` on the transport's socket, once the transport's buffer is empty, waiting
   for writability on a ``dup`` of the descriptor (both loops refuse ``add_writer`` on a
   descriptor a transport owns) — uvloop, whose loop does not implement ``sendfile``
   (it raises ``NotImplementedError`` as of uvloop 0.23);
3. ``pread`` + ``request.write`` in 64 KiB steps, awaiting ``request.drain()`` between
   them — TLS, or a file object without a descriptor.

The task is cancelled when the client goes away (``notifyFinish`` errback), the file is
closed in every case, and a file that shrinks under a transfer closes the connection once
the bytes it still had are sent (the promised ``Content-Length`` can no longer be met: the
client sees a short body, every byte of it the file's).
"""

from __future__ import annotations

import asyncio
import errno
import io
import logging
import os
from typing import IO, TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from treadle.web._conditional import Piece
    from treadle.web.server import Request

__all__ = ["FileSender", "read_exact"]

error_log = logging.getLogger("treadle.error")

#: Bytes per ``os.sendfile`` call: the loop gets control back between bursts.
_SENDFILE_CHUNK: Final = 1024 * 1024
#: Bytes per read when the body has to be copied through user space.
_COPY_CHUNK: Final = 64 * 1024

_HAVE_PREAD: Final = hasattr(os, "pread")


class _FileShrank(Exception):
    """The file ended before the bytes promised in ``Content-Length``."""


def _read_at(file: IO[bytes], offset: int, count: int) -> bytes:
    """Read up to ``count`` bytes at ``offset`` (``pread`` when the file has a descriptor)."""
    try:
        fd = file.fileno()
    except (AttributeError, OSError, io.UnsupportedOperation):
        fd = -1
    if fd < 0 or not _HAVE_PREAD:
        file.seek(offset)
        return file.read(count)
    return os.pread(fd, count, offset)


def read_exact(file: IO[bytes], offset: int, count: int) -> bytes:
    """Read ``count`` bytes at ``offset``, fewer only if the file ends first."""
    chunks = []
    while count > 0:
        data = _read_at(file, offset, count)
        if not data:
            break  # the file shrank since fstat: send what there is, framed by its length
        chunks.append(data)
        offset += len(data)
        count -= len(data)
    return b"".join(chunks)


def _sendfile_strategy(loop: asyncio.AbstractEventLoop, transport: Any, file: IO[bytes]) -> str:
    """Pick how to send file bytes: ``"loop"``, ``"os"`` or ``"copy"`` (see module doc)."""
    try:
        file.fileno()
    except (AttributeError, OSError, io.UnsupportedOperation):
        return "copy"
    if transport.get_extra_info("sslcontext") is not None:
        # asyncio would fall back to swapping the transport's protocol for its own while
        # it copies; our copy loop keeps the channel in charge instead.
        return "copy"
    if transport.get_extra_info("socket") is None:
        return "copy"  # no socket of its own to send to (an HTTP/2 stream)
    if type(loop).sendfile is not asyncio.AbstractEventLoop.sendfile:
        return "loop"
    if hasattr(os, "sendfile"):
        return "os"
    return "copy"


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


async def _writable(loop: asyncio.AbstractEventLoop, fd: int) -> None:
    """Wait until ``fd`` is writable."""
    waiter: asyncio.Future[None] = loop.create_future()
    loop.add_writer(fd, _wake, waiter)
    try:
        await waiter
    finally:
        # Removed here, synchronously, before the caller can close ``fd``: a later removal
        # could hit another connection that reused the descriptor number.
        loop.remove_writer(fd)


class _SendfileUnavailable(Exception):
    """``os.sendfile`` refused the pair before sending anything; copy instead."""


async def _send_with_os_sendfile(
    request: Request, transport: Any, file: IO[bytes], offset: int, count: int
) -> None:
    loop = asyncio.get_running_loop()
    out_fd = transport.get_extra_info("socket").fileno()
    in_fd = file.fileno()
    # Both asyncio and uvloop refuse add_writer on a descriptor one of their transports
    # owns; a duplicate refers to the same socket and may be watched freely.
    watch = os.dup(out_fd)
    try:
        # What the transport still buffers (the head) must reach the socket before us.
        while transport.get_write_buffer_size():
            await _writable(loop, watch)
            await asyncio.sleep(0)  # let the transport flush on this readiness
        sent_any = False
        while count > 0:
            if transport.is_closing():
                raise ConnectionResetError("connection closed during sendfile")
            try:
                sent = os.sendfile(out_fd, in_fd, offset, min(count, _SENDFILE_CHUNK))
            except (BlockingIOError, InterruptedError):
                await _writable(loop, watch)
                continue
            except OSError as e:
                if not sent_any and e.errno in (
                    errno.EINVAL,
                    errno.ENOSYS,
                    errno.ENOTSOCK,
                    errno.EOPNOTSUPP,
                ):
                    raise _SendfileUnavailable from e
                raise
            if sent == 0:
                raise _FileShrank
            sent_any = True
            offset += sent
            count -= sent
            request.sentLength += sent
            await asyncio.sleep(0)  # fairness: other connections run between bursts
    finally:
        os.close(watch)


async def _send_by_copy(request: Request, file: IO[bytes], offset: int, count: int) -> None:
    while count > 0:
        data = _read_at(file, offset, min(count, _COPY_CHUNK))
        if not data:
            raise _FileShrank
        request.write(data)
        offset += len(data)
        count -= len(data)
        await request.drain()  # waits only while the transport is above its high-water mark
        await asyncio.sleep(0)


async def _send_range(request: Request, file: IO[bytes], offset: int, count: int) -> None:
    """Send ``count`` bytes of ``file`` from ``offset`` after what the request already wrote."""
    transport: Any = request.asyncio_transport
    if transport is None or transport.is_closing():
        raise ConnectionResetError("connection closed")
    loop = asyncio.get_running_loop()
    strategy = _sendfile_strategy(loop, transport, file)
    if getattr(request, "_encoder", None) is not None:
        # A content encoder (gzip) rewrites what request.write is given: zero-copy would
        # put the raw file bytes past it on the wire.
        strategy = "copy"
    if strategy == "loop":
        try:
            sent = await loop.sendfile(transport, file, offset, count, fallback=False)
        except (NotImplementedError, RuntimeError):
            # Raised before a byte is sent (SendfileNotAvailableError is a RuntimeError,
            # and asyncio raises it only when nothing went out): try the next way.
            if transport.is_closing():
                raise ConnectionResetError("connection closed") from None
            strategy = "os" if hasattr(os, "sendfile") else "copy"
        else:
            request.sentLength += sent
            if sent < count:
                raise _FileShrank
            return
    if strategy == "os":
        try:
            await _send_with_os_sendfile(request, transport, file, offset, count)
            return
        except _SendfileUnavailable:
            pass
    await _send_by_copy(request, file, offset, count)


_sending: set[asyncio.Task[None]] = set()  # strong references: the loop keeps weak ones


class FileSender:
    """Streams a large body: one task per response, cancelled if the client leaves."""

    __slots__ = ("file", "lost", "pieces", "request", "task")

    def __init__(self, request: Request, file: IO[bytes], pieces: list[Piece]) -> None:
        self.request = request
        self.file = file
        self.pieces = pieces
        self.lost = False
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start sending on the running loop; the file is closed when the task ends."""
        task = asyncio.get_running_loop().create_task(self._run())
        self.task = task
        _sending.add(task)
        # A task cancelled before its first step never enters the coroutine's ``finally``:
        # the file is closed by the done callback, which always runs.
        task.add_done_callback(self._done)
        self.request.notifyFinish().addErrback(self._connection_lost)

    def _done(self, task: asyncio.Task[None]) -> None:
        _sending.discard(task)
        self.file.close()

    def _connection_lost(self, failure: object) -> None:
        self.lost = True
        if self.task is not None:
            self.task.cancel()

    async def _run(self) -> None:
        request = self.request
        try:
            for prefix, offset, count in self.pieces:
                if prefix:
                    request.write(prefix)
                if count:
                    await _send_range(request, self.file, offset, count)
        except ConnectionError as e:
            error_log.debug("client left during a file transfer: %r", e)
            self._abort()
            return
        except _FileShrank:
            error_log.warning("file shrank while being sent; connection closed (%r)", request)
            # Closed, not aborted: what is already written still reaches the client.
            self._abort(flush=True)
            return
        except Exception:
            error_log.exception("error sending a file for %r", request)
            self._abort()
            return
        if not self.lost and not request.finished:
            request.finish()

    def _abort(self, *, flush: bool = False) -> None:
        # The head is out, so no error page is possible: cut the connection so the client
        # sees a short body rather than waiting for bytes that will never come (``flush``:
        # after what is already written, rather than dropping it).
        transport = self.request.asyncio_transport
        if not self.lost and transport is not None:
            if flush:
                transport.close()
            else:
                transport.abort()
