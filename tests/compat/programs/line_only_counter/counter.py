"""Counters over LineOnlyReceiver, built with Factory.forProtocol, plus a JSON page."""

import json
import sys
from collections import Counter

from twisted.internet import protocol, reactor
from twisted.protocols import basic
from twisted.web import resource, server

counts = Counter()


class CounterProtocol(basic.LineOnlyReceiver):
    delimiter = b"\n"
    MAX_LENGTH = 64

    def lineReceived(self, line):
        words = line.split()
        if len(words) == 2 and words[0] == b"INCR":
            counts[words[1].decode()] += 1
            self.sendLine(str(counts[words[1].decode()]).encode())
        elif words == [b"TOTAL"]:
            self.sendLine(str(sum(counts.values())).encode())
        else:
            self.sendLine(b"?")

    def lineLengthExceeded(self, line):
        self.sendLine(b"TOO LONG")
        self.transport.loseConnection()


class Counts(resource.Resource):
    isLeaf = True

    def render_GET(self, request):
        request.setHeader(b"content-type", b"application/json")
        return json.dumps(dict(sorted(counts.items()))).encode()


reactor.listenTCP(int(sys.argv[1]), server.Site(Counts()), interface="127.0.0.1")
reactor.listenTCP(
    int(sys.argv[2]), protocol.Factory.forProtocol(CounterProtocol), interface="127.0.0.1"
)
reactor.run()
