"""WebSocket echo servers for the ``websocket`` scenario, one per implementation.

Every server echoes each message (text as text, bytes as bytes) at ``/echo``::

    python ws_app.py --impl treadle --port 8080    # treadle.web.websocket.WebSocketResource
    python ws_app.py --impl twisted --port 8080    # twisted.web.websocket, the same code
    python ws_app.py --impl uvicorn --port 8080    # a raw ASGI app, uvicorn + websockets
    python ws_app.py --impl aiohttp --port 8080    # aiohttp.web.WebSocketResponse

treadle and Twisted run exactly the same resource code; only the imports differ (the porting rule).
Nobody logs access, and a plain ``GET /`` answers ``Hello, world!`` (the harness's readiness check).
"""

from __future__ import annotations

import argparse
import os
import sys

HELLO = b"Hello, world!"


def run_twisted_style(impl: str, host: str, port: int) -> None:
    """treadle or Twisted: a ``WebSocketResource`` echo beside a hello leaf."""
    if impl == "treadle":
        from treadle.internet import reactor
        from treadle.web.resource import Resource
        from treadle.web.server import Site
        from treadle.web.websocket import WebSocketResource
    else:
        from twisted.internet import reactor
        from twisted.web.resource import Resource
        from twisted.web.server import Site
        from twisted.web.websocket import WebSocketResource

    class Echo:
        def negotiationStarted(self, transport):
            self.transport = transport

        def negotiationFinished(self):
            pass

        def textMessageReceived(self, message):
            self.transport.sendTextMessage(message)

        def bytesMessageReceived(self, data):
            self.transport.sendBytesMessage(data)

        def pongReceived(self, payload):
            pass

        def connectionLost(self, reason):
            pass

    class EchoFactory:
        def buildProtocol(self, request):
            return Echo()

    class Hello(Resource):
        isLeaf = True

        def render_GET(self, request):
            return HELLO

    root = Resource()
    root.putChild(b"", Hello())
    root.putChild(b"echo", WebSocketResource(EchoFactory()))
    site = Site(root)
    site.log = lambda request: None  # Twisted's Site logs each request; treadle's logs nothing
    reactor.listenTCP(port, site, backlog=4096, interface=host)
    reactor.run()


async def asgi_echo(scope, receive, send):
    """A raw ASGI echo: ``websocket.accept``, then every message sent back as it came."""
    if scope["type"] == "websocket":
        await receive()  # websocket.connect
        await send({"type": "websocket.accept"})
        while True:
            message = await receive()
            if message["type"] != "websocket.receive":
                return
            if message.get("text") is not None:
                await send({"type": "websocket.send", "text": message["text"]})
            else:
                await send({"type": "websocket.send", "bytes": message["bytes"]})
    elif scope["type"] == "http":
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/html"), (b"content-length", b"13")],
            }
        )
        await send({"type": "http.response.body", "body": HELLO})


def run_uvicorn(host: str, port: int) -> None:
    import uvicorn

    uvicorn.run(
        asgi_echo,
        host=host,
        port=port,
        loop="uvloop",
        http="httptools",
        ws="websockets",
        ws_per_message_deflate=False,
        lifespan="off",
        access_log=False,
        log_level="warning",
        backlog=4096,
    )


def run_aiohttp(host: str, port: int) -> None:
    import uvloop
    from aiohttp import WSMsgType, web

    async def echo(request):
        ws = web.WebSocketResponse(compress=False)
        await ws.prepare(request)
        async for msg in ws:
            if msg.type == WSMsgType.TEXT:
                await ws.send_str(msg.data)
            elif msg.type == WSMsgType.BINARY:
                await ws.send_bytes(msg.data)
        return ws

    async def hello(request):
        return web.Response(body=HELLO, content_type="text/html")

    app = web.Application()
    app.router.add_get("/echo", echo)
    app.router.add_get("/", hello)
    uvloop.install()
    web.run_app(app, host=host, port=port, access_log=None, print=None, backlog=4096)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--impl", choices=("treadle", "twisted", "uvicorn", "aiohttp"), required=True
    )
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args()
    print(
        f"{args.impl} websocket echo on {args.host}:{args.port} pid {os.getpid()}", file=sys.stderr
    )
    if args.impl in ("treadle", "twisted"):
        run_twisted_style(args.impl, args.host, args.port)
    elif args.impl == "uvicorn":
        run_uvicorn(args.host, args.port)
    else:
        run_aiohttp(args.host, args.port)


if __name__ == "__main__":
    main()
