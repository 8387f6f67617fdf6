"""What the HTTP/1.1 channel's modules share, and what it needs of the layers above it.

:class:`~treadle.web._channel.HTTPChannel` knows bytes and framing only: the request objects
it makes, the factory that made it and the protocol a connection may switch to are
described here as ``typing.Protocol`` s, by what the channel calls on them, so that the
channel imports nothing above it (``treadle.web.http`` and ``treadle.web.server`` provide
them). Also here, for the channel and its mixins alike: the read-ahead bound, and a refused
request and the bytes that answer it (a pure function, tested without I/O).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final, Protocol

from treadle.internet._timers import TimerHeap
from treadle.web._framing import SERVER_LINE, date_header, status_line
from treadle.web._parser import Limits, Message
from treadle.web._status import RESPONSES

__all__ = [
    "READ_AHEAD",
    "ChannelFactory",
    "ChannelRequest",
    "Rejection",
    "SwitchedProtocol",
    "refusal",
]

#: Bytes read ahead while a response is outstanding (Twisted reads 16 KiB optimistically):
#: enough to notice a client that closes, small enough not to buffer a flood.
READ_AHEAD: Final = 64 * 1024


class Rejection:
    """A request the channel refused while parsing; answered in its turn, then we close."""

    __slots__ = ("code", "reason")

    def __init__(self, code: int, reason: str) -> None:
        self.code = code
        self.reason = reason


def refusal(code: int) -> bytes:
    """The complete response refusing a request with ``code`` (the connection then closes).

    A 400 is Twisted's answer to a malformed request, byte for byte: the status line alone,
    the connection closing after it (which is how the client knows the end). Any other
    code gets a small page naming the status only: nothing of the request is reflected.
    """
    if code == 400:
        return b"HTTP/1.1 400 Bad Request\r\n\r\n"
    phrase = RESPONSES.get(code, b"Error")
    body = b"<html><body><h1>%d %s</h1></body></html>" % (code, phrase)
    return (
        status_line(code)
        + SERVER_LINE
        + date_header()
        + b"Content-Type: text/html\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % len(body)
        + body
    )


class ChannelRequest(Protocol):
    """What the channel needs of the request objects its factory makes."""

    def receive_message(self, message: Message) -> None:
        """Take a parsed request and answer it (now, or later with ``request_done``)."""
        ...

    def connectionLost(self, reason: Exception) -> None:
        """The connection ended before the response was finished."""
        ...

    def flush_held(self) -> None:
        """Send what the request holds back (its first write) before the channel closes."""
        ...


class ChannelFactory(Protocol):
    """What the channel needs of the factory that made it (an ``HTTPFactory``)."""

    #: Called with the channel to make each request.
    requestFactory: Callable[[Any], ChannelRequest]
    maxPipelined: int
    timeOut: float
    headTimeout: float
    bodyTimeout: float
    lingerTime: float
    minBodyRate: float
    minBodyRateGrace: float

    #: True once the factory's shutdown began: connections close after their response.
    shutting_down: bool

    def limits(self) -> Limits:
        """The size limits connections made now apply."""
        ...

    def timing(self) -> tuple[TimerHeap, Callable[[Callable[[], object]], object]]:
        """The deadline heap of the running loop (or test clock), and its ``call_soon``."""
        ...

    def connection_opened(self, channel: Any) -> bool:
        """Count a new connection (a channel); False when the factory has all it accepts."""
        ...

    def connection_closed(self, channel: Any) -> None:
        """Forget a connection (a channel) that ended."""
        ...

    def log(self, request: Any) -> None:
        """Write the access log line of a finished request."""
        ...


class SwitchedProtocol(Protocol):
    """What a connection is handed to when its request switches protocols (``101``).

    An :class:`asyncio.Protocol` (``connection_made``, ``data_received``, ``eof_received``,
    ``connection_lost``, ``pause_writing``, ``resume_writing``) plus ``close_when_idle``.
    See :meth:`treadle.web._channel.HTTPChannel.switch_protocol`.
    """

    def connection_made(self, transport: Any) -> None:
        """The connection is this protocol's from now: ``transport`` is its asyncio transport."""
        ...

    def data_received(self, data: bytes) -> None:
        """Bytes from the peer (the first call has those read past the request's head)."""
        ...

    def eof_received(self) -> bool | None:
        """The peer half-closed; return True to keep the connection open."""
        ...

    def connection_lost(self, exc: Exception | None) -> None:
        """The connection ended: None when closed cleanly, ``ConnectionAborted`` when the
        server cut it off (shutdown's grace over), else the error."""
        ...

    def pause_writing(self) -> None:
        """The transport's buffer went over its high-water mark."""
        ...

    def resume_writing(self) -> None:
        """The transport's buffer drained below its low-water mark."""
        ...

    def close_when_idle(self) -> None:
        """The server is shutting down: end the conversation soon and close the transport."""
        ...
