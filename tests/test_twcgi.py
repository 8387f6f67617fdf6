"""CGI scripts (twcgi) over real sockets, with real tiny scripts run as child processes."""

from __future__ import annotations

import functools
import json
import logging
import os
import socket
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from treadle.internet import reactor
from treadle.web.resource import Resource
from treadle.web.static import File
from treadle.web.twcgi import (
    MAX_HEADER_SIZE,
    CGIDirectory,
    CGIScript,
    FilteredScript,
    PHPScript,
    search_arguments,
)

from .conftest import DEADLINE, ServerThread, host_port, raw_request, wait_for

ENV_SCRIPT = """
import json, os, sys
names = [
    "GATEWAY_INTERFACE", "SERVER_SOFTWARE", "SERVER_NAME", "SERVER_PORT", "SERVER_PROTOCOL",
    "REQUEST_METHOD", "SCRIPT_NAME", "SCRIPT_FILENAME", "REQUEST_URI", "PATH_INFO",
    "QUERY_STRING", "REMOTE_ADDR", "CONTENT_TYPE", "CONTENT_LENGTH", "HTTP_X_THING",
    "HTTP_COOKIE", "HTTP_PROXY", "PROXY", "HTTP_HOST",
]
report = {name: os.environ.get(name) for name in names}
report["argv"] = sys.argv[1:]
report["stdin"] = sys.stdin.buffer.read().decode("latin-1")
report["cwd"] = os.getcwd()
sys.stdout.write("Content-Type: application/json\\r\\n\\r\\n" + json.dumps(report))
"""


def script(path: Path, body: str, executable: bool = True) -> Path:
    """Write a Python CGI script at ``path`` (with a shebang to this interpreter)."""
    path.write_text(f"#!{sys.executable}\n{body}")
    if executable:
        path.chmod(0o755)
    return path


def printing(path: Path, output: bytes) -> Path:
    """A script that writes ``output`` as it is to its standard output."""
    return script(path, f"import sys\nsys.stdout.buffer.write({output!r})\n")


@pytest.fixture(autouse=True)
def reaped(monkeypatch: pytest.MonkeyPatch, server: ServerThread) -> Iterator[list[Any]]:
    """Record every child the tests start, and wait for each to be reaped before the loop
    stops (else its Popen would be collected while running, and warn): taking ``server``
    makes this fixture end before the server's loop does."""
    spawned: list[Any] = []
    spawn = reactor.spawnProcess

    def recording(*args: Any, **kwargs: Any) -> Any:
        process = spawn(*args, **kwargs)
        spawned.append(process)
        return process

    monkeypatch.setattr(reactor, "spawnProcess", recording)
    yield spawned
    for process in spawned:
        wait_for(functools.partial(getattr, process, "lostProcess"), "a CGI script to exit")


@pytest.fixture
def site(tmp_path: Path, serve: Callable[..., str]) -> tuple[str, Path]:
    """A site with a CGIDirectory at /cgi-bin/ over ``tmp_path / "cgi"``."""
    directory = tmp_path / "cgi"
    directory.mkdir()
    root = Resource()
    root.putChild(b"cgi-bin", CGIDirectory(str(directory)))
    return serve(root), directory


def test_environment_arguments_and_body(site: tuple[str, Path]) -> None:
    url, directory = site
    path = script(directory / "env.py", ENV_SCRIPT)
    response = httpx.post(
        url + "/cgi-bin/env.py/extra/path?x=1&y=2",
        content=b"the body",
        headers={
            "Content-Type": "text/plain",
            "X-Thing": "one",
            "Proxy": "http://evil.example/",
            "Cookie": "a=1",
        },
        timeout=DEADLINE,
    )
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    env = response.json()
    port = host_port(url)[1]
    assert env == {
        "GATEWAY_INTERFACE": "CGI/1.1",
        "SERVER_SOFTWARE": env["SERVER_SOFTWARE"],
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": str(port),
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REQUEST_METHOD": "POST",
        "SCRIPT_NAME": "/cgi-bin/env.py",
        "SCRIPT_FILENAME": str(path),
        "REQUEST_URI": "/cgi-bin/env.py/extra/path?x=1&y=2",
        "PATH_INFO": "/extra/path",
        "QUERY_STRING": "x=1&y=2",
        "REMOTE_ADDR": "127.0.0.1",
        "CONTENT_TYPE": "text/plain",
        "CONTENT_LENGTH": "8",
        "HTTP_X_THING": "one",
        "HTTP_COOKIE": "a=1",
        "HTTP_PROXY": None,  # httpoxy: never set from the request
        "PROXY": "http://evil.example/",
        "HTTP_HOST": f"127.0.0.1:{port}",
        "argv": [],
        "stdin": "the body",
        "cwd": str(directory),
    }
    assert env["SERVER_SOFTWARE"].startswith("treadle/")


def test_no_path_info_empty_query_and_search_arguments(site: tuple[str, Path]) -> None:
    url, directory = site
    script(directory / "env.py", ENV_SCRIPT)
    env = httpx.get(url + "/cgi-bin/env.py", timeout=DEADLINE).json()
    assert env["PATH_INFO"] is None
    assert env["QUERY_STRING"] == ""
    assert env["CONTENT_LENGTH"] == "0"
    assert env["CONTENT_TYPE"] is None
    env = httpx.get(url + "/cgi-bin/env.py?a+b%20c+d%2Be", timeout=DEADLINE).json()
    assert env["argv"] == ["a", "b c", "d+e"]
    assert env["QUERY_STRING"] == "a+b%20c+d%2Be"


def test_search_arguments() -> None:
    assert search_arguments(b"/s?one+two") == ["one", "two"]
    assert search_arguments(b"/s?k=v+w") == []
    assert search_arguments(b"/s?") == []
    assert search_arguments(b"/s") == []


def test_status_and_headers_from_the_script(site: tuple[str, Path]) -> None:
    url, directory = site
    printing(
        directory / "status.py",
        b"Status: 404 Not Here\r\nX-One: 1\r\nX-Two:2\r\nServer: mine\r\n"
        b"Date: never\r\nContent-Type: text/plain\r\n\r\nmissing",
    )
    response = httpx.get(url + "/cgi-bin/status.py", timeout=DEADLINE)
    assert response.status_code == 404
    assert response.text == "missing"
    assert response.headers["x-one"] == "1"
    assert response.headers["x-two"] == "2"  # RFC 3875: the space after ':' is optional
    assert response.headers["content-type"] == "text/plain"
    assert response.headers["server"].startswith("treadle/")  # the script's is dropped
    assert response.headers["date"] != "never"
    assert "status" not in response.headers


def test_location_redirects_and_bare_newlines(site: tuple[str, Path]) -> None:
    url, directory = site
    printing(directory / "go.py", b"Location: /elsewhere\n\n")
    response = httpx.get(url + "/cgi-bin/go.py", timeout=DEADLINE)
    assert response.status_code == 302
    assert response.headers["location"] == "/elsewhere"
    assert "content-type" not in response.headers  # none made up


def test_malformed_header_lines_are_skipped(
    site: tuple[str, Path], caplog: pytest.LogCaptureFixture
) -> None:
    url, directory = site
    printing(directory / "odd.py", b"not a header\nStatus: abc\nX-Ok: yes\n\nbody")
    with caplog.at_level(logging.ERROR, logger="treadle.error"):
        response = httpx.get(url + "/cgi-bin/odd.py", timeout=DEADLINE)
    assert (response.status_code, response.text) == (200, "body")
    assert response.headers["x-ok"] == "yes"
    messages = " ".join(r.getMessage() for r in caplog.records)
    assert "malformed CGI header" in messages and "malformed CGI status" in messages


def test_premature_end_of_headers_is_500_and_errors_are_logged(
    site: tuple[str, Path], caplog: pytest.LogCaptureFixture
) -> None:
    url, directory = site
    script(
        directory / "broken.py",
        "import sys\nsys.stdout.write('Content-Type: text/plain\\n')\n"
        "sys.stderr.write('oops on stderr')\nsys.exit(3)\n",
    )
    with caplog.at_level(logging.ERROR, logger="treadle.error"):
        response = httpx.get(url + "/cgi-bin/broken.py", timeout=DEADLINE)
    assert response.status_code == 500
    assert "CGI Script Error" in response.text
    assert "Premature end of script headers." in response.text
    messages = " ".join(r.getMessage() for r in caplog.records)
    assert "exit code 3" in messages
    assert "oops on stderr" in messages
    assert "Premature end of headers" in messages


def test_body_streams_while_the_script_runs(site: tuple[str, Path], tmp_path: Path) -> None:
    url, directory = site
    go = tmp_path / "go-on"
    script(
        directory / "slow.py",
        "import os, sys, time\n"
        "sys.stdout.write('Content-Type: text/plain\\n\\nfirst;')\nsys.stdout.flush()\n"
        f"deadline = time.monotonic() + {DEADLINE}\n"
        f"while not os.path.exists({str(go)!r}) and time.monotonic() < deadline:\n"
        "    time.sleep(0.005)\n"
        "sys.stdout.write('second')\n",
    )
    with socket.create_connection(host_port(url), timeout=DEADLINE) as s:
        s.sendall(b"GET /cgi-bin/slow.py HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        received = b""
        while b"first;" not in received:
            piece = s.recv(65536)
            assert piece, "closed before the first part"
            received += piece
        assert b"second" not in received  # the script is still waiting: this was streamed
        go.touch()
        while piece := s.recv(65536):
            received += piece
    assert received.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"Transfer-Encoding: chunked" in received
    assert b"second" in received


def test_large_request_body_reaches_stdin(site: tuple[str, Path]) -> None:
    url, directory = site
    script(
        directory / "count.py",
        "import sys\ndata = sys.stdin.buffer.read()\n"
        "print('Content-Type: text/plain\\n')\nprint(len(data), data.count(b'x'))\n",
    )
    body = b"x" * 1_000_000
    response = httpx.put(url + "/cgi-bin/count.py", content=body, timeout=DEADLINE)
    assert response.text.split() == ["1000000", "1000000"]


def test_header_block_too_large_is_500(site: tuple[str, Path]) -> None:
    url, directory = site
    script(
        directory / "endless.py",
        "import sys\nwhile True:\n    sys.stdout.write('X-Filler: ' + 'a' * 1000 + '\\n')\n",
    )
    response = httpx.get(url + "/cgi-bin/endless.py", timeout=DEADLINE)
    assert response.status_code == 500
    assert "too large" in response.text
    assert MAX_HEADER_SIZE >= 1024


def test_script_that_cannot_run_is_500(
    site: tuple[str, Path], caplog: pytest.LogCaptureFixture
) -> None:
    url, directory = site
    script(directory / "plain.py", "print('never')", executable=False)
    with caplog.at_level(logging.ERROR, logger="treadle.error"):
        response = httpx.get(url + "/cgi-bin/plain.py", timeout=DEADLINE)
    assert response.status_code == 500
    assert "CGI Script Error" in response.text
    assert any("could not be started" in r.getMessage() for r in caplog.records)


def test_directory_listing_missing_children_and_escapes_are_404(site: tuple[str, Path]) -> None:
    url, directory = site
    (directory / "sub").mkdir()
    printing(directory / "sub" / "deep.py", b"Content-Type: text/plain\n\ndeep")
    listing = httpx.get(url + "/cgi-bin/", timeout=DEADLINE)
    assert listing.status_code == 404
    assert "CGI directories do not support directory listing." in listing.text
    missing = httpx.get(url + "/cgi-bin/nope.py", timeout=DEADLINE)
    assert missing.status_code == 404 and "File not found." in missing.text
    assert httpx.get(url + "/cgi-bin/sub/deep.py", timeout=DEADLINE).text == "deep"
    escape = raw_request(
        url, b"GET /cgi-bin/sub/%2E%2E%2F..%2Fetc HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    assert escape.startswith(b"HTTP/1.1 404 ")


def test_filtered_script_runs_through_its_interpreter(
    tmp_path: Path, serve: Callable[..., str]
) -> None:
    class PythonFiltered(FilteredScript):
        filter = sys.executable

    source = script(
        tmp_path / "filtered.py",
        "import sys\nprint('Content-Type: text/plain\\n')\nprint(sys.argv[1:])\n",
        executable=False,
    )
    root = Resource()
    root.putChild(b"f", PythonFiltered(str(source)))
    response = httpx.get(serve(root) + "/f?one+two", timeout=DEADLINE)
    assert response.text.strip() == "['one', 'two']"
    assert issubclass(PHPScript, FilteredScript)


def test_static_file_processor(tmp_path: Path, serve: Callable[..., str]) -> None:
    printing(tmp_path / "hello.cgi", b"Content-Type: text/plain\n\nfrom a .cgi")
    root = File(str(tmp_path))
    root.processors = {".cgi": CGIScript}
    response = httpx.get(serve(root) + "/hello.cgi", timeout=DEADLINE)
    assert (response.status_code, response.text) == (200, "from a .cgi")


def test_client_leaving_closes_the_scripts_pipes(site: tuple[str, Path], tmp_path: Path) -> None:
    url, directory = site
    marker = tmp_path / "stopped"
    script(
        directory / "forever.py",
        "import sys, time\n"
        "sys.stdout.write('Content-Type: text/plain\\n\\n')\n"
        f"deadline = time.monotonic() + {DEADLINE}\n"
        "try:\n"
        "    while time.monotonic() < deadline:\n"
        "        sys.stdout.write('x' * 1024)\n        sys.stdout.flush()\n"
        "        time.sleep(0.01)\n"
        "except BrokenPipeError:\n"
        f"    open({str(marker)!r}, 'w').close()\n",
    )
    with socket.create_connection(host_port(url), timeout=DEADLINE) as s:
        s.sendall(b"GET /cgi-bin/forever.py HTTP/1.1\r\nHost: x\r\n\r\n")
        assert s.recv(65536).startswith(b"HTTP/1.1 200 OK")
    wait_for(lambda: os.path.exists(marker), "the script to see its output pipe closed")


def test_twisted_names() -> None:
    script_resource = CGIScript("/nonexistent", registry=None, reactor=object())
    assert script_resource.isLeaf and script_resource.filename == "/nonexistent"
    assert json.dumps(FilteredScript.filter)
