"""Framing protocols: lines, netstrings, length-prefixed strings; and a file producer.

``twisted.protocols.basic`` ports to this module. A subclass of :class:`LineReceiver`
implements ``lineReceived`` and gets one call per line, whatever pieces the bytes arrive in;
:class:`NetstringReceiver` and the ``Int*StringReceiver`` classes do the same for netstrings
(``5:hello,``) and strings behind a big-endian length prefix, calling ``stringReceived``.
Each enforces a ``MAX_LENGTH`` as Twisted does: a line or string of exactly ``MAX_LENGTH``
bytes passes, one byte more calls ``lineLengthExceeded``/``lengthLimitExceeded`` (or drops a
netstring peer), which closes the connection unless overridden.

Buffering is linear in the bytes received: pending bytes sit in a ``bytearray`` read from an
offset, and a partial line is never searched twice, so a line trickling in one byte at a time
costs no more than one arriving whole (Twisted re-copies and re-searches its buffer on each
piece).

Differences from Twisted, on purpose:

* :class:`LineOnlyReceiver` rejects a partial line only once it can no longer end within
  ``MAX_LENGTH``; Twisted's drops a legal line of exactly ``MAX_LENGTH`` bytes when a piece
  ends between the ``\\r`` and ``\\n`` of its delimiter. After rejecting a partial line it
  discards it (Twisted's keeps growing it and reports it again on every later piece).
* :class:`NetstringReceiver` rejects a length followed by a newline at once; Twisted's waits
  for the next byte (its pattern's ``$`` matches before a final newline). Once the peer is
  found broken, later data is ignored instead of being re-parsed and re-rejected. The
  receiver works without ``makeConnection`` too.
* ``IntNStringReceiver.recvd`` (a deprecated view of the parse buffer) is not provided, and a
  string receiver that pauses and resumes itself inside ``stringReceived`` does not get the
  same strings delivered twice.
* :class:`FileSender` fires its Deferred with ``b""`` (not ``""``) for an empty file.
"""

from __future__ import annotations

import logging
import re
import struct
from collections.abc import Callable
from typing import IO, Any

from zope.interface import implementer

from treadle.internet.defer import Deferred
from treadle.internet.interfaces import IProducer
from treadle.internet.protocol import Protocol

__all__ = [
    "FileSender",
    "IncompleteNetstring",
    "Int8StringReceiver",
    "Int16StringReceiver",
    "Int32StringReceiver",
    "IntNStringReceiver",
    "LineOnlyReceiver",
    "LineReceiver",
    "NetstringParseError",
    "NetstringReceiver",
    "StatefulStringProtocol",
    "StringTooLongError",
]

_log = logging.getLogger("treadle.log")

_COLON = ord(":")
_COMMA = ord(",")
_ZERO = ord("0")
_DIGITS = re.compile(rb"[0-9]*")


class _PauseableMixin:
    """Pausing for receivers that are their transport's consumers: ``paused`` holds data back.

    Attributes:
        paused: True while data is held back (after ``pauseProducing``/``stopProducing``).
    """

    paused: bool = False
    transport: Any

    def dataReceived(self, data: bytes) -> Any:  # pragma: no cover - always overridden
        """Deliver ``data``; the receivers override this."""

    def pauseProducing(self) -> None:
        """Hold back delivery and pause the transport's reading."""
        self.paused = True
        self.transport.pauseProducing()

    def resumeProducing(self) -> None:
        """Resume reading, and deliver what was held back."""
        self.paused = False
        self.transport.resumeProducing()
        self.dataReceived(b"")

    def stopProducing(self) -> None:
        """Hold back delivery for good and stop the transport."""
        self.paused = True
        self.transport.stopProducing()


class LineReceiver(Protocol, _PauseableMixin):
    """Receives lines (``lineReceived``) or, in raw mode, chunks (``rawDataReceived``).

    Switch with :meth:`setRawMode` and :meth:`setLineMode`, also from inside a callback: the
    bytes after the current line go to whichever mode is set when the callback returns. A
    callback that returns something true, or that closes the connection
    (``transport.disconnecting``), stops delivery; what was not delivered stays buffered.

    Attributes:
        delimiter: The end of a line (``b"\\r\\n"``); may be changed at any time.
        MAX_LENGTH: The longest line accepted, delimiter excluded (16384). A longer line
            goes to :meth:`lineLengthExceeded`, as does a partial line of
            ``MAX_LENGTH + len(delimiter)`` bytes without a delimiter.
        line_mode: 1 in line mode, 0 in raw mode.
    """

    line_mode: int = 1
    delimiter: bytes = b"\r\n"
    MAX_LENGTH: int = 16384
    _busyReceiving: bool = False
    # Unconsumed bytes are _rbuf[_rpos:]. _rscan is where the next delimiter search starts
    # (all of _rbuf[_rpos:_rscan] was searched for _rscan_delimiter without a match).
    _rbuf: bytes | bytearray = b""
    _rpos: int = 0
    _rscan: int = 0
    _rscan_delimiter: bytes = b""

    @property
    def _buffer(self) -> bytes:
        """The bytes received but not delivered (Twisted's attribute; read and set)."""
        return bytes(self._rbuf[self._rpos :])

    @_buffer.setter
    def _buffer(self, value: bytes) -> None:
        self._rbuf = bytes(value)
        self._rpos = self._rscan = 0

    def clearLineBuffer(self) -> bytes:
        """Forget the bytes received but not yet delivered.

        Returns:
            Those bytes (from inside ``lineReceived``: what followed the current line).
        """
        return self._take_pending()

    def _take_pending(self) -> bytes:
        pending = bytes(self._rbuf[self._rpos :])
        self._rbuf = b""
        self._rpos = self._rscan = 0
        return pending

    def dataReceived(self, data: bytes) -> Any:
        """Buffer ``data`` and deliver every whole line (or raw chunk) it completes.

        Returns:
            What a callback returned to stop delivery, or the result of
            :meth:`lineLengthExceeded`; None otherwise.
        """
        self._append(data)
        if self._busyReceiving:
            # Called back from a callback (setLineMode(extra), resumeProducing): the loop
            # already running delivers it, in order.
            return None
        self._busyReceiving = True
        try:
            return self._deliver()
        finally:
            self._busyReceiving = False
            self._compact()

    def _append(self, data: bytes) -> None:
        buf = self._rbuf
        if self._rpos >= len(buf):
            # Nothing pending: work on the received bytes themselves, without copying.
            self._rbuf = data if type(data) is bytes else bytes(data)
            self._rpos = self._rscan = 0
        elif type(buf) is bytes:
            pos = self._rpos
            grown = bytearray(memoryview(buf)[pos:])
            grown += data
            self._rbuf = grown
            self._rpos = 0
            self._rscan -= pos
        else:
            buf += data

    def _compact(self) -> None:
        pos = self._rpos
        if not pos:
            return
        buf = self._rbuf
        if pos >= len(buf):
            self._rbuf = b""
            self._rscan = 0
        elif type(buf) is bytearray:
            del buf[:pos]  # cheap: CPython moves a bytearray's start instead of copying
            self._rscan -= pos
        else:
            self._rbuf = buf[pos:]
            self._rscan -= pos
        self._rpos = 0

    def _deliver(self) -> Any:
        while not self.paused:
            buf = self._rbuf
            pos = self._rpos
            if pos >= len(buf):
                return None
            if not self.line_mode:
                data = self._take_pending()
                why = self.rawDataReceived(data)
                if why:
                    return why
                continue
            delimiter = self.delimiter
            start = pos
            if delimiter == self._rscan_delimiter:
                start = max(pos, self._rscan - len(delimiter) + 1)
            end = buf.find(delimiter, start)
            if end < 0:
                self._rscan = len(buf)
                self._rscan_delimiter = delimiter
                if len(buf) - pos >= self.MAX_LENGTH + len(delimiter):
                    return self.lineLengthExceeded(self._take_pending())
                return None
            if end - pos > self.MAX_LENGTH:
                # Twisted hands over the long line with everything after it.
                return self.lineLengthExceeded(self._take_pending())
            line = bytes(buf[pos:end])
            self._rpos = self._rscan = end + len(delimiter)
            why = self.lineReceived(line)
            transport = self.transport
            if why or (transport is not None and transport.disconnecting):
                return why
        return None

    def setLineMode(self, extra: bytes = b"") -> Any:
        """Deliver lines from now on.

        Args:
            extra: Bytes to deliver as received data (from ``rawDataReceived``, the part of
                a chunk that belongs to the lines); they go after anything still buffered.
                Do not pass any from ``lineReceived``.
        """
        self.line_mode = 1
        if extra:
            return self.dataReceived(extra)
        return None

    def setRawMode(self) -> None:
        """Deliver raw chunks to :meth:`rawDataReceived` from now on."""
        self.line_mode = 0

    def rawDataReceived(self, data: bytes) -> Any:
        """Override: bytes received in raw mode.

        Raises:
            NotImplementedError: Not overridden.
        """
        raise NotImplementedError

    def lineReceived(self, line: bytes) -> Any:
        """Override: a line arrived, without its delimiter.

        Returns:
            Something true to stop delivering the lines already buffered.

        Raises:
            NotImplementedError: Not overridden.
        """
        raise NotImplementedError

    def sendLine(self, line: bytes) -> Any:
        """Write ``line`` followed by :attr:`delimiter` (in one write)."""
        return self.transport.write(line + self.delimiter)

    def lineLengthExceeded(self, line: bytes) -> Any:
        """A line is longer than :attr:`MAX_LENGTH`: close the connection (override to differ).

        Args:
            line: Everything buffered, starting with (a part of) the long line; it may hold
                more lines after it. The buffer is empty when this is called.
        """
        return self.transport.loseConnection()


def _cannot_end_within(partial: bytes | bytearray, max_length: int, delimiter: bytes) -> bool:
    """Whether a partial line without ``delimiter`` is sure to become longer than allowed.

    It can still end in time only if a delimiter could start at index ``max_length`` or
    earlier, i.e. its tail from such an index is the start of ``delimiter``.
    """
    length = len(partial)
    if length <= max_length:
        return False
    for start in range(max(length - len(delimiter) + 1, 0), max_length + 1):
        if delimiter.startswith(partial[start:]):
            return False
    return True


class LineOnlyReceiver(Protocol):
    """Receives lines only (no raw mode): a lighter :class:`LineReceiver`.

    Lines after one that closed the connection (``transport.disconnecting``) are dropped.

    Attributes:
        delimiter: The end of a line (``b"\\r\\n"``).
        MAX_LENGTH: The longest line accepted (16384); a longer one goes to
            :meth:`lineLengthExceeded`, as soon as the bytes received show it will be longer.
    """

    delimiter: bytes = b"\r\n"
    MAX_LENGTH: int = 16384
    # A partial line; it was searched for _partial_delimiter without a match.
    _partial: bytearray | None = None
    _partial_delimiter: bytes = b""

    @property
    def _buffer(self) -> bytes:
        """The partial line received so far (Twisted's attribute; read and set)."""
        return bytes(self._partial or b"")

    @_buffer.setter
    def _buffer(self, value: bytes) -> None:
        self._partial = bytearray(value) if value else None
        self._partial_delimiter = b""

    def dataReceived(self, data: bytes) -> Any:
        """Deliver every whole line that ``data`` completes."""
        delimiter = self.delimiter
        partial = self._partial
        if partial is not None:
            start = 0
            if delimiter == self._partial_delimiter:
                start = max(len(partial) - len(delimiter) + 1, 0)
            partial += data
            if partial.find(delimiter, start) < 0:
                self._partial_delimiter = delimiter
                return self._check_partial()
            data = bytes(partial)
            self._partial = None
        lines = data.split(delimiter)
        rest = lines.pop()
        if rest:
            self._partial = bytearray(rest)
            self._partial_delimiter = delimiter
        for line in lines:
            if self.transport.disconnecting:
                return None
            if len(line) > self.MAX_LENGTH:
                return self.lineLengthExceeded(line)
            self.lineReceived(line)
        return self._check_partial()

    def _check_partial(self) -> Any:
        partial = self._partial
        if partial is None or not _cannot_end_within(partial, self.MAX_LENGTH, self.delimiter):
            return None
        self._partial = None
        return self.lineLengthExceeded(bytes(partial))

    def lineReceived(self, line: bytes) -> None:
        """Override: a line arrived, without its delimiter.

        Raises:
            NotImplementedError: Not overridden.
        """
        raise NotImplementedError

    def sendLine(self, line: bytes) -> Any:
        """Write ``line`` followed by :attr:`delimiter`."""
        return self.transport.writeSequence((line, self.delimiter))

    def lineLengthExceeded(self, line: bytes) -> Any:
        """A line is too long: close the connection (override to differ).

        Args:
            line: The long line, or the start of it received so far.
        """
        return self.transport.loseConnection()


class NetstringParseError(ValueError):
    """The peer sent something that is not a netstring (or one longer than allowed)."""


class IncompleteNetstring(Exception):
    """More bytes are needed to finish the netstring (kept for Twisted compatibility)."""


class NetstringReceiver(Protocol):
    """Receives netstrings (``b"5:hello,"``, https://cr.yp.to/proto/netstrings.txt).

    Each payload goes to :meth:`stringReceived`. A malformed netstring or a length above
    :attr:`MAX_LENGTH` closes the connection and sets :attr:`brokenPeer`; nothing after it
    is delivered.

    Attributes:
        MAX_LENGTH: The longest payload accepted (99999 bytes). A longer length is refused
            as soon as its digits arrive, before any payload.
        brokenPeer: 1 once the peer sent something invalid.
    """

    MAX_LENGTH: int = 99999
    brokenPeer: int = 0
    _nbuf: bytearray | None = None
    _npos: int = 0
    # The payload length being waited for, or -1 while reading a length.
    _expected: int = -1

    def makeConnection(self, transport: Any) -> None:
        """Start with a fresh parser, then connect."""
        self._nbuf = None
        self._npos = 0
        self._expected = -1
        self.brokenPeer = 0
        super().makeConnection(transport)

    def sendString(self, string: bytes) -> None:
        """Write ``string`` as a netstring."""
        self.transport.write(b"%d:%s," % (len(string), string))

    def dataReceived(self, data: bytes) -> None:
        """Deliver every netstring that ``data`` completes."""
        if self.brokenPeer:
            return
        if self._nbuf is None:
            self._nbuf = bytearray()
        self._nbuf += data
        try:
            self._deliver()
        except NetstringParseError:
            self._handleParseError()
        finally:
            self._compact()

    def _deliver(self) -> None:
        while True:
            if self._expected < 0 and not self._read_length():
                return
            buf = self._nbuf
            assert buf is not None
            pos = self._npos
            comma = pos + self._expected
            if len(buf) <= comma:
                return
            if buf[comma] != _COMMA:
                raise NetstringParseError("The netstring does not end with a comma.")
            payload = bytes(buf[pos:comma])
            self._npos = comma + 1
            self._expected = -1
            self.stringReceived(payload)

    def _read_length(self) -> bool:
        """Read a length and its colon; False if more bytes are needed."""
        buf = self._nbuf
        assert buf is not None
        pos = self._npos
        # A length with more digits than MAX_LENGTH's is too long: never look further.
        width = len(str(self.MAX_LENGTH))
        window = buf[pos : pos + width + 1]
        match = _DIGITS.match(window)
        assert match is not None
        digits = match.end()
        if digits > 1 and window[0] == _ZERO:
            raise NetstringParseError("The netstring's length has a leading zero.")
        if digits == len(window):
            # No colon yet: refuse now if these digits are already too many.
            if digits > width or (digits and int(window) > self.MAX_LENGTH):
                raise NetstringParseError(self._too_long())
            return False
        if not digits or window[digits] != _COLON:
            raise NetstringParseError("The netstring does not start with a length and a colon.")
        length = int(window[:digits])
        if length > self.MAX_LENGTH:
            raise NetstringParseError(self._too_long())
        self._npos = pos + digits + 1
        self._expected = length
        return True

    def _too_long(self) -> str:
        return f"The netstring is longer than the maximum of {self.MAX_LENGTH} bytes."

    def _compact(self) -> None:
        buf = self._nbuf
        if buf is not None and self._npos:
            del buf[: self._npos]
            self._npos = 0

    def _handleParseError(self) -> None:
        """Drop the connection to a peer that sent an invalid netstring."""
        self.transport.loseConnection()
        self.brokenPeer = 1

    def stringReceived(self, string: bytes) -> None:
        """Override: a netstring's payload arrived.

        Raises:
            NotImplementedError: Not overridden.
        """
        raise NotImplementedError


class StringTooLongError(AssertionError):
    """A string is too long for the length prefix it is to be sent with."""


class IntNStringReceiver(Protocol, _PauseableMixin):
    """Receives strings behind a big-endian length prefix; subclasses fix the prefix size.

    Attributes:
        MAX_LENGTH: The longest string accepted (99999 bytes). A longer prefix goes to
            :meth:`lengthLimitExceeded` (and stays buffered, so later data reports it
            again unless the connection is closed).
        structFormat: The prefix's :mod:`struct` format (e.g. ``"!I"``).
        prefixLength: The prefix's size in bytes.
    """

    MAX_LENGTH: int = 99999
    structFormat: str
    prefixLength: int
    _ibuf: bytearray | None = None
    _ipos: int = 0

    def stringReceived(self, string: bytes) -> None:
        """Override: a string arrived, without its prefix.

        Raises:
            NotImplementedError: Not overridden.
        """
        raise NotImplementedError

    def lengthLimitExceeded(self, length: int) -> None:
        """A prefix announced more than :attr:`MAX_LENGTH` bytes: close the connection.

        Args:
            length: The announced length.
        """
        self.transport.loseConnection()

    def dataReceived(self, data: bytes) -> None:
        """Deliver every string that ``data`` completes (none while paused)."""
        buf = self._ibuf
        if buf is None:
            buf = self._ibuf = bytearray()
        buf += data
        try:
            self._deliver(buf)
        finally:
            if self._ipos:
                del buf[: self._ipos]
                self._ipos = 0

    def _deliver(self, buf: bytearray) -> None:
        fmt = self.structFormat
        prefix = self.prefixLength
        while not self.paused:
            # Re-read each time: a callback may have received more data reentrantly.
            pos = self._ipos
            if len(buf) - pos < prefix:
                return
            (length,) = struct.unpack_from(fmt, buf, pos)
            if length > self.MAX_LENGTH:
                self.lengthLimitExceeded(length)
                return
            end = pos + prefix + length
            if len(buf) < end:
                return
            string = bytes(buf[pos + prefix : end])
            self._ipos = end
            self.stringReceived(string)

    def sendString(self, string: bytes) -> None:
        """Write ``string`` behind its length prefix.

        Raises:
            StringTooLongError: The length does not fit in the prefix (``MAX_LENGTH`` is
                not checked: it limits what is received).
        """
        limit = 2 ** (8 * self.prefixLength)
        if len(string) >= limit:
            raise StringTooLongError(
                f"cannot send {len(string)} bytes behind a {self.prefixLength}-byte prefix "
                f"(at most {limit - 1})"
            )
        self.transport.write(struct.pack(self.structFormat, len(string)) + string)


class Int32StringReceiver(IntNStringReceiver):
    """Strings behind a 4-byte big-endian length."""

    structFormat = "!I"
    prefixLength = struct.calcsize(structFormat)


class Int16StringReceiver(IntNStringReceiver):
    """Strings behind a 2-byte big-endian length."""

    structFormat = "!H"
    prefixLength = struct.calcsize(structFormat)


class Int8StringReceiver(IntNStringReceiver):
    """Strings behind a 1-byte length."""

    structFormat = "!B"
    prefixLength = struct.calcsize(structFormat)


class StatefulStringProtocol:
    """Mixin for string receivers: each string goes to ``proto_<state>``, which returns the
    next state; the state ``"done"`` closes the connection.

    Attributes:
        state: The current state (``"init"`` at first).
    """

    state: str = "init"
    transport: Any

    def stringReceived(self, string: bytes) -> None:
        """Call ``proto_<state>(string)`` and move to the state it returns."""
        handler = getattr(self, "proto_" + self.state, None)
        if handler is None:
            _log.info("callback %s not found", self.state)
            return
        self.state = handler(string)
        if self.state == "done":
            self.transport.loseConnection()


@implementer(IProducer)
class FileSender:
    """A pull producer writing a file to a consumer, a chunk each time it is asked.

    Attributes:
        CHUNK_SIZE: Bytes read per chunk (16 KiB).
        lastSent: The last byte written so far.
        deferred: The transfer's Deferred while it runs.
    """

    CHUNK_SIZE: int = 2**14
    lastSent: bytes = b""
    deferred: Deferred[bytes] | None = None
    file: IO[bytes] | None = None
    consumer: Any = None
    transform: Callable[[bytes], bytes] | None = None

    def beginFileTransfer(
        self,
        file: IO[bytes],
        consumer: Any,
        transform: Callable[[bytes], bytes] | None = None,
    ) -> Deferred[bytes]:
        """Register with ``consumer`` and send it ``file`` from its current position.

        Args:
            file: A binary file object.
            consumer: An ``IConsumer`` (a transport, a request).
            transform: Applied to each chunk before it is written.

        Returns:
            A Deferred firing with the last byte written once the whole file is, or
            failing if the consumer stops the transfer.
        """
        self.file = file
        self.consumer = consumer
        self.transform = transform
        deferred: Deferred[bytes] = Deferred()
        self.deferred = deferred
        consumer.registerProducer(self, False)
        return deferred

    def resumeProducing(self) -> None:
        """Write the next chunk; at the end of the file, unregister and fire the Deferred."""
        chunk = self.file.read(self.CHUNK_SIZE) if self.file is not None else b""
        if not chunk:
            self.file = None
            self.consumer.unregisterProducer()
            deferred, self.deferred = self.deferred, None
            if deferred is not None:
                deferred.callback(self.lastSent)
            return
        if self.transform is not None:
            chunk = self.transform(chunk)
        self.consumer.write(chunk)
        self.lastSent = chunk[-1:]

    def pauseProducing(self) -> None:
        """Nothing to do: a pull producer writes only when asked."""

    def stopProducing(self) -> None:
        """The consumer went away: fail the Deferred."""
        deferred, self.deferred = self.deferred, None
        if deferred is not None:
            deferred.errback(Exception("Consumer asked us to stop producing"))
