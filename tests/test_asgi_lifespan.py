"""The ASGI lifespan protocol of ASGIResource: start-up and shut-down, their failures and
timeouts, the state requests see, and the start-up a first request makes when no one did."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from treadle.web.asgi import ASGIResource, LifespanFailure

from .conftest import DEADLINE, wait_for

Scope = dict[str, Any]


@pytest.fixture(scope="module")
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=DEADLINE, headers={"Connection": "close"}) as shared:
        yield shared


class Lifespanned:
    """Speaks lifespan as the specification says; answers requests with its state.

    Args:
        startup: ``"complete"``, ``"failed"`` (a ``lifespan.startup.failed``), ``"raise"``
            or ``"hang"``.
        shutdown: The same for the shut-down.
    """

    def __init__(self, startup: str = "complete", shutdown: str = "complete") -> None:
        self.startup = startup
        self.shutdown = shutdown
        self.events: list[str] = []

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await self.lifespan(scope, receive, send)
            return
        body = repr(sorted(scope["state"].items())).encode()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})

    async def lifespan(self, scope: Scope, receive: Any, send: Any) -> None:
        assert scope["asgi"]["version"] == "3.0"
        assert (await receive())["type"] == "lifespan.startup"
        self.events.append("startup")
        if not await self.answer(self.startup, "startup", send):
            return
        scope["state"]["pool"] = "open"
        await send({"type": "lifespan.startup.complete"})
        assert (await receive())["type"] == "lifespan.shutdown"
        self.events.append("shutdown")
        if await self.answer(self.shutdown, "shutdown", send):
            await send({"type": "lifespan.shutdown.complete"})

    async def answer(self, how: str, phase: str, send: Any) -> bool:
        if how == "failed":
            await send({"type": f"lifespan.{phase}.failed", "message": f"no {phase} today"})
            return False
        if how == "raise":
            raise ZeroDivisionError(f"{phase} raised")
        if how == "hang":
            await asyncio.sleep(3600)
        return True


def run(coroutine: Any) -> Any:
    return asyncio.run(coroutine)


def test_startup_and_shutdown() -> None:
    app = Lifespanned()
    resource = ASGIResource(app)

    async def scenario() -> None:
        await resource.startup()
        assert app.events == ["startup"]
        assert resource.lifespanState == {"pool": "open"}
        await resource.startup()  # once only
        await resource.shutdown()
        await resource.shutdown()
        assert app.events == ["startup", "shutdown"]

    run(scenario())
    assert not resource.lifespanFailed


@pytest.mark.parametrize(
    ("how", "detail"),
    [
        ("failed", "lifespan start-up failed: no startup today"),
        ("hang", "lifespan start-up failed: no answer within 0.1 s"),
    ],
)
def test_startup_failures(how: str, detail: str) -> None:
    resource = ASGIResource(Lifespanned(startup=how), name="myapp:app", lifespanTimeout=0.1)
    with pytest.raises(LifespanFailure) as caught:
        run(resource.startup())
    assert str(caught.value) == f"ASGI application myapp:app: {detail}"
    assert resource.lifespanFailed


def test_an_exception_at_startup_is_no_lifespan_in_auto_mode_and_a_failure_when_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.INFO, logger="treadle.error"):
        run(ASGIResource(Lifespanned(startup="raise"), name="myapp:app").startup())
    (line,) = [r.getMessage() for r in caplog.records]
    assert "myapp:app does not speak the lifespan protocol" in line and "ZeroDivisionError" in line
    resource = ASGIResource(Lifespanned(startup="raise"), name="myapp:app", lifespan="on")
    with pytest.raises(LifespanFailure, match="raised ZeroDivisionError") as caught:
        run(resource.startup())
    assert isinstance(caught.value.__cause__, ZeroDivisionError)


async def http_only(scope: Scope, receive: Any, send: Any) -> None:
    assert scope["type"] == "http"


async def returns_at_once(scope: Scope, receive: Any, send: Any) -> None:
    return None


@pytest.mark.parametrize("app", [http_only, returns_at_once])
def test_applications_without_lifespan(app: Any) -> None:
    run(ASGIResource(app).startup())
    with pytest.raises(LifespanFailure):
        run(ASGIResource(app, lifespan="on").startup())


def test_lifespan_off_never_calls_the_application() -> None:
    app = Lifespanned()

    async def scenario() -> None:
        resource = ASGIResource(app, lifespan="off")
        await resource.startup()
        await resource.shutdown()

    run(scenario())
    assert app.events == []


@pytest.mark.parametrize(
    ("how", "detail"),
    [
        ("failed", "lifespan shut-down failed: no shutdown today"),
        ("raise", "lifespan shut-down failed: its lifespan call raised ZeroDivisionError"),
        ("hang", "lifespan shut-down failed: no answer within 0.1 s"),
    ],
)
def test_shutdown_failures(how: str, detail: str) -> None:
    resource = ASGIResource(Lifespanned(shutdown=how), name="myapp:app", lifespanTimeout=0.1)

    async def scenario() -> None:
        await resource.startup()
        with pytest.raises(LifespanFailure) as caught:
            await resource.shutdown()
        assert str(caught.value).startswith(f"ASGI application myapp:app: {detail}")

    run(scenario())


def test_unexpected_lifespan_messages_are_refused() -> None:
    errors: list[BaseException] = []

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        await receive()
        try:
            await send({"type": "lifespan.shutdown.complete"})  # before any start-up answer
        except RuntimeError as e:
            errors.append(e)
        await send({"type": "lifespan.startup.complete"})
        await receive()
        await send({"type": "lifespan.shutdown.complete"})

    async def scenario() -> None:
        resource = ASGIResource(app)
        await resource.startup()
        await resource.shutdown()

    run(scenario())
    assert "unexpected ASGI lifespan message 'lifespan.shutdown.complete'" in str(errors[0])


def test_shutdown_lets_running_calls_end_first() -> None:
    order: list[str] = []
    app = Lifespanned()
    original_shutdown = app.answer

    async def answer(how: str, phase: str, send: Any) -> bool:
        if phase == "shutdown":
            order.append("lifespan shutdown")
        return await original_shutdown(how, phase, send)

    app.answer = answer  # type: ignore[method-assign]
    resource = ASGIResource(app)

    async def background() -> None:
        await asyncio.sleep(0.05)
        order.append("background done")

    async def scenario() -> None:
        await resource.startup()
        task = asyncio.ensure_future(background())
        resource._calls.add(task)  # as a request's call (with a background task) would be
        await resource.shutdown(timeout=DEADLINE)

    run(scenario())
    assert order == ["background done", "lifespan shutdown"]


def shut_down(server: Any, resource: ASGIResource) -> None:
    """Run the resource's shut-down on the server's loop (its lifespan call lives there)."""
    asyncio.run_coroutine_threadsafe(resource.shutdown(), server.loop).result(DEADLINE)


def test_requests_get_a_copy_of_the_state(serve: Any, server: Any, client: httpx.Client) -> None:
    app = Lifespanned()
    resource = ASGIResource(app)
    url = serve(resource)
    # Served before anyone called startup(): the first request starts it and waits.
    assert client.get(url + "/").text == "[('pool', 'open')]"
    assert app.events == ["startup"]
    assert resource.lifespanState == {"pool": "open"}
    shut_down(server, resource)
    assert app.events == ["startup", "shutdown"]


def test_a_failed_lazy_startup_answers_500_and_logs_once(
    serve: Any, client: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    url = serve(ASGIResource(Lifespanned(startup="failed"), name="myapp:app"))
    with caplog.at_level(logging.ERROR, logger="treadle.error"):
        statuses = [client.get(url + "/").status_code for _ in range(3)]
        wait_for(lambda: caplog.records, "the log line")
    assert statuses == [500, 500, 500]
    (line,) = [r.getMessage() for r in caplog.records if r.name == "treadle.error"]
    assert line == "ASGI application myapp:app: lifespan start-up failed: no startup today"


def test_requests_wait_for_a_startup_in_progress(
    serve: Any, server: Any, client: httpx.Client
) -> None:
    gate = threading.Event()

    class Slow(Lifespanned):
        async def answer(self, how: str, phase: str, send: Any) -> bool:
            if phase == "startup":
                while not gate.is_set():
                    await asyncio.sleep(0.005)
            return True

    resource = ASGIResource(Slow())
    url = serve(resource)
    results: list[str] = []
    threads = [
        threading.Thread(target=lambda: results.append(client.get(url + "/").text))
        for _ in range(3)
    ]
    for thread in threads:
        thread.start()
    assert not results
    gate.set()
    for thread in threads:
        thread.join(DEADLINE)
    assert results == ["[('pool', 'open')]"] * 3
    shut_down(server, resource)
