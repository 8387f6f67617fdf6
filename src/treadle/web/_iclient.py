# mypy: disable-error-code="misc, no-untyped-def"
# (zope interfaces declare methods without self and derive from an untyped base.)
"""The interfaces of the HTTP client (Twisted's ``twisted.web.iweb`` names for it).

Kept apart so that :mod:`treadle.web.iweb` can re-export them and the client modules can
name them without importing each other.
"""

from __future__ import annotations

from zope.interface import Attribute, Interface

__all__ = [
    "IAgent",
    "IAgentEndpointFactory",
    "IClientRequest",
    "IPolicyForHTTPS",
    "IResponse",
]


class IResponse(Interface):
    """A response an HTTP client received: status, headers, and a body delivered on demand."""

    version = Attribute("The HTTP version as a tuple: (b'HTTP', 1, 1).")
    code = Attribute("The status code, an int.")
    phrase = Attribute("The reason phrase, bytes.")
    headers = Attribute("The response's Headers (connection-control fields excluded).")
    length = Attribute("The body's length in bytes, or UNKNOWN_LENGTH when not known.")
    request = Attribute("The IClientRequest this answers.")
    previousResponse = Attribute("The response that redirected here, or None.")

    def deliverBody(protocol):
        """Hand the body to ``protocol``: makeConnection, dataReceived..., connectionLost.

        ``connectionLost`` gets ``ResponseDone`` when the whole body arrived,
        ``PotentialDataLoss`` when its end could not be told, ``ResponseFailed`` otherwise.
        """

    def setPreviousResponse(response):
        """Record the response that redirected to this one."""


class IClientRequest(Interface):
    """What a response knows of the request that produced it."""

    method = Attribute("The request method, bytes.")
    absoluteURI = Attribute("The absolute URI requested, bytes (None if not known).")
    headers = Attribute("The request's Headers.")


class IAgent(Interface):
    """Makes HTTP requests: ``request(method, uri, headers, bodyProducer)``."""

    def request(method, uri, headers=None, bodyProducer=None):
        """Return a Deferred firing with an IResponse once the response head arrived."""


class IPolicyForHTTPS(Interface):
    """Decides how to verify the TLS server of each host an agent connects to."""

    def creatorForNetloc(hostname, port):
        """Return the client TLS settings (``getContext()``, ``hostname``) for hostname:port."""


class IAgentEndpointFactory(Interface):
    """Gives the endpoint an agent connects to for a URI."""

    def endpointForURI(uri):
        """Return an IStreamClientEndpoint for ``uri`` (a URI); raise SchemeNotSupported."""
