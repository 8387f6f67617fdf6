"""task.react: main() serves until someone asks it to quit, then the process exits."""

import sys

from twisted.internet import defer, endpoints, task
from twisted.web import resource, server


class Quit(resource.Resource):
    isLeaf = True

    def __init__(self, reactor, done, counter):
        super().__init__()
        self.reactor = reactor
        self.done = done
        self.counter = counter

    def render_GET(self, request):
        self.counter["quit"] += 1
        # A moment for the answer to leave: stopping the reactor drops unsent data.
        request.notifyFinish().addCallback(
            lambda _: self.reactor.callLater(0.1, self.done.callback, self.counter)
        )
        return b"shutting down\n"


class Hello(resource.Resource):
    isLeaf = True

    def __init__(self, counter):
        super().__init__()
        self.counter = counter

    def render_GET(self, request):
        self.counter["hello"] += 1
        return b"hello #%d\n" % self.counter["hello"]


@defer.inlineCallbacks
def main(reactor, port):
    done = defer.Deferred()
    counter = {"hello": 0, "quit": 0}
    root = resource.Resource()
    root.putChild(b"", Hello(counter))
    root.putChild(b"quit", Quit(reactor, done, counter))
    endpoint = endpoints.TCP4ServerEndpoint(reactor, int(port), interface="127.0.0.1")
    listening = yield endpoint.listen(server.Site(root))
    print("listening:", listening.getHost().type)
    totals = yield done
    yield listening.stopListening()
    print("served", totals["hello"], "greetings")


if __name__ == "__main__":
    task.react(main, sys.argv[1:])
