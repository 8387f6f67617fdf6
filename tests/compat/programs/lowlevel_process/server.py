"""Twisted's low-level pattern: an http.Request subclass answering in process().

One port serves a factory whose channel class names the request class; the other a factory
whose buildProtocol sets requestFactory on each channel it makes.
"""

import sys

from twisted.internet import reactor
from twisted.internet.endpoints import serverFromString
from twisted.web import http


class EchoRequest(http.Request):
    def process(self):
        self.setHeader(b"content-type", b"text/plain")
        lines = [
            b"method=" + self.method,
            b"path=" + self.path,
            b"args=" + repr(sorted(self.args.items())).encode(),
            b"body=" + self.content.read(),
            b"host=" + self.getRequestHostname(),
        ]
        self.write(b"\n".join(lines) + b"\n")
        self.finish()


class EchoChannel(http.HTTPChannel):
    requestFactory = EchoRequest


class ShoutRequest(http.Request):
    def process(self):
        self.setResponseCode(202)
        self.setHeader(b"content-type", b"text/plain")
        self.write(self.path.upper())
        self.finish()


class ShoutFactory(http.HTTPFactory):
    def buildProtocol(self, addr):
        channel = http.HTTPFactory.buildProtocol(self, addr)
        channel.requestFactory = ShoutRequest
        return channel


echo = http.HTTPFactory()
echo.protocol = EchoChannel
serverFromString(reactor, f"tcp:{sys.argv[1]}:interface=127.0.0.1").listen(echo)
serverFromString(reactor, f"tcp:{sys.argv[2]}:interface=127.0.0.1").listen(ShoutFactory())
reactor.run()
