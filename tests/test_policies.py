"""treadle.protocols.policies: TimeoutMixin, wrapping factories, connection limits.

TimeoutMixin runs the same scripts as Twisted's on each framework's Clock; the wrappers are
checked on a StringTransport and over real sockets.
"""

from __future__ import annotations

import socket
import time
from typing import Any

import pytest
import twisted.internet.task as tw_task
import twisted.internet.testing as tw_testing
import twisted.protocols.policies as tw_policies

from tests.conftest import DEADLINE, ServerThread
from treadle.internet import reactor
from treadle.internet.address import IPv4Address
from treadle.internet.error import ConnectionDone
from treadle.internet.interfaces import IPushProducer, ITransport
from treadle.internet.protocol import Factory, Protocol, ServerFactory
from treadle.internet.task import Clock
from treadle.internet.testing import AccumulatingProtocol, StringTransport
from treadle.protocols import basic, policies
from treadle.python.failure import Failure

FRAMEWORKS = (
    (tw_policies, tw_testing.StringTransport, tw_task.Clock),
    (policies, StringTransport, Clock),
)


def timeout_protocol(mod: Any, clock: Any) -> Any:
    class Timed(mod.TimeoutMixin):
        timed_out_at: float | None = None

        def __init__(self) -> None:
            self.callLater = clock.callLater

        def timeoutConnection(self) -> None:
            self.timed_out_at = clock.seconds()
            super().timeoutConnection()

    return Timed()


Script = list[tuple[str, Any]]


def play(script: Script) -> list[Any]:
    """Run ``script`` on Twisted's TimeoutMixin and treadle's; both must log the same."""
    logs = []
    for mod, transport_class, clock_class in FRAMEWORKS:
        clock = clock_class()
        p = timeout_protocol(mod, clock)
        p.transport = transport_class()
        log: list[Any] = []
        for op, arg in script:
            if op == "set":
                log.append(("set", p.setTimeout(arg)))
            elif op == "reset":
                p.resetTimeout()
            elif op == "advance":
                clock.advance(arg)
            log.append((op, clock.seconds(), p.timed_out_at, p.transport.disconnecting))
        log.append(("pending", len(clock.getDelayedCalls())))
        logs.append(log)
    assert logs[1] == logs[0]
    return logs[1]


def test_timeout_fires_after_the_period_and_loses_the_connection() -> None:
    log = play([("set", 10), ("advance", 9.9), ("advance", 0.1)])
    assert log[-2] == ("advance", 10.0, 10.0, True)
    assert log[-1] == ("pending", 0)


def test_set_timeout_returns_the_previous_period() -> None:
    log = play([("set", 10), ("set", 5), ("set", None), ("set", 3)])
    assert [entry[1] for entry in log if entry[0] == "set" and len(entry) == 2] == [
        None,
        10,
        5,
        None,
    ]


def test_reset_postpones() -> None:
    log = play([("set", 10), ("advance", 8), ("reset", None), ("advance", 8), ("advance", 2)])
    assert log[-3][2] is None  # not at 16
    assert log[-2] == ("advance", 18.0, 18.0, True)


def test_new_period_restarts_from_now() -> None:
    log = play([("set", 10), ("advance", 5), ("set", 2), ("advance", 1.9), ("advance", 0.1)])
    assert log[-2] == ("advance", 7.0, 7.0, True)


def test_none_cancels_and_reset_then_does_nothing() -> None:
    log = play([("set", 10), ("set", None), ("reset", None), ("advance", 100)])
    assert log[-2] == ("advance", 100.0, None, False)
    assert log[-1] == ("pending", 0)


def test_setting_after_it_fired_starts_a_new_one() -> None:
    log = play([("set", 1), ("advance", 1), ("set", None), ("set", 4), ("advance", 4)])
    assert log[-1] == ("pending", 0)


def test_timeout_uses_lose_connection_not_abort() -> None:
    clock = Clock()
    p = timeout_protocol(policies, clock)
    p.transport = StringTransport()
    p.setTimeout(1)
    clock.advance(1)
    assert p.transport.disconnecting and not p.transport.disconnected


def test_timeout_mixin_over_a_real_socket(server: ServerThread) -> None:
    class Idle(basic.LineReceiver, policies.TimeoutMixin):
        def connectionMade(self) -> None:
            self.setTimeout(0.2)

        def lineReceived(self, line: bytes) -> None:
            self.resetTimeout()
            self.sendLine(line)

        def connectionLost(self, reason: Failure = ConnectionDone) -> None:  # type: ignore[assignment]
            self.setTimeout(None)

    port = server.call(
        lambda: reactor.listenTCP(0, Factory.forProtocol(Idle), interface="127.0.0.1")
    )
    server.ports.append(port)
    with socket.create_connection(("127.0.0.1", port.getHost().port), timeout=DEADLINE) as sock:
        started = time.monotonic()
        sock.sendall(b"ping\r\n")
        assert sock.recv(100) == b"ping\r\n"
        assert sock.recv(100) == b""  # closed by the server once idle
        assert time.monotonic() - started >= 0.2


# -- wrappers ---------------------------------------------------------------------------------


class Echo(Protocol):
    def dataReceived(self, data: bytes) -> None:
        self.transport.write(data)


def connect(factory: Any, transport: StringTransport | None = None) -> tuple[Any, StringTransport]:
    transport = transport or StringTransport()
    p = factory.buildProtocol(transport.getPeer())
    p.makeConnection(transport)
    return p, transport


def test_wrapper_is_the_wrapped_protocols_transport() -> None:
    wrapped_factory = Factory.forProtocol(Echo)
    factory = policies.WrappingFactory(wrapped_factory)
    wrapper, transport = connect(factory)
    assert isinstance(wrapper, policies.ProtocolWrapper)
    assert wrapper.wrappedProtocol.transport is wrapper
    assert wrapper.wrappedProtocol.factory is wrapped_factory
    wrapper.dataReceived(b"hello")
    assert transport.value() == b"hello"
    # The wrapper provides what the real transport provides, and forwards the rest.
    assert ITransport.providedBy(wrapper) and IPushProducer.providedBy(wrapper)
    assert wrapper.getPeer() == IPv4Address("TCP", "192.168.1.1", 54321)
    wrapper.abortConnection()
    assert transport.disconnected
    with pytest.raises(AttributeError):
        wrapper.no_such_attribute  # noqa: B018


def test_wrapping_factory_tracks_connections_and_passes_start_stop() -> None:
    events: list[str] = []

    class Wrapped(Factory):
        protocol = Echo

        def startFactory(self) -> None:
            events.append("start")

        def stopFactory(self) -> None:
            events.append("stop")

    factory = policies.WrappingFactory(Wrapped())
    factory.doStart()
    first, _ = connect(factory)
    second, _ = connect(factory)
    assert set(factory.protocols) == {first, second}
    first.loseConnection()
    assert first.disconnecting
    first.connectionLost(Failure(ConnectionDone()))
    assert set(factory.protocols) == {second}
    assert first.wrappedProtocol is None
    factory.doStop()
    assert events == ["start", "stop"]
    assert factory.logPrefix() == "Wrapped (WrappingFactory)"


def test_wrapping_factory_refuses_what_the_wrapped_factory_refuses() -> None:
    class Refusing(Factory):
        def buildProtocol(self, addr: Any) -> None:
            return None

    assert policies.WrappingFactory(Refusing()).buildProtocol(None) is None
    assert policies.TimeoutFactory(Refusing()).buildProtocol(None) is None


def test_wrapping_factory_over_a_real_socket(server: ServerThread) -> None:
    class PeerTeller(Protocol):
        def connectionMade(self) -> None:
            peer = self.transport.getPeer()
            self.transport.write(f"{peer.host}\n".encode())

        def dataReceived(self, data: bytes) -> None:
            self.transport.write(data)
            if data.endswith(b"bye"):
                self.transport.loseConnection()

    factory = policies.WrappingFactory(Factory.forProtocol(PeerTeller))
    port = server.call(lambda: reactor.listenTCP(0, factory, interface="127.0.0.1"))
    server.ports.append(port)
    with socket.create_connection(("127.0.0.1", port.getHost().port), timeout=DEADLINE) as sock:
        sock.sendall(b"bye")
        got = b""
        while chunk := sock.recv(100):
            got += chunk
    assert got == b"127.0.0.1\nbye"
    assert server.call(lambda: len(factory.protocols)) == 0


def test_timeout_factory_closes_idle_connections() -> None:
    clock = Clock()
    factory = policies.TimeoutFactory(Factory.forProtocol(Echo), timeoutPeriod=5)
    factory.callLater = clock.callLater  # type: ignore[method-assign]
    wrapper, transport = connect(factory)
    clock.advance(4)
    wrapper.dataReceived(b"x")  # activity: the period starts over
    clock.advance(4)
    assert not transport.disconnecting
    clock.advance(1)
    assert transport.disconnecting
    wrapper.connectionLost(Failure(ConnectionDone()))
    assert clock.getDelayedCalls() == []


def test_timeout_factory_matches_twisted() -> None:
    outcomes = []
    for mod, transport_class, clock_class in FRAMEWORKS:
        clock = clock_class()
        factory = mod.TimeoutFactory(_echo_factory(mod), 3)
        factory.callLater = clock.callLater
        wrapper = factory.buildProtocol(None)
        transport = transport_class()
        wrapper.makeConnection(transport)
        seen = []
        for step in (1, "data", 2.5, "write", 2.9, 0.1, 5):
            if step == "data":
                wrapper.dataReceived(b"d")
            elif step == "write":
                wrapper.write(b"w")
            else:
                clock.advance(step)
            seen.append((clock.seconds(), transport.disconnecting, transport.value()))
        outcomes.append(seen)
    assert outcomes[1] == outcomes[0]


def test_activity_after_the_timeout_fired_is_ignored() -> None:
    # Difference: Twisted's TimeoutProtocol raises AlreadyCalled here.
    clock = Clock()
    factory = policies.TimeoutFactory(Factory.forProtocol(Echo), timeoutPeriod=1)
    factory.callLater = clock.callLater  # type: ignore[method-assign]
    wrapper, transport = connect(factory)
    clock.advance(1)
    assert transport.disconnecting
    wrapper.dataReceived(b"late")
    assert transport.value() == b"late"
    assert clock.getDelayedCalls() == []


def _echo_factory(mod: Any) -> Any:
    from twisted.internet import protocol as tw_protocol

    if mod is tw_policies:

        class TwEcho(tw_protocol.Protocol):
            def dataReceived(self, data: bytes) -> None:
                self.transport.write(data)

        return tw_protocol.Factory.forProtocol(TwEcho)
    return Factory.forProtocol(Echo)


# -- connection limits ------------------------------------------------------------------------


def test_limit_total_connections() -> None:
    class Busy(Protocol):
        def connectionMade(self) -> None:
            self.transport.write(b"busy")
            self.transport.loseConnection()

    factory = policies.LimitTotalConnectionsFactory()
    factory.protocol = AccumulatingProtocol
    factory.connectionLimit = 2
    a, _ = connect(factory)
    connect(factory)
    assert factory.buildProtocol(None) is None  # no overflow protocol: refused
    assert factory.connectionCount == 2
    factory.overflowProtocol = Busy
    c, c_transport = connect(factory)
    assert c_transport.value() == b"busy" and c_transport.disconnecting
    assert factory.connectionCount == 3
    for p in (a, c):
        p.connectionLost(Failure(ConnectionDone()))
    assert factory.connectionCount == 1
    assert a.wrappedProtocol is None
    d, _ = connect(factory)
    assert isinstance(d.wrappedProtocol, AccumulatingProtocol)
    assert d.wrappedProtocol.factory is factory and d.wrappedProtocol.made


def test_limit_connections_by_peer() -> None:
    factory = policies.LimitConnectionsByPeer(Factory.forProtocol(Echo))
    factory.maxConnectionsPerPeer = 2
    factory.doStart()

    def from_host(host: str) -> Any:
        return connect(factory, StringTransport(peerAddress=IPv4Address("TCP", host, 1000)))[0]

    first = from_host("10.1.1.1")
    from_host("10.1.1.1")
    assert factory.buildProtocol(IPv4Address("TCP", "10.1.1.1", 1002)) is None
    assert from_host("10.2.2.2") is not None
    first.connectionLost(Failure(ConnectionDone()))
    assert factory.peerConnections == {"10.1.1.1": 1, "10.2.2.2": 1}
    assert from_host("10.1.1.1") is not None


def test_policies_names() -> None:
    # Programs import these from twisted.protocols.policies.
    for name in ("TimeoutMixin", "WrappingFactory", "ProtocolWrapper", "TimeoutFactory"):
        assert hasattr(policies, name) and hasattr(tw_policies, name)
    assert issubclass(policies.LimitTotalConnectionsFactory, ServerFactory)
