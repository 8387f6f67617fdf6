# A resource script: Python that leaves a resource in the global ``resource``.
#
# The server runs this file each time a request reaches it, so an edit shows up on the next
# reload, without a restart. Nothing here listens on a port or starts a reactor: the server
# serving the directory does that.

from html import escape

from treadle.web.resource import Resource


class Hello(Resource):
    isLeaf = True

    def render_GET(self, request):
        name = request.args.get(b"name", [b"stranger"])[0].decode("utf-8", "replace")
        request.setHeader(b"content-type", b"text/html; charset=utf-8")
        return (
            "<!DOCTYPE html><html><head><title>Hello</title></head><body>"
            f"<p>Hello, {escape(name)}! This page came from hello.rpy.</p></body></html>"
        ).encode("utf-8")


resource = Hello()
