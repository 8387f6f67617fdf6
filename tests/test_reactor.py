"""The reactor: scheduling, listening, running standalone and inside asyncio."""

from __future__ import annotations

import ast
import asyncio
import contextvars
import logging
import os
import socket
import subprocess
import sys
import textwrap
import threading

import pytest

from treadle.internet import reactor
from treadle.internet._gcpolicy import DEFAULT_THRESHOLDS, SERVING_THRESHOLDS
from treadle.internet._reactor import DEFAULT_BACKLOG, Reactor, new_event_loop
from treadle.internet.base import DelayedCall
from treadle.internet.error import AlreadyCalled, AlreadyCancelled, CannotListenError
from treadle.web.resource import Resource
from treadle.web.server import Site

from .conftest import Hello as WorldHello
from .conftest import run_on_loop


def test_call_later_runs_with_arguments_and_returns_a_delayed_call() -> None:
    async def main() -> list[object]:
        seen: list[object] = []
        done = asyncio.Event()

        def record(a: int, *, b: int) -> None:
            seen.append((a, b))
            done.set()

        call = reactor.callLater(0.01, record, 1, b=2)
        assert call.active()
        assert call.getTime() == pytest.approx(reactor.seconds() + 0.01, abs=0.5)
        await asyncio.wait_for(done.wait(), 10)
        assert not call.active() and call.called
        return seen

    assert asyncio.run(main()) == [(1, 2)]


def test_cancel_reset_and_delay_and_their_errors() -> None:
    async def main() -> None:
        fired = asyncio.Event()
        call = reactor.callLater(30, fired.set)
        call.reset(0.01)
        await asyncio.wait_for(fired.wait(), 10)
        with pytest.raises(AlreadyCalled):
            call.cancel()
        with pytest.raises(AlreadyCalled):
            call.reset(1)

        never = reactor.callLater(0.01, pytest.fail, "cancelled call ran")
        before = never.getTime()
        never.delay(5)
        assert never.getTime() == pytest.approx(before + 5)
        never.cancel()
        assert never.cancelled and not never.active()
        with pytest.raises(AlreadyCancelled):
            never.cancel()
        with pytest.raises(AlreadyCancelled):
            never.delay(1)
        await asyncio.sleep(0.05)

    asyncio.run(main())


def test_an_exception_in_a_scheduled_call_is_logged_and_the_loop_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def main() -> bool:
        after = asyncio.Event()
        reactor.callLater(0, lambda: 1 / 0)
        reactor.callLater(0.02, after.set)
        await asyncio.wait_for(after.wait(), 10)
        return True

    with caplog.at_level(logging.ERROR, logger="treadle.error"):
        assert asyncio.run(main())
    record = next(r for r in caplog.records if r.exc_info)
    assert record.exc_info is not None and record.exc_info[0] is ZeroDivisionError


def test_timed_calls_run_in_time_order_and_same_time_calls_in_scheduling_order() -> None:
    async def main() -> list[str]:
        seen: list[str] = []
        done = asyncio.Event()
        reactor.callLater(0.04, seen.append, "late")
        for name in ("a", "b", "c"):
            reactor.callLater(0.02, seen.append, name)
        reactor.callLater(0.01, seen.append, "early")
        reactor.callLater(0.05, done.set)
        await asyncio.wait_for(done.wait(), 10)
        return seen

    assert asyncio.run(main()) == ["early", "a", "b", "c", "late"]


def test_timed_calls_never_run_before_their_time(loop_kind: str) -> None:
    # By seconds(), the clock of getTime(): the loop's own clock differs (monotonic), and
    # libuv's timers fire up to 1.5 ms early. Delays with sub-millisecond parts, scheduled
    # from calls running at all sorts of moments.
    loop = asyncio.new_event_loop() if loop_kind == "asyncio" else new_event_loop()

    async def main() -> list[tuple[float, float]]:
        ran: list[tuple[float, float]] = []
        done = asyncio.Event()

        def record(call: list[DelayedCall]) -> None:
            ran.append((call[0].getTime(), reactor.seconds()))
            if len(ran) < 60:
                schedule(0.0007 + (len(ran) % 7) * 0.0013)
            else:
                done.set()

        def schedule(delay: float) -> None:
            holder: list[DelayedCall] = []
            holder.append(reactor.callLater(delay, record, holder))

        for delay in (0.0031, 0.0052, 0.0004):
            schedule(delay)
        await asyncio.wait_for(done.wait(), 10)
        return ran

    try:
        ran = loop.run_until_complete(main())
    finally:
        loop.close()
    early = [(due, at) for due, at in ran if at < due]
    assert early == []


def test_many_cancelled_calls_are_not_kept() -> None:
    # Cancelled calls leave the heap once they are the majority: a server cancelling
    # timeouts by the thousand does not hold their callbacks until they would have run.
    async def main() -> tuple[int, bool]:
        fired = asyncio.Event()
        keep = reactor.callLater(0.01, fired.set)
        calls = [reactor.callLater(60, pytest.fail, "cancelled call ran") for _ in range(1000)]
        for call in calls:
            call.cancel()
        await asyncio.wait_for(fired.wait(), 10)
        timers = reactor._timers
        assert timers is not None
        return len(timers._heap), keep.called

    held, called = asyncio.run(main())
    assert held < 100 and called


def test_a_call_runs_in_the_context_it_was_scheduled_in() -> None:
    var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")

    async def main() -> list[str]:
        seen: list[str] = []
        done = asyncio.Event()

        def record() -> None:
            seen.append(var.get())
            if len(seen) == 2:
                done.set()

        var.set("first")
        reactor.callLater(0.01, record)
        var.set("second")
        reactor.callLater(0.01, record)
        await asyncio.wait_for(done.wait(), 10)
        return seen

    assert asyncio.run(main()) == ["first", "second"]


def test_calls_scheduled_from_an_empty_context_each_run_in_one_of_their_own() -> None:
    # The calls keep no copy of an empty context: what one sets must still not reach the other.
    var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")

    async def main() -> list[str]:
        seen: list[str] = []
        done = asyncio.Event()

        def record(value: str) -> None:
            seen.append(var.get())
            var.set(value)
            if len(seen) == 2:
                done.set()

        for value in ("set by the first", "set by the second"):
            contextvars.Context().run(reactor.callLater, 0.01, record, value)
        await asyncio.wait_for(done.wait(), 10)
        return [*seen, var.get()]

    assert asyncio.run(main()) == ["unset", "unset", "unset"]


def test_a_failing_timed_call_does_not_stop_the_ones_due_with_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def main() -> bool:
        after = asyncio.Event()
        reactor.callLater(0.01, lambda: 1 / 0)
        reactor.callLater(0.01, after.set)
        await asyncio.wait_for(after.wait(), 10)
        return True

    with caplog.at_level(logging.ERROR, logger="treadle.error"):
        assert asyncio.run(main())


def test_call_from_thread_and_call_when_running_inside_asyncio() -> None:
    async def main() -> list[str]:
        seen: list[str] = []
        done = asyncio.Event()
        reactor.callWhenRunning(seen.append, "running")  # a loop runs: called at once

        def from_thread() -> None:
            seen.append("thread")
            done.set()

        reactor.callLater(0, lambda: None)  # attaches the reactor to this loop
        threading.Thread(target=reactor.callFromThread, args=(from_thread,)).start()
        await asyncio.wait_for(done.wait(), 10)
        return seen

    assert asyncio.run(main()) == ["running", "thread"]


def test_listen_tcp_binds_at_once_and_serves_inside_a_running_program() -> None:
    class Hello(Resource):
        isLeaf = True

        def render_GET(self, request: object) -> bytes:
            return b"hi"

    async def main() -> bytes:
        port = reactor.listenTCP(0, Site(Hello()), interface="127.0.0.1")
        host = port.getHost()
        assert host.type == "TCP" and host.host == "127.0.0.1" and host.port > 0
        reader, writer = await asyncio.open_connection("127.0.0.1", host.port)
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = await asyncio.wait_for(reader.read(), 10)
        writer.close()
        await port.stopListening()
        with pytest.raises(OSError):
            await asyncio.open_connection("127.0.0.1", host.port)
        return data

    assert asyncio.run(main()).endswith(b"\r\n\r\nhi")


def test_port_in_use_raises_cannot_listen_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(CannotListenError) as info:
            Reactor().listenTCP(port, Site(Resource()), interface="127.0.0.1")
        assert str(port) in str(info.value)


def test_default_backlog_is_generous() -> None:
    assert DEFAULT_BACKLOG >= 2048


def _child_output(program: str, env: dict[str, str] | None = None) -> str:
    """What ``program`` prints, run in a child interpreter (``reactor.run()`` owns the loop of
    its process)."""
    result = subprocess.run(
        [sys.executable, "-c", program],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env=env,
    )
    return result.stdout.strip()


def test_run_and_stop_standalone_the_twisted_way() -> None:
    # reactor.run() owns the process's loop: run it in a child interpreter.
    program = textwrap.dedent(
        """
        from treadle.internet import reactor
        order = []
        reactor.callWhenRunning(order.append, "running")
        reactor.callLater(0.01, order.append, "later")
        reactor.callLater(0.02, reactor.stop)
        reactor.addSystemEventTrigger("before", "shutdown", order.append, "shutdown")
        reactor.run()
        print(order)
        """
    )
    assert _child_output(program) == "['running', 'later', 'shutdown']"


def test_run_makes_its_thread_the_io_thread() -> None:
    program = textwrap.dedent(
        """
        import threading
        from treadle.internet import reactor, threads
        from treadle.python import threadable
        seen = [threadable.isInIOThread()]  # no thread registered, no loop running
        def in_worker():
            return threadable.isInIOThread()
        def check():
            seen.append(threadable.isInIOThread())
            d = threads.deferToThread(in_worker)
            d.addCallback(seen.append)
            d.addCallback(lambda _: reactor.stop())
        reactor.callWhenRunning(check)
        reactor.run()
        print(seen, threadable.ioThread == threading.get_ident())
        """
    )
    assert _child_output(program) == "[False, True, False] True"


def test_without_a_registered_thread_the_loops_thread_is_the_io_thread(
    loop_kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from treadle.python import threadable

    monkeypatch.setattr(threadable, "ioThread", None)  # as if reactor.run() never ran here

    async def main() -> tuple[bool, bool]:
        elsewhere = await asyncio.get_running_loop().run_in_executor(None, threadable.isInIOThread)
        return threadable.isInIOThread(), elsewhere

    assert run_on_loop(loop_kind, main()) == (True, False)
    assert not threadable.isInIOThread()


def test_nothing_is_served_before_the_reactor_runs() -> None:
    """A request waiting when ``run()`` starts meets the start-up already done, as in Twisted.

    The client connects and sends before ``run()``; more ports open after that. Opening a
    port before the loop runs must not run the loop (which would accept and answer the
    waiting request before ``callWhenRunning`` had its turn).
    """
    program = textwrap.dedent(
        """
        import socket
        from treadle.internet import reactor
        from treadle.web import resource, server

        order = []

        class Page(resource.Resource):
            isLeaf = True

            def render_GET(self, request):
                order.append("render")
                reactor.callLater(0, reactor.stop)
                return repr(order).encode()

        site = server.Site(Page())
        port = reactor.listenTCP(0, site, interface="127.0.0.1")
        client = socket.create_connection(("127.0.0.1", port.getHost().port), timeout=30)
        client.sendall(b"GET / HTTP/1.1\\r\\nHost: x\\r\\nConnection: close\\r\\n\\r\\n")
        for _ in range(5):
            reactor.listenTCP(0, site, interface="127.0.0.1")
        reactor.callWhenRunning(order.append, "running")
        reactor.callLater(10, reactor.stop)  # (a request answered too early stops nothing)
        reactor.run()
        reply = b""
        while chunk := client.recv(65536):
            reply += chunk
        print(reply.split(b"\\r\\n\\r\\n", 1)[1].decode())
        """
    )
    assert _child_output(program) == "['running', 'render']"


def _thresholds_seen_by_run(prelude: str, env: dict[str, str] | None = None) -> list[object]:
    """gc thresholds in a child interpreter: before run(), while it runs, after it returns."""
    program = (
        textwrap.dedent(
            """
        import gc
        from treadle.internet import reactor
        %s
        seen = [gc.get_threshold()]
        reactor.callWhenRunning(lambda: seen.append(gc.get_threshold()))
        reactor.callLater(0.01, reactor.stop)
        reactor.run()
        seen.append(gc.get_threshold())
        print(seen)
        """
        )
        % prelude
    )
    child_env = {k: v for k, v in os.environ.items() if k != "TREADLE_GC"}
    child_env.update(env or {})
    return ast.literal_eval(_child_output(program, child_env))  # type: ignore[no-any-return]


def test_run_raises_the_collectors_default_thresholds_while_serving() -> None:
    assert _thresholds_seen_by_run("") == [
        DEFAULT_THRESHOLDS,
        SERVING_THRESHOLDS,
        DEFAULT_THRESHOLDS,
    ]


def test_run_keeps_thresholds_the_program_chose_or_when_told_to() -> None:
    own = (1000, 5, 5)
    assert _thresholds_seen_by_run("gc.set_threshold(1000, 5, 5)") == [own, own, own]
    kept = _thresholds_seen_by_run("", {"TREADLE_GC": "default"})
    assert kept == [DEFAULT_THRESHOLDS] * 3


def test_run_refuses_inside_a_running_loop() -> None:
    async def main() -> None:
        with pytest.raises(RuntimeError, match="already running"):
            reactor.run()

    asyncio.run(main())


def test_call_in_thread_runs_off_the_loop_and_logs_errors(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def main() -> str:
        loop = asyncio.get_running_loop()
        done: asyncio.Future[str] = loop.create_future()

        def work() -> None:
            name = threading.current_thread().name
            reactor.callFromThread(done.set_result, name)

        reactor.callInThread(lambda: 1 / 0)
        reactor.callInThread(work)
        return await asyncio.wait_for(done, 10)

    with caplog.at_level(logging.ERROR, logger="treadle.error"):
        assert asyncio.run(main()).startswith("PoolThread-treadle.internet.reactor-")
        pool = reactor.getThreadPool()
        pool.stop()
    assert any(r.exc_info and r.exc_info[0] is ZeroDivisionError for r in caplog.records)


def test_log_err_writes_the_failure(caplog: pytest.LogCaptureFixture) -> None:
    from treadle.python import log
    from treadle.python.failure import Failure

    try:
        raise KeyError("missing")
    except KeyError:
        failure = Failure()
    with caplog.at_level(logging.ERROR, logger="treadle.error"):
        log.err(failure, "looking something up")
    record = caplog.records[-1]
    assert record.getMessage() == "looking something up"
    assert record.exc_info is not None and record.exc_info[0] is KeyError


def test_the_reactor_provides_the_interfaces_it_declares() -> None:
    from zope.interface.verify import verifyObject

    from treadle.internet import interfaces

    for name in (
        "IReactorCore",
        "IReactorTime",
        "IReactorTCP",
        "IReactorSSL",
        "IReactorUNIX",
        "IReactorThreads",
        "IReactorProcess",
        "IReactorSocket",
        "IReactorUDP",
    ):
        assert verifyObject(getattr(interfaces, name), reactor)


def test_delayed_calls_are_listed_until_they_run_or_are_cancelled() -> None:
    async def main() -> None:
        first = reactor.callLater(30, pytest.fail, "never")
        second = reactor.callLater(20, pytest.fail, "never")
        pending = reactor.getDelayedCalls()
        assert second in pending and first in pending
        assert pending.index(second) < pending.index(first)
        first.cancel()
        second.cancel()
        assert first not in reactor.getDelayedCalls()
        assert second not in reactor.getDelayedCalls()

    asyncio.run(main())


def test_resolve_gives_an_address_or_a_dns_lookup_error() -> None:
    from treadle.internet.error import DNSLookupError

    async def main() -> None:
        assert await reactor.resolve("localhost") == "127.0.0.1"
        with pytest.raises(DNSLookupError):
            await reactor.resolve("no-such-host.invalid")

    asyncio.run(main())


def test_startup_and_shutdown_triggers_run_and_can_be_removed() -> None:
    script = textwrap.dedent(
        """
        from treadle.internet import reactor
        order = []
        reactor.addSystemEventTrigger("during", "startup", order.append, "startup")
        removed = reactor.addSystemEventTrigger("before", "shutdown", order.append, "removed")
        reactor.addSystemEventTrigger("after", "shutdown", order.append, "after")
        reactor.addSystemEventTrigger("before", "shutdown", order.append, "before")
        reactor.removeSystemEventTrigger(removed)
        reactor.callWhenRunning(reactor.fireSystemEvent, "shutdown")
        reactor.run()
        print(order)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=30, check=True
    )
    assert out.stdout.strip() == "['startup', 'before', 'after']"


def test_adopt_stream_connection_serves_a_socket_the_process_has() -> None:
    async def main() -> bytes:
        ours, theirs = socket.socketpair()
        reactor.adoptStreamConnection(ours.fileno(), socket.AF_UNIX, Site(WorldHello()))
        ours.close()  # the reactor holds its own duplicate
        loop = asyncio.get_running_loop()
        reader, writer = await asyncio.open_connection(sock=theirs)
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        answer = await asyncio.wait_for(reader.read(), 10)
        writer.close()
        assert loop.is_running()
        return answer

    answer = asyncio.run(main())
    assert answer.startswith(b"HTTP/1.1 200") and answer.endswith(b"Hello, world!")


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_a_response_finished_in_the_turn_that_stops_the_reactor_is_sent(loop: str) -> None:
    """Small responses wait for the loop's next turn to be written; ``run()`` gives the
    loop that turn after ``stop()``, before the shutdown triggers (asyncio's loop alone
    would stop without it)."""
    program = textwrap.dedent(
        """
        import socket
        from treadle.internet import reactor
        from treadle.web import resource, server

        class Bye(resource.Resource):
            isLeaf = True

            def render_GET(self, request):
                reactor.stop()
                return b"bye"

        port = reactor.listenTCP(0, server.Site(Bye()), interface="127.0.0.1")
        client = socket.create_connection(("127.0.0.1", port.getHost().port), timeout=30)
        client.sendall(b"GET / HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n")
        reactor.run()
        reply = b""
        while not reply.endswith(b"bye") and (chunk := client.recv(65536)):
            reply += chunk
        print(reply.split(b"\\r\\n\\r\\n", 1)[1].decode())
        """
    )
    assert _child_output(program, dict(os.environ, TREADLE_LOOP=loop)) == "bye"
