"""treadle.python.lockfile: a lock between processes, held as a symbolic link to a pid."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from treadle.python.lockfile import FilesystemLock, isLocked

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from twisted.python import lockfile as twisted_lockfile


@pytest.fixture
def name(tmp_path: Path) -> str:
    return str(tmp_path / "lock")


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait(timeout=30)
    return child.pid


def test_lock_and_unlock(name: str) -> None:
    lock = FilesystemLock(name)
    assert (lock.locked, lock.clean) == (False, None)
    assert lock.lock()
    assert (lock.locked, lock.clean) == (True, True)
    assert os.readlink(name) == str(os.getpid())
    assert isLocked(name)
    lock.unlock()
    assert not lock.locked
    assert not os.path.lexists(name)
    assert not isLocked(name)
    assert not os.path.lexists(name)  # the probe released what it took


def test_a_held_lock_is_refused_to_another_holder(name: str) -> None:
    first, second = FilesystemLock(name), FilesystemLock(name)
    assert first.lock()
    assert not second.lock()
    assert not second.locked
    first.unlock()
    assert second.lock()
    second.unlock()


def test_a_lock_left_by_a_dead_process_is_taken_over(name: str) -> None:
    os.symlink(str(dead_pid()), name)
    lock = FilesystemLock(name)
    assert lock.lock()
    assert lock.clean is False
    assert os.readlink(name) == str(os.getpid())
    lock.unlock()


def test_a_lock_of_a_live_process_is_held(name: str) -> None:
    os.symlink(str(os.getppid()), name)
    lock = FilesystemLock(name)
    assert not lock.lock()
    assert isLocked(name)
    with pytest.raises(ValueError, match="not owned by this process"):
        lock.unlock()
    assert os.path.lexists(name)


@pytest.mark.parametrize("kind", ["garbage link", "plain file"])
def test_something_else_at_the_path_is_a_held_lock(name: str, kind: str) -> None:
    if kind == "plain file":
        Path(name).write_text("x")
    else:
        os.symlink("not-a-pid", name)
    assert not FilesystemLock(name).lock()


def test_unlocking_nothing_raises(name: str) -> None:
    with pytest.raises(FileNotFoundError):
        FilesystemLock(name).unlock()


def test_a_missing_directory_raises(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        FilesystemLock(str(tmp_path / "no" / "lock")).lock()


def test_twisted_and_treadle_exclude_each_other(name: str) -> None:
    ours = FilesystemLock(name)
    assert ours.lock()
    assert twisted_lockfile.isLocked(name)
    assert not twisted_lockfile.FilesystemLock(name).lock()
    ours.unlock()
    theirs = twisted_lockfile.FilesystemLock(name)
    assert theirs.lock()
    assert isLocked(name)
    assert not FilesystemLock(name).lock()
    theirs.unlock()
