"""Twisted's core examples together: echoserv.py (TCP), echoserv_udp.py, echoclient_udp.py
(connected UDP) and echoclient.py (a ClientFactory), the program being its own client.

The TCP echo server listens on {echo}; a status port ({status}) writes the self-test log.
"""

import sys

from twisted.internet import defer, protocol, reactor
from twisted.internet.error import ConnectionDone

log = []
finished = defer.Deferred()


class Echo(protocol.Protocol):
    """docs/core/examples/echoserv.py"""

    def connectionMade(self):
        self.factory.numProtocols += 1

    def dataReceived(self, data):
        self.transport.write(data)

    def connectionLost(self, reason):
        self.factory.numProtocols -= 1


class EchoFactory(protocol.Factory):
    protocol = Echo
    numProtocols = 0


class UDPEcho(protocol.DatagramProtocol):
    """docs/core/examples/echoserv_udp.py"""

    def datagramReceived(self, data, addr):
        log.append(f"udp server got {data!r} from {type(addr).__name__}")
        self.transport.write(data.upper(), addr)


class UDPEchoClient(protocol.DatagramProtocol):
    """docs/core/examples/echoclient_udp.py: a connected UDP client."""

    def __init__(self, port, done):
        self.port = port
        self.done = done
        self.strings = [b"hello", b"world"]

    def startProtocol(self):
        log.append("udp client started")
        self.transport.connect("127.0.0.1", self.port)
        self.sendDatagram()

    def sendDatagram(self):
        if self.strings:
            self.transport.write(self.strings.pop(0))
        else:
            self.transport.stopListening()

    def datagramReceived(self, datagram, addr):
        _host, port = addr
        log.append(f"udp client got {datagram!r} from matching port: {port == self.port}")
        self.sendDatagram()

    def stopProtocol(self):
        log.append("udp client stopped")
        self.done.callback(None)


class RefusedClient(protocol.DatagramProtocol):
    """A connected UDP socket pointed at a closed port hears connectionRefused."""

    def __init__(self, port, done):
        self.port = port
        self.done = done

    def startProtocol(self):
        self.transport.connect("127.0.0.1", self.port)
        self.transport.write(b"anyone?")
        # The first datagram draws the ICMP error; the second write reports it.
        self.transport.write(b"anyone there?")

    def connectionRefused(self):
        log.append("udp refused")
        self.transport.stopListening()
        if not self.done.called:
            self.done.callback(None)


class EchoClient(protocol.Protocol):
    """docs/core/examples/echoclient.py"""

    def connectionMade(self):
        self.transport.write(b"hello, world!")

    def dataReceived(self, data):
        log.append(f"tcp server said: {data!r}")
        self.transport.loseConnection()


class EchoClientFactory(protocol.ClientFactory):
    protocol = EchoClient

    def __init__(self, done):
        self.done = done

    def startedConnecting(self, connector):
        log.append(f"started connecting: {connector.getDestination().type}")

    def clientConnectionFailed(self, connector, reason):
        log.append(f"connection failed: {reason.type.__name__}")
        self.done.callback(None)

    def clientConnectionLost(self, connector, reason):
        log.append(
            f"connection lost: {reason.type.__name__} "
            f"{reason.check(ConnectionDone) is ConnectionDone}"
        )
        self.done.callback(None)


class Status(protocol.Protocol):
    def connectionMade(self):
        finished.addCallback(self.report)

    def report(self, _):
        self.transport.write(("\n".join(log) + "\nEND\n").encode())
        self.transport.loseConnection()
        return _


@defer.inlineCallbacks
def selftest(echo_port, echo_factory):
    udp_server = reactor.listenUDP(0, UDPEcho(), interface="127.0.0.1")
    udp_port = udp_server.getHost().port
    log.append(f"udp server host type: {udp_server.getHost().type}")
    done = defer.Deferred()
    reactor.listenUDP(0, UDPEchoClient(udp_port, done), interface="127.0.0.1")
    yield done
    yield udp_server.stopListening()
    # A closed port: the one the client used, now stopped.
    refused = defer.Deferred()
    reactor.listenUDP(0, RefusedClient(udp_port, refused), interface="127.0.0.1")
    yield refused
    done = defer.Deferred()
    reactor.connectTCP("127.0.0.1", echo_port, EchoClientFactory(done))
    yield done
    done = defer.Deferred()
    reactor.connectTCP("127.0.0.1", udp_port, EchoClientFactory(done))
    yield done
    # (echoserv's numProtocols is not logged: whether the server has seen the client's
    # close yet, or the harness's own connections, is a matter of timing.)
    print("\n".join(log))
    finished.callback(None)


def main(echo_port, status_port):
    factory = EchoFactory()
    reactor.listenTCP(echo_port, factory, interface="127.0.0.1")
    reactor.listenTCP(status_port, protocol.Factory.forProtocol(Status), interface="127.0.0.1")
    reactor.callWhenRunning(selftest, echo_port, factory)
    reactor.run()


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]))
