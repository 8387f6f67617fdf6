"""The batched access-log writer, and a site writing its log to a stream over real sockets."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Callable

import httpx
import pytest

from tests.conftest import ServerThread, wait_for
from treadle.web._access_log import ATOMIC_WRITE, AccessLogWriter
from treadle.web.resource import Resource
from treadle.web.server import Request, Site


class RecordingStream(io.StringIO):
    """A text stream that remembers each write it was given, and its flushes."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[str] = []
        self.flushes = 0

    def write(self, text: str) -> int:
        self.writes.append(text)
        return super().write(text)

    def flush(self) -> None:
        self.flushes += 1
        super().flush()


def line(n: int, width: int = 80) -> str:
    text = f"line {n} "
    return text + "x" * (width - len(text) - 1) + "\n"


def test_the_lines_of_one_loop_turn_leave_in_one_write_when_it_ends() -> None:
    stream = RecordingStream()
    writer = AccessLogWriter(stream)

    async def scenario() -> list[str]:
        for n in range(10):
            writer.write(line(n))
        written_during_the_turn = list(stream.writes)
        await asyncio.sleep(0)  # the turn ends; the writer's flush runs
        await asyncio.sleep(0)
        return written_during_the_turn

    assert asyncio.run(scenario()) == []
    assert stream.writes == ["".join(line(n) for n in range(10))]
    assert stream.flushes == 1


def test_a_large_batch_is_cut_into_atomic_writes_at_line_boundaries() -> None:
    stream = RecordingStream()
    writer = AccessLogWriter(stream)
    lines = [line(n, width=100 + n % 37) for n in range(300)]

    async def scenario() -> None:
        for text in lines:
            writer.write(text)
        await asyncio.sleep(0)
        await asyncio.sleep(0)

    asyncio.run(scenario())
    assert "".join(stream.writes) == "".join(lines)
    assert len(stream.writes) > 1
    for chunk in stream.writes:
        assert len(chunk.encode()) <= ATOMIC_WRITE
        assert chunk.endswith("\n")


def test_a_line_longer_than_an_atomic_write_goes_alone_and_whole() -> None:
    stream = RecordingStream()
    writer = AccessLogWriter(stream)
    long = "y" * (ATOMIC_WRITE + 10) + "\n"

    async def scenario() -> None:
        writer.write(line(1))
        writer.write(long)
        writer.write(line(2))
        await asyncio.sleep(0)
        await asyncio.sleep(0)

    asyncio.run(scenario())
    assert stream.writes == [line(1), long, line(2)]


def test_outside_a_running_loop_a_line_is_written_at_once() -> None:
    stream = RecordingStream()
    AccessLogWriter(stream).write(line(1))
    assert stream.writes == [line(1)]


def test_close_writes_what_is_queued_and_closes_only_an_owned_stream() -> None:
    kept, owned = RecordingStream(), RecordingStream()
    writers = [AccessLogWriter(kept), AccessLogWriter(owned, owns_stream=True)]

    async def scenario() -> None:
        for writer in writers:
            writer.write(line(1))
            writer.close()  # within the turn: nothing may be lost

    asyncio.run(scenario())
    assert kept.getvalue() == line(1) and not kept.closed
    assert owned.writes == [line(1)] and owned.closed


def test_a_line_after_the_stream_closed_is_dropped_without_error() -> None:
    stream = RecordingStream()
    writer = AccessLogWriter(stream)
    stream.close()
    writer.write(line(1))  # no running loop: written at once, to nothing


class Hello(Resource):
    isLeaf = True

    def render_GET(self, request: Request) -> bytes:
        return b"hello"


@pytest.mark.parametrize("requests", [1, 40])
def test_a_site_logging_to_a_stream_writes_every_request_as_a_combined_line(
    server: ServerThread, requests: int
) -> None:
    stream = RecordingStream()
    site = Site(Hello())
    site.logToStream(stream)
    url = server.serve(site)
    with httpx.Client(timeout=10) as client:
        for n in range(requests):
            assert client.get(f"{url}/page/{n}").status_code == 200

    def logged() -> list[str]:
        text = stream.getvalue()
        return text.splitlines() if text.count("\n") >= requests else []

    lines = wait_for(logged, "every request in the access log")
    assert len(lines) == requests
    for n, text in enumerate(lines):
        assert f'"GET /page/{n} HTTP/1.1" 200 5 "-" "python-httpx/' in text


def test_stopping_the_factory_flushes_a_stream_it_does_not_own() -> None:
    stream = RecordingStream()
    site = Site(Hello())
    writer = site.logToStream(stream)
    site.startFactory()
    writer.write(line(1))  # no loop: written at once; then the stop must leave it open
    site.stopFactory()
    assert stream.getvalue() == line(1) and not stream.closed
    site.startFactory()  # a port listening again keeps logging to the same stream
    site.log(_finished_request(site))
    assert stream.getvalue().count("\n") == 2


def _finished_request(site: Site) -> Request:
    from treadle.web.test.requesthelper import DummyChannel

    channel: Callable[[], object] = DummyChannel
    request = Request(channel())  # type: ignore[arg-type]
    request.site = site
    request.method, request.uri, request.clientproto = b"GET", b"/", b"HTTP/1.1"
    return request
