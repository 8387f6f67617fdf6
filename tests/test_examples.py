"""The examples tour (examples/: index.html, the .rpy scripts, the forms, the static files and
the three programs), checked against what its pages and comments say.

Three ways in:

- In-process: the Site ``treadle web --path examples`` builds (:func:`make_site` of the parsed
  command line) served by the ``server`` fixture, on both loops. The scripts wait 3 s, 5 s
  and ten times 1 s; the ``clock`` fixture runs their ``reactor.callLater`` and
  ``LoopingCall`` on a :class:`~treadle.internet.task.Clock` instead (it puts the Clock's
  ``callLater`` and ``seconds`` on the reactor the scripts import), so time moves only when
  a test advances it, and "not yet" is checked as surely as "now".
- The programs (delayed.py, streaming.py, interrupted.py) run with ``runpy`` while
  ``reactor.listenTCP`` and ``reactor.run`` are intercepted: the Site each builds is served
  the same way, on the Clock.
- Subprocesses: the real ``treadle web --path examples``, the three programs on the ports
  given as their argument, and real Twisted: ``twistd -n web --path examples``, and
  delayed.py and interrupted.py with their imports switched back to ``twisted``. They all
  start when the first test of the module does, so that they boot while the in-process
  tests run, and they are killed at the end of the module.

The claims that delayed.rpy "runs unchanged under twistd web" and that delayed.py is a
Twisted program "ported by changing its imports" are checked against real Twisted (a test
extra, like everything these tests need: nothing here is skipped).
"""

from __future__ import annotations

import ast
import html
import logging
import os
import re
import runpy
import select
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from html.parser import HTMLParser
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlencode, urljoin

import httpx
import pytest

import treadle
from treadle._cli.main import make_site, parse_command_line
from treadle.internet import reactor
from treadle.internet.base import DelayedCall
from treadle.internet.task import Clock
from treadle.web.server import Site

from .conftest import DEADLINE, ServerThread, host_port, wait_for

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
# The subprocesses run the treadle these tests imported.
SRC = Path(treadle.__file__).resolve().parents[1]
TWISTD = shutil.which("twistd", path=str(Path(sys.executable).parent)) or shutil.which("twistd")

SCRIPTS = ("clock.rpy", "delayed.rpy", "form.rpy", "interrupted.rpy")
PROGRAMS = ("delayed", "streaming", "interrupted")
TIME_OF_DAY = rb"\d\d:\d\d:\d\d"


# -- reading pages -----------------------------------------------------------------------------


class Page(HTMLParser):
    """The links and forms of an HTML page, as a browser sees them."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.links: list[str] = []  # every href, in order
        self.stylesheets: list[str] = []
        self.forms: list[dict[str, Any]] = []
        self._select: str | None = None  # the name of the select being read
        self._selected = False  # inside a selected option of it
        self.feed(text)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {name: value or "" for name, value in attrs}
        if "href" in a:
            self.links.append(a["href"])
            if tag == "link" and a.get("rel") == "stylesheet":
                self.stylesheets.append(a["href"])
        if tag == "form":
            self.forms.append({**a, "fields": [], "files": []})
        elif tag == "input" and a.get("type") == "file":
            self.forms[-1]["files"].append(a["name"])
        elif tag == "input":
            self.forms[-1]["fields"].append((a["name"], a.get("value", "")))
        elif tag == "select":
            self._select = a["name"]
        elif tag == "option" and "selected" in a:
            assert self._select is not None
            self._selected = True

    def handle_data(self, data: str) -> None:
        if self._selected:
            self._selected = False
            assert self._select is not None
            self.forms[-1]["fields"].append((self._select, data))

    def handle_endtag(self, tag: str) -> None:
        if tag == "select":
            self._select = None


def rows(page: bytes) -> dict[str, list[str]]:
    """The table of form.rpy's answer: argument name -> its values, as shown (escaped)."""
    found = re.findall(rb"<tr><th>(.*?)</th><td>(.*?)</td></tr>", page, re.S)
    return {name.decode(): value.decode().split("<br>") for name, value in found}


def shown_content_type(page: bytes) -> str:
    match = re.search(rb"<p>Content-Type: <code>(.*?)</code></p>", page)
    assert match, page
    return match.group(1).decode()


def dechunk(data: bytes) -> bytes:
    body = b""
    while True:
        size_line, _, data = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            assert data == b"\r\n", data
            return body
        body += data[:size]
        assert data[size : size + 2] == b"\r\n"
        data = data[size + 2 :]


class Client:
    """A raw HTTP/1.1 connection: one request, then what arrives, as it arrives."""

    def __init__(self, url: str, path: str, method: str = "GET") -> None:
        self.sock = socket.create_connection(host_port(url), timeout=DEADLINE)
        self.received = b""
        self.closed = False  # by the server
        self.sock.sendall(
            f"{method} {path} HTTP/1.1\r\nHost: tour\r\nConnection: close\r\n"
            "Content-Length: 0\r\n\r\n".encode()
        )

    def arrived(self) -> bytes:
        """Everything received so far, taking what is waiting without waiting for more."""
        while not self.closed and select.select([self.sock], [], [], 0)[0]:
            chunk = self.sock.recv(65536)
            self.closed = not chunk
            self.received += chunk
        return self.received

    def wait_until(self, predicate: Callable[[bytes], bool], what: str) -> bytes:
        deadline = time.monotonic() + DEADLINE
        while not predicate(self.received):
            if time.monotonic() > deadline:
                pytest.fail(f"timed out waiting for {what}; received {self.received!r}")
            if select.select([self.sock], [], [], 0.05)[0]:
                chunk = self.sock.recv(65536)
                if not chunk:
                    pytest.fail(f"closed before {what}; received {self.received!r}")
                self.received += chunk
        return self.received

    def response(self) -> tuple[int, dict[str, str], bytes]:
        """Read to the end: the status, the headers (lowercase names), the body (unchunked)."""
        while chunk := self.sock.recv(65536):
            self.received += chunk
        self.close()
        head, _, body = self.received.partition(b"\r\n\r\n")
        status_line, *lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if headers.get("transfer-encoding") == "chunked":
            body = dechunk(body)
        return int(status_line.split()[1]), headers, body

    def close(self) -> None:
        self.sock.close()


# -- in-process fixtures -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def http() -> Iterator[httpx.Client]:
    """One client for the module (making one costs a TLS context). "Connection: close"
    leaves no pooled connection to a server a test has stopped."""
    with httpx.Client(timeout=DEADLINE, headers={"Connection": "close"}) as client:
        yield client


@pytest.fixture
def tour(server: ServerThread) -> str:
    """The examples served by the Site ``treadle web --path examples`` builds."""
    site, what = make_site(parse_command_line(["web", "--path", str(EXAMPLES)]))
    assert what == str(EXAMPLES)
    return server.serve(site)


@pytest.fixture
def clock() -> Iterator[Clock]:
    """A Clock standing in for the reactor's time: scripts' callLater and LoopingCall use it."""
    fake = Clock()
    assert "callLater" not in vars(reactor) and "seconds" not in vars(reactor)
    vars(reactor).update(callLater=fake.callLater, seconds=fake.seconds)
    try:
        yield fake
    finally:
        del vars(reactor)["callLater"], vars(reactor)["seconds"]


def advance(server: ServerThread, clock: Clock, seconds: float) -> None:
    server.call(clock.advance, seconds)


def pending(server: ServerThread, clock: Clock) -> list[DelayedCall]:
    return list(server.call(clock.getDelayedCalls))


def scheduled(server: ServerThread, clock: Clock, count: int) -> list[DelayedCall]:
    """Wait until ``count`` calls are pending on the clock and return them."""
    return list(
        wait_for(
            lambda: (calls := pending(server, clock)) and len(calls) == count and calls,
            what=f"{count} pending call(s) on the clock",
        )
    )


def media_type(headers: httpx.Headers | dict[str, str]) -> str:
    return headers["content-type"].split(";")[0].strip()


# -- index.html and the static files -----------------------------------------------------------


def test_every_link_of_the_tour_resolves(
    http: httpx.Client, server: ServerThread, tour: str, clock: Clock
) -> None:
    """index.html's links, and the stylesheet and "Back to the examples" link of each page."""
    index = (EXAMPLES / "index.html").read_bytes()
    links = set(Page(index.decode()).links)
    assert all((EXAMPLES / link).is_file() for link in links), links
    assert {"delayed.rpy", "clock.rpy", "interrupted.rpy", "form.html"} <= links
    with ThreadPoolExecutor(len(links)) as pool:
        answers = {link: pool.submit(http.get, urljoin(tour + "/", link)) for link in links}

        def all_answered() -> bool:
            advance(server, clock, 1)  # the .rpy pages answer within ten clock seconds
            return all(answer.done() for answer in answers.values())

        wait_for(all_answered, what="every page linked from index.html")
        pages = {link: answer.result() for link, answer in answers.items()}
        for link, page in pages.items():
            assert page.status_code == 200, link
            if link.endswith(".rpy"):  # run, not sent
                assert media_type(page.headers) == "text/html", link
                assert "import" not in page.text, link
            elif link.endswith(".html"):
                assert page.content == (EXAMPLES / link).read_bytes(), link
                assert media_type(page.headers) == "text/html", link
            else:
                assert page.content == (EXAMPLES / link).read_bytes(), link
        # Every page of the tour uses the style sheet and links back to the index.
        html_pages = [page for link, page in pages.items() if link.endswith((".rpy", ".html"))]
        html_pages.append(http.post(tour + "/form.rpy", data={"a": "1"}))
        for page in html_pages:
            parsed = Page(page.text)
            assert parsed.stylesheets == ["style.css"], page.url
            assert "." in parsed.links, page.url
        # "." from any page of the directory is the index.
        back = http.get(urljoin(tour + "/form.html", "."))
        assert back.status_code == 200
        assert back.content == index
        assert media_type(back.headers) == "text/html"


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("hello.txt", "text/plain"),
        ("style.css", "text/css"),
        ("index.html", "text/html"),
        ("form.html", "text/html"),
        ("delayed.py", "text/plain"),
    ],
)
def test_static_files_are_sent_as_on_disk(
    http: httpx.Client, tour: str, name: str, kind: str
) -> None:
    """hello.txt: "sent as it is with the content type its extension suggests"."""
    response = http.get(f"{tour}/{name}")
    assert response.status_code == 200
    assert media_type(response.headers) == kind
    assert response.content == (EXAMPLES / name).read_bytes()
    assert response.headers["content-length"] == str((EXAMPLES / name).stat().st_size)


def test_scripts_import_twisted_names_and_assign_the_resource() -> None:
    """index.html: scripts "import from twisted.* exactly as they would under twistd web"
    and assign the resource that answers (that they run is what the other tests show)."""
    for name in SCRIPTS:
        tree = ast.parse((EXAMPLES / name).read_text(), name)
        imported = [
            node.module
            for node in tree.body
            if isinstance(node, ast.ImportFrom) and node.module is not None
        ]
        assert [m for m in imported if m.split(".")[0] == "twisted"], name
        assert not [m for m in imported if m.split(".")[0] == "treadle"], name
        assigned = [
            target.id
            for node in tree.body
            if isinstance(node, ast.Assign)
            for target in node.targets
            if isinstance(target, ast.Name)
        ]
        assert "resource" in assigned, name


# -- delayed.rpy -------------------------------------------------------------------------------


def test_delayed_rpy_answers_after_three_seconds_and_others_meanwhile(
    http: httpx.Client, server: ServerThread, tour: str, clock: Clock
) -> None:
    """ "open it in two tabs at once and both arrive after three seconds"."""
    tabs = [Client(tour, "/delayed.rpy") for _ in range(2)]
    try:
        calls = scheduled(server, clock, 2)
        assert [call.getTime() for call in calls] == [3, 3]
        # Other requests are served meanwhile.
        other = http.get(tour + "/hello.txt")
        assert other.content == (EXAMPLES / "hello.txt").read_bytes()
        advance(server, clock, 2.999)
        assert [tab.arrived() for tab in tabs] == [b"", b""]
        advance(server, clock, 0.001)
        for tab in tabs:
            status, headers, body = tab.response()
            assert status == 200
            assert media_type(headers) == "text/html"
            assert b"<h1>Worth the wait</h1>" in body
            assert (
                b"<p>This page was written 3 seconds after you asked for it. "
                b"Requests that arrived in between were answered as usual.</p>"
            ) in body
    finally:
        for tab in tabs:
            tab.close()
    assert pending(server, clock) == []


# -- clock.rpy ---------------------------------------------------------------------------------


def ticks(data: bytes) -> list[bytes]:
    return re.findall(rb"<li>(" + TIME_OF_DAY + rb")</li>\n", data)


def test_clock_rpy_streams_ten_ticks_a_second_apart(
    server: ServerThread, tour: str, clock: Clock
) -> None:
    page = Client(tour, "/clock.rpy")
    try:
        # The head of the page is written at once, and the first tick is now.
        page.wait_until(lambda data: len(ticks(data)) == 1, "the head and the first tick")
        assert b"<h1>The time, every second for 10 seconds</h1><ol>\n" in page.received
        for count in range(2, 11):
            advance(server, clock, 0.999)
            assert len(ticks(page.arrived())) == count - 1
            advance(server, clock, 0.001)
            page.wait_until(lambda data, n=count: len(ticks(data)) == n, f"tick {count}")
        status, headers, body = page.response()
    finally:
        page.close()
    assert status == 200
    assert headers["content-type"] == "text/html; charset=utf-8"
    assert headers["transfer-encoding"] == "chunked"  # streamed, not sent at the end
    assert len(ticks(body)) == 10
    assert body.endswith(b'</ol><p>Done. <a href=".">Back to the examples</a></p></body></html>\n')
    assert pending(server, clock) == []  # the loop stopped after the last tick


def test_clock_rpy_stops_the_loop_of_a_client_that_leaves(
    server: ServerThread, tour: str, clock: Clock
) -> None:
    """Each request has its own Ticker; a client going away stops its loop, only its."""
    stays, leaves = Client(tour, "/clock.rpy"), Client(tour, "/clock.rpy")
    try:
        for page in (stays, leaves):
            page.wait_until(lambda data: len(ticks(data)) == 1, "the first tick")
        assert len(pending(server, clock)) == 2  # two loops, one per request
        advance(server, clock, 1)
        for page in (stays, leaves):
            page.wait_until(lambda data: len(ticks(data)) == 2, "the second tick")
        leaves.close()
        wait_for(
            lambda: len(pending(server, clock)) == 1,
            what="the loop of the client that left to stop",
        )
        for _ in range(8):
            advance(server, clock, 1)
        status, _, body = stays.response()
    finally:
        stays.close()
        leaves.close()
    assert status == 200
    assert len(ticks(body)) == 10
    assert pending(server, clock) == []


# -- interrupted.rpy ---------------------------------------------------------------------------


def test_interrupted_rpy_answers_after_five_seconds(
    server: ServerThread, tour: str, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="examples.interrupted")
    page = Client(tour, "/interrupted.rpy")
    try:
        (call,) = scheduled(server, clock, 1)
        assert call.getTime() == 5
        advance(server, clock, 4.999)
        assert page.arrived() == b""
        advance(server, clock, 0.001)
        status, headers, body = page.response()
    finally:
        page.close()
    assert status == 200
    assert media_type(headers) == "text/html"
    assert b"<h1>You stayed 5 seconds</h1>" in body
    assert [r for r in caplog.records if r.name == "examples.interrupted"] == []


def test_interrupted_rpy_cancels_the_answer_and_logs_a_client_that_leaves(
    server: ServerThread, tour: str, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="examples.interrupted")
    page = Client(tour, "/interrupted.rpy?from=test")
    (call,) = scheduled(server, clock, 1)
    page.close()

    def logged() -> list[logging.LogRecord]:
        return [r for r in list(caplog.records) if r.name == "examples.interrupted"]

    (record,) = wait_for(logged, what="the departure to be logged")
    assert record.levelno == logging.INFO
    assert record.getMessage() == (
        "client left /interrupted.rpy?from=test before its answer was ready "
        "(Connection was closed cleanly.)"
    )
    assert call.cancelled and not call.called
    assert pending(server, clock) == []


# -- form.html and form.rpy --------------------------------------------------------------------


def forms() -> list[dict[str, Any]]:
    return Page((EXAMPLES / "form.html").read_text()).forms


def test_form_rpy_sends_a_get_to_the_forms(http: httpx.Client, tour: str) -> None:
    response = http.get(tour + "/form.rpy")
    assert response.status_code == 302
    assert response.headers["location"] == "form.html"
    followed = http.get(tour + "/form.rpy", follow_redirects=True)
    assert followed.content == (EXAMPLES / "form.html").read_bytes()


def test_url_encoded_form_echoes_request_args(http: httpx.Client, tour: str) -> None:
    form = forms()[0]
    assert (form["action"], form["method"], form.get("enctype")) == ("form.rpy", "post", None)
    # What a browser sends for the form as it stands: the selected options, in order.
    assert form["fields"] == [("name", "Ada"), ("colour", "red"), ("colour", "blue")]
    response = http.post(
        urljoin(tour + "/form.html", form["action"]),
        content=urlencode(form["fields"]),
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert shown_content_type(response.content) == "application/x-www-form-urlencoded"
    assert rows(response.content) == {"colour": ["red", "blue"], "name": ["Ada"]}
    assert list(rows(response.content)) == ["colour", "name"]  # sorted by name
    assert 'href="form.html">Send another</a>' in response.text


def test_multipart_form_with_a_file_merges_the_query_and_escapes(
    http: httpx.Client, tour: str
) -> None:
    form = forms()[1]
    assert (form["action"], form["method"], form["enctype"]) == (
        "form.rpy?via=multipart",
        "post",
        "multipart/form-data",
    )
    assert form["fields"] == [("comment", "<b>not bold</b>")]
    assert form["files"] == ["upload"]
    url = urljoin(tour + "/form.html", form["action"])
    small = b"<i>a small file</i>\n"
    response = http.post(url, data=dict(form["fields"]), files={"upload": ("a.html", small)})
    assert response.status_code == 200
    assert shown_content_type(response.content).startswith("multipart/form-data; boundary=")
    assert rows(response.content) == {
        "comment": [html.escape("<b>not bold</b>")],
        "upload": [html.escape(small.decode())],  # the file's content
        "via": ["multipart"],  # from the query string
    }
    assert b"<b>not bold</b>" not in response.content and b"<i>" not in response.content

    # An upload over 200 bytes: the first 200, then its size.
    big = b"<" + b"x" * 299
    response = http.post(url, files={"upload": ("big.txt", big)})
    assert rows(response.content)["upload"] == [
        html.escape(big[:200].decode()) + " &hellip; (300 bytes)"
    ]


def test_form_rpy_decodes_both_encodings_the_same_way(http: httpx.Client, tour: str) -> None:
    """form.html: "decoded the same way whatever the encoding"."""
    fields = forms()[0]["fields"]
    url = tour + "/form.rpy"
    encoded = http.post(
        url,
        content=urlencode(fields),
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    multipart = http.post(url, files=[(name, (None, value.encode())) for name, value in fields])
    assert (
        rows(encoded.content)
        == rows(multipart.content)
        == {
            "colour": ["red", "blue"],
            "name": ["Ada"],
        }
    )


def test_form_rpy_escapes_names_and_says_when_there_is_nothing(
    http: httpx.Client, tour: str
) -> None:
    """form.rpy: "Everything is escaped before it goes into the page"."""
    hostile = http.post(
        tour + "/form.rpy?%3Cscript%3E=%3Cb%3E",
        content=b"",
        headers={"content-type": "text/plain; note=<i>"},
    )
    assert rows(hostile.content) == {"&lt;script&gt;": ["&lt;b&gt;"]}
    assert shown_content_type(hostile.content) == "text/plain; note=&lt;i&gt;"
    assert b"<script>" not in hostile.content and b"<i>" not in hostile.content

    empty = Client(tour, "/form.rpy", method="POST")  # no Content-Type at all
    status, _, body = empty.response()
    assert status == 200
    assert shown_content_type(body) == "(none)"
    assert b'<tr><td colspan="2">(no arguments)</td></tr>' in body


# -- the programs, in-process ------------------------------------------------------------------


def load_program(name: str, *argv: str) -> tuple[int, Site]:
    """Run examples/<name>.py with listenTCP and run intercepted; return (port, site)."""
    path = EXAMPLES / f"{name}.py"
    listened: list[tuple[Any, ...]] = []
    ran: list[bool] = []

    def listenTCP(port: int, factory: Site, *args: Any, **kwargs: Any) -> None:
        listened.append((port, factory, args, kwargs))

    saved_argv = sys.argv
    vars(reactor).update(listenTCP=listenTCP, run=lambda: ran.append(True))
    sys.argv = [str(path), *argv]
    try:
        runpy.run_path(str(path), run_name="__main__")
    finally:
        sys.argv = saved_argv
        del vars(reactor)["listenTCP"], vars(reactor)["run"]
    ((port, site, args, kwargs),) = listened
    assert (args, kwargs) == ((), {})  # all interfaces, the default backlog
    assert ran == [True]
    assert isinstance(site, Site)
    return port, site


@pytest.mark.parametrize("name", PROGRAMS)
def test_programs_listen_on_8080_or_the_port_given(name: str) -> None:
    assert load_program(name)[0] == 8080
    assert load_program(name, "8081")[0] == 8081


def test_delayed_program_answers_a_second_later_and_others_meanwhile(
    http: httpx.Client, server: ServerThread, clock: Clock
) -> None:
    url = server.serve(load_program("delayed")[1])
    first, second = Client(url, "/"), Client(url, "/another/page")
    try:
        calls = scheduled(server, clock, 2)  # the second request was taken in meanwhile
        assert [call.getTime() for call in calls] == [1, 1]
        # Answered at once while both wait: a method the resource does not support.
        assert http.post(url + "/").status_code == 405
        advance(server, clock, 0.999)
        assert first.arrived() == second.arrived() == b""
        advance(server, clock, 0.001)
        for client in (first, second):
            status, _, body = client.response()
            assert status == 200
            assert body == b"<html><body>Thank you for waiting.</body></html>"
    finally:
        first.close()
        second.close()


def lines(data: bytes) -> list[bytes]:
    return re.findall(rb"line (\d+) of 10 at " + TIME_OF_DAY + rb"\n", data)


def test_streaming_program_writes_a_line_a_second_and_stops_for_a_leaver(
    server: ServerThread, clock: Clock
) -> None:
    url = server.serve(load_program("streaming")[1])
    watcher, leaver = Client(url, "/"), Client(url, "/")
    try:
        for client in (watcher, leaver):
            client.wait_until(lambda data: len(lines(data)) == 1, "the first line")
        leaver.close()
        wait_for(lambda: len(pending(server, clock)) == 1, what="the leaver's loop to stop")
        for count in range(2, 11):
            advance(server, clock, 0.999)
            assert len(lines(watcher.arrived())) == count - 1
            advance(server, clock, 0.001)
            watcher.wait_until(lambda data, n=count: len(lines(data)) == n, f"line {count}")
        status, headers, body = watcher.response()
    finally:
        watcher.close()
        leaver.close()
    assert status == 200
    assert headers["content-type"] == "text/plain; charset=utf-8"
    assert [int(n) for n in lines(body)] == list(range(1, 11))
    assert len(body.splitlines()) == 10  # nothing but the ten lines
    assert pending(server, clock) == []


def test_interrupted_program_answers_after_five_seconds_or_cancels(
    server: ServerThread, clock: Clock, capsys: pytest.CaptureFixture[str]
) -> None:
    url = server.serve(load_program("interrupted")[1])
    patient = Client(url, "/")
    try:
        (call,) = scheduled(server, clock, 1)
        assert call.getTime() == 5
        advance(server, clock, 4.999)
        assert patient.arrived() == b""
        advance(server, clock, 0.001)
        assert (
            patient.response()[2] == b"<html><body>Here it is, after all that time.</body></html>"
        )
    finally:
        patient.close()

    impatient = Client(url, "/")
    (call,) = scheduled(server, clock, 1)
    impatient.close()
    printed: list[str] = []

    def said() -> bool:
        printed.append(capsys.readouterr().out)
        return "answer cancelled" in "".join(printed)

    wait_for(said, what="the program to print that the client left")
    assert "".join(printed) == (
        "client left early (Connection was closed cleanly.); answer cancelled\n"
    )
    assert call.cancelled and not call.called
    assert pending(server, clock) == []


# -- subprocesses: the command, the programs, real Twisted ------------------------------------


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(SRC), env.get("PYTHONPATH")) if p)
    return env


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Program:
    """A subprocess whose output lines two threads collect as they come."""

    def __init__(self, argv: list[str], cwd: Path, port: int | None = None) -> None:
        self.argv = argv
        self.port = port
        self.proc = subprocess.Popen(
            argv,
            cwd=cwd,
            env=child_env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: dict[str, list[str]] = {"stdout": [], "stderr": []}
        assert self.proc.stdout is not None and self.proc.stderr is not None
        self._pumps = [
            threading.Thread(target=self._pump, args=(pipe, name), daemon=True)
            for name, pipe in (("stdout", self.proc.stdout), ("stderr", self.proc.stderr))
        ]
        for pump in self._pumps:
            pump.start()

    def _pump(self, pipe: IO[str], name: str) -> None:
        for line in pipe:
            self.lines[name].append(line.rstrip("\n"))

    def output(self, stream: str) -> str:
        return "\n".join(self.lines[stream])

    def describe(self) -> str:
        return f"{self.argv}: stdout {self.lines['stdout']}, stderr {self.lines['stderr']}"

    def wait_line(self, stream: str, pattern: str) -> re.Match[str]:
        """Wait for a line of ``stream`` matching ``pattern`` (from its start); fail if the
        process ends first."""

        def match() -> re.Match[str] | None:
            exited = self.proc.poll() is not None
            for line in list(self.lines[stream]):
                if found := re.match(pattern, line):
                    return found
            if exited and not any(pump.is_alive() for pump in self._pumps):
                pytest.fail(f"exited with {self.proc.returncode}: {self.describe()}")
            return None

        found: re.Match[str] = wait_for(match, what=f"{pattern!r} from {self.describe()}")
        return found

    def wait_answering(self) -> str:
        """Wait until the server's loop runs (it answers a malformed request with 400)."""
        assert self.port is not None

        def answering() -> bool:
            if self.proc.poll() is not None:
                pytest.fail(f"exited with {self.proc.returncode}: {self.describe()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=DEADLINE) as s:
                    s.sendall(b"NOT HTTP\r\n\r\n")
                    return s.recv(64).startswith(b"HTTP/1.1 400 ")
            except OSError:
                return False

        wait_for(answering, what=f"{self.argv} to serve on port {self.port}")
        return f"http://127.0.0.1:{self.port}"

    def stop(self, signum: int) -> int:
        self.proc.send_signal(signum)
        return self.proc.wait(DEADLINE)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(DEADLINE)
        for pump in self._pumps:
            pump.join(DEADLINE)
        for pipe in (self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                pipe.close()


def twisted_twin(name: str, directory: Path) -> Path:
    """examples/<name>.py with its imports switched back from treadle to twisted."""
    source = (EXAMPLES / f"{name}.py").read_text()
    twin, count = re.subn(r"^from treadle\.", "from twisted.", source, flags=re.M)
    assert count >= 3 and not re.search(r"^\s*(from|import) treadle", twin, re.M)
    path = directory / f"{name}_twisted.py"
    path.write_text(twin)
    return path


class Processes:
    """Everything the subprocess tests run, started together."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory  # every process's working directory
        self.started: list[Program] = []
        path = str(EXAMPLES)
        listen = ["--listen", "tcp:0:interface=127.0.0.1"]
        command = [sys.executable, "-m", "treadle", "web", "--path", path, *listen]
        self.treadle = self._start(command)
        self.interrupted_treadle = self._start(command)  # for the test that stops it
        self.programs = {
            name: self._start_program([sys.executable, str(EXAMPLES / f"{name}.py")])
            for name in PROGRAMS
        }
        assert TWISTD is not None, "twistd (Twisted, a test extra) is not installed"
        # --pidfile= : several twistd may run in one directory.
        self.twistd = self._start([TWISTD, "-n", "--pidfile=", "web", "--path", path, *listen])
        self.twins = {
            name: self._start_program([sys.executable, str(twisted_twin(name, directory))])
            for name in ("delayed", "interrupted")
        }

    def _start(self, argv: list[str], port: int | None = None) -> Program:
        program = Program(argv, self.directory, port)
        self.started.append(program)
        return program

    def _start_program(self, argv: list[str]) -> Program:
        port = free_port()
        return self._start([*argv, str(port)], port)

    @staticmethod
    def treadle_url(program: Program) -> str:
        line = program.wait_line("stdout", r"treadle \S+ serving (.+) on (http://\S+)/$")
        assert line.group(1) == str(EXAMPLES)
        return line.group(2)

    def twistd_url(self) -> str:
        port = self.twistd.wait_line("stdout", r".* Site starting on (\d+)$").group(1)
        return f"http://127.0.0.1:{port}"

    def close(self) -> None:
        for program in self.started:
            program.close()


@pytest.fixture(scope="module", autouse=True)
def processes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Processes]:
    """Started with the module's first test (without waiting for them), so that the
    interpreters boot while the in-process tests run; killed after its last."""
    running = Processes(tmp_path_factory.mktemp("processes"))
    try:
        yield running
    finally:
        running.close()


def test_treadle_web_serves_the_tour(processes: Processes, http: httpx.Client) -> None:
    """index.html: "served by treadle web --path examples"; interrupted.rpy: "the server log
    says that you left"."""
    url = processes.treadle_url(processes.treadle)
    index = http.get(url + "/")
    assert index.status_code == 200
    assert index.content == (EXAMPLES / "index.html").read_bytes()
    leaver = Client(url, "/interrupted.rpy")
    assert leaver.arrived() == b""
    leaver.close()
    processes.treadle.wait_line(
        "stderr",
        r"\S+ \S+ INFO examples\.interrupted: client left /interrupted\.rpy before its answer "
        r"was ready \(Connection was closed cleanly\.\)$",
    )
    # A fresh process, where interrupted.rpy's `from twisted.internet import reactor` ran
    # first: the `from twisted.internet import task` of live.rpy and clock.rpy, run after it,
    # still loads task (a cached answer to the first statement once made both fail with 500).
    live = http.get(url + "/live.rpy")
    assert live.status_code == 200
    assert "<title>" in live.text and "import" not in live.text
    with http.stream("GET", url + "/clock.rpy") as clock:
        assert clock.status_code == 200


STATIC = [
    "/",
    "/index.html",
    "/form.html",
    "/hello.txt",
    "/style.css",
    "/delayed.py",
    "/streaming.py",
    "/interrupted.py",
]


def multipart(fields: list[tuple[str, str | None, bytes]]) -> tuple[dict[str, str], bytes]:
    """A multipart/form-data body with a fixed boundary: the same bytes for both servers."""
    boundary = "tour-boundary-1234"
    body = b""
    for name, filename, value in fields:
        disposition = f'form-data; name="{name}"' + (
            f'; filename="{filename}"' if filename is not None else ""
        )
        body += f"--{boundary}\r\nContent-Disposition: {disposition}\r\n\r\n".encode()
        body += value + b"\r\n"
    body += f"--{boundary}--\r\n".encode()
    return {"content-type": f"multipart/form-data; boundary={boundary}"}, body


def test_twistd_web_answers_the_tour_as_treadle_does(
    processes: Processes, http: httpx.Client
) -> None:
    """The static files and form.rpy (Twisted's imports, bytes answers) give the same answers
    under ``twistd web --path examples`` and ``treadle web --path examples``."""
    ours, theirs = processes.treadle_url(processes.treadle), processes.twistd_url()
    form_fields = urlencode(forms()[0]["fields"]).encode()
    with_file = multipart([("comment", None, b"<b>not bold</b>"), ("upload", "a.txt", b"<i>x</i>")])
    urlencoded = {"content-type": "application/x-www-form-urlencoded"}
    requests: list[tuple[str, str, dict[str, str], bytes]] = [
        *(("GET", path, {}, b"") for path in STATIC),
        ("GET", "/form.rpy", {}, b""),
        ("POST", "/form.rpy", urlencoded, form_fields),
        ("POST", "/form.rpy?via=multipart", *with_file),
        ("POST", "/form.rpy", {}, b""),
    ]
    for method, path, headers, body in requests:
        mine = http.request(method, ours + path, headers=headers, content=body)
        twisted = http.request(method, theirs + path, headers=headers, content=body)
        assert twisted.headers["server"].startswith("TwistedWeb/")
        assert mine.status_code == twisted.status_code, (method, path)
        assert mine.headers.get("location") == twisted.headers.get("location"), (method, path)
        assert mine.content == twisted.content, (method, path)
        if mine.content and not path.endswith(".py"):  # Twisted says text/x-python
            assert media_type(mine.headers) == media_type(twisted.headers), (method, path)


def test_streaming_and_interrupted_programs_run_as_programs(processes: Processes) -> None:
    """``python examples/<name>.py PORT`` serves on PORT; Ctrl-C stops it."""
    streaming, interrupted = processes.programs["streaming"], processes.programs["interrupted"]
    watcher = Client(streaming.wait_answering(), "/")
    try:
        head = watcher.wait_until(lambda data: len(lines(data)) == 1, "the first line")
    finally:
        watcher.close()
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"\r\ncontent-type: text/plain; charset=utf-8\r\n" in head.lower()
    leaver = Client(interrupted.wait_answering(), "/")
    leaver.close()
    interrupted.wait_line(
        "stdout", r"client left early \(Connection was closed cleanly\.\); answer cancelled$"
    )
    for program in (streaming, interrupted):
        assert program.stop(signal.SIGINT) == 0, program.describe()
        assert program.lines["stderr"] == [], program.describe()


def test_interrupted_program_with_twisted_imports_under_twisted(processes: Processes) -> None:
    twin = processes.twins["interrupted"]
    leaver = Client(twin.wait_answering(), "/")
    leaver.close()
    twin.wait_line(
        "stdout", r"client left early \(Connection was closed cleanly\.\); answer cancelled$"
    )


def complete(client: Client) -> bool:
    """True once the whole answer has arrived (the server closes after it)."""
    return client.arrived().endswith(b"\r\n0\r\n\r\n") or client.closed


def test_delayed_pages_in_real_time_and_under_twisted(
    processes: Processes, http: httpx.Client
) -> None:
    """The real delays, once: delayed.rpy under ``treadle web`` (3 s) and Ctrl-C letting it
    finish; delayed.py as a program (1 s); and the claims that delayed.rpy "runs unchanged
    under twistd web too" and that delayed.py is a Twisted program "ported to treadle by
    changing its imports". All the requests wait together."""
    server = processes.interrupted_treadle
    url = processes.treadle_url(server)
    program = processes.programs["delayed"]
    program_url = program.wait_answering()
    twistd_url = processes.twistd_url()
    twin = processes.twins["delayed"]
    twin_url = twin.wait_answering()

    started = time.monotonic()
    page = Client(url, "/delayed.rpy")
    answer = Client(program_url, "/")
    twistd_page = Client(twistd_url, "/delayed.rpy")
    twin_answer = Client(twin_url, "/")
    try:
        # Connections are accepted in order, so once a connection made after the page's is
        # answered, the page's request has been read: Ctrl-C now finds its response running.
        assert Client(url, "/hello.txt").response()[0] == 200
        server.proc.send_signal(signal.SIGINT)  # "Stop the server with Ctrl-C: it lets
        # running responses finish first."
        status, _, body = page.response()
        assert time.monotonic() - started >= 3 - 0.01
        assert status == 200
        assert b"<p>This page was written 3 seconds after you asked for it. " in body
        assert server.proc.wait(DEADLINE) == 0, server.describe()

        status, _, program_body = answer.response()
        assert time.monotonic() - started >= 1 - 0.01
        assert (status, program_body) == (200, b"<html><body>Thank you for waiting.</body></html>")
        assert program.stop(signal.SIGINT) == 0, program.describe()

        # The same file under real twistd, and the program with Twisted's imports under
        # Twisted, give the same pages.
        wait_for(lambda: complete(twistd_page), what="twistd to answer delayed.rpy")
        assert twistd_page.response()[::2] == (200, body)
        wait_for(lambda: complete(twin_answer), what="the Twisted twin of delayed.py")
        assert twin_answer.response()[::2] == (200, program_body)
    finally:
        for client in (page, answer, twistd_page, twin_answer):
            if client is not None:
                client.close()
