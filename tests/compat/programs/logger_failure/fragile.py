"""Failures: Logger.failure in an errback, and a render that raises (a 500 page)."""

import sys

from twisted.internet import defer, reactor
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.logger import Logger, formatEvent, globalLogBeginner
from twisted.web import resource, server
from twisted.web.server import NOT_DONE_YET

log = Logger(namespace="fragile")
seen = []


def keeper(event):
    if event.get("log_namespace") == "fragile":
        failure = event.get("log_failure")
        detail = f" [{failure.type.__name__}: {failure.getErrorMessage()}]" if failure else ""
        seen.append(formatEvent(event) + detail)


def parse(text):
    return int(text)


class Parse(resource.Resource):
    isLeaf = True

    def render_GET(self, request):
        d = defer.maybeDeferred(parse, request.args.get(b"n", [b""])[0])

        def done(number):
            request.write(b"%d doubled is %d\n" % (number, 2 * number))
            request.finish()

        def failed(failure):
            failure.trap(ValueError)
            log.failure("could not parse {text!r}", failure, text=request.args.get(b"n"))
            request.setResponseCode(400)
            request.write(b"not a number\n")
            request.finish()

        d.addCallbacks(done, failed)
        return NOT_DONE_YET


class Broken(resource.Resource):
    isLeaf = True

    def render_GET(self, request):
        raise RuntimeError("this page is broken")


class Seen(resource.Resource):
    isLeaf = True

    def render_GET(self, request):
        return "\n".join(seen).encode()


globalLogBeginner.beginLoggingTo([keeper], redirectStandardIO=False)
root = resource.Resource()
root.putChild(b"parse", Parse())
root.putChild(b"broken", Broken())
root.putChild(b"seen", Seen())
TCP4ServerEndpoint(reactor, int(sys.argv[1]), interface="127.0.0.1").listen(server.Site(root))
reactor.run()
