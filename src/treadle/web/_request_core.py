"""The wire-level request's core: arrival, ``write``/``finish`` and framing, compiled.

:class:`RequestCore` is the per-request path of :class:`treadle.web.http.Request` (the
public class, made in :mod:`treadle.web._request` from this core and the parts of plain
Python off that path): it takes what the channel parsed (``receive_message``), and sends
the response with the framing :func:`treadle.web._framing.response_framing` chooses, then
tells the channel (``request_done``). mypyc compiles this module (see
:mod:`treadle._compiled`).

A response ends in one of two ways the client can tell apart: complete (``finish()``: the
last chunk, or all of ``Content-Length``), or cut short (the connection closes without
them) when the response cannot be completed — a render that fails after it started writing.

Fast path: a response whose body is known when the headers are written goes out as a single
``transport.write`` (status line, headers and body joined); status lines are precomputed and
the ``Date`` header is formatted once a second.

Compiled, every request object is of a Python subclass of :class:`RequestCore` (at least the
public ``Request``), so its attributes and methods behave as Python's: a subclass overrides
any method, and an instance may carry attributes of its own (``vars(request)``), which the
core's calls honour. The core reads ``sendsServerAndDate`` and ``defaultContentType``, which
subclasses set as class attributes, from the public class.
"""

from __future__ import annotations

import io
import logging
import warnings
from typing import IO, Any, Final
from urllib.parse import urlsplit

from mypy_extensions import mypyc_attr

from treadle.internet._timers import SoonBatch
from treadle.internet.address import IPv4Address, IPv6Address, UNIXAddress
from treadle.internet.defer import Deferred, fail, succeed
from treadle.python.failure import Failure
from treadle.web._channel_core import (
    CORK_MAX,
    ChannelCore,
    answered,
    flush_corked,
    keeps_reading,
)
from treadle.web._framing import (
    _STATUS_LINES,
    CHUNKED,
    HEAD_ENDS,
    NO_BODY,
    SERVER_LINE,
    Framing,
    chunk,
    date_header,
    keeps_connection,
    response_framing,
    server_and_date,
    status_line,
)
from treadle.web._hand_channel import HandChannel
from treadle.web._parser import Message
from treadle.web._status import INTERNAL_SERVER_ERROR, NOT_FOUND
from treadle.web._trailers import LAST_CHUNK, received, trailer_section
from treadle.web.http_headers import Headers, canonical_name

__all__ = ["PreparedFields", "RequestCore", "prepared_answer"]

error_log = logging.getLogger("treadle.error")

CRLF: Final = b"\r\n"
#: What a response without headers of its own reads (never written to).
_NO_HEADERS: Final[dict[bytes, list[bytes]]] = {}


class PreparedFields:
    """Response header fields that many responses carry alike, encoded once as a block.

    A resource that answers request after request with the same fields (a static file:
    its ``ETag``, ``Last-Modified``, ``Content-Type``...) builds one of these per set of
    values, stores those fields in the response's header table as usual, and hands it to
    the request as ``_prepared_fields``. When the head is written, the block replaces the
    per-field encoding if, and only if, the table then holds exactly these fields, in this
    order, with these very value objects: anything changed since (a field added, removed,
    set again or appended to) makes the head be built field by field, as for any response.

    Args:
        names: Lowercased field names, in the order the resource stores them; never
            ``connection``, ``server`` or ``date`` (the head writer decides those itself).
        values: The one value of each field, in the same order.
    """

    __slots__ = ("block", "has_length", "has_type", "names", "values")

    def __init__(self, names: tuple[bytes, ...], values: tuple[bytes, ...]) -> None:
        if len(names) != len(values):
            raise ValueError("one value per name")
        for name in names:
            if name in (b"connection", b"server", b"date"):
                raise ValueError(f"{name!r} cannot be prepared")
        self.names = names
        self.values = values
        self.block = b"".join(
            canonical_name(name) + b": " + value + CRLF
            for name, value in zip(names, values, strict=True)
        )
        self.has_length = b"content-length" in names
        self.has_type = b"content-type" in names

    def holds_exactly(self, raw: dict[bytes, list[bytes]]) -> bool:
        """Whether header table ``raw`` holds just these fields, in order, each once."""
        names = self.names
        if len(raw) != len(names):
            return False
        values = self.values
        for i, (name, field) in enumerate(raw.items()):
            if name != names[i] or len(field) != 1 or field[0] is not values[i]:
                return False
        return True


def prepared_answer(
    request: RequestCore,
    fields: PreparedFields,
    unless: frozenset[bytes],
    body: bytes,
    length: bytes,
) -> bytes | None:
    """Set ``fields`` on a GET or HEAD's response; return what to render, ``body`` or ``b""``.

    Returns None, having done nothing, when the request carries any of the header fields
    named in ``unless`` (lowercased: validators, ``Range``), which call for another answer.
    Otherwise each field is stored in the response's header table as ``setHeader`` would
    (replacing any value, without its checks: prepared values were built by the caller);
    a HEAD also gets ``Content-Length: length`` and an empty body, and a GET whose table
    held nothing before is handed ``fields`` to write as one block (see
    :class:`PreparedFields`).
    """
    asked = request.requestHeaders
    for name in unless:
        if asked._has(name):
            return None
    raw = request.responseHeaders._raw
    method = request.method
    if not raw and method == b"GET":
        request._prepared_fields = fields
    values = fields.values
    for i, name in enumerate(fields.names):
        raw[name] = [values[i]]
    if method == b"HEAD":
        raw[b"content-length"] = [length]
        return b""
    return body


class _Rare:
    """The state of a request that few requests have, kept apart from the request itself.

    Eight fields that one request in many sets (a reason phrase of its own, a transport
    assigned by the program, ``setHost``, what a trusted proxy reported, the reason the
    connection was lost, ...) would cost each request 64 bytes; held here, they cost one
    pointer until set. The request reads them from ``_rare_view()`` and sets them on
    ``_rare_state()``; Twisted's public ``queued`` and ``code_message`` are properties.
    """

    __slots__ = (
        "assigned_transport",
        "code_message",
        "forced_host",
        "forwarded_client",
        "forwarded_secure",
        "lost_reason",
        "parse_forms",
        "queued",
    )

    def __init__(self) -> None:
        self.queued: object = 0
        self.code_message: bytes | None = None
        self.lost_reason: Exception | None = None
        # What a program assigned to ``transport`` (Twisted's is a plain attribute).
        self.assigned_transport: Any = None
        # What setHost forced: the address getHost reports (TLS: the request's _forced_secure).
        self.forced_host: IPv4Address | IPv6Address | None = None
        # What trusted proxies said (see use_forwarded): the client, and whether it used TLS.
        self.forwarded_client: IPv4Address | IPv6Address | None = None
        self.forwarded_secure: bool | None = None
        # Twisted's parsePOSTFormSubmission as given (None: the default, which is to parse).
        self.parse_forms: bool | None = None


#: What a request that set none of the rare state reads (see RequestCore._rare_view).
_NO_RARE: Final = _Rare()


@mypyc_attr(allow_interpreted_subclasses=True)
class RequestCore:
    """The per-request path of :class:`~treadle.web.http.Request` (see the module docstring).

    The public class documents the API; this holds its state (fields of the compiled class,
    ``__slots__`` in pure Python).
    """

    __slots__ = (
        # (Pure Python: the rarely set attributes below go to the instance dict. Compiled,
        # mypyc ignores __slots__, and every attribute is a field.)
        "__dict__",
        "_content",
        "_cookies",
        "_disconnected",
        "_framing",
        "_held",
        "_http1",
        "_http11",
        "_keep_alive",
        "_notifications",
        "_response_headers",
        "_wire",
        "channel",
        "clientproto",
        "code",
        "finished",
        "method",
        "path",
        "requestHeaders",
        "sentLength",
        "startedWriting",
        "uri",
    )

    # Rarely set: class-level defaults keep a request cheap to create in pure Python (set
    # values go to the instance dict); compiled, they are fields set when one is made.
    _args: dict[bytes, list[bytes]] | None = None
    _cookies_in: dict[bytes, bytes] | None = None
    #: The producer registered through :meth:`registerProducer` (None when none).
    producer: Any = None
    # Field lines encoded ahead of time for the header table this response may end up with
    # (see PreparedFields); used only if the table then holds exactly those fields.
    _prepared_fields: PreparedFields | None = None
    # What few requests set (see _Rare), made when the first of it is set.
    _rare: _Rare | None = None
    # The flags come last here and first in __init__: compiled, each is a byte, and kept
    # together they share one word where, scattered among pointers, each took a word.
    _forced_secure = False
    # Set once the request's responseTrailers were made or assigned (treadle.web._trailers):
    # all the per-request path reads of trailers.
    _trailing = False

    def __init__(
        self,
        channel: Any,
        queued: object = None,
        parsePOSTFormSubmission: bool | None = None,
    ) -> None:
        self._http11 = True
        self._keep_alive = True
        self.finished = False
        self.startedWriting = False
        self._disconnected = False
        # (Any: a channel of any kind, None once the connection is lost.)
        self.channel: Any = channel
        if parsePOSTFormSubmission is not None:
            self._rare_state().parse_forms = parsePOSTFormSubmission
        # What the request talks to: the channel itself (treadle's HTTP/1.1 channel, or a
        # class saying it serves as a wire, as an HTTP/2 stream does), or, for a channel of
        # the program's own making (driving a request by hand), an adapter to Twisted's
        # channel interface. The class is asked, not the object: a mock answers anything.
        self._wire: Any = (
            channel
            if isinstance(channel, ChannelCore) or getattr(type(channel), "is_request_wire", False)
            else HandChannel(channel)
        )
        # The same channel, typed, when it is treadle's HTTP/1.1 one: compiled code then
        # reads its fields and calls its functions directly.
        self._http1: ChannelCore | None = channel if isinstance(channel, ChannelCore) else None
        self.method = b"GET"
        self.uri = b"/"
        self.path = b"/"
        self.clientproto = b"HTTP/1.1"
        self.requestHeaders = Headers()
        # Made on first use: most responses set no header and no cookie of their own.
        self._response_headers: Headers | None = None
        self._content: IO[bytes] | None = None
        self._cookies: list[bytes] | None = None
        self.code = 200
        self.sentLength = 0
        # None until the head is sent: a resource that sets startedWriting itself writes
        # its own head, and its writes then go out as they are (Twisted's behaviour).
        self._framing: Framing | None = None
        self._notifications: list[Deferred[None]] | None = None
        self._held: list[bytes] | None = None

    # -- the rarely set state (held by _Rare) ----------------------------------------------

    def _rare_view(self) -> _Rare:
        """The rarely set state, to read: a shared empty one when none was set."""
        rare = self._rare
        return _NO_RARE if rare is None else rare

    def _rare_state(self) -> _Rare:
        """The rarely set state, to set: made on first use (never write to _rare_view's)."""
        rare = self._rare
        if rare is None:
            rare = self._rare = _Rare()
        return rare

    @property
    def queued(self) -> object:
        """Twisted's deprecated flag for a request waiting behind another: 0 unless set."""
        rare = self._rare
        return 0 if rare is None else rare.queued

    @queued.setter
    def queued(self, value: object) -> None:
        if value != 0 or self._rare is not None:
            self._rare_state().queued = value

    @property
    def code_message(self) -> bytes | None:
        """The reason phrase given to :meth:`setResponseCode` (None: the code's standard one)."""
        rare = self._rare
        return None if rare is None else rare.code_message

    @code_message.setter
    def code_message(self, value: bytes | None) -> None:
        if value is not None or self._rare is not None:
            self._rare_state().code_message = value

    # -- arrival ---------------------------------------------------------------------------

    def receive_message(self, message: Message) -> None:
        """Fill in what the channel parsed, then ``process()`` (the channel's entry point).

        An exception escaping ``process()`` is answered with a 500 page (or, once the
        response started, by ending it short) and logged.
        """
        method, uri, http11, headers, content, keep_alive, trailers = message
        self.method = method
        self.uri = uri
        self._http11 = http11
        if not http11:
            self.clientproto = b"HTTP/1.0"
        self.requestHeaders._adopt_fields(headers)
        self._content = content
        self._keep_alive = keep_alive
        if trailers is not None:
            received(self, trailers)
        if uri[:1] == b"/":
            q = uri.find(b"?")
            self.path = uri if q < 0 else uri[:q]
        else:
            self.path = _path_of_target(uri)
        try:
            self.process()
        except Exception:
            self._internal_error()

    def process(self) -> None:
        """Produce the response; :class:`treadle.web.server.Request` renders a resource here."""
        self.setResponseCode(NOT_FOUND)
        self.finish()

    @property
    def content(self) -> IO[bytes]:
        """The request body as a binary file positioned at its start (empty if none)."""
        content = self._content
        if content is None:
            content = self._content = io.BytesIO()
        return content

    @content.setter
    def content(self, value: IO[bytes]) -> None:
        self._content = value

    @property
    def responseHeaders(self) -> Headers:
        """Headers to send; change them before the first ``write``."""
        headers = self._response_headers
        if headers is None:
            headers = self._response_headers = Headers()
        return headers

    @responseHeaders.setter
    def responseHeaders(self, value: Headers) -> None:
        self._response_headers = value

    # -- reading the request ----------------------------------------------------------------

    def getHeader(self, key: str | bytes) -> Any:
        """Return the last value of request header ``key`` (``str`` for a ``str`` key), or None."""
        values = self.requestHeaders.getRawHeaders(key)
        return values[-1] if values else None

    def getClientAddress(self) -> IPv4Address | IPv6Address | UNIXAddress:
        """Return the address of the client: the peer of the connection, or, behind a
        trusted proxy (``--proxy-headers``), the client the proxy reported."""
        forwarded = self._rare_view().forwarded_client
        return forwarded if forwarded is not None else self._wire.peer_address()

    # -- shaping the response ---------------------------------------------------------------

    def setResponseCode(self, code: int, message: bytes | str | None = None) -> None:
        """Set the status code (and optionally the reason phrase) of the response.

        Raises:
            TypeError: ``code`` is not an int.
            ValueError: ``message`` contains CR or LF (it would split the response).
        """
        if not isinstance(code, int) or isinstance(code, bool):
            raise TypeError(f"HTTP response code must be int, not {type(code).__name__}")
        if isinstance(message, str):
            message = message.encode("utf-8")
        if message is not None and (b"\r" in message or b"\n" in message):
            raise ValueError(f"status message contains a line break: {message!r}")
        self.code = code
        self.code_message = message

    def setHeader(self, name: str | bytes, value: str | bytes) -> None:
        """Set response header ``name`` to the single value ``value``.

        Raises:
            ValueError: ``name`` is not a token, or ``value`` contains CR, LF or NUL.
        """
        self.responseHeaders.setRawHeaders(name, [value])

    # -- writing ----------------------------------------------------------------------------

    def _transport(self) -> Any:
        """The asyncio transport the response goes to (None once the connection is lost).

        Responses held until the loop's next turn are written first: what the caller writes
        comes after them.
        """
        http1 = self._http1
        if http1 is None:
            return self._wire.asyncio_transport
        if http1._corked is not None:
            flush_corked(http1)
        return http1.asyncio_transport

    def write(self, data: bytes | str) -> None:
        """Append ``data`` to the response body (``str`` is encoded as UTF-8).

        The first call sends the status line and headers. Ignored once the connection is lost.

        Raises:
            RuntimeError: ``finish()`` was already called.
        """
        if self.finished:
            raise RuntimeError("Request.write called on a request after Request.finish was called.")
        if self._disconnected:
            return
        if type(data) is not bytes:
            data = _as_bytes(data)
        held = self._held
        if held is not None:
            held.append(data)
            return
        if not self.startedWriting:
            # Hold the first bytes until the loop turns: a write followed by finish() in
            # the same callback (the common case) then goes out as one response with a
            # Content-Length, in one system call, instead of chunked in two.
            self._held = [data]
            self.startedWriting = True
            soon = self._wire.call_soon
            if isinstance(soon, SoonBatch):
                soon.add(self)  # no Handle, Context and bound method per response
            else:
                soon(self.flush_held)
            return
        if not data:
            return
        framing = self._framing
        transport = self._transport()
        assert transport is not None
        if framing is CHUNKED:
            transport.write(
                chunk(data) if len(data) < 65536 else b"%x\r\n" % len(data) + data + CRLF
            )
        elif framing is not NO_BODY:
            transport.write(data)
        else:
            return
        self.sentLength += len(data)

    def finish(self) -> None:
        """End the response; keep-alive connections then answer their next request.

        Raises:
            RuntimeError: The connection was lost first (use ``notifyFinish`` to learn of
                that instead of calling ``finish``).
        """
        if self._disconnected:
            raise RuntimeError(
                "Request.finish called on a request after its connection was lost; "
                "use Request.notifyFinish to keep track of this."
            )
        if self.finished:
            warnings.warn("request.finish called twice", RuntimeWarning, stacklevel=2)
            return
        held = self._held
        if held is not None:
            self._held = None
            soon = self._wire.call_soon
            if isinstance(soon, SoonBatch):
                # Leave the batch at once (it is almost always the last one added): a burst
                # of responses finishing together would otherwise keep each alive till its end.
                soon.discard(self)
            self.startedWriting = False
            self._write_whole(b"".join(held))
            return
        if not self.startedWriting:
            _start_response(self, b"", 0)
        elif self._framing is CHUNKED:
            transport = self._transport()
            assert transport is not None
            transport.write(trailer_section(self) if self._trailing else LAST_CHUNK)
        elif self._framing is None:
            # The resource set startedWriting and wrote its own head: we cannot tell
            # where its body ends, so neither can the client unless the connection closes.
            self._keep_alive = False
        _complete(self)

    def flush_held(self) -> None:
        """Send what :meth:`write` held back, as the start of a streamed response.

        The loop calls it once the callback that wrote is over; the channel calls it before
        closing, and reading :attr:`transport` or registering a producer calls it too, so
        bytes written earlier always go out first.
        """
        http1 = self._http1
        if http1 is not None and http1._corked is not None:
            flush_corked(http1)  # earlier responses held for the turn go first
        held = self._held
        if held is None:
            return
        self._held = None
        if self._disconnected or self._transport() is None:
            return
        self.startedWriting = False
        _start_response(self, b"".join(held), None)

    def _run_soon(self) -> None:
        """What a :class:`~treadle.internet._timers.SoonBatch` runs: :meth:`flush_held`."""
        self.flush_held()

    def _write_whole(self, body: bytes) -> None:
        """Send the complete response with ``body`` in one write, then finish (fast path)."""
        _start_response(self, body, len(body))
        _complete(self)

    def _start_response(self, body: bytes, length: int | None) -> None:
        """Send the head and the first body bytes; ``length`` set means the body is whole."""
        _start_response(self, body, length)

    def _complete(self) -> None:
        """Bookkeeping once the last byte is handed to the transport."""
        _complete(self)

    def _release_body(self) -> None:
        # A body spooled to a temporary file holds a descriptor: give it back now rather
        # than whenever the request object is collected.
        content = self._content
        if content is not None and not isinstance(content, io.BytesIO):
            content.close()

    # -- lifecycle notifications ------------------------------------------------------------

    def notifyFinish(self) -> Deferred[None]:
        """Return a Deferred that fires when this request's story ends.

        It fires with None once ``finish()`` handed the last byte to the transport (or, for
        a small whole response on HTTP/1.1, to what the channel writes at the loop's next
        turn), or errbacks with
        :class:`~treadle.internet.error.ConnectionDone` /
        :class:`~treadle.internet.error.ConnectionLost` if the client went away first (a
        :class:`~treadle.internet.error.ConnectionAborted` when the server cut it off).
        Called after either happened, it returns an already-fired Deferred (Twisted's never
        fires).
        """
        if self._disconnected:
            reason = self._rare_view().lost_reason
            assert reason is not None
            return fail(reason)
        if self.finished:
            return succeed(None)
        d: Deferred[None] = Deferred()
        if self._notifications is None:
            self._notifications = [d]
        else:
            self._notifications.append(d)
        return d

    def connectionLost(self, reason: Exception | Failure) -> None:
        """Called when the connection closed before the response was finished.

        Args:
            reason: Why, as an exception or a :class:`~treadle.python.failure.Failure`.
        """
        if self._disconnected or self.finished:
            return
        if isinstance(reason, Failure):
            return self._lost(reason.value)  # type: ignore[arg-type]  # wraps an Exception
        self._lost(reason)

    def _lost(self, reason: Exception) -> None:
        self._disconnected = True
        self._held = None
        # Without its traceback: frames of the failed write would keep this request alive.
        self._rare_state().lost_reason = reason.with_traceback(None)
        # As Twisted: the body is closed and the channel let go (the request talks to its
        # wire, never to ``channel``, so nothing of treadle's needs it any more).
        content = self._content
        if content is not None:
            content.close()
        self.channel = None
        if self.producer is not None:
            self.producer = None  # it refers back to the request: no cycle left behind
        notifications = self._notifications
        if notifications is not None:
            self._notifications = None
            for d in notifications:
                d.errback(Failure(reason))

    # -- flow control -----------------------------------------------------------------------

    def registerProducer(self, producer: Any, streaming: bool) -> None:
        """Attach a producer feeding this response, paused and resumed by the transport.

        Args:
            producer: Has ``pauseProducing``/``resumeProducing``/``stopProducing``
                (push, ``streaming=True``) or ``resumeProducing``/``stopProducing``
                (pull, ``streaming=False``: called whenever more data is wanted).

        Raises:
            ValueError: This request has a producer already (as Twisted's).
            RuntimeError: The connection has a producer already.
        """
        if self.producer is not None:
            raise ValueError(
                f"registering producer {producer!r} before the previous one "
                f"({self.producer!r}) was unregistered"
            )
        if self._disconnected or self.finished:
            producer.stopProducing()
            return
        if self._held is not None:
            self.flush_held()
        self.producer = producer
        self._wire.registerProducer(producer, streaming)

    def unregisterProducer(self) -> None:
        """Detach the producer (no-op when none)."""
        self.producer = None
        if not self.finished and not self._disconnected:
            self._wire.unregisterProducer()

    # -- misc -------------------------------------------------------------------------------

    def loseConnection(self) -> None:
        """Close the connection after sending what is already written.

        A response not finished by then ends short, so the client can tell it is incomplete.
        """
        self._wire.loseConnection()

    def _internal_error(self) -> None:
        """Something escaped ``process()``: answer 500, or end a started response short."""
        error_log.exception("unhandled error answering %r", self)
        if self.finished or self._disconnected:
            return
        if self.startedWriting:
            self.loseConnection()
            return
        self._keep_alive = False
        self.code = INTERNAL_SERVER_ERROR
        self.code_message = None
        self.responseHeaders = Headers()
        self._cookies = None
        self._write_whole(b"<html><body><h1>Internal Server Error</h1></body></html>")

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} at 0x{id(self):x} method={self.method.decode()} "
            f"uri={self.uri.decode('latin-1')} clientproto={self.clientproto.decode()}>"
        )


# -- the response path, as functions (compiled code calls them directly) -------------------


def _start_response(request: RequestCore, body: bytes, length: int | None) -> None:
    """Send the head and the first body bytes; ``length`` set means the body is whole."""
    request.startedWriting = True
    headers = request._response_headers
    raw = _NO_HEADERS if headers is None else headers._raw
    # (Most responses set no header of their own: then no field is looked up at all.)
    fields = bool(raw)
    # Fields prepared as one block (see PreparedFields): when the table holds exactly those,
    # what the checks below would look up is known from the block, and no line is built.
    block: bytes | None = None
    has_type = False
    prepared = request._prepared_fields
    if fields and prepared is not None and prepared.holds_exactly(raw):
        block = prepared.block
        explicit_length = prepared.has_length
        has_type = prepared.has_type
    else:
        explicit_length = fields and b"content-length" in raw
        has_type = fields and b"content-type" in raw
    code = request.code
    known = length is not None or explicit_length
    if known and request._trailing and not explicit_length and _wants_trailers(request):
        known = False  # only a chunked body carries trailers (see treadle.web._trailers)
    framing = response_framing(request._http11, request.method, code, known)
    request._framing = framing
    http1 = request._http1
    persistent = keeps_reading(http1) if http1 is not None else request._wire.persistent
    keeps = request._keep_alive = keeps_connection(
        request._keep_alive and persistent,
        framing,
        raw.get(b"connection") if fields and block is None else None,
    )
    message = request.code_message
    line = _STATUS_LINES.get(code) if message is None else None
    lines = [line or status_line(code, message)]
    public: Any = request  # (class attributes of the public class and its subclasses)
    if public.sendsServerAndDate:
        if not fields or block is not None or (b"server" not in raw and b"date" not in raw):
            lines.append(server_and_date())
        else:
            if b"server" not in raw:
                lines.append(SERVER_LINE)
            if b"date" not in raw:
                lines.append(date_header())
    if not has_type:
        default_type = public.defaultContentType
        # Twisted's rule: every response gets the default type but a 204, a 304 and one
        # whose Content-Length field says 0 (a HEAD response too, though it has no body).
        if (
            default_type is not None
            and (framing is not NO_BODY or (code >= 200 and code != 204 and code != 304))
            and not (explicit_length and raw[b"content-length"][0].strip() == b"0")
        ):
            lines.append(_HEAD_LINES.content_type(default_type))
    if block is not None:
        lines.append(block)
    elif fields:
        for name, values in raw.items():
            if name == b"connection":
                continue  # ours says what the connection does (keeps_connection)
            # "Name: " made once per name, and each line left in pieces for the join
            # (where three concatenations would make three bytes objects per line).
            prefix = _HEAD_LINES.field_prefix(name)
            for value in values:
                lines.append(prefix)
                lines.append(value)
                lines.append(CRLF)
    cookies = request._cookies
    if cookies:
        for cookie in cookies:
            lines.append(b"Set-Cookie: " + cookie + CRLF)
    if not explicit_length:
        if framing is CHUNKED:
            lines.append(b"Transfer-Encoding: chunked\r\n")
        # RFC 9110 §8.6: never in a 1xx or 204; in a 304 only the real size would do.
        elif length is not None and code >= 200 and code != 204 and (length or code != 304):
            lines.append(_HEAD_LINES.content_length(length))
    lines.append(HEAD_ENDS[keeps][request._http11])
    if body and framing is not NO_BODY:
        request.sentLength = len(body)
        lines.append(chunk(body) if framing is CHUNKED else body)
    if length is not None and framing is CHUNKED:
        # A whole body chunked for its trailers: it ends here, trailers included.
        lines.append(trailer_section(request))
    data = b"".join(lines)
    if http1 is not None:
        # A small whole response waits for the loop's next turn, to leave with the others
        # this turn finishes (see treadle.web._channel_core).
        corked = http1._corked
        if length is not None and len(data) <= CORK_MAX:
            soon = http1.call_soon
            if isinstance(soon, SoonBatch) and soon.on_loop:
                if corked is None:
                    http1._corked = [data]
                    soon.add_bounded(http1)
                else:
                    corked.append(data)
                return
        if corked is not None:
            corked.append(data)
            flush_corked(http1)
            return
    transport: Any = (
        http1.asyncio_transport if http1 is not None else request._wire.asyncio_transport
    )
    transport.write(data)


class _HeadLines:
    """Field lines of response heads that repeat from one response to the next, made once.

    Bounded: a length or a type a resource makes up per request is made anew each time
    once the table is full, rather than kept.
    """

    __slots__ = ("_lengths", "_prefixes", "_types")

    def __init__(self) -> None:
        self._types: dict[bytes, bytes] = {}
        self._lengths: dict[int, bytes] = {}
        self._prefixes: dict[bytes, bytes] = {}

    def field_prefix(self, name: bytes) -> bytes:
        """``Name: `` for the lowercase field name ``name``."""
        prefix = self._prefixes.get(name)
        if prefix is None:
            prefix = canonical_name(name) + b": "
            if len(self._prefixes) < _HEAD_LINES_KEPT:
                self._prefixes[name] = prefix
        return prefix

    def content_type(self, value: bytes) -> bytes:
        line = self._types.get(value)
        if line is None:
            line = b"Content-Type: " + value + CRLF
            if len(self._types) < _HEAD_LINES_KEPT:
                self._types[value] = line
        return line

    def content_length(self, length: int) -> bytes:
        line = self._lengths.get(length)
        if line is None:
            line = b"Content-Length: %d\r\n" % length
            if len(self._lengths) < _HEAD_LINES_KEPT:
                self._lengths[length] = line
        return line


#: Lines kept per kind in _HeadLines (some 60 KiB at most for the lengths).
_HEAD_LINES_KEPT: Final = 1024
_HEAD_LINES: Final = _HeadLines()


class _QuietLog:
    """What tells, without calling it, that a factory's ``log`` would write nothing.

    Calling the stock ``HTTPFactory.log`` (Python) to learn that the access log is off cost
    about 1,500 instructions per request. :mod:`treadle.web.http`, above this module,
    registers that method and its logger (see :func:`register_quiet_log`); a factory whose
    class or instance has a ``log`` of its own, or a log file, is always called.
    """

    stock: Any = None  # HTTPFactory.log
    # The logger's own record of the levels it was asked about (``isEnabledFor`` fills it,
    # and logging clears it whenever levels change): False at INFO means the log is off.
    levels: dict[int, bool] | None = None
    cls: object = None  # the factory class met last...
    plain = False  # ...and whether it keeps the stock log


_QUIET: Final = _QuietLog()


def register_quiet_log(stock: Any, logger: logging.Logger) -> None:
    """Name the stock ``HTTPFactory.log`` and the logger it writes to (see :class:`_QuietLog`)."""
    _QUIET.stock = stock
    levels = getattr(logger, "_cache", None)
    _QUIET.levels = levels if isinstance(levels, dict) else None
    _QUIET.cls = None


def _logs_nothing(factory: Any) -> bool:
    """Whether ``factory.log(request)`` would write nothing, known without calling it: the
    stock method, no log file, and the logger known to be off at INFO. (Unknown: the log is
    called, and asking the logger records the answer for the next request.)"""
    quiet = _QUIET
    cls = type(factory)
    if cls is not quiet.cls:
        quiet.cls = cls
        quiet.plain = quiet.stock is not None and getattr(cls, "log", None) is quiet.stock
    levels = quiet.levels
    if not quiet.plain or levels is None or levels.get(logging.INFO) is not False:
        return False
    own = getattr(factory, "__dict__", None)
    return own is not None and "log" not in own and own.get("_logFile") is None


def _complete(request: RequestCore) -> None:
    """Bookkeeping once the last byte is handed to the transport."""
    request.finished = True
    if request._content is not None:
        request._release_body()
    notifications = request._notifications
    if notifications is not None:
        request._notifications = None
        for d in notifications:
            d.callback(None)
    http1 = request._http1
    if http1 is not None:
        factory = http1.factory
        if not _logs_nothing(factory):
            factory.log(request)
        answered(http1, request, request._keep_alive)
    else:
        wire = request._wire
        wire.factory.log(request)
        wire.request_done(request, request._keep_alive)


def _wants_trailers(request: RequestCore) -> bool:
    """Whether ``request`` (an HTTP/1.1 one) has response trailers to send. They are held by
    the Python class (:class:`~treadle.web._request_helpers.RequestHelpers`), not a field of
    the compiled one, so that a request without them is no larger."""
    trailers: Any = getattr(request, "_response_trailers", None)
    return request._http11 and trailers is not None and bool(trailers._raw)


def _as_bytes(data: object) -> bytes:
    if isinstance(data, str):
        return data.encode("utf-8")
    if isinstance(data, bytearray | memoryview):
        return bytes(data)
    raise TypeError(f"Data must be bytes or str, not {type(data).__name__}")


def _path_of_target(target: bytes) -> bytes:
    """Path of an absolute-form (``http://h/p?q``) or asterisk-form target (RFC 9112 §3.2)."""
    if target == b"*":
        return target
    parts = urlsplit(target)
    return parts.path or b"/"
