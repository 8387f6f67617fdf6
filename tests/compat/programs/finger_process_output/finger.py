"""The Evolution of Finger: finger09.py ("Read Username, Output From Factory Interfacing to
OS") and the LocalFingerService back-ends of finger19b/19c, with harmless commands.

finger09's getUser is utils.getProcessOutput(b"finger", [user]); here the system's finger is
replaced by `echo` (one port) and by `cat USER.plan` (another port: a user's .plan file, as
finger19c reads it). A missing .plan makes cat write to stderr, so getProcessOutput fails and
the protocol answers "Internal error in server".
"""

import sys

from twisted.internet import endpoints, protocol, reactor, utils
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


class FingerFactory(protocol.ServerFactory):
    protocol = FingerProtocol

    def getUser(self, user):
        return utils.getProcessOutput(b"echo", [b"Login:", user])


class PlanFingerFactory(protocol.ServerFactory):
    protocol = FingerProtocol

    def getUser(self, user):
        d = utils.getProcessOutput(b"cat", [user + b".plan"])
        d.addCallback(lambda plan: plan.strip())
        return d


echo_port, plan_port = sys.argv[1], sys.argv[2]
fingerEndpoint = endpoints.serverFromString(reactor, f"tcp:{echo_port}")
fingerEndpoint.listen(FingerFactory())
endpoints.serverFromString(reactor, f"tcp:{plan_port}").listen(PlanFingerFactory())
reactor.run()
