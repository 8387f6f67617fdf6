"""Cooperative tasks: long work cut into iterator steps, run without blocking the loop.

``task.cooperate(iterator)`` and ``task.coiterate(iterator)`` (re-exported by
:mod:`treadle.internet.task`, where Twisted has them) hand an iterator to the global
:class:`Cooperator`, which calls ``next()`` on its tasks in turn for at most a hundredth of
a second per loop turn, then lets the loop do its I/O. A step that yields a Deferred pauses
its task until that Deferred fires.

Differences from Twisted, on purpose:

* The default scheduler runs the next turn with ``callLater(0)`` (a ready handle, after the
  loop has polled for I/O) instead of a timer of 10 ns, which costs a timer per turn and
  means the same thing; the time slice is measured on the monotonic clock.
* :meth:`Cooperator.stop` ends every task; Twisted's removes tasks from the list it is
  walking and so leaves every other task's ``whenDone`` unfired.
* An iterator raising ``KeyboardInterrupt`` or ``SystemExit`` lets it propagate instead of
  failing the task.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

from treadle.internet.base import DelayedCall
from treadle.internet.defer import Deferred
from treadle.python.failure import Failure

__all__ = [
    "CooperativeTask",
    "Cooperator",
    "NotPaused",
    "SchedulerError",
    "SchedulerStopped",
    "TaskDone",
    "TaskFailed",
    "TaskFinished",
    "TaskStopped",
    "coiterate",
    "cooperate",
]

_IteratorT = TypeVar("_IteratorT", bound=Iterator[Any])


class SchedulerError(Exception):
    """The scheduler or one of its tasks was in a state that does not allow the operation."""


class SchedulerStopped(SchedulerError):
    """The cooperator was stopped (before or while the task ran)."""


class TaskFinished(SchedulerError):
    """The task has ended (completed, stopped or failed): it cannot be changed any more."""


class TaskDone(TaskFinished):
    """The task's iterator is exhausted."""


class TaskStopped(TaskFinished):
    """The task was stopped with :meth:`CooperativeTask.stop`."""


class TaskFailed(TaskFinished):
    """The task's iterator raised an exception."""


class NotPaused(SchedulerError):
    """``resume()`` was called on a task that is not paused."""


class _TimeSlice:
    """Ends a cooperator's turn after a hundredth of a second."""

    MAX_SLICE = 0.01

    def __init__(self) -> None:
        self.end = time.monotonic() + self.MAX_SLICE

    def __call__(self) -> bool:
        return time.monotonic() >= self.end


def _next_turn(step: Callable[[], None]) -> DelayedCall:
    # Imported here: the reactor module is loaded only by those who use it (and an object
    # installed with main.installReactor is found).
    from treadle.internet import reactor

    call: DelayedCall = reactor.callLater(0, step)
    return call


class CooperativeTask(Generic[_IteratorT]):
    """A task of a :class:`Cooperator`: pause, resume, stop it, or wait for its end.

    Made by :meth:`Cooperator.cooperate` (or :func:`cooperate`), not directly.
    """

    def __init__(self, iterator: _IteratorT, cooperator: Cooperator) -> None:
        self._iterator = iterator
        self._cooperator = cooperator
        self._deferreds: list[Deferred[Any]] = []
        self._pause_count = 0
        self._completion: SchedulerError | None = None
        self._result: Any = None
        cooperator._add_task(self)

    def whenDone(self) -> Deferred[_IteratorT]:
        """Return a Deferred of the task's end.

        Returns:
            A Deferred firing with the iterator once it is exhausted, or failing with the
            iterator's exception, :class:`TaskStopped` after :meth:`stop`, or
            :class:`SchedulerStopped` when the cooperator stops. Fired at once when the
            task has already ended.
        """
        d: Deferred[_IteratorT] = Deferred()
        if self._completion is None:
            self._deferreds.append(d)
        else:
            d.callback(self._result)
        return d

    def pause(self) -> None:
        """Stop stepping the task until :meth:`resume` (called as many times as this).

        Raises:
            TaskFinished: The task has ended.
        """
        self._check_running()
        self._pause_count += 1
        if self._pause_count == 1:
            self._cooperator._remove_task(self)

    def resume(self) -> None:
        """Undo one :meth:`pause`; the task runs again once every pause is undone.

        Raises:
            NotPaused: The task is not paused.
        """
        if self._pause_count == 0:
            raise NotPaused()
        self._pause_count -= 1
        if self._pause_count == 0 and self._completion is None:
            self._cooperator._add_task(self)

    def stop(self) -> None:
        """End the task now; :meth:`whenDone` Deferreds fail with :class:`TaskStopped`.

        Raises:
            TaskFinished: The task has ended already.
        """
        self._check_running()
        self._complete(TaskStopped(), Failure(TaskStopped()))

    def _check_running(self) -> None:
        if self._completion is not None:
            raise self._completion

    def _complete(self, completion: SchedulerError, result: Any) -> None:
        self._completion = completion
        self._result = result
        if not self._pause_count:
            self._cooperator._remove_task(self)
        # Fired last: a callback may act on the cooperator, which must no longer hold us.
        deferreds, self._deferreds = self._deferreds, []
        for d in deferreds:
            d.callback(result)

    def _step(self) -> None:
        """Take one item from the iterator; pause while a Deferred it yields is pending."""
        try:
            item = next(self._iterator)
        except StopIteration:
            self._complete(TaskDone(), self._iterator)
        except Exception:
            self._complete(TaskFailed(), Failure())
        else:
            if isinstance(item, Deferred):
                self.pause()
                item.addCallbacks(self._waited, self._wait_failed)

    def _waited(self, _: object) -> None:
        self.resume()

    def _wait_failed(self, failure: Failure) -> None:
        self._complete(TaskFailed(), failure)


class Cooperator:
    """Runs iterators a step at a time, taking turns, a time slice per loop turn.

    Args:
        terminationPredicateFactory: Called at the start of each turn; returns a function
            that says when the turn is over (a hundredth of a second, by default).
        scheduler: Called with the function running a turn; schedules it soon (on the
            global reactor, by default) and returns its DelayedCall.
        started: Step tasks as soon as they are added; when False, only after
            :meth:`start`.
    """

    def __init__(
        self,
        terminationPredicateFactory: Callable[[], Callable[[], bool]] = _TimeSlice,
        scheduler: Callable[[Callable[[], None]], Any] = _next_turn,
        started: bool = True,
    ) -> None:
        self._tasks: list[CooperativeTask[Any]] = []
        self._rotation: Iterator[CooperativeTask[Any]] = iter(())
        self._termination = terminationPredicateFactory
        self._scheduler = scheduler
        self._delayed: Any = None
        self._stopped = False
        self._started = started
        self._schedule_on_start = False

    def coiterate(
        self, iterator: _IteratorT, doneDeferred: Deferred[_IteratorT] | None = None
    ) -> Deferred[_IteratorT]:
        """Run ``iterator`` as a task; return a Deferred of its end (see ``whenDone``).

        Args:
            iterator: The work, one step per item.
            doneDeferred: The Deferred to fire; a new one when None.
        """
        done: Deferred[_IteratorT] = Deferred() if doneDeferred is None else doneDeferred
        CooperativeTask(iterator, self).whenDone().chainDeferred(done)
        return done

    def cooperate(self, iterator: _IteratorT) -> CooperativeTask[_IteratorT]:
        """Run ``iterator`` as a task; return the :class:`CooperativeTask`."""
        return CooperativeTask(iterator, self)

    @property
    def running(self) -> bool:
        """True when started and not stopped."""
        return self._started and not self._stopped

    def start(self) -> None:
        """Begin stepping tasks (for a cooperator made with ``started=False``)."""
        self._stopped = False
        self._started = True
        if self._schedule_on_start:
            self._schedule_on_start = False
            self._reschedule()

    def stop(self) -> None:
        """Stop: every task ends, its ``whenDone`` failing with :class:`SchedulerStopped`.

        Tasks added (or resumed) afterwards end the same way at once. (Twisted's skips
        every other task of the list here, leaving their ``whenDone`` unfired.)
        """
        self._stopped = True
        tasks, self._tasks = self._tasks, []
        self._cancel_turn()
        for task in tasks:
            task._complete(SchedulerStopped(), Failure(SchedulerStopped()))

    def _add_task(self, task: CooperativeTask[Any]) -> None:
        self._tasks.append(task)
        if self._stopped:
            task._complete(SchedulerStopped(), Failure(SchedulerStopped()))
        else:
            self._reschedule()

    def _remove_task(self, task: CooperativeTask[Any]) -> None:
        if task in self._tasks:  # stop() has emptied the list already
            self._tasks.remove(task)
        if not self._tasks:
            self._cancel_turn()

    def _cancel_turn(self) -> None:
        delayed, self._delayed = self._delayed, None
        if delayed is not None:
            delayed.cancel()

    def _reschedule(self) -> None:
        if not self._started:
            self._schedule_on_start = True
        elif self._delayed is None and self._tasks:
            self._delayed = self._scheduler(self._turn)

    def _turn(self) -> None:
        """Step the tasks in rotation until the time slice is over or none is left."""
        self._delayed = None
        over = self._termination()
        while self._tasks:
            for task in self._rotation:
                if task._pause_count or task._completion is not None:
                    continue  # paused or ended during this round: no longer scheduled
                task._step()
                if over():
                    self._reschedule()
                    return
            # A full round done: start a new one over the tasks present now.
            self._rotation = iter(list(self._tasks))
        self._reschedule()


_global_cooperator = Cooperator()


def coiterate(iterator: _IteratorT) -> Deferred[_IteratorT]:
    """Run ``iterator`` on the global :class:`Cooperator`; return a Deferred of its end.

    Args:
        iterator: The work, one step per item; a Deferred item pauses it until it fires.

    Returns:
        A Deferred firing with the iterator once exhausted, or failing with its exception.
    """
    return _global_cooperator.coiterate(iterator)


def cooperate(iterator: _IteratorT) -> CooperativeTask[_IteratorT]:
    """Run ``iterator`` on the global :class:`Cooperator`; return its :class:`CooperativeTask`.

    Args:
        iterator: The work, one step per item; a Deferred item pauses it until it fires.
    """
    return _global_cooperator.cooperate(iterator)
