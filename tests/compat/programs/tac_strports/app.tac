# A .tac file as the deployment docs describe it: run with `twistd -ny app.tac`.
import os

from twisted.application import service, strports
from twisted.web import resource, server, static

root = resource.Resource()
root.putChild(b"", static.Data(b"<h1>Front page</h1>", "text/html"))
root.putChild(b"robots.txt", static.Data(b"User-agent: *\nDisallow: /private/\n", "text/plain"))
root.putChild(b"version", static.Data(b'{"version": "1.2.3"}', "application/json"))

application = service.Application("front page")
site = server.Site(root)
strports.service("tcp:%s:interface=127.0.0.1" % os.environ["PORT"], site).setServiceParent(
    application
)
