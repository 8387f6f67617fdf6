"""A forward proxy (Proxy on an HTTPFactory) in front of a small site, in one process.

The proxy's default http port is pointed at the site, so ``GET http://127.0.0.1/x`` through
the proxy reaches it (a ProxyRequest subclass setting ``ports``, as Twisted allows).
"""

import sys

from twisted.internet import reactor
from twisted.web import http, proxy, resource, server


class Echo(resource.Resource):
    isLeaf = True

    def render(self, request):
        request.setHeader(b"content-type", b"text/plain")
        lines = [
            b"method=" + request.method,
            b"uri=" + request.uri,
            b"thing=" + (request.getHeader(b"x-thing") or b"-"),
            b"proxy-connection=" + (request.getHeader(b"proxy-connection") or b"-"),
            b"body=" + request.content.read(),
        ]
        return b"\n".join(lines)


class Missing(resource.Resource):
    isLeaf = True

    def render_GET(self, request):
        request.setResponseCode(404, b"Not Around")
        request.setHeader(b"content-type", b"text/plain")
        request.setHeader(b"x-origin", b"yes")
        request.addCookie(b"a", b"1")
        request.addCookie(b"b", b"2")
        return b"gone"


root = resource.Resource()
root.putChild(b"echo", Echo())
root.putChild(b"missing", Missing())
origin = reactor.listenTCP(int(sys.argv[2]), server.Site(root), interface="127.0.0.1")


class ToOrigin(proxy.ProxyRequest):
    ports = {b"http": origin.getHost().port}


class OriginProxy(proxy.Proxy):
    requestFactory = ToOrigin


factory = http.HTTPFactory()
factory.protocol = OriginProxy
reactor.listenTCP(int(sys.argv[1]), factory, interface="127.0.0.1")
reactor.run()
