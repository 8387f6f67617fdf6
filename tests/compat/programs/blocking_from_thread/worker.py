"""A worker thread that asks the reactor for things with blockingCallFromThread."""

import sys
import threading

from twisted.internet import defer, reactor, task, threads
from twisted.web import resource, server

inventory = {"bolts": 10, "nuts": 4}


def reserve(name, count):
    # Runs in the reactor thread; returns a Deferred that fires a little later.
    if inventory.get(name, 0) < count:
        return defer.fail(KeyError(name))
    inventory[name] -= count
    return task.deferLater(reactor, 0.01, lambda: inventory[name])


def fulfil(order):
    # Runs in a worker thread: it blocks on the reactor, which stays free.
    lines = []
    for name, count in order:
        try:
            left = threads.blockingCallFromThread(reactor, reserve, name, count)
            lines.append(f"{name}: reserved {count}, {left} left")
        except KeyError:
            lines.append(f"{name}: not enough")
    on_reactor = threads.blockingCallFromThread(reactor, threading.get_ident)
    lines.append(f"worker is the reactor thread: {on_reactor == threading.get_ident()}")
    return "\n".join(lines) + "\n"


class Order(resource.Resource):
    isLeaf = True

    def render_GET(self, request):
        order = [(k.decode(), int(v[0])) for k, v in sorted(request.args.items())]
        d = threads.deferToThread(fulfil, order)
        d.addCallback(lambda text: (request.write(text.encode()), request.finish()))
        return server.NOT_DONE_YET


reactor.listenTCP(int(sys.argv[1]), server.Site(Order()), interface="127.0.0.1")
reactor.run()
