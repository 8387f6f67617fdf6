"""The event-stream format (treadle.web._sse_wire): events to bytes, no I/O.

Every encoding is read back with :func:`parse`, a client written here from the WHATWG HTML
Standard's interpretation rules (§9.2.6), so the tests check what a browser would see rather
than which bytes were chosen. The socket tests (test_sse.py) use the same client.
"""

from __future__ import annotations

import re
from dataclasses import FrozenInstanceError, dataclass, field

import pytest
from hypothesis import given
from hypothesis import strategies as st

from treadle.web._sse_wire import HEARTBEAT, encode_comment, last_event_id
from treadle.web.sse import Event

# -- a client, as the standard describes one ---------------------------------------------------


@dataclass
class Received:
    """What an EventSource made of a stream: its events, and what else it noticed."""

    events: list[dict[str, str]] = field(default_factory=list)
    comments: list[str] = field(default_factory=list)
    retry: int | None = None
    last_event_id: str = ""


def parse(stream: bytes) -> Received:
    """Interpret ``stream`` as a browser does (WHATWG HTML §9.2.6); an unfinished last line
    is ignored, as it would be until the rest of it arrives."""
    text = stream.decode("utf-8")
    text = text.removeprefix("\ufeff")
    *lines, _unfinished = re.split(r"\r\n|\r|\n", text)
    received = Received()
    data, event_type = "", ""
    for line in lines:
        if not line:  # dispatch
            if data:
                received.events.append(
                    {
                        "type": event_type or "message",
                        "data": data.removesuffix("\n"),
                        "lastEventId": received.last_event_id,
                    }
                )
            data, event_type = "", ""
            continue
        if line.startswith(":"):
            received.comments.append(line[1:])
            continue
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if name == "event":
            event_type = value
        elif name == "data":
            data += value + "\n"
        elif name == "id":
            if "\0" not in value:
                received.last_event_id = value
        elif name == "retry" and value and all(c in "0123456789" for c in value):
            received.retry = int(value)
    return received


def as_browser_sees(data: str) -> str:
    """Line breaks of every kind arrive as LF."""
    return re.sub(r"\r\n|\r", "\n", data)


# -- encoding ----------------------------------------------------------------------------------


def test_an_event_of_each_field() -> None:
    event = Event("hello", event="greeting", id="1", retry=2500)
    assert bytes(event) == b"event: greeting\nid: 1\nretry: 2500\ndata: hello\n\n"
    received = parse(bytes(event))
    assert received.events == [{"type": "greeting", "data": "hello", "lastEventId": "1"}]
    assert received.retry == 2500


def test_data_alone_is_a_message_event() -> None:
    assert bytes(Event("x")) == b"data: x\n\n"
    assert parse(bytes(Event("x"))).events == [{"type": "message", "data": "x", "lastEventId": ""}]


@pytest.mark.parametrize(
    ("data", "lines"),
    [
        ("a\nb", [b"a", b"b"]),
        ("a\r\nb", [b"a", b"b"]),
        ("a\rb", [b"a", b"b"]),
        ("a\n\nb", [b"a", b"", b"b"]),
        ("a\n", [b"a", b""]),
        ("\n", [b"", b""]),
        ("a\r\r\nb", [b"a", b"", b"b"]),
    ],
)
def test_multi_line_data_is_one_data_field_per_line(data: str, lines: list[bytes]) -> None:
    """A line break of any kind in the data would end the field: each line gets its own."""
    wire = bytes(Event(data))
    assert wire == b"".join(b"data: " + line + b"\n" for line in lines) + b"\n"
    assert parse(wire).events[0]["data"] == as_browser_sees(data)


def test_data_cannot_forge_fields_or_events() -> None:
    hostile = "x\n\nevent: evil\nid: 666\ndata: forged\r\rretry: 1"
    received = parse(bytes(Event(hostile, id="1")) + bytes(Event("next")))
    assert received.events == [
        {"type": "message", "data": as_browser_sees(hostile), "lastEventId": "1"},
        {"type": "message", "data": "next", "lastEventId": "1"},
    ]
    assert received.retry is None


@pytest.mark.parametrize("name", ["event", "id"])
@pytest.mark.parametrize("value", ["a\nb", "a\rb", "a\r\nb", "\n", "x\ndata: forged", "a\0b"])
def test_single_line_fields_refuse_line_breaks_and_nul(name: str, value: str) -> None:
    with pytest.raises(ValueError, match=f"the {'event type' if name == 'event' else name} of"):
        Event("d", **{name: value})


def test_a_nul_in_the_event_type_is_refused_too_and_in_data_kept() -> None:
    """Only an id with NUL is ignored by clients; NUL in a type is refused for symmetry, and
    in data it is an ordinary character."""
    with pytest.raises(ValueError):
        Event("d", event="a\0b")
    assert parse(bytes(Event("a\0b"))).events[0]["data"] == "a\0b"


def test_leading_spaces_and_colons_in_values_survive() -> None:
    event = Event("  two spaces: and a colon", event=" spaced", id=" 7")
    assert parse(bytes(event)).events == [
        {"type": " spaced", "data": "  two spaces: and a colon", "lastEventId": " 7"}
    ]


def test_empty_data_is_dispatched_and_no_data_is_not() -> None:
    assert bytes(Event("")) == b"data: \n\n"
    assert parse(bytes(Event(""))).events == [{"type": "message", "data": "", "lastEventId": ""}]
    # Fields without data: no event, but the id and retry still take effect.
    received = parse(bytes(Event(id="41", retry=10)) + bytes(Event("next")))
    assert received.events == [{"type": "message", "data": "next", "lastEventId": "41"}]
    assert received.retry == 10


def test_an_empty_id_resets_the_last_event_id() -> None:
    received = parse(bytes(Event("a", id="1")) + bytes(Event("b", id="")))
    assert [e["lastEventId"] for e in received.events] == ["1", ""]


@pytest.mark.parametrize("retry", [-1, True, 1.5, "100"])
def test_retry_must_be_a_count_of_milliseconds(retry: object) -> None:
    with pytest.raises((ValueError, TypeError)):
        Event(retry=retry)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "fields",
    [{"data": b"bytes"}, {"data": 1}, {"event": b"x"}, {"id": 3}, {"comment": b"c"}],
)
def test_fields_must_be_text(fields: dict[str, object]) -> None:
    with pytest.raises(TypeError):
        Event(**fields)  # type: ignore[arg-type]


def test_text_that_is_not_utf8_is_refused() -> None:
    with pytest.raises(UnicodeEncodeError):
        Event("lone \ud800 surrogate")


def test_unicode_is_utf8() -> None:
    event = Event("héllo ✓ 🎉", event="ünï")
    assert "héllo ✓ 🎉".encode() in bytes(event)
    assert parse(bytes(event)).events[0]["data"] == "héllo ✓ 🎉"


def test_comments_are_ignored_by_the_client_whatever_they_hold() -> None:
    wire = encode_comment("one\ntwo\r\ndata: not data") + bytes(Event("real", comment="note\rx"))
    assert wire.startswith(b": one\n: two\n: data: not data\n\n: note\n: x\n")
    received = parse(wire)
    assert received.events == [{"type": "message", "data": "real", "lastEventId": ""}]
    assert received.comments == [" one", " two", " data: not data", " note", " x"]


def test_the_heartbeat_is_an_empty_comment_that_dispatches_nothing() -> None:
    received = parse(HEARTBEAT * 3 + bytes(Event("a")) + HEARTBEAT)
    assert received.comments == ["", "", "", ""]
    assert [e["data"] for e in received.events] == ["a"]


def test_events_are_values() -> None:
    event = Event("a", id="1")
    assert event == Event("a", id="1")
    assert event != Event("a", id="2")
    assert repr(event) == "Event(data='a', event=None, id='1', retry=None, comment=None)"
    with pytest.raises(FrozenInstanceError):
        event.data = "b"  # type: ignore[misc]


# -- properties: whatever the text, the client sees what was sent -------------------------------

one_line = st.text(st.characters(exclude_characters="\r\n\0", exclude_categories=["Cs"]))
any_text = st.text(st.characters(exclude_categories=["Cs"]))


@given(data=any_text, event=st.none() | one_line, id=st.none() | one_line)
def test_any_event_reads_back(data: str, event: str | None, id: str | None) -> None:
    received = parse(bytes(Event(data, event=event, id=id)))
    assert received.events == [
        {"type": event or "message", "data": as_browser_sees(data), "lastEventId": id or ""}
    ]


@given(st.lists(st.tuples(any_text, st.none() | one_line, st.none() | any_text), max_size=8))
def test_a_stream_of_events_and_comments_reads_back_in_order(
    items: list[tuple[str, str | None, str | None]],
) -> None:
    wire = b"".join(
        (encode_comment(note) if note is not None else HEARTBEAT) + bytes(Event(data, event=kind))
        for data, kind, note in items
    )
    received = parse(wire)
    assert [(e["type"], e["data"]) for e in received.events] == [
        (kind or "message", as_browser_sees(data)) for data, kind, _ in items
    ]


# -- Last-Event-ID -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (None, None),
        ([], None),
        ([b"42"], "42"),
        ([b"  42 \t"], "42"),
        ([b""], None),
        ([b"1", b"2"], "2"),
        (["é✓".encode()], "é✓"),
        ([b"\xff\xfe"], None),  # not UTF-8
        ([b"a\0b"], None),
    ],
)
def test_last_event_id(values: list[bytes] | None, expected: str | None) -> None:
    assert last_event_id(values) == expected
