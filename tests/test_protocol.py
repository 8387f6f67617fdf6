"""Protocols and factories through their public API (their I/O is in test_transport.py)."""

from __future__ import annotations

import io
import logging
from typing import Any

import pytest

from treadle.internet.address import IPv4Address
from treadle.internet.error import ConnectionDone
from treadle.internet.interfaces import IProcessProtocol, IProtocol, IProtocolFactory
from treadle.internet.protocol import (
    ClientFactory,
    Factory,
    FileWrapper,
    ProcessProtocol,
    Protocol,
    ReconnectingClientFactory,
    connectionDone,
)
from treadle.internet.task import Clock
from treadle.python.failure import Failure


class Counter(Protocol):
    def __init__(self, start: int = 0) -> None:
        self.value = start


def test_build_protocol_sets_the_factory_and_for_protocol_passes_arguments() -> None:
    factory = Factory.forProtocol(Counter)
    proto = factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 1))
    assert isinstance(proto, Counter) and proto.factory is factory
    assert IProtocolFactory.providedBy(factory) and IProtocol.providedBy(proto)
    assert factory.logPrefix() == "Factory" and proto.logPrefix() == "Counter"

    class Named(Factory):
        def __init__(self, name: str) -> None:
            self.name = name

    named = Named.forProtocol(Counter, "x")
    assert isinstance(named, Named) and named.name == "x" and named.protocol is Counter


def test_start_and_stop_run_once_for_the_first_and_last_user(
    caplog: pytest.LogCaptureFixture,
) -> None:
    events: list[str] = []

    class Tracked(Factory):
        def startFactory(self) -> None:
            events.append("start")

        def stopFactory(self) -> None:
            events.append("stop")

    factory = Tracked()
    with caplog.at_level(logging.INFO, logger="treadle.log"):
        factory.doStart()
        factory.doStart()
        factory.doStop()
        assert events == ["start"]
        factory.doStop()
        factory.doStop()  # one too many: ignored
    assert events == ["start", "stop"]
    assert "Starting factory" in caplog.text and "Stopping factory" in caplog.text
    factory.noisy = False
    caplog.clear()
    factory.doStart()
    assert "Starting factory" not in caplog.text


def test_connection_done_is_a_clean_failure_and_the_default_reason() -> None:
    assert isinstance(connectionDone, Failure) and connectionDone.check(ConnectionDone)
    seen: list[Any] = []

    class Lost(Protocol):
        def connectionLost(self, reason: Failure = connectionDone) -> None:
            seen.append(reason)

    Lost().connectionLost()
    assert seen == [connectionDone]


def test_make_connection_sets_the_transport_then_calls_connection_made() -> None:
    order: list[object] = []

    class Made(Protocol):
        def connectionMade(self) -> None:
            order.append(self.transport)

    proto = Made()
    transport = object()
    proto.makeConnection(transport)
    assert order == [transport] and proto.connected


def test_process_protocol_dispatches_by_descriptor() -> None:
    calls: list[tuple[str, object]] = []

    class Child(ProcessProtocol):
        def outReceived(self, data: bytes) -> None:
            calls.append(("out", data))

        def errReceived(self, data: bytes) -> None:
            calls.append(("err", data))

        def inConnectionLost(self) -> None:
            calls.append(("in-lost", None))

        def outConnectionLost(self) -> None:
            calls.append(("out-lost", None))

        def errConnectionLost(self) -> None:
            calls.append(("err-lost", None))

    child = Child()
    assert IProcessProtocol.providedBy(child)
    child.childDataReceived(1, b"o")
    child.childDataReceived(2, b"e")
    child.childDataReceived(3, b"ignored")
    for fd in (0, 1, 2, 3):
        child.childConnectionLost(fd)
    assert calls == [
        ("out", b"o"),
        ("err", b"e"),
        ("in-lost", None),
        ("out-lost", None),
        ("err-lost", None),
    ]


class FakeConnector:
    def __init__(self) -> None:
        self.attempts = 0
        self.stopped = False

    def connect(self) -> None:
        self.attempts += 1

    def stopConnecting(self) -> None:
        self.stopped = True


def test_reconnecting_factory_backs_off_and_stops() -> None:
    clock = Clock()
    factory = ReconnectingClientFactory()
    factory.clock = clock
    factory.jitter = 0
    factory.noisy = False
    connector = FakeConnector()
    reason = Failure(ConnectionDone())
    factory.clientConnectionFailed(connector, reason)
    first = factory.delay
    assert first == pytest.approx(factory.initialDelay * factory.factor)
    clock.advance(first - 0.01)
    assert connector.attempts == 0
    clock.advance(0.02)
    assert connector.attempts == 1
    factory.clientConnectionLost(connector, reason)
    assert factory.delay == pytest.approx(first * factory.factor)
    clock.advance(factory.delay)
    assert connector.attempts == 2
    factory.resetDelay()
    assert factory.delay == factory.initialDelay and factory.retries == 0
    factory.clientConnectionFailed(connector, reason)
    factory.stopTrying()
    clock.advance(3600)
    assert connector.attempts == 2 and connector.stopped
    factory.clientConnectionFailed(connector, reason)
    assert not clock.getDelayedCalls()


def test_reconnecting_factory_gives_up_after_max_retries() -> None:
    clock = Clock()
    factory = ReconnectingClientFactory()
    factory.clock, factory.maxRetries, factory.noisy = clock, 2, False
    connector = FakeConnector()
    for _ in range(5):
        factory.clientConnectionFailed(connector, Failure(ConnectionDone()))
        clock.advance(factory.maxDelay)
    assert connector.attempts == 2


def test_client_factory_hooks_exist_and_do_nothing() -> None:
    factory = ClientFactory()
    factory.startedConnecting(None)
    factory.clientConnectionFailed(None, connectionDone)
    factory.clientConnectionLost(None, connectionDone)


def test_file_wrapper_writes_to_a_file_and_asks_a_pull_producer() -> None:
    out = io.BytesIO()
    wrapper = FileWrapper(out)
    wrapper.write(b"a")
    wrapper.writeSequence([b"b", b"c"])
    assert out.getvalue() == b"abc"

    class Pull:
        asked = 0

        def resumeProducing(self) -> None:
            self.asked += 1

    pull = Pull()
    wrapper.registerProducer(pull, False)
    assert pull.asked == 1
    wrapper.loseConnection()
    assert out.closed and wrapper.closed
