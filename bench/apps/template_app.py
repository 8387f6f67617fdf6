"""The ``template`` benchmark page, served by treadle or by Twisted Web from this one file.

A 1,000-row table rendered per request through ``renderElement``: an ``Element`` whose XML
template (parsed once, at start-up) has a ``t:render`` renderer that clones the row tag and
fills three slots for each row. Only the imports differ between the two servers (the
porting rule: ``twisted`` becomes ``treadle``)::

    python bench/apps/template_app.py --impl treadle --port 8080
    python bench/apps/template_app.py --impl twisted --port 8080

``--print`` writes the page once to stdout instead of serving it (the harness compares it
with the page served, and the two implementations' pages with each other).
"""

from __future__ import annotations

import argparse
import os
import sys

ROWS = 1000
TEMPLATE = """\
<html xmlns:t="http://twistedmatrix.com/ns/twisted.web.template/0.1">
<head><title>Table</title></head>
<body>
<h1>Rows &amp; columns</h1>
<table>
<tr><th>id</th><th>name</th><th>value</th></tr>
<tr t:render="rows"><td><t:slot name="id" /></td><td class="name"><t:slot name="name" /></td>\
<td><t:attr name="title">v<t:slot name="id" /></t:attr><t:slot name="value" /></td></tr>
</table>
</body>
</html>
"""


def build(impl: str):
    """Import ``impl``'s API and return ``(reactor, site, render_once)``."""
    if impl == "treadle":
        from treadle.internet import reactor
        from treadle.web import template
        from treadle.web.resource import Resource
        from treadle.web.server import Site
    elif impl == "twisted":
        from twisted.internet import reactor
        from twisted.web import template
        from twisted.web.resource import Resource
        from twisted.web.server import Site
    else:
        raise SystemExit(f"unknown --impl {impl!r}")

    loader = template.XMLString(TEMPLATE)

    class TablePage(template.Element):
        def __init__(self):
            super().__init__(loader)

        @template.renderer
        def rows(self, request, tag):
            for i in range(ROWS):
                yield tag.clone().fillSlots(
                    id=str(i), name=f"row <{i}> & co", value=str(i * 37 % 1009)
                )

    class Table(Resource):
        isLeaf = True

        def render_GET(self, request):
            return template.renderElement(request, TablePage())

    def render_once():
        out = []
        template.flattenString(None, TablePage()).addBoth(out.append)
        return out[0]

    site = Site(Table())
    if impl == "twisted":
        # Access log off, as in resources.py: treadle's Site logs nothing unless asked to.
        site.log = lambda request: None
    return reactor, site, render_once


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--impl", choices=["treadle", "twisted"], required=True)
    parser.add_argument("--port", type=int)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--print", action="store_true", help="print the page and exit")
    args = parser.parse_args()
    reactor, site, render_once = build(args.impl)
    if args.print:
        sys.stdout.buffer.write(b"<!DOCTYPE html>\n" + render_once())
        return
    if args.port is None:
        parser.error("--port is required to serve")
    reactor.listenTCP(args.port, site, backlog=4096, interface=args.host)
    print(f"{args.impl} template on {args.host}:{args.port} pid {os.getpid()}", file=sys.stderr)
    reactor.run()


if __name__ == "__main__":
    main()
