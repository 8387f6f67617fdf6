"""Properties of the channel, checked with hypothesis on the in-memory transport.

- a valid request (or several, pipelined) split at any byte boundaries gives the same
  responses as when it arrives whole;
- arbitrary bytes never raise out of the channel, and every connection ends in a refusal
  (4xx, or 501/505) or a close, never in a 500;
- treadle and h11 (an independent implementation) agree on where pipelined requests begin
  and end: the same (method, target, body) sequence, and both refuse or neither does.
"""

from __future__ import annotations

import re

import h11
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from treadle.internet.task import Clock
from treadle.web.resource import Resource
from treadle.web.server import Request, Site
from treadle.web.testing import connect

SETTINGS = settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


class Record(Resource):
    """Answers with what it received and remembers it."""

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[bytes, bytes, bytes]] = []

    def render(self, request: Request) -> bytes:
        body = request.content.read()
        self.seen.append((request.method, request.uri, body))
        return b"%s %s %d %s" % (request.method, request.uri, len(body), body)


# -- strategies ------------------------------------------------------------------------------

TOKEN = st.text(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_", min_size=1, max_size=12
)
PATH = st.text("abcdefghijklmnopqrstuvwxyz0123456789-._~%!$&'()*+,;=:@/", max_size=30)
VALUE = st.text(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 -_.,;:/=\"'()", max_size=40
).map(str.strip)
BODY = st.binary(max_size=200)
RESERVED = {"host", "content-length", "transfer-encoding", "connection", "expect", "upgrade", "te"}


@st.composite
def requests(draw: st.DrawFn) -> bytes:
    """One valid HTTP/1.1 request, framed by Content-Length or chunked (with extensions)."""
    method = draw(st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]))
    target = "/" + draw(PATH)
    if draw(st.booleans()):
        target += "?" + draw(PATH)
    headers = [("Host", draw(st.sampled_from(["x", "example.com", "127.0.0.1:8080"])))]
    for name, value in draw(st.lists(st.tuples(TOKEN, VALUE), max_size=5)):
        if name.lower() not in RESERVED:
            headers.append((name, value))
    body = draw(BODY) if method in ("POST", "PUT", "PATCH") else b""
    chunked = bool(body) and draw(st.booleans())
    if chunked:
        headers.append(("Transfer-Encoding", "chunked"))
    elif body or draw(st.booleans()):
        headers.append(("Content-Length", str(len(body))))
    head = f"{method} {target} HTTP/1.1\r\n" + "".join(f"{n}: {v}\r\n" for n, v in headers)
    data = head.encode("latin-1") + b"\r\n"
    if chunked:
        cuts = sorted(set(draw(st.lists(st.integers(1, len(body)), max_size=4))))
        pieces = [body[a:b] for a, b in zip([0, *cuts], [*cuts, len(body)], strict=True)]
        for piece in pieces:
            if piece:
                ext = draw(st.sampled_from([b"", b";a", b";a=b", b';name="quoted;value"']))
                data += b"%x%s\r\n%s\r\n" % (len(piece), ext, piece)
        data += b"0\r\n"
        if draw(st.booleans()):
            data += b"X-Trailer: t\r\n"
        data += b"\r\n"
    else:
        data += body
    return data


def split_at(data: bytes, points: list[int]) -> list[bytes]:
    cuts = sorted({p % (len(data) + 1) for p in points})
    return [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]


_DATE = re.compile(rb"Date: [^\r]*\r\n")


def answer(parts: list[bytes]) -> bytes:
    channel, transport = connect(Site(Record()))
    for part in parts:
        channel.data_received(part)
    return _DATE.sub(b"", transport.value())


# -- properties ------------------------------------------------------------------------------


@SETTINGS
@given(st.lists(requests(), min_size=1, max_size=3), st.lists(st.integers(0, 10_000), max_size=12))
def test_any_split_gives_the_same_responses(batch: list[bytes], points: list[int]) -> None:
    data = b"".join(batch)
    whole = answer([data])
    assert whole.count(b"HTTP/1.1 200 OK\r\n") == len(batch)
    assert answer(split_at(data, points)) == whole


PREFIXES = [
    b"",
    b"GET / HTTP/1.1\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n",
]


@SETTINGS
@given(
    st.sampled_from(PREFIXES),
    st.binary(max_size=300),
    st.lists(st.integers(0, 10_000), max_size=8),
)
def test_garbage_ends_in_a_refusal_or_a_close(
    prefix: bytes, junk: bytes, points: list[int]
) -> None:
    clock = Clock()
    site = Site(Record())
    channel, transport = connect(site, clock)
    for part in split_at(prefix + junk, points):
        channel.data_received(part)  # never raises
    for _ in range(4):  # past every timeout: head, body, idle, linger, closing
        clock.advance(max(site.timeOut, site.headTimeout, site.bodyTimeout) + 1)
    assert transport.closed or transport.aborted
    codes = [int(c) for c in re.findall(rb"HTTP/1\.1 (\d{3}) ", transport.value())]
    assert 500 not in codes
    refusals = [i for i, code in enumerate(codes) if code >= 400]
    # A refusal is the last thing said on a connection, and only 4xx, 501 or 505.
    assert refusals in ([], [len(codes) - 1])
    assert all(400 <= code < 500 or code in (501, 505) for code in codes if code >= 400)


# -- differential: treadle against h11 -------------------------------------------------------

# Faults RFC 9110/9112 require a server to refuse (with 400 or, for an unknown transfer
# coding, 501). Left out on purpose: faults where the RFCs allow either refusing or repairing
# and the two implementations choose differently (llhttp refuses, h11 repairs): obs-fold
# (RFC 9112 §5.2) and Content-Length next to Transfer-Encoding (§6.3).
MUTATIONS = [
    b"",
    b"Content-Length: 1\r\nContent-Length: 2\r\n",
    b"Transfer-Encoding: gzip, chunked\r\n",
    b"Content-Length: x\r\n",
    b"Content-Length: -1\r\n",
    b"X: a\x00b\r\n",
    b"X : a\r\n",
    b"Host: y\r\n",
]


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A request, sometimes with a fault inserted into its head."""
    data = draw(requests())
    mutation = draw(st.sampled_from(MUTATIONS))
    if mutation:
        head, sep, rest = data.partition(b"\r\n\r\n")
        data = head + b"\r\n" + mutation[:-2] + sep + rest
    return data


@st.composite
def pipelines(draw: st.DrawFn) -> bytes:
    """One to three requests in a row, the last one sometimes cut short."""
    data = b"".join(draw(st.lists(mutated(), min_size=1, max_size=3)))
    if draw(st.integers(0, 4)) == 0:
        data = data[: draw(st.integers(0, len(data)))]
    return data


def treadle_view(data: bytes) -> tuple[list[tuple[bytes, bytes, bytes]], bool]:
    record = Record()
    channel, transport = connect(Site(record))
    channel.data_received(data)
    refused = any(int(c) >= 400 for c in re.findall(rb"HTTP/1\.1 (\d{3}) ", transport.value()))
    return record.seen, refused


def h11_view(data: bytes) -> tuple[list[tuple[bytes, bytes, bytes]], bool | None]:
    """h11's requests and whether it refused (None: it waits for more of an unfinished head)."""
    conn = h11.Connection(h11.SERVER)
    if not data:
        return [], False
    conn.receive_data(data)  # (b"" would mean EOF to h11)
    seen: list[tuple[bytes, bytes, bytes]] = []
    current: list[bytes] = []
    try:
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                unfinished_head = conn.their_state is h11.IDLE and conn.trailing_data[0]
                return seen, None if unfinished_head else False
            if event is h11.PAUSED:
                conn.send(h11.Response(status_code=200, headers=[("Content-Length", "0")]))
                conn.send(h11.EndOfMessage())
                conn.start_next_cycle()
            elif isinstance(event, h11.Request):
                current = [event.method, event.target, b""]
            elif isinstance(event, h11.Data):
                current[2] += event.data
            elif isinstance(event, h11.EndOfMessage):
                seen.append((current[0], current[1], current[2]))
    except h11.RemoteProtocolError:
        return seen, True


@SETTINGS
@given(pipelines())
def test_treadle_and_h11_agree_on_request_boundaries(data: bytes) -> None:
    seen, refused = treadle_view(data)
    h11_seen, h11_refused = h11_view(data)
    assert seen == h11_seen
    if h11_refused is None:
        # h11 checks a head once it is complete, llhttp byte by byte: on an unfinished
        # head only llhttp may already have refused.
        return
    assert refused == h11_refused
