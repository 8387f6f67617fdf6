"""Client endpoints: TCP4ClientEndpoint + connectProtocol to an echo server, in one process."""

import sys

from twisted.internet import defer, protocol, reactor
from twisted.internet.endpoints import TCP4ClientEndpoint, TCP4ServerEndpoint, connectProtocol
from twisted.web import resource, server


class Echo(protocol.Protocol):
    def dataReceived(self, data):
        self.transport.write(data)


class Collect(protocol.Protocol):
    def __init__(self, expected):
        self.expected = expected
        self.received = b""
        self.done = defer.Deferred()

    def dataReceived(self, data):
        self.received += data
        if len(self.received) >= self.expected:
            self.transport.loseConnection()

    def connectionLost(self, reason):
        self.done.callback(self.received)


class Relay(resource.Resource):
    isLeaf = True

    def __init__(self, echo_port):
        super().__init__()
        self.echo_port = echo_port

    @defer.inlineCallbacks
    def relay(self, request, payload):
        endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", self.echo_port)
        client = yield connectProtocol(endpoint, Collect(len(payload)))
        peer = client.transport.getPeer()
        client.transport.writeSequence([payload[:3], payload[3:]])
        echoed = yield client.done
        return b"echoed %s via port match %r\n" % (echoed, peer.port == self.echo_port)

    def render_POST(self, request):
        d = self.relay(request, request.content.read())
        d.addCallback(request.write)
        d.addCallback(lambda _: request.finish())
        return server.NOT_DONE_YET


web, echo = int(sys.argv[1]), int(sys.argv[2])
TCP4ServerEndpoint(reactor, echo, interface="127.0.0.1").listen(protocol.Factory.forProtocol(Echo))
TCP4ServerEndpoint(reactor, web, interface="127.0.0.1").listen(server.Site(Relay(echo)))
reactor.run()
