"""Errors of the reactor and of connections, under the names Twisted code catches.

``twisted.internet.error`` ports to this module: ``except ConnectionDone`` keeps working.
"""

from __future__ import annotations

__all__ = [
    "AlreadyCalled",
    "AlreadyCancelled",
    "CannotListenError",
    "ConnectionAborted",
    "ConnectionClosed",
    "ConnectionDone",
    "ConnectionLost",
]


class AlreadyCalled(ValueError):
    """A :class:`~treadle.internet.base.DelayedCall` was cancelled, reset or delayed once run."""


class AlreadyCancelled(ValueError):
    """A :class:`~treadle.internet.base.DelayedCall` was cancelled, reset or delayed after a
    cancel."""


class ConnectionClosed(Exception):
    """Base of the two ways a connection ends."""


class ConnectionDone(ConnectionClosed):
    """The connection was closed cleanly (the peer shut it down, or we did)."""

    def __init__(self, *args: object) -> None:
        super().__init__(*(args or ("Connection was closed cleanly.",)))


class ConnectionLost(ConnectionClosed):
    """The connection was lost in a non-clean fashion (reset, timeout, I/O error)."""

    def __init__(self, *args: object) -> None:
        super().__init__(
            *(args or ("Connection to the other side was lost in a non-clean fashion.",))
        )


class ConnectionAborted(ConnectionLost):
    """The connection was dropped on purpose by this side (Twisted's ``abortConnection``).

    What a response in progress learns when the server cuts its connection off: at shutdown
    past the grace period, or when the client reads nothing of what waits for it.
    """

    def __init__(self, *args: object) -> None:
        super().__init__(*(args or ("Connection was aborted locally.",)))


class CannotListenError(OSError):
    """A listening socket could not be bound to its address.

    Args:
        interface: The interface asked for ("" for all).
        port: The port asked for.
        socketError: The operating system's error.
    """

    def __init__(self, interface: str, port: int, socketError: BaseException) -> None:
        self.interface = interface
        self.port = port
        self.socketError = socketError
        where = f"{interface or '0.0.0.0'}:{port}"
        super().__init__(f"Couldn't listen on {where}: {socketError}.")
