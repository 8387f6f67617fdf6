"""The reactor: Twisted's scheduling and listening API on top of an asyncio event loop.

``from treadle import reactor`` gives the one :class:`Reactor` of the process. It does not own
the event loop: whenever an asyncio loop is running in the calling thread, that loop is used,
so treadle embeds into an existing asyncio program (``await``-style code, other servers) as
easily as it runs standalone. Only when nothing is running does the reactor create its own loop
(uvloop when importable, unless ``TREADLE_LOOP=asyncio``), which ``reactor.run()`` then drives.

Listening sockets are bound and put into the listening state synchronously, exactly like
Twisted's ``listenTCP``: a port in use raises
:class:`~treadle.internet.error.CannotListenError` at the call, and ``getHost()`` is right at
once even for port 0. Accepting starts as soon as the loop runs; connections arriving earlier
wait in the kernel backlog.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import inspect
import logging
import os
import signal
import socket
import ssl as _ssl
import threading
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from zope.interface import implementer

from treadle.internet._connector import Connector
from treadle.internet._gcpolicy import serving_thresholds
from treadle.internet._process import EMPTY_ENVIRONMENT, Process, spawn_process
from treadle.internet._timers import Entry, TimerHeap
from treadle.internet._transport import Connection, context_of
from treadle.internet._udp import UDPPort
from treadle.internet.address import IPv4Address, IPv6Address, UNIXAddress, from_sockname
from treadle.internet.base import DelayedCall
from treadle.internet.error import CannotListenError, DNSLookupError, ReactorNotRunning
from treadle.internet.interfaces import (
    IReactorCore,
    IReactorProcess,
    IReactorSocket,
    IReactorSSL,
    IReactorTCP,
    IReactorThreads,
    IReactorTime,
    IReactorUDP,
    IReactorUNIX,
)
from treadle.python import threadable
from treadle.python.threadpool import ThreadPool

__all__ = [
    "DEFAULT_BACKLOG",
    "ListeningPort",
    "Reactor",
    "ReactorNotRunning",
    "ThreadPool",
    "new_event_loop",
    "reactor",
]

log = logging.getLogger("treadle.error")

#: Kernel accept queue length. Twisted uses 50, which drops connections (SYNs) once a
#: burst of a couple of thousand clients arrives together; nginx uses 511 and most Linux
#: systems cap the value at net.core.somaxconn (4096 on current kernels).
DEFAULT_BACKLOG = 2048


class TimedOwner(Protocol):
    """What :meth:`Reactor._call_owner_later` schedules: an owner of the reactor's heap."""

    _handle: Any
    _context: contextvars.Context | None

    def _due(self) -> None:
        """The time came: run (in ``_context``), logging rather than raising an error."""
        ...

    def _delayed_call(self) -> DelayedCall:
        """The DelayedCall that ``getDelayedCalls`` shows for this pending owner."""
        ...


class ServerFactory(Protocol):
    """What ``listenTCP`` needs of a factory: Twisted's ``buildProtocol(addr)``.

    The protocol it returns is a Twisted protocol (``makeConnection``, ``dataReceived``...)
    or an asyncio protocol, which is then given the connection directly.

    A factory may also offer ``asyncio_protocol_factory()``, returning a callable of no
    arguments that builds asyncio protocols (or None to use ``buildProtocol``): the port
    then builds a connection's protocol with it and nothing else, the peer's address
    unasked. treadle's HTTP factories do so while ``buildProtocol`` is not overridden.
    """

    def buildProtocol(self, addr: Any) -> Any:
        """Return a protocol for a new connection from ``addr``, or None to refuse it."""
        ...


def new_event_loop() -> asyncio.AbstractEventLoop:
    """Create the loop the reactor runs on: uvloop when importable, the stdlib loop otherwise.

    ``TREADLE_LOOP=asyncio`` forces the stdlib loop (useful to compare, or to debug).
    """
    if os.environ.get("TREADLE_LOOP", "").lower() != "asyncio":
        try:
            import uvloop
        except ImportError:
            pass
        else:
            return uvloop.new_event_loop()
    return asyncio.new_event_loop()


# Sockets being adopted, kept referenced until the loop has taken them.
_adopting: set[asyncio.Future[Any]] = set()

_ports_per_factory: weakref.WeakKeyDictionary[Any, int] = weakref.WeakKeyDictionary()


#: The shortest timer the reactor's TimerHeap arms on the loop while a call is not yet due
#: (both loops wait in whole milliseconds).
_LOOP_TICK = 0.001


#: The ``kw`` of every call scheduled without keyword arguments: a pending call then holds no
#: dict of its own (``**kw`` makes a new one per call). Never mutated.
_NO_KEYWORDS: dict[str, Any] = {}


class _LoopDelayedCall(DelayedCall):
    """A DelayedCall run by the loop: from the reactor's :class:`TimerHeap`, or as a ready handle.

    The call itself is what runs (``loop.call_soon(call)``, ``context.run(call)``): no bound
    method or argument tuple is made per scheduled call.
    """

    __slots__ = ("_context", "_handle")
    # The ready handle of a callLater(0), or the call's current entry in its TimerHeap.
    _handle: asyncio.Handle | Entry | None
    # A copy of the context it was scheduled in, where it runs (as with loop.call_later);
    # None when that context held no variable (see _keep_context).
    _context: contextvars.Context | None

    def __call__(self) -> None:
        self.called = True
        self._handle = None
        _call_and_log(self.func, self.args, self.kw, self)

    def _due(self) -> None:
        context = self._context
        if context is None:
            # A copy of an empty context is a fresh one: made now rather than kept while
            # the call waited.
            context = contextvars.Context()
        context.run(self)


def _keep_context() -> contextvars.Context | None:
    """The copy of the current context a timed call keeps, or None where it is empty.

    The usual server sets no context variable, and a copy is 64 bytes per waiting call (a
    pending ``deferLater`` response among them); an empty one is made when the call runs.
    """
    context = contextvars.copy_context()
    return context if len(context) else None


class ListeningPort:
    """A listening socket returned by ``listenTCP``/``listenUNIX``/``listenSSL``.

    The socket is bound and listening when this object exists (clients can connect, and the
    kernel queues them); accepting them starts with the loop. A port opened before the loop
    runs does not run it: as in Twisted, nothing is served before ``reactor.run()`` has
    fired its start-up triggers and ``callWhenRunning`` calls.
    """

    def __init__(
        self,
        reactor: Reactor,
        sock: socket.socket,
        factory: ServerFactory,
        backlog: int,
        ssl_context: _ssl.SSLContext | None = None,
        *,
        owns_path: bool = True,
    ) -> None:
        self._reactor = reactor
        self.socket = sock
        # A UNIX socket file is removed at stopListening only when this port made it: an
        # adopted socket (systemd's) belongs to whoever passed it.
        self._owns_path = owns_path
        self.factory = factory
        self._server: asyncio.base_events.Server | None = None
        self._starting: asyncio.Future[Any] | None = None
        # The loop's first turn starts serving a port opened before the loop ran.
        self._start_handle: asyncio.Handle | None = None
        self._closed = False
        self._host = from_sockname(sock.getsockname())
        # As Twisted's numPorts: a factory serving several ports starts with the first and
        # stops with the last, so stopping one port does not close, say, its access log.
        count = _ports_per_factory.get(factory, 0)
        _ports_per_factory[factory] = count + 1
        start = getattr(factory, "doStart", None)
        if start is not None and count == 0:
            start()
        self._backlog = backlog
        self._ssl_context = ssl_context
        loop = reactor._get_loop()
        if loop.is_running():
            self._start_serving(loop)
        else:
            # Not run_until_complete(create_server): running the loop a moment here would
            # accept, and answer, requests already waiting before the program's start-up.
            self._start_handle = loop.call_soon(self._start_serving, loop)

    def _start_serving(self, loop: asyncio.AbstractEventLoop) -> None:
        self._start_handle = None
        coro = loop.create_server(
            _protocol_factory_of(self.factory),
            sock=self.socket,
            backlog=self._backlog,
            ssl=self._ssl_context,
        )
        self._starting = asyncio.ensure_future(coro, loop=loop)
        self._starting.add_done_callback(self._started)

    def _started(self, fut: asyncio.Future[Any]) -> None:
        self._starting = None
        if fut.cancelled():
            return
        if fut.exception() is not None:
            log.error("could not start serving on %s", self._host, exc_info=fut.exception())
            return
        self._server = fut.result()
        if self._closed:
            self._server.close()

    def getHost(self) -> IPv4Address | IPv6Address | UNIXAddress:
        """Return the address this port listens on (the real port when 0 was asked for)."""
        return self._host

    def stopListening(self) -> Any:
        """Stop accepting connections; connections already accepted carry on.

        Returns:
            A Deferred that has fired once the listening socket is closed.
        """
        from treadle.internet._deferred import succeed

        if not self._closed:
            self._closed = True
            if self._server is not None:
                self._server.close()
            else:  # not serving yet: whatever would start it is called off
                if self._start_handle is not None:
                    self._start_handle.cancel()
                    self._start_handle = None
                if self._starting is not None:
                    self._starting.cancel()
                self.socket.close()
            if isinstance(self._host, UNIXAddress) and self._host.name and self._owns_path:
                with contextlib.suppress(OSError):
                    os.unlink(self._host.name)
            count = _ports_per_factory.pop(self.factory, 1) - 1
            if count:
                _ports_per_factory[self.factory] = count
            stop = getattr(self.factory, "doStop", None)
            if stop is not None and count == 0:
                stop()
        return succeed(None)

    loseConnection = stopListening

    def __repr__(self) -> str:
        return f"<ListeningPort {self._host}>"


@implementer(
    IReactorCore,
    IReactorTime,
    IReactorTCP,
    IReactorSSL,
    IReactorUNIX,
    IReactorThreads,
    IReactorProcess,
    IReactorSocket,
    IReactorUDP,
)
class Reactor:
    """Twisted's reactor API (``callLater``, ``listenTCP``, ``run``, ``stop``...) over asyncio."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._when_running: list[tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]] = []
        self._shutdown_triggers: list[
            tuple[int, int, Callable[..., Any], tuple[Any, ...], dict[str, Any]]
        ] = []
        self._startup_triggers: list[
            tuple[int, int, Callable[..., Any], tuple[Any, ...], dict[str, Any]]
        ] = []
        self._trigger_seq = 0
        self._crashed = False
        self.running = False
        self._threadpool: ThreadPool | None = None
        # Bound once: every DelayedCall refers to these instead of two bound methods of its own.
        self._canceller: Callable[[DelayedCall], None] = self._cancel_call
        self._resetter: Callable[[DelayedCall], None] = self._reset_call
        self._timers: TimerHeap | None = None
        # The reactor's one clock: seconds(), the DelayedCalls' times, and the times its
        # TimerHeap runs them by (the loop's timer only wakes the heap up).
        self._now: Callable[[], float] = time.time

    # -- the loop ---------------------------------------------------------------------------

    def _get_loop(self) -> asyncio.AbstractEventLoop:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            own = self._loop
            if own is None or own.is_closed():
                own = self._loop = new_event_loop()
                asyncio.set_event_loop(own)
            return own
        self._loop = loop
        return loop

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The asyncio loop the reactor schedules on (the running one, else its own)."""
        return self._get_loop()

    # -- time -------------------------------------------------------------------------------

    def seconds(self) -> float:
        """Return the current time in seconds since the epoch (as ``time.time()``).

        This is the clock of ``callLater``: a call runs once ``seconds()`` has reached its
        ``getTime()``, never before.
        """
        return self._now()

    def callLater(self, delay: float, f: Callable[..., Any], *args: Any, **kw: Any) -> DelayedCall:
        """Call ``f(*args, **kw)`` ``delay`` seconds from now.

        The call runs once :meth:`seconds` has reached its time (``getTime()``), never
        before; calls due at the same time run in the order they were scheduled. An
        exception raised by ``f`` is logged with its traceback to ``treadle.error``; nothing
        else is affected. If ``f`` returns a coroutine, it is run as a task.

        Returns:
            A :class:`~treadle.internet.base.DelayedCall` that can be cancelled, reset or delayed.
        """
        now = self._now
        call = _LoopDelayedCall(
            now() + delay,
            f,
            args,
            kw or _NO_KEYWORDS,
            self._canceller,
            self._resetter,
            now,
        )
        loop = self._get_loop()
        # callLater(0, ...) is the usual "after this render returns": a plain ready handle
        # costs less than a timer and runs in the same order.
        if delay <= 0:
            call._handle = loop.call_soon(call)
        else:
            call._context = _keep_context()
            # Due by the call's own time, not by a second reading of some clock.
            self._timers_of(loop).add_at(call, call.time)
        return call

    def _call_owner_later(self, owner: TimedOwner, delay: float) -> bool:
        """Run ``owner._due()`` ``delay`` seconds from now, as ``callLater`` would run a call.

        For treadle's own timed objects (``deferLater``'s Deferred): the owner waits in the
        reactor's heap itself, with no DelayedCall and argument tuple beside it (some 170
        bytes per pending call). Its time is kept in the same clock, ``owner._context`` gets
        the context to run in (None for an empty one), and :meth:`getDelayedCalls` shows it
        through ``owner._delayed_call()``.

        Returns:
            False, scheduling nothing, where ``callLater`` must be used instead: a delay of
            0 or less (a ready handle, in callLater's order), or a ``callLater`` replaced on
            the reactor's class or instance (a program or a test intercepting calls).
        """
        if delay <= 0 or type(self).callLater is not Reactor.callLater or "callLater" in vars(self):
            return False
        owner._context = _keep_context()
        self._timers_of(self._get_loop()).add_at(owner, self._now() + delay)
        return True

    def _timers_of(self, loop: asyncio.AbstractEventLoop) -> TimerHeap:
        timers = self._timers
        if timers is None or timers.source is not loop:
            # A heap per loop; one left behind (its loop went, or another thread's loop
            # took the slot) still runs what it holds, its loop timer referring to it.
            # Its clock is seconds(), with no slack: a call never runs before getTime()
            # (the loop's own clock, monotonic, need not agree with it, and libuv's timers
            # fire up to a millisecond and a half early). The tick keeps the wake-up after
            # an early one a timer of the loop's, which counts whole milliseconds anyway.
            timers = self._timers = TimerHeap(loop, loop.call_later, self._now, 0.0, _LOOP_TICK)
        return timers

    def _cancel_call(self, call: DelayedCall) -> None:
        assert isinstance(call, _LoopDelayedCall)
        handle = call._handle
        if type(handle) is Entry:
            handle.heap.discard(call)
        elif handle is not None:
            handle.cancel()  # type: ignore[union-attr]  # a ready handle
            call._handle = None

    def _reset_call(self, call: DelayedCall) -> None:
        assert isinstance(call, _LoopDelayedCall)
        self._cancel_call(call)
        loop = self._get_loop()
        if call.time <= self._now():
            call._handle = loop.call_soon(call)
        else:
            call._context = _keep_context()
            self._timers_of(loop).add_at(call, call.time)

    def callWhenRunning(self, f: Callable[..., Any], *args: Any, **kw: Any) -> None:
        """Call ``f`` once the loop runs: now if it already does, else at ``run()``."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            if not self.running:
                self._when_running.append((f, args, kw))
                return
        _call_and_log(f, args, kw, f)

    def callFromThread(self, f: Callable[..., Any], *args: Any, **kw: Any) -> None:
        """Schedule ``f(*args, **kw)`` on the reactor's loop from any thread."""
        loop = self._loop
        if loop is None or loop.is_closed():
            loop = self._get_loop()
        loop.call_soon_threadsafe(_call_and_log, f, args, kw, f)

    def getThreadPool(self) -> ThreadPool:
        """Return the reactor's thread pool (for ``WSGIResource`` and ``callInThread``)."""
        pool = self._threadpool
        # Started at once (the loop may be someone else's, with no run() to wait for), and
        # made anew once stopped: a stopped pool drops what it is given.
        if pool is None or pool.joined:
            pool = self._threadpool = ThreadPool(0, 10, "treadle.internet.reactor")
            pool.start()
            self.addSystemEventTrigger("during", "shutdown", pool.stop)
        return pool

    def callInThread(self, f: Callable[..., Any], *args: Any, **kw: Any) -> None:
        """Run ``f(*args, **kw)`` in the reactor's thread pool; errors are logged."""
        self._get_loop()  # remember the running loop, for callFromThread from that thread
        self.getThreadPool().callInThread(f, *args, **kw)

    def suggestThreadPoolSize(self, size: int) -> None:
        """Set how many threads the reactor's pool may use."""
        self.getThreadPool().adjustPoolsize(maxthreads=size)

    def spawnProcess(
        self,
        processProtocol: Any,
        executable: str | bytes | os.PathLike[str],
        args: Sequence[str | bytes] = (),
        env: Mapping[str, str] | Mapping[bytes, bytes] | None = EMPTY_ENVIRONMENT,
        path: str | bytes | os.PathLike[str] | None = None,
        uid: int | None = None,
        gid: int | None = None,
        usePTY: Any = 0,
        childFDs: Mapping[int, str | int] | None = None,
    ) -> Process:
        """Start a child process and connect ``processProtocol`` to it (as Twisted's).

        The child runs at once: the returned transport has its ``pid``, and
        ``processProtocol.makeConnection`` has been called. Output arrives in
        ``childDataReceived`` (``outReceived``/``errReceived``); ``processExited`` and then,
        once every pipe is closed, ``processEnded`` report its end.

        Args:
            processProtocol: A :class:`~treadle.internet.protocol.ProcessProtocol`.
            executable: The program (a bare name is looked up on ``env``'s ``PATH``).
            args: The whole argument list; ``args[0]`` is the child's ``argv[0]``.
            env: The child's environment: empty unless given, as in Twisted (None: ours).
            path: The child's working directory (None: ours).
            uid: Run as this user (needs privilege).
            gid: Run as this group (needs privilege).
            usePTY: Run on a pseudo-terminal.
            childFDs: ``{child_fd: "r" | "w" | our_fd}``; stdin, stdout and stderr pipes
                by default.

        Returns:
            The process transport (Twisted's ``IProcessTransport``).

        Raises:
            OSError: The program or directory does not exist or cannot be run.
            ValueError: ``args`` is empty or ``childFDs`` is malformed.
        """
        return spawn_process(
            self, processProtocol, executable, args, env, path, uid, gid, usePTY, childFDs
        )

    def addSystemEventTrigger(
        self, phase: str, eventType: str, f: Callable[..., Any], *args: Any, **kw: Any
    ) -> tuple[str, int]:
        """Run ``f`` at start-up or shut-down (``eventType`` ``"startup"`` or ``"shutdown"``).

        Shut-down triggers run, in the order added, after ``stop()`` once the loop has
        stopped turning (``phase`` ``"before"``, ``"during"`` and ``"after"``, in that
        order); a Deferred or coroutine one returns is waited for. Start-up triggers run when
        ``run()`` starts the loop.

        Returns:
            A handle for :meth:`removeSystemEventTrigger`.

        Raises:
            ValueError: An unknown phase or event type.
        """
        if eventType not in ("shutdown", "startup"):
            raise ValueError(f"only 'startup' and 'shutdown' triggers exist, not {eventType!r}")
        order = {"before": 0, "during": 1, "after": 2}
        if phase not in order:
            raise ValueError(f"unknown phase {phase!r}")
        self._trigger_seq += 1
        triggers = self._shutdown_triggers if eventType == "shutdown" else self._startup_triggers
        triggers.append((order[phase], self._trigger_seq, f, args, kw))
        return (eventType, self._trigger_seq)

    def removeSystemEventTrigger(self, triggerID: tuple[str, int]) -> None:
        """Forget a trigger added by :meth:`addSystemEventTrigger`.

        Raises:
            ValueError: ``triggerID`` names no trigger (or was removed already).
        """
        event, seq = triggerID
        triggers = self._shutdown_triggers if event == "shutdown" else self._startup_triggers
        for trigger in triggers:
            if trigger[1] == seq:
                triggers.remove(trigger)
                return
        raise ValueError(f"no such trigger: {triggerID!r}")

    def fireSystemEvent(self, eventType: str) -> None:
        """Fire ``"shutdown"`` (stop the reactor) or ``"startup"`` (run its triggers now)."""
        if eventType == "shutdown":
            if self.running:
                self.stop()
        elif eventType == "startup":
            triggers, self._startup_triggers = sorted(self._startup_triggers), []
            for _, _, f, args, kw in triggers:
                _call_and_log(f, args, kw, f)

    def getDelayedCalls(self) -> list[DelayedCall]:
        """Return the calls scheduled with a delay and not yet run or cancelled."""
        timers = self._timers
        if timers is None:
            return []
        return [
            owner if isinstance(owner, DelayedCall) else owner._delayed_call()
            for owner in timers.pending()
        ]

    def resolve(self, name: str, timeout: Sequence[int] = (1, 3, 11, 45)) -> Any:
        """Look up the IPv4 address of ``name``.

        Returns:
            A Deferred firing with the address as a string, or failing with
            :class:`~treadle.internet.error.DNSLookupError`.
        """
        from treadle.internet._deferred import Deferred

        async def lookup() -> str:
            try:
                infos = await self._get_loop().getaddrinfo(
                    name, None, family=socket.AF_INET, type=socket.SOCK_STREAM
                )
            except OSError as e:
                raise DNSLookupError(f"address {name!r} not found: {e}") from None
            if not infos:
                raise DNSLookupError(f"address {name!r} not found")
            return str(infos[0][4][0])

        return Deferred.fromCoroutine(lookup())

    def crash(self) -> None:
        """Stop the loop at once, without running the shut-down triggers."""
        self._crashed = True
        if self._loop is not None:
            self._loop.stop()

    def iterate(self, delay: float = 0) -> None:
        """Run the loop once (waiting up to ``delay`` seconds), when it is not running."""
        loop = self._get_loop()
        loop.run_until_complete(asyncio.sleep(delay))

    # -- running ----------------------------------------------------------------------------

    def run(self, installSignalHandlers: bool = True) -> None:
        """Run the loop until ``stop()``; SIGINT and SIGTERM stop it when asked to handle them.

        Raises:
            RuntimeError: An asyncio loop is already running in this thread (then treadle is
                already serving on it: there is nothing to run).
        """
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            raise RuntimeError(
                "an asyncio loop is already running in this thread; treadle "
                "serves on it already, so reactor.run() is not needed"
            )
        loop = self._get_loop()
        self.running = True
        threadable.registerAsIOThread()
        handled: list[signal.Signals] = []
        if installSignalHandlers and threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                try:
                    loop.add_signal_handler(sig, self.stop)
                    handled.append(sig)
                except (NotImplementedError, RuntimeError):  # Windows, or not main thread
                    pass
        pending, self._when_running = self._when_running, []
        loop.call_soon(self.fireSystemEvent, "startup")
        for f, args, kw in pending:
            loop.call_soon(_call_and_log, f, args, kw, f)
        self._crashed = False
        try:
            with serving_thresholds():
                loop.run_forever()
                if not self._crashed:
                    # What the last turn scheduled "soon" runs before the shutdown triggers,
                    # as Twisted runs the calls due before its shutdown event: responses
                    # finished in that turn wait for the next one to be written (see
                    # treadle.web._channel_core), and asyncio's loop stops without it.
                    loop.call_soon(loop.stop)
                    loop.run_forever()
        finally:
            self.running = False
            for sig in handled:
                loop.remove_signal_handler(sig)
            triggers = [] if self._crashed else sorted(self._shutdown_triggers)
            if not self._crashed:
                self._shutdown_triggers = []
            for _, _, f, args, kw in triggers:
                result = _call_and_log(f, args, kw, f)
                if inspect.isawaitable(result) or hasattr(result, "addBoth"):
                    from treadle.internet._deferred import ensureDeferred

                    fut = ensureDeferred(result).asFuture(loop)
                    loop.run_until_complete(fut)

    def stop(self) -> None:
        """Stop the loop started by ``run()``.

        Raises:
            ReactorNotRunning: ``run()`` is not running.
        """
        if not self.running or self._loop is None:
            raise ReactorNotRunning("Can't stop reactor that isn't running.")
        self._loop.stop()

    # -- listening --------------------------------------------------------------------------

    def listenTCP(
        self,
        port: int,
        factory: ServerFactory,
        backlog: int = DEFAULT_BACKLOG,
        interface: str = "",
        *,
        reusePort: bool = False,
    ) -> ListeningPort:
        """Listen for TCP connections on ``interface:port`` (all IPv4 interfaces by default).

        Args:
            port: Port number; 0 picks a free one (see ``getHost()``).
            factory: Builds a protocol per connection, e.g. a :class:`~treadle.web.server.Site`.
            backlog: Kernel accept queue length.
            interface: Address to bind; an IPv6 literal gives an IPv6 socket.
            reusePort: Set ``SO_REUSEPORT`` so several processes share the port.

        Raises:
            CannotListenError: The address is in use or cannot be bound.
        """
        sock = _bind_tcp(interface, port, backlog, reusePort)
        return ListeningPort(self, sock, factory, backlog)

    def listenSSL(
        self,
        port: int,
        factory: ServerFactory,
        contextFactory: Any,
        backlog: int = DEFAULT_BACKLOG,
        interface: str = "",
        *,
        reusePort: bool = False,
    ) -> ListeningPort:
        """Listen for TLS connections; ``contextFactory`` is an ``ssl.SSLContext`` or has
        ``getContext()`` returning one. Other arguments as for :meth:`listenTCP`.

        A factory with ``acceptableProtocols()`` (``IProtocolNegotiationFactory``, as a
        :class:`~treadle.web.server.Site`) has its protocols offered by ALPN, ahead of those
        ``contextFactory`` names (``CertificateOptions(acceptableProtocols=...)``); the
        context is set up for them once, here, since an ``SSLContext`` cannot vary them per
        connection."""
        context = context_of(contextFactory)
        _offer_factory_protocols(context, factory, contextFactory)
        sock = _bind_tcp(interface, port, backlog, reusePort)
        return ListeningPort(self, sock, factory, backlog, ssl_context=context)

    def listenUNIX(
        self,
        address: str,
        factory: ServerFactory,
        backlog: int = DEFAULT_BACKLOG,
        mode: int = 0o666,
        wantPID: bool = False,
    ) -> ListeningPort:
        """Listen on a UNIX-domain socket at path ``address`` (a stale socket file is replaced).

        ``wantPID`` (Twisted's lock file beside the socket) is accepted and not needed: a
        stale socket is recognised by trying to connect to it.

        Raises:
            CannotListenError: The path cannot be bound.
        """
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            if os.path.exists(address) and _is_stale_socket(address):
                os.unlink(address)
            sock.bind(address)
            os.chmod(address, mode)
            sock.listen(backlog)
        except OSError as e:
            sock.close()
            raise CannotListenError(address, 0, e) from e
        sock.setblocking(False)
        return ListeningPort(self, sock, factory, backlog)

    def adoptStreamPort(
        self, fileDescriptor: int, addressFamily: socket.AddressFamily, factory: ServerFactory
    ) -> ListeningPort:
        """Serve ``factory`` on a listening socket the process already has (socket activation).

        The descriptor is duplicated: the caller keeps its own and may close it.

        Args:
            fileDescriptor: A socket in the listening state.
            addressFamily: ``socket.AF_INET``, ``AF_INET6`` or ``AF_UNIX``.
            factory: As for :meth:`listenTCP`.
        """
        sock = socket.socket(addressFamily, socket.SOCK_STREAM, fileno=os.dup(fileDescriptor))
        sock.setblocking(False)
        return ListeningPort(self, sock, factory, DEFAULT_BACKLOG, owns_path=False)

    def listenUDP(
        self, port: int, protocol: Any, interface: str = "", maxPacketSize: int = 8192
    ) -> UDPPort:
        """Bind a UDP port for ``protocol`` (a ``DatagramProtocol``), which starts at once.

        Args:
            port: Port number; 0 picks a free one (see ``getHost()``).
            protocol: Receives ``datagramReceived(datagram, (host, port))``; its
                ``transport`` is the port, ``write(datagram, (host, port))`` sends.
            interface: Address to bind; an IPv6 literal gives an IPv6 socket.
            maxPacketSize: Largest datagram read.

        Raises:
            CannotListenError: The address is in use or cannot be bound.
        """
        return UDPPort(self._get_loop, port, protocol, interface, maxPacketSize)

    def adoptStreamConnection(
        self, fileDescriptor: int, addressFamily: socket.AddressFamily, factory: Any
    ) -> None:
        """Serve ``factory`` on a connected socket the process already has.

        The descriptor is duplicated: the caller keeps its own and may close it. Adopted
        before the loop runs, the connection is served from the loop's first turn (as a
        port is: see :class:`ListeningPort`).
        """
        sock = socket.socket(addressFamily, socket.SOCK_STREAM, fileno=os.dup(fileDescriptor))
        sock.setblocking(False)
        loop = self._get_loop()
        if loop.is_running():
            _adopt(loop, factory, sock)
        else:
            loop.call_soon(_adopt, loop, factory, sock)

    def adoptDatagramPort(
        self, fileDescriptor: int, addressFamily: Any, protocol: Any, maxPacketSize: int = 8192
    ) -> Any:
        """Not supported: treadle has no UDP transport.

        Raises:
            NotImplementedError: Always.
        """
        raise NotImplementedError("treadle does not support UDP")

    # -- connecting -------------------------------------------------------------------------

    def connectTCP(
        self,
        host: str,
        port: int,
        factory: Any,
        timeout: float = 30,
        bindAddress: tuple[str, int] | None = None,
    ) -> Connector:
        """Connect to ``host:port``; ``factory`` (a ``ClientFactory``) builds the protocol.

        The attempt starts at once (with the loop). The factory hears ``startedConnecting``,
        then ``buildProtocol(addr)`` once connected, or ``clientConnectionFailed`` with a
        :class:`~treadle.internet.error.ConnectError` (refused, timed out, unknown host);
        ``clientConnectionLost`` when an established connection ends.

        Args:
            host: A host name or an IPv4/IPv6 address.
            port: The port.
            factory: Builds the connection's protocol.
            timeout: Seconds the attempt may take.
            bindAddress: Local ``(host, port)`` to bind first.

        Returns:
            The connector: ``disconnect()``, ``stopConnecting()``, ``connect()`` again.
        """
        return Connector(self._get_loop, factory, ("tcp", host, port), timeout, bindAddress)

    def connectSSL(
        self,
        host: str,
        port: int,
        factory: Any,
        contextFactory: Any,
        timeout: float = 30,
        bindAddress: tuple[str, int] | None = None,
    ) -> Connector:
        """Connect over TLS; ``contextFactory`` is an ``ssl.SSLContext`` or has ``getContext()``.

        Its ``hostname`` attribute, when it has one, is the name the server's certificate
        is checked against (``optionsForClientTLS`` sets it); ``host`` otherwise. Other
        arguments as for :meth:`connectTCP`.
        """
        context = context_of(contextFactory, client=True)
        hostname = getattr(contextFactory, "hostname", None) or host
        return Connector(
            self._get_loop,
            factory,
            ("tcp", host, port),
            timeout,
            bindAddress,
            ssl_context=context,
            server_hostname=hostname,
        )

    def connectUNIX(
        self, address: str, factory: Any, timeout: float = 30, checkPID: int = 0
    ) -> Connector:
        """Connect to the UNIX-domain socket at ``address``; as :meth:`connectTCP`."""
        return Connector(self._get_loop, factory, ("unix", address, 0), timeout, None)


def _protocol_factory_of(factory: ServerFactory) -> Callable[[], asyncio.BaseProtocol]:
    """What the loop calls per accepted connection: the factory's own fast builder, if any,
    else a :class:`Connection` that asks ``buildProtocol`` with the peer's address."""
    native = getattr(factory, "asyncio_protocol_factory", None)
    if native is not None:
        build: Callable[[], asyncio.BaseProtocol] | None = native()
        if build is not None:
            return build
    return functools.partial(Connection, factory, True)


def _is_stale_socket(path: str) -> bool:
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(path)
    except ConnectionRefusedError:
        return True
    except OSError:
        return False
    finally:
        probe.close()
    return False


def _offer_factory_protocols(context: _ssl.SSLContext, factory: Any, contextFactory: Any) -> None:
    """Set ``context``'s ALPN list to ``factory``'s protocols, then ``contextFactory``'s own."""
    negotiate = getattr(factory, "acceptableProtocols", None)
    if negotiate is None:
        return
    names = [*negotiate(), *getattr(contextFactory, "_acceptableProtocols", ())]
    unique = [p.decode("ascii") if isinstance(p, bytes) else p for p in dict.fromkeys(names)]
    if unique:
        context.set_alpn_protocols(unique)


def _bind_tcp(interface: str, port: int, backlog: int, reuse_port: bool) -> socket.socket:
    family = socket.AF_INET6 if ":" in interface else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((interface or ("::" if family == socket.AF_INET6 else "0.0.0.0"), port))
        sock.listen(backlog)
    except OSError as e:
        sock.close()
        raise CannotListenError(interface, port, e) from e
    sock.setblocking(False)
    return sock


def _adopt(loop: asyncio.AbstractEventLoop, factory: Any, sock: socket.socket) -> None:
    """Serve ``factory`` on the connected ``sock`` (``adoptStreamConnection``)."""
    adopting = asyncio.ensure_future(
        loop.connect_accepted_socket(_protocol_factory_of(factory), sock), loop=loop
    )
    _adopting.add(adopting)
    adopting.add_done_callback(_adopting.discard)


def _call_and_log(
    f: Callable[..., Any], args: tuple[Any, ...], kw: dict[str, Any], what: object
) -> Any:
    """Call ``f``; log (never raise) its exception; run a returned coroutine as a task."""
    try:
        result = f(*args, **kw)
    except Exception:
        log.exception("Unhandled error in %r", what)
        return None
    if inspect.iscoroutine(result):
        task = asyncio.ensure_future(result)
        task.add_done_callback(_log_task_failure)
    return result


def _log_task_failure(task: asyncio.Future[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("Unhandled error in coroutine %r", task, exc_info=task.exception())


#: The process-wide reactor: ``from treadle import reactor``.
reactor = Reactor()
