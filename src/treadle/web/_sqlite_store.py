"""Sessions in one SQLite file that every worker process of a machine opens.

The embedded store behind ``treadle web --workers N``: no server to install, the file lives in
the runtime directory the supervisor creates. Each process keeps its own connections (opened
on first use, and opened afresh after a ``fork``); SQLite's write-ahead log lets them read
while one writes. The tables and statements are in :mod:`treadle.web._sqlite_work`.

Decisions, with the measured reason:

* **Calls are batched per turn of the event loop**, as a Redis client pipelines commands:
  every ``load`` (and ``remaining``) issued during one turn is answered from one read
  transaction at the end of that turn, and every ``save`` (and ``delete``) is written in one
  write transaction, so the locks, the commit and the log write of a transaction are shared
  by all the requests in flight (a request's store work went from 13 to 7 us of CPU with 64
  requests in flight). A request's save is acknowledged only once its transaction has
  committed, so its response still goes out after the store has it. A batch with one call
  in it runs that call's statement alone, as its own transaction.
* **Batches run inline on the event loop**, on a connection that never waits for a lock
  (``busy_timeout`` 0): a transaction here takes some microseconds, less than handing it to
  a thread. When another process holds the lock, the batch is done again in this store's
  one thread, on a connection that waits (:data:`BUSY_TIMEOUT`), so a lock held by another
  process never stalls the loop; while such a batch waits there, the following write
  batches queue behind it, so the writes of this process stay in order.
* **Sliding expiry without a write per request**: ``load`` and ``save`` move the expiry only
  when less than 95 % of the timeout is left (the last push was over a twentieth of the
  timeout ago), so a session expires between 95 % and 100 % of its timeout after its last
  use. A save then touches only the ``fields`` rows it changes, in one ``INSERT ... ON
  CONFLICT`` statement (which writes nothing when the session is gone, expired or due for a
  push: the full save handles those).
* **The bound evicts the sessions nearest their expiry** when a new session would make more
  than ``max_sessions``. With the site's one ``sessionTimeout`` that is least recently used
  (to within the 5 % above); a session given a longer timeout is kept longer, as it asked.
  Expired sessions are never returned and are removed by :meth:`SQLiteStore.purge`, which
  the site calls on a timer.
* **The write-ahead log stays small**: every :data:`CHECKPOINT_EVERY` writes, the store's
  thread copies the log back into the database (``PASSIVE``, waiting for nobody), then
  finishes with a ``RESTART`` checkpoint, which holds off writers for the few pages written
  meanwhile, so the next write starts the log over. A ``PASSIVE`` checkpoint alone never
  catches up with a steady stream of writes: the log grew by every write (650 MB in a 5 s
  benchmark). SQLite's own checkpoints would run inside a commit, on the loop, and fsync
  there (up to 40 ms measured).
* ``synchronous=NORMAL``: a committed session survives a crash of the process, not
  necessarily a power cut — the right trade for sessions.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import time
import weakref
from collections.abc import Callable, Collection, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from treadle.internet.defer import Deferred
from treadle.web import _sqlite_work as work
from treadle.web._sqlite_work import PUSH_THRESHOLD, in_transaction_safely

__all__ = ["SQLiteStore"]

error_log = logging.getLogger("treadle.error")

#: How long the thread's connection waits for another process's write lock. Write
#: transactions here last well under a millisecond, so a lock held this long means something
#: else is wrong; it stays under the guard's deadline (2 s) so the wait ends first.
BUSY_TIMEOUT = 1.0
#: Writes of this process between two checkpoints of the write-ahead log, done in the
#: store's thread. SQLite's default is 1000 log pages; a batch of saves writes a few.
CHECKPOINT_EVERY = 1000

_BUSY_CODES = frozenset({sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED})
#: Connections opened by the process this one was forked from (see ``_forget_parent``).
_INHERITED: list[sqlite3.Connection] = []
#: The stores of this process, so a forked child drops what it inherited.
_STORES: weakref.WeakSet[SQLiteStore] = weakref.WeakSet()

#: A call waiting for its batch: its Deferred, the work (a function of the connection and
#: the arguments) and the arguments.
_Call = tuple[Deferred[Any], Callable[..., Any], tuple[Any, ...]]


class SQLiteStore:
    """A :class:`~treadle.web._session_store.SessionStore` in a SQLite file.

    Several processes may open the same file. Creating the store creates the file (mode
    0600: session values are nobody else's business) and its tables, then closes it again;
    each process opens its own connections on first use. Use it from the event loop's
    thread.

    Args:
        path: The database file; its directory must exist.
        max_sessions: Most sessions kept; past it, those nearest their expiry go first.
        clock: Wall-clock time source (tests pass their own); every process sharing the
            file must use the same clock.

    Raises:
        OSError: The file cannot be created.
        sqlite3.Error: The file is not a session database of this version.
    """

    #: Calls return Deferreds (fired at the end of the loop turn): no asyncio Task needed.
    runs_inline = True

    def __init__(
        self,
        path: str | os.PathLike[str],
        max_sessions: int = 100_000,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if max_sessions < 1:
            raise ValueError(f"max_sessions must be at least 1, not {max_sessions}")
        self.path = os.fspath(path)
        self.max_sessions = max_sessions
        self.description = f"sqlite:{self.path}"
        self._clock = clock
        self._pid = os.getpid()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._inline: sqlite3.Connection | None = None
        self._waiting: sqlite3.Connection | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._writes = 0
        self._checkpointing: Future[None] | None = None
        # The calls of this loop turn, and whether their batch is scheduled.
        self._reads: list[_Call] = []
        self._writes_queued: list[_Call] = []
        self._flushing = False
        # Write batches handed to the thread and not done yet (later ones follow them there).
        self._writes_in_thread = 0
        # One bound method, so a queued save is recognised by identity.
        self._save_call = self._save
        _STORES.add(self)
        os.close(os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600))
        setup = work.connect(self.path, busy_timeout=5.0)
        try:
            work.create_schema(setup, self.path)
        finally:
            setup.close()

    # -- the SessionStore interface ---------------------------------------------------------

    def load(self, uid: bytes, timeout: float) -> Deferred[dict[str, bytes] | None]:
        """Return the fields of session ``uid`` and push its expiry ``timeout`` s ahead
        (when less than 95 % of it is left: see the module).

        Returns:
            A Deferred of the fields (perhaps empty), or of None when no such session exists
            or it expired.
        """
        # The answer goes through _loaded when the batch delivers it (see _deliver).
        return self._queue(False, work.load, (uid, timeout))

    def save(
        self,
        uid: bytes,
        changed: Mapping[str, bytes],
        removed: Collection[str],
        timeout: float,
    ) -> Deferred[None]:
        """Create the record if needed, set ``changed``, delete ``removed``, push its expiry
        (when less than 95 % of ``timeout`` is left: see the module).

        A record found expired (not yet purged) starts afresh: its old fields are dropped.
        """
        return self._queue(True, self._save_call, (uid, changed, removed, timeout))

    def delete(self, uid: bytes) -> Deferred[None]:
        """Forget session ``uid`` (nothing happens when it is unknown)."""
        return self._queue(True, work.delete, (uid,))

    def remaining(self, uid: bytes) -> Deferred[float | None]:
        """Seconds until session ``uid`` expires, or None when it is gone."""
        return self._queue(False, self._remaining, (uid,))

    async def purge(self) -> int:
        """Remove expired sessions and checkpoint the log; call it every minute or so.

        Runs in the store's thread, in small transactions, so neither this process's loop nor
        the other processes wait on it for long. It also recounts the sessions, so the
        count the bound relies on cannot drift.

        Returns:
            How many expired sessions were removed.
        """
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._thread_pool(), self._in_thread, work.purge, self._clock
        )

    async def close(self) -> None:
        """Run the calls still queued, close this process's connections and stop the thread."""
        if self._flushing and self._pid == os.getpid():
            self._flush()
        if self._executor is not None and self._pid == os.getpid():
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(self._executor, self._close_waiting)
            self._executor.shutdown(wait=False)
        if self._inline is not None and self._pid == os.getpid():
            self._inline.close()
        self._inline = self._waiting = None
        self._executor = None

    # -- batches -----------------------------------------------------------------------------

    def _queue(self, write: bool, what: Callable[..., Any], args: tuple[Any, ...]) -> Deferred[Any]:
        """Put a call in this turn's batch of reads or writes; the Deferred of its result.

        Raises:
            RuntimeError: No event loop is running.
        """
        if not self._flushing:
            loop = self._loop
            if loop is None or not loop.is_running():
                # Asking asyncio costs a system call on Python 3.11: once per loop.
                loop = self._loop = asyncio.get_running_loop()
            loop.call_soon(self._flush)
            self._flushing = True
        d: Deferred[Any] = Deferred()
        (self._writes_queued if write else self._reads).append((d, what, args))
        return d

    def _flush(self) -> None:
        """The end of the loop turn: run the reads, then the writes, queued during it.

        Delivering the reads renders their requests, whose saves join this turn's writes.
        """
        reads = self._reads
        if reads:
            self._reads = []
            self._run_batch(reads, False)
        writes = self._writes_queued
        if writes:
            self._writes_queued = []
            self._run_batch(writes, True)
        # Delivering the writes may start other requests (pipelined ones): their calls wait
        # for the next turn.
        self._flushing = bool(self._reads or self._writes_queued)
        if self._flushing and self._loop is not None:
            self._loop.call_soon(self._flush)

    def _run_batch(self, calls: list[_Call], write: bool) -> None:
        calls = [call for call in calls if not call[0].called]  # cancelled: not worth doing
        if not calls:
            return
        if not (write and self._writes_in_thread):
            try:
                results = self._batch(self._inline_connection(), calls, write)
            except sqlite3.OperationalError as error:
                if error.sqlite_errorcode & 0xFF not in _BUSY_CODES:
                    _fail_all(calls, error)
                    return
            except Exception as error:
                _fail_all(calls, error)
                return
            else:
                if write:
                    self._wrote(len(calls))
                self._deliver(calls, results)
                return
        # Another connection holds the lock: wait for it in the thread, not on the loop.
        if write:
            self._writes_in_thread += 1
        loop = asyncio.get_running_loop()
        done = loop.run_in_executor(self._thread_pool(), self._in_thread, self._batch, calls, write)
        done.add_done_callback(lambda future: self._batch_done(future, calls, write))

    def _batch_done(
        self, future: asyncio.Future[list[Any]], calls: list[_Call], write: bool
    ) -> None:
        if write:
            self._writes_in_thread -= 1
        if future.cancelled():
            _fail_all(calls, sqlite3.OperationalError("the session store was closed"))
        elif (error := future.exception()) is not None:
            _fail_all(calls, error)
        else:
            if write:
                self._wrote(len(calls))
            self._deliver(calls, future.result())

    def _batch(self, db: sqlite3.Connection, calls: list[_Call], write: bool) -> list[Any]:
        """Run ``calls`` on ``db`` in one transaction (one call: its statement alone, but for a
        save that needs more than one); their results, in order."""
        if len(calls) == 1:
            _, what, args = calls[0]
            if not write or what is work.push:
                return [what(db, *args)]  # one statement: a transaction of its own
            if what is self._save_call and self._save_alone(db, *args):
                return [None]
        elif not write and all(what is work.load for _, what, _ in calls):
            # Loads only (the usual reads): one statement for all, its own transaction.
            found = work.load_many(db, [args[0] for _, _, args in calls])
            return [found.get(args[0]) for _, _, args in calls]
        db.execute("BEGIN IMMEDIATE" if write else "BEGIN")
        try:
            if write and self._saved_together(db, calls):
                results: list[Any] = [None] * len(calls)
            else:
                results = [what(db, *args) for _, what, args in calls]
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.rollback()
            raise
        return results

    def _deliver(self, calls: list[_Call], results: list[Any]) -> None:
        load = work.load
        for (d, what, args), result in zip(calls, results, strict=True):
            if not d.called:
                # A load's answer is finished here: cheaper than a callback of its own.
                d.callback(self._loaded(result, *args) if what is load else result)

    # -- the calls, on a connection ----------------------------------------------------------

    def _loaded(
        self, found: tuple[float, dict[str, bytes]] | None, uid: bytes, timeout: float
    ) -> dict[str, bytes] | None:
        if found is None:
            return None
        expires, fields = found
        now = self._clock()
        if expires <= now:
            return None
        if expires - now < timeout * PUSH_THRESHOLD:
            self._queue(True, work.push, (uid, now, timeout)).addErrback(_push_failed)
        return fields

    def _saved_together(self, db: sqlite3.Connection, calls: list[_Call]) -> bool:
        """The usual write batch, saves of one value each, in one statement; False when
        the batch is not that, or one of them needs the full save."""
        rows = []
        now = self._clock()
        for _, what, args in calls:
            if what is not self._save_call:
                return False
            uid, changed, removed, timeout = args
            if removed or len(changed) != 1:
                return False
            ((name, value),) = changed.items()
            rows.append((uid, now + timeout * PUSH_THRESHOLD, name, value))
        return work.save_fast_many(db, rows)

    def _save_alone(
        self,
        db: sqlite3.Connection,
        uid: bytes,
        changed: Mapping[str, bytes],
        removed: Collection[str],
        timeout: float,
    ) -> bool:
        """A save batched alone: its one statement as its own transaction, when that does."""
        return (
            bool(changed)
            and not removed
            and work.save_fast(db, uid, changed, self._clock(), timeout)
        )

    def _save(
        self,
        db: sqlite3.Connection,
        uid: bytes,
        changed: Mapping[str, bytes],
        removed: Collection[str],
        timeout: float,
    ) -> None:
        now = self._clock()
        if changed and not removed and work.save_fast(db, uid, changed, now, timeout):
            return
        work.save(db, uid, changed, removed, now, timeout, self.max_sessions)

    def _remaining(self, db: sqlite3.Connection, uid: bytes) -> float | None:
        return work.remaining(db, uid, self._clock())

    # -- connections and the thread ----------------------------------------------------------

    def _wrote(self, count: int) -> None:
        self._writes += count
        if self._writes < CHECKPOINT_EVERY:
            return
        if self._checkpointing is None or self._checkpointing.done():
            self._writes = 0
            self._checkpointing = self._thread_pool().submit(self._in_thread, work.restart_log)

    def _inline_connection(self) -> sqlite3.Connection:
        if self._inline is None:
            self._inline = work.connect(self.path, busy_timeout=0.0)
        return self._inline

    def _forget_parent(self) -> None:
        """In a forked child: connections and threads of the parent are not ours to use, nor
        to close (SQLite's advice: closing one could disturb the parent's locks and log), so
        they are kept, unused, for as long as this process lives."""
        _INHERITED.extend(db for db in (self._inline, self._waiting) if db is not None)
        self._pid = os.getpid()
        self._loop = None
        self._inline = self._waiting = None
        self._executor = None
        self._checkpointing = None
        self._reads = []
        self._writes_queued = []
        self._flushing = False
        self._writes_in_thread = 0

    def _thread_pool(self) -> ThreadPoolExecutor:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(1, thread_name_prefix="treadle-sessions")
        return self._executor

    def _in_thread(self, what: Callable[..., Any], *args: Any) -> Any:
        if self._waiting is None:
            self._waiting = work.connect(self.path, busy_timeout=BUSY_TIMEOUT)
        return in_transaction_safely(self._waiting, what, *args)

    def _close_waiting(self) -> None:
        if self._waiting is not None:
            self._waiting.close()
            self._waiting = None


def _push_failed(failure: Any) -> None:
    # Only the expiry was not moved ahead; the next load or save tries again.
    error_log.warning("a session's expiry could not be pushed ahead: %s", failure.value)


def _fail_all(calls: list[_Call], error: BaseException) -> None:
    for d, _, _ in calls:
        if not d.called:
            d.errback(error)


def _after_fork_in_child() -> None:
    for store in list(_STORES):
        store._forget_parent()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
