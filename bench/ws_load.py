"""A WebSocket echo load generator on raw sockets, for the ``websocket`` and ``ws-idle`` scenarios.

``echo``: ``--connections`` connections each keep ``--window`` small text messages in flight (send a
batch, wait for its echoes, send the next), for ``--warmup`` then ``--duration`` seconds; prints one
JSON line with the echoes received per second over the measured part. ``idle``: opens
``--connections`` connections, completes their handshakes, prints ``{"ready": N}``, then keeps them
open until stdin closes (the harness reads the server's memory meanwhile).

Frames are built once (masked, as a client must) and the echoes are counted by parsing frame
headers, so the client stays cheap: it runs pinned to its own core like wrk. No extension is
offered, so no server compresses.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import sys
import time

MESSAGE = b"Hello, world! 16"  # 16 bytes of text
MASK = b"\x01\x02\x03\x04"


def text_frame(payload: bytes) -> bytes:
    masked = bytes(b ^ MASK[i % 4] for i, b in enumerate(payload))
    return bytes([0x81, 0x80 | len(payload)]) + MASK + masked


def handshake(host: str, port: int, path: str) -> bytes:
    key = base64.b64encode(os.urandom(16))
    return (
        b"GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n"
        % (path.encode(), host.encode(), port, key)
    )


class EchoClient(asyncio.Protocol):
    """One connection: the upgrade, then batches of ``window`` messages, echoes counted."""

    def __init__(
        self, request: bytes, batch: bytes, window: int, stats: dict, ready: asyncio.Future
    ):
        self.request = request
        self.batch = batch
        self.window = window
        self.stats = stats
        self.ready = ready
        self.upgraded = False
        self.buffer = b""
        self.pending = 0
        self.running = False

    def connection_made(self, transport):
        self.transport = transport
        transport.write(self.request)

    def data_received(self, data):
        buf = self.buffer + data
        if not self.upgraded:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                self.buffer = buf
                return
            if not buf.startswith(b"HTTP/1.1 101"):
                self.ready.set_exception(RuntimeError(buf[:200].decode("latin-1")))
                self.transport.close()
                return
            self.upgraded = True
            buf = buf[end + 4 :]
            if not self.ready.done():
                self.ready.set_result(None)
        i, n, received = 0, len(buf), 0
        while i + 2 <= n:
            length = buf[i + 1] & 0x7F
            head = 2
            if length == 126:
                if i + 4 > n:
                    break
                length = int.from_bytes(buf[i + 2 : i + 4], "big")
                head = 4
            elif length == 127:
                if i + 10 > n:
                    break
                length = int.from_bytes(buf[i + 2 : i + 10], "big")
                head = 10
            if i + head + length > n:
                break
            if buf[i] & 0x0F in (1, 2) or buf[i] & 0x0F == 0:
                received += 1
            i += head + length
        self.buffer = buf[i:]
        if received:
            self.stats["messages"] += received
            self.pending -= received
            if self.pending <= 0 and self.running:
                self.send_batch()

    def send_batch(self):
        self.pending = self.window
        self.transport.write(self.batch)

    def connection_lost(self, exc):
        self.stats["lost"] += 1
        if not self.ready.done():
            self.ready.set_exception(ConnectionError("connection lost before the upgrade"))


async def connect_all(args, stats, window):
    loop = asyncio.get_running_loop()
    request = handshake(args.host, args.port, args.path)
    batch = text_frame(MESSAGE) * window
    clients = []
    for start in range(0, args.connections, 500):  # in waves: the listen backlog is finite
        wave = []
        for _ in range(min(500, args.connections - start)):
            ready = loop.create_future()
            _, client = await loop.create_connection(
                lambda r=ready: EchoClient(request, batch, window, stats, r), args.host, args.port
            )
            wave.append(client)
        await asyncio.wait_for(asyncio.gather(*(c.ready for c in wave)), 60)
        clients.extend(wave)
    return clients


async def echo(args):
    stats = {"messages": 0, "lost": 0}
    clients = await connect_all(args, stats, args.window)
    for c in clients:
        c.running = True
        c.send_batch()
    await asyncio.sleep(args.warmup)
    start_count, start = stats["messages"], time.perf_counter()
    cpu0 = time.process_time()
    await asyncio.sleep(args.duration)
    count, elapsed = stats["messages"] - start_count, time.perf_counter() - start
    cpu = time.process_time() - cpu0
    for c in clients:
        c.running = False
        c.transport.close()
    print(
        json.dumps(
            {
                "messages": count,
                "seconds": elapsed,
                "msgs_per_s": count / elapsed,
                "lost": stats["lost"],
                "client_cpu_share": cpu / elapsed,
            }
        ),
        flush=True,
    )


async def idle(args):
    stats = {"messages": 0, "lost": 0}
    clients = await connect_all(args, stats, 0)
    print(json.dumps({"ready": len(clients)}), flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    print(json.dumps({"lost": stats["lost"]}), flush=True)
    for c in clients:
        c.transport.close()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("mode", choices=("echo", "idle"))
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--path", default="/echo")
    p.add_argument("--connections", type=int, default=64)
    p.add_argument("--window", type=int, default=8, help="messages in flight per connection")
    p.add_argument("--duration", type=float, default=5.0)
    p.add_argument("--warmup", type=float, default=1.0)
    args = p.parse_args()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(echo(args) if args.mode == "echo" else idle(args))


if __name__ == "__main__":
    main()
