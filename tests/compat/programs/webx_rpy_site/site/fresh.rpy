# Without cache(): the script runs, and a new resource is made, for every request.
import os

from twisted.web.resource import Resource


class Counter(Resource):
    isLeaf = True
    count = 0

    def render_GET(self, request):
        self.count += 1
        return b"fresh counter: %d file=%s prepath=%r postpath=%r" % (
            self.count,
            os.path.basename(__file__).encode(),
            request.prepath,
            request.postpath,
        )


resource = Counter()
