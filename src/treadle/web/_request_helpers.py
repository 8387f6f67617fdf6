"""What Twisted's ``http.Request`` offers besides the wire: conditional requests and Basic
credentials; and treadle's trailer fields (``requestTrailers``, ``responseTrailers``: see
:mod:`treadle.web._trailers`).

:class:`RequestHelpers` is a base of :class:`treadle.web.http.Request` (and so of
``server.Request``). Its state lives in class attributes that a call overrides on the
instance, so a request that never uses them pays nothing.

Conditional requests, differences from Twisted, on purpose: ``If-Modified-Since`` is honoured
for GET and HEAD only and ignored when ``If-None-Match`` is present (RFC 9110 §13.1.3, where
Twisted answers 304 to any method); ``If-None-Match`` is a comma-separated list compared
weakly (§13.1.2, Twisted splits on spaces and compares exactly); ``If-Match`` is checked
too (§13.1.1, 412 when no tag matches strongly), which Twisted ignores.
"""

from __future__ import annotations

import binascii
import math
from base64 import b64decode
from email.utils import formatdate, mktime_tz, parsedate_tz
from typing import TYPE_CHECKING, Any

from treadle.web._status import CACHED, NOT_MODIFIED, PRECONDITION_FAILED
from treadle.web._trailers import TrailerHeaders, check_names
from treadle.web.http_headers import Headers

__all__ = ["RequestHelpers"]


class RequestHelpers:
    """Conditional requests (``setLastModified``, ``setETag``), Basic credentials
    (``getUser``, ``getPassword``) and trailer fields (``requestTrailers``,
    ``responseTrailers``) of a request.

    Attributes:
        lastModified: The time given to :meth:`setLastModified` (whole seconds), or None.
        etag: The tag given to :meth:`setETag`, or None.
    """

    __slots__ = ()

    lastModified: int | None = None
    etag: bytes | None = None
    _credentials: tuple[bytes, bytes] | None = None
    _request_trailers: Headers | None = None
    _response_trailers: Headers | None = None

    if TYPE_CHECKING:  # provided by the request class this is a base of
        method: bytes
        requestHeaders: Headers
        _trailing: bool  # a field of the compiled core, read on its per-request path

        def setHeader(self, name: str | bytes, value: str | bytes) -> None: ...

        def setResponseCode(self, code: int, message: Any = None) -> None: ...

    # -- conditional requests ---------------------------------------------------------------

    def setLastModified(self, when: float) -> bytes | None:
        """Set ``Last-Modified`` and answer ``If-Modified-Since``.

        Call it before writing. The latest time given over several calls wins. If the
        client's copy is at least as recent (GET and HEAD only, and only when the request
        has no ``If-None-Match``), the status becomes ``304 Not Modified`` and
        :data:`CACHED` is returned: return that as the body and skip the work.

        Args:
            when: Seconds since the epoch; rounded up to whole seconds (HTTP dates have no
                fractions).

        Returns:
            :data:`CACHED` when the client's copy is fresh, else None.
        """
        when = math.ceil(when)
        if self.lastModified is None or self.lastModified < when:
            self.lastModified = when  # type: ignore[misc]  # the request has a __dict__
            self.setHeader(b"last-modified", formatdate(when, usegmt=True).encode("ascii"))
        if self.method != b"GET" and self.method != b"HEAD":
            return None
        received = self.requestHeaders
        since = received._get(b"if-modified-since")
        if not since or received._has(b"if-none-match"):
            return None
        # Old browsers append "; length=..." to the date.
        parsed = parsedate_tz(since[-1].split(b";", 1)[0].decode("latin-1"))
        if parsed is None:
            return None
        if mktime_tz(parsed) >= self.lastModified:
            self.setResponseCode(NOT_MODIFIED)
            return CACHED
        return None

    def setETag(self, etag: bytes | str | None) -> bytes | None:
        """Set ``ETag`` and answer ``If-None-Match`` and ``If-Match``.

        Call it before writing. When an ``If-None-Match`` tag matches (weakly, or ``*``),
        the status becomes ``304 Not Modified`` for GET and HEAD and ``412 Precondition
        Failed`` for other methods; when ``If-Match`` is present and no tag matches
        strongly (nor is ``*``), it becomes 412. Either way :data:`CACHED` is returned:
        return it as the body and skip the work (or the change).

        Args:
            etag: The entity tag exactly as it should appear in the header, quotes
                included (``b'"v42"'``, ``b'W/"v42"'``); None or empty sets no header.

        Returns:
            :data:`CACHED` when a condition decided the response, else None.
        """
        if isinstance(etag, str):
            etag = etag.encode("latin-1")
        if etag:
            self.etag = etag  # type: ignore[misc]  # the request has a __dict__
            self.setHeader(b"etag", etag)
        received = self.requestHeaders
        wanted = received._get(b"if-match")
        if wanted is not None:
            tags = _entity_tags(wanted)
            if b"*" not in tags and (not etag or etag.startswith(b"W/") or etag not in tags):
                self.setResponseCode(PRECONDITION_FAILED)
                return CACHED
        unwanted = received._get(b"if-none-match")
        if unwanted is not None:
            tags = _entity_tags(unwanted)
            if b"*" in tags or (etag and _weak(etag) in {_weak(t) for t in tags}):
                fresh = self.method == b"GET" or self.method == b"HEAD"
                self.setResponseCode(NOT_MODIFIED if fresh else PRECONDITION_FAILED)
                return CACHED
        return None

    # -- credentials ------------------------------------------------------------------------

    def _basic_credentials(self) -> tuple[bytes, bytes]:
        credentials = self._credentials
        if credentials is None:
            credentials = (b"", b"")
            header = self.requestHeaders._get(b"authorization")
            if header:
                scheme, _, encoded = header[-1].strip().partition(b" ")
                if scheme.lower() == b"basic":
                    try:
                        user, sep, password = b64decode(encoded.strip(), validate=True).partition(
                            b":"
                        )
                    except (binascii.Error, ValueError):
                        pass
                    else:
                        if sep:
                            credentials = (user, password)
            self._credentials = credentials  # type: ignore[misc]  # as above
        return credentials

    def getUser(self) -> bytes:
        """Return the user name of a Basic ``Authorization`` header (b"" if none or invalid)."""
        return self._basic_credentials()[0]

    def getPassword(self) -> bytes:
        """Return the password of a Basic ``Authorization`` header (b"" if none or invalid)."""
        return self._basic_credentials()[1]

    # -- trailer fields ---------------------------------------------------------------------

    @property
    def requestTrailers(self) -> Headers:
        """Trailer fields the client sent after the body (empty when none; see
        :mod:`treadle.web._trailers`)."""
        trailers = self._request_trailers
        if trailers is None:
            trailers = self._request_trailers = Headers()  # type: ignore[misc]  # as above
        return trailers

    @requestTrailers.setter
    def requestTrailers(self, value: Headers) -> None:
        self._request_trailers = value  # type: ignore[misc]  # the request has a __dict__

    @property
    def responseTrailers(self) -> Headers:
        """Trailer fields to send after the response body; fill them before ``finish()``.

        A :class:`~treadle.web._trailers.TrailerHeaders`, refusing fields that may not be
        trailers. Sent on HTTP/2 and after a chunked HTTP/1.1 body, dropped where the
        response cannot carry them (see :mod:`treadle.web._trailers`).

        Raises:
            ValueError: (Setting) a field of the ``Headers`` given may not be a trailer.
        """
        trailers = self._response_trailers
        if trailers is None:
            trailers = self._response_trailers = TrailerHeaders()  # type: ignore[misc]
            self._trailing = True  # type: ignore[misc]  # a field of the compiled core
        return trailers

    @responseTrailers.setter
    def responseTrailers(self, value: Headers) -> None:
        check_names(value)
        self._response_trailers = value  # type: ignore[misc]  # the request has a __dict__
        self._trailing = True  # type: ignore[misc]  # a field of the compiled core


def _entity_tags(values: list[bytes]) -> list[bytes]:
    """Split ``If-Match``/``If-None-Match`` values into their entity tags."""
    return [tag.strip() for value in values for tag in value.split(b",") if tag.strip()]


def _weak(tag: bytes) -> bytes:
    """The opaque part of an entity tag, for the weak comparison (RFC 9110 §8.8.3.2)."""
    return tag[2:] if tag.startswith(b"W/") else tag
