"""Per-visitor counters in sessions, the adapter way (Componentized + registerAdapter)."""

import sys

from twisted.internet import reactor
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.python.components import registerAdapter
from twisted.web import resource, server
from twisted.web.server import Session
from zope.interface import Attribute, Interface, implementer

expired = []


class ICounter(Interface):
    value = Attribute("How many times this visitor came.")


@implementer(ICounter)
class Counter:
    def __init__(self, session):
        self.value = 0


registerAdapter(Counter, Session, ICounter)


class Count(resource.Resource):
    isLeaf = True

    def render_GET(self, request):
        session = request.getSession()
        counter = ICounter(session)
        if counter.value == 0:
            session.notifyOnExpire(lambda: expired.append("a session expired"))
        counter.value += 1
        same = request.getSession() is session
        return b"visits: %d (same session object: %r)\n" % (counter.value, same)


class Forget(resource.Resource):
    isLeaf = True

    def render_POST(self, request):
        request.getSession().expire()
        return ("\n".join(expired) + "\n").encode()


class Anonymous(resource.Resource):
    isLeaf = True

    def render_GET(self, request):
        return b"no session made here\n"


root = resource.Resource()
root.putChild(b"count", Count())
root.putChild(b"forget", Forget())
root.putChild(b"anonymous", Anonymous())
TCP4ServerEndpoint(reactor, int(sys.argv[1]), interface="127.0.0.1").listen(server.Site(root))
reactor.run()
