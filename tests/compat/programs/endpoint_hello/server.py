"""Greetings on a resource tree: TCP4ServerEndpoint, Site and reactor.run()."""

import sys

from twisted.internet import endpoints, reactor
from twisted.web.resource import Resource
from twisted.web.server import Site


class Greeting(Resource):
    isLeaf = True

    def __init__(self, word):
        super().__init__()
        self.word = word

    def render_GET(self, request):
        request.setHeader(b"content-type", b"text/plain; charset=utf-8")
        rest = b"/".join(request.postpath).decode() or "world"
        return f"{self.word}, {rest}!\n".encode()


class Menu(Resource):
    def render_GET(self, request):
        return b"<html><body><a href='/hello'>hello</a> <a href='/hi'>hi</a></body></html>"


root = Resource()
root.putChild(b"menu", Menu())
root.putChild(b"hello", Greeting("Hello"))
root.putChild(b"hi", Greeting("Hi"))

port = int(sys.argv[1])
endpoint = endpoints.TCP4ServerEndpoint(reactor, port, interface="127.0.0.1")
endpoint.listen(Site(root))
reactor.run()
