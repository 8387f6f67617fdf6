"""aiohttp (on uvloop, access log off) doing the benchmark's work.

    python aiohttp_app.py --scenario hello --port 8080
    python aiohttp_app.py --scenario static --path DIR --port 8080

Scenarios as in ``resources.py`` and ``asgi_app.py`` (served at ``/``), plus ``static``: the
files of ``--path`` served by ``web.static`` (aiohttp's sendfile-based file responses).
"""

from __future__ import annotations

import argparse
import asyncio

import uvloop
from aiohttp import web

HELLO = b"Hello, world!"
DELAYED_BODY = b"<html><body>Sorry to keep you waiting.</body></html>"
DELAY = 1.0


async def hello(request: web.Request) -> web.Response:
    return web.Response(body=HELLO, content_type="text/html")


async def async_(request: web.Request) -> web.Response:
    await asyncio.sleep(0)
    return web.Response(body=HELLO, content_type="text/html")


async def delayed(request: web.Request) -> web.Response:
    await asyncio.sleep(DELAY)
    return web.Response(body=DELAYED_BODY, content_type="text/html")


async def post(request: web.Request) -> web.Response:
    form = await request.post()
    return web.Response(body=form["name"].encode(), content_type="text/html")


def make_app(scenario: str, path: str | None) -> web.Application:
    app = web.Application()
    if scenario == "static":
        if not path:
            raise SystemExit("--scenario static needs --path")
        app.router.add_static("/", path)
    elif scenario == "post":
        app.router.add_post("/", post)
    else:
        handlers = {"hello": hello, "async": async_, "delayed": delayed}
        app.router.add_get("/", handlers[scenario])
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description="aiohttp serving the benchmark scenarios")
    parser.add_argument(
        "--scenario", choices=["hello", "async", "delayed", "post", "static"], required=True
    )
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--path", help="directory served by --scenario static")
    args = parser.parse_args()
    web.run_app(
        make_app(args.scenario, args.path),
        host=args.host,
        port=args.port,
        access_log=None,
        backlog=4096,
        print=None,
        loop=uvloop.new_event_loop(),
    )


if __name__ == "__main__":
    main()
