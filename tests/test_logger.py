"""treadle.logger: Twisted's ``twisted.logger`` API, compared with real Twisted, and its bridge
to Python's logging (events reach logging, treadle's stdlib records reach the observers)."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest
import twisted.logger as tw

from treadle.logger import (
    FilteringLogObserver,
    ILogObserver,
    InvalidLogLevelError,
    LimitedHistoryLogObserver,
    LogBeginner,
    Logger,
    LoggingFile,
    LogLevel,
    LogLevelFilterPredicate,
    LogPublisher,
    PredicateResult,
    STDLibLogObserver,
    capturedLogs,
    eventAsJSON,
    eventAsText,
    eventFromJSON,
    eventsFromJSONLogFile,
    extractField,
    formatEvent,
    formatEventAsClassicLogText,
    formatTime,
    globalLogPublisher,
    jsonFileLogObserver,
    textFileLogObserver,
)
from treadle.logger._observer import _GlobalLogPublisher
from treadle.logger._util import formatTrace
from treadle.python.failure import Failure, NoCurrentExceptionError

HERE = os.path.normcase(os.path.abspath(__file__))
WHEN = 1_700_000_000.25  # a fixed event time: 2023-11-14T22:13:20Z


def failure_of(exc: BaseException) -> Failure:
    try:
        raise exc
    except BaseException:
        return Failure()


class Thing:
    log = Logger()

    def act(self) -> None:
        self.log.info("acting")


class Sink:
    """A test observer: collects events; ``__call__`` typed for both publishers."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def __call__(self, event: dict[str, Any]) -> None:
        self.events.append(event)


# -- levels --------------------------------------------------------------------------------


def test_levels_are_ordered_by_severity_and_named_as_twisted() -> None:
    names = [level.name for level in LogLevel.iterconstants()]
    assert names == [level.name for level in tw.LogLevel.iterconstants()]
    assert LogLevel.debug < LogLevel.info < LogLevel.warn < LogLevel.error < LogLevel.critical
    assert LogLevel.critical >= LogLevel.error and not LogLevel.info > LogLevel.warn
    assert LogLevel.levelWithName("warn") is LogLevel.warn
    assert repr(LogLevel.info) == repr(tw.LogLevel.info) == "<LogLevel=info>"


@pytest.mark.parametrize("name", ["warning", "INFO", "", "levelWithName"])
def test_an_unknown_level_name_is_refused(name: str) -> None:
    with pytest.raises(InvalidLogLevelError) as caught:
        LogLevel.levelWithName(name)
    assert caught.value.level == name
    with pytest.raises(ValueError):
        LogLevel.lookupByName(name)


def test_levels_do_not_compare_with_other_things() -> None:
    with pytest.raises(TypeError):
        _ = LogLevel.info < 3


# -- Logger --------------------------------------------------------------------------------


def test_logger_namespace_defaults_to_the_calling_module() -> None:
    assert Logger().namespace == __name__


def test_logger_as_class_attribute_names_the_class_and_its_instance() -> None:
    thing = Thing()
    with capturedLogs() as events:
        thing.act()
        Thing.log.info("on the class")
    assert [e["log_namespace"] for e in events] == [f"{__name__}.Thing"] * 2
    assert events[0]["log_source"] is thing
    assert events[1]["log_source"] is Thing


def test_emit_makes_an_event_with_the_log_keys() -> None:
    sink = Sink()
    log = Logger(namespace="ns", source="src", observer=sink)
    before = time.time()
    log.warn("{a} and {b}", a=1, b=[2])
    (event,) = sink.events
    assert event["log_level"] is LogLevel.warn
    assert event["log_namespace"] == "ns" and event["log_source"] == "src"
    assert event["log_logger"] is log and event["log_format"] == "{a} and {b}"
    assert event["a"] == 1 and event["b"] == [2]
    assert before <= event["log_time"] <= time.time()
    assert formatEvent(event) == "1 and [2]"


def test_emit_with_an_invalid_level_reports_it_instead() -> None:
    sink = Sink()
    Logger(namespace="ns", observer=sink).emit("loud", "hello")  # type: ignore[arg-type]
    (event,) = sink.events
    assert event["log_level"] is LogLevel.critical
    assert event["log_failure"].check(InvalidLogLevelError)
    assert "Got invalid log level 'loud'" in formatEvent(event)


def test_failure_logs_the_exception_being_handled() -> None:
    sink = Sink()
    log = Logger(namespace="ns", observer=sink)
    try:
        raise KeyError("k")
    except KeyError:
        log.failure("looking up {what}", what="k")
    (event,) = sink.events
    assert event["log_level"] is LogLevel.critical
    assert event["log_failure"].check(KeyError)
    assert eventAsText(event, includeTimestamp=False).startswith("[ns#critical] looking up k\n")
    with pytest.raises(NoCurrentExceptionError):
        log.failure("nothing to report")


def test_failures_handled_logs_and_swallows_and_reports_the_outcome() -> None:
    sink = Sink()
    log = Logger(namespace="ns", observer=sink)
    with log.failuresHandled("saving {name}", level=LogLevel.error, name="x") as operation:
        raise OSError("disk full")
    assert operation.failed and not operation.succeeded
    assert operation.failure is sink.events[0]["log_failure"]
    assert formatEvent(sink.events[0]) == "saving x"
    with log.failuresHandled("fine") as operation:
        pass
    assert operation.succeeded and len(sink.events) == 1


def test_a_log_trace_records_the_path_of_the_event() -> None:
    sink = Sink()
    publisher = LogPublisher(sink)
    log = Logger(namespace="ns", observer=publisher)
    trace: list[Any] = []
    log.info("x", log_trace=trace)
    assert trace == [(log, publisher), (publisher, sink)]
    assert formatTrace(trace) == f"{log}\n  -> {publisher}\n    -> {sink}\n"


# -- formatting, against Twisted -------------------------------------------------------------


class Obj:
    name = "obj"

    def describe(self) -> str:
        return "described"

    def __repr__(self) -> str:
        return "<Obj>"


FORMAT_CASES: list[tuple[str, dict[str, Any]]] = [
    ("plain text", {}),
    ("{a} {b!r} {c:>6} {d:.2f}", {"a": "x", "b": "y", "c": 7, "d": 1.5}),
    ("{o.name} {o.describe()} {o!r} {count()}", {"o": Obj(), "count": lambda: 3}),
    ("{m[k]} {l[1]}", {"m": {"k": "v"}, "l": [0, 1]}),
    ("{{braces}} {a}", {"a": "é ünïcode"}),
    ("{missing}", {}),
    ("{a.nope}", {"a": 1}),
    ("{broken", {}),
    ("repeat {a} {a} {a!r}", {"a": "r"}),
]


def events_for(log_format: str | None, fields: dict[str, Any]) -> tuple[dict[str, Any], ...]:
    common = {"log_time": WHEN, "log_namespace": "ns", "log_format": log_format}
    return (
        {**fields, **common, "log_level": LogLevel.info},
        {**fields, **common, "log_level": tw.LogLevel.info},
    )


@pytest.mark.parametrize(("log_format", "fields"), FORMAT_CASES)
def test_formatting_matches_twisted(log_format: str, fields: dict[str, Any]) -> None:
    ours, theirs = events_for(log_format, fields)
    if log_format in ("{missing}", "{a.nope}", "{broken"):
        # Both say the event could not be formatted (the dict reprs differ in the levels).
        assert formatEvent(ours).startswith("Unable to format event {")
        assert tw.formatEvent(theirs).startswith("Unable to format event {")
        return
    assert formatEvent(ours) == tw.formatEvent(theirs)
    assert eventAsText(ours) == tw.eventAsText(theirs)
    assert formatEventAsClassicLogText(ours) == tw.formatEventAsClassicLogText(theirs)


def test_an_event_without_format_has_no_text() -> None:
    ours, theirs = events_for(None, {})
    assert formatEvent(ours) == tw.formatEvent(theirs) == ""
    assert formatEventAsClassicLogText(ours) is tw.formatEventAsClassicLogText(theirs) is None
    assert eventAsText({"log_format": b"bytes {a}", "a": 1}) == "- [-#-] bytes 1"


def test_system_defaults_and_overrides_match_twisted() -> None:
    for extra in ({}, {"log_system": "sys"}, {"log_level": None}):
        ours = {"log_format": "m", "log_time": None, **extra}
        theirs = dict(ours)
        assert eventAsText(ours) == tw.eventAsText(theirs)


@pytest.fixture
def paris_time() -> Iterator[None]:
    if not hasattr(time, "tzset"):  # pragma: no cover
        pytest.skip("no tzset on this platform")
    old = os.environ.get("TZ")
    os.environ["TZ"] = "Europe/Paris"
    time.tzset()
    try:
        yield
    finally:
        if old is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = old
        time.tzset()


@pytest.mark.parametrize("when", [0.0, WHEN, 1_719_792_000.5, 1_711_846_800.0])
@pytest.mark.parametrize("time_format", [tw.timeFormatRFC3339, "%Y %j %H:%M %Z|%z", None])
def test_format_time_matches_twisted_in_a_zone_with_summer_time(
    paris_time: None, when: float, time_format: str | None
) -> None:
    assert formatTime(when, time_format) == tw.formatTime(when, time_format)
    assert formatTime(None) == "-" and formatTime(when, None, default="?") == "?"


def test_text_file_observer_writes_the_same_lines_as_twisted(paris_time: None) -> None:
    ours_out, theirs_out = io.StringIO(), io.StringIO()
    ours, theirs = events_for("first line\nsecond {n}", {"n": 2})
    textFileLogObserver(ours_out)(ours)
    tw.textFileLogObserver(theirs_out)(theirs)
    assert ours_out.getvalue() == theirs_out.getvalue()
    assert ours_out.getvalue() == "2023-11-14T23:13:20+0100 [ns#info] first line\n\tsecond 2\n"


def test_text_file_observer_writes_utf8_to_binary_files_and_skips_empty_events() -> None:
    out = io.BytesIO()
    observer = textFileLogObserver(out, timeFormat=None)
    observer({"log_format": "café", "log_namespace": "n", "log_level": LogLevel.info})
    observer({"log_namespace": "n"})
    assert out.getvalue() == "- [n#info] café\n".encode()


def test_a_failure_is_written_after_the_message_indented() -> None:
    out = io.StringIO()
    event = {"log_format": "oops", "log_failure": failure_of(ValueError("v")), "log_time": None}
    textFileLogObserver(out)(event)
    lines = out.getvalue().split("\n")
    assert lines[0] == "- [-#-] oops"
    assert lines[1] == "\tTraceback (most recent call last):"
    assert "\tValueError: v" in lines


# -- publishers and filters -----------------------------------------------------------------


def test_publisher_delivers_in_order_once_each() -> None:
    seen: list[str] = []
    first, second = (lambda e: seen.append("1")), (lambda e: seen.append("2"))
    publisher = LogPublisher(first)
    publisher.addObserver(second)
    publisher.addObserver(first)
    publisher({})
    assert seen == ["1", "2"]
    publisher.removeObserver(first)
    publisher.removeObserver(first)
    publisher({})
    assert seen == ["1", "2", "2"]
    with pytest.raises(TypeError):
        publisher.addObserver("not callable")


def test_a_broken_observer_is_reported_to_the_others_which_still_get_the_event() -> None:
    def broken(event: dict[str, Any]) -> None:
        raise RuntimeError("observer bug")

    sink = Sink()
    publisher = LogPublisher(broken, sink)
    publisher({"log_format": "hello"})
    assert formatEvent(sink.events[0]) == "hello"
    report = sink.events[1]
    assert report["log_level"] is LogLevel.critical
    assert report["log_failure"].check(RuntimeError)
    assert formatEvent(report).startswith("Temporarily disabling observer <function ")
    publisher({"log_format": "again"})  # still delivered to both
    assert formatEvent(sink.events[2]) == "again"


def test_level_filter_is_hierarchical_by_namespace() -> None:
    predicate = LogLevelFilterPredicate(defaultLogLevel=LogLevel.warn)
    predicate.setLogLevelForNamespace("app", LogLevel.debug)
    predicate.setLogLevelForNamespace("app.noisy", LogLevel.error)
    theirs = tw.LogLevelFilterPredicate(defaultLogLevel=tw.LogLevel.warn)
    theirs.setLogLevelForNamespace("app", tw.LogLevel.debug)
    theirs.setLogLevelForNamespace("app.noisy", tw.LogLevel.error)
    for namespace in ("app", "app.x", "app.noisy", "app.noisy.deep", "other", "", "appx"):
        for level in LogLevel.iterconstants():
            ours = predicate({"log_level": level, "log_namespace": namespace})
            twisted_level = tw.LogLevel.levelWithName(level.name)
            expected = theirs({"log_level": twisted_level, "log_namespace": namespace})
            assert ours.name == expected.name, (namespace, level)
    assert predicate({"log_namespace": "app"}) is PredicateResult.no
    with pytest.raises(InvalidLogLevelError):
        predicate.setLogLevelForNamespace("x", "info")  # type: ignore[arg-type]
    predicate.clearLogLevels()
    assert predicate.logLevelForNamespace("app.noisy") is LogLevel.warn


def test_filtering_observer_routes_by_the_first_decisive_predicate() -> None:
    kept, dropped = Sink(), Sink()

    def only_x(event: dict[str, Any]) -> PredicateResult:
        return PredicateResult.yes if event.get("x") else PredicateResult.maybe

    observer = FilteringLogObserver(
        kept, [only_x, LogLevelFilterPredicate(LogLevel.error)], negativeObserver=dropped
    )
    observer({"log_level": LogLevel.info, "log_namespace": "n", "x": True})
    observer({"log_level": LogLevel.info, "log_namespace": "n"})
    observer({"log_level": LogLevel.error, "log_namespace": "n"})
    assert [e.get("x") for e in kept.events] == [True, None]
    assert len(dropped.events) == 1
    with pytest.raises(TypeError, match="Invalid predicate result"):
        FilteringLogObserver(kept, [lambda e: True])({})


def test_limited_history_keeps_the_most_recent_events() -> None:
    history = LimitedHistoryLogObserver(size=3)
    for n in range(5):
        history({"n": n})
    sink = Sink()
    history.replayTo(sink)
    assert [e["n"] for e in sink.events] == [2, 3, 4]


def test_observers_provide_the_interface() -> None:
    assert ILogObserver.providedBy(LogPublisher())
    assert ILogObserver.providedBy(textFileLogObserver(io.StringIO()))
    assert ILogObserver.providedBy(STDLibLogObserver())


# -- JSON -----------------------------------------------------------------------------------


def test_json_round_trip_keeps_text_level_and_failure() -> None:
    event: dict[str, Any] = {
        "log_format": "{a!r} padded:{n:>4} {o.describe()}",
        "a": "s",
        "n": 7,
        "o": Obj(),
        "log_level": LogLevel.error,
        "log_namespace": "ns",
        "log_time": WHEN,
        "log_failure": failure_of(ZeroDivisionError("division by zero")),
        "raw": b"\xff",
    }
    text = formatEvent(event)
    loaded = eventFromJSON(eventAsJSON(event))
    assert formatEvent(loaded) == formatEvent(event) == text == "'s' padded:   7 described"
    assert loaded["log_level"] is LogLevel.error
    assert loaded["o"] == {"unpersistable": True} and loaded["raw"] == "\xff"
    failure = loaded["log_failure"]
    assert isinstance(failure, Failure)
    assert failure.type.__name__ == "ZeroDivisionError"
    assert failure.getErrorMessage() == "division by zero"
    assert failure.getTraceback() == event["log_failure"].getTraceback()
    assert extractField("a!r", loaded) == "'s'" and extractField("n:>4", loaded) == 7


def test_twisted_reads_treadle_json_and_treadle_reads_twisted_json() -> None:
    ours = {"log_format": "hello {who}", "who": "you", "log_level": LogLevel.warn}
    theirs = {"log_format": "hello {who}", "who": "you", "log_level": tw.LogLevel.warn}
    ours_json, theirs_json = eventAsJSON(ours), tw.eventAsJSON(theirs)
    assert json.loads(ours_json) == json.loads(theirs_json)
    read_by_twisted = tw.eventFromJSON(ours_json)
    assert read_by_twisted["log_level"] is tw.LogLevel.warn
    assert tw.formatEvent(read_by_twisted) == "hello you"
    read_by_us = eventFromJSON(theirs_json)
    assert read_by_us["log_level"] is LogLevel.warn and formatEvent(read_by_us) == "hello you"


def test_twisted_failures_in_json_load_as_failures() -> None:
    events: list[dict[str, Any]] = []
    log = tw.Logger(namespace="ns", observer=cast(Any, events.append))
    try:
        raise KeyError("k")
    except KeyError:
        log.failure("oops")
    loaded = eventFromJSON(tw.eventAsJSON(events[0]))
    failure = loaded["log_failure"]
    assert isinstance(failure, Failure) and failure.type.__name__ == "KeyError"
    assert "Traceback (most recent call last):" in failure.getTraceback()
    assert eventAsText(loaded, includeTimestamp=False).startswith("[ns#critical] oops\n")


def test_json_file_observer_and_reader_agree_with_twisted() -> None:
    out = io.StringIO()
    observer = jsonFileLogObserver(out)
    for n in range(3):
        observer({"log_format": "n={n}", "n": n, "log_level": LogLevel.info})
    written = out.getvalue()
    assert written.count("\x1e") == 3 and written.endswith("}\n")
    ours = [formatEvent(e) for e in eventsFromJSONLogFile(io.StringIO(written), bufferSize=7)]
    theirs = [tw.formatEvent(e) for e in tw.eventsFromJSONLogFile(io.StringIO(written))]
    assert ours == theirs == ["n=0", "n=1", "n=2"]
    lines = "".join(eventAsJSON({"log_format": f"line {n}"}) + "\n" for n in range(2))
    assert [formatEvent(e) for e in eventsFromJSONLogFile(io.BytesIO(lines.encode()))] == [
        "line 0",
        "line 1",
    ]


def test_json_reader_skips_and_reports_bad_records() -> None:
    data = b'\x1e{"log_format": "good"}\n\x1enot json\n\x1e\xff\xfe\n\x1e{"log_format": "cut"}'
    with capturedLogs() as reports:
        events = list(eventsFromJSONLogFile(io.BytesIO(data)))
    assert [formatEvent(e) for e in events] == ["good"]
    texts = [formatEvent(r) for r in reports if r.get("log_namespace") == "treadle.logger._json"]
    assert [t.split(":")[0] for t in texts] == [
        "Unable to read JSON record",
        "Unable to decode UTF-8 for JSON record",
        "Unable to read truncated JSON record",
    ]


# -- LoggingFile ----------------------------------------------------------------------------


def test_logging_file_emits_complete_lines() -> None:
    sink = Sink()
    stream = LoggingFile(Logger(namespace="stdout", observer=sink), LogLevel.info)
    stream.write("one\ntw")
    stream.write(b"o\n")
    stream.writelines(["three\n"])
    assert [e["log_io"] for e in sink.events] == ["one", "two", "three"]
    assert all(formatEvent(e) == e["log_io"] for e in sink.events)
    assert stream.name == "<LoggingFile stdout#info>" and not stream.isatty()
    with pytest.raises(io.UnsupportedOperation):
        stream.fileno()
    stream.close()
    with pytest.raises(ValueError):
        stream.write("late\n")


# -- the bridge to Python's logging -----------------------------------------------------------


def test_logger_events_reach_logging_under_their_namespace(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="bridge.test")
    log = Logger(namespace="bridge.test")
    for level in LogLevel.iterconstants():
        log.emit(level, "at {name}", name=level.name)
    records = [r for r in caplog.records if r.name == "bridge.test"]
    assert [r.levelno for r in records] == [10, 20, 30, 40, 50]
    assert [r.getMessage() for r in records] == [f"at {lv.name}" for lv in LogLevel]
    record = records[0]
    assert os.path.normcase(record.pathname) == HERE
    assert record.funcName == "test_logger_events_reach_logging_under_their_namespace"
    assert record.log_event["log_level"] is LogLevel.debug  # type: ignore[attr-defined]
    assert record.created == record.log_event["log_time"]  # type: ignore[attr-defined]


def test_logging_levels_decide_what_is_bridged(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="bridge.levels")
    log = Logger(namespace="bridge.levels")
    log.info("hidden")
    log.warn("shown")
    assert [r.getMessage() for r in caplog.records if r.name == "bridge.levels"] == ["shown"]


def test_failures_reach_logging_with_exc_info_even_once_cleaned(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.ERROR, logger="bridge.fail")
    failure = failure_of(ValueError("bad value"))
    failure.cleanFailure()
    Logger(namespace="bridge.fail").failure("while {doing}", failure, doing="parsing")
    (record,) = [r for r in caplog.records if r.name == "bridge.fail"]
    assert record.levelno == logging.CRITICAL and record.getMessage() == "while parsing"
    assert record.exc_info is not None and record.exc_info[0] is ValueError
    text = logging.Formatter().format(record)
    assert "in failure_of" in text and text.endswith("ValueError: bad value")


def test_treadle_stdlib_records_reach_the_observers_once(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="treadle")
    with capturedLogs() as events:
        try:
            raise OSError("gone")
        except OSError:
            logging.getLogger("treadle.error").error("lost %s", "it", exc_info=True)
        logging.getLogger("unrelated.lib").error("not treadle's")
        Logger(namespace="treadle.web.thing").info("from a Logger")
    forwarded = [e for e in events if e["log_namespace"] == "treadle.error"]
    (event,) = forwarded
    assert event["log_level"] is LogLevel.error and formatEvent(event) == "lost it"
    assert event["log_failure"].check(OSError)
    assert not [e for e in events if e["log_namespace"] == "unrelated.lib"]
    # The Logger event reached the observers and logging exactly once each.
    assert len([e for e in events if e["log_namespace"] == "treadle.web.thing"]) == 1
    assert len([r for r in caplog.records if r.name == "treadle.web.thing"]) == 1


def test_stdlib_observer_on_the_global_publisher_does_not_log_twice(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    observer = STDLibLogObserver(name="bridge.twice")
    globalLogPublisher.addObserver(observer)
    try:
        Logger(namespace="bridge.once").info("once")
        logging.getLogger("treadle.x").warning("stdlib once")
    finally:
        globalLogPublisher.removeObserver(observer)
    messages = [r.getMessage() for r in caplog.records]
    assert messages.count("once") == 1 and messages.count("stdlib once") == 1


def test_stdlib_observer_on_its_own_publisher_logs_to_its_logger(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="mine")
    log = Logger(namespace="ns", observer=LogPublisher(STDLibLogObserver(name="mine")))
    log.warn("warned {n}", n=1)
    log.failure("failed", failure_of(KeyError("k")), level=LogLevel.error)
    records = [r for r in caplog.records if r.name == "mine"]
    assert [(r.levelno, r.getMessage()) for r in records] == [(30, "warned 1"), (40, "failed")]
    assert records[1].exc_info is not None and records[1].exc_info[0] is KeyError
    assert os.path.normcase(records[0].pathname) == HERE


def test_no_loop_when_logging_and_observers_log_each_other(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.ERROR)

    class Echo(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            Logger(namespace="echo.back").error("echo of {m}", m=record.getMessage())

    def observer(event: dict[str, Any]) -> None:
        logging.getLogger("treadle.observer").error("observer saw %s", formatEvent(event))

    echo = Echo()
    loop_logger = logging.getLogger("echo")
    loop_logger.addHandler(echo)
    globalLogPublisher.addObserver(observer)
    try:
        with capturedLogs() as events:
            Logger(namespace="echo.start").error("start")
    finally:
        globalLogPublisher.removeObserver(observer)
        loop_logger.removeHandler(echo)
    # The echo (emitted inside logging, while the bridge delivered "start") reached the
    # observers but was not bridged again; the observer's own stdlib record was not fed back.
    assert sorted(formatEvent(e) for e in events) == ["echo of start", "start"]
    names = [r.name for r in caplog.records]
    assert names.count("echo.start") == 1 and "echo.back" not in names
    assert names.count("treadle.observer") == 2


# -- beginning the log ------------------------------------------------------------------------


class FakeWarnings:
    def __init__(self) -> None:
        self.shown: list[tuple[Any, ...]] = []

    def showwarning(self, *args: Any) -> None:
        self.shown.append(args)


class FakeStdio:
    def __init__(self) -> None:
        self.stdout = io.StringIO()
        self.stderr = io.StringIO()


def make_beginner(
    size: int | None = None,
) -> tuple[_GlobalLogPublisher, LogBeginner, FakeStdio, FakeWarnings]:
    publisher = _GlobalLogPublisher()
    stdio, warnings = FakeStdio(), FakeWarnings()
    beginner = LogBeginner(publisher, io.StringIO(), stdio, warnings, initialBufferSize=size)
    return publisher, beginner, stdio, warnings


def test_begin_replays_the_buffer_to_the_new_observers_only(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="early")
    publisher, beginner, _stdio, _warnings = make_beginner(size=2)
    log = Logger(namespace="early", observer=publisher)
    for n in range(3):
        log.info("early {n}", n=n)
    earlier = Sink()
    publisher.addObserver(earlier)
    first, stdlib = Sink(), STDLibLogObserver(name="early")
    beginner.beginLoggingTo([first, stdlib], redirectStandardIO=False)
    assert [formatEvent(e) for e in first.events] == ["early 1", "early 2"]
    assert earlier.events == []
    # logging had each event once, when it was emitted; the replay did not repeat them.
    assert [r.getMessage() for r in caplog.records] == ["early 0", "early 1", "early 2"]
    assert publisher.observersAreTheSink


def test_begin_can_discard_the_buffer_and_warns_when_called_twice() -> None:
    publisher, beginner, _stdio, _warnings = make_beginner()
    Logger(namespace="n", observer=publisher).info("before")
    sink = Sink()
    beginner.beginLoggingTo([sink], discardBuffer=True, redirectStandardIO=False)
    assert sink.events == []
    beginner.beginLoggingTo([], redirectStandardIO=False)
    (warning,) = sink.events
    assert warning["log_level"] is LogLevel.warn
    assert formatEvent(warning).startswith("Warning: primary log target selected twice at <")
    assert HERE in os.path.normcase(formatEvent(warning))


def test_begin_redirects_standard_io_and_warnings() -> None:
    publisher, beginner, stdio, warnings = make_beginner()
    original_stderr = stdio.stderr
    sink = Sink()
    beginner.beginLoggingTo([sink])
    assert isinstance(stdio.stdout, LoggingFile) and isinstance(stdio.stderr, LoggingFile)
    stdio.stdout.write("printed\n")
    stdio.stderr.write("complained\n")
    warnings.showwarning("careful", UserWarning, "f.py", 3)
    warnings.showwarning("to a file", UserWarning, "f.py", 4, io.StringIO())
    got = [(e["log_namespace"], e["log_level"].name, formatEvent(e)) for e in sink.events]
    assert got == [
        ("stdout", "info", "printed"),
        ("stderr", "error", "complained"),
        ("py.warnings", "warn", "f.py:3: builtins.UserWarning: careful"),
    ]
    # A line printed while an event is delivered goes to the stream that was replaced.
    publisher.addObserver(lambda event: stdio.stderr.write(f"seen {formatEvent(event)}\n"))
    Logger(namespace="n", observer=publisher).info("hello")
    assert original_stderr.getvalue() == "seen hello\n"
    assert formatEvent(sink.events[-1]) == "hello"


def test_a_plain_publisher_prints_critical_events_before_logging_begins() -> None:
    errors = io.StringIO()
    publisher = LogPublisher()
    LogBeginner(publisher, errors, FakeStdio(), FakeWarnings())
    log = Logger(namespace="n", observer=publisher)
    log.error("not printed")
    log.critical("printed")
    assert errors.getvalue() == "printed\n"


UNCONFIGURED = """
    import logging, sys
    from treadle.logger import Logger, globalLogBeginner, textFileLogObserver
    log = Logger(namespace="app")
    log.info("info before")
    log.error("error before")
    logging.getLogger("treadle.error").error("treadle error before")
    sys.stderr.flush()
    globalLogBeginner.beginLoggingTo(
        [textFileLogObserver(sys.stdout, timeFormat=None)], redirectStandardIO=False
    )
    log.error("error after")
    logging.getLogger("treadle.error").error("treadle error after")
"""


def test_without_logging_configuration_errors_print_once(tmp_path: Path) -> None:
    script = tmp_path / "unconfigured.py"
    script.write_text(textwrap.dedent(UNCONFIGURED))
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=30, check=True
    )
    # Before logging begins, Python's fallback prints warnings and errors to stderr.
    assert done.stderr.splitlines() == ["error before", "treadle error before"]
    # Afterwards the observers are the log: the buffer is replayed and nothing is doubled.
    assert done.stdout.splitlines() == [
        "- [app#info] info before",
        "- [app#error] error before",
        "- [treadle.error#error] treadle error before",
        "- [app#error] error after",
        "- [treadle.error#error] treadle error after",
    ]
