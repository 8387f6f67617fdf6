"""What a WebSocket connection accepts: :class:`WebSocketLimits`, on for every connection.

The limits are enforced by the frame parser (:mod:`treadle.web._websocket_frames`: frame and
message sizes, and decompression bounded by what the message may still grow by) and by the
connection (:mod:`treadle.web._websocket_wire`: queued bytes, keepalive, the close handshake's
time). :func:`agreed_deflate` turns permessage-deflate as wsproto negotiated it in the opening
handshake into the parser's compression state.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from wsproto.extensions import PerMessageDeflate

from treadle.web._websocket_frames import Deflate

__all__ = ["WebSocketLimits", "agreed_deflate"]

#: 1 MiB: the websockets library's default too (aiohttp allows 4 MiB, uvicorn 16 MiB).
DEFAULT_MAX_MESSAGE_SIZE: Final = 1 << 20
#: A frame is never larger than the message it belongs to, once decompressed.
DEFAULT_MAX_FRAME_SIZE: Final = 1 << 20
#: Bytes sent but not yet taken by the peer before the connection is dropped: four messages
#: of the largest size, for code that ignores the backpressure below.
DEFAULT_MAX_QUEUED_BYTES: Final = 4 << 20
#: Where backpressure starts (producers paused, ``await ws.send`` waits): asyncio's default.
DEFAULT_WRITE_HIGH_WATER: Final = 64 * 1024
#: The websockets library and uvicorn ping every 20 s and wait 20 s for the answer.
DEFAULT_PING_INTERVAL: Final = 20.0
DEFAULT_PONG_TIMEOUT: Final = 20.0
#: How long a close frame waits for the peer's (websockets: 10 s), and a client for its
#: handshake's answer.
DEFAULT_CLOSE_TIMEOUT: Final = 10.0
DEFAULT_OPEN_TIMEOUT: Final = 10.0


@dataclass(frozen=True, slots=True)
class WebSocketLimits:
    """The limits and timers of WebSocket connections (all on by default).

    Attributes:
        maxMessageSize: Bytes of one received message, after decompression; more closes
            the connection with ``1009``.
        maxFrameSize: Payload bytes of one received frame, as announced in its header;
            more closes with ``1009`` before any of it is read.
        maxQueuedBytes: Bytes sent but not yet taken by the peer; more drops the connection
            (a peer that reads nothing while the program ignores backpressure).
        writeHighWater: Bytes queued at which a producer attached with
            ``attachProducer`` is paused (and ``await ws.send`` waits), until the queue
            drains to a quarter of it.
        pingInterval: Seconds of silence from the peer after which a ping is sent (None:
            never).
        pongTimeout: Seconds the peer has to answer that ping with anything; then the
            connection closes with ``1011`` and is dropped.
        closeTimeout: Seconds a close frame waits for the peer's before the connection is
            dropped anyway.
        openTimeout: Seconds a client waits for the answer to its opening handshake.
        compression: Whether permessage-deflate is negotiated when the peer offers it
            (clients offer it when true).
    """

    maxMessageSize: int = DEFAULT_MAX_MESSAGE_SIZE
    maxFrameSize: int = DEFAULT_MAX_FRAME_SIZE
    maxQueuedBytes: int = DEFAULT_MAX_QUEUED_BYTES
    writeHighWater: int = DEFAULT_WRITE_HIGH_WATER
    pingInterval: float | None = DEFAULT_PING_INTERVAL
    pongTimeout: float = DEFAULT_PONG_TIMEOUT
    closeTimeout: float = DEFAULT_CLOSE_TIMEOUT
    openTimeout: float = DEFAULT_OPEN_TIMEOUT
    compression: bool = True


def agreed_deflate(extension: PerMessageDeflate, server: bool) -> Deflate | None:
    """The compression state of a connection whose handshake agreed to ``extension``.

    Args:
        extension: wsproto's permessage-deflate after ``accept`` (server) or ``finalize``
            (client); None is returned when it was not agreed.
        server: Whether this is the server's side.
    """
    if not extension.enabled():
        return None
    client_bits = extension.client_max_window_bits
    server_bits = extension.server_max_window_bits
    client_reset = extension.client_no_context_takeover
    server_reset = extension.server_no_context_takeover
    if server:
        return Deflate(client_bits, client_reset, server_bits, server_reset)
    return Deflate(server_bits, server_reset, client_bits, client_reset)
