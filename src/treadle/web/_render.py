"""Serving an element as a response: :func:`renderElement`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from treadle.internet.defer import Deferred
from treadle.logger import Logger
from treadle.python.failure import Failure
from treadle.web._failure_element import FailureElement
from treadle.web._flatten import _Flattener, _request_pacer, flatten
from treadle.web._stan import Flattenable
from treadle.web.server import NOT_DONE_YET

__all__ = ["renderElement"]

_log = Logger()

#: What a failed page ends with when the site does not show tracebacks (Twisted's words).
ERROR_MARKUP: Final = (
    b'<div style="font-size:800%;background-color:#FFF;color:#F00">'
    b"An error occurred while rendering the response.</div>"
)


def renderElement(
    request: Any,
    element: Flattenable,
    doctype: bytes | None = b"<!DOCTYPE html>",
    _failElement: Callable[[Failure], Flattenable] | None = None,
) -> int:
    """Write ``element`` (any renderable, usually an Element) to ``request`` and finish it.

    Use it as the result of a resource's ``render_GET``::

        def render_GET(self, request):
            return renderElement(request, PageElement())

    The page is written as it is flattened: a renderer that returns a Deferred or a
    coroutine holds the rest back until it fires, and a large page waits for a slow
    client (see :func:`~treadle.web.template.flatten`). If the client goes away, flattening
    stops at the next chunk and the request is not finished (there is no one to finish it
    for).

    Args:
        request: The request to write to.
        element: What to render.
        doctype: Written first, followed by a newline; None writes none.
        _failElement: Makes the markup shown for a failure when the site displays
            tracebacks (default :class:`~treadle.web.util.FailureElement`).

    Returns:
        ``NOT_DONE_YET``. If rendering fails, the error is logged and the page ends with
        the traceback markup (``site.displayTracebacks``) or a short error notice; either
        way the request is finished.
    """
    if doctype is not None:
        request.write(doctype)
        request.write(b"\n")
    fail_element = FailureElement if _failElement is None else _failElement
    flattener = _Flattener(request, element, request.write, _request_pacer(request.write))
    lost: list[Failure] = []

    def connection_lost(reason: Failure) -> None:
        lost.append(reason)
        flattener.stop()

    notify = getattr(request, "notifyFinish", None)
    if notify is not None:
        notify().addErrback(connection_lost)

    def failed(failure: Failure) -> Deferred[None] | None:
        _log.failure("An error occurred while rendering the response.", failure=failure)
        if lost:
            return None
        site = getattr(request, "site", None)
        if site is not None and getattr(site, "displayTracebacks", False):
            return flatten(request, fail_element(failure), request.write)
        request.write(ERROR_MARKUP)
        return None

    def finish(result: object) -> object:
        if not lost:
            request.finish()
        return result

    flattener.run().addErrback(failed).addBoth(finish)
    return NOT_DONE_YET
