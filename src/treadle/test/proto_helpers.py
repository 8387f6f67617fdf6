"""The test doubles under their older name: ``twisted.test.proto_helpers`` ports here.

Everything is :mod:`treadle.internet.testing`'s (Twisted also moved them there);
``LineSendingProtocol`` is not provided.
"""

from treadle.internet.testing import (
    AccumulatingProtocol,
    EventLoggingObserver,
    FakeDatagramTransport,
    MemoryReactor,
    MemoryReactorClock,
    NonStreamingProducer,
    RaisingMemoryReactor,
    StringIOWithoutClosing,
    StringTransport,
    StringTransportWithDisconnection,
    _FakeConnector,
    _FakePort,
    waitUntilAllDisconnected,
)

__all__ = [
    "AccumulatingProtocol",
    "EventLoggingObserver",
    "FakeDatagramTransport",
    "MemoryReactor",
    "MemoryReactorClock",
    "NonStreamingProducer",
    "RaisingMemoryReactor",
    "StringIOWithoutClosing",
    "StringTransport",
    "StringTransportWithDisconnection",
    "_FakeConnector",
    "_FakePort",
    "waitUntilAllDisconnected",
]
