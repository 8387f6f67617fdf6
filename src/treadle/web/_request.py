"""The wire-level ``Request``: what the client sent, and the response going back on the wire.

:class:`Request` is the wire half of a request: headers, body, ``write``/``finish`` with
framing chosen by :func:`treadle.web._framing.response_framing`, ``notifyFinish``, cookies.
:mod:`treadle.web.server` adds resource traversal and rendering on top; this module knows
nothing of resources. :class:`treadle.web.http.HTTPChannel` makes one per request and hands it
what it parsed (``receive_message``); code imports it from :mod:`treadle.web.http`.

The per-request path (arrival, ``write``/``finish``, framing, ``notifyFinish``) is
:class:`~treadle.web._request_core.RequestCore`, which mypyc compiles; this module adds what
is off that path, in plain Python: Twisted's hand-driving entry points, query and form
arguments, cookies, addresses and proxies, the Twisted transport. Query arguments, form
bodies and cookies are parsed only when first asked for. ``Request`` itself is a plain
Python class: programs subclass it and set attributes on its instances as on Twisted's.
"""

from __future__ import annotations

import asyncio
import io
import tempfile
import warnings
from typing import Any

from treadle.internet.address import IPv4Address, IPv6Address, UNIXAddress
from treadle.web._channel import ChannelTransport
from treadle.web._forms import parse_form, parse_urlencoded
from treadle.web._forwarded import ProxyTrust, forwarded_view
from treadle.web._framing import Framing
from treadle.web._parser import SPOOL_SIZE
from treadle.web._request_core import RequestCore
from treadle.web._request_helpers import RequestHelpers
from treadle.web._status import FOUND

__all__ = ["Request"]


class Request(RequestHelpers, RequestCore):
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
        requestTrailers: Trailer fields the client sent after the body (treadle's own, as
            is ``responseTrailers``: see :mod:`treadle.web._trailers`).
        responseTrailers: Trailer fields to send after the body; set them before ``finish``.
        code: Response status code (200 unless set).
        finished: True once ``finish()`` completed.
        startedWriting: True once the status line and headers were sent.
        sentLength: Body bytes handed to the transport so far.

    In a compiled build (``treadle.compiled``) these attributes hold their documented types:
    ``request.finished = 1`` (Twisted's old spelling of True) raises ``TypeError`` there.
    Attributes of a program's own are kept as on any Python object.
    """

    #: Whether responses get ``Server`` and ``Date`` unless they set their own: as in
    #: Twisted, the resource layer's request (:class:`treadle.web.server.Request`) sends them
    #: and this wire-level one does not.
    sendsServerAndDate = False
    #: Content-Type sent when the response sets none (None sends none): none here, as in
    #: Twisted's ``http.Request``; :class:`treadle.web.server.Request` sends ``text/html``.
    defaultContentType: bytes | None = None

    # -- arrival ---------------------------------------------------------------------------

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
        ctype = self.requestHeaders._get(b"content-type")
        if ctype is None or self._content is None or self.method != b"POST":
            return args
        if self._parses_forms():
            args.update(parse_form(ctype[0], self._content))
        return args

    def _parses_forms(self) -> bool:
        """Whether a POST form body is read into :attr:`args` (``parsePOSTFormSubmission``)."""
        return self._rare_view().parse_forms is not False

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
            for header in self.requestHeaders._get(b"cookie") or ():
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
        self.flush_held()
        assigned = self._rare_view().assigned_transport
        if assigned is not None:
            return assigned  # type: ignore[no-any-return]  # whatever the program assigned
        channel = self.channel
        return None if channel is None else channel.transport

    @transport.setter
    def transport(self, value: Any) -> None:
        self._rare_state().assigned_transport = value

    @property
    def asyncio_transport(self) -> asyncio.Transport | None:
        """The connection's asyncio transport (None once it is lost), for asyncio's own API
        (``loop.sendfile``, ``get_write_buffer_size``); held bytes are sent first, as for
        :attr:`transport`."""
        self.flush_held()
        transport: asyncio.Transport | None = self._wire.asyncio_transport
        return transport

    # -- reading the request ----------------------------------------------------------------

    def getAllHeaders(self) -> dict[bytes, bytes]:
        """Return every request header as ``{lowercased name: last value}``."""
        return {name: values[-1] for name, values in self.requestHeaders._raw.items()}

    def getCookie(self, key: bytes) -> bytes | None:
        """Return the value of cookie ``key`` the client sent, or None."""
        return self.received_cookies.get(key)

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
            self._rare_state().forwarded_client = kind("TCP", view.client, view.client_port)
        secure = self.isSecure() if view.scheme is None else view.scheme == "https"
        self._rare_state().forwarded_secure = secure
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
        forced = self._rare_view().forced_host
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
        self._rare_state().forced_host = address("TCP", text, port)
        header = b"[" + name + b"]" if is_v6 else name
        self._forced_secure = ssl
        # The default port is the scheme's the request ends up with: a request that
        # arrived over TLS stays secure (as in Twisted), so 443 is its default too.
        if port != (443 if self.isSecure() else 80):
            header += b":%d" % port
        self.requestHeaders.setRawHeaders(b"host", [header])

    def isSecure(self) -> bool:
        """Return True when the connection is TLS (or ``setHost`` or a trusted proxy said so)."""
        forwarded = self._rare_view().forwarded_secure
        if forwarded is not None:
            return forwarded or self._forced_secure
        if self._forced_secure:
            return True
        transport = self._wire.asyncio_transport
        return transport is not None and transport.get_extra_info("sslcontext") is not None

    def getRequestHostname(self) -> bytes:
        """Return the host the client asked for (``Host`` without port), else our address."""
        host = self.requestHeaders._get(b"host")
        if host:
            value = host[0]
            if value.startswith(b"["):  # IPv6 literal: [::1]:8080
                return value[1 : value.find(b"]")] if b"]" in value else value
            return value.rsplit(b":", 1)[0] if b":" in value else value
        address = self.getHost()
        return b"localhost" if isinstance(address, UNIXAddress) else address.host.encode()

    # -- shaping the response ---------------------------------------------------------------

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

    def writeSequence(self, data: list[bytes]) -> None:
        """Write each item of ``data`` in turn."""
        for item in data:
            self.write(item)

    # -- lifecycle notifications ------------------------------------------------------------

    # -- flow control -----------------------------------------------------------------------

    async def drain(self) -> None:
        """Wait until the transport wants more data (returns at once if it does).

        ``async def`` writers call ``await request.drain()`` between writes so a slow client
        slows them down instead of filling memory. Returns at once after connection loss.
        """
        if self._held is not None:
            self.flush_held()
        await self._wire.drain()

    # -- misc -------------------------------------------------------------------------------


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
