"""treadle.web.template: trees, loaders, elements, flattening, renderElement, streaming.

The differential tests build the same tree with real Twisted's ``twisted.web.template``
and with treadle's and compare the bytes ``flattenString`` produces.
"""

from __future__ import annotations

import asyncio
import http.client
import socket
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import twisted.internet.defer as twisted_defer
import twisted.web.template as twisted_template

from tests.conftest import ServerThread, host_port, wait_for
from treadle.internet import defer
from treadle.python.failure import Failure
from treadle.python.filepath import FilePath
from treadle.web import template
from treadle.web._template_errors import (
    FlattenerError,
    MissingRenderMethod,
    MissingTemplateLoader,
    UnfilledSlot,
    UnsupportedType,
)
from treadle.web.resource import Resource
from treadle.web.server import Request, Site
from treadle.web.template import (
    CDATA,
    CharRef,
    Comment,
    Element,
    Tag,
    TagLoader,
    XMLFile,
    XMLString,
    flatten,
    flattenString,
    renderElement,
    renderer,
    slot,
    tags,
)

T_NS = "http://twistedmatrix.com/ns/twisted.web.template/0.1"


def result_of(d: Any) -> Any:
    """The result of an already-fired Deferred (treadle's or Twisted's); fail if pending."""
    box: list[Any] = []
    d.addBoth(box.append)
    assert box, "the Deferred has not fired"
    return box[0]


def flat(root: Any, request: Any = None) -> bytes:
    out = result_of(flattenString(request, root))
    if isinstance(out, Failure):
        out.raiseException()
    assert isinstance(out, bytes)
    return out


# -- differential: the same tree under Twisted and treadle ---------------------------------


def _element_tree(t: types.ModuleType, d: types.ModuleType) -> Any:
    class Page(t.Element):  # type: ignore[name-defined,misc]
        loader = t.XMLString(
            f"""<html xmlns:t="{T_NS}" xmlns:svg="http://www.w3.org/2000/svg" lang="en">
<!-- a comment -->
<body t:render="body"><h1><t:slot name="title" /></h1>
<a><t:attr name="href">/item/<t:slot name="id" />?x=1&amp;y="2"</t:attr>link</a>
<ul><li t:render="items"><t:slot name="item" /></li></ul>
<p t:render="later">later: </p>
<t:transparent>bare <b>bold</b></t:transparent>
<svg:svg width="1"><svg:circle r="2"/></svg:svg>
<p title="plain &lt; &quot;attr&quot;"><t:slot name="missing" default="dflt" /></p>
<script><![CDATA[if (a < b && c) {{ x = "]]]]><![CDATA[>"; }}]]></script>
<br /><hr></hr><img src="x.png"/>
</body></html>"""
        )

        @t.renderer  # type: ignore[misc]
        def body(self, request: Any, tag: Any) -> Any:
            return tag.fillSlots(title="Caf\u00e9 <&> \u2603", id="7&8")

        @t.renderer  # type: ignore[misc]
        def items(self, request: Any, tag: Any) -> Any:
            for word in ["one", "tw<o>", "\U0001f600"]:
                yield tag.clone().fillSlots(item=word)

        @t.renderer  # type: ignore[misc]
        def later(self, request: Any, tag: Any) -> Any:
            return d.succeed(tag("fired ", t.tags.em("em")))

    return Page()


DIFFERENTIAL_TREES: dict[str, Callable[[types.ModuleType, types.ModuleType], Any]] = {
    "unicode text": lambda t, d: ["caf\u00e9 \u2603 \U0001f600 <&>\"'", b"raw <bytes> &"],
    "charref": lambda t, d: t.tags.p(t.CharRef(9731), t.CharRef(0x1F600), "x"),
    "cdata with end marker": lambda t, d: t.CDATA("a]]>b]]>c <&>"),
    "comment with dashes": lambda t, d: [t.Comment("a -- b --> c-"), t.Comment(""), t.Comment("-")],
    "attributes": lambda t, d: t.tags.a(
        "x", href="/a?b=1&c=<2>", title='say "hi"', class_="c", data_x=b'b&<>"'
    ),
    "slot in attribute": lambda t, d: t.tags.div(
        t.tags.a(href=["/u/", t.slot("user")], title=t.slot("user"))
    ).fillSlots(user='bob & "al" <x>'),
    "tag in attribute": lambda t, d: t.tags.div(
        title=t.tags.b("bold & <x>", class_='c"'), alt=t.tags.transparent("t&", t.CharRef(65))
    ),
    "comment and cdata in attribute": lambda t, d: t.tags.div(
        a=t.Comment("c&<"), b=t.CDATA('d&<"]]>'), c=t.tags.span(title=t.tags.i("deep&"))
    ),
    "void elements": lambda t, d: [t.tags.br(), t.tags.img(src="a"), t.tags.br("child")],
    "empty non-void": lambda t, d: [t.tags.div(), t.tags.p(class_="x"), t.Tag(b"custom")],
    "transparent": lambda t, d: t.tags.transparent("a", t.tags.b("b"), ["c", ("d",)]),
    "generator": lambda t, d: t.tags.ul(t.tags.li(str(i)) for i in range(3)),
    "fired deferred": lambda t, d: t.tags.p(d.succeed(["x", t.tags.b(d.succeed("y"))])),
    "deferred in attribute": lambda t, d: t.tags.a(href=d.succeed("/d?a&b")),
    "slot default": lambda t, d: t.tags.p(t.slot("nope", default="dflt <>")),
    "nested slots": lambda t, d: t.tags.div(
        t.tags.p(t.slot("a"), t.slot("b")).fillSlots(b="inner-b")
    ).fillSlots(a="outer-a", b="outer-b"),
    "slot filled with tags": lambda t, d: t.tags.div(t.slot("x")).fillSlots(
        x=[t.tags.b("1"), "&", t.slot("y")], y="why"
    ),
    "element": _element_tree,
    "xml string with namespaces": lambda t, d: t.Element(
        loader=t.XMLString(
            '<feed xmlns="http://www.w3.org/2005/Atom" xmlns:x="urn:x">'
            '<x:item x:id="1" xml:lang="en">t</x:item></feed>'
        )
    ),
}


@pytest.mark.parametrize("name", sorted(DIFFERENTIAL_TREES))
def test_flatten_string_matches_twisted(name: str) -> None:
    build = DIFFERENTIAL_TREES[name]
    expected = result_of(
        twisted_template.flattenString(None, build(twisted_template, twisted_defer))
    )
    assert isinstance(expected, bytes), expected
    assert flat(build(template, defer)) == expected


@pytest.mark.parametrize(
    "bad", [1, 1.5, None, {"a": 1}, object()], ids=["int", "float", "None", "dict", "object"]
)
def test_unsupported_types_are_refused_like_twisted(bad: Any) -> None:
    theirs = result_of(twisted_template.flattenString(None, twisted_template.tags.p(bad)))
    ours = result_of(flattenString(None, tags.p(bad)))
    assert isinstance(ours, Failure) and ours.check(FlattenerError)
    assert type(theirs.value).__name__ == "FlattenerError"
    assert isinstance(ours.value._exception, UnsupportedType)
    assert type(theirs.value._exception).__name__ == "UnsupportedType"


# -- the tree ----------------------------------------------------------------------------


def test_tag_call_sets_children_attributes_and_render() -> None:
    tag = tags.div("a", tags.b("b"), class_="c", render="r", data_x="1")
    assert tag.tagName == "div"
    assert tag.children[0] == "a" and isinstance(tag.children[1], Tag)
    assert tag.attributes == {"class": "c", "data_x": "1"}
    assert tag.render == "r"
    with pytest.raises(TypeError, match="render"):
        tags.div(render=3)


def test_tags_factory() -> None:
    assert tags.del_.tagName == "del"
    assert tags.transparent.tagName == ""
    assert tags.main.tagName == "main"
    with pytest.raises(AttributeError, match="unknown tag"):
        tags.notatag  # noqa: B018


def test_clone_is_deep_and_keeps_slots() -> None:
    inner = tags.b("x")
    tag = tags.p(inner, [tags.i("y")], title=tags.span("t")).fillSlots(s="v")
    copy = tag.clone()
    assert copy is not tag and copy.children[0] is not inner
    assert copy.slotData == {"s": "v"} and copy.slotData is not tag.slotData
    assert flat(copy) == flat(tag)
    shallow = tag.clone(deep=False)
    assert shallow.children[0] is inner and shallow.children is not tag.children
    with pytest.warns(DeprecationWarning, match="generator"):
        tags.p(x for x in "ab").clone()


def test_reprs() -> None:
    assert repr(tags.p("x", class_="c")) == "Tag('p', attributes={'class': 'c'}, children=['x'])"
    assert repr(CharRef(65)) == "CharRef(65)"
    assert repr(CDATA("x")) == "CDATA('x')"
    assert repr(Comment("x")) == "Comment('x')"
    assert "name='s'" in repr(slot("s"))


def test_iterators_and_futures_beyond_twisted() -> None:
    assert flat(tags.p(map(str.upper, "ab"))) == b"<p>AB</p>"


def test_slots_do_not_leak_to_siblings() -> None:
    tree = tags.div(tags.p(slot("x")).fillSlots(x="1"), tags.p(slot("x")))
    failure = result_of(flattenString(None, tree))
    assert isinstance(failure, Failure)
    assert isinstance(failure.value._exception, UnfilledSlot)


# -- errors --------------------------------------------------------------------------------


def flatten_error(root: Any) -> FlattenerError:
    failure = result_of(flattenString(None, root))
    assert isinstance(failure, Failure), failure
    error = failure.value
    assert isinstance(error, FlattenerError)
    return error


def test_unfilled_slot_error_names_the_path() -> None:
    error = flatten_error(tags.html(tags.body(slot("who"))))
    assert isinstance(error._exception, UnfilledSlot)
    text = str(error)
    assert "Tag <html>" in text and "Tag <body>" in text and "UnfilledSlot" in text


def test_render_without_element_and_missing_renderer() -> None:
    assert isinstance(flatten_error(tags.p(render="x"))._exception, ValueError)
    element = Element(loader=TagLoader(tags.p(render="nothere")))
    assert isinstance(flatten_error(element)._exception, MissingRenderMethod)
    assert isinstance(flatten_error(Element())._exception, MissingTemplateLoader)


def test_unexposed_methods_are_not_renderers() -> None:
    class Sneaky(Element):
        loader = TagLoader(tags.p(render="secret"))

        def secret(self, request: Any, tag: Tag) -> str:
            return "should not be callable"

    assert isinstance(flatten_error(Sneaky())._exception, MissingRenderMethod)


def test_renderer_error_is_wrapped_with_its_traceback() -> None:
    class Broken(Element):
        loader = XMLString(f'<div xmlns:t="{T_NS}"><p t:render="boom" /></div>')

        @renderer
        def boom(self, request: Any, tag: Tag) -> Tag:
            raise ZeroDivisionError("nope")

    error = flatten_error(Broken())
    assert isinstance(error._exception, ZeroDivisionError)
    assert "in boom" in str(error) and "Tag <p>" in str(error)


def test_failed_deferred_in_tree() -> None:
    error = flatten_error(tags.p(defer.fail(KeyError("k"))))
    assert isinstance(error._exception, KeyError)


def test_bad_xml_raises() -> None:
    from xml.sax import SAXParseException

    with pytest.raises(SAXParseException):
        XMLString("<p>unclosed")
    with pytest.raises(AssertionError, match="name attribute"):
        XMLString(f'<p xmlns:t="{T_NS}"><t:attr>x</t:attr></p>')


# -- loaders -------------------------------------------------------------------------------


def test_xmlfile_from_filepath_and_path(tmp_path: Path) -> None:
    source = tmp_path / "page.xml"
    source.write_text(f'<p xmlns:t="{T_NS}">caf\u00e9 <t:slot name="x" /></p>', "utf-8")
    for where in (FilePath(str(source)), str(source), source):
        loaded = XMLFile(where).load()
        paragraph = loaded[0]
        assert isinstance(paragraph, Tag) and paragraph.filename == str(source)
        assert paragraph.lineNumber == 1
        assert flat(tags.transparent(loaded).fillSlots(x="!")) == "<p>caf\u00e9 !</p>".encode()
    assert "XMLFile of" in repr(XMLFile(str(source)))
    with pytest.raises(OSError):
        XMLFile(str(tmp_path / "missing.xml")).load()


def test_xml_text_runs_are_merged() -> None:
    [paragraph] = XMLString("<p>a\nb &amp; c\nd</p>").load()
    assert paragraph.children == ["a\nb & c\nd"]


# -- asynchronous trees -------------------------------------------------------------------


def test_pending_deferred_suspends_and_keeps_renderer_order() -> None:
    calls: list[str] = []
    gate: defer.Deferred[str] = defer.Deferred()

    class Page(Element):
        loader = XMLString(
            f'<div xmlns:t="{T_NS}"><p t:render="first" /><p t:render="second" /></div>'
        )

        @renderer
        def first(self, request: Any, tag: Tag) -> Any:
            calls.append("first")
            return gate.addCallback(lambda text: tag(text))

        @renderer
        def second(self, request: Any, tag: Tag) -> Tag:
            calls.append("second")
            return tag("two")

    written: list[bytes] = []
    done = flatten(None, Page(), written.append)
    assert calls == ["first"] and not done.called
    assert written == [b"<div>"]  # what came before the wait is written
    gate.callback("one")
    assert calls == ["first", "second"]
    assert result_of(done) is None
    assert b"".join(written) == b"<div><p>one</p><p>two</p></div>"


def test_coroutines_anywhere() -> None:
    async def later(value: Any) -> Any:
        await asyncio.sleep(0)
        return value

    class Page(Element):
        loader = XMLString(f'<div xmlns:t="{T_NS}" t:render="outer"><b t:render="inner" /></div>')

        @renderer
        async def outer(self, request: Any, tag: Tag) -> Tag:
            await asyncio.sleep(0)
            return tag(later(" tail"), title=later("t&"))

        @renderer
        def inner(self, request: Any, tag: Tag) -> Any:
            return later(tag("in"))

    async def main() -> bytes:
        out: bytes = await flattenString(None, Page())
        return out

    assert asyncio.run(main()) == b'<div title="t&amp;"><b>in</b> tail</div>'


def test_flatten_writes_chunks_and_is_synchronous_without_waits() -> None:
    chunks: list[bytes] = []
    rows = tags.table(tags.tr(tags.td(str(i)), tags.td("x" * 20)) for i in range(5000))
    done = flatten(None, rows, chunks.append)
    assert result_of(done) is None
    assert len(chunks) > 1
    assert b"".join(chunks) == flat(
        tags.table(tags.tr(tags.td(str(i)), tags.td("x" * 20)) for i in range(5000))
    )


# -- renderElement over a real socket ----------------------------------------------------


class Async(Element):
    loader = XMLString(
        f'<html xmlns:t="{T_NS}"><body><p t:render="slow" /><p t:render="fast">f</p></body></html>'
    )

    def __init__(self, reactor_call: Callable[..., Any]) -> None:
        super().__init__()
        self.call_later = reactor_call

    @renderer
    def slow(self, request: Any, tag: Tag) -> Any:
        d: defer.Deferred[Tag] = defer.Deferred()
        self.call_later(0.01, d.callback, tag("slow & done"))
        return d

    @renderer
    def fast(self, request: Any, tag: Tag) -> Tag:
        return tag(" ", request.uri.decode())


class Page(Resource):
    isLeaf = True

    def __init__(self, make: Callable[[], Any], **kwargs: Any) -> None:
        super().__init__()
        self.make = make
        self.kwargs = kwargs

    def render_GET(self, request: Request) -> Any:
        return renderElement(request, self.make(), **self.kwargs)


def get(url: str, path: str) -> tuple[int, bytes]:
    host, port = host_port(url)
    connection = http.client.HTTPConnection(host, port, timeout=10)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def test_render_element_with_deferred_renderers(serve: Callable[..., str]) -> None:
    from treadle.internet import reactor

    url = serve(Page(lambda: Async(reactor.callLater)))
    status, body = get(url, "/x?q=1")
    assert status == 200
    assert (
        body == b"<!DOCTYPE html>\n<html><body><p>slow &amp; done</p><p>f /x?q=1</p></body></html>"
    )


def test_render_element_without_doctype(serve: Callable[..., str]) -> None:
    url = serve(Page(lambda: Element(loader=TagLoader(tags.p("hi"))), doctype=None))
    assert get(url, "/") == (200, b"<p>hi</p>")


class Failing(Element):
    loader = XMLString(f'<div xmlns:t="{T_NS}">before <p t:render="boom" /></div>')

    @renderer
    def boom(self, request: Any, tag: Tag) -> Tag:
        raise RuntimeError("template exploded")


def test_render_element_failure_markup(serve: Callable[..., str]) -> None:
    url = serve(Page(Failing))
    status, body = get(url, "/")
    assert status == 200
    # As in Twisted, what was flattened but not yet written when the error came is dropped.
    assert body == b"<!DOCTYPE html>\n" + (
        b'<div style="font-size:800%;background-color:#FFF;color:#F00">'
        b"An error occurred while rendering the response.</div>"
    )


def test_render_element_failure_with_tracebacks(server: ServerThread) -> None:
    site = Site(Page(Failing))
    site.displayTracebacks = True
    url = server.serve(site)
    status, body = get(url, "/")
    assert status == 200
    assert b"treadle.web.error.FlattenerError" in body and b"template exploded" in body
    assert b'class="stackTrace"' in body and b"test_template.py" in body


# -- streaming with backpressure ---------------------------------------------------------

ROWS = 50_000
CELL = "y" * 180


class Big(Element):
    def __init__(self, produced: list[int]) -> None:
        super().__init__(TagLoader(tags.table(render="rows")))
        self.produced = produced

    @renderer
    def rows(self, request: Any, tag: Tag) -> Any:
        def each() -> Iterator[Tag]:
            for i in range(ROWS):
                self.produced[0] += 1
                yield tags.tr(tags.td(str(i)), tags.td(CELL))

        return tag(each())


def test_big_page_waits_for_a_slow_client(server: ServerThread) -> None:
    produced = [0]
    requests: list[Request] = []

    class Streamed(Page):
        def render_GET(self, request: Request) -> Any:
            requests.append(request)
            return renderElement(request, Big(produced))

    host, port = host_port(server.serve(Streamed(lambda: None)))
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.settimeout(10)
        sock.connect((host, port))
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")

        def paused() -> bool:
            return bool(requests) and server.call(lambda: requests[0].channel._writing_paused)

        wait_for(paused, "the server to stop writing to a client that does not read")
        # Read on the server's loop, so the render is not half-way through a step.
        before, buffered = server.call(
            lambda: (produced[0], requests[0].channel.asyncio_transport.get_write_buffer_size())
        )
        assert 0 < before < ROWS
        assert buffered < 1024 * 1024  # the page is not sitting whole in memory
        received = bytearray()
        while chunk := sock.recv(1 << 16):
            received += chunk
    assert produced[0] == ROWS
    assert received.count(b"<tr>") == ROWS
    assert received.rstrip().endswith(b"</table>") or b"</table>" in received[-64:]


def test_big_page_stops_when_the_client_goes_away(server: ServerThread) -> None:
    produced = [0]
    closed: list[bool] = []
    finished: list[bool] = []

    class Endless(Element):
        loader = TagLoader(tags.table(render="rows"))

        @renderer
        def rows(self, request: Any, tag: Tag) -> Any:
            def each() -> Iterator[Tag]:
                try:
                    for i in range(ROWS):
                        produced[0] += 1
                        yield tags.tr(tags.td(str(i)), tags.td(CELL))
                finally:
                    closed.append(True)

            return tag(each())

    requests: list[Request] = []

    class Streamed(Page):
        def render_GET(self, request: Request) -> Any:
            requests.append(request)
            original = request.finish

            def finish() -> None:
                finished.append(True)
                original()

            request.finish = finish  # type: ignore[method-assign]
            return renderElement(request, Endless())

    host, port = host_port(server.serve(Streamed(lambda: None)))
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect((host, port))
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        wait_for(
            lambda: requests and server.call(lambda: requests[0].channel._writing_paused),
            "the server to stop writing",
        )
    wait_for(lambda: closed, "the flattener to drop the page's generator")
    assert produced[0] < ROWS
    assert not finished  # nobody left to finish for, and no RuntimeError from finish()
