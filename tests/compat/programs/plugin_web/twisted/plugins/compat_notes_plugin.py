"""A twistd plugin: `twistd -n compat-notes --port 8080 --greeting Hi`."""

from twisted.application import strports
from twisted.application.service import IServiceMaker
from twisted.plugin import IPlugin
from twisted.python import usage
from twisted.web import resource, server
from zope.interface import implementer


class Options(usage.Options):
    optParameters = [
        ["port", "p", 8080, "Port to listen on.", int],
        ["greeting", "g", "Hello", "The word to greet with."],
    ]


class Greeter(resource.Resource):
    isLeaf = True

    def __init__(self, greeting):
        super().__init__()
        self.greeting = greeting

    def render_GET(self, request):
        name = request.args.get(b"name", [b"stranger"])[0].decode()
        return f"{self.greeting}, {name}.\n".encode()


@implementer(IServiceMaker, IPlugin)
class NotesServiceMaker:
    tapname = "compat-notes"
    description = "Greets whoever asks."
    options = Options

    def makeService(self, options):
        site = server.Site(Greeter(options["greeting"]))
        return strports.service(f"tcp:{options['port']}:interface=127.0.0.1", site)


serviceMaker = NotesServiceMaker()
