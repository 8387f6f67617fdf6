"""Error handling: answer a bad URL with a 404 page instead of a crash.

The dynamic dispatch example turned every segment into a year with ``int()``, so a segment
that is not a number made the server answer 500. Here ``getChild`` checks the segment and
returns a ready-made "not found" resource from ``treadle.web.pages`` when it names no year
(``NoResource`` from ``treadle.web.resource`` does the same job in older Twisted code). The page
repeats the bad segment safely: error pages escape what they show.

Run ``python error_handling.py [PORT]`` and compare http://localhost:8080/2024 with
http://localhost:8080/tomorrow.
"""

import calendar
import datetime
import sys

from treadle.internet import reactor
from treadle.web.pages import notFound
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
        request.setHeader(b"content-type", b"text/html; charset=utf-8")
        return (
            f"<!DOCTYPE html><html><head><title>{self.year}</title></head><body>"
            f"<p>{self.year} is {leap}.</p></body></html>"
        ).encode()


class Years(Resource):
    def getChild(self, name, request):
        try:
            year = int(name.decode("ascii"))
        except ValueError:  # UnicodeDecodeError is a ValueError too
            year = None
        if year is None or not datetime.MINYEAR <= year <= datetime.MAXYEAR:
            text = name.decode("utf-8", "replace")
            return notFound(message=f"There is no year called {text!r} here.")
        return YearPage(year)


def make_site():
    """Return a Site answering ``/<year>``, and 404 for anything that is not a year."""
    root = Years()
    # The empty segment is "/" itself: a static child answers it before getChild is asked.
    root.putChild(b"", Data(b"Ask about a year: /2024, /1999...\n", "text/plain; charset=utf-8"))
    return Site(root)


if __name__ == "__main__":
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 8080
    reactor.listenTCP(port, make_site())
    reactor.run()
