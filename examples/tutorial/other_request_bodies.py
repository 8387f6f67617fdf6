"""Other request bodies: read the raw body from ``request.content``.

``request.args`` only understands HTML forms. For anything else (JSON, XML, an uploaded
image, the body of a PUT) read ``request.content``, a binary file positioned at the start
of the body. Treat it as a file and nothing more: a large body may live in a temporary file
on disk rather than in memory.

``POST /`` takes a JSON object and answers with a JSON summary of it; ``PUT /`` takes any
text and echoes it back in an HTML page, escaped.

Run ``python other_request_bodies.py [PORT]`` and try::

    curl -X POST -H 'Content-Type: application/json' -d '{"a": 1}' http://localhost:8080/
    curl -X PUT --data-binary 'hello <world>' http://localhost:8080/
"""

import html
import json
import sys

from treadle.internet import reactor
from treadle.web.resource import Resource
from treadle.web.server import Site

BAD_REQUEST = 400
UNSUPPORTED_MEDIA_TYPE = 415


class Inspector(Resource):
    isLeaf = True

    def render_GET(self, request):
        request.setHeader(b"content-type", b"text/plain; charset=utf-8")
        return b"POST a JSON object here, or PUT some text.\n"

    def render_POST(self, request):
        ctype = (request.getHeader(b"content-type") or b"").split(b";")[0].strip().lower()
        request.setHeader(b"content-type", b"application/json")
        if ctype != b"application/json":
            request.setResponseCode(UNSUPPORTED_MEDIA_TYPE)
            return b'{"error": "send application/json"}'
        try:
            document = json.load(request.content)
        except ValueError as e:  # bad JSON, or bytes that are not UTF-8
            request.setResponseCode(BAD_REQUEST)
            return json.dumps({"error": f"not JSON: {e}"}).encode("utf-8")
        if not isinstance(document, dict):
            request.setResponseCode(BAD_REQUEST)
            return b'{"error": "send a JSON object"}'
        summary = {"keys": sorted(document), "size": len(document)}
        return json.dumps(summary).encode("utf-8")

    def render_PUT(self, request):
        text = request.content.read().decode("utf-8", "replace")
        request.setHeader(b"content-type", b"text/html; charset=utf-8")
        return (
            "<!DOCTYPE html><html><head><title>Received</title></head><body>"
            f"<p>You sent {len(text)} characters:</p><pre>{html.escape(text)}</pre>"
            "</body></html>"
        ).encode()


def make_site():
    """Return a Site that inspects JSON posted to it and echoes text put to it."""
    return Site(Inspector())


if __name__ == "__main__":
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 8080
    reactor.listenTCP(port, make_site())
    reactor.run()
