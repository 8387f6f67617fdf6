"""``Failure``: an exception together with its traceback, as passed down errback chains.

``twisted.python.failure`` ports to this module. A :class:`Failure` is what a
:class:`~treadle.internet.defer.Deferred` hands to its errbacks: the exception value, its type
and the traceback, plus the helpers errbacks use (:meth:`Failure.trap`, :meth:`Failure.check`,
:meth:`Failure.getTraceback`).

Cost: nothing is copied at construction (Twisted did so eagerly for years). :attr:`Failure.frames`
walks the traceback the first time it is read and keeps the list; with ``captureVars=True`` it
also copies each frame's locals and globals then. :meth:`Failure.cleanFailure` (which a
Deferred calls on every failure left at the end of its chain) makes that list, turns captured
variables into their ``repr`` and drops the traceback, so the frames and everything their
locals keep alive are freed while the text survives.

Differences from Twisted, on purpose:

* The ``"default"`` traceback format is the standard library's (``traceback.format_exception``),
  so it reads like any other Python traceback, chained exceptions included; the ``"brief"``
  and ``"verbose"`` formats are Twisted's. ``elideFrameworkCode`` is accepted and ignored, as
  in current Twisted.
* A Failure is a plain object, not a ``BaseException`` subclass: raise ``failure.value`` (or
  call :meth:`Failure.raiseException`) rather than the Failure itself.
* ``Failure("a string")`` (any non-exception value) raises ``TypeError``; Twisted accepts it.
"""

from __future__ import annotations

import builtins
import io
import itertools
import sys
import traceback
from collections.abc import Generator, Iterable
from types import FrameType, TracebackType
from typing import IO, Any, NoReturn, TypeAlias

__all__ = ["Failure", "NoCurrentExceptionError"]


# An alias because inside ``Failure`` the name ``type`` is the attribute, as in Twisted.
_ExcClass: TypeAlias = type[BaseException]

#: One entry of :attr:`Failure.frames`: (function name, file name, line number, locals items,
#: globals items); the two item sequences are empty tuples unless variables were captured.
FrameInfo: TypeAlias = tuple[str, str, int, Any, Any]

_DETAILS = ("default", "brief", "verbose")

# Twisted numbers its Failures; the number shows in the verbose format.
_counter = itertools.count(1)


class NoCurrentExceptionError(Exception):
    """``Failure()`` was called with no argument outside of an ``except`` block."""


def _qualified_name(cls: type) -> str:
    module = cls.__module__
    if module in ("builtins", "__main__"):
        return cls.__qualname__
    return f"{module}.{cls.__qualname__}"


def _full_name(cls: type) -> str:
    """``module.qualname`` always (Twisted's ``reflect.qual``), builtins included."""
    return f"{cls.__module__}.{cls.__qualname__}"


def _safe_str(value: object) -> str:
    try:
        return str(value)
    except Exception:
        return f"<unprintable {type(value).__name__} object>"


def _safe_repr(value: object) -> str:
    try:
        return repr(value)
    except Exception:
        return f"<unrepresentable {type(value).__name__} object>"


def _variables(frame: FrameType) -> tuple[list[tuple[str, Any]], list[tuple[str, Any]]]:
    """Return copies of a frame's locals and globals, as Twisted's ``captureVars`` keeps them."""
    local_vars = dict(frame.f_locals)
    # A module-level frame: its locals are its globals, shown once.
    global_vars = {} if frame.f_locals is frame.f_globals else dict(frame.f_globals)
    local_vars.pop("__builtins__", None)
    global_vars.pop("__builtins__", None)
    return list(local_vars.items()), list(global_vars.items())


def _repr_items(items: Iterable[tuple[str, Any]]) -> list[tuple[str, str]]:
    return [(name, _safe_repr(value)) for name, value in items]


class _FakeCode:
    """The parts of a code object the ``traceback`` module reads."""

    __slots__ = ("co_filename", "co_firstlineno", "co_name")

    def __init__(self, name: str, filename: str) -> None:
        self.co_name = name
        self.co_filename = filename
        self.co_firstlineno = 0

    def co_positions(self) -> Iterable[tuple[None, None, None, None]]:
        """No column information is kept."""
        return iter(((None, None, None, None),))


class _FakeFrame:
    """A frame rebuilt from one entry of :attr:`Failure.frames`."""

    __slots__ = ("f_back", "f_builtins", "f_code", "f_globals", "f_lasti", "f_lineno", "f_locals")

    def __init__(self, info: FrameInfo, back: _FakeFrame | None) -> None:
        name, filename, lineno, local_vars, global_vars = info
        self.f_code = _FakeCode(name, filename)
        self.f_lineno = lineno
        self.f_locals = dict(local_vars or ())
        self.f_globals = dict(global_vars or ())
        self.f_builtins = vars(builtins)
        self.f_back = back
        self.f_lasti = -1


class _FakeTraceback:
    """A traceback object rebuilt from :attr:`Failure.frames` (for ``traceback.extract_tb``)."""

    __slots__ = ("tb_frame", "tb_lasti", "tb_lineno", "tb_next")

    def __init__(self, frame: _FakeFrame) -> None:
        self.tb_frame = frame
        self.tb_lineno = frame.f_lineno
        # Negative: the traceback module then takes the line number and no columns.
        self.tb_lasti = -1
        self.tb_next: _FakeTraceback | None = None


def _fake_traceback(frames: list[FrameInfo]) -> _FakeTraceback:
    frame = _FakeFrame(frames[0], None)
    head = tail = _FakeTraceback(frame)
    for info in frames[1:]:
        frame = _FakeFrame(info, frame)
        tail.tb_next = _FakeTraceback(frame)
        tail = tail.tb_next
    return head


class Failure:
    """An exception, its type and its traceback.

    Args:
        exc_value: The exception (an instance, or a class to instantiate with no arguments),
            or another Failure to copy. When omitted, the exception currently being handled
            (``sys.exc_info()``) is used.
        exc_type: The exception's type; defaults to ``type(exc_value)``.
        exc_tb: The traceback; defaults to ``exc_value.__traceback__``.
        captureVars: Keep the locals and globals of each frame in :attr:`frames` (slow: for
            :meth:`printDetailedTraceback`; Deferreds ask for it when debugging is on).

    Raises:
        NoCurrentExceptionError: No argument was given and no exception is being handled.
        TypeError: ``exc_value`` is not an exception.

    Attributes:
        value: The exception instance.
        type: Its class.
        tb: The traceback, or None when there is none or after :meth:`cleanFailure`.
        captureVars: As given.
        count: This Failure's number (they are numbered from 1 in each process).
        pickled: 1 for a Failure rebuilt by ``pickle``, else 0.
    """

    __slots__ = ("_frames", "_parents", "captureVars", "count", "pickled", "tb", "type", "value")

    value: BaseException
    type: _ExcClass
    tb: TracebackType | None

    def __init__(
        self,
        exc_value: BaseException | _ExcClass | Failure | None = None,
        exc_type: _ExcClass | None = None,
        exc_tb: TracebackType | None = None,
        captureVars: bool = False,
    ) -> None:
        self.count = next(_counter)
        self.pickled = 0
        self.captureVars = captureVars
        self._parents: list[Any] | None = None
        # Made from tb on first read of .frames, or by cleanFailure().
        self._frames: list[FrameInfo] | None = None
        if isinstance(exc_value, Failure):
            self._copy(exc_value)
            return
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

    def _copy(self, other: Failure) -> None:
        self.value, self.type, self.tb = other.value, other.type, other.tb
        self.captureVars, self.pickled = other.captureVars, other.pickled
        self._parents = other._parents
        self._frames = None if other._frames is None else list(other._frames)

    # -- what it holds ----------------------------------------------------------------------

    @property
    def frames(self) -> list[FrameInfo]:
        """The traceback's frames, outermost first, as Twisted lists them.

        Each entry is ``(funcName, fileName, lineNumber, localsItems, globalsItems)``; the
        last two are lists of ``(name, value)`` pairs when ``captureVars`` was set (``(name,
        repr)`` pairs once :meth:`cleanFailure` ran or after unpickling), else empty tuples.
        The traceback is walked on first access and the list is kept (assignable, as in
        Twisted). Empty for an exception that was never raised.
        """
        frames = self._frames
        if frames is None:
            frames = self._frames = self._walk_traceback()
        return frames

    @frames.setter
    def frames(self, frames: list[FrameInfo]) -> None:
        self._frames = frames

    def _walk_traceback(self) -> list[FrameInfo]:
        frames: list[FrameInfo] = []
        tb = self.tb
        capture = self.captureVars
        while tb is not None:
            frame = tb.tb_frame
            code = frame.f_code
            local_vars: Any = ()
            global_vars: Any = ()
            if capture:
                local_vars, global_vars = _variables(frame)
            frames.append((code.co_name, code.co_filename, tb.tb_lineno, local_vars, global_vars))
            tb = tb.tb_next
        return frames

    @property
    def stack(self) -> list[Any]:
        """Always empty, as in current Twisted (which deprecated it)."""
        return []

    @property
    def parents(self) -> list[Any]:
        """The qualified names (``module.Class``) of the exception's classes, itself first.

        For a ``BaseException`` that is not an ``Exception``, the list holds the class
        itself, as in Twisted.
        """
        parents = self._parents
        if parents is None:
            if issubclass(self.type, Exception):
                parents = [_full_name(cls) for cls in self.type.__mro__]
            else:
                parents = [self.type]
            self._parents = parents
        return parents

    @parents.setter
    def parents(self, parents: list[Any]) -> None:
        self._parents = parents

    # -- matching ---------------------------------------------------------------------------

    def check(self, *errorTypes: _ExcClass | str) -> _ExcClass | str | None:
        """Tell whether the exception is an instance of one of ``errorTypes``.

        Args:
            *errorTypes: Exception classes, or their qualified names (``"builtins.KeyError"``),
                tried in order.

        Returns:
            The first item of ``errorTypes`` that matches, or None.
        """
        for error in errorTypes:
            if isinstance(error, str):
                if error in self.parents:
                    return error
            elif issubclass(self.type, error):
                return error
        return None

    def trap(self, *errorTypes: _ExcClass | str) -> _ExcClass | str:
        """Let the errback go on only for the expected exception types.

        The usual first line of an errback: expected errors pass, any other one is re-raised so
        that it continues down the errback chain.

        Args:
            *errorTypes: Exception classes (or qualified names), tried in order.

        Returns:
            The first item of ``errorTypes`` that matches.

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

    # -- text -------------------------------------------------------------------------------

    def getErrorMessage(self) -> str:
        """Return ``str()`` of the exception, never raising."""
        return _safe_str(self.value)

    def getTracebackObject(self) -> TracebackType | _FakeTraceback | None:
        """Return the traceback, for ``traceback.extract_tb`` and the like.

        Returns:
            The original traceback while it is kept; after :meth:`cleanFailure` (or
            unpickling) a stand-in built from :attr:`frames` with the same ``tb_frame``,
            ``tb_lineno`` and ``tb_next`` chain; None when there are no frames at all.
        """
        if self.tb is not None:
            return self.tb
        frames = self.frames
        return _fake_traceback(frames) if frames else None

    def getTraceback(self, elideFrameworkCode: int = 0, detail: str = "default") -> str:
        """Return the traceback as text.

        Args:
            elideFrameworkCode: Ignored (as in current Twisted).
            detail: ``"default"``: as the standard library prints it (after
                :meth:`cleanFailure` the text is rebuilt from :attr:`frames`, source lines read
                from the files then, without the column markers of Python 3.11). ``"brief"``:
                Twisted's one line per frame, ``file:line:function``. ``"verbose"``: Twisted's
                format with each frame's variables (when ``captureVars`` was set).

        Raises:
            ValueError: ``detail`` is none of those.
        """
        out = io.StringIO()
        self.printTraceback(out, elideFrameworkCode, detail)
        return out.getvalue()

    def getBriefTraceback(self) -> str:
        """Return :meth:`getTraceback` in the ``"brief"`` format."""
        return self.getTraceback(detail="brief")

    def printTraceback(
        self, file: IO[str] | None = None, elideFrameworkCode: int = 0, detail: str = "default"
    ) -> None:
        """Write :meth:`getTraceback` to ``file`` (standard error by default).

        Args:
            file: Where to write.
            elideFrameworkCode: Ignored.
            detail: ``"default"``, ``"brief"`` or ``"verbose"`` (see :meth:`getTraceback`).

        Raises:
            ValueError: ``detail`` is none of those.
        """
        if detail not in _DETAILS:
            raise ValueError(f"detail must be one of {', '.join(_DETAILS)}, not {detail!r}")
        if detail == "brief":
            text = self._brief_text()
        elif detail == "verbose":
            text = self._verbose_text()
        else:
            text = self._default_text()
        (sys.stderr if file is None else file).write(text)

    def printBriefTraceback(self, file: IO[str] | None = None, elideFrameworkCode: int = 0) -> None:
        """Write the ``"brief"`` traceback to ``file`` (standard error by default)."""
        self.printTraceback(file, elideFrameworkCode, "brief")

    def printDetailedTraceback(
        self, file: IO[str] | None = None, elideFrameworkCode: int = 0
    ) -> None:
        """Write the ``"verbose"`` traceback (with variables) to ``file`` (standard error)."""
        self.printTraceback(file, elideFrameworkCode, "verbose")

    def _default_text(self) -> str:
        if self.tb is not None or self._frames is None:
            return "".join(traceback.format_exception(self.type, self.value, self.tb))
        formatted = traceback.TracebackException(self.type, self.value, None)
        formatted.stack = traceback.StackSummary.from_list(
            [(filename, lineno, name, None) for name, filename, lineno, _, _ in self._frames]
        )
        return "".join(formatted.format())

    def _brief_text(self) -> str:
        frames = self.frames
        head = "Traceback" if frames else "Traceback (failure with no frames)"
        lines = [f"{head}: {_safe_str(self.type)}: {_safe_str(self.value)}\n"]
        lines.extend(f"{filename}:{lineno}:{name}\n" for name, filename, lineno, _, _ in frames)
        return "".join(lines)

    def _verbose_text(self) -> str:
        pickled = " (pickled) " if self.pickled else " "
        lines = [f"*--- Failure #{self.count}{pickled}---\n"]
        frames = self.frames
        for name, filename, lineno, local_vars, global_vars in frames:
            lines.append(f"{filename}:{lineno}: {name}(...)\n")
            if self.captureVars:
                lines.append(" [ Locals ]\n")
                lines.extend(f"  {key} : {_safe_repr(value)}\n" for key, value in local_vars)
                lines.append(" ( Globals )\n")
                lines.extend(f"  {key} : {_safe_repr(value)}\n" for key, value in global_vars)
        if frames and not self.captureVars:
            lines.append(" [Capture of Locals and Globals disabled (use captureVars=True)]\n")
        if not frames:
            lines.append("Failure: ")
        lines.append(f"{_full_name(self.type)}: {_safe_str(self.value)}\n")
        lines.append(f"*--- End of Failure #{self.count} ---\n")
        return "".join(lines)

    # -- lifetime ---------------------------------------------------------------------------

    def cleanFailure(self) -> None:
        """Drop the traceback's frames (and everything their locals keep alive).

        :attr:`frames` is made first (captured variables become their ``repr``), so
        :meth:`getTraceback` shows the same frames afterwards; re-raising the exception starts
        a new traceback. Like Twisted, this also clears the exception's own ``__traceback__``,
        which would otherwise keep the frames alive. Exceptions chained to it (``__cause__``,
        ``__context__``) keep theirs. Calling it again does nothing.
        """
        if self.tb is None:
            return
        frames = self.frames
        if self.captureVars:
            self._frames = [
                (name, filename, lineno, _repr_items(local_vars), _repr_items(global_vars))
                for name, filename, lineno, local_vars, global_vars in frames
            ]
        self.tb = None
        self.value.__traceback__ = None

    def __getstate__(self) -> dict[str, Any]:
        """Return a picklable state: no traceback, frames with variables as ``repr``.

        The exception value and type must themselves be picklable.
        """
        frames = self.frames
        if self.captureVars:
            frames = [
                (name, filename, lineno, _repr_items(local_vars), _repr_items(global_vars))
                for name, filename, lineno, local_vars, global_vars in frames
            ]
        return {
            "value": self.value,
            "type": self.type,
            "tb": None,
            "frames": frames,
            "parents": self.parents,
            "stack": [],
            "count": self.count,
            "pickled": 1,
            "captureVars": self.captureVars,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Restore a state made by :meth:`__getstate__` (a Failure without traceback)."""
        self.value = state["value"]
        self.type = state["type"]
        self.tb = None
        self._frames = list(state.get("frames") or [])
        self._parents = state.get("parents")
        self.count = state.get("count", 0)
        self.pickled = state.get("pickled", 1)
        self.captureVars = state.get("captureVars", False)

    def __repr__(self) -> str:
        what = f"{_qualified_name(self.type)}: {self.getErrorMessage()}"
        return f"<{_qualified_name(type(self))} {what}>"

    def __str__(self) -> str:
        return f"[Failure instance: {self.getBriefTraceback()}]"
