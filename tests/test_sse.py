"""treadle.web.sse over real sockets: httpx reading event streams as they come, raw sockets
for clients that stop reading, and ``treadle web`` in a subprocess for the signal that
stops it. Both loops (the ``server`` fixture).

What each stream says is read with :func:`tests.test_sse_wire.parse`, the client written
from the standard's interpretation rules.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest

import treadle
from treadle.internet.defer import Deferred
from treadle.internet.error import ConnectionAborted
from treadle.internet.task import Clock
from treadle.python.failure import Failure
from treadle.web.resource import EncodingResourceWrapper, Resource
from treadle.web.server import NOT_DONE_YET, GzipEncoderFactory, Site
from treadle.web.sse import DEFAULT_HEARTBEAT, Event, EventSource, EventStream
from treadle.web.test.requesthelper import DummyRequest

from .conftest import DEADLINE, ServerThread, host_port, wait_for
from .test_sse_wire import Received, parse

SRC = Path(treadle.__file__).resolve().parents[1]


# -- helpers -----------------------------------------------------------------------------------


class Listening:
    """A stream read with httpx as it arrives."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self._chunks = response.iter_raw()
        self.data = b""
        self.ended = False

    def until(self, predicate: Callable[[Received], bool], what: str) -> Received:
        """Read until what arrived satisfies ``predicate``; fail if the stream ends first."""
        while not predicate(received := parse(self.data)):
            try:
                self.data += next(self._chunks)
            except StopIteration:
                pytest.fail(f"the stream ended before {what}: {self.data!r}")
        return received

    def events(self, count: int) -> list[dict[str, str]]:
        return self.until(lambda r: len(r.events) >= count, f"{count} events").events

    def to_end(self) -> Received:
        """Read until the server ends the stream (the chunked body's end)."""
        for chunk in self._chunks:
            self.data += chunk
        self.ended = True
        return parse(self.data)


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=DEADLINE) as client:
        yield client


def listen(
    http: httpx.Client, url: str, headers: dict[str, str | bytes] | None = None
) -> Iterator[Listening]:
    with http.stream("GET", url, headers=headers) as response:
        yield Listening(response)


class Streams(EventSource):
    """Keeps each stream for the test to drive (Twisted style: startStream returns None)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.streams: list[EventStream] = []
        self.ends: list[object] = []  # what each stream's notifyFinish gave, in order

    def startStream(self, stream: EventStream) -> None:
        self.streams.append(stream)
        stream.notifyFinish().addBoth(self.ends.append)

    def one(self) -> EventStream:
        (stream,) = wait_for(lambda: self.streams, what="the stream to start")
        return stream


class SlowReader:
    """A raw connection with a small receive buffer that reads only when told to."""

    def __init__(self, url: str, path: str = "/") -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.sock.settimeout(DEADLINE)
        self.sock.connect(host_port(url))
        self.sock.sendall(f"GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n".encode())
        self.raw = b""
        while b"\r\n\r\n" not in self.raw:
            self.raw += self.sock.recv(4096)
        self.head, _, self.raw = self.raw.partition(b"\r\n\r\n")

    def read_all(self) -> bytes:
        """Read until the server closes or aborts; return the body, unchunked."""
        try:
            while chunk := self.sock.recv(1 << 20):
                self.raw += chunk
        except ConnectionResetError:
            pass
        return dechunk(self.raw)

    def read_until(self, needle: bytes) -> bytes:
        """Read until the body holds ``needle``; return the body."""
        while needle not in (body := dechunk(self.raw)):
            chunk = self.sock.recv(1 << 20)
            assert chunk, "closed"
            self.raw += chunk
        return body

    def close(self) -> None:
        self.sock.close()


def dechunk(data: bytes) -> bytes:
    """The body of a chunked stream so far (a chunk cut short counts as far as it goes)."""
    body = b""
    while data:
        size_line, crlf, data = data.partition(b"\r\n")
        if not crlf:
            break
        size = int(size_line, 16)
        body += data[:size]
        data = data[size + 2 :]
    return body


def beats(server: ServerThread, clock: Clock) -> list[Any]:
    """The heartbeat timers pending on ``clock``."""
    calls = server.call(clock.getDelayedCalls)
    return [call for call in calls if getattr(call.func, "__name__", "") == "_beat"]


# -- the response ------------------------------------------------------------------------------


def test_headers_go_out_at_once_and_disable_caching_and_proxy_buffering(
    server: ServerThread, http: httpx.Client
) -> None:
    """The head arrives before any event, so a browser's ``open`` fires at once."""
    source = Streams()
    url = server.serve(source)
    for stream in listen(http, url):
        response = stream.response
        assert response.status_code == 200
        assert response.headers["content-type"] == "text/event-stream"
        assert response.headers["cache-control"] == "no-cache"
        assert response.headers["x-accel-buffering"] == "no"
        assert response.headers["transfer-encoding"] == "chunked"
        assert "content-encoding" not in response.headers
        assert "content-length" not in response.headers
        assert source.one().request.method == b"GET"


def test_head_gets_the_headers_and_other_methods_405(
    server: ServerThread, http: httpx.Client
) -> None:
    source = Streams()
    url = server.serve(source)
    head = http.head(url)
    assert head.status_code == 200
    assert head.headers["content-type"] == "text/event-stream"
    assert head.headers["x-accel-buffering"] == "no"
    assert source.streams == []
    assert http.post(url).status_code == 405


def test_gzip_is_never_applied_to_a_stream(server: ServerThread, http: httpx.Client) -> None:
    """Even under EncodingResourceWrapper, with a client accepting gzip, the stream goes out
    as written (while the wrapper still compresses the other pages it wraps)."""
    root = Resource()
    source = Streams()
    root.putChild(b"events", EncodingResourceWrapper(source, [GzipEncoderFactory()]))
    url = server.serve(root)
    for stream in listen(http, url + "/events", {"accept-encoding": "gzip"}):
        server.call(source.one().send, "x" * 2000)
        assert stream.events(1)[0]["data"] == "x" * 2000  # read raw: not compressed
        assert "content-encoding" not in stream.response.headers


# -- events ------------------------------------------------------------------------------------


def test_twisted_style_events_arrive_as_sent_with_their_fields(
    server: ServerThread, http: httpx.Client
) -> None:
    source = Streams()
    url = server.serve(source)
    for stream in listen(http, url):
        live = source.one()
        assert server.call(live.send, "first")
        assert server.call(partial(live.send, "two\nlines", event="update", id="2"))
        assert server.call(live.sendEvent, Event("third", id="3", retry=1500))
        assert server.call(live.sendComment, "not an event")
        assert server.call(live.sendEvent, "fourth")
        assert stream.events(4) == [
            {"type": "message", "data": "first", "lastEventId": ""},
            {"type": "update", "data": "two\nlines", "lastEventId": "2"},
            {"type": "message", "data": "third", "lastEventId": "3"},
            {"type": "message", "data": "fourth", "lastEventId": "3"},
        ]
        received = parse(stream.data)
        assert received.retry == 1500
        assert received.comments == [" not an event"]
        server.call(live.close)
        assert len(stream.to_end().events) == 4
    assert source.ends == [None]  # the server ended it
    assert live.closed and not server.call(live.send, "too late")


def test_values_cannot_break_the_framing_on_the_wire(
    server: ServerThread, http: httpx.Client
) -> None:
    source = Streams()
    url = server.serve(source)
    hostile = "a\r\n\r\nevent: forged\ndata: forged\r\r"
    for stream in listen(http, url):
        live = source.one()
        server.call(partial(live.send, hostile, id="1"))
        with pytest.raises(ValueError):
            server.call(partial(live.send, "x", event="a\n\ndata: forged"))
        server.call(live.send, "after")
        assert stream.events(2) == [
            {"type": "message", "data": "a\n\nevent: forged\ndata: forged\n\n", "lastEventId": "1"},
            {"type": "message", "data": "after", "lastEventId": "1"},
        ]


def test_retry_is_sent_first(server: ServerThread, http: httpx.Client) -> None:
    source = Streams(retry=250)
    url = server.serve(source)
    for stream in listen(http, url):
        stream.until(lambda r: r.retry == 250, "the retry field")
        assert stream.data == b"retry: 250\n\n"
    with pytest.raises(ValueError):
        EventSource(retry=-5)


def test_an_async_generator_feeds_the_stream_and_its_end_ends_it(
    server: ServerThread, http: httpx.Client
) -> None:
    async def ticks(stream: EventStream) -> AsyncIterator[Event | str]:
        yield "plain text"
        for n in range(3):
            await asyncio.sleep(0)
            yield Event(f"tick {n}", event="tick", id=str(n))

    url = server.serve(EventSource(ticks))
    for stream in listen(http, url):
        received = stream.to_end()
    assert [e["data"] for e in received.events] == ["plain text", "tick 0", "tick 1", "tick 2"]
    assert received.last_event_id == "2"


def test_a_coroutine_or_a_deferred_ends_the_stream_when_done(
    server: ServerThread, http: httpx.Client
) -> None:
    async def coroutine(stream: EventStream) -> None:
        stream.send("from a coroutine")
        await asyncio.sleep(0)
        stream.send("done")

    pending: list[tuple[EventStream, Deferred[None]]] = []

    def deferred(stream: EventStream) -> Deferred[None]:
        d: Deferred[None] = Deferred()
        pending.append((stream, d))
        return d

    root = Resource()
    root.putChild(b"coroutine", EventSource(coroutine))
    root.putChild(b"deferred", EventSource(deferred))
    url = server.serve(root)
    for stream in listen(http, url + "/coroutine"):
        assert [e["data"] for e in stream.to_end().events] == ["from a coroutine", "done"]
    for stream in listen(http, url + "/deferred"):
        live, d = wait_for(lambda: pending, what="the stream")[0]
        server.call(live.send, "waiting")
        stream.events(1)
        server.call(d.callback, None)
        assert [e["data"] for e in stream.to_end().events] == ["waiting"]


def test_a_failing_source_is_logged_and_ends_the_stream(
    server: ServerThread, http: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    async def breaks(stream: EventStream) -> AsyncIterator[str]:
        yield "before"
        raise RuntimeError("the source broke")

    def refuses(stream: EventStream) -> None:
        raise LookupError("no such feed")

    root = Resource()
    root.putChild(b"breaks", EventSource(breaks))
    root.putChild(b"refuses", EventSource(refuses))
    root.putChild(b"nothing", EventSource())
    url = server.serve(root)
    for stream in listen(http, url + "/breaks"):
        assert [e["data"] for e in stream.to_end().events] == ["before"]
    for path in ("/refuses", "/nothing"):
        for stream in listen(http, url + path):
            assert stream.to_end().events == []
    failures = [r for r in caplog.records if r.name == "treadle.error"]
    assert [type(r.exc_info[1]) for r in failures if r.exc_info] == [
        RuntimeError,
        LookupError,
        NotImplementedError,
    ]
    assert "event stream /breaks: the event source failed" in failures[0].getMessage()


# -- resuming ----------------------------------------------------------------------------------

HISTORY = [Event(f"event {n}", id=str(n)) for n in range(1, 6)]


async def replaying(stream: EventStream) -> AsyncIterator[Event]:
    """Replays the history after the id the client resumes from."""
    start = 0 if stream.lastEventID is None else int(stream.lastEventID)
    for event in HISTORY[start:]:
        yield event


def test_last_event_id_tells_the_resource_where_the_client_resumes(
    server: ServerThread, http: httpx.Client
) -> None:
    source = Streams()
    url = server.serve(source)
    for _ in listen(http, url):
        assert source.one().lastEventID is None
    source.streams.clear()
    for _ in listen(http, url, {"last-event-id": "evt-41 é".encode()}):
        assert source.one().lastEventID == "evt-41 é"


def test_a_client_resumes_after_the_last_event_it_received(
    server: ServerThread, http: httpx.Client
) -> None:
    url = server.serve(EventSource(replaying))
    for stream in listen(http, url):
        first = stream.to_end()
    assert [e["data"] for e in first.events] == [f"event {n}" for n in range(1, 6)]
    # A client that saw up to event 3 reconnects with what the browser would send.
    for stream in listen(http, url, {"last-event-id": "3"}):
        assert [e["data"] for e in stream.to_end().events] == ["event 4", "event 5"]


# -- heartbeats --------------------------------------------------------------------------------


def test_heartbeats_follow_each_quiet_interval(server: ServerThread) -> None:
    """Timed by the site's reactor (a Clock here): a comment after ``heartbeat`` seconds
    with nothing written, counted from the last write."""
    clock = Clock()
    source = Streams(heartbeat=16)
    url = server.serve(Site(source, reactor=clock))
    reader = SlowReader(url)
    try:
        live = source.one()

        def advance(seconds: float) -> None:  # binary fractions: exact sums
            server.call(clock.advance, seconds)

        advance(15.5)
        server.call(live.send, "at 15.5")
        reader.read_until(b"at 15.5")
        advance(15.75)  # 31.25: quiet for 15.75 s only
        server.call(live.sendComment, "marker")
        assert reader.read_until(b"marker").count(b":\n\n") == 0
        advance(15.75)  # 47: 15.75 s after the marker
        server.call(live.sendComment, "marker 2")
        assert reader.read_until(b"marker 2").count(b":\n\n") == 0
        advance(16)  # 63: quiet for 16 s
        body = reader.read_until(b"marker 2\n\n:\n\n")
        advance(16)  # and again
        body = reader.read_until(b"marker 2\n\n:\n\n:\n\n")
        assert parse(body).comments == [" marker", " marker 2", "", ""]
        assert len(beats(server, clock)) == 1  # the next heartbeat
        server.call(live.close)
        assert beats(server, clock) == []
    finally:
        reader.close()


def test_heartbeats_in_real_time_and_none_when_disabled(
    server: ServerThread, http: httpx.Client
) -> None:
    assert DEFAULT_HEARTBEAT == 15
    url = server.serve(Streams(heartbeat=0.05))
    for stream in listen(http, url):
        assert stream.until(lambda r: len(r.comments) >= 3, "three heartbeats").events == []
    clock = Clock()
    default, silent = Streams(), Streams(heartbeat=None)
    root = Resource()
    root.putChild(b"default", default)
    root.putChild(b"silent", silent)
    url = server.serve(Site(root, reactor=clock))
    for _ in listen(http, url + "/silent"):
        silent.one()
        assert beats(server, clock) == []
    for _ in listen(http, url + "/default"):
        default.one()
        assert [call.getTime() for call in beats(server, clock)] == [15]


# -- the end -----------------------------------------------------------------------------------


def test_a_client_leaving_stops_everything_of_its_stream(server: ServerThread) -> None:
    clock = Clock()
    cleaned: list[str] = []

    async def endless(stream: EventStream) -> AsyncIterator[str]:
        try:
            while True:
                yield "tick"
                await asyncio.sleep(3600)
        finally:
            cleaned.append("generator")

    twisted_style = Streams()
    root = Resource()
    root.putChild(b"async", EventSource(endless))
    root.putChild(b"twisted", twisted_style)
    url = server.serve(Site(root, reactor=clock))
    for path in ("/async", "/twisted"):
        reader = SlowReader(url, path)
        if path == "/async":
            reader.read_until(b"tick")
        else:
            twisted_style.one()
        assert len(beats(server, clock)) == 1
        reader.close()
        wait_for(lambda: beats(server, clock) == [], what="the heartbeat to stop")
    wait_for(lambda: cleaned == ["generator"], what="the generator to be closed")
    (end,) = twisted_style.ends
    assert isinstance(end, Failure)  # the client left: notifyFinish errbacks
    assert twisted_style.streams[0].closed
    assert not server.call(twisted_style.streams[0].send, "to nobody")


def test_shutdown_ends_streams_at_once_rather_than_after_the_grace_period(
    server: ServerThread, http: httpx.Client
) -> None:
    cleaned: list[str] = []

    async def endless(stream: EventStream) -> AsyncIterator[str]:
        try:
            while True:
                yield "tick"
                await asyncio.sleep(3600)
        finally:
            cleaned.append("generator")

    root = Resource()
    source = Streams()
    root.putChild(b"twisted", source)
    root.putChild(b"async", EventSource(endless))
    site = Site(root)
    url = server.serve(site)
    with (
        http.stream("GET", url + "/twisted") as one,
        http.stream("GET", url + "/async") as two,
    ):
        streams = [Listening(one), Listening(two)]
        server.call(source.one().send, "hello")
        for stream in streams:
            stream.events(1)
        started = time.monotonic()
        drained = asyncio.run_coroutine_threadsafe(site.shutdown(grace=30), server.loop)
        assert drained.result(DEADLINE) is True  # every connection closed within the grace
        assert time.monotonic() - started < 5  # ... and not by waiting it out
        for stream in streams:
            stream.to_end()  # ended cleanly: the last chunk, then the connection closed
    assert source.ends == [None]
    assert cleaned == ["generator"]


def test_a_stream_started_during_shutdown_ends_at_once(
    server: ServerThread, http: httpx.Client
) -> None:
    source = Streams()
    site = Site(source)
    url = server.serve(site)
    server.call(setattr, site, "shutting_down", True)
    for stream in listen(http, url):
        assert stream.to_end().events == []
    # The stream ends as it is made, before startStream is called: the client can see the
    # end while the server thread has yet to hand the stream over, so wait for it.
    assert source.one().closed


def test_treadle_web_stops_on_sigterm_without_waiting_for_streams(tmp_path: Path) -> None:
    """``treadle web --grace 60``: SIGTERM with a stream open ends it and exits at once."""
    (tmp_path / "events.rpy").write_text(
        "from treadle.web.sse import EventSource\n"
        "resource = EventSource(lambda stream: stream.send('hello'))\n"
    )
    command = [sys.executable, "-m", "treadle", "web", "--path", str(tmp_path), "--grace", "60"]
    command += ["--listen", "tcp:0:interface=127.0.0.1"]
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    proc = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        found = re.search(r" on (http://\S+)/$", line)
        assert found, line
        with (
            httpx.Client(timeout=DEADLINE) as http,
            http.stream("GET", found.group(1) + "/events.rpy") as response,
        ):
            stream = Listening(response)
            assert stream.events(1)[0]["data"] == "hello"
            started = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            stream.to_end()
            assert proc.wait(DEADLINE) == 0
            assert time.monotonic() - started < 5
    finally:
        if proc.poll() is None:
            proc.kill()
        _, errors = proc.communicate(timeout=DEADLINE)
    assert "grace period" not in errors, errors


# -- backpressure ------------------------------------------------------------------------------

BIG = "x" * 16384


def test_a_client_that_falls_too_far_behind_is_disconnected(
    server: ServerThread, caplog: pytest.LogCaptureFixture
) -> None:
    limit = 64 * 1024
    source = Streams(maxQueuedBytes=limit)
    url = server.serve(source)
    reader = SlowReader(url)
    try:
        live = source.one()

        def flood() -> tuple[int, int, bool]:
            """Send until the stream refuses; return (events accepted, most bytes queued,
            whether the stream was paused on the way)."""
            most = 0
            paused = False
            for sent in range(4000):  # 64 MiB: far more than socket buffers hold
                if not live.send(BIG, id=str(sent)):
                    return sent, most, paused
                most = max(most, live.queuedBytes)
                paused = paused or live.paused
            pytest.fail("the stream never refused an event")

        sent, most, paused = server.call(flood)
        assert paused and live.closed
        assert 0 < most <= limit  # the queue never held more than its limit
        wait_for(lambda: source.ends, what="the stream to end")
        assert isinstance(source.ends[0], Failure)
        assert source.ends[0].check(ConnectionAborted)
        # What the client got is a prefix of what was sent: resumable from its last id.
        received = parse(reader.read_all())
        ids = [int(e["lastEventId"]) for e in received.events]
        assert ids == list(range(len(ids))) and len(ids) < sent
    finally:
        reader.close()
    (warning,) = [r for r in caplog.records if r.name == "treadle.error"]
    assert warning.levelno == logging.WARNING
    assert "the client is too slow" in warning.getMessage()
    assert f"maxQueuedBytes={limit}" in warning.getMessage()


def test_events_queued_for_a_slow_client_arrive_in_order_once_it_reads(
    server: ServerThread,
) -> None:
    """A client briefly behind loses nothing; ``paused`` lets an application skip events."""
    source = Streams()
    url = server.serve(source)
    reader = SlowReader(url)
    try:
        live = source.one()

        def fill() -> int:
            for sent in range(4000):
                live.send(BIG, id=str(sent))
                if live.paused and live.queuedBytes > 0:
                    return sent + 1
            pytest.fail("the stream was never paused")

        sent = server.call(fill)
        body: list[bytes] = []
        reading = threading.Thread(target=lambda: body.append(reader.read_all()))
        reading.start()
        wait_for(
            lambda: server.call(lambda: not live.paused and live.queuedBytes == 0),
            what="the client to catch up",
        )
        server.call(live.close)
        reading.join(DEADLINE)
        received = parse(body[0])
    finally:
        reader.close()
    assert [e["lastEventId"] for e in received.events] == [str(n) for n in range(sent)]
    assert source.ends == [None]


def test_an_async_source_is_not_asked_for_more_while_the_client_is_behind(
    server: ServerThread,
) -> None:
    produced: list[int] = []
    streams: list[EventStream] = []

    async def numbered(stream: EventStream) -> AsyncIterator[Event]:
        streams.append(stream)
        for n in range(2000):  # 32 MiB: more than the socket buffers between the two ends
            produced.append(n)
            yield Event(BIG, id=str(n))
            await asyncio.sleep(0)

    url = server.serve(EventSource(numbered, maxQueuedBytes=32 * 1024))
    reader = SlowReader(url)
    try:
        (live,) = wait_for(lambda: streams, what="the stream")
        wait_for(lambda: server.call(lambda: live.paused), what="the client to fall behind")
        # The source is not asked for more while the client is behind (it would be at every
        # turn of the loop): nothing queued, no cut-off.
        held = server.call(lambda: len(produced))
        for _ in range(20):
            assert server.call(lambda: (len(produced), live.paused)) == (held, True)
        assert server.call(lambda: live.queuedBytes) <= len(BIG) + 100
        # Once the client reads, it is asked again.
        reader.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)

        def reading_resumes_it() -> bool:
            reader.raw += reader.sock.recv(1 << 20)
            return bool(server.call(lambda: len(produced)) > held + 10)

        wait_for(reading_resumes_it, what="the source to be asked again")
        assert not live.closed

        def events_read() -> list[str]:
            reader.raw += reader.sock.recv(1 << 20)
            return [e["lastEventId"] for e in parse(dechunk(reader.raw)).events][:3]

        # What arrives is what was produced, in order, nothing skipped.
        assert wait_for(events_read, what="events to arrive") == ["0", "1", "2"]
    finally:
        reader.close()
    ids = [e["lastEventId"] for e in parse(dechunk(reader.raw)).events]
    assert ids == [str(n) for n in range(len(ids))]


# -- without sockets: Twisted's testing double, and the factory's shutdown hook ---------------


def test_a_stream_on_a_dummy_request_driven_by_a_clock() -> None:
    """A test of one's own resource can use DummyRequest (which pulls from every producer it
    is given: the stream declines) and a Clock for the heartbeat."""
    clock = Clock()
    request = DummyRequest([b""])
    request.requestHeaders.setRawHeaders(b"last-event-id", [b"9"])
    seen: list[str | None] = []
    stream = EventStream(request, heartbeat=5, retry=100, reactor=clock)
    seen.append(stream.lastEventID)
    stream.send("hi", id="10")
    clock.advance(5)
    assert b"".join(request.written) == b"retry: 100\n\nid: 10\ndata: hi\n\n:\n\n"
    assert request.responseHeaders.getRawHeaders(b"content-type") == [b"text/event-stream"]
    stream.close()
    assert request.finished and clock.getDelayedCalls() == []
    assert seen == ["9"]
    assert not stream.send("after the end")


def test_event_source_renders_not_done_yet_by_hand() -> None:
    started: list[EventStream] = []
    source = EventSource(started.append, heartbeat=None)
    request = DummyRequest([b""])
    assert source.render(request) is NOT_DONE_YET
    (stream,) = started
    assert stream.lastEventID is None and not stream.closed
    stream.sendEvent(Event("x", event="e"))
    assert request.written[-1] == b"event: e\ndata: x\n\n"


def test_on_shutdown_callbacks(caplog: pytest.LogCaptureFixture) -> None:
    site = Site(Resource())
    called: list[str] = []
    site.on_shutdown(lambda: called.append("first"))
    forget = site.on_shutdown(lambda: called.append("forgotten"))
    forget()

    def broken() -> None:
        raise RuntimeError("broken callback")

    site.on_shutdown(broken)
    site.on_shutdown(lambda: called.append("last"))
    assert asyncio.run(site.shutdown(grace=0)) is True
    assert sorted(called) == ["first", "last"]  # and the broken one did not stop the rest
    assert [r.exc_info[1].args for r in caplog.records if r.exc_info] == [("broken callback",)]
    # Once shutdown began, a new callback runs at once.
    site.on_shutdown(lambda: called.append("late"))()
    assert called[-1] == "late"
    asyncio.run(site.shutdown(grace=0))
    assert called.count("first") == 1  # each runs once
