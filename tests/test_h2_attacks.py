"""HTTP/2 limits and attacks, each at its boundary where it has one (see treadle.web._h2_limits).

The client is h2 over an in-memory wire (:class:`tests.test_h2.H2Client`); frames h2 would
refuse to send are built with hyperframe and fed raw.
"""

from __future__ import annotations

import h2.events
import h2.settings
from hyperframe.frame import (
    ContinuationFrame,
    DataFrame,
    HeadersFrame,
    PingFrame,
    PriorityFrame,
    SettingsFrame,
    WindowUpdateFrame,
)

from treadle.internet.error import ConnectionAborted
from treadle.web._h2_fields import request_head
from treadle.web._h2_limits import CONTROL_BURST, RESET_BURST, RESET_RATE, TokenBucket
from treadle.web.resource import Resource
from treadle.web.server import Request, Site

from .test_h2 import Echo, H2Client, Recorder, Response, client_for

SETTINGS = h2.settings.SettingCodes
PROTOCOL_ERROR = 0x1
CANCEL = 0x8
ENHANCE_YOUR_CALM = 0xB
FIELDS = [(b":method", b"GET"), (b":scheme", b"http"), (b":authority", b"example.com")]


def raw_headers(
    client: H2Client, sid: int, path: bytes = b"/", *, end_headers: bool = True
) -> bytes:
    """A HEADERS frame h2 would not send (past the stream limit, say), encoded in step with
    the client's own HPACK encoder."""
    frame = HeadersFrame(sid)
    frame.data = client.conn.encoder.encode([*FIELDS, (b":path", path)])
    frame.flags.add("END_STREAM")
    if end_headers:
        frame.flags.add("END_HEADERS")
    return frame.serialize()


def assert_calmed(client: H2Client, code: int = ENHANCE_YOUR_CALM) -> None:
    assert client.goaway is not None, "no GOAWAY"
    assert client.goaway.error_code == code
    assert client.wire.closed


def test_settings_announce_the_limits() -> None:
    site = Site(Echo())
    site.maxHeadSize = 12345
    client = H2Client(site)
    ours = client.conn.remote_settings
    assert ours.max_concurrent_streams == 100
    assert ours.max_header_list_size == 12345
    assert ours.header_table_size == 4096
    assert ours.initial_window_size == 256 * 1024


# -- concurrent streams -------------------------------------------------------------------------


def test_a_hundred_streams_at_once_and_not_one_more() -> None:
    held = Recorder()
    client = client_for(held)
    for _ in range(100):
        client.request(b"/", pump=False)
    client.pump()
    assert len(held.requests) == 100
    assert not client.wire.closed
    client.send_raw(raw_headers(client, 201))
    assert len(held.requests) == 100
    assert_calmed(client, PROTOCOL_ERROR)


def test_finished_streams_free_their_place() -> None:
    held = Recorder()
    client = client_for(held)
    for _ in range(100):
        client.request(b"/", pump=False)
    client.pump()
    held.requests[0].finish()
    client.pump()
    client.request(b"/")
    assert len(held.requests) == 101
    assert not client.wire.closed


# -- header size ---------------------------------------------------------------------------------


def test_the_header_list_size_is_enforced_at_its_boundary() -> None:
    site = Site(Echo())
    site.maxHeadSize = 2000
    # RFC 7541 §4.1 counts each field as name + value + 32.
    pseudo = sum(len(n) + len(v) + 32 for n, v in [*FIELDS, (b":path", b"/")])
    room = 2000 - pseudo - (len(b"x-big") + 32)
    client = H2Client(site)
    fits = client.get(b"/", headers=[(b"x-big", b"v" * room)])
    assert fits.status == 200
    client.get(b"/", headers=[(b"x-big", b"w" * (room + 1))])
    assert_calmed(client)


def test_too_many_fields_or_a_field_too_long_get_431() -> None:
    site = Site(Echo())
    site.maxHeaders = 10
    site.maxFieldLineSize = 100
    client = H2Client(site)
    ten = [(b"x-%d" % i, b"v") for i in range(10)]
    assert client.get(b"/", headers=ten).status == 200
    assert client.get(b"/", headers=[*ten, (b"x-10", b"v")]).status == 431
    # name + ": " + value
    assert client.get(b"/", headers=[(b"x-long", b"v" * 92)]).status == 200
    assert client.get(b"/", headers=[(b"x-long", b"v" * 93)]).status == 431
    assert not client.wire.closed


def test_a_path_too_long_gets_414() -> None:
    site = Site(Echo())
    site.maxRequestLineSize = 100
    client = H2Client(site)
    # method SP target SP HTTP/1.x, as HTTP/1.1 counts it
    assert client.get(b"/" + b"a" * 86).status == 200
    assert client.get(b"/" + b"a" * 87).status == 414


def test_a_bad_authority_gets_400() -> None:
    client = client_for(Echo())
    sid = client.conn.get_next_available_stream_id()
    client.responses[sid] = Response()
    client.conn.send_headers(
        sid,
        [(b":method", b"GET"), (b":scheme", b"http"), (b":authority", b"a b"), (b":path", b"/")],
        end_stream=True,
    )
    client.pump()
    assert client.responses[sid].status == 400


# -- HPACK ------------------------------------------------------------------------------------


def test_our_encoder_table_stays_small_whatever_the_client_offers() -> None:
    class Many(Resource):
        isLeaf = True

        def render_GET(self, request: Request) -> bytes:
            for i in range(50):
                request.setHeader(b"x-%d" % i, b"%d" % i * 200)
            return b"ok"

    client = client_for(Many(), settings={SETTINGS.HEADER_TABLE_SIZE: 1 << 20})
    response = client.get(b"/")
    assert response.status == 200
    assert response.header(b"x-49") == b"49" * 200
    encoder = client.server._h2.encoder
    assert encoder.header_table_size == 4096
    entries = encoder.header_table.dynamic_entries
    assert 0 < sum(32 + len(name) + len(value) for name, value in entries) <= 4096
    assert client.get(b"/").header(b"x-7") == b"7" * 200


def test_a_table_larger_than_announced_ends_the_connection() -> None:
    client = client_for(Echo())
    client.conn.encoder.header_table_size = 65536  # the next block says so
    client.get(b"/")
    # RFC 9113 §4.3 calls it a COMPRESSION_ERROR; h2 reports every HPACK fault as this.
    assert_calmed(client, PROTOCOL_ERROR)


# -- rapid reset (CVE-2023-44487) -----------------------------------------------------------------


def test_streams_reset_within_the_same_read_cost_no_request() -> None:
    held = Recorder()
    client = client_for(held)
    for _ in range(200):
        sid = client.request(b"/", pump=False)
        client.conn.reset_stream(sid, CANCEL)
    client.pump()  # one read holds all 400 frames
    assert held.requests == []
    assert not client.wire.closed
    assert client.server.streams == {}


def test_rapid_reset_ends_the_connection_once_the_bucket_is_empty() -> None:
    held = Recorder()
    client = client_for(held)
    for _ in range(RESET_BURST + 50):
        sid = client.request(b"/")
        client.conn.reset_stream(sid, CANCEL)
        client.pump()
        if client.wire.closed:
            break
    assert_calmed(client)
    assert len(held.requests) == RESET_BURST + 1
    assert client.server.streams == {}


# -- CONTINUATION flood (CVE-2024-27316) ---------------------------------------------------------


def test_a_continuation_flood_ends_the_connection() -> None:
    held = Recorder()
    client = client_for(held)
    client.send_raw(raw_headers(client, 1, end_headers=False)[:-1] + b"\x00")
    for _ in range(70):
        frame = ContinuationFrame(1)
        frame.data = b"\x00" * 16000
        client.send_raw(frame.serialize())
        if client.wire.closed:
            break
    assert held.requests == []
    assert_calmed(client, PROTOCOL_ERROR)


# -- control frame floods ------------------------------------------------------------------------


def test_pings_are_answered_until_they_flood() -> None:
    client = client_for(Echo())
    client.send_raw(b"".join(PingFrame(0, opaque_data=b"%08d" % i).serialize() for i in range(10)))
    acks = [e for e in client.events if isinstance(e, h2.events.PingAckReceived)]
    assert len(acks) == 10
    client.send_raw(PingFrame(0).serialize() * CONTROL_BURST)
    acks = [e for e in client.events if isinstance(e, h2.events.PingAckReceived)]
    assert len(acks) == 10  # what the flood queued is dropped
    assert_calmed(client)


def test_a_settings_flood_ends_the_connection() -> None:
    client = client_for(Echo())
    client.send_raw(SettingsFrame(0).serialize() * (CONTROL_BURST + 1))
    assert_calmed(client)


def test_a_window_update_flood_ends_the_connection() -> None:
    client = client_for(Echo())
    client.send_raw(WindowUpdateFrame(0, window_increment=1).serialize() * (CONTROL_BURST + 1))
    assert_calmed(client)


def test_a_priority_flood_ends_the_connection() -> None:
    client = client_for(Echo())
    client.send_raw(PriorityFrame(1, depends_on=0, stream_weight=1).serialize() * CONTROL_BURST)
    assert_calmed(client)


def test_an_empty_data_flood_ends_the_connection() -> None:
    client = client_for(Echo())
    sid = client.request(b"/", method=b"POST", end=False)
    client.send_raw(DataFrame(sid, data=b"").serialize() * (CONTROL_BURST + 1))
    assert_calmed(client)


def test_window_updates_that_pay_for_a_download_are_no_flood() -> None:
    body = b"d" * (10 * 1024 * 1024)

    class Big(Resource):
        isLeaf = True

        def render_GET(self, request: Request) -> bytes:
            return body

    client = client_for(Big())
    client.ack_every_frame = True
    response = client.get(b"/")
    assert response.ended
    assert len(response.body) == len(body)
    assert client.window_updates > CONTROL_BURST
    assert not client.wire.closed


# -- stalls ------------------------------------------------------------------------------------


def test_a_stream_whose_window_never_opens_is_reset_after_the_timeout() -> None:
    held = Recorder()
    client = client_for(held, settings={SETTINGS.INITIAL_WINDOW_SIZE: 0}, timeout=10, read=False)
    sid = client.request(b"/")
    held.requests[0].write(b"x" * 100)
    client.pump()
    response = client.responses[sid]
    assert response.status == 200 and response.body == b""
    client.clock.advance(9)
    client.pump()
    assert response.reset is None
    client.clock.advance(11)
    client.pump()
    assert response.reset == CANCEL
    (ending,) = held.endings
    assert ending.check(ConnectionAborted)  # type: ignore[attr-defined]
    assert client.server.streams == {}
    assert not client.wire.closed


def test_a_client_that_reads_nothing_is_dropped_after_the_timeout() -> None:
    held = Recorder()
    client = client_for(held, timeout=10)
    client.request(b"/")
    client.server.pause_writing()
    held.requests[0].write(b"queued")
    client.clock.advance(5)
    assert not client.wire.aborted
    client.clock.advance(11)
    assert client.wire.aborted


def test_the_token_bucket_refills_with_time_up_to_its_burst() -> None:
    bucket = TokenBucket(3, 2.0, now=10.0)
    assert [bucket.take(10.0) for _ in range(4)] == [True, True, True, False]
    assert bucket.take(10.5)  # half a second at 2 a second: one token
    assert not bucket.take(10.5)
    assert not bucket.take(9.0)  # a clock stepping back refills nothing
    assert [bucket.take(100.0) for _ in range(4)] == [True, True, True, False]
    bucket.give(10)
    assert bucket.tokens == 3


def test_resets_are_forgiven_with_time() -> None:
    held = Recorder()
    client = client_for(held)
    for _ in range(3):
        for _ in range(RESET_BURST // 2):
            sid = client.request(b"/")
            client.conn.reset_stream(sid, CANCEL)
            client.pump()
        client.clock.advance(RESET_BURST / 2 / RESET_RATE + 1)  # refilled meanwhile
    assert not client.wire.closed
    assert len(held.requests) == 3 * (RESET_BURST // 2)


def test_request_head_reads_fields_and_applies_the_limits() -> None:
    limits = Site(Echo()).limits()
    pseudo = [(b":method", b"POST"), (b":scheme", b"https"), (b":path", b"/p?q")]
    head = [*pseudo, (b":authority", b"h:8"), (b"a", b"1"), (b"a", b"2")]
    assert request_head(head, limits) == (
        b"POST",
        b"/p?q",
        {b"a": [b"1", b"2"], b"host": [b"h:8"]},
        0,
    )
    with_host = [*head, (b"host", b"other")]
    assert request_head(with_host, limits)[2][b"host"] == [b"other"]
    body = [*pseudo, (b"content-length", b"%d" % limits.body)]
    assert request_head(body, limits)[3] == 0
    body = [*pseudo, (b"content-length", b"%d" % (limits.body + 1))]
    assert request_head(body, limits)[3] == 413
    assert request_head([*pseudo, (b":authority", b"a/b")], limits)[3] == 400
