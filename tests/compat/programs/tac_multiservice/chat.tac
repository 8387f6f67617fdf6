# Several services under one Application: a web page, a line protocol, a timer.
import os

from twisted.application import internet, service, strports
from twisted.internet import protocol
from twisted.protocols import basic
from twisted.web import resource, server


class Board:
    def __init__(self):
        self.messages = []
        self.ticks = 0

    def tick(self):
        self.ticks += 1


class BoardProtocol(basic.LineReceiver):
    def connectionMade(self):
        self.sendLine(b"WELCOME")

    def lineReceived(self, line):
        if line == b"LIST":
            for message in self.factory.board.messages:
                self.sendLine(b"* " + message)
            self.sendLine(b"END")
        elif line.startswith(b"POST "):
            self.factory.board.messages.append(line[5:])
            self.sendLine(b"OK %d" % len(self.factory.board.messages))
        elif line == b"BYE":
            self.sendLine(b"BYE")
            self.transport.loseConnection()
        else:
            self.sendLine(b"ERR unknown command")


class BoardFactory(protocol.ServerFactory):
    protocol = BoardProtocol

    def __init__(self, board):
        self.board = board


class BoardPage(resource.Resource):
    isLeaf = True

    def __init__(self, board):
        super().__init__()
        self.board = board

    def render_GET(self, request):
        lines = [b"<li>%s</li>" % m for m in self.board.messages]
        ticking = b"yes" if self.board.ticks > 0 else b"no"
        return b"<ul>" + b"".join(lines) + b"</ul><p>ticking: " + ticking + b"</p>"


board = Board()
application = service.Application("board")
services = service.MultiService()
services.setServiceParent(application)

strports.service(
    "tcp:%s:interface=127.0.0.1" % os.environ["PORT_WEB"], server.Site(BoardPage(board))
).setServiceParent(services)
strports.service(
    "tcp:%s:interface=127.0.0.1" % os.environ["PORT_LINES"], BoardFactory(board)
).setServiceParent(services)
internet.TimerService(0.05, board.tick).setServiceParent(services)
