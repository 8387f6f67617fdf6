"""Test doubles for treadle applications and for treadle itself.

- :class:`StringTransport`: an in-memory transport recording what a protocol writes.
- :func:`connect`: a channel of a :class:`~treadle.web.server.Site` on a ``StringTransport``,
  with time driven by a :class:`~treadle.internet.task.Clock` — no sockets, no loop, no waiting.
- :func:`request_bytes`: build the bytes of an HTTP/1.1 request.

This ``StringTransport`` stands in for the *asyncio* transport under treadle's HTTP channel.
To test a Twisted-style protocol (``dataReceived``, ``transport.write``, ``loseConnection``),
use :class:`treadle.internet.testing.StringTransport`, the port of Twisted's.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from treadle.internet.task import Clock
from treadle.web.http import HTTPChannel, HTTPFactory

__all__ = ["Clock", "StringTransport", "connect", "request_bytes"]


class StringTransport:
    """An asyncio-style transport that keeps everything written to it.

    Attributes:
        written: Every chunk passed to ``write``, in order.
        closed: ``close()`` was called (buffered data would then be flushed).
        aborted: ``abort()`` was called (buffered data would be dropped).
        reading: False while the protocol has paused reading.
    """

    def __init__(
        self,
        peer: tuple[str, int] = ("10.0.0.1", 40000),
        host: tuple[str, int] = ("10.0.0.2", 8080),
    ) -> None:
        self.written: list[bytes] = []
        self.closed = False
        self.aborted = False
        self.reading = True
        self._extra = {"peername": peer, "sockname": host}

    def write(self, data: bytes) -> None:
        """Record ``data``."""
        if self.closed or self.aborted:
            raise RuntimeError("write to a closed transport")
        self.written.append(bytes(data))

    def writelines(self, data: Iterable[bytes]) -> None:
        """Record each item of ``data``."""
        for item in data:
            self.write(item)

    def value(self) -> bytes:
        """Return everything written so far as one bytes object."""
        return b"".join(self.written)

    def clear(self) -> None:
        """Forget what was written so far."""
        self.written.clear()

    def close(self) -> None:
        """Mark the transport closed."""
        self.closed = True

    def abort(self) -> None:
        """Mark the transport aborted."""
        self.aborted = True

    def is_closing(self) -> bool:
        """True after ``close()`` or ``abort()``."""
        return self.closed or self.aborted

    def pause_reading(self) -> None:
        """Record that reading is paused."""
        self.reading = False

    def resume_reading(self) -> None:
        """Record that reading resumed."""
        self.reading = True

    def get_write_buffer_size(self) -> int:
        """Nothing is ever buffered."""
        return 0

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        """Return ``peername``/``sockname`` as given at construction."""
        return self._extra.get(name, default)


def connect(
    factory: HTTPFactory, clock: Clock | None = None
) -> tuple[HTTPChannel, StringTransport]:
    """Connect a new channel of ``factory`` to a :class:`StringTransport`.

    Args:
        factory: Usually a :class:`~treadle.web.server.Site`. Its timers run on ``clock``.
        clock: The clock driving timeouts; the factory's own when None.

    Returns:
        ``(channel, transport)``; feed bytes with ``channel.data_received(...)``.
    """
    if clock is not None:
        factory._clock = clock
    if factory._clock is None:
        factory._clock = Clock()
    channel = factory.buildProtocol(None)
    transport = StringTransport()
    channel.connection_made(transport)  # type: ignore[arg-type]
    return channel, transport


def request_bytes(
    method: str = "GET",
    target: str = "/",
    headers: Iterable[tuple[str, str]] = (("Host", "example.com"),),
    body: bytes = b"",
    version: str = "HTTP/1.1",
) -> bytes:
    """Build a request; a ``Content-Length`` is added for a body unless headers give framing."""
    lines = [f"{method} {target} {version}"]
    names = set()
    for name, value in headers:
        lines.append(f"{name}: {value}")
        names.add(name.lower())
    if body and "content-length" not in names and "transfer-encoding" not in names:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
