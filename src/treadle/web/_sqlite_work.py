"""The SQL of the SQLite session store (:mod:`treadle.web._sqlite_store`): schema, connections,
and the statements each call runs, inside the transaction the store opens for its batch.

Layout: a ``sessions`` row per session id with its expiry time (wall-clock seconds, since the
processes share no monotonic clock origin across restarts), a ``fields`` row per field, and a
one-row ``counts`` table holding the number of sessions, kept exact inside every write
transaction so the bound costs no ``COUNT(*)`` per request.
"""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Callable, Collection, Mapping
from typing import TypeVar

__all__ = [
    "PUSH_THRESHOLD",
    "SCHEMA_VERSION",
    "connect",
    "create_schema",
    "delete",
    "load",
    "load_many",
    "push",
    "remaining",
    "restart_log",
    "save",
    "save_fast",
    "save_fast_many",
]

T = TypeVar("T")

#: ``load`` and ``save`` push the expiry ahead only when less than this share of the timeout
#: is left.
PUSH_THRESHOLD = 0.95
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

#: Session ids one ``load_many`` statement asks for at most.
_MOST_IN_ONE = 256
_LOAD = (
    "SELECT s.expires, f.name, f.value FROM sessions AS s "
    "LEFT JOIN fields AS f ON f.uid = s.uid WHERE s.uid = ?"
)


def connect(path: str, *, busy_timeout: float) -> sqlite3.Connection:
    """A connection to the session file with the store's settings."""
    # isolation_level=None: the module opens no transactions of its own; ours are explicit.
    db = sqlite3.connect(path, timeout=busy_timeout, isolation_level=None, check_same_thread=False)
    # In WAL mode NORMAL syncs at checkpoints only: a committed session survives a crash of
    # the process, not necessarily a power cut.
    db.execute("PRAGMA synchronous = NORMAL")
    db.execute("PRAGMA wal_autocheckpoint = 0")  # the store checkpoints in its thread
    db.execute(f"PRAGMA journal_size_limit = {JOURNAL_SIZE_LIMIT}")
    return db


def create_schema(db: sqlite3.Connection, path: str) -> None:
    """Create the tables (once), in write-ahead-log mode.

    Raises:
        sqlite3.DatabaseError: The file holds another version's sessions, or no WAL.
    """
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
    in_transaction_safely(db, lambda db: db.executescript(_SCHEMA))


# -- reads ------------------------------------------------------------------------------------


def load(
    db: sqlite3.Connection, uid: bytes, _timeout: float = 0.0
) -> tuple[float, dict[str, bytes]] | None:
    """The expiry time and fields of session ``uid`` (expired or not), or None.

    ``_timeout`` is the caller's, kept with the call for what it does with the answer.
    """
    # One statement, so the record and its fields come from one snapshot.
    rows = db.execute(_LOAD, (uid,)).fetchall()
    if not rows:
        return None
    return rows[0][0], {name: value for _, name, value in rows if name is not None}


def load_many(
    db: sqlite3.Connection, uids: list[bytes]
) -> dict[bytes, tuple[float, dict[str, bytes]]]:
    """:func:`load` for several sessions in one statement (one snapshot): those found."""
    found: dict[bytes, tuple[float, dict[str, bytes]]] = {}
    for start in range(0, len(uids), _MOST_IN_ONE):
        chunk = uids[start : start + _MOST_IN_ONE]
        # Padded to a power of two with the last id, so few statement texts get prepared.
        size = 1 << (len(chunk) - 1).bit_length()
        chunk += chunk[-1:] * (size - len(chunk))
        for uid, expires, name, value in db.execute(_load_many(size), chunk):
            entry = found.get(uid)
            if entry is None:
                entry = found[uid] = (expires, {})
            if name is not None:
                entry[1][name] = value
    return found


def remaining(db: sqlite3.Connection, uid: bytes, now: float) -> float | None:
    """Seconds until session ``uid`` expires, or None when it is gone."""
    row = db.execute("SELECT expires FROM sessions WHERE uid = ?", (uid,)).fetchone()
    if row is None:
        return None
    left: float = row[0] - now
    return left if left > 0 else None


# -- writes (inside a write transaction, but for save_fast) -----------------------------------


def push(db: sqlite3.Connection, uid: bytes, now: float, timeout: float) -> None:
    """Move the expiry of live session ``uid`` to ``timeout`` seconds from ``now``."""
    db.execute(
        "UPDATE sessions SET expires = ? WHERE uid = ? AND expires > ?", (now + timeout, uid, now)
    )


def save_fast(
    db: sqlite3.Connection, uid: bytes, changed: Mapping[str, bytes], now: float, timeout: float
) -> bool:
    """The usual save, in one statement: set ``changed`` (not empty) in live session ``uid``
    whose expiry needs no push. Writes nothing, and returns False, unless all that holds."""
    count = len(changed)
    values: list[object] = [uid, now + timeout * PUSH_THRESHOLD]
    for item in changed.items():
        values += item
    return bool(db.execute(_upsert_fields(count), values).rowcount == count)


def save_fast_many(db: sqlite3.Connection, rows: list[tuple[bytes, float, str, bytes]]) -> bool:
    """:func:`save_fast` for several saves of one field each, as rows of (session id, expiry
    the session must at least have, name, value): True when every one of them was done (the
    statement is idempotent: done again one by one, those done are unchanged)."""
    return bool(db.executemany(_upsert_fields(1), rows).rowcount == len(rows))


def save(
    db: sqlite3.Connection,
    uid: bytes,
    changed: Mapping[str, bytes],
    removed: Collection[str],
    now: float,
    timeout: float,
    max_sessions: int,
) -> None:
    """Create the record if needed, set ``changed``, delete ``removed``, push the expiry; a
    record found expired (not yet purged) starts afresh. A new session past ``max_sessions``
    evicts those nearest their expiry."""
    row = db.execute("SELECT expires FROM sessions WHERE uid = ?", (uid,)).fetchone()
    if row is None:
        db.execute("INSERT INTO sessions VALUES (?, ?)", (uid, now + timeout))
        _count_new_session(db, max_sessions)
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


def delete(db: sqlite3.Connection, uid: bytes) -> None:
    """Forget session ``uid``."""
    _remove(db, [uid])


def purge(db: sqlite3.Connection, clock: Callable[[], float]) -> int:
    """Remove expired sessions in small transactions of its own, recount the sessions, and
    checkpoint the log; returns how many were removed."""
    purged = 0
    while True:
        db.execute("BEGIN IMMEDIATE")
        expired = db.execute(
            "SELECT uid FROM sessions WHERE expires <= ? LIMIT ?", (clock(), PURGE_BATCH)
        ).fetchall()
        _remove(db, [uid for (uid,) in expired])
        if len(expired) < PURGE_BATCH:
            db.execute("UPDATE counts SET sessions = (SELECT COUNT(*) FROM sessions)")
        db.execute("COMMIT")
        purged += len(expired)
        if len(expired) < PURGE_BATCH:
            break
    restart_log(db)
    return purged


def restart_log(db: sqlite3.Connection) -> None:
    """Checkpoint the whole log so the next write starts it over (see the store's module)."""
    # PASSIVE first: the bulk of it, waiting for nobody while the loop keeps writing.
    db.execute("PRAGMA wal_checkpoint(PASSIVE)")
    # Then the few pages written meanwhile, holding writers off (the busy timeout bounds the
    # wait for readers); SQLite reports one that could not finish, and the next one will.
    db.execute("PRAGMA wal_checkpoint(RESTART)")


def in_transaction_safely(db: sqlite3.Connection, work: Callable[..., T], *args: object) -> T:
    """Run ``work(db, *args)``; if it fails inside a transaction, roll it back so the
    connection is clean."""
    try:
        return work(db, *args)
    except BaseException:
        if db.in_transaction:
            db.rollback()
        raise


def _count_new_session(db: sqlite3.Connection, max_sessions: int) -> None:
    (count,) = db.execute(
        "UPDATE counts SET sessions = sessions + 1 WHERE id = 0 RETURNING sessions"
    ).fetchone()
    if count > max_sessions:
        oldest = db.execute(
            "SELECT uid FROM sessions ORDER BY expires LIMIT ?", (count - max_sessions,)
        ).fetchall()
        _remove(db, [uid for (uid,) in oldest])


def _remove(db: sqlite3.Connection, uids: list[bytes]) -> None:
    """Delete sessions ``uids`` and their fields, and count them off (inside a transaction)."""
    if not uids:
        return
    pairs = [(uid,) for uid in uids]
    db.executemany("DELETE FROM fields WHERE uid = ?", pairs)
    gone = db.executemany("DELETE FROM sessions WHERE uid = ?", pairs).rowcount
    if gone:
        db.execute("UPDATE counts SET sessions = sessions - ? WHERE id = 0", (gone,))


@functools.lru_cache(maxsize=16)
def _load_many(count: int) -> str:
    return (
        "SELECT s.uid, s.expires, f.name, f.value FROM sessions AS s "
        f"LEFT JOIN fields AS f ON f.uid = s.uid WHERE s.uid IN ({', '.join('?' * count)})"
    )


@functools.lru_cache(maxsize=32)
def _upsert_fields(count: int) -> str:
    """The statement of :func:`save_fast` for ``count`` fields.

    Parameters: the session id, the expiry time it must at least have, then a name and value
    per field. The SQL text depends on ``count`` only, so sqlite3 keeps it prepared.
    """
    rows = ", ".join(f"(?{n}, ?{n + 1})" for n in range(3, 3 + 2 * count, 2))
    return (
        f"INSERT INTO fields (uid, name, value) SELECT ?1, column1, column2 FROM (VALUES {rows}) "
        "WHERE EXISTS (SELECT 1 FROM sessions WHERE uid = ?1 AND expires >= ?2) "
        "ON CONFLICT (uid, name) DO UPDATE SET value = excluded.value"
    )
