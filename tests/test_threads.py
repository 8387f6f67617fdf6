"""treadle.internet.threads: deferToThread, callMultipleInThread, blockingCallFromThread.

Each test runs the reactor inside an asyncio loop (the stdlib one and uvloop), as a program
embedding treadle does; no ``reactor.run()``.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any, TypeVar

import pytest

from tests.conftest import run_on_loop
from treadle.internet import reactor
from treadle.internet.defer import Deferred
from treadle.internet.threads import (
    blockingCallFromThread,
    callMultipleInThread,
    deferToThread,
    deferToThreadPool,
)
from treadle.python.threadpool import ThreadPool

_T = TypeVar("_T")


def test_defer_to_thread_runs_off_the_loop_and_fires_on_it(loop_kind: str) -> None:
    async def main() -> tuple[int, str, threading.Thread, threading.Thread]:
        fired_in: list[threading.Thread] = []

        def work(a: int, b: int = 0) -> tuple[int, str]:
            return a + b, threading.current_thread().name

        d = deferToThread(work, 40, b=2)
        d.addCallback(lambda r: fired_in.append(threading.current_thread()) or r)
        total, worker = await d
        return total, worker, fired_in[0], threading.current_thread()

    total, worker, fired_in, loop_thread = run_on_loop(loop_kind, main())
    assert total == 42
    assert worker.startswith("PoolThread-treadle.internet.reactor-")
    assert fired_in is loop_thread


def test_defer_to_thread_fails_with_what_the_function_raised(loop_kind: str) -> None:
    async def main() -> None:
        def work() -> None:
            raise LookupError("from the thread")

        with pytest.raises(LookupError, match="from the thread"):
            await deferToThread(work)

    run_on_loop(loop_kind, main())


def test_defer_to_thread_pool_uses_the_given_pool(loop_kind: str) -> None:
    pool = ThreadPool(0, 1, name="mine")
    pool.start()

    async def main() -> str:
        return await deferToThreadPool(reactor, pool, lambda: threading.current_thread().name)

    try:
        assert run_on_loop(loop_kind, main()) == "PoolThread-mine-0"
    finally:
        pool.stop()


def test_call_multiple_in_thread_runs_the_calls_in_order_in_one_thread(loop_kind: str) -> None:
    async def main() -> list[tuple[str, str]]:
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        seen: list[tuple[str, str]] = []

        def record(tag: str, *, suffix: str = "") -> None:
            seen.append((tag + suffix, threading.current_thread().name))

        callMultipleInThread(
            [
                (record, ("a",), {}),
                (record, ("b",), {"suffix": "!"}),
                (reactor.callFromThread, (done.set_result, None), {}),
            ]
        )
        await done
        return seen

    seen = run_on_loop(loop_kind, main())
    assert [tag for tag, _ in seen] == ["a", "b!"]
    assert seen[0][1] == seen[1][1] and seen[0][1].startswith("PoolThread-")


def test_blocking_call_from_thread_returns_values_deferreds_and_coroutines(
    loop_kind: str,
) -> None:
    async def later(value: str) -> str:
        await asyncio.sleep(0.01)
        return value

    def deferred_later(value: str) -> Deferred[str]:
        d: Deferred[str] = Deferred()
        reactor.callLater(0.01, d.callback, value)
        return d

    def in_thread() -> list[Any]:
        loop_thread_names = blockingCallFromThread(reactor, lambda: threading.current_thread().name)
        return [
            loop_thread_names,
            blockingCallFromThread(reactor, deferred_later, "from a Deferred"),
            blockingCallFromThread(reactor, later, "from a coroutine"),
        ]

    async def main() -> tuple[list[Any], str]:
        results = await deferToThread(in_thread)
        return results, threading.current_thread().name

    results, loop_thread = run_on_loop(loop_kind, main())
    assert results == [loop_thread, "from a Deferred", "from a coroutine"]


def test_blocking_call_from_thread_re_raises_in_the_calling_thread(loop_kind: str) -> None:
    def failing_deferred() -> Deferred[None]:
        d: Deferred[None] = Deferred()
        reactor.callLater(0, d.errback, KeyError("from a Deferred"))
        return d

    def raising() -> None:
        raise ValueError("raised at once")

    def in_thread() -> list[str]:
        caught = []
        for f in (raising, failing_deferred):
            try:
                blockingCallFromThread(reactor, f)
            except (ValueError, KeyError) as e:
                caught.append(f"{type(e).__name__}: {e}")
        return caught

    async def main() -> list[str]:
        return await deferToThread(in_thread)

    assert run_on_loop(loop_kind, main()) == [
        "ValueError: raised at once",
        "KeyError: 'from a Deferred'",
    ]


def test_blocking_call_from_the_reactor_thread_is_refused(loop_kind: str) -> None:
    async def main() -> None:
        reactor.callLater(0, lambda: None)  # the reactor now follows this loop
        with pytest.raises(RuntimeError, match="reactor's own thread"):
            blockingCallFromThread(reactor, lambda: None)

    run_on_loop(loop_kind, main())
