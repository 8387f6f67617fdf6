"""treadle.python.logfile: rotating log files, run side by side with Twisted's.

The same writes go to a treadle and a Twisted log file in two directories; the files each
leaves (names and contents) must be the same. Days are made to pass by overriding
``toDate``, as Twisted's documentation suggests for tests.
"""

from __future__ import annotations

import os
import pickle
import stat
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import twisted.python.logfile as twisted_logfile

from treadle.python import logfile


def files_in(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


@pytest.fixture
def dirs(tmp_path: Path) -> tuple[Path, Path]:
    ours, theirs = tmp_path / "treadle", tmp_path / "twisted"
    ours.mkdir()
    theirs.mkdir()
    return ours, theirs


def test_log_file_rotates_by_size_as_twisteds(dirs: tuple[Path, Path]) -> None:
    results = []
    for module, directory in zip((logfile, twisted_logfile), dirs, strict=True):
        log = module.LogFile("app.log", str(directory), rotateLength=10, maxRotatedFiles=3)
        for n in range(12):
            log.write(b"line %02d\n" % n)  # 8 bytes: two lines a file
        log.flush()
        results.append((files_in(directory), log.listLogs(), log.size))
        reader = log.getLog(1)
        assert reader.readLines(5) == ["line 08\n", "line 09\n"]
        reader.close()
        with pytest.raises(ValueError):
            log.getLog(9)
        log.close()
    assert results[0] == results[1]
    assert sorted(results[0][0]) == ["app.log", "app.log.1", "app.log.2", "app.log.3"]


def test_log_file_counts_bytes_not_characters(dirs: tuple[Path, Path]) -> None:
    log = logfile.LogFile("app.log", str(dirs[0]), rotateLength=100)
    log.write("é" * 10)  # 20 bytes
    assert log.size == 20 == os.path.getsize(log.path)
    log.close()


def test_a_reopened_log_file_appends_and_knows_its_size(dirs: tuple[Path, Path]) -> None:
    log = logfile.LogFile.fromFullPath(str(dirs[0] / "app.log"), rotateLength=None)
    log.write(b"one\n")
    log.reopen()
    log.write("two\n")
    assert log.size == 8 and not log.shouldRotate()
    reader = log.getCurrentLog()
    assert reader.readLines() == ["one\n", "two\n"]
    reader.close()
    log.close()
    assert log.closed


class Days:
    """A calendar for a DailyLogFile: ``today`` is the date its ``toDate()`` gives."""

    today = (2026, 12, 6)

    @classmethod
    def daily(cls, module: Any, directory: Path) -> Any:
        class Daily(module.DailyLogFile):  # type: ignore[misc,name-defined]
            def toDate(self, *args: float) -> tuple[int, int, int]:
                return super().toDate(*args) if args else cls.today

        return Daily("app.log", str(directory))


def test_daily_log_file_rotates_on_a_new_day_as_twisteds(dirs: tuple[Path, Path]) -> None:
    results = []
    for module, directory in zip((logfile, twisted_logfile), dirs, strict=True):
        Days.today = (2026, 12, 6)
        log = Days.daily(module, directory)
        log.lastDate = (2026, 12, 6)
        log.write(b"saturday\n")
        Days.today = (2026, 12, 7)
        log.write(b"sunday\n")
        log.write(b"sunday again\n")
        Days.today = (2026, 12, 9)
        log.write(b"tuesday\n")
        log.flush()
        saturday_noon = time.mktime((2026, 12, 6, 12, 0, 0, 0, 0, -1))
        reader = log.getLog(saturday_noon)
        lines = reader.readLines()
        reader.close()
        with pytest.raises(ValueError):
            log.getLog(saturday_noon - 86400)
        results.append((files_in(directory), log.lastDate, log.suffix((2026, 1, 2)), lines))
        log.close()
    assert results[0] == results[1]
    assert results[0][0] == {
        "app.log": b"tuesday\n",
        "app.log.2026_12_6": b"saturday\n",
        "app.log.2026_12_7": b"sunday\nsunday again\n",
    }
    assert results[0][2:] == ("2026_1_2", ["saturday\n"])


def test_daily_log_file_whose_days_file_exists_keeps_writing(dirs: tuple[Path, Path]) -> None:
    directory = dirs[0]
    (directory / "app.log.2026_12_6").write_bytes(b"another process\n")
    Days.today = (2026, 12, 6)
    log = Days.daily(logfile, directory)
    log.lastDate = (2026, 12, 6)
    log.write(b"a\n")
    Days.today = (2026, 12, 7)
    rotations = []
    log.rotate = lambda real=log.rotate: rotations.append(1) or real()  # type: ignore[misc]
    log.write(b"b\n")
    log.write(b"c\n")  # no second attempt: the day is taken as rotated
    assert len(rotations) == 1
    Days.today = (2026, 12, 8)
    log.write(b"d\n")
    log.close()
    assert files_in(directory) == {
        "app.log": b"d\n",
        "app.log.2026_12_6": b"another process\n",
        "app.log.2026_12_7": b"a\nb\nc\n",
    }


def test_writes_from_threads_are_not_interleaved(dirs: tuple[Path, Path]) -> None:
    log = logfile.LogFile("app.log", str(dirs[0]), rotateLength=5000)
    lines = [f"thread {t} line {n:03d}\n".encode() for t in range(4) for n in range(200)]

    def write(t: int) -> None:
        for line in lines[t * 200 : (t + 1) * 200]:
            log.write(line)

    threads = [threading.Thread(target=write, args=(t,)) for t in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    log.close()
    written = b"".join(files_in(dirs[0]).values())
    assert sorted(written.splitlines(keepends=True)) == sorted(lines)


def test_default_mode_and_pickling(dirs: tuple[Path, Path]) -> None:
    log = logfile.LogFile("app.log", str(dirs[0]), defaultMode=0o600)
    assert stat.S_IMODE(os.stat(log.path).st_mode) == 0o600
    log.write(b"kept\n")
    copy = pickle.loads(pickle.dumps(log))
    log.close()
    copy.write(b"more\n")
    assert copy.size == 10 and copy.defaultMode == 0o600
    copy.close()
    assert (dirs[0] / "app.log").read_bytes() == b"kept\nmore\n"
