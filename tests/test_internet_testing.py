"""treadle.internet.testing (and treadle.test.proto_helpers): the Twisted-style test doubles.

The doubles are compared with Twisted's where they record the same things, and checked
against the interfaces they declare.
"""

from __future__ import annotations

import socket
import unittest
from typing import Any

import pytest
import twisted.internet.testing as tw_testing
from zope.interface import implementedBy
from zope.interface.verify import verifyClass, verifyObject

from treadle.internet import interfaces, testing
from treadle.internet.address import IPv4Address, IPv6Address, UNIXAddress
from treadle.internet.defer import Deferred
from treadle.internet.error import ConnectionDone, UnsupportedAddressFamily
from treadle.internet.protocol import ClientFactory, Factory, Protocol
from treadle.internet.task import Clock
from treadle.logger import (
    ILogObserver,
    Logger,
    LogLevel,
    LogPublisher,
    formatEvent,
    globalLogPublisher,
)
from treadle.python.failure import Failure
from treadle.test import proto_helpers

# -- StringTransport --------------------------------------------------------------------------


def test_value_clear_write_and_write_sequence() -> None:
    t = testing.StringTransport()
    t.write(b"abc")
    t.writeSequence([b"d", b"ef"])
    t.writeSequence(iter([b"g"]))
    assert t.value() == b"abcdefg"
    t.clear()
    assert t.value() == b""
    t.write(b"x")
    assert t.value() == b"x"


@pytest.mark.parametrize("bad", ["text", bytearray(b"b"), memoryview(b"m"), 3])
def test_write_accepts_only_bytes_like_twisted(bad: Any) -> None:
    for transport in (tw_testing.StringTransport(), testing.StringTransport()):
        with pytest.raises(TypeError):
            transport.write(bad)
        assert transport.value() == b""


def test_write_sequence_of_str_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        testing.StringTransport().writeSequence(["text"])  # type: ignore[list-item]


def test_lose_and_abort_connection() -> None:
    t = testing.StringTransport()
    assert not t.disconnecting and t.connected
    t.loseConnection()
    assert t.disconnecting and not t.disconnected
    t.write(b"after")  # as in Twisted, still recorded
    assert t.value() == b"after"
    a = testing.StringTransport()
    a.abortConnection()
    assert a.disconnecting and a.disconnected


def test_default_addresses_match_twisted() -> None:
    ours, theirs = testing.StringTransport(), tw_testing.StringTransport()
    for method in ("getPeer", "getHost"):
        mine, twisteds = getattr(ours, method)(), getattr(theirs, method)()
        assert (mine.type, mine.host, mine.port) == (twisteds.type, twisteds.host, twisteds.port)
    assert ours.getPeer() == IPv4Address("TCP", "192.168.1.1", 54321)
    assert ours.getHost() == IPv4Address("TCP", "10.0.0.1", 12345)
    given = testing.StringTransport(
        hostAddress=UNIXAddress("/s"), peerAddress=IPv6Address("TCP", "::1", 1)
    )
    assert given.getHost() == UNIXAddress("/s")
    assert given.getPeer() == IPv6Address("TCP", "::1", 1)


def test_producer_registration() -> None:
    t = testing.StringTransport()
    producer = object()
    t.registerProducer(producer, True)
    assert t.producer is producer and t.streaming is True
    with pytest.raises(RuntimeError):
        t.registerProducer(object(), False)
    t.unregisterProducer()
    assert t.producer is None and t.streaming is None
    with pytest.raises(RuntimeError):
        t.unregisterProducer()


def producer_states(transport: Any) -> list[str]:
    states = []
    for op in ("pauseProducing", "resumeProducing", "stopProducing", "resumeProducing"):
        try:
            getattr(transport, op)()
            states.append(transport.producerState)
        except RuntimeError:
            states.append("RuntimeError")
    return states


def test_producer_state_matches_twisted() -> None:
    ours = producer_states(testing.StringTransport())
    assert ours == producer_states(tw_testing.StringTransport())
    assert ours == ["paused", "producing", "stopped", "RuntimeError"]


@pytest.mark.parametrize("lenient", [False, True])
def test_pausing_after_lose_connection(lenient: bool) -> None:
    outcomes = []
    for module in (tw_testing, testing):
        t = module.StringTransport(lenient=lenient)
        t.loseConnection()
        try:
            t.pauseProducing()
            outcomes.append(t.producerState)
        except RuntimeError:
            outcomes.append("RuntimeError")
    assert outcomes[0] == outcomes[1] == ("paused" if lenient else "RuntimeError")


def test_string_transport_provides_its_interfaces() -> None:
    t = testing.StringTransport()
    for iface in (interfaces.ITransport, interfaces.IConsumer, interfaces.IPushProducer):
        assert verifyObject(iface, t)


def test_string_transport_with_disconnection_tells_the_protocol_once() -> None:
    p = testing.AccumulatingProtocol()
    t = testing.StringTransportWithDisconnection()
    t.protocol = p
    p.makeConnection(t)
    t.loseConnection()
    t.loseConnection()
    assert p.closed == 1 and not t.connected
    assert p.closedReason is not None and p.closedReason.check(ConnectionDone)
    assert t.disconnecting is False  # as Twisted's


def test_string_io_without_closing() -> None:
    f = testing.StringIOWithoutClosing()
    f.write(b"kept")
    f.close()
    assert f.getvalue() == b"kept"


# -- AccumulatingProtocol ---------------------------------------------------------------------


def test_accumulating_protocol_fires_its_deferreds() -> None:
    factory = Factory.forProtocol(testing.AccumulatingProtocol)
    made: Deferred[Any] = Deferred()
    factory.protocolConnectionMade = made  # type: ignore[attr-defined]
    p = factory.buildProtocol(None)
    connected: list[Any] = []
    made.addCallback(connected.append)
    closed: Deferred[None] = Deferred()
    lost: list[Any] = []
    closed.addCallback(lost.append)
    p.closedDeferred = closed
    p.makeConnection(testing.StringTransport())
    assert connected == [p] and factory.protocolConnectionMade is None  # type: ignore[attr-defined]
    p.dataReceived(b"ab")
    p.dataReceived(b"c")
    assert p.data == b"abc" and p.made == 1
    reason = Failure(ConnectionDone())
    p.connectionLost(reason)
    assert lost == [None] and p.closedReason is reason and p.closedDeferred is None


def test_accumulating_protocol_without_factory_deferred() -> None:
    p = Factory.forProtocol(testing.AccumulatingProtocol).buildProtocol(None)
    p.makeConnection(testing.StringTransport())
    assert p.made == 1


# -- MemoryReactor ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "cls", [testing.MemoryReactor, testing.MemoryReactorClock, testing.RaisingMemoryReactor]
)
def test_reactors_provide_their_interfaces(cls: type) -> None:
    declared = list(implementedBy(cls))
    assert declared
    instance = cls()
    for iface in declared:
        assert verifyClass(iface, cls)
        assert verifyObject(iface, instance)


def test_memory_reactor_records_listen_calls() -> None:
    r = testing.MemoryReactor()
    factory = Factory.forProtocol(Protocol)
    port = r.listenTCP(8080, factory, backlog=7, interface="127.0.0.1")
    assert r.tcpServers == [(8080, factory, 7, "127.0.0.1")]
    assert port.getHost() == IPv4Address("TCP", "0.0.0.0", 8080)  # as Twisted's
    assert r.listenTCP(0, factory, interface="::1").getHost() == IPv6Address("TCP", "::1", 0)
    assert r.listenSSL(443, factory, "ctx").getHost() == IPv4Address("TCP", "0.0.0.0", 443)
    assert r.sslServers == [(443, factory, "ctx", 50, "")]
    assert r.listenUNIX("/tmp/s", factory).getHost() == UNIXAddress("/tmp/s")
    assert r.unixServers == [("/tmp/s", factory, 50, 0o666, 0)]
    assert verifyObject(interfaces.IListeningPort, port)


def test_memory_reactor_records_connect_calls() -> None:
    r = testing.MemoryReactor()
    started: list[Any] = []

    class Client(ClientFactory):
        def startedConnecting(self, connector: Any) -> None:
            started.append(connector)

    factory = Client()
    c1 = r.connectTCP("example.com", 80, factory, timeout=5)
    c2 = r.connectTCP("::1", 81, factory)
    c3 = r.connectSSL("example.com", 443, factory, "ctx")
    c4 = r.connectUNIX("/tmp/s", factory)
    assert r.tcpClients == [("example.com", 80, factory, 5, None), ("::1", 81, factory, 30, None)]
    assert r.sslClients == [("example.com", 443, factory, "ctx", 30, None)]
    assert r.unixClients == [("/tmp/s", factory, 30, 0)]
    assert started == r.connectors == [c1, c2, c3, c4]
    assert c1.getDestination() == IPv4Address("TCP", "example.com", 80)
    assert c2.getDestination() == IPv6Address("TCP", "::1", 81)
    c1.stopConnecting()
    assert c1.stoppedConnecting
    assert verifyObject(interfaces.IConnector, c1)


def test_memory_reactor_run_stop_and_hooks() -> None:
    r = testing.MemoryReactor()
    calls: list[Any] = []
    r.callWhenRunning(calls.append, 1)
    r.addSystemEventTrigger("before", "shutdown", calls.append, 2)
    assert calls == []
    r.run()
    assert calls == [1]
    assert r.hasRun and r.hasStopped and r.running is False
    r.callWhenRunning(calls.append, 3)  # after run: at once
    assert calls == [1, 3]
    assert r.triggers == {"before": {"shutdown": [(calls.append, (2,), {})]}}
    r.crash()
    assert r.running is None and r.hasCrashed
    for unsupported in (
        lambda: r.resolve("x"),
        lambda: r.iterate(),
        lambda: r.fireSystemEvent("x"),
    ):
        with pytest.raises(NotImplementedError):
            unsupported()


def test_memory_reactor_adopt_and_fd_sets() -> None:
    r = testing.MemoryReactor()
    factory = Factory.forProtocol(Protocol)
    port = r.adoptStreamPort(5, socket.AF_INET6, factory)
    assert port.getHost() == IPv6Address("TCP", "::", 1234)
    assert r.adoptedPorts == [(5, socket.AF_INET6, factory)]
    with pytest.raises(UnsupportedAddressFamily):
        r.adoptStreamPort(5, socket.AF_UNIX, factory)
    r.adoptStreamConnection(6, socket.AF_INET, factory)
    assert r.adoptedStreamConnections == [(6, socket.AF_INET, factory)]
    r.addReader("r")
    r.addWriter("w")
    assert r.getReaders() == ["r"] and r.getWriters() == ["w"]
    assert sorted(r.removeAll()) == ["r", "w"]
    assert r.getReaders() == [] and r.getWriters() == []


def test_memory_reactor_resolves_everything_to_localhost() -> None:
    r = testing.MemoryReactor()
    seen: list[Any] = []

    class Receiver:
        def resolutionBegan(self, resolution: Any) -> None:
            seen.append(("began", resolution.name))

        def addressResolved(self, address: Any) -> None:
            seen.append(("address", address))

        def resolutionComplete(self) -> None:
            seen.append("complete")

    r.nameResolver.resolveHostName(Receiver(), "example.com", 80)
    assert seen == [
        ("began", "example.com"),
        ("address", IPv4Address("TCP", "127.0.0.1", 80)),
        "complete",
    ]
    previous = r.installNameResolver("mine")
    assert isinstance(previous, testing.SynchronousResolver) and r.nameResolver == "mine"


def test_memory_reactor_clock_is_both() -> None:
    r = testing.MemoryReactorClock()
    fired: list[float] = []
    r.callLater(2, lambda: fired.append(r.seconds()))
    r.listenTCP(1, Factory.forProtocol(Protocol))
    r.advance(2)
    assert fired == [2.0] and len(r.tcpServers) == 1
    assert isinstance(r, Clock)


def test_raising_memory_reactor() -> None:
    listen_error, connect_error = OSError("no listen"), OSError("no connect")
    r = testing.RaisingMemoryReactor(listen_error, connect_error)
    factory = ClientFactory()
    for call, expected in (
        (lambda: r.listenTCP(1, factory), listen_error),
        (lambda: r.listenSSL(1, factory, None), listen_error),
        (lambda: r.listenUNIX("/x", factory), listen_error),
        (lambda: r.adoptStreamPort(1, socket.AF_INET, factory), listen_error),
        (lambda: r.connectTCP("h", 1, factory), connect_error),
        (lambda: r.connectSSL("h", 1, factory, None), connect_error),
        (lambda: r.connectUNIX("/x", factory), connect_error),
        (lambda: r.adoptStreamConnection(1, socket.AF_INET, factory), connect_error),
    ):
        with pytest.raises(OSError) as caught:
            call()
        assert caught.value is expected
    with pytest.raises(RuntimeError):
        testing.RaisingMemoryReactor().listenTCP(1, factory)


# -- producers and helpers --------------------------------------------------------------------


def test_non_streaming_producer_writes_ten_numbers() -> None:
    t = testing.StringTransport()
    producer = testing.NonStreamingProducer(t)
    done: list[Any] = []
    producer.result.addCallback(done.append)
    t.registerProducer(producer, False)
    while t.producer is not None:
        producer.resumeProducing()
    assert t.value() == b"0123456789" and done == [None]
    with pytest.raises(RuntimeError):
        producer.resumeProducing()
    with pytest.raises(RuntimeError):
        producer.pauseProducing()


def test_wait_until_all_disconnected() -> None:
    clock = Clock()
    protocols = [testing.AccumulatingProtocol() for _ in range(2)]
    for p in protocols:
        p.makeConnection(testing.StringTransport())
    done: list[Any] = []
    testing.waitUntilAllDisconnected(clock, protocols).addCallback(done.append)
    clock.advance(0.01)
    assert not done
    protocols[0].transport.connected = False
    clock.advance(0.01)
    assert not done
    protocols[1].transport.connected = False
    clock.advance(0.01)
    assert len(done) == 1


def test_fake_datagram_transport_records() -> None:
    t = testing.FakeDatagramTransport()
    t.write(b"p", ("h", 1))
    t.write(b"q")
    assert t.written == [(b"p", ("h", 1)), (b"q", t.noAddr)]


# -- EventLoggingObserver ---------------------------------------------------------------------


def test_event_logging_observer_is_a_sequence_of_the_events() -> None:
    observer = testing.EventLoggingObserver()
    verifyObject(ILogObserver, observer)
    publisher = LogPublisher(observer)
    Logger(namespace="seq", observer=publisher).info("one {n}", n=1)
    Logger(namespace="seq", observer=publisher).warn("two")
    assert len(observer) == 2
    assert [formatEvent(e) for e in observer] == ["one 1", "two"]
    assert observer[-1]["log_level"] is LogLevel.warn
    assert list(observer[:1]) == [observer[0]]
    with pytest.raises(IndexError):
        observer[2]


class _Case(unittest.TestCase):
    def runTest(self) -> None:
        """Only here to be instantiated."""


def test_create_with_cleanup_observes_until_the_test_cleans_up() -> None:
    publisher = LogPublisher()
    case = _Case()
    observer = testing.EventLoggingObserver.createWithCleanup(case, publisher)
    publisher({"log_format": "seen"})
    case.doCleanups()
    publisher({"log_format": "after"})
    assert [e["log_format"] for e in observer] == ["seen"]


def test_create_with_cleanup_on_the_global_publisher_sees_a_failure_once() -> None:
    case = _Case()
    observer = testing.EventLoggingObserver.createWithCleanup(case, globalLogPublisher)
    try:
        failure = Failure(ZeroDivisionError("x"))
        Logger(namespace="cleanup.test").failure("it broke", failure)
    finally:
        case.doCleanups()
    Logger(namespace="cleanup.test").info("after the test")
    [event] = [e for e in observer if e.get("log_namespace") == "cleanup.test"]
    assert event["log_failure"] is failure


def test_proto_helpers_reexports_testing() -> None:
    for name in proto_helpers.__all__:
        assert getattr(proto_helpers, name) is getattr(testing, name)
    # Everything Twisted's proto_helpers offers is there, but the documented omission.
    import twisted.test.proto_helpers as tw_proto_helpers

    missing = set(tw_proto_helpers.__all__) - set(proto_helpers.__all__)
    assert missing == {"LineSendingProtocol"}
    assert testing.Clock is Clock


def test_a_protocol_tested_as_twisted_programs_do() -> None:
    # The usual pattern: a factory from the reactor's record, a StringTransport, bytes in.
    class Greeter(Protocol):
        def connectionMade(self) -> None:
            self.transport.write(b"hello " + self.transport.getPeer().host.encode())

        def dataReceived(self, data: bytes) -> None:
            if data == b"bye":
                self.transport.loseConnection()

    reactor = testing.MemoryReactor()
    reactor.listenTCP(7000, Factory.forProtocol(Greeter))
    _, factory, _, _ = reactor.tcpServers[0]
    transport = testing.StringTransport()
    p = factory.buildProtocol(transport.getPeer())
    p.makeConnection(transport)
    assert transport.value() == b"hello 192.168.1.1"
    p.dataReceived(b"bye")
    assert transport.disconnecting
