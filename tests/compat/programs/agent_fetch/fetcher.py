"""An Agent in the same process as the site it asks: /fetch reads /data with readBody."""

import sys

from twisted.internet import defer, reactor
from twisted.web import resource, server
from twisted.web.client import Agent, readBody
from twisted.web.http_headers import Headers


class Data(resource.Resource):
    isLeaf = True

    def render_GET(self, request):
        request.setHeader(b"content-type", b"text/plain")
        agent = request.getHeader(b"user-agent") or b"none"
        return b"data for " + agent


class Fetch(resource.Resource):
    isLeaf = True

    def __init__(self, base, dead):
        super().__init__()
        self.agent = Agent(reactor)
        self.base = base
        self.dead = dead

    @defer.inlineCallbacks
    def fetch(self, url):
        headers = Headers({b"User-Agent": [b"compat-fetcher"]})
        response = yield self.agent.request(b"GET", url, headers)
        body = yield readBody(response)
        kind = response.headers.getRawHeaders(b"content-type", [b"?"])[0]
        return b"%d %s %s [%s] length=%r\n" % (
            response.code,
            response.phrase,
            body,
            kind,
            response.length,
        )

    def render_GET(self, request):
        path = request.args.get(b"path", [b"/data"])[0]
        base = self.dead if b"dead" in request.args else self.base
        d = self.fetch(base + path)

        def failed(failure):
            request.setResponseCode(502)
            return b"failed: " + type(failure.value).__name__.encode()

        d.addErrback(failed)
        d.addCallback(request.write)
        d.addCallback(lambda _: request.finish())
        return server.NOT_DONE_YET


port, dead = int(sys.argv[1]), int(sys.argv[2])
root = resource.Resource()
root.putChild(b"data", Data())
root.putChild(b"fetch", Fetch(b"http://127.0.0.1:%d" % port, b"http://127.0.0.1:%d" % dead))
reactor.listenTCP(port, server.Site(root), interface="127.0.0.1")
reactor.run()
