"""The event-stream format: :class:`Event` and how events and comments become bytes.

No I/O here: these are the framing rules of the WHATWG HTML Standard, "Server-sent events",
§9.2.5 (the ``text/event-stream`` grammar) and §9.2.6 (how a client interprets it), kept
as functions that the tests exercise byte for byte.

The rules a writer must keep so that no value breaks the framing:

- A line ends at CR LF, at a lone LF *or at a lone CR* (§9.2.5 ``end-of-line``). A
  ``data`` value may hold any of them: it is split there and each piece goes out as its
  own ``data:`` line, which the client joins again with LF. So ``"a\\r\\nb"`` arrives as
  ``"a\\nb"``: line breaks are normalised to LF, nothing else changes.
- ``event`` and ``id`` are single lines: a CR or LF in them would end the field early and
  let the rest of the value be read as a field of its own (``"x\\ndata: forged"``). They are
  refused with :class:`ValueError` rather than rewritten. An ``id`` holding NUL is refused
  too: the client ignores such an id field (§9.2.6), which would silently break resumption.
- ``retry`` is a count of milliseconds, sent as ASCII digits: the client ignores anything
  else.
- After the field name comes ``": "``; the client drops one space after the colon, so a
  value that itself starts with a space keeps it.
- Comments (``":"`` lines) are split at line breaks like ``data``; the client ignores them.
- An event ends with an empty line. Each :class:`Event` is encoded whole, so a stream is
  always between two events when anything else (a heartbeat) is written.
- The stream is UTF-8 (§9.2.5); a ``str`` that cannot be encoded (a lone surrogate) is
  refused with :class:`UnicodeEncodeError` (a :class:`ValueError`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Final

__all__ = ["HEARTBEAT", "Event", "encode_comment", "last_event_id"]

# §9.2.5: end-of-line = ( cr lf / cr / lf ).
_LINE_BREAK: Final = re.compile(r"\r\n|\r|\n")
_CR_LF_NUL: Final = re.compile(r"[\r\n\0]")

#: What a heartbeat writes: an empty comment and the empty line after it. The client ignores
#: both (an empty line with no data buffered dispatches nothing, §9.2.6).
HEARTBEAT: Final = b":\n\n"


def _single_line(name: str, value: str, refuse: re.Pattern[str]) -> str:
    if not isinstance(value, str):
        raise TypeError(f"the {name} of an event must be a str, not {type(value).__name__}")
    if refuse.search(value):
        raise ValueError(f"the {name} of an event must be one line without NUL: {value!r}")
    return value


@dataclass(frozen=True, slots=True)
class Event:
    """One server-sent event: what a browser's ``EventSource`` dispatches as a ``MessageEvent``.

    The event is checked and encoded when it is made, so one event sent to many streams is
    encoded once (``bytes(event)`` is the encoding).

    Args:
        data: The event's data (``event.data`` in the browser). Any text: line breaks in it
            (CR LF, LF or CR) arrive as LF. None sends no data field; an event without data
            is not dispatched by the client, but its ``id`` and ``retry`` still take effect.
        event: The event type (``addEventListener(type, ...)`` in the browser); None for the
            default type, ``"message"`` (``onmessage``). One line.
        id: The event's id: the client sends the last one it saw back as ``Last-Event-ID``
            when it reconnects. One line, no NUL. An empty string clears the client's last
            event id.
        retry: Milliseconds the client waits before reconnecting after the stream ends.
        comment: Text sent as comment lines (ignored by the client) before the fields.

    Raises:
        ValueError: ``event`` or ``id`` holds a line break (or ``id`` a NUL), ``retry`` is
            negative, or a text cannot be encoded as UTF-8.
        TypeError: A field has the wrong type.
    """

    data: str | None = None
    event: str | None = None
    id: str | None = None
    retry: int | None = None
    comment: str | None = None
    _wire: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        lines: list[str] = []
        if self.comment is not None:
            lines.append(_comment_lines(self.comment))
        if self.event is not None:
            lines.append("event: " + _single_line("event type", self.event, _CR_LF_NUL) + "\n")
        if self.id is not None:
            lines.append("id: " + _single_line("id", self.id, _CR_LF_NUL) + "\n")
        retry = self.retry
        if retry is not None:
            if type(retry) is not int:  # bool is an int, and not a count of milliseconds
                raise TypeError(f"retry must be an int of milliseconds, not {retry!r}")
            if retry < 0:
                raise ValueError(f"retry must be >= 0 milliseconds, not {retry}")
            lines.append(f"retry: {retry}\n")
        data = self.data
        if data is not None:
            if not isinstance(data, str):
                raise TypeError(f"the data of an event must be a str, not {type(data).__name__}")
            lines.extend("data: " + line + "\n" for line in _LINE_BREAK.split(data))
        lines.append("\n")
        object.__setattr__(self, "_wire", "".join(lines).encode("utf-8"))

    def __bytes__(self) -> bytes:
        """The event as it goes on the wire, ending with its empty line."""
        return self._wire


def _comment_lines(text: str) -> str:
    if not isinstance(text, str):
        raise TypeError(f"a comment must be a str, not {type(text).__name__}")
    return "".join(": " + line + "\n" for line in _LINE_BREAK.split(text))


def encode_comment(text: str) -> bytes:
    """Return ``text`` as comment lines followed by an empty line (the client ignores them).

    Raises:
        ValueError: ``text`` cannot be encoded as UTF-8.
    """
    return (_comment_lines(text) + "\n").encode("utf-8")


def last_event_id(values: list[bytes] | None) -> str | None:
    """Return the id a reconnecting client resumes from, given its ``Last-Event-ID`` values.

    The browser sends the id of the last event it received, as UTF-8 (§9.2.4). A request
    without the header, or with one that is not UTF-8 or holds a NUL, resumes from nothing
    (None), as does an empty one; of several field lines (not something a browser sends) the
    last counts.
    """
    if not values:
        return None
    try:
        value = values[-1].decode("utf-8")
    except UnicodeDecodeError:
        return None
    # HTTP trims the field value's surrounding whitespace (RFC 9110 §5.5).
    value = value.strip(" \t")
    if not value or "\0" in value:
        return None
    return value
