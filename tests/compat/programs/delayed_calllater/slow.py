"""Delayed and streamed answers: NOT_DONE_YET with reactor.callLater."""

import sys

from twisted.internet import reactor
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Site


class Delayed(Resource):
    isLeaf = True

    def render_GET(self, request):
        delay = float(request.args.get(b"delay", [b"0.1"])[0])
        request.setHeader(b"content-type", b"text/plain")
        reactor.callLater(delay, self.answer, request, delay)
        return NOT_DONE_YET

    def answer(self, request, delay):
        request.write(b"waited %.2f seconds\n" % delay)
        request.finish()


class Countdown(Resource):
    isLeaf = True

    def render_GET(self, request):
        self.tick(request, int(request.args.get(b"from", [b"3"])[0]))
        return NOT_DONE_YET

    def tick(self, request, n):
        if n == 0:
            request.write(b"liftoff\n")
            request.finish()
            return
        request.write(b"%d...\n" % n)
        reactor.callLater(0.02, self.tick, request, n - 1)


class Cancelled(Resource):
    isLeaf = True

    def render_GET(self, request):
        call = reactor.callLater(10, request.finish)
        reactor.callLater(0.02, self.change_of_mind, request, call)
        return NOT_DONE_YET

    def change_of_mind(self, request, call):
        active = call.active()
        call.cancel()
        request.setResponseCode(202)
        request.write(b"active before cancel: %r, after: %r\n" % (active, call.active()))
        request.finish()


root = Resource()
root.putChild(b"delayed", Delayed())
root.putChild(b"countdown", Countdown())
root.putChild(b"cancelled", Cancelled())
TCP4ServerEndpoint(reactor, int(sys.argv[1]), interface="127.0.0.1").listen(Site(root))
reactor.run()
