"""``treadle web`` with several workers: sessions every worker shares, and the options for them.

Each test runs the real command in a subprocess, as a user would.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from .test_cli import DEADLINE, Treadle

COUNTER_RPY = """\
import os
from twisted.web.resource import Resource

class Counter(Resource):
    isLeaf = True

    def render_GET(self, request):
        session = request.getSession()
        session.visits = getattr(session, "visits", 0) + 1
        return b"%d %d" % (session.visits, os.getpid())

resource = Counter()
"""

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="--workers relies on SO_REUSEPORT balancing"
)


@pytest.fixture
def run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Treadle]]:
    runtime = tmp_path / "runtime"
    runtime.mkdir()
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    started: list[Treadle] = []

    def start(*args: str) -> Treadle:
        server = Treadle(list(args))
        started.append(server)
        return server

    yield start
    for server in started:
        server.close()


@pytest.fixture
def site(tmp_path: Path) -> Path:
    root = tmp_path / "site"
    root.mkdir()
    (root / "count.rpy").write_text(COUNTER_RPY)
    return root


def _visits(url: str, times: int) -> tuple[list[int], set[int]]:
    """Visit ``url`` ``times`` times with the session cookie, one connection per visit."""
    cookie = ""
    counts: list[int] = []
    pids: set[int] = set()
    for _ in range(times):
        headers = {"connection": "close", **({"cookie": cookie} if cookie else {})}
        response = httpx.get(url, headers=headers, timeout=DEADLINE)
        assert response.status_code == 200, response.text
        if "set-cookie" in response.headers:
            cookie = response.headers["set-cookie"].split(";")[0]
        count, pid = response.text.split()
        counts.append(int(count))
        pids.add(int(pid))
    return counts, pids


def test_workers_share_sessions_by_default(
    run: Callable[..., Treadle], site: Path, tmp_path: Path
) -> None:
    server = run("--path", str(site), "--listen", "tcp:0:interface=127.0.0.1", "--workers", "2")
    server.started()
    counts, pids = _visits(f"{server.url}/count.rpy", 20)
    # Twenty new connections spread over two workers (by the kernel), one count.
    assert counts == list(range(1, 21))
    assert len(pids) == 2
    server.signal(signal.SIGTERM)
    assert server.finish() == 0
    # The runtime directory (the sqlite file and the secret) went with the server.
    assert os.listdir(tmp_path / "runtime") == []


def test_memory_sessions_with_workers_are_per_worker_and_said_so(
    run: Callable[..., Treadle], site: Path
) -> None:
    server = run(
        "--path",
        str(site),
        "--listen",
        "tcp:0:interface=127.0.0.1",
        "--workers",
        "2",
        "--sessions",
        "memory:",
    )
    server.started()
    server.wait_line("stderr", lambda line: "each worker keeps its own sessions" in line)
    server.signal(signal.SIGTERM)
    assert server.finish() == 0


def test_a_secret_file_that_is_too_short_is_refused(
    run: Callable[..., Treadle], site: Path, tmp_path: Path
) -> None:
    secret = tmp_path / "secret"
    secret.write_text("short")
    server = run("--path", str(site), "--sessions", "sqlite:", "--secret-file", str(secret))
    assert server.finish() == 1
    assert any("holds 5 bytes; a secret needs at least 32" in line for line in server.stderr)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--sessions", "postgres://u:hunter2@h/db"], "--sessions: unknown kind of store"),
        (["--sessions", "sqlite:relative/path"], "absolute"),
        (["--max-sessions", "0"], "--max-sessions must be at least 1"),
        (["--forwarded-allow-ips", "10.0.0.1"], "--forwarded-allow-ips needs --proxy-headers"),
        (["--proxy-headers", "--forwarded-allow-ips", "10.0.0.300"], "is not an IP address"),
    ],
)
def test_bad_session_and_proxy_options_are_named(
    run: Callable[..., Treadle], site: Path, args: list[str], message: str
) -> None:
    server = run("--path", str(site), *args)
    assert server.finish() in (1, 2)
    text = "\n".join(server.stderr)
    assert message in text, text
    assert "hunter2" not in text  # a password in a store URL is never printed
