"""Agents that wrap another agent: redirects, content decoding, cookies (Twisted's rules).

Re-exported by :mod:`treadle.web.client`, where users import them.

- :class:`RedirectAgent` follows 301, 302, 307 and 308 for ``GET`` and ``HEAD`` only (any
  other method fails with ``ResponseFailed([PageRedirect])``) and 303 for every method,
  as a ``GET``; :class:`BrowserLikeRedirectAgent` follows 301, 302, 303 and 308 for every
  method as a ``GET``, and 307 for ``GET``/``HEAD``. A redirect carries the original
  headers but no body; leaving the origin drops ``Authorization``, ``Cookie`` and the other
  sensitive headers. More than ``redirectLimit`` redirects fail with
  ``ResponseFailed([InfiniteRedirection])``, a redirect without ``Location`` with
  ``ResponseFailed([RedirectWithNoLocation])``. Each response links the one before it
  through ``previousResponse``.
- :class:`ContentDecoderAgent` announces its decoders in ``Accept-Encoding`` and wraps a
  response whose ``Content-Encoding`` it can undo; :class:`GzipDecoder` undoes ``gzip``.
- :class:`CookieAgent` sends the cookies of an :class:`http.cookiejar.CookieJar` and stores
  those responses set.
"""

from __future__ import annotations

import urllib.request
import zlib
from collections.abc import Callable, Iterable, Sequence
from http.cookiejar import CookieJar
from typing import Any

from zope.interface import implementer

from treadle.internet.defer import Deferred
from treadle.python.failure import Failure
from treadle.web import error
from treadle.web._iclient import IAgent, IResponse
from treadle.web._newclient import URI, ResponseFailed, urljoin_keeping_fragment
from treadle.web.http_headers import Headers
from treadle.web.iweb import UNKNOWN_LENGTH

__all__ = [
    "BrowserLikeRedirectAgent",
    "ContentDecoderAgent",
    "CookieAgent",
    "GzipDecoder",
    "RedirectAgent",
]

#: Headers never carried to another origin by a redirect.
_SENSITIVE: frozenset[bytes] = frozenset(
    (b"authorization", b"cookie", b"cookie2", b"proxy-authorization", b"www-authenticate")
)


# -- redirects ---------------------------------------------------------------------------------


@implementer(IAgent)
class RedirectAgent:
    """Follows redirects strictly: 301/302/307/308 only for ``GET`` and ``HEAD``; 303 as GET.

    Args:
        agent: The agent that makes the requests.
        redirectLimit: Redirects followed before failing with ``InfiniteRedirection``.
        sensitiveHeaderNames: More header names to drop on a cross-origin redirect.
    """

    _redirectResponses: Sequence[int] = (301, 302, 307, 308)
    _seeOtherResponses: Sequence[int] = (303,)

    def __init__(
        self, agent: Any, redirectLimit: int = 20, sensitiveHeaderNames: Iterable[bytes] = ()
    ) -> None:
        self._agent = agent
        self._redirectLimit = redirectLimit
        self._sensitiveHeaderNames = _SENSITIVE | {name.lower() for name in sensitiveHeaderNames}

    def request(
        self,
        method: bytes,
        uri: bytes,
        headers: Headers | None = None,
        bodyProducer: Any = None,
    ) -> Deferred[Any]:
        """Send a request and follow the redirects it gets; as ``Agent.request``.

        Returns:
            A Deferred of the final response, or failing with ``ResponseFailed`` whose
            ``reasons`` hold ``PageRedirect``, ``InfiniteRedirection`` or
            ``RedirectWithNoLocation`` (and ``response`` the redirect).
        """
        d: Deferred[Any] = self._agent.request(method, uri, headers, bodyProducer)
        return d.addCallback(self._handleResponse, method, uri, headers, 0)

    def _resolveLocation(self, requestURI: bytes, location: bytes) -> bytes:
        return urljoin_keeping_fragment(requestURI, location)

    def _handleResponse(
        self, response: Any, method: bytes, uri: bytes, headers: Headers | None, count: int
    ) -> Any:
        if response.code in self._redirectResponses:
            if method not in (b"GET", b"HEAD"):
                err = error.PageRedirect(response.code, location=uri)
                raise ResponseFailed([Failure(err)], response)
            return self._handleRedirect(response, method, uri, headers, count)
        if response.code in self._seeOtherResponses:
            return self._handleRedirect(response, b"GET", uri, headers, count)
        return response

    def _handleRedirect(
        self, response: Any, method: bytes, uri: bytes, headers: Headers | None, count: int
    ) -> Deferred[Any]:
        if count >= self._redirectLimit:
            err: Exception = error.InfiniteRedirection(
                response.code, b"Infinite redirection detected", location=uri
            )
            raise ResponseFailed([Failure(err)], response)
        locations = response.headers.getRawHeaders(b"location", [])
        if not locations:
            err = error.RedirectWithNoLocation(response.code, b"No location header field", uri)
            raise ResponseFailed([Failure(err)], response)
        location = self._resolveLocation(uri, locations[0])
        if headers and not _same_origin(uri, location):
            headers = Headers(
                {
                    name: values
                    for name, values in headers.getAllRawHeaders()
                    if name.lower() not in self._sensitiveHeaderNames
                }
            )
        d: Deferred[Any] = self._agent.request(method, location, headers)

        def chain(newResponse: Any) -> Any:
            newResponse.setPreviousResponse(response)
            return newResponse

        d.addCallback(chain)
        # Twisted resolves every hop against the first URI; the next hop resolves against
        # this one, as browsers do (RFC 9110 §10.2.2).
        return d.addCallback(self._handleResponse, method, location, headers, count + 1)


def _same_origin(a: bytes, b: bytes) -> bool:
    one, two = URI.fromBytes(a), URI.fromBytes(b)
    return (one.scheme, one.host, one.port) == (two.scheme, two.host, two.port)


class BrowserLikeRedirectAgent(RedirectAgent):
    """Follows redirects as browsers do: 301, 302, 303 and 308 for any method, as a ``GET``;
    307 for ``GET`` and ``HEAD``."""

    _redirectResponses = (307,)
    _seeOtherResponses = (301, 302, 303, 308)


# -- content decoding --------------------------------------------------------------------------


@implementer(IResponse)
class _ResponseProxy:
    """A response standing for another (``original``); :class:`GzipDecoder` builds on it."""

    def __init__(self, original: Any) -> None:
        self.original = original

    version = property(lambda self: self.original.version)
    code = property(lambda self: self.original.code)
    phrase = property(lambda self: self.original.phrase)
    headers = property(lambda self: self.original.headers)
    request = property(lambda self: self.original.request)
    previousResponse = property(lambda self: self.original.previousResponse)

    def setPreviousResponse(self, response: Any) -> None:
        """Record the response that redirected to this one."""
        self.original.setPreviousResponse(response)

    def deliverBody(self, protocol: Any) -> None:
        """Deliver the original body to ``protocol``."""
        self.original.deliverBody(protocol)


class GzipDecoder(_ResponseProxy):
    """A response whose gzip-encoded body is delivered decoded (its ``length`` is unknown).

    Args:
        response: The encoded response.
    """

    def __init__(self, response: Any) -> None:
        super().__init__(response)
        self.length: int | str = UNKNOWN_LENGTH

    def deliverBody(self, protocol: Any) -> None:
        """Deliver the decoded body to ``protocol``; corrupt data ends it with
        ``ResponseFailed``."""
        self.original.deliverBody(_GzipProtocol(protocol, self.original))


class _GzipProtocol:
    """Decompresses what it receives and hands it on."""

    def __init__(self, protocol: Any, response: Any) -> None:
        self.original = protocol
        self._response = response
        self._zlib = zlib.decompressobj(16 + zlib.MAX_WBITS)

    def makeConnection(self, transport: Any) -> None:
        self.transport = transport
        self.original.makeConnection(transport)

    def dataReceived(self, data: bytes) -> None:
        try:
            raw = self._zlib.decompress(data)
        except zlib.error:
            raise ResponseFailed([Failure()], self._response) from None
        if raw:
            self.original.dataReceived(raw)

    def connectionLost(self, reason: Failure) -> None:
        try:
            raw = self._zlib.flush()
        except zlib.error:
            raise ResponseFailed([reason, Failure()], self._response) from None
        if raw:
            self.original.dataReceived(raw)
        self.original.connectionLost(reason)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.original, name)


@implementer(IAgent)
class ContentDecoderAgent:
    """Asks for encoded content and decodes what it can (Twisted's ``ContentDecoderAgent``).

    Args:
        agent: The agent that makes the requests.
        decoders: ``(name, decoder)`` pairs in order of preference, e.g.
            ``[(b"gzip", GzipDecoder)]``; a decoder takes a response and returns one.
    """

    def __init__(self, agent: Any, decoders: Sequence[tuple[bytes, Callable[[Any], Any]]]) -> None:
        self._agent = agent
        self._decoders = dict(decoders)
        self._supported = b",".join(name for name, _ in decoders)

    def request(
        self,
        method: bytes,
        uri: bytes,
        headers: Headers | None = None,
        bodyProducer: Any = None,
    ) -> Deferred[Any]:
        """Send a request with ``Accept-Encoding``; as ``Agent.request``."""
        headers = Headers() if headers is None else headers.copy()
        headers.addRawHeader(b"Accept-Encoding", self._supported)
        d: Deferred[Any] = self._agent.request(method, uri, headers, bodyProducer)
        return d.addCallback(self._handleResponse)

    def _handleResponse(self, response: Any) -> Any:
        # Codings apply in the order listed, so they are undone from the last one back;
        # the first one without a decoder stops the unwinding.
        codings = b",".join(response.headers.getRawHeaders(b"content-encoding", [])).split(b",")
        while codings:
            name = codings.pop().strip()
            decoder = self._decoders.get(name)
            if decoder is None:
                codings.append(name)
                break
            response = decoder(response)
        if codings:
            response.headers.setRawHeaders(b"Content-Encoding", [b",".join(codings)])
        else:
            response.headers.removeHeader(b"Content-Encoding")
        return response


# -- cookies -----------------------------------------------------------------------------------


class _CookieResponse:
    """What :meth:`http.cookiejar.CookieJar.extract_cookies` reads of a response."""

    def __init__(self, response: Any) -> None:
        self._headers = response.headers

    def info(self) -> _CookieResponse:
        return self

    def get_all(self, name: str, default: list[str]) -> list[str]:
        values: list[str] = self._headers.getRawHeaders(name, default)
        return values


@implementer(IAgent)
class CookieAgent:
    """Sends the cookies of ``cookieJar`` that match each request, and stores the cookies
    each response sets.

    Args:
        agent: The agent that makes the requests.
        cookieJar: An :class:`http.cookiejar.CookieJar` (shared, and updated in place).
    """

    def __init__(self, agent: Any, cookieJar: CookieJar) -> None:
        self._agent = agent
        self.cookieJar = cookieJar

    def request(
        self,
        method: bytes,
        uri: bytes,
        headers: Headers | None = None,
        bodyProducer: Any = None,
    ) -> Deferred[Any]:
        """Send a request with its cookies; as ``Agent.request``.

        A ``Cookie`` header in ``headers`` is sent as given, instead of the jar's cookies.
        """
        actual = headers if headers is not None else Headers()
        stdlib_request = urllib.request.Request(uri.decode("latin-1"))
        if not actual.hasHeader(b"cookie"):
            self.cookieJar.add_cookie_header(stdlib_request)
            cookie = stdlib_request.get_header("Cookie")
            if cookie is not None:
                actual = actual.copy()
                actual.addRawHeader(b"Cookie", cookie.encode("latin-1"))
        d: Deferred[Any] = self._agent.request(method, uri, actual, bodyProducer)
        return d.addCallback(self._extractCookies, stdlib_request)

    def _extractCookies(self, response: Any, request: urllib.request.Request) -> Any:
        self.cookieJar.extract_cookies(_CookieResponse(response), request)  # type: ignore[arg-type]
        return response
