"""Errors of the reactor and of connections, under the names Twisted code catches.

``twisted.internet.error`` ports to this module: ``except ConnectionDone`` keeps working.
"""

from __future__ import annotations

__all__ = [
    "AlreadyCalled",
    "AlreadyCancelled",
    "AlreadyListened",
    "BindError",
    "CannotListenError",
    "CertificateError",
    "ConnectBindError",
    "ConnectError",
    "ConnectInProgressError",
    "ConnectingCancelledError",
    "ConnectionAborted",
    "ConnectionClosed",
    "ConnectionDone",
    "ConnectionFdescWentAway",
    "ConnectionLost",
    "ConnectionRefusedError",
    "DNSLookupError",
    "InvalidAddressError",
    "MessageLengthError",
    "NoProtocol",
    "NoRouteError",
    "NotConnectingError",
    "NotListeningError",
    "PeerVerifyError",
    "ProcessDone",
    "ProcessExitedAlready",
    "ProcessTerminated",
    "ReactorAlreadyInstalledError",
    "ReactorAlreadyRunning",
    "ReactorNotRestartable",
    "ReactorNotRunning",
    "ServiceNameUnknownError",
    "TCPTimedOutError",
    "TimeoutError",
    "UnknownHostError",
    "UnsupportedAddressFamily",
    "UserError",
    "VerifyError",
    "getConnectError",
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


class BindError(Exception):
    """An address could not be bound."""


class NotListeningError(RuntimeError):
    """``stopListening`` on a port that is not listening."""


class ConnectError(Exception):
    """An outgoing connection could not be made.

    Args:
        osError: The operating system's error, or None.
        string: A description of what failed.
    """

    def __init__(self, osError: object = None, string: str = "") -> None:
        self.osError = osError
        super().__init__(string)

    def __str__(self) -> str:
        text = (self.__doc__ or "").strip().splitlines()[0] if self.__doc__ else ""
        if self.osError:
            text = f"{text}: {self.osError}"
        if self.args and self.args[0]:
            text = f"{text}: {self.args[0]}"
        return text + "."


class ConnectBindError(ConnectError):
    """The local address of an outgoing connection could not be bound"""


class UnknownHostError(ConnectError):
    """The host name could not be resolved"""


class NoRouteError(ConnectError):
    """No route to the host"""


class ConnectionRefusedError(ConnectError):
    """Connection was refused by other side"""


class TCPTimedOutError(ConnectError):
    """TCP connection timed out"""


class DNSLookupError(IOError):
    """A host name could not be looked up."""


class ServiceNameUnknownError(ConnectError):
    """Unknown service name"""


class UserError(ConnectError):
    """User aborted connection"""


class TimeoutError(UserError):
    """User timeout caused connection failure"""


class ConnectInProgressError(Exception):
    """A connect operation was already in progress."""


class NotConnectingError(RuntimeError):
    """``stopConnecting`` on a connector that is not connecting."""


class ConnectionFdescWentAway(ConnectionLost):
    """The file descriptor of the connection went away."""


class ProcessDone(ConnectionDone):
    """A child process exited with status 0.

    Args:
        status: The raw status of the process (0).
    """

    def __init__(self, status: int | None) -> None:
        super().__init__("process finished with exit code 0")
        self.exitCode = 0
        self.signal = None
        self.status = status


class ProcessTerminated(ConnectionLost):
    """A child process exited with a non-zero code or was killed by a signal.

    Args:
        exitCode: Its exit code, or None when a signal ended it.
        signal: The number of the signal that ended it, or None.
        status: The raw wait status.
    """

    def __init__(
        self, exitCode: int | None = None, signal: int | None = None, status: int | None = None
    ) -> None:
        self.exitCode = exitCode
        self.signal = signal
        self.status = status
        text = "process ended"
        if exitCode is not None:
            text += f" with exit code {exitCode}"
        if signal is not None:
            text += f" by signal {signal}"
        super().__init__(text)


class ProcessExitedAlready(Exception):
    """A signal was sent to a process that has already exited."""


class CertificateError(Exception):
    """A certificate or key could not be loaded or used."""


class VerifyError(Exception):
    """A certificate could not be verified."""


class PeerVerifyError(VerifyError):
    """The peer's certificate could not be verified."""


class ConnectingCancelledError(Exception):
    """An endpoint's connection attempt was cancelled (its Deferred was cancelled).

    Args:
        address: The address that was being connected to.
    """

    def __init__(self, address: object) -> None:
        super().__init__(address)
        self.address = address


class NoProtocol(Exception):
    """An endpoint's factory built no protocol (``buildProtocol`` returned None)."""


class AlreadyListened(Exception):
    """An endpoint that can listen only once (an adopted socket) was asked again."""


class MessageLengthError(Exception):
    """A datagram was too long to send."""


class InvalidAddressError(ValueError):
    """An address was not one the operation accepts (UDP sends to IP addresses only).

    Args:
        address: The address given.
        message: Why it was refused.
    """

    def __init__(self, address: object, message: str) -> None:
        super().__init__(address, message)
        self.address = address
        self.message = message


class UnsupportedAddressFamily(Exception):
    """An address family the operation does not support was given."""


class ReactorNotRunning(RuntimeError):
    """``stop()`` was called while the reactor was not running."""


class ReactorAlreadyRunning(RuntimeError):
    """``run()`` was called while the reactor was running."""


class ReactorNotRestartable(RuntimeError):
    """The reactor cannot be restarted."""


class ReactorAlreadyInstalledError(AssertionError):
    """A reactor was installed after another one."""


def getConnectError(e: BaseException) -> ConnectError:
    """Return the :class:`ConnectError` that stands for the operating system's error ``e``."""
    import builtins
    import errno
    import socket

    if isinstance(e, ConnectError):
        return e
    if isinstance(e, socket.gaierror):
        return UnknownHostError(e, str(e.args[-1]) if e.args else "")
    if isinstance(e, builtins.ConnectionRefusedError):
        return ConnectionRefusedError(e, "")
    if isinstance(e, builtins.TimeoutError) or (
        isinstance(e, OSError) and e.errno == errno.ETIMEDOUT
    ):
        return TCPTimedOutError(e, "")
    if isinstance(e, OSError) and e.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH):
        return NoRouteError(e, "")
    return ConnectError(e, "")
