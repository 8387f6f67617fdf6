"""A pooled Agent behind RedirectAgent posting files to the program's own site."""

import io
import sys

from twisted.internet import defer, reactor
from twisted.web import resource, server, util
from twisted.web.client import (
    Agent,
    FileBodyProducer,
    HTTPConnectionPool,
    RedirectAgent,
    readBody,
)


class Echo(resource.Resource):
    isLeaf = True

    def render_POST(self, request):
        body = request.content.read()
        length = request.getHeader(b"content-length")
        return b"got %d bytes (content-length %s)" % (len(body), length)

    def render_GET(self, request):
        return b"echo page"


class Peer(resource.Resource):
    isLeaf = True

    def render_GET(self, request):
        return b"%d" % request.getClientAddress().port


class Run(resource.Resource):
    isLeaf = True

    def __init__(self, base):
        super().__init__()
        self.pool = HTTPConnectionPool(reactor)
        self.agent = RedirectAgent(Agent(reactor, pool=self.pool))
        self.base = base

    @defer.inlineCallbacks
    def run(self):
        lines = []
        peers = set()
        for _ in range(3):
            response = yield self.agent.request(b"GET", self.base + b"/peer")
            peers.add((yield readBody(response)))
        lines.append(b"connections used: %d" % len(peers))
        producer = FileBodyProducer(io.BytesIO(b"z" * 100000))
        response = yield self.agent.request(b"POST", self.base + b"/echo", None, producer)
        lines.append(b"post: %d %s" % (response.code, (yield readBody(response))))
        response = yield self.agent.request(b"GET", self.base + b"/old")
        body = yield readBody(response)
        previous = response.previousResponse
        lines.append(b"redirect: %d %s from %d" % (response.code, body, previous.code))
        try:
            yield self.agent.request(b"POST", self.base + b"/old")
        except Exception as e:
            reasons = [type(reason.value).__name__ for reason in e.reasons]
            name = type(e).__name__.encode()
            lines.append(b"post redirect: %s %s" % (name, repr(reasons).encode()))
        yield self.pool.closeCachedConnections()
        return b"\n".join(lines) + b"\n"

    def render_GET(self, request):
        d = self.run()
        d.addCallback(request.write)
        d.addErrback(lambda f: request.write(b"error: " + repr(f.value).encode()))
        d.addCallback(lambda _: request.finish())
        return server.NOT_DONE_YET


port = int(sys.argv[1])
base = b"http://127.0.0.1:%d" % port
root = resource.Resource()
root.putChild(b"echo", Echo())
root.putChild(b"peer", Peer())
root.putChild(b"old", util.Redirect(b"/echo"))
root.putChild(b"run", Run(base))
reactor.listenTCP(port, server.Site(root), interface="127.0.0.1")
reactor.run()
