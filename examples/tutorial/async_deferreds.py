"""Asynchronous responses with Deferreds: the result arrives through a callback.

Most asynchronous APIs (a database query, an HTTP client, a thread) hand back a
``Deferred`` rather than taking a callback. ``task.deferLater`` stands in for them here: it
fires its Deferred after a delay. ``/`` does it the Twisted way: the render method returns
``NOT_DONE_YET`` and a callback on the Deferred writes and finishes the response.

``/returned`` shows a treadle shortcut: a render method may return the Deferred itself (or
be ``async def`` and ``await`` it); the server writes what it resolves to, and cancels it if
the client goes away first.

Run ``python async_deferreds.py [PORT]`` and open http://localhost:8080/.
"""

import sys

from treadle.internet import reactor
from treadle.internet.task import deferLater
from treadle.web.resource import Resource
from treadle.web.server import NOT_DONE_YET, Site

DELAY = 2  # seconds before each Deferred fires


class WithCallback(Resource):
    isLeaf = True

    def render_GET(self, request):
        d = deferLater(reactor, DELAY, lambda: b"<p>The Deferred fired, the page is written.</p>")
        d.addCallback(self._write, request)
        return NOT_DONE_YET

    def _write(self, text, request):
        request.write(b"<!DOCTYPE html><html><body>" + text + b"</body></html>")
        request.finish()


class Returned(Resource):
    isLeaf = True

    def render_GET(self, request):
        return deferLater(reactor, DELAY, lambda: b"<p>The server wrote what it fired with.</p>")


def make_site():
    """Return a Site with both ways of answering from a Deferred."""
    root = Resource()
    root.putChild(b"", WithCallback())
    root.putChild(b"returned", Returned())
    return Site(root)


if __name__ == "__main__":
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 8080
    reactor.listenTCP(port, make_site())
    reactor.run()
