# A .tac file choosing where the log goes: the application's ILogObserver component.
import os

from twisted.application import service, strports
from twisted.logger import ILogObserver, Logger, textFileLogObserver
from twisted.web import resource, server

log = Logger(namespace="tacapp")


class Visit(resource.Resource):
    isLeaf = True
    visits = 0

    def render_GET(self, request):
        Visit.visits += 1
        log.info("compat visit number {n}", n=Visit.visits)
        with open("app.log") as logfile:
            mentions = sum("compat visit number" in line for line in logfile)
        return b"visit %d; the log mentions %d visits\n" % (Visit.visits, mentions)


application = service.Application("logging to a file")
application.setComponent(ILogObserver, textFileLogObserver(open("app.log", "a")))
strports.service(
    "tcp:%s:interface=127.0.0.1" % os.environ["PORT"], server.Site(Visit())
).setServiceParent(application)
