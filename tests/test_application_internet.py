"""Services that listen, connect and repeat: over real sockets, and with a Clock for time."""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import trustme

from tests.conftest import DEADLINE, LOOP_KINDS
from treadle.application import internet, service, strports
from treadle.internet import endpoints, reactor
from treadle.internet._reactor import new_event_loop
from treadle.internet.defer import CancelledError, Deferred
from treadle.internet.error import CannotListenError, ConnectionRefusedError
from treadle.internet.protocol import ClientFactory, Factory, Protocol
from treadle.internet.task import Clock
from treadle.internet.testing import StringTransport
from treadle.python.failure import Failure

Runner = Callable[[Callable[[], Awaitable[Any]]], Any]


@pytest.fixture(params=LOOP_KINDS)
def run(request: pytest.FixtureRequest) -> Runner:
    """Run a coroutine function on a fresh loop of each kind (the reactor uses it)."""

    def runner(main: Callable[[], Awaitable[Any]]) -> Any:
        factory = asyncio.new_event_loop if request.param == "asyncio" else new_event_loop

        async def bounded() -> Any:
            return await asyncio.wait_for(main(), DEADLINE)

        with asyncio.Runner(loop_factory=factory) as asyncio_runner:
            return asyncio_runner.run(bounded())

    return runner


class Echo(Protocol):
    def dataReceived(self, data: bytes) -> None:
        self.transport.write(data)


def echo_factory() -> Factory:
    return Factory.forProtocol(Echo)


async def echo_round_trip(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bytes:
    writer.write(b"ping")
    await writer.drain()
    return await reader.readexactly(4)


async def refused(port: int) -> bool:
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return True
    writer.close()
    return False


# -- servers ----------------------------------------------------------------------------------


def test_tcp_server_listens_while_running(run: Runner) -> None:
    async def main() -> None:
        svc = internet.TCPServer(0, echo_factory(), interface="127.0.0.1")
        svc.privilegedStartService()
        port = svc._port
        assert port is not None
        svc.startService()
        assert svc._port is port  # bound once, in privilegedStartService
        number = port.getHost().port
        reader, writer = await asyncio.open_connection("127.0.0.1", number)
        assert await echo_round_trip(reader, writer) == b"ping"
        stopped = svc.stopService()
        assert isinstance(stopped, Deferred)
        await stopped
        assert not svc.running and svc._port is None
        assert await refused(number)
        # A connection accepted before the stop carries on, as in Twisted.
        assert await echo_round_trip(reader, writer) == b"ping"
        writer.close()
        assert svc.stopService() is None  # not listening: nothing to stop

    run(main)


def test_tcp_server_without_privileged_start_listens_in_start(run: Runner) -> None:
    async def main() -> None:
        svc = internet.TCPServer(0, echo_factory(), 50, "127.0.0.1", reactor=reactor)
        svc.startService()
        reader, writer = await asyncio.open_connection("127.0.0.1", svc._port.getHost().port)
        assert await echo_round_trip(reader, writer) == b"ping"
        writer.close()
        await svc.stopService()

    run(main)


def test_unix_server(run: Runner, tmp_path: Path) -> None:
    path = str(tmp_path / "echo.sock")

    async def main() -> None:
        svc = internet.UNIXServer(path, echo_factory())
        svc.privilegedStartService()
        svc.startService()
        reader, writer = await asyncio.open_unix_connection(path)
        assert await echo_round_trip(reader, writer) == b"ping"
        writer.close()
        await svc.stopService()
        with pytest.raises(OSError):
            await asyncio.open_unix_connection(path)

    run(main)


def test_ssl_server(run: Runner) -> None:
    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_context)
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)

    async def main() -> None:
        svc = internet.SSLServer(0, echo_factory(), server_context, interface="127.0.0.1")
        svc.startService()
        number = svc._port.getHost().port
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", number, ssl=client_context, server_hostname="127.0.0.1"
        )
        assert await echo_round_trip(reader, writer) == b"ping"
        writer.close()
        await svc.stopService()

    run(main)


def test_port_in_use_raises_from_privileged_start(run: Runner) -> None:
    async def main() -> None:
        first = internet.TCPServer(0, echo_factory(), interface="127.0.0.1")
        first.startService()
        second = internet.TCPServer(
            first._port.getHost().port, echo_factory(), interface="127.0.0.1"
        )
        with pytest.raises(CannotListenError):
            second.privilegedStartService()
        await first.stopService()

    run(main)


# -- clients ----------------------------------------------------------------------------------


class Greeter(Protocol):
    def connectionMade(self) -> None:
        self.transport.write(b"hello")


def test_tcp_client_connects_while_running(run: Runner) -> None:
    async def main() -> None:
        received: asyncio.Queue[bytes] = asyncio.Queue()
        closed = asyncio.Event()

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await received.put(await reader.readexactly(5))
            await reader.read()  # until the client closes
            closed.set()
            writer.close()

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        number = server.sockets[0].getsockname()[1]
        factory = ClientFactory.forProtocol(Greeter)
        svc = internet.TCPClient("127.0.0.1", number, factory)
        svc.startService()
        assert await received.get() == b"hello"
        svc.stopService()
        await closed.wait()
        assert not svc.running and svc._connection is None
        server.close()

    run(main)


def test_unix_client(run: Runner, tmp_path: Path) -> None:
    path = str(tmp_path / "c.sock")

    async def main() -> None:
        received: asyncio.Queue[bytes] = asyncio.Queue()

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await received.put(await reader.readexactly(5))
            writer.close()

        server = await asyncio.start_unix_server(handle, path)
        svc = internet.UNIXClient(path, ClientFactory.forProtocol(Greeter))
        svc.startService()
        assert await received.get() == b"hello"
        svc.stopService()
        server.close()

    run(main)


# -- TimerService -----------------------------------------------------------------------------


def test_timer_service_calls_every_step() -> None:
    clock = Clock()
    calls: list[tuple[Any, ...]] = []
    svc = internet.TimerService(2.0, lambda *a, **kw: calls.append((a, kw)), 1, key="v")
    svc.clock = clock
    svc.startService()
    assert calls == [((1,), {"key": "v"})]  # at once, as Twisted (now=True)
    clock.advance(2.0)
    clock.advance(2.0)
    assert len(calls) == 3
    results: list[Any] = []
    svc.stopService().addCallback(results.append)
    assert results == [None] and not svc.running
    clock.advance(10)
    assert len(calls) == 3


def test_timer_service_stop_waits_for_the_call_in_progress() -> None:
    clock = Clock()
    pending: list[Deferred[None]] = []

    def slow() -> Deferred[None]:
        pending.append(Deferred())
        return pending[-1]

    svc = internet.TimerService(1.0, slow)
    svc.clock = clock
    svc.startService()
    results: list[Any] = []
    svc.stopService().addCallback(results.append)
    assert results == [] and svc.running
    pending[0].callback(None)
    assert results == [None] and not svc.running


def test_timer_service_logs_a_failing_call(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()

    def broken() -> None:
        raise ZeroDivisionError("tick failed")

    svc = internet.TimerService(1.0, broken)
    svc.clock = clock
    with caplog.at_level(logging.ERROR, logger="treadle.error"):
        svc.startService()
    assert any("tick failed" in (r.exc_text or str(r.exc_info)) for r in caplog.records)
    assert not svc._loop.running
    results: list[Any] = []
    svc.stopService().addCallback(results.append)
    assert results == [None] and not svc.running


# -- StreamServerEndpointService --------------------------------------------------------------


def test_endpoint_service_listens_and_stops(run: Runner) -> None:
    async def main() -> None:
        endpoint = endpoints.TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1")
        svc = internet.StreamServerEndpointService(endpoint, echo_factory())
        svc.startService()
        assert svc.running
        port = await svc._waitingForPort
        number = port.getHost().port
        reader, writer = await asyncio.open_connection("127.0.0.1", number)
        assert await echo_round_trip(reader, writer) == b"ping"
        writer.close()
        await svc.stopService()
        assert not svc.running
        assert await refused(number)

    run(main)


def test_strports_service_raises_a_port_in_use(run: Runner) -> None:
    async def main() -> None:
        first = strports.service("tcp:0:interface=127.0.0.1", echo_factory())
        first.privilegedStartService()
        number = (await first._waitingForPort).getHost().port
        second = strports.service(f"tcp:{number}:interface=127.0.0.1", echo_factory())
        with pytest.raises(CannotListenError):
            second.privilegedStartService()
        await first.stopService()

    run(main)


def test_endpoint_service_logs_a_failed_listen(caplog: pytest.LogCaptureFixture) -> None:
    class Failing:
        def listen(self, factory: Any) -> Deferred[Any]:
            d: Deferred[Any] = Deferred()
            d.errback(CannotListenError("127.0.0.1", 1, OSError("in use")))
            return d

    svc = internet.StreamServerEndpointService(Failing(), echo_factory())
    with caplog.at_level(logging.ERROR, logger="treadle.error"):
        svc.startService()  # not raised: _raiseSynchronously is off
    assert any("in use" in str(r.exc_info) + r.getMessage() for r in caplog.records)


def test_endpoint_service_stop_cancels_a_pending_listen() -> None:
    cancelled: list[bool] = []

    class Slow:
        def listen(self, factory: Any) -> Deferred[Any]:
            return Deferred(lambda d: cancelled.append(True))

    svc = internet.StreamServerEndpointService(Slow(), echo_factory())
    svc.startService()
    results: list[Any] = []
    svc.stopService().addBoth(results.append)
    assert cancelled == [True]
    # The CancelledError is the expected end of the listen: not logged, not passed on.
    assert results == [None]
    assert not svc.running


def test_endpoint_service_stopped_before_starting() -> None:
    svc = internet.StreamServerEndpointService(object(), echo_factory())
    results: list[Any] = []
    svc.stopService().addBoth(results.append)
    assert results == [None]


# -- ClientService ----------------------------------------------------------------------------


class FakeEndpoint:
    """A client endpoint whose attempts the test completes (or fails) by hand."""

    def __init__(self) -> None:
        self.attempts: list[tuple[Deferred[Any], Any]] = []

    def connect(self, factory: Any) -> Deferred[Any]:
        d: Deferred[Any] = Deferred(lambda d: d.errback(CancelledError()))
        self.attempts.append((d, factory))
        return d

    def succeed(self, index: int = -1) -> tuple[Any, StringTransport]:
        d, factory = self.attempts[index]
        protocol = factory.buildProtocol(None)
        transport = StringTransport()
        protocol.makeConnection(transport)
        d.callback(protocol)
        return protocol, transport

    def fail(self, index: int = -1) -> None:
        self.attempts[index][0].errback(ConnectionRefusedError("refused"))


class Remembered(Protocol):
    lost = False

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        self.lost = True


def lose(protocol: Any) -> None:
    from treadle.internet.protocol import connectionDone

    protocol.connectionLost(connectionDone)


def make_client(**kw: Any) -> tuple[internet.ClientService, FakeEndpoint, Clock]:
    endpoint, clock = FakeEndpoint(), Clock()
    factory = Factory.forProtocol(Remembered)
    client = internet.ClientService(
        endpoint, factory, retryPolicy=lambda n: n * 10.0, clock=clock, **kw
    )
    return client, endpoint, clock


def test_client_service_connects_and_reports_the_protocol() -> None:
    client, endpoint, _ = make_client()
    waiting: list[Any] = []
    client.whenConnected().addCallback(waiting.append)  # before starting: waits
    client.startService()
    assert len(endpoint.attempts) == 1 and waiting == []
    proxy, _ = endpoint.succeed()
    assert len(waiting) == 1 and isinstance(waiting[0], Remembered)
    assert waiting[0] is not proxy and proxy._protocol is waiting[0]
    now: list[Any] = []
    client.whenConnected().addCallback(now.append)
    assert now == waiting


def test_client_service_retries_with_the_policy() -> None:
    client, endpoint, clock = make_client()
    client.startService()
    endpoint.fail()
    assert [call.getTime() for call in clock.getDelayedCalls()] == [10.0]
    clock.advance(10)
    assert len(endpoint.attempts) == 2
    endpoint.fail()
    assert [call.getTime() - clock.seconds() for call in clock.getDelayedCalls()] == [20.0]
    clock.advance(20)
    proxy, _ = endpoint.succeed()
    # Connected: the failure count starts again, so a lost connection retries after 10 s.
    lose(proxy)
    assert [call.getTime() - clock.seconds() for call in clock.getDelayedCalls()] == [10.0]
    clock.advance(10)
    assert len(endpoint.attempts) == 4


def test_when_connected_fails_after_failures() -> None:
    client, endpoint, clock = make_client()
    once: list[Any] = []
    twice: list[Any] = []
    never: list[Any] = []
    client.whenConnected(failAfterFailures=1).addBoth(once.append)
    client.whenConnected(failAfterFailures=2).addBoth(twice.append)
    client.whenConnected().addBoth(never.append)
    client.startService()
    endpoint.fail()
    assert len(once) == 1 and once[0].check(ConnectionRefusedError)
    assert twice == []
    clock.advance(10)
    endpoint.fail()
    assert len(twice) == 1 and twice[0].check(ConnectionRefusedError)
    assert never == []
    results: list[Any] = []
    client.stopService().addCallback(results.append)
    assert results == [None]
    assert len(never) == 1 and never[0].check(CancelledError)


def test_stop_while_connected_closes_and_waits() -> None:
    client, endpoint, _ = make_client()
    client.startService()
    proxy, transport = endpoint.succeed()
    results: list[Any] = []
    client.stopService().addCallback(results.append)
    assert transport.disconnecting and results == []
    lose(proxy)
    assert results == [None] and proxy._protocol.lost
    stopped: list[Any] = []
    client.whenConnected().addBoth(stopped.append)
    assert stopped[0].check(CancelledError)


def test_stop_while_connecting_cancels_the_attempt() -> None:
    client, _, clock = make_client()
    client.startService()
    results: list[Any] = []
    client.stopService().addCallback(results.append)
    assert results == [None]
    assert clock.getDelayedCalls() == []  # no retry scheduled


def test_stop_while_waiting_cancels_the_retry() -> None:
    client, endpoint, clock = make_client()
    client.startService()
    endpoint.fail()
    results: list[Any] = []
    client.stopService().addCallback(results.append)
    assert results == [None] and clock.getDelayedCalls() == []


def test_restart_while_disconnecting_connects_once_closed() -> None:
    client, endpoint, _ = make_client()
    client.startService()
    proxy, _ = endpoint.succeed()
    stopped: list[Any] = []
    client.stopService().addCallback(stopped.append)
    client.startService()
    assert len(endpoint.attempts) == 1
    lose(proxy)
    assert stopped == [None]
    assert len(endpoint.attempts) == 2


def test_prepare_connection_gates_when_connected() -> None:
    prepared: list[Any] = []
    gate: Deferred[None] = Deferred()

    def prepare(protocol: Any) -> Deferred[None]:
        prepared.append(protocol)
        return gate

    client, endpoint, _ = make_client(prepareConnection=prepare)
    waiting: list[Any] = []
    client.whenConnected().addCallback(waiting.append)
    client.startService()
    endpoint.succeed()
    assert len(prepared) == 1 and waiting == []
    gate.callback(None)
    assert waiting and isinstance(waiting[0], Remembered)


def test_failing_prepare_connection_counts_as_a_failure() -> None:
    client, endpoint, clock = make_client(prepareConnection=lambda p: 1 / 0)
    client.startService()
    endpoint.succeed()
    assert [call.getTime() for call in clock.getDelayedCalls()] == [10.0]


def test_duplicate_start_is_ignored(caplog: pytest.LogCaptureFixture) -> None:
    client, endpoint, _ = make_client()
    client.startService()
    with caplog.at_level(logging.WARNING):
        client.startService()
    assert len(endpoint.attempts) == 1
    assert "Duplicate ClientService.startService" in caplog.text


def test_stop_before_start() -> None:
    client, _, _ = make_client()
    results: list[Any] = []
    client.stopService().addCallback(results.append)
    assert results == [None]


def test_backoff_policy() -> None:
    policy = internet.backoffPolicy(initialDelay=1.0, maxDelay=10.0, factor=2.0, jitter=lambda: 0.5)
    assert [policy(n) for n in (0, 1, 2, 3, 4, 5)] == [1.5, 2.5, 4.5, 8.5, 10.5, 10.5]
    assert internet.backoffPolicy(maxDelay=3.0, jitter=lambda: 0)(10**6) == 3.0
    default = internet.backoffPolicy()
    assert 1.5 <= default(1) < 2.5


def test_client_service_over_a_real_socket_reconnects(run: Runner) -> None:
    async def main() -> None:
        connections: asyncio.Queue[asyncio.StreamWriter] = asyncio.Queue()

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await connections.put(writer)

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        number = server.sockets[0].getsockname()[1]
        endpoint = endpoints.TCP4ClientEndpoint(reactor, "127.0.0.1", number)
        client = internet.ClientService(
            endpoint, Factory.forProtocol(Remembered), retryPolicy=lambda n: 0.01
        )
        client.startService()
        first = await client.whenConnected()
        assert isinstance(first, Remembered)
        (await connections.get()).close()  # the server drops it: the service reconnects
        second_writer = await connections.get()
        second = await client.whenConnected()
        assert second is not first and first.lost
        await client.stopService()
        assert second.lost
        second_writer.close()
        server.close()

    run(main)


def test_services_under_an_application(run: Runner) -> None:
    async def main() -> None:
        application = service.Application("both")
        internet.TCPServer(0, echo_factory(), interface="127.0.0.1").setServiceParent(application)
        root = service.IService(application)
        root.privilegedStartService()
        root.startService()
        number = next(iter(root))._port.getHost().port
        reader, writer = await asyncio.open_connection("127.0.0.1", number)
        assert await echo_round_trip(reader, writer) == b"ping"
        writer.close()
        results = await root.stopService()
        assert results == [(True, None)]
        assert await refused(number)

    run(main)


def test_server_passes_its_arguments_and_returns_stop_listening() -> None:
    class Port:
        def __init__(self) -> None:
            self.stopped: Deferred[None] = Deferred()

        def stopListening(self) -> Deferred[None]:
            return self.stopped

    class FakeReactor:
        def __init__(self) -> None:
            self.port = Port()

        def listenTCP(self, *args: Any, **kwargs: Any) -> Port:
            self.args = (args, kwargs)
            return self.port

    fake = FakeReactor()
    svc = internet.TCPServer(80, "factory", backlog=5, reactor=fake)
    svc.startService()
    assert fake.args == ((80, "factory"), {"backlog": 5})
    assert svc.stopService() is fake.port.stopped
