# A resource script written for Twisted, left exactly as twistd web would run it.
#
# Inside .rpy files treadle answers the ``twisted.*`` imports itself (for the script only),
# so scripts move over without a single change. ``registry`` is shared by all the scripts
# of a site and outlives each run: the first request stores when it came, later ones read it.

import time

from twisted.web.resource import Resource

FIRST_SEEN = "tutorial.first-seen"


class Uptime(Resource):
    isLeaf = True

    def render_GET(self, request):
        first = registry.getComponent(FIRST_SEEN)  # noqa: F821 - given to every script
        if first is None:
            first = time.time()
            registry.setComponent(FIRST_SEEN, first)  # noqa: F821
        request.setHeader(b"content-type", b"text/plain; charset=utf-8")
        return b"first request %.0f seconds ago\n" % (time.time() - first)


resource = Uptime()
