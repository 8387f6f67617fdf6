"""Storing objects in the session: a per-visitor counter kept as a session component.

A ``Session`` is *componentized*: ask it for an interface (``ICounter(session)``) and it
builds the adapter registered for that interface with ``registerAdapter`` the first time,
then hands back that same object for as long as the session lives. State kept on the
adapter therefore follows the visitor from request to request, and different parts of an
application can each keep their own state in the session without clashing.

Run ``python session_objects.py [PORT]`` and reload http://localhost:8080/ a few times;
another browser (or a private window) starts counting from one.
"""

import sys

from zope.interface import Attribute, Interface, implementer

from treadle.internet import reactor
from treadle.python.components import registerAdapter
from treadle.web.resource import Resource
from treadle.web.server import Session, Site


class ICounter(Interface):
    value = Attribute("How many pages this visitor has seen.")


@implementer(ICounter)
class Counter:
    def __init__(self, session):
        self.value = 0


registerAdapter(Counter, Session, ICounter)


class CountedPage(Resource):
    isLeaf = True

    def render_GET(self, request):
        counter = ICounter(request.getSession())
        counter.value += 1
        request.setHeader(b"content-type", b"text/html; charset=utf-8")
        return (
            "<!DOCTYPE html><html><body>"
            f'<p>You have seen this page <span id="visits">{counter.value}</span> time(s).</p>'
            "</body></html>"
        ).encode("ascii")


def make_site():
    """Return a Site counting each visitor's page views in their session."""
    return Site(CountedPage())


if __name__ == "__main__":
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 8080
    reactor.listenTCP(port, make_site())
    reactor.run()
