"""The twisted.web.template howto, assembled: XMLFile and XMLString loaders, renderers,
slots, transparent tags, attributes built from slots, iteration with clone(), Deferreds in
renderers, renderElement, nested Elements and tags.*."""

import sys

from twisted.internet import defer, reactor, task
from twisted.python.filepath import FilePath
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Site
from twisted.web.template import (
    CDATA,
    CharRef,
    Comment,
    Element,
    TagLoader,
    XMLFile,
    XMLString,
    flattenString,
    renderElement,
    renderer,
    slot,
    tags,
)

WIDGETS = [
    ("1", "gear", "Gizmo & Co"),
    ("2", "spring", '"Boing"'),
    ("3", "gear", "<Sprocket>"),
]


class Header(Element):
    loader = XMLString(
        '<h1 xmlns:t="http://twistedmatrix.com/ns/twisted.web.template/0.1" t:render="header">'
        "<t:slot name='text' /></h1>"
    )

    def __init__(self, text):
        super().__init__()
        self.text = text

    @renderer
    def header(self, request, tag):
        return tag.fillSlots(text=self.text)


class Footer(Element):
    """An Element whose loader is built from tags.*, rendered inside another Element."""

    loader = TagLoader(
        tags.footer(
            tags.span(render="year"),
            " ",
            tags.a(href="/about", title="About <us>")("about"),
            Comment(" end "),
            CDATA("raw <b> & </b>"),
            CharRef(169),
        )
    )

    @renderer
    def year(self, request, tag):
        return tag("2024")


class WidgetsPage(Element):
    loader = XMLFile(FilePath(__file__).sibling("widgets.xml"))

    def __init__(self, kind=None):
        super().__init__()
        self.kind = kind

    def lookup(self):
        rows = [w for w in WIDGETS if self.kind in (None, w[1])]
        return task.deferLater(reactor, 0, lambda: rows)

    @renderer
    def title(self, request, tag):
        return "Widgets" if self.kind is None else "Widgets: " + self.kind

    @renderer
    def header(self, request, tag):
        # Replace the placeholder <div> with a nested Element.
        return Header("All the widgets")

    @renderer
    def widgets(self, request, tag):
        def rows(found):
            for number, kind, name in found:
                yield tag.clone().fillSlots(id=number, kind=kind, name=name)

        return self.lookup().addCallback(rows)

    @renderer
    def summary(self, request, tag):
        return self.lookup().addCallback(lambda rows: tag.fillSlots(total=str(len(rows))))

    @renderer
    def note(self, request, tag):
        if self.kind:
            tag.fillSlots(tip=f"only {self.kind}")
        return tag

    @renderer
    def footer(self, request, tag):
        return Footer()


class ListElement(Element):
    """Renderers that return lists, tags built on the fly, and a slot in an attribute."""

    loader = XMLString(
        '<div xmlns:t="http://twistedmatrix.com/ns/twisted.web.template/0.1">'
        '<t:transparent t:render="items" />'
        '<p t:render="attrs">x</p>'
        '<p><t:attr name="data-x"><t:transparent t:render="attrValue" /></t:attr>y</p>'
        '<ol t:render="cards" />'
        "</div>"
    )

    @renderer
    def items(self, request, tag):
        return [tags.b(str(n)) for n in range(3)] + [tags.i("end", class_="last")]

    @renderer
    def attrs(self, request, tag):
        tag.attributes[b"id"] = b"p1"
        tag(tags.em("<&>"), " and ", tags.br())
        return tag

    @renderer
    def cards(self, request, tag):
        def card(n):
            made = Element(loader=TagLoader(tags.li(slot("n"), class_=slot("c"))))
            return defer.succeed(made.loader.load()[0].fillSlots(n=str(n), c="c%d" % n))

        return tag(*[card(n) for n in (1, 2)], Header("h\u00e9"))

    @renderer
    def attrValue(self, request, tag):
        return defer.succeed("v&1")


class Kind(Resource):
    isLeaf = True

    def render_GET(self, request):
        kind = request.postpath[0].decode() if request.postpath and request.postpath[0] else None
        return renderElement(request, WidgetsPage(kind))


class Plain(Resource):
    isLeaf = True

    def render_GET(self, request):
        return renderElement(request, ListElement(), doctype=None)


class Flattened(Resource):
    isLeaf = True

    def render_GET(self, request):
        d = flattenString(request, Footer())
        d.addCallback(lambda data: request.write(b"[" + data + b"]"))
        d.addCallback(lambda _: request.finish())
        return NOT_DONE_YET


class MissingRenderer(Element):
    loader = XMLString(
        '<p xmlns:t="http://twistedmatrix.com/ns/twisted.web.template/0.1" t:render="nope" />'
    )


class Missing(Resource):
    isLeaf = True

    def render_GET(self, request):
        return renderElement(request, MissingRenderer())


root = Resource()
root.putChild(b"", Kind())
root.putChild(b"kind", Kind())
root.putChild(b"plain", Plain())
root.putChild(b"flat", Flattened())
root.putChild(b"missing", Missing())

reactor.listenTCP(int(sys.argv[1]), Site(root), interface="127.0.0.1")
reactor.run()
