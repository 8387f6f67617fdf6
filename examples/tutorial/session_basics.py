"""Session basics: recognise a visitor again on the next request.

``request.getSession()`` returns the visitor's session, creating it (and a cookie holding
its id) on the first visit. The browser sends the cookie back, so later requests get the
same session, with the same ``uid``. ``session.expire()`` ends it at once: the next request
starts a new session with a new id.

``/`` shows the session id; ``/expire`` ends the session.

Run ``python session_basics.py [PORT]``, open http://localhost:8080/ and reload: the id
stays. Visit http://localhost:8080/expire, then ``/`` again: the id has changed.
"""

import sys

from treadle.internet import reactor
from treadle.web.resource import Resource
from treadle.web.server import Site


class ShowSession(Resource):
    isLeaf = True

    def render_GET(self, request):
        uid = request.getSession().uid.decode("ascii")
        request.setHeader(b"content-type", b"text/html; charset=utf-8")
        return (
            "<!DOCTYPE html><html><body>"
            f'<p>Your session id is <code id="uid">{uid}</code>.</p>'
            '<p><a href="/expire">End this session</a></p></body></html>'
        ).encode("ascii")


class ExpireSession(Resource):
    isLeaf = True

    def render_GET(self, request):
        request.getSession().expire()
        return b'<!DOCTYPE html><html><body><p>Session ended. <a href="/">Back</a></p>'


def make_site():
    """Return a Site that shows the session id at ``/`` and ends it at ``/expire``."""
    root = Resource()
    root.putChild(b"", ShowSession())
    root.putChild(b"expire", ExpireSession())
    return Site(root)


if __name__ == "__main__":
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 8080
    reactor.listenTCP(port, make_site())
    reactor.run()
