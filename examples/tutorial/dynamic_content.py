"""Dynamic content: a page computed afresh for every request.

A resource with ``isLeaf = True`` answers every path below it itself; ``render_GET``
returns the body as bytes. Here the body states the server's current time, so reloading
the page shows it moving on.

Run ``python dynamic_content.py [PORT]`` and open http://localhost:8080/.
"""

import sys
from datetime import UTC, datetime

from treadle.internet import reactor
from treadle.web.resource import Resource
from treadle.web.server import Site


class TimePage(Resource):
    isLeaf = True

    def render_GET(self, request):
        now = datetime.now(UTC).replace(microsecond=0)
        request.setHeader(b"content-type", b"text/html; charset=utf-8")
        return (
            "<!DOCTYPE html><html><head><title>What time is it?</title></head><body>"
            f'<p>The clock on the server says <time datetime="{now.isoformat()}">'
            f"{now:%H:%M:%S} UTC, {now:%A %d %B %Y}</time>.</p></body></html>"
        ).encode()


def make_site():
    """Return a Site whose every URL shows the time."""
    return Site(TimePage())


if __name__ == "__main__":
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 8080
    reactor.listenTCP(port, make_site())
    reactor.run()
