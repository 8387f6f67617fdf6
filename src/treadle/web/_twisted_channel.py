"""The channel as Twisted code drives it: Twisted transports, Twisted's request interface.

treadle's ports drive :class:`~treadle.web.http.HTTPChannel` as an :class:`asyncio.Protocol`;
none of this module runs for them. Twisted programs and test suites drive it their way, and
this module holds what that takes, kept off the channel's own module and its fast path:

- :class:`TwistedChannelMixin`: Twisted's entry points (``makeConnection`` with a Twisted
  transport, then ``dataReceived``/``connectionLost``) and the rest of the public surface of
  Twisted's ``HTTPChannel``: ``requests``, ``checkPersistence``, ``writeHeaders``, the channel
  as the push producer its transport pauses, and the ``TimeoutMixin`` and limit attributes a
  program may set on one channel (``timeOut``, ``callLater``, ``maxHeaders``,
  ``totalHeadersSize``), which take precedence over its factory's.
- the transports both ways (:mod:`treadle.web._channel_transport`).
- :class:`InterfaceRequest`: a request object that offers only what Twisted's channel calls
  (``gotLength``, ``handleContentChunk``, ``requestReceived``...: a ``proxyForInterface``
  proxy, or a class of the program's own), driven through those calls.

A channel driven outside a running event loop (a test feeding a ``StringTransport``) sends a
response's first write at once, as Twisted does, rather than holding it for the end of the
loop's turn: nobody would turn the loop.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import time
from collections.abc import Callable
from typing import Any, Final

from treadle.internet._timers import TimerHeap
from treadle.internet._transport import Transport
from treadle.internet.error import ConnectionDone
from treadle.python.failure import Failure
from treadle.web._channel_transport import TwistedTransportAdapter
from treadle.web._parser import Limits
from treadle.web._state import DONE, UPGRADED
from treadle.web.http_headers import Headers, _table_of

__all__ = [
    "NO_TIMEOUT",
    "CallNow",
    "ChannelSettings",
    "InterfaceRequest",
    "TwistedChannelMixin",
    "gives_class_settings",
]

#: Body bytes handed to ``handleContentChunk`` at a time (a spooled body is not read whole).
_CONTENT_PIECE: Final = 64 * 1024
#: What a timeout of None (Twisted: no timeout) stands for: a year.
NO_TIMEOUT: Final = 365 * 24 * 3600.0


def _call_or_none(transport: Any, name: str) -> Any:
    method = getattr(transport, name, None)
    return method() if method is not None else None


def _one_line(component: bytes) -> bytes:
    """``component`` with each line break (CR, LF or CRLF) turned into one space."""
    return b" ".join(component.splitlines())


# -- running callbacks without a loop ------------------------------------------------------------


class CallNow:
    """``call_soon`` for a channel no loop drives: run the callback now, or right after the
    callback running now (so callbacks never nest, and a pull producer cannot recurse)."""

    __slots__ = ("_pending",)

    def __init__(self) -> None:
        self._pending: list[Callable[[], object]] | None = None

    def __call__(self, callback: Callable[[], object]) -> None:
        pending = self._pending
        if pending is not None:
            pending.append(callback)
            return
        pending = self._pending = [callback]
        try:
            while pending:
                pending.pop(0)()
        finally:
            self._pending = None


# -- per-channel settings --------------------------------------------------------------------------


class ChannelSettings:
    """Timeouts and limits a program set on one channel, over those of its factory.

    Every attribute not set here is the factory's (``timeOut``, ``headTimeout``,
    ``bodyTimeout``, ``lingerTime``, ``minBodyRate``...).

    Attributes:
        factory: The channel's factory (None until the connection is made).
        call_later: A ``callLater`` the channel's timers run on instead of the factory's.
        max_headers: Field lines in a head, instead of the factory's ``maxHeaders``.
        head_size: Bytes of a head, instead of the factory's ``maxHeadSize``.
    """

    def __init__(self) -> None:
        self.factory: Any = None
        self.call_later: Callable[..., Any] | None = None
        self.max_headers: int | None = None
        self.head_size: int | None = None

    def __getattr__(self, name: str) -> Any:
        # Only reached for what is not set here: the factory's value.
        if name == "factory":
            raise AttributeError(name)
        return getattr(self.factory, name)

    def set_timeout(self, seconds: float | None) -> None:
        """Twisted's one inactivity timeout: it bounds every silence treadle times."""
        value = NO_TIMEOUT if seconds is None else float(seconds)
        self.timeOut = self.headTimeout = self.bodyTimeout = value

    def limits(self) -> Limits:
        """The factory's limits, with this channel's own in place of the factory's."""
        base: Limits = self.factory.limits()
        if self.max_headers is None and self.head_size is None:
            return base
        return Limits(
            base.request_line,
            base.field_line,
            base.head if self.head_size is None else self.head_size,
            base.fields if self.max_headers is None else self.max_headers,
            base.body,
            base.chunk_extensions,
            base.trailers,
        )

    def timing(self) -> tuple[TimerHeap, Callable[[Callable[[], object]], object]]:
        """The factory's timing, or a deadline heap on this channel's ``call_later``."""
        call_later = self.call_later
        if call_later is None:
            timing: tuple[TimerHeap, Callable[[Callable[[], object]], object]]
            timing = self.factory.timing()
            return timing
        clock = getattr(call_later, "__self__", call_later)
        seconds = getattr(clock, "seconds", time.monotonic)
        return TimerHeap(clock, call_later, seconds), functools.partial(call_later, 0)


# -- a request offering only Twisted's channel-to-request interface --------------------------------


class InterfaceRequest:
    """Drives a request object through the calls Twisted's channel makes on its requests.

    For a ``requestFactory`` whose objects lack treadle's ``receive_message`` (a
    ``proxyForInterface`` proxy of a request, or a class written against Twisted's interface):
    headers go into its ``requestHeaders``, then ``parseCookies()``, ``gotLength(length)``,
    ``handleContentChunk(data)`` for the body and ``requestReceived(method, uri, version)``,
    in Twisted's order. It compares equal to the object it drives, so that object's
    ``finish`` (``request_done`` or ``requestDone``) is recognised.

    Args:
        request: The object the request factory made.
        channel: The channel it answers on.
    """

    __slots__ = ("channel", "request")

    def __init__(self, request: Any, channel: Any) -> None:
        self.request = request
        self.channel = channel

    def receive_message(self, message: Any) -> None:
        """Hand over a parsed request (see the class docstring)."""
        # (Trailer fields are not handed over: Twisted's request interface has none.)
        method, uri, http11, headers, content, _keep_alive, _trailers = message
        request = self.request
        version = b"HTTP/1.1" if http11 else b"HTTP/1.0"
        received = request.requestHeaders
        table = _table_of(headers)
        for name, values in table.items():
            received.setRawHeaders(name, values)
        request.parseCookies()
        self.channel.checkPersistence(request, version)
        length = table.get(b"content-length")
        request.gotLength(int(length[0]) if length else None)
        if content is not None:
            try:
                for piece in iter(functools.partial(content.read, _CONTENT_PIECE), b""):
                    request.handleContentChunk(piece)
            finally:
                content.close()
        request.requestReceived(method, uri, version)

    def connectionLost(self, reason: Exception) -> None:
        """Tell the request, with a Failure (what Twisted's channel passes)."""
        self.request.connectionLost(Failure(reason))

    def flush_held(self) -> None:
        """Send what the request holds back, if it holds anything (a treadle request)."""
        flush = getattr(self.request, "flush_held", None)
        if flush is not None:
            flush()

    def __eq__(self, other: object) -> bool:
        return other is self or bool(self.request == other)

    def __ne__(self, other: object) -> bool:
        return not self == other

    def __hash__(self) -> int:
        return hash(self.request)


# -- settings a program may set on one channel ---------------------------------------------------

_ABSENT: Final = object()


class _Setting:
    """A timeout or limit of Twisted's channel: the factory's, unless set on the channel.

    Read on the class, the default value (as Twisted's class attributes are plain values).
    """

    def __init__(self, name: str, doc: str) -> None:
        self.name = name
        self.__doc__ = doc

    def __get__(self, channel: Any, owner: Any = None) -> Any:
        if channel is None:
            return _default_of(owner, self.name)
        settings = channel._settings if channel._settings is not None else channel.factory
        if settings is None:
            return _default_of(type(channel), self.name)
        if self.name == "timeOut":
            return settings.timeOut
        limits: Limits | None = getattr(channel, "_limits", None)
        if limits is None:
            limits = settings.limits()
        return limits.fields if self.name == "maxHeaders" else limits.head

    def __set__(self, channel: Any, value: Any) -> None:
        _SETTERS[self.name](channel._own_settings(), value)
        channel._setting_changed()


def _default_of(channel_class: Any, name: str) -> Any:
    factory = channel_class.default_factory
    return None if factory is None else getattr(factory, _FACTORY_NAMES[name])


def _set_max_headers(settings: ChannelSettings, value: int) -> None:
    settings.max_headers = value


def _set_head_size(settings: ChannelSettings, value: int) -> None:
    settings.head_size = value


_SETTING_NAMES: Final = ("timeOut", "maxHeaders", "totalHeadersSize")
_FACTORY_NAMES: Final = {"timeOut": "timeOut", "maxHeaders": "maxHeaders",
                         "totalHeadersSize": "maxHeadSize"}  # fmt: skip
_SETTERS: Final[dict[str, Callable[[ChannelSettings, Any], None]]] = {
    "timeOut": ChannelSettings.set_timeout,
    "maxHeaders": _set_max_headers,
    "totalHeadersSize": _set_head_size,
}


def gives_class_settings(channel_class: type[Any]) -> bool:
    """Whether ``channel_class`` gives ``timeOut``, ``maxHeaders`` or ``totalHeadersSize``
    plain values in its body (see :meth:`TwistedChannelMixin.adopt_class_settings`)."""
    return any(
        not isinstance(inspect.getattr_static(channel_class, name), _Setting)
        for name in _SETTING_NAMES
    )


# -- the mixin -----------------------------------------------------------------------------------


class TwistedChannelMixin:
    """The part of Twisted's ``HTTPChannel`` surface that treadle's channel serves from here.

    Mixed into :class:`~treadle.web.http.HTTPChannel`; see the module docstring.
    """

    __slots__ = ()

    # What the mixin reads of the channel (slots of HTTPChannel).
    factory: Any
    asyncio_transport: Any
    uncork: Callable[[], None]
    call_soon: Any
    _active: Any
    _queue: list[Any] | None
    _state: int
    _limits: Any
    _settings: Any
    _producer: Any
    _twisted_transport: Any
    _peer: Any
    _host: Any

    # -- entry points ------------------------------------------------------------------------

    def makeConnection(self, transport: Any) -> None:
        """Start serving a connection given as a Twisted transport.

        treadle's own TCP transport is unwrapped: the channel takes over its asyncio
        transport, so such a connection runs exactly as one the port made. Any other
        transport (``write``, ``loseConnection``, ``getPeer``, ...) is adapted, and the
        channel registers with it as a streaming producer, as Twisted's does.

        Args:
            transport: The connection's Twisted transport.
        """
        channel: Any = self
        factory = self.factory
        if factory is None:
            make = type(self).default_factory  # type: ignore[attr-defined]
            if make is None:
                raise RuntimeError("HTTPChannel needs a factory (or site) before it connects")
            factory = self.factory = make()
        try:
            channel.requestFactory  # noqa: B018  # set by now, unless made without a factory
        except AttributeError:
            channel.requestFactory = factory.requestFactory
        self.adopt_class_settings()
        raw = getattr(transport, "_raw", None) if isinstance(transport, Transport) else None
        if raw is not None and not transport.disconnected:
            raw.set_protocol(self)
            channel.connection_made(raw)
            return
        self._twisted_transport = transport
        self._peer = _call_or_none(transport, "getPeer")
        self._host = _call_or_none(transport, "getHost")
        channel.connection_made(TwistedTransportAdapter(transport, self))
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            # Nobody turns a loop: a response's first write goes out at once (Twisted's way).
            self.call_soon = CallNow()

    def dataReceived(self, data: bytes) -> None:
        """Bytes from a Twisted transport (see :meth:`makeConnection`)."""
        channel: Any = self
        channel.data_received(data)

    def connectionLost(self, reason: Any = None) -> None:
        """A Twisted transport's connection ended (``reason``: a Failure or exception)."""
        if self.asyncio_transport is None:
            return
        value = getattr(reason, "value", reason)
        if isinstance(value, type):
            value = value()  # an exception class given for an instance
        channel: Any = self
        channel.connection_lost(
            None if value is None or isinstance(value, ConnectionDone) else value
        )

    # -- per-channel settings (Twisted's TimeoutMixin and limits) ---------------------------

    def _own_settings(self) -> ChannelSettings:
        settings = self._settings
        if not isinstance(settings, ChannelSettings):
            settings = self._settings = ChannelSettings()
            settings.factory = self.factory
        return settings

    def adopt_class_settings(self) -> None:
        """Apply what a subclass (or a test patching the class) set as plain class attributes.

        ``timeOut = 30``, ``maxHeaders = 50`` or ``totalHeadersSize = 8192`` in a class body
        hide this class's descriptors; the values then apply to the channel as if set on it.
        """
        seen: set[str] = set()
        for klass in type(self).__mro__:
            if klass is TwistedChannelMixin:
                break
            for name in _SETTING_NAMES:
                value = klass.__dict__.get(name, _ABSENT)
                if value is _ABSENT or name in seen:
                    continue
                seen.add(name)
                if not isinstance(value, _Setting):
                    _SETTERS[name](self._own_settings(), value)

    timeOut = _Setting(
        "timeOut",
        """Seconds of silence before the connection closes (Twisted's ``TimeoutMixin``).

        Reading gives the idle timeout in force (the factory's unless set on the channel);
        setting it on one channel makes it bound the wait for a head and between pieces of
        a body too, as Twisted's one timeout does (None: a year).""",
    )
    maxHeaders = _Setting(
        "maxHeaders", "Field lines allowed in a request head (the factory's by default)."
    )
    totalHeadersSize = _Setting(
        "totalHeadersSize", "Bytes allowed in a request head (the factory's ``maxHeadSize``)."
    )

    def setTimeout(self, period: float | None) -> float | None:
        """Change the timeout (None: none); return the previous one (``TimeoutMixin``)."""
        previous: float | None = self.timeOut
        self.timeOut = period
        return previous

    @property
    def callLater(self) -> Callable[..., Any]:
        """What the channel's timers are scheduled with (Twisted's ``TimeoutMixin``).

        Set it before the connection is made, e.g. to a ``task.Clock``'s ``callLater``.
        """
        settings = self._settings
        if isinstance(settings, ChannelSettings) and settings.call_later is not None:
            return settings.call_later
        clock: Any = getattr(self.factory, "reactor", None)
        if clock is None:
            from treadle.internet import reactor

            clock = reactor
        return clock.callLater  # type: ignore[no-any-return]

    @callLater.setter
    def callLater(self, call_later: Callable[..., Any]) -> None:
        self._own_settings().call_later = call_later

    def _setting_changed(self) -> None:
        if getattr(self, "_limits", None) is not None:
            self._limits = self._settings.limits()

    # -- Twisted's channel methods -----------------------------------------------------------

    @property
    def requests(self) -> list[Any]:
        """The request being answered, as a list of none or one (Twisted's ``requests``).

        treadle makes a request's object when its turn comes: requests still queued behind
        it are not listed.
        """
        active = self._active
        if active is None:
            return []
        if isinstance(active, InterfaceRequest):
            return [active.request]
        return [active]

    def checkPersistence(self, request: Any, version: bytes) -> bool:
        """Whether the connection may stay open after the response to ``request``.

        As Twisted: only an HTTP/1.1 request without ``Connection: close`` keeps it, and
        such a ``close`` is echoed in the response's headers.

        Args:
            request: The request (its ``requestHeaders`` are read).
            version: Its protocol version, e.g. ``b"HTTP/1.1"``.
        """
        connection = request.requestHeaders.getRawHeaders(b"connection")
        tokens = [t.lower() for t in connection[0].split(b" ")] if connection else []
        if version != b"HTTP/1.1":
            return False
        if b"close" in tokens:
            request.responseHeaders.setRawHeaders(b"connection", [b"close"])
            return False
        return True

    def requestDone(self, request: Any) -> None:
        """A request finished its response (how a request of Twisted's interface says so)."""
        channel: Any = self
        channel.request_done(request, True)

    def writeHeaders(self, version: bytes, code: bytes, reason: bytes, headers: Any) -> None:
        """Write a status line and headers; line breaks in them become spaces.

        Args:
            version: E.g. ``b"HTTP/1.1"``.
            code: The status code, as bytes.
            reason: The reason phrase.
            headers: A :class:`~treadle.web.http_headers.Headers` or ``(name, value)``
                pairs.
        """
        if isinstance(headers, Headers):
            pairs = [(n, v) for n, values in headers.getAllRawHeaders() for v in values]
        else:
            pairs = list(headers)
        lines = [version + b" " + code + b" " + reason + b"\r\n"]
        for name, value in pairs:
            lines.append(_one_line(name) + b": " + _one_line(value) + b"\r\n")
        lines.append(b"\r\n")
        self.write(b"".join(lines))

    def write(self, data: bytes) -> None:
        """Put ``data`` on the wire after what the response being answered wrote."""
        active = self._active
        if active is not None:
            active.flush_held()
        if self.asyncio_transport is not None:
            self.uncork()
            self.asyncio_transport.write(data)

    def writeSequence(self, iovec: list[bytes]) -> None:
        """Write each of ``iovec`` in turn."""
        self.write(b"".join(iovec))

    def getPeer(self) -> Any:
        """The client's address."""
        channel: Any = self
        return channel.peer_address()

    def getHost(self) -> Any:
        """Our own address on this connection."""
        channel: Any = self
        return channel.host_address()

    def isSecure(self) -> bool:
        """Whether the connection is TLS."""
        transport = self.asyncio_transport
        return transport is not None and transport.get_extra_info("sslcontext") is not None

    # -- the channel as its transport's push producer (Twisted's IPushProducer) --------------

    def pauseProducing(self) -> None:
        """The transport cannot take more: pause the response's producer and reading."""
        channel: Any = self
        if self.asyncio_transport is None:
            return
        channel.pause_writing()
        if self._active is None and self._state != UPGRADED:  # (upgraded: its protocol's)
            channel._pause_reading()

    def resumeProducing(self) -> None:
        """The transport takes more again: resume the response's producer and reading."""
        channel: Any = self
        if self.asyncio_transport is None:
            return
        channel.resume_writing()
        if (
            self._active is None
            and self._state < DONE
            and len(self._queue or ()) < self.factory.maxPipelined
        ):
            channel._resume_reading()

    def stopProducing(self) -> None:
        """The transport is going: stop the response's producer, if any."""
        producer = self._producer
        if producer is not None:
            producer.stopProducing()
