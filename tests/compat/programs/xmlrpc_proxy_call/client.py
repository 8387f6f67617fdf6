"""An XML-RPC server and, in the same process, a Proxy calling it (from a web page, too)."""

import sys

from twisted.internet import defer, reactor
from twisted.web import resource, server, xmlrpc


class Echoer(xmlrpc.XMLRPC):
    def xmlrpc_echo(self, *args):
        return list(args)

    def xmlrpc_slow(self, value):
        d = defer.Deferred()
        reactor.callLater(0.01, d.callback, value * 2)
        return d

    def xmlrpc_refuse(self, why):
        raise xmlrpc.Fault(42, "refused: " + why)

    @xmlrpc.withRequest
    def xmlrpc_auth(self, request):
        return [request.getUser().decode(), request.getPassword().decode()]


class Caller(resource.Resource):
    """GET /call runs several remote calls through the Proxy and shows what came back."""

    isLeaf = True

    def __init__(self, proxy):
        resource.Resource.__init__(self)
        self.proxy = proxy

    @defer.inlineCallbacks
    def calls(self):
        lines = []
        echoed = yield self.proxy.callRemote("echo", "hi", 2, [True, 1.5], {"k": "v"})
        lines.append(f"echo: {echoed!r}")
        doubled = yield self.proxy.callRemote("slow", 21)
        lines.append(f"slow: {doubled!r}")
        try:
            yield self.proxy.callRemote("refuse", "no")
        except xmlrpc.Fault as fault:
            lines.append(f"fault: {fault.faultCode} {fault.faultString}")
        try:
            yield self.proxy.callRemote("missing")
        except xmlrpc.Fault as fault:
            lines.append(f"fault: {fault.faultCode} {fault.faultString}")
        blob = yield self.proxy.callRemote("echo", xmlrpc.Binary(b"\x00\xff"))
        lines.append(f"binary: {blob[0].data!r}")
        secured = xmlrpc.Proxy(b"http://ann:pw@127.0.0.1:%d/RPC2" % PORT)
        who = yield secured.callRemote("auth")
        lines.append(f"auth: {who!r}")
        return "\n".join(lines).encode()

    def render_GET(self, request):
        d = self.calls()
        d.addCallback(request.write)
        d.addErrback(lambda f: request.write(b"failed: " + f.getErrorMessage().encode()))
        d.addCallback(lambda _: request.finish())
        return server.NOT_DONE_YET


PORT = int(sys.argv[1])
root = resource.Resource()
root.putChild(b"RPC2", Echoer())
proxy = xmlrpc.Proxy(b"http://127.0.0.1:%d/RPC2" % PORT)
root.putChild(b"call", Caller(proxy))
reactor.listenTCP(PORT, server.Site(root), interface="127.0.0.1")


def show(result):
    print("before run:", result, flush=True)


# The classic example: a call made before the reactor runs.
proxy.callRemote("echo", "early").addCallbacks(show, show)
reactor.run()
