"""Custom response codes: pick the status line with ``request.setResponseCode``.

A render method decides the status as well as the body; the code must be set before the
first byte of the body goes out. ``/`` answers 200 as usual, while ``/premium`` answers
``402 Payment Required``, a code no built-in resource uses.

Run ``python custom_codes.py [PORT]`` and try ``curl -i http://localhost:8080/premium``.
"""

import sys

from treadle.internet import reactor
from treadle.web.resource import Resource
from treadle.web.server import Site

PAYMENT_REQUIRED = 402


class Free(Resource):
    isLeaf = True

    def render_GET(self, request):
        return b'<!DOCTYPE html><html><body><p>Free for all. <a href="/premium">More?</a></p>'


class Premium(Resource):
    isLeaf = True

    def render_GET(self, request):
        request.setResponseCode(PAYMENT_REQUIRED)
        return b"<!DOCTYPE html><html><body><p>This content is for subscribers only.</p>"


def make_site():
    """Return a Site with a free page at ``/`` and a paying one at ``/premium``."""
    root = Resource()
    root.putChild(b"", Free())
    root.putChild(b"premium", Premium())
    return Site(root)


if __name__ == "__main__":
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 8080
    reactor.listenTCP(port, make_site())
    reactor.run()
