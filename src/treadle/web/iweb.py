# mypy: disable-error-code="misc, no-untyped-def"
# (zope interfaces declare methods without self and derive from an untyped base.)
"""The interfaces of ``twisted.web.iweb``, as :mod:`zope.interface` interfaces.

Programs declare and test against these (``@implementer(ICredentialFactory)``,
``IRequest.providedBy(request)``); treadle's classes declare the ones they provide. They
describe; they are not used for type checking, which treadle does with ``typing.Protocol``
classes where a module needs to name a type it may not import.
"""

from __future__ import annotations

from typing import Final

from zope.interface import Attribute, Interface

from treadle.web._iclient import (
    IAgent,
    IAgentEndpointFactory,
    IClientRequest,
    IPolicyForHTTPS,
    IResponse,
)

__all__ = [
    "UNKNOWN_LENGTH",
    "IAccessLogFormatter",
    "IAgent",
    "IAgentEndpointFactory",
    "IBodyProducer",
    "IClientRequest",
    "ICredentialFactory",
    "IPolicyForHTTPS",
    "IRenderable",
    "IRequest",
    "IResponse",
    "ITemplateLoader",
]

#: What an :class:`IBodyProducer` gives as its ``length`` when it cannot tell in advance.
UNKNOWN_LENGTH: Final = "twisted.web.iweb.UNKNOWN_LENGTH"


class IRequest(Interface):
    """An HTTP request being answered: what the client sent and the response being built."""

    method = Attribute("The request method, as bytes (b'GET').")
    uri = Attribute("The request target as sent, as bytes.")
    path = Attribute("The target without its query string, as bytes.")
    args = Attribute("Query and form arguments: {bytes name: [bytes value, ...]}.")
    prepath = Attribute("Path segments consumed by traversal so far.")
    postpath = Attribute("Path segments not consumed yet.")
    requestHeaders = Attribute("The request's Headers.")
    responseHeaders = Attribute("The Headers to send; change them before the first write.")
    content = Attribute("The request body, a binary file positioned at its start.")
    code = Attribute("The response status code.")
    sentLength = Attribute("Body bytes handed to the transport so far.")

    def getHeader(key):
        """Return the last value of request header ``key``, or None."""

    def getCookie(key):
        """Return the value of cookie ``key`` the client sent, or None."""

    def getAllHeaders():
        """Return every request header as a dict of its last values."""

    def getRequestHostname():
        """Return the host the client asked for, without port."""

    def getHost():
        """Return the local address the request arrived on."""

    def getClientAddress():
        """Return the address of the client."""

    def isSecure():
        """Return True when the request arrived over TLS."""

    def getUser():
        """Return the user name of HTTP Basic credentials, or b''."""

    def getPassword():
        """Return the password of HTTP Basic credentials, or b''."""

    def getSession(sessionInterface=None):
        """Return the client's session, making one if it has none."""

    def prePathURL():
        """Return the absolute URL of the resource being rendered."""

    def URLPath():
        """Return :meth:`prePathURL` as a URLPath."""

    def setResponseCode(code, message=None):
        """Set the response status (and optionally its reason phrase)."""

    def setHeader(name, value):
        """Set response header ``name`` to the single value ``value``."""

    def addCookie(k, v, **attributes):
        """Add a Set-Cookie header to the response."""

    def redirect(url):
        """Make the response a redirect to ``url``."""

    def setLastModified(when):
        """Set Last-Modified; return CACHED when the client's copy is fresh."""

    def setETag(etag):
        """Set ETag; return CACHED when a condition decided the response."""

    def write(data):
        """Append ``data`` to the response body."""

    def finish():
        """End the response."""

    def notifyFinish():
        """Return a Deferred fired when the response ends or the client leaves."""

    def registerProducer(producer, streaming):
        """Attach a producer feeding the response."""

    def unregisterProducer():
        """Detach the producer."""


class IAccessLogFormatter(Interface):
    """Turns a finished request into one line of the access log."""

    def __call__(timestamp, request):
        """Return the line (without newline) for ``request`` finished at ``timestamp``."""


class ICredentialFactory(Interface):
    """Turns an ``Authorization`` header into credentials, and makes the challenge for it."""

    scheme = Attribute("The lowercase name of the scheme, as bytes (b'basic').")

    def getChallenge(request):
        """Return the parameters of the ``WWW-Authenticate`` challenge, as a dict."""

    def decode(response, request):
        """Return credentials for the header's ``response`` part; raise LoginFailed if bad."""


class IBodyProducer(Interface):
    """Produces a request or response body, writing it to a consumer."""

    length = Attribute("The body's length in bytes, or UNKNOWN_LENGTH.")

    def startProducing(consumer):
        """Write the body to ``consumer``; return a Deferred fired when it is all written."""

    def pauseProducing():
        """Stop writing until resumed."""

    def resumeProducing():
        """Go on writing."""

    def stopProducing():
        """Stop for good; the Deferred of startProducing need not fire."""


class IRenderable(Interface):
    """Something a template can render: it looks up render methods by name."""

    def lookupRenderMethod(name):
        """Return the render method called ``name``."""

    def render(request):
        """Return what to flatten for ``request``."""


class ITemplateLoader(Interface):
    """Loads a template."""

    def load():
        """Return the template's parsed form."""
