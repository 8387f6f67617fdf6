"""Sessions over TLS: SSL4ServerEndpoint with PrivateCertificate.loadPEM(...).options()."""

import sys

from twisted.internet import endpoints, reactor, ssl
from twisted.python.filepath import FilePath
from twisted.web import resource, server


class Visits(resource.Resource):
    isLeaf = True

    def render_GET(self, request):
        session = request.getSession()
        session.visits = getattr(session, "visits", 0) + 1
        return b"visit %d (secure: %r)\n" % (session.visits, request.isSecure())


class Logout(resource.Resource):
    isLeaf = True

    def render_POST(self, request):
        request.getSession().expire()
        return b"bye\n"


root = resource.Resource()
root.putChild(b"visit", Visits())
root.putChild(b"logout", Logout())

pem = FilePath("server-both.pem").getContent()
certificate = ssl.PrivateCertificate.loadPEM(pem)
endpoint = endpoints.SSL4ServerEndpoint(
    reactor, int(sys.argv[1]), certificate.options(), interface="127.0.0.1"
)
endpoint.listen(server.Site(root))
reactor.run()
