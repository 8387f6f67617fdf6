"""treadle.enterprise.adbapi: ConnectionPool on a real DB-API module (sqlite3, on disk).

The pools run on a loop of each kind (the stdlib one and uvloop), made inside it as a
program embedding treadle does, so they start at once; one test serves a resource that
answers from the database over a real socket. ``tests/compat/programs/adbapi_guestbook``
runs a whole program under Twisted and treadle alike.
"""

from __future__ import annotations

import asyncio
import logging
import pickle
import sqlite3
import threading
import urllib.request
from pathlib import Path
from typing import Any, TypeVar

import pytest

from tests.conftest import DEADLINE, ServerThread, run_on_loop
from treadle.enterprise import adbapi
from treadle.internet._reactor import new_event_loop
from treadle.web.resource import Resource
from treadle.web.server import NOT_DONE_YET

_T = TypeVar("_T")


class Recording(sqlite3.Connection):
    """A real sqlite3 connection that notes which thread closed it (``factory=`` of
    ``sqlite3.connect``)."""

    closed_in: list[str] = []

    def close(self) -> None:
        super().close()
        Recording.closed_in.append(threading.current_thread().name)


@pytest.fixture
def db(tmp_path: Path) -> str:
    Recording.closed_in = []
    return str(tmp_path / "test.db")


def make_pool(db: str, **kw: Any) -> adbapi.ConnectionPool:
    kw.setdefault("cp_min", 1)
    kw.setdefault("cp_max", 1)
    return adbapi.ConnectionPool("sqlite3", db, factory=Recording, **kw)


def test_queries_run_in_the_pool_and_fire_on_the_loop(loop_kind: str, db: str) -> None:
    async def main() -> tuple[list[Any], str, threading.Thread]:
        pool = make_pool(db)
        try:
            await pool.runOperation("CREATE TABLE t (n INTEGER, word TEXT)")
            await pool.runOperation("INSERT INTO t VALUES (?, ?)", (1, "one"))
            await pool.runOperation("INSERT INTO t VALUES (:n, :w)", {"n": 2, "w": "two"})
            fired_in: list[threading.Thread] = []
            d = pool.runQuery("SELECT n, word FROM t ORDER BY n")
            d.addCallback(lambda rows: fired_in.append(threading.current_thread()) or rows)
            rows = await d
            worker = await pool.runInteraction(lambda trans: threading.current_thread().name)
            return rows, worker, fired_in[0]
        finally:
            pool.close()

    rows, worker, fired_in = run_on_loop(loop_kind, main())
    assert rows == [(1, "one"), (2, "two")]
    assert worker.startswith("PoolThread-adbapi sqlite3-")
    assert fired_in is threading.current_thread()


def test_an_interaction_commits_its_statements_together(loop_kind: str, db: str) -> None:
    def transfer(trans: Any, amount: int) -> int:
        trans.execute("UPDATE acct SET bal = bal - ? WHERE id = 'a'", (amount,))
        trans.execute("UPDATE acct SET bal = bal + ? WHERE id = 'b'", (amount,))
        trans.execute("SELECT bal FROM acct WHERE id = 'a'")
        (left,) = trans.fetchone()
        if left < 0:
            raise ValueError("overdrawn")
        return int(left)

    async def main() -> tuple[int, str, list[Any]]:
        pool = make_pool(db)
        try:
            await pool.runOperation("CREATE TABLE acct (id TEXT, bal INTEGER)")
            await pool.runOperation("INSERT INTO acct VALUES ('a', 10), ('b', 0)")
            left = await pool.runInteraction(transfer, 4)
            with pytest.raises(ValueError) as raised:
                await pool.runInteraction(transfer, 100)  # rolled back: both updates undone
            rows = await pool.runQuery("SELECT id, bal FROM acct ORDER BY id")
            return left, str(raised.value), rows
        finally:
            pool.close()

    left, error, rows = run_on_loop(loop_kind, main())
    assert (left, error) == (6, "overdrawn")
    assert rows == [("a", 6), ("b", 4)]


def test_run_with_connection_commits_or_rolls_back(loop_kind: str, db: str) -> None:
    def add(conn: adbapi.Connection, word: str, fail: bool) -> str:
        cursor = conn.cursor()
        cursor.execute("INSERT INTO w VALUES (?)", (word,))
        conn.close()  # ignored: the connection is the pool's
        if fail:
            raise KeyError(word)
        return word

    async def main() -> list[Any]:
        pool = make_pool(db)
        try:
            await pool.runOperation("CREATE TABLE w (word TEXT)")
            assert await pool.runWithConnection(add, "kept", False) == "kept"
            with pytest.raises(KeyError):
                await pool.runWithConnection(add, "dropped", True)
            return await pool.runQuery("SELECT word FROM w")
        finally:
            pool.close()

    assert run_on_loop(loop_kind, main()) == [("kept",)]


def test_each_thread_has_its_own_connection(loop_kind: str, db: str) -> None:
    opened: list[str] = []
    both_in = threading.Barrier(2, timeout=DEADLINE)

    def meet(trans: Any) -> int:
        both_in.wait()  # two calls at once: two threads, so two connections
        trans.execute("SELECT 1")
        return id(trans._connection._connection)

    async def main() -> tuple[set[int], int]:
        pool = make_pool(
            db,
            cp_min=2,
            cp_max=2,
            cp_openfun=lambda c: opened.append(threading.current_thread().name),
        )
        try:
            ids = await asyncio.gather(pool.runInteraction(meet), pool.runInteraction(meet))
            return set(ids), len(pool.connections)
        finally:
            pool.close()

    ids, open_connections = run_on_loop(loop_kind, main())
    assert len(ids) == 2 and open_connections == 2
    assert len(set(opened)) == 2 and all(name.startswith("PoolThread-") for name in opened)


def test_close_closes_each_connection_in_its_own_thread(
    loop_kind: str, db: str, caplog: pytest.LogCaptureFixture
) -> None:
    """sqlite3 refuses to close a connection from another thread than its own."""
    caplog.set_level(logging.ERROR, logger="treadle.error")

    async def main() -> adbapi.ConnectionPool:
        pool = make_pool(db, cp_min=2, cp_max=2)
        both_in = threading.Barrier(2, timeout=DEADLINE)
        await asyncio.gather(
            pool.runInteraction(lambda t: both_in.wait()),
            pool.runInteraction(lambda t: both_in.wait()),
        )
        pool.close()
        return pool

    pool = run_on_loop(loop_kind, main())
    assert len(Recording.closed_in) == 2
    assert all(name.startswith("PoolThread-adbapi") for name in Recording.closed_in)
    assert pool.connections == {} and not pool.running
    assert not [r for r in caplog.records if r.name == "treadle.error"]


def test_a_thread_that_ends_closes_its_connection(loop_kind: str, db: str) -> None:
    async def main() -> tuple[list[str], list[Any]]:
        pool = make_pool(db)
        try:
            await pool.runOperation("CREATE TABLE t (n INTEGER)")
            first = await pool.runInteraction(lambda t: threading.current_thread().name)
            pool.threadpool.stopAWorker()  # the idle thread ends, and with it its connection
            deadline = asyncio.get_running_loop().time() + DEADLINE
            while not Recording.closed_in:
                assert asyncio.get_running_loop().time() < deadline, "no connection closed"
                await asyncio.sleep(0.01)
            assert Recording.closed_in == [first] and pool.connections == {}
            pool.threadpool.startAWorker()
            await pool.runOperation("INSERT INTO t VALUES (1)")  # a new thread, connection
            return list(Recording.closed_in), await pool.runQuery("SELECT n FROM t")
        finally:
            pool.close()

    closed, rows = run_on_loop(loop_kind, main())
    assert len(closed) == 1 and rows == [(1,)]


@pytest.mark.parametrize("reconnect", [False, True])
def test_a_connection_that_cannot_roll_back_is_replaced(
    loop_kind: str, db: str, reconnect: bool, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="treadle.error")

    def break_connection(trans: Any) -> None:
        trans._connection._connection.close()  # the database went away mid-call
        raise OSError("lost")

    async def main() -> list[Any]:
        pool = make_pool(db, cp_reconnect=reconnect)
        try:
            await pool.runOperation("CREATE TABLE t (n INTEGER)")
            with pytest.raises(OSError, match="lost"):
                await pool.runInteraction(break_connection)
            await pool.runOperation("INSERT INTO t VALUES (7)")
            return await pool.runQuery("SELECT n FROM t")
        finally:
            pool.close()

    assert run_on_loop(loop_kind, main()) == [(7,)]
    assert "Rollback failed" in [r.getMessage() for r in caplog.records]


def test_calls_after_close_fail_at_once(loop_kind: str, db: str) -> None:
    async def main() -> None:
        pool = make_pool(db)
        await pool.runQuery("SELECT 1")
        pool.close()
        with pytest.raises(adbapi.ConnectionPoolClosed, match="sqlite3"):
            await pool.runQuery("SELECT 1")
        pool.start()  # a closed pool may be started again
        try:
            assert await pool.runQuery("SELECT 2") == [(2,)]
        finally:
            pool.close()

    run_on_loop(loop_kind, main())


def test_cp_arguments_are_the_pools_and_the_rest_go_to_connect(db: str) -> None:
    loop = new_event_loop()

    async def make() -> adbapi.ConnectionPool:
        return adbapi.ConnectionPool(
            "sqlite3", db, timeout=2.5, cp_min=4, cp_max=2, cp_noisy=True, cp_good_sql="select 2"
        )

    pool = loop.run_until_complete(make())
    try:
        assert (pool.min, pool.max, pool.noisy, pool.good_sql) == (2, 2, True, "select 2")
        assert pool.connargs == (db,) and pool.connkw == {"timeout": 2.5}
        assert (pool.threadpool.min, pool.threadpool.max) == (2, 2)
        copy = pickle.loads(pickle.dumps(pool))
        assert (copy.dbapiName, copy.connargs, copy.connkw) == ("sqlite3", (db,), {"timeout": 2.5})
        assert (copy.min, copy.max, copy.good_sql) == (2, 2, "select 2")
    finally:
        pool.close()
        loop.close()


def test_a_resource_answers_from_the_database(server: ServerThread, db: str) -> None:
    class Words(Resource):
        isLeaf = True

        def __init__(self, pool: adbapi.ConnectionPool) -> None:
            super().__init__()
            self.pool = pool

        def render_GET(self, request: Any) -> Any:
            d = self.pool.runQuery("SELECT word FROM w ORDER BY word")
            d.addCallback(lambda rows: request.write(" ".join(w for (w,) in rows).encode()))
            d.addCallback(lambda _: request.finish())
            return NOT_DONE_YET

        async def render_POST(self, request: Any) -> bytes:
            word = request.args[b"word"][0].decode()
            await self.pool.runOperation("INSERT INTO w VALUES (?)", (word,))
            return b"added " + word.encode()

    pools: list[adbapi.ConnectionPool] = []

    def setup() -> Words:
        pool = make_pool(db)
        pools.append(pool)
        return Words(pool)

    resource = server.call(setup)
    try:
        url = server.serve(resource)
        pool = pools[0]
        asyncio.run_coroutine_threadsafe(
            _await(pool.runOperation("CREATE TABLE w (word TEXT)")), server.loop
        ).result(DEADLINE)
        for word in ("pear", "apple"):
            with urllib.request.urlopen(url, data=f"word={word}".encode(), timeout=DEADLINE) as r:
                assert r.read() == f"added {word}".encode()
        with urllib.request.urlopen(url, timeout=DEADLINE) as r:
            assert r.read() == b"apple pear"
    finally:
        server.call(lambda: [p.close() for p in pools])


async def _await(awaitable: Any) -> Any:
    return await awaitable
