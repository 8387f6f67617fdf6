"""The request parser: httptools (llhttp) and the record of the message being parsed.

A :class:`Parser` holds an httptools parser and everything about the request arriving
through it: method, target, version, headers, the body so far, and the counts the limits
are checked against. Its callbacks record what llhttp reports and enforce the limits that
can be checked as the head and body arrive, raising :class:`Refused` to stop parsing with a
status code. The channel hears of a message only at the four points it acts on, through
the narrow :class:`MessageSink` interface: a message began, its head is complete, body
data arrived, the message is complete. No user code runs inside a callback: the channel
acts once ``feed_data`` returns.

Hostile input. llhttp (httptools 0.9, strict mode) refuses by itself, with 400: bare CR or
LF anywhere in the head or chunk framing; NUL and other control bytes in field names,
values and the target; obsolete line folding and whitespace before a colon; a request line
with a method outside its table, a lowercase method, a missing or malformed version, or
HTTP/1.2 and 3.0; Content-Length with signs, spaces inside, lists, duplicates (even equal
ones) or values of 2**64 and more; Content-Length next to Transfer-Encoding; a chunked
coding that is not the last one (also split over two field lines); chunk sizes with
``0x``, signs, spaces or values of 2**64 and more; malformed chunk extensions; data after
``Connection: close``. It passes through, and the parser checks (see
:meth:`Parser.on_headers_complete`):

- HTTP/0.9 and HTTP/2.0 versions, and the HTTP/2 preface ``PRI * HTTP/2.0``: 505;
- more than one Host, or an invalid Host value: 400 (RFC 9112 §3.2; an HTTP/1.1 request
  without Host is served, as Twisted serves it);
- an absolute-form target that is not http(s) with a host: 400 (``*`` passes with any
  method: the server answers it, 405 outside OPTIONS, as Twisted);
  an acceptable absolute-form target's authority replaces Host (RFC 9112 §3.2.2);
- Transfer-Encoding in an HTTP/1.0 request: 400 (RFC 9112 §6.1); codings other than a
  lone ``chunked`` (``gzip, chunked``, ``identity``): 501;
- an Upgrade or CONNECT request with a body (httptools makes llhttp skip it): 501;
- trailing whitespace in field values (llhttp keeps it): removed, as RFC 9112 §5 says;
- trailer fields (httptools reports them as headers): counted against the trailer limit
  and kept apart from the headers (the request's ``requestTrailers``, see
  :mod:`treadle.web._trailers`), never merged into them.

Not checked (llhttp accepts, treadle answers them as HTTP/1.x): several spaces between the
parts of the request line (RFC 9112 §3 allows that leniency), ``RTSP/1.0`` and ``ICE/1.0``
as the protocol name (read as HTTP/1.0), ``#`` in a target, and obs-text in values.

Limits. llhttp enforces no size at all, and httptools buffers a field line until it is
complete. The callbacks count the request line (414), each field line, the head and the
number of fields (431), the body (413) and the trailer section (431) exactly. What no
callback reports — whitespace around field values, chunk-size lines, chunk extensions,
the framing of trailers — is bounded by :meth:`Parser.count_read`, which the channel calls
for every piece of input that falls wholly inside one message's head or body; the channel
feeds input in pieces of at most :data:`FEED_SLICE` bytes, so these limits hold to within
two pieces (the one a message begins in and the one it ends in) however the client splits
its bytes, whether the resource reads the body or not.
"""

from __future__ import annotations

import io
import tempfile
from typing import IO, Final, Protocol

import httptools

from treadle.web._framing import (
    absolute_form_authority,
    chunk_framing_budget,
    target_error,
    transfer_coding_error,
    valid_host,
)
from treadle.web.http_headers import _table_of, _values_in

__all__ = [
    "FEED_SLICE",
    "MAX_SPARE_PARSERS",
    "SPARE_PARSERS",
    "SPOOL_SIZE",
    "Limits",
    "Message",
    "MessageSink",
    "Parser",
    "Refused",
]

#: Bodies larger than this are spooled to a temporary file instead of memory.
SPOOL_SIZE: Final = 1024 * 1024
#: Input is handed to llhttp in pieces of at most this many bytes, so that what the
#: callbacks cannot count (see Parser.count_read) is bounded to within two pieces: 8 KiB
#: beyond the chunk-extension budget at worst, where that budget is itself 4 KiB. The usual
#: request is a single piece; a large body costs one more call per 4 KiB.
FEED_SLICE: Final = 4 * 1024
#: The fewest bytes a field line counts (``x: `` and CRLF): a head of N bytes holds at most
#: N / _MIN_FIELD_SIZE fields.
_MIN_FIELD_SIZE: Final = 5
#: Fields are counted whenever a head passes this many bytes (and once at its end).
_COUNT_EVERY: Final = 2048
#: The first byte of an origin-form target (``/path``), the usual form.
_SLASH: Final = ord("/")
#: The target of a request for the site's root.
_ROOT_TARGET: Final = b"/"

#: A complete request as the channel queues it: ``(method, target, http11, fields, body,
#: keep_alive, trailers)`` (``fields``: the header fields, flat: name, value, name, value, ...
#: with names lowercased, as :meth:`~treadle.web.http_headers.Headers._adopt_fields` takes
#: them; ``trailers``: the trailer fields of a chunked body, None when there are none). A
#: plain tuple: one is made per request, and a tuple is the cheapest object.
Message = tuple[
    bytes,
    bytes,
    bool,
    list[bytes],
    IO[bytes] | None,
    bool,
    dict[bytes, list[bytes]] | None,
]


class Refused(Exception):
    """Raised inside a parser callback to stop parsing with a status code."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code


class Limits:
    """The size limits of one connection, in the units :mod:`treadle.web._framing` defines.

    Args:
        request_line: Request line (414 beyond).
        field_line: One field line (431 beyond).
        head: The whole head (431 beyond).
        fields: Field lines in a head (431 beyond).
        body: A request body (413 beyond).
        chunk_extensions: Chunk extensions of one request (400 beyond).
        trailers: The trailer section of a chunked request (431 beyond).
    """

    __slots__ = (
        "body",
        "chunk_extensions",
        "count_check",
        "field_line",
        "fields",
        "head",
        "request_line",
        "size_check",
        "trailers",
    )

    def __init__(
        self,
        request_line: int,
        field_line: int,
        head: int,
        fields: int,
        body: int,
        chunk_extensions: int,
        trailers: int,
    ) -> None:
        self.request_line = request_line
        self.field_line = field_line
        self.head = head
        self.fields = fields
        self.body = body
        self.chunk_extensions = chunk_extensions
        self.trailers = trailers
        # One comparison per field line guards every head limit: a field line is shorter
        # than the head holding it, and fields are counted whenever the head passes
        # _COUNT_EVERY bytes (and once at its end, past count_check).
        self.size_check = min(field_line, head, _COUNT_EVERY)
        self.count_check = _MIN_FIELD_SIZE * fields


class MessageSink(Protocol):
    """What a :class:`Parser` tells the channel it is lent to, and nothing more."""

    def message_begun(self) -> None:
        """The first byte of a request head arrived."""
        ...

    def head_received(self, invite: bool) -> None:
        """The head is complete and acceptable; ``invite``: a ``100 Continue`` is wanted."""
        ...

    def body_received(self) -> None:
        """Body data arrived."""
        ...

    def message_received(self, message: Message) -> None:
        """The request is complete."""
        ...


class Parser:
    """An httptools parser and the request it is parsing, lent to one channel at a time.

    httptools binds its callbacks when a parser is made. Bound to this object rather than
    to the channel, a parser can move between connections: a channel holds one only while
    a request is arriving and gives it back to ``SPARE_PARSERS`` at the end of a read that
    completed its requests, so connections that wait (for a response or for the next
    request) hold none (about 1 KiB each: the parser, llhttp's state and settings, eight
    bound callbacks, and the fields below).

    Attributes:
        sink: The channel it is lent to (None while spare): the channel takes a spare
            parser from ``SPARE_PARSERS`` when a request begins to arrive, sets ``sink``
            and ``limits``, and puts it back, ``sink`` cleared, once its requests are in.
        limits: That channel's limits.
    """

    __slots__ = (
        "body",
        "body_size",
        "chunks",
        "fields",
        "head_size",
        "host_seen",
        "limits",
        "llhttp",
        "method",
        "sink",
        "target",
        "trailer_owner",
        "trailers",
        "version",
        "wire",
    )

    def __init__(self) -> None:
        self.sink: MessageSink | None = None
        self.limits: Limits = _NO_LIMITS
        self.llhttp = httptools.HttpRequestParser(self)
        self.method = b"GET"
        self.target = b""
        self.version = "1.1"
        # The field lines read so far, flat: name, value, ... (names lowercased).
        self.fields: list[bytes] = []
        # The header fields of a chunked request, while its chunks send trailer fields to
        # ``trailers`` (made for each chunked request: never merged, RFC 9110 §6.5.1).
        self.trailer_owner: list[bytes] | None = None
        self.trailers: list[bytes] | None = None
        self.head_size = 0
        # Bytes of the current message that no callback counted (see count_read).
        self.wire = 0
        self.chunks = 0
        self.body: IO[bytes] | None = None
        self.body_size = 0
        # The last Host value found valid: most requests repeat it, and it is then not
        # checked again. (Valid is valid on any connection: it survives lending.)
        self.host_seen: bytes | None = None

    def discard(self) -> None:
        """Drop a parser stopped inside a message (or after a refusal): never reused.

        Unbound from its channel and from llhttp, it and its callbacks go by reference
        counting instead of waiting for the cyclic garbage collector.
        """
        self.sink = None
        self.llhttp = None  # type: ignore[assignment]
        self.close_body()

    def close_body(self) -> None:
        """Close a body that was being received (a spooled one holds a file descriptor)."""
        body, self.body = self.body, None
        if body is not None:
            body.close()

    def error_status(self) -> int:
        """The status for a parse error llhttp raised: 505 for the HTTP/2 preface, else 400."""
        # "PRI * HTTP/2.0" on this HTTP/1 port: llhttp stops on it (RFC 9113 §3.4).
        return 505 if self.llhttp.get_method() == b"PRI" else 400

    def count_read(self, framing: int, head: bool) -> None:
        """Count input that fell wholly inside one message and that no callback counted.

        httptools hands over a field line only once it is complete (buffering it until
        then), and llhttp parses whitespace, chunk-size lines, extensions and trailers
        without reporting their length. So the exact counts of the callbacks are backed by
        this one over whole pieces of input: a head may not grow past the head limit, and
        the framing of a chunked body (every byte that is not data) past
        :func:`~treadle.web._framing.chunk_framing_budget`. Pieces in which a message begins
        or ends are not counted, as httptools reports no positions; the channel keeps
        pieces to :data:`FEED_SLICE` bytes, so the limits hold to within two pieces.

        Args:
            framing: Bytes of the piece that were not body data.
            head: The piece fell inside the head (else inside the body).

        Raises:
            Refused: A limit was passed.
        """
        wire = self.wire = self.wire + framing
        limits = self.limits
        if head:
            if wire > limits.head:
                raise Refused(431, "request header block too large")
        elif self.trailer_owner is not None and wire > chunk_framing_budget(
            self.chunks, limits.chunk_extensions, limits.trailers
        ):
            raise Refused(400, "chunk framing too large")

    # -- httptools callbacks ----------------------------------------------------------------

    def on_message_begin(self) -> None:
        self.target = b""
        self.fields = []
        self.trailer_owner = None
        self.wire = 0
        self.body_size = 0
        self._begun()

    def on_url(self, url: bytes) -> None:
        # Called once per read the target spans; the method is already parsed.
        url = self.target + url
        # The site's root, the most asked-for target, as one object: a request waiting for
        # its response then keeps no bytes of its own for it (nor for its path).
        self.target = url = _ROOT_TARGET if url == _ROOT_TARGET else url
        method = self.llhttp.get_method()
        # httptools makes new bytes per call: the usual methods are kept as one object each.
        method = self.method = _METHODS.get(method, method)
        line = len(method) + len(url) + 10  # _framing.request_line_size
        self.head_size = line + 2
        if line > self.limits.request_line:
            raise Refused(414, "request line too long")

    def on_header(self, name: bytes, value: bytes) -> None:
        # llhttp drops the whitespace before a value but keeps what follows it; neither
        # belongs to the value (RFC 9112 §5). (llhttp refuses every other control byte, so
        # rstrip() removes only SP and HTAB; it returns the value itself when none trail.)
        value = value.rstrip()
        line = len(name) + len(value) + 2  # _framing.field_line_size
        size = self.head_size = self.head_size + line + 2
        if size > self.limits.size_check:
            self._check_head(line, size)
        key = _FIELD_NAMES.get(name)
        if key is None:
            key = name.lower()
        fields = self.fields
        fields.append(key)
        fields.append(value)

    def on_headers_complete(self) -> None:
        fields = self.fields
        llhttp = self.llhttp
        # One pass over the fields for the few that decide how the request is read.
        connection = False
        host = -1  # where the (last) Host value is
        hosts = 0
        coded = False
        length = -1
        expect = -1
        expects = 0
        for i in range(0, len(fields), 2):
            role = _ROLES.get(fields[i], 0)
            if not role:
                continue
            if role == _HOST:
                host = i + 1
                hosts += 1
            elif role == _CONNECTION:
                connection = True
            elif role == _CONTENT_LENGTH:
                length = i + 1  # llhttp refuses a second one
            elif role == _TRANSFER_ENCODING:
                coded = True
            elif role == _EXPECT:
                expect = i + 1
                expects += 1
        if not connection and llhttp.should_keep_alive():
            # Of the versions llhttp passes (0.9, 1.0, 1.1, 2.0), only HTTP/1.1 keeps the
            # connection without a Connection field (RFC 9112 §9.3, llhttp's own rule): the
            # usual request is known to be 1.1 without asking httptools, which formats the
            # version as a new string (a tenth of the time this callback takes, compiled).
            version = "1.1"
        else:
            version = llhttp.get_http_version()
            version = _VERSIONS.get(version, version)
            if version != "1.1" and version != "1.0":
                # llhttp passes HTTP/0.9 and HTTP/2.0 through (and refuses 1.2 or 3.0 itself).
                raise Refused(505, "unsupported HTTP version")
        self.version = version
        if self.head_size > self.limits.count_check:
            # Fewer bytes than _MIN_FIELD_SIZE per allowed field cannot hold too many fields.
            self._check_count(0)
        # An HTTP/1.1 request without Host is served, as Twisted (and most Python servers)
        # do, though RFC 9112 §3.2 says 400: getRequestHostname() then gives our address.
        if hosts:
            seen = self.host_seen
            if hosts != 1:
                raise Refused(400, "more than one Host field")
            if fields[host] != seen:
                if not valid_host(fields[host]):
                    raise Refused(400, "invalid Host field")
                self.host_seen = fields[host]
            else:
                # The value checked before, as one object: a pending request keeps no copy.
                assert seen is not None
                fields[host] = seen
        if self.target[0] != _SLASH:  # not origin-form: rare
            self._check_target()
        body = False
        if coded:
            body = self._check_chunked(version == "1.1")
        if length >= 0:
            body = self._check_length(fields[length])
        invite = False
        if expect >= 0 and version == "1.1":
            # RFC 9110 §10.1.1: an HTTP/1.0 request's expectation MUST be ignored.
            if expects != 1 or fields[expect].lower() != b"100-continue":
                raise Refused(417, "unsupported expectation")
            invite = body  # no content, nothing to invite
        self._head_done(invite)

    def on_body(self, data: bytes) -> None:
        size = self.body_size = self.body_size + len(data)
        if size > self.limits.body:
            raise Refused(413, "request body too large")
        content = self.body
        if content is None:
            content = self.body = io.BytesIO()
        elif size > SPOOL_SIZE and isinstance(content, io.BytesIO):
            # Large bodies move to disk; the request closes the file when it is done.
            spooled = tempfile.TemporaryFile()  # noqa: SIM115
            spooled.write(content.getbuffer())
            content = self.body = spooled
        content.write(data)
        self._body_arrived()

    def on_chunk_header(self) -> None:
        # Between a chunk's size line and its end come only data and, after the last one,
        # the trailer fields: these go to their own dict.
        self.chunks += 1
        trailers = self.trailers
        assert trailers is not None  # set by _check_chunked before any chunk
        self.fields = trailers

    def on_chunk_complete(self) -> None:
        fields = self.trailer_owner
        assert fields is not None  # set by _check_chunked before any chunk
        self.fields = fields

    def on_message_complete(self) -> None:
        content = self.body
        if content is not None:
            content.seek(0)
            self.body = None
        trailers: dict[bytes, list[bytes]] | None = None
        fields = self.trailer_owner
        if fields is None:
            fields = self.fields
        else:
            if self.trailers:
                trailers = _table_of(self.trailers)
            self.trailers = None
        self._complete(
            (
                self.method,
                self.target,
                self.version == "1.1",
                fields,
                content,
                self.llhttp.should_keep_alive(),
                trailers,
            )
        )

    # -- what the parser tells its sink ---------------------------------------------------------
    # (The channel's own parser, treadle.web._channel_core.LentParser, calls the channel
    # directly instead: compiled, that is a C call rather than a method lookup.)

    def _begun(self) -> None:
        self.sink.message_begun()  # type: ignore[union-attr]  # set while lent

    def _head_done(self, invite: bool) -> None:
        self.sink.head_received(invite)  # type: ignore[union-attr]  # set while lent

    def _body_arrived(self) -> None:
        self.sink.body_received()  # type: ignore[union-attr]  # set while lent

    def _complete(self, message: Message) -> None:
        self.sink.message_received(message)  # type: ignore[union-attr]  # set while lent

    # -- checks -----------------------------------------------------------------------------

    def _check_head(self, line: int, size: int) -> None:
        limits = self.limits
        if self.trailer_owner is not None:
            # Trailers: head_size started so that passing size_check means the trailer
            # section is over its limit (see _check_chunked).
            raise Refused(431, "trailer section too large")
        if line > limits.field_line:
            raise Refused(431, "header field line too long")
        if size > limits.head:
            raise Refused(431, "request header block too large")
        self._check_count(1)

    def _check_count(self, pending: int) -> None:
        fields = len(self.fields) // 2 + pending
        if fields > self.limits.fields:
            raise Refused(431, "too many header fields")

    def _check_target(self) -> None:
        """Absolute-, authority- or asterisk-form target (RFC 9112 §3.2.2-3.2.4)."""
        method = self.method
        target = self.target
        problem = target_error(method, target)
        if problem is not None:
            raise Refused(400, problem)
        if target != b"*" and method != b"CONNECT":
            # RFC 9112 §3.2.2: an origin server MUST ignore the Host field and use the
            # target's authority instead; it is what request.getRequestHostname() returns.
            fields = self.fields
            kept = [
                fields[i + j]
                for i in range(0, len(fields), 2)
                if fields[i] != b"host"
                for j in (0, 1)
            ]
            kept.append(b"host")
            kept.append(absolute_form_authority(target))
            self.fields = kept

    def _check_chunked(self, http11: bool) -> bool:
        """Vet a request with Transfer-Encoding; return True (a body follows)."""
        codings = _values_in(self.fields, b"transfer-encoding")
        assert codings is not None  # (on_headers_complete saw the field)
        error = transfer_coding_error(codings, http11)
        if error is not None:
            raise Refused(*error)
        self._check_body_allowed()
        self.chunks = 0
        self.wire = 0
        # Trailer fields arrive through on_header; they are kept apart and counted from
        # here against the trailer limit.
        self.trailer_owner = self.fields
        self.trailers = []
        self.head_size = self.limits.size_check - self.limits.trailers
        return True

    def _check_length(self, value: bytes) -> bool:
        """Vet a Content-Length; return True when a body follows."""
        # llhttp has refused signs, lists, non-digits, duplicates and values of 2**64 or
        # more (RFC 9110 §8.6, RFC 9112 §6.3); what remains is a plain decimal number.
        length = int(value)
        if length > self.limits.body:
            # Refused before any 100 Continue, so the client never sends the body.
            raise Refused(413, "request body too large")
        if not length:
            return False
        self._check_body_allowed()
        return True

    def _check_body_allowed(self) -> None:
        # llhttp flags an upgrade for "Connection: upgrade" with Upgrade, or for CONNECT.
        if (_values_in(self.fields, b"upgrade") is not None or self.method == b"CONNECT") and (
            self.llhttp.should_upgrade()
        ):
            # httptools tells llhttp to skip the body of an Upgrade (or CONNECT) request;
            # answering it as plain HTTP would treat the body as missing.
            raise Refused(501, "Upgrade with a request body is not supported")


#: The limits of a parser no channel holds (never consulted: a spare parser parses nothing).
_NO_LIMITS: Final = Limits(0, 0, 0, 0, 0, 0, 0)

# The usual methods, versions and field names as one object each: a pending request holds
# these instead of copies made for it (httptools returns new objects for every request).
_METHODS: Final[dict[bytes, bytes]] = {
    m: m for m in (b"GET", b"HEAD", b"POST", b"PUT", b"DELETE", b"PATCH", b"OPTIONS")
}
_VERSIONS: Final[dict[str, str]] = {"1.1": "1.1", "1.0": "1.0"}
_FIELD_NAMES: Final[dict[bytes, bytes]] = {
    spelling: name.lower()
    for name in (
        b"Accept",
        b"Accept-Encoding",
        b"Accept-Language",
        b"Authorization",
        b"Cache-Control",
        b"Connection",
        b"Content-Length",
        b"Content-Type",
        b"Cookie",
        b"Host",
        b"If-Modified-Since",
        b"If-None-Match",
        b"Origin",
        b"Pragma",
        b"Referer",
        b"Upgrade-Insecure-Requests",
        b"User-Agent",
        b"X-Forwarded-For",
        b"X-Forwarded-Proto",
        b"X-Real-IP",
        b"X-Requested-With",
    )
    for spelling in (name, name.lower())
}

#: Parsers no connection holds, for the next request that arrives on any connection.
SPARE_PARSERS: Final[list[Parser]] = []
#: Spare parsers kept after a burst: as many requests may arrive in pieces at once.
MAX_SPARE_PARSERS: Final = 1024


# What on_headers_complete looks for among the fields.
_HOST: Final = 1
_CONNECTION: Final = 2
_CONTENT_LENGTH: Final = 3
_TRANSFER_ENCODING: Final = 4
_EXPECT: Final = 5
_ROLES: Final[dict[bytes, int]] = {
    b"host": _HOST,
    b"connection": _CONNECTION,
    b"content-length": _CONTENT_LENGTH,
    b"transfer-encoding": _TRANSFER_ENCODING,
    b"expect": _EXPECT,
}
