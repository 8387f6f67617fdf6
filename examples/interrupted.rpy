# A slow response that notices when the client gives up.
#
# The answer is due in five seconds. notifyFinish() returns a Deferred that fires when the
# response is finished, or fails if the connection is lost before that. The errback cancels
# the pending call, so no work is done for a client that has left, and logs the event.

import logging

from twisted.internet import reactor
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET

DELAY = 5  # seconds

log = logging.getLogger("examples.interrupted")


class PatientPage(Resource):
    isLeaf = True

    def render_GET(self, request):
        call = reactor.callLater(DELAY, self._answer, request)
        request.notifyFinish().addErrback(self._client_left, call, request)
        return NOT_DONE_YET

    def _answer(self, request):
        request.write(
            "<!DOCTYPE html><html><head><title>You stayed</title>"
            '<link rel="stylesheet" href="style.css"></head><body>'
            f"<h1>You stayed {DELAY} seconds</h1>"
            "<p>Had you left earlier, the server would have cancelled this answer and "
            "logged that you went away.</p>"
            '<p><a href=".">Back to the examples</a></p></body></html>'
        )
        request.finish()

    def _client_left(self, failure, call, request):
        if call.active():
            call.cancel()
        log.info("client left %s before its answer was ready (%s)",
                 request.uri.decode("latin-1"), failure.getErrorMessage())


resource = PatientPage()
