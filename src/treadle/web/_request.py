"""The wire-level ``Request``: what the client sent, and the response going back on the wire.

:class:`Request` is the wire half of a request: headers, body, ``write``/``finish`` with
framing chosen by :func:`treadle.web._framing.response_framing`, ``notifyFinish``, cookies.
:mod:`treadle.web.server` adds resource traversal and rendering on top; this module knows
nothing of resources. :class:`treadle.web.http.HTTPChannel` makes one per request and hands it
what it parsed (``receive_message``); code imports it from :mod:`treadle.web.http`.

A response ends in one of two ways the client can tell apart: complete (``finish()``: the
last chunk, or all of ``Content-Length``), or cut short (the connection closes without
them) when the response cannot be completed — a render that fails after it started writing.

Fast path: a response whose body is known when the headers are written goes out as a single
``transport.write`` (status line, headers and body joined); status lines are precomputed and
the ``Date`` header is formatted once a second. Query arguments, form bodies and cookies are
parsed only when first asked for.
"""

from __future__ import annotations

import asyncio
import io
import logging
import tempfile
import warnings
from typing import IO, Any, Final
from urllib.parse import urlsplit

from treadle.internet.address import IPv4Address, IPv6Address, UNIXAddress
from treadle.internet.defer import Deferred, fail, succeed
from treadle.python.failure import Failure
from treadle.web._channel import ChannelTransport, HTTPChannel
from treadle.web._forms import parse_form, parse_urlencoded
from treadle.web._forwarded import ProxyTrust, forwarded_view
from treadle.web._framing import (
    _STATUS_LINES,
    HEAD_ENDS,
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
from treadle.web._parser import SPOOL_SIZE, Message
from treadle.web._request_helpers import RequestHelpers
from treadle.web._status import FOUND, INTERNAL_SERVER_ERROR, NOT_FOUND
from treadle.web.http_headers import Headers, canonical_name

__all__ = ["Request"]

error_log = logging.getLogger("treadle.error")

CRLF: Final = b"\r\n"
#: What a response without headers of its own reads (never written to).
_NO_HEADERS: Final[dict[bytes, list[bytes]]] = {}


class Request(RequestHelpers):
    """One HTTP request and its response, as Twisted's ``http.Request``.

    Args:
        channel: The channel the request arrived on (or a Twisted-style channel of the
            program's own, to drive the request by hand).
        queued: Ignored (Twisted's deprecated argument).
        parsePOSTFormSubmission: False keeps a POST body out of :attr:`args` (read it from
            :attr:`content`); parsed by default, as in Twisted.

    Attributes:
        channel: The :class:`~treadle.web.http.HTTPChannel` the request arrived on.
        method: Request method, e.g. ``b"GET"``.
        uri: Request target as sent, e.g. ``b"/a/b?x=1"``.
        path: ``uri`` without the query string (still percent-encoded).
        clientproto: ``b"HTTP/1.1"`` or ``b"HTTP/1.0"``.
        requestHeaders: The request's :class:`~treadle.web.http_headers.Headers`.
        responseHeaders: Headers to send; change them before the first ``write``.
        code: Response status code (200 unless set).
        finished: True once ``finish()`` completed.
        startedWriting: True once the status line and headers were sent.
        sentLength: Body bytes handed to the transport so far.
    """

    __slots__ = (
        "__dict__",
        "__weakref__",
        "_content",
        "_cookies",
        "_disconnected",
        "_framing",
        "_held",
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

    #: Whether responses get ``Server`` and ``Date`` unless they set their own: as in
    #: Twisted, the resource layer's request (:class:`treadle.web.server.Request`) sends them
    #: and this wire-level one does not.
    sendsServerAndDate = False
    #: Content-Type sent when the response sets none (None sends none): none here, as in
    #: Twisted's ``http.Request``; :class:`treadle.web.server.Request` sends ``text/html``.
    defaultContentType: bytes | None = None
    # Rarely set: class-level defaults keep a request cheap to create (set values go to the
    # instance dict).
    queued = 0
    code_message: bytes | None = None
    _args: dict[bytes, list[bytes]] | None = None
    _cookies_in: dict[bytes, bytes] | None = None
    _lost_reason: Exception | None = None
    #: The producer registered through :meth:`registerProducer` (None when none).
    producer: Any = None
    # What a program assigned to ``transport`` (Twisted's is a plain attribute).
    _assigned_transport: Any = None
    # What setHost forced: the address getHost reports, and TLS for isSecure.
    _forced_host: IPv4Address | IPv6Address | None = None
    _forced_secure = False
    # What trusted proxies said (see use_forwarded): the client, and whether it used TLS.
    _forwarded_client: IPv4Address | IPv6Address | None = None
    _forwarded_secure: bool | None = None
    # Twisted's parsePOSTFormSubmission as given (None: the default, which is to parse).
    _parse_forms: bool | None = None

    def __init__(
        self,
        channel: HTTPChannel,
        queued: object = None,
        parsePOSTFormSubmission: bool | None = None,
    ) -> None:
        self.channel = channel
        if parsePOSTFormSubmission is not None:
            self._parse_forms = parsePOSTFormSubmission
        # What the request talks to: the channel itself (treadle's HTTP/1.1 channel, or a
        # class saying it serves as a wire, as an HTTP/2 stream does), or, for a channel of
        # the program's own making (driving a request by hand), an adapter to Twisted's
        # channel interface. The class is asked, not the object: a mock answers anything.
        self._wire: HTTPChannel | HandChannel = (
            channel
            if isinstance(channel, HTTPChannel) or getattr(type(channel), "is_request_wire", False)
            else HandChannel(channel)
        )
        self.method = b"GET"
        self.uri = b"/"
        self.path = b"/"
        self.clientproto = b"HTTP/1.1"
        self._http11 = True
        self._keep_alive = True
        self.requestHeaders = Headers._from_raw({})
        # Made on first use: most responses set no header and no cookie of their own.
        self._response_headers: Headers | None = None
        self._content: IO[bytes] | None = None
        self._cookies: list[bytes] | None = None
        self.code = 200
        self.finished = False
        self.startedWriting = False
        self.sentLength = 0
        # None until the head is sent: a resource that sets startedWriting itself writes
        # its own head, and its writes then go out as they are (Twisted's behaviour).
        self._framing: Framing | None = None
        self._disconnected = False
        self._notifications: list[Deferred[None]] | None = None
        self._held: list[bytes] | None = None

    # -- arrival ---------------------------------------------------------------------------

    def receive_message(self, message: Message) -> None:
        """Fill in what the channel parsed, then ``process()`` (the channel's entry point).

        An exception escaping ``process()`` is answered with a 500 page (or, once the
        response started, by ending it short) and logged.
        """
        method, uri, http11, headers, content, keep_alive = message
        self.method = method
        self.uri = uri
        self._http11 = http11
        if not http11:
            self.clientproto = b"HTTP/1.0"
        self.requestHeaders._raw = headers
        self._content = content
        self._keep_alive = keep_alive
        if uri[:1] == b"/":
            q = uri.find(b"?")
            self.path = uri if q < 0 else uri[:q]
        else:
            self.path = _path_of_target(uri)
        try:
            self.process()
        except Exception:
            self._internal_error()

    def noLongerQueued(self) -> None:
        """Does nothing: Twisted's deprecated notice that the request left the queue."""
        warnings.warn(
            "treadle.web.http.Request.noLongerQueued is deprecated and does nothing",
            DeprecationWarning,
            stacklevel=2,
        )

    def requestReceived(self, command: bytes, path: bytes, version: bytes) -> None:
        """Twisted's entry point, kept for code that drives a Request by hand."""
        self.method = command
        self.uri = path
        self.clientproto = version
        self._http11 = version == b"HTTP/1.1"
        if self._content is not None:
            self._content.seek(0)  # as Twisted: the body is read from its start
        q = path.find(b"?")
        self.path = path if q < 0 else path[:q]
        self.process()

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

    def gotLength(self, length: int | None) -> None:
        """Make :attr:`content` ready for a body of ``length`` bytes (None: unknown).

        Twisted's channel calls it before the body arrives; treadle's channel fills
        :attr:`content` itself, so only code driving a request by hand calls it. A small
        body is kept in memory, a large or unknown one in a temporary file.
        """
        if length is not None and length < SPOOL_SIZE:
            self._content = io.BytesIO()
        else:
            self._content = tempfile.TemporaryFile()  # noqa: SIM115  # closed when done

    def handleContentChunk(self, data: bytes) -> None:
        """Add ``data`` to :attr:`content` (code driving a request by hand calls it, as
        Twisted's channel does; treadle's channel fills :attr:`content` itself)."""
        self.content.write(data)

    @property
    def chunked(self) -> bool:
        """Whether the response body goes out in chunks (known once the head is sent).

        Setting it after the head was sent changes how later writes go out, as in Twisted:
        false sends them as they are (the connection then closes after the response, the
        client having no other way to find its end), true chunks them. Before the head is
        sent the framing is treadle's choice and setting it has no effect.
        """
        return self._framing is Framing.CHUNKED

    @chunked.setter
    def chunked(self, value: bool) -> None:
        if self._held is not None:
            self.flush_held()
        framing = self._framing
        if framing is None or framing is Framing.NONE or self.finished:
            return
        if value and framing is not Framing.CHUNKED:
            self._framing = Framing.CHUNKED
        elif not value and framing is Framing.CHUNKED:
            self._framing = Framing.CLOSE
            self._keep_alive = False

    @property
    def responseHeaders(self) -> Headers:
        """Headers to send; change them before the first ``write``."""
        headers = self._response_headers
        if headers is None:
            headers = self._response_headers = Headers._from_raw({})
        return headers

    @responseHeaders.setter
    def responseHeaders(self, value: Headers) -> None:
        self._response_headers = value

    @property
    def cookies(self) -> list[bytes]:
        """``Set-Cookie`` values to send (``addCookie`` appends here)."""
        cookies = self._cookies
        if cookies is None:
            cookies = self._cookies = []
        return cookies

    @cookies.setter
    def cookies(self, value: list[bytes]) -> None:
        self._cookies = value

    @property
    def args(self) -> dict[bytes, list[bytes]]:
        """Query-string and form-body arguments: ``{b"name": [b"value", ...]}``.

        Parsed on first use: the query string, then, for a POST, an
        ``application/x-www-form-urlencoded`` or ``multipart/form-data`` body (values of
        file fields are their bytes). As in Twisted, a body argument replaces the query
        arguments of the same name, and other methods' bodies are not read as forms.

        Raises:
            MalformedRequestBody: The form body cannot be parsed (rendered as 400).
        """
        args = self._args
        if args is None:
            args = self._args = self._parse_args()
        return args

    @args.setter
    def args(self, value: dict[bytes, list[bytes]]) -> None:
        self._args = value

    def _parse_args(self) -> dict[bytes, list[bytes]]:
        q = self.uri.find(b"?")
        args: dict[bytes, list[bytes]] = parse_urlencoded(self.uri[q + 1 :]) if q >= 0 else {}
        ctype = self.requestHeaders._raw.get(b"content-type")
        if ctype is None or self._content is None or self.method != b"POST":
            return args
        if self._parses_forms():
            args.update(parse_form(ctype[0], self._content))
        return args

    def _parses_forms(self) -> bool:
        """Whether a POST form body is read into :attr:`args` (``parsePOSTFormSubmission``)."""
        return self._parse_forms is not False

    @property
    def _parsePOSTFormSubmission(self) -> bool:
        # Twisted's name for the setting, read by code that checks it.
        return self._parses_forms()

    @property
    def received_cookies(self) -> dict[bytes, bytes]:
        """Cookies the client sent, parsed leniently on first use.

        As Twisted: pairs are split at ``;``, leading whitespace is dropped, a pair without
        ``=`` is skipped and the value is kept as sent (quotes and trailing spaces too).
        """
        cookies = self._cookies_in
        if cookies is None:
            cookies = self._cookies_in = {}
            for header in self.requestHeaders._raw.get(b"cookie", ()):
                for pair in header.split(b";"):
                    name, sep, value = pair.lstrip().partition(b"=")
                    if sep:
                        cookies[name] = value
        return cookies

    @received_cookies.setter
    def received_cookies(self, value: dict[bytes, bytes]) -> None:
        self._cookies_in = value

    def parseCookies(self) -> None:
        """Read the ``Cookie`` headers into :attr:`received_cookies` (again, if read before)."""
        self._cookies_in = None
        self.received_cookies  # noqa: B018  # parsed now

    @property
    def transport(self) -> ChannelTransport | None:
        """The connection as Twisted's ``ITCPTransport`` (None once it is lost).

        ``write``, ``loseConnection`` (sends what was written first), ``abortConnection``,
        ``getPeer``, ``getHost``, producers: see
        :class:`~treadle.web._channel.ChannelTransport`. Bytes the request still holds (see
        :meth:`write`) are sent first, so that writing to the transport directly keeps the
        order.
        """
        if self._held is not None:
            self.flush_held()
        assigned = self._assigned_transport
        if assigned is not None:
            return assigned  # type: ignore[no-any-return]  # whatever the program assigned
        channel = self.channel
        return None if channel is None else channel.transport

    @transport.setter
    def transport(self, value: Any) -> None:
        self._assigned_transport = value

    @property
    def asyncio_transport(self) -> asyncio.Transport | None:
        """The connection's asyncio transport (None once it is lost), for asyncio's own API
        (``loop.sendfile``, ``get_write_buffer_size``); held bytes are sent first, as for
        :attr:`transport`."""
        if self._held is not None:
            self.flush_held()
        return self._wire.asyncio_transport

    # -- reading the request ----------------------------------------------------------------

    def getHeader(self, key: str | bytes) -> Any:
        """Return the last value of request header ``key`` (``str`` for a ``str`` key), or None."""
        values = self.requestHeaders.getRawHeaders(key)
        return values[-1] if values else None

    def getAllHeaders(self) -> dict[bytes, bytes]:
        """Return every request header as ``{lowercased name: last value}``."""
        return {name: values[-1] for name, values in self.requestHeaders._raw.items()}

    def getCookie(self, key: bytes) -> bytes | None:
        """Return the value of cookie ``key`` the client sent, or None."""
        return self.received_cookies.get(key)

    def getClientAddress(self) -> IPv4Address | IPv6Address | UNIXAddress:
        """Return the address of the client: the peer of the connection, or, behind a
        trusted proxy (``--proxy-headers``), the client the proxy reported."""
        forwarded = self._forwarded_client
        return forwarded if forwarded is not None else self._wire.peer_address()

    def use_forwarded(self, trust: ProxyTrust) -> None:
        """Take the client, scheme and host from ``Forwarded``/``X-Forwarded-*`` if the peer is
        one ``trust`` believes (see :mod:`treadle.web._forwarded`); the site calls this before
        traversal when it was given ``proxyHeaders``."""
        peer = self._wire.peer_address()
        view = forwarded_view(self.requestHeaders._raw, trust, getattr(peer, "host", None))
        if view is None:
            return
        if view.client is not None:
            kind = IPv6Address if ":" in view.client else IPv4Address
            self._forwarded_client = kind("TCP", view.client, view.client_port)
        secure = self.isSecure() if view.scheme is None else view.scheme == "https"
        self._forwarded_secure = secure
        if view.host is not None:
            name, port = _host_and_port(view.host, view.port, secure)
            self.setHost(name, port, secure)
        elif view.port is not None:
            self.setHost(self.getRequestHostname(), view.port, secure)

    def getClientIP(self) -> str | None:
        """Return the client's IP address as a string, or None on a UNIX socket."""
        address = self.getClientAddress()
        return None if isinstance(address, UNIXAddress) else address.host

    def getHost(self) -> IPv4Address | IPv6Address | UNIXAddress:
        """Return the local address the request arrived on (or the one ``setHost`` gave)."""
        forced = self._forced_host
        return forced if forced is not None else self._wire.host_address()

    def setHost(self, host: bytes, port: int, ssl: bool = False) -> None:
        """Make the request look as if it arrived at ``host:port`` (over TLS when ``ssl``).

        Afterwards ``getHost()`` reports ``host``/``port``, the ``Host`` header carries the
        name (with the port unless it is the scheme's default), and so
        ``getRequestHostname()`` and ``prePathURL()`` follow; used behind reverse proxies.
        ``ssl=True`` makes ``isSecure()`` true; ``ssl=False`` leaves it to the connection,
        as in Twisted (a request that did arrive over TLS stays secure).

        Args:
            host: A host name or IP address (an IPv6 literal with or without brackets).
            port: The port number.
            ssl: Count the request as made over TLS.
        """
        name = host[1:-1] if host.startswith(b"[") and host.endswith(b"]") else host
        text = name.decode("ascii")
        is_v6 = b":" in name
        address = IPv6Address if is_v6 else IPv4Address
        self._forced_host = address("TCP", text, port)
        header = b"[" + name + b"]" if is_v6 else name
        self._forced_secure = ssl
        # The default port is the scheme's the request ends up with: a request that
        # arrived over TLS stays secure (as in Twisted), so 443 is its default too.
        if port != (443 if self.isSecure() else 80):
            header += b":%d" % port
        self.requestHeaders.setRawHeaders(b"host", [header])

    def isSecure(self) -> bool:
        """Return True when the connection is TLS (or ``setHost`` or a trusted proxy said so)."""
        forwarded = self._forwarded_secure
        if forwarded is not None:
            return forwarded or self._forced_secure
        if self._forced_secure:
            return True
        transport = self._wire.asyncio_transport
        return transport is not None and transport.get_extra_info("sslcontext") is not None

    def getRequestHostname(self) -> bytes:
        """Return the host the client asked for (``Host`` without port), else our address."""
        host = self.requestHeaders._raw.get(b"host")
        if host:
            value = host[0]
            if value.startswith(b"["):  # IPv6 literal: [::1]:8080
                return value[1 : value.find(b"]")] if b"]" in value else value
            return value.rsplit(b":", 1)[0] if b":" in value else value
        address = self.getHost()
        return b"localhost" if isinstance(address, UNIXAddress) else address.host.encode()

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

    def redirect(self, url: str | bytes) -> None:
        """Make the response a ``302 Found`` pointing at ``url``."""
        self.setResponseCode(FOUND)
        self.setHeader(b"location", url)

    def addCookie(
        self,
        k: str | bytes,
        v: str | bytes,
        expires: str | bytes | None = None,
        domain: str | bytes | None = None,
        path: str | bytes | None = None,
        max_age: str | bytes | int | None = None,
        comment: str | bytes | None = None,
        secure: bool | None = None,
        httpOnly: bool = False,
        sameSite: str | None = None,
    ) -> None:
        """Add a ``Set-Cookie`` header to the response.

        ``sameSite`` is written in lowercase, as in Twisted.

        Raises:
            ValueError: A name or attribute contains ``;``, CR or LF (Twisted turns them into
                spaces), or ``sameSite`` is not ``lax``, ``strict`` or ``none``, or is
                ``none`` without ``secure`` (browsers ignore such a cookie).
        """
        parts = [_cookie_part(k) + b"=" + _cookie_part(v)]
        for label, value in (
            (b"Expires", expires),
            (b"Domain", domain),
            (b"Path", path),
            (b"Max-Age", max_age),
            (b"Comment", comment),
        ):
            if value is not None:
                parts.append(label + b"=" + _cookie_part(value))
        if secure:
            parts.append(b"Secure")
        if httpOnly:
            parts.append(b"HttpOnly")
        if sameSite:
            same_site = _cookie_part(sameSite).lower()
            if same_site == b"none" and not secure:
                raise ValueError(
                    f'Invalid value for sameSite: {same_site!r}. Missing the "secure" attribute'
                )
            if same_site not in (b"lax", b"strict", b"none"):
                raise ValueError(f"Invalid value for sameSite: {same_site!r}")
            parts.append(b"SameSite=" + same_site)
        self.cookies.append(b"; ".join(parts))

    # -- writing ----------------------------------------------------------------------------

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
            self._wire.call_soon(self.flush_held)
            return
        if not data:
            return
        framing = self._framing
        transport = self._wire.asyncio_transport
        assert transport is not None
        if framing is Framing.CHUNKED:
            transport.write(
                chunk(data) if len(data) < 65536 else b"%x\r\n" % len(data) + data + CRLF
            )
        elif framing is not Framing.NONE:
            transport.write(data)
        else:
            return
        self.sentLength += len(data)

    def writeSequence(self, data: list[bytes]) -> None:
        """Write each item of ``data`` in turn."""
        for item in data:
            self.write(item)

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
            self.startedWriting = False
            self._write_whole(b"".join(held))
            return
        if not self.startedWriting:
            self._start_response(b"", 0)
        elif self._framing is Framing.CHUNKED:
            transport = self._wire.asyncio_transport
            assert transport is not None
            transport.write(b"0\r\n\r\n")
        elif self._framing is None:
            # The resource set startedWriting and wrote its own head: we cannot tell
            # where its body ends, so neither can the client unless the connection closes.
            self._keep_alive = False
        self._complete()

    def flush_held(self) -> None:
        """Send what :meth:`write` held back, as the start of a streamed response.

        The loop calls it once the callback that wrote is over; the channel calls it before
        closing, and reading :attr:`transport` or registering a producer calls it too, so
        bytes written earlier always go out first.
        """
        held = self._held
        if held is None:
            return
        self._held = None
        if self._disconnected or self._wire.asyncio_transport is None:
            return
        self.startedWriting = False
        self._start_response(b"".join(held), None)

    def _write_whole(self, body: bytes) -> None:
        """Send the complete response with ``body`` in one write, then finish (fast path)."""
        self._start_response(body, len(body))
        self._complete()

    def _start_response(self, body: bytes, length: int | None) -> None:
        """Send the head and the first body bytes; ``length`` set means the body is whole."""
        self.startedWriting = True
        headers = self._response_headers
        raw = _NO_HEADERS if headers is None else headers._raw
        code = self.code
        explicit_length = b"content-length" in raw
        framing = response_framing(
            self._http11, self.method, code, length is not None or explicit_length
        )
        self._framing = framing
        keeps = self._keep_alive = keeps_connection(
            self._keep_alive and self._wire.persistent, framing, raw.get(b"connection")
        )
        message = self.code_message
        line = _STATUS_LINES.get(code) if message is None else None
        lines = [line or status_line(code, message)]
        if self.sendsServerAndDate:
            if b"server" not in raw and b"date" not in raw:
                lines.append(server_and_date())
            else:
                if b"server" not in raw:
                    lines.append(SERVER_LINE)
                if b"date" not in raw:
                    lines.append(date_header())
        if b"content-type" not in raw:
            default_type = self.defaultContentType
            # Twisted's rule: every response gets the default type but a 204, a 304 and one
            # whose Content-Length field says 0 (a HEAD response too, though it has no body).
            if (
                default_type is not None
                and (framing is not Framing.NONE or (code >= 200 and code != 204 and code != 304))
                and not (explicit_length and raw[b"content-length"][0].strip() == b"0")
            ):
                lines.append(b"Content-Type: " + default_type + CRLF)
        if raw:
            for name, values in raw.items():
                if name == b"connection":
                    continue  # ours says what the connection does (keeps_connection)
                cname = canonical_name(name)
                for value in values:
                    lines.append(cname + b": " + value + CRLF)
        if self._cookies:
            for cookie in self._cookies:
                lines.append(b"Set-Cookie: " + cookie + CRLF)
        if not explicit_length:
            if length is not None:
                # RFC 9110 §8.6: never in a 1xx or 204; in a 304 only the real size would do.
                if code >= 200 and code != 204 and (length or code != 304):
                    lines.append(b"Content-Length: %d\r\n" % length)
            elif framing is Framing.CHUNKED:
                lines.append(b"Transfer-Encoding: chunked\r\n")
        lines.append(HEAD_ENDS[keeps][self._http11])
        if body and framing is not Framing.NONE:
            self.sentLength = len(body)
            lines.append(chunk(body) if framing is Framing.CHUNKED else body)
        self._wire.asyncio_transport.write(b"".join(lines))  # type: ignore[union-attr]

    def _complete(self) -> None:
        """Bookkeeping once the last byte is handed to the transport."""
        self.finished = True
        if self._content is not None:
            self._release_body()
        notifications = self._notifications
        if notifications is not None:
            self._notifications = None
            for d in notifications:
                d.callback(None)
        wire = self._wire
        wire.factory.log(self)
        wire.request_done(self, self._keep_alive)

    def _release_body(self) -> None:
        # A body spooled to a temporary file holds a descriptor: give it back now rather
        # than whenever the request object is collected.
        content = self._content
        if content is not None and not isinstance(content, io.BytesIO):
            content.close()

    # -- lifecycle notifications ------------------------------------------------------------

    def notifyFinish(self) -> Deferred[None]:
        """Return a Deferred that fires when this request's story ends.

        It fires with None once ``finish()`` handed the last byte to the transport, or
        errbacks with :class:`~treadle.internet.error.ConnectionDone` /
        :class:`~treadle.internet.error.ConnectionLost` if the client went away first (a
        :class:`~treadle.internet.error.ConnectionAborted` when the server cut it off).
        Called after either happened, it returns an already-fired Deferred (Twisted's never
        fires).
        """
        if self._disconnected:
            assert self._lost_reason is not None
            return fail(self._lost_reason)
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
        self._lost_reason = reason.with_traceback(None)
        # As Twisted: the body is closed and the channel let go (the request talks to its
        # wire, never to ``channel``, so nothing of treadle's needs it any more).
        content = self._content
        if content is not None:
            content.close()
        self.channel = None  # type: ignore[assignment]  # None once the connection is lost
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

    async def drain(self) -> None:
        """Wait until the transport wants more data (returns at once if it does).

        ``async def`` writers call ``await request.drain()`` between writes so a slow client
        slows them down instead of filling memory. Returns at once after connection loss.
        """
        if self._held is not None:
            self.flush_held()
        await self._wire.drain()

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


def _as_bytes(data: object) -> bytes:
    if isinstance(data, str):
        return data.encode("utf-8")
    if isinstance(data, bytearray | memoryview):
        return bytes(data)
    raise TypeError(f"Data must be bytes or str, not {type(data).__name__}")


def _cookie_part(value: str | bytes | int) -> bytes:
    if isinstance(value, int):
        value = str(value)
    if isinstance(value, str):
        value = value.encode("utf-8")
    if b";" in value or b"\r" in value or b"\n" in value:
        raise ValueError(f"cookie name or attribute contains ';', CR or LF: {value!r}")
    return value


def _host_and_port(host: bytes, port: int | None, secure: bool) -> tuple[bytes, int]:
    """Split ``host[:port]`` (a checked Host value); ``port`` given apart wins."""
    name, given = host, None
    if host.startswith(b"["):
        end = host.index(b"]")
        name, rest = host[: end + 1], host[end + 1 :]
        given = int(rest[1:]) if rest.startswith(b":") else None
    elif b":" in host:
        name, _, tail = host.partition(b":")
        given = int(tail)
    if port is not None:
        given = port
    return name, given if given is not None else (443 if secure else 80)


def _path_of_target(target: bytes) -> bytes:
    """Path of an absolute-form (``http://h/p?q``) or asterisk-form target (RFC 9112 §3.2)."""
    if target == b"*":
        return target
    parts = urlsplit(target)
    return parts.path or b"/"
