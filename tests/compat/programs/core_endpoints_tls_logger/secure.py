"""echoserv_ssl.py / echoclient_ssl.py and starttls_server.py / starttls_client.py, written
with endpoints the way the "Endpoints" howto shows them (serverFromString, clientFromString
with ssl: and tls:, HostnameEndpoint + wrapClientTLS, connectProtocol), logging through
twisted.logger (a FilteringLogObserver over textFileLogObserver, and jsonFileLogObserver
read back with eventsFromJSONLogFile).
"""

import io
import os
import shutil
import sys

from twisted.internet import defer, endpoints, error, protocol, reactor, ssl
from twisted.internet.interfaces import ISSLTransport
from twisted.logger import (
    FilteringLogObserver,
    Logger,
    LogLevel,
    LogLevelFilterPredicate,
    eventsFromJSONLogFile,
    formatEvent,
    globalLogBeginner,
    jsonFileLogObserver,
    textFileLogObserver,
)
from twisted.protocols import basic

log = Logger(namespace="core.tls")
report = []
text_out = io.StringIO()
finished = defer.Deferred()


class Echo(protocol.Protocol):
    log = Logger()
    counts = None  # set on the self-test's private server: what its connections saw

    def connectionMade(self):
        if self.counts is not None:
            self.counts["made"] += 1

    def dataReceived(self, data):
        # Logged at the first data rather than at connectionMade, which a client that fails
        # the handshake reaches under Twisted only (README, TLS).
        if self.counts is not None and not getattr(self, "logged", False):
            self.logged = True
            self.log.info(
                "echo connection, TLS transport: {tls}",
                tls=ISSLTransport.providedBy(self.transport),
            )
        self.transport.write(data)

    def connectionLost(self, reason):
        if self.counts is not None:
            self.counts["lost"] += 1


class StartTLSServer(basic.LineReceiver):
    def lineReceived(self, line):
        if line == b"STARTTLS":
            self.sendLine(b"READY")
            self.transport.startTLS(self.factory.options)
            self.secure = True
        else:
            self.sendLine(b"%s (secure: %s)" % (line, str(getattr(self, "secure", False)).encode()))


class StatusProtocol(protocol.Protocol):
    def connectionMade(self):
        finished.addCallback(self.send)

    def send(self, result):
        self.transport.write(("\n".join(report) + "\nEND\n").encode())
        self.transport.loseConnection()
        return result


class EchoClient(protocol.Protocol):
    def __init__(self):
        self.received = b""
        self.done = defer.Deferred()

    def connectionMade(self):
        self.transport.write(b"hello, secure world")

    def dataReceived(self, data):
        self.received += data
        if self.received == b"hello, secure world":
            self.transport.loseConnection()

    def connectionLost(self, reason):
        self.done.callback((self.received, reason.type.__name__))


class StartTLSClient(basic.LineReceiver):
    def __init__(self, options):
        self.options = options
        self.lines = []
        self.done = defer.Deferred()

    def connectionMade(self):
        self.sendLine(b"plain")
        self.sendLine(b"STARTTLS")

    def lineReceived(self, line):
        self.lines.append(line.decode())
        if line == b"READY":
            self.transport.startTLS(self.options)
            self.sendLine(b"wrapped")
        elif line.startswith(b"wrapped"):
            self.transport.loseConnection()

    def connectionLost(self, reason):
        self.done.callback(self.lines)


@defer.inlineCallbacks
def selftest(ports, ca):
    trust = ssl.Certificate.loadPEM(ca)
    # The self-test's own TLS echo server, so that the harness's connections are not counted.
    factory = protocol.Factory.forProtocol(Echo)
    factory.protocol = type("CountedEcho", (Echo,), {"counts": {"made": 0, "lost": 0}})
    private = yield endpoints.serverFromString(
        reactor, "ssl:0:interface=127.0.0.1:privateKey=server.key:certKey=server.pem"
    ).listen(factory)
    ports = dict(ports, tls=private.getHost().port)

    def note(what, value):
        log.info("{what}: {value!r}", what=what, value=value)
        report.append(f"{what}: {value!r}")

    endpoint = endpoints.clientFromString(
        reactor, "tls:localhost:%d:trustRoots=cadir" % ports["tls"]
    )
    client = yield endpoints.connectProtocol(endpoint, EchoClient())
    note("tls: string", (yield client.done))

    endpoint = endpoints.clientFromString(
        reactor, "ssl:host=127.0.0.1:port=%d:caCertsDir=cadir" % ports["tls"]
    )
    client = yield endpoints.connectProtocol(endpoint, EchoClient())
    note("ssl: string", (yield client.done))

    endpoint = endpoints.wrapClientTLS(
        ssl.optionsForClientTLS("localhost", trustRoot=trust),
        endpoints.HostnameEndpoint(reactor, b"localhost", ports["tls"]),
    )
    client = yield endpoints.connectProtocol(endpoint, EchoClient())
    note("HostnameEndpoint + wrapClientTLS", (yield client.done))

    endpoint = endpoints.wrapClientTLS(
        ssl.optionsForClientTLS("wrong.example", trustRoot=trust),
        endpoints.TCP4ClientEndpoint(reactor, "127.0.0.1", ports["tls"]),
    )
    client = yield endpoints.connectProtocol(endpoint, EchoClient())
    received, _reason = yield client.done
    note("wrong host name: got data", received != b"")
    # (How many times the server's connectionMade ran is not shown: a client that refuses
    # the handshake reaches no protocol under treadle, on purpose; README, TLS.)

    # A client that connects and leaves without a handshake (like a port probe).
    class Leave(protocol.Protocol):
        def connectionMade(self):
            self.transport.loseConnection()

        def connectionLost(self, reason):
            self.factory_done.callback(None)

    leaver = Leave()
    leaver.factory_done = defer.Deferred()
    yield endpoints.connectProtocol(
        endpoints.TCP4ClientEndpoint(reactor, "127.0.0.1", ports["tls"]), leaver
    )
    yield leaver.factory_done
    # Let the server side notice (a round trip through the loop).
    yield endpoints.connectProtocol(
        endpoints.clientFromString(reactor, "tls:localhost:%d:trustRoots=cadir" % ports["tls"]),
        EchoClient(),
    ).addCallback(lambda c: c.done)
    note("a TLS client after a plain TCP probe: served", True)

    endpoint = endpoints.clientFromString(reactor, "tcp:127.0.0.1:%d" % ports["starttls"])
    client = yield endpoints.connectProtocol(
        endpoint, StartTLSClient(ssl.optionsForClientTLS("localhost", trustRoot=trust))
    )
    note("STARTTLS", (yield client.done))

    closed = endpoints.TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1")
    port = yield closed.listen(protocol.Factory.forProtocol(Echo))
    number = port.getHost().port
    yield port.stopListening()
    try:
        yield endpoints.connectProtocol(
            endpoints.HostnameEndpoint(reactor, b"127.0.0.1", number), EchoClient()
        )
    except error.ConnectError as e:
        note("refused is ConnectError", isinstance(e, error.ConnectError))
    try:
        yield endpoints.connectProtocol(
            endpoints.TCP4ClientEndpoint(reactor, "127.0.0.1", number), EchoClient()
        )
    except error.ConnectionRefusedError as e:
        note("TCP4ClientEndpoint refused", type(e).__name__)

    log.debug("filtered out: {x}", x=1)
    log.warn("a warning with {fields[0]} and {obj.namespace}", fields=["index"], obj=log)
    try:
        _ = 1 / 0
    except ZeroDivisionError:
        log.failure("caught {what}", what="a division")
    # The failure as the text observer wrote it: the traceback's format differs on purpose
    # (README: Failure.getTraceback() uses the standard library's), so only its gist.
    lines = [line for line in text_out.getvalue().splitlines() if line.strip()]
    report.append(
        "failure text: {!r} ... ends with the error: {}".format(
            lines[0], lines[-1].endswith("ZeroDivisionError: division by zero")
        )
    )
    for line in report:
        print("report:", line)
    finished.callback(None)


def main(tls_port, starttls_port, status_port):
    # The trust roots directory for tls:/ssl: strings holds the CA alone.
    os.makedirs("cadir", exist_ok=True)
    shutil.copy("ca.pem", "cadir/ca.pem")
    with open("ca.pem", "rb") as f:
        ca = f.read()

    predicate = LogLevelFilterPredicate(defaultLogLevel=LogLevel.critical)
    predicate.setLogLevelForNamespace("core", LogLevel.info)
    predicate.setLogLevelForNamespace("__main__", LogLevel.info)
    json_file = open("events.json", "w")  # noqa: SIM115  (closed once the run is over)
    globalLogBeginner.beginLoggingTo(
        [
            FilteringLogObserver(textFileLogObserver(text_out, timeFormat=None), [predicate]),
            FilteringLogObserver(jsonFileLogObserver(json_file), [predicate]),
        ],
        redirectStandardIO=False,
    )

    server = endpoints.serverFromString(
        reactor,
        "ssl:%d:interface=127.0.0.1:privateKey=server.key:certKey=server.pem" % tls_port,
    )
    server.listen(protocol.Factory.forProtocol(Echo))
    starttls = protocol.Factory.forProtocol(StartTLSServer)
    with open("server-both.pem", "rb") as f:
        starttls.options = ssl.PrivateCertificate.loadPEM(f.read()).options()
    endpoints.serverFromString(reactor, "tcp:%d:interface=127.0.0.1" % starttls_port).listen(
        starttls
    )
    endpoints.serverFromString(reactor, "tcp:port=%d:interface=127.0.0.1" % status_port).listen(
        protocol.Factory.forProtocol(StatusProtocol)
    )

    def read_back(_):
        json_file.close()
        with open("events.json") as f:
            for event in eventsFromJSONLogFile(f):
                fail = event.get("log_failure")
                # (A failure's text is kept in treadle's JSON, on purpose: not shown.)
                print(
                    "json:",
                    event["log_level"].name,
                    event["log_namespace"],
                    repr(formatEvent(event)),
                    fail is not None,
                )

    finished.addCallback(read_back)
    reactor.callWhenRunning(selftest, {"tls": tls_port, "starttls": starttls_port}, ca)
    reactor.run()


if __name__ == "__main__":
    main(*map(int, sys.argv[1:]))
