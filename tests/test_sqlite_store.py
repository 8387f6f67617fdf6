"""The SQLite session store: one file, several processes, sliding expiry, a bound."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import DEADLINE, eventually, run_scenario
from treadle.web import _sqlite_store as sqlite_store
from treadle.web._session_store import GuardedStore, SessionStoreUnavailable
from treadle.web._sqlite_store import SQLiteStore


class Clock:
    """A wall clock the test moves by hand."""

    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "sessions.sqlite3"


def test_a_saved_session_loads_with_its_fields(path: Path) -> None:
    async def scenario() -> None:
        store = SQLiteStore(path)
        assert await store.load(b"s1", 60) is None
        await store.save(b"s1", {}, (), 60)
        assert await store.load(b"s1", 60) == {}  # an empty session exists
        await store.save(b"s1", {"a:cart": b"3 apples", "a:user": b"ann"}, (), 60)
        await store.save(b"s1", {"a:cart": b"4 apples"}, ("a:user",), 60)
        assert await store.load(b"s1", 60) == {"a:cart": b"4 apples"}
        assert await store.load(b"s2", 60) is None
        await store.close()

    run_scenario(scenario)


def test_delete_forgets_the_session_and_tolerates_unknown_ids(path: Path) -> None:
    async def scenario() -> None:
        store = SQLiteStore(path)
        await store.save(b"s1", {"a:x": b"1"}, (), 60)
        await store.delete(b"s1")
        await store.delete(b"never")
        assert await store.load(b"s1", 60) is None
        assert await store.remaining(b"s1") is None
        await store.close()

    run_scenario(scenario)


def test_the_file_is_private_and_its_description_names_it(path: Path) -> None:
    store = SQLiteStore(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert store.description == f"sqlite:{path}"


def test_a_file_of_another_schema_version_is_refused(path: Path) -> None:
    db = sqlite3.connect(path)
    db.execute("PRAGMA user_version = 99")
    db.close()
    with pytest.raises(sqlite3.DatabaseError, match="schema version 99"):
        SQLiteStore(path)


def test_a_bound_below_one_is_refused(path: Path) -> None:
    with pytest.raises(ValueError, match="max_sessions"):
        SQLiteStore(path, max_sessions=0)


# -- expiry -----------------------------------------------------------------------------------


def test_a_session_expires_timeout_after_its_last_use(path: Path) -> None:
    clock = Clock()

    async def scenario() -> None:
        store = SQLiteStore(path, clock=clock)
        await store.save(b"s1", {"a:x": b"1"}, (), 10)
        assert await store.remaining(b"s1") == 10
        clock.now += 9
        assert await store.load(b"s1", 10) == {"a:x": b"1"}  # pushes the expiry ahead
        clock.now += 9
        assert await store.remaining(b"s1") == pytest.approx(1)
        clock.now += 1
        assert await store.load(b"s1", 10) is None
        assert await store.remaining(b"s1") is None
        await store.close()

    run_scenario(scenario)


def test_a_load_soon_after_the_last_push_does_not_write(path: Path) -> None:
    clock = Clock()

    async def scenario() -> None:
        store = SQLiteStore(path, clock=clock)
        await store.save(b"s1", {}, (), 100)
        clock.now += 4  # under a twentieth of the timeout
        await store.load(b"s1", 100)
        assert await store.remaining(b"s1") == pytest.approx(96)
        clock.now += 2  # over it
        await store.load(b"s1", 100)
        assert await store.remaining(b"s1") == pytest.approx(100)
        await store.close()

    run_scenario(scenario)


def test_saving_an_expired_session_starts_it_afresh(path: Path) -> None:
    clock = Clock()

    async def scenario() -> None:
        store = SQLiteStore(path, clock=clock)
        await store.save(b"s1", {"a:old": b"1"}, (), 10)
        clock.now += 11
        await store.save(b"s1", {"a:new": b"2"}, (), 10)
        assert await store.load(b"s1", 10) == {"a:new": b"2"}
        await store.close()

    run_scenario(scenario)


def test_a_session_with_a_short_timeout_expires_in_real_time(path: Path) -> None:
    async def scenario() -> None:
        store = SQLiteStore(path)
        await store.save(b"s1", {"a:x": b"1"}, (), 0.2)
        assert await store.load(b"s1", 0.2) == {"a:x": b"1"}

        async def gone() -> bool:
            return await store.remaining(b"s1") is None

        await eventually(gone, "the session to expire")
        assert await store.load(b"s1", 0.2) is None
        await store.close()

    run_scenario(scenario)


def test_purge_removes_expired_sessions_only(path: Path) -> None:
    clock = Clock()

    async def scenario() -> None:
        store = SQLiteStore(path, clock=clock)
        for n in range(1200):  # more than one purge batch
            await store.save(b"old%d" % n, {"a:x": b"1"}, (), 10)
        await store.save(b"young", {"a:x": b"1"}, (), 100)
        clock.now += 50
        assert await store.purge() == 1200
        assert await store.purge() == 0
        assert await store.load(b"young", 100) == {"a:x": b"1"}
        await store.close()
        db = sqlite3.connect(path)
        assert db.execute("SELECT COUNT(*) FROM fields").fetchone() == (1,)
        assert db.execute("SELECT sessions FROM counts").fetchone() == (1,)
        db.close()

    run_scenario(scenario)


# -- the bound --------------------------------------------------------------------------------


def test_past_the_bound_the_least_recently_used_sessions_go_first(path: Path) -> None:
    clock = Clock()

    async def scenario() -> None:
        store = SQLiteStore(path, max_sessions=3, clock=clock)
        for uid in (b"a", b"b", b"c"):
            await store.save(uid, {"a:x": uid}, (), 10)
            clock.now += 1
        assert await store.load(b"a", 10) == {"a:x": b"a"}  # a is now the most recent
        await store.save(b"d", {}, (), 10)
        assert await store.load(b"b", 10) is None
        await store.save(b"e", {}, (), 10)
        assert await store.load(b"c", 10) is None
        for uid in (b"a", b"d", b"e"):
            assert await store.load(uid, 10) is not None
        await store.close()
        db = sqlite3.connect(path)
        assert db.execute("SELECT COUNT(*) FROM fields").fetchone() == (1,)  # a's only
        db.close()

    run_scenario(scenario)


def test_the_bound_holds_under_a_flood_of_new_sessions(path: Path) -> None:
    async def scenario() -> None:
        store = SQLiteStore(path, max_sessions=50)
        for n in range(400):
            await store.save(b"flood%d" % n, {"a:x": b"1"}, (), 60)
        await store.delete(b"flood399")
        await store.close()
        db = sqlite3.connect(path)
        assert db.execute("SELECT COUNT(*) FROM sessions").fetchone() == (49,)
        assert db.execute("SELECT sessions FROM counts").fetchone() == (49,)
        db.close()

    run_scenario(scenario)


# -- several processes ------------------------------------------------------------------------

CHILD = """
import asyncio, sys
from treadle.web._sqlite_store import SQLiteStore

async def main(path, action, uid, field, rounds):
    store = SQLiteStore(path)
    if action == "read":
        print(await store.load(uid.encode(), 60))
    else:
        sys.stdin.readline()  # start together with the other writers
        for n in range(int(rounds)):
            await store.save(
                uid.encode(), {field: b"%d" % n, "a:shared": field.encode()}, (), 60
            )
    await store.close()

asyncio.run(main(*sys.argv[1:]))
"""


def child(path: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, str(path), *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )


def test_a_session_written_in_one_process_is_read_in_another(path: Path) -> None:
    async def write() -> None:
        store = SQLiteStore(path)
        await store.save(b"s1", {"a:count": b"7"}, (), 60)
        await store.close()

    run_scenario(write)
    reader = child(path, "read", "s1", "-", "0")
    out, _ = reader.communicate(timeout=DEADLINE)
    assert reader.returncode == 0
    assert out.strip() == "{'a:count': b'7'}"

    writer = child(path, "write", "s2", "a:from_child", "1")
    writer.communicate("go\n", timeout=DEADLINE)
    assert writer.returncode == 0

    async def read() -> Any:
        store = SQLiteStore(path)
        try:
            return await store.load(b"s2", 60)
        finally:
            await store.close()

    assert run_scenario(read) == {"a:from_child": b"0", "a:shared": b"a:from_child"}


def test_processes_writing_one_session_at_once_lose_no_field(path: Path) -> None:
    """Per field, the last writer wins; fields written by others are never undone."""
    SQLiteStore(path)
    rounds = 1000
    writers = [child(path, "write", "s1", f"a:{name}", str(rounds)) for name in ("p1", "p2")]
    for writer in writers:
        assert writer.stdin is not None
        writer.stdin.write("go\n")
        writer.stdin.flush()
    for writer in writers:
        writer.communicate(timeout=DEADLINE)
        assert writer.returncode == 0

    async def read() -> Any:
        store = SQLiteStore(path)
        try:
            return await store.load(b"s1", 60)
        finally:
            await store.close()

    fields = run_scenario(read)
    assert fields["a:p1"] == fields["a:p2"] == b"%d" % (rounds - 1)
    assert fields["a:shared"] in (b"a:p1", b"a:p2")


def test_a_lock_held_by_another_process_never_blocks_the_loop(path: Path) -> None:
    """While another connection holds the write lock, the save waits off the loop."""
    store = SQLiteStore(path)
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    released = threading.Event()

    async def scenario() -> None:
        save = asyncio.ensure_future(store.save(b"s1", {"a:x": b"1"}, (), 60))
        ticks = 0
        while ticks < 5:  # the loop keeps turning while the save waits
            await asyncio.sleep(0.01)
            ticks += 1
        assert not save.done()
        threading.Thread(target=lambda: (other.execute("COMMIT"), released.set())).start()
        await asyncio.wait_for(save, DEADLINE)
        assert await store.load(b"s1", 60) == {"a:x": b"1"}
        await store.close()

    run_scenario(scenario)
    assert released.wait(DEADLINE)
    other.close()


def test_a_lock_held_too_long_becomes_an_outage_of_the_guarded_store(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite_store, "BUSY_TIMEOUT", 0.2)
    store = GuardedStore(SQLiteStore(path), deadline=5.0)
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")

    async def scenario() -> None:
        started = time.monotonic()
        with pytest.raises(SessionStoreUnavailable, match="locked"):
            await store.save(b"s1", {}, (), 60)
        # The store's own wait (BUSY_TIMEOUT) ends before the guard's deadline.
        assert time.monotonic() - started < 5.0
        other.execute("COMMIT")
        await store.close()

    run_scenario(scenario)
    other.close()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_worker_opens_its_own_connections(path: Path) -> None:
    """A store used before a fork keeps working in the parent and in the child."""
    store = SQLiteStore(path)

    async def save(uid: bytes) -> None:
        await store.save(uid, {"a:by": uid}, (), 60)

    run_scenario(lambda: save(b"parent"))
    pid = os.fork()
    if pid == 0:  # the worker: report through the exit status only
        try:
            run_scenario(lambda: save(b"child"))
            ok = run_scenario(lambda: store.load(b"parent", 60)) == {"a:by": b"parent"}
            os._exit(0 if ok else 1)
        finally:
            os._exit(2)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert run_scenario(lambda: store.load(b"child", 60)) == {"a:by": b"child"}
    run_scenario(store.close)


# -- batches ----------------------------------------------------------------------------------


def test_the_calls_of_one_loop_turn_share_one_transaction(path: Path) -> None:
    async def scenario() -> None:
        store = SQLiteStore(path)
        for n in range(10):
            await store.save(b"s%d" % n, {"a:x": b"0"}, (), 60)
        statements: list[str] = []
        db = store._inline_connection()
        db.set_trace_callback(statements.append)
        loads = [store.load(b"s%d" % n, 60) for n in range(10)]
        saves = [store.save(b"s%d" % n, {"a:x": b"%d" % n}, (), 60) for n in range(10)]
        assert not any(d.called for d in loads + saves)  # answered at the end of the turn
        assert await asyncio.gather(*loads) == [{"a:x": b"0"}] * 10
        await asyncio.gather(*saves)
        db.set_trace_callback(None)
        # The loads: one statement (a snapshot of its own); the saves: one transaction, with
        # no full save (none is new, expired or due for a push).
        assert len([s for s in statements if s.startswith("SELECT")]) == 1
        assert [s for s in statements if s.startswith(("BEGIN", "COMMIT"))] == [
            "BEGIN IMMEDIATE",
            "COMMIT",
        ]
        assert len([s for s in statements if s.startswith("INSERT INTO fields")]) == 10
        statements.clear()
        db.set_trace_callback(statements.append)
        await store.save(b"s1", {"a:x": b"1"}, (), 60)  # alone: one statement, no transaction
        db.set_trace_callback(None)
        assert len(statements) == 1 and statements[0].startswith("INSERT INTO fields")
        assert [await store.load(b"s%d" % n, 60) for n in range(10)] == [
            {"a:x": b"%d" % n} for n in range(10)
        ]
        await store.close()

    run_scenario(scenario)


def test_a_batch_mixing_kinds_of_calls_answers_each(path: Path) -> None:
    clock = Clock()

    async def scenario() -> None:
        store = SQLiteStore(path, clock=clock)
        await store.save(b"old", {"a:x": b"1", "a:y": b"2"}, (), 10)
        await store.save(b"gone", {"a:x": b"1"}, (), 10)
        clock.now += 9  # old and gone are due for a push
        calls = [
            store.load(b"old", 10),
            store.load(b"never", 10),
            store.remaining(b"old"),
            store.save(b"new", {"a:x": b"1"}, (), 10),  # the full save: a new session
            store.save(b"old", {"a:x": b"3"}, ("a:y",), 10),
            store.delete(b"gone"),
        ]
        results = await asyncio.gather(*calls)
        assert results == [{"a:x": b"1", "a:y": b"2"}, None, pytest.approx(1), None, None, None]
        assert await asyncio.gather(
            store.load(b"old", 10), store.load(b"new", 10), store.load(b"gone", 10)
        ) == [{"a:x": b"3"}, {"a:x": b"1"}, None]
        assert await store.remaining(b"old") == pytest.approx(10)
        await store.close()

    run_scenario(scenario)


def test_a_save_pushes_the_expiry_only_when_it_is_due(path: Path) -> None:
    clock = Clock()

    async def scenario() -> None:
        store = SQLiteStore(path, clock=clock)
        await store.save(b"s1", {"a:x": b"1"}, (), 100)
        clock.now += 4  # under a twentieth of the timeout: the fields only
        await store.save(b"s1", {"a:x": b"2"}, (), 100)
        assert await store.remaining(b"s1") == pytest.approx(96)
        clock.now += 2  # over it: the expiry moves too
        await store.save(b"s1", {"a:x": b"3"}, (), 100)
        assert await store.remaining(b"s1") == pytest.approx(100)
        clock.now += 101  # expired, not purged: the save starts it afresh
        await store.save(b"s1", {"a:y": b"4"}, (), 100)
        assert await store.load(b"s1", 100) == {"a:y": b"4"}
        await store.close()

    run_scenario(scenario)


def test_the_write_ahead_log_starts_over_under_steady_writes(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Checkpoints in the thread let the log start over, however steady the writes (a
    passive checkpoint alone never catches up: the log would hold every write)."""
    monkeypatch.setattr(sqlite_store, "CHECKPOINT_EVERY", 50)
    writes = 2000

    async def scenario() -> None:
        store = SQLiteStore(path)
        for n in range(writes):  # each its own batch: a commit, a page of log at least
            await store.save(b"s1", {"a:x": b"%d" % n}, (), 60)
        assert await store.load(b"s1", 60) == {"a:x": b"%d" % (writes - 1)}
        # Frames in the log since it last started over (asked before the store closes: the
        # last connection to close checkpoints and removes the log).
        db = sqlite3.connect(path)
        _, frames, _ = db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        db.close()
        assert frames < writes  # each write added a frame at least: it started over
        await store.close()

    run_scenario(scenario)


def test_writes_stay_in_order_while_one_batch_waits_in_the_thread(path: Path) -> None:
    store = SQLiteStore(path)
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)

    async def scenario() -> None:
        await store.save(b"s1", {"a:x": b"0"}, (), 60)
        other.execute("BEGIN IMMEDIATE")
        first = store.save(b"s1", {"a:x": b"1"}, (), 60)  # finds the lock: to the thread
        await asyncio.sleep(0.05)
        second = store.save(b"s1", {"a:x": b"2"}, (), 60)  # queues behind it
        await asyncio.sleep(0.05)
        assert not first.called and not second.called
        threading.Thread(target=other.execute, args=("COMMIT",)).start()
        await asyncio.wait_for(asyncio.gather(first, second), DEADLINE)
        assert await store.load(b"s1", 60) == {"a:x": b"2"}
        await store.close()

    run_scenario(scenario)
    other.close()


def test_calls_cancelled_before_their_batch_are_not_run(path: Path) -> None:
    async def scenario() -> None:
        store = SQLiteStore(path)
        await store.save(b"s1", {"a:x": b"0"}, (), 60)
        dropped = store.save(b"s1", {"a:x": b"1"}, (), 60)
        dropped.addErrback(lambda failure: None)
        dropped.cancel()
        assert await store.load(b"s1", 60) == {"a:x": b"0"}
        await store.close()

    run_scenario(scenario)
