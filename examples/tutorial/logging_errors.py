"""Logging errors: record why a response failed instead of dropping it silently.

As in ``interrupted.py``, an errback on ``request.notifyFinish()`` cancels the pending
answer when the client leaves; this time it also logs the failure it was given, with its
traceback, to the ``treadle.error`` logger (where treadle logs its own errors). A Deferred's
errback always receives a ``Failure``: its ``value`` is the exception, ``tb`` its traceback.

Run ``python logging_errors.py [PORT]``, request http://localhost:8080/ with curl and press
Ctrl-C before the five seconds are up: the error is printed to the terminal.
"""

import logging
import sys

from treadle.internet import reactor
from treadle.web.resource import Resource
from treadle.web.server import NOT_DONE_YET, Site

DELAY = 5  # seconds before the answer is written

log = logging.getLogger("treadle.error")


class Patient(Resource):
    isLeaf = True

    def render_GET(self, request):
        call = reactor.callLater(DELAY, self._answer, request)
        request.notifyFinish().addErrback(self._failed, request, call)
        return NOT_DONE_YET

    def _answer(self, request):
        request.write(b"<!DOCTYPE html><html><body><p>Thanks for staying.</p></body></html>")
        request.finish()

    def _failed(self, failure, request, call):
        call.cancel()
        log.error(
            "response to %s %s interrupted: %s",
            request.method.decode("ascii"),
            request.uri.decode("latin-1"),
            failure.getErrorMessage(),
            exc_info=(failure.type, failure.value, failure.tb),
        )


def make_site():
    """Return a Site that logs every response its client abandoned."""
    return Site(Patient())


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 8080
    reactor.listenTCP(port, make_site())
    reactor.run()
