"""Error pages as resources (``twisted.web.pages``): ``errorPage``, ``notFound``, ``forbidden``.

Each returns a resource answering every method and every path below it (it is its own
child) with its status and a small HTML page whose title is ``"<code> - <brief>"``.
``brief`` and ``detail`` are HTML-escaped, so they may carry request values (a path, a query
argument) safely. As in Twisted, ``render`` writes the page and finishes the request itself
(and returns ``NOT_DONE_YET``), so code calling it directly finds the page in what the
request was given.

The older classes :class:`treadle.web.resource.ErrorPage`, :class:`~treadle.web.resource.NoResource`
and :class:`~treadle.web.resource.ForbiddenResource` keep working; as in Twisted their page is
laid out differently (no doctype, one element a line) but escaped the same way here.
Titles users may match on stay Twisted's: 404 "No Such Resource", 403 "Forbidden Resource",
and from the server itself 405 "Method Not Allowed", 501 "Not Implemented" and 500
"Processing Failed".
"""

from __future__ import annotations

from typing import Final

from treadle.web._html import flat_error_page
from treadle.web.http import FORBIDDEN, NOT_FOUND
from treadle.web.resource import Resource, ResourceLike
from treadle.web.server import NOT_DONE_YET, Request

__all__ = ["errorPage", "forbidden", "notFound"]

_NOT_FOUND_BRIEF: Final = "No Such Resource"
_NOT_FOUND_DETAIL: Final = "Sorry. No luck finding that resource."
_FORBIDDEN_BRIEF: Final = "Forbidden Resource"
_FORBIDDEN_DETAIL: Final = "Sorry, resource is forbidden."


class _ErrorPage(Resource):
    """The resource behind :func:`errorPage`: a page for every method and every path below.

    Args:
        code: The status.
        brief: The heading (and, after the code, the title).
        detail: The paragraph.
    """

    def __init__(self, code: int, brief: str, detail: str) -> None:
        super().__init__()
        self.code = code
        self.brief = brief
        self.detail = detail

    def render(self, request: Request) -> int:
        """Set the status, write the page and finish the request, as Twisted's does.

        Returns:
            ``NOT_DONE_YET`` (the response is already complete).
        """
        request.setResponseCode(self.code)
        request.setHeader(b"content-type", b"text/html; charset=utf-8")
        # Written rather than returned, as Twisted's renderElement does, so code that calls
        # render() itself finds the page in what the request was given.
        request.write(flat_error_page(self.code, self.brief, self.detail))
        request.finish()
        return NOT_DONE_YET

    def getChild(self, path: bytes, request: Request) -> ResourceLike:
        """Every path below an error page is the error page."""
        return self

    def putChild(self, path: bytes, child: ResourceLike) -> None:
        """Refuse: every path below an error page is the error page.

        Raises:
            NotImplementedError: Always (as Twisted's).
        """
        raise NotImplementedError("an error page has no children")

    def __repr__(self) -> str:
        return f"<errorPage {self.code} {self.brief!r}>"


def errorPage(code: int, brief: str, detail: str) -> ResourceLike:
    """Return a resource answering every request with status ``code`` and an HTML page.

    Args:
        code: The HTTP status code.
        brief: A short summary: the page's heading and, after the code, its title.
        detail: A longer explanation: the page's paragraph.

    Returns:
        A resource that is also its own child for every path below it; ``putChild``
        raises ``NotImplementedError``.
    """
    return _ErrorPage(code, brief, detail)


def notFound(brief: str = _NOT_FOUND_BRIEF, message: str = _NOT_FOUND_DETAIL) -> ResourceLike:
    """Return a ``404 Not Found`` page resource.

    Args:
        brief: The heading (Twisted's "No Such Resource" by default).
        message: The explanation.

    Returns:
        The resource, as :func:`errorPage` makes.
    """
    return _ErrorPage(NOT_FOUND, brief, message)


def forbidden(brief: str = _FORBIDDEN_BRIEF, message: str = _FORBIDDEN_DETAIL) -> ResourceLike:
    """Return a ``403 Forbidden`` page resource.

    Args:
        brief: The heading (Twisted's "Forbidden Resource" by default).
        message: The explanation.

    Returns:
        The resource, as :func:`errorPage` makes.
    """
    return _ErrorPage(FORBIDDEN, brief, message)
