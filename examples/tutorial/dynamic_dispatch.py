"""Dynamic dispatch: children made on demand by ``getChild``.

When a segment has no child given with ``putChild``, traversal asks ``getChild(segment,
request)`` instead, which may build a resource from the segment itself. Here ``/2024`` makes
a page about the year 2024, for any year, without registering a single child.

This version trusts its input: ``/tomorrow`` makes ``int()`` raise, and the server answers
with a 500 page. ``error_handling.py`` shows the fix.

Run ``python dynamic_dispatch.py [PORT]`` and open http://localhost:8080/2024.
"""

import calendar
import sys

from treadle.internet import reactor
from treadle.web.resource import Resource
from treadle.web.server import Site
from treadle.web.static import Data


class YearPage(Resource):
    isLeaf = True

    def __init__(self, year):
        super().__init__()
        self.year = year

    def render_GET(self, request):
        leap = "a leap year" if calendar.isleap(self.year) else "not a leap year"
        first = calendar.day_name[calendar.weekday(self.year, 1, 1)]
        request.setHeader(b"content-type", b"text/html; charset=utf-8")
        return (
            f"<!DOCTYPE html><html><head><title>{self.year}</title></head><body>"
            f"<p>{self.year} is {leap}. Its first day is a {first}.</p></body></html>"
        ).encode()


class Years(Resource):
    def getChild(self, name, request):
        return YearPage(int(name.decode("ascii")))


def make_site():
    """Return a Site answering ``/<year>`` for any year."""
    root = Years()
    # The empty segment is "/" itself: a static child answers it before getChild is asked.
    root.putChild(b"", Data(b"Ask about a year: /2024, /1999...\n", "text/plain; charset=utf-8"))
    return Site(root)


if __name__ == "__main__":
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 8080
    reactor.listenTCP(port, make_site())
    reactor.run()
