"""The connection state machine as data (treadle.web._state), walked without any I/O."""

from __future__ import annotations

import pytest

from treadle.web import _state
from treadle.web._state import (
    ABORT,
    ABORTED,
    AWAIT_INVITE,
    BEGIN,
    BODY,
    CLOSE,
    CLOSED,
    CLOSING,
    COMPLETE,
    CONTINUE,
    DONE,
    EVENT_NAMES,
    HEAD,
    HEAD_DONE,
    IDLE,
    INVITED,
    LAST,
    LINGER,
    LOST,
    REFUSAL_SENT,
    STATE_NAMES,
    STOP,
    TRANSITIONS,
    ChannelStateError,
    next_state,
    state_name,
)

ALL_STATES = range(len(STATE_NAMES))


def walk(*events: int, start: int = IDLE) -> int:
    state = start
    for event in events:
        state = next_state(state, event)
    return state


def test_a_keep_alive_request_returns_to_idle() -> None:
    assert walk(BEGIN, HEAD_DONE, COMPLETE) == IDLE


def test_the_last_request_leaves_the_connection_done_then_closing() -> None:
    assert walk(BEGIN, HEAD_DONE, LAST) == DONE
    assert walk(BEGIN, HEAD_DONE, LAST, CLOSE, LOST) == CLOSED


def test_an_owed_continue_is_sent_before_the_body_or_dropped_by_it() -> None:
    assert walk(BEGIN, AWAIT_INVITE) == CONTINUE
    assert walk(BEGIN, AWAIT_INVITE, INVITED, COMPLETE) == IDLE
    # The client may send the body without waiting for the invitation.
    assert walk(BEGIN, AWAIT_INVITE, COMPLETE) == IDLE


def test_a_refusal_lingers_then_closes() -> None:
    assert walk(BEGIN, STOP, REFUSAL_SENT) == LINGER
    assert walk(BEGIN, STOP, REFUSAL_SENT, CLOSE, LOST) == CLOSED


@pytest.mark.parametrize("state", [IDLE, HEAD, CONTINUE, BODY, DONE])
def test_stop_ends_reading_from_any_reading_state(state: int) -> None:
    assert next_state(state, STOP) == DONE
    assert next_state(DONE, STOP) == DONE  # idempotent


@pytest.mark.parametrize("state", [LINGER, CLOSING, ABORTED, CLOSED])
def test_stop_changes_nothing_once_the_connection_is_ending(state: int) -> None:
    assert next_state(state, STOP) == state


def test_abort_wins_over_close_and_nothing_follows_the_end() -> None:
    assert walk(CLOSE, ABORT) == ABORTED
    assert walk(ABORT, CLOSE) == ABORTED
    for event in (STOP, CLOSE, ABORT, LOST):
        assert next_state(CLOSED, event) == CLOSED


@pytest.mark.parametrize("state", ALL_STATES)
def test_every_state_can_be_lost(state: int) -> None:
    assert next_state(state, LOST) == CLOSED


@pytest.mark.parametrize(
    ("state", "event"),
    [
        (HEAD, BEGIN),  # a second message cannot begin inside a head
        (IDLE, HEAD_DONE),
        (IDLE, COMPLETE),
        (DONE, BEGIN),  # nothing is parsed once done
        (BODY, INVITED),  # only an owed invitation is sent
        (IDLE, REFUSAL_SENT),  # a refusal first stops reading
        (CLOSING, BEGIN),
    ],
)
def test_moves_missing_from_the_table_are_refused(state: int, event: int) -> None:
    with pytest.raises(ChannelStateError, match=f"{EVENT_NAMES[event]} .* {STATE_NAMES[state]}"):
        next_state(state, event)


def test_the_table_is_complete_and_closed() -> None:
    assert set(TRANSITIONS) == set(range(len(EVENT_NAMES)))
    for moves in TRANSITIONS.values():
        assert set(moves) <= set(ALL_STATES) and set(moves.values()) <= set(ALL_STATES)
    # Reading states come first: "still reading" is ``state < DONE``.
    assert max(IDLE, HEAD, CONTINUE, BODY) < DONE < min(LINGER, CLOSING, ABORTED, CLOSED)


def test_every_state_is_reachable_from_idle() -> None:
    seen = {IDLE}
    frontier = [IDLE]
    while frontier:
        state = frontier.pop()
        for moves in TRANSITIONS.values():
            after = moves.get(state)
            if after is not None and after not in seen:
                seen.add(after)
                frontier.append(after)
    assert seen == set(ALL_STATES)


def test_names() -> None:
    assert state_name(CONTINUE) == "CONTINUE"
    assert set(_state.__all__) >= {"next_state", "TRANSITIONS", "ChannelStateError"}
