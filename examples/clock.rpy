# A streamed response: one line a second, for ten seconds.
#
# Each request gets its own Ticker. It writes the head of the page at once, then a
# LoopingCall writes the time every second; after the last tick it finishes the response.
# If the client goes away first, notifyFinish() fails and the loop is stopped, so nothing
# keeps writing to a connection that is gone.

import time

from twisted.internet import task
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET

TICKS = 10


class Ticker:
    def __init__(self, request):
        self.request = request
        self.left = TICKS
        self.loop = task.LoopingCall(self.tick)

    def start(self):
        self.request.notifyFinish().addErrback(self.client_left)
        self.loop.start(1.0)  # the first tick is now

    def tick(self):
        self.left -= 1
        self.request.write(f"<li>{time.strftime('%H:%M:%S')}</li>\n")
        if self.left == 0:
            self.loop.stop()
            self.request.write('</ol><p>Done. <a href=".">Back to the examples</a></p>'
                               "</body></html>\n")
            self.request.finish()

    def client_left(self, failure):
        if self.loop.running:
            self.loop.stop()


class ClockPage(Resource):
    isLeaf = True

    def render_GET(self, request):
        request.setHeader(b"content-type", b"text/html; charset=utf-8")
        request.write(
            "<!DOCTYPE html><html><head><title>Clock</title>"
            '<link rel="stylesheet" href="style.css"></head><body>'
            f"<h1>The time, every second for {TICKS} seconds</h1><ol>\n"
        )
        Ticker(request).start()
        return NOT_DONE_YET


resource = ClockPage()
