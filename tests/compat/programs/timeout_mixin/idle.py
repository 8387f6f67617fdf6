"""policies.TimeoutMixin: a line server that hangs up on idle clients."""

import sys

from twisted.internet import protocol, reactor
from twisted.protocols import basic, policies
from twisted.web import resource, server

closed = []


class Impatient(basic.LineReceiver, policies.TimeoutMixin):
    def connectionMade(self):
        self.setTimeout(0.2)
        self.sendLine(b"say something within 0.2 s")

    def lineReceived(self, line):
        self.resetTimeout()
        if line == b"patience":
            self.setTimeout(None)
            self.sendLine(b"no more timeout; say bye")
        elif line == b"bye":
            self.sendLine(b"bye")
            self.transport.loseConnection()
        else:
            self.sendLine(b"ok: " + line)

    def timeoutConnection(self):
        self.sendLine(b"too slow")
        closed.append("timed out")
        policies.TimeoutMixin.timeoutConnection(self)

    def connectionLost(self, reason):
        self.setTimeout(None)


class Closed(resource.Resource):
    isLeaf = True

    def render_GET(self, request):
        return b"%d timed out\n" % len(closed)


# The line port first: once the web port answers, both are up.
reactor.listenTCP(int(sys.argv[2]), protocol.Factory.forProtocol(Impatient), interface="127.0.0.1")
reactor.listenTCP(int(sys.argv[1]), server.Site(Closed()), interface="127.0.0.1")
reactor.run()
