"""Tests for treadle.python.failure: capture, matching, formatting and cleaning of Failures."""

from __future__ import annotations

import functools
import gc
import io
import pickle
import re
import sys
import traceback
import warnings
import weakref
from collections.abc import Generator
from typing import Any

import pytest

from treadle.python.failure import Failure, NoCurrentExceptionError


class Payload:
    """Something a frame's locals keep alive, to watch it being freed."""


def raise_value_error(message: str = "boom") -> None:
    raise ValueError(message)


def capture(func: object = raise_value_error) -> Failure:
    try:
        func()  # type: ignore[operator]
    except BaseException:
        return Failure()
    raise AssertionError("did not raise")


def test_no_argument_captures_the_current_exception() -> None:
    try:
        raise_value_error()
    except ValueError as exc:
        f = Failure()
        assert f.value is exc
        assert f.type is ValueError
        assert f.tb is exc.__traceback__


def test_no_argument_outside_except_raises() -> None:
    with pytest.raises(NoCurrentExceptionError):
        Failure()


def test_from_an_exception_value() -> None:
    exc = KeyError("k")
    f = Failure(exc)
    assert f.value is exc
    assert f.type is KeyError
    assert f.tb is None


def test_from_a_raised_exception_keeps_its_traceback() -> None:
    try:
        raise_value_error()
    except ValueError as exc:
        caught = exc
    f = Failure(caught)
    assert f.tb is caught.__traceback__
    assert "raise_value_error" in f.getTraceback()


def test_from_a_class_instantiates_it() -> None:
    f = Failure(RuntimeError)
    assert isinstance(f.value, RuntimeError)
    assert f.type is RuntimeError


def test_explicit_type_and_traceback() -> None:
    tb = capture().tb
    f = Failure(ValueError("x"), LookupError, tb)
    assert f.type is LookupError
    assert f.tb is tb


def test_rejects_non_exceptions() -> None:
    with pytest.raises(TypeError):
        Failure("not an exception")  # type: ignore[arg-type]


def test_check_returns_the_matching_class() -> None:
    f = Failure(KeyError("k"))
    assert f.check(ValueError) is None
    assert f.check(ValueError, LookupError) is LookupError
    assert f.check(KeyError, LookupError) is KeyError
    assert f.check() is None


def test_trap_returns_match_and_reraises_otherwise() -> None:
    f = capture()
    assert f.trap(TypeError, ValueError) is ValueError
    with pytest.raises(ValueError) as info:
        f.trap(KeyError)
    assert info.value is f.value
    # The original frames are kept below the re-raise.
    names = [frame.name for frame in traceback.extract_tb(info.value.__traceback__)]
    assert "raise_value_error" in names


def test_raise_exception_keeps_the_original_traceback() -> None:
    f = capture()
    with pytest.raises(ValueError) as info:
        f.raiseException()
    names = [frame.name for frame in traceback.extract_tb(info.value.__traceback__)]
    assert names[-1] == "raise_value_error"


def test_get_error_message() -> None:
    assert Failure(ValueError("bad thing")).getErrorMessage() == "bad thing"

    class Unprintable(Exception):
        def __str__(self) -> str:
            raise RuntimeError

    assert "unprintable" in Failure(Unprintable()).getErrorMessage()


def test_get_traceback_matches_the_stdlib() -> None:
    f = capture()
    expected = "".join(traceback.format_exception(f.type, f.value, f.tb))
    assert f.getTraceback() == expected
    assert f.getTraceback().startswith("Traceback (most recent call last):")
    assert f.getTraceback().rstrip().endswith("ValueError: boom")


def test_get_traceback_without_frames() -> None:
    assert Failure(ValueError("x")).getTraceback() == "ValueError: x\n"


def test_get_traceback_shows_chained_exceptions() -> None:
    def chained() -> None:
        try:
            raise_value_error("inner")
        except ValueError as exc:
            raise KeyError("outer") from exc

    text = capture(chained).getTraceback()
    assert "ValueError: inner" in text
    assert "direct cause" in text
    assert "KeyError: 'outer'" in text


def test_print_traceback_to_a_file_and_to_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    f = capture()
    out = io.StringIO()
    f.printTraceback(out)
    assert out.getvalue() == f.getTraceback()
    f.printTraceback()
    assert capsys.readouterr().err == f.getTraceback()


def without_markers(text: str) -> str:
    """Drop the ``^^^^`` column-marker lines that only a live traceback can produce."""
    return "".join(
        line for line in text.splitlines(keepends=True) if line.strip(" ^~\n") or not line.strip()
    )


def test_clean_failure_keeps_the_text_and_drops_the_frames() -> None:
    def raise_with_payload(payload: Payload) -> None:
        raise ValueError("boom")

    payload = Payload()
    ref = weakref.ref(payload)
    f = capture(functools.partial(raise_with_payload, payload))
    before = f.getTraceback()
    del payload
    gc.collect()
    assert ref() is not None  # the frame's locals hold it

    f.cleanFailure()
    gc.collect()
    assert ref() is None
    assert f.tb is None
    assert f.value.__traceback__ is None
    after = f.getTraceback()
    assert after == without_markers(before)
    assert "raise_with_payload" in after
    assert 'raise ValueError("boom")' in after  # source lines still shown
    f.cleanFailure()  # idempotent
    assert f.getTraceback() == after


def test_clean_failure_keeps_chained_exceptions() -> None:
    def chained() -> None:
        try:
            raise_value_error("inner")
        except ValueError as exc:
            raise KeyError("outer") from exc

    f = capture(chained)
    before = f.getTraceback()
    f.cleanFailure()
    assert f.getTraceback() == without_markers(before)
    assert "direct cause" in f.getTraceback()


def test_clean_failure_without_traceback_is_harmless() -> None:
    f = Failure(ValueError("x"))
    f.cleanFailure()
    assert f.getTraceback() == "ValueError: x\n"


def test_throw_exception_into_generator() -> None:
    def gen() -> Generator[str, None, None]:
        try:
            yield "first"
        except ValueError as exc:
            yield f"caught {exc}"

    g = gen()
    assert next(g) == "first"
    assert Failure(ValueError("x")).throwExceptionIntoGenerator(g) == "caught x"
    g.close()


def test_repr_and_str() -> None:
    f = Failure(ValueError("boom"))
    assert repr(f) == "<treadle.python.failure.Failure ValueError: boom>"
    assert str(f) == (
        "[Failure instance: Traceback (failure with no frames): <class 'ValueError'>: boom\n]"
    )


def test_uses_slots() -> None:
    assert not hasattr(Failure(ValueError()), "__dict__")


def test_does_not_leak_sys_exc_info() -> None:
    capture()
    assert sys.exc_info() == (None, None, None)


# -- issue 12: Twisted parity -----------------------------------------------------------------


def _twisted_failure_class() -> type:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from twisted.python.failure import Failure as TwistedFailure
    return TwistedFailure


def _raise_with_locals() -> None:
    marker = "local value"  # noqa: F841 (seen in the captured locals)
    raise KeyError("with locals")


def _both(capture_vars: bool = False) -> tuple[Failure, Any]:
    """A treadle and a Twisted Failure of the same raised exception."""
    twisted_failure_class = _twisted_failure_class()
    try:
        _raise_with_locals()
    except KeyError:
        return Failure(captureVars=capture_vars), twisted_failure_class(captureVars=capture_vars)
    raise AssertionError("did not raise")


def _without_vars(frames: list[Any]) -> list[tuple[Any, ...]]:
    return [tuple(frame[:3]) for frame in frames]


def test_frames_as_twisted() -> None:
    ours, theirs = _both()
    assert _without_vars(ours.frames) == _without_vars(theirs.frames)
    assert [frame[0] for frame in ours.frames][-1] == "_raise_with_locals"
    assert all(frame[3] == () and frame[4] == () for frame in ours.frames)
    assert Failure(ValueError()).frames == []


def test_frames_with_captured_variables() -> None:
    ours, theirs = _both(capture_vars=True)
    assert ours.captureVars is True
    local_items = dict(ours.frames[-1][3])
    assert local_items["marker"] == "local value"
    assert dict(theirs.frames[-1][3])["marker"] == "local value"
    assert ours.frames[-1][4] != []  # globals too
    ours.cleanFailure()
    assert dict(ours.frames[-1][3])["marker"] == "'local value'"  # reprs once cleaned


def test_frames_survive_clean_failure_and_give_a_traceback_object() -> None:
    ours, _ = _both()
    before = [(s.name, s.lineno) for s in traceback.extract_tb(ours.getTracebackObject())]
    frames = list(ours.frames)
    ours.cleanFailure()
    assert ours.tb is None
    assert ours.frames == frames
    fake = ours.getTracebackObject()
    assert fake is not None
    after = [(s.name, s.lineno) for s in traceback.extract_tb(fake)]  # type: ignore[arg-type]
    assert after == before
    assert Failure(ValueError()).getTracebackObject() is None


def test_parents_and_check_by_name_as_twisted() -> None:
    ours, theirs = _both()
    assert ours.parents == theirs.parents
    assert ours.check("builtins.LookupError") == "builtins.LookupError"
    assert ours.check("builtins.ValueError") is None
    assert Failure(KeyboardInterrupt()).parents == [KeyboardInterrupt]
    assert ours.stack == []


def test_brief_traceback_as_twisted() -> None:
    ours, theirs = _both()
    assert ours.getBriefTraceback() == theirs.getBriefTraceback()
    assert str(ours) == str(theirs)
    out = io.StringIO()
    ours.printBriefTraceback(file=out)
    assert out.getvalue() == ours.getBriefTraceback()
    no_frames = Failure(ValueError("x"))
    assert (
        no_frames.getBriefTraceback()
        == _twisted_failure_class()(ValueError("x")).getBriefTraceback()
    )


def _numbers_out(text: str) -> str:
    return re.sub(r"Failure #\d+", "Failure #N", text)


@pytest.mark.parametrize("capture_vars", [False, True])
def test_detailed_traceback_as_twisted(capture_vars: bool) -> None:
    ours, theirs = _both(capture_vars)
    ours_out, theirs_out = io.StringIO(), io.StringIO()
    ours.printDetailedTraceback(file=ours_out)
    theirs.printDetailedTraceback(file=theirs_out)
    assert _numbers_out(ours_out.getvalue()) == _numbers_out(theirs_out.getvalue())
    assert ours.getTraceback(detail="verbose") == ours_out.getvalue()


def test_unknown_detail_is_refused() -> None:
    with pytest.raises(ValueError, match="detail"):
        Failure(ValueError()).getTraceback(detail="chatty")


def test_pickle_round_trip() -> None:
    ours, _ = _both(capture_vars=True)
    copy = pickle.loads(pickle.dumps(ours))
    assert copy.type is KeyError and copy.value.args == ("with locals",)
    assert copy.tb is None and copy.pickled == 1
    assert _without_vars(copy.frames) == _without_vars(ours.frames)
    assert dict(copy.frames[-1][3])["marker"] == "'local value'"
    assert copy.parents == ours.parents
    assert "_raise_with_locals" in copy.getTraceback()
    assert copy.check(KeyError) is KeyError


def test_failure_of_a_failure_copies_it() -> None:
    ours, _ = _both()
    copy = Failure(ours)
    assert copy.value is ours.value and copy.tb is ours.tb
    assert copy.frames == ours.frames


def test_failures_are_numbered() -> None:
    first, second = Failure(ValueError()), Failure(ValueError())
    assert second.count > first.count
