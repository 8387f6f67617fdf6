"""The access-log formatters of treadle.web.http, compared with Twisted's on the same requests,
and written by a real Site."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet import address as twaddress
from twisted.web import http as twhttp

from tests.conftest import Hello, ServerThread, wait_for
from treadle.internet import address
from treadle.web import http
from treadle.web.iweb import IAccessLogFormatter
from treadle.web.server import Site

STAMP = "[14/Nov/2023:22:13:20 +0000]"


class FakeHeaders:
    """The one header store both formatters read (so only the formatters differ)."""

    def __init__(self, raw: dict[bytes, list[bytes]]) -> None:
        self._raw = {name.lower(): values for name, values in raw.items()}

    def getRawHeaders(self, name: bytes, default: Any = None) -> Any:
        return self._raw.get(name.lower(), default)


class FakeRequest:
    """What an access-log formatter reads of a finished request."""

    def __init__(self, client: Any, headers: dict[bytes, list[bytes]], **fields: Any) -> None:
        self._client = client
        self.requestHeaders = FakeHeaders(headers)
        self.method: bytes = fields.get("method", b"GET")
        self.uri: bytes = fields.get("uri", b"/")
        self.clientproto: bytes = fields.get("clientproto", b"HTTP/1.1")
        self.code: int = fields.get("code", 200)
        self.sentLength: int = fields.get("sentLength", 0)

    def getClientAddress(self) -> Any:
        return self._client

    def getHeader(self, name: bytes) -> bytes | None:
        values = self.requestHeaders.getRawHeaders(name)
        return values[-1] if values else None


def both(
    host: str | None, headers: dict[bytes, list[bytes]], **fields: Any
) -> tuple[FakeRequest, FakeRequest]:
    """The same request for treadle (treadle's addresses) and Twisted (Twisted's)."""
    if host is None:
        ours: Any = address.UNIXAddress("/tmp/socket")
        theirs: Any = twaddress.UNIXAddress(b"/tmp/socket")
    elif ":" in host:
        ours, theirs = address.IPv6Address("TCP", host, 1), twaddress.IPv6Address("TCP", host, 1)
    else:
        ours, theirs = address.IPv4Address("TCP", host, 1), twaddress.IPv4Address("TCP", host, 1)
    return FakeRequest(ours, headers, **fields), FakeRequest(theirs, headers, **fields)


# -- timestamps -------------------------------------------------------------------------------


@pytest.mark.parametrize("when", [0, 1_700_000_000, 951_782_400.9, 4_102_444_799])
def test_log_timestamps_match_twisted(when: float) -> None:
    assert http.datetimeToLogString(when) == twhttp.datetimeToLogString(when)  # type: ignore[no-untyped-call]


def test_log_timestamp_defaults_to_now() -> None:
    before = time.time()
    now = http.datetimeToLogString()
    after = time.time()
    assert now in {http.datetimeToLogString(before), http.datetimeToLogString(after)}


# -- escaping ---------------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=40))
def test_escaping_matches_twisted(value: bytes) -> None:
    assert http._escape(value) == twhttp._escape(value)  # type: ignore[no-untyped-call]


@pytest.mark.parametrize(
    ("raw", "escaped"),
    [
        (b'say "hi"', 'say \\"hi\\"'),
        (b"it's", "it's"),
        (b"a\\b", "a\\\\b"),
        (b"line\r\nForged: 1", "line\\r\\nForged: 1"),
        (b"\x00\x7f\xff", "\\x00\\x7f\\xff"),
    ],
)
def test_escaping_keeps_clients_from_forging_lines(raw: bytes, escaped: str) -> None:
    assert http._escape(raw) == escaped
    assert "\n" not in http._escape(raw)


def test_escaping_text_does_not_raise_on_non_ascii() -> None:
    assert http._escape("café") == "caf\\xc3\\xa9"


# -- the formatters -----------------------------------------------------------------------------


header_values = st.lists(st.binary(min_size=1, max_size=20), min_size=1, max_size=2)


@settings(max_examples=200, deadline=None)
@given(
    host=st.sampled_from(["127.0.0.1", "::1", "203.0.113.9", None]),
    method=st.binary(min_size=1, max_size=10),
    uri=st.binary(max_size=30),
    agent=st.none() | header_values,
    referer=st.none() | header_values,
    forwarded=st.none() | header_values,
    code=st.integers(100, 599),
    sent=st.integers(0, 10**9),
)
def test_formatters_match_twisted(
    host: str | None,
    method: bytes,
    uri: bytes,
    agent: list[bytes] | None,
    referer: list[bytes] | None,
    forwarded: list[bytes] | None,
    code: int,
    sent: int,
) -> None:
    headers = {
        name: values
        for name, values in (
            (b"User-Agent", agent),
            (b"Referer", referer),
            (b"X-Forwarded-For", forwarded),
        )
        if values is not None
    }
    ours, theirs = both(host, headers, method=method, uri=uri, code=code, sentLength=sent)
    assert http.combinedLogFormatter(STAMP, ours) == twhttp.combinedLogFormatter(STAMP, theirs)
    assert http.proxiedLogFormatter(STAMP, ours) == twhttp.proxiedLogFormatter(STAMP, theirs)


def test_combined_line_shape() -> None:
    ours, _ = both(
        "192.0.2.1",
        {b"User-Agent": [b'curl "8"'], b"Referer": [b"http://example.com/"]},
        method=b"POST",
        uri=b"/form?a=1",
        code=201,
        sentLength=12,
    )
    assert http.combinedLogFormatter(STAMP, ours) == (
        f'"192.0.2.1" - - {STAMP} "POST /form?a=1 HTTP/1.1" 201 12 '
        '"http://example.com/" "curl \\"8\\""'
    )
    unix, _ = both(None, {})
    assert (
        http.combinedLogFormatter(STAMP, unix) == f'"-" - - {STAMP} "GET / HTTP/1.1" 200 - "-" "-"'
    )


@pytest.mark.parametrize(
    ("forwarded", "ip"),
    [
        (None, "-"),
        ([b"203.0.113.7"], "203.0.113.7"),
        ([b" 203.0.113.7 , 10.0.0.1"], "203.0.113.7"),
        ([b"198.51.100.1", b"10.0.0.2"], "198.51.100.1"),
        ([b'evil" "x'], 'evil\\" \\"x'),
    ],
)
def test_proxied_formatter_logs_the_first_forwarded_address(
    forwarded: list[bytes] | None, ip: str
) -> None:
    headers = {} if forwarded is None else {b"X-Forwarded-For": forwarded}
    ours, _ = both("127.0.0.1", headers)
    assert http.proxiedLogFormatter(STAMP, ours).startswith(f'"{ip}" - - {STAMP} ')


def test_formatters_provide_the_access_log_interface() -> None:
    assert IAccessLogFormatter.providedBy(http.combinedLogFormatter)
    assert IAccessLogFormatter.providedBy(http.proxiedLogFormatter)


# -- a real Site --------------------------------------------------------------------------------

LINE = re.compile(
    r'"203\.0\.113\.7" - - \[\d\d/[A-Z][a-z]{2}/\d{4}:\d\d:\d\d:\d\d \+0000\] '
    r'"GET /hello\?who=me HTTP/1\.1" 200 (\d+) "-" "agent \\"quoted\\""'
)


def test_site_writes_proxied_lines_to_its_log_file(server: ServerThread, tmp_path: Path) -> None:
    log_path = tmp_path / "access.log"
    site = Site(Hello(), logPath=str(log_path), logFormatter=http.proxiedLogFormatter)
    url = server.serve(site)
    headers = {"X-Forwarded-For": "203.0.113.7, 10.0.0.1", "User-Agent": 'agent "quoted"'}
    with httpx.Client(timeout=10) as client:
        response = client.get(url + "/hello?who=me", headers=headers)
    assert response.status_code == 200

    def logged() -> str:
        return log_path.read_text() if log_path.exists() else ""

    match = LINE.fullmatch(wait_for(logged, "the access log line").rstrip("\n"))
    assert match, logged()
    assert int(match.group(1)) == len(response.content)
