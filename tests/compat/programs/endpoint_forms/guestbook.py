"""A guestbook: query arguments, a POSTed form, redirect after POST."""

import html
import sys

from twisted.internet import reactor
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.web import resource, server, util

entries = []


class Guestbook(resource.Resource):
    isLeaf = True

    def render_GET(self, request):
        limit = int(request.args.get(b"limit", [b"10"])[0])
        shown = entries[-limit:] if limit else []
        items = "".join(f"<li>{html.escape(n)}: {html.escape(t)}</li>" for n, t in shown)
        return f"<ul>{items}</ul><p>{len(entries)} entries</p>".encode()

    def render_POST(self, request):
        names = request.args.get(b"name", [])
        texts = request.args.get(b"text", [])
        if not names or not texts:
            request.setResponseCode(400)
            return b"name and text are required\n"
        for name, text in zip(names, texts, strict=False):
            entries.append((name.decode("utf-8"), text.decode("utf-8")))
        return util.redirectTo(b"/book", request)


class Echo(resource.Resource):
    isLeaf = True

    def render_GET(self, request):
        pairs = sorted((k.decode(), [v.decode() for v in vs]) for k, vs in request.args.items())
        return repr(pairs).encode()


root = resource.Resource()
root.putChild(b"book", Guestbook())
root.putChild(b"echo", Echo())

TCP4ServerEndpoint(reactor, int(sys.argv[1])).listen(server.Site(root))
reactor.run()
