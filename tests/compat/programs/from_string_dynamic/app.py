"""Dynamic children with getChild, listening through serverFromString."""

import sys

from twisted.internet import reactor
from twisted.internet.endpoints import serverFromString
from twisted.web.resource import NoResource, Resource
from twisted.web.server import Site

USERS = {b"alice": "Alice Liddell", b"bob": "Bob Dylan"}


class UserPage(Resource):
    isLeaf = True

    def __init__(self, login, fullName):
        super().__init__()
        self.login = login
        self.fullName = fullName

    def render_GET(self, request):
        request.setHeader("Content-Type", "text/plain")
        prepath = b"/".join(request.prepath).decode()
        postpath = b"/".join(request.postpath).decode()
        return f"{self.fullName} ({prepath} | {postpath})\n".encode()


class Users(Resource):
    def getChild(self, name, request):
        if name == b"":
            return self
        if name in USERS:
            return UserPage(name, USERS[name])
        return NoResource(f"No user called {name.decode()!r}.")

    def render_GET(self, request):
        return b", ".join(sorted(USERS)) + b"\n"


class Root(Resource):
    def getChild(self, name, request):
        if name == b"":
            return self
        return Resource.getChild(self, name, request)

    def render_GET(self, request):
        return b"<a href='/users/'>users</a>"


root = Root()
root.putChild(b"users", Users())

endpoint = serverFromString(reactor, f"tcp:{sys.argv[1]}:interface=127.0.0.1")
endpoint.listen(Site(root))
reactor.run()
