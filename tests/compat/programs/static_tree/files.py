"""static.File serving a folder, with an API child and custom content types."""

import json
import sys

from twisted.internet import endpoints, reactor
from twisted.python.filepath import FilePath
from twisted.web import resource, server, static

here = FilePath(__file__).parent()


class FileCount(resource.Resource):
    isLeaf = True

    def __init__(self, folder):
        super().__init__()
        self.folder = folder

    def render_GET(self, request):
        names = sorted(child.basename() for child in self.folder.walk() if child.isfile())
        return json.dumps(names).encode()


root = static.File(here.child("public").path)
root.contentTypes[".csv"] = "text/csv"
root.putChild(b"api", FileCount(here.child("public")))
docs = static.File(here.child("public").child("docs").path, defaultType="text/plain")
docs.indexNames = ["start.txt"]
root.putChild(b"documentation", docs)

endpoints.TCP4ServerEndpoint(reactor, int(sys.argv[1]), interface="127.0.0.1").listen(
    server.Site(root)
)
reactor.run()
