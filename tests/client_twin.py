"""One Twisted program, run under Twisted and (ported) under treadle by tests/test_client.py.

It makes the same requests with ``twisted.web.client`` against the servers the test started
and prints what it saw as one JSON object, one entry per scenario, so the two runs can be
compared entry by entry. Written as a Twisted user writes it: only the import lines change
when it is ported.

Usage: ``python client_twin.py '<json config>' [scenario ...]``.
"""

import io
import json
import sys
from http.cookiejar import CookieJar

from twisted.internet import defer, reactor, ssl
from twisted.internet.protocol import Protocol
from twisted.python.failure import Failure
from twisted.web.client import (
    Agent,
    BrowserLikePolicyForHTTPS,
    BrowserLikeRedirectAgent,
    ContentDecoderAgent,
    CookieAgent,
    FileBodyProducer,
    GzipDecoder,
    HTTPConnectionPool,
    PartialDownloadError,
    RedirectAgent,
    readBody,
)
from twisted.web.http_headers import Headers
from twisted.web.iweb import UNKNOWN_LENGTH

CONFIG = json.loads(sys.argv[1])
BASE = CONFIG["base"].encode()
SKIP_HEADERS = {b"date", b"server"}


def headers_of(headers):
    return sorted(
        [name.decode().lower(), value.decode()]
        for name, values in headers.getAllRawHeaders()
        if name.lower() not in SKIP_HEADERS
        for value in values
    )


def length_of(response):
    return "UNKNOWN" if response.length is UNKNOWN_LENGTH else response.length


@defer.inlineCallbacks
def described(d):
    response = yield d
    body = yield readBody(response)
    return {
        "version": [response.version[0].decode(), response.version[1], response.version[2]],
        "code": response.code,
        "phrase": response.phrase.decode(),
        "headers": headers_of(response.headers),
        "length": length_of(response),
        "body": body.decode("latin-1"),
    }


def failure_info(failure):
    value = failure.value
    info = {"error": type(value).__name__}
    reasons = getattr(value, "reasons", None)
    if reasons is not None:
        info["reasons"] = [type(reason.value).__name__ for reason in reasons]
        inner = [getattr(reason.value, "status", None) for reason in reasons]
        info["statuses"] = [s.decode() if isinstance(s, bytes) else s for s in inner]
    if isinstance(value, PartialDownloadError):
        info["partial"] = value.response.decode("latin-1")
        info["status"] = value.status.decode() if isinstance(value.status, bytes) else value.status
    return info


class Unseekable:
    """A file without seek/tell: FileBodyProducer cannot tell its length (chunked body)."""

    def __init__(self, data):
        self._file = io.BytesIO(data)

    def read(self, size):
        return self._file.read(size)

    def close(self):
        self._file.close()


# -- scenarios ---------------------------------------------------------------------------------

pool = HTTPConnectionPool(reactor)
pooled = Agent(reactor, pool=pool)
plain = Agent(reactor)


def get():
    return described(pooled.request(b"GET", BASE + b"/hello?x=1"))


def get_with_headers():
    headers = Headers({b"X-Custom": [b"one", b"two"], b"User-Agent": [b"twin"]})
    return described(pooled.request(b"GET", BASE + b"/echo", headers))


def post_file():
    producer = FileBodyProducer(io.BytesIO(b"0123456789" * 20000), readSize=4096)
    return described(pooled.request(b"POST", BASE + b"/echo", None, producer))


def post_chunked():
    producer = FileBodyProducer(Unseekable(b"abc" * 5000))
    return described(pooled.request(b"PUT", BASE + b"/echo", None, producer))


def post_empty():
    return described(pooled.request(b"POST", BASE + b"/echo"))


def chunked_response():
    return described(pooled.request(b"GET", BASE + b"/chunked"))


def head():
    return described(pooled.request(b"HEAD", BASE + b"/hello"))


def no_content():
    return described(pooled.request(b"GET", BASE + b"/status/204"))


def not_modified():
    return described(pooled.request(b"GET", BASE + b"/status/304"))


def not_found():
    return described(pooled.request(b"GET", BASE + b"/missing"))


@defer.inlineCallbacks
def redirect_chain():
    response = yield RedirectAgent(pooled).request(b"GET", BASE + b"/r/3")
    body = yield readBody(response)
    chain = []
    previous = response.previousResponse
    while previous is not None:
        chain.append(previous.code)
        previous = previous.previousResponse
    return {"code": response.code, "body": body.decode(), "chain": chain}


def redirect_post_strict():
    return described(RedirectAgent(pooled).request(b"POST", BASE + b"/moved/302"))


def redirect_post_see_other():
    return described(RedirectAgent(pooled).request(b"POST", BASE + b"/moved/303"))


def redirect_post_browser_like():
    agent = BrowserLikeRedirectAgent(pooled)
    return described(agent.request(b"POST", BASE + b"/moved/301"))


def redirect_307_browser_like():
    agent = BrowserLikeRedirectAgent(pooled)
    return described(agent.request(b"POST", BASE + b"/moved/307"))


def redirect_loop():
    return described(RedirectAgent(pooled, redirectLimit=3).request(b"GET", BASE + b"/loop"))


def redirect_no_location():
    return described(RedirectAgent(pooled).request(b"GET", BASE + b"/noloc"))


def redirect_drops_sensitive_headers():
    headers = Headers({b"Authorization": [b"secret"], b"X-Keep": [b"kept"]})
    other = CONFIG["other"].encode()
    agent = RedirectAgent(pooled)
    return described(agent.request(b"GET", BASE + b"/to?" + other + b"/echo", headers))


def gzip_decoded():
    agent = ContentDecoderAgent(pooled, [(b"gzip", GzipDecoder)])
    return described(agent.request(b"GET", BASE + b"/gzip"))


def gzip_undecoded():
    return described(pooled.request(b"GET", BASE + b"/gzip"))


@defer.inlineCallbacks
def cookies():
    jar = CookieJar()
    agent = CookieAgent(pooled, jar)
    first = yield described(agent.request(b"GET", BASE + b"/setcookie"))
    second = yield described(agent.request(b"GET", BASE + b"/showcookie"))
    return {"first": first, "second": second, "jar": sorted(c.name for c in jar)}


@defer.inlineCallbacks
def keep_alive():
    own = HTTPConnectionPool(reactor)
    agent = Agent(reactor, pool=own)
    ports = []
    for _ in range(3):
        response = yield agent.request(b"GET", BASE + b"/peer")
        ports.append((yield readBody(response)))
    yield own.closeCachedConnections()
    return {"connections": len(set(ports))}


@defer.inlineCallbacks
def not_persistent():
    ports = []
    for _ in range(3):
        response = yield plain.request(b"GET", BASE + b"/peer")
        ports.append((yield readBody(response)))
    echo = yield described(plain.request(b"GET", BASE + b"/echo"))
    return {"connections": len(set(ports)), "echo": echo}


@defer.inlineCallbacks
def retry_on_closed():
    agent = Agent(reactor, pool=HTTPConnectionPool(reactor))
    url = CONFIG["closing"].encode()
    bodies = []
    for _ in range(2):
        response = yield agent.request(b"GET", url)
        bodies.append((yield readBody(response)).decode())
    return {"bodies": bodies}


@defer.inlineCallbacks
def no_retry_for_post():
    agent = Agent(reactor, pool=HTTPConnectionPool(reactor))
    url = CONFIG["closing"].encode()
    response = yield agent.request(b"GET", url)
    yield readBody(response)
    producer = FileBodyProducer(io.BytesIO(b"x"))
    return (yield described(agent.request(b"POST", url, None, producer)))


def cancel_waiting():
    d = pooled.request(b"GET", BASE + b"/held")
    reactor.callLater(0.3, d.cancel)
    return d


def connect_timeout():
    agent = Agent(reactor, connectTimeout=0.2)
    return agent.request(b"GET", CONFIG["blackhole"].encode())


def refused():
    return plain.request(b"GET", CONFIG["refused"].encode())


def bad_scheme():
    return plain.request(b"GET", b"ftp://127.0.0.1/")


def tls_trusted():
    with open(CONFIG["ca"], "rb") as pem:
        trust = ssl.Certificate.loadPEM(pem.read())
    agent = Agent(reactor, BrowserLikePolicyForHTTPS(trustRoot=trust), pool=pool)
    return described(agent.request(b"GET", CONFIG["tls"].encode() + b"/hello"))


def tls_untrusted():
    return described(plain.request(b"GET", CONFIG["tls"].encode() + b"/hello"))


def close_delimited():
    return described(plain.request(b"GET", CONFIG["close_delimited"].encode()))


def truncated():
    return described(plain.request(b"GET", CONFIG["truncated"].encode()))


@defer.inlineCallbacks
def streaming():
    class Collect(Protocol):
        def __init__(self):
            self.done = defer.Deferred()
            self.events = []
            self.size = 0

        def connectionMade(self):
            self.events.append("made")
            self.transport.pauseProducing()
            reactor.callLater(0.05, self.transport.resumeProducing)

        def dataReceived(self, data):
            self.size += len(data)
            if self.events[-1] != "data":
                self.events.append("data")

        def connectionLost(self, reason):
            self.events.append(type(reason.value).__name__)
            self.done.callback(None)

    response = yield pooled.request(b"GET", BASE + b"/big")
    protocol = Collect()
    response.deliverBody(protocol)
    yield protocol.done
    try:
        response.deliverBody(Collect())
    except RuntimeError as e:
        again = str(e).split(" <")[0]  # without the protocol's repr
    return {"events": protocol.events, "size": protocol.size, "again": again}


def invalid_method():
    return pooled.request(b"GET POST", BASE + b"/")


def invalid_uri():
    return pooled.request(b"GET", BASE + b"/a b")


SCENARIOS = {name: value for name, value in dict(globals()).items() if callable(value)}
NAMES = [
    "get", "get_with_headers", "post_file", "post_chunked", "post_empty", "chunked_response",
    "head", "no_content", "not_modified", "not_found", "redirect_chain",
    "redirect_post_strict", "redirect_post_see_other", "redirect_post_browser_like",
    "redirect_307_browser_like", "redirect_loop", "redirect_no_location",
    "redirect_drops_sensitive_headers", "gzip_decoded", "gzip_undecoded", "cookies",
    "keep_alive", "not_persistent", "retry_on_closed", "no_retry_for_post", "cancel_waiting",
    "connect_timeout", "refused", "bad_scheme", "tls_trusted", "tls_untrusted",
    "close_delimited", "truncated", "streaming", "invalid_method", "invalid_uri",
]  # fmt: skip


@defer.inlineCallbacks
def run_all():
    results = {}
    for name in sys.argv[2:] or NAMES:
        try:
            d = defer.maybeDeferred(SCENARIOS[name])
            d.addTimeout(10, reactor)
            results[name] = yield d
        except Exception:
            results[name] = failure_info(Failure())
    yield pool.closeCachedConnections()
    sys.stdout.write(json.dumps(results) + "\n")
    sys.stdout.flush()
    reactor.stop()


if __name__ == "__main__":
    reactor.callWhenRunning(run_all)
    reactor.run()
