"""HTTP/2 limits as named constants, and the token bucket that rate-limits hostile frames.

Every number here bounds what one client can make an HTTP/2 connection hold or do; the
comment beside each says what other servers use. The HTTP/1.1 limits a factory carries
(:meth:`~treadle.web.http.HTTPFactory.limits`) apply too: the head limit is the
``SETTINGS_MAX_HEADER_LIST_SIZE`` we announce, the field-line and field-count limits and the
body limit are checked per stream.

The attacks each limit answers (RFC 9113 §10.5 lists the kinds):

- too many streams at once: ``SETTINGS_MAX_CONCURRENT_STREAMS``; h2 refuses a stream past it
  with a connection error;
- a header block too large, or sent as endless CONTINUATION frames (CVE-2024-27316): h2
  stops after 64 CONTINUATION frames of at most ``MAX_FRAME_SIZE`` bytes (1 MiB buffered at
  worst) and refuses a decoded list over ``SETTINGS_MAX_HEADER_LIST_SIZE``;
- an HPACK table grown to the client's taste: our decoder's table is ours to size
  (:data:`HEADER_TABLE_SIZE`), and our encoder's is capped at the same whatever the client
  offers;
- rapid reset (CVE-2023-44487): streams opened and reset at once. A stream's request is made
  only once its read is over, so a stream reset in the same read costs no request at all, and
  client resets spend tokens of a bucket (:data:`RESET_BURST`, :data:`RESET_RATE`); an empty
  bucket ends the connection with ``ENHANCE_YOUR_CALM``;
- floods of frames that cost us work and do nothing (PING, SETTINGS, WINDOW_UPDATE, PRIORITY,
  empty DATA, unknown frames): they spend tokens of a second bucket, which each DATA frame we
  send refills a little (a client reading a download fast answers with WINDOW_UPDATEs);
- a client that never opens its flow-control window: a stream whose output waits on a zero
  window for the factory's ``timeOut`` is reset.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "CONNECTION_WINDOW",
    "CONTROL_BURST",
    "CONTROL_RATE",
    "DATA_FRAME_CREDIT",
    "HEADER_TABLE_SIZE",
    "MAX_CONCURRENT_STREAMS",
    "RESET_BURST",
    "RESET_RATE",
    "STREAM_CREDIT",
    "STREAM_HIGH_WATER",
    "STREAM_LOW_WATER",
    "STREAM_SPOOL_SIZE",
    "STREAM_WINDOW",
    "TokenBucket",
]

#: Streams a client may have open at once (``SETTINGS_MAX_CONCURRENT_STREAMS``). RFC 9113
#: §6.5.2 recommends no fewer than 100; h2, Apache and Twisted use 100, nginx 128, Go 250.
MAX_CONCURRENT_STREAMS: Final = 100
#: Bytes of HPACK dynamic table, both ways (``SETTINGS_HEADER_TABLE_SIZE`` for the client's
#: encoder; the cap of our encoder's whatever the client announces). 4096 is the RFC 7541
#: default, and what nginx and Go keep to.
HEADER_TABLE_SIZE: Final = 4096
#: Bytes a client may send on one stream before we open its window again
#: (``SETTINGS_INITIAL_WINDOW_SIZE``). Bodies are buffered as they arrive, so the window only
#: paces the network; the RFC default of 65,535 slows uploads on long round trips. nginx
#: uses 64 KiB, Go 1 MiB.
STREAM_WINDOW: Final = 256 * 1024
#: Bytes all streams together may have in flight (the connection window, opened with a
#: WINDOW_UPDATE right after our SETTINGS). Go uses 1 MiB.
CONNECTION_WINDOW: Final = 1024 * 1024
#: Response bytes a stream may hold beyond what flow control lets out before its producer is
#: paused and ``drain()`` waits; it resumes below the low-water mark. asyncio's own transport
#: defaults are the same.
STREAM_HIGH_WATER: Final = 64 * 1024
STREAM_LOW_WATER: Final = 16 * 1024
#: Bytes of a request body kept in memory; beyond, the body goes to a temporary file. The
#: HTTP/1.1 parser keeps up to 1 MiB (``SPOOL_SIZE``) of the one body it reads at a time;
#: an HTTP/2 connection receives up to ``MAX_CONCURRENT_STREAMS`` bodies at once, so each
#: keeps less (100 streams hold 25 MiB at most).
STREAM_SPOOL_SIZE: Final = 256 * 1024
#: Client resets (RST_STREAM) allowed in a burst, and refilled per second: nghttp2's
#: defaults for its stream-reset rate limit (Apache's mod_http2 and Twisted use them too).
RESET_BURST: Final = 1000
RESET_RATE: Final = 33.0
#: Frames that do no work of their own (PING, SETTINGS, WINDOW_UPDATE, PRIORITY, empty DATA,
#: unknown types) allowed in a burst, and refilled per second. Go closes a connection with
#: 10,000 control-frame answers queued; nginx counts such frames against each request.
CONTROL_BURST: Final = 1000
CONTROL_RATE: Final = 100.0
#: Control tokens each DATA frame we send gives back: a client reads a download with up to
#: two WINDOW_UPDATEs per frame (the stream's and the connection's).
DATA_FRAME_CREDIT: Final = 2.0
#: Control tokens each request the client opens gives back (its PRIORITY and WINDOW_UPDATE
#: frames come with it).
STREAM_CREDIT: Final = 4.0


class TokenBucket:
    """Tokens that refill at ``rate`` a second up to ``burst``; each event spends one.

    Args:
        burst: Tokens at the start, and at most.
        rate: Tokens added per second.
        now: The clock's time at the start.
    """

    __slots__ = ("burst", "rate", "stamp", "tokens")

    def __init__(self, burst: float, rate: float, now: float) -> None:
        self.burst = burst
        self.rate = rate
        self.tokens = burst
        self.stamp = now

    def take(self, now: float) -> bool:
        """Spend one token at time ``now``; False (and nothing spent) when none is left."""
        # A clock that steps back refills nothing rather than draining the bucket.
        elapsed = now - self.stamp
        tokens = self.tokens
        if elapsed > 0.0:
            tokens = min(self.burst, tokens + elapsed * self.rate)
            self.stamp = now
        if tokens < 1.0:
            self.tokens = tokens
            return False
        self.tokens = tokens - 1.0
        return True

    def give(self, tokens: float) -> None:
        """Add ``tokens`` (up to ``burst``): work done that legitimately brings events."""
        total = self.tokens + tokens
        self.tokens = total if total < self.burst else self.burst
