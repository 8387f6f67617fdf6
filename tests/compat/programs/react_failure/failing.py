"""task.react with an async main: a failure ends the process with status 1."""

import sys

from twisted.internet import defer, task
from twisted.internet.endpoints import serverFromString
from twisted.web import resource, server


class BadInput(Exception):
    pass


class Trigger(resource.Resource):
    isLeaf = True

    def __init__(self, reactor, outcome):
        super().__init__()
        self.reactor = reactor
        self.outcome = outcome

    def render_POST(self, request):
        reason = request.content.read().decode()
        # A moment for the answer to leave before main() fails and the reactor stops.
        self.reactor.callLater(0.1, self.outcome.errback, BadInput(reason))
        return b"failing with " + reason.encode() + b"\n"


async def main(reactor):
    outcome = defer.Deferred()
    endpoint = serverFromString(reactor, f"tcp:{sys.argv[1]}:interface=127.0.0.1")
    await endpoint.listen(server.Site(Trigger(reactor, outcome)))
    try:
        await outcome
    except BadInput as problem:
        print("main saw:", problem)
        raise


task.react(lambda reactor: defer.ensureDeferred(main(reactor)))
