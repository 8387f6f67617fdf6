"""Twisted's transports over real sockets: protocols served by listenTCP, clients by connectTCP."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import ssl
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import trustme
from zope.interface import implementer

from tests.conftest import DEADLINE, LOOP_KINDS
from treadle.internet import reactor
from treadle.internet._reactor import new_event_loop
from treadle.internet.address import IPv4Address, UNIXAddress
from treadle.internet.error import (
    ConnectionAborted,
    ConnectionDone,
    ConnectionRefusedError,
    TimeoutError,
    UserError,
)
from treadle.internet.interfaces import IHalfCloseableProtocol, ISSLTransport, ITCPTransport
from treadle.internet.protocol import (
    ClientCreator,
    ClientFactory,
    Factory,
    Protocol,
    ReconnectingClientFactory,
)
from treadle.python.failure import Failure


@pytest.fixture(params=LOOP_KINDS)
def run(request: pytest.FixtureRequest) -> Callable[[Callable[[], Awaitable[Any]]], Any]:
    """Run a coroutine function on a fresh loop of each kind."""

    def runner(main: Callable[[], Awaitable[Any]]) -> Any:
        factory = asyncio.new_event_loop if request.param == "asyncio" else new_event_loop

        async def bounded() -> Any:
            return await asyncio.wait_for(main(), DEADLINE)

        with asyncio.Runner(loop_factory=factory) as runner:
            return runner.run(bounded())

    return runner


class Recorder(Protocol):
    """Records what happens to it; answers nothing unless told."""

    def __init__(self) -> None:
        self.received = b""
        self.made = asyncio.Event()
        self.lost = asyncio.Event()
        self.reason: Failure | None = None

    def connectionMade(self) -> None:
        self.made.set()

    def dataReceived(self, data: bytes) -> None:
        self.received += data

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        self.reason = reason
        self.lost.set()


class Served(Factory):
    """Keeps every protocol it built, and the addresses it was asked for."""

    def __init__(self, protocol: Callable[[], Protocol]) -> None:
        self.protocol = protocol
        self.built: list[Any] = []
        self.addresses: list[Any] = []
        self.one = asyncio.Event()

    def buildProtocol(self, addr: Any) -> Any:
        self.addresses.append(addr)
        p = super().buildProtocol(addr)
        self.built.append(p)
        self.one.set()
        return p


async def _client(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", port)


def test_build_protocol_gets_the_peer_address_and_the_transport_is_twisted_s(run: Any) -> None:
    async def main() -> None:
        factory = Served(Recorder)
        port = reactor.listenTCP(0, factory, interface="127.0.0.1")
        reader, writer = await _client(port.getHost().port)
        await factory.one.wait()
        proto = factory.built[0]
        await proto.made.wait()
        local = writer.get_extra_info("sockname")
        assert factory.addresses == [IPv4Address("TCP", "127.0.0.1", local[1])]
        assert proto.transport.getPeer() == IPv4Address("TCP", "127.0.0.1", local[1])
        assert proto.transport.getHost() == port.getHost()
        assert ITCPTransport.providedBy(proto.transport)
        assert proto.factory is factory
        writer.write(b"hello")
        await writer.drain()
        while proto.received != b"hello":
            await asyncio.sleep(0.001)
        proto.transport.write(b"answer")
        proto.transport.writeSequence([b" one", b" two"])
        assert await reader.readexactly(14) == b"answer one two"
        with pytest.raises(TypeError):
            proto.transport.write("text")
        writer.close()
        await proto.lost.wait()
        assert proto.reason is not None and proto.reason.check(ConnectionDone)
        await port.stopListening()

    run(main)


def test_an_exception_in_build_protocol_closes_the_connection_and_is_logged(
    run: Any, caplog: pytest.LogCaptureFixture
) -> None:
    class Broken(Factory):
        def buildProtocol(self, addr: Any) -> Any:
            raise RuntimeError("no protocol today")

    class Refusing(Factory):
        def buildProtocol(self, addr: Any) -> Any:
            return None

    async def main() -> None:
        for factory in (Broken(), Refusing()):
            port = reactor.listenTCP(0, factory, interface="127.0.0.1")
            reader, writer = await _client(port.getHost().port)
            assert await reader.read() == b""  # closed, not left hanging
            writer.close()
            await port.stopListening()

    with caplog.at_level(logging.ERROR, logger="treadle.error"):
        run(main)
    assert "no protocol today" in caplog.text


def test_lose_connection_sends_everything_first_and_abort_does_not(run: Any) -> None:
    big = os.urandom(2_000_000)

    class Sender(Recorder):
        def connectionMade(self) -> None:
            super().connectionMade()
            self.transport.write(big)
            if self.factory.abort:
                self.transport.abortConnection()
            else:
                self.transport.loseConnection()
            self.transport.write(b"!")  # after loseConnection: still sent, as in Twisted

    async def main() -> None:
        for abort in (False, True):
            factory = Served(Sender)
            factory.abort = abort  # type: ignore[attr-defined]
            port = reactor.listenTCP(0, factory, interface="127.0.0.1")
            reader, writer = await _client(port.getHost().port)
            await factory.one.wait()
            await asyncio.sleep(0.05)  # let the server's buffer fill before reading
            try:
                got = await reader.read()
            except ConnectionResetError:
                got = b""
            proto = factory.built[0]
            await proto.lost.wait()
            if abort:
                assert len(got) < len(big) + 1
                assert proto.reason.check(ConnectionAborted)
            else:
                assert got == big + b"!"
                assert proto.reason.check(ConnectionDone)
            writer.close()
            await port.stopListening()

    run(main)


def test_an_exception_in_data_received_drops_the_connection_with_that_reason(
    run: Any, caplog: pytest.LogCaptureFixture
) -> None:
    class Fragile(Recorder):
        def dataReceived(self, data: bytes) -> None:
            raise ZeroDivisionError("bad bytes")

    async def main() -> None:
        factory = Served(Fragile)
        port = reactor.listenTCP(0, factory, interface="127.0.0.1")
        reader, writer = await _client(port.getHost().port)
        writer.write(b"x")
        with contextlib.suppress(ConnectionResetError):
            assert await reader.read() == b""
        proto = factory.built[0]
        await proto.lost.wait()
        assert proto.reason.check(ZeroDivisionError)
        writer.close()
        await port.stopListening()

    with caplog.at_level(logging.ERROR, logger="treadle.error"):
        run(main)
    assert "bad bytes" in caplog.text


def test_a_push_producer_is_paused_while_the_peer_does_not_read(run: Any) -> None:
    class Producer:
        def __init__(self, transport: Any) -> None:
            self.transport = transport
            self.paused = asyncio.Event()
            self.resumed = asyncio.Event()
            self.stopped = asyncio.Event()
            self.sent = 0

        def pump(self) -> None:
            while not self.paused.is_set() and self.sent < 50_000_000:
                self.transport.write(b"x" * 65536)
                self.sent += 65536

        def pauseProducing(self) -> None:
            self.paused.set()

        def resumeProducing(self) -> None:
            self.resumed.set()

        def stopProducing(self) -> None:
            self.stopped.set()

    class Streaming(Recorder):
        def connectionMade(self) -> None:
            super().connectionMade()
            self.producer = Producer(self.transport)
            self.transport.registerProducer(self.producer, True)
            with pytest.raises(RuntimeError):
                self.transport.registerProducer(Producer(self.transport), True)
            self.producer.pump()

    async def main() -> None:
        factory = Served(Streaming)
        port = reactor.listenTCP(0, factory, interface="127.0.0.1")
        reader, writer = await _client(port.getHost().port)
        await factory.one.wait()
        producer = factory.built[0].producer
        await producer.paused.wait()
        assert producer.sent < 50_000_000
        while not producer.resumed.is_set():
            await reader.read(1 << 20)
        writer.close()
        await producer.stopped.wait()  # the connection went: the producer is told
        await port.stopListening()

    run(main)


def test_a_pull_producer_is_asked_until_unregistered_then_the_close_proceeds(run: Any) -> None:
    class Pull:
        def __init__(self, transport: Any) -> None:
            self.transport = transport
            self.count = 0

        def resumeProducing(self) -> None:
            self.count += 1
            self.transport.write(b"%05d\n" % self.count)
            if self.count == 1000:
                self.transport.unregisterProducer()

        def stopProducing(self) -> None:
            pass

    class Pulling(Recorder):
        def connectionMade(self) -> None:
            super().connectionMade()
            self.transport.registerProducer(Pull(self.transport), False)
            self.transport.loseConnection()  # waits for the producer to be unregistered

    async def main() -> None:
        factory = Served(Pulling)
        port = reactor.listenTCP(0, factory, interface="127.0.0.1")
        reader, writer = await _client(port.getHost().port)
        got = await reader.read()
        assert got == b"".join(b"%05d\n" % i for i in range(1, 1001))
        writer.close()
        await port.stopListening()

    run(main)


def test_tcp_options_and_half_close(run: Any) -> None:
    @implementer(IHalfCloseableProtocol)
    class HalfCloseable(Recorder):
        def readConnectionLost(self) -> None:
            self.transport.write(b"got " + self.received)
            self.transport.loseConnection()

        def writeConnectionLost(self) -> None:
            pass

    async def main() -> None:
        factory = Served(HalfCloseable)
        port = reactor.listenTCP(0, factory, interface="127.0.0.1")
        reader, writer = await _client(port.getHost().port)
        await factory.one.wait()
        transport = factory.built[0].transport
        transport.setTcpNoDelay(True)
        assert transport.getTcpNoDelay()
        transport.setTcpKeepAlive(True)
        assert transport.getTcpKeepAlive()
        writer.write(b"question")
        writer.write_eof()
        assert await reader.read() == b"got question"
        writer.close()
        await port.stopListening()

    run(main)


def test_connect_tcp_reports_success_loss_refusal_and_cancel(run: Any) -> None:
    class Client(ClientFactory):
        protocol = Recorder

        def __init__(self) -> None:
            self.events: list[str] = []
            self.reasons: list[Failure] = []
            self.done = asyncio.Event()

        def startedConnecting(self, connector: Any) -> None:
            self.events.append("started")

        def buildProtocol(self, addr: Any) -> Any:
            self.events.append(f"build {addr.port}")
            self.proto = super().buildProtocol(addr)
            return self.proto

        def clientConnectionFailed(self, connector: Any, reason: Failure) -> None:
            self.events.append("failed")
            self.reasons.append(reason)
            self.done.set()

        def clientConnectionLost(self, connector: Any, reason: Failure) -> None:
            self.events.append("lost")
            self.reasons.append(reason)
            self.done.set()

    async def main() -> None:
        served = Served(Recorder)
        port = reactor.listenTCP(0, served, interface="127.0.0.1")
        number = port.getHost().port
        client = Client()
        connector = reactor.connectTCP("127.0.0.1", number, client)
        assert connector.getDestination() == IPv4Address("TCP", "127.0.0.1", number)
        await served.one.wait()
        await client.proto.made.wait()
        client.proto.transport.write(b"ping")
        while served.built[0].received != b"ping":
            await asyncio.sleep(0.001)
        served.built[0].transport.loseConnection()
        await client.done.wait()
        assert client.events == ["started", f"build {number}", "lost"]
        assert client.reasons[0].check(ConnectionDone)
        await port.stopListening()

        refused = Client()
        reactor.connectTCP("127.0.0.1", number, refused)
        await refused.done.wait()
        assert refused.events == ["started", "failed"]
        assert refused.reasons[0].check(ConnectionRefusedError)

        cancelled = Client()
        connector = reactor.connectTCP("10.255.255.1", 9, cancelled, timeout=5)
        connector.stopConnecting()
        assert cancelled.reasons[0].check(UserError)

        # A zero timeout expires before any connection can be made, so the attempt fails
        # with Twisted's TimeoutError whatever the network does.
        timed_out = Client()
        reactor.connectTCP("127.0.0.1", number, timed_out, timeout=0)
        await timed_out.done.wait()
        assert timed_out.events == ["started", "failed"]
        assert timed_out.reasons[0].check(TimeoutError)

    run(main)


def test_reconnecting_factory_and_client_creator(run: Any) -> None:
    class Greeter(Recorder):
        def connectionMade(self) -> None:
            super().connectionMade()
            self.transport.write(b"hi")
            self.transport.loseConnection()

    class Again(ReconnectingClientFactory):
        protocol = Recorder
        initialDelay = 0.01
        maxDelay = 0.05
        jitter = 0

        def __init__(self) -> None:
            self.connections = 0
            self.twice = asyncio.Event()

        def buildProtocol(self, addr: Any) -> Any:
            self.connections += 1
            if self.connections == 2:
                self.stopTrying()
                self.twice.set()
            return super().buildProtocol(addr)

    async def main() -> None:
        served = Served(Greeter)
        port = reactor.listenTCP(0, served, interface="127.0.0.1")
        again = Again()
        reactor.connectTCP("127.0.0.1", port.getHost().port, again)
        await again.twice.wait()

        creator = ClientCreator(reactor, Recorder)
        proto = await creator.connectTCP("127.0.0.1", port.getHost().port).asFuture(
            asyncio.get_running_loop()
        )
        assert isinstance(proto, Recorder) and proto.connected
        await proto.lost.wait()
        assert proto.received == b"hi"
        await port.stopListening()

    run(main)


def test_unix_sockets_both_ways(run: Any, tmp_path: Path) -> None:
    path = str(tmp_path / "sock")

    class Echo(Recorder):
        def dataReceived(self, data: bytes) -> None:
            self.transport.write(data)

    async def main() -> None:
        served = Served(Echo)
        port = reactor.listenUNIX(path, served)
        client = ClientCreator(reactor, Recorder)
        proto = await client.connectUNIX(path).asFuture(asyncio.get_running_loop())
        proto.transport.write(b"over unix")
        while proto.received != b"over unix":
            await asyncio.sleep(0.001)
        assert isinstance(served.addresses[0], UNIXAddress)
        assert proto.transport.getPeer() == UNIXAddress(path)
        proto.transport.loseConnection()
        await proto.lost.wait()
        await port.stopListening()

    run(main)


@pytest.fixture(scope="module")
def tls() -> tuple[ssl.SSLContext, ssl.SSLContext]:
    ca = trustme.CA()
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost", "127.0.0.1").configure_cert(server)
    client = ssl.create_default_context()
    ca.configure_trust(client)
    return server, client


def test_tls_listen_connect_and_start_tls(
    run: Any, tls: tuple[ssl.SSLContext, ssl.SSLContext]
) -> None:
    server_context, client_context = tls

    class Echo(Recorder):
        def dataReceived(self, data: bytes) -> None:
            super().dataReceived(data)
            if data == b"STARTTLS\n":
                self.transport.write(b"go ahead\n")
                self.transport.startTLS(server_context)
            else:
                self.transport.write(data)

    class Options:
        hostname = "localhost"

        def getContext(self) -> ssl.SSLContext:
            return client_context

    async def main() -> None:
        served = Served(Echo)
        port = reactor.listenSSL(0, served, server_context, interface="127.0.0.1")
        proto = (
            await ClientCreator(reactor, Recorder)
            .connectSSL("127.0.0.1", port.getHost().port, Options())
            .asFuture(asyncio.get_running_loop())
        )
        assert ISSLTransport.providedBy(proto.transport) and proto.transport.TLS
        proto.transport.write(b"secret")
        while proto.received != b"secret":
            await asyncio.sleep(0.001)
        assert proto.transport.getPeerCertificate()["subjectAltName"]
        proto.transport.loseConnection()
        await port.stopListening()

        plain = Served(Echo)
        port = reactor.listenTCP(0, plain, interface="127.0.0.1")
        proto = (
            await ClientCreator(reactor, Recorder)
            .connectTCP("127.0.0.1", port.getHost().port)
            .asFuture(asyncio.get_running_loop())
        )
        proto.transport.write(b"STARTTLS\n")
        while proto.received != b"go ahead\n":
            await asyncio.sleep(0.001)
        proto.transport.startTLS(Options())
        proto.transport.write(b"now private")  # waits for the handshake, then goes out
        while proto.received != b"go ahead\nnow private":
            await asyncio.sleep(0.001)
        assert proto.transport.TLS and plain.built[0].transport.TLS
        proto.transport.loseConnection()
        await proto.lost.wait()
        await port.stopListening()

    run(main)


def test_a_client_factory_refusing_a_protocol_hears_the_connection_lost(run: Any) -> None:
    class Refusing(ClientFactory):
        def __init__(self) -> None:
            self.lost = asyncio.Event()
            self.stopped = False

        def buildProtocol(self, addr: Any) -> Any:
            return None

        def clientConnectionLost(self, connector: Any, reason: Failure) -> None:
            self.lost.set()

        def stopFactory(self) -> None:
            self.stopped = True

    async def main() -> None:
        port = reactor.listenTCP(0, Served(Recorder), interface="127.0.0.1")
        factory = Refusing()
        connector = reactor.connectTCP("127.0.0.1", port.getHost().port, factory)
        await factory.lost.wait()
        assert connector.state == "disconnected" and factory.stopped
        await port.stopListening()

    run(main)


def test_a_name_that_does_not_resolve_is_a_dns_lookup_error(run: Any) -> None:
    from treadle.internet.error import DNSLookupError

    class Client(ClientFactory):
        def __init__(self) -> None:
            self.failed = asyncio.Event()

        def clientConnectionFailed(self, connector: Any, reason: Failure) -> None:
            self.reason = reason
            self.failed.set()

    async def main() -> None:
        client = Client()
        reactor.connectTCP("no-such-host.invalid", 80, client)
        await client.failed.wait()
        assert client.reason.check(DNSLookupError)

    run(main)


def test_an_adopted_unix_socket_file_is_left_to_its_owner(run: Any, tmp_path: Path) -> None:
    path = str(tmp_path / "adopted")

    async def main() -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.bind(path)
        sock.listen()
        port = reactor.adoptStreamPort(sock.fileno(), socket.AF_UNIX, Served(Recorder))
        await port.stopListening()
        assert os.path.exists(path)
        sock.close()

    run(main)
