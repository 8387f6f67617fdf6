"""Interrupted responses: stop working on an answer nobody will read.

``request.notifyFinish()`` returns a Deferred that fires once the response is complete, or
fails if the connection is lost first. An errback on it is the place to abandon the work
still pending for the request: here, the timer that would have written the answer.

Run ``python interrupted.py [PORT]``, request http://localhost:8080/ with curl and press
Ctrl-C before the five seconds are up: the server prints that it cancelled the answer.
"""

import sys

from treadle.internet import reactor
from treadle.web.resource import Resource
from treadle.web.server import NOT_DONE_YET, Site

DELAY = 5  # seconds before the answer is written

#: Timers cancelled because their client left (for the curious, and for the tests).
abandoned = []


class Patient(Resource):
    isLeaf = True

    def render_GET(self, request):
        call = reactor.callLater(DELAY, self._answer, request)
        request.notifyFinish().addErrback(self._gone, call)
        return NOT_DONE_YET

    def _answer(self, request):
        request.write(b"<!DOCTYPE html><html><body><p>Thanks for staying.</p></body></html>")
        request.finish()

    def _gone(self, failure, call):
        call.cancel()
        abandoned.append(call)
        print(f"client left ({failure.getErrorMessage()}): answer cancelled", flush=True)


def make_site():
    """Return a Site whose answer is cancelled if its client leaves before ``DELAY``."""
    return Site(Patient())


if __name__ == "__main__":
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 8080
    reactor.listenTCP(port, make_site())
    reactor.run()
