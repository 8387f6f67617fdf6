"""Real Starlette and FastAPI applications in a treadle resource tree, over real sockets:
routes, request bodies, streaming, background tasks, lifespan, errors and disconnects."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Annotated, Any

import httpx
import pytest
from fastapi import BackgroundTasks, Depends, FastAPI, HTTPException
from pydantic import BaseModel
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request as StarletteRequest
from starlette.responses import (
    FileResponse,
    JSONResponse,
    PlainTextResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Route

from treadle.web.asgi import ASGIResource
from treadle.web.resource import Resource
from treadle.web.static import Data

from .conftest import DEADLINE, host_port, wait_for


@pytest.fixture(scope="module")
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=DEADLINE, headers={"Connection": "close"}) as shared:
        yield shared


class Served:
    """A Starlette or FastAPI app under ``/api`` of a tree that has other resources too."""

    def __init__(self, server: Any, app: Any) -> None:
        self.server = server
        self.resource = ASGIResource(app, name="framework-app")
        root = Resource()
        root.putChild(b"api", self.resource)
        root.putChild(b"plain", Data(b"a plain treadle resource", "text/plain"))
        self.url = server.serve(root)

    def close(self) -> None:
        shutdown = self.resource.shutdown()
        asyncio.run_coroutine_threadsafe(shutdown, self.server.loop).result(DEADLINE)


@pytest.fixture
def mount(server: Any) -> Iterator[Any]:
    served: list[Served] = []

    def make(app: Any) -> Served:
        served.append(Served(server, app))
        return served[-1]

    yield make
    for one in served:
        one.close()


# -- Starlette --------------------------------------------------------------------------------


def starlette_app(events: list[str], gate: threading.Event) -> Starlette:
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        events.append("startup")
        yield {"greeting": "hello from the lifespan"}
        events.append("shutdown")

    async def home(request: StarletteRequest) -> Response:
        return PlainTextResponse(
            f"{request.state.greeting}; path={request.url.path}; "
            f"link={request.url_for('user', name='ann')}"
        )

    async def user(request: StarletteRequest) -> Response:
        return JSONResponse(
            {"name": request.path_params["name"], "q": request.query_params.get("q")}
        )

    async def echo(request: StarletteRequest) -> Response:
        data = await request.body()
        return JSONResponse({"size": len(data), "type": request.headers.get("content-type")})

    async def count(request: StarletteRequest) -> Response:
        async def numbers() -> AsyncIterator[str]:
            for n in range(5):
                yield f"{n}\n"
                await asyncio.sleep(0)

        return StreamingResponse(numbers(), media_type="text/plain")

    async def later(request: StarletteRequest) -> Response:
        async def work() -> None:
            while not gate.is_set():
                await asyncio.sleep(0.005)
            events.append("background done")

        return PlainTextResponse("answered first", background=BackgroundTask(work))

    async def forever(request: StarletteRequest) -> Response:
        async def ticks() -> AsyncIterator[bytes]:
            try:
                while True:
                    yield b"tick\n"
                    await asyncio.sleep(0.005)
            finally:
                events.append("stream closed")

        return StreamingResponse(ticks())

    async def broken(request: StarletteRequest) -> Response:
        raise ZeroDivisionError("a bug in the view")

    return Starlette(
        routes=[
            Route("/", home),
            Route("/users/{name}", user, name="user"),
            Route("/echo", echo, methods=["POST"]),
            Route("/count", count),
            Route("/later", later),
            Route("/forever", forever),
            Route("/broken", broken),
        ],
        lifespan=lifespan,
    )


@pytest.fixture
def starlette(mount: Any) -> Iterator[tuple[Served, list[str], threading.Event]]:
    events: list[str] = []
    gate = threading.Event()
    served = mount(starlette_app(events, gate))
    yield served, events, gate
    gate.set()


def test_starlette_routes_and_lifespan_state(starlette: Any, client: httpx.Client) -> None:
    served, events, _ = starlette
    url = served.url
    assert client.get(url + "/api/").text == (
        f"hello from the lifespan; path=/api/; link={url}/api/users/ann"
    )
    assert events == ["startup"]
    assert client.get(url + "/api/users/bob?q=x").json() == {"name": "bob", "q": "x"}
    assert client.get(url + "/plain").text == "a plain treadle resource"
    # Starlette's own redirect for the mount point without its slash.
    redirect = client.get(url + "/api")
    assert redirect.status_code == 307 and redirect.headers["location"] == url + "/api/"
    assert client.get(url + "/api/nothing").status_code == 404
    head = client.head(url + "/api/users/bob")
    assert head.status_code == 200 and head.content == b""
    served.close()
    assert events == ["startup", "shutdown"]


def test_starlette_request_body(starlette: Any, client: httpx.Client) -> None:
    url = starlette[0].url
    data = b"z" * 300_000
    answer = client.post(url + "/api/echo", content=data, headers={"content-type": "x/y"})
    assert answer.json() == {"size": len(data), "type": "x/y"}
    chunked = client.post(url + "/api/echo", content=iter([b"a" * 10, b"b" * 70_000]))
    assert chunked.json()["size"] == 70_010


def test_starlette_streaming(starlette: Any, client: httpx.Client) -> None:
    with client.stream("GET", starlette[0].url + "/api/count") as response:
        assert response.headers["transfer-encoding"] == "chunked"
        assert b"".join(response.iter_raw()) == b"0\n1\n2\n3\n4\n"


def test_starlette_background_task_runs_after_the_response(
    starlette: Any, client: httpx.Client
) -> None:
    served, events, gate = starlette
    assert client.get(served.url + "/api/later").text == "answered first"
    assert "background done" not in events
    gate.set()
    wait_for(lambda: "background done" in events, "the background task")


def test_starlette_stream_stops_when_the_client_leaves(
    starlette: Any, caplog: pytest.LogCaptureFixture
) -> None:
    served, events, _ = starlette
    with caplog.at_level(logging.ERROR, logger="treadle.error"):
        with socket.create_connection(host_port(served.url), timeout=DEADLINE) as sock:
            sock.sendall(b"GET /api/forever HTTP/1.1\r\nHost: x\r\n\r\n")
            received = b""
            while received.count(b"tick") < 3:
                received += sock.recv(65536)
        wait_for(lambda: "stream closed" in events, "the stream to be closed")
    assert not [r for r in caplog.records if r.name == "treadle.error"]


def test_starlette_error_page_and_one_log_line(
    starlette: Any, client: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="treadle.error"):
        response = client.get(starlette[0].url + "/api/broken")
        wait_for(lambda: caplog.records, "the log line")
    # Starlette answers its own 500, then re-raises for the server to log.
    assert response.status_code == 500 and response.text == "Internal Server Error"
    (line,) = [r for r in caplog.records if r.name == "treadle.error"]
    assert line.getMessage().startswith("ASGI application framework-app raised an exception")
    assert line.exc_info is not None and line.exc_info[0] is ZeroDivisionError


def test_starlette_file_response(mount: Any, client: httpx.Client, tmp_path: Path) -> None:
    big = tmp_path / "big.bin"
    big.write_bytes(bytes(range(256)) * 4096)

    async def file(request: StarletteRequest) -> Response:
        return FileResponse(big)

    url = mount(Starlette(routes=[Route("/file", file)])).url
    response = client.get(url + "/api/file")
    assert response.content == big.read_bytes()
    ranged = client.get(url + "/api/file", headers={"Range": "bytes=10-19"})
    assert ranged.status_code == 206 and ranged.content == bytes(range(10, 20))


# -- FastAPI ----------------------------------------------------------------------------------


class Item(BaseModel):
    name: str
    price: float


def store(request: StarletteRequest) -> dict[int, Item]:
    return request.app.state.store  # type: ignore[no-any-return]


# (At module level: FastAPI resolves the annotations by name.)
Store = Annotated[dict[int, Item], Depends(store)]


def fastapi_app(events: list[str]) -> FastAPI:
    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.store = {}
        events.append("startup")
        yield
        events.append("shutdown")

    api = FastAPI(lifespan=lifespan)

    @api.post("/items/{item_id}", status_code=201)
    async def create(item_id: int, item: Item, items: Store) -> Item:
        items[item_id] = item
        return item

    @api.get("/items/{item_id}")
    def read(item_id: int, items: Store) -> Item:
        # A plain def: FastAPI runs it in its thread pool.
        if item_id not in items:
            raise HTTPException(status_code=404, detail="no such item")
        return items[item_id]

    @api.post("/notify")
    async def notify(background: BackgroundTasks) -> dict[str, str]:
        background.add_task(events.append, "notified")
        return {"status": "queued"}

    @api.get("/stream")
    async def stream() -> StreamingResponse:
        async def parts() -> AsyncIterator[bytes]:
            for part in (b"alpha,", b"beta,", b"gamma"):
                yield part

        return StreamingResponse(parts(), media_type="text/plain")

    return api


def test_fastapi_application(mount: Any, client: httpx.Client) -> None:
    events: list[str] = []
    served = mount(fastapi_app(events))
    url = served.url + "/api"
    created = client.post(url + "/items/7", json={"name": "lamp", "price": 12.5})
    assert created.status_code == 201 and created.json() == {"name": "lamp", "price": 12.5}
    assert client.get(url + "/items/7").json() == {"name": "lamp", "price": 12.5}
    missing = client.get(url + "/items/8")
    assert missing.status_code == 404 and missing.json() == {"detail": "no such item"}
    invalid = client.post(url + "/items/x", json={"name": "lamp"})
    assert invalid.status_code == 422
    assert client.post(url + "/notify").json() == {"status": "queued"}
    wait_for(lambda: "notified" in events, "the background task")
    assert client.get(url + "/stream").text == "alpha,beta,gamma"
    # The documentation pages know where the application is mounted.
    assert client.get(url + "/openapi.json").json()["paths"].keys() >= {"/items/{item_id}"}
    assert "/api/openapi.json" in client.get(url + "/docs").text
    served.close()
    assert events[0] == "startup" and events[-1] == "shutdown"
