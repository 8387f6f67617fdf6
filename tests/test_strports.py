"""``strports``: services and ports from descriptions, serving a small protocol for real."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

from treadle.application import strports
from treadle.internet import endpoints, error
from treadle.internet._reactor import new_event_loop
from treadle.internet.protocol import Factory, Protocol

from .conftest import DEADLINE

pytestmark = pytest.mark.timeout(30)


class Echo(Protocol):
    def dataReceived(self, data: bytes) -> None:
        self.transport.write(data)


@pytest.fixture
def run(loop_kind: str) -> Callable[[Coroutine[Any, Any, Any]], Any]:
    def runner(coro: Coroutine[Any, Any, Any]) -> Any:
        loop = asyncio.new_event_loop() if loop_kind == "asyncio" else new_event_loop()
        try:
            return loop.run_until_complete(asyncio.wait_for(coro, DEADLINE))
        finally:
            loop.close()

    return runner


async def echoes(port: int) -> bool:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"ping")
    answer = await reader.readexactly(4)
    writer.close()
    return answer == b"ping"


def test_listen(run: Callable[..., Any]) -> None:
    async def scenario() -> None:
        port = strports.listen("tcp:0:interface=127.0.0.1", Factory.forProtocol(Echo))
        assert await echoes(port.getHost().port)
        await port.stopListening()

    run(scenario())


def test_listen_raises_at_once() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = f"tcp:{busy.getsockname()[1]}:interface=127.0.0.1"
        with pytest.raises(error.CannotListenError):
            strports.listen(taken, Factory.forProtocol(Echo))
    with pytest.raises(ValueError, match="Unknown endpoint type: 'http'"):
        strports.listen("http:80", Factory.forProtocol(Echo))


def test_service_listens_while_running(run: Callable[..., Any]) -> None:
    pytest.importorskip("treadle.application.internet")

    async def scenario() -> None:
        service = strports.service("tcp:0:interface=127.0.0.1", Factory.forProtocol(Echo))
        assert isinstance(service.endpoint, endpoints.TCP4ServerEndpoint)
        service.startService()
        assert service.running
        port = await service._waitingForPort
        assert await echoes(port.getHost().port)
        await service.stopService()
        assert not service.running
        with pytest.raises(ConnectionRefusedError):
            await asyncio.open_connection("127.0.0.1", port.getHost().port)

    run(scenario())


def test_service_raises_when_it_cannot_listen() -> None:
    pytest.importorskip("treadle.application.internet")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        service = strports.service(
            f"tcp:{busy.getsockname()[1]}:interface=127.0.0.1", Factory.forProtocol(Echo)
        )
        with pytest.raises(error.CannotListenError):
            service.startService()


def test_service_uses_the_reactor_given() -> None:
    pytest.importorskip("treadle.application.internet")

    class Reactor:
        def __init__(self) -> None:
            self.calls: list[tuple[Any, ...]] = []

        def listenUNIX(self, address: str, factory: Any, backlog: int, mode: int) -> str:
            self.calls.append((address, factory, mode))
            return "port"

    mine = Reactor()
    factory = Factory.forProtocol(Echo)
    strports.service("unix:/run/x.sock:mode=600", factory, reactor=mine).startService()
    assert mine.calls == [("/run/x.sock", factory, 0o600)]


@pytest.mark.parametrize("description", ["tcp:8080:interface=127.0.0.1", "unix:/run/s:mode=640"])
def test_service_endpoint_is_twisteds(description: str) -> None:
    pytest.importorskip("treadle.application.internet")
    twisted_strports = pytest.importorskip("twisted.application.strports")
    from twisted.internet.testing import MemoryReactor

    theirs = twisted_strports.service(description, None, reactor=MemoryReactor()).endpoint
    ours = strports.service(description, None).endpoint
    assert type(ours).__name__ == type(theirs).__name__
    for name in ("_port", "_interface", "_address", "_mode"):
        assert getattr(ours, name, None) == getattr(theirs, name, None)
