"""GuardedStore: deadlines on calls that wait, none for calls answered at once, backoff."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Collection, Mapping
from typing import Any

import pytest

from tests.conftest import DEADLINE
from treadle.internet.defer import Deferred, succeed
from treadle.web._session_store import GuardedStore, SessionStoreUnavailable


class HandStore:
    """A store answering only when the test says so: each call's Deferred is kept by uid."""

    description = "hand:"
    runs_inline = True

    def __init__(self) -> None:
        self.calls: dict[bytes, Deferred[Any]] = {}

    def load(self, uid: bytes, timeout: float) -> Deferred[dict[str, bytes] | None]:
        d: Deferred[dict[str, bytes] | None] = Deferred()
        self.calls[uid] = d
        return d

    def save(
        self, uid: bytes, changed: Mapping[str, bytes], removed: Collection[str], timeout: float
    ) -> Deferred[None]:
        return succeed(None)  # answered at once

    def delete(self, uid: bytes) -> Deferred[None]:
        raise OSError("no such disk")

    def remaining(self, uid: bytes) -> Awaitable[float | None]:
        async def later() -> float | None:
            await asyncio.sleep(0)
            return 1.0

        return later()

    async def close(self) -> None:
        pass


def run(scenario: Callable[[], Awaitable[Any]]) -> Any:
    async def main() -> Any:
        return await asyncio.wait_for(scenario(), DEADLINE)

    return asyncio.run(main())


def test_only_the_calls_past_their_deadline_fail() -> None:
    async def scenario() -> None:
        store = HandStore()
        guarded = GuardedStore(store, deadline=0.2)
        slow = guarded.load(b"slow", 60)
        started = time.monotonic()
        await asyncio.sleep(0.1)
        quick = guarded.load(b"quick", 60)
        late = guarded.load(b"late", 60)  # its deadline comes 0.1 s after slow's
        store.calls[b"quick"].callback({"a:x": b"1"})
        assert await quick == {"a:x": b"1"}
        with pytest.raises(SessionStoreUnavailable, match="no answer in time"):
            await slow
        assert 0.15 < time.monotonic() - started < 1
        store.calls[b"late"].callback(None)  # answered before its own deadline
        assert await late is None
        assert guarded.down  # asked before the outage began: it is not the probe
        await asyncio.sleep(0.15)
        await guarded.save(b"s", {}, (), 60)  # the probe
        assert not guarded.down
        await guarded.close()

    run(scenario)


def test_a_call_answered_at_once_comes_back_fired_and_unwatched() -> None:
    async def scenario() -> None:
        guarded = GuardedStore(HandStore(), deadline=0.2)
        saved = guarded.save(b"s", {}, (), 60)
        assert saved.called
        assert not guarded._pending and guarded._timer is None
        await saved

    run(scenario)


def test_a_coroutine_store_call_works_too() -> None:
    async def scenario() -> None:
        guarded = GuardedStore(HandStore(), deadline=1)
        assert await guarded.remaining(b"s") == 1.0

    run(scenario)


def test_an_outage_fails_fast_logs_once_and_probes_with_backoff(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="treadle.error")
    now = [100.0]
    store = HandStore()
    guarded = GuardedStore(store, clock=lambda: now[0])

    async def scenario() -> None:
        with pytest.raises(SessionStoreUnavailable, match="no such disk"):
            await guarded.delete(b"s")
        for _ in range(3):  # not asked again before the first probe is due
            with pytest.raises(SessionStoreUnavailable, match="is down"):
                await guarded.delete(b"s")
        assert guarded.down
        now[0] += 0.1  # the first probe is due: the store is asked again
        with pytest.raises(SessionStoreUnavailable, match="no such disk"):
            await guarded.delete(b"s")
        with pytest.raises(SessionStoreUnavailable, match="is down"):
            await guarded.save(b"s", {}, (), 60)  # not asked until the next probe
        now[0] += 0.2
        await guarded.save(b"s", {}, (), 60)
        assert not guarded.down

    run(scenario)
    lines = [r.getMessage() for r in caplog.records if r.name == "treadle.error"]
    assert len(lines) == 2
    assert "unavailable" in lines[0] and "answers again" in lines[1]
