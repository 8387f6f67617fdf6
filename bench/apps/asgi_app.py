"""Raw ASGI apps (no framework) doing the benchmark's work, for uvicorn, granian and treadle.

The scenario comes from the environment variable ``BENCH_SCENARIO`` (``hello``, ``async``,
``delayed``, ``post``) and the app is ``asgi_app:app``. Every scenario is served at ``/``, like the
resources in ``resources.py``:

``hello``   respond with the 13 bytes ``b"Hello, world!"``;
``async``   ``await asyncio.sleep(0)`` (one trip through the event loop), then respond;
``delayed`` ``await asyncio.sleep(1)``, then respond with the documentation example's page;
``post``    read the urlencoded body and echo its field ``name``.

Run directly (``python asgi_app.py --scenario hello --port N``) it starts uvicorn with uvloop,
httptools, no access log and no lifespan, which is how the harness runs the uvicorn peer.
treadle serves the same apps from this directory with ``treadle web --asgi asgi_app:app``
(``BENCH_SCENARIO`` as above; or name one: ``asgi_app:post``), lifespan included.
"""

from __future__ import annotations

import asyncio
import os
from urllib.parse import parse_qs

HELLO = b"Hello, world!"
DELAYED_BODY = b"<html><body>Sorry to keep you waiting.</body></html>"
DELAY = 1.0

_START = {
    "type": "http.response.start",
    "status": 200,
    "headers": [(b"content-type", b"text/html"), (b"content-length", b"13")],
}
_HELLO = {"type": "http.response.body", "body": HELLO}
_DELAYED_START = {
    "type": "http.response.start",
    "status": 200,
    "headers": [(b"content-type", b"text/html"), (b"content-length", b"%d" % len(DELAYED_BODY))],
}
_DELAYED = {"type": "http.response.body", "body": DELAYED_BODY}


async def _lifespan(receive, send):
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def hello(scope, receive, send):
    if scope["type"] != "http":
        return await _lifespan(receive, send)
    await send(_START)
    await send(_HELLO)


async def async_(scope, receive, send):
    if scope["type"] != "http":
        return await _lifespan(receive, send)
    await asyncio.sleep(0)
    await send(_START)
    await send(_HELLO)


async def delayed(scope, receive, send):
    if scope["type"] != "http":
        return await _lifespan(receive, send)
    await asyncio.sleep(DELAY)
    await send(_DELAYED_START)
    await send(_DELAYED)


async def post(scope, receive, send):
    if scope["type"] != "http":
        return await _lifespan(receive, send)
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    name = parse_qs(body)[b"name"][0]
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/html"), (b"content-length", b"%d" % len(name))],
        }
    )
    await send({"type": "http.response.body", "body": name})


APPS = {"hello": hello, "async": async_, "delayed": delayed, "post": post}
app = APPS[os.environ.get("BENCH_SCENARIO", "hello")]


def main() -> None:
    import argparse

    import uvicorn

    parser = argparse.ArgumentParser(description="uvicorn serving the raw ASGI benchmark app")
    parser.add_argument("--scenario", choices=sorted(APPS), required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args()
    uvicorn.run(
        APPS[args.scenario],
        host=args.host,
        port=args.port,
        loop="uvloop",
        http="httptools",
        lifespan="off",
        access_log=False,
        log_level="warning",
        backlog=4096,
    )


if __name__ == "__main__":
    main()
