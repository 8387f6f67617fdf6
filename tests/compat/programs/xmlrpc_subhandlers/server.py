"""An XML-RPC server with sub-handlers, introspection, Deferred results and faults."""

import sys

from twisted.internet import defer, reactor
from twisted.web import resource, server, xmlrpc


class Store(xmlrpc.XMLRPC):
    """Keeps values by name."""

    def __init__(self):
        xmlrpc.XMLRPC.__init__(self, allowNone=True)
        self.values = {}

    def xmlrpc_put(self, name, value):
        """Store value under name; return the previous one."""
        old = self.values.get(name)
        self.values[name] = value
        return old

    def xmlrpc_get(self, name):
        if name not in self.values:
            raise xmlrpc.Fault(404, f"no value named {name}")
        return self.values[name]


class Shop(xmlrpc.XMLRPC):
    PRICES = {"tea": 3, "cake": 5}

    def xmlrpc_price(self, item):
        d = defer.Deferred()
        reactor.callLater(0.01, d.callback, self.PRICES.get(item, 0))
        return d

    @defer.inlineCallbacks
    def xmlrpc_total(self, items):
        total = 0
        for item in items:
            price = yield self.xmlrpc_price(item)
            total += price
        return {"items": len(items), "total": total}

    def xmlrpc_crash(self):
        return {}["missing"]

    @xmlrpc.withRequest
    def xmlrpc_method(self, request, extra):
        return [request.method.decode(), request.uri.decode(), extra]

    xmlrpc_total.signature = [["struct", "array"]]


shop = Shop(allowNone=True)
shop.putSubHandler("store", Store())
xmlrpc.addIntrospection(shop)

root = resource.Resource()
root.putChild(b"RPC2", shop)
reactor.listenTCP(int(sys.argv[1]), server.Site(root), interface="127.0.0.1")
reactor.run()
