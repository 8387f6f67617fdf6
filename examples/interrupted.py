"""A slow response that is abandoned cleanly when the client leaves, as a program.

The answer is due after five seconds. If the connection closes before that (press Ctrl-C
in ``curl http://localhost:8080/``), notifyFinish()'s errback cancels the pending call and
prints a line saying so. The port is the first argument, 8080 by default.
"""

import sys

from treadle.internet import reactor
from treadle.web.resource import Resource
from treadle.web.server import NOT_DONE_YET, Site

DELAY = 5  # seconds


class PatientAnswer(Resource):
    isLeaf = True

    def render_GET(self, request):
        call = reactor.callLater(DELAY, self._answer, request)
        request.notifyFinish().addErrback(self._client_left, call)
        return NOT_DONE_YET

    def _answer(self, request):
        request.write("<html><body>Here it is, after all that time.</body></html>")
        request.finish()

    def _client_left(self, failure, call):
        if call.active():
            call.cancel()
        print(f"client left early ({failure.getErrorMessage()}); answer cancelled", flush=True)


port = int(sys.argv[1]) if len(sys.argv) > 1 else 8080
reactor.listenTCP(port, Site(PatientAnswer()))
reactor.run()
