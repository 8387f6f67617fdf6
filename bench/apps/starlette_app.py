"""One Starlette application for the ``asgi`` scenario, served by treadle, uvicorn, granian and
hypercorn alike: ``GET /`` answers the 13 bytes ``Hello, world!`` through a ``Route`` and a
``PlainTextResponse`` (the framework's routing and response objects, not a raw ASGI app).

    treadle web --asgi starlette_app:app --listen tcp:port=8080:interface=127.0.0.1 --no-access-log
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route


async def hello(request):
    return PlainTextResponse("Hello, world!")


app = Starlette(routes=[Route("/", hello)])
