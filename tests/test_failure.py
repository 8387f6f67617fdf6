"""Tests for treadle.python.failure: capture, matching, formatting and cleaning of Failures."""

from __future__ import annotations

import functools
import gc
import io
import sys
import traceback
import weakref
from collections.abc import Generator

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
    assert str(f) == "[Failure instance: ValueError: boom]"


def test_uses_slots() -> None:
    assert not hasattr(Failure(ValueError()), "__dict__")


def test_does_not_leak_sys_exc_info() -> None:
    capture()
    assert sys.exc_info() == (None, None, None)
