"""ASGI WebSocket scopes over real sockets: a Starlette WebSocket route with the `websockets`
client, and raw applications that accept, refuse, close, or break the protocol."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from treadle.web.asgi import ASGIResource, ClientDisconnected
from treadle.web.resource import Resource

from .conftest import DEADLINE, raw_request, wait_for

Scope = dict[str, Any]


def mount(app: Any, **kwargs: Any) -> Resource:
    kwargs.setdefault("lifespan", "off")
    root = Resource()
    root.putChild(b"ws", ASGIResource(app, name="ws-app", **kwargs))
    return root


def ws_url(url: str) -> str:
    return url.replace("http://", "ws://")


def error_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "treadle.error" and r.levelno >= logging.ERROR
    ]


# -- Starlette ---------------------------------------------------------------------------------


@pytest.fixture
def starlette_events() -> Iterator[list[Any]]:
    yield []


def starlette_app(events: list[Any]) -> Starlette:
    async def echo(websocket: WebSocket) -> None:
        offered = websocket.scope["subprotocols"]
        await websocket.accept(subprotocol="chat" if "chat" in offered else None)
        events.append(("scope", websocket.scope["path"], websocket.scope["root_path"]))
        try:
            while True:
                message = await websocket.receive()
                if message["type"] == "websocket.disconnect":
                    events.append(("disconnect", message["code"]))
                    return
                if message.get("text") is not None:
                    await websocket.send_text(f"echo {message['text']}")
                else:
                    await websocket.send_bytes(message["bytes"][::-1])
        except WebSocketDisconnect as gone:
            events.append(("disconnect", gone.code))

    async def refuse(websocket: WebSocket) -> None:
        await websocket.close()

    async def bye(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_text(f"hello {websocket.query_params['name']}")
        await websocket.close(code=4000, reason="that is all")

    return Starlette(
        routes=[
            WebSocketRoute("/echo", echo),
            WebSocketRoute("/refuse", refuse),
            WebSocketRoute("/bye", bye),
        ]
    )


def test_starlette_websocket_route(serve: Any, starlette_events: list[Any]) -> None:
    url = ws_url(serve(mount(starlette_app(starlette_events))))
    with connect(url + "/ws/echo", subprotocols=["chat"], open_timeout=DEADLINE) as ws:  # type: ignore[list-item]
        assert ws.subprotocol == "chat"
        ws.send("hi")
        assert ws.recv(DEADLINE) == "echo hi"
        ws.send(b"\x01\x02\x03")
        assert ws.recv(DEADLINE) == b"\x03\x02\x01"
        big = "x" * 200_000
        ws.send(big)
        assert ws.recv(DEADLINE) == f"echo {big}"
    wait_for(lambda: ("disconnect", 1000) in starlette_events, "the disconnect")
    assert ("scope", "/ws/echo", "/ws") in starlette_events


def test_starlette_refusal_is_a_403(serve: Any, starlette_events: list[Any]) -> None:
    url = ws_url(serve(mount(starlette_app(starlette_events))))
    with pytest.raises(InvalidStatus) as refused:
        connect(url + "/ws/refuse", open_timeout=DEADLINE)
    assert refused.value.response.status_code == 403


def test_starlette_closes_with_its_code(serve: Any, starlette_events: list[Any]) -> None:
    url = ws_url(serve(mount(starlette_app(starlette_events))))
    with connect(url + "/ws/bye?name=ann", open_timeout=DEADLINE) as ws:
        assert ws.recv(DEADLINE) == "hello ann"
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(DEADLINE)
    assert closed.value.rcvd is not None
    assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (4000, "that is all")


# -- raw applications --------------------------------------------------------------------------


def test_the_websocket_scope(serve: Any) -> None:
    scopes: list[Scope] = []

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        scopes.append(scope)
        assert await receive() == {"type": "websocket.connect"}
        await send({"type": "websocket.accept", "headers": [(b"x-hello", b"there")]})
        await send({"type": "websocket.send", "text": "ready"})
        assert await receive() == {"type": "websocket.receive", "bytes": b"bin"}
        assert await receive() == {"type": "websocket.disconnect", "code": 1000, "reason": ""}

    url = ws_url(serve(mount(app)))
    with connect(url + "/ws/a?x=1", subprotocols=["one", "two"], open_timeout=DEADLINE) as ws:  # type: ignore[list-item]
        assert ws.response.headers["x-hello"] == "there"
        assert ws.subprotocol is None
        assert ws.recv(DEADLINE) == "ready"
        ws.send(b"bin")
    (scope,) = scopes
    assert scope["type"] == "websocket" and scope["scheme"] == "ws"
    assert scope["asgi"] == {"version": "3.0", "spec_version": "2.4"}
    assert (scope["path"], scope["root_path"], scope["query_string"]) == ("/ws/a", "/ws", b"x=1")
    assert scope["subprotocols"] == ["one", "two"]
    assert "method" not in scope
    assert (b"upgrade", b"websocket") in scope["headers"]


def test_a_malformed_handshake_never_reaches_the_application(serve: Any) -> None:
    called: list[Scope] = []

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        called.append(scope)

    answer = raw_request(
        serve(mount(app)),
        b"GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
        b"Sec-WebSocket-Version: 13\r\n\r\n",  # no key
    )
    assert answer.startswith(b"HTTP/1.1 400 ")
    assert not called


def test_send_after_the_client_left_raises(serve: Any) -> None:
    outcome: list[Any] = []
    left = threading.Event()

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        outcome.append(await receive())
        left.set()
        try:
            await send({"type": "websocket.send", "text": "too late"})
        except ClientDisconnected as e:
            outcome.append(e)

    url = ws_url(serve(mount(app)))
    with connect(url + "/ws", open_timeout=DEADLINE) as ws:
        ws.close(code=4001, reason="done")
    assert left.wait(DEADLINE)
    wait_for(lambda: len(outcome) == 2, "the application's outcome")
    assert outcome[0] == {"type": "websocket.disconnect", "code": 4001, "reason": "done"}
    assert isinstance(outcome[1], ClientDisconnected) and isinstance(outcome[1], OSError)


async def sends_before_accepting(scope: Scope, receive: Any, send: Any) -> None:
    await send({"type": "websocket.send", "text": "early"})


async def raises_before_accepting(scope: Scope, receive: Any, send: Any) -> None:
    raise ZeroDivisionError("before the accept")


async def returns_without_answering(scope: Scope, receive: Any, send: Any) -> None:
    await receive()


@pytest.mark.parametrize(
    ("app", "status", "said"),
    [
        (sends_before_accepting, 500, "sent 'websocket.send' before accepting or closing"),
        (raises_before_accepting, 500, "raised an exception; answered 500"),
        (returns_without_answering, 403, None),
    ],
)
def test_handshake_errors(
    serve: Any, caplog: pytest.LogCaptureFixture, app: Any, status: int, said: str | None
) -> None:
    url = ws_url(serve(mount(app)))
    with caplog.at_level(logging.ERROR, logger="treadle.error"):
        with pytest.raises(InvalidStatus) as refused:
            connect(url + "/ws", open_timeout=DEADLINE)
        if said is not None:
            wait_for(lambda: error_lines(caplog), "the log line")
    assert refused.value.response.status_code == status
    lines = error_lines(caplog)
    if said is None:
        assert not lines
    else:
        (line,) = lines
        assert line.startswith("ASGI application ws-app ") and said in line


def test_an_unanswered_handshake_times_out(serve: Any, caplog: pytest.LogCaptureFixture) -> None:
    async def app(scope: Scope, receive: Any, send: Any) -> None:
        await asyncio.sleep(3600)

    url = ws_url(serve(mount(app, startTimeout=0.2)))
    with (
        caplog.at_level(logging.ERROR, logger="treadle.error"),
        pytest.raises(InvalidStatus) as refused,
    ):
        connect(url + "/ws", open_timeout=DEADLINE)
    assert refused.value.response.status_code == 500
    (line,) = error_lines(caplog)
    assert "did not answer the WebSocket handshake within 0.2 s" in line


@pytest.mark.parametrize(("fails", "code"), [(True, 1011), (False, 1000)])
def test_the_end_of_the_call_closes(
    serve: Any, caplog: pytest.LogCaptureFixture, fails: bool, code: int
) -> None:
    async def app(scope: Scope, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.send", "text": "one"})
        if fails:
            raise ZeroDivisionError("after the accept")

    url = ws_url(serve(mount(app)))
    with (
        caplog.at_level(logging.ERROR, logger="treadle.error"),
        connect(url + "/ws", open_timeout=DEADLINE) as ws,
    ):
        assert ws.recv(DEADLINE) == "one"
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(DEADLINE)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == code
    lines = error_lines(caplog)
    if fails:
        (line,) = lines
        assert "raised an exception; WebSocket closed with 1011" in line
    else:
        assert not lines


def test_a_bad_message_after_the_accept_closes_with_1011(
    serve: Any, caplog: pytest.LogCaptureFixture
) -> None:
    async def app(scope: Scope, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.accept"})

    url = ws_url(serve(mount(app)))
    with (
        caplog.at_level(logging.ERROR, logger="treadle.error"),
        connect(url + "/ws", open_timeout=DEADLINE) as ws,
        pytest.raises(ConnectionClosed) as closed,
    ):
        ws.recv(DEADLINE)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1011
    (line,) = error_lines(caplog)
    assert "sent 'websocket.accept', which is no ASGI WebSocket message" in line
