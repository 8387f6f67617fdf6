"""TLS through endpoint strings: a web site and a line protocol, both over ssl:."""

import sys

from twisted.internet import protocol, reactor
from twisted.internet.endpoints import serverFromString
from twisted.protocols.basic import LineReceiver
from twisted.web import resource, server


class Whoami(resource.Resource):
    isLeaf = True

    def render_GET(self, request):
        secure = request.isSecure()
        scheme = b"https" if secure else b"http"
        return b"secure=%r scheme=%s path=%s\n" % (secure, scheme, request.uri)


class Reverse(LineReceiver):
    def lineReceived(self, line):
        self.sendLine(line[::-1])


web, lines, plain = sys.argv[1:4]
keys = "privateKey=server.key:certKey=server.pem:interface=127.0.0.1"
site = server.Site(Whoami())
serverFromString(reactor, f"ssl:{web}:{keys}").listen(site)
serverFromString(reactor, f"ssl:port={lines}:{keys}").listen(protocol.Factory.forProtocol(Reverse))
serverFromString(reactor, f"tcp:{plain}:interface=127.0.0.1").listen(site)
reactor.run()
