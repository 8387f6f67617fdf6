"""The state machine of an HTTP/1.1 connection, as data: states, events and every allowed move.

:class:`~treadle.web._channel.HTTPChannel` keeps one state value and changes it only through
:func:`next_state`, which looks the move up in :data:`TRANSITIONS`; a move missing from the
table is a bug in treadle (never something a client can cause) and raises
:class:`ChannelStateError`. Nothing here does I/O: the tests walk the table directly.

States are small ints, ordered so that "still reading requests" is ``state < DONE``:

- ``IDLE`` — waiting for the first byte of a request;
- ``HEAD`` — a request head is arriving;
- ``CONTINUE`` — the head asked for ``100 Continue``, owed once the responses before it
  are out;
- ``BODY`` — a request body is arriving (or, with none, about to complete);
- ``DONE`` — no more requests will be read; the responses due still go out;
- ``LINGER`` — a refusal went out and the channel drains what the client still sends;
- ``CLOSING`` — closed by us, the transport flushing what it holds;
- ``ABORTED`` — dropped by us, unsent data discarded;
- ``CLOSED`` — the connection is gone;
- ``UPGRADING`` — an Upgrade (or CONNECT) request ended the HTTP/1.1 bytes: no more requests
  are parsed, and what follows its head is held for the protocol it may switch to;
- ``UPGRADED`` — its answer switched protocols (``101``): the connection belongs to that
  protocol (a WebSocket), the channel only passes bytes and counts the connection.

``UPGRADING`` and ``UPGRADED`` come last so that the values above keep their order.
"""

from __future__ import annotations

from typing import Final

from mypy_extensions import mypyc_attr

__all__ = [
    "ABORT",
    "ABORTED",
    "AFTER_BEGIN",
    "AFTER_COMPLETE",
    "AFTER_HEAD",
    "AWAIT_INVITE",
    "BEGIN",
    "BODY",
    "CLOSE",
    "CLOSED",
    "CLOSING",
    "COMPLETE",
    "CONTINUE",
    "DONE",
    "EVENT_NAMES",
    "HEAD",
    "IDLE",
    "INVITED",
    "LAST",
    "LINGER",
    "LOST",
    "MOVES",
    "REFUSAL_SENT",
    "STATE_NAMES",
    "STOP",
    "SWITCH",
    "TRANSITIONS",
    "UPGRADE",
    "UPGRADED",
    "UPGRADING",
    "ChannelStateError",
    "next_state",
    "state_name",
]

# -- states ------------------------------------------------------------------------------------

IDLE: Final = 0
HEAD: Final = 1
CONTINUE: Final = 2
BODY: Final = 3
DONE: Final = 4
LINGER: Final = 5
CLOSING: Final = 6
ABORTED: Final = 7
CLOSED: Final = 8
UPGRADING: Final = 9
UPGRADED: Final = 10
STATE_NAMES: Final = (
    "IDLE",
    "HEAD",
    "CONTINUE",
    "BODY",
    "DONE",
    "LINGER",
    "CLOSING",
    "ABORTED",
    "CLOSED",
    "UPGRADING",
    "UPGRADED",
)

# -- events ------------------------------------------------------------------------------------

BEGIN: Final = 0  # the first byte of a request head
HEAD_DONE: Final = 1  # the head is complete; a body may follow
AWAIT_INVITE: Final = 2  # the head is complete and wants a 100 Continue we cannot send yet
INVITED: Final = 3  # the 100 Continue went out
COMPLETE: Final = 4  # the request is complete and another may follow
LAST: Final = 5  # the request is complete and the client sends no more (Connection: close)
STOP: Final = 6  # read no more requests (refused, upgraded, shutting down, closing)
REFUSAL_SENT: Final = 7  # a refusal went out: drain the client's bytes, then close
CLOSE: Final = 8  # close once the transport has flushed
ABORT: Final = 9  # drop the connection now
LOST: Final = 10  # the connection is gone
UPGRADE: Final = 11  # a complete request asked to upgrade: stop parsing, hold what follows
SWITCH: Final = 12  # its answer switched protocols: the connection is handed over
EVENT_NAMES: Final = (
    "begin",
    "head done",
    "await invite",
    "invited",
    "complete",
    "last",
    "stop",
    "refusal sent",
    "close",
    "abort",
    "lost",
    "upgrade",
    "switch",
)

_READING: Final = (IDLE, HEAD, CONTINUE, BODY)
_ALL: Final = (*_READING, DONE, LINGER, CLOSING, ABORTED, UPGRADING, UPGRADED, CLOSED)

#: Every allowed move: event -> {state before: state after}. A pair missing here is a bug.
TRANSITIONS: Final[dict[int, dict[int, int]]] = {
    BEGIN: {IDLE: HEAD},
    HEAD_DONE: {HEAD: BODY},
    AWAIT_INVITE: {HEAD: CONTINUE},
    INVITED: {CONTINUE: BODY},
    COMPLETE: {BODY: IDLE, CONTINUE: IDLE},
    LAST: {BODY: DONE, CONTINUE: DONE},
    # Stopping is idempotent, and too late to matter once the connection is ending.
    STOP: {
        **dict.fromkeys((*_READING, DONE), DONE),
        LINGER: LINGER,
        CLOSING: CLOSING,
        ABORTED: ABORTED,
        CLOSED: CLOSED,
        UPGRADING: UPGRADING,
        UPGRADED: UPGRADED,
    },
    REFUSAL_SENT: {DONE: LINGER},
    # Closing twice is harmless; after an abort or the end there is nothing left to close.
    CLOSE: {
        **dict.fromkeys((*_READING, DONE, LINGER, CLOSING, UPGRADING, UPGRADED), CLOSING),
        ABORTED: ABORTED,
        CLOSED: CLOSED,
    },
    ABORT: {**dict.fromkeys(_ALL[:-1], ABORTED), CLOSED: CLOSED},
    LOST: dict.fromkeys(_ALL, CLOSED),
    # The Upgrade request is complete (and queued) when llhttp stops at what follows it;
    # ``Connection: close`` beside ``Upgrade`` leaves the channel done already.
    UPGRADE: {IDLE: UPGRADING, DONE: UPGRADING},
    SWITCH: {UPGRADING: UPGRADED},
}
#: :data:`TRANSITIONS` indexed by event: one tuple index and one dict lookup per move.
MOVES: Final = tuple(TRANSITIONS[event] for event in range(len(EVENT_NAMES)))
#: The rows of the three moves every request makes, for the channel to look up inline.
AFTER_BEGIN: Final = TRANSITIONS[BEGIN]
AFTER_HEAD: Final = TRANSITIONS[HEAD_DONE]
AFTER_COMPLETE: Final = TRANSITIONS[COMPLETE]


# An exception class of its own kind for mypyc (it compiles subclasses of Exception, not of
# RuntimeError, as native classes): raised only on a bug, never on the hot path.
@mypyc_attr(native_class=False)
class ChannelStateError(RuntimeError):
    """A move the state machine does not allow: a bug in treadle, never the client's doing."""


def next_state(state: int, event: int) -> int:
    """Return the state ``event`` moves ``state`` to.

    Raises:
        ChannelStateError: The table has no such move.
    """
    try:
        return MOVES[event][state]
    except KeyError:
        raise ChannelStateError(
            f"{EVENT_NAMES[event]} is not allowed in state {STATE_NAMES[state]}"
        ) from None


def state_name(state: int) -> str:
    """Return the name of ``state`` (``"IDLE"``, ...)."""
    return STATE_NAMES[state]
