# mypy: disable-error-code="misc, no-untyped-def, empty-body"
# (zope interfaces declare methods without self and derive from an untyped base.)
"""The interfaces of ``twisted.internet.interfaces`` that programs import, as zope Interfaces.

``from twisted.internet.interfaces import IPushProducer`` ports to this module unchanged:
classes declare ``@implementer(...)``, and ``IPushProducer.providedBy(x)`` answers as in
Twisted for treadle's transports, ports, protocols and factories.
"""

from __future__ import annotations

from typing import Any

from zope.interface import Attribute, Interface

__all__ = [
    "IConsumer",
    "ILoggingContext",
    "IProcessProtocol",
    "IProducer",
    "IProtocol",
    "IProtocolFactory",
    "IPullProducer",
    "IPushProducer",
    "ITransport",
]


class ILoggingContext(Interface):
    """Something that names itself in log lines."""

    def logPrefix() -> str:
        """Return the prefix of this object's log lines."""


class IProtocol(Interface):
    """A stream protocol: receives a connection's bytes and its end."""

    def dataReceived(data: bytes) -> None:
        """Bytes arrived from the peer."""

    def connectionLost(reason: Any) -> None:
        """The connection ended; ``reason`` is a Failure."""

    def makeConnection(transport: Any) -> None:
        """Attach the transport; calls ``connectionMade``."""

    def connectionMade() -> None:
        """The connection is up."""


class IProtocolFactory(Interface):
    """Builds protocols for connections."""

    def buildProtocol(addr: Any) -> Any:
        """Return a protocol for a connection with ``addr``, or None to refuse it."""

    def doStart() -> None:
        """Called before the factory's first port or connection."""

    def doStop() -> None:
        """Called after its last port or connection."""


class IProcessProtocol(Interface):
    """Receives a child process's output and exit."""

    def makeConnection(process: Any) -> None:
        """The process started."""

    def childDataReceived(childFD: int, data: bytes) -> None:
        """Output arrived from the child on ``childFD``."""

    def childConnectionLost(childFD: int) -> None:
        """The child's ``childFD`` closed."""

    def processExited(reason: Any) -> None:
        """The child exited."""

    def processEnded(reason: Any) -> None:
        """The child exited and its pipes are closed."""


class IProducer(Interface):
    """Produces data for a consumer."""

    def stopProducing() -> None:
        """Stop for good: the consumer goes away."""


class IPushProducer(IProducer):
    """Produces on its own until paused."""

    def pauseProducing() -> None:
        """Stop writing until ``resumeProducing``."""

    def resumeProducing() -> None:
        """Writing may go on."""


class IPullProducer(IProducer):
    """Produces one piece each time it is asked."""

    def resumeProducing() -> None:
        """Write one piece to the consumer."""


class IConsumer(Interface):
    """Takes data written to it, paced through its producer."""

    def registerProducer(producer: Any, streaming: bool) -> None:
        """Attach a push (``streaming``) or pull producer."""

    def unregisterProducer() -> None:
        """Detach the producer."""

    def write(data: bytes) -> None:
        """Take ``data``."""


class ITransport(Interface):
    """A connection's writing end and addresses."""

    disconnecting = Attribute("True once loseConnection was called.")

    def write(data: bytes) -> None:
        """Send ``data`` (buffered; never blocks)."""

    def writeSequence(data: Any) -> None:
        """Send the concatenation of an iterable of bytes."""

    def loseConnection() -> None:
        """Close once what is buffered has been sent."""

    def getPeer() -> Any:
        """Return the peer's address."""

    def getHost() -> Any:
        """Return this side's address."""
