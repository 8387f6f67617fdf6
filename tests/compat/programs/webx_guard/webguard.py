"""docs/web/examples/webguard.py, grown a little: HTTPAuthSessionWrapper around a Portal
with an in-memory checker and Basic credentials; a realm that gives each avatar its own
resource tree; a second wrapper that also lets anonymous visitors in."""

import sys

from twisted.cred.checkers import (
    ANONYMOUS,
    AllowAnonymousAccess,
    InMemoryUsernamePasswordDatabaseDontUse,
)
from twisted.cred.portal import IRealm, Portal
from twisted.internet import defer, reactor
from twisted.web import guard, resource, server
from zope.interface import implementer

LOGOUTS = []


class Home(resource.Resource):
    def __init__(self, who):
        super().__init__()
        self.who = who
        self.putChild(b"child", Leaf(who))

    def getChild(self, path, request):
        if path == b"":
            return self
        return resource.Resource.getChild(self, path, request)

    def render_GET(self, request):
        return b"hello %s prepath=%r postpath=%r user=%r logouts=%d" % (
            self.who,
            request.prepath,
            request.postpath,
            request.getUser(),
            len(LOGOUTS),
        )


class Leaf(resource.Resource):
    isLeaf = True

    def __init__(self, who):
        super().__init__()
        self.who = who

    def render_GET(self, request):
        return b"leaf of %s: prepath=%r postpath=%r" % (self.who, request.prepath, request.postpath)


@implementer(IRealm)
class SimpleRealm:
    def requestAvatar(self, avatarId, mind, *interfaces):
        if resource.IResource not in interfaces:
            raise NotImplementedError()
        if avatarId is ANONYMOUS:
            return resource.IResource, Home(b"anonymous"), lambda: None
        if avatarId == b"slow":
            d = defer.Deferred()
            reactor.callLater(0, d.callback, (resource.IResource, Home(b"slow"), lambda: None))
            return d
        if avatarId == b"broken":
            raise RuntimeError("realm refused")
        return resource.IResource, Home(avatarId), lambda: LOGOUTS.append(avatarId)


checker = InMemoryUsernamePasswordDatabaseDontUse(joe=b"blow", slow=b"s", broken=b"b")
private = guard.HTTPAuthSessionWrapper(
    Portal(SimpleRealm(), [checker]), [guard.BasicCredentialFactory("example.com")]
)
public = guard.HTTPAuthSessionWrapper(
    Portal(SimpleRealm(), [checker, AllowAnonymousAccess()]),
    [guard.BasicCredentialFactory(b"open.example")],
)

root = resource.Resource()
root.putChild(b"private", private)
root.putChild(b"public", public)
reactor.listenTCP(int(sys.argv[1]), server.Site(root), interface="127.0.0.1")
reactor.run()
