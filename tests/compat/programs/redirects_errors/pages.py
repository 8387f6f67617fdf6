"""Redirects and error pages: util.Redirect, redirectTo, ErrorPage, NoResource, Forbidden."""

import sys

from twisted.internet import reactor
from twisted.internet.endpoints import serverFromString
from twisted.web import resource, server, util
from twisted.web.resource import ErrorPage, ForbiddenResource, NoResource


class Moved(resource.Resource):
    isLeaf = True

    def render_GET(self, request):
        return util.redirectTo(b"/new-home?from=" + request.path, request)


class Permanent(resource.Resource):
    isLeaf = True

    def render_GET(self, request):
        request.setResponseCode(301)
        request.setHeader(b"location", b"/new-home")
        return b""


class Teapot(resource.Resource):
    isLeaf = True

    def render_GET(self, request):
        request.setResponseCode(418, b"I'm a teapot")
        request.setHeader(b"content-type", b"text/plain")
        return b"short and stout\n"


class Strict(resource.Resource):
    isLeaf = True

    def render_GET(self, request):
        if request.getHeader(b"x-token") != b"secret":
            return ForbiddenResource("You need the token.").render(request)
        return b"welcome in\n"


class NotBytes(resource.Resource):
    isLeaf = True

    def render_GET(self, request):
        return 12345


root = resource.Resource()
root.putChild(b"new-home", util.Redirect(b"/landing"))
root.putChild(b"landing", resource.Resource())
root.putChild(b"old", Moved())
root.putChild(b"permanent", Permanent())
root.putChild(b"teapot", Teapot())
root.putChild(b"gone", ErrorPage(410, "Gone", "This page has been removed."))
root.putChild(b"nothing", NoResource("Nothing to see here."))
root.putChild(b"strict", Strict())
root.putChild(b"not-bytes", NotBytes())

serverFromString(reactor, f"tcp:{sys.argv[1]}:interface=127.0.0.1").listen(server.Site(root))
reactor.run()
