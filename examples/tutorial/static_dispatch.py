"""Static dispatch: a fixed URL layout built with ``putChild``.

Each ``putChild(name, child)`` hangs a resource under one path segment. Traversal starts at
the root and follows one child per segment, so ``/files/hello.txt`` reaches the ``File`` at
``files`` and lets it find ``hello.txt``. The empty name ``b""`` is what ``/`` itself (or a
trailing slash) asks for. Any segment without a child gets a 404.

Run ``python static_dispatch.py [PORT]`` and try ``/``, ``/about`` and ``/files/``.
"""

import sys
from pathlib import Path

from treadle.internet import reactor
from treadle.web.resource import Resource
from treadle.web.server import Site
from treadle.web.static import Data, File

PUBLIC = Path(__file__).resolve().parent / "public"


class Home(Resource):
    isLeaf = True

    def render_GET(self, request):
        return (
            b"<!DOCTYPE html><html><head><title>Home</title></head><body>"
            b"<h1>Home</h1><ul>"
            b'<li><a href="/about">About this site</a> (bytes kept in memory)</li>'
            b'<li><a href="/files/">Some files</a> (a directory on disk)</li>'
            b"</ul></body></html>"
        )


def make_site():
    """Return a Site with three fixed places: ``/``, ``/about`` and ``/files/...``."""
    root = Resource()
    root.putChild(b"", Home())
    root.putChild(b"about", Data(b"A site laid out with putChild.\n", "text/plain; charset=utf-8"))
    root.putChild(b"files", File(str(PUBLIC)))
    return Site(root)


if __name__ == "__main__":
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 8080
    reactor.listenTCP(port, make_site())
    reactor.run()
