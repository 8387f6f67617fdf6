# TLS in a .tac file: an ssl: strport for the site, DefaultOpenSSLContextFactory for a
# second, older-style SSLServer.
import os

from twisted.application import internet, service, strports
from twisted.internet import ssl
from twisted.web import resource, server, static

root = resource.Resource()
root.putChild(b"", static.Data(b"secure front page\n", "text/plain"))
root.putChild(b"api", static.Data(b'{"ok": true}', "application/json"))
site = server.Site(root)

application = service.Application("tls")
strports.service(
    "ssl:%s:privateKey=server.key:certKey=server.pem:interface=127.0.0.1" % os.environ["PORT_WEB"],
    site,
).setServiceParent(application)
context = ssl.DefaultOpenSSLContextFactory("server.key", "server.pem")
internet.SSLServer(
    int(os.environ["PORT_LEGACY"]), site, context, interface="127.0.0.1"
).setServiceParent(application)
