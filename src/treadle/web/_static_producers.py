"""Twisted's way of sending a file: pull producers writing through ``request.write``.

:class:`NoRangeStaticProducer`, :class:`SingleRangeStaticProducer` and
:class:`MultipleRangeStaticProducer` are ``twisted.web.static``'s public producers, which
:meth:`treadle.web.static.File.makeProducer` returns. Each registers itself with the request
as a pull producer (``start()``), writes at most :attr:`StaticProducer.bufferSize` bytes per
``resumeProducing()`` call, and finishes the request after the last byte.

treadle's own server does not need them: :class:`~treadle.web.static.File` returns a small
body whole and streams a large one zero-copy (:mod:`treadle.web._sendfile`). They serve
requests of other kinds (a test double such as ``DummyRequest``, or a program's own
``IRequest``), so that everything ``File`` sends goes through ``request.write`` as it does
in Twisted, and programs that build a producer themselves.

:func:`plan_body` decides the status and ``Content-*`` headers of a file's answer, once for
both ways of sending it.
"""

from __future__ import annotations

from typing import IO, TYPE_CHECKING, Any, Final, NamedTuple

from zope.interface import implementer

from treadle.internet.interfaces import IPullProducer
from treadle.python import log
from treadle.web import http
from treadle.web._conditional import Piece, RangeSpec, multipart, parse_range, plan_spans

if TYPE_CHECKING:
    from treadle.web.server import Request

__all__ = [
    "BodyPlan",
    "MultipleRangeStaticProducer",
    "NoRangeStaticProducer",
    "SingleRangeStaticProducer",
    "StaticProducer",
    "declare_length",
    "plan_body",
    "producer_for",
]

#: Bytes per write, as Twisted's (``abstract.FileDescriptor.bufferSize``, 64 KiB).
BUFFER_SIZE: Final = 64 * 1024


class BodyPlan(NamedTuple):
    """What a file's answer holds, once :func:`plan_body` has set its status and headers.

    Attributes:
        pieces: ``(bytes to write first, file offset, byte count)`` in order; empty when
            no range could be satisfied (416).
        length: The body's length (its ``Content-Length``).
        specs: The parsed ``Range`` (None when the whole file is sent): tells one range
            from several even when none is satisfiable.
    """

    pieces: list[Piece]
    length: int
    specs: list[RangeSpec] | None


def plan_body(
    request: Request,
    size: int,
    range_value: bytes | None,
    content_type: bytes,
    encoding: bytes | None,
) -> BodyPlan:
    """Set the status and ``Content-*`` headers for a file of ``size`` bytes; say what to send.

    ``Content-Length`` is left to the caller (see :func:`declare_length`): treadle's server
    works it out itself for a body it is given whole.

    Args:
        request: The request answered.
        size: The file's size.
        range_value: The ``Range`` header to honour, or None for the whole file. An
            invalid or abusive one is ignored (see :func:`~treadle.web._conditional.plan_ranges`).
        content_type: The file's ``Content-Type`` value.
        encoding: Its ``Content-Encoding`` value, or None. Left out of a multipart answer,
            where it would claim the multipart body itself is encoded.
    """
    specs = None
    if range_value is not None:
        specs = parse_range(range_value)
        if specs is None:
            # As Twisted: a note in the log (at INFO level, through log.msg), then 200.
            log.msg(f"Ignoring malformed Range header {range_value.decode('latin-1')!r}")
    spans = plan_spans(specs, size)
    if spans is None:
        _content_headers(request, content_type, encoding)
        return BodyPlan([(b"", 0, size)], size, None)
    if not spans:
        request.setResponseCode(http.REQUESTED_RANGE_NOT_SATISFIABLE)
        request.setHeader(b"content-range", b"bytes */%d" % size)
        _content_headers(request, content_type, None)
        return BodyPlan([], 0, specs)
    request.setResponseCode(http.PARTIAL_CONTENT)
    if len(spans) == 1:
        start, stop = spans[0]
        request.setHeader(b"content-range", b"bytes %d-%d/%d" % (start, stop - 1, size))
        _content_headers(request, content_type, encoding)
        return BodyPlan([(b"", start, stop - start)], stop - start, specs)
    boundary, pieces, length = multipart(spans, size, content_type)
    _content_headers(request, b'multipart/byteranges; boundary="%s"' % boundary, None)
    return BodyPlan(pieces, length, specs)


def _content_headers(request: Request, content_type: bytes, encoding: bytes | None) -> None:
    request.setHeader(b"content-type", content_type)
    if encoding:
        request.setHeader(b"content-encoding", encoding)


def declare_length(request: Request, plan: BodyPlan) -> None:
    """Set ``Content-Length`` to the planned body's length."""
    request.setHeader(b"content-length", b"%d" % plan.length)


def producer_for(request: Request, file: IO[bytes], plan: BodyPlan) -> StaticProducer:
    """Return the Twisted producer that sends ``plan`` from ``file`` (not started)."""
    if plan.specs is None:
        return NoRangeStaticProducer(request, file)
    if len(plan.specs) == 1 or len(plan.pieces) == 1:
        # One range asked for, or several merged into one span.
        if not plan.pieces:
            return SingleRangeStaticProducer(request, file, 0, 0)
        _, offset, count = plan.pieces[0]
        return SingleRangeStaticProducer(request, file, offset, count)
    return MultipleRangeStaticProducer(request, file, plan.pieces)


@implementer(IPullProducer)
class StaticProducer:
    """Base of the producers: sends part of a file object to a request.

    Args:
        request: Where to write (None once stopped).
        fileObject: The open file; closed when production stops.

    Attributes:
        bufferSize: The most bytes one ``resumeProducing()`` writes.
    """

    bufferSize: int = BUFFER_SIZE

    def __init__(self, request: Any, fileObject: Any) -> None:
        self.request = request
        self.fileObject = fileObject

    def start(self) -> None:
        """Register with the request and start writing (each subclass says what)."""
        raise NotImplementedError

    def resumeProducing(self) -> None:
        """Write the next piece (each subclass says which)."""
        raise NotImplementedError

    def stopProducing(self) -> None:
        """Close the file and let go of the request: nothing more is written."""
        self.fileObject.close()
        self.request = None

    def _done(self) -> None:
        request = self.request
        request.unregisterProducer()
        request.finish()
        self.stopProducing()


class NoRangeStaticProducer(StaticProducer):
    """Sends the whole file, from where it is positioned to its end."""

    def start(self) -> None:
        """Register as a pull producer; the request asks for the data."""
        self.request.registerProducer(self, False)

    def resumeProducing(self) -> None:
        """Write the next ``bufferSize`` bytes, or finish the request at the end."""
        if self.request is None:
            return
        data = self.fileObject.read(self.bufferSize)
        if data:
            self.request.write(data)
        else:
            self._done()


class SingleRangeStaticProducer(StaticProducer):
    """Sends ``size`` bytes of the file from ``offset``.

    Args:
        request: Where to write.
        fileObject: The open file.
        offset: The first byte to send.
        size: How many bytes to send.
    """

    def __init__(self, request: Any, fileObject: Any, offset: int, size: int) -> None:
        super().__init__(request, fileObject)
        self.offset = offset
        self.size = size
        self.bytesWritten = 0

    def start(self) -> None:
        """Seek to the offset and register as a pull producer."""
        self.fileObject.seek(self.offset)
        self.bytesWritten = 0
        self.request.registerProducer(self, False)

    def resumeProducing(self) -> None:
        """Write the next piece of the range; finish the request after its last byte."""
        if self.request is None:
            return
        wanted = min(self.bufferSize, self.size - self.bytesWritten)
        data = self.fileObject.read(wanted) if wanted > 0 else b""
        if data:
            self.bytesWritten += len(data)
            self.request.write(data)
        # A file that ends early cannot give more: end the response rather than spin.
        if self.request is not None and (self.bytesWritten >= self.size or not data):
            self._done()


class MultipleRangeStaticProducer(StaticProducer):
    """Sends several ranges of the file, each after its boundary (a multipart body).

    Args:
        request: Where to write.
        fileObject: The open file.
        rangeInfo: ``(bytes to write first, offset, size)`` for each part, in order; the
            last entry is normally the closing boundary with size 0.

    Writes are gathered up to about ``bufferSize`` bytes (a boundary may push one a little
    past it), so many small ranges do not cost a write each.
    """

    def __init__(self, request: Any, fileObject: Any, rangeInfo: list[Piece]) -> None:
        super().__init__(request, fileObject)
        self.rangeInfo = rangeInfo
        self._parts: list[Piece] = []
        self._prefix: bytes | None = None
        self._left = 0

    def start(self) -> None:
        """Register as a pull producer, positioned at the first part."""
        self._parts = list(reversed(self.rangeInfo))
        if self._parts:
            self._next_part()
            self.request.registerProducer(self, False)
        else:
            self.request.finish()
            self.stopProducing()

    def _next_part(self) -> bool:
        """Move to the next part; False when there is none."""
        if not self._parts:
            return False
        self._prefix, offset, self._left = self._parts.pop()
        self.fileObject.seek(offset)
        return True

    def resumeProducing(self) -> None:
        """Write about ``bufferSize`` bytes of parts; finish the request after the last."""
        if self.request is None:
            return
        chunks: list[bytes] = []
        gathered = 0
        finished = False
        while gathered < self.bufferSize:
            if self._prefix:
                chunks.append(self._prefix)
                gathered += len(self._prefix)
                self._prefix = None
            wanted = min(self.bufferSize - gathered, self._left)
            data = self.fileObject.read(wanted) if wanted > 0 else b""
            chunks.append(data)
            gathered += len(data)
            self._left -= len(data)
            part_done = self._left <= 0 or (wanted > 0 and not data)  # or the file ended
            if part_done and not self._next_part():
                finished = True
                break
        self.request.write(b"".join(chunks))
        if finished:
            self._done()
