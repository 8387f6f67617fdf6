"""Headers: case-insensitive multimap with str and bytes flavours."""

from __future__ import annotations

import pytest

from treadle.web.http_headers import Headers, InvalidHeaderName, canonical_name


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
