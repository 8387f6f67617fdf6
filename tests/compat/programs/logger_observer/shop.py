"""twisted.logger: Loggers with format fields, an observer that keeps what it sees."""

import sys

from twisted.internet import reactor
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.logger import Logger, LogLevel, formatEvent, globalLogBeginner
from twisted.web import resource, server

seen = []


def keeper(event):
    # Only this program's own events: the server may log things of its own.
    if event.get("log_namespace", "").startswith(("shop", "__main__")):
        seen.append(f"{event['log_level'].name} {event['log_namespace']}: {formatEvent(event)}")


class Cart(resource.Resource):
    isLeaf = True
    log = Logger()

    def __init__(self):
        super().__init__()
        self.items = []

    def render_POST(self, request):
        item = request.args[b"item"][0].decode()
        count = int(request.args.get(b"count", [b"1"])[0])
        self.items.extend([item] * count)
        self.log.info("added {count:d} x {item!r}", item=item, count=count)
        if count > 5:
            self.log.warn("bulk order of {item} ({count} pieces)", item=item, count=count)
        return b"ok\n"

    def render_GET(self, request):
        self.log.debug("cart viewed with {n} items", n=len(self.items))
        return ", ".join(self.items).encode()


class Log(resource.Resource):
    isLeaf = True

    def render_GET(self, request):
        request.setHeader(b"content-type", b"text/plain")
        return "\n".join(seen).encode() + b"\n"


shop_log = Logger(namespace="shop.main")
globalLogBeginner.beginLoggingTo([keeper], redirectStandardIO=False)
shop_log.info("starting on port {port}", port="(hidden)")
shop_log.emit(LogLevel.error, "an {adjective} error, emitted", adjective="explicit")

root = resource.Resource()
root.putChild(b"cart", Cart())
root.putChild(b"log", Log())
TCP4ServerEndpoint(reactor, int(sys.argv[1]), interface="127.0.0.1").listen(server.Site(root))
reactor.run()
