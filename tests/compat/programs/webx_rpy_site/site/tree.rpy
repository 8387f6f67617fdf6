# A script whose resource has children: /tree.rpy/a, /tree.rpy/b/...
from twisted.web.resource import Resource
from twisted.web.static import Data
from twisted.web.util import Redirect


class Branch(Resource):
    def getChild(self, name, request):
        return Data(b"branch " + name + b" under " + b"/".join(request.prepath), "text/plain")

    def render_GET(self, request):
        return b"branch itself"


resource = Resource()
resource.putChild(b"", Data(b"tree root", "text/plain"))
resource.putChild(b"b", Branch())
resource.putChild(b"go", Redirect(b"../fresh.rpy"))
