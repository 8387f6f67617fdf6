"""A request on a channel of the program's own making: Twisted's channel interface, adapted.

Programs and their test suites drive a ``Request`` by hand over a channel object they wrote
(Twisted's ``DummyChannel`` is the usual one): ``Request(channel)``, ``requestReceived``, then
they read what reached ``channel.transport``. Such a channel speaks Twisted's interface —
``writeHeaders``, ``write``, ``requestDone``, ``getPeer``, ``getHost``, ``isSecure``,
``registerProducer`` — not the fast internal one of :class:`~treadle.web._channel.HTTPChannel`.

:class:`HandChannel` stands between: the request talks to it exactly as to an
``HTTPChannel`` (so the request's fast path has no second branch), and it turns each call
into the Twisted-style call on the program's channel. Writes go out at once, never held for
the end of the loop turn, because a hand-driven test reads the transport straight after
``write``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["HandChannel", "HeadSplitter"]

_HEAD_END = b"\r\n\r\n"


class HeadSplitter:
    """The request's view of the wire: the head goes to ``writeHeaders``, the rest to ``write``.

    The request writes its head (and perhaps the start of the body) as one bytes object; the
    first write is split at the blank line, the head parsed back into Twisted's
    ``writeHeaders(version, code, reason, headers)`` arguments. A channel without
    ``writeHeaders`` gets the bytes as they are on its ``transport``.
    """

    def __init__(self, channel: Any) -> None:
        self._channel = channel
        self._head_sent = False

    def write(self, data: bytes) -> None:
        """Pass ``data`` on to the channel (the first time, as head and body)."""
        channel = self._channel
        if self._head_sent:
            _channel_write(channel, data)
            return
        self._head_sent = True
        head, _, body = data.partition(_HEAD_END)
        write_headers = getattr(channel, "writeHeaders", None)
        if write_headers is None:
            _channel_write(channel, data)
            return
        status, *lines = head.split(b"\r\n")
        version, code, reason = [*status.split(b" ", 2), b"", b""][:3]
        headers = [tuple(line.split(b": ", 1)) for line in lines]
        write_headers(version, code, reason, headers)
        if body:
            _channel_write(channel, body)

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        """Only ``sslcontext`` means something here: set when the channel says it is secure."""
        if name == "sslcontext":
            is_secure = getattr(self._channel, "isSecure", None)
            return True if is_secure is not None and is_secure() else default
        return default

    def is_closing(self) -> bool:
        """Whether the channel's transport was closed."""
        transport = getattr(self._channel, "transport", None)
        return bool(getattr(transport, "disconnecting", False))

    def get_write_buffer_size(self) -> int:
        """Nothing is buffered: the channel takes writes at once."""
        return 0

    def get_write_buffer_limits(self) -> tuple[int, int]:
        """Limits that never make a writer wait."""
        return (0, 1 << 30)


def _channel_write(channel: Any, data: bytes) -> None:
    write = getattr(channel, "write", None)
    if write is None:
        channel.transport.write(data)
    else:
        write(data)


class HandChannel:
    """What a request needs of its channel, served by a Twisted-style channel object."""

    def __init__(self, channel: Any) -> None:
        self.channel = channel
        # Typed as Any: it stands in for an asyncio transport (the part a request uses).
        self.asyncio_transport: Any = HeadSplitter(channel)

    @property
    def persistent(self) -> bool:
        """The channel's own ``persistent`` flag (False when it has none)."""
        return bool(getattr(self.channel, "persistent", False))

    @property
    def factory(self) -> Any:
        """The channel's factory, or a stand-in whose ``log`` does nothing."""
        factory = getattr(self.channel, "factory", None)
        return factory if hasattr(factory, "log") else _NoLog

    def call_soon(self, callback: Callable[[], object]) -> None:
        """Run ``callback`` now: a hand-driven request sends its writes at once."""
        callback()

    def request_done(self, request: Any, keeps: bool) -> None:
        """Tell the channel the response is complete (Twisted's ``requestDone``)."""
        done = getattr(self.channel, "requestDone", None)
        if done is not None:
            done(request)

    def peer_address(self) -> Any:
        """The client's address, from the channel's ``getPeer``."""
        return self.channel.getPeer()

    def host_address(self) -> Any:
        """The local address, from the channel's ``getHost``."""
        return self.channel.getHost()

    def registerProducer(self, producer: Any, streaming: bool) -> None:
        """Hand the producer to the channel."""
        self.channel.registerProducer(producer, streaming)

    def unregisterProducer(self) -> None:
        """Take the producer back from the channel."""
        self.channel.unregisterProducer()

    async def drain(self) -> None:
        """Nothing to wait for: the channel takes writes at once."""

    def loseConnection(self) -> None:
        """Close the channel's connection."""
        self.channel.loseConnection()


class _NoLog:
    @staticmethod
    def log(request: Any) -> None:
        """Log nothing."""
