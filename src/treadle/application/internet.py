"""Services that listen, connect or repeat a call while they run.

``twisted.application.internet`` ports to this module:

* :class:`TCPServer`, :class:`SSLServer`, :class:`UNIXServer` pass their arguments to the
  reactor's ``listenTCP``/``listenSSL``/``listenUNIX`` when the service starts (in
  ``privilegedStartService``, so a low port is bound before privileges are dropped) and
  stop listening when it stops: ``TCPServer(8080, site)``.
* :class:`TCPClient`, :class:`SSLClient`, :class:`UNIXClient` call ``connectTCP`` (and so
  on) when the service starts and disconnect when it stops.
* :class:`TimerService` calls a function every ``step`` seconds while it runs.
* :class:`StreamServerEndpointService` listens on an endpoint (what ``strports.service``
  makes); :class:`ClientService` keeps one connection to a client endpoint open,
  reconnecting with back-off (:func:`backoffPolicy`).

Every class takes a ``reactor`` keyword (or, for :class:`TimerService` and
:class:`ClientService`, a ``clock``) for tests; the global reactor otherwise.

Not provided: the UDP, multicast and UNIX datagram services (treadle has no datagram
transport) and ``CooperatorService``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from treadle.application import service
from treadle.application._client_service import ClientService, backoffPolicy, global_reactor
from treadle.internet import task
from treadle.internet.defer import CancelledError, Deferred
from treadle.python import log
from treadle.python.failure import Failure

__all__ = [
    "ClientService",
    "SSLClient",
    "SSLServer",
    "StreamServerEndpointService",
    "TCPClient",
    "TCPServer",
    "TimerService",
    "UNIXClient",
    "UNIXServer",
    "backoffPolicy",
]


class _VolatileDataService(service.Service):
    """A service whose attributes named in ``volatile`` are left out when it is pickled."""

    volatile: list[str] = []

    def __getstate__(self) -> dict[str, Any]:
        """Pickle the service without its volatile attributes."""
        state = super().__getstate__()
        for attribute in self.volatile:
            state.pop(attribute, None)
        return state


class _AbstractServer(_VolatileDataService):
    """Listens with ``reactor.listen<method>(*args, **kwargs)`` while it runs.

    Attributes:
        method: ``"TCP"``, ``"SSL"`` or ``"UNIX"``.
        reactor: The reactor to listen with (the global one when None).
        args, kwargs: The arguments of the listen call.
    """

    volatile = ["_port"]
    method = ""
    reactor: Any = None
    _port: Any = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args = args
        if "reactor" in kwargs:
            self.reactor = kwargs.pop("reactor")
        self.kwargs = kwargs

    def privilegedStartService(self) -> None:
        """Listen now: binding may need the privileges the process is about to drop.

        Raises:
            CannotListenError: The address is in use or cannot be bound.
        """
        super().privilegedStartService()
        self._port = self._getPort()

    def startService(self) -> None:
        """Mark the service running; listen if ``privilegedStartService`` did not."""
        super().startService()
        if self._port is None:
            self._port = self._getPort()

    def stopService(self) -> Any:
        """Stop listening (connections already accepted carry on).

        Returns:
            The port's ``stopListening()`` Deferred, or None when it was not listening.
        """
        super().stopService()
        port, self._port = self._port, None
        if port is None:
            return None
        return port.stopListening()

    def _getPort(self) -> Any:
        """Call the reactor's listen method; return the listening port."""
        listen = getattr(global_reactor(self.reactor), f"listen{self.method}")
        return listen(*self.args, **self.kwargs)


class _AbstractClient(_VolatileDataService):
    """Connects with ``reactor.connect<method>(*args, **kwargs)`` while it runs.

    Attributes:
        method: ``"TCP"``, ``"SSL"`` or ``"UNIX"``.
        reactor: The reactor to connect with (the global one when None).
        args, kwargs: The arguments of the connect call.
    """

    volatile = ["_connection"]
    method = ""
    reactor: Any = None
    _connection: Any = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args = args
        if "reactor" in kwargs:
            self.reactor = kwargs.pop("reactor")
        self.kwargs = kwargs

    def startService(self) -> None:
        """Mark the service running and start connecting."""
        super().startService()
        self._connection = self._getConnection()

    def stopService(self) -> None:
        """Disconnect (or stop the attempt to connect)."""
        super().stopService()
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.disconnect()

    def _getConnection(self) -> Any:
        """Call the reactor's connect method; return the connector."""
        connect = getattr(global_reactor(self.reactor), f"connect{self.method}")
        return connect(*self.args, **self.kwargs)


class TCPServer(_AbstractServer):
    """Serve TCP: ``TCPServer(port, factory, backlog=..., interface='')``, as ``listenTCP``."""

    method = "TCP"


class SSLServer(_AbstractServer):
    """Serve TLS: ``SSLServer(port, factory, contextFactory, ...)``, as ``listenSSL``."""

    method = "SSL"


class UNIXServer(_AbstractServer):
    """Serve a UNIX socket: ``UNIXServer(path, factory, ...)``, as ``listenUNIX``."""

    method = "UNIX"


class TCPClient(_AbstractClient):
    """Connect over TCP: ``TCPClient(host, port, factory, ...)``, as ``connectTCP``."""

    method = "TCP"


class SSLClient(_AbstractClient):
    """Connect over TLS: ``SSLClient(host, port, factory, contextFactory)``, as ``connectSSL``."""

    method = "SSL"


class UNIXClient(_AbstractClient):
    """Connect to a UNIX socket: ``UNIXClient(path, factory, ...)``, as ``connectUNIX``."""

    method = "UNIX"


class TimerService(_VolatileDataService):
    """Calls ``callable(*args, **kwargs)`` every ``step`` seconds while it runs.

    The first call happens when the service starts. A call that raises (or whose Deferred
    fails) is logged and ends the calls until the service is started again.

    Args:
        step: Seconds between calls.
        callable: What to call; it may return a Deferred, which is waited for.
        *args: Its positional arguments.
        **kwargs: Its keyword arguments.

    Attributes:
        clock: What schedules the calls: the global reactor when None (set a
            :class:`~treadle.internet.task.Clock` before starting, in tests).
        call: ``(callable, args, kwargs)``.
    """

    volatile = ["_loop", "_loopFinished"]

    def __init__(self, step: float, callable: Callable[..., Any], *args: Any, **kwargs: Any):
        self.step = step
        self.call = (callable, args, kwargs)
        self.clock: Any = None

    def startService(self) -> None:
        """Mark the service running and make the first call."""
        super().startService()
        function, args, kwargs = self.call
        # A new LoopingCall per start: a stopped one carries its old state.
        self._loop = task.LoopingCall(function, *args, **kwargs)
        self._loop.clock = global_reactor(self.clock)
        self._loopFinished = self._loop.start(self.step, now=True)
        self._loopFinished.addErrback(self._failed)

    def _failed(self, why: Failure) -> None:
        log.err(why)

    def stopService(self) -> Deferred[Any]:
        """Stop the calls.

        Returns:
            A Deferred that fires once a call in progress (one whose Deferred is pending)
            has finished; the service counts as running until then.
        """
        if self._loop.running:
            self._loop.stop()
        self._loopFinished.addCallback(lambda _: service.Service.stopService(self))
        return self._loopFinished


class StreamServerEndpointService(service.Service):
    """Listens on a server endpoint (``endpoint.listen(factory)``) while it runs.

    Args:
        endpoint: An ``IStreamServerEndpoint`` (see :mod:`treadle.internet.endpoints`).
        factory: The protocol factory to listen with.

    Attributes:
        _raiseSynchronously: When true, a listen that fails at once (a port in use) raises
            from ``privilegedStartService``/``startService`` instead of being logged;
            ``strports.service`` sets it, so ``treadle run`` reports the error and exits.
        _waitingForPort: The Deferred of the ``listen`` call, once made.
    """

    _raiseSynchronously = False

    def __init__(self, endpoint: Any, factory: Any) -> None:
        self.endpoint = endpoint
        self.factory = factory
        self._waitingForPort: Deferred[Any] | None = None

    def privilegedStartService(self) -> None:
        """Start listening on the endpoint.

        Raises:
            Exception: The listen failed at once and ``_raiseSynchronously`` is set.
        """
        super().privilegedStartService()
        self._waitingForPort = self.endpoint.listen(self.factory)
        failed_now: list[Failure] = []

        def handle(failure: Failure) -> None:
            if self._raiseSynchronously:
                failed_now.append(failure)
            elif not failure.check(CancelledError):
                log.err(failure)

        self._waitingForPort.addErrback(handle)
        if failed_now:
            failed_now[0].raiseException()
        self._raiseSynchronously = False

    def startService(self) -> None:
        """Mark the service running; listen if ``privilegedStartService`` did not."""
        super().startService()
        if self._waitingForPort is None:
            self.privilegedStartService()

    def stopService(self) -> Deferred[Any]:
        """Stop listening, or cancel a listen still in progress.

        Returns:
            A Deferred that fires with None once the port has stopped listening.
        """
        waiting = self._waitingForPort
        if waiting is None:  # never started: nothing to stop
            waiting = self._waitingForPort = Deferred()
            waiting.callback(None)
        waiting.cancel()

        def stop_listening(port: Any) -> Any:
            if port is not None:
                return port.stopListening()
            return None

        def stopped(result: Any) -> Any:
            self.running = False
            return result

        return waiting.addCallback(stop_listening).addBoth(stopped)
