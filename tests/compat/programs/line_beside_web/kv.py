"""A key-value store with a line protocol beside a web view of the same data."""

import sys

from twisted.internet import endpoints, protocol, reactor
from twisted.protocols.basic import LineReceiver
from twisted.web import resource, server

store = {}


class KVProtocol(LineReceiver):
    def connectionMade(self):
        peer = self.transport.getPeer()
        self.sendLine(b"HELLO " + peer.host.encode())

    def lineReceived(self, line):
        command, _, rest = line.partition(b" ")
        handler = getattr(self, "do_" + command.decode("ascii", "replace").upper(), None)
        if handler is None:
            self.sendLine(b"ERROR unknown command " + command)
        else:
            handler(rest)

    def do_SET(self, rest):
        key, _, value = rest.partition(b" ")
        store[key] = value
        self.sendLine(b"STORED")

    def do_GET(self, rest):
        if rest in store:
            self.sendLine(b"VALUE " + store[rest])
        else:
            self.sendLine(b"MISSING")

    def do_QUIT(self, rest):
        self.sendLine(b"BYE")
        self.transport.loseConnection()


class KVFactory(protocol.Factory):
    protocol = KVProtocol


class KeyPage(resource.Resource):
    isLeaf = True

    def render_GET(self, request):
        key = b"/".join(request.postpath)
        if key not in store:
            request.setResponseCode(404)
            return b"no such key\n"
        request.setHeader(b"content-type", b"application/octet-stream")
        return store[key]

    def render_PUT(self, request):
        store[b"/".join(request.postpath)] = request.content.read()
        request.setResponseCode(201)
        return b"created\n"


root = resource.Resource()
root.putChild(b"keys", KeyPage())

web_port, line_port = int(sys.argv[1]), int(sys.argv[2])
endpoints.TCP4ServerEndpoint(reactor, web_port).listen(server.Site(root))
endpoints.TCP4ServerEndpoint(reactor, line_port, interface="127.0.0.1").listen(KVFactory())
reactor.run()
