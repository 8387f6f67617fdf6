"""The legacy log module: startLogging, msg, err, and an observer of one's own."""

import sys

from twisted.internet import reactor
from twisted.python import log
from twisted.web import resource, server

remembered = []


def remember(event):
    if event.get("system") == "compat":
        # The first line only: for errors, a traceback follows.
        text = log.textFromEventDict(event).splitlines()[0]
        remembered.append(f"{'error' if event['isError'] else 'info'}: {text}")
        if event.get("failure") is not None:
            remembered.append("  failure: " + event["failure"].getErrorMessage())


class Hello(resource.Resource):
    isLeaf = True

    def render_GET(self, request):
        log.msg("greeting", request.path.decode(), system="compat")
        log.msg(format="formatted %(who)s", who="visitor", system="compat")
        try:
            {}["missing"]
        except KeyError:
            log.err(None, "division went wrong", system="compat")
        return b"hello\n"


class Remembered(resource.Resource):
    isLeaf = True

    def render_GET(self, request):
        return ("\n".join(remembered) + "\n").encode()


log.startLogging(sys.stdout)
log.addObserver(remember)
log.msg("about to listen: compat-start-marker")
root = resource.Resource()
root.putChild(b"hello", Hello())
root.putChild(b"remembered", Remembered())
reactor.listenTCP(int(sys.argv[1]), server.Site(root), interface="127.0.0.1")
reactor.run()
