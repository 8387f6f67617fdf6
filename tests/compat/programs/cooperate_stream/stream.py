"""Long answers written piece by piece with task.cooperate and task.coiterate."""

import sys

from twisted.internet import reactor, task
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.web import resource, server


def lines(request, count):
    for number in range(1, count + 1):
        request.write(b"line %d of %d\n" % (number, count))
        yield None


class Stream(resource.Resource):
    isLeaf = True

    def render_GET(self, request):
        count = int(request.args.get(b"n", [b"5"])[0])
        request.setHeader(b"content-type", b"text/plain")
        work = task.cooperate(lines(request, count))
        request.notifyFinish().addErrback(lambda _: work.stop())
        work.whenDone().addCallback(lambda _: request.finish())
        return server.NOT_DONE_YET


class Sum(resource.Resource):
    isLeaf = True

    def render_GET(self, request):
        total = []

        def add():
            for number in range(101):
                total.append(number)
                yield None

        d = task.coiterate(add())
        d.addCallback(lambda _: request.write(b"sum: %d\n" % sum(total)))
        d.addCallback(lambda _: request.finish())
        return server.NOT_DONE_YET


class Paused(resource.Resource):
    isLeaf = True

    def render_GET(self, request):
        log = []

        def steps():
            for step in range(4):
                log.append(step)
                yield None

        work = task.cooperate(steps())
        work.pause()
        log.append("paused")

        def resume():
            log.append("resumed")
            work.resume()

        reactor.callLater(0.05, resume)
        work.whenDone().addCallback(lambda _: request.write(repr(log).encode()))
        work.whenDone().addCallback(lambda _: request.finish())
        return server.NOT_DONE_YET


root = resource.Resource()
root.putChild(b"stream", Stream())
root.putChild(b"sum", Sum())
root.putChild(b"paused", Paused())
TCP4ServerEndpoint(reactor, int(sys.argv[1]), interface="127.0.0.1").listen(server.Site(root))
reactor.run()
