# The "cache()" example: the resource (and its count) survives between requests.
from twisted.web.resource import Resource

cache()


class Counter(Resource):
    isLeaf = True
    count = 0

    def render_GET(self, request):
        self.count += 1
        return b"cached counter: %d" % self.count


resource = Counter()
