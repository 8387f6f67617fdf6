"""Error pages as resources (``twisted.web.pages``): ``errorPage``, ``notFound``, ``forbidden``.

Each returns a leaf resource answering every method and every path below it with its status
and a small HTML page whose title is ``"<code> - <brief>"``. ``brief`` and ``detail`` are
HTML-escaped, so they may carry request values (a path, a query argument) safely.

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
from treadle.web.resource import ErrorPage, ResourceLike
from treadle.web.server import Request

__all__ = ["errorPage", "forbidden", "notFound"]

_NOT_FOUND_BRIEF: Final = "No Such Resource"
_NOT_FOUND_DETAIL: Final = "Sorry. No luck finding that resource."
_FORBIDDEN_BRIEF: Final = "Forbidden Resource"
_FORBIDDEN_DETAIL: Final = "Sorry, resource is forbidden."


class _ErrorPage(ErrorPage):
    """The resource behind :func:`errorPage`: an :class:`ErrorPage` that takes no children."""

    def render(self, request: Request) -> bytes:
        """Set the status and return the page (Twisted's ``pages`` layout, not ``ErrorPage``'s)."""
        request.setResponseCode(self.code)
        request.setHeader(b"content-type", b"text/html; charset=utf-8")
        return flat_error_page(self.code, self.brief, self.detail)

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
        A leaf resource (also for every path below it); ``putChild`` raises
        ``NotImplementedError``.
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
