"""Many timed calls under one timer of the loop: a heap of deadlines.

A loop timer per pending call (``loop.call_later``) costs a TimerHandle, a libuv timer and a
Context, some 450 to 600 bytes of which the cyclic GC tracks three objects. Two kinds of calls
wait by the thousand in a server: ``reactor.callLater`` (every ``deferLater`` of a pending
response) and each connection's timeout check. Both are kept in a :class:`TimerHeap`
instead: an entry is one tuple in a heap, under a single timer armed for the earliest.

The object scheduled (the *owner*) records its live entry in its ``_handle`` attribute.
Cancelling or rescheduling empties the entry (:meth:`TimerHeap.discard`), so the heap holds
no reference to a cancelled owner (a closed connection is freed at once); the empty entry is
skipped when it comes up, and the heap is rebuilt without empty entries once they are the
majority. When an entry is due, the heap clears ``owner._handle`` and calls ``owner._due()``.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from typing import Any, Protocol

__all__ = ["TimerHeap"]

#: Stale entries tolerated before the heap is considered for a rebuild.
_REBUILD_AFTER = 64


class Owner(Protocol):
    """What a :class:`TimerHeap` schedules."""

    _handle: Any

    def _due(self) -> None: ...


# [time due, sequence number, owner or None once discarded, heap]; the sequence number keeps
# owners due at the same time in scheduling order and the entries comparable (a list, so
# that discarding can drop the owner).
Entry = list[Any]


class TimerHeap:
    """Owners due at given times of one clock, run from a single timer of that clock.

    Args:
        source: The loop (or test clock) the heap belongs to; kept for its users to tell
            heaps of different loops apart.
        call_later: ``call_later(delay, callback)`` returning something with ``cancel()``:
            the loop's, or a test clock's ``callLater``.
        now: The clock ``call_later`` counts in (kept as :attr:`now`).
        slack: How early an entry may run: a loop timer can wake up to a clock tick early
            (asyncio's own loop allows the same); none for a test clock.
    """

    __slots__ = (
        "_armed_at",
        "_call_later",
        "_handle",
        "_heap",
        "_seq",
        "_slack",
        "_stale",
        "now",
        "source",
    )

    def __init__(
        self,
        source: object,
        call_later: Callable[[float, Callable[[], None]], Any],
        now: Callable[[], float],
        slack: float = 0.0,
    ) -> None:
        self.source = source
        self._call_later = call_later
        self.now = now
        self._slack = slack
        self._heap: list[Entry] = []
        self._seq = 0
        self._stale = 0
        self._handle: Any = None
        self._armed_at = 0.0

    def add(self, owner: Owner, delay: float) -> None:
        """Run ``owner._due()`` ``delay`` seconds from now; ``owner._handle`` is its entry."""
        when = self.now() + delay
        self._seq += 1
        entry = [when, self._seq, owner, self]
        owner._handle = entry
        heapq.heappush(self._heap, entry)
        if self._handle is None or when < self._armed_at:
            self._arm(when)

    def discard(self, owner: Owner) -> None:
        """Forget ``owner``'s entry (cancelled, or about to be scheduled again)."""
        entry = owner._handle
        owner._handle = None
        entry[2] = None
        self._stale += 1
        heap = self._heap
        if self._stale > _REBUILD_AFTER and self._stale * 2 > len(heap):
            heap[:] = [entry for entry in heap if entry[2] is not None]
            heapq.heapify(heap)
            self._stale = 0

    def __len__(self) -> int:
        """Entries held, stale ones included."""
        return len(self._heap)

    def _arm(self, when: float) -> None:
        if self._handle is not None:
            self._handle.cancel()
        self._armed_at = when
        self._handle = self._call_later(max(0.0, when - self.now()), self._run)

    def _run(self) -> None:
        self._handle = None
        heap = self._heap
        end = self.now() + self._slack
        try:
            while heap and heap[0][0] <= end:
                entry = heapq.heappop(heap)
                owner = entry[2]
                if owner is None:
                    self._stale -= 1
                    continue
                owner._handle = None
                owner._due()
        finally:
            if heap and self._handle is None:
                self._arm(heap[0][0])
