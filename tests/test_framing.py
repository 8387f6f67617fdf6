"""The protocol decisions of ``treadle.web._framing``: plain functions, no I/O."""

from __future__ import annotations

import re
from email.utils import parsedate_to_datetime

import pytest

from treadle import __version__
from treadle.web import _framing
from treadle.web._framing import (
    CHUNK_FRAMING_ALLOWANCE,
    HEAD_ENDS,
    RESPONSES,
    Framing,
    absolute_form_authority,
    chunk,
    chunk_framing_budget,
    date_header,
    field_line_size,
    keeps_connection,
    request_line_size,
    response_framing,
    server_and_date,
    status_line,
    target_error,
    transfer_coding_error,
    valid_host,
)

# -- responses -------------------------------------------------------------------------------


def test_status_lines() -> None:
    assert status_line(200) == b"HTTP/1.1 200 OK\r\n"
    assert status_line(404) == b"HTTP/1.1 404 Not Found\r\n"
    assert status_line(299) == b"HTTP/1.1 299 Unknown Status\r\n"
    assert status_line(200, b"Fine") == b"HTTP/1.1 200 Fine\r\n"
    assert RESPONSES[306] == b"Reserved"


@pytest.mark.parametrize("message", [b"a\r\nb", b"a\nb", b"a\rb"])
def test_a_status_message_cannot_split_the_response(message: bytes) -> None:
    with pytest.raises(ValueError):
        status_line(200, message)


@pytest.mark.parametrize(
    ("method", "code", "forbidden"),
    [
        (b"GET", 200, False),
        (b"HEAD", 200, True),
        (b"GET", 100, True),
        (b"GET", 204, True),
        (b"GET", 304, True),
        (b"POST", 404, False),
    ],
)
def test_which_responses_carry_no_body(method: bytes, code: int, forbidden: bool) -> None:
    for http11 in (True, False):
        for length_known in (True, False):
            framing = response_framing(http11, method, code, length_known)
            assert (framing is Framing.NONE) is forbidden


@pytest.mark.parametrize("http11", [True, False])
def test_head_ends_say_what_the_connection_does(http11: bool) -> None:
    assert HEAD_ENDS[False][http11] == b"Connection: close\r\n\r\n"
    kept = HEAD_ENDS[True][http11]
    assert kept == (b"\r\n" if http11 else b"Connection: keep-alive\r\n\r\n")


@pytest.mark.parametrize(
    ("keep_alive", "framing", "connection", "keeps"),
    [
        (True, Framing.LENGTH, None, True),
        (True, Framing.CHUNKED, [b"keep-alive"], True),
        (True, Framing.LENGTH, [b"Close"], False),
        (True, Framing.CLOSE, None, False),  # the body ends with the connection
        (False, Framing.LENGTH, None, False),
    ],
)
def test_keeps_connection(
    keep_alive: bool, framing: Framing, connection: list[bytes] | None, keeps: bool
) -> None:
    assert keeps_connection(keep_alive, framing, connection) is keeps


@pytest.mark.parametrize(
    ("http11", "method", "code", "length_known", "framing"),
    [
        (True, b"GET", 200, True, Framing.LENGTH),
        (True, b"GET", 200, False, Framing.CHUNKED),
        (False, b"GET", 200, False, Framing.CLOSE),
        (False, b"GET", 200, True, Framing.LENGTH),
        (True, b"HEAD", 200, False, Framing.NONE),
        (True, b"GET", 304, True, Framing.NONE),
        (True, b"GET", 204, False, Framing.NONE),
        (False, b"GET", 101, False, Framing.NONE),
    ],
)
def test_response_framing(
    http11: bool, method: bytes, code: int, length_known: bool, framing: Framing
) -> None:
    assert (
        response_framing(http11=http11, method=method, code=code, length_known=length_known)
        is framing
    )


def test_chunk() -> None:
    assert chunk(b"abc") == b"3\r\nabc\r\n"
    assert chunk(b"x" * 255) == b"ff\r\n" + b"x" * 255 + b"\r\n"


def test_date_header_is_an_imf_fixdate() -> None:
    line = date_header()
    match = re.fullmatch(rb"Date: (\w{3}, \d{2} \w{3} \d{4} \d{2}:\d{2}:\d{2} GMT)\r\n", line)
    assert match
    assert parsedate_to_datetime(match.group(1).decode()).tzinfo is not None
    assert server_and_date() == b"Server: treadle/" + __version__.encode() + b"\r\n" + date_header()


# -- what the limits count -------------------------------------------------------------------


def test_request_line_size_counts_method_target_and_version() -> None:
    line = b"GET /abc HTTP/1.1"
    assert request_line_size(b"GET", b"/abc") == len(line)
    assert request_line_size(b"OPTIONS", b"*") == len(b"OPTIONS * HTTP/1.1")


def test_field_line_size_counts_name_colon_space_value() -> None:
    assert field_line_size(b"Host", b"example.com") == len(b"Host: example.com")
    assert field_line_size(b"X", b"") == len(b"X: ")


def test_chunk_framing_budget() -> None:
    assert CHUNK_FRAMING_ALLOWANCE == 16 + 2 + 2
    assert chunk_framing_budget(0, 4096, 8192) == 4096 + 8192
    assert chunk_framing_budget(3, 0, 0) == 3 * CHUNK_FRAMING_ALLOWANCE
    # The largest size llhttp accepts, with its CRLFs, fits one chunk's allowance exactly.
    assert len(b"ffffffffffffffff\r\n\r\n") == CHUNK_FRAMING_ALLOWANCE


# -- Host and targets ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        b"",
        b"example.com",
        b"example.com:8080",
        b"127.0.0.1",
        b"127.0.0.1:80",
        b"[::1]",
        b"[::1]:8080",
        b"[2001:db8::1]",
        b"[::ffff:192.0.2.1]:443",
        b"[v1.fe80::a+en1]",
        b"xn--bcher-kva.example",
        b"under_score.example",
        b"pct%20encoded",
        b"host:",  # RFC 3986: the port may be empty
        b"sub-delims!$&'()*+,;=",
    ],
)
def test_valid_hosts(value: bytes) -> None:
    assert valid_host(value)


@pytest.mark.parametrize(
    "value",
    [
        b"a b",
        b"a/b",
        b"a?b",
        b"a#b",
        b"u@a",
        b"a:8o",
        b"a:80:80",
        b"a:-1",
        b"[::1",
        b"[]",
        b"[::1]x",
        b"[::1]:x",
        b"[a b]",
        b"[%41]",
        b"\xc3\xa9.example",
        b"a\tb",
        b'a"b',
        b"<script>",
    ],
)
def test_invalid_hosts(value: bytes) -> None:
    assert not valid_host(value)


@pytest.mark.parametrize(
    ("target", "authority"),
    [
        (b"http://example.com/p?q", b"example.com"),
        (b"HTTP://Example.com:81", b"Example.com:81"),
        (b"https://h?q", b"h"),
        (b"http://h#f", b"h"),
        (b"http://[::1]:8080/", b"[::1]:8080"),
    ],
)
def test_absolute_form_authority(target: bytes, authority: bytes) -> None:
    assert absolute_form_authority(target) == authority


@pytest.mark.parametrize(
    "target",
    [
        b"ftp://h/",
        b"http:/p",
        b"http://",
        b"http:///p",
        b"http://:80/",
        b"http://u@h/",
        b"http://u:p@h/",
        b"http://h:x/",
        b"http://h h/",
        b"//h/p",
        b"h:443",
    ],
)
def test_unacceptable_absolute_form_targets(target: bytes) -> None:
    with pytest.raises(ValueError):
        absolute_form_authority(target)


@pytest.mark.parametrize(
    ("method", "target", "acceptable"),
    [
        (b"OPTIONS", b"*", True),
        (b"GET", b"*", True),  # answered 405 by the server, as Twisted does
        (b"CONNECT", b"h:443", True),
        (b"GET", b"http://h/", True),
        (b"GET", b"ftp://h/", False),
        (b"GET", b"*x", False),
    ],
)
def test_target_error(method: bytes, target: bytes, acceptable: bool) -> None:
    assert (target_error(method, target) is None) is acceptable


# -- Transfer-Encoding ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "http11", "expected"),
    [
        ([b"chunked"], True, None),
        ([b"CHUNKED"], True, None),
        ([b" chunked "], True, None),
        ([b",chunked"], True, None),
        ([b"chunked"], False, 400),  # RFC 9112 §6.1: faulty framing in HTTP/1.0
        ([b"gzip, chunked"], True, 501),
        ([b"gzip", b"chunked"], True, 501),
        ([b"identity, chunked"], True, 501),
        ([b"gzip"], True, 400),  # RFC 9112 §6.3: chunked must be final
        ([b"chunked, gzip"], True, 400),
        ([b"chunked", b"chunked"], True, 400),
        ([b""], True, 400),
    ],
)
def test_transfer_coding_error(values: list[bytes], http11: bool, expected: int | None) -> None:
    error = transfer_coding_error(values, http11)
    assert (error[0] if error else None) == expected


def test_all_names_are_exported() -> None:
    for name in _framing.__all__:
        assert hasattr(_framing, name)
