"""treadle.python.log: Twisted's legacy logging API, compared with real Twisted, on top of
treadle.logger and Python's logging."""

from __future__ import annotations

import io
import logging
import re
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest
from twisted.python import log as twlog

from treadle.logger import (
    LogBeginner,
    Logger,
    LoggingFile,
    LogLevel,
    LogPublisher,
    capturedLogs,
    formatEvent,
    globalLogPublisher,
)
from treadle.python import log
from treadle.python.failure import Failure

WHEN = 1_700_000_000.5


def failure_of(exc: BaseException) -> Failure:
    try:
        raise exc
    except BaseException:
        return Failure()


@pytest.fixture
def legacy() -> Iterator[list[dict[str, Any]]]:
    """A legacy observer added to the global log for the test."""
    seen: list[dict[str, Any]] = []
    log.addObserver(seen.append)
    try:
        yield seen
    finally:
        log.removeObserver(seen.append)


# -- err and msg reach Python's logging ----------------------------------------------------------


def test_err_logs_to_treadle_error_with_the_traceback(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger="treadle.error")
    failure = failure_of(KeyError("missing"))
    with capturedLogs() as events:
        log.err(failure, "looking something up")
    (record,) = [r for r in caplog.records if r.name == "treadle.error"]
    assert record.levelno == logging.ERROR
    assert record.getMessage() == "looking something up"
    assert record.exc_info is not None and record.exc_info[1] is failure.value
    assert record.pathname == __file__ and record.funcName.startswith("test_err_logs")
    # One event for the observers, as Twisted makes it.
    (event,) = events
    assert event["isError"] == 1 and event["failure"] is failure
    assert event["log_namespace"] == "log_legacy" and event["log_level"] is LogLevel.critical
    assert formatEvent(event).startswith("looking something up\nTraceback (most recent call")


def test_err_accepts_exceptions_the_current_exception_and_other_values(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.ERROR, logger="treadle.error")
    log.err(ValueError("plain"))
    try:
        1 / 0  # noqa: B018
    except ZeroDivisionError:
        log.err()
    log.err("a string", "why")
    log.err(None, "nothing being handled")  # Twisted raises here; treadle logs the why
    records = [r for r in caplog.records if r.name == "treadle.error"]
    assert [r.getMessage() for r in records] == [
        "Unhandled Error",
        "Unhandled Error",
        "why: 'a string'",
        "nothing being handled",
    ]
    assert records[0].exc_info is not None and records[0].exc_info[0] is ValueError
    assert records[1].exc_info is not None and records[1].exc_info[0] is ZeroDivisionError
    assert not records[2].exc_info and not records[3].exc_info


def test_msg_logs_to_treadle_log_at_info(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="treadle.log")
    log.msg("several", 3, "parts")
    log.msg(format="%(n)d items in %(where)s", n=3, where="cart")
    log.msg("louder", logLevel=logging.WARNING)
    log.msg("an error without failure", isError=True)
    records = [(r.name, r.levelno, r.getMessage()) for r in caplog.records]
    assert records == [
        ("treadle.log", logging.INFO, "several 3 parts"),
        ("treadle.log", logging.INFO, "3 items in cart"),
        ("treadle.log", logging.WARNING, "louder"),
        ("treadle.error", logging.ERROR, "an error without failure"),
    ]


def test_python_logging_observer_does_not_log_global_events_twice(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    observer = log.PythonLoggingObserver()
    observer.start()
    try:
        log.msg("only once")
        Logger(namespace="legacy.test").info("new style once")
    finally:
        observer.stop()
    messages = [r.getMessage() for r in caplog.records]
    assert messages.count("only once") == 1 and messages.count("new style once") == 1


# -- legacy observers and events ---------------------------------------------------------------


def test_legacy_observers_get_legacy_event_dicts(legacy: list[dict[str, Any]]) -> None:
    before = time.time()
    log.msg("hello", "there", system="sys", extra=1)
    failure = failure_of(OSError("disk"))
    log.err(failure, "writing")
    message, error = legacy
    assert message["message"] == ("hello", "there") and message["isError"] == 0
    assert message["system"] == "sys" and message["extra"] == 1
    assert before <= message["time"] <= time.time()
    assert log.textFromEventDict(message) == "hello there"
    assert error["message"] == () and error["isError"] == 1
    assert error["failure"] is failure and error["why"] == "writing"
    assert log.textFromEventDict(error) == "writing\n" + failure.getTraceback()


def test_legacy_observers_see_new_style_events(legacy: list[dict[str, Any]]) -> None:
    log_ = Logger(namespace="newstyle")
    log_.info("count={n}", n=2)
    log_.failure("broke {what}", failure_of(KeyError("k")), level=LogLevel.error, what="it")
    info, failure = legacy
    assert info["message"] == () and info["isError"] == 0 and info["system"] == "-"
    assert info["format"] == "%(log_legacy)s" and log.textFromEventDict(info) == "count=2"
    assert failure["isError"] == 1 and failure["why"] == "broke it"
    assert failure["failure"].check(KeyError)


def test_new_observers_see_legacy_messages() -> None:
    with capturedLogs() as events:
        log.msg("legacy text", system="web")
    (event,) = events
    assert event["log_namespace"] == "log_legacy" and event["log_level"] is LogLevel.info
    assert event["log_system"] == "web" and formatEvent(event) == "legacy text"


def test_remove_observer_stops_delivery() -> None:
    seen: list[dict[str, Any]] = []
    log.addObserver(seen.append)
    log.msg("one")
    log.removeObserver(seen.append)
    log.removeObserver(seen.append)  # not there any more: ignored
    log.msg("two")
    assert [e["message"] for e in seen] == [("one",)]


def test_context_sets_the_system_of_messages(legacy: list[dict[str, Any]]) -> None:
    class Proto(log.Logger):
        def logPrefix(self) -> str:
            return "Proto,7,127.0.0.1"

    def work() -> str:
        log.msg("inside")
        return "result"

    assert log.callWithLogger(Proto(), work) == "result"
    assert log.callWithContext({"system": "outer"}, log.callWithContext, {"x": 1}, work)
    log.msg("outside")
    assert [(e["system"], e.get("x")) for e in legacy] == [
        ("Proto,7,127.0.0.1", None),
        ("outer", 1),
        ("-", None),
    ]


def test_call_with_logger_logs_what_the_call_raises(legacy: list[dict[str, Any]]) -> None:
    class Buggy(log.Logger):
        def logPrefix(self) -> str:
            raise RuntimeError("no prefix")

    def fails() -> None:
        raise ValueError("inside the call")

    assert log.callWithLogger(log.Logger(), fails) is None
    log.callWithLogger(Buggy(), lambda: None)
    assert [e["failure"].type for e in legacy] == [ValueError, RuntimeError]
    assert [e["system"] for e in legacy] == ["-", "(buggy logPrefix method)"]


# -- textFromEventDict and the legacy FileLogObserver, against Twisted ----------------------------


LEGACY_EVENTS: list[dict[str, Any]] = [
    {"message": ("a", 1, None), "isError": 0},
    {"message": (), "isError": 0, "format": "%(n)d left", "n": 4},
    {"message": (), "isError": 0, "format": "%(missing)s"},
    {"message": (), "isError": 0},
    {"message": (), "isError": 1, "why": None},
    {"message": ("multi\nline",), "isError": 1},
]


@pytest.mark.parametrize("event", LEGACY_EVENTS)
def test_text_from_event_dict_matches_twisted(event: dict[str, Any]) -> None:
    assert log.textFromEventDict(dict(event)) == twlog.textFromEventDict(dict(event))


@pytest.mark.parametrize("event", LEGACY_EVENTS)
@pytest.mark.parametrize("time_format", [None, "%H:%M:%S"])
def test_file_log_observer_writes_the_same_lines_as_twisted(
    event: dict[str, Any], time_format: str | None
) -> None:
    ours, theirs = io.StringIO(), io.StringIO()
    observer, twisted_observer = log.FileLogObserver(ours), twlog.FileLogObserver(theirs)  # type: ignore[no-untyped-call]
    observer.timeFormat = twisted_observer.timeFormat = time_format
    full = {"time": WHEN, "system": "sys", **event}
    observer.emit(dict(full))
    twisted_observer.emit(dict(full))
    assert ours.getvalue() == theirs.getvalue()
    assert observer.formatTime(WHEN) == twisted_observer.formatTime(WHEN)  # type: ignore[no-untyped-call]


def test_file_log_observer_line_shape() -> None:
    out = io.StringIO()
    log.FileLogObserver(out).emit({"message": ("two\nlines",), "time": WHEN, "system": "s"})
    assert re.fullmatch(
        r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d[+-]\d{4} \[s\] two\n\tlines\n", out.getvalue()
    )


def test_start_and_stop_add_and_remove_the_observer() -> None:
    out = io.StringIO()
    observer = log.FileLogObserver(out)
    observer.start()
    try:
        log.msg("while started")
    finally:
        observer.stop()
    log.msg("after stop")
    assert "while started" in out.getvalue() and "after stop" not in out.getvalue()


# -- starting the log ------------------------------------------------------------------------


class FakeStdio:
    def __init__(self) -> None:
        self.stdout = io.StringIO()
        self.stderr = io.StringIO()


class FakeWarnings:
    def showwarning(self, *args: Any) -> None:
        raise AssertionError("replaced by the log")


def test_a_private_legacy_publisher_starts_logging_without_touching_the_process() -> None:
    publisher = LogPublisher()
    stdio, warnings = FakeStdio(), FakeWarnings()
    beginner = LogBeginner(publisher, io.StringIO(), stdio, warnings)
    legacy = log.LogPublisher(publisher, publisher, beginner, warnings)
    legacy.msg("before start")  # discarded, as Twisted's startLogging does
    seen: list[dict[str, Any]] = []
    legacy._startLogging(seen.append, True)
    legacy.msg("started")
    cast(Any, stdio).stdout.write("printed\n")
    assert [log.textFromEventDict(e) for e in seen] == ["started", "printed"]
    assert legacy.observers == [seen.append]
    assert warnings.showwarning == beginner.showwarning
    legacy._stopLogging()


def test_start_logging_refuses_the_log_itself() -> None:
    stream = LoggingFile(Logger(observer=lambda e: None))
    assert log.startLogging(stream) is None


def test_logfile_lines_become_events_and_discard_logs_silences_it() -> None:
    with capturedLogs() as events:
        log.logfile.write("a line\n")
        log.logerr.write("an error line\n")
    assert [(e["log_level"], formatEvent(e)) for e in events] == [
        (LogLevel.info, "a line"),
        (LogLevel.error, "an error line"),
    ]
    saved = log.logfile
    try:
        log.discardLogs()
        assert isinstance(log.logfile, log.NullFile)
        log.logfile.write("dropped")
    finally:
        log.logfile = saved


PROGRAM = """
    import sys
    from twisted.python import log
    from twisted.logger import Logger

    log.startLogging(sys.stdout)
    log.msg("hello", "world")
    log.msg(format="%(n)d items", n=3)

    class Thing:
        log = Logger()

        def go(self):
            self.log.info("going {where!r}", where="far")
            self.log.warn("careful")

    Thing().go()
    print("printed line")
    sys.stderr.write("complaint\\n")
    log.callWithContext({"system": "ctx"}, log.msg, "in context")
    try:
        1 / 0
    except ZeroDivisionError:
        log.err(None, "dividing")
    log.msg("done")
"""


def run_program(source: str, directory: Path) -> list[str]:
    script = directory / "program.py"
    script.write_text(textwrap.dedent(source))
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stderr == ""
    stamp = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d[+-]\d{4} ")
    # Tracebacks differ in format (treadle prints the standard library's); keep the rest.
    return [stamp.sub("", line) for line in done.stdout.splitlines() if not line.startswith("\t")]


def test_start_logging_program_prints_as_under_twisted(tmp_path: Path) -> None:
    twisted_dir, treadle_dir = tmp_path / "twisted", tmp_path / "treadle"
    twisted_dir.mkdir()
    treadle_dir.mkdir()
    theirs = run_program(PROGRAM, twisted_dir)
    ours = run_program(PROGRAM.replace("twisted", "treadle"), treadle_dir)
    assert ours == theirs
    assert ours == [
        "[-] Log opened.",
        "[-] hello world",
        "[-] 3 items",
        "[-] going 'far'",
        "[-] careful",
        "[-] printed line",
        "[-] complaint",
        "[ctx] in context",
        "[-] dividing",
        "[-] done",
    ]


def test_no_message_is_delivered_twice_to_observers_and_logging(
    caplog: pytest.LogCaptureFixture, legacy: list[dict[str, Any]]
) -> None:
    caplog.set_level(logging.INFO)
    new_style: list[dict[str, Any]] = []
    globalLogPublisher.addObserver(new_style.append)
    try:
        log.msg("m")
        log.err(failure_of(KeyError("e")), "e")
        logging.getLogger("treadle.error").error("stdlib")
    finally:
        globalLogPublisher.removeObserver(new_style.append)
    assert [r.getMessage() for r in caplog.records] == ["m", "e", "stdlib"]
    assert len(new_style) == len(legacy) == 3
