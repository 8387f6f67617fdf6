# mypy: disable-error-code="misc, no-untyped-def, override"
# (zope interfaces declare methods without self, even __eq__, and derive from an untyped base.)
"""What Twisted's channel calls on its requests, as a :mod:`zope.interface` interface.

Twisted names it ``twisted.web.http._IDeprecatedHTTPChannelToRequestInterface``; programs
and test suites wrap requests with ``proxyForInterface`` of it, and treadle's channel drives
such a proxy through these calls (see :class:`treadle.web._twisted_channel.InterfaceRequest`).
"""

from __future__ import annotations

from zope.interface import Attribute, Interface

__all__ = ["_IDeprecatedHTTPChannelToRequestInterface"]


class _IDeprecatedHTTPChannelToRequestInterface(Interface):
    """What Twisted's channel calls on its requests (kept for code that proxies a request).

    treadle's channel hands a request its parsed message in one call (``receive_message``);
    a request object offering only these names is driven through them instead.
    """

    requestHeaders = Attribute("The request's headers (a Headers).")
    responseHeaders = Attribute("The headers to send (a Headers).")

    def connectionLost(reason):
        """The connection ended before the response was finished."""

    def gotLength(length):
        """The body's length is known (None: not declared)."""

    def handleContentChunk(data):
        """A piece of the request body arrived."""

    def parseCookies():
        """Read the request's cookies from its headers."""

    def requestReceived(command, path, version):
        """The whole request (head and body) arrived: answer it."""

    def __eq__(other):
        """Whether ``other`` is this request."""

    def __ne__(other):
        """Whether ``other`` is not this request."""

    def __hash__():
        """The request's hash."""
