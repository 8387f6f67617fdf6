"""A dashboard: XMLFile(FilePath), nested elements, Deferreds and generators in renderers."""

import os
import sys

from twisted.internet import defer, endpoints, reactor, task
from twisted.python.filepath import FilePath
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Site
from twisted.web.template import (
    CharRef,
    Comment,
    Element,
    TagLoader,
    XMLFile,
    flatten,
    flattenString,
    renderElement,
    renderer,
    tags,
)

HERE = FilePath(os.path.dirname(os.path.abspath(__file__)))


class Panel(Element):
    """A panel with its own template (a TagLoader) and a value computed later."""

    def __init__(self, name, value):
        super().__init__(
            TagLoader(tags.section(tags.h2(name), tags.p(render="value"), class_="panel"))
        )
        self.reading = value

    @renderer
    def value(self, request, tag):
        return task.deferLater(reactor, 0.005, lambda: tag(str(self.reading), CharRef(176)))


class Dashboard(Element):
    loader = XMLFile(HERE.child("page.xml"))

    @renderer
    def page(self, request, tag):
        query = request.args.get(b"q", [b""])[0].decode("utf-8")
        return tag.fillSlots(title="Dashboard <live>", query=query)

    @renderer
    def panels(self, request, tag):
        names = ["kitchen", "garden", "attic"]
        d = task.deferLater(reactor, 0.005, lambda: names)
        d.addCallback(
            lambda found: (
                [Panel(name, 20 + len(name)) for name in found] + [Comment(" end of panels -- ")]
            )
        )
        return d


class Dashboards(Resource):
    isLeaf = True

    def render_GET(self, request):
        return renderElement(request, Dashboard(), doctype=b"<!DOCTYPE html>")


class Fragment(Resource):
    """flatten() straight to request.write, then finish: the lower-level way."""

    isLeaf = True

    def render_GET(self, request):
        request.setHeader(b"content-type", b"text/html; charset=utf-8")
        d = flatten(request, tags.div(Panel("cellar", 12), id="x&y"), request.write)
        d.addCallback(lambda _: request.finish())
        return NOT_DONE_YET


class Text(Resource):
    """flattenString() and a bytes result."""

    isLeaf = True

    def render_GET(self, request):
        def done(body):
            request.setHeader(b"content-type", b"text/plain; charset=utf-8")
            request.write(b"%d bytes: " % len(body) + body)
            request.finish()

        flattenString(request, tags.p("a < b", tags.br(), defer.succeed("done"))).addCallback(done)
        return NOT_DONE_YET


root = Resource()
root.putChild(b"", Dashboards())
root.putChild(b"fragment", Fragment())
root.putChild(b"text", Text())

endpoint = endpoints.TCP4ServerEndpoint(reactor, int(sys.argv[1]), interface="127.0.0.1")
endpoint.listen(Site(root))
reactor.run()
