# The Evolution of Finger, finger13.tac ("Fix asymmetry"): a FingerService holding the users,
# a finger port and a status-setting port made from it with getFingerFactory and
# getFingerSetterFactory, under an Application with uid=1, gid=1 as in the tutorial.
# Run with `twistd -ny finger13.tac`; ports from the environment instead of 79/1079.
import os

from twisted.application import service, strports
from twisted.internet import defer, protocol, reactor
from twisted.protocols import basic


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


class FingerSetterProtocol(basic.LineReceiver):
    def connectionMade(self):
        self.lines = []

    def lineReceived(self, line):
        self.lines.append(line)

    def connectionLost(self, reason):
        # As in the tutorial: a connection that sent fewer than two lines raises IndexError
        # here (the harness's port probe does exactly that); the server carries on.
        user = self.lines[0]
        status = self.lines[1]
        self.factory.setUser(user, status)


class FingerService(service.Service):
    def __init__(self, users):
        self.users = users

    def getUser(self, user):
        return defer.succeed(self.users.get(user, b"No such user"))

    def setUser(self, user, status):
        self.users[user] = status

    def getFingerFactory(self):
        f = protocol.ServerFactory()
        f.protocol = FingerProtocol
        f.getUser = self.getUser
        return f

    def getFingerSetterFactory(self):
        f = protocol.ServerFactory()
        f.protocol = FingerSetterProtocol
        f.setUser = self.setUser
        return f


application = service.Application("finger", uid=1, gid=1)
f = FingerService({b"moshez": b"Happy and well"})
serviceCollection = service.IServiceCollection(application)
strports.service("tcp:%s" % os.environ["PORT_FINGER"], f.getFingerFactory()).setServiceParent(
    serviceCollection
)
strports.service(
    "tcp:%s:interface=127.0.0.1" % os.environ["PORT_SETTER"], f.getFingerSetterFactory()
).setServiceParent(serviceCollection)
