"""Length-prefixed protocols: NetstringReceiver and Int32StringReceiver servers."""

import sys

from twisted.internet import protocol, reactor
from twisted.protocols.basic import Int32StringReceiver, NetstringReceiver
from twisted.web import resource, server

seen = []


class Shout(NetstringReceiver):
    MAX_LENGTH = 50

    def stringReceived(self, string):
        seen.append(("netstring", string))
        self.sendString(string.upper())


class Count(Int32StringReceiver):
    def stringReceived(self, string):
        seen.append(("int32", string))
        self.sendString(b"%d bytes" % len(string))


class Seen(resource.Resource):
    isLeaf = True

    def render_GET(self, request):
        return repr(seen).encode()


web, net, int32 = (int(arg) for arg in sys.argv[1:4])
reactor.listenTCP(net, protocol.Factory.forProtocol(Shout), interface="127.0.0.1")
reactor.listenTCP(int32, protocol.Factory.forProtocol(Count), interface="127.0.0.1")
reactor.listenTCP(web, server.Site(Seen()), interface="127.0.0.1")
reactor.run()
