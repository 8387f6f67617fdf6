"""Deferred chains: inlineCallbacks, deferLater, async def with ensureDeferred, gather."""

import sys

from twisted.internet import defer, reactor, task
from twisted.internet.endpoints import serverFromString
from twisted.web import resource, server


def lookup(name):
    prices = {"tea": 3, "cake": 5}
    return task.deferLater(reactor, 0.01, prices.__getitem__, name)


class Bill(resource.Resource):
    isLeaf = True

    @defer.inlineCallbacks
    def total(self, items):
        total = 0
        for item in items:
            try:
                total += yield lookup(item)
            except KeyError:
                defer.returnValue(None)
        return total

    def render_GET(self, request):
        items = [arg.decode() for arg in request.args.get(b"item", [])]
        d = self.total(items)

        def answer(total):
            if total is None:
                request.setResponseCode(404)
                request.write(b"unknown item\n")
            else:
                request.write(b"total: %d\n" % total)
            request.finish()

        d.addCallback(answer)
        return server.NOT_DONE_YET


class Parallel(resource.Resource):
    isLeaf = True

    async def compute(self):
        results = await defer.gatherResults([lookup("tea"), lookup("cake"), lookup("tea")])
        chained = await defer.succeed(10).addCallback(lambda x: x * 2)
        try:
            await defer.fail(ValueError("nope"))
        except ValueError as error:
            caught = str(error)
        return f"{results} {chained} {caught}\n".encode()

    def render_GET(self, request):
        d = defer.ensureDeferred(self.compute())
        d.addCallback(request.write)
        d.addBoth(lambda _: request.finish())
        return server.NOT_DONE_YET


class Timeout(resource.Resource):
    isLeaf = True

    def render_GET(self, request):
        slow = task.deferLater(reactor, 5, lambda: "too late")
        slow.addTimeout(0.05, reactor)

        def timed_out(failure):
            request.write(b"gave up: " + failure.type.__name__.encode())
            request.finish()

        slow.addErrback(timed_out)
        return server.NOT_DONE_YET


root = resource.Resource()
root.putChild(b"bill", Bill())
root.putChild(b"parallel", Parallel())
root.putChild(b"timeout", Timeout())
serverFromString(reactor, f"tcp:{sys.argv[1]}:interface=127.0.0.1").listen(server.Site(root))
reactor.run()
