# A response that takes its time without holding up anyone else.
#
# render_GET returns NOT_DONE_YET, which tells the server the body will come later, and
# asks the reactor to call _answer three seconds from now. The server goes on serving other
# requests in the meantime. The imports are Twisted's: treadle maps them to its own modules
# inside .rpy scripts, so this file runs unchanged under twistd web too.

from twisted.internet import reactor
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET

DELAY = 3  # seconds


class SlowAnswer(Resource):
    isLeaf = True

    def _answer(self, request):
        page = (
            "<!DOCTYPE html><html><head><title>Worth the wait</title>"
            '<link rel="stylesheet" href="style.css"></head><body>'
            "<h1>Worth the wait</h1>"
            f"<p>This page was written {DELAY} seconds after you asked for it. "
            "Requests that arrived in between were answered as usual.</p>"
            '<p><a href=".">Back to the examples</a></p>'
            "</body></html>"
        )
        # Bytes, as Twisted requires (treadle would also take the str and encode it as UTF-8).
        request.write(page.encode("utf-8"))
        request.finish()

    def render_GET(self, request):
        reactor.callLater(DELAY, self._answer, request)
        return NOT_DONE_YET


resource = SlowAnswer()
