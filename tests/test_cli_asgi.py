"""``treadle web --asgi pkg.mod:app``: the real command in a subprocess, serving ASGI
applications at the root with their lifespan around serving and the graceful shutdown."""

from __future__ import annotations

import signal
import textwrap
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from treadle._cli.errors import UsageError
from treadle._cli.main import parse_command_line

from .conftest import DEADLINE
from .test_cli import Treadle, get, run_to_exit

BENCH_APPS = Path(__file__).resolve().parent.parent / "bench" / "apps"

# A Starlette application whose lifespan and background work print what they do, so that the
# test reads the order of events from the server's stdout.
STARLETTE_APP = """\
import asyncio, contextlib, os, pathlib
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.responses import PlainTextResponse
from starlette.routing import Route

STARTUP = os.environ.get("APP_STARTUP", "ok")
SHUTDOWN = os.environ.get("APP_SHUTDOWN", "ok")

@contextlib.asynccontextmanager
async def lifespan(app):
    print("app: startup", flush=True)
    if STARTUP == "fail":
        raise RuntimeError("the database is down")
    if STARTUP == "slow":
        await asyncio.sleep(0.5)
    yield {"greeting": "hello"}
    print("app: shutdown", flush=True)
    if SHUTDOWN == "fail":
        raise RuntimeError("could not flush the cache")

async def home(request):
    return PlainTextResponse(f"{request.state.greeting} from {request.url.path}")

async def slow(request):
    print("app: slow started", flush=True)
    until = pathlib.Path(request.query_params["until"])
    while not until.exists():
        await asyncio.sleep(0.01)
    return PlainTextResponse("slow done")

async def later(request):
    async def work():
        await asyncio.sleep(0.2)
        print("app: background done", flush=True)
    print("app: answering /later", flush=True)
    return PlainTextResponse("later", background=BackgroundTask(work))

app = Starlette(routes=[Route("/", home), Route("/slow", slow), Route("/later", later)],
                lifespan=lifespan)
"""


@pytest.fixture
def treadle() -> Iterator[Callable[..., Treadle]]:
    started: list[Treadle] = []

    def start(*args: str, cwd: Path | None = None) -> Treadle:
        server = Treadle(list(args), cwd)
        started.append(server)
        return server

    yield start
    for server in started:
        server.close()


@pytest.fixture
def app_dir(tmp_path: Path) -> Path:
    (tmp_path / "starapp.py").write_text(STARLETTE_APP)
    return tmp_path


def test_with_workers_the_startup_line_comes_once_every_worker_listens(
    treadle: Callable[..., Treadle], app_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Each worker runs the application's start-up (half a second here) before it listens: a
    # client that connects as soon as the line is printed is answered, never refused.
    monkeypatch.setenv("APP_STARTUP", "slow")
    server = treadle(
        "--asgi",
        "starapp:app",
        "--listen",
        "tcp:0:interface=127.0.0.1",
        "--workers",
        "2",
        "--no-access-log",
        cwd=app_dir,
    )
    assert " with 2 workers on " in server.started()
    for _ in range(4):
        assert get(server.url + "/").text == "hello from /"
    server.signal(signal.SIGTERM)
    assert server.finish() == 0


def test_the_option() -> None:
    options = parse_command_line(["web", "--asgi", "pkg.mod:app"])
    assert options.asgi == "pkg.mod:app" and options.wsgi is None
    with pytest.raises(UsageError, match=r"exactly one of .* or --asgi NAME"):
        parse_command_line(["web", "--asgi", "a:b", "--wsgi", "c:d"])


def test_serves_with_lifespan_and_shuts_down_gracefully(
    treadle: Callable[..., Treadle], app_dir: Path
) -> None:
    server = treadle("--asgi", "starapp:app", "--listen", "tcp:0:interface=127.0.0.1", cwd=app_dir)
    line = server.started()
    assert "serving ASGI application starapp:app on" in line
    # The start-up ran before the ports opened (and so before the startup line).
    assert server.stdout.index("app: startup") < server.stdout.index(line)
    assert get(server.url + "/").text == "hello from /"
    assert get(server.url + "/a/b").status_code == 404  # Starlette's own answer
    # The access log, as for any resource.
    server.wait_line("stdout", lambda text: '"GET / HTTP/1.1" 200' in text)
    # A response running at shutdown finishes; the shut-down of the app comes after it.
    release = app_dir / "release"
    result: dict[str, Any] = {}

    def client() -> None:
        result["response"] = get(f"{server.url}/slow?until={release}")

    thread = threading.Thread(target=client)
    thread.start()
    server.wait_line("stdout", lambda text: text == "app: slow started")
    server.signal(signal.SIGTERM)
    server.wait_line("stderr", lambda text: "shutting down" in text)
    assert "app: shutdown" not in server.stdout
    release.touch()
    thread.join(DEADLINE)
    assert result["response"].text == "slow done"
    assert server.finish() == 0
    assert server.stdout[-1] == "app: shutdown"
    assert not any("Traceback" in text for text in server.stderr)


def test_background_tasks_end_before_the_shutdown(
    treadle: Callable[..., Treadle], app_dir: Path
) -> None:
    server = treadle("--asgi", "starapp:app", "--listen", "tcp:0:interface=127.0.0.1", cwd=app_dir)
    server.started()
    assert get(server.url + "/later").text == "later"
    server.wait_line("stdout", lambda text: text == "app: answering /later")
    server.signal(signal.SIGTERM)
    assert server.finish() == 0
    events = [text for text in server.stdout if text.startswith("app: ")]
    assert events[-2:] == ["app: background done", "app: shutdown"]


def test_a_failed_startup_is_one_error_line(app_dir: Path, monkeypatch: Any) -> None:
    monkeypatch.setenv("APP_STARTUP", "fail")
    result = run_to_exit(
        "web", "--asgi", "starapp:app", "--listen", "tcp:0:interface=127.0.0.1", cwd=app_dir
    )
    assert result.returncode == 1
    assert result.stderr.splitlines()[-1].startswith(
        "treadle: error: ASGI application starapp:app: lifespan start-up failed: "
    )
    assert result.stderr.splitlines()[-1].endswith("RuntimeError: the database is down")
    assert "Traceback" in result.stderr  # Starlette's account, logged before our line
    assert "serving" not in result.stdout  # no port was opened


def test_a_failed_shutdown_is_reported_and_exits_1(
    treadle: Callable[..., Treadle], app_dir: Path, monkeypatch: Any
) -> None:
    monkeypatch.setenv("APP_SHUTDOWN", "fail")
    server = treadle("--asgi", "starapp:app", "--listen", "tcp:0:interface=127.0.0.1", cwd=app_dir)
    server.started()
    assert get(server.url + "/").status_code == 200  # serving (its signal handlers are set)
    server.signal(signal.SIGTERM)
    assert server.finish() == 1
    assert any(
        "ASGI application starapp:app: lifespan shut-down failed" in text
        and "could not flush the cache" in text
        for text in server.stderr
    )


def test_a_second_signal_skips_the_shutdown(treadle: Callable[..., Treadle], app_dir: Path) -> None:
    release = app_dir / "never"
    server = treadle(
        "--asgi", "starapp:app", "--listen", "tcp:0:interface=127.0.0.1", "--grace", "3600",
        cwd=app_dir,
    )  # fmt: skip
    server.started()

    def client() -> None:
        with pytest.raises(httpx.HTTPError):
            get(f"{server.url}/slow?until={release}")

    thread = threading.Thread(target=client)
    thread.start()
    server.wait_line("stdout", lambda text: text == "app: slow started")
    server.signal(signal.SIGTERM)
    server.wait_line("stderr", lambda text: "shutting down" in text)
    server.signal(signal.SIGINT)
    assert server.finish() == 128 + signal.SIGINT
    thread.join(DEADLINE)
    assert "app: shutdown" not in server.stdout


def test_import_errors() -> None:
    bad = run_to_exit("web", "--asgi", "nosuchmodule:app")
    assert bad.returncode == 1
    assert bad.stderr.startswith("treadle: error: --asgi nosuchmodule:app")
    assert len(bad.stderr.splitlines()) == 1


@pytest.mark.parametrize(
    ("attribute", "method", "body", "answer"),
    [
        ("app", "GET", None, "Hello, world!"),
        ("async_", "GET", None, "Hello, world!"),
        ("post", "POST", b"name=treadle", "treadle"),
    ],
)
def test_the_benchmark_application(
    treadle: Callable[..., Treadle],
    attribute: str,
    method: str,
    body: bytes | None,
    answer: str,
) -> None:
    """bench/apps/asgi_app.py, which the benchmark runs under uvicorn and granian, runs as is."""
    server = treadle(
        "--asgi", f"asgi_app:{attribute}", "--listen", "tcp:0:interface=127.0.0.1",
        "--no-access-log", cwd=BENCH_APPS,
    )  # fmt: skip
    server.started()
    headers = {"content-type": "application/x-www-form-urlencoded"}
    response = httpx.request(method, server.url + "/", content=body, headers=headers)
    assert response.text == answer
    server.signal(signal.SIGTERM)
    assert server.finish() == 0
    assert not server.stderr or not any("error" in text.lower() for text in server.stderr)


def test_the_startup_waits_for_nothing_when_the_app_has_no_lifespan(
    treadle: Callable[..., Treadle], tmp_path: Path
) -> None:
    (tmp_path / "plain.py").write_text(
        textwrap.dedent(
            """\
            async def app(scope, receive, send):
                assert scope["type"] == "http"
                await send({"type": "http.response.start", "status": 200, "headers": []})
                await send({"type": "http.response.body", "body": b"plain"})
            """
        )
    )
    server = treadle("--asgi", "plain:app", "--listen", "tcp:0:interface=127.0.0.1", cwd=tmp_path)
    server.started()
    assert get(server.url + "/").text == "plain"
    server.wait_line("stderr", lambda text: "does not speak the lifespan protocol" in text)
    server.signal(signal.SIGTERM)
    assert server.finish() == 0
