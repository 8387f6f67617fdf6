"""ThreadPool: Twisted's pool of worker threads (treadle.python.threadpool)."""

from __future__ import annotations

import contextvars
import logging
import pickle
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import DEADLINE, wait_for
from treadle.python.failure import Failure
from treadle.python.threadpool import ThreadPool


@pytest.fixture
def pool() -> Iterator[ThreadPool]:
    p = ThreadPool(0, 2, name="test")
    yield p
    p.stop()


def test_work_queued_before_start_runs_once_started(pool: ThreadPool) -> None:
    ran: list[int] = []
    done = threading.Event()
    pool.callInThread(ran.append, 1)
    pool.callInThread(ran.append, 2)
    pool.callInThread(done.set)
    assert pool.q.qsize() == 3 and pool.workers == 0 and not pool.started
    pool.start()
    assert done.wait(DEADLINE)
    assert sorted(ran) == [1, 2]
    assert pool.started and not pool.joined


def test_threads_are_named_after_the_pool(pool: ThreadPool) -> None:
    pool.start()
    names: list[str] = []
    done = threading.Event()
    pool.callInThread(lambda: (names.append(threading.current_thread().name), done.set()))
    assert done.wait(DEADLINE)
    assert names == ["PoolThread-test-0"]


def test_call_in_thread_with_callback_reports_results_in_the_worker(pool: ThreadPool) -> None:
    pool.start()
    outcomes: list[tuple[bool, Any, str]] = []
    both = threading.Barrier(3, timeout=DEADLINE)

    def on_result(ok: bool, result: Any) -> None:
        outcomes.append((ok, result, threading.current_thread().name))
        both.wait()

    pool.callInThreadWithCallback(on_result, lambda a, b=0: a + b, 1, b=2)
    pool.callInThreadWithCallback(on_result, lambda: 1 / 0)
    both.wait()
    succeeded = [o for o in outcomes if o[0]]
    failed = [o for o in outcomes if not o[0]]
    assert succeeded[0][1] == 3
    assert isinstance(failed[0][1], Failure) and failed[0][1].check(ZeroDivisionError)
    assert all(name.startswith("PoolThread-test-") for _, _, name in outcomes)


def test_calls_run_in_the_submitters_context(pool: ThreadPool) -> None:
    var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")
    pool.start()
    seen: list[str] = []
    done = threading.Event()
    var.set("from the caller")
    pool.callInThread(lambda: (seen.append(var.get()), var.set("changed"), done.set()))
    assert done.wait(DEADLINE)
    assert seen == ["from the caller"]
    assert var.get() == "from the caller"  # the call ran in a copy


def test_an_exception_without_on_result_is_logged(
    pool: ThreadPool, caplog: pytest.LogCaptureFixture
) -> None:
    pool.start()
    after = threading.Event()
    with caplog.at_level(logging.ERROR, logger="treadle.error"):
        pool.callInThread(lambda: 1 / 0)
        pool.callInThread(after.set)
        assert after.wait(DEADLINE)
        wait_for(lambda: caplog.records, "the error to be logged")
    record = caplog.records[0]
    assert record.exc_info is not None and record.exc_info[0] is ZeroDivisionError


def test_an_on_result_that_raises_is_logged_and_the_thread_carries_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    pool = ThreadPool(1, 1)
    pool.start()
    done = threading.Event()

    def bad(ok: bool, result: object) -> None:
        raise KeyError("in onResult")

    with caplog.at_level(logging.ERROR, logger="treadle.error"):
        pool.callInThreadWithCallback(bad, lambda: None)
        pool.callInThread(done.set)
        assert done.wait(DEADLINE)
        wait_for(lambda: caplog.records, "the error to be logged")
    pool.stop()
    assert caplog.records[0].exc_info is not None
    assert caplog.records[0].exc_info[0] is KeyError


def test_no_more_than_max_threads_run_and_the_rest_waits(pool: ThreadPool) -> None:
    pool.start()
    release = threading.Event()
    running = threading.Semaphore(0)
    lock = threading.Lock()
    active = [0, 0]  # now, highest

    def block() -> None:
        with lock:
            active[0] += 1
            active[1] = max(active[1], active[0])
        running.release()
        release.wait(DEADLINE)
        with lock:
            active[0] -= 1

    for _ in range(5):
        pool.callInThread(block)
    assert running.acquire(timeout=DEADLINE) and running.acquire(timeout=DEADLINE)
    assert pool.workers == 2 and len(pool.working) == 2
    assert pool.q.qsize() == 3
    release.set()
    for _ in range(3):
        assert running.acquire(timeout=DEADLINE)
    wait_for(lambda: not pool.working, "the pool to go idle")
    assert active[1] == 2
    assert len(pool.waiters) == 2


def test_min_threads_start_at_start_and_adjust_poolsize_resizes() -> None:
    pool = ThreadPool(3, 5)
    try:
        pool.adjustPoolsize(2, 4)  # not started: only recorded
        assert (pool.min, pool.max, pool.workers) == (2, 4, 0)
        pool.start()
        assert pool.workers == 2
        pool.adjustPoolsize(minthreads=4)
        assert pool.workers == 4
        pool.adjustPoolsize(0, 1)
        wait_for(lambda: pool.workers == 1, "idle threads over the new max to end")
        wait_for(lambda: len(pool.threads) == 1, "the ended threads to leave the list")
        pool.stopAWorker()
        wait_for(lambda: pool.workers == 0, "stopAWorker to end the last thread")
        pool.startAWorker()
        assert pool.workers == 1
    finally:
        pool.stop()


def test_stop_runs_the_queue_then_joins_every_thread() -> None:
    pool = ThreadPool(0, 1)
    gate = threading.Event()
    ran: list[int] = []
    pool.callInThread(gate.wait, DEADLINE)
    for i in range(3):
        pool.callInThread(ran.append, i)
    pool.start()
    threads = list(pool.threads)
    stopper = threading.Thread(target=pool.stop)
    stopper.start()
    gate.set()
    stopper.join(DEADLINE)
    assert not stopper.is_alive()
    assert ran == [0, 1, 2]
    assert pool.joined and not pool.started
    assert pool.workers == 0 and pool.threads == []
    assert not any(t.is_alive() for t in threads)


def test_calls_after_stop_are_dropped_until_restarted() -> None:
    pool = ThreadPool(0, 1)
    pool.start()
    pool.stop()
    ran = threading.Event()
    pool.callInThread(ran.set)
    assert pool.q.qsize() == 0
    pool.start()
    pool.callInThread(ran.set)
    assert ran.wait(DEADLINE)
    pool.stop()


@pytest.mark.parametrize(("low", "high"), [(-1, 5), (6, 5)])
def test_bad_sizes_raise_value_error(low: int, high: int) -> None:
    with pytest.raises(ValueError):
        ThreadPool(low, high)
    pool = ThreadPool(0, 5)
    with pytest.raises(ValueError):
        pool.adjustPoolsize(low, high)
    assert (pool.min, pool.max) == (0, 5)


def test_pickling_keeps_the_sizes_only() -> None:
    pool = ThreadPool(1, 3, name="pickled")
    copy = pickle.loads(pickle.dumps(pool))
    assert (copy.min, copy.max, copy.name) == (1, 3, "pickled")
    assert not copy.started and copy.workers == 0


def test_dump_stats_logs_the_counts(caplog: pytest.LogCaptureFixture) -> None:
    pool = ThreadPool(1, 1)
    pool.start()
    try:
        with caplog.at_level(logging.INFO, logger="treadle.log"):
            pool.dumpStats()
    finally:
        pool.stop()
    messages = [r.getMessage() for r in caplog.records]
    assert messages[0].startswith("waiters: ") and messages[1] == "workers: []"
    assert messages[2].startswith("total: [")


def test_a_pool_left_running_does_not_keep_the_interpreter_alive() -> None:
    program = textwrap.dedent(
        """
        import threading
        from treadle.python.threadpool import ThreadPool
        pool = ThreadPool(2, 4)
        pool.start()
        done = threading.Event()
        pool.callInThread(done.set)
        done.wait(10)
        print("exiting with", pool.workers, "idle threads")
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=30, check=True
    )
    assert result.stdout.strip() == "exiting with 2 idle threads"
