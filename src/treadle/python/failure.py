"""``Failure``: an exception together with its traceback, as passed down errback chains.

``twisted.python.failure`` ports to this module. A :class:`Failure` is what a
:class:`~treadle.internet.defer.Deferred` hands to its errbacks: the exception value, its type
and the traceback, plus the helpers errbacks use (:meth:`Failure.trap`, :meth:`Failure.check`,
:meth:`Failure.getTraceback`).

Differences from Twisted, on purpose:

* Tracebacks are formatted by the standard library (``traceback.format_exception``), so they
  read like any other Python traceback, chained exceptions included. Twisted's own format and
  its ``elideFrameworkCode``/``detail`` options are not offered.
* Frames are never copied at construction (Twisted did so eagerly for years); the traceback is
  kept as is. :meth:`Failure.cleanFailure` replaces it with a list of (file, line, function)
  entries, a few microseconds' work, so the formatted text survives while frames and their
  locals are freed.
* Only classes are accepted by :meth:`Failure.check` and :meth:`Failure.trap`, not dotted names.
* A Failure is a plain object, not a ``BaseException`` subclass: raise ``failure.value`` (or
  call :meth:`Failure.raiseException`) rather than the Failure itself.
"""

from __future__ import annotations

import sys
import traceback
from collections.abc import Generator
from types import TracebackType
from typing import IO, Any, NoReturn, TypeAlias

__all__ = ["Failure", "NoCurrentExceptionError"]


# An alias because inside ``Failure`` the name ``type`` is the attribute, as in Twisted.
_ExcClass: TypeAlias = type[BaseException]


class NoCurrentExceptionError(Exception):
    """``Failure()`` was called with no argument outside of an ``except`` block."""


def _qualified_name(cls: type) -> str:
    module = cls.__module__
    if module in ("builtins", "__main__"):
        return cls.__qualname__
    return f"{module}.{cls.__qualname__}"


class Failure:
    """An exception, its type and its traceback.

    Args:
        exc_value: The exception (an instance, or a class to instantiate with no arguments).
            When omitted, the exception currently being handled (``sys.exc_info()``) is used.
        exc_type: The exception's type; defaults to ``type(exc_value)``.
        exc_tb: The traceback; defaults to ``exc_value.__traceback__``.

    Raises:
        NoCurrentExceptionError: No argument was given and no exception is being handled.
        TypeError: ``exc_value`` is not an exception.

    Attributes:
        value: The exception instance.
        type: Its class.
        tb: The traceback, or None when there is none or after :meth:`cleanFailure`.
    """

    __slots__ = ("_frames", "tb", "type", "value")

    value: BaseException
    type: _ExcClass
    tb: TracebackType | None

    def __init__(
        self,
        exc_value: BaseException | _ExcClass | None = None,
        exc_type: _ExcClass | None = None,
        exc_tb: TracebackType | None = None,
    ) -> None:
        if exc_value is None:
            current = sys.exc_info()
            if current[1] is None:
                raise NoCurrentExceptionError("Failure() needs an exception being handled")
            exc_value, exc_type, exc_tb = current[1], current[0], current[2]
        elif isinstance(exc_value, type) and issubclass(exc_value, BaseException):
            exc_value = exc_value()
        if not isinstance(exc_value, BaseException):
            raise TypeError(f"Failure needs an exception, not {exc_value!r}")
        self.value = exc_value
        self.type = exc_type if exc_type is not None else type(exc_value)
        self.tb = exc_tb if exc_tb is not None else exc_value.__traceback__
        # (filename, line number, function name) per frame, once cleanFailure() dropped tb.
        self._frames: list[tuple[str, int, str]] | None = None

    def check(self, *errorTypes: _ExcClass) -> _ExcClass | None:
        """Tell whether the exception is an instance of one of ``errorTypes``.

        Args:
            *errorTypes: Exception classes, tried in order.

        Returns:
            The first class of ``errorTypes`` the exception is an instance of, or None.
        """
        for error in errorTypes:
            if issubclass(self.type, error):
                return error
        return None

    def trap(self, *errorTypes: _ExcClass) -> _ExcClass:
        """Let the errback go on only for the expected exception types.

        The usual first line of an errback: expected errors pass, any other one is re-raised so
        that it continues down the errback chain.

        Args:
            *errorTypes: Exception classes, tried in order.

        Returns:
            The first class of ``errorTypes`` that matches.

        Raises:
            BaseException: The wrapped exception itself (with its traceback) if none matches.
        """
        error = self.check(*errorTypes)
        if error is None:
            self.raiseException()
        return error

    def raiseException(self) -> NoReturn:
        """Raise the wrapped exception with its original traceback (if still kept)."""
        raise self.value.with_traceback(self.tb)

    def throwExceptionIntoGenerator(self, g: Generator[Any, Any, Any]) -> Any:
        """Throw the wrapped exception into generator ``g`` and return what it yields next.

        Args:
            g: A suspended generator (or coroutine).

        Returns:
            The value ``g`` yields after handling the exception.

        Raises:
            StopIteration: ``g`` returned.
            BaseException: ``g`` did not handle the exception (or raised another one).
        """
        return g.throw(self.value.with_traceback(self.tb))

    def getErrorMessage(self) -> str:
        """Return ``str()`` of the exception, never raising."""
        try:
            return str(self.value)
        except Exception:
            return f"<unprintable {self.type.__name__} object>"

    def getTraceback(self) -> str:
        """Return the traceback formatted as the standard library prints it.

        After :meth:`cleanFailure` the text is rebuilt from the frame list kept then (source
        lines are read from the files at this point, and the column markers of Python 3.11
        are left out). A Failure built from an exception that was never raised has no
        frames: only the exception line is shown.
        """
        if self._frames is None:
            return "".join(traceback.format_exception(self.type, self.value, self.tb))
        formatted = traceback.TracebackException(self.type, self.value, None)
        formatted.stack = traceback.StackSummary.from_list(
            [(filename, lineno, name, None) for filename, lineno, name in self._frames]
        )
        return "".join(formatted.format())

    def printTraceback(self, file: IO[str] | None = None) -> None:
        """Write :meth:`getTraceback` to ``file`` (standard error by default)."""
        (sys.stderr if file is None else file).write(self.getTraceback())

    def cleanFailure(self) -> None:
        """Drop the traceback's frames (and everything their locals keep alive).

        :meth:`getTraceback` still shows the same frames afterwards; re-raising the exception
        starts a new traceback. Like Twisted, this also clears the exception's own
        ``__traceback__``, which would otherwise keep the frames alive. Exceptions chained to
        it (``__cause__``, ``__context__``) keep theirs. Calling it again does nothing.
        """
        if self._frames is not None:
            return
        tb = self.tb if self.tb is not None else self.value.__traceback__
        if tb is None:
            return
        # Only names and numbers, no formatting: Deferreds call this on every failure left
        # at the end of a chain, most of which are handled moments later and never printed.
        frames = []
        while tb is not None:
            code = tb.tb_frame.f_code
            frames.append((code.co_filename, tb.tb_lineno, code.co_name))
            tb = tb.tb_next
        self._frames = frames
        self.tb = None
        self.value.__traceback__ = None

    def __repr__(self) -> str:
        what = f"{_qualified_name(self.type)}: {self.getErrorMessage()}"
        return f"<{_qualified_name(type(self))} {what}>"

    def __str__(self) -> str:
        return f"[Failure instance: {_qualified_name(self.type)}: {self.getErrorMessage()}]"
