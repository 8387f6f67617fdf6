"""Access logging: one line per request in a log file, as Apache and nginx write them.

Give ``Site`` a ``logPath`` and every finished request is appended to that file in the
combined log format: client address, time, request line, status, body size, referrer and
user agent. Without ``logPath`` the same lines go to the ``treadle.access`` logger, which
stays silent unless logging is configured for it.

Run ``python access_logging.py [PORT] [LOGFILE]``, load a page or two and look at LOGFILE
(``access.log`` in the current directory by default).
"""

import sys

from treadle.internet import reactor
from treadle.web.resource import Resource
from treadle.web.server import Site


class Hello(Resource):
    isLeaf = True

    def render_GET(self, request):
        return b"<!DOCTYPE html><html><body><p>This visit was written down.</p></body></html>"


def make_site(logPath="access.log"):
    """Return a Site that appends a line to ``logPath`` for every request it answers."""
    return Site(Hello(), logPath=logPath)


if __name__ == "__main__":
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 8080
    log_path = sys.argv[2] if len(sys.argv) > 2 else "access.log"
    reactor.listenTCP(port, make_site(log_path))
    reactor.run()
