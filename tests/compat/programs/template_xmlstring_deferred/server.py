"""A catalogue page: Element + XMLString + renderElement, renderers that return Deferreds."""

import sys

from twisted.internet import defer, endpoints, reactor, task
from twisted.web.resource import Resource
from twisted.web.server import Site
from twisted.web.template import Element, XMLString, renderElement, renderer, tags

ITEMS = {
    1: ("Café crème", 3.5, "hot & sweet"),
    2: ("<script>alert(1)</script>", 0.0, "quotes \" and 'apostrophes'"),
    3: ("Thé \u2603", 2.25, "snow-man -- tea"),
}


def fetch_items():
    """A database lookup that answers later, as a Deferred."""
    return task.deferLater(reactor, 0.01, lambda: sorted(ITEMS.items()))


class Catalogue(Element):
    loader = XMLString(
        """<html xmlns:t="http://twistedmatrix.com/ns/twisted.web.template/0.1">
<head><title t:render="title" /></head>
<body>
<h1>Catalogue</h1>
<!-- generated -->
<ul>
<li t:render="items"><a><t:attr name="href">/item/<t:slot name="id" /></t:attr
><t:slot name="name" /></a>
 costs <span class="price"><t:slot name="price" /></span></li>
</ul>
<p t:render="footer">Served by </p>
</body>
</html>"""
    )

    @renderer
    def title(self, request, tag):
        return defer.succeed(tag("All ", len(ITEMS).__str__(), " items"))

    @renderer
    def items(self, request, tag):
        def fill(rows):
            for number, (name, price, _) in rows:
                yield tag.clone().fillSlots(id=str(number), name=name, price=f"{price:.2f}")

        return fetch_items().addCallback(fill)

    @renderer
    def footer(self, request, tag):
        d = defer.Deferred()
        reactor.callLater(0.01, d.callback, tag("a template", tags.b(" & friends")))
        return d


class Detail(Element):
    loader = XMLString(
        """<div xmlns:t="http://twistedmatrix.com/ns/twisted.web.template/0.1" t:render="item">
<h2><t:slot name="name" /></h2>
<p title="note: {note}"><t:slot name="note" /></p>
<p><t:slot name="missing" default="(no picture)" /></p>
</div>"""
    )

    def __init__(self, number):
        super().__init__()
        self.number = number

    @renderer
    @defer.inlineCallbacks
    def item(self, request, tag):
        yield task.deferLater(reactor, 0.01, lambda: None)
        name, _, note = ITEMS[self.number]
        return tag.fillSlots(name=name, note=note)


class Broken(Element):
    loader = XMLString(
        '<p xmlns:t="http://twistedmatrix.com/ns/twisted.web.template/0.1">'
        'ok <b t:render="fails" /></p>'
    )

    @renderer
    def fails(self, request, tag):
        return task.deferLater(reactor, 0.01, lambda: 1 // 0)


class Page(Resource):
    isLeaf = True

    def __init__(self, make):
        super().__init__()
        self.make = make

    def render_GET(self, request):
        return renderElement(request, self.make(request))


class Items(Resource):
    def getChild(self, name, request):
        try:
            number = int(name)
        except ValueError:
            return Resource.getChild(self, name, request)
        if number not in ITEMS:
            return Resource.getChild(self, name, request)
        return Page(lambda request: Detail(number))


root = Resource()
root.putChild(b"", Page(lambda request: Catalogue()))
root.putChild(b"item", Items())
root.putChild(b"broken", Page(lambda request: Broken()))

endpoint = endpoints.TCP4ServerEndpoint(reactor, int(sys.argv[1]), interface="127.0.0.1")
endpoint.listen(Site(root))
reactor.run()
