"""A real browser (headless Chromium, Debian's ``chromium``) talks WebSocket to treadle.

The page opens a WebSocket to the server, sends a text and a binary message, checks the
echoes, sends its verdict and closes with 4000. The server side records what it heard, so
the test waits on the server, never on the browser's output. Skipped where there is no
``chromium`` (CI installs it).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import DEADLINE, wait_for
from treadle.web.resource import Resource
from treadle.web.server import Site
from treadle.web.static import Data
from treadle.web.websocket import WebSocket, WebSocketResource

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

PAGE = b"""<!doctype html>
<html><body><pre id="out">waiting</pre><script>
const out = document.getElementById("out");
const ws = new WebSocket(`ws://${location.host}/echo`);
ws.binaryType = "arraybuffer";
let step = 0;
ws.onopen = () => { ws.send("hello from the browser"); };
ws.onmessage = (event) => {
  if (step === 0) {
    const ok = event.data === "hello from the browser";
    step = 1;
    ws.send(new Uint8Array([0, 1, 2, 255]).buffer);
    if (!ok) { ws.send("verdict: bad text echo"); }
  } else if (step === 1) {
    const bytes = Array.from(new Uint8Array(event.data)).join(",");
    step = 2;
    ws.send(bytes === "0,1,2,255" ? "verdict: ok" : "verdict: bad binary echo " + bytes);
    ws.close(4000, "done");
  }
};
ws.onclose = (event) => { out.textContent = "closed " + event.code; };
</script></body></html>
"""


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium")
def test_headless_chromium_talks_websocket(serve: Any, tmp_path: Path) -> None:
    heard: list[Any] = []

    async def echo(ws: WebSocket) -> None:
        heard.append(("extensions", ws.request.getHeader("sec-websocket-extensions")))
        async for message in ws:
            heard.append(message)
            if not (isinstance(message, str) and message.startswith("verdict")):
                await ws.send(message)
        heard.append(("closed", ws.close_code, ws.close_reason))

    root = Resource()
    root.putChild(b"", Data(PAGE, "text/html; charset=utf-8"))
    root.putChild(b"echo", WebSocketResource(echo))
    site = Site(root)
    base = serve(site)
    assert CHROMIUM is not None
    browser = subprocess.Popen(
        [
            CHROMIUM,
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            f"--user-data-dir={tmp_path / 'profile'}",
            base + "/",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(lambda: heard and heard[-1][0] == "closed", "the browser's close", DEADLINE * 3)
    finally:
        browser.terminate()
        try:
            browser.wait(DEADLINE)
        except subprocess.TimeoutExpired:
            browser.kill()
            browser.wait(DEADLINE)
    kind, offered = heard[0]
    assert kind == "extensions" and "permessage-deflate" in offered  # Chromium compresses
    assert heard[1:] == [
        "hello from the browser",
        b"\x00\x01\x02\xff",
        "verdict: ok",
        ("closed", 4000, "done"),
    ]
    wait_for(lambda: not site.connections, "the connection to end")
