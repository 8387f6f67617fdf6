"""A delayed response, as a program of its own.

This is a Twisted Web program ported to treadle by changing its imports: the resource, the
Site, listenTCP and reactor.run() are as they were. Run it and open http://localhost:8080/
(or give another port: ``python examples/delayed.py 8081``); the page arrives a second
later, and other requests are answered in the meantime.
"""

import sys

from treadle.internet import reactor
from treadle.web.resource import Resource
from treadle.web.server import NOT_DONE_YET, Site

DELAY = 1  # second


class SlowAnswer(Resource):
    isLeaf = True

    def _answer(self, request):
        request.write(b"<html><body>Thank you for waiting.</body></html>")
        request.finish()

    def render_GET(self, request):
        reactor.callLater(DELAY, self._answer, request)
        return NOT_DONE_YET


port = int(sys.argv[1]) if len(sys.argv) > 1 else 8080
reactor.listenTCP(port, Site(SlowAnswer()))
reactor.run()
