"""Redirects and deferred resources (``twisted.web.util``).

:func:`redirectTo` answers ``302 Found`` with a small HTML page linking to the target (for
clients that do not follow ``Location``); :class:`Redirect`, :class:`ChildRedirector` and
:class:`ParentRedirect` are resources built on it. :class:`DeferredResource` renders the
resource a Deferred fires with.

Differences from Twisted, on purpose:

* A URL may be ``str`` (encoded as UTF-8) as well as ``bytes``; one holding a control
  character (CR and LF above all: they would split the ``Location`` header) is refused with
  ``ValueError``, by :func:`redirectTo` and already by the resources' constructors.
* :class:`ChildRedirector` percent-encodes the segment it appends (Twisted appends it raw,
  so a decoded ``%0d%0a`` would reach the header).
* :class:`DeferredResource` can be rendered any number of times, before or after its Deferred
  fires (Twisted's answers only the first request), and a client that leaves stops waiting.
"""

from __future__ import annotations

import re
from typing import Any, Final
from urllib.parse import quote

from treadle.internet.defer import CancelledError, Deferred
from treadle.python.failure import Failure
from treadle.web._failure_element import FailureElement

# The parts of FailureElement by Twisted's private names: test suites import them from here.
from treadle.web._failure_element import _FrameElement as _FrameElement
from treadle.web._failure_element import _SourceFragmentElement as _SourceFragmentElement
from treadle.web._failure_element import _SourceLineElement as _SourceLineElement
from treadle.web._failure_element import _StackElement as _StackElement
from treadle.web._flatten import flattenString
from treadle.web._html import redirect_page
from treadle.web.resource import Resource, ResourceLike
from treadle.web.server import NOT_DONE_YET, Request, traverse

__all__ = [
    "ChildRedirector",
    "DeferredResource",
    "FailureElement",
    "ParentRedirect",
    "Redirect",
    "formatFailure",
    "redirectTo",
]

# C0 controls and DEL: none belongs in a URL, and CR/LF in a header would start a new one.
_CONTROL: Final = re.compile(rb"[\x00-\x1f\x7f]")


def _checked_url(url: bytes | str) -> bytes:
    """Return ``url`` as bytes, refusing what must not reach a ``Location`` header."""
    if isinstance(url, str):
        url = url.encode("utf-8")
    elif not isinstance(url, bytes):
        raise TypeError(f"URL must be bytes or str, not {type(url).__name__}")
    if _CONTROL.search(url):
        raise ValueError(f"URL contains a control character (CR, LF...): {url!r}")
    return url


def redirectTo(URL: bytes | str, request: Request) -> bytes:
    """Make ``request`` a ``302 Found`` to ``URL`` and return the page to send with it.

    Typical use: ``return redirectTo(b"/login", request)`` from a render method.

    Args:
        URL: Where to send the client (absolute, or relative to the request's URL).
        request: The request to redirect.

    Returns:
        A short HTML page with a link to ``URL`` (escaped: the URL may hold any text).

    Raises:
        TypeError: ``URL`` is neither bytes nor str.
        ValueError: ``URL`` contains CR, LF or another control character.
    """
    url = _checked_url(URL)
    request.setHeader(b"content-type", b"text/html; charset=utf-8")
    request.redirect(url)
    return redirect_page(url)


class Redirect(Resource):
    """A leaf that redirects every request (whatever the path below it) to one URL.

    Args:
        url: The target, as for :func:`redirectTo`.

    Raises:
        TypeError: ``url`` is neither bytes nor str.
        ValueError: ``url`` contains CR, LF or another control character.
    """

    isLeaf = True

    def __init__(self, url: bytes | str) -> None:
        super().__init__()
        self.url = _checked_url(url)

    def render(self, request: Request) -> bytes:
        """Redirect ``request`` (any method) to the URL."""
        return redirectTo(self.url, request)

    def getChild(self, path: bytes, request: Request) -> ResourceLike:
        """Every path below redirects to the same URL."""
        return self


class ChildRedirector(Redirect):
    """Redirects to ``url`` and each child path to the same child below ``url``.

    ``ChildRedirector(b"http://new.example/")`` answers ``/a/b`` with a redirect to
    ``http://new.example/a/b``: for moving a whole tree.

    Args:
        url: The target: absolute, absolute-path (``/...``) or ``..``-relative, since a
            target below this resource itself would redirect forever.

    Raises:
        ValueError: ``url`` is relative below this resource, or contains a control character.
    """

    isLeaf = False

    def __init__(self, url: bytes | str) -> None:
        checked = _checked_url(url)
        if b"://" not in checked and not checked.startswith((b"..", b"/")):
            raise ValueError(
                f"redirect target {checked!r} is below this resource: it would redirect forever"
            )
        super().__init__(checked)

    def getChild(self, name: bytes, request: Request) -> ResourceLike:
        """Return a redirector to ``name`` (percent-encoded) below this one's URL."""
        url = self.url if self.url.endswith(b"/") else self.url + b"/"
        return ChildRedirector(url + quote(name, safe=b"").encode("ascii"))


class ParentRedirect(Resource):
    """A leaf that redirects to the directory above the request's URL (``/a/b`` → ``/a/``).

    Put it at ``/foo`` to send ``/foo`` to ``/``: for a child that should never be shown.
    """

    isLeaf = True

    def render(self, request: Request) -> bytes:
        """Redirect ``request`` to the parent directory of its URL."""
        return redirectTo(bytes(request.URLPath().here()), request)

    def getChild(self, path: bytes, request: Request) -> ResourceLike:
        """Every path below redirects the same way."""
        return self


class _Unfired:
    """Marks a :class:`DeferredResource` whose Deferred has not fired yet."""


_UNFIRED: Final = _Unfired()


class DeferredResource(Resource):
    """A resource that is not there yet: renders what a Deferred fires with.

    As in Twisted, rendering returns ``NOT_DONE_YET``; once the Deferred has fired, the
    remaining path segments are walked from the resource it gave, as if that had been in
    the tree all along, and the result is handed to ``request.render``. A failure of the
    Deferred goes to ``request.processingFailed`` (a 500 page, logged); it is not reported
    again as an unhandled error.

    Args:
        d: A Deferred firing with a resource.
    """

    isLeaf = True

    def __init__(self, d: Deferred[Any]) -> None:
        super().__init__()
        self.d = d
        self._outcome: Any = _UNFIRED
        self._waiters: list[Deferred[Any]] = []
        d.addBoth(self._fired)

    def _fired(self, outcome: Any) -> None:
        # Kept for every later request: the Deferred's own result cannot be read twice.
        self._outcome = outcome
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if isinstance(outcome, Failure):
                waiter.errback(outcome)
            else:
                waiter.callback(outcome)
        # Returning None consumes a failure: it is answered by each request's
        # processingFailed, not left to be logged when the Deferred is collected.

    def _forget(self, waiter: Deferred[Any]) -> None:
        # The client left: its waiter is cancelled and must not be fired later.
        if waiter in self._waiters:
            self._waiters.remove(waiter)

    def render(self, request: Request) -> Any:
        """Render the resource the Deferred fires with, now or once it has fired.

        Returns:
            ``NOT_DONE_YET``: ``request.render`` (or ``request.processingFailed``) answers.
        """
        outcome = self._outcome
        if isinstance(outcome, Failure):
            request.processingFailed(outcome)
        elif not isinstance(outcome, _Unfired):
            _render_child(outcome, request)
        else:
            # Unlike Twisted's, which adds to the Deferred itself, each request waits on
            # its own Deferred: any number of requests can wait, and one whose client
            # leaves stops waiting.
            waiter: Deferred[Any] = Deferred(self._forget)
            self._waiters.append(waiter)
            waiter.addCallback(_render_child, request).addErrback(_child_failed, request)
            request.notifyFinish().addErrback(lambda _: waiter.cancel())
        return NOT_DONE_YET

    def getChild(self, path: bytes, request: Request) -> ResourceLike:
        """A leaf: the path below is walked from the resource the Deferred gives."""
        return self


def _render_child(child: Any, request: Request) -> None:
    """Walk on from ``child`` along the request's path and render what is reached."""
    request.render(traverse(child, request))


def _child_failed(failure: Failure, request: Request) -> None:
    """Answer the request with the failure, unless its client left (the wait was cancelled)."""
    if not failure.check(CancelledError):
        request.processingFailed(failure)


def formatFailure(myFailure: Any) -> bytes:
    """Return ``myFailure`` as an HTML fragment (:class:`FailureElement`), ASCII with
    character references, as Twisted's ``formatFailure`` does.

    Args:
        myFailure: A :class:`~treadle.python.failure.Failure`.

    Raises:
        FlattenerError: ``myFailure`` could not be rendered (it is not a Failure, say).
    """
    result: list[Any] = []
    flattenString(None, FailureElement(myFailure)).addBoth(result.append)
    outcome = result[0] if result else None
    if isinstance(outcome, bytes):
        return outcome.decode("utf-8").encode("ascii", "xmlcharrefreplace")
    if isinstance(outcome, Failure):
        outcome.raiseException()
    raise RuntimeError(f"formatting {myFailure!r} did not complete")
