"""Errors of the web layer, under the names Twisted code catches (``twisted.web.error``).

:class:`UnsupportedMethod` is what ``Resource.render`` raises for a method the resource has
no ``render_<METHOD>`` for (answered with 405 or 501); :class:`Error` and its subclasses
describe an HTTP status as an exception.
"""

from __future__ import annotations

from collections.abc import Iterable

from treadle.web._status import RESPONSES
from treadle.web._template_errors import (
    FlattenerError,
    MissingRenderMethod,
    MissingTemplateLoader,
    RenderError,
    UnexposedMethodError,
    UnfilledSlot,
    UnsupportedType,
)

__all__ = [
    "Error",
    "FlattenerError",
    "InfiniteRedirection",
    "MissingRenderMethod",
    "MissingTemplateLoader",
    "PageRedirect",
    "RedirectWithNoLocation",
    "RenderError",
    "SchemeNotSupported",
    "UnexposedMethodError",
    "UnfilledSlot",
    "UnsupportedMethod",
    "UnsupportedType",
]


def _phrase(code: int | bytes) -> bytes | None:
    """The reason phrase of status ``code``, or None for an unknown or malformed one."""
    try:
        return RESPONSES.get(int(code))
    except ValueError:
        return None


class Error(Exception):
    """An HTTP status as an exception.

    Args:
        code: The status, as an int or as three ASCII digits (``404`` or ``b"404"``).
        message: A short description; the status's reason phrase when None.
        response: A whole HTML page describing the error, if there is one.

    Attributes:
        status: The status as three ASCII digits (``b"404"``).
        message: As given, or the reason phrase.
        response: As given.

    Raises:
        ValueError: ``code`` is not a three-digit status.
    """

    def __init__(
        self, code: int | bytes, message: bytes | None = None, response: bytes | None = None
    ) -> None:
        message = message or _phrase(code)
        super().__init__(code, message, response)
        status = b"%d" % code if isinstance(code, int) else code
        if len(status) != 3 or not status.isdigit():
            raise ValueError(f"not a three-digit HTTP status: {code!r}")
        self.status = status
        self.message = message
        self.response = response

    def __str__(self) -> str:
        text = self.status + (b" " + self.message if self.message else b"")
        return text.decode("latin-1")


class PageRedirect(Error):
    """A response redirected elsewhere and the redirect was not followed.

    Args:
        location: Where the redirect pointed (added to the message).

    Attributes:
        location: As given.
    """

    def __init__(
        self,
        code: int | bytes,
        message: bytes | None = None,
        response: bytes | None = None,
        location: bytes | None = None,
    ) -> None:
        super().__init__(code, message, response)
        if self.message and location:
            self.message = self.message + b" to " + location
        self.location = location


class InfiniteRedirection(PageRedirect):
    """Redirects kept coming back: the one at ``location`` was not followed."""


class RedirectWithNoLocation(Error):
    """A redirect came without a ``Location`` field.

    Args:
        uri: The URL whose response lacked the location.

    Attributes:
        uri: As given.
    """

    def __init__(self, code: int | bytes, message: bytes, uri: bytes) -> None:
        super().__init__(code, message)
        self.message = self.message + b" to " + uri if self.message else uri
        self.uri = uri


class UnsupportedMethod(Exception):
    """The resource has no ``render_<METHOD>`` for the request; answered with 405 or 501.

    Args:
        allowedMethods: The methods the resource does support (sent in ``Allow``).

    Attributes:
        allowedMethods: As given, as a list.
    """

    def __init__(self, allowedMethods: Iterable[bytes], *args: object) -> None:
        super().__init__(allowedMethods, *args)
        self.allowedMethods = list(allowedMethods)


class SchemeNotSupported(Exception):
    """A URL's scheme is not one the client can fetch."""
