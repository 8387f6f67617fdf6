"""server.Request and Site as Twisted programs drive and inspect them.

Requests driven by hand over a ``DummyChannel`` (as Twisted users test their resources), the
``IRequest`` contract, ``parsePOSTFormSubmission``, HEAD for resources that only allow GET,
``rememberRootURL``, the access log's clock and session expiry counted from the start of the
expiry timer. Behaviour that reaches the wire is checked over a real socket.
"""

from __future__ import annotations

from io import BytesIO
from pathlib import Path
from typing import Any

import httpx
from zope.interface.verify import verifyObject

from treadle.internet.task import Clock
from treadle.web.error import UnsupportedMethod
from treadle.web.iweb import IRequest
from treadle.web.resource import Resource
from treadle.web.server import NOT_DONE_YET, Request, Session, Site
from treadle.web.test.requesthelper import DummyChannel

from .conftest import raw_request


def test_a_request_provides_irequest_with_twisteds_members() -> None:
    from twisted.web import iweb as twisted_iweb

    assert verifyObject(IRequest, Request(DummyChannel()))
    assert sorted(IRequest.names(all=True)) == sorted(twisted_iweb.IRequest.names(all=True))


def test_got_length_asks_the_site_for_the_content_file() -> None:
    lengths: list[int | None] = []
    body = BytesIO()

    def content_file(length: int | None) -> BytesIO:
        lengths.append(length)
        return body

    site = Site(Resource())
    site.getContentFile = content_file  # type: ignore[attr-defined]
    channel = DummyChannel()
    channel.site = site
    request = Request(channel)
    request.gotLength(12345)
    assert lengths == [12345]
    assert request.content is body


class FormEcho(Resource):
    isLeaf = True

    def render_POST(self, request: Request) -> bytes:
        return repr((sorted(request.args.items()), request.content.read())).encode()


def test_post_forms_are_left_unparsed_when_the_site_says_so(serve: Any) -> None:
    url = serve(Site(FormEcho(), parsePOSTFormSubmission=False))
    response = httpx.post(url + "/?q=1", data={"name": "treadle"}, timeout=10)
    assert response.text == repr(([(b"q", [b"1"])], b"name=treadle"))
    parsing = serve(Site(FormEcho()))
    response = httpx.post(parsing + "/?q=1", data={"name": "treadle"}, timeout=10)
    assert response.text == repr(([(b"name", [b"treadle"]), (b"q", [b"1"])], b"name=treadle"))


def test_a_request_may_override_its_sites_form_setting() -> None:
    channel = DummyChannel()
    channel.site = Site(Resource(), parsePOSTFormSubmission=False)
    for explicit, parsed in ((None, False), (True, True), (False, False)):
        request = Request(channel, parsePOSTFormSubmission=explicit)
        request.method = b"POST"
        request.uri = b"/?q=1"
        request.requestHeaders.setRawHeaders(
            b"content-type", [b"application/x-www-form-urlencoded"]
        )
        request.content = BytesIO(b"name=x")
        expected = {b"q": [b"1"], b"name": [b"x"]} if parsed else {b"q": [b"1"]}
        assert request.args == expected


class GetOnly:
    """A resource of the program's own that answers GET only (no Resource base)."""

    isLeaf = True

    def __init__(self, *, later: bool) -> None:
        self.later = later

    def render(self, request: Request) -> Any:
        if request.method != b"GET":
            raise UnsupportedMethod([b"GET"])
        if self.later:
            request.write(b"some data")
            return NOT_DONE_YET
        return b"some data"

    def getChildWithDefault(self, name: bytes, request: Request) -> Any:
        return self


def test_head_is_answered_through_get_when_only_get_is_allowed(serve: Any) -> None:
    ask = b"HEAD / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    whole = raw_request(serve(GetOnly(later=False)), ask)
    head, _, body = whole.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK") and b"\r\nContent-Length: 9" in head
    assert body == b""
    streamed = raw_request(serve(GetOnly(later=True)), ask)
    head, _, body = streamed.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK") and b"Content-Length" not in head
    assert body == b""
    refused = raw_request(
        serve(GetOnly(later=False)),
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    )
    assert refused.startswith(b"HTTP/1.1 405 ") and b"\r\nAllow: GET\r\n" in refused


class RemembersRoot(Resource):
    def getChildWithDefault(self, name: bytes, request: Request) -> Any:
        request.rememberRootURL()
        return super().getChildWithDefault(name, request)


class ShowsRoot(Resource):
    isLeaf = True

    def render_GET(self, request: Request) -> bytes:
        return request.getRootURL() or b"none"


def test_the_root_url_is_the_resource_whose_child_is_looked_up(serve: Any) -> None:
    app = RemembersRoot()
    app.putChild(b"page", ShowsRoot())
    root = Resource()
    root.putChild(b"app", app)
    url = serve(root)
    assert httpx.get(url + "/app/page/more", timeout=10).text == url + "/app"


def test_the_traceback_page_is_ascii_with_character_references(serve: Any) -> None:
    class Snowman(Resource):
        isLeaf = True

        def render_GET(self, request: Request) -> bytes:
            raise ValueError("\N{SNOWMAN}")

    site = Site(Snowman())
    site.displayTracebacks = True
    response = httpx.get(serve(site), timeout=10)
    assert response.status_code == 500
    assert b"ValueError: &#9731;" in response.content
    assert response.content.isascii()


def test_the_access_log_reads_the_sites_clock(tmp_path: Path) -> None:
    clock = Clock()
    clock.advance(1234567890)
    log = tmp_path / "access.log"
    site = Site(Resource(), logPath=str(log), reactor=clock)
    site.startFactory()
    try:
        request = Request(DummyChannel())
        request.uri = b"/dummy"
        site.log(request)
    finally:
        site.stopFactory()
    assert "[13/Feb/2009:23:31:30 +0000]" in log.read_text()


def test_a_session_times_out_from_the_start_of_its_timer() -> None:
    clock = Clock()
    site = Site(Resource())
    session = Session(site, b"id", reactor=clock)
    site.sessions[b"id"] = session
    clock.advance(100)
    session.startCheckingExpiration()
    clock.advance(session.sessionTimeout - 50)

    request = Request(DummyChannel())
    request.site = site
    request.requestHeaders.setRawHeaders(b"cookie", [b"TWISTED_SESSION=id"])
    assert request.getSession() is session
    clock.advance(session.sessionTimeout)
    assert session.expired
