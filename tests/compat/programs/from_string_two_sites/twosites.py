"""A public site and an admin site, each on its own endpoint string, sharing state."""

import json
import os

from twisted.internet import reactor
from twisted.internet.endpoints import serverFromString
from twisted.web import resource, server

hits = {"public": 0}


class Public(resource.Resource):
    isLeaf = True

    def render_GET(self, request):
        hits["public"] += 1
        return b"welcome\n"


class Stats(resource.Resource):
    isLeaf = True

    def render_GET(self, request):
        request.setHeader(b"Content-Type", b"application/json")
        return json.dumps(hits, sort_keys=True).encode()

    def render_DELETE(self, request):
        hits["public"] = 0
        request.setResponseCode(204)
        return b""


admin = resource.Resource()
admin.putChild(b"stats", Stats())

public_port = os.environ["PORT_PUBLIC"]
admin_port = os.environ["PORT_ADMIN"]
serverFromString(reactor, "tcp:" + public_port).listen(server.Site(Public()))
serverFromString(reactor, f"tcp:port={admin_port}:interface=127.0.0.1").listen(server.Site(admin))
reactor.run()
