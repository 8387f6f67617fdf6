"""Run a program and get its output or exit code as a Deferred, as Twisted's ``utils``.

``twisted.internet.utils`` ports to this module: :func:`getProcessOutput`,
:func:`getProcessValue` and :func:`getProcessOutputAndValue` start a child with
``reactor.spawnProcess`` (``executable`` is its ``argv[0]``, ``args`` the rest) and fire once
it has ended; :func:`runWithWarningsSuppressed` and :func:`suppressWarnings` come along.

Differences from Twisted, on purpose:

* A program that cannot be started (missing, not executable) fails the returned Deferred with
  the ``OSError``; Twisted raises it from the call.
* When :func:`getProcessOutputAndValue`'s child is killed by a signal, the Deferred fails with a
  :class:`ProcessSignalled` exception (a :class:`~treadle.python.failure.Failure` holds only
  exceptions) that unpacks, indexes and compares like Twisted's ``(out, err, signal)`` tuple:
  ``out, err, sig = failure.value`` works unchanged.
"""

from __future__ import annotations

import contextlib
import functools
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from types import MappingProxyType
from typing import Any, TypeVar

from treadle.internet.defer import Deferred, fail
from treadle.internet.protocol import ProcessProtocol
from treadle.python.failure import Failure

__all__ = [
    "ProcessSignalled",
    "getProcessOutput",
    "getProcessOutputAndValue",
    "getProcessValue",
    "runWithWarningsSuppressed",
    "suppressWarnings",
]

_F = TypeVar("_F", bound=Callable[..., Any])

#: The default environment of the child, as in Twisted: empty.
_NO_ENV: Mapping[str, str] = MappingProxyType({})


class _UnexpectedErrorOutput(IOError):
    """The child wrote to its standard error, which :func:`getProcessOutput` did not expect.

    Attributes:
        processEnded: A Deferred failed with the child's end reason once it has ended.
    """

    def __init__(self, text: bytes, processEnded: Deferred[Any]) -> None:
        super().__init__(f"got stderr: {text!r}")
        self.processEnded = processEnded


class ProcessSignalled(Exception):
    """A child of :func:`getProcessOutputAndValue` was killed by a signal.

    It stands for Twisted's ``(out, err, signal)`` tuple: it unpacks, indexes and compares
    equal to that tuple.

    Attributes:
        out: What the child wrote to its standard output.
        err: What it wrote to its standard error.
        signal: The number of the signal that ended it.
    """

    def __init__(self, out: bytes, err: bytes, signal: int) -> None:
        super().__init__(out, err, signal)
        self.out, self.err, self.signal = out, err, signal

    def __iter__(self) -> Iterator[Any]:
        return iter(self.args)

    def __getitem__(self, index: int) -> Any:
        return self.args[index]

    def __len__(self) -> int:
        return len(self.args)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, ProcessSignalled):
            return self.args == other.args
        if isinstance(other, tuple):
            return self.args == other
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.args)


def _spawn(
    protocol: ProcessProtocol,
    deferred: Deferred[Any],
    executable: str,
    args: Sequence[str],
    env: Mapping[str, str] | None,
    path: str | None,
    reactor: Any,
) -> Deferred[Any]:
    if reactor is None:
        from treadle.internet import reactor
    try:
        reactor.spawnProcess(protocol, executable, (executable, *args), env, path)
    except Exception:
        return fail(Failure())
    return deferred


class _BackRelay(ProcessProtocol):
    """Collects the child's output for :func:`getProcessOutput`."""

    def __init__(self, deferred: Deferred[bytes], errortoo: bool = False) -> None:
        self.deferred: Deferred[bytes] | None = deferred
        self.onProcessEnded: Deferred[Any] | None = None
        self.errortoo = errortoo
        self.chunks: list[bytes] = []

    def outReceived(self, data: bytes) -> None:
        """Keep ``data``."""
        self.chunks.append(data)

    def errReceived(self, data: bytes) -> None:
        """Keep ``data`` if ``errortoo``; else fail the Deferred and close the pipes."""
        if self.errortoo:
            self.chunks.append(data)
            return
        if self.deferred is not None:
            self.onProcessEnded = Deferred()
            deferred, self.deferred = self.deferred, None
            deferred.errback(_UnexpectedErrorOutput(data, self.onProcessEnded))
            self.transport.loseConnection()

    def processEnded(self, reason: Failure) -> None:
        """Fire the Deferred with the output (or the error's ``processEnded`` with ``reason``)."""
        if self.deferred is not None:
            self.deferred.callback(b"".join(self.chunks))
        elif self.onProcessEnded is not None:
            self.onProcessEnded.errback(reason)


def getProcessOutput(
    executable: str,
    args: Sequence[str] = (),
    env: Mapping[str, str] | None = _NO_ENV,
    path: str | None = None,
    reactor: Any = None,
    errortoo: bool = False,
) -> Deferred[bytes]:
    """Run a program and return what it writes to its standard output.

    Args:
        executable: The program, also passed as its ``argv[0]``.
        args: Its other arguments (without the program's name).
        env: Its environment (empty by default, as in Twisted; None passes ours).
        path: Its working directory (ours by default).
        reactor: The reactor to run it with (the global one by default).
        errortoo: Include its standard error in the result, mixed with the output as it
            arrives.

    Returns:
        A Deferred firing with the output once the program has ended. Unless ``errortoo``,
        the first bytes on standard error fail it at once with an ``IOError`` whose
        ``processEnded`` Deferred fails with the program's end reason when it has ended; the
        pipes are closed then.
    """
    deferred: Deferred[bytes] = Deferred()
    protocol = _BackRelay(deferred, errortoo=errortoo)
    return _spawn(protocol, deferred, executable, args, env, path, reactor)


class _ValueGetter(ProcessProtocol):
    """Reports the child's exit code for :func:`getProcessValue`."""

    def __init__(self, deferred: Deferred[int | None]) -> None:
        self.deferred = deferred

    def processEnded(self, reason: Failure) -> None:
        """Fire the Deferred with the exit code (None if a signal ended the child)."""
        self.deferred.callback(getattr(reason.value, "exitCode", None))


def getProcessValue(
    executable: str,
    args: Sequence[str] = (),
    env: Mapping[str, str] | None = _NO_ENV,
    path: str | None = None,
    reactor: Any = None,
) -> Deferred[int | None]:
    """Run a program and return its exit code.

    Arguments as for :func:`getProcessOutput`.

    Returns:
        A Deferred firing with the exit code, or None when a signal ended the program.
    """
    deferred: Deferred[int | None] = Deferred()
    return _spawn(_ValueGetter(deferred), deferred, executable, args, env, path, reactor)


class _EverythingGetter(ProcessProtocol):
    """Collects output, error and exit code for :func:`getProcessOutputAndValue`."""

    def __init__(self, deferred: Deferred[Any], stdinBytes: bytes | None = None) -> None:
        self.deferred = deferred
        self.out: list[bytes] = []
        self.err: list[bytes] = []
        self.stdinBytes = stdinBytes

    def connectionMade(self) -> None:
        """Write ``stdinBytes`` (if any) and close the child's standard input."""
        if self.stdinBytes is not None:
            self.transport.writeToChild(0, self.stdinBytes)
            self.transport.closeStdin()

    def outReceived(self, data: bytes) -> None:
        """Keep ``data``."""
        self.out.append(data)

    def errReceived(self, data: bytes) -> None:
        """Keep ``data``."""
        self.err.append(data)

    def processEnded(self, reason: Failure) -> None:
        """Fire with ``(out, err, code)``, or fail with ``(out, err, signal)``."""
        out, err = b"".join(self.out), b"".join(self.err)
        signal = getattr(reason.value, "signal", None)
        if signal:
            self.deferred.errback(ProcessSignalled(out, err, signal))
        else:
            self.deferred.callback((out, err, getattr(reason.value, "exitCode", None)))


def getProcessOutputAndValue(
    executable: str,
    args: Sequence[str] = (),
    env: Mapping[str, str] | None = _NO_ENV,
    path: str | None = None,
    reactor: Any = None,
    stdinBytes: bytes | None = None,
) -> Deferred[tuple[bytes, bytes, int]]:
    """Run a program and return its output, error output and exit code.

    Arguments as for :func:`getProcessOutput`, and:

    Args:
        stdinBytes: Written to the program's standard input, which is then closed (by
            default it stays open and empty).

    Returns:
        A Deferred firing with ``(out, err, exitCode)``, or failing with a
        :class:`ProcessSignalled` (``out, err, signal``) when a signal ended the program.
    """
    deferred: Deferred[tuple[bytes, bytes, int]] = Deferred()
    protocol = _EverythingGetter(deferred, stdinBytes)
    return _spawn(protocol, deferred, executable, args, env, path, reactor)


# -- warnings ------------------------------------------------------------------------------------


# (filter entry, the index it had before it was moved to the front, or None if it was new)
_Change = tuple[Any, "int | None"]


def _filter_list() -> list[Any]:
    # typeshed declares the list a Sequence; it is the list warnings itself edits.
    return warnings.filters  # type: ignore[return-value]


def _add_filters(suppressed: Sequence[tuple[Sequence[Any], Mapping[str, Any]]]) -> list[_Change]:
    """Add the filters, noting for each what it changed so that it can be undone exactly."""
    changes: list[_Change] = []
    for args, kwargs in suppressed:
        before = list(_filter_list())
        warnings.filterwarnings(*args, **kwargs)
        after = _filter_list()
        if len(after) > len(before):
            new = [entry for entry in after if entry not in before]
            changes.append((new[0], None))
        elif after != before:
            # warnings moved an identical filter already there to the front: it is put back
            # afterwards (Twisted removes it, losing the program's own filter).
            changes.append((after[0], before.index(after[0])))
    return changes


def _remove_filters(result: object, changes: list[_Change]) -> object:
    filters = _filter_list()
    for entry, previous_index in reversed(changes):
        with contextlib.suppress(ValueError):
            filters.remove(entry)
        if previous_index is not None:
            filters.insert(min(previous_index, len(filters)), entry)
    # warnings caches its decisions per module; changing the list by hand must reset them.
    mutated = getattr(warnings, "_filters_mutated", None)
    if mutated is not None:
        mutated()
    return result


def runWithWarningsSuppressed(
    suppressedWarnings: Sequence[tuple[Sequence[Any], Mapping[str, Any]]],
    f: Callable[..., Any],
    *a: Any,
    **kw: Any,
) -> Any:
    """Call ``f(*a, **kw)`` with some warnings filtered out.

    The filters are removed when ``f`` returns or raises, or, if it returns a Deferred, once
    that fires; a filter of the program's own that one of them displaced is put back where it
    was. The filter list is process-wide: other threads see the filters meanwhile.

    Args:
        suppressedWarnings: ``(args, kwargs)`` pairs for :func:`warnings.filterwarnings`,
            such as ``(("ignore",), {"category": DeprecationWarning})``.
        f: The function.
        *a: Its positional arguments.
        **kw: Its keyword arguments.

    Returns:
        What ``f`` returns.
    """
    added = _add_filters(suppressedWarnings)
    try:
        result = f(*a, **kw)
    except BaseException:
        _remove_filters(None, added)
        raise
    if isinstance(result, Deferred):
        result.addBoth(_remove_filters, added)
    else:
        _remove_filters(None, added)
    return result


def suppressWarnings(f: _F, *suppressedWarnings: tuple[Sequence[Any], Mapping[str, Any]]) -> _F:
    """Wrap ``f`` so that it runs with ``suppressedWarnings`` filtered out.

    Args:
        f: The function to wrap.
        *suppressedWarnings: ``(args, kwargs)`` pairs for :func:`warnings.filterwarnings`.

    Returns:
        The wrapper, which calls :func:`runWithWarningsSuppressed`.
    """

    @functools.wraps(f)
    def wrapper(*a: Any, **kw: Any) -> Any:
        return runWithWarningsSuppressed(suppressedWarnings, f, *a, **kw)

    return wrapper  # type: ignore[return-value]
