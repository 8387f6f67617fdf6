"""A protocol connected to the process's standard input and output (Twisted's ``stdio``).

``twisted.internet.stdio`` ports to this module: ``StandardIO(protocol)`` makes
``protocol`` read what arrives on standard input (``dataReceived``) and write to standard
output through its transport, as an interactive client or a filter does::

    class Echo(basic.LineReceiver):
        delimiter = b"\\n"

        def lineReceived(self, line):
            self.sendLine(line.upper())

        def connectionLost(self, reason):
            reactor.stop()  # standard input closed

    stdio.StandardIO(Echo())
    reactor.run()

As in Twisted: ``makeConnection`` is called at once; the end of standard input calls
``readConnectionLost()`` on a protocol providing ``IHalfCloseableProtocol`` (which may go on
writing, then ``loseConnection()``), and ``connectionLost(ConnectionDone)`` on any other;
``loseConnection()`` writes out what is queued, closes standard output and then calls
``connectionLost``; the descriptors are put in non-blocking mode and closed at the end.
Unlike Twisted, output still queued when standard input ends (a slow reader downstream) is
written out before ``connectionLost`` is called, rather than dropped.

The descriptors are watched on the reactor's loop (terminals, pipes and sockets), like the
pipes of a child process (:mod:`treadle.internet._process`, whose pipe class this shares).
A regular file (``prog < input.txt > output.txt``), which a loop cannot watch, is read a
chunk per turn of the loop and written at once; Twisted polls such descriptors too.
"""

from __future__ import annotations

import os
import stat
from typing import Any

from zope.interface import implementer

from treadle.internet import interfaces
from treadle.internet._process import _Pipe
from treadle.internet.error import ConnectionDone
from treadle.python.failure import Failure

__all__ = ["PipeAddress", "StandardIO"]

# The names a pipe reports itself by (Twisted's childConnectionLost names).
_READ = 0
_WRITE = 1


@implementer(interfaces.IAddress)
class PipeAddress:
    """The address of both ends of standard I/O (there is no other)."""

    def __repr__(self) -> str:
        return "PipeAddress()"


class _RegularFile(_Pipe):
    """A regular file as a pipe: always ready, so read a chunk per turn of the loop rather
    than watched, and written without waiting."""

    def start_reading(self) -> None:
        if self.reads and not self.reading and not self.closed:
            self.reading = True
            self.process.loop.call_soon(self._poll)

    def stop_reading(self) -> None:
        self.reading = False

    def _poll(self) -> None:
        if self.reading and not self.closed:
            self._readable()
            if self.reading and not self.closed:
                self.process.loop.call_soon(self._poll)

    def _watch_writable(self) -> None:
        if not self.writing and not self.closed and (self.buffer or self.producer):
            self.writing = True
            self.process.loop.call_soon(self._write_soon)

    def _write_soon(self) -> None:
        self.writing = False
        if not self.closed:
            self._writable()

    def lost(self) -> None:
        # Nothing was registered with the loop: only the descriptor to close.
        self.reading = self.writing = False
        super().lost()


def _pipe_for(owner: StandardIO, which: int, fd: int, *, reads: bool) -> _Pipe:
    """A pipe on ``fd``: polled for a regular file, watched by the loop otherwise."""
    if stat.S_ISREG(os.fstat(fd).st_mode):
        return _RegularFile(owner, which, fd, reads=reads, writes=not reads, watch_close=False)
    # An output that can also be read (a terminal, shared with the input) would look
    # "readable" whenever a key is pressed: it is not watched for its closing.
    try:
        os.read(fd, 0)
        readable = True
    except OSError:
        readable = False
    return _Pipe(owner, which, fd, reads=reads, writes=not reads, watch_close=not readable)


@implementer(
    interfaces.ITransport,
    interfaces.IProducer,
    interfaces.IConsumer,
    interfaces.IHalfCloseableDescriptor,
)
class StandardIO:
    """Standard input and output as the transport of ``proto``.

    Args:
        proto: The protocol; connected before the constructor returns.
        stdin: The descriptor read from.
        stdout: The descriptor written to.
        reactor: The reactor whose loop watches them (the global one by default).

    Attributes:
        protocol: ``proto``, until the connection is lost.
        disconnected: True once ``connectionLost`` was called.
        disconnecting: True once :meth:`loseConnection` was called.
    """

    disconnected = False
    disconnecting = False

    def __init__(self, proto: Any, stdin: int = 0, stdout: int = 1, reactor: Any = None) -> None:
        if reactor is None:
            from treadle.internet import reactor as default_reactor

            reactor = default_reactor
        self.loop = reactor.loop
        self.protocol = proto
        self._writer: _Pipe | None = _pipe_for(self, _WRITE, stdout, reads=False)
        self._reader: _Pipe | None = _pipe_for(self, _READ, stdin, reads=True)
        proto.makeConnection(self)

    # -- ITransport -----------------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        """Write ``data`` to standard output."""
        if self._writer is not None:
            self._writer.write(data)

    def writeSequence(self, data: Any) -> None:
        """Write each of ``data`` to standard output."""
        self.write(b"".join(data))

    def loseWriteConnection(self) -> None:
        """Close standard output once what is queued has been written."""
        if self._writer is not None:
            self._writer.lose_connection()

    def loseConnection(self) -> None:
        """Stop reading, close standard output once what is queued has been written, then
        call ``connectionLost``."""
        self.disconnecting = True
        if self._reader is not None:
            self._reader.stop_reading()  # not closed: that would leave a writer a SIGPIPE
        if self._writer is not None:
            self._writer.lose_connection()
        elif not self.disconnected:
            self.loop.call_soon(self.connectionLost, Failure(ConnectionDone()))

    def getPeer(self) -> PipeAddress:
        """A :class:`PipeAddress`."""
        return PipeAddress()

    def getHost(self) -> PipeAddress:
        """A :class:`PipeAddress`."""
        return PipeAddress()

    # -- what the pipes report -----------------------------------------------------------------

    def _child_data(self, child_fd: int, data: bytes) -> None:
        if self.protocol is not None:
            self.protocol.dataReceived(data)

    def _pipe_lost(self, child_fd: int) -> None:
        if self.disconnected:
            return
        reason = Failure(ConnectionDone())
        if child_fd == _READ:
            self._reader = None
            writer = self._writer
            if (
                writer is not None
                and writer.buffer
                and interfaces.IHalfCloseableProtocol(self.protocol, None) is None
            ):
                # Output the pipe could not take yet goes out before the end is reported
                # (Twisted drops it): a filter's last lines are not lost.
                self.disconnecting = True
                writer.lose_connection()
                return
            self._half_closed("readConnectionLost", reason)
        else:
            self._writer = None
            if self.disconnecting:
                self.connectionLost(reason)
            else:
                self._half_closed("writeConnectionLost", reason, otherwise_lost=False)

    def _half_closed(self, method: str, reason: Failure, otherwise_lost: bool = True) -> None:
        """Tell a half-closeable protocol that one side ended; any other one, that the whole
        connection did (for the input's end only, as in Twisted)."""
        half = interfaces.IHalfCloseableProtocol(self.protocol, None)
        if half is None:
            if otherwise_lost:
                self.connectionLost(reason)
            return
        try:
            getattr(half, method)()
        except Exception:
            self.connectionLost(Failure())

    def connectionLost(self, reason: Failure) -> None:
        """Close both descriptors and tell the protocol ``reason``."""
        if self.disconnected:
            return
        self.disconnected = True
        protocol, self.protocol = self.protocol, None
        for pipe in (self._writer, self._reader):
            if pipe is not None:
                pipe.lost()
        self._writer = self._reader = None
        if protocol is not None:
            protocol.connectionLost(reason)

    # -- IConsumer ------------------------------------------------------------------------------

    def registerProducer(self, producer: Any, streaming: bool) -> None:
        """Have ``producer`` paused while standard output cannot keep up."""
        if self._writer is None:
            producer.stopProducing()
        else:
            self._writer.register_producer(producer, streaming)

    def unregisterProducer(self) -> None:
        """Forget the producer."""
        if self._writer is not None:
            self._writer.unregister_producer()

    # -- IProducer ------------------------------------------------------------------------------

    def stopProducing(self) -> None:
        """Lose the connection."""
        self.loseConnection()

    def pauseProducing(self) -> None:
        """Stop reading standard input for now."""
        if self._reader is not None:
            self._reader.stop_reading()

    def resumeProducing(self) -> None:
        """Read standard input again."""
        if self._reader is not None:
            self._reader.start_reading()

    def stopReading(self) -> None:
        """:meth:`pauseProducing` (an older name)."""
        self.pauseProducing()

    def startReading(self) -> None:
        """:meth:`resumeProducing` (an older name)."""
        self.resumeProducing()

    # -- IHalfCloseableDescriptor (its methods are the pipes' to call, as in Twisted) -------

    def readConnectionLost(self, reason: Failure) -> None:
        """Not called on standard I/O."""
        raise NotImplementedError()

    def writeConnectionLost(self, reason: Failure) -> None:
        """Not called on standard I/O."""
        raise NotImplementedError()
