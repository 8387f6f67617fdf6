"""Response content coding: :class:`GzipEncoderFactory` and :class:`EncodingResourceWrapper`.

As in Twisted, ``EncodingResourceWrapper(resource, [GzipEncoderFactory()])`` compresses what
``resource`` renders for clients that accept gzip. (Re-exported as
``treadle.web.server.GzipEncoderFactory`` and ``treadle.web.resource.EncodingResourceWrapper``.)

How the encoder reaches the body. The wrapper asks each factory for an encoder; when one
answers, the wrapper handles every way a render can produce a body:

- ``bytes``/``str`` returned at once: compressed whole and returned (compressed) to the
  server, which sends it on its one-write fast path with an exact ``Content-Length``;
- an awaitable or Deferred: the same, once it resolves;
- ``request.write``/``finish`` (``NOT_DONE_YET``, producers, a body returned after writes):
  the wrapper sets ``write`` and ``finish`` on that request instance (requests have a
  ``__dict__``; instance attributes shadow the methods for that request only) with versions
  that pass the data through the encoder and then to the original bound methods.

Every ``write`` is compressed with a ``Z_SYNC_FLUSH``, so what was written reaches the client
decodable at once: long-polling and other streamed resources keep working under compression,
at the price of a few bytes per write. ``request._encoder`` holds the encoder while it is
installed (Twisted's attribute name): code that bypasses ``request.write`` — zero-copy
``sendfile`` — must check it and fall back to ``write``.

The decision to compress is taken at the first byte of the body, when the status and the
headers are final: HEAD, 1xx/204/304, partial (206) responses, responses that already have a
``Content-Encoding``, event streams (``text/event-stream``), empty bodies and paths ending in
an already-compressed format's extension are sent as they are. A compressed response gets
``Content-Encoding: gzip`` and loses any ``Content-Length`` the application set (the length
changes).

Differences from Twisted: ``Accept-Encoding`` is parsed with its q-values (``gzip;q=0`` and
``*;q=0`` refuse gzip; ``*`` alone accepts it; Twisted looks for the word ``gzip`` only);
``Vary: Accept-Encoding`` is added to every response of a wrapped resource, compressed or
not, because its representation depends on that header (Twisted sends none, so a shared
cache may hand gzip to a client that cannot read it); ``Content-Encoding`` is set when the
body starts rather than when the encoder is chosen, which is what allows the exceptions
above; writes are flushed (Twisted buffers inside zlib until ``finish``);
:class:`GzipEncoderFactory` takes ``extensions``. As in Twisted, only the wrapped resource
itself is encoded: children it returns from ``getChildWithDefault`` are not wrapped.
"""

from __future__ import annotations

import inspect
import zlib
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, Final, Protocol

from zope.interface import implementer

from treadle.internet.defer import Deferred
from treadle.web._request import Request
from treadle.web._types import ResourceLike
from treadle.web.iweb import _IRequestEncoder, _IRequestEncoderFactory

__all__ = [
    "DEFAULT_UNCOMPRESSED_EXTENSIONS",
    "EncodingResourceWrapper",
    "GzipEncoderFactory",
    "RequestEncoder",
    "RequestEncoderFactory",
    "accepts_coding",
]

#: Extensions of formats that are compressed already: gzip would spend CPU for nothing (or
#: a few bytes more). Matched against the end of the request path, ignoring case.
DEFAULT_UNCOMPRESSED_EXTENSIONS: Final = frozenset(
    {
        ".7z", ".avif", ".br", ".bz2", ".gif", ".gz", ".jpeg", ".jpg", ".mp3", ".mp4",
        ".ogg", ".png", ".rar", ".tgz", ".webm", ".webp", ".woff", ".woff2", ".xz", ".zip",
        ".zst",
    }
)  # fmt: skip

# RFC 9110 §15.4.5 (304), §15.3.5 (204), §15.3.7 (206: Content-Range counts bytes of the
# representation as selected; re-encoding a part would make it describe other bytes).
_NO_CODING_STATUSES: Final = frozenset({204, 206, 304})


class RequestEncoder(Protocol):
    """What an encoder factory returns: Twisted's ``_IRequestEncoder``."""

    def encode(self, data: bytes) -> bytes:
        """Return the encoded form of the next body bytes (may be empty)."""
        ...

    def finish(self) -> bytes:
        """Return whatever the encoding still holds; called once, at the end of the body."""
        ...


class RequestEncoderFactory(Protocol):
    """An entry of the ``encoders`` of :class:`EncodingResourceWrapper`."""

    def encoderForRequest(self, request: Request) -> RequestEncoder | None:
        """Return an encoder for ``request``, or None when this coding does not apply."""
        ...


def _qvalue(params: Sequence[bytes]) -> float:
    """Return the ``q`` weight among ``params`` (1 when absent, 0 when malformed)."""
    for param in params:
        name, sep, value = param.partition(b"=")
        if sep and name.strip().lower() == b"q":
            try:
                q = float(value.strip())
            except ValueError:
                return 0.0  # unreadable weight: sending identity is always safe
            return q if 0.0 <= q <= 1.0 else 0.0
    return 1.0


def accepts_coding(header_values: Iterable[bytes], coding: bytes) -> bool:
    """Tell whether ``Accept-Encoding`` header values allow content coding ``coding``.

    RFC 9110 §12.5.3: a coding listed with ``q=0`` is refused; one not listed is accepted
    when ``*`` is listed with a non-zero weight; ``x-gzip`` is an alias of ``gzip``. Without
    any ``Accept-Encoding`` nothing is accepted here: identity is the safe answer.

    Args:
        header_values: Every ``Accept-Encoding`` field value of the request.
        coding: The lowercase coding name, e.g. ``b"gzip"``.

    Returns:
        True when ``coding`` may be used.
    """
    aliases = {coding, b"x-" + coding} if coding in (b"gzip", b"compress") else {coding}
    explicit: float | None = None
    star: float | None = None
    for value in header_values:
        for element in value.split(b","):
            name, *params = element.split(b";")
            name = name.strip().lower()
            if name in aliases:
                q = _qvalue(params)
                explicit = q if explicit is None else max(explicit, q)
            elif name == b"*":
                star = _qvalue(params)
    if explicit is not None:
        return explicit > 0.0
    return star is not None and star > 0.0


def _add_vary(request: Request) -> None:
    """Add ``Accept-Encoding`` to the response's ``Vary`` unless it is (or ``*`` is) there."""
    headers = request.responseHeaders
    for value in headers.getRawHeaders(b"vary", []):
        for token in value.split(b","):
            if token.strip().lower() in (b"accept-encoding", b"*"):
                return
    headers.addRawHeader(b"vary", b"Accept-Encoding")


@implementer(_IRequestEncoder)
class _GzipEncoder:
    """Compresses one response body; decides at its first use whether to compress at all."""

    def __init__(self, compressLevel: int, request: Request, extensions: frozenset[str]) -> None:
        self._level = compressLevel
        self._request = request
        self._extensions = extensions
        self._compressor: zlib._Compress | None = None
        self._decided = False

    def _decide(self, empty: bool) -> None:
        """Choose gzip or identity now that status and headers are final."""
        self._decided = True
        request = self._request
        _add_vary(request)
        if empty or not self._worth_compressing():
            return
        headers = request.responseHeaders
        headers.setRawHeaders(b"content-encoding", [b"gzip"])
        headers.removeHeader(b"content-length")
        # wbits 16 + MAX_WBITS: the gzip container (header and CRC trailer), not raw zlib.
        self._compressor = zlib.compressobj(self._level, zlib.DEFLATED, 16 + zlib.MAX_WBITS)

    def _worth_compressing(self) -> bool:
        request = self._request
        code = request.code
        if request.method == b"HEAD" or code < 200 or code in _NO_CODING_STATUSES:
            return False
        headers = request.responseHeaders
        if headers.hasHeader(b"content-encoding") or headers.hasHeader(b"content-range"):
            return False
        # An event stream (treadle.web.sse) goes out as written: proxies and browsers may
        # hold compressed bytes back, and its events are small anyway.
        content_type = headers.getRawHeaders(b"content-type")
        if content_type and content_type[0].lower().startswith(b"text/event-stream"):
            return False
        last = request.path.rsplit(b"/", 1)[-1]
        dot = last.rfind(b".")
        return dot < 0 or last[dot:].decode("latin-1").lower() not in self._extensions

    def encode(self, data: bytes) -> bytes:
        """Compress ``data`` and flush it so the client can decode it at once.

        The first call decides whether the response is compressed at all; when it is not,
        ``data`` is returned unchanged.
        """
        if not self._decided:
            self._decide(empty=False)
        compressor = self._compressor
        if compressor is None:
            return data
        return compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH)

    def encode_whole(self, body: bytes) -> bytes:
        """Return the whole body compressed in one piece (no intermediate flush)."""
        if not self._decided:
            self._decide(empty=not body)
        compressor, self._compressor = self._compressor, None
        if compressor is None:
            return body
        return compressor.compress(body) + compressor.flush()

    def finish(self) -> bytes:
        """Return the end of the gzip stream (empty when nothing was compressed)."""
        if not self._decided:
            # Nothing was written: an empty body goes out as it is, uncompressed.
            self._decide(empty=True)
        compressor, self._compressor = self._compressor, None
        return b"" if compressor is None else compressor.flush()


@implementer(_IRequestEncoderFactory)
class GzipEncoderFactory:
    """Offers gzip to requests whose ``Accept-Encoding`` allows it.

    Args:
        compressLevel: zlib level, 1 (fastest) to 9 (smallest); 9 as in Twisted.
        extensions: Path extensions (``".png"``) whose responses are never compressed
            because the format is compressed already; see
            :data:`DEFAULT_UNCOMPRESSED_EXTENSIONS`.
    """

    def __init__(
        self,
        compressLevel: int = 9,
        extensions: Iterable[str] = DEFAULT_UNCOMPRESSED_EXTENSIONS,
    ) -> None:
        self.compressLevel = compressLevel
        self.extensions = frozenset(e.lower() for e in extensions)

    def encoderForRequest(self, request: Request) -> _GzipEncoder | None:
        """Return an encoder for ``request`` if its ``Accept-Encoding`` allows gzip, else None.

        Whether the response is really compressed is decided when its body starts (see the
        module documentation).
        """
        accepted = request.requestHeaders.getRawHeaders(b"accept-encoding")
        if accepted is None or not accepts_coding(accepted, b"gzip"):
            return None
        return _GzipEncoder(self.compressLevel, request, self.extensions)


class _EncodingHook:
    """The per-request ``write``/``finish`` that pass the body through an encoder."""

    __slots__ = ("_encoder", "_finish", "_request", "_write")

    def __init__(self, request: Request, encoder: RequestEncoder) -> None:
        self._request = request
        self._encoder = encoder
        # What request.write/finish are before the hook (the class's bound methods): the
        # encoded bytes are handed to them.
        self._write: Callable[[bytes | str], None] = request.write
        self._finish: Callable[[], None] = request.finish

    def install(self) -> None:
        request = self._request
        vars(request).update(_encoder=self._encoder, write=self.write, finish=self.finish)
        # The request now refers to this hook and the hook to the request: break that cycle
        # when the response ends either way, so the request (and a compressor's few hundred
        # KiB) is freed at once rather than at the next garbage collection.
        request.notifyFinish().addBoth(self._ended)

    def _ended(self, result: object) -> None:
        self.uninstall()
        vars(self._request).pop("_encoder", None)

    def uninstall(self) -> None:
        attributes = vars(self._request)
        for name in ("write", "finish"):
            attributes.pop(name, None)

    def write(self, data: bytes | str) -> None:
        """Encode ``data`` and write the result (see :meth:`treadle.web.http.Request.write`)."""
        if self._request.finished:
            self._write(data)  # raises the usual RuntimeError
            return
        if isinstance(data, str):
            data = data.encode("utf-8")
        self._write(self._encoder.encode(data))

    def finish(self) -> None:
        """Write what the encoder still holds, then finish the request."""
        request = self._request
        if not request.finished:
            tail = self._encoder.finish()
            if tail:
                self._write(tail)
        self._finish()

    def result(self, body: Any) -> Any:
        """Route what a render produced through the encoder; return what the server gets."""
        if isinstance(body, bytes | str):
            if self._request.startedWriting:
                return body  # the server writes it with request.write: encoded there
            if isinstance(body, str):
                body = body.encode("utf-8")
            self.uninstall()
            whole = getattr(self._encoder, "encode_whole", None)
            if whole is not None:
                return whole(body)
            return self._encoder.encode(body) + self._encoder.finish()
        if isinstance(body, Deferred):
            return body.addCallback(self.result)
        if inspect.isawaitable(body):
            return self._result_later(body)
        return body

    async def _result_later(self, awaitable: Awaitable[Any]) -> Any:
        return self.result(await awaitable)


class EncodingResourceWrapper:
    """Wraps a resource so that its responses are content-coded (gzip) when clients accept it.

    Args:
        original: The resource to render.
        encoders: Encoder factories, tried in order; the first returning an encoder for a
            request wins (usually ``[GzipEncoderFactory()]``).

    Attributes:
        original: The wrapped resource; ``isLeaf``, ``getChildWithDefault`` and ``putChild``
            are passed through to it.
    """

    def __init__(self, original: ResourceLike, encoders: Iterable[RequestEncoderFactory]) -> None:
        self.original = original
        self._encoders = list(encoders)

    @property
    def isLeaf(self) -> bool:
        """The wrapped resource's ``isLeaf``."""
        return self.original.isLeaf

    @isLeaf.setter
    def isLeaf(self, value: bool) -> None:
        self.original.isLeaf = value

    def getChildWithDefault(self, path: bytes, request: Request) -> ResourceLike:
        """Return the wrapped resource's child (not wrapped, as in Twisted)."""
        return self.original.getChildWithDefault(path, request)

    def putChild(self, path: bytes, child: ResourceLike) -> None:
        """Add a child to the wrapped resource."""
        self.original.putChild(path, child)  # type: ignore[attr-defined]

    def render(self, request: Request) -> Any:
        """Render the wrapped resource with the first applicable encoder installed.

        Returns:
            What the wrapped resource returned, with a ``bytes``/``str`` body (at once or
            from an awaitable or Deferred) replaced by its encoded form.
        """
        if getattr(request, "_encoder", None) is not None:
            # An outer wrapper already encodes this response: never encode twice.
            return self.original.render(request)
        encoder = None
        for factory in self._encoders:
            encoder = factory.encoderForRequest(request)
            if encoder is not None:
                break
        if self._encoders:
            # Added before rendering, so that even a response the encoder never sees (an
            # error page, an uncompressed answer) tells caches it depends on the header.
            _add_vary(request)
        if encoder is None:
            return self.original.render(request)
        hook = _EncodingHook(request, encoder)
        hook.install()
        try:
            body = self.original.render(request)
        except BaseException:
            hook.uninstall()
            raise
        return hook.result(body)
