"""The greeter's resources and service."""

from twisted.application import service, strports
from twisted.web import resource, server, static


class Languages(resource.Resource):
    def __init__(self, greetings):
        super().__init__()
        for code, word in greetings.items():
            self.putChild(code.encode(), static.Data(word.encode() + b"\n", "text/plain"))

    def getChild(self, name, request):
        if name == b"":
            return self
        return resource.NoResource("Unknown language.")

    def render_GET(self, request):
        return b" ".join(sorted(self.children)) + b"\n"


def makeService(config):
    greetings = {"en": "hello", "fr": "bonjour", "de": "hallo"}
    if config["extra"]:
        code, _, word = config["extra"].partition("=")
        greetings[code] = word
    top = service.MultiService()
    site = server.Site(Languages(greetings))
    strports.service(config["listen"], site).setServiceParent(top)
    return top
