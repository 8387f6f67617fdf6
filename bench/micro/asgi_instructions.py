"""A deterministic cost of one ``treadle web --asgi`` request, for counting instructions.

Inside a running event loop (uvloop when importable, as the server's), a channel of a
``Site`` whose root is ``ASGIResource(<the asgi scenario's Starlette app>)`` is connected to
an in-memory transport that discards what it is given; the script feeds it keep-alive
``GET /`` requests (the bytes ``wrk`` sends), one at a time, each waited for until its
response went out and its application's task ended. No socket, no clock, no randomness:
under ``valgrind --tool=callgrind`` (with ``PYTHONHASHSEED=0``), the difference between two
runs with different request counts, divided by the difference of the counts, is what one
request costs, start-up and warm-up cancelled out::

    PYTHONHASHSEED=0 valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.1000 \\
        .venv/bin/python bench/micro/asgi_instructions.py 1000
    PYTHONHASHSEED=0 valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.5000 \\
        .venv/bin/python bench/micro/asgi_instructions.py 5000

``--measure N1 N2`` runs both under callgrind and prints the instructions per request.
``--check`` prints the first response instead (that the app answers as it should).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

APPS = Path(__file__).resolve().parent.parent / "apps"
WRK_GET = b"GET / HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n"
WARMUP = 200


class DiscardingTransport:
    """An asyncio transport that keeps nothing: it counts the writes (the responses)."""

    def __init__(self) -> None:
        self.writes = 0
        self.last = b""
        self.keep = False

    def write(self, data: bytes) -> None:
        """Count ``data`` (kept only when checking)."""
        self.writes += 1
        if self.keep:
            self.last += bytes(data)

    def writelines(self, data: Any) -> None:
        """Count each item of ``data``."""
        for item in data:
            self.write(item)

    def close(self) -> None:
        """Nothing to close."""

    def abort(self) -> None:
        """Nothing to abort."""

    def is_closing(self) -> bool:
        """Never closing."""
        return False

    def pause_reading(self) -> None:
        """Nothing to pause."""

    def resume_reading(self) -> None:
        """Nothing to resume."""

    def get_write_buffer_size(self) -> int:
        """Nothing is ever buffered."""
        return 0

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        """A loopback peer and host."""
        if name == "peername":
            return ("127.0.0.1", 40000)
        if name == "sockname":
            return ("127.0.0.1", 8080)
        return default


async def drive(count: int, check: bool) -> None:
    """Serve ``WARMUP`` then ``count`` requests, one after the other."""
    sys.path.insert(0, str(APPS))
    from starlette_app import app

    from treadle.web.asgi import ASGIResource
    from treadle.web.server import Site

    resource = ASGIResource(app, name="starlette_app:app")
    await resource.startup()
    site = Site(resource)
    channel = site.buildProtocol(None)
    transport = DiscardingTransport()
    transport.keep = check
    channel.connection_made(transport)
    running = resource._calls
    feed = channel.data_received
    sleep = asyncio.sleep
    total = WARMUP + (1 if check else count)
    for _ in range(total):
        before = transport.writes
        feed(WRK_GET)
        # Turns of the loop until the response went out and the application's task ended.
        while transport.writes == before or running:
            await sleep(0)
    if check:
        print(transport.last.split(b"HTTP/1.1 ")[-1].decode("latin-1"))
    channel.connection_lost(None)
    await resource.shutdown()


def run(count: int, check: bool) -> None:
    """Run :func:`drive` in a fresh loop (uvloop's when importable)."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(drive(count, check))
    else:
        uvloop.run(drive(count, check))


def callgrind(count: int, out: str, extra: list[str]) -> int:
    """Instructions of a run of ``count`` requests under callgrind."""
    env = dict(os.environ, PYTHONHASHSEED="0")
    cmd = [
        "valgrind",
        "--tool=callgrind",
        f"--callgrind-out-file={out}",
        *extra,
        sys.executable,
        __file__,
        str(count),
    ]
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    match = re.search(r"Collected : (\d+)", result.stderr)
    if match is None:
        raise RuntimeError(result.stderr)
    return int(match.group(1))


def main() -> None:
    """Serve requests (``count``), or measure the per-request cost (``--measure``)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("count", nargs="?", type=int, default=1000)
    parser.add_argument("--check", action="store_true", help="print the first response")
    parser.add_argument("--measure", nargs=2, type=int, metavar=("N1", "N2"))
    parser.add_argument("--keep", metavar="DIR", help="keep the callgrind files in DIR")
    args = parser.parse_args()
    if args.measure is None:
        run(args.count, args.check)
        return
    if not _compiled() and os.environ.get("TREADLE_PURE_PYTHON", "") in ("", "0"):
        # A stale build: the figures would be pure Python's.
        sys.exit("treadle is not running compiled: rebuild (pip install -e .) first")
    n1, n2 = args.measure
    where = args.keep or tempfile.mkdtemp(prefix="asgi-cg-")
    i1 = callgrind(n1, f"{where}/cg.{n1}", [])
    i2 = callgrind(n2, f"{where}/cg.{n2}", [])
    print(f"compiled={_compiled()} N1={n1}: {i1}  N2={n2}: {i2}")
    print(f"instructions per request: {(i2 - i1) / (n2 - n1):.0f}  (callgrind files in {where})")


def _compiled() -> bool:
    import treadle

    return bool(treadle.compiled)


if __name__ == "__main__":
    main()
