"""Many timed calls under one timer of the loop: a heap of deadlines.

A loop timer per pending call (``loop.call_later``) costs a TimerHandle, a libuv timer and a
Context, some 450 to 600 bytes of which the cyclic GC tracks three objects. Two kinds of calls
wait by the thousand in a server: ``reactor.callLater`` (every ``deferLater`` of a pending
response) and each connection's timeout check. Both are kept in a :class:`TimerHeap`
instead: an entry is one small object in a heap, under a single timer armed for the earliest.

Entries are kept in the heap's own clock (:attr:`TimerHeap.now`); the loop timer is only given
a delay, and is a wake-up: an entry runs once that clock has reached its time (less the
heap's ``slack``), so a timer that fires early, as libuv's can, runs nothing before its time
and is armed again.

The object scheduled (the *owner*) records its live entry in its ``_handle`` attribute.
Cancelling or rescheduling empties the entry (:meth:`TimerHeap.discard`), so the heap holds
no reference to a cancelled owner (a closed connection is freed at once); the empty entry is
skipped when it comes up, and the heap is rebuilt without empty entries once they are the
majority. When an entry is due, the heap clears ``owner._handle`` and calls ``owner._due()``.

Calls "soon" (at the loop's next turn) have the same cost, a Handle and a Context each, and a
server makes one per streamed response: a response written and finished in one callback
holds its first bytes for a turn (see :meth:`~treadle.web._request_core.RequestCore.write`).
When thousands of pending responses come due together, their Handles lived together until
the turn ended, some 300 bytes each of peak memory. A :class:`SoonBatch` runs every owner it
was given in a turn from one loop callback, and keeps nothing per owner but a list slot. The
HTTP/1.1 channels holding small responses until the turn ends are owners of the same batch
(see :mod:`treadle.web._channel_core`).
"""

from __future__ import annotations

import functools
import heapq
import time
from collections.abc import Callable
from typing import Any, Final, Protocol

__all__ = ["MAX_WAIT", "SoonBatch", "TimerHeap"]

#: Seconds the first bounded owner of a :class:`SoonBatch` on a running loop may wait for the
#: turn to end before one added after it runs them at once. A turn of fast callbacks (a few
#: dozen responses of some microseconds each) stays well under it.
MAX_WAIT: Final = 0.001

#: Stale entries tolerated before the heap is considered for a rebuild.
_REBUILD_AFTER: Final = 64


class Owner(Protocol):
    """What a :class:`TimerHeap` schedules."""

    _handle: Any

    def _due(self) -> None: ...


class SoonOwner(Protocol):
    """What a :class:`SoonBatch` runs."""

    def _run_soon(self) -> None: ...


class Entry:
    """One owner's place in a :class:`TimerHeap`: its time due, and the owner until discarded.

    A class with slots rather than the list ``[when, seq, owner, heap]`` it replaces: compiled,
    its time and sequence number are native fields, so an entry is one object of some 70 bytes
    where the list, its float and its int took some 140 (two entries wait per pending
    ``deferLater`` response: its call's and its connection's timeout check).

    Args:
        when: The time due, in the heap's clock.
        seq: The heap's sequence number: owners due at the same time run in scheduling order.
        owner: What runs; None once discarded.
        heap: The heap holding the entry (so that its owner's cancellation finds it).
    """

    __slots__ = ("heap", "owner", "seq", "when")

    def __init__(self, when: float, seq: int, owner: Any, heap: TimerHeap) -> None:
        self.when = when
        self.seq = seq
        self.owner: Any = owner
        self.heap = heap

    def __lt__(self, other: Entry) -> bool:
        """Earlier due first; at the same time, scheduled first."""
        if self.when != other.when:
            return self.when < other.when
        return self.seq < other.seq


class TimerHeap:
    """Owners due at given times of one clock, run from a single timer of the loop.

    Args:
        source: The loop (or test clock) the heap belongs to; kept for its users to tell
            heaps of different loops apart.
        call_later: ``call_later(delay, callback)`` returning something with ``cancel()``:
            the loop's, or a test clock's ``callLater``. Only ever given a delay, so its own
            clock need not be ``now``.
        now: The clock the entries' times are in (kept as :attr:`now`).
        slack: How early an entry may run, for owners that can tell no difference (a
            connection's timeout), to spare a second wake-up when the loop timer fires a
            little early. 0, never early, for calls with a promised time (``callLater``).
        tick: The shortest delay the loop timer is armed with while the earliest entry is
            not yet due. A libuv timer counts whole milliseconds from a truncated clock, so it
            can fire up to a millisecond and a half early, and arming it again for the
            sub-millisecond remainder would make it a ready callback, run on every loop
            iteration until the entry is due. 0 for a test clock.
    """

    __slots__ = (
        "_armed_at",
        "_call_later",
        "_handle",
        "_heap",
        "_running",
        "_seq",
        "_slack",
        "_stale",
        "_tick",
        "now",
        "source",
    )

    def __init__(
        self,
        source: object,
        call_later: Callable[[float, Callable[[], None]], Any],
        now: Callable[[], float],
        slack: float = 0.0,
        tick: float = 0.0,
    ) -> None:
        self.source = source
        self._call_later = call_later
        self.now = now
        self._slack = slack
        self._tick = tick
        self._running = False
        self._heap: list[Entry] = []
        self._seq = 0
        self._stale = 0
        self._handle: Any = None
        self._armed_at = 0.0

    def add(self, owner: Owner, delay: float) -> None:
        """Run ``owner._due()`` ``delay`` seconds from now; ``owner._handle`` is its entry."""
        self.add_at(owner, self.now() + delay)

    def add_at(self, owner: Owner, when: float) -> None:
        """Run ``owner._due()`` once :attr:`now` reaches ``when``; ``owner._handle`` is its entry.

        The time is kept as given, so an owner that knows its own due time (a DelayedCall's
        ``time``) runs by that very number rather than by a second reading of the clock.
        """
        self._seq += 1
        entry = Entry(when, self._seq, owner, self)
        owner._handle = entry
        heapq.heappush(self._heap, entry)
        # While the heap runs its entries, it arms the timer for whatever is earliest once
        # it is done; arming here for this entry could skip an earlier one still held.
        if not self._running and (self._handle is None or when < self._armed_at):
            self._arm(when)

    def discard(self, owner: Owner) -> None:
        """Forget ``owner``'s entry (cancelled, or about to be scheduled again)."""
        entry: Entry = owner._handle
        owner._handle = None
        entry.owner = None
        self._stale += 1
        heap = self._heap
        if self._stale > _REBUILD_AFTER and self._stale * 2 > len(heap):
            heap[:] = [live for live in heap if live.owner is not None]
            heapq.heapify(heap)
            self._stale = 0

    def pending(self) -> list[Any]:
        """The owners of the entries still due to run, earliest first."""
        return [entry.owner for entry in sorted(self._heap) if entry.owner is not None]

    def __len__(self) -> int:
        """Entries held, stale ones included."""
        return len(self._heap)

    def _arm(self, when: float) -> None:
        if self._handle is not None:
            self._handle.cancel()
        self._armed_at = when
        delay = when - self.now()
        if delay <= 0.0:
            delay = 0.0
        elif delay < self._tick:
            delay = self._tick
        self._handle = self._call_later(delay, self._run)

    def _run(self) -> None:
        self._handle = None
        self._running = True
        heap = self._heap
        now = self.now()
        end = now + self._slack
        # Entries added from now on (by the owners run) are told apart by their sequence number.
        last_seq = self._seq
        try:
            while heap:
                entry = heap[0]
                when = entry.when
                # The slack is for entries already waiting. One an owner adds in this pass
                # runs in it only if already due: were the slack granted again, an owner that
                # reschedules itself a little ahead would run over and over (with a clock that
                # stands still for a millisecond, as libuv's, until that clock moves on).
                if when > end or (when > now and entry.seq > last_seq):
                    break
                heapq.heappop(heap)
                owner = entry.owner
                if owner is None:
                    self._stale -= 1
                    continue
                owner._handle = None
                owner._due()
        finally:
            self._running = False
            if heap:
                self._arm(heap[0].when)


class SoonBatch:
    """``call_soon`` for one loop, which can also run many owners from one loop callback.

    Called with a callback, it is the loop's ``call_soon`` (the callback keeps its own Handle
    and context). :meth:`add` and :meth:`add_bounded` are for treadle's own deferred work
    that runs no application code: the owners added during a turn run from a single
    callback scheduled by the first of them, so they share that callback's context; those
    of :meth:`add_bounded` first, then those of :meth:`add`, each kind in the order added.

    An owner of :meth:`add` waits for the turn to end, whatever it takes: its work depends on
    the callback that added it being over (a response written and then finished in the same
    callback goes out whole). The work of an owner of :meth:`add_bounded` may be done at any
    point (it writes responses already finished), and on a running loop none waits much
    longer than :data:`MAX_WAIT`: one added once the first of the turn has waited that long
    runs them all at once. A turn of slow callbacks (a resource computing for milliseconds,
    one request after another) then sends its responses nearly as they come, rather than
    all at its end.

    Args:
        call_soon: The loop's ``call_soon``, or a test clock's equivalent.
        on_loop: Whether ``call_soon`` is a running loop's (its next turn comes by itself),
            rather than a test clock's (whose next turn is the test's next ``advance``, and
            which has no wait to bound).
        now: The clock :data:`MAX_WAIT` is measured on.

    Attributes:
        on_loop: As given.
    """

    __slots__ = (
        "_bounded",
        "_call_soon",
        "_now",
        "_owners",
        "_scheduled",
        "_since",
        "_turn_began",
        "_turns",
        "on_loop",
    )

    def __init__(
        self,
        call_soon: Callable[[Callable[[], object]], object],
        *,
        on_loop: bool = False,
        now: Callable[[], float] = time.monotonic,
    ) -> None:
        self._call_soon = call_soon
        self._owners: list[Any] | None = None
        self._bounded: list[Any] | None = None
        self._scheduled = False
        self.on_loop = on_loop
        self._now = now
        self._since = 0.0  # when the first of the bounded owners was added
        self._turns = 0  # see turn()
        self._turn_began = 0.0  # when the number turn() gives was first given

    def __call__(self, callback: Callable[[], object]) -> object:
        """Run ``callback`` at the loop's next turn, as the loop's ``call_soon`` does."""
        return self._call_soon(callback)

    def add(self, owner: SoonOwner) -> None:
        """Call ``owner._run_soon()`` once the turn is over: at the loop's next turn."""
        owners = self._owners
        if owners is None:
            self._owners = [owner]
            self.reserve()
        else:
            owners.append(owner)

    def add_bounded(self, owner: SoonOwner) -> None:
        """Call ``owner._run_soon()`` at the loop's next turn, or sooner in a slow turn (see
        the class docstring)."""
        bounded = self._bounded
        if bounded is None:
            self._bounded = [owner]
            self.reserve()
            if self.on_loop:
                self._since = self._now()
        else:
            bounded.append(owner)
            if self.on_loop and self._now() - self._since > MAX_WAIT:
                self._run_bounded_now()

    def turn(self) -> int:
        """A number that stays the same until the loop's next turn, and for at most
        :data:`MAX_WAIT`: what was learnt under it may be taken as still true meanwhile."""
        now = self._now()
        if not self._scheduled:
            self.reserve()
            self._turn_began = now
        if now - self._turn_began > MAX_WAIT:
            self._turns += 1
            self._turn_began = now
        return self._turns

    def reserve(self) -> None:
        """Schedule the turn's callback now, if it is not yet: owners added later in the turn
        then run before the callbacks scheduled after this call (a resource's
        ``callLater(0, ...)`` made while it rendered does not hold its response back)."""
        if not self._scheduled:
            self._scheduled = True
            self._call_soon(self._run)

    def discard(self, owner: SoonOwner) -> None:
        """Forget ``owner`` if it is the last one :meth:`add` took (the case worth the cost
        of a look)."""
        owners = self._owners
        if owners and owners[-1] is owner:
            owners.pop()

    def _run_bounded_now(self) -> None:
        # The turn's callback stays scheduled for the rest. The caller is some request's
        # code: an owner's error goes to the loop, as it would have from that callback.
        bounded = self._bounded
        self._bounded = None
        self._turns += 1
        if bounded is None:
            return
        for owner in bounded:
            try:
                owner._run_soon()
            except Exception as e:
                self._call_soon(functools.partial(_raise, e))

    def _run(self) -> None:
        # Owners added while these run wait for the next turn, under a callback of their own.
        self._scheduled = False
        self._turns += 1
        owners = self._bounded
        plain = self._owners
        self._bounded = self._owners = None
        if owners is None:
            if plain is None:
                return
            owners = plain
        elif plain is not None:
            owners.extend(plain)
        for i, owner in enumerate(owners):
            try:
                owner._run_soon()
            except BaseException:
                # The loop reports the error as any callback's; the owners not yet run go
                # on at the next turn rather than being dropped.
                rest = owners[i + 1 :]
                if rest:
                    if self._owners is None:
                        self._owners = rest
                        self.reserve()
                    else:
                        self._owners[:0] = rest
                raise


def _raise(error: BaseException) -> None:
    """Raise ``error`` (from a loop callback: the loop reports it)."""
    raise error
