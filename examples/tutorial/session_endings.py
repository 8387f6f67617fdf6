"""Session endings: sessions that time out, and code that runs when they do.

A session expires ``sessionTimeout`` seconds after the last request that used it (15
minutes by default). To change that, subclass ``Session`` and make the site use the
subclass through ``Site.sessionFactory``. ``session.notifyOnExpire(callback)`` asks for
``callback()`` when the session ends, by timeout or by ``expire()``: the place to release
what the session held.

Run ``python session_endings.py [PORT]``, open http://localhost:8080/, wait a minute
without reloading: the server prints that the session expired, and the next visit gets a
new one.
"""

import sys

from treadle.internet import reactor
from treadle.web.resource import Resource
from treadle.web.server import Session, Site

SESSION_TIMEOUT = 60  # seconds a session lives without a request

#: Ids of the sessions that have expired so far (for the curious, and for the tests).
expired = []


class ShortSession(Session):
    sessionTimeout = SESSION_TIMEOUT


class Page(Resource):
    isLeaf = True

    def render_GET(self, request):
        session = request.getSession()
        if not getattr(session, "watched", False):
            session.watched = True
            session.notifyOnExpire(lambda: self._ended(session.uid))
        request.setHeader(b"content-type", b"text/html; charset=utf-8")
        return (
            "<!DOCTYPE html><html><body>"
            f'<p>Session <code id="uid">{session.uid.decode("ascii")}</code> ends after '
            f"{session.sessionTimeout} seconds without a visit.</p></body></html>"
        ).encode("ascii")

    def _ended(self, uid):
        expired.append(uid)
        print(f"session {uid.decode('ascii')} expired", flush=True)


def make_site(clock=None):
    """Return a Site whose sessions are ``ShortSession`` s.

    ``clock`` is where the site (its sessions included) takes time and timers from: leave
    it out for the real reactor, or pass a ``treadle.internet.task.Clock`` to move time by hand in
    a test.
    """
    site = Site(Page(), reactor=clock)
    site.sessionFactory = ShortSession
    return site


if __name__ == "__main__":
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 8080
    reactor.listenTCP(port, make_site())
    reactor.run()
