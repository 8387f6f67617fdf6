"""Headers: case-insensitive multimap with str and bytes flavours."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from treadle.web.http_headers import Headers, InvalidHeaderName, canonical_name
from treadle.web.resource import Resource
from treadle.web.server import Request

from .conftest import raw_request


def test_case_insensitive_and_ordered() -> None:
    headers = Headers({b"Set-Cookie": [b"a=1"]})
    headers.addRawHeader("set-cookie", "b=2")
    assert headers.getRawHeaders(b"SET-COOKIE") == [b"a=1", b"b=2"]
    assert headers.getRawHeaders("Set-Cookie") == ["a=1", "b=2"]
    assert headers.hasHeader("set-cookie")
    headers.removeHeader(b"Set-Cookie")
    assert not headers.hasHeader(b"set-cookie")
    assert headers.getRawHeaders(b"set-cookie", [b"default"]) == [b"default"]


def test_set_raw_headers_replaces_and_rejects_a_bare_string() -> None:
    headers = Headers()
    headers.setRawHeaders(b"x", [b"1", b"2"])
    headers.setRawHeaders(b"X", [b"3"])
    assert headers.getRawHeaders(b"x") == [b"3"]
    with pytest.raises(TypeError):
        headers.setRawHeaders(b"x", b"not a list")  # type: ignore[arg-type]


def test_str_values_are_utf8() -> None:
    headers = Headers()
    headers.setRawHeaders("X-Name", ["café"])
    assert headers.getRawHeaders(b"x-name") == ["café".encode()]


def test_all_raw_headers_are_canonicalised() -> None:
    headers = Headers({b"content-type": [b"text/plain"], b"etag": [b'"x"'], b"x-a-b": [b"1"]})
    assert dict(headers.getAllRawHeaders()) == {
        b"Content-Type": [b"text/plain"],
        b"ETag": [b'"x"'],
        b"X-A-B": [b"1"],
    }
    assert canonical_name(b"www-authenticate") == b"WWW-Authenticate"


def test_copy_and_equality() -> None:
    headers = Headers({b"a": [b"1"]})
    copied = headers.copy()
    assert copied == headers
    copied.addRawHeader(b"a", b"2")
    assert copied != headers


@pytest.mark.parametrize("value", [b"a\rb", b"a\nb", "x\r\nInjected: yes"])
def test_line_breaks_in_values_are_refused(value: bytes | str) -> None:
    with pytest.raises(ValueError):
        Headers().addRawHeader(b"x", value)


@pytest.mark.parametrize("name", [b"\xe1", "\u00e1", b"a b", "c\nd", "c\td", b""])
def test_names_that_are_not_tokens_raise_invalid_header_name(name: bytes | str) -> None:
    headers = Headers()
    with pytest.raises(InvalidHeaderName):
        headers.setRawHeaders(name, [b"value"])
    with pytest.raises(ValueError):  # what it is, for code that catches that
        headers.addRawHeader(name, b"value")


def test_repr_shows_canonical_names_and_the_class() -> None:
    class Funny(Headers):
        pass

    assert repr(Headers({b"x-foo": [b"bar\xe1", b"baz"]})) == (
        "Headers({b'X-Foo': [b'bar\\xe1', b'baz']})"
    )
    assert repr(Funny({"etag": ["v"]})) == "Funny({b'ETag': [b'v']})"


# -- a request's headers, as a resource sees them over a real socket ---------------------------
# (The parser hands them over as a flat list, turned into a table only when changed or listed
# whole: every reading must give what the table would.)


class ReadsHeaders(Resource):
    """Reads the request's headers every way a resource can, before and after changing them."""

    isLeaf = True

    def render_GET(self, request: Request) -> bytes:
        received = request.requestHeaders
        seen: list[object] = [
            received.getRawHeaders(b"X-Twice"),
            received.getRawHeaders("x-twice"),
            received.getRawHeaders(b"x-missing", [b"default"]),
            received.hasHeader(b"HOST"),
            received.hasHeader("x-missing"),
            request.getHeader(b"x-twice"),
            request.getCookie(b"b"),
            request.getRequestHostname(),
        ]
        # A value the caller changes is its own copy: the headers stay as they were.
        got = received.getRawHeaders(b"x-twice")
        assert got is not None
        got.append(b"mine")
        seen.append(received.getRawHeaders(b"x-twice"))
        seen.append([(name, list(values)) for name, values in received.getAllRawHeaders()])
        received.addRawHeader(b"x-twice", b"3")
        received.removeHeader(b"cookie")
        seen.append(received.getRawHeaders(b"x-twice"))
        seen.append(received.hasHeader(b"cookie"))
        seen.append(request.getAllHeaders())
        return repr(seen).encode()


def test_a_request_reads_its_headers_the_same_every_way(serve: Callable[..., str]) -> None:
    url = serve(ReadsHeaders())
    reply = raw_request(
        url,
        b"GET / HTTP/1.1\r\nHost: example.com:80\r\nX-Twice: 1\r\nCookie: a=1; b=2\r\n"
        b"x-twice: 2\r\nConnection: close\r\n\r\n",
    )
    assert reply.startswith(b"HTTP/1.1 200 ")
    body = reply.split(b"\r\n\r\n", 1)[1]
    all_raw = [
        (b"Host", [b"example.com:80"]),
        (b"X-Twice", [b"1", b"2"]),
        (b"Cookie", [b"a=1; b=2"]),
        (b"Connection", [b"close"]),
    ]
    after = {b"host": b"example.com:80", b"x-twice": b"3", b"connection": b"close"}
    expected = [
        [b"1", b"2"],
        ["1", "2"],
        [b"default"],
        True,
        False,
        b"2",
        b"2",
        b"example.com",
        [b"1", b"2"],
        all_raw,
        [b"1", b"2", b"3"],
        False,
        after,
    ]
    assert body == repr(expected).encode()
