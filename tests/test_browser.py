"""examples/live.rpy in a real browser: Debian's headless Chromium, driven over the DevTools
protocol.

The protocol runs over a pipe (``--remote-debugging-pipe``: JSON messages ended by NUL on the
browser's file descriptors 3 and 4), so no client library is needed. The examples are served
as ``treadle web --path examples`` serves them, with the reactor's time on a
:class:`~treadle.internet.task.Clock`: each tick of the page's clock comes when the test
advances it, so the test waits for events, never for seconds.

Skipped only when no ``chromium`` is installed (CI installs Debian's ``chromium`` package).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from treadle._cli.main import make_site, parse_command_line
from treadle.internet import reactor
from treadle.internet.task import Clock

from .conftest import DEADLINE, ServerThread, wait_for

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
BASH = shutil.which("bash") or "/bin/bash"

pytestmark = pytest.mark.skipif(
    CHROMIUM is None,
    reason="no chromium to drive: install Debian's chromium package (apt-get install chromium)",
)

# What the brief of a headless run in a container asks for: no sandbox (root), no GPU, and
# nothing that reaches out to the network on its own.
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--no-first-run",
    "--disable-component-update",
    "--disable-sync",
    "--remote-debugging-pipe",
]


class BrowserError(Exception):
    """The browser answered a command with an error, or a script threw."""


class Browser:
    """A headless Chromium and its DevTools pipe.

    Args:
        profile: An empty directory for the browser's profile (``--user-data-dir``).
    """

    def __init__(self, profile: Path) -> None:
        assert CHROMIUM is not None
        to_browser, self._to_browser = os.pipe()
        self._from_browser, from_browser = os.pipe()
        # The protocol wants the pipe on the browser's descriptors 3 and 4: bash puts them
        # there and becomes the browser (dash reads no descriptor numbers above 9).
        script = f'exec "$0" "$@" 3<&{to_browser} 4>&{from_browser}'
        self.log = profile / "chromium.log"
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                [BASH, "-c", script, CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={profile}"],
                pass_fds=(to_browser, from_browser),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
            )
        os.close(to_browser)
        os.close(from_browser)
        self._next_id = 0
        self._answers: dict[int, dict[str, Any]] = {}
        self._arrived = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        pending = b""
        with open(self._from_browser, "rb", buffering=0) as pipe:
            while chunk := pipe.read(65536):
                pending += chunk
                *messages, pending = pending.split(b"\0")
                for raw in messages:
                    message = json.loads(raw)
                    if "id" in message:  # events (no id) are not needed here
                        with self._arrived:
                            self._answers[message["id"]] = message
                            self._arrived.notify_all()
        with self._arrived:
            self._arrived.notify_all()

    def call(self, method: str, session: str | None = None, **params: Any) -> Any:
        """Send one command (to a page's ``session``, else to the browser); return its result."""
        self._next_id += 1
        ident = self._next_id
        message: dict[str, Any] = {"id": ident, "method": method, "params": params}
        if session is not None:
            message["sessionId"] = session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        with self._arrived:
            answered = self._arrived.wait_for(
                lambda: ident in self._answers or not self._reader.is_alive(), DEADLINE
            )
            answer = self._answers.pop(ident, None)
        if not answered or answer is None:
            raise BrowserError(f"no answer to {method}: {self.describe()}")
        if "error" in answer:
            raise BrowserError(f"{method}: {answer['error']}")
        return answer["result"]

    def open(self, url: str) -> Page:
        """Open ``url`` in a new tab and return the tab."""
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        page = Page(self, session)
        page.call("Page.navigate", url=url)
        page.wait(f"location.href === {json.dumps(url)} && document.readyState === 'complete'")
        return page

    def describe(self) -> str:
        return f"chromium exited with {self.proc.poll()}; its log: {self.log.read_text()[-2000:]}"

    def close(self) -> None:
        with contextlib.suppress(BrowserError, OSError):  # it may close before answering
            self.call("Browser.close")
        try:
            self.proc.wait(DEADLINE)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(DEADLINE)
        os.close(self._to_browser)
        self._reader.join(DEADLINE)


class Page:
    """One tab of the browser."""

    def __init__(self, browser: Browser, session: str) -> None:
        self.browser = browser
        self.session = session

    def call(self, method: str, **params: Any) -> Any:
        return self.browser.call(method, self.session, **params)

    def evaluate(self, expression: str) -> Any:
        """Run ``expression`` in the page; return its value (JSON-able)."""
        answer = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in answer:
            raise BrowserError(f"{expression}: {answer['exceptionDetails']}")
        return answer["result"].get("value")

    def wait(self, expression: str) -> Any:
        """Wait until ``expression`` is truthy in the page; return its value."""
        return wait_for(lambda: self.evaluate(expression), what=f"the page to show {expression}")


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Browser]:
    running = Browser(tmp_path)
    try:
        yield running
    finally:
        running.close()


@pytest.fixture
def clock() -> Iterator[Clock]:
    """The reactor's time on a Clock: the page's LoopingCall ticks when the test says."""
    fake = Clock()
    assert "callLater" not in vars(reactor) and "seconds" not in vars(reactor)
    vars(reactor).update(callLater=fake.callLater, seconds=fake.seconds)
    try:
        yield fake
    finally:
        del vars(reactor)["callLater"], vars(reactor)["seconds"]


TICKS = "[...document.querySelectorAll('#ticks li')].map(li => li.textContent)"
TICK = r"tick (\d+) at \d\d:\d\d:\d\d"


def test_live_page_gets_clock_events_and_echoes_in_chromium(
    server: ServerThread, browser: Browser, clock: Clock
) -> None:
    site, _ = make_site(parse_command_line(["web", "--path", str(EXAMPLES)]))
    url = server.serve(site)
    page = browser.open(url + "/live.rpy")

    # The event stream opens and its first tick comes at once; then one a second.
    page.wait("document.getElementById('clock-state').textContent === 'open'")
    page.wait("document.body.dataset.ticks === '1'")
    for count in range(2, 5):
        server.call(clock.advance, 1)
        page.wait(f"document.body.dataset.ticks === '{count}'")
    shown = page.evaluate(TICKS)
    assert [int(re.fullmatch(TICK, line).group(1)) for line in shown] == [4, 3, 2, 1], shown
    assert re.fullmatch(r"\d\d:\d\d:\d\d", page.evaluate("document.getElementById('clock').value"))

    # The WebSocket echoes what is typed and sent.
    page.wait("document.getElementById('echo-state').textContent === 'open'")
    page.evaluate(
        "document.getElementById('echo-text').value = 'héllo, échø ✓';"
        "document.querySelector('#echo-form button').click()"
    )
    assert page.wait("document.querySelector('#echoes li')?.textContent") == "héllo, échø ✓"

    # Cut the connections: the browser reconnects to the clock by itself (retry: 1000 ms)
    # with Last-Event-ID, and the stream goes on from the tick it had seen.
    server.call(lambda: [channel.abort() for channel in site.connections])
    page.wait("document.getElementById('resumed').textContent")
    assert page.evaluate("document.getElementById('resumed').textContent") == (
        "Welcome back: you had seen tick 4."
    )
    page.wait("document.body.dataset.ticks === '5'")
    assert re.fullmatch(TICK, page.evaluate(TICKS)[0]).group(1) == "5"  # type: ignore[union-attr]
