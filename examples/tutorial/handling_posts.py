"""Handling POSTs: show a form on GET, read what was submitted on POST.

``request.args`` maps each form field name to the list of its values, all bytes; it merges
the query string with a urlencoded or multipart form body. Whatever a visitor typed is
escaped with ``html.escape`` before it is put into the page: otherwise anyone could inject
markup (and scripts) into it.

Run ``python handling_posts.py [PORT]``, open http://localhost:8080/, type and press Enter.
"""

import html
import sys

from treadle.internet import reactor
from treadle.web.resource import Resource
from treadle.web.server import Site


class Guestbook(Resource):
    isLeaf = True

    def render_GET(self, request):
        request.setHeader(b"content-type", b"text/html; charset=utf-8")
        return (
            b"<!DOCTYPE html><html><head><title>Sign here</title></head><body>"
            b'<form method="POST"><label>Your message: <input name="message"></label>'
            b"</form></body></html>"
        )

    def render_POST(self, request):
        values = request.args.get(b"message", [b""])
        message = html.escape(values[0].decode("utf-8", "replace"))
        request.setHeader(b"content-type", b"text/html; charset=utf-8")
        return (
            "<!DOCTYPE html><html><head><title>Thanks</title></head><body>"
            f"<p>You wrote: {message}</p></body></html>"
        ).encode()


def make_site():
    """Return a Site whose every URL shows the form and echoes what is posted to it."""
    return Site(Guestbook())


if __name__ == "__main__":
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 8080
    reactor.listenTCP(port, make_site())
    reactor.run()
