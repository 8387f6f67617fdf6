"""A web front for a line server in the same process, reached with connectTCP."""

import sys

from twisted.internet import defer, protocol, reactor
from twisted.protocols.basic import LineReceiver
from twisted.web import resource, server

ANSWERS = {b"meaning": b"42", b"colour": b"blue"}


class OracleServer(LineReceiver):
    def lineReceived(self, line):
        self.sendLine(ANSWERS.get(line, b"unknown"))
        self.transport.loseConnection()


class AskProtocol(LineReceiver):
    def connectionMade(self):
        self.sendLine(self.factory.question)

    def lineReceived(self, line):
        self.factory.answer = line


class AskFactory(protocol.ClientFactory):
    protocol = AskProtocol

    def __init__(self, question):
        self.question = question
        self.answer = None
        self.done = defer.Deferred()

    def clientConnectionLost(self, connector, reason):
        self.done.callback((self.answer, reason.type.__name__))

    def clientConnectionFailed(self, connector, reason):
        self.done.errback(reason)


class Ask(resource.Resource):
    isLeaf = True

    def __init__(self, port):
        super().__init__()
        self.port = port

    def render_GET(self, request):
        factory = AskFactory(request.args[b"q"][0])
        reactor.connectTCP("127.0.0.1", self.port, factory, timeout=5)

        def answered(result):
            answer, how = result
            request.write(b"answer: %s (connection ended with %s)\n" % (answer, how.encode()))
            request.finish()

        def failed(failure):
            request.setResponseCode(502)
            request.write(b"oracle unreachable: " + failure.type.__name__.encode())
            request.finish()

        factory.done.addCallbacks(answered, failed)
        return server.NOT_DONE_YET


web, oracle, closed = (int(arg) for arg in sys.argv[1:4])
root = resource.Resource()
root.putChild(b"ask", Ask(oracle))
root.putChild(b"broken", Ask(closed))
oracle_factory = protocol.ServerFactory()
oracle_factory.protocol = OracleServer
reactor.listenTCP(oracle, oracle_factory, interface="127.0.0.1")
reactor.listenTCP(web, server.Site(root), interface="127.0.0.1")
reactor.run()
