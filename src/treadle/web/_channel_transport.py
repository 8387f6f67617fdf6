"""The channel's connection both ways between Twisted's transports and asyncio's.

- :class:`TwistedTransportAdapter`: a Twisted transport (a test's ``StringTransport``, a
  wrapping protocol's) seen as the asyncio transport the channel writes to, when Twisted code
  hands the channel one (``makeConnection``).
- :class:`ChannelTransport`: the reverse, the connection as the Twisted transport a request or
  program reads from ``channel.transport``.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from treadle.internet._transport import Transport
from treadle.internet.interfaces import ISSLTransport

__all__ = ["ChannelTransport", "TwistedTransportAdapter"]

error_log = logging.getLogger("treadle.error")


class TwistedTransportAdapter:
    """A Twisted transport seen as the asyncio transport the channel writes to.

    Writes and closes go to the Twisted transport; reading pauses through its
    ``pauseProducing``/``resumeProducing`` when it has them. It reports no write buffer
    (a Twisted transport buffers on its own and tells producers, not writers). The channel
    is registered with it as a streaming producer, as Twisted's is, until it closes.
    """

    __slots__ = ("_closing", "_registered", "_transport")

    def __init__(self, transport: Any, channel: Any) -> None:
        self._transport = transport
        self._closing = False
        self._registered = False
        register = getattr(transport, "registerProducer", None)
        if register is not None and getattr(transport, "producer", None) is None:
            register(channel, True)
            self._registered = True

    def _unregister(self) -> None:
        if self._registered:
            self._registered = False
            self._transport.unregisterProducer()

    def write(self, data: bytes) -> None:
        self._transport.write(data)

    def close(self) -> None:
        if not self._closing:
            self._closing = True
            self._unregister()
            self._transport.loseConnection()

    def abort(self) -> None:
        self._closing = True
        self._unregister()
        abort = getattr(self._transport, "abortConnection", None)
        (abort or self._transport.loseConnection)()

    def is_closing(self) -> bool:
        return self._closing

    def pause_reading(self) -> None:
        pause = getattr(self._transport, "pauseProducing", None)
        if pause is not None:
            pause()

    def resume_reading(self) -> None:
        resume = getattr(self._transport, "resumeProducing", None)
        if resume is not None:
            resume()

    def get_write_buffer_size(self) -> int:
        return 0

    def can_write_eof(self) -> bool:
        return False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        # isSecure() asks for "sslcontext": a Twisted TLS transport provides ISSLTransport.
        if name == "sslcontext" and ISSLTransport.providedBy(self._transport):
            return self._transport
        return default


class ChannelTransport(Transport):
    """An HTTP connection as Twisted's transport (``request.transport``, ``channel.transport``).

    Closing and producers go through the channel, so its state machine and the response
    being answered stay right: ``loseConnection`` first sends what the response holds,
    ``abortConnection`` is the channel's abort, a registered producer feeds the response.

    Args:
        raw: The channel's asyncio transport.
        channel: The channel.
    """

    def __init__(self, raw: asyncio.BaseTransport, channel: Any) -> None:
        super().__init__(raw, channel, server=True)
        self.channel = channel

    def write(self, data: bytes) -> None:
        """Send ``data`` after what the response being answered wrote so far."""
        channel = self.channel
        active = channel._active
        if active is not None:
            active.flush_held()
        channel.uncork()  # responses held for the loop's next turn go first
        super().write(data)

    def loseConnection(self) -> None:
        """Send what the response holds, then close (queued requests are dropped)."""
        if self.disconnected or self.disconnecting:
            return
        self.disconnecting = True
        self.channel.loseConnection()

    def abortConnection(self) -> None:
        """Drop the connection at once; the response in progress learns ``ConnectionAborted``."""
        if self.disconnected:
            return
        self.disconnecting = True
        self._aborted = True
        self._reset_on_close()
        self.channel.abort()

    def registerProducer(self, producer: Any, streaming: bool) -> None:
        """Let ``producer`` feed the response being answered (see the channel's)."""
        self.channel.registerProducer(producer, streaming)

    def unregisterProducer(self) -> None:
        """Detach the producer."""
        self.channel.unregisterProducer()

    def pauseProducing(self) -> None:
        """Stop reading requests until :meth:`resumeProducing`."""
        self.channel._pause_reading()

    def resumeProducing(self) -> None:
        """Read requests again."""
        self.channel._resume_reading()

    def _tls_failed(self, reason: BaseException) -> None:
        error_log.error("TLS could not start on %r: %s", self.channel, reason)
        self.channel.abort()

    def logPrefix(self) -> str:
        """Return the prefix of this connection's log lines."""
        return type(self.channel).__name__
