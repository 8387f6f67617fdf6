"""docs/web/examples vhost.py and reverse-proxy.py in one process: a NameVirtualHost in
front (static files for one name, a ReverseProxyResource to a back-end site for another, a
leaf resource for a third, VHostMonsterResource under the default) and the back end."""

import sys

from twisted.internet import reactor
from twisted.web import proxy, resource, server, static, util, vhost


class Backend(resource.Resource):
    """What the proxied request looked like when it reached the back end."""

    isLeaf = True

    def render(self, request):
        port = b":%d" % request.getHost().port
        host = (request.getHeader(b"host") or b"").replace(port, b":BACK")
        request.setHeader(b"x-backend", b"yes")
        request.addCookie(b"backend", b"1", path=b"/")
        if request.postpath[-1:] == [b"missing"]:
            request.setResponseCode(404, b"Nowhere")
        if request.postpath[-1:] == [b"move"]:
            return util.redirectTo(b"/api/elsewhere", request)
        body = request.content.read()
        return b"%s %s host=%s ua=%r ctype=%r body=%s" % (
            request.method,
            request.uri,
            host,
            request.getHeader(b"user-agent"),
            request.getHeader(b"content-type"),
            body,
        )


class Where(resource.Resource):
    """Shows the request as the resources see it (after NameVirtualHost/VHostMonster)."""

    isLeaf = True

    def render_GET(self, request):
        url = request.prePathURL().replace(b":%d" % front_port, b":FRONT")
        return b"prepath=%r postpath=%r secure=%r host=%r url=%s uri=%s" % (
            request.prepath,
            request.postpath,
            bool(request.isSecure()),  # Twisted's monster answers 0/1, treadle's False/True
            request.getRequestHostname(),
            url,
            request.uri,
        )


front_port, back_port = int(sys.argv[1]), int(sys.argv[2])

default = resource.Resource()
default.putChild(b"", static.Data(b"the default site\n", "text/plain"))
default.putChild(b"where", Where())
default.putChild(b"vhost", vhost.VHostMonsterResource())

root = vhost.NameVirtualHost()
root.default = default
root.addHost(b"foo.example", static.File("static-foo"))
root.addHost(b"api.example", proxy.ReverseProxyResource("127.0.0.1", back_port, b"/api"))
root.addHost(b"leaf.example", Where())

strict = vhost.NameVirtualHost()
strict.addHost(b"only.example", static.Data(b"only\n", "text/plain"))
default.putChild(b"strict", strict)

reactor.listenTCP(front_port, server.Site(root), interface="127.0.0.1")
reactor.listenTCP(back_port, server.Site(Backend()), interface="127.0.0.1")
reactor.run()
