"""The "Using the Twisted Web Client" howto against the program's own site: Agent.request
with a custom IBodyProducer and with FileBodyProducer, a Protocol receiving the body
(dataReceived / connectionLost with ResponseDone), readBody, a persistent
HTTPConnectionPool, CookieAgent with http.cookiejar, ContentDecoderAgent + GzipDecoder,
response.headers/length/code/phrase/version."""

import io
import sys
from http.cookiejar import CookieJar

from twisted.internet import defer, reactor
from twisted.internet.defer import succeed
from twisted.internet.protocol import Protocol
from twisted.web import resource, server
from twisted.web.client import (
    Agent,
    ContentDecoderAgent,
    CookieAgent,
    FileBodyProducer,
    GzipDecoder,
    HTTPConnectionPool,
    PartialDownloadError,
    ResponseDone,
    readBody,
)
from twisted.web.http_headers import Headers
from twisted.web.iweb import UNKNOWN_LENGTH, IBodyProducer
from zope.interface import implementer

# -- the site the client talks to ------------------------------------------------------------


class Upload(resource.Resource):
    isLeaf = True

    def render_POST(self, request):
        body = request.content.read()
        te = request.getHeader(b"transfer-encoding")
        cl = request.getHeader(b"content-length")
        ua = request.getHeader(b"user-agent")
        return b"%d bytes te=%r cl=%r ua=%r first=%r" % (len(body), te, cl, ua, body[:5])


class Stream(resource.Resource):
    isLeaf = True

    def render_GET(self, request):
        request.setHeader(b"x-parts", b"3")
        request.write(b"A" * 4000)
        reactor.callLater(0, request.write, b"B" * 4000)
        reactor.callLater(0, lambda: (request.write(b"C" * 10), request.finish()))
        return server.NOT_DONE_YET


class Cookie(resource.Resource):
    isLeaf = True

    def render_GET(self, request):
        got = request.getHeader(b"cookie")
        n = int(request.getCookie(b"n") or b"0")
        request.addCookie(b"n", b"%d" % (n + 1), path=b"/")
        return b"cookie header: %r" % (got,)


class Text(resource.Resource):
    isLeaf = True

    def render_GET(self, request):
        request.setHeader(b"content-type", b"text/plain")
        return b"gzip me " * 100


class Short(resource.Resource):
    """Promises 100 bytes, sends 10 and hangs up."""

    isLeaf = True

    def render_GET(self, request):
        request.setHeader(b"content-length", b"100")
        request.write(b"0123456789")
        request.channel.loseConnection()
        return server.NOT_DONE_YET


class Peer(resource.Resource):
    isLeaf = True

    def render_GET(self, request):
        return b"%d" % request.getClientAddress().port


# -- the client ------------------------------------------------------------------------------


@implementer(IBodyProducer)
class BytesProducer:
    def __init__(self, body, known=True):
        self.body = body
        self.length = len(body) if known else UNKNOWN_LENGTH

    def startProducing(self, consumer):
        consumer.write(self.body[:3])
        consumer.write(self.body[3:])
        return succeed(None)

    def pauseProducing(self):
        pass

    def stopProducing(self):
        pass


class BeginningPrinter(Protocol):
    def __init__(self, finished):
        self.finished = finished
        self.remaining = 5000
        self.kept = b""
        self.total = 0

    def dataReceived(self, data):
        self.total += len(data)
        if self.remaining:
            display = data[: self.remaining]
            self.kept += display
            self.remaining -= len(display)

    def connectionLost(self, reason):
        done = reason.check(ResponseDone) is not None
        self.finished.callback(
            "kept=%d total=%d done=%s reason=%s"
            % (len(self.kept), self.total, done, reason.type.__name__)
        )


def describe(response):
    headers = sorted(
        (k.decode().lower(), v)
        for k, v in response.headers.getAllRawHeaders()
        if k.lower() not in (b"date", b"server", b"vary")  # Vary: documented (gzip)
    )
    length = "UNKNOWN" if response.length is UNKNOWN_LENGTH else response.length
    return "%s %d %s length=%s headers=%r" % (
        response.version,
        response.code,
        response.phrase.decode(),
        length,
        headers,
    )


class Run(resource.Resource):
    isLeaf = True

    def __init__(self, base):
        super().__init__()
        self.base = base

    @defer.inlineCallbacks
    def run(self):
        base = self.base
        out = []
        agent = Agent(reactor)

        ua = Headers({"User-Agent": ["Twisted Web Client Example"]})
        r = yield agent.request(b"POST", base + b"/upload", ua, BytesProducer(b"hello world"))
        out.append(f"producer: {describe(r)} | {(yield readBody(r)).decode()}")
        r = yield agent.request(
            b"POST", base + b"/upload", None, BytesProducer(b"unknown size", known=False)
        )
        out.append(f"chunked: {(yield readBody(r)).decode()}")
        r = yield agent.request(
            b"POST", base + b"/upload", None, FileBodyProducer(io.BytesIO(b"x" * 70000))
        )
        out.append(f"file: {(yield readBody(r)).decode()}")

        r = yield agent.request(b"GET", base + b"/stream")
        out.append(f"stream: {describe(r)}")
        finished = defer.Deferred()
        r.deliverBody(BeginningPrinter(finished))
        out.append("protocol: %s" % (yield finished))

        r = yield agent.request(b"GET", base + b"/nowhere")
        body = yield readBody(r)
        out.append("404: %d %s %d" % (r.code, r.phrase.decode(), len(body)))

        r = yield agent.request(b"HEAD", base + b"/text")
        out.append(f"head: {describe(r)} body={yield readBody(r)!r}")

        try:
            r = yield agent.request(b"GET", base + b"/short")
            yield readBody(r)
            out.append("short: no error")
        except PartialDownloadError as e:
            out.append(f"short: PartialDownloadError {e.status} {e.response!r}")
        except Exception as e:
            out.append(f"short: {type(e).__name__}")

        pool = HTTPConnectionPool(reactor, persistent=True)
        pool.maxPersistentPerHost = 1
        pooled = Agent(reactor, pool=pool)
        ports = set()
        for _ in range(3):
            r = yield pooled.request(b"GET", base + b"/peer")
            ports.add((yield readBody(r)))
        out.append("pool: %d connection(s)" % len(ports))
        yield pool.closeCachedConnections()

        jar = CookieJar()
        cookies = CookieAgent(Agent(reactor), jar)
        for _ in range(3):
            r = yield cookies.request(b"GET", base + b"/cookie")
            out.append(f"cookies: {(yield readBody(r)).decode()}")
        out.append(f"jar: {sorted((c.name, c.value, c.path) for c in jar)!r}")

        gz = ContentDecoderAgent(Agent(reactor), [(b"gzip", GzipDecoder)])
        r = yield gz.request(b"GET", base + b"/gzip")
        body = yield readBody(r)
        out.append("gzip: %s | %d %r" % (describe(r), len(body), body[:16]))
        r = yield gz.request(b"GET", base + b"/text")
        body = yield readBody(r)
        out.append("plain via decoder: %s | %d" % (describe(r), len(body)))
        return ("\n".join(out) + "\n").encode()

    def render_GET(self, request):
        d = self.run()
        d.addErrback(lambda f: (f"error: {f.getTraceback()}").encode())
        d.addCallback(request.write)
        d.addCallback(lambda _: request.finish())
        return server.NOT_DONE_YET


port = int(sys.argv[1])
root = resource.Resource()
root.putChild(b"upload", Upload())
root.putChild(b"stream", Stream())
root.putChild(b"cookie", Cookie())
root.putChild(b"text", Text())
root.putChild(b"gzip", resource.EncodingResourceWrapper(Text(), [server.GzipEncoderFactory()]))
root.putChild(b"short", Short())
root.putChild(b"peer", Peer())
root.putChild(b"run", Run(b"http://127.0.0.1:%d" % port))
reactor.listenTCP(port, server.Site(root), interface="127.0.0.1")
reactor.run()
