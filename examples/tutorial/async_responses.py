"""Asynchronous responses: answer later, with ``NOT_DONE_YET`` and ``reactor.callLater``.

A render method that cannot answer yet returns ``NOT_DONE_YET`` and keeps the request.
Later, something (here a timer set with ``reactor.callLater``) writes the body with
``request.write`` and ends the response with ``request.finish()``. While ``/slow`` waits,
the server goes on answering everyone else: ``/quick`` replies at once.

Run ``python async_responses.py [PORT]``, open http://localhost:8080/slow and, while it
loads, http://localhost:8080/quick in another tab.
"""

import sys

from treadle.internet import reactor
from treadle.web.resource import Resource
from treadle.web.server import NOT_DONE_YET, Site
from treadle.web.static import Data

DELAY = 3  # seconds /slow takes to answer


class Slow(Resource):
    isLeaf = True

    def render_GET(self, request):
        reactor.callLater(DELAY, self._answer, request)
        return NOT_DONE_YET

    def _answer(self, request):
        request.write(b"<!DOCTYPE html><html><body><p>Sorry to keep you waiting.</p>")
        request.write(b"</body></html>")
        request.finish()


class Quick(Resource):
    isLeaf = True

    def render_GET(self, request):
        return b"<!DOCTYPE html><html><body><p>No waiting here.</p></body></html>"


def make_site():
    """Return a Site with a page that answers after ``DELAY`` seconds and one that does not."""
    root = Resource()
    menu = b'<a href="/slow">Slow</a> or <a href="/quick">quick</a>?'
    root.putChild(b"", Data(menu, "text/html; charset=utf-8"))
    root.putChild(b"slow", Slow())
    root.putChild(b"quick", Quick())
    return Site(root)


if __name__ == "__main__":
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 8080
    reactor.listenTCP(port, make_site())
    reactor.run()
