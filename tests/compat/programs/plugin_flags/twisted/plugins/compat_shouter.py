"""A plugin with flags, a validated option and a MultiService of two listeners."""

from twisted.application import service, strports
from twisted.application.service import IServiceMaker
from twisted.internet import protocol
from twisted.plugin import IPlugin
from twisted.protocols import basic
from twisted.python import usage
from twisted.web import resource, server
from zope.interface import implementer


class Options(usage.Options):
    optFlags = [["shout", "s", "Answer in capitals."]]
    optParameters = [
        ["web", None, None, "Web endpoint description."],
        ["lines", None, None, "Line protocol endpoint description."],
        ["repeat", "r", 1, "How many times to answer.", int],
    ]

    def postOptions(self):
        if not self["web"] or not self["lines"]:
            raise usage.UsageError("--web and --lines are required")
        if self["repeat"] < 1:
            raise usage.UsageError("--repeat must be positive")


def answer(text, options):
    text = text.upper() if options["shout"] else text
    return b" ".join([text] * options["repeat"])


class Page(resource.Resource):
    isLeaf = True

    def __init__(self, options):
        super().__init__()
        self.options = options

    def render_GET(self, request):
        return answer(request.path, self.options)


class Repeater(basic.LineReceiver):
    delimiter = b"\n"

    def lineReceived(self, line):
        self.sendLine(answer(line, self.factory.options))


@implementer(IServiceMaker, IPlugin)
class ShouterMaker:
    tapname = "compat-shouter"
    description = "Repeats what it hears, loudly if asked."
    options = Options

    def makeService(self, options):
        top = service.MultiService()
        lines = protocol.ServerFactory()
        lines.protocol = Repeater
        lines.options = options
        strports.service(options["web"], server.Site(Page(options))).setServiceParent(top)
        strports.service(options["lines"], lines).setServiceParent(top)
        return top


shouter = ShouterMaker()
