"""What a Site answers on the wire where a program can see it: asterisk targets, CONNECT,
form arguments, empty bodies, WSGI without a content type, a second start_response,
traversal after a miss."""

import sys

from twisted.internet import reactor
from twisted.internet.endpoints import serverFromString
from twisted.web import pages, resource, server, wsgi


class Args(resource.Resource):
    isLeaf = True

    def render(self, request):
        request.setHeader(b"content-type", b"text/plain")
        return repr(sorted(request.args.items())).encode()


class Empty(resource.Resource):
    isLeaf = True

    def render_GET(self, request):
        return b""


class Links(resource.Resource):
    isLeaf = True

    def render_GET(self, request):
        request.setHeader(b"content-type", b"text/plain")
        return b"/".join(request.prepath) + b" " + request.childLink(b"x")


def untyped(environ, start_response):
    start_response("200 OK", [])
    return [b"no type"]


def restarted(environ, start_response):
    start_response("500 Oops", [("Content-Type", "text/html")])
    start_response("201 Created", [("Content-Type", "text/plain")])
    return [b"second"]


class Where(resource.Resource):
    def getChild(self, name, request):
        return pages.notFound()


class ReportingSite(server.Site):
    """Says how far traversal went: through a 404 page, to the end of the path."""

    def getResourceFor(self, request):
        found = server.Site.getResourceFor(self, request)
        request.setHeader(b"x-prepath", b"/".join(request.prepath))
        request.setHeader(b"x-postpath", b"/".join(request.postpath))
        return found


pool = reactor.getThreadPool()
root = resource.Resource()
root.putChild(b"args", Args())
root.putChild(b"empty", Empty())
root.putChild(b"links", Links())
root.putChild(b"where", Where())
root.putChild(b"untyped", wsgi.WSGIResource(reactor, pool, untyped))
root.putChild(b"restarted", wsgi.WSGIResource(reactor, pool, restarted))
serverFromString(reactor, f"tcp:{sys.argv[1]}:interface=127.0.0.1").listen(ReportingSite(root))
reactor.run()
