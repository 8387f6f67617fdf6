"""``ThreadPool``: a pool of worker threads that run blocking calls, as Twisted's.

``twisted.python.threadpool`` ports to this module. A pool is created stopped: work handed to
:meth:`ThreadPool.callInThread` before :meth:`ThreadPool.start` waits in a queue and runs once
the pool starts. Threads are made on demand, up to ``max``; ``min`` of them are made at
``start()`` and idle threads wait for more work rather than exit. :meth:`ThreadPool.stop` lets
the queued work finish, then ends and joins every thread; work handed over after ``stop()`` is
dropped, as in Twisted.

Differences from Twisted, on purpose:

* Each call runs in a copy of the :mod:`contextvars` context it was submitted from (as
  :func:`asyncio.to_thread` does), the standard library's counterpart of the
  ``twisted.python.context`` Twisted's pool carries over.
* A pool nobody stopped does not keep the interpreter from exiting: at interpreter shutdown
  its idle threads end (busy ones finish their call first), as
  :class:`concurrent.futures.ThreadPoolExecutor`'s do. In Twisted the process hangs.
* Bad sizes (negative, or ``min > max``) raise :class:`ValueError`, not an ``AssertionError``
  that ``python -O`` would skip.
* :attr:`ThreadPool.threads` lists the live threads only (Twisted's keeps every thread it
  ever started).
* Errors are logged to the ``treadle.error`` logger with their traceback.
"""

from __future__ import annotations

import contextvars
import logging
import threading
import weakref
from collections import deque
from collections.abc import Callable
from typing import Any, TypeVar

from treadle.python.failure import Failure

__all__ = ["ThreadPool", "WorkerStop"]

_R = TypeVar("_R")

_errors = logging.getLogger("treadle.error")
_messages = logging.getLogger("treadle.log")

#: Twisted's sentinel of the same name, kept for code that imports it; treadle's workers
#: never see it.
WorkerStop = object()

# Pools with threads alive, ended at interpreter shutdown (see _end_pools_at_exit).
_live_pools: weakref.WeakSet[ThreadPool] = weakref.WeakSet()


def _check_sizes(minthreads: int, maxthreads: int) -> None:
    if minthreads < 0:
        raise ValueError(f"minimum number of threads is negative: {minthreads}")
    if minthreads > maxthreads:
        raise ValueError(f"minimum number of threads {minthreads} exceeds maximum {maxthreads}")


class ThreadPool:
    """A pool of threads running the calls it is given, in the order given.

    Args:
        minthreads: Threads started at :meth:`start` and kept while idle.
        maxthreads: Most threads running at once; further calls wait in a queue.
        name: Named in the threads' names (``PoolThread-<name>-<n>``) and in log lines.

    Raises:
        ValueError: ``minthreads`` is negative or greater than ``maxthreads``.

    Attributes:
        min: The ``minthreads`` in force.
        max: The ``maxthreads`` in force.
        name: The pool's name, or None.
        started: True between :meth:`start` and :meth:`stop`.
        joined: True once :meth:`stop` was called (until the next :meth:`start`).
        threads: The pool's live threads.
        threadFactory: Makes the threads (called as ``threading.Thread`` is, with
            ``target`` and ``name``); a hook for tests.
    """

    min: int = 5
    max: int = 20
    joined: bool = False
    started: bool = False
    name: str | None = None
    threadFactory: Callable[..., threading.Thread] = threading.Thread

    def __init__(self, minthreads: int = 5, maxthreads: int = 20, name: str | None = None):
        _check_sizes(minthreads, maxthreads)
        self.min = minthreads
        self.max = maxthreads
        self.name = name
        self.threads: list[threading.Thread] = []
        self._cond = threading.Condition(threading.Lock())
        self._pending: deque[Callable[[], None]] = deque()
        # Counted under _cond: threads alive (idle or busy) and those running a call.
        self._workers = 0
        self._busy = 0
        # Set by stop() (and at interpreter exit): idle threads end once the queue is empty.
        self._quitting = False
        # Threads asked to end by stopAWorker() that have not ended yet.
        self._retiring = 0

    # -- what the pool is doing ---------------------------------------------------------------

    @property
    def workers(self) -> int:
        """The number of threads alive, idle or busy."""
        return self._workers

    @property
    def working(self) -> list[None]:
        """One entry per thread running a call (a list, for Twisted compatibility)."""
        return [None] * self._busy

    @property
    def waiters(self) -> list[None]:
        """One entry per idle thread waiting for work (a list, for Twisted compatibility)."""
        return [None] * (self._workers - self._busy)

    @property
    def q(self) -> _QueueView:
        """An object whose ``qsize()`` is the number of calls waiting for a thread."""
        return _QueueView(self)

    _queue = q

    def dumpStats(self) -> None:
        """Log the number of idle, busy and live threads at INFO to ``treadle.log``."""
        _messages.info("waiters: %s", self.waiters)
        _messages.info("workers: %s", self.working)
        _messages.info("total: %s", self.threads)

    def __repr__(self) -> str:
        state = "started" if self.started else "stopped"
        return (
            f"<ThreadPool {self.name or id(self)} {state} min={self.min} max={self.max} "
            f"workers={self._workers} busy={self._busy} queued={len(self._pending)}>"
        )

    # -- starting, resizing and stopping ----------------------------------------------------------

    def start(self) -> None:
        """Start ``min`` threads, and more (up to ``max``) if queued calls need them."""
        with self._cond:
            self.joined = False
            self.started = True
            self._quitting = False
            wanted = max(self.min, min(len(self._pending), self.max))
            self._grow_to(wanted)

    def startAWorker(self) -> None:
        """Start one more thread, unless ``max`` are alive already (or the pool is stopped)."""
        with self._cond:
            if self.started:
                self._grow_to(self._workers + 1)

    def stopAWorker(self) -> None:
        """End one thread as soon as it is idle."""
        with self._cond:
            self._retiring += 1
            self._cond.notify_all()

    def adjustPoolsize(self, minthreads: int | None = None, maxthreads: int | None = None) -> None:
        """Change ``min`` and ``max``; a started pool starts or ends threads to match.

        Busy threads over the new ``max`` end once their call returns.

        Args:
            minthreads: The new ``min`` (unchanged when None).
            maxthreads: The new ``max`` (unchanged when None).

        Raises:
            ValueError: The new sizes are negative or ``min > max``.
        """
        low = self.min if minthreads is None else minthreads
        high = self.max if maxthreads is None else maxthreads
        _check_sizes(low, high)
        with self._cond:
            self.min, self.max = low, high
            if self.started:
                self._grow_to(self.min)
                self._cond.notify_all()  # idle threads over the new max end

    def stop(self) -> None:
        """Run the calls still queued, then end and join every thread.

        Calls handed over afterwards are dropped (until :meth:`start` is called again). Must
        not be called from one of the pool's own threads (it would wait for itself).
        """
        with self._cond:
            self.joined = True
            self.started = False
            self._quitting = True
            self._cond.notify_all()
            threads = list(self.threads)
        for thread in threads:
            if thread is not threading.current_thread():
                thread.join()

    # -- handing work over --------------------------------------------------------------------

    def callInThread(self, func: Callable[..., object], *args: Any, **kw: Any) -> None:
        """Run ``func(*args, **kw)`` in a pool thread; an exception it raises is logged.

        Args:
            func: The blocking callable.
            *args: Its positional arguments.
            **kw: Its keyword arguments.
        """
        self.callInThreadWithCallback(None, func, *args, **kw)

    def callInThreadWithCallback(
        self,
        onResult: Callable[[bool, Any], object] | None,
        func: Callable[..., _R],
        *args: Any,
        **kw: Any,
    ) -> None:
        """Run ``func(*args, **kw)`` in a pool thread and report its outcome to ``onResult``.

        ``onResult(True, result)`` is called when ``func`` returns, ``onResult(False,
        failure)`` (a :class:`~treadle.python.failure.Failure`) when it raises. ``onResult``
        runs in the pool thread, not the caller's: to get back to the reactor it typically
        calls ``reactor.callFromThread``. It must not block. An exception it raises is logged.

        Args:
            onResult: Told the outcome, or None to only log an exception.
            func: The blocking callable, run in the caller's :mod:`contextvars` context.
            *args: Its positional arguments.
            **kw: Its keyword arguments.
        """
        if self.joined:
            return
        context = contextvars.copy_context()

        def work() -> None:
            try:
                result: Any = context.run(func, *args, **kw)
                ok = True
            except BaseException:
                result = Failure()
                ok = False
            if onResult is not None:
                onResult(ok, result)
            elif not ok:
                where = self.name or id(self)
                _errors.error("Unhandled error in thread pool %s", where, exc_info=_exc(result))

        with self._cond:
            if self.joined:
                return
            self._pending.append(work)
            idle = self._workers - self._busy
            if self.started and idle < len(self._pending):
                self._grow_to(self._workers + 1)
            self._cond.notify()

    # -- the threads --------------------------------------------------------------------------

    def _grow_to(self, count: int) -> None:
        # Called with _cond held.
        while self._workers < min(count, self.max):
            name = f"PoolThread-{self.name or id(self)}-{self._workers}"
            thread = self.threadFactory(target=self._worker, name=name)
            self._workers += 1
            self.threads.append(thread)
            _live_pools.add(self)
            thread.start()

    def _next_call(self) -> Callable[[], None] | None:
        """Wait for a call to run; None when this thread is to end."""
        with self._cond:
            while True:
                if self._retiring:
                    self._retiring -= 1
                    break
                if self._workers > self.max:
                    break
                if self._pending:
                    self._busy += 1
                    return self._pending.popleft()
                if self._quitting:
                    break
                self._cond.wait()
            self._workers -= 1
            current = threading.current_thread()
            if current in self.threads:
                self.threads.remove(current)
            return None

    def _worker(self) -> None:
        while (call := self._next_call()) is not None:
            try:
                call()
            except BaseException:
                _errors.exception("Unhandled error in thread pool %s", self.name or id(self))
            finally:
                del call  # drop the call's arguments before waiting for the next one
                with self._cond:
                    self._busy -= 1

    def _end_at_exit(self) -> None:
        with self._cond:
            self._quitting = True
            self._cond.notify_all()

    # Pickling keeps the sizes only, as Twisted's pool does.
    def __getstate__(self) -> dict[str, Any]:
        """Return the picklable state: the sizes (and name)."""
        return {"min": self.min, "max": self.max, "name": self.name}

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Rebuild a stopped pool of the pickled sizes."""
        ThreadPool.__init__(self, state["min"], state["max"], state.get("name"))


class _QueueView:
    """What Twisted's ``ThreadPool.q`` offers: ``qsize()``."""

    def __init__(self, pool: ThreadPool) -> None:
        self._pool = pool

    def qsize(self) -> int:
        """Return the number of calls waiting for a thread."""
        return len(self._pool._pending)


def _exc(failure: Failure) -> tuple[type[BaseException], BaseException, Any]:
    return (failure.type, failure.value, failure.tb)


def _end_pools_at_exit() -> None:
    # Runs before the interpreter joins its non-daemon threads: idle pool threads end instead
    # of keeping the process alive.
    for pool in list(_live_pools):
        pool._end_at_exit()


# threading's own hook for this (used by concurrent.futures); atexit would run too late, after
# the interpreter has already started waiting for the threads.
_register_atexit: Callable[[Callable[[], None]], None] | None = getattr(
    threading, "_register_atexit", None
)
if _register_atexit is not None:
    _register_atexit(_end_pools_at_exit)
