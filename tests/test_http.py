"""The HTTP/1.1 channel over an in-memory transport, with time driven by a Clock or a loop."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import h11
import pytest

from treadle.internet._timers import MAX_WAIT
from treadle.internet.address import IPv4Address
from treadle.internet.error import ConnectionAborted
from treadle.internet.task import Clock
from treadle.python.failure import Failure
from treadle.web._channel_core import CORK_MAX
from treadle.web.resource import Resource
from treadle.web.server import NOT_DONE_YET, Request, Site
from treadle.web.testing import StringTransport, connect, request_bytes

from .conftest import Held, host_port, on_loop, raw_request, run_scenario, still_clock, wait_for


class Hello(Resource):
    isLeaf = True

    def render_GET(self, request: Request) -> bytes:
        return b"hello " + request.path

    def render_POST(self, request: Request) -> bytes:
        return b"got " + request.content.read()


def parse_responses(
    data: bytes, methods: list[bytes] | None = None
) -> list[tuple[int, dict[bytes, bytes], bytes]]:
    """Parse every response in ``data`` with h11 (an independent HTTP implementation)."""
    conn = h11.Connection(h11.CLIENT)
    responses = []
    methods = list(methods or [])
    conn.receive_data(data)
    while True:
        if conn.our_state is h11.IDLE or (
            conn.our_state is h11.DONE and conn.their_state is h11.DONE
        ):
            pass
        if conn.our_state is h11.IDLE:
            conn.send(
                h11.Request(
                    method=methods.pop(0) if methods else b"GET",
                    target="/",
                    headers=[("Host", "x")],
                )
            )
            conn.send(h11.EndOfMessage())
        event = conn.next_event()
        if event is h11.NEED_DATA or event is h11.PAUSED:
            if conn.their_state is h11.DONE and conn.our_state is h11.DONE:
                conn.start_next_cycle()
                continue
            break
        if isinstance(event, h11.Response):
            current = [event.status_code, dict(event.headers), b""]
        elif isinstance(event, h11.Data):
            current[2] += event.data
        elif isinstance(event, h11.EndOfMessage):
            responses.append(tuple(current))
            if conn.our_state is h11.DONE and conn.their_state is h11.DONE:
                conn.start_next_cycle()
        elif isinstance(event, h11.ConnectionClosed):
            break
    return responses  # type: ignore[return-value]


def test_keep_alive_answers_each_request_on_one_connection() -> None:
    channel, transport = connect(Site(Hello()))
    channel.data_received(request_bytes(target="/a"))
    channel.data_received(request_bytes(target="/b"))
    responses = parse_responses(transport.value())
    assert [r[2] for r in responses] == [b"hello /a", b"hello /b"]
    assert not transport.closed


def test_pipelined_requests_in_one_packet_are_answered_in_order() -> None:
    channel, transport = connect(Site(Hello()))
    channel.data_received(b"".join(request_bytes(target=f"/{i}") for i in range(10)))
    assert [r[2] for r in parse_responses(transport.value())] == [
        b"hello /%d" % i for i in range(10)
    ]


def test_byte_at_a_time_gives_the_same_response() -> None:
    data = request_bytes("POST", "/x", body=b"payload")
    whole_channel, whole = connect(Site(Hello()))
    whole_channel.data_received(data)
    split_channel, split = connect(Site(Hello()))
    for i in range(len(data)):
        split_channel.data_received(data[i : i + 1])
    assert parse_responses(whole.value(), [b"POST"]) == parse_responses(split.value(), [b"POST"])
    assert parse_responses(split.value(), [b"POST"])[0][2] == b"got payload"


def test_pipelined_response_waits_for_the_pending_one() -> None:
    held = Held(immediate={b"/now": b"now"})
    channel, transport = connect(Site(held))
    channel.data_received(request_bytes(target="/slow") + request_bytes(target="/now"))
    assert transport.value() == b""  # /now is queued behind /slow
    request = held.pending[0]
    request.write(b"slow ")
    request.write(b"done")
    request.finish()
    responses = parse_responses(transport.value())
    assert [r[2] for r in responses] == [b"slow done", b"now"]


def test_reading_pauses_when_the_pipeline_queue_is_full() -> None:
    held = Held(immediate={b"/now": b"now"})
    site = Site(held)
    channel, transport = connect(site)
    channel.data_received(
        b"".join(request_bytes(target=f"/{i}") for i in range(site.maxPipelined + 2))
    )
    assert not transport.reading
    held.pending[0].finish()
    # Finishing one lets the queue drain synchronously up to the next held request.
    assert len(held.pending) == 2
    for _ in range(site.maxPipelined + 1):
        held.pending[-1].finish()
    assert transport.reading
    assert len(parse_responses(transport.value())) == site.maxPipelined + 2


def test_connection_close_is_honoured_and_later_requests_dropped() -> None:
    channel, transport = connect(Site(Hello()))
    channel.data_received(
        request_bytes(headers=[("Host", "x"), ("Connection", "close")])
        + request_bytes(target="/never")
    )
    value = transport.value()
    assert b"Connection: close\r\n" in value
    assert value.count(b"HTTP/1.1 200") == 1
    assert transport.closed


def test_http10_closes_unless_keep_alive_is_asked() -> None:
    channel, transport = connect(Site(Hello()))
    channel.data_received(b"GET / HTTP/1.0\r\n\r\n")
    assert transport.closed
    assert b"Content-Length: 7\r\n" in transport.value()

    channel, transport = connect(Site(Hello()))
    channel.data_received(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
    assert not transport.closed
    assert b"Connection: keep-alive\r\n" in transport.value()


def test_streamed_response_is_chunked_for_http11_and_close_delimited_for_http10() -> None:
    held = Held(immediate={b"/now": b"now"})
    clock = Clock()
    channel, transport = connect(Site(held), clock)
    channel.data_received(request_bytes())
    held.pending[0].write(b"a")
    clock.advance(0)  # the loop turns: the first write goes out, so the body streams
    held.pending[0].write("é")
    held.pending[0].finish()
    value = transport.value()
    assert b"Transfer-Encoding: chunked\r\n" in value
    assert value.endswith(b"1\r\na\r\n2\r\n\xc3\xa9\r\n0\r\n\r\n")

    channel, transport = connect(Site(held), clock)
    channel.data_received(b"GET / HTTP/1.0\r\n\r\n")
    held.pending[1].write(b"abc")
    clock.advance(0)
    held.pending[1].finish()
    head, _, body = transport.value().partition(b"\r\n\r\n")
    assert b"Transfer-Encoding" not in head and b"Content-Length" not in head
    assert body == b"abc" and transport.closed


def test_head_has_headers_but_no_body() -> None:
    channel, transport = connect(Site(Hello()))
    channel.data_received(request_bytes("HEAD", "/x"))
    value = transport.value()
    assert value.endswith(b"Content-Length: 8\r\n\r\n")


def test_chunked_request_body() -> None:
    channel, transport = connect(Site(Hello()))
    channel.data_received(
        request_bytes("POST", "/", headers=[("Host", "x"), ("Transfer-Encoding", "chunked")])
        + b"3\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\n"
    )
    assert parse_responses(transport.value(), [b"POST"])[0][2] == b"got abcdefg"


def test_expect_100_continue_is_answered_before_the_body() -> None:
    channel, transport = connect(Site(Hello()))
    channel.data_received(
        request_bytes(
            "POST",
            "/",
            headers=[("Host", "x"), ("Content-Length", "4"), ("Expect", "100-continue")],
        )
    )
    assert transport.value() == b"HTTP/1.1 100 Continue\r\n\r\n"
    channel.data_received(b"body")
    assert transport.value().endswith(b"got body")


def test_expect_100_continue_over_the_body_limit_is_refused() -> None:
    site = Site(Hello())
    site.maxRequestBodySize = 10
    channel, transport = connect(site)
    channel.data_received(
        request_bytes(
            "POST",
            "/",
            headers=[("Host", "x"), ("Content-Length", "11"), ("Expect", "100-continue")],
        )
    )
    assert transport.value().startswith(b"HTTP/1.1 413 ")
    assert transport.closed


@pytest.mark.parametrize(
    "garbage",
    [
        b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"\x00\x01\x02 garbage\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n",
    ],
)
def test_malformed_request_gets_400_and_the_connection_closes(garbage: bytes) -> None:
    channel, transport = connect(Site(Hello()))
    channel.data_received(garbage + request_bytes(target="/smuggled"))
    # Twisted's bytes: the status line alone; the close marks the end.
    assert transport.value() == b"HTTP/1.1 400 Bad Request\r\n\r\n"
    assert transport.closed


def test_http11_without_host_is_served_as_twisted_serves_it() -> None:
    channel, transport = connect(Site(Hello()))
    channel.data_received(b"GET / HTTP/1.1\r\n\r\n")
    assert transport.value().startswith(b"HTTP/1.1 200 OK\r\n")


def test_error_after_a_pending_response_is_sent_in_order() -> None:
    held = Held(immediate={b"/now": b"now"})
    channel, transport = connect(Site(held))
    channel.data_received(request_bytes(target="/first") + b"BROKEN\r\n\r\n")
    assert transport.value() == b""
    held.pending[0].write(b"first")
    held.pending[0].finish()
    value = transport.value()
    assert value.index(b"first") < value.index(b"HTTP/1.1 400")
    assert transport.closed


def test_idle_keep_alive_connection_times_out() -> None:
    clock = Clock()
    site = Site(Hello(), timeout=5)
    channel, transport = connect(site, clock)
    channel.data_received(request_bytes())
    clock.advance(4)
    assert not transport.closed
    channel.data_received(request_bytes())  # activity restarts the idle period
    clock.advance(4)
    assert not transport.closed
    clock.advance(1.5)
    assert transport.closed


def test_pending_response_is_never_timed_out() -> None:
    clock = Clock()
    held = Held(immediate={b"/now": b"now"})
    channel, transport = connect(Site(held, timeout=5), clock)
    channel.data_received(request_bytes())
    clock.pump([5] * 10)
    assert not transport.closed
    held.pending[0].finish()
    clock.advance(5)
    assert transport.closed


def test_connection_lost_notifies_and_ignores_later_writes() -> None:
    held = Held(immediate={b"/now": b"now"})
    channel, transport = connect(Site(held))
    channel.data_received(request_bytes())
    request = held.pending[0]
    outcomes: list[object] = []
    request.notifyFinish().addCallbacks(outcomes.append, lambda f: outcomes.append(f.type))
    channel.connection_lost(None)
    from treadle.internet.error import ConnectionDone

    assert outcomes == [ConnectionDone]
    request.write(b"ignored")  # no error: Twisted ignores writes after loss
    with pytest.raises(RuntimeError, match="notifyFinish"):
        request.finish()
    assert transport.value() == b""


def test_write_after_finish_raises() -> None:
    held = Held(immediate={b"/now": b"now"})
    channel, _ = connect(Site(held))
    channel.data_received(request_bytes())
    request = held.pending[0]
    request.finish()
    with pytest.raises(RuntimeError, match=r"after Request\.finish"):
        request.write(b"late")


def test_a_write_then_finish_in_one_callback_is_one_response_with_a_length() -> None:
    held = Held()
    clock = Clock()
    channel, transport = connect(Site(held), clock)
    channel.data_received(request_bytes())
    held.pending[0].write(b"all of it")
    held.pending[0].finish()
    assert len(transport.written) == 1
    assert transport.value().endswith(b"Content-Length: 9\r\n\r\nall of it")
    clock.advance(0)  # the flush scheduled by the first write finds nothing held
    assert len(transport.written) == 1


def test_notify_finish_fires_after_the_last_byte() -> None:
    held = Held(immediate={b"/now": b"now"})
    clock = Clock()
    channel, transport = connect(Site(held), clock)
    channel.data_received(request_bytes())
    request = held.pending[0]
    seen: list[bytes] = []
    request.notifyFinish().addCallback(lambda _: seen.append(transport.value()))
    request.write(b"x")
    clock.advance(0)
    request.finish()
    assert seen and seen[0].endswith(b"0\r\n\r\n")
    # Asked after the fact, it has already fired (Twisted's would never fire).
    late: list[object] = []
    request.notifyFinish().addCallback(late.append)
    assert late == [None]


def test_custom_status_message_and_headers() -> None:
    class Custom(Resource):
        isLeaf = True

        def render_GET(self, request: Request) -> bytes:
            request.setResponseCode(202, b"Taken")
            request.setHeader("X-Thing", "1")
            request.responseHeaders.addRawHeader(b"x-multi", b"a")
            request.responseHeaders.addRawHeader(b"x-multi", b"b")
            request.addCookie(b"k", b"v", path=b"/", httpOnly=True, sameSite="lax")
            return b""

    channel, transport = connect(Site(Custom()))
    channel.data_received(request_bytes())
    value = transport.value()
    assert value.startswith(b"HTTP/1.1 202 Taken\r\n")
    assert b"X-Thing: 1\r\n" in value
    assert b"X-Multi: a\r\nX-Multi: b\r\n" in value
    assert b"Set-Cookie: k=v; Path=/; HttpOnly; SameSite=lax\r\n" in value
    assert b"Content-Length: 0\r\n" in value


def test_twisted_s_queued_and_code_message_attributes() -> None:
    seen: list[tuple[object, object]] = []

    class Phrased(Resource):
        isLeaf = True

        def render_GET(self, request: Request) -> bytes:
            seen.append((request.queued, request.code_message))
            request.setResponseCode(200, "Fine")
            seen.append((request.queued, request.code_message))
            if request.path == b"/assigned":
                request.code_message = b"Assigned"  # a plain attribute in Twisted
            request.queued = 1
            seen.append((request.queued, request.code_message))
            return b""

    channel, transport = connect(Site(Phrased()))
    channel.data_received(request_bytes(target="/set") + request_bytes(target="/assigned"))
    lines = [line for line in transport.value().split(b"\r\n") if line.startswith(b"HTTP/1.1")]
    assert lines == [b"HTTP/1.1 200 Fine", b"HTTP/1.1 200 Assigned"]
    assert seen == [
        (0, None),
        (0, b"Fine"),
        (1, b"Fine"),
        (0, None),
        (0, b"Fine"),
        (1, b"Assigned"),
    ]


def test_header_values_with_line_breaks_are_refused() -> None:
    from treadle.web.http_headers import Headers

    with pytest.raises(ValueError):
        Headers().setRawHeaders(b"x", [b"a\r\nInjected: 1"])


def test_string_transport_records_peer() -> None:
    t = StringTransport(peer=("1.2.3.4", 5))
    assert t.get_extra_info("peername") == ("1.2.3.4", 5)


def test_head_deadline_counts_from_the_first_byte_and_trickling_does_not_extend_it() -> None:
    clock = Clock()
    site = Site(Hello())
    channel, transport = connect(site, clock)
    channel.data_received(b"GET / HTTP/1.1\r\n")
    for _ in range(int(site.headTimeout) - 1):
        clock.advance(1)
        channel.data_received(b"X: y\r\n")  # a byte of progress every second
    assert not transport.closed
    clock.advance(1.01)
    assert transport.value().startswith(b"HTTP/1.1 408 ")
    assert transport.closed


def test_a_silent_new_connection_gets_the_head_timeout() -> None:
    clock = Clock()
    site = Site(Hello(), timeout=300)
    _channel, transport = connect(site, clock)
    clock.advance(site.headTimeout - 0.1)
    assert not transport.closed
    clock.advance(0.2)
    assert transport.closed and transport.value() == b""


def test_a_stalled_body_times_out_but_a_slow_one_does_not() -> None:
    clock = Clock()
    site = Site(Hello())
    site.minBodyRate = 0  # the stall timeout alone (the rate is tested below)
    channel, transport = connect(site, clock)
    channel.data_received(request_bytes("POST", headers=[("Host", "x"), ("Content-Length", "100")]))
    for _ in range(5):
        clock.advance(site.bodyTimeout - 1)
        channel.data_received(b"x")
    assert not transport.closed
    clock.advance(site.bodyTimeout + 0.1)
    assert transport.value().startswith(b"HTTP/1.1 408 ")


def test_a_body_below_the_minimum_rate_gets_408_after_the_grace() -> None:
    clock = Clock()
    site = Site(Hello())
    channel, transport = connect(site, clock)
    channel.data_received(
        request_bytes("POST", headers=[("Host", "x"), ("Content-Length", "9999")])
    )
    # A byte a second: the body timeout (silence) never fires, the rate does, once the
    # grace is over; the connection's timer notices within one timer period.
    elapsed = 0
    while not transport.value() and elapsed < site.minBodyRateGrace + channel._timer_period():
        assert not transport.closed
        clock.advance(1)
        elapsed += 1
        channel.data_received(b"x")
    assert site.minBodyRateGrace <= elapsed
    assert transport.value().startswith(b"HTTP/1.1 408 ")
    assert transport.closed


def test_a_body_above_the_minimum_rate_is_served() -> None:
    clock = Clock()
    site = Site(Hello())
    site.minBodyRate = 50
    size = 3000
    channel, transport = connect(site, clock)
    channel.data_received(
        request_bytes("POST", headers=[("Host", "x"), ("Content-Length", str(size))])
    )
    for _ in range(size // 100):
        clock.advance(1)
        channel.data_received(b"y" * 100)  # 100 B/s, twice the rate, for 30 s
    assert transport.value().startswith(b"HTTP/1.1 200 ")
    assert transport.value().endswith(b"got " + b"y" * size)


def test_the_body_rate_is_a_setting_and_zero_turns_it_off() -> None:
    clock = Clock()
    site = Site(Hello())
    site.minBodyRate = 0
    channel, transport = connect(site, clock)
    channel.data_received(request_bytes("POST", headers=[("Host", "x"), ("Content-Length", "20")]))
    for _ in range(19):
        clock.advance(1)
        channel.data_received(b"z")
    assert not transport.closed
    channel.data_received(b"z")
    assert transport.value().startswith(b"HTTP/1.1 200 ")


def test_a_connection_accepted_during_shutdown_is_answered_once_then_closed() -> None:
    site = Site(Hello())
    site.shutting_down = True  # what shutdown() sets before closing the connections
    channel, transport = connect(site, Clock())
    channel.data_received(request_bytes(target="/a") + request_bytes(target="/b"))
    value = transport.value()
    assert value.startswith(b"HTTP/1.1 200 ") and b"Connection: close\r\n" in value
    assert value.endswith(b"hello /a")  # the pipelined second request is not answered
    assert transport.closed


def test_connections_over_the_limit_get_503() -> None:
    site = Site(Hello())
    site.maxConnections = 2
    clock = Clock()
    first, _ = connect(site, clock)
    _second, _ = connect(site, clock)
    _third, transport = connect(site, clock)
    assert transport.value().startswith(b"HTTP/1.1 503 ")
    assert transport.closed
    first.connection_lost(None)
    fourth, transport = connect(site, clock)
    fourth.data_received(request_bytes())
    assert transport.value().startswith(b"HTTP/1.1 200 ")


def test_twisted_status_names_and_cached() -> None:
    from treadle.web import http

    assert (http.PAYMENT_REQUIRED, http.NOT_ALLOWED, http.GATEWAY_TIMEOUT) == (402, 405, 504)
    assert http.CACHED == b""


def test_set_host_rewrites_what_the_request_reports() -> None:
    held = Held(immediate={b"/now": b"now"})
    channel, _ = connect(Site(held))
    channel.data_received(request_bytes())
    request = held.pending[0]
    request.setHost(b"example.org", 443, ssl=True)
    assert request.isSecure()
    assert request.getRequestHostname() == b"example.org"
    assert request.getHost().port == 443
    assert request.prePathURL() == b"https://example.org/"


def test_a_connection_holds_a_parser_only_while_a_request_is_arriving() -> None:
    # Waiting connections (for their response, or idle between requests) lend their parser
    # back: with 10,000 of them that is 10 MB less. A half-received request keeps its own,
    # and a parser given back serves another connection as a fresh one would.
    held = Held(immediate={b"/now": b"now"})
    site = Site(held)
    first, first_transport = connect(site)
    second, second_transport = connect(site)
    first.data_received(request_bytes(target="/slow"))
    assert len(held.pending) == 1 and first._parser is None
    data = request_bytes(target="/now")
    second.data_received(data[:10])
    assert second._parser is not None
    first.data_received(data[:7])
    assert first._parser is not None and first._parser is not second._parser
    second.data_received(data[10:])
    assert second._parser is None
    assert parse_responses(second_transport.value())[0][2] == b"now"
    first.data_received(data[7:] + data)
    held.release(b"slow")
    assert [r[2] for r in parse_responses(first_transport.value())] == [b"slow", b"now", b"now"]


def test_a_connection_closed_mid_request_drops_its_parser() -> None:
    channel, _ = connect(Site(Hello()))
    channel.data_received(b"GET / HTTP/1.1\r\nHo")
    parser = channel._parser
    assert parser is not None
    channel.connection_lost(None)
    assert channel._parser is None and parser.llhttp is None


def test_response_headers_and_cookies_exist_when_first_used() -> None:
    held = Held()
    channel, transport = connect(Site(held))
    channel.data_received(request_bytes(target="/a") + request_bytes(target="/b"))
    request = held.pending[0]
    request.responseHeaders.addRawHeader(b"x-one", b"1")
    request.cookies.append(b"a=1")
    request.finish()
    plain = held.pending[1]
    assert plain._response_headers is None and plain._cookies is None
    plain.finish()
    first, second = parse_responses(transport.value())
    assert first[1][b"x-one"] == b"1" and first[1][b"set-cookie"] == b"a=1"
    assert b"x-one" not in second[1] and b"set-cookie" not in second[1]
    assert plain.responseHeaders.getRawHeaders(b"x-one") is None and plain.cookies == []


# -- request.transport: Twisted's transport of the connection ------------------------------------


class Dropper(Resource):
    """Uses ``request.transport`` as Twisted programs do: to inspect and to drop connections."""

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[object] = []

    def render_GET(self, request: Request) -> object:
        transport = request.transport
        assert transport is request.channel.transport
        self.seen.append((transport.getPeer(), transport.getHost()))
        if request.path == b"/lose":
            request.write(b"partial")
            transport.loseConnection()
            return NOT_DONE_YET
        if request.path == b"/abort":
            transport.abortConnection()
            return NOT_DONE_YET
        if request.path == b"/raw":
            transport.write(b"HTTP/1.1 299 Raw\r\nContent-Length: 3\r\n\r\nraw")
            transport.loseConnection()
            return NOT_DONE_YET
        return b"ok"


def test_request_transport_loses_the_connection_after_what_was_written(
    serve: Callable[..., str],
) -> None:
    resource = Dropper()
    url = serve(resource)
    answer = raw_request(
        url, b"GET /lose HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n"
    )
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    assert b"partial" in body
    assert answer.count(b"HTTP/1.1") == 1  # the pipelined request was dropped with the connection
    peer, host = resource.seen[0]
    assert isinstance(peer, IPv4Address) and peer.host == "127.0.0.1"
    assert (host.host, host.port) == host_port(url)
    assert raw_request(url, b"GET /raw HTTP/1.1\r\nHost: x\r\n\r\n") == (
        b"HTTP/1.1 299 Raw\r\nContent-Length: 3\r\n\r\nraw"
    )


def test_request_transport_aborts_and_the_request_learns_why(
    serve: Callable[..., str],
) -> None:
    reasons: list[Failure] = []

    class Watching(Dropper):
        def render_GET(self, request: Request) -> object:
            request.notifyFinish().addErrback(reasons.append)
            return super().render_GET(request)

    url = serve(Watching())
    # A reset, as Twisted's abortConnection gives, not an orderly close.
    with pytest.raises(ConnectionResetError):
        raw_request(url, b"GET /abort HTTP/1.1\r\nHost: x\r\n\r\n")
    wait_for(lambda: reasons, "the request to hear of the abort")
    assert reasons[0].check(ConnectionAborted)


def test_a_site_overriding_build_protocol_is_given_the_peer_address(
    serve: Callable[..., str],
) -> None:
    addresses: list[object] = []

    class Counting(Site):
        def buildProtocol(self, addr: object) -> Any:
            addresses.append(addr)
            return super().buildProtocol(addr)

    url = serve(Counting(Hello()))
    answer = raw_request(url, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 200") and answer.endswith(b"hello /")
    assert len(addresses) == 1 and isinstance(addresses[0], IPv4Address)


# -- Twisted's low-level use of twisted.web.http ------------------------------------------------

from treadle.internet import testing as internet_testing  # noqa: E402
from treadle.web import http as http_module  # noqa: E402


class _EchoRequest(http_module.Request):
    def process(self) -> None:
        self.setHeader(b"content-type", b"text/plain")
        self.write(b"%s %s %r" % (self.method, self.path, sorted(self.args.items())))
        self.finish()


class _EchoChannel(http_module.HTTPChannel):
    requestFactory = _EchoRequest


class _ShoutRequest(http_module.Request):
    def process(self) -> None:
        self.setResponseCode(202)
        self.write(self.path.upper())
        self.finish()


class _ShoutFactory(http_module.HTTPFactory):
    def buildProtocol(self, addr: object) -> Any:
        channel = http_module.HTTPFactory.buildProtocol(self, addr)
        channel.requestFactory = _ShoutRequest
        return channel


class _TwistedStyleChannel(http_module.HTTPChannel):
    """A channel class written for Twisted: made without arguments."""

    requestFactory = _EchoRequest

    def __init__(self) -> None:
        http_module.HTTPChannel.__init__(self)
        self.made_by_hand = True


def test_channel_class_request_factory_answers_over_a_socket(serve: Callable[..., str]) -> None:
    factory = http_module.HTTPFactory()
    factory.protocol = _EchoChannel
    url = serve(factory)
    reply = raw_request(
        url,
        b"POST /f?a=1&a=2&b=3 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 7\r\n\r\na=9&c=4",
    )
    assert reply.startswith(b"HTTP/1.1 200 ")
    # Twisted's merge: the body's "a" replaces the query's.
    assert reply.endswith(b"POST /f [(b'a', [b'9']), (b'b', [b'3']), (b'c', [b'4'])]")


def test_build_protocol_setting_request_factory_is_honoured(serve: Callable[..., str]) -> None:
    url = serve(_ShoutFactory())
    reply = raw_request(url, b"GET /quiet HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 202 ") and reply.endswith(b"/QUIET")


def test_twisted_style_channel_class_without_factory_argument(serve: Callable[..., str]) -> None:
    factory = http_module.HTTPFactory()
    factory.protocol = _TwistedStyleChannel
    channel = factory.buildProtocol(None)
    assert channel.factory is factory and channel.made_by_hand
    reply = raw_request(serve(factory), b"GET /x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert reply.endswith(b"GET /x []")


def test_site_imposes_its_request_factory_on_channel_classes() -> None:
    site = Site(Resource())
    site.protocol = _EchoChannel
    assert site.buildProtocol(None).requestFactory is Request


def test_hand_made_channel_with_a_twisted_transport() -> None:
    # Twisted's testing pattern: a channel with no factory, a StringTransport, bytes in.
    channel = http_module.HTTPChannel()
    channel.requestFactory = _EchoRequest
    transport = internet_testing.StringTransport()
    channel.makeConnection(transport)
    channel.dataReceived(b"GET /a?x=1 HTTP/1.1\r\nHost: h\r\n\r\n")
    head, _, body = transport.value().partition(b"\r\n\r\n")
    # No loop runs here: the first write goes out at once, chunked, as in Twisted.
    assert head.startswith(b"HTTP/1.1 200 OK")
    assert body == b"17\r\nGET /a [(b'x', [b'1'])]\r\n0\r\n\r\n"
    assert channel.transport is transport
    channel.connectionLost(Failure(ConnectionAborted()))
    assert channel.asyncio_transport is None


def test_hand_made_channel_given_a_site() -> None:
    root = Resource()
    root.putChild(b"hi", _Text(b"hello"))
    channel = http_module.HTTPChannel()
    channel.site = Site(root)
    assert channel.factory is channel.site
    transport = internet_testing.StringTransport()
    channel.makeConnection(transport)
    channel.dataReceived(b"GET /hi HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
    assert transport.value().endswith(b"\r\n\r\nhello")
    assert transport.disconnecting


class _Text(Resource):
    isLeaf = True

    def __init__(self, body: bytes) -> None:
        super().__init__()
        self.body = body

    def render_GET(self, request: Request) -> bytes:
        return self.body


def test_body_arguments_replace_query_arguments_for_post_only() -> None:
    def args_of(method: bytes) -> dict[bytes, list[bytes]]:
        request = http_module.Request(_channel_stub())
        request.method = method
        request.uri = b"/f?a=1&a=2&b=3"
        request.requestHeaders.setRawHeaders(
            b"content-type", [b"application/x-www-form-urlencoded"]
        )
        request.gotLength(7)
        request.content.write(b"a=9&c=4")
        request.content.seek(0)
        return request.args

    assert args_of(b"POST") == {b"a": [b"9"], b"b": [b"3"], b"c": [b"4"]}
    assert args_of(b"PUT") == {b"a": [b"1", b"2"], b"b": [b"3"]}


def test_query_fields_split_on_ampersands_only_and_bare_names_are_kept() -> None:
    # README, Differences: ";" is no separator (cache poisoning, CVE-2021-23336), and a name
    # without "=" gets the empty value, as parse_qs(keep_blank_values=True) gives.
    request = http_module.Request(_channel_stub())
    request.method = b"GET"
    request.uri = b"/f?x=1;y=2&debug&a=&a=%41+b"
    assert request.args == {b"x": [b"1;y=2"], b"debug": [b""], b"a": [b"", b"A b"]}


def _channel_stub() -> Any:
    site = Site(Resource())
    channel, _transport = connect(site)
    return channel


def test_got_length_spools_large_or_unknown_bodies() -> None:
    request = http_module.Request(_channel_stub())
    request.gotLength(10)
    assert type(request.content).__name__ == "BytesIO"
    for length in (None, http_module.SPOOL_SIZE):
        request.gotLength(length)
        assert type(request.content).__name__ != "BytesIO"
        request.content.close()


def test_connection_lost_takes_a_failure() -> None:
    request = http_module.Request(_channel_stub())
    seen: list[Any] = []
    request.notifyFinish().addErrback(seen.append)
    request.connectionLost(Failure(ConnectionAborted()))
    assert seen[0].check(ConnectionAborted)


def test_set_last_modified_on_a_wire_request() -> None:
    request = http_module.Request(_channel_stub())
    request.requestHeaders.setRawHeaders(b"if-modified-since", [b"Sun, 06 Nov 1994 08:49:37 GMT"])
    assert request.setLastModified(784111777.2) is None  # rounded up: newer than the copy
    assert request.lastModified == 784111778
    request = http_module.Request(_channel_stub())
    request.requestHeaders.setRawHeaders(b"if-modified-since", [b"Sun, 06 Nov 1994 08:49:37 GMT"])
    assert request.setLastModified(784111777) is http_module.CACHED
    assert request.code == 304


def test_started_writing_set_by_a_resource_sends_its_own_head() -> None:
    # Twisted writes the body as it is when a resource claims to have sent the head.
    class Raw(Resource):
        isLeaf = True

        def render_GET(self, request: Request) -> object:
            request.startedWriting = True
            request.write(b"HTTP/1.0 200 OK\r\n\r\nown")
            request.finish()
            return NOT_DONE_YET

    channel, transport = connect(Site(Raw()))
    channel.data_received(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
    assert transport.value() == b"HTTP/1.0 200 OK\r\n\r\nown"
    assert transport.closed  # the client cannot find the end otherwise


def test_chunked_turned_off_after_the_head() -> None:
    class Streamer(Resource):
        isLeaf = True

        def render_GET(self, request: Request) -> object:
            request.write(b"a")
            assert request.chunked is False  # held: the head is not out yet
            request.flush_held()
            assert request.chunked is True
            request.chunked = False
            request.write(b"raw")
            request.finish()
            return NOT_DONE_YET

    channel, transport = connect(Site(Streamer()))
    channel.data_received(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
    value = transport.value()
    assert b"Transfer-Encoding: chunked" in value
    assert value.endswith(b"\r\n\r\n1\r\na\r\nraw")
    assert transport.closed


def test_helper_functions_agree_with_twisted() -> None:
    h = http_module
    assert h.stringToDatetime(b"Sun, 06 Nov 1994 08:49:37 GMT") == 784111777
    assert h.stringToDatetime(b"Sunday, 06-Nov-94 08:49:37 GMT") == 784111777
    assert h.stringToDatetime(b"Sun Nov  6 08:49:37 1994") == 784111777
    with pytest.raises(ValueError):
        h.stringToDatetime(b"garbage")
    assert h.timegm(1994, 11, 6, 8, 49, 37) == 784111777
    assert h.toChunk(b"abc") == (b"3", b"\r\n", b"abc", b"\r\n")
    assert h.fromChunk(b"3\r\nabc\r\nrest") == (b"abc", b"rest")
    with pytest.raises(ValueError):
        h.fromChunk(b"x\r\nabc")
    assert h.urlparse(b"http://a/b;p?c#d").params == b"p"
    with pytest.raises(TypeError):
        h.urlparse("http://a/")  # type: ignore[arg-type]
    assert h.parse_qs(b"a=1&b&c=", 1) == {b"a": [b"1"], b"c": [b""]}
    assert h.parse_qs(b"a=1;a=%41") == {b"a": [b"1", b"A"]}
    assert h.parseContentRange("bytes 0-4/*") == (0, 4, None)


# -- Twisted's Request methods for code that drives a request by hand ------------------------


@pytest.mark.parametrize(
    ("headers", "cookies"),
    [
        ([b'test="lemur"; test2="panda"'], {b"test": b'"lemur"', b"test2": b'"panda"'}),
        ([b'test="lemur"', b'test2="panda"'], {b"test": b'"lemur"', b"test2": b'"panda"'}),
        ([], {}),
        ([b"foo; bar; baz;"], {}),
        ([b"foo="], {b"foo": b""}),
        ([b"foo=bar "], {b"foo": b"bar "}),  # the value is kept as sent
        ([b" foo=bar"], {b"foo": b"bar"}),
        ([b'12345; test="lemur"; 12345'], {b"test": b'"lemur"'}),
    ],
)
def test_parse_cookies_as_twisted(headers: list[bytes], cookies: dict[bytes, bytes]) -> None:
    request = http_module.Request(_channel_stub())
    request.requestHeaders.setRawHeaders(b"cookie", headers)
    request.parseCookies()
    assert request.received_cookies == cookies


def test_hand_fed_body_is_read_from_its_start() -> None:
    seen: list[bytes] = []

    class Reading(http_module.Request):
        def process(self) -> None:
            seen.append(self.content.read())
            self.finish()

    request = Reading(_channel_stub())
    request.gotLength(5)
    request.handleContentChunk(b"he")
    request.handleContentChunk(b"llo")
    request.requestReceived(b"POST", b"/", b"HTTP/1.1")
    assert seen == [b"hello"]


def test_same_site_is_written_in_lowercase_and_checked() -> None:
    request = http_module.Request(_channel_stub())
    request.addCookie(b"a", b"1", sameSite="Lax")
    request.addCookie(b"b", b"2", sameSite="None", secure=True)
    assert request.cookies == [b"a=1; SameSite=lax", b"b=2; Secure; SameSite=none"]
    with pytest.raises(ValueError, match="anything-else"):
        request.addCookie(b"c", b"3", sameSite="anything-else")
    with pytest.raises(ValueError, match="secure"):
        request.addCookie(b"c", b"3", sameSite="none")


def test_a_lost_request_lets_go_of_its_channel_and_body() -> None:
    request = http_module.Request(_channel_stub())
    request.gotLength(10)
    content = request.content
    request.handleContentChunk(b"hello")
    request.connectionLost(Failure(ConnectionAborted()))
    assert content.closed
    assert request.channel is None
    assert request.transport is None


def test_a_transport_assigned_to_a_request_is_its_transport() -> None:
    request = http_module.Request(_channel_stub())
    replacement = StringTransport()
    request.transport = replacement
    assert request.transport is replacement


def test_set_host_on_a_secure_connection_omits_the_default_port() -> None:
    from treadle.web.test.requesthelper import DummyChannel

    channel = DummyChannel()
    channel.transport = DummyChannel.SSL()
    request = http_module.Request(channel)
    request.setHost(b"example.com", 443)
    assert request.requestHeaders.getRawHeaders(b"host") == [b"example.com"]
    request.setHost(b"example.com", 80)
    assert request.requestHeaders.getRawHeaders(b"host") == [b"example.com:80"]


# -- the access log: asked only when it may write ------------------------------------------------
# (A factory with the stock log, no log file and the "treadle.access" logger off at INFO is not
# called for each request; every other case must still be.)


def _get_twice(url: str) -> None:
    for _ in range(2):
        assert raw_request(
            url, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        ).startswith(b"HTTP/1.1 200 ")


def test_the_access_logger_turned_on_while_serving_logs_the_next_request(
    serve: Callable[..., str], caplog: pytest.LogCaptureFixture
) -> None:
    logger = logging.getLogger("treadle.access")
    url = serve(Site(Hello()))
    level = logger.level
    try:
        logger.setLevel(logging.WARNING)
        _get_twice(url)  # off: learnt from the logger, then known
        assert not [r for r in caplog.records if r.name == "treadle.access"]
        caplog.set_level(logging.INFO, logger="treadle.access")
        _get_twice(url)
    finally:
        logger.setLevel(level)
    lines = [r.getMessage() for r in caplog.records if r.name == "treadle.access"]
    assert len(lines) == 2 and all('"GET / HTTP/1.1" 200' in line for line in lines)


def test_a_log_of_the_sites_own_is_called_with_the_access_log_off(
    serve: Callable[..., str],
) -> None:
    logged: list[bytes] = []

    class OwnLog(Site):
        def log(self, request: Request) -> None:
            logged.append(b"class " + request.uri)

    _get_twice(serve(OwnLog(Hello())))
    site = Site(Hello())
    site.log = lambda request: logged.append(b"instance " + request.uri)  # type: ignore[method-assign]
    _get_twice(serve(site))
    assert logged == [b"class /", b"class /", b"instance /", b"instance /"]


# -- small responses written when the loop turns ----------------------------------------------


class Sized(Resource):
    """``/big`` answers with a body larger than a held-back response may be."""

    isLeaf = True

    def render_GET(self, request: Request) -> bytes:
        if request.path == b"/big":
            return b"x" * (CORK_MAX + 1)
        return b"small " + request.path


async def next_turn() -> None:
    """Let the loop run what was scheduled "soon" (the held responses' write)."""
    await asyncio.sleep(0)


def test_a_small_response_is_written_when_the_loop_turns() -> None:
    async def scenario() -> None:
        channel, transport = on_loop(Hello())
        channel.data_received(request_bytes(target="/a"))
        assert transport.written == []  # finished, held for the turn
        await next_turn()
        assert len(transport.written) == 1
        assert [r[2] for r in parse_responses(transport.value())] == [b"hello /a"]

    run_scenario(scenario)


def test_the_responses_of_several_connections_leave_in_the_same_turn() -> None:
    async def scenario() -> None:
        connections = [on_loop(Hello()) for _ in range(3)]
        for i, (channel, _) in enumerate(connections):
            channel.data_received(request_bytes(target=f"/{i}"))
        assert all(transport.written == [] for _, transport in connections)
        await next_turn()
        for i, (_, transport) in enumerate(connections):
            assert [r[2] for r in parse_responses(transport.value())] == [b"hello /%d" % i]

    run_scenario(scenario)


def test_a_response_finished_later_by_a_task_is_held_for_the_turn_too() -> None:
    held = Held()

    async def scenario() -> None:
        channel, transport = on_loop(held)
        channel.data_received(request_bytes(target="/later"))
        await next_turn()
        assert transport.written == []  # pending
        held.release(b"done")
        assert transport.written == []
        await next_turn()
        assert [r[2] for r in parse_responses(transport.value())] == [b"done"]

    run_scenario(scenario)


def test_a_slow_turn_sends_what_waited_max_wait_before_the_turn_ends() -> None:
    async def scenario() -> None:
        site = Site(Hello())
        now = still_clock(site)
        first, second, third = on_loop(site), on_loop(site), on_loop(site)
        first[0].data_received(request_bytes(target="/1"))
        now[0] += MAX_WAIT / 2
        second[0].data_received(request_bytes(target="/2"))
        assert first[1].written == [] and second[1].written == []
        now[0] += MAX_WAIT  # a resource computed for a while meanwhile
        third[0].data_received(request_bytes(target="/3"))
        for i, (_, transport) in enumerate([first, second, third], 1):
            assert [r[2] for r in parse_responses(transport.value())] == [b"hello /%d" % i]

    run_scenario(scenario)


def test_written_then_finished_in_one_slow_callback_are_still_whole_responses() -> None:
    held = Held()

    async def scenario() -> None:
        site = Site(held)
        now = still_clock(site)
        connections = [on_loop(site) for _ in range(3)]
        for channel, _ in connections:
            channel.data_received(request_bytes(target="/wait"))
        await next_turn()
        # One callback answering them all, slowly, as a broadcast does: each write is held
        # until the callback is over, however long it takes.
        for request in held.pending:
            request.write(b"body")
            now[0] += 2 * MAX_WAIT
        for request in held.pending:
            request.finish()
        await next_turn()
        for _, transport in connections:
            [(code, fields, body)] = parse_responses(transport.value())
            assert (code, body, fields.get(b"content-length")) == (200, b"body", b"4")

    run_scenario(scenario)


def test_what_a_render_schedules_for_the_next_turn_runs_after_its_response_left() -> None:
    seen: list[bytes] = []

    class Answers(Resource):
        isLeaf = True

        def render_GET(self, request: Request) -> bytes:
            # Work for after the response (e.g. a slow one): it must not hold the response.
            asyncio.get_running_loop().call_soon(lambda: seen.append(transport.value()))
            return b"answered"

    async def scenario() -> None:
        nonlocal transport
        channel, transport = on_loop(Answers())
        channel.data_received(request_bytes(target="/a"))
        await next_turn()
        assert len(seen) == 1 and seen[0].endswith(b"\r\n\r\nanswered")

    transport = StringTransport()
    run_scenario(scenario)


def test_a_channel_on_a_test_clock_writes_at_once() -> None:
    channel, transport = connect(Site(Hello()))
    channel.data_received(request_bytes(target="/a"))
    assert [r[2] for r in parse_responses(transport.value())] == [b"hello /a"]


def test_a_closing_response_is_written_before_the_connection_closes() -> None:
    async def scenario() -> None:
        channel, transport = on_loop(Hello())
        channel.data_received(
            request_bytes(target="/a", headers=[("Host", "x"), ("Connection", "close")])
        )
        # Not held: the close would otherwise come before it.
        assert [r[2] for r in parse_responses(transport.value())] == [b"hello /a"]
        assert transport.closed

    run_scenario(scenario)


def test_a_held_response_of_a_connection_lost_meanwhile_is_dropped() -> None:
    async def scenario() -> None:
        channel, transport = on_loop(Hello())
        channel.data_received(request_bytes(target="/a"))
        channel.connection_lost(None)
        await next_turn()
        assert transport.written == []

    run_scenario(scenario)


def test_small_pipelined_responses_go_out_in_one_write() -> None:
    async def scenario() -> None:
        channel, transport = on_loop(Hello())
        channel.data_received(b"".join(request_bytes(target=f"/{i}") for i in range(16)))
        await next_turn()
        assert len(transport.written) == 1  # one send for the batch, not sixteen
        assert [r[2] for r in parse_responses(transport.value())] == [
            b"hello /%d" % i for i in range(16)
        ]

    run_scenario(scenario)


def test_a_large_response_takes_the_held_ones_with_it_in_order() -> None:
    async def scenario() -> None:
        channel, transport = on_loop(Sized())
        channel.data_received(
            request_bytes(target="/a") + request_bytes(target="/big") + request_bytes(target="/c")
        )
        # /a waited for /big and left with it at once; /c, held, leaves when the loop turns.
        assert len(transport.written) == 1
        assert transport.written[0].endswith(b"x" * (CORK_MAX + 1))
        await next_turn()
        assert len(transport.written) == 2
        bodies = [r[2] for r in parse_responses(transport.value())]
        assert bodies == [b"small /a", b"x" * (CORK_MAX + 1), b"small /c"]

    run_scenario(scenario)


def test_held_responses_go_out_when_the_next_request_stays_pending() -> None:
    held = Held(immediate={b"/a": b"a", b"/c": b"c"})

    async def scenario() -> None:
        channel, transport = on_loop(held)
        channel.data_received(
            request_bytes(target="/a") + request_bytes(target="/slow") + request_bytes(target="/c")
        )
        await next_turn()
        assert [r[2] for r in parse_responses(transport.value())] == [b"a"]
        held.pending[0].write(b"slow")
        held.pending[0].finish()
        await next_turn()
        assert [r[2] for r in parse_responses(transport.value())] == [b"a", b"slow", b"c"]

    run_scenario(scenario)


@pytest.mark.parametrize("path", [b"/raw", b"/lose"])
def test_writing_through_the_request_transport_comes_after_held_responses(path: bytes) -> None:
    async def scenario() -> None:
        channel, transport = on_loop(Dropper())
        channel.data_received(request_bytes(target="/first") + request_bytes(target=path.decode()))
        data = transport.value()
        assert data.startswith(b"HTTP/1.1 200 OK\r\n")
        _, _, rest = data.partition(b"\r\n\r\n")
        assert rest.startswith(b"ok")  # the first response, whole, before anything of the second
        second = rest[2:]
        if path == b"/raw":
            assert second == b"HTTP/1.1 299 Raw\r\nContent-Length: 3\r\n\r\nraw"
        else:
            assert second.startswith(b"HTTP/1.1 200 OK\r\n") and second.endswith(b"\r\npartial\r\n")
        assert transport.closed

    run_scenario(scenario)


def test_an_abort_in_a_pipeline_still_sends_the_responses_finished_before_it() -> None:
    async def scenario() -> None:
        channel, transport = on_loop(Dropper())
        channel.data_received(request_bytes(target="/first") + request_bytes(target="/abort"))
        assert [r[2] for r in parse_responses(transport.value())] == [b"ok"]
        assert transport.aborted

    run_scenario(scenario)
