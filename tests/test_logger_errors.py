"""treadle's own errors as observers see them: Twisted's events, each delivered once.

An error treadle reports reaches :mod:`logging` (``treadle.error``) and the observers of the
global publisher, where it is an event carrying the failure as ``log_failure`` — the very
Failure the code had, as in Twisted — so ``EventLoggingObserver``-style tests and programs
that watch the log for failures work as they do on Twisted.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from treadle.internet import defer
from treadle.internet.defer import Deferred
from treadle.logger import LogLevel, capturedLogs, formatEvent
from treadle.logger._report import report
from treadle.python import log as legacy_log
from treadle.python.failure import Failure
from treadle.web import resource, server
from treadle.web.test.requesthelper import DummyChannel

ERRORS = "treadle.error"


def raised(exc: BaseException) -> Failure:
    try:
        raise exc
    except BaseException:
        return Failure()


@pytest.fixture
def errors(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    caplog.set_level(logging.ERROR, logger=ERRORS)
    yield caplog


def records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == ERRORS]


def failure_events(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in events if "log_failure" in e]


# -- stdlib records as events ------------------------------------------------------------------


def test_a_record_gives_the_observers_the_failure_it_was_given(errors: Any) -> None:
    failure = raised(KeyError("k"))
    failure.cleanFailure()
    with capturedLogs() as events:
        logging.getLogger(ERRORS).error(
            "lost {%s}",
            "it",
            exc_info=(failure.type, failure.value, None),
            extra={"log_failure": failure},
        )
    [event] = failure_events(events)
    assert event["log_failure"] is failure
    assert event["log_level"] is LogLevel.error and event["log_namespace"] == ERRORS
    # The message reads as a literal format: braces survive formatting.
    assert event["log_format"] == "lost {{it}}" and formatEvent(event) == "lost {it}"
    assert len(records(errors)) == 1


def test_a_record_with_only_exc_info_gets_a_failure_of_the_exception(errors: Any) -> None:
    with capturedLogs() as events:
        try:
            raise OSError("gone")
        except OSError:
            logging.getLogger(ERRORS).exception("while reading")
    [event] = failure_events(events)
    assert event["log_failure"].check(OSError)
    assert "while reading" in event["log_format"]


# -- report: one record, Twisted's events --------------------------------------------------------


def test_report_gives_observers_the_events_and_logging_one_record(errors: Any) -> None:
    failure = raised(ValueError("v"))
    with capturedLogs() as events:
        report(
            logging.getLogger(ERRORS),
            logging.ERROR,
            [{"log_format": "first", "isError": True}, {"log_format": "", "log_failure": failure}],
            "one record: %s",
            "text",
        )
    mine = [e for e in events if e.get("log_namespace") == ERRORS]
    assert [e["log_format"] for e in mine] == ["first", ""]
    assert mine[1]["log_failure"] is failure
    assert all(e["log_level"] is LogLevel.error and "log_time" in e for e in mine)
    [record] = records(errors)
    assert record.getMessage() == "one record: text"
    assert record.funcName == "test_report_gives_observers_the_events_and_logging_one_record"


def test_report_still_tells_the_observers_when_logging_is_off_for_the_level(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.CRITICAL, logger="report.quiet")
    with capturedLogs() as events:
        report(logging.getLogger("report.quiet"), logging.ERROR, [{"log_format": "x"}], "x")
    assert [e["log_format"] for e in events if e.get("log_namespace") == "report.quiet"] == ["x"]
    assert [r for r in caplog.records if r.name == "report.quiet"] == []


# -- Deferreds -----------------------------------------------------------------------------------


def test_log_error_logs_the_failure_itself_as_twisted(errors: Any) -> None:
    legacy: list[dict[str, Any]] = []
    legacy_log.addObserver(legacy.append)
    try:
        with capturedLogs() as events:
            failure = raised(RuntimeError("r"))
            assert defer.logError(failure) is failure
    finally:
        legacy_log.removeObserver(legacy.append)
    [event] = failure_events(events)
    assert event["log_failure"] is failure and event["log_format"] == ""
    assert event["log_level"] is LogLevel.critical
    [old] = [e for e in legacy if e.get("isError")]
    assert old["failure"] is failure
    text = legacy_log.textFromEventDict(old)
    assert text is not None and text.startswith("Unhandled Error\nTraceback")
    assert len(records(errors)) == 1


def test_an_unhandled_failure_is_twisteds_two_events_and_one_record(errors: Any) -> None:
    with capturedLogs() as events:
        Deferred().addCallback(lambda _: 1 // 0).callback(1)
        gc.collect()
    mine = [e for e in events if e.get("log_namespace") == ERRORS]
    header, failed = mine
    assert header["isError"] and formatEvent(header) == "Unhandled error in Deferred:"
    assert "log_failure" not in header
    assert failed["log_failure"].check(ZeroDivisionError)
    assert failed["log_level"] is LogLevel.critical and formatEvent(failed) == ""
    [record] = records(errors)
    assert record.getMessage().startswith("Unhandled error in Deferred:")


# -- web -----------------------------------------------------------------------------------------


class Broken(resource.Resource):
    isLeaf = True

    def render_GET(self, request: Any) -> bytes:
        raise ZeroDivisionError("render failed")


def test_a_render_error_is_one_event_with_the_failure(errors: Any) -> None:
    request = server.Request(DummyChannel(), False)
    request.site = server.Site(Broken())
    with capturedLogs() as events:
        request.requestReceived(b"GET", b"/", b"HTTP/1.1")
    assert request.code == 500
    [event] = failure_events(events)
    assert event["log_failure"].check(ZeroDivisionError)
    assert event["log_failure"].getErrorMessage() == "render failed"
    assert len(records(errors)) == 1


def test_processing_failed_logs_the_failure_it_was_given(errors: Any) -> None:
    request = server.Request(DummyChannel(), False)
    request.site = server.Site(resource.Resource())
    failure = Failure(Exception("Oh no!"))
    with capturedLogs() as events:
        request.processingFailed(failure)
    [event] = failure_events(events)
    assert event["log_failure"] is failure
