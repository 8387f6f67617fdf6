"""Sessions in one SQLite file that every worker process of a machine opens.

The embedded store behind ``treadle web --workers N``: no server to install, the file lives in
the runtime directory the supervisor creates. Each process keeps its own connections (opened
on first use, and opened afresh after a ``fork``); SQLite's write-ahead log lets them read
while one writes.

Layout: a ``sessions`` row per session id with its expiry time (wall-clock seconds, since the
processes share no monotonic clock origin across restarts), a ``fields`` row per field, and a
one-row ``counts`` table holding the number of sessions, kept exact inside every write
transaction so the bound costs no ``COUNT(*)`` per request.

Decisions, with the measured reason:

* **Calls run inline on the event loop**, on a connection that never waits for a lock
  (``busy_timeout`` 0). With two processes doing load+save round trips on one file as fast
  as they can, a round trip takes 35 us (p50; p99 0.1 to 0.5 ms on a quiet machine) and holds
  the loop some 22 us per call; through a thread, the round trip takes 100 us (p50) and its
  p99 is no better. When the file is locked by another process (about one call in a thousand
  in that test), the call is done again in this store's one thread, on a connection that
  waits (:data:`BUSY_TIMEOUT`), so a lock held by another process never stalls the loop.
* **Sliding expiry without a write per read**: ``load`` moves the expiry only when less than
  95 % of the timeout is left (the last push was over a twentieth of the timeout ago).
* **The bound evicts the sessions nearest their expiry** when a new session would make more
  than ``max_sessions``. With the site's one ``sessionTimeout`` that is exactly least
  recently used; a session given a longer timeout is kept longer, as it asked. Expired
  sessions are never returned and are removed by :meth:`SQLiteStore.purge`, which the site
  calls on a timer; it also checkpoints the log off the loop.
* ``synchronous=NORMAL``: a committed session survives a crash of the process, not
  necessarily a power cut — the right trade for sessions.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import time
from collections.abc import Callable, Collection, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

__all__ = ["SQLiteStore"]

T = TypeVar("T")

#: How long the thread's connection waits for another process's write lock. Write
#: transactions here last well under a millisecond, so a lock held this long means something
#: else is wrong; it stays under the guard's deadline (2 s) so the wait ends first.
BUSY_TIMEOUT = 1.0
#: ``load`` pushes the expiry ahead only when less than this share of the timeout is left.
PUSH_THRESHOLD = 0.95
#: Writes of this process between two checkpoints of the write-ahead log, done in the
#: store's thread (SQLite's own would run inside a commit, on the loop, and fsync there: up to
#: 40 ms measured). About SQLite's default of 1000 log pages: a save writes three or four.
CHECKPOINT_EVERY = 300
#: Bytes the write-ahead log is cut back to once checkpointed.
JOURNAL_SIZE_LIMIT = 16 * 1024 * 1024
#: Expired sessions removed per transaction by ``purge``, so no purge holds the write lock
#: for long.
PURGE_BATCH = 500
#: The schema's version, kept in ``PRAGMA user_version``.
SCHEMA_VERSION = 1

_SCHEMA = f"""
BEGIN IMMEDIATE;
CREATE TABLE IF NOT EXISTS sessions (
    uid BLOB PRIMARY KEY,
    expires REAL NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS sessions_by_expiry ON sessions (expires);
CREATE TABLE IF NOT EXISTS fields (
    uid BLOB NOT NULL,
    name TEXT NOT NULL,
    value BLOB NOT NULL,
    PRIMARY KEY (uid, name)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS counts (
    id INTEGER PRIMARY KEY CHECK (id = 0),
    sessions INTEGER NOT NULL
);
INSERT OR IGNORE INTO counts VALUES (0, (SELECT COUNT(*) FROM sessions));
PRAGMA user_version = {SCHEMA_VERSION};
COMMIT;
"""

_BUSY_CODES = frozenset({sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED})
#: Connections opened by the process this one was forked from (see ``_forget_parent``).
_INHERITED: list[sqlite3.Connection] = []


class SQLiteStore:
    """A :class:`~treadle.web._session_store.SessionStore` in a SQLite file.

    Several processes may open the same file. Creating the store creates the file (mode
    0600: session values are nobody else's business) and its tables, then closes it again;
    each process opens its own connections on first use.

    Args:
        path: The database file; its directory must exist.
        max_sessions: Most sessions kept; past it, those nearest their expiry go first.
        clock: Wall-clock time source (tests pass their own); every process sharing the
            file must use the same clock.

    Raises:
        OSError: The file cannot be created.
        sqlite3.Error: The file is not a session database of this version.
    """

    #: Calls finish inline (a lock held elsewhere moves them to a thread): run them eagerly.
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
        self._pid = -1
        self._inline: sqlite3.Connection | None = None
        self._waiting: sqlite3.Connection | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._writes = 0
        self._checkpointing: Future[None] | None = None
        os.close(os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600))
        setup = _connect(self.path, busy_timeout=5.0)
        try:
            _create_schema(setup, self.path)
        finally:
            setup.close()

    # -- the SessionStore interface ---------------------------------------------------------

    async def load(self, uid: bytes, timeout: float) -> dict[str, bytes] | None:
        """Return the fields of session ``uid`` and push its expiry ``timeout`` s ahead.

        Returns:
            The fields (perhaps empty), or None when no such session exists or it expired.
        """
        return await self._run(lambda db: self._load(db, uid, timeout))

    async def save(
        self,
        uid: bytes,
        changed: Mapping[str, bytes],
        removed: Collection[str],
        timeout: float,
    ) -> None:
        """Create the record if needed, set ``changed``, delete ``removed``, push its expiry.

        A record found expired (not yet purged) starts afresh: its old fields are dropped.
        """
        await self._run(lambda db: self._save(db, uid, changed, removed, timeout))
        self._wrote()

    async def delete(self, uid: bytes) -> None:
        """Forget session ``uid`` (nothing happens when it is unknown)."""
        await self._run(lambda db: self._delete(db, uid))
        self._wrote()

    async def remaining(self, uid: bytes) -> float | None:
        """Seconds until session ``uid`` expires, or None when it is gone."""
        return await self._run(lambda db: self._remaining(db, uid))

    async def purge(self) -> int:
        """Remove expired sessions and checkpoint the log; call it every minute or so.

        Runs in the store's thread, in small transactions, so neither this process's loop nor
        the other processes wait on it for long. It also recounts the sessions, so the
        count the bound relies on cannot drift.

        Returns:
            How many expired sessions were removed.
        """
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._thread_pool(), self._purge_in_thread)

    async def close(self) -> None:
        """Close this process's connections and stop the store's thread."""
        if self._executor is not None and self._pid == os.getpid():
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(self._executor, self._close_waiting)
            self._executor.shutdown(wait=False)
        if self._inline is not None and self._pid == os.getpid():
            self._inline.close()
        self._inline = self._waiting = None
        self._executor = None

    # -- where calls run ---------------------------------------------------------------------

    async def _run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        try:
            return _in_transaction_safely(self._inline_connection(), work)
        except sqlite3.OperationalError as error:
            if error.sqlite_errorcode & 0xFF not in _BUSY_CODES:
                raise
        # Another process holds the lock: wait for it in the thread, not on the loop.
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._thread_pool(), self._in_thread, work)

    def _wrote(self) -> None:
        self._writes += 1
        if self._writes < CHECKPOINT_EVERY:
            return
        if self._checkpointing is None or self._checkpointing.done():
            self._writes = 0
            self._checkpointing = self._thread_pool().submit(self._in_thread, _checkpoint)

    def _inline_connection(self) -> sqlite3.Connection:
        if self._pid != os.getpid():
            self._forget_parent()
        if self._inline is None:
            self._inline = _connect(self.path, busy_timeout=0.0)
        return self._inline

    def _forget_parent(self) -> None:
        # Connections and threads of the process this one was forked from are not ours to
        # use, nor to close (SQLite's advice: closing one could disturb the parent's locks and
        # log), so they are kept, unused, for as long as this process lives.
        if self._pid != -1:
            _INHERITED.extend(db for db in (self._inline, self._waiting) if db is not None)
        self._pid = os.getpid()
        self._inline = self._waiting = None
        self._executor = None
        self._checkpointing = None

    def _thread_pool(self) -> ThreadPoolExecutor:
        if self._pid != os.getpid():
            self._forget_parent()
        if self._executor is None:
            self._executor = ThreadPoolExecutor(1, thread_name_prefix="treadle-sessions")
        return self._executor

    def _in_thread(self, work: Callable[[sqlite3.Connection], T]) -> T:
        if self._waiting is None:
            self._waiting = _connect(self.path, busy_timeout=BUSY_TIMEOUT)
        return _in_transaction_safely(self._waiting, work)

    def _close_waiting(self) -> None:
        if self._waiting is not None:
            self._waiting.close()
            self._waiting = None

    # -- the work, on a connection -----------------------------------------------------------

    def _load(self, db: sqlite3.Connection, uid: bytes, timeout: float) -> dict[str, bytes] | None:
        now = self._clock()
        # One statement, so the record and its fields come from one snapshot.
        rows = db.execute(
            "SELECT s.expires, f.name, f.value FROM sessions AS s "
            "LEFT JOIN fields AS f ON f.uid = s.uid WHERE s.uid = ?",
            (uid,),
        ).fetchall()
        if not rows or rows[0][0] <= now:
            return None
        if rows[0][0] - now < timeout * PUSH_THRESHOLD:
            pushed = db.execute(
                "UPDATE sessions SET expires = ? WHERE uid = ? AND expires > ?",
                (now + timeout, uid, now),
            )
            if pushed.rowcount == 0:  # deleted or expired since the read
                return None
        return {name: value for _, name, value in rows if name is not None}

    def _save(
        self,
        db: sqlite3.Connection,
        uid: bytes,
        changed: Mapping[str, bytes],
        removed: Collection[str],
        timeout: float,
    ) -> None:
        now = self._clock()
        db.execute("BEGIN IMMEDIATE")
        row = db.execute("SELECT expires FROM sessions WHERE uid = ?", (uid,)).fetchone()
        if row is None:
            db.execute("INSERT INTO sessions VALUES (?, ?)", (uid, now + timeout))
            self._count_new_session(db)
        else:
            if row[0] <= now:
                db.execute("DELETE FROM fields WHERE uid = ?", (uid,))
            db.execute("UPDATE sessions SET expires = ? WHERE uid = ?", (now + timeout, uid))
        if removed:
            db.executemany(
                "DELETE FROM fields WHERE uid = ? AND name = ?", [(uid, name) for name in removed]
            )
        if changed:
            db.executemany(
                "INSERT OR REPLACE INTO fields VALUES (?, ?, ?)",
                [(uid, name, value) for name, value in changed.items()],
            )
        db.execute("COMMIT")

    def _count_new_session(self, db: sqlite3.Connection) -> None:
        (count,) = db.execute(
            "UPDATE counts SET sessions = sessions + 1 WHERE id = 0 RETURNING sessions"
        ).fetchone()
        if count > self.max_sessions:
            oldest = db.execute(
                "SELECT uid FROM sessions ORDER BY expires LIMIT ?", (count - self.max_sessions,)
            ).fetchall()
            _remove(db, [uid for (uid,) in oldest])

    def _delete(self, db: sqlite3.Connection, uid: bytes) -> None:
        db.execute("BEGIN IMMEDIATE")
        _remove(db, [uid])
        db.execute("COMMIT")

    def _remaining(self, db: sqlite3.Connection, uid: bytes) -> float | None:
        row = db.execute("SELECT expires FROM sessions WHERE uid = ?", (uid,)).fetchone()
        if row is None:
            return None
        left: float = row[0] - self._clock()
        return left if left > 0 else None

    def _purge_in_thread(self) -> int:
        return self._in_thread(self._purge)

    def _purge(self, db: sqlite3.Connection) -> int:
        purged = 0
        while True:
            db.execute("BEGIN IMMEDIATE")
            expired = db.execute(
                "SELECT uid FROM sessions WHERE expires <= ? LIMIT ?",
                (self._clock(), PURGE_BATCH),
            ).fetchall()
            _remove(db, [uid for (uid,) in expired])
            if len(expired) < PURGE_BATCH:
                db.execute("UPDATE counts SET sessions = (SELECT COUNT(*) FROM sessions)")
            db.execute("COMMIT")
            purged += len(expired)
            if len(expired) < PURGE_BATCH:
                break
        _checkpoint(db)
        return purged


def _connect(path: str, *, busy_timeout: float) -> sqlite3.Connection:
    # isolation_level=None: the module opens no transactions of its own; ours are explicit.
    db = sqlite3.connect(path, timeout=busy_timeout, isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA synchronous = NORMAL")
    db.execute("PRAGMA wal_autocheckpoint = 0")  # see CHECKPOINT_EVERY
    db.execute(f"PRAGMA journal_size_limit = {JOURNAL_SIZE_LIMIT}")
    return db


def _create_schema(db: sqlite3.Connection, path: str) -> None:
    (version,) = db.execute("PRAGMA user_version").fetchone()
    if version not in (0, SCHEMA_VERSION):
        raise sqlite3.DatabaseError(
            f"{path} holds sessions of schema version {version}, not {SCHEMA_VERSION}: "
            "remove it (sessions are not meant to outlive an upgrade)"
        )
    # WAL is a property of the file: set once, every later connection uses it.
    (mode,) = db.execute("PRAGMA journal_mode = WAL").fetchone()
    if mode != "wal":
        raise sqlite3.OperationalError(f"{path} cannot use write-ahead logging (mode {mode})")
    _in_transaction_safely(db, lambda db: db.executescript(_SCHEMA))


def _checkpoint(db: sqlite3.Connection) -> None:
    # PASSIVE: copy what no reader still needs back into the database, waiting for nobody.
    db.execute("PRAGMA wal_checkpoint(PASSIVE)")


def _remove(db: sqlite3.Connection, uids: list[bytes]) -> None:
    """Delete sessions ``uids`` and their fields, and count them off (inside a transaction)."""
    if not uids:
        return
    pairs = [(uid,) for uid in uids]
    db.executemany("DELETE FROM fields WHERE uid = ?", pairs)
    gone = db.executemany("DELETE FROM sessions WHERE uid = ?", pairs).rowcount
    if gone:
        db.execute("UPDATE counts SET sessions = sessions - ? WHERE id = 0", (gone,))


def _in_transaction_safely(db: sqlite3.Connection, work: Callable[[sqlite3.Connection], T]) -> T:
    """Run ``work``; if it fails inside a transaction, roll it back so the connection is clean."""
    try:
        return work(db)
    except BaseException:
        if db.in_transaction:
            db.rollback()
        raise
