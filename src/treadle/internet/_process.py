"""Child processes for ``reactor.spawnProcess``: Twisted's process transport on the asyncio loop.

How it is built, and why:

* **Starting.** Twisted's ``spawnProcess`` is synchronous: it returns the transport with its
  ``pid`` set, calls ``makeConnection`` before returning, and raises at once when the program
  cannot be run. asyncio's ``loop.subprocess_exec`` is a coroutine, so none of that would hold
  (and a protocol writing to stdin in ``connectionMade``, the usual pattern, would have to be
  buffered). The child is started with :class:`subprocess.Popen` instead, which forks, execs
  and reports exec errors (missing program, missing directory) synchronously, and uses
  ``vfork``/``posix_spawn`` when it can, as Twisted uses ``posix_spawnp``.
* **Pipes.** Our ends of the pipes are non-blocking descriptors watched with
  ``loop.add_reader``/``add_writer``, which both the stdlib loop and uvloop offer, work before
  the loop runs, and need no coroutine (``connect_read_pipe`` is one). A write end is watched
  for reading too: it becomes "readable" only when the child closed the other end, which is how
  a child that closes its stdin is noticed (the stdlib's pipe transport uses the same trick).
* **Exit.** On Linux the child is watched through a pidfd (``os.pidfd_open``) registered with
  ``loop.add_reader``, then reaped with ``waitpid`` for its raw status; no SIGCHLD handler, no
  thread, and nothing shared with asyncio's or libuv's own child watching. Elsewhere (or when
  pidfds are unavailable) a thread waits in ``waitpid`` and hands the status to the loop.

Child descriptors (``childFDs``) map the child's descriptor numbers to ``"r"`` (a pipe we read),
``"w"`` (a pipe we write) or one of our descriptors. Standard input, output and error are
handed to ``Popen``; other descriptors that keep their number are passed with ``pass_fds``,
and only a mapping that moves descriptors needs a ``preexec_fn`` (as a pseudo-terminal does, to
become the child's controlling terminal).
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
from collections.abc import Callable, Iterable, Mapping, Sequence
from types import MappingProxyType
from typing import Any, Protocol

from zope.interface import implementer

from treadle.internet._spawn import (
    ChildFDs,
    check_args,
    close_all,
    identity_options,
    popen_options,
    watch_exit,
)
from treadle.internet.error import ProcessDone, ProcessExitedAlready, ProcessTerminated
from treadle.internet.interfaces import IProcessTransport
from treadle.python.failure import Failure

__all__ = ["EMPTY_ENVIRONMENT", "Process", "spawn_process"]

log = logging.getLogger("treadle.error")

#: Bytes read from a pipe per wake-up (a Linux pipe holds 64 KiB by default).
READ_SIZE = 65536

#: Bytes queued for the child's stdin above which a streaming producer is paused (Twisted's
#: ``bufferSize``).
WRITE_HIGH_WATER = 65536

#: spawnProcess's default environment, as Twisted's: empty (``env=None`` passes ours).
EMPTY_ENVIRONMENT: Mapping[str, str] = MappingProxyType({})


def _signal_number(signalID: str | int) -> int:
    """Return the number of ``signalID``: a number, or a name as ``"TERM"`` or ``"SIGTERM"``."""
    if isinstance(signalID, int):
        return signalID
    if isinstance(signalID, str):
        name = signalID.upper()
        number = getattr(signal, name if name.startswith("SIG") else "SIG" + name, None)
        if isinstance(number, signal.Signals):
            return int(number)
    raise ValueError(f"unknown signal {signalID!r}")


def _exit_reason(status: int) -> ProcessDone | ProcessTerminated:
    """Return what a raw wait ``status`` means: ProcessDone for exit code 0."""
    if os.WIFEXITED(status):
        code = os.WEXITSTATUS(status)
        return ProcessDone(status) if code == 0 else ProcessTerminated(code, None, status)
    return ProcessTerminated(None, os.WTERMSIG(status), status)


class PipeOwner(Protocol):
    """What a :class:`_Pipe` reports to: a process, or standard I/O
    (:mod:`treadle.internet.stdio`)."""

    loop: Any

    def _child_data(self, child_fd: int, data: bytes) -> None:
        """``data`` arrived on the pipe of ``child_fd``."""

    def _pipe_lost(self, child_fd: int) -> None:
        """The pipe of ``child_fd`` ended (its descriptor is closed)."""


class _Pipe:
    """Our end of one of the child's descriptors, watched on the loop.

    A reading pipe hands what arrives to ``process._child_data``; a writing pipe queues what it
    is given until the descriptor takes it. A pseudo-terminal's master does both. When the
    pipe ends (end of file, the child closed its side, an error, or we closed it), the
    descriptor is closed and ``process._pipe_lost`` is told, once.
    """

    def __init__(
        self,
        process: PipeOwner,
        child_fd: int,
        fd: int,
        *,
        reads: bool,
        writes: bool,
        watch_close: bool = True,
    ) -> None:
        self.process = process
        self.child_fd = child_fd
        self.fd = fd
        self.reads = reads
        self.writes = writes
        self.buffer = bytearray()
        self.closed = False
        self.disconnecting = False
        self.reading = False
        self.writing = False
        self.producer: Any = None
        self.streaming = False
        self.producer_paused = False
        os.set_blocking(fd, False)
        # A write-only pipe is watched for reading too: that is how its closing is seen
        # (unless told not to: a terminal it shares with a reading end is readable at will).
        if reads or watch_close:
            self.start_reading()

    # -- reading ------------------------------------------------------------------------------

    def start_reading(self) -> None:
        if not self.reading and not self.closed:
            self.reading = True
            self.process.loop.add_reader(self.fd, self._readable)

    def stop_reading(self) -> None:
        if self.reading and self.reads:
            self.reading = False
            self.process.loop.remove_reader(self.fd)

    def _readable(self) -> None:
        if not self.reads:
            self.lost()  # the child closed the end it reads from
            return
        try:
            data = os.read(self.fd, READ_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""  # EIO: a pseudo-terminal whose child side is gone
        if data:
            self.process._child_data(self.child_fd, data)
        else:
            self.lost()

    # -- writing ------------------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        if self.closed or self.disconnecting or not data:
            return
        if not self.buffer:
            written = self._write_some(data)
            if written is None:
                return
            data = data[written:]
        self.buffer += data
        self._watch_writable()
        if self.streaming and not self.producer_paused and len(self.buffer) > WRITE_HIGH_WATER:
            self.producer_paused = True
            self.producer.pauseProducing()

    def _watch_writable(self) -> None:
        # A pull producer is asked for more each time the pipe can take it, so the pipe is
        # watched even with nothing queued (as Twisted's FileDescriptor does).
        wanted = bool(self.buffer) or (self.producer is not None and not self.streaming)
        if wanted and not self.writing and not self.closed:
            self.writing = True
            self.process.loop.add_writer(self.fd, self._writable)

    def _write_some(self, data: bytes | bytearray) -> int | None:
        """Write what the pipe takes now; None when the pipe broke (it is then lost)."""
        try:
            return os.write(self.fd, data)
        except (BlockingIOError, InterruptedError):
            return 0
        except OSError:
            self.lost()
            return None

    def _writable(self) -> None:
        if self.buffer:
            written = self._write_some(self.buffer)
            if written is None:
                return
            del self.buffer[:written]
            if self.buffer:
                return
        self.writing = False
        self.process.loop.remove_writer(self.fd)
        if self.disconnecting:
            self.lost()
        elif self.producer is not None and (self.producer_paused or not self.streaming):
            self.producer_paused = False
            self.producer.resumeProducing()
            self._watch_writable()

    def register_producer(self, producer: Any, streaming: bool) -> None:
        if self.closed or self.disconnecting:
            producer.stopProducing()
            return
        self.producer, self.streaming, self.producer_paused = producer, streaming, False
        if not streaming:
            producer.resumeProducing()
            self._watch_writable()

    def unregister_producer(self) -> None:
        self.producer = None

    # -- ending -------------------------------------------------------------------------------

    def lose_connection(self) -> None:
        """Close once what is queued has been written (on a later turn of the loop)."""
        if self.closed or self.disconnecting:
            return
        self.disconnecting = True
        self.stop_reading()
        if not self.buffer:
            # As in Twisted, childConnectionLost is never called from inside closeStdin().
            self.process.loop.call_soon(self.lost)

    def lost(self) -> None:
        if self.closed:
            return
        self.closed = True
        loop = self.process.loop
        if self.reading:
            loop.remove_reader(self.fd)
        if self.writing:
            loop.remove_writer(self.fd)
        self.buffer.clear()
        os.close(self.fd)
        producer, self.producer = self.producer, None
        if producer is not None:
            _call_logged(producer.stopProducing)
        self.process._pipe_lost(self.child_fd)


def _call_logged(f: Callable[..., Any], *args: Any) -> None:
    try:
        f(*args)
    except Exception:
        log.exception("Unhandled error in %r", f)


@implementer(IProcessTransport)
class Process:
    """A running child process, as ``reactor.spawnProcess`` returns it.

    Attributes:
        pid: The child's process id; None once it has exited (and been reaped).
        status: -1 while it runs, then its raw wait status (see :func:`os.waitstatus_to_exitcode`).
        proto: The process protocol, until ``processEnded`` was called.
        pipes: Our pipes to the child, by the child's descriptor number.
        lostProcess: 1 once the child has exited.
    """

    status: int = -1
    pid: int | None = None
    lostProcess: int = 0

    def __init__(self, loop: Any, proto: Any, pty: bool = False) -> None:
        self.loop = loop
        self.proto = proto
        self.pipes: dict[int, _Pipe] = {}
        self._pty = pty
        self._popen: subprocess.Popen[bytes] | None = None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} pid={self.pid} status={self.status}>"

    # -- writing to the child -----------------------------------------------------------------

    def write(self, data: bytes) -> None:
        """Write ``data`` to the child's standard input (dropped when there is none).

        Raises:
            TypeError: ``data`` is a ``str``.
        """
        self._write_to(1 if self._pty else 0, data, missing_ok=True)

    def writeSequence(self, seq: Iterable[bytes]) -> None:
        """Write each piece of ``seq`` to the child's standard input."""
        self.write(b"".join(seq))

    def writeToChild(self, childFD: int, data: bytes) -> None:
        """Write ``data`` to the child's descriptor ``childFD`` (a ``"w"`` one).

        Raises:
            KeyError: The child has no pipe ``childFD`` we write to (any more).
            TypeError: ``data`` is a ``str``.
        """
        self._write_to(childFD, data, missing_ok=False)

    def _write_to(self, child_fd: int, data: bytes, missing_ok: bool) -> None:
        if isinstance(data, str):
            raise TypeError("data must be bytes, not str")
        pipe = self.pipes.get(child_fd)
        if pipe is None or not pipe.writes:
            if missing_ok:
                return
            raise KeyError(child_fd)
        pipe.write(bytes(data))

    def registerProducer(self, producer: Any, streaming: bool) -> None:
        """Have ``producer`` write the child's standard input, paced by the pipe.

        Without a standard input, the producer is stopped at once.
        """
        pipe = self.pipes.get(1 if self._pty else 0)
        if pipe is None or not pipe.writes:
            producer.stopProducing()
        else:
            pipe.register_producer(producer, streaming)

    def unregisterProducer(self) -> None:
        """Detach the producer of standard input."""
        pipe = self.pipes.get(1 if self._pty else 0)
        if pipe is not None:
            pipe.unregister_producer()

    # -- closing pipes ------------------------------------------------------------------------

    def closeChildFD(self, childFD: int) -> None:
        """Close our pipe to the child's ``childFD`` (what is queued is written first).

        Raises:
            NotImplementedError: The child runs on a pseudo-terminal (as in Twisted).
        """
        if self._pty:
            raise NotImplementedError("a pseudo-terminal has no separate descriptors")
        pipe = self.pipes.get(childFD)
        if pipe is not None:
            pipe.lose_connection()

    def closeStdin(self) -> None:
        """Close the child's standard input once what was written is sent (no-op on a PTY)."""
        if not self._pty:
            self.closeChildFD(0)

    def closeStdout(self) -> None:
        """Stop reading the child's standard output and close the pipe (no-op on a PTY)."""
        if not self._pty:
            self.closeChildFD(1)

    def closeStderr(self) -> None:
        """Stop reading the child's standard error and close the pipe (no-op on a PTY)."""
        if not self._pty:
            self.closeChildFD(2)

    def loseConnection(self) -> None:
        """Close the child's standard input, error and output (the terminal, on a PTY)."""
        if self._pty:
            for pipe in list(self.pipes.values()):
                pipe.lose_connection()
            return
        self.closeStdin()
        self.closeStderr()
        self.closeStdout()

    def pauseProducing(self) -> None:
        """Stop reading the child's output (it blocks once its pipes are full)."""
        for pipe in self.pipes.values():
            pipe.stop_reading()

    def resumeProducing(self) -> None:
        """Read the child's output again."""
        for pipe in self.pipes.values():
            if pipe.reads and not pipe.disconnecting:
                pipe.start_reading()

    # -- signals ------------------------------------------------------------------------------

    def signalProcess(self, signalID: str | int) -> None:
        """Send the child a signal.

        Args:
            signalID: A number, or a name: ``"TERM"``, ``"KILL"``, ``"INT"``, ``"HUP"``,
                ``"STOP"`` (as Twisted), or any other the ``signal`` module knows
                (``"USR1"``, ``"SIGUSR1"``).

        Raises:
            ProcessExitedAlready: The child has exited.
            ValueError: ``signalID`` names no signal.
        """
        number = _signal_number(signalID)
        # While pid is set the child is not reaped, so the pid cannot name another process.
        if self.pid is None:
            raise ProcessExitedAlready()
        try:
            os.kill(self.pid, number)
        except ProcessLookupError:
            raise ProcessExitedAlready() from None

    def getHost(self) -> Any:
        """A process has no address.

        Raises:
            NotImplementedError: Always, as in Twisted.
        """
        raise NotImplementedError()

    def getPeer(self) -> Any:
        """A process has no address.

        Raises:
            NotImplementedError: Always, as in Twisted.
        """
        raise NotImplementedError()

    # -- events -------------------------------------------------------------------------------

    def _child_data(self, child_fd: int, data: bytes) -> None:
        if self.proto is not None:
            _call_logged(self.proto.childDataReceived, child_fd, data)

    def _pipe_lost(self, child_fd: int) -> None:
        self.pipes.pop(child_fd, None)
        if self.proto is not None and not self._pty:
            _call_logged(self.proto.childConnectionLost, child_fd)
        self._maybe_ended()

    def _exited(self, status: int) -> None:
        self.status = status
        self.lostProcess += 1
        self.pid = None
        if self._popen is not None:
            # Popen did not reap the child itself; this stops it from trying (and warning).
            self._popen.returncode = os.waitstatus_to_exitcode(status)
        if self.proto is not None:
            _call_logged(self.proto.processExited, Failure(_exit_reason(status)))
        self._maybe_ended()

    def _maybe_ended(self) -> None:
        # processEnded waits for the exit and for every pipe: all the output has been read.
        if self.pipes or not self.lostProcess or self.proto is None:
            return
        proto, self.proto = self.proto, None
        _call_logged(proto.processEnded, Failure(_exit_reason(self.status)))


def spawn_process(
    reactor: Any,
    processProtocol: Any,
    executable: str | bytes | os.PathLike[str],
    args: Sequence[str | bytes] = (),
    env: Mapping[str, str] | Mapping[bytes, bytes] | None = EMPTY_ENVIRONMENT,
    path: str | bytes | os.PathLike[str] | None = None,
    uid: int | None = None,
    gid: int | None = None,
    usePTY: Any = False,
    childFDs: ChildFDs | None = None,
) -> Process:
    """Start ``executable`` and connect ``processProtocol`` to it; see ``reactor.spawnProcess``.

    Args:
        reactor: The reactor whose loop watches the child.
        processProtocol: Told the child's output and end (a ``ProcessProtocol``).
        executable: The program; a bare name is looked up on the ``PATH`` of ``env`` (or the
            system default path ``/bin:/usr/bin`` when ``env`` has none).
        args: The child's whole argument list, ``args[0]`` being its ``argv[0]``.
        env: The child's entire environment: empty by default, as in Twisted (None: ours).
        path: The child's working directory (None: ours).
        uid: Run as this user (needs privilege).
        gid: Run as this group (needs privilege).
        usePTY: Run on a new pseudo-terminal (or a ``(master, slave, name)`` one given); its
            output then arrives as descriptor 1.
        childFDs: The child's descriptors: ``{n: "r" | "w" | our_descriptor}``; by default
            pipes for stdin (``"w"``), stdout and stderr (``"r"``). Standard descriptors left
            out read from and write to ``/dev/null``.

    Returns:
        The :class:`Process`, its ``pid`` set and ``makeConnection`` already called.

    Raises:
        OSError: The program or the directory does not exist, or cannot be run
            (``FileNotFoundError``, ``PermissionError``...).
        ValueError: ``args`` is empty, or ``childFDs`` is malformed.
        TypeError: An argument or environment entry is not a string.
    """
    argv = check_args(args)
    loop = reactor.loop
    options, ours, child_ends = popen_options(childFDs, usePTY)
    try:
        popen = subprocess.Popen(
            argv,
            executable=executable,
            env=None if env is None else dict(env),
            cwd=path,
            **options,
            **identity_options(uid, gid),
        )
    except BaseException:
        close_all(fd for fd, _ in ours.values())
        raise
    finally:
        close_all(child_ends)
    process = Process(loop, processProtocol, pty=bool(usePTY))
    process.pid = popen.pid
    process._popen = popen
    for child_fd, (fd, mode) in ours.items():
        process.pipes[child_fd] = _Pipe(
            process, child_fd, fd, reads="r" in mode, writes="w" in mode
        )
    try:
        processProtocol.makeConnection(process)
    except Exception:
        log.exception("Unhandled error in %r.makeConnection", processProtocol)
    watch_exit(loop, popen.pid, process._exited)
    return process
