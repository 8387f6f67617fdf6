"""ReconnectingClientFactory: a client that keeps coming back to a flaky server."""

import sys

from twisted.internet import defer, protocol, reactor
from twisted.protocols.basic import LineReceiver
from twisted.web import resource, server

events = []
second_session = defer.Deferred()


class FlakyServer(LineReceiver):
    # Greets, then hangs up on the first visitor; keeps later ones.
    def connectionMade(self):
        self.factory.visits += 1
        self.sendLine(b"visit %d" % self.factory.visits)
        if self.factory.visits == 1:
            self.transport.loseConnection()


class Follower(LineReceiver):
    def lineReceived(self, line):
        events.append("heard " + line.decode())
        if line == b"visit 2":
            second_session.callback(None)


class FollowerFactory(protocol.ReconnectingClientFactory):
    protocol = Follower
    initialDelay = 0.05
    maxDelay = 0.1
    delay = initialDelay

    def buildProtocol(self, addr):
        events.append(f"connected to {addr.host}")
        self.resetDelay()
        return super().buildProtocol(addr)

    def clientConnectionLost(self, connector, reason):
        events.append("lost: " + reason.type.__name__)
        super().clientConnectionLost(connector, reason)

    def clientConnectionFailed(self, connector, reason):
        # The server is not up yet for the first attempts; how many depends on timing.
        if "refused" not in events:
            events.append("refused")
        super().clientConnectionFailed(connector, reason)


class Events(resource.Resource):
    isLeaf = True

    def render_GET(self, request):
        def show(_):
            request.write("\n".join(events).encode() + b"\n")
            request.finish()

        second_session.addCallback(show)
        return server.NOT_DONE_YET


web, lines = int(sys.argv[1]), int(sys.argv[2])
flaky = protocol.ServerFactory()
flaky.protocol = FlakyServer
flaky.visits = 0

reactor.connectTCP("127.0.0.1", lines, FollowerFactory())
# The server comes up only after the client has tried and failed.
reactor.callLater(0.2, reactor.listenTCP, lines, flaky, interface="127.0.0.1")
reactor.listenTCP(web, server.Site(Events()), interface="127.0.0.1")
reactor.run()
