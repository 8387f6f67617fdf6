"""The small functions and constants Twisted's ``twisted.web.http`` offers beside its classes.

Dates (``stringToDatetime``, ``timegm``), chunked coding of single chunks (``toChunk``,
``fromChunk``), bytes-only URL and query parsing (``urlparse``, ``parse_qs``) and
``parseContentRange``. Code imports them from :mod:`treadle.web.http`; treadle's own server
does not use them (its parser is llhttp's, its dates :mod:`email.utils`).
"""

from __future__ import annotations

import calendar
from email.utils import parsedate_tz
from typing import Final
from urllib.parse import ParseResultBytes, unquote_to_bytes
from urllib.parse import urlparse as _urlparse

__all__ = [
    "NO_BODY_CODES",
    "PotentialDataLoss",
    "fromChunk",
    "maxChunkSizeLineLength",
    "monthname",
    "monthname_lower",
    "parseContentRange",
    "parse_qs",
    "protocol_version",
    "stringToDatetime",
    "timegm",
    "toChunk",
    "urlparse",
    "weekdayname",
    "weekdayname_lower",
]

#: The protocol version the server speaks.
protocol_version: Final = "HTTP/1.1"
#: Status codes whose responses never carry a body (besides 1xx).
NO_BODY_CODES: Final = (204, 304)
#: Longest chunk-size line Twisted's client accepts.
maxChunkSizeLineLength: Final = 1024
#: Day names as HTTP dates spell them, Monday first (``time.gmtime``'s ``tm_wday`` order).
weekdayname: Final = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
#: Month names as HTTP dates spell them; index 0 is None so that January is 1.
monthname: Final = [None, "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct",
                    "Nov", "Dec"]  # fmt: skip
weekdayname_lower: Final = [name.lower() for name in weekdayname]
monthname_lower: Final = [name and name.lower() for name in monthname]


class PotentialDataLoss(Exception):
    """A response body ended by the connection closing: it may be shorter than it should be."""


def urlparse(url: bytes) -> ParseResultBytes:
    """Split a URL into its six parts, all bytes (:func:`urllib.parse.urlparse` for bytes).

    Raises:
        TypeError: ``url`` is a ``str``.
    """
    if isinstance(url, str):
        raise TypeError("url must be bytes, not unicode")
    return _urlparse(url)


def parse_qs(
    qs: bytes, keep_blank_values: bool | int = 0, strict_parsing: bool | int = 0
) -> dict[bytes, list[bytes]]:
    """Parse a query string (``&`` or ``;`` separated) into ``{name: [values]}``, as Twisted.

    Args:
        qs: The query string.
        keep_blank_values: Keep ``name=`` fields (with the value ``b""``).
        strict_parsing: Raise on a field without ``=`` instead of skipping it.

    Raises:
        ValueError: ``strict_parsing`` and a field has no ``=``.
    """
    args: dict[bytes, list[bytes]] = {}
    for field in (item for part in qs.split(b"&") for item in part.split(b";")):
        name, sep, value = field.partition(b"=")
        if not sep:
            if strict_parsing:
                raise ValueError(f"bad query field: {field!r}")
            continue
        if value or keep_blank_values:
            name = unquote_to_bytes(name.replace(b"+", b" "))
            args.setdefault(name, []).append(unquote_to_bytes(value.replace(b"+", b" ")))
    return args


def timegm(year: int, month: int, day: int, hour: int, minute: int, second: int) -> int:
    """Return the seconds since the epoch of a UTC date and time.

    Raises:
        ValueError: ``year`` is before 1970, or ``month`` is not 1 to 12.
    """
    if year < 1970:
        raise ValueError("Years prior to 1970 not supported")
    if not 1 <= month <= 12:
        raise ValueError(f"month must be 1 to 12, not {month}")
    return calendar.timegm((year, month, day, hour, minute, second))


def stringToDatetime(dateString: bytes) -> int:
    """Return the seconds since the epoch of an HTTP date.

    All three forms of RFC 9110 §5.6.7 are read: ``Sun, 06 Nov 1994 08:49:37 GMT``,
    ``Sunday, 06-Nov-94 08:49:37 GMT`` (two-digit years below 69 are 20xx) and asctime's
    ``Sun Nov  6 08:49:37 1994``; the weekday may be missing.

    Raises:
        ValueError: ``dateString`` is none of them.
    """
    text = dateString.decode("ascii", "replace")
    parsed = parsedate_tz(text)
    if parsed is None or parsed[0] < 1970:
        raise ValueError(f"Unknown datetime format {dateString!r}")
    year, month, day, hour, minute, second = parsed[:6]
    return timegm(year, month, day, hour, minute, second) - (parsed[9] or 0)


def toChunk(data: bytes) -> tuple[bytes, bytes, bytes, bytes]:
    """Return ``data`` as one chunk of the chunked coding, in four pieces to join."""
    return b"%x" % len(data), b"\r\n", data, b"\r\n"


def fromChunk(data: bytes) -> tuple[bytes, bytes]:
    """Read one chunk (without extensions) from the start of ``data``.

    Returns:
        ``(chunk data, what follows the chunk)``.

    Raises:
        ValueError: ``data`` does not start with a whole, well-formed chunk.
    """
    prefix, sep, rest = data.partition(b"\r\n")
    if not sep:
        raise ValueError("chunk size line must end with CRLF")
    digits = prefix.strip()
    if not digits or digits.strip(b"0123456789abcdefABCDEF"):
        raise ValueError(prefix)
    length = int(digits, 16)
    if rest[length : length + 2] != b"\r\n":
        raise ValueError("chunk must end with CRLF")
    return rest[:length], rest[length + 2 :]


def parseContentRange(header: str) -> tuple[int, int, int | None]:
    """Parse a ``Content-Range`` value such as ``bytes 0-499/1234``.

    Returns:
        ``(start, end, total)``; ``total`` is None for ``*``.

    Raises:
        ValueError: Not a ``bytes`` range, or malformed.
    """
    kind, other = header.strip().split()
    if kind.lower() != "bytes":
        raise ValueError(f"a range of type {kind!r} is not supported")
    span, total = other.split("/")
    start, end = (int(n) for n in span.split("-"))
    return start, end, None if total == "*" else int(total)
