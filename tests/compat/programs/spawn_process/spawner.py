"""A ProcessProtocol talking to a child over stdin/stdout, with reactor.spawnProcess."""

import os
import sys

from twisted.internet import defer, protocol, reactor
from twisted.web import resource, server

CHILD = """
import sys
for line in sys.stdin:
    sys.stdout.write(line.upper())
    sys.stdout.flush()
sys.stderr.write("child done\\n")
sys.exit(int(sys.argv[1]))
"""


class Uppercaser(protocol.ProcessProtocol):
    def __init__(self, text):
        self.text = text
        self.out = b""
        self.err = b""
        self.events = []
        self.done = defer.Deferred()

    def connectionMade(self):
        self.events.append("started")
        self.transport.write(self.text)
        self.transport.closeStdin()

    def outReceived(self, data):
        self.out += data

    def errReceived(self, data):
        self.err += data

    def inConnectionLost(self):
        self.events.append("stdin closed")

    def processExited(self, reason):
        self.events.append("exited")

    def processEnded(self, reason):
        self.events.append(f"ended {reason.value.exitCode} {reason.type.__name__}")
        self.done.callback(self)


class Upper(resource.Resource):
    isLeaf = True

    def render_POST(self, request):
        code = request.args.get(b"code", [b"0"])[0].decode()
        child = Uppercaser(request.content.read())
        reactor.spawnProcess(
            child, sys.executable, [sys.executable, "-c", CHILD, code], env=os.environ
        )

        def report(child):
            request.write(child.out)
            request.write(child.err)
            request.write(", ".join(e for e in child.events if e != "exited").encode())
            request.write(b"\n" + str("exited" in child.events).encode())
            request.finish()

        child.done.addCallback(report)
        return server.NOT_DONE_YET


reactor.listenTCP(int(sys.argv[1]), server.Site(Upper()), interface="127.0.0.1")
reactor.run()
