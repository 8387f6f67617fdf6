"""Long-polling with request.notifyFinish: clients that leave early are noticed."""

import sys

from twisted.internet import defer, reactor
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.web import resource, server

log = []
watchers = []
gone = defer.Deferred()


class Wait(resource.Resource):
    isLeaf = True

    def render_GET(self, request):
        request.write(b"waiting\n")
        call = reactor.callLater(30, request.finish)
        d = request.notifyFinish()

        def left(failure):
            call.cancel()
            log.append(f"client left: {failure.type.__name__}")
            if not gone.called:
                gone.callback(None)

        d.addCallbacks(lambda _: log.append("finished"), left)
        return server.NOT_DONE_YET


class Quick(resource.Resource):
    isLeaf = True

    def render_GET(self, request):
        request.notifyFinish().addCallback(lambda _: log.append("quick finished"))
        return b"quick\n"


class Log(resource.Resource):
    isLeaf = True

    def render_GET(self, request):
        # Answers once the first client has gone, so the order of events is fixed.
        def show(_):
            request.write("\n".join(log).encode() + b"\n")
            request.finish()

        gone.addCallback(lambda _: reactor.callLater(0, show, None))
        return server.NOT_DONE_YET


root = resource.Resource()
root.putChild(b"wait", Wait())
root.putChild(b"quick", Quick())
root.putChild(b"log", Log())
TCP4ServerEndpoint(reactor, int(sys.argv[1]), interface="127.0.0.1").listen(server.Site(root))
reactor.run()
