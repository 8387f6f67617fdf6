"""``DeferredList``, ``gatherResults`` and ``race``: waiting on several Deferreds.

Private: users import these names from :mod:`treadle.internet.defer`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import Any, TypeVar

from treadle.internet._deferred import Deferred
from treadle.python.failure import Failure

__all__ = [
    "FAILURE",
    "SUCCESS",
    "DeferredList",
    "FailureGroup",
    "FirstError",
    "gatherResults",
    "race",
]

_T = TypeVar("_T")

_log = logging.getLogger("treadle.error")

#: The first item of a :class:`DeferredList` result pair for a success.
SUCCESS = True
#: The first item of a :class:`DeferredList` result pair for a failure.
FAILURE = False


class FirstError(Exception):
    """The first failure among the Deferreds of a :class:`DeferredList` or :func:`gatherResults`.

    Args:
        failure: The Failure of the Deferred that failed.
        index: Its position in the list given.

    Attributes:
        subFailure: The Failure of the Deferred that failed.
        index: Its position in the list given.
    """

    def __init__(self, failure: Failure, index: int) -> None:
        super().__init__(failure, index)
        self.subFailure = failure
        self.index = index

    def __repr__(self) -> str:
        return f"FirstError[#{self.index}, {self.subFailure.value!r}]"

    def __str__(self) -> str:
        return f"FirstError[#{self.index}, {self.subFailure}]"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, FirstError):
            return NotImplemented
        return (self.subFailure, self.index) == (other.subFailure, other.index)

    def __hash__(self) -> int:
        return hash((id(self.subFailure), self.index))


# -- DeferredList and gatherResults -----------------------------------------------------------


class DeferredList(Deferred[list[tuple[bool, Any]]]):
    """A Deferred firing when all (or, if asked, the first) of a list of Deferreds have fired.

    Its result is a list of ``(success, result)`` pairs in the order of ``deferredList``, with
    True and the result for a success, False and the Failure for a failure.

    Args:
        deferredList: The Deferreds to wait for.
        fireOnOneCallback: Fire with ``(result, index)`` at the first success.
        fireOnOneErrback: Errback with a :class:`FirstError` at the first failure.
        consumeErrors: Stop failures in the Deferreds of the list (they continue with None),
            so they are not logged as unhandled; they are still reported here.

    Attributes:
        resultList: The pairs so far (None where a Deferred has not fired yet).
        finishedCount: How many of the Deferreds have fired.

    Cancelling a DeferredList cancels every Deferred in it; it then fires as they report.
    """

    __slots__ = (
        "_deferred_list",
        "consumeErrors",
        "finishedCount",
        "fireOnOneCallback",
        "fireOnOneErrback",
        "resultList",
    )

    def __init__(
        self,
        deferredList: Iterable[Deferred[Any]],
        fireOnOneCallback: bool = False,
        fireOnOneErrback: bool = False,
        consumeErrors: bool = False,
    ) -> None:
        super().__init__()
        self._deferred_list = list(deferredList)
        self.resultList: list[Any] = [None] * len(self._deferred_list)
        self.finishedCount = 0
        self.fireOnOneCallback = fireOnOneCallback
        self.fireOnOneErrback = fireOnOneErrback
        self.consumeErrors = consumeErrors
        if not self._deferred_list and not fireOnOneCallback:
            self.callback([])
        for index, d in enumerate(self._deferred_list):
            d.addCallbacks(
                self._cb_deferred,
                self._cb_deferred,
                callbackArgs=(index, True),
                errbackArgs=(index, False),
            )

    def _cb_deferred(self, result: Any, index: int, succeeded: bool) -> Any:
        self.resultList[index] = (succeeded, result)
        self.finishedCount += 1
        if not self.called:
            if succeeded and self.fireOnOneCallback:
                self._fire((result, index))
            elif not succeeded and self.fireOnOneErrback:
                self._fire(Failure(FirstError(result, index)))
            elif self.finishedCount == len(self.resultList):
                self._fire(self.resultList)
        if not succeeded and self.consumeErrors:
            return None
        return result

    def cancel(self) -> None:
        """Cancel every Deferred of the list (or the chained Deferred once fired)."""
        if self.called:
            super().cancel()
            return
        for d in self._deferred_list:
            try:
                d.cancel()
            except Exception:
                _log.exception("Exception raised by a canceller in a DeferredList")


def _results_only(pairs: list[tuple[bool, Any]]) -> list[Any]:
    return [result for _, result in pairs]


def gatherResults(
    deferredList: Iterable[Deferred[Any]], consumeErrors: bool = False
) -> Deferred[list[Any]]:
    """Return a Deferred firing with the list of results, or failing at the first failure.

    Args:
        deferredList: The Deferreds to wait for.
        consumeErrors: Stop failures in the Deferreds given, so they are not also logged as
            unhandled.

    Returns:
        A Deferred firing with the results in the order given, or errbacking with a
        :class:`FirstError` (``.subFailure``, ``.index``) for the first failure. Cancelling it
        cancels all the Deferreds.
    """
    d = DeferredList(deferredList, fireOnOneErrback=True, consumeErrors=consumeErrors)
    return d.addCallback(_results_only)


class FailureGroup(Exception):
    """Every Deferred given to :func:`race` failed.

    Args:
        failures: Their Failures, in the order of the Deferreds.

    Attributes:
        failures: As given.
    """

    def __init__(self, failures: Sequence[Failure]) -> None:
        super().__init__(failures)
        self.failures = list(failures)


def race(ds: Sequence[Deferred[_T]]) -> Deferred[tuple[int, _T]]:
    """Return a Deferred firing with the first success among ``ds``; cancel the others.

    Args:
        ds: The Deferreds to race.

    Returns:
        A Deferred firing with ``(index, result)`` of the first Deferred to succeed (the
        others are then cancelled; the winner is not), or failing with a
        :class:`FailureGroup` of every failure (in the order of ``ds``) if all fail.
        Cancelling it cancels every Deferred of ``ds``. With no Deferreds at all it never
        fires, as in Twisted.
    """
    to_cancel = list(ds)
    winner: Deferred[_T] | None = None
    failures: list[tuple[int, Failure]] = []

    def cancel_all(_: Deferred[Any]) -> None:
        for d in to_cancel:
            d.cancel()

    final: Deferred[tuple[int, _T]] = Deferred(cancel_all)

    def succeeded(result: _T, index: int) -> None:
        nonlocal winner
        # A canceller may fire a loser with a success: only the first counts.
        if winner is None:
            winner = to_cancel[index]
            for d in to_cancel:
                if d is not winner:
                    d.cancel()
            final.callback((index, result))

    def failed(failure: Failure, index: int) -> None:
        failures.append((index, failure))
        if len(failures) == len(to_cancel):
            failures.sort(key=lambda pair: pair[0])
            final.errback(FailureGroup([f for _, f in failures]))

    for index, d in enumerate(to_cancel):
        d.addCallbacks(succeeded, failed, callbackArgs=(index,), errbackArgs=(index,))
    return final


for _public in (DeferredList, FailureGroup, FirstError):
    _public.__module__ = "treadle.internet.defer"
