"""UDP ports: listenUDP and DatagramProtocol over real sockets, on both loops."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from tests.conftest import DEADLINE, LOOP_KINDS
from treadle.internet import reactor
from treadle.internet._reactor import new_event_loop
from treadle.internet.address import IPv4Address
from treadle.internet.error import CannotListenError, InvalidAddressError
from treadle.internet.protocol import DatagramProtocol


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


class Echo(DatagramProtocol):
    noisy = False

    def __init__(self) -> None:
        self.events: list[str] = []

    def startProtocol(self) -> None:
        self.events.append("start")

    def stopProtocol(self) -> None:
        self.events.append("stop")

    def datagramReceived(self, datagram: bytes, addr: Any) -> None:
        self.transport.write(b"echo " + datagram, addr)


class Collector(DatagramProtocol):
    noisy = False

    def __init__(self) -> None:
        self.received: asyncio.Queue[tuple[bytes, Any]] = asyncio.Queue()
        self.refused = asyncio.Event()

    def datagramReceived(self, datagram: bytes, addr: Any) -> None:
        self.received.put_nowait((datagram, addr))

    def connectionRefused(self) -> None:
        self.refused.set()


def test_datagrams_go_both_ways_and_the_protocol_starts_and_stops(run: Any) -> None:
    async def main() -> None:
        echo = Echo()
        server = reactor.listenUDP(0, echo, interface="127.0.0.1")
        assert echo.events == ["start"] and echo.transport is server
        host = server.getHost()
        assert isinstance(host, IPv4Address) and host.type == "UDP" and host.port > 0
        client = Collector()
        port = reactor.listenUDP(0, client, interface="127.0.0.1")
        client.transport.write(b"one", ("127.0.0.1", host.port))
        client.transport.writeSequence([b"t", b"wo"], ("127.0.0.1", host.port))
        got = [await client.received.get(), await client.received.get()]
        assert got == [
            (b"echo one", ("127.0.0.1", host.port)),
            (b"echo two", ("127.0.0.1", host.port)),
        ]
        await server.stopListening()
        assert echo.events == ["start", "stop"] and echo.transport is None
        await port.stopListening()

    run(main)


def test_a_connected_port_hears_refusals_and_only_its_peer(run: Any) -> None:
    async def main() -> None:
        closed = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        closed.bind(("127.0.0.1", 0))
        nobody = closed.getsockname()[1]
        closed.close()  # nothing listens there now: the kernel answers ICMP unreachable
        client = Collector()
        port = reactor.listenUDP(0, client, interface="127.0.0.1")
        port.connect("127.0.0.1", nobody)
        with pytest.raises(RuntimeError):
            port.connect("127.0.0.1", nobody)
        port.write(b"anyone?")
        await client.refused.wait()
        with pytest.raises(InvalidAddressError):
            port.write(b"x", ("127.0.0.1", nobody + 1))
        await port.stopListening()

    run(main)


def test_bad_addresses_and_ports_in_use_are_refused(run: Any) -> None:
    async def main() -> None:
        port = reactor.listenUDP(0, Collector(), interface="127.0.0.1")
        with pytest.raises(InvalidAddressError):
            port.write(b"x", ("localhost", 9))  # names are resolved by the caller, as in Twisted
        with pytest.raises(InvalidAddressError):
            port.write(b"x")  # an unconnected port needs an address
        with pytest.raises(InvalidAddressError):
            port.connect("localhost", 9)
        with pytest.raises(CannotListenError):
            reactor.listenUDP(port.getHost().port, Collector(), interface="127.0.0.1")
        port.setBroadcastAllowed(True)
        assert port.getBroadcastAllowed()
        await port.stopListening()
        port.write(b"after", ("127.0.0.1", 9))  # ignored once stopped

    run(main)


def test_an_exception_in_datagram_received_is_logged_and_the_port_goes_on(
    run: Any, caplog: pytest.LogCaptureFixture
) -> None:
    class Fragile(Collector):
        def datagramReceived(self, datagram: bytes, addr: Any) -> None:
            if datagram == b"bad":
                raise ValueError("bad datagram")
            super().datagramReceived(datagram, addr)

    async def main() -> None:
        fragile = Fragile()
        port = reactor.listenUDP(0, fragile, interface="127.0.0.1")
        sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        target = ("127.0.0.1", port.getHost().port)
        sender.sendto(b"bad", target)
        sender.sendto(b"good", target)
        assert (await fragile.received.get())[0] == b"good"
        sender.close()
        await port.stopListening()

    run(main)
    assert "bad datagram" in caplog.text
