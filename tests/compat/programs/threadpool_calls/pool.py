"""Threads the classic way: callInThread, callFromThread, and a ThreadPool of one's own."""

import sys
import threading

from twisted.internet import defer, reactor, threads
from twisted.python.threadpool import ThreadPool
from twisted.web import resource, server

pool = ThreadPool(minthreads=1, maxthreads=2, name="compat-pool")
pool.start()
reactor.addSystemEventTrigger("before", "shutdown", pool.stop)
reactor_thread = []


class Background(resource.Resource):
    isLeaf = True

    def render_GET(self, request):
        def work():
            name = threading.current_thread().name
            in_reactor = threading.get_ident() == reactor_thread[0]
            reactor.callFromThread(answer, f"worker in reactor thread: {in_reactor}, {bool(name)}")

        def answer(text):
            request.write(text.encode() + b"\n")
            request.write(
                b"answer in reactor thread: %r\n" % (threading.get_ident() == reactor_thread[0],)
            )
            request.finish()

        reactor.callInThread(work)
        return server.NOT_DONE_YET


class Pooled(resource.Resource):
    isLeaf = True

    def render_GET(self, request):
        def square_all(numbers):
            return [n * n for n in numbers], threading.current_thread().name.__contains__(
                "compat-pool"
            )

        d = threads.deferToThreadPool(reactor, pool, square_all, range(5))
        d.addCallback(lambda result: request.write(repr(result).encode()))
        d.addCallback(lambda _: request.finish())
        return server.NOT_DONE_YET


class Several(resource.Resource):
    isLeaf = True

    def render_GET(self, request):
        done = []
        everything = defer.Deferred()

        def record(tag):
            done.append(tag)
            if len(done) == 3:
                reactor.callFromThread(everything.callback, sorted(done))

        calls = [(record, (tag,), {}) for tag in "abc"]
        threads.callMultipleInThread(calls)
        everything.addCallback(lambda tags: request.write(" ".join(tags).encode()))
        everything.addCallback(lambda _: request.finish())
        return server.NOT_DONE_YET


root = resource.Resource()
root.putChild(b"background", Background())
root.putChild(b"pooled", Pooled())
root.putChild(b"several", Several())
reactor.callWhenRunning(lambda: reactor_thread.append(threading.get_ident()))
reactor.listenTCP(int(sys.argv[1]), server.Site(root), interface="127.0.0.1")
reactor.run()
