"""Resource-tree idioms from the Twisted Web howtos: getChild with isLeaf, a
getChildWithDefault override, prepath/postpath, childLink, request.URLPath(), repeated
arguments, getCookie/addCookie with attributes, setETag/setLastModified with conditional
requests, redirectTo, ErrorPage/NoResource/ForbiddenResource."""

import calendar
import sys

from twisted.internet import reactor
from twisted.web import http
from twisted.web.resource import ErrorPage, ForbiddenResource, NoResource, Resource
from twisted.web.server import Site
from twisted.web.util import redirectTo


class UserPage(Resource):
    isLeaf = True

    def __init__(self, name):
        super().__init__()
        self.name = name

    def render_GET(self, request):
        here = request.URLPath()
        lines = [
            f"user={self.name.decode()}",
            f"prepath={request.prepath!r}",
            f"postpath={request.postpath!r}",
            f"path={request.path!r}",
            f"uri={request.uri!r}",
            "childLink={!r}".format(request.childLink(b"edit")),
            f"prePathURL={request.prePathURL()!r}",
            f"URLPath={here}",
            "child={}".format(here.child(b"x")),
            "sibling={}".format(here.sibling(b"y")),
            f"parent={here.parent()}",
            f"here={here.here()}",
            "click={}".format(here.click(b"../other?q=1")),
            f"query={here.query!r}",
        ]
        request.setHeader(b"content-type", b"text/plain")
        # The listening port differs from run to run.
        port = ":%d" % request.getHost().port
        return "\n".join(lines).replace(port, ":PORT").encode()


class Users(Resource):
    def getChild(self, name, request):
        if name == b"":
            return self
        if not name.isalpha():
            return NoResource("No such user.")
        return UserPage(name)

    def render_GET(self, request):
        return b"users: " + request.childLink(b"ann")


class Guarded(Resource):
    """getChildWithDefault sees every path segment before the children do."""

    def getChildWithDefault(self, path, request):
        if path.startswith(b"_"):
            return ForbiddenResource("Private: " + path.decode())
        return Resource.getChildWithDefault(self, path, request)

    def render_GET(self, request):
        return b"guarded root"


class Args(Resource):
    isLeaf = True

    def render_GET(self, request):
        out = []
        for key in sorted(request.args):
            out.append(b"%s=%s" % (key, b",".join(request.args[key])))
        return b"; ".join(out)

    render_POST = render_GET


class Cookies(Resource):
    isLeaf = True

    def render_GET(self, request):
        seen = request.getCookie(b"flavour")
        count = int(request.getCookie(b"visits") or b"0") + 1
        request.addCookie(b"visits", str(count).encode(), path=b"/cookie")
        request.addCookie(
            b"flavour",
            b"oat",
            expires="Wed, 21 Oct 2037 07:28:00 GMT",
            domain=b"example.com",
            path=b"/",
            max_age="3600",
            comment=b"tasty",
            secure=True,
            httpOnly=True,
            sameSite="lax",
        )
        request.addCookie("text", "str-value")
        return b"flavour seen: %r, visit %d" % (seen, count)


LAST_MODIFIED = calendar.timegm((2020, 5, 17, 10, 30, 0))


class Document(Resource):
    isLeaf = True

    def render_GET(self, request):
        request.setHeader(b"content-type", b"text/plain")
        modified = request.setLastModified(LAST_MODIFIED)
        tagged = request.setETag(b'"v42"')
        if modified == http.CACHED or tagged == http.CACHED:
            return b""
        return b"the document body\n"

    render_HEAD = render_GET
    render_POST = render_GET


class Fails(Resource):
    """Raises: the 500 page. (What the resource set before raising stays off the page on
    purpose: README, "An error page carries only its own headers".)"""

    isLeaf = True

    def render_GET(self, request):
        raise ValueError("boom")


class Go(Resource):
    isLeaf = True

    def render_GET(self, request):
        target = request.args.get(b"to", [b"/users/"])[0]
        return redirectTo(target, request)


class Errors(Resource):
    def getChild(self, name, request):
        if name == b"payment":
            return ErrorPage(402, "Payment Required", "Pay now, or later.")
        if name == b"forbidden":
            return ForbiddenResource()
        return NoResource()


root = Resource()
root.putChild(b"users", Users())
root.putChild(b"guarded", Guarded())
root.children[b"guarded"].putChild(b"open", Args())
root.putChild(b"args", Args())
root.putChild(b"cookie", Cookies())
root.putChild(b"doc", Document())
root.putChild(b"go", Go())
root.putChild(b"fail", Fails())
root.putChild(b"errors", Errors())

reactor.listenTCP(int(sys.argv[1]), Site(root), interface="127.0.0.1")
reactor.run()
