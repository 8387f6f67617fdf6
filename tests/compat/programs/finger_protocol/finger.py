"""The Evolution of Finger, part 1 (finger03.py and finger08.py): the first finger servers.

One port drops every connection at once (finger03: "Drop Connections"); the other reads a
user name and answers from a dict through a Deferred (finger08: "Read Username, Output From
Non-empty Factory, Drop Connections, Use Deferreds").
"""

import sys

from twisted.internet import defer, endpoints, protocol, reactor
from twisted.protocols import basic


class DropProtocol(protocol.Protocol):
    def connectionMade(self):
        self.transport.loseConnection()


class DropFactory(protocol.ServerFactory):
    protocol = DropProtocol


class FingerProtocol(basic.LineReceiver):
    def lineReceived(self, user):
        d = self.factory.getUser(user)

        def onError(err):
            return b"Internal error in server"

        d.addErrback(onError)

        def writeResponse(message):
            self.transport.write(message + b"\r\n")
            self.transport.loseConnection()

        d.addCallback(writeResponse)


class FingerFactory(protocol.ServerFactory):
    protocol = FingerProtocol

    def __init__(self, users):
        self.users = users

    def getUser(self, user):
        return defer.succeed(self.users.get(user, b"No such user"))


drop_port, finger_port = sys.argv[1], sys.argv[2]
endpoints.serverFromString(reactor, f"tcp:{drop_port}").listen(DropFactory())
fingerEndpoint = endpoints.serverFromString(reactor, f"tcp:{finger_port}")
fingerEndpoint.listen(FingerFactory({b"moshez": b"Happy and well"}))
reactor.run()
