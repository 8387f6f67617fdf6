"""The "Deferred Reference" and "Scheduling tasks" howtos as one script run by task.react.

Everything printed is deterministic: time is a task.Clock except for a few reactor.callLater
orderings, which compare only among themselves.
"""

import gc

from twisted.internet import defer, task
from twisted.logger import formatEvent, globalLogPublisher


def show(*args):
    print(*args)


def chain_basics():
    show("-- callbacks and errbacks")
    d = defer.Deferred()
    d.addCallback(lambda r: r + 1)
    d.addCallback(lambda r: 1 / 0 if r == 2 else r)
    d.addErrback(lambda f: (show("errback saw", f.type.__name__, f.getErrorMessage()), 10)[1])
    d.addCallbacks(lambda r: r * 2, lambda f: show("not reached"))
    d.addBoth(lambda r: (show("both saw", r), r)[1])
    d.callback(1)
    show("result", d.result)
    try:
        d.callback(2)
    except defer.AlreadyCalledError:
        show("second callback: AlreadyCalledError")

    show("-- trap and check")

    def handler(f):
        show(
            "check ValueError:",
            f.check(ValueError),
            "check KeyError:",
            f.check(KeyError) is KeyError,
        )
        r = f.trap(LookupError)
        show("trapped", r.__name__, repr(f.value))
        return "recovered"

    d = defer.fail(KeyError("k"))
    d.addErrback(handler)
    d.addCallback(show)
    d = defer.fail(ValueError("v"))
    d.addErrback(handler)
    d.addErrback(lambda f: show("trap re-raised", f.type.__name__, f.value.args))

    show("-- returning a Deferred pauses the chain")
    inner = defer.Deferred()
    outer = defer.succeed("start")
    outer.addCallback(lambda r: inner)
    outer.addCallback(lambda r: show("outer got", r))
    show("outer paused:", outer.paused, "called:", outer.called)
    inner.callback("inner value")
    show("outer paused:", outer.paused)

    show("-- chainDeferred, pause/unpause")
    a, b = defer.Deferred(), defer.Deferred()
    b.addCallback(lambda r: show("b got", r))
    a.chainDeferred(b)
    a.pause()
    a.callback("chained")
    show("a paused, b called:", b.called)
    a.unpause()
    show("b called:", b.called)

    show("-- maybeDeferred")
    defer.maybeDeferred(lambda: 5).addCallback(lambda r: show("maybeDeferred value", r))
    defer.maybeDeferred(lambda: {}["x"]).addErrback(
        lambda f: show("maybeDeferred raised", f.type.__name__)
    )
    defer.maybeDeferred(defer.succeed, 6).addCallback(lambda r: show("maybeDeferred deferred", r))


def lists():
    show("-- gatherResults")
    ds = [defer.Deferred() for _ in range(3)]
    g = defer.gatherResults(ds)
    g.addCallback(lambda r: show("gathered", r))
    ds[2].callback("c")
    ds[0].callback("a")
    ds[1].callback("b")

    ds = [defer.succeed(1), defer.fail(ValueError("bad one")), defer.succeed(3)]
    g = defer.gatherResults(ds, consumeErrors=True)

    def first(f):
        f.trap(defer.FirstError)
        show(
            "FirstError index",
            f.value.index,
            f.value.subFailure.type.__name__,
            f.value.subFailure.getErrorMessage(),
        )

    g.addErrback(first)

    show("-- DeferredList")
    ds = [defer.Deferred() for _ in range(3)]
    dl = defer.DeferredList(ds, consumeErrors=True)
    dl.addCallback(
        lambda results: show(
            "DeferredList", [(ok, r if ok else r.type.__name__) for ok, r in results]
        )
    )
    ds[1].errback(RuntimeError("middle"))
    ds[0].callback("zero")
    ds[2].callback("two")

    ds = [defer.Deferred() for _ in range(3)]
    dl = defer.DeferredList(ds, fireOnOneCallback=True)
    dl.addCallback(lambda r: show("fireOnOneCallback", r))
    ds[2].callback("winner")
    ds[0].callback("late")
    ds[1].callback("later")

    ds = [defer.Deferred() for _ in range(2)]
    dl = defer.DeferredList(ds, fireOnOneErrback=True, consumeErrors=True)
    dl.addErrback(
        lambda f: show(
            "fireOnOneErrback", f.type.__name__, f.value.index, f.value.subFailure.type.__name__
        )
    )
    ds[0].callback("fine")
    ds[1].errback(KeyError("no"))

    defer.DeferredList([]).addCallback(lambda r: show("empty DeferredList", r))
    defer.gatherResults([]).addCallback(lambda r: show("empty gatherResults", r))


def cancellation(clock):
    show("-- cancellation")
    d = defer.Deferred(lambda d: show("canceller ran"))
    d.addErrback(lambda f: show("cancelled:", f.type.__name__))
    d.cancel()
    d.cancel()  # a second cancel does nothing

    d = defer.Deferred()
    d.addCallback(lambda r: show("fired anyway", r))
    d.callback("done")
    d.cancel()  # after firing: nothing

    later = task.deferLater(clock, 5, show, "never")
    later.addErrback(lambda f: show("deferLater cancelled:", f.type.__name__))
    later.cancel()

    d = defer.Deferred()
    d.addTimeout(3, clock)
    d.addErrback(lambda f: show("timed out:", f.type.__name__))
    d2 = defer.Deferred()
    d2.addTimeout(3, clock, onTimeoutCancel=lambda result, timeout: f"gave up after {timeout}")
    d2.addCallback(lambda r: show("onTimeoutCancel:", r))
    d3 = defer.Deferred()
    d3.addTimeout(3, clock)
    d3.addCallback(lambda r: show("in time:", r))
    clock.advance(1)
    d3.callback("quick")
    clock.advance(2)
    show("pending calls after timeouts:", len(clock.getDelayedCalls()))


def scheduling(clock):
    show("-- callLater on a Clock")
    calls = []
    a = clock.callLater(2, calls.append, "a")
    b = clock.callLater(1, calls.append, "b")
    c = clock.callLater(3, calls.append, "c")
    show("active:", a.active(), "getTime:", a.getTime() - clock.seconds())
    b.cancel()
    try:
        b.cancel()
    except Exception as e:
        show("cancel twice:", type(e).__name__)
    a.delay(2)  # now due at +4
    c.reset(1)  # now due at +1
    clock.advance(1)
    show("after 1s:", calls)
    clock.advance(3)
    show("after 4s:", calls, "a active:", a.active())
    try:
        a.cancel()
    except Exception as e:
        show("cancel after call:", type(e).__name__)

    show("-- LoopingCall on a Clock")
    ticks = []
    lc = task.LoopingCall(lambda: ticks.append(clock.seconds()))
    lc.clock = clock
    start = clock.seconds()
    done = lc.start(1.0, now=False)
    done.addCallback(lambda r: show("loop stopped, returned itself:", r is lc))
    clock.advance(1)
    clock.advance(1)
    lc.stop()
    show("ticks at:", [t - start for t in ticks], "running:", lc.running)

    counts = []
    lc = task.LoopingCall.withCount(counts.append)
    lc.clock = clock
    lc.start(1.0)
    clock.advance(3.5)
    clock.advance(0.5)
    lc.stop()
    show("withCount:", counts)

    def boom():
        raise ValueError("loop body failed")

    lc = task.LoopingCall(boom)
    lc.clock = clock
    lc.start(1.0).addErrback(
        lambda f: show("loop failure:", f.getErrorMessage(), "running:", lc.running)
    )


def utilities():
    show("-- DeferredLock, DeferredSemaphore, DeferredQueue")
    lock = defer.DeferredLock()
    order = []
    first = defer.Deferred()
    lock.run(lambda: first).addCallback(order.append)
    lock.run(lambda: "second").addCallback(order.append)
    show("locked:", lock.locked, order)
    first.callback("first")
    show("after release:", lock.locked, order)

    sem = defer.DeferredSemaphore(2)
    held = [defer.Deferred() for _ in range(3)]
    results = []
    for _i, h in enumerate(held):
        sem.run(lambda h=h: h).addCallback(results.append)
    show("semaphore tokens:", sem.tokens, "waiting:", len(sem.waiting))
    held[2].callback(2)
    held[1].callback(1)
    held[0].callback(0)
    show("semaphore results:", results, "tokens:", sem.tokens)

    q = defer.DeferredQueue()
    q.get().addCallback(lambda r: show("queue got", r))
    q.put("x")
    q.put("y")
    q.get().addCallback(lambda r: show("queue got", r))
    q2 = defer.DeferredQueue(size=1)
    q2.put(1)
    try:
        q2.put(2)
    except defer.QueueOverflow:
        show("QueueOverflow")


def unhandled():
    show("-- unhandled error in a Deferred, at garbage collection")
    seen = []

    def observer(event):
        seen.append(event)

    globalLogPublisher.addObserver(observer)
    d = defer.fail(ZeroDivisionError("lost"))
    del d
    gc.collect()
    globalLogPublisher.removeObserver(observer)
    for event in seen:
        failed = event.get("log_failure")
        # (The namespace differs by the package's name: not shown.)
        show(
            "logged:",
            repr(formatEvent(event)),
            event["log_level"].name,
            "isError" in event,
            failed.type.__name__ if failed else None,
        )


@defer.inlineCallbacks
def inline(reactor):
    show("-- inlineCallbacks, ensureDeferred, callLater ordering")
    order = []
    reactor.callLater(0.02, order.append, "later")
    reactor.callLater(0, order.append, "first")
    reactor.callLater(0, order.append, "second")
    value = yield task.deferLater(reactor, 0.05, lambda: "slept")
    show("deferLater value:", value, "order:", order)

    async def coro(x):
        r = await defer.succeed(x * 2)
        try:
            await defer.fail(KeyError("await"))
        except KeyError as e:
            r += len(e.args)
        return r

    r = yield defer.ensureDeferred(coro(20))
    show("coroutine result:", r)
    r = yield defer.Deferred.fromCoroutine(coro(1))
    show("fromCoroutine result:", r)
    try:
        yield defer.fail(IndexError("yielded failure"))
    except IndexError as e:
        show("caught in inlineCallbacks:", e)
    return "main done"


def main(reactor):
    clock = task.Clock()
    chain_basics()
    lists()
    cancellation(clock)
    scheduling(clock)
    utilities()
    unhandled()
    return inline(reactor).addCallback(show)


if __name__ == "__main__":
    task.react(main)
