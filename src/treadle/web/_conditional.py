"""Validators, conditional requests and byte ranges for :class:`treadle.web.static.File`.

RFC 9110 §8.8 (validators), §13 (conditional requests) and §14 (ranges), decided from the
request's headers and the file's ``stat`` alone: no I/O happens here.

HTTP. Responses carry ``Last-Modified``, a strong ``ETag`` built from inode, size and
``st_mtime_ns``, and ``Accept-Ranges: bytes``. Conditional requests follow RFC 9110 §13.2.2:
``If-None-Match`` (weak comparison, ``*``), else ``If-Modified-Since``, answer 304; ``Range``
(§14.2) with ``If-Range`` gives 206 (``multipart/byteranges`` for several ranges) or 416. An
invalid ``Range`` is ignored, and so is an abusive one (more than :data:`MAX_RANGE_PARTS`
parts after merging, or more bytes asked for than the file holds): the whole file is sent.
"""

from __future__ import annotations

import functools
import math
import os
import secrets
from collections.abc import Sequence
from datetime import UTC
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Final

from treadle.web import http

if TYPE_CHECKING:
    from treadle.web.server import Request

__all__ = [
    "MAX_RANGE_PARTS",
    "Piece",
    "RangeSpec",
    "http_date",
    "if_range_holds",
    "multipart",
    "not_modified",
    "parse_range",
    "plan_ranges",
    "plan_spans",
    "strong_etag",
]

#: Most parts a ``multipart/byteranges`` answer may have after merging (Apache's
#: ``MaxRanges`` default is 200 too); a longer list is answered with the whole file.
MAX_RANGE_PARTS: Final = 200


# -- validators and conditional requests (RFC 9110 §8.8, §13) ----------------------------------


@functools.lru_cache(maxsize=256)
def modified_at(st: os.stat_result) -> int:
    """The whole second a file's ``Last-Modified`` names: its mtime rounded *up*, as Twisted's
    ``setLastModified`` does, so a file never claims to be older than it is."""
    return math.ceil(st.st_mtime)


def http_date(mtime: int) -> bytes:
    """``Last-Modified`` value for ``mtime``; files change rarely, so results are reused."""
    return http.datetimeToString(mtime)


def strong_etag(st: os.stat_result) -> bytes:
    """A strong entity tag: any change of content bumps size or ``st_mtime_ns``."""
    return b'"%x-%x-%x"' % (st.st_ino, st.st_size, st.st_mtime_ns)


def _entity_tags(value: bytes) -> list[bytes]:
    """Split an ``If-None-Match`` list into entity-tags (``"x"``, ``W/"x"``); stops at junk.

    A tag may itself contain a comma, so the list is scanned rather than split.
    """
    tags: list[bytes] = []
    i, n = 0, len(value)
    while i < n:
        if value[i] in b" \t,":
            i += 1
            continue
        start = i
        if value.startswith(b"W/", i):
            i += 2
        if value[i : i + 1] != b'"':
            break
        end = value.find(b'"', i + 1)
        if end < 0:
            break
        tags.append(value[start : end + 1])
        i = end + 1
    return tags


def _none_match(values: Sequence[bytes], etag: bytes) -> bool:
    """True when ``If-None-Match`` lists ``etag`` (weak comparison, §8.8.3.2) or is ``*``."""
    joined = b",".join(values)
    if joined.strip() == b"*":
        return True
    for tag in _entity_tags(joined):
        if tag == etag or (tag.startswith(b"W/") and tag[2:] == etag):
            return True
    return False


def _parse_http_date(value: bytes) -> int | None:
    """Seconds since the epoch for an HTTP date (any of the three §5.6.7 forms), or None."""
    try:
        parsed = parsedate_to_datetime(value.decode("latin-1"))
        if parsed.tzinfo is None:  # "-0000" or no zone: HTTP dates are always GMT
            parsed = parsed.replace(tzinfo=UTC)
        return int(parsed.timestamp())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def not_modified(request: Request, etag: bytes, mtime: int) -> bool:
    """Whether a GET/HEAD may be answered 304 (§13.2.2 steps 3 and 4)."""
    headers = request.requestHeaders
    none_match = headers.getRawHeaders(b"if-none-match")
    if none_match is not None:
        # If-Modified-Since is ignored when If-None-Match is present (§13.1.3).
        return _none_match(none_match, etag)
    since = headers.getRawHeaders(b"if-modified-since")
    if since is None or len(since) != 1:
        return False
    date = _parse_http_date(since[0])
    return date is not None and mtime <= date


def if_range_holds(value: bytes, etag: bytes, mtime: int) -> bool:
    """Whether ``If-Range`` lets the Range apply: strong ETag match or exact date (§13.1.5)."""
    value = value.strip()
    if value.startswith(b'"'):
        return value == etag
    if value.startswith(b"W/"):  # a weak tag never validates a range
        return False
    date = _parse_http_date(value)
    return date is not None and date == mtime


# -- ranges (RFC 9110 §14) ---------------------------------------------------------------------

#: Parsed range-specs: ``(first, last)`` inclusive, ``(first, None)`` open, ``(None, n)`` suffix.
RangeSpec = tuple[int | None, int | None]


def _position(digits: bytes) -> int | None:
    if not digits.isdigit():  # bytes.isdigit is ASCII-only: no "+5", " 5" or "5_0"
        return None
    # Past 18 digits the value exceeds any file; int() would also refuse >4300 digits.
    return int(digits) if len(digits) <= 18 else 10**18


def parse_range(value: bytes) -> list[RangeSpec] | None:
    """Parse a ``Range`` value; None when it is not a valid ``bytes`` ranges-specifier."""
    unit, sep, specs = value.partition(b"=")
    if not sep or unit.strip().lower() != b"bytes":
        return None
    parsed: list[RangeSpec] = []
    for item in specs.split(b","):
        item = item.strip(b" \t")
        if not item:  # list syntax allows empty elements (§5.6.1)
            continue
        first_s, dash, last_s = item.partition(b"-")
        if not dash:
            return None
        last = _position(last_s) if last_s else None
        if last_s and last is None:
            return None
        if first_s:
            first = _position(first_s)
            if first is None or (last is not None and last < first):
                return None
            parsed.append((first, last))
        elif last is None:
            return None
        else:
            parsed.append((None, last))
    return parsed or None


def plan_ranges(value: bytes, size: int) -> list[tuple[int, int]] | None:
    """Decide how to answer a ``Range`` for a representation of ``size`` bytes.

    Returns:
        None to ignore the header and send the whole file (invalid syntax, an empty file, or
        an abusive request); ``[]`` when no range is satisfiable (416); otherwise the sorted,
        merged ``(start, stop)`` half-open spans to send (206).
    """
    return plan_spans(parse_range(value), size)


def plan_spans(specs: list[RangeSpec] | None, size: int) -> list[tuple[int, int]] | None:
    """:func:`plan_ranges` for a ``Range`` already parsed by :func:`parse_range`."""
    if specs is None or size == 0:
        return None
    spans: list[tuple[int, int]] = []
    for first, last in specs:
        if first is None:
            assert last is not None
            if last == 0:  # a zero-length suffix selects nothing
                continue
            spans.append((max(0, size - last), size))
        elif first < size:
            spans.append((first, size if last is None else min(last + 1, size)))
    if not spans:
        return []
    # More bytes asked for than exist means overlapping ranges: a cheap way to make a
    # small request cost a large response. Answer with the file once instead.
    if sum(stop - start for start, stop in spans) > size:
        return None
    spans.sort()
    merged = [spans[0]]
    for start, stop in spans[1:]:
        last_start, last_stop = merged[-1]
        if start <= last_stop:  # overlapping or adjacent
            merged[-1] = (last_start, max(last_stop, stop))
        else:
            merged.append((start, stop))
    if len(merged) > MAX_RANGE_PARTS:
        return None
    return merged


# Body pieces: ``(bytes to write first, file offset, byte count)``.
Piece = tuple[bytes, int, int]


def multipart(
    spans: list[tuple[int, int]], size: int, content_type: bytes | None
) -> tuple[bytes, list[Piece], int]:
    """Lay out a ``multipart/byteranges`` body; return (boundary, pieces, total length).

    As Twisted lays it out: every part's delimiter starts with CRLF, the first one too (an
    empty preamble, RFC 2046 §5.1.1), so a body splits on ``CRLF--boundary`` into an empty
    string, the parts and the closing ``--``.
    """
    boundary = secrets.token_hex(16).encode("ascii")
    pieces: list[Piece] = []
    total = 0
    for start, stop in spans:
        head = b"\r\n--" + boundary + b"\r\n"
        if content_type is not None:
            head += b"Content-Type: " + content_type + b"\r\n"
        head += b"Content-Range: bytes %d-%d/%d\r\n\r\n" % (start, stop - 1, size)
        pieces.append((head, start, stop - start))
        total += len(head) + stop - start
    trailer = b"\r\n--" + boundary + b"--\r\n"
    pieces.append((trailer, 0, 0))
    return boundary, pieces, total + len(trailer)
