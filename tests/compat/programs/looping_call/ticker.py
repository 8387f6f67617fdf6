"""LoopingCall: a heartbeat, one that stops itself, and withCount."""

import sys

from twisted.internet import defer, reactor, task
from twisted.web import resource, server

state = {"beats": 0, "countdown": 3, "counted": 0}
reached = defer.Deferred()


def beat():
    state["beats"] += 1
    if state["beats"] == 5:
        reached.callback(state["beats"])


def countdown():
    state["countdown"] -= 1
    if state["countdown"] == 0:
        stopper.stop()


def counted(count):
    # Called with how many intervals passed since the last call (at least 1).
    state["counted"] += count


heart = task.LoopingCall(beat)
heart.start(0.02)
stopper = task.LoopingCall(countdown)
stopped = stopper.start(0.01, now=False)
stopped.addCallback(lambda lc: state.setdefault("stopped", lc is stopper))
withcount = task.LoopingCall.withCount(counted)
withcount.start(0.01)


class Status(resource.Resource):
    isLeaf = True

    def render_GET(self, request):
        def show(_):
            request.write(
                b"heart running: %r\ncountdown: %d, stopped: %r, stopper running: %r\n"
                b"counted at least 3: %r\n"
                % (
                    heart.running,
                    state["countdown"],
                    state.get("stopped"),
                    stopper.running,
                    state["counted"] >= 3,
                )
            )
            heart.stop()
            request.write(b"heart running after stop: %r\n" % heart.running)
            request.finish()

        # Five beats take ~0.1 s: the answer waits for them, whenever the request comes.
        defer.gatherResults([reached, stopped]).addCallback(show)
        return server.NOT_DONE_YET


reactor.listenTCP(int(sys.argv[1]), server.Site(Status()), interface="127.0.0.1")
reactor.run()
