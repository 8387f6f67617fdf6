# The older spelling: internet.TCPServer instead of strports, and a Site with a custom
# request factory counting requests.
import os

from twisted.application import internet, service
from twisted.web import resource, server


class CountingRequest(server.Request):
    count = 0

    def process(self):
        CountingRequest.count += 1
        self.setHeader(b"X-Request-Number", str(CountingRequest.count).encode())
        return server.Request.process(self)


class Counter(resource.Resource):
    isLeaf = True

    def render_GET(self, request):
        return b"requests so far: %d\n" % CountingRequest.count


site = server.Site(Counter())
site.requestFactory = CountingRequest

application = service.Application("legacy")
internet.TCPServer(int(os.environ["PORT"]), site, interface="127.0.0.1").setServiceParent(
    application
)
