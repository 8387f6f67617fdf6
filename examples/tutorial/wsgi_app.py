"""WSGI: run a WSGI application (Flask, Django, Bottle...) inside a resource tree.

``WSGIResource`` calls the application in a worker thread, so a slow view never blocks the
event loop. It is an ordinary resource: mount it anywhere with ``putChild`` beside other
resources. The path segments used to reach it become ``SCRIPT_NAME``; the rest of the path
is the application's ``PATH_INFO``.

Twisted passes ``reactor.getThreadPool()`` as the pool; with treadle pass ``None`` for a
shared pool, or any ``concurrent.futures`` executor.

Run ``python wsgi_app.py [PORT]`` and open http://localhost:8080/app/some/path?x=1.
"""

import sys

from treadle.internet import reactor
from treadle.web.resource import Resource
from treadle.web.server import Site
from treadle.web.static import Data
from treadle.web.wsgi import WSGIResource


def application(environ, start_response):
    """A complete WSGI application: it reports where it was mounted and what it was asked."""
    lines = [
        "Hello from WSGI.",
        f"SCRIPT_NAME={environ['SCRIPT_NAME']}",
        f"PATH_INFO={environ['PATH_INFO']}",
        f"QUERY_STRING={environ.get('QUERY_STRING', '')}",
    ]
    body = ("\n".join(lines) + "\n").encode("utf-8")
    start_response(
        "200 OK",
        [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body)))],
    )
    return [body]


def make_site(threadpool=None):
    """Return a Site with the application at ``/app`` (``threadpool``: None for the shared one)."""
    root = Resource()
    root.putChild(b"", Data(b"The WSGI application lives at /app.\n", "text/plain"))
    root.putChild(b"app", WSGIResource(reactor, threadpool, application))
    return Site(root)


if __name__ == "__main__":
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 8080
    reactor.listenTCP(port, make_site())
    reactor.run()
