"""A test server that misbehaves on purpose: it drops or aborts connections."""

import sys

from twisted.internet import reactor
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.web import resource, server


class Drop(resource.Resource):
    isLeaf = True

    def render_GET(self, request):
        request.transport.loseConnection()
        return server.NOT_DONE_YET


class HalfThenDrop(resource.Resource):
    isLeaf = True

    def render_GET(self, request):
        request.setHeader(b"content-length", b"100")
        request.write(b"only part of it")
        reactor.callLater(0.02, request.channel.transport.loseConnection)
        return server.NOT_DONE_YET


class Abort(resource.Resource):
    isLeaf = True

    def render_GET(self, request):
        request.transport.abortConnection()
        return server.NOT_DONE_YET


class Peer(resource.Resource):
    isLeaf = True

    def render_GET(self, request):
        peer = request.transport.getPeer()
        host = request.transport.getHost()
        return b"%s %s %s %s\n" % (
            peer.type.encode(),
            peer.host.encode(),
            host.type.encode(),
            host.host.encode(),
        )


root = resource.Resource()
root.putChild(b"drop", Drop())
root.putChild(b"half", HalfThenDrop())
root.putChild(b"abort", Abort())
root.putChild(b"peer", Peer())
TCP4ServerEndpoint(reactor, int(sys.argv[1]), interface="127.0.0.1").listen(server.Site(root))
reactor.run()
