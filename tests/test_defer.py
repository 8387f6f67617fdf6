"""treadle.internet.defer: Deferred semantics, asyncio interop, inlineCallbacks and lists."""

from __future__ import annotations

import asyncio
import contextvars
import gc
import importlib
import inspect
import itertools
import logging
import threading
import types
import warnings
from collections.abc import Generator
from typing import Any

import pytest

from treadle.internet import defer
from treadle.internet.defer import (
    AlreadyCalledError,
    CancelledError,
    Deferred,
    DeferredList,
    FirstError,
    NotACoroutineError,
    ensureDeferred,
    fail,
    gatherResults,
    inlineCallbacks,
    maybeDeferred,
    returnValue,
    succeed,
)
from treadle.internet.task import Clock
from treadle.python.failure import Failure, NoCurrentExceptionError

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import twisted.internet.defer as twisted_defer

ERROR_LOGGER = "treadle.error"


@pytest.fixture(autouse=True)
def _collect_earlier_garbage() -> None:
    """Collect other tests' garbage first, so its unhandled failures are not logged here."""
    gc.collect()


def results_of(d: Deferred[Any]) -> list[Any]:
    """Collect what reaches the end of ``d``'s chain (successes and Failures alike)."""
    out: list[Any] = []
    d.addBoth(out.append)
    return out


def failure_of(d: Deferred[Any]) -> Failure:
    (result,) = results_of(d)
    assert isinstance(result, Failure), result
    return result


# -- firing and the callback chain ------------------------------------------------------------


def test_callbacks_run_in_order_each_getting_the_previous_result() -> None:
    d: Deferred[int] = Deferred()
    d.addCallback(lambda r: r + 1).addCallback(lambda r: r * 10)
    out = results_of(d)
    assert out == []
    d.callback(1)
    assert out == [20]
    assert d.called
    assert d.result is None  # out.append returned None


def test_extra_arguments() -> None:
    d: Deferred[int] = Deferred()
    d.addCallback(lambda r, a, b=0: r + a + b, 10, b=100)
    d.addCallbacks(
        lambda r, a, k: (r, a, k),
        lambda f: None,
        callbackArgs=("x",),
        callbackKeywords={"k": "y"},
    )
    d.callback(1)
    assert d.result == (111, "x", "y")


def test_errback_arguments() -> None:
    d: Deferred[int] = Deferred()
    d.addCallbacks(
        lambda r: "callback",
        lambda f, a, k: (f.getErrorMessage(), a, k),
        errbackArgs=("x",),
        errbackKeywords={"k": "y"},
    )
    d.errback(ValueError("boom"))
    assert d.result == ("boom", "x", "y")


def test_add_methods_return_the_deferred() -> None:
    d: Deferred[int] = Deferred()
    assert d.addCallback(lambda r: r) is d
    assert d.addErrback(lambda f: f) is d
    assert d.addBoth(lambda r: r) is d
    assert d.addCallbacks(lambda r: r) is d


def test_callbacks_added_after_firing_run_at_once() -> None:
    d = succeed(5)
    assert d.addCallback(lambda r: r + 1).result == 6


def test_callback_added_by_a_callback_runs_in_order() -> None:
    d: Deferred[int] = Deferred()
    seen: list[str] = []

    def first(r: int) -> int:
        seen.append("first")
        d.addCallback(lambda r: seen.append("added") or r)
        return r

    d.addCallback(first).addCallback(lambda r: seen.append("second") or r)
    d.callback(0)
    assert seen == ["first", "second", "added"]


def test_result_is_absent_before_firing() -> None:
    d: Deferred[int] = Deferred()
    assert not d.called
    with pytest.raises(AttributeError):
        d.result  # noqa: B018


def test_second_fire_raises_already_called() -> None:
    d: Deferred[int] = Deferred()
    d.callback(1)
    with pytest.raises(AlreadyCalledError):
        d.callback(2)
    with pytest.raises(AlreadyCalledError):
        d.errback(ValueError())
    assert d.result == 1


def test_callback_refuses_a_deferred() -> None:
    with pytest.raises(TypeError):
        Deferred().callback(Deferred())


def test_exception_in_callback_goes_down_the_errback_chain() -> None:
    d: Deferred[int] = Deferred()
    skipped: list[object] = []
    d.addCallback(lambda r: 1 / 0).addCallback(skipped.append)
    d.callback(1)
    f = failure_of(d)
    assert f.check(ZeroDivisionError)
    assert skipped == []
    assert "ZeroDivisionError" in f.getTraceback()


def test_errback_can_recover() -> None:
    d: Deferred[int] = Deferred()
    d.addErrback(lambda f: f.trap(ValueError) and "recovered")
    d.addCallback(lambda r: r.upper())
    d.errback(ValueError())
    assert d.result == "RECOVERED"


def test_trap_mismatch_keeps_the_failure_going() -> None:
    d: Deferred[int] = Deferred()
    d.addErrback(lambda f: f.trap(KeyError))
    d.errback(ValueError("still"))
    f = failure_of(d)
    assert f.check(ValueError)
    assert f.getErrorMessage() == "still"


def test_returning_a_failure_switches_to_the_errback_chain() -> None:
    d: Deferred[int] = Deferred()
    d.addCallback(lambda r: Failure(KeyError("k")))
    d.callback(1)
    assert failure_of(d).check(KeyError)


def test_errback_wraps_exceptions_and_captures_the_current_one() -> None:
    d1: Deferred[int] = Deferred()
    d1.errback(ValueError("v"))
    assert failure_of(d1).value.args == ("v",)

    d2: Deferred[int] = Deferred()
    try:
        raise KeyError("current")
    except KeyError:
        d2.errback()
    assert failure_of(d2).check(KeyError)

    f = Failure(TypeError())
    d3: Deferred[int] = Deferred()
    d3.errback(f)
    assert results_of(d3) == [f]


def test_errback_without_exception_raises() -> None:
    with pytest.raises(NoCurrentExceptionError):
        Deferred().errback()


def test_keyboard_interrupt_is_not_swallowed() -> None:
    d: Deferred[int] = Deferred()

    def interrupt(_: object) -> None:
        raise KeyboardInterrupt

    d.addCallback(interrupt)
    with pytest.raises(KeyboardInterrupt):
        d.callback(1)


def test_succeed_and_fail() -> None:
    assert succeed("x").result == "x"
    assert failure_of(fail(ValueError("v"))).check(ValueError)
    try:
        raise KeyError
    except KeyError:
        d = fail()
    assert failure_of(d).check(KeyError)


# -- chaining ---------------------------------------------------------------------------------


def test_returning_a_pending_deferred_pauses_the_chain() -> None:
    outer: Deferred[int] = Deferred()
    inner: Deferred[str] = Deferred()
    outer.addCallback(lambda r: inner)
    out = results_of(outer)
    outer.callback(1)
    assert out == []
    assert "waiting on Deferred" in repr(outer)
    inner.callback("inner result")
    assert out == ["inner result"]
    assert inner.result is None  # handed over to outer


def test_chain_deferred_shows_the_wait_until_fired() -> None:
    source: Deferred[int] = Deferred()
    target: Deferred[int] = Deferred()
    source.chainDeferred(target)
    assert f"waiting on Deferred at 0x{id(source):x}" in repr(target)
    source.callback(7)
    assert repr(target).endswith("current result: 7>")


def test_returning_a_fired_deferred_takes_its_result() -> None:
    outer: Deferred[int] = Deferred()
    outer.addCallback(lambda r: succeed(r * 2))
    outer.callback(21)
    assert outer.result == 42


def test_chained_failure_reaches_the_outer_errbacks() -> None:
    outer: Deferred[int] = Deferred()
    inner: Deferred[int] = Deferred()
    outer.addCallback(lambda r: inner)
    outer.callback(1)
    inner.errback(ValueError("inner"))
    assert failure_of(outer).getErrorMessage() == "inner"
    assert inner.result is None


def test_callback_returning_its_own_deferred_warns_and_fails() -> None:
    d: Deferred[int] = Deferred()

    def circular(result: int) -> Deferred[int]:
        return d

    d.addCallback(circular)
    with pytest.warns(
        DeprecationWarning, match="Callback returned the Deferred it was attached to"
    ) as seen:
        d.callback(1)
    assert failure_of(d).check(TypeError)
    # The warning points at the callback, not at treadle's internals.
    (warning,) = seen.list
    assert warning.filename == __file__
    lines = [line for _, _, line in circular.__code__.co_lines() if line is not None]
    assert min(lines) <= warning.lineno <= max(lines)


def test_callback_returning_its_own_deferred_under_warnings_as_errors() -> None:
    d: Deferred[int] = Deferred()
    d.addCallback(lambda r: d)
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        d.callback(1)
    assert failure_of(d).check(DeprecationWarning)


def test_ten_thousand_nested_deferreds_do_not_recurse() -> None:
    ds: list[Deferred[Any]] = [Deferred() for _ in range(10_000)]
    for waiting, inner in itertools.pairwise(ds):
        waiting.addCallback(lambda _, inner=inner: inner)
    for d in ds[:-1]:
        d.callback(None)  # each one now waits on the next
    out = results_of(ds[0])
    assert out == []
    ds[-1].callback("bottom")
    assert out == ["bottom"]


def test_ten_thousand_deferreds_returned_in_one_chain() -> None:
    top: Deferred[int] = Deferred()
    pending: list[Deferred[int]] = [Deferred() for _ in range(10_000)]
    for d in pending:
        top.addCallback(lambda r, d=d: d)
    out = results_of(top)
    top.callback(0)
    for i, d in enumerate(pending):
        d.callback(i)
    assert out == [9_999]


def test_chain_deferred() -> None:
    a: Deferred[int] = Deferred()
    b: Deferred[int] = Deferred()
    a.chainDeferred(b)
    out = results_of(b)
    a.callback(3)
    assert out == [3]
    assert a.result is None


# -- pause ------------------------------------------------------------------------------------


def test_pause_and_unpause() -> None:
    d: Deferred[int] = Deferred()
    out = results_of(d)
    d.pause()
    d.pause()
    d.callback(1)
    assert out == []
    d.unpause()
    assert out == []
    d.unpause()
    assert out == [1]


def test_paused_waiter_keeps_its_result_until_unpaused() -> None:
    outer: Deferred[int] = Deferred()
    inner: Deferred[int] = Deferred()
    outer.addCallback(lambda r: inner)
    out = results_of(outer)
    outer.callback(0)
    outer.pause()
    inner.callback(5)
    assert out == []
    outer.unpause()
    assert out == [5]


# -- cancel -----------------------------------------------------------------------------------


def test_cancel_without_canceller_errbacks_and_swallows_one_late_fire() -> None:
    d: Deferred[int] = Deferred()
    d.cancel()
    assert failure_of(d).check(CancelledError)
    d.callback(1)  # the abandoned work reporting: ignored once
    with pytest.raises(AlreadyCalledError):
        d.callback(2)


def test_canceller_runs_and_may_fire_the_deferred() -> None:
    calls: list[Deferred[Any]] = []

    def canceller(d: Deferred[Any]) -> None:
        calls.append(d)
        d.callback("stopped nicely")

    d: Deferred[str] = Deferred(canceller)
    d.cancel()
    assert calls == [d]
    assert d.result == "stopped nicely"


def test_canceller_that_does_not_fire_leads_to_cancelled_error() -> None:
    calls: list[Deferred[Any]] = []
    d: Deferred[str] = Deferred(calls.append)
    d.cancel()
    assert calls == [d]
    assert failure_of(d).check(CancelledError)
    with pytest.raises(AlreadyCalledError):
        d.callback("late")


def test_cancel_after_firing_does_nothing() -> None:
    calls: list[Deferred[Any]] = []
    d: Deferred[int] = Deferred(calls.append)
    d.callback(1)
    d.cancel()
    assert calls == []
    assert d.result == 1


def test_cancel_while_waiting_on_a_chained_deferred_cancels_the_inner_one() -> None:
    inner_cancelled: list[Deferred[Any]] = []
    inner: Deferred[int] = Deferred(inner_cancelled.append)
    outer: Deferred[int] = Deferred()
    outer.addCallback(lambda r: inner)
    outer.callback(0)
    outer.cancel()
    assert inner_cancelled == [inner]
    assert failure_of(outer).check(CancelledError)


def test_cancelled_error_is_an_exception_and_an_asyncio_cancellation() -> None:
    assert issubclass(CancelledError, Exception)
    assert issubclass(CancelledError, asyncio.CancelledError)
    # asyncio's own stays out of ``except Exception``.
    assert not issubclass(asyncio.CancelledError, Exception)


# -- unhandled errors -------------------------------------------------------------------------


def test_unhandled_failure_is_logged_when_collected(caplog: pytest.LogCaptureFixture) -> None:
    def boom() -> None:
        raise ValueError("nobody handled me")

    with caplog.at_level(logging.ERROR, logger=ERROR_LOGGER):
        d = maybeDeferred(boom)
        del d
        gc.collect()
    (record,) = [r for r in caplog.records if r.name == ERROR_LOGGER]
    message = record.getMessage()
    assert message.startswith("Unhandled error in Deferred:")
    assert "ValueError: nobody handled me" in message
    assert "in boom" in message  # the traceback survived cleanFailure


def test_unhandled_failure_in_a_cycle_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    class Tagged(Exception):
        deferred: Deferred[Any]

    with caplog.at_level(logging.ERROR, logger=ERROR_LOGGER):
        d: Deferred[Any] = Deferred()
        exc = Tagged("in a cycle")
        exc.deferred = d  # d -> Failure -> exc -> d
        d.errback(exc)
        del d, exc
        gc.collect()
    assert any("Tagged: in a cycle" in r.getMessage() for r in caplog.records)


def test_handled_failures_are_not_logged(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger=ERROR_LOGGER):
        d = fail(ValueError())
        d.addErrback(lambda f: None)
        del d
        outer: Deferred[int] = Deferred()
        inner = fail(KeyError())
        outer.addCallback(lambda r, inner=inner: inner)
        outer.callback(0)
        outer.addErrback(lambda f: None)
        del outer, inner
        gc.collect()
    assert [r for r in caplog.records if r.name == ERROR_LOGGER] == []


def test_plain_deferreds_carry_no_finaliser() -> None:
    assert not hasattr(Deferred, "__del__")


def test_deferreds_take_attributes_of_their_users() -> None:
    d: Deferred[int] = Deferred()
    d.request = "mine"  # type: ignore[attr-defined]
    assert d.request == "mine"  # type: ignore[attr-defined]
    # An unused dictionary is not made.
    assert Deferred().__dict__ == {}


# -- repr -------------------------------------------------------------------------------------


def test_repr_shows_the_state() -> None:
    d: Deferred[int] = Deferred()
    assert repr(d).startswith("<Deferred at 0x")
    assert "result" not in repr(d)
    d.callback(42)
    assert repr(d).endswith("current result: 42>")


# -- maybeDeferred ----------------------------------------------------------------------------


def test_maybe_deferred_forms() -> None:
    assert maybeDeferred(lambda: 3).result == 3
    assert failure_of(maybeDeferred(lambda: 1 / 0)).check(ZeroDivisionError)
    d: Deferred[int] = Deferred()
    assert maybeDeferred(lambda: d) is d
    assert failure_of(maybeDeferred(lambda: Failure(KeyError()))).check(KeyError)
    assert maybeDeferred(lambda a, b=0: a + b, 1, b=2).result == 3


def test_maybe_deferred_runs_a_coroutine() -> None:
    async def coro() -> str:
        await asyncio.sleep(0)
        return "from coroutine"

    async def main() -> str:
        return await maybeDeferred(coro)

    assert asyncio.run(main()) == "from coroutine"


# -- asyncio interop --------------------------------------------------------------------------


def test_await_a_deferred_fired_later() -> None:
    async def main() -> int:
        d: Deferred[int] = Deferred()
        asyncio.get_running_loop().call_soon(d.callback, 7)
        return await d

    assert asyncio.run(main()) == 7


def test_await_a_fired_deferred() -> None:
    async def main() -> int:
        return await succeed(8)

    assert asyncio.run(main()) == 8


def test_await_a_failing_deferred_raises_its_exception(caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        d: Deferred[int] = Deferred()
        asyncio.get_running_loop().call_soon(d.errback, ValueError("async boom"))
        with pytest.raises(ValueError, match="async boom"):
            await d
        with pytest.raises(KeyError):
            await fail(KeyError("already failed"))

    with caplog.at_level(logging.ERROR, logger=ERROR_LOGGER):
        asyncio.run(main())
        gc.collect()
    assert [r for r in caplog.records if r.name == ERROR_LOGGER] == []


def test_await_a_cancelled_deferred_raises_asyncio_cancelled_error() -> None:
    async def main() -> str:
        d: Deferred[int] = Deferred()
        asyncio.get_running_loop().call_soon(d.cancel)
        try:
            await d
        except asyncio.CancelledError:
            return "cancelled"
        return "not cancelled"

    assert asyncio.run(main()) == "cancelled"


def test_as_future_resolves_and_consumes_the_result() -> None:
    async def main() -> None:
        d: Deferred[int] = Deferred()
        future = d.asFuture(asyncio.get_running_loop())
        assert not future.done()
        d.callback(3)
        assert await future == 3
        assert d.result is None

        d2: Deferred[int] = Deferred()
        future2 = d2.asFuture(asyncio.get_running_loop())
        d2.errback(KeyError("k"))
        with pytest.raises(KeyError):
            await future2

    asyncio.run(main())


def test_cancelling_the_future_cancels_the_deferred() -> None:
    cancelled: list[Deferred[Any]] = []

    async def main() -> None:
        d: Deferred[int] = Deferred(cancelled.append)
        future = d.asFuture(asyncio.get_running_loop())
        future.cancel()
        await asyncio.sleep(0)  # done callbacks run on the next loop iteration
        assert cancelled == [d]
        assert d.called
        assert d.result is None  # the CancelledError was consumed by the future's errback

    asyncio.run(main())


def test_cancelled_deferred_cancels_the_future() -> None:
    async def main() -> None:
        d: Deferred[int] = Deferred()
        future = d.asFuture(asyncio.get_running_loop())
        d.cancel()
        assert future.cancelled()

    asyncio.run(main())


def test_from_future_result_and_exception() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[int] = loop.create_future()
        d = Deferred.fromFuture(future)
        out = results_of(d)
        future.set_result(4)
        await asyncio.sleep(0)
        assert out == [4]

        failing: asyncio.Future[int] = loop.create_future()
        failing.set_exception(KeyError("k"))
        assert failure_of(Deferred.fromFuture(failing)).check(KeyError)  # done: at once

    asyncio.run(main())


def test_cancelled_future_becomes_cancelled_error() -> None:
    async def main() -> None:
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        d = Deferred.fromFuture(future)
        future.cancel()
        await asyncio.sleep(0)
        failure = failure_of(d)
        assert failure.check(CancelledError)
        # Twisted hands asyncio's CancelledError on: code trapping that works too.
        failure.trap(asyncio.CancelledError)

    asyncio.run(main())


def test_awaiting_a_cancelled_deferred_in_a_task_cancels_the_task() -> None:
    async def waits(d: Deferred[int]) -> int:
        return await d

    async def main() -> None:
        fired: Deferred[int] = Deferred()
        fired.cancel()
        pending: Deferred[int] = Deferred()
        tasks = [asyncio.ensure_future(waits(fired)), asyncio.ensure_future(waits(pending))]
        await asyncio.sleep(0)
        pending.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        # Whether the Deferred had fired before the await or not, the Task ends cancelled.
        assert [task.cancelled() for task in tasks] == [True, True]

    asyncio.run(main())


def test_cancelling_from_future_deferred_cancels_the_future() -> None:
    async def main() -> None:
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        d = Deferred.fromFuture(future)
        d.cancel()
        assert future.cancelled()
        assert failure_of(d).check(CancelledError)  # right away
        await asyncio.sleep(0)  # the future's done callback is then ignored

    asyncio.run(main())


def test_ensure_deferred_of_a_coroutine() -> None:
    async def double(x: int) -> int:
        await asyncio.sleep(0)
        return x * 2

    async def main() -> None:
        d = ensureDeferred(double(21))
        assert isinstance(d, Deferred)
        assert await d == 42
        assert await Deferred.fromCoroutine(double(1)) == 2

    asyncio.run(main())


def test_ensure_deferred_passes_deferreds_and_rejects_others() -> None:
    d: Deferred[int] = Deferred()
    assert ensureDeferred(d) is d
    with pytest.raises(NotACoroutineError):
        ensureDeferred(42)  # type: ignore[arg-type]
    assert issubclass(NotACoroutineError, TypeError)


def test_cancelling_ensure_deferred_cancels_the_task() -> None:
    seen: list[str] = []

    async def sleeper() -> None:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            seen.append("task cancelled")
            raise

    async def main() -> None:
        d = ensureDeferred(sleeper())
        await asyncio.sleep(0)  # let the task start
        d.cancel()
        assert failure_of(d).check(CancelledError)
        await asyncio.sleep(0)
        await asyncio.sleep(0)

    asyncio.run(main())
    assert seen == ["task cancelled"]


def test_ensure_deferred_runs_a_coroutine_at_once_without_a_loop() -> None:
    async def answer() -> int:
        return 5

    d = ensureDeferred(answer())
    assert d.called
    assert d.result == 5


def test_ensure_deferred_hands_an_asyncio_await_to_the_current_loop() -> None:
    async def answer() -> int:
        await asyncio.sleep(0)
        return 5

    out: list[Any] = []

    def in_thread() -> None:
        # A thread of its own, so setting its current loop leaves the main thread's alone.
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            d = ensureDeferred(answer())
            d.addBoth(out.append)
            assert out == []  # the rest waits for the loop to run
            loop.run_until_complete(asyncio.sleep(0.01))
        finally:
            asyncio.set_event_loop(None)
            loop.close()

    thread = threading.Thread(target=in_thread)
    thread.start()
    thread.join(10)
    assert out == [5]


def test_error_after_cancelling_a_future_deferred_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def stubborn() -> None:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            raise KeyError("failed while cancelling") from None

    async def main() -> None:
        d = ensureDeferred(stubborn())
        await asyncio.sleep(0)
        d.cancel()
        assert failure_of(d).check(CancelledError)
        await asyncio.sleep(0)
        await asyncio.sleep(0)

    with caplog.at_level(logging.ERROR, logger=ERROR_LOGGER):
        asyncio.run(main())
    assert any("failed while cancelling" in r.getMessage() for r in caplog.records)


def test_as_future_turns_stop_iteration_into_runtime_error() -> None:
    async def main() -> None:
        future = fail(StopIteration()).asFuture(asyncio.get_running_loop())
        with pytest.raises(RuntimeError):
            await future

    asyncio.run(main())


def test_a_failing_coroutine_errbacks() -> None:
    async def broken() -> None:
        raise KeyError("from coroutine")

    async def main() -> None:
        with pytest.raises(KeyError):
            await ensureDeferred(broken())

    asyncio.run(main())


# -- inlineCallbacks --------------------------------------------------------------------------


def test_inline_callbacks_return_value() -> None:
    @inlineCallbacks
    def add(a: int) -> Generator[Any, Any, int]:
        b = yield succeed(1)
        c = yield "plain values come straight back"
        assert c == "plain values come straight back"
        return a + b

    assert add(41).result == 42


def test_inline_callbacks_waits_for_pending_deferreds() -> None:
    gate: Deferred[str] = Deferred()

    @inlineCallbacks
    def waiter() -> Generator[Any, Any, str]:
        value = yield gate
        return value.upper()

    d = waiter()
    out = results_of(d)
    assert out == []
    gate.callback("open")
    assert out == ["OPEN"]


def test_return_value_for_old_code() -> None:
    @inlineCallbacks
    def old() -> Generator[Any, Any, None]:
        yield succeed(None)
        returnValue("old style")

    assert old().result == "old style"


def test_exceptions_are_thrown_into_the_generator() -> None:
    @inlineCallbacks
    def handler() -> Generator[Any, Any, str]:
        try:
            yield fail(ValueError("thrown in"))
        except ValueError as exc:
            return f"caught {exc}"
        return "not caught"

    assert handler().result == "caught thrown in"


def test_uncaught_exception_errbacks() -> None:
    @inlineCallbacks
    def broken() -> Generator[Any, Any, None]:
        yield succeed(None)
        raise KeyError("escaped")

    assert failure_of(broken()).check(KeyError)


def test_inline_callbacks_needs_a_generator() -> None:
    @inlineCallbacks
    def not_a_generator() -> Any:
        return 1

    with pytest.raises(TypeError):
        not_a_generator()


def test_inline_callbacks_run_in_their_own_context() -> None:
    var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="outside")
    gate: Deferred[None] = Deferred()

    @inlineCallbacks
    def work() -> Generator[Any, Any, str]:
        var.set("inside")
        yield gate
        return var.get()

    d = work()
    assert var.get() == "outside"
    gate.callback(None)
    assert d.result == "inside"


def test_many_fired_yields_do_not_recurse() -> None:
    @inlineCallbacks
    def counter() -> Generator[Any, Any, int]:
        total = 0
        for _ in range(10_000):
            total += yield succeed(1)
        return total

    assert counter().result == 10_000


def test_inline_callbacks_yielding_awaitables() -> None:
    async def coro() -> int:
        await asyncio.sleep(0)
        return 2

    @inlineCallbacks
    def mixed() -> Generator[Any, Any, int]:
        a = yield coro()
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        asyncio.get_running_loop().call_soon(future.set_result, 3)
        b = yield future
        return a + b

    async def main() -> int:
        return await mixed()

    assert asyncio.run(main()) == 5


def test_cancelling_inline_callbacks_cancels_what_it_waits_on() -> None:
    waited_cancelled: list[Deferred[Any]] = []
    waited: Deferred[int] = Deferred(waited_cancelled.append)
    seen: list[str] = []

    @inlineCallbacks
    def work() -> Generator[Any, Any, None]:
        try:
            yield waited
        except CancelledError:
            seen.append("cancelled inside")
            raise

    d = work()
    d.cancel()
    assert waited_cancelled == [waited]
    assert seen == ["cancelled inside"]
    assert failure_of(d).check(CancelledError)


def test_inline_callbacks_may_handle_cancellation_and_go_on() -> None:
    first: Deferred[int] = Deferred()
    cleanup: Deferred[str] = Deferred()

    @inlineCallbacks
    def work() -> Generator[Any, Any, str]:
        try:
            yield first
        except CancelledError:
            result = yield cleanup
            return f"cleaned up: {result}"
        return "finished"

    d = work()
    out = results_of(d)
    d.cancel()
    assert out == []  # it waits for the generator's own outcome
    cleanup.callback("ok")
    assert out == ["cleaned up: ok"]


def test_cancelling_twice_reaches_the_second_wait() -> None:
    first: Deferred[int] = Deferred()
    second: Deferred[int] = Deferred()

    @inlineCallbacks
    def work() -> Generator[Any, Any, str]:
        try:
            yield first
        except CancelledError:
            yield second
        return "unreachable"

    d = work()
    d.cancel()
    assert not d.called or isinstance(d.result, Deferred)  # following the generator
    d.cancel()
    assert second.called
    assert failure_of(d).check(CancelledError)


# -- DeferredList and gatherResults -----------------------------------------------------------


def test_gather_results_in_order() -> None:
    a: Deferred[str] = Deferred()
    b: Deferred[str] = Deferred()
    d = gatherResults([a, b, succeed("c")])
    out = results_of(d)
    b.callback("b")
    assert out == []
    a.callback("a")
    assert out == [["a", "b", "c"]]


def test_gather_results_of_nothing() -> None:
    assert gatherResults([]).result == []


def test_gather_results_first_error(caplog: pytest.LogCaptureFixture) -> None:
    a: Deferred[str] = Deferred()
    b: Deferred[str] = Deferred()
    d = gatherResults([a, b], consumeErrors=True)
    b.errback(ValueError("second failed"))
    f = failure_of(d)
    assert f.check(FirstError)
    assert f.value.index == 1
    assert f.value.subFailure.check(ValueError)
    assert "FirstError[#1" in repr(f.value)
    assert b.result is None  # consumed
    a.callback("late")  # no error after the list fired
    with caplog.at_level(logging.ERROR, logger=ERROR_LOGGER):
        del a, b, d, f
        gc.collect()
    assert [r for r in caplog.records if r.name == ERROR_LOGGER] == []


def test_gather_results_without_consume_leaves_the_failure(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.ERROR, logger=ERROR_LOGGER):
        failing = fail(KeyError("kept"))
        d = gatherResults([failing])
        assert failure_of(d).check(FirstError)
        assert isinstance(failing.result, Failure)
        del failing, d
        gc.collect()
    assert any("KeyError: 'kept'" in r.getMessage() for r in caplog.records)


def test_cancelling_gather_results_cancels_every_deferred() -> None:
    a: Deferred[int] = Deferred()
    b: Deferred[int] = Deferred()
    d = gatherResults([a, b], consumeErrors=True)
    d.cancel()
    f = failure_of(d)
    assert f.value.subFailure.check(CancelledError)
    assert a.called and b.called


def test_deferred_list_pairs() -> None:
    a: Deferred[int] = Deferred()
    b: Deferred[int] = Deferred()
    d = DeferredList([a, b], consumeErrors=True)
    a.errback(ValueError("a"))
    b.callback(2)
    (pairs,) = results_of(d)
    assert pairs[0][0] is False
    assert pairs[0][1].check(ValueError)
    assert pairs[1] == (True, 2)
    assert a.result is None


def test_deferred_list_fire_on_one_callback() -> None:
    a: Deferred[int] = Deferred()
    b: Deferred[int] = Deferred()
    d = DeferredList([a, b], fireOnOneCallback=True)
    b.callback("b first")
    assert d.result == ("b first", 1)
    a.callback("a")  # ignored by the list


def test_deferred_list_fire_on_one_errback() -> None:
    a: Deferred[int] = Deferred()
    d = DeferredList([a, Deferred()], fireOnOneErrback=True, consumeErrors=True)
    a.errback(KeyError())
    f = failure_of(d)
    assert isinstance(f.value, FirstError)
    assert f.value.index == 0


def test_deferred_list_of_nothing() -> None:
    assert DeferredList([]).result == []
    assert not DeferredList([], fireOnOneCallback=True).called


# -- addTimeout -------------------------------------------------------------------------------


def test_add_timeout_times_out() -> None:
    clock = Clock()
    cancelled: list[Deferred[Any]] = []
    d: Deferred[int] = Deferred(cancelled.append)
    d.addTimeout(5, clock)
    clock.advance(4.9)
    assert not d.called
    clock.advance(0.1)
    assert cancelled == [d]
    f = failure_of(d)
    assert f.check(defer.TimeoutError)
    assert isinstance(f.value, TimeoutError)  # the builtin, as asyncio code catches
    assert f.value.timeout == 5


def test_add_timeout_cancels_the_timer_when_fired_first() -> None:
    clock = Clock()
    d: Deferred[int] = Deferred()
    d.addTimeout(5, clock)
    assert len(clock.getDelayedCalls()) == 1
    d.callback(1)
    assert clock.getDelayedCalls() == []
    assert d.result == 1


def test_add_timeout_custom_conversion() -> None:
    clock = Clock()
    d: Deferred[int] = Deferred()
    d.addTimeout(1, clock, onTimeoutCancel=lambda result, timeout: f"gave up after {timeout}")
    clock.advance(1)
    assert d.result == "gave up after 1"


def test_add_timeout_with_a_canceller_that_succeeds() -> None:
    clock = Clock()
    d: Deferred[str] = Deferred(lambda d: d.callback("partial"))
    d.addTimeout(1, clock)
    clock.advance(1)
    assert d.result == "partial"


def test_add_timeout_does_not_convert_an_explicit_cancel() -> None:
    clock = Clock()
    d: Deferred[int] = Deferred()
    d.addTimeout(1, clock)
    d.cancel()
    assert failure_of(d).check(CancelledError)
    assert clock.getDelayedCalls() == []


# -- issue 12: Twisted parity -----------------------------------------------------------------

IMPLEMENTATIONS = pytest.mark.parametrize(
    "impl", [defer, twisted_defer], ids=["treadle", "twisted"]
)


@pytest.fixture
def debugging() -> Generator[None, None, None]:
    was = defer.getDebugging()
    defer.setDebugging(True)
    yield
    defer.setDebugging(was)


def _outcome(d: Any) -> Any:
    """(called, result or failure type name), read without touching the chain."""
    if not d.called:
        return (False, None)
    result = d.result
    if hasattr(result, "value") and hasattr(result, "trap"):
        return (True, type(result.value).__name__)
    return (True, result)


def _eager_scenarios(impl: Any) -> list[Any]:
    """The same coroutine programs, run by ``impl``'s ensureDeferred; what a program sees."""
    seen: list[Any] = []

    async def constant() -> int:
        return 1

    async def fired() -> int:
        return await impl.succeed(2) + 1

    pending = impl.Deferred()

    async def waits() -> int:
        value = await pending
        seen.append(("resumed with", value))
        return value * 2

    async def raises() -> None:
        raise KeyError("k")

    uncancellable = impl.Deferred()

    async def handles_cancel() -> str:
        try:
            await uncancellable
        except impl.CancelledError:
            return "handled"
        return "not cancelled"

    inner_pending = impl.Deferred()

    async def inner() -> int:
        return await inner_pending + 1

    async def outer() -> int:
        return await impl.ensureDeferred(inner()) + 10

    seen.append(_outcome(impl.ensureDeferred(constant())))
    seen.append(_outcome(impl.Deferred.fromCoroutine(fired())))
    d = impl.ensureDeferred(waits())
    seen.append(_outcome(d))
    pending.callback(21)
    seen.append(_outcome(d))
    failing = impl.ensureDeferred(raises())
    seen.append(_outcome(failing))
    failing.addErrback(lambda f: None)
    d = impl.ensureDeferred(handles_cancel())
    seen.append(_outcome(d))
    d.cancel()
    seen.append(_outcome(d))
    seen.append(_outcome(impl.maybeDeferred(constant)))
    d = impl.ensureDeferred(outer())
    seen.append(_outcome(d))
    inner_pending.callback(1)
    seen.append(_outcome(d))
    return seen


def test_ensure_deferred_is_eager_as_in_twisted() -> None:
    treadle_seen = _eager_scenarios(defer)
    twisted_seen = _eager_scenarios(twisted_defer)
    assert treadle_seen == twisted_seen
    assert (True, 1) in treadle_seen  # a coroutine that awaits nothing pending is done at once


def test_eager_coroutine_runs_in_its_own_context() -> None:
    var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="outside")

    async def sets() -> str:
        var.set("inside")
        await succeed(None)
        return var.get()

    assert ensureDeferred(sets()).result == "inside"
    assert var.get() == "outside"


def test_eager_coroutine_continues_as_a_task_after_an_asyncio_await() -> None:
    tasks: list[object] = []

    async def mixed(d: Deferred[int]) -> int:
        tasks.append(asyncio.current_task())
        value = await d  # resumed synchronously by the Deferred
        tasks.append(asyncio.current_task())
        await asyncio.sleep(0)  # from here on, an asyncio Task
        tasks.append(asyncio.current_task())
        return value + await succeed(1) + await _later(asyncio.get_running_loop(), 10)

    async def main() -> None:
        d: Deferred[int] = Deferred()
        result = ensureDeferred(mixed(d))
        d.callback(1)
        assert not result.called
        assert await result == 12
        assert tasks[0] is tasks[1]  # still run by whoever fired the Deferred
        assert isinstance(tasks[2], asyncio.Task) and tasks[2] is not tasks[0]

    asyncio.run(main())


def _later(loop: asyncio.AbstractEventLoop, value: int) -> Deferred[int]:
    d: Deferred[int] = Deferred()
    loop.call_soon(d.callback, value)
    return d


def test_cancelling_a_task_awaiting_a_deferred_cancels_the_deferred() -> None:
    cancelled: list[Deferred[Any]] = []

    async def main() -> None:
        d: Deferred[int] = Deferred(cancelled.append)

        async def waiter() -> int:
            return await d

        task = asyncio.ensure_future(waiter())
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert cancelled == [d]

    asyncio.run(main())


def test_await_in_a_task_takes_the_result_as_as_future_does() -> None:
    async def main() -> None:
        d: Deferred[int] = Deferred()
        task = asyncio.ensure_future(_await_it(d))
        await asyncio.sleep(0)  # the task now waits on d
        d.callback(3)
        assert await task == 3
        assert d.result is None

    asyncio.run(main())


async def _await_it(d: Deferred[int]) -> int:
    return await d


def test_debugging_switch() -> None:
    was = defer.getDebugging()
    try:
        defer.setDebugging(True)
        assert defer.getDebugging() is True and Deferred.debug is True
        defer.setDebugging(False)
        assert defer.getDebugging() is False
    finally:
        defer.setDebugging(was)


def _fire_first(d: Deferred[str]) -> None:
    d.callback("hello")


def _fire_again(d: Deferred[str]) -> None:
    d.errback(Failure(RuntimeError()))


@pytest.mark.usefixtures("debugging")
@IMPLEMENTATIONS
def test_already_called_shows_creator_and_first_invoker(impl: Any) -> None:
    def make() -> Any:
        return impl.Deferred()

    was = impl.getDebugging()
    impl.setDebugging(True)
    try:
        d = make()
        _fire_first(d)
        with pytest.raises(impl.AlreadyCalledError) as info:
            _fire_again(d)
    finally:
        impl.setDebugging(was)
    lines = str(info.value.args[0]).split("\n")

    def count(kind: str, func: str) -> int:
        marked = (line for line in lines if line.startswith(f" {kind}:"))
        return sum(1 for line in marked if line.endswith(f" {func}"))

    assert count("C", "make") == 1
    assert count("C", "_fire_first") == 0
    assert count("I", "_fire_first") == 1
    assert count("I", "_fire_again") == 0


def test_already_called_without_debugging_names_the_deferred() -> None:
    d: Deferred[int] = Deferred()
    d.callback(1)
    with pytest.raises(AlreadyCalledError, match="has already fired") as info:
        d.callback(2)
    assert " C:" not in str(info.value)


@IMPLEMENTATIONS
def test_debugging_one_deferred_records_its_first_invoker(impl: Any) -> None:
    assert not impl.getDebugging()
    d = impl.Deferred()
    d.debug = True
    _fire_first(d)
    with pytest.raises(impl.AlreadyCalledError) as info:
        _fire_again(d)
    text = str(info.value)
    assert " I: First Invoker was:" in text
    assert " C:" not in text  # it was made before debugging was on
    assert impl.Deferred.debug is False


@IMPLEMENTATIONS
def test_debugging_captures_variables_in_failures(impl: Any) -> None:
    was = impl.getDebugging()
    try:
        for on in (False, True):
            impl.setDebugging(on)
            d = impl.Deferred()
            seen: list[Any] = []
            try:
                raise KeyError("bang")
            except KeyError:
                d.errback()
            d.addErrback(seen.append)
            raising = impl.succeed(None)
            raising.addCallback(lambda _: 1 / 0).addErrback(seen.append)
            for failure in seen:
                local_items, global_items = failure.frames[0][-2:]
                if on:
                    assert list(local_items) != [] and list(global_items) != []
                else:
                    assert local_items == () and global_items == ()
    finally:
        impl.setDebugging(was)


@IMPLEMENTATIONS
def test_add_callbacks_accepts_none_arguments(impl: Any) -> None:
    d = impl.Deferred()
    out: list[Any] = []
    d.addCallbacks(
        lambda r: out.append(r),
        lambda f: out.append(f),
        callbackArgs=None,
        callbackKeywords=None,
        errbackArgs=None,
        errbackKeywords=None,
    )
    d.callback(4)
    assert out == [4]


def test_small_helpers() -> None:
    assert defer.passthru(5) == 5
    assert defer.SUCCESS is True and defer.FAILURE is False
    fired = defer.execute(lambda a: [a], 1)
    assert fired.result == [1]
    assert failure_of(defer.execute(lambda: 1 / 0)).check(ZeroDivisionError)
    inner: Deferred[int] = Deferred()
    assert defer.execute(lambda: inner).result is inner  # taken as is, unlike maybeDeferred
    inner.callback(1)


def test_log_error_logs_and_passes_the_failure_on(caplog: pytest.LogCaptureFixture) -> None:
    d = fail(KeyError("logged"))
    with caplog.at_level(logging.ERROR, logger=ERROR_LOGGER):
        d.addErrback(defer.logError)
    assert failure_of(d).check(KeyError)
    assert any("logged" in r.getMessage() for r in caplog.records)


def test_timeout_is_deprecated_and_fails_the_deferred() -> None:
    d: Deferred[int] = Deferred()
    with pytest.warns(DeprecationWarning):
        defer.timeout(d)  # type: ignore[arg-type]
    assert failure_of(d).check(defer.TimeoutError)


@IMPLEMENTATIONS
def test_race_first_success_cancels_the_rest(impl: Any) -> None:
    cancelled: list[int] = []
    ds = [impl.Deferred(lambda d, i=i: cancelled.append(i)) for i in range(3)]
    raced = impl.race(ds)
    ds[1].callback("b")
    assert raced.result == (1, "b")
    assert cancelled == [0, 2]
    for d in (ds[0], ds[2]):
        d.addErrback(lambda f: None)


@IMPLEMENTATIONS
def test_race_all_failing_gives_a_failure_group(impl: Any) -> None:
    ds = [impl.Deferred() for _ in range(2)]
    raced = impl.race(ds)
    ds[1].errback(KeyError("second"))
    ds[0].errback(ValueError("first"))
    out: list[Any] = []
    raced.addErrback(out.append)
    (failure,) = out
    assert isinstance(failure.value, impl.FailureGroup)
    assert [f.type for f in failure.value.failures] == [ValueError, KeyError]


@IMPLEMENTATIONS
def test_deferred_lock(impl: Any) -> None:
    lock = impl.DeferredLock()
    first = lock.acquire()
    assert first.result is lock and lock.locked
    second = lock.acquire()
    third = lock.acquire()
    assert not second.called and len(lock.waiting) == 2
    third.cancel()
    third.addErrback(lambda f: None)
    assert len(lock.waiting) == 1
    lock.release()
    assert second.result is lock and lock.locked
    lock.release()
    assert not lock.locked
    ran = lock.run(lambda x: x * 2, 21)
    assert ran.result == 42 and not lock.locked


def test_releasing_an_unlocked_lock_raises() -> None:
    with pytest.raises(RuntimeError):
        defer.DeferredLock().release()
    with pytest.raises(RuntimeError):
        defer.DeferredSemaphore(1).release()
    with pytest.raises(ValueError):
        defer.DeferredSemaphore(0)


@IMPLEMENTATIONS
def test_deferred_semaphore(impl: Any) -> None:
    sem = impl.DeferredSemaphore(2)
    a, b, c = sem.acquire(), sem.acquire(), sem.acquire()
    assert a.called and b.called and not c.called
    assert sem.tokens == 0 and sem.limit == 2
    sem.release()
    assert c.result is sem and sem.tokens == 0
    sem.release()
    sem.release()
    assert sem.tokens == 2


@IMPLEMENTATIONS
def test_lock_as_async_context_manager(impl: Any) -> None:
    lock = impl.DeferredLock()
    held: list[bool] = []

    async def body() -> None:
        async with lock:
            held.append(lock.locked)

    impl.ensureDeferred(body())
    assert held == [True] and not lock.locked


@IMPLEMENTATIONS
def test_deferred_queue(impl: Any) -> None:
    queue = impl.DeferredQueue(size=1, backlog=1)
    waiting = queue.get()
    assert not waiting.called
    with pytest.raises(impl.QueueUnderflow):
        queue.get()
    queue.put("a")
    assert waiting.result == "a"
    queue.put("b")
    with pytest.raises(impl.QueueOverflow):
        queue.put("c")
    assert queue.get().result == "b"
    cancelled = queue.get()
    cancelled.cancel()
    cancelled.addErrback(lambda f: None)
    assert queue.waiting == []


def test_add_timeout_on_a_clock() -> None:
    clock = Clock()
    d: Deferred[int] = Deferred()
    d.addTimeout(2, clock, onTimeoutCancel=None)
    clock.advance(2)
    assert failure_of(d).check(defer.TimeoutError, CancelledError) is defer.TimeoutError


def test_from_future_and_as_future_exist() -> None:
    assert callable(Deferred.fromFuture) and callable(Deferred.asFuture)
    assert callable(Deferred.fromCoroutine)
    with pytest.raises(NotACoroutineError):
        Deferred.fromCoroutine(succeed(1))  # type: ignore[arg-type]


#: Public names of twisted.internet.defer that treadle leaves out, and why.
SKIPPED_NAMES: dict[str, str] = {}


def _twisted_public_names() -> set[str]:
    names = set(twisted_defer.__all__)
    for name, value in vars(twisted_defer).items():
        if name.startswith("_") or isinstance(value, types.ModuleType):
            continue
        if inspect.isclass(value) or inspect.isfunction(value):
            if getattr(value, "__module__", None) == twisted_defer.__name__:
                names.add(name)
        elif name.isupper():
            names.add(name)
    return names - {"TYPE_CHECKING"}


def test_treadle_defer_has_twisted_public_names() -> None:
    treadle_defer = importlib.import_module("treadle.internet.defer")
    missing = sorted(
        name
        for name in _twisted_public_names()
        if not hasattr(treadle_defer, name) and name not in SKIPPED_NAMES
    )
    assert missing == []
    assert not any(hasattr(treadle_defer, name) for name in SKIPPED_NAMES)


def test_public_classes_show_under_the_public_module() -> None:
    for cls in (Deferred, CancelledError, FirstError, defer.DeferredLock, defer.FailureGroup):
        assert cls.__module__ == "treadle.internet.defer"
    failure = Failure(CancelledError())
    assert failure.check("treadle.internet.defer.CancelledError")
