"""treadle.internet.defer.DeferredFilesystemLock: waiting for a lock between processes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from treadle.internet import defer
from treadle.internet.defer import (
    AlreadyTryingToLockError,
    CancelledError,
    Deferred,
    DeferredFilesystemLock,
)
from treadle.internet.task import Clock
from treadle.python.failure import Failure


def outcome(d: Deferred[Any]) -> list[Any]:
    out: list[Any] = []
    d.addBoth(out.append)
    return out


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def lock(tmp_path: Path, clock: Clock) -> DeferredFilesystemLock:
    return DeferredFilesystemLock(str(tmp_path / "lock"), scheduler=clock)


@pytest.fixture
def held(tmp_path: Path) -> DeferredFilesystemLock:
    """Another holder of the same lock (of this process: the lock is per process)."""
    other = DeferredFilesystemLock(str(tmp_path / "lock"), scheduler=Clock())
    assert other.lock()
    return other


def test_a_free_lock_is_taken_at_once(lock: DeferredFilesystemLock, clock: Clock) -> None:
    assert outcome(lock.deferUntilLocked(timeout=1)) == [None]
    assert lock.locked
    assert clock.getDelayedCalls() == []


def test_waits_until_the_lock_is_released(
    lock: DeferredFilesystemLock, held: DeferredFilesystemLock, clock: Clock
) -> None:
    out = outcome(lock.deferUntilLocked(timeout=10))
    clock.advance(1)
    assert out == []
    held.unlock()
    clock.advance(1)  # the next attempt, a second after the last one
    assert out == [None]
    assert lock.locked
    assert clock.getDelayedCalls() == []  # the timeout went with it


@pytest.mark.usefixtures("held")
def test_times_out(lock: DeferredFilesystemLock, clock: Clock) -> None:
    out = outcome(lock.deferUntilLocked(timeout=5.5))
    clock.pump([1] * 5)
    assert out == []
    clock.advance(0.5)
    (failure,) = out
    assert isinstance(failure, Failure) and failure.check(defer.TimeoutError)
    assert clock.getDelayedCalls() == []
    assert not lock.locked


def test_one_wait_at_a_time(
    lock: DeferredFilesystemLock, held: DeferredFilesystemLock, clock: Clock
) -> None:
    first = outcome(lock.deferUntilLocked())
    (second,) = outcome(lock.deferUntilLocked())
    assert second.check(AlreadyTryingToLockError)
    held.unlock()
    clock.advance(1)
    assert first == [None]
    # Once locked, the lock can be waited for again.
    lock.unlock()
    assert outcome(lock.deferUntilLocked()) == [None]


@pytest.mark.usefixtures("held")
@pytest.mark.parametrize("timeout", [None, 3])
def test_cancelling_stops_the_attempts(
    lock: DeferredFilesystemLock, clock: Clock, timeout: float | None
) -> None:
    d = lock.deferUntilLocked(timeout=timeout)
    d.cancel()
    (failure,) = outcome(d)
    assert failure.check(CancelledError)
    assert clock.getDelayedCalls() == []


def test_the_default_scheduler_is_the_reactor(tmp_path: Path) -> None:
    from treadle.internet import reactor

    lock = DeferredFilesystemLock(str(tmp_path / "lock"))
    assert lock._scheduler is reactor
