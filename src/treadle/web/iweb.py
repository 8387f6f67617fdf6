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
    "INonQueuedRequestFactory",
    "IPolicyForHTTPS",
    "IRenderable",
    "IRequest",
    "IResponse",
    "ITemplateLoader",
]

#: What an :class:`IBodyProducer` gives as its ``length`` when it cannot tell in advance.
UNKNOWN_LENGTH: Final = "twisted.web.iweb.UNKNOWN_LENGTH"


class IRequest(Interface):
    """An HTTP request being answered: what the client sent and the response being built.

    The members are Twisted's, so that ``verifyObject(IRequest, request)`` judges a
    program's own request classes as Twisted does. treadle's ``server.Request`` provides it.
    """

    method = Attribute("The request method, as bytes (b'GET').")
    uri = Attribute("The request target as sent, as bytes.")
    path = Attribute("The target without its query string, as bytes.")
    args = Attribute("Query and form arguments: {bytes name: [bytes value, ...]}.")
    prepath = Attribute("Path segments consumed by traversal so far.")
    postpath = Attribute("Path segments not consumed yet.")
    requestHeaders = Attribute("The request's Headers.")
    content = Attribute("The request body, a binary file positioned at its start.")
    responseHeaders = Attribute("The Headers to send; change them before the first write.")

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

    def getClientIP():
        """Return the client's IP address as a string, or None (deprecated in Twisted)."""

    def getUser():
        """Return the user name of HTTP Basic credentials, or b''."""

    def getPassword():
        """Return the password of HTTP Basic credentials, or b''."""

    def isSecure():
        """Return True when the request arrived over TLS."""

    def getSession(sessionInterface=None):
        """Return the client's session, making one if it has none."""

    def URLPath():
        """Return :meth:`prePathURL` as a URLPath."""

    def prePathURL():
        """Return the absolute URL of the resource being rendered."""

    def rememberRootURL():
        """Remember the URL of the resource being traversed, for :meth:`getRootURL`."""

    def getRootURL():
        """Return the URL :meth:`rememberRootURL` remembered."""

    def finish():
        """End the response."""

    def write(data):
        """Append ``data`` to the response body."""

    def addCookie(
        k,
        v,
        expires=None,
        domain=None,
        path=None,
        max_age=None,
        comment=None,
        secure=None,
    ):
        """Add a Set-Cookie header to the response."""

    def setResponseCode(code, message=None):
        """Set the response status (and optionally its reason phrase)."""

    def setHeader(k, v):
        """Set response header ``k`` to the single value ``v``."""

    def redirect(url):
        """Make the response a redirect to ``url``."""

    def setLastModified(when):
        """Set Last-Modified; return CACHED when the client's copy is fresh."""

    def setETag(etag):
        """Set ETag; return CACHED when a condition decided the response."""

    def setHost(host, port, ssl=0):
        """Make the request look as if it arrived at ``host:port`` (over TLS when ``ssl``)."""


class _IRequestEncoder(Interface):
    """Encodes one response body (what an encoder factory returns; Twisted's private name)."""

    def encode(data):
        """Return the encoded form of the next body bytes (may be empty)."""

    def finish():
        """Return whatever the encoding still holds; called once, at the end of the body."""


class _IRequestEncoderFactory(Interface):
    """Offers an encoder for a request (an entry of ``EncodingResourceWrapper``'s list)."""

    def encoderForRequest(request):
        """Return an encoder for ``request``, or None when this coding does not apply."""


class INonQueuedRequestFactory(Interface):
    """Makes the request objects of a channel, given only the channel (no ``queued``)."""

    def __call__(channel):
        """Return a new :class:`IRequest` answering on ``channel``."""


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
