"""Error pages over real sockets: ``treadle.web.pages``, the legacy classes, and hostile input."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator

import httpx
import pytest

from treadle.web.pages import errorPage, forbidden, notFound
from treadle.web.resource import ErrorPage, ForbiddenResource, IResource, NoResource, Resource
from treadle.web.server import Request, Site
from treadle.web.util import Redirect

from .conftest import raw_request

HOSTILE = "<script>alert(1)</script>"


def tree(**children: IResource) -> Resource:
    root = Resource()
    for name, child in children.items():
        root.putChild(name.encode(), child)
    return root


def title(text: str) -> str:
    return text.split("<title>", 1)[1].split("</title>", 1)[0]


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10) as c:
        yield c


# -- treadle.web.pages -----------------------------------------------------------------------------


def test_errorPage_for_every_method_and_path_below(
    serve: Callable[..., str], client: httpx.Client
) -> None:
    url = serve(tree(teapot=errorPage(418, "I'm a teapot", "Short & stout.")))
    for method, path in (("GET", "/teapot"), ("POST", "/teapot/a/b"), ("DELETE", "/teapot/")):
        response = client.request(method, url + path)
        assert response.status_code == 418
        assert response.headers["content-type"] == "text/html; charset=utf-8"
        # Twisted's pages layout, byte for byte: quotes stay as they are in text.
        assert response.content == (
            b"<!DOCTYPE html>\n<html><head><title>418 - I'm a teapot</title></head>"
            b"<body><h1>I'm a teapot</h1><p>Short &amp; stout.</p></body></html>"
        )
    assert client.head(url + "/teapot").content == b""


def test_notFound_and_forbidden_defaults_and_arguments(
    serve: Callable[..., str], client: httpx.Client
) -> None:
    url = serve(
        tree(
            gone=notFound(),
            nope=forbidden(),
            custom=notFound("Gone Fishing", "Back at five."),
            private=forbidden(message="Members only."),
        )
    )
    gone = client.get(url + "/gone")
    assert (gone.status_code, title(gone.text)) == (404, "404 - No Such Resource")
    assert "Sorry. No luck finding that resource." in gone.text
    nope = client.get(url + "/nope")
    assert (nope.status_code, title(nope.text)) == (403, "403 - Forbidden Resource")
    assert "Sorry, resource is forbidden." in nope.text
    custom = client.get(url + "/custom")
    assert title(custom.text) == "404 - Gone Fishing" and "Back at five." in custom.text
    private = client.get(url + "/private")
    assert private.status_code == 403 and "Members only." in private.text


def test_an_error_page_takes_no_children() -> None:
    page = errorPage(500, "Oops", "Broken.")
    with pytest.raises(NotImplementedError):
        page.putChild(b"x", Resource())  # type: ignore[attr-defined]
    assert "500" in repr(page)


def test_legacy_classes_keep_working(serve: Callable[..., str], client: httpx.Client) -> None:
    url = serve(
        tree(
            no=NoResource(),
            forbidden=ForbiddenResource("Keep out."),
            error=ErrorPage(410, "Gone", "It left."),
        )
    )
    no = client.get(url + "/no/deeper")
    assert (no.status_code, title(no.text)) == (404, "404 - No Such Resource")
    forbidden_ = client.get(url + "/forbidden")
    assert forbidden_.status_code == 403 and "Keep out." in forbidden_.text
    error = client.get(url + "/error")
    assert (error.status_code, title(error.text)) == (410, "410 - Gone")
    # The classes keep Twisted's ErrorPage layout (leading newline, no doctype), byte for
    # byte; the functions of treadle.web.pages have their own (Twisted's too).
    assert client.get(url + "/no").content == (
        b"\n<html>\n  <head><title>404 - No Such Resource</title></head>\n  <body>\n"
        b"    <h1>No Such Resource</h1>\n    <p>Sorry. No luck finding that resource.</p>\n"
        b"  </body>\n</html>\n"
    )
    assert httpx.get(serve(notFound()), timeout=10).text.startswith("<!DOCTYPE html>\n<html>")


# -- the server's own pages keep Twisted's titles ------------------------------------------------


class OnlyGet(Resource):
    isLeaf = True

    def render_GET(self, request: Request) -> bytes:
        return b"got"


class Broken(Resource):
    isLeaf = True

    def render_GET(self, request: Request) -> bytes:
        # The decoded path: "%3Cscript%3E" arrives as "<script>".
        raise RuntimeError(f"failed on /{b'/'.join(request.postpath).decode()}")


def test_well_known_titles(
    serve: Callable[..., str], client: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    url = serve(tree(get=OnlyGet(), broken=Broken()))
    missing = client.get(url + "/missing")
    assert (missing.status_code, title(missing.text)) == (404, "404 - No Such Resource")
    not_allowed = client.post(url + "/get")
    assert (not_allowed.status_code, title(not_allowed.text)) == (405, "405 - Method Not Allowed")
    assert not_allowed.headers["allow"] == "HEAD, GET"
    assert not_allowed.headers["content-type"] == "text/html; charset=utf-8"
    raw = raw_request(
        url, b"POST /get?a=<b>&c='d' HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    assert (
        b"<p>Your browser approached me (at /get?a=&lt;b&gt;&amp;c=&#x27;d&#x27;) with the "
        b'method "POST".  I only allow the methods HEAD, GET here.</p>'
    ) in raw
    # A method the parser knows but the server does not serve (llhttp refuses made-up ones).
    unknown = client.request("PROPFIND", url + "/get")
    assert (unknown.status_code, title(unknown.text)) == (501, "501 - Huh?")
    assert "<p>I don't know how to treat a PROPFIND request.</p>" in unknown.text
    with caplog.at_level(logging.CRITICAL, logger="treadle.error"):
        failed = client.get(url + "/broken")
    assert (failed.status_code, failed.headers["content-type"]) == (500, "text/html")
    assert failed.content == (
        b"<html><head><title>Processing Failed</title></head>"
        b"<body><b>Processing Failed</b></body></html>"
    )


def test_one_allowed_method_is_named_in_the_singular(
    serve: Callable[..., str], client: httpx.Client
) -> None:
    # A bare Resource renders nothing but HEAD (its render_HEAD), as Twisted's.
    response = client.get(serve(tree(bare=Resource())) + "/bare")
    assert response.status_code == 405 and response.headers["allow"] == "HEAD"
    assert "I only allow the method HEAD here." in response.text


# -- hostile input never reaches a page unescaped ------------------------------------------------


def test_a_script_in_the_path_of_a_404(serve: Callable[..., str]) -> None:
    url = serve(tree(get=OnlyGet()))
    for target in (
        b"/" + HOSTILE.encode(),
        b"/%3Cscript%3Ealert(1)%3C/script%3E",
        b"/missing/<b>x</b>",
    ):
        raw = raw_request(url, b"GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % target)
        assert raw.startswith(b"HTTP/1.1 404 "), raw[:40]
        assert b"<script" not in raw.lower() and b"<b>" not in raw


class EchoNotFound(Resource):
    """Puts the request's values into its error pages, as an application might."""

    def getChild(self, path: bytes, request: Request) -> IResource:
        name = path.decode("utf-8", "replace")
        return notFound(f"No {name}", f"Nothing called {name} (asked: {request.args})")


def test_request_values_in_error_pages_are_escaped(
    serve: Callable[..., str], client: httpx.Client
) -> None:
    url = serve(EchoNotFound())
    response = client.get(url + "/" + HOSTILE, params={"q": HOSTILE})
    assert response.status_code == 404
    assert "<script" not in response.text
    assert "&lt;script&gt;" in response.text


def test_tracebacks_shown_on_request_are_escaped(
    serve: Callable[..., str], client: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    site = Site(Broken())
    site.displayTracebacks = True
    url = serve(site)
    with caplog.at_level(logging.CRITICAL, logger="treadle.error"):
        response = client.get(url + "/" + HOSTILE)
    assert response.status_code == 500
    assert "RuntimeError: failed on /" in response.text
    assert "<script" not in response.text and "&lt;script&gt;" in response.text


def test_a_redirect_to_a_hostile_url(serve: Callable[..., str], client: httpx.Client) -> None:
    hostile = '/next"><script>alert(1)</script><a href="'
    url = serve(tree(go=Redirect(hostile)))
    response = client.get(url + "/go")
    assert response.status_code == 302
    assert response.headers["location"] == hostile
    assert "<script" not in response.text
    assert 'href="/next&quot;&gt;&lt;script&gt;' in response.text


def test_errorPage_writes_and_finishes_a_request_driven_by_hand() -> None:
    # As Twisted's (which renders an element): the page is written, not returned, so a test
    # that calls render() itself finds it in what the request was given.
    from treadle.web.server import NOT_DONE_YET
    from treadle.web.test.requesthelper import DummyRequest

    request = DummyRequest([b""])
    page = errorPage(400, "A & B", "<script>alert('x')</script>")
    assert page.render(request) is NOT_DONE_YET  # type: ignore[arg-type]
    assert request.responseCode == 400 and request.finished == 1
    assert request.responseHeaders.getRawHeaders(b"content-type") == [b"text/html; charset=utf-8"]
    assert b"".join(request.written) == (
        b"<!DOCTYPE html>\n<html><head><title>400 - A &amp; B</title></head><body>"
        b"<h1>A &amp; B</h1><p>&lt;script&gt;alert('x')&lt;/script&gt;</p></body></html>"
    )
    assert page.getChild(b"below", request) is page  # type: ignore[arg-type]
