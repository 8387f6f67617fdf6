"""XML-RPC: treadle's XMLRPC resource and Proxy, against the standard library and Twisted.

The server is called by :class:`xmlrpc.client.ServerProxy` (the standard library's client)
over a real socket; :class:`~treadle.web.xmlrpc.Proxy` calls the standard library's
:class:`~xmlrpc.server.SimpleXMLRPCServer` and treadle's own resource. A differential test
serves the same resource under real Twisted and under treadle and compares the responses
byte for byte.
"""

from __future__ import annotations

import asyncio
import datetime
import http.client
import os
import socket
import ssl as ssl_module
import subprocess
import sys
import textwrap
import threading
import xmlrpc.client
import xmlrpc.server
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import trustme

from treadle.internet import defer, error, reactor, ssl
from treadle.logger import globalLogPublisher
from treadle.web import xmlrpc as txmlrpc
from treadle.web.resource import Resource
from treadle.web.server import Request, Site

from .conftest import DEADLINE, ServerThread, host_port, wait_for

# -- the published procedures ----------------------------------------------------------------


class Maths(txmlrpc.XMLRPC):
    """A sub-handler."""

    def xmlrpc_mul(self, a: int, b: int) -> int:
        return a * b


class Named(txmlrpc.Handler):
    """A Handler answering later, with its own name."""

    def run(self, name: str) -> None:
        reactor.callLater(0, self.result.callback, f"handled {name}")


class Calculator(txmlrpc.XMLRPC):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.held: defer.Deferred[Any] | None = None
        self.cancelled = threading.Event()

    def xmlrpc_add(self, a: int, b: int) -> int:
        """Return the sum of a and b."""
        return a + b

    xmlrpc_add.signature = [["int", "int", "int"]]  # type: ignore[attr-defined]

    def xmlrpc_echo(self, *args: Any) -> Any:
        return list(args)

    def xmlrpc_fault(self) -> None:
        raise txmlrpc.Fault(12, "raised fault")

    def xmlrpc_returnFault(self) -> txmlrpc.Fault:
        return txmlrpc.Fault(13, "returned fault")

    def xmlrpc_boom(self) -> None:
        raise ValueError("secret detail")

    def xmlrpc_nothing(self) -> None:
        return None

    def xmlrpc_typeOf(self, value: Any) -> str:
        return type(value).__name__

    def xmlrpc_later(self, value: int) -> defer.Deferred[int]:
        d: defer.Deferred[int] = defer.Deferred()
        reactor.callLater(0.01, d.callback, value + 1)
        return d

    async def xmlrpc_coro(self, value: int) -> int:
        await asyncio.sleep(0.01)
        return value * 10

    def xmlrpc_laterFault(self) -> defer.Deferred[None]:
        return defer.fail(txmlrpc.Fault(14, "deferred fault"))

    def xmlrpc_binary(self, data: xmlrpc.client.Binary) -> xmlrpc.client.Binary:
        return xmlrpc.client.Binary(data.data[::-1])

    def xmlrpc_handler(self, name: str) -> Named:
        return Named(self, name)

    def xmlrpc_hold(self) -> defer.Deferred[None]:
        self.held = defer.Deferred(lambda _: self.cancelled.set())
        return self.held

    @txmlrpc.withRequest
    def xmlrpc_whoami(self, request: Request, suffix: str) -> list[Any]:
        address = request.getClientAddress()
        return [
            getattr(address, "host", None),
            request.getUser().decode(),
            request.getPassword().decode(),
            suffix,
        ]

    not_a_method = 3
    xmlrpc_notCallable = 3


def make_calculator(**kwargs: Any) -> Calculator:
    calc = Calculator(**kwargs)
    calc.putSubHandler("maths", Maths())
    txmlrpc.addIntrospection(calc)
    return calc


@pytest.fixture
def calc() -> Calculator:
    return make_calculator(allowNone=True)


@pytest.fixture
def rpc(serve: Callable[..., str], calc: Calculator) -> Iterator[xmlrpc.client.ServerProxy]:
    """The standard library's client for ``calc`` served by treadle."""
    with xmlrpc.client.ServerProxy(serve(calc) + "/RPC2", allow_none=True) as client:
        yield client


def post(url: str, body: bytes, method: str = "POST") -> http.client.HTTPResponse:
    host, port = host_port(url)
    conn = http.client.HTTPConnection(host, port, timeout=DEADLINE)
    conn.request(method, "/", body=body, headers={"Content-Type": "text/xml"})
    response = conn.getresponse()
    response.read()
    conn.close()
    return response


# -- the server, called by the standard library's client ---------------------------------------


def test_plain_results_and_sub_handlers(rpc: Any) -> None:
    assert rpc.add(2, 3) == 5
    assert rpc.echo("a", 1.5, [1, {"k": "v"}], True) == ["a", 1.5, [1, {"k": "v"}], True]
    assert rpc.maths.mul(6, 7) == 42


def test_deferred_coroutine_and_handler_results(rpc: Any) -> None:
    assert rpc.later(1) == 2
    assert rpc.coro(4) == 40
    assert rpc.handler("bob") == "handled bob"


@pytest.mark.parametrize(
    ("call", "code", "text"),
    [
        ("fault", 12, "raised fault"),
        ("returnFault", 13, "returned fault"),
        ("laterFault", 14, "deferred fault"),
        ("boom", txmlrpc.FAILURE, "error"),
        ("nope", txmlrpc.NOT_FOUND, "procedure nope not found"),
        ("notCallable", txmlrpc.NOT_FOUND, "procedure notCallable not callable"),
        ("other.add", txmlrpc.NOT_FOUND, "no such subHandler other"),
        ("maths.add", txmlrpc.NOT_FOUND, "procedure add not found"),
    ],
)
def test_faults(rpc: Any, call: str, code: int, text: str) -> None:
    with pytest.raises(xmlrpc.client.Fault) as caught:
        getattr(rpc, call)()
    assert (caught.value.faultCode, caught.value.faultString) == (code, text)


def test_an_exception_is_logged_not_sent(rpc: Any) -> None:
    events: list[dict[str, Any]] = []
    globalLogPublisher.addObserver(events.append)
    try:
        with pytest.raises(xmlrpc.client.Fault) as caught:
            rpc.boom()
    finally:
        globalLogPublisher.removeObserver(events.append)
    assert "secret detail" not in caught.value.faultString
    failures = [e["log_failure"] for e in events if "log_failure" in e]
    assert [f.getErrorMessage() for f in failures] == ["secret detail"]


def test_none_needs_allow_none(serve: Callable[..., str]) -> None:
    strict_url = serve(make_calculator())
    with (
        xmlrpc.client.ServerProxy(strict_url, allow_none=True) as strict,
        pytest.raises(xmlrpc.client.Fault) as caught,
    ):
        strict.nothing()
    assert caught.value.faultCode == txmlrpc.FAILURE
    assert caught.value.faultString.startswith("Can't serialize output: cannot marshal None")
    lenient_url = serve(make_calculator(allowNone=True))
    with xmlrpc.client.ServerProxy(lenient_url, allow_none=True) as lenient:
        assert lenient.nothing() is None
        assert lenient.echo(None) == [None]


def test_use_datetime(serve: Callable[..., str]) -> None:
    when = datetime.datetime(2024, 2, 29, 12, 30, 5)
    with xmlrpc.client.ServerProxy(serve(make_calculator())) as plain:
        assert plain.typeOf(when) == "DateTime"
    with xmlrpc.client.ServerProxy(serve(make_calculator(useDateTime=True))) as modern:
        assert modern.typeOf(when) == "datetime"
        assert modern.echo(when) == [xmlrpc.client.DateTime(when)]


def test_binary(rpc: Any) -> None:
    assert rpc.binary(xmlrpc.client.Binary(b"\x00\x01\xff")).data == b"\xff\x01\x00"


def test_with_request(rpc: Any) -> None:
    assert rpc.whoami("x") == ["127.0.0.1", "", "", "x"]


def test_introspection(rpc: Any) -> None:
    methods = rpc.system.listMethods()
    assert methods[:3] == ["add", "echo", "fault"]
    assert "maths.mul" in methods and "system.methodHelp" in methods
    assert "not_a_method" not in methods and "notCallable" not in methods
    assert rpc.system.methodHelp("add") == "Return the sum of a and b."
    assert rpc.system.methodHelp("maths.mul") == ""
    assert rpc.system.methodSignature("add") == [["int", "int", "int"]]
    assert rpc.system.methodSignature("echo") == ""
    assert rpc.system.methodSignature("system.listMethods") == [["array"]]
    with pytest.raises(xmlrpc.client.Fault) as caught:
        rpc.system.methodHelp("missing")
    assert caught.value.faultCode == txmlrpc.NOT_FOUND


def test_response_headers(serve: Callable[..., str], calc: Calculator) -> None:
    body = xmlrpc.client.dumps((1, 2), "add").encode()
    response = post(serve(calc), body)
    assert response.status == 200
    assert response.getheader("content-type") == "text/xml; charset=utf-8"
    expected = xmlrpc.client.dumps((3,), methodresponse=True).encode()
    assert response.getheader("content-length") == str(len(expected))


@pytest.mark.parametrize("body", [b"", b"<methodCall><methodName>add", b"\xff\xfe garbage"])
def test_malformed_body_is_a_fault(
    serve: Callable[..., str], calc: Calculator, body: bytes
) -> None:
    host, port = host_port(serve(calc))
    conn = http.client.HTTPConnection(host, port, timeout=DEADLINE)
    conn.request("POST", "/", body=body)
    response = conn.getresponse()
    content = response.read()
    conn.close()
    assert response.status == 200
    with pytest.raises(xmlrpc.client.Fault) as caught:
        xmlrpc.client.loads(content)
    assert caught.value.faultCode == txmlrpc.FAILURE
    assert caught.value.faultString.startswith("Can't deserialize input: ")


def test_a_method_response_posted_is_not_found(serve: Callable[..., str], calc: Calculator) -> None:
    host, port = host_port(serve(calc))
    conn = http.client.HTTPConnection(host, port, timeout=DEADLINE)
    conn.request("POST", "/", body=xmlrpc.client.dumps((1,), methodresponse=True))
    content = conn.getresponse().read()
    conn.close()
    with pytest.raises(xmlrpc.client.Fault) as caught:
        xmlrpc.client.loads(content)
    assert caught.value.faultCode == txmlrpc.NOT_FOUND


@pytest.mark.parametrize("method", ["GET", "HEAD", "PUT"])
def test_only_post(serve: Callable[..., str], calc: Calculator, method: str) -> None:
    response = post(serve(calc), b"", method)
    assert response.status == 405
    assert response.getheader("allow") == "POST"


def test_a_client_going_away_cancels_the_pending_result(
    serve: Callable[..., str], calc: Calculator
) -> None:
    host, port = host_port(serve(calc))
    body = xmlrpc.client.dumps((), "hold").encode()
    with socket.create_connection((host, port), timeout=DEADLINE) as sock:
        sock.sendall(
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
        )
        wait_for(lambda: calc.held is not None, "the call to arrive")
    assert calc.cancelled.wait(DEADLINE)


# -- treadle's Proxy ---------------------------------------------------------------------------


def call(server: ServerThread, proxy_call: Callable[[], defer.Deferred[Any]]) -> Any:
    """Run ``proxy_call()`` on the server's loop and return what its Deferred fires with."""

    async def run() -> Any:
        return await proxy_call()

    return asyncio.run_coroutine_threadsafe(run(), server.loop).result(DEADLINE)


class StdlibServer:
    """``SimpleXMLRPCServer`` in a thread, with a few functions."""

    def __init__(self, allow_none: bool = False, use_builtin_types: bool = False) -> None:
        self.server = xmlrpc.server.SimpleXMLRPCServer(
            ("127.0.0.1", 0),
            logRequests=False,
            allow_none=allow_none,
            use_builtin_types=use_builtin_types,
        )
        self.server.register_function(lambda a, b: a + b, "add")
        self.server.register_function(lambda *args: list(args), "echo")
        self.server.register_function(lambda: 1 / 0, "divide")
        self.server.register_function(lambda value: type(value).__name__, "typeOf")
        self.server.register_introspection_functions()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/RPC2"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(DEADLINE)


@pytest.fixture
def stdlib() -> Iterator[StdlibServer]:
    server = StdlibServer(allow_none=True)
    yield server
    server.close()


def test_proxy_against_the_standard_library_server(
    server: ServerThread, stdlib: StdlibServer
) -> None:
    proxy = txmlrpc.Proxy(stdlib.url.encode())
    assert call(server, lambda: proxy.callRemote("add", 2, 40)) == 42
    assert call(server, lambda: proxy.callRemote("echo", "é", [1, 2], {"a": True})) == [
        "é",
        [1, 2],
        {"a": True},
    ]
    blob = xmlrpc.client.Binary(b"\x00bin\xff")
    assert call(server, lambda: proxy.callRemote("echo", blob)) == [blob]
    assert "system.listMethods" in call(server, lambda: proxy.callRemote("system.listMethods"))
    with pytest.raises(xmlrpc.client.Fault) as caught:
        call(server, lambda: proxy.callRemote("divide"))
    assert "ZeroDivisionError" in caught.value.faultString


def test_proxy_none_and_datetime(server: ServerThread, stdlib: StdlibServer) -> None:
    strict = txmlrpc.Proxy(stdlib.url)
    with pytest.raises(TypeError, match="allow_none"):
        call(server, lambda: strict.callRemote("echo", None))
    lenient = txmlrpc.Proxy(stdlib.url, allowNone=True)
    assert call(server, lambda: lenient.callRemote("echo", None)) == [None]
    when = datetime.datetime(2001, 2, 3, 4, 5, 6)
    assert call(server, lambda: strict.callRemote("typeOf", when)) == "DateTime"
    assert call(server, lambda: strict.callRemote("echo", when)) == [xmlrpc.client.DateTime(when)]
    modern = txmlrpc.Proxy(stdlib.url, useDateTime=True)
    assert call(server, lambda: modern.callRemote("echo", when)) == [when]


def test_proxy_against_treadle(
    server: ServerThread, serve: Callable[..., str], calc: Calculator
) -> None:
    proxy = txmlrpc.Proxy(serve(calc).encode(), allowNone=True)
    assert call(server, lambda: proxy.callRemote("maths.mul", 3, 5)) == 15
    assert call(server, lambda: proxy.callRemote("coro", 2)) == 20
    assert call(server, lambda: proxy.callRemote("nothing")) is None
    with pytest.raises(txmlrpc.Fault) as caught:
        call(server, lambda: proxy.callRemote("fault"))
    assert (caught.value.faultCode, caught.value.faultString) == (12, "raised fault")


def test_proxy_sends_basic_auth(
    server: ServerThread, serve: Callable[..., str], calc: Calculator
) -> None:
    base = urlsplit(serve(calc))
    from_url = txmlrpc.Proxy(f"http://ann:s%3Acret@{base.netloc}/")
    assert (from_url.user, from_url.password) == (b"ann", b"s:cret")
    assert call(server, lambda: from_url.callRemote("whoami", "u")) == [
        "127.0.0.1",
        "ann",
        "s:cret",
        "u",
    ]
    overridden = txmlrpc.Proxy(f"http://ann:pw@{base.netloc}/", user=b"bob", password="pw2")
    assert call(server, lambda: overridden.callRemote("whoami", "o"))[1:3] == ["bob", "pw2"]


def test_proxy_parses_the_url() -> None:
    proxy = txmlrpc.Proxy(b"https://example.com:8443/RPC2?x=1")
    assert (proxy.host, proxy.port, proxy.path, proxy.secure) == (
        b"example.com",
        8443,
        b"/RPC2?x=1",
        True,
    )
    bare = txmlrpc.Proxy("http://example.com")
    assert (bare.port, bare.path, bare.secure, bare.user, bare.password) == (
        None,
        b"/",
        False,
        None,
        None,
    )
    with pytest.raises(ValueError, match="not an http"):
        txmlrpc.Proxy("ftp://example.com/")


def test_proxy_errors(server: ServerThread, serve: Callable[..., str]) -> None:
    missing = txmlrpc.Proxy(serve(Resource()) + "/nowhere")
    with pytest.raises(ValueError) as caught:
        call(server, lambda: missing.callRemote("add", 1, 2))
    assert caught.value.args == (b"404", b"Not Found")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]
    refused = txmlrpc.Proxy(f"http://127.0.0.1:{closed_port}/")
    with pytest.raises(error.ConnectionRefusedError):
        call(server, lambda: refused.callRemote("add", 1, 2))


def test_proxy_connect_timeout(server: ServerThread) -> None:
    # A listener whose accept queue is full (backlog 0, never accepting): the kernel drops
    # further SYNs, so a connection attempt hangs until the Proxy's timeout.
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        address = listener.getsockname()
        fillers = [socket.socket() for _ in range(3)]
        try:
            for filler in fillers:
                filler.setblocking(False)
                filler.connect_ex(address)
            proxy = txmlrpc.Proxy(f"http://127.0.0.1:{address[1]}/", connectTimeout=0.2)
            with pytest.raises(error.TimeoutError):
                call(server, lambda: proxy.callRemote("add", 1, 2))
        finally:
            for filler in fillers:
                filler.close()


def test_proxy_cancel_closes_the_call(
    server: ServerThread, serve: Callable[..., str], calc: Calculator
) -> None:
    proxy = txmlrpc.Proxy(serve(calc))
    pending: list[defer.Deferred[Any]] = []

    def start() -> None:
        pending.append(proxy.callRemote("hold"))

    server.call(start)
    wait_for(lambda: calc.held is not None, "the call to arrive")
    outcome: list[Any] = []

    def cancel() -> None:
        pending[0].addErrback(outcome.append)
        pending[0].cancel()

    server.call(cancel)
    assert calc.cancelled.wait(DEADLINE)  # the server saw its client go
    assert outcome and outcome[0].check(defer.CancelledError)


def test_proxy_over_https(
    server: ServerThread, calc: Calculator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ca = trustme.CA()
    leaf = ca.issue_cert("localhost")
    pem = leaf.private_key_and_cert_chain_pem.bytes().decode()
    options = ssl.PrivateCertificate.loadPEM(pem).options()
    port = server.call(lambda: reactor.listenSSL(0, Site(calc), options, interface="127.0.0.1"))
    server.ports.append(port)
    untrusted = txmlrpc.Proxy(f"https://localhost:{port.getHost().port}/")
    with pytest.raises(ssl_module.SSLCertVerificationError):
        call(server, lambda: untrusted.callRemote("add", 1, 1))
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    monkeypatch.setenv("SSL_CERT_FILE", str(ca_file))
    proxy = txmlrpc.Proxy(f"https://localhost:{port.getHost().port}/")
    assert call(server, lambda: proxy.callRemote("add", 20, 22)) == 42


# -- the same resource under real Twisted --------------------------------------------------------

DIFFERENTIAL = textwrap.dedent(
    """
    import sys
    from {pkg}.internet import defer, reactor
    from {pkg}.web import server, xmlrpc

    class Maths(xmlrpc.XMLRPC):
        def xmlrpc_mul(self, a, b):
            return a * b

    class Calc(xmlrpc.XMLRPC):
        def xmlrpc_add(self, a, b):
            "Add two numbers."
            return a + b
        def xmlrpc_echo(self, *args):
            return list(args)
        def xmlrpc_boom(self):
            raise ValueError("hidden")
        def xmlrpc_fault(self):
            raise xmlrpc.Fault(3, "<&> fault")
        def xmlrpc_nothing(self):
            return None
        def xmlrpc_later(self, x):
            d = defer.Deferred()
            reactor.callLater(0, d.callback, {{"x": x, "list": [x, "two"]}})
            return d
        async def xmlrpc_coro(self, x):
            return x * 2
        @xmlrpc.withRequest
        def xmlrpc_method(self, request):
            return request.method.decode()

    calc = Calc()
    calc.putSubHandler("maths", Maths())
    xmlrpc.addIntrospection(calc)
    port = reactor.listenTCP(0, server.Site(calc), interface="127.0.0.1")
    print(port.getHost().port, flush=True)
    reactor.run()
    """
)

CALLS = [
    xmlrpc.client.dumps((1, 2), "add"),
    xmlrpc.client.dumps(("é <&>", 1.5, True, {"k": [1]}, xmlrpc.client.Binary(b"\x00")), "echo"),
    xmlrpc.client.dumps((), "boom"),
    xmlrpc.client.dumps((), "fault"),
    xmlrpc.client.dumps((), "nothing"),
    xmlrpc.client.dumps((5,), "later"),
    xmlrpc.client.dumps((5,), "coro"),
    xmlrpc.client.dumps((), "method"),
    xmlrpc.client.dumps((2, 3), "maths.mul"),
    xmlrpc.client.dumps((), "maths.nope"),
    xmlrpc.client.dumps((), "nope.add"),
    xmlrpc.client.dumps((), "system.listMethods"),
    xmlrpc.client.dumps(("add",), "system.methodHelp"),
    xmlrpc.client.dumps(("add",), "system.methodSignature"),
    "<methodCall><methodName>add</methodName>",
    "",
]


def start(pkg: str, directory: Path) -> tuple[subprocess.Popen[str], int]:
    program = directory / f"{pkg}_server.py"
    program.write_text(DIFFERENTIAL.format(pkg=pkg))
    src = str(Path(__file__).resolve().parents[1] / "src")
    env = {**os.environ, "PYTHONPATH": src}
    process = subprocess.Popen(
        [sys.executable, str(program)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    assert process.stdout is not None
    return process, int(process.stdout.readline())


@pytest.fixture(scope="module")
def both(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, int]]:
    pytest.importorskip("twisted")
    directory = tmp_path_factory.mktemp("xmlrpc")
    processes: list[subprocess.Popen[str]] = []
    ports: dict[str, int] = {}
    try:
        for pkg in ("twisted", "treadle"):
            process, port = start(pkg, directory)
            processes.append(process)
            ports[pkg] = port
        yield ports
    finally:
        for process in processes:
            process.terminate()
            process.wait(DEADLINE)
            if process.stdout is not None:
                process.stdout.close()


def exchange(port: int, method: str, body: str) -> tuple[int, str | None, str | None, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=DEADLINE)
    conn.request(method, "/RPC2", body=body.encode(), headers={"Content-Type": "text/xml"})
    response = conn.getresponse()
    answer = (
        response.status,
        response.getheader("content-type"),
        response.getheader("allow"),
        response.read(),
    )
    conn.close()
    return answer


@pytest.mark.timeout(30)
@pytest.mark.parametrize("body", CALLS, ids=range(len(CALLS)))
def test_responses_match_twisted_byte_for_byte(both: dict[str, int], body: str) -> None:
    assert exchange(both["treadle"], "POST", body) == exchange(both["twisted"], "POST", body)


@pytest.mark.timeout(30)
def test_get_is_405_as_in_twisted(both: dict[str, int]) -> None:
    twisted = exchange(both["twisted"], "GET", "")
    treadle = exchange(both["treadle"], "GET", "")
    assert treadle[0] == twisted[0] == 405
    assert treadle[2] == twisted[2] == "POST"
