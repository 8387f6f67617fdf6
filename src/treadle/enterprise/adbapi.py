"""Database calls that leave the reactor free: a DB-API 2.0 module behind a pool of threads.

``twisted.enterprise.adbapi`` ports to this module. A :class:`ConnectionPool` is given the
name of a DB-API module (``"sqlite3"``, ``"psycopg2"``, ``"pymysql"``, ...) and the arguments
of its ``connect()``. Each call (:meth:`~ConnectionPool.runQuery`,
:meth:`~ConnectionPool.runOperation`, :meth:`~ConnectionPool.runInteraction`,
:meth:`~ConnectionPool.runWithConnection`) runs in one of the pool's threads, on that
thread's own connection, in a transaction that is committed when the call returns and rolled
back when it raises. Its outcome comes back as a Deferred fired in the reactor's thread: a
resource answers ``NOT_DONE_YET`` and finishes the request when the rows arrive, or awaits
them in an ``async def render_GET``::

    pool = adbapi.ConnectionPool("sqlite3", "guestbook.db", cp_max=1)

    class Entries(Resource):
        async def render_GET(self, request):
            rows = await pool.runQuery("SELECT who, said FROM entries")
            return "".join(f"{who}: {said}\\n" for who, said in rows)

The pool starts its threads when the reactor runs (at once if the loop runs already) and
closes at the reactor's shut-down. The ``cp_*`` keywords of :class:`ConnectionPool` set its
size and behaviour; every other argument goes to the module's ``connect()``.

Differences from Twisted, on purpose:

* A connection is closed by the thread that opened it, when that thread ends (the pool
  shrinking, or closing). Twisted closes them all from the reactor's thread, which a module
  whose connections belong to their thread (``sqlite3``, unless told
  ``check_same_thread=False``) refuses, logging "Connection close failed" for each; and a
  later thread given the id of an ended one would be handed that thread's connection.
* After a call failed, a connection whose rollback fails too is closed and forgotten, so the
  next call on its thread opens a new one, with or without ``cp_reconnect``. Twisted keeps it
  unless ``cp_reconnect`` is set, and every later call on that thread then fails alike.
* A call made once the pool is closed fails with :class:`ConnectionPoolClosed` (a
  ``RuntimeError``). In Twisted its Deferred never fires.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar

from treadle.internet import threads
from treadle.internet.defer import Deferred, fail
from treadle.python import log, reflect
from treadle.python.threadable import getThreadID
from treadle.python.threadpool import ThreadPool

__all__ = [
    "Connection",
    "ConnectionLost",
    "ConnectionPool",
    "ConnectionPoolClosed",
    "Transaction",
]

_R = TypeVar("_R")


class ConnectionLost(Exception):
    """The database connection died (found by ``cp_reconnect``); the call may be tried again."""


class ConnectionPoolClosed(RuntimeError):
    """A call was made on a :class:`ConnectionPool` that is closed."""


class Connection:
    """A DB-API connection of the pool, as the function given to
    :meth:`ConnectionPool.runWithConnection` sees it: every attribute is the real
    connection's, except the three below.

    Args:
        pool: The pool whose connection (the calling thread's) this wraps.
    """

    _connection: Any = None

    def __init__(self, pool: ConnectionPool) -> None:
        self._pool = pool
        self._connection = None
        self.reconnect()

    def close(self) -> None:
        """Do nothing: the connection belongs to the pool, which closes it."""

    def rollback(self) -> None:
        """Roll the transaction back; with ``cp_reconnect``, check the connection too.

        Raises:
            ConnectionLost: ``cp_reconnect`` is set and the rollback or the pool's
                ``good_sql`` failed: the connection was closed and forgotten.
        """
        pool = self._pool
        if not pool.reconnect:
            self._connection.rollback()
            return
        try:
            self._connection.rollback()
            cursor = self._connection.cursor()
            cursor.execute(pool.good_sql)
            cursor.close()
            self._connection.commit()
            return
        except BaseException:
            log.err(None, "Rollback failed")
        pool.disconnect(self._connection)
        if pool.noisy:
            log.msg("Connection lost.")
        raise ConnectionLost()

    def reconnect(self) -> None:
        """Close the connection (if any) and take a new one from the pool."""
        if self._connection is not None:
            self._pool.disconnect(self._connection)
        self._connection = self._pool.connect()

    def __getattr__(self, name: str) -> Any:
        # Only called for names the wrapper lacks: those are the real connection's.
        return getattr(self.__dict__.get("_connection"), name)


class Transaction:
    """A cursor of the pool's connection, as the function given to
    :meth:`ConnectionPool.runInteraction` sees it: ``execute``, ``fetchall``, ``rowcount``
    and every other attribute are the real cursor's.

    Args:
        pool: The pool.
        connection: The :class:`Connection` the cursor is opened on.
    """

    _cursor: Any = None

    def __init__(self, pool: ConnectionPool, connection: Connection) -> None:
        self._pool = pool
        self._connection = connection
        self.reopen()

    def close(self) -> None:
        """Close the cursor."""
        cursor, self._cursor = self._cursor, None
        cursor.close()

    def reopen(self) -> None:
        """Open a new cursor; with ``cp_reconnect``, on a new connection if that fails."""
        if self._cursor is not None:
            self.close()
        try:
            self._cursor = self._connection.cursor()
            return
        except BaseException:
            if not self._pool.reconnect:
                raise
            log.err(None, "Cursor creation failed")
        if self._pool.noisy:
            log.msg("Connection lost, reconnecting")
        self.reconnect()
        self._cursor = self._connection.cursor()

    def reconnect(self) -> None:
        """Replace the connection with a new one (the cursor must be reopened)."""
        self._connection.reconnect()
        self._cursor = None

    def __getattr__(self, name: str) -> Any:
        # Only called for names the wrapper lacks: those are the real cursor's.
        return getattr(self.__dict__.get("_cursor"), name)


class ConnectionPool:
    """DB-API 2.0 connections, one per thread of a pool, whose calls return Deferreds.

    Args:
        dbapiName: The DB-API module, by import name (``"sqlite3"``).
        *connargs: Positional arguments of the module's ``connect()``.
        **connkw: Keyword arguments of ``connect()``, except these, which are the pool's:
            ``cp_min`` (threads kept, default 3), ``cp_max`` (most threads, hence
            connections, default 5), ``cp_name`` (the pool's name, in its threads' names),
            ``cp_noisy`` (log connections made and closed), ``cp_openfun`` (called with each
            new connection, in its thread: set a time zone, a pragma, ...),
            ``cp_reconnect`` (replace a connection found dead, failing the call with
            :class:`ConnectionLost`), ``cp_good_sql`` (the statement that tells a live
            connection, default ``"select 1"``) and ``cp_reactor`` (the reactor to run on).

    Attributes:
        dbapi: The DB-API module.
        connections: The open connections, by the id of the thread they belong to.
        threadpool: The pool's :class:`~treadle.python.threadpool.ThreadPool`.
        running: True between :meth:`start` and :meth:`close`.
    """

    CP_ARGS = ["min", "max", "name", "noisy", "openfun", "reconnect", "good_sql"]

    noisy: bool = False
    min: int = 3
    max: int = 5
    name: str | None = None
    openfun: Callable[[Any], object] | None = None
    reconnect: bool = False
    good_sql: str = "select 1"
    running: bool = False
    connectionFactory: Callable[[ConnectionPool], Any] = Connection
    transactionFactory: Callable[[ConnectionPool, Any], Any] = Transaction
    #: The handle of the shut-down trigger that closes the pool (None when not started).
    shutdownID: Any = None

    def __init__(self, dbapiName: str, *connargs: Any, **connkw: Any) -> None:
        self.dbapiName = dbapiName
        self.dbapi = reflect.namedModule(dbapiName)
        if getattr(self.dbapi, "apilevel", None) != "2.0":
            log.msg("DB API module not DB API 2.0 compliant.")
        if getattr(self.dbapi, "threadsafety", 0) < 1:
            log.msg("DB API module not sufficiently thread-safe.")
        reactor = connkw.pop("cp_reactor", None)
        if reactor is None:
            from treadle.internet import reactor as default_reactor

            reactor = default_reactor
        self._reactor = reactor
        self.connargs = connargs
        self.connkw = connkw
        for arg in self.CP_ARGS:
            key = f"cp_{arg}"
            if key in connkw:
                setattr(self, arg, connkw.pop(key))
        self.min = min(self.min, self.max)
        self.max = max(self.min, self.max)
        self.connections: dict[int, Any] = {}
        self.threadID = getThreadID
        self.threadpool = ThreadPool(self.min, self.max, self.name or f"adbapi {dbapiName}")
        # Each thread closes its own connection as it ends (see the module's docstring).
        self.threadpool.threadFactory = self._make_thread
        self._closed = False
        #: Whether the start at the reactor's start-up is still to come.
        self.startID: Any = True
        self._reactor.callWhenRunning(self._start)

    # -- starting and closing ---------------------------------------------------------------

    def _start(self) -> None:
        started, self.startID = self.startID, None
        if started and not self._closed:
            self.start()

    def start(self) -> None:
        """Start the threads, and close the pool at the reactor's shut-down.

        Called when the reactor runs; call it only to use a pool before that.
        """
        if not self.running:
            self._closed = False
            self.threadpool.start()
            self.shutdownID = self._reactor.addSystemEventTrigger(
                "during", "shutdown", self.finalClose
            )
            self.running = True

    def close(self) -> None:
        """Close every connection and end the threads, once the calls handed over ran."""
        if self.shutdownID is not None:
            self._reactor.removeSystemEventTrigger(self.shutdownID)
            self.shutdownID = None
        self.startID = None
        self._closed = True
        self.finalClose()

    def finalClose(self) -> None:
        """Close the pool (what the reactor's shut-down calls): let the calls queued run,
        end the threads (each closing its connection), then close the connections opened
        outside them."""
        self.shutdownID = None
        self._closed = True
        self.threadpool.stop()
        self.running = False
        for conn in list(self.connections.values()):
            self._close(conn)
        self.connections.clear()

    # -- the calls ----------------------------------------------------------------------------

    def runWithConnection(self, func: Callable[..., _R], *args: Any, **kw: Any) -> Deferred[_R]:
        """Run ``func(connection, *args, **kw)`` in a pool thread, then commit.

        ``connection`` is a :class:`Connection`. If ``func`` raises, the transaction is rolled
        back and the Deferred fails with what it raised.

        Returns:
            A Deferred firing with what ``func`` returned.
        """
        return self._defer(self._runWithConnection, func, *args, **kw)

    def runInteraction(self, interaction: Callable[..., _R], *args: Any, **kw: Any) -> Deferred[_R]:
        """Run ``interaction(transaction, *args, **kw)`` in a pool thread, then commit.

        ``transaction`` is a :class:`Transaction` (a cursor). If ``interaction`` raises, the
        transaction is rolled back and the Deferred fails with what it raised.

        Returns:
            A Deferred firing with what ``interaction`` returned.
        """
        return self._defer(self._runInteraction, interaction, *args, **kw)

    def runQuery(self, *args: Any, **kw: Any) -> Deferred[list[Any]]:
        """Execute a statement (``cursor.execute(*args, **kw)``) and fetch every row.

        Returns:
            A Deferred firing with ``cursor.fetchall()``.
        """
        return self.runInteraction(self._runQuery, *args, **kw)

    def runOperation(self, *args: Any, **kw: Any) -> Deferred[None]:
        """Execute a statement that returns no rows (``INSERT``, ``UPDATE``, ``DELETE``, ...).

        Returns:
            A Deferred firing with None once it is committed.
        """
        return self.runInteraction(self._runOperation, *args, **kw)

    def _defer(self, f: Callable[..., _R], *args: Any, **kw: Any) -> Deferred[_R]:
        if self._closed or self.threadpool.joined:
            return fail(ConnectionPoolClosed(f"the connection pool of {self.dbapiName} is closed"))
        return threads.deferToThreadPool(self._reactor, self.threadpool, f, *args, **kw)

    # -- connections (in the pool's threads) ------------------------------------------------

    def connect(self) -> Any:
        """The calling thread's connection, opened now if it has none (blocking: for the
        pool's threads)."""
        tid = self.threadID()
        conn = self.connections.get(tid)
        if conn is None:
            if self.noisy:
                log.msg(f"adbapi connecting: {self.dbapiName}")
            conn = self.dbapi.connect(*self.connargs, **self.connkw)
            if self.openfun is not None:
                self.openfun(conn)
            self.connections[tid] = conn
        return conn

    def disconnect(self, conn: Any) -> None:
        """Close the calling thread's connection ``conn`` and forget it.

        Raises:
            Exception: ``conn`` is not the calling thread's connection.
        """
        tid = self.threadID()
        if conn is not self.connections.get(tid):
            raise Exception("wrong connection for thread")
        if conn is not None:
            self._close(conn)
            del self.connections[tid]

    def _close(self, conn: Any) -> None:
        if self.noisy:
            log.msg(f"adbapi closing: {self.dbapiName}")
        try:
            conn.close()
        except BaseException:
            log.err(None, "Connection close failed")

    def _make_thread(self, target: Callable[[], object], name: str | None = None) -> Any:
        def work_then_close() -> None:
            try:
                target()
            finally:
                conn = self.connections.pop(self.threadID(), None)
                if conn is not None:
                    self._close(conn)

        return threading.Thread(target=work_then_close, name=name)

    def _runWithConnection(self, func: Callable[..., _R], *args: Any, **kw: Any) -> _R:
        conn = self.connectionFactory(self)
        try:
            result = func(conn, *args, **kw)
            conn.commit()
            return result
        except BaseException:
            self._roll_back(conn)
            raise

    def _runInteraction(self, interaction: Callable[..., _R], *args: Any, **kw: Any) -> _R:
        conn = self.connectionFactory(self)
        trans = self.transactionFactory(self, conn)
        try:
            result = interaction(trans, *args, **kw)
            trans.close()
            conn.commit()
            return result
        except BaseException:
            self._roll_back(conn)
            raise

    def _roll_back(self, conn: Any) -> None:
        """Roll back after a failed call; a connection that cannot is dropped."""
        try:
            conn.rollback()
        except BaseException:
            log.err(None, "Rollback failed")
            raw = getattr(conn, "_connection", None)
            if raw is not None and self.connections.get(self.threadID()) is raw:
                self.disconnect(raw)

    def _runQuery(self, trans: Any, *args: Any, **kw: Any) -> list[Any]:
        trans.execute(*args, **kw)
        rows: list[Any] = trans.fetchall()
        return rows

    def _runOperation(self, trans: Any, *args: Any, **kw: Any) -> None:
        trans.execute(*args, **kw)

    # -- pickling (a pool in a persisted application) ---------------------------------------

    def __getstate__(self) -> dict[str, Any]:
        """What a pickle keeps: the module, the connection arguments and the settings."""
        return {
            "dbapiName": self.dbapiName,
            "min": self.min,
            "max": self.max,
            "noisy": self.noisy,
            "reconnect": self.reconnect,
            "good_sql": self.good_sql,
            "connargs": self.connargs,
            "connkw": self.connkw,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Make the pool anew from what :meth:`__getstate__` kept."""
        self.__dict__ = state
        self.__init__(self.dbapiName, *self.connargs, **self.connkw)  # type: ignore[misc]
