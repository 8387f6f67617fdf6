"""Slow work off the reactor thread with deferToThread; the answer comes back later."""

import hashlib
import sys
import threading

from twisted.internet import reactor, threads
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Site

MAIN_THREAD = threading.get_ident()


def slow_hash(data, rounds):
    digest = data
    for _ in range(rounds):
        digest = hashlib.sha256(digest).digest()
    return digest.hex(), threading.get_ident() != MAIN_THREAD


def explode(message):
    raise ValueError(message)


class Hash(Resource):
    isLeaf = True

    def render_POST(self, request):
        rounds = int(request.args.get(b"rounds", [b"1000"])[0])
        d = threads.deferToThread(slow_hash, request.content.read(), rounds)

        def answer(result):
            digest, in_thread = result
            request.write(f"{digest}\nin a thread: {in_thread}\n".encode())
            request.finish()

        d.addCallback(answer)
        return NOT_DONE_YET


class Explode(Resource):
    isLeaf = True

    def render_GET(self, request):
        d = threads.deferToThread(explode, "kaboom")

        def report(failure):
            request.setResponseCode(500)
            request.write(f"{failure.type.__name__}: {failure.getErrorMessage()}\n".encode())
            request.finish()

        d.addErrback(report)
        return NOT_DONE_YET


root = Resource()
root.putChild(b"hash", Hash())
root.putChild(b"explode", Explode())
TCP4ServerEndpoint(reactor, int(sys.argv[1]), interface="127.0.0.1").listen(Site(root))
reactor.run()
