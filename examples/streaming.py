"""A response written a line at a time, as a program of its own.

Every second the resource writes one more line; after ten lines it finishes. Watch it with
``curl -N http://localhost:8080/`` (the port is the first argument, 8080 by default). If the
client disconnects, the loop is stopped instead of writing to nobody.
"""

import sys
import time

from treadle.internet import reactor
from treadle.internet.task import LoopingCall
from treadle.web.resource import Resource
from treadle.web.server import NOT_DONE_YET, Site

LINES = 10


class Lines(Resource):
    isLeaf = True

    def render_GET(self, request):
        request.setHeader(b"content-type", b"text/plain; charset=utf-8")
        count = [0]

        def write_line():
            count[0] += 1
            request.write(f"line {count[0]} of {LINES} at {time.strftime('%H:%M:%S')}\n")
            if count[0] == LINES:
                loop.stop()
                request.finish()

        def client_left(failure):
            if loop.running:
                loop.stop()

        loop = LoopingCall(write_line)
        request.notifyFinish().addErrback(client_left)
        loop.start(1.0)
        return NOT_DONE_YET


port = int(sys.argv[1]) if len(sys.argv) > 1 else 8080
reactor.listenTCP(port, Site(Lines()))
reactor.run()
