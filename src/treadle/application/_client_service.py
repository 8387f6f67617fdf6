"""``ClientService``: one connection to a client endpoint, kept open while the service runs.

The service is a state machine, written as one: a :class:`_State` per situation, and a
method per event that looks up what the event does in the current state. The states and
transitions are Twisted's (its automat machine), so a program sees the same sequence of
connection attempts, back-off delays and ``whenConnected`` results:

==============  =======================================================================
state           meaning
==============  =======================================================================
INIT            not started yet
CONNECTING      an attempt (``endpoint.connect``, then ``prepareConnection``) is running
CONNECTED       a connection is up
WAITING         the last attempt failed or the connection was lost: a retry is scheduled
DISCONNECTING   stopping: waiting for the connection to close or the attempt to end
RESTARTING      started again while DISCONNECTING: connects once the old one is gone
STOPPED         stopped; ``start`` connects again
==============  =======================================================================

Difference from Twisted: a failed attempt that ends while RESTARTING (its cancellation
finished late) starts the new attempt, where Twisted's machine has no transition for it.
"""

from __future__ import annotations

import enum
import logging
import random
from collections.abc import Callable
from typing import Any

from treadle.application.service import Service
from treadle.internet.defer import CancelledError, Deferred, fail, maybeDeferred, succeed
from treadle.python.failure import Failure

__all__ = ["ClientService", "backoffPolicy", "global_reactor"]

_log = logging.getLogger("treadle.log")


def global_reactor(reactor: Any) -> Any:
    """Return ``reactor``, or the global reactor when it is None."""
    if reactor is None:
        from treadle.internet import reactor as the_reactor

        return the_reactor
    return reactor


def backoffPolicy(
    initialDelay: float = 1.0,
    maxDelay: float = 60.0,
    factor: float = 1.5,
    jitter: Callable[[], float] = random.random,
) -> Callable[[int], float]:
    """Return a retry policy for :class:`ClientService`: exponential back-off with jitter.

    Args:
        initialDelay: The delay is ``initialDelay * factor ** attempt``...
        maxDelay: ...at most this (before the jitter is added)...
        factor: ...growing by this factor per failed attempt...
        jitter: ...plus this function's result (a random number in [0, 1) by default).

    Returns:
        A function from the number of consecutive failed attempts (1 for the first) to the
        seconds to wait before the next.
    """

    def policy(attempt: int) -> float:
        try:
            delay = min(initialDelay * factor ** min(100, attempt), maxDelay)
        except OverflowError:
            delay = maxDelay
        return delay + jitter()

    return policy


_default_policy = backoffPolicy()


class _State(enum.Enum):
    INIT = "init"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    WAITING = "waiting"
    DISCONNECTING = "disconnecting"
    RESTARTING = "restarting"
    STOPPED = "stopped"


class _ProtocolProxy:
    """Wraps the factory's protocol to learn when its connection is lost.

    Every other attribute (and the interfaces it provides, through ``__providedBy__``) is
    the wrapped protocol's, so the transport treats the proxy as the protocol itself.
    """

    def __init__(self, protocol: Any, lost: Callable[[Failure], None]) -> None:
        self._protocol = protocol
        self._lost = lost
        self._transport: Any = None

    def makeConnection(self, transport: Any) -> None:
        """Remember the transport (to close it on stop) and pass it on."""
        self._transport = transport
        self._protocol.makeConnection(transport)

    def connectionLost(self, reason: Failure) -> Any:
        """Pass the loss on, then tell the service."""
        try:
            return self._protocol.connectionLost(reason)
        finally:
            self._lost(reason)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._protocol, name)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} wrapping {self._protocol!r}>"


class _FactoryProxy:
    """Wraps the service's factory so that every protocol it builds is a :class:`_ProtocolProxy`."""

    def __init__(self, factory: Any, lost: Callable[[Failure], None]) -> None:
        self._factory = factory
        self._lost = lost

    def buildProtocol(self, addr: Any) -> Any:
        """Build the factory's protocol, wrapped; None stays None."""
        built = self._factory.buildProtocol(addr)
        return None if built is None else _ProtocolProxy(built, self._lost)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._factory, name)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} wrapping {self._factory!r}>"


class ClientService(Service):
    """Keeps one connection to ``endpoint`` open while the service runs.

    It connects when started; when an attempt fails or the connection is lost, it waits
    ``retryPolicy(failures)`` seconds and tries again. Stopping closes the connection (or
    cancels the attempt, or the wait).

    Args:
        endpoint: A client endpoint (``connect(factory)`` returning a Deferred of the
            protocol), e.g. from ``clientFromString``.
        factory: The protocol factory to connect with.
        retryPolicy: Seconds to wait given the number of consecutive failures (1 for the
            first); :func:`backoffPolicy` ``()`` by default.
        clock: Schedules the retries: the global reactor when None.
        prepareConnection: Called with each new protocol before it counts as connected; a
            Deferred it returns is waited for, and a failure (raised or in the Deferred)
            rejects the connection, which then counts as a failed attempt.
    """

    def __init__(
        self,
        endpoint: Any,
        factory: Any,
        retryPolicy: Callable[[int], float] | None = None,
        clock: Any = None,
        prepareConnection: Callable[[Any], Any] | None = None,
    ) -> None:
        self._endpoint = endpoint
        self._factory = factory
        self._retry_policy = _default_policy if retryPolicy is None else retryPolicy
        self._clock = global_reactor(clock)
        self._prepare = prepareConnection
        self._state = _State.INIT
        self._failed_attempts = 0
        self._attempt: Deferred[Any] | None = None  # CONNECTING
        self._retry: Any = None  # WAITING: the DelayedCall
        self._protocol: _ProtocolProxy | None = None  # CONNECTED
        self._stop_waiters: list[Deferred[None]] = []
        self._connect_waiters: list[tuple[Deferred[Any], int | None]] = []

    # -- the service -----------------------------------------------------------------------

    def startService(self) -> None:
        """Start connecting (a second start while running is logged and ignored)."""
        if self.running:
            _log.warning("Duplicate ClientService.startService %r", self)
            return
        super().startService()
        state = self._state
        if state in (_State.INIT, _State.STOPPED):
            self._connect()
        elif state is _State.DISCONNECTING:
            self._state = _State.RESTARTING

    def stopService(self) -> Deferred[None]:
        """Stop: close the connection, cancel the attempt or the scheduled retry.

        Returns:
            A Deferred that fires once the connection is closed and no attempt is running.
            ``whenConnected`` Deferreds still waiting fail with ``CancelledError``.
        """
        super().stopService()
        state = self._state
        if state in (_State.INIT, _State.STOPPED):
            self._state = _State.STOPPED
            return succeed(None)
        if state in (_State.DISCONNECTING, _State.RESTARTING):
            self._state = _State.DISCONNECTING
            return self._wait_for_stop()
        waited = self._wait_for_stop()
        if state is _State.CONNECTING:
            self._state = _State.DISCONNECTING
            assert self._attempt is not None
            self._attempt.cancel()
        elif state is _State.CONNECTED:
            self._state = _State.DISCONNECTING
            assert self._protocol is not None
            self._protocol._transport.loseConnection()
        else:  # WAITING
            self._state = _State.STOPPED
            self._retry.cancel()
            self._retry = None
            self._cancel_connect_waiters()
            self._finish_stopping()
        return waited

    def whenConnected(self, failAfterFailures: int | None = None) -> Deferred[Any]:
        """Return a Deferred of the connected protocol: the current one, or the next.

        Args:
            failAfterFailures: Fail the Deferred with the connection error once this many
                consecutive attempts have failed (1: the first failure); None waits until
                a connection is made or the service stops.

        Returns:
            A Deferred firing with the factory's protocol (not the internal proxy), or
            failing with ``CancelledError`` when the service stops (at once if stopped),
            or with the attempt's error after ``failAfterFailures`` failures.
        """
        state = self._state
        if state is _State.CONNECTED:
            assert self._protocol is not None
            return succeed(self._protocol._protocol)
        if state is _State.STOPPED:
            return fail(CancelledError())
        waiter: Deferred[Any] = Deferred()
        self._connect_waiters.append((waiter, failAfterFailures))
        return waiter

    # -- entering states -------------------------------------------------------------------

    def _connect(self) -> None:
        """Enter CONNECTING: start an attempt."""
        self._state = _State.CONNECTING
        self._protocol = None
        attempt = self._attempt = self._endpoint.connect(
            _FactoryProxy(self._factory, self._client_disconnected)
        )
        attempt.addCallback(self._prepared).addCallback(self._connection_made).addErrback(
            self._connection_failed
        )

    def _prepared(self, protocol: _ProtocolProxy) -> Any:
        if self._prepare is None:
            return protocol
        return maybeDeferred(self._prepare, protocol).addCallback(lambda _: protocol)

    def _wait_to_retry(self) -> None:
        """Enter WAITING: schedule the next attempt."""
        self._state = _State.WAITING
        self._failed_attempts += 1
        delay = self._retry_policy(self._failed_attempts)
        _log.info(
            "Scheduling retry %d to connect %r in %s seconds.",
            self._failed_attempts,
            self._endpoint,
            delay,
        )
        self._retry = self._clock.callLater(delay, self._reconnect)

    # -- events ----------------------------------------------------------------------------

    def _connection_made(self, protocol: _ProtocolProxy) -> None:
        self._attempt = None
        if self._state is not _State.CONNECTING:
            return
        self._state = _State.CONNECTED
        self._protocol = protocol
        self._failed_attempts = 0
        self._fire_connect_waiters(protocol._protocol)

    def _connection_failed(self, failure: Failure) -> None:
        self._attempt = None
        state = self._state
        if state is _State.CONNECTING:
            self._fail_exhausted_waiters(failure)
            self._wait_to_retry()
        elif state is _State.CONNECTED:
            self._wait_to_retry()
        elif state is _State.DISCONNECTING:
            self._stopped()
        elif state is _State.RESTARTING:
            self._finish_stopping()
            self._connect()

    def _reconnect(self) -> None:
        self._retry = None
        if self._state is _State.WAITING:
            self._connect()

    def _client_disconnected(self, reason: Failure | None = None) -> None:
        state = self._state
        if state is _State.CONNECTED:
            self._protocol = None
            self._wait_to_retry()
        elif state is _State.DISCONNECTING:
            self._protocol = None
            self._stopped()
        elif state is _State.RESTARTING:
            self._protocol = None
            self._finish_stopping()
            self._connect()

    def _stopped(self) -> None:
        self._state = _State.STOPPED
        self._cancel_connect_waiters()
        self._finish_stopping()

    # -- waiters ---------------------------------------------------------------------------

    def _wait_for_stop(self) -> Deferred[None]:
        waiter: Deferred[None] = Deferred()
        self._stop_waiters.append(waiter)
        return waiter

    def _finish_stopping(self) -> None:
        waiters, self._stop_waiters = self._stop_waiters, []
        for waiter in waiters:
            waiter.callback(None)

    def _fire_connect_waiters(self, result: Any) -> None:
        waiters, self._connect_waiters = self._connect_waiters, []
        for waiter, _ in waiters:
            waiter.callback(result)

    def _cancel_connect_waiters(self) -> None:
        self._fire_connect_waiters(Failure(CancelledError()))

    def _fail_exhausted_waiters(self, failure: Failure) -> None:
        """Count one failure against each waiter with a limit; fail those that reach it."""
        keep: list[tuple[Deferred[Any], int | None]] = []
        exhausted: list[Deferred[Any]] = []
        for waiter, remaining in self._connect_waiters:
            if remaining is None:
                keep.append((waiter, None))
            elif remaining <= 1:
                exhausted.append(waiter)
            else:
                keep.append((waiter, remaining - 1))
        self._connect_waiters = keep
        for waiter in exhausted:
            waiter.callback(failure)
