"""Endpoints: descriptions parsed (and compared with Twisted's parser), then real sockets.

Server endpoints serve a small echo protocol on 127.0.0.1 (``::1``, a UNIX socket, TLS) and
are reached with asyncio streams; client endpoints connect to servers the test runs, and every
failure a client can meet (refused, timed out, unknown host, no protocol) and cancellation are
provoked for real. ``systemd:`` socket activation runs in a child process that inherits the
socket as descriptor 3 with ``LISTEN_PID`` set to its own pid, as systemd starts services.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import ssl
import stat
import subprocess
import sys
import textwrap
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

import pytest
from zope.interface.verify import verifyObject

import treadle
from treadle.internet import endpoints, error, reactor
from treadle.internet._descriptions import (
    ServerDescription,
    parse_client_description,
    parse_server_description,
    split_description,
)
from treadle.internet._reactor import DEFAULT_BACKLOG, new_event_loop
from treadle.internet._systemd import ListenFDs
from treadle.internet._wrapping import AddressRace
from treadle.internet.address import IPv4Address
from treadle.internet.defer import Deferred
from treadle.internet.interfaces import IStreamClientEndpoint, IStreamServerEndpoint
from treadle.internet.protocol import Factory, Protocol, connectionDone
from treadle.internet.task import Clock
from treadle.python.failure import Failure

from .conftest import DEADLINE

pytestmark = pytest.mark.timeout(30)

SRC = Path(treadle.__file__).resolve().parents[1]


# -- the grammar -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "args", "kwargs"),
    [
        ("tcp:80", ["tcp", "80"], {}),
        ("a:b\\:c:d=e=f", ["a", "b:c"], {"d": "e=f"}),
        ("unix:/tmp/a\\\\b", ["unix", "/tmp/a\\b"], {}),
        ("x:k\\=ey=v", ["x"], {"k=ey": "v"}),
        ("x::", ["x", "", ""], {}),
        ("x:k=", ["x"], {"k": ""}),
    ],
)
def test_split_description(text: str, args: list[str], kwargs: dict[str, str]) -> None:
    assert split_description(text) == (args, kwargs)


@pytest.mark.parametrize(
    ("text", "message"),
    [("tcp:80\\", "lone backslash"), ("tcp:=5", "no name"), ("tcp:a=1:a=2", "a is given twice")],
)
def test_split_description_refuses(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        split_description(text)


@pytest.mark.parametrize("value", ["plain", "C:\\key.pem", "a:b:c", "\\", "x=y", ""])
def test_quoted_argument_comes_back_unchanged(value: str) -> None:
    quoted = endpoints.quoteStringArgument(value)
    assert split_description(f"ssl:443:privateKey={quoted}")[1] == {"privateKey": value}


SERVER_TABLE = [
    ("tcp:80", ServerDescription("tcp", "tcp:80", port=80)),
    ("TCP:0:interface=127.0.0.1", ServerDescription("tcp", "", interface="127.0.0.1")),
    ("tcp:80:127.0.0.1:5", ServerDescription("tcp", "", port=80, interface="127.0.0.1", backlog=5)),
    ("tcp:port=81:backlog=7", ServerDescription("tcp", "", port=81, backlog=7)),
    ("tcp:interface=localhost:82", ServerDescription("tcp", "", port=82, interface="localhost")),
    ("tcp:80:interface=\\:\\:1", ServerDescription("tcp", "", port=80, interface="::1")),
    ("tcp6:80", ServerDescription("tcp6", "", port=80, interface="::")),
    ("tcp6:80:9:\\:\\:1", ServerDescription("tcp6", "", port=80, backlog=9, interface="::1")),
    ("unix:/run/s", ServerDescription("unix", "", address="/run/s")),
    (
        "unix:/run/s:mode=660:lockfile=0:backlog=3",
        ServerDescription("unix", "", address="/run/s", mode=0o660, lockfile=False, backlog=3),
    ),
    ("unix:/s:600", ServerDescription("unix", "", address="/s", mode=0o600)),
    (
        "ssl:443",
        ServerDescription("ssl", "", port=443, private_key="server.pem", cert_key="server.pem"),
    ),
    (
        "ssl:443:privateKey=k.pem:certKey=c.pem:extraCertChain=ch.pem:dhParameters=dh.pem"
        ":sslmethod=TLSv1_2_METHOD:interface=127.0.0.1",
        ServerDescription(
            "ssl",
            "",
            port=443,
            interface="127.0.0.1",
            private_key="k.pem",
            cert_key="c.pem",
            extra_cert_chain="ch.pem",
            dh_parameters="dh.pem",
            sslmethod="TLSv1_2_METHOD",
        ),
    ),
    ("systemd:domain=INET:index=0", ServerDescription("systemd", "", domain="INET", index=0)),
    ("systemd:UNIX:name=web", ServerDescription("systemd", "", domain="UNIX", name="web")),
    ("systemd:domain=inet6:index=2", ServerDescription("systemd", "", domain="INET6", index=2)),
]


@pytest.mark.parametrize(("text", "expected"), SERVER_TABLE)
def test_server_descriptions(text: str, expected: ServerDescription) -> None:
    parsed = parse_server_description(text)
    assert parsed.description == text
    assert parsed == ServerDescription(**{**vars(expected), "description": text})


def test_default_backlog_is_the_reactors() -> None:
    assert parse_server_description("tcp:80").backlog == DEFAULT_BACKLOG
    assert endpoints.TCP4ServerEndpoint(reactor, 80)._backlog == DEFAULT_BACKLOG


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("8080", "Unknown endpoint type: '8080'.*write tcp:8080"),
        ("http:80", "Unknown endpoint type: 'http' \\(known: tcp, tcp6, ssl, unix, systemd\\)"),
        ("", "Unknown endpoint type: ''"),
        ("tcp", "tcp needs a port"),
        ("tcp:", "port must be a number, not ''"),
        ("tcp:x", "port must be a number, not 'x'"),
        ("tcp:70000", "port 70000 is out of range"),
        ("tcp:-1", "port -1 is out of range"),
        ("tcp:80:8080:9", "interface '8080' is neither an address nor a host name"),
        ("tcp:80:1:2:3", "unexpected '3': tcp takes at most 3 positional parameters"),
        ("tcp:80:bogus=1", "tcp does not take 'bogus' \\(it takes port, interface, backlog\\)"),
        ("tcp:80:port=81", "port is given twice"),
        ("tcp:80:backlog=0x10", "backlog must be a number, not '0x10'"),
        ("tcp:80:interface=a b", "interface 'a b' is neither"),
        ("unix:", "give a socket path"),
        ("unix:/s:mode=9", "mode must be an octal number, not '9'"),
        ("unix:/s:mode=17777", "mode 0o17777 is out of range"),
        ("unix:/s:lockfile=yes", "lockfile must be 0 or 1"),
        ("ssl:443:lockfile=1", "ssl does not take 'lockfile'"),
        ("ssl:443:sslmethod=SSLv3_METHOD", "sslmethod 'SSLv3_METHOD' is not one of"),
        ("systemd:index=0", "systemd needs a domain"),
        ("systemd:domain=INET", "exactly one of index= and name="),
        ("systemd:domain=INET:index=0:name=a", "exactly one of index= and name="),
        ("systemd:domain=IPX:index=0", "domain 'IPX' is not one of INET, INET6, UNIX"),
        ("systemd:domain=INET:index=-1", "index -1 is out of range"),
        ("systemd:domain=INET:name=", "name is empty"),
    ],
)
def test_bad_server_descriptions(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        endpoints.serverFromString(reactor, text)


CLIENT_TABLE = [
    ("tcp:h:80", "tcp", {"host": "h", "port": 80}),
    ("TCP:host=h:port=80", "tcp", {"host": "h", "port": 80}),
    ("tcp:host=h:80", "tcp", {"host": "h", "port": 80}),
    ("tcp:h:port=80", "tcp", {"host": "h", "port": 80}),
    (
        "tcp:h:80:timeout=5:bindAddress=10.0.0.1",
        "tcp",
        {"host": "h", "port": 80, "timeout": 5, "bindAddress": ("10.0.0.1", 0)},
    ),
    ("tcp:h:80:timeout=2.5", "tcp", {"host": "h", "port": 80, "timeout": 2.5}),
    ("tcp:\\:\\:1:80", "tcp", {"host": "::1", "port": 80}),
    ("unix:/p", "unix", {"path": "/p"}),
    ("unix:path=/p:lockfile=1:timeout=3", "unix", {"path": "/p", "checkPID": True, "timeout": 3}),
    (
        "ssl:h:443:hostname=example.com:caCertsDir=/ca:certKey=c.pem:privateKey=k.pem",
        "ssl",
        {
            "host": "h",
            "port": 443,
            "hostname": "example.com",
            "caCertsDir": "/ca",
            "certKey": "c.pem",
            "privateKey": "k.pem",
        },
    ),
    (
        "tls:example.com:443:trustRoots=/ca",
        "tls",
        {"host": "example.com", "port": 443, "trustRoots": "/ca"},
    ),
]


@pytest.mark.parametrize(("text", "kind", "kwargs"), CLIENT_TABLE)
def test_client_descriptions(text: str, kind: str, kwargs: dict[str, Any]) -> None:
    assert parse_client_description(text) == (kind, kwargs)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("tcp6:h:80", "Unknown endpoint type: 'tcp6' \\(known: tcp, ssl, unix, tls\\)"),
        ("tcp:h", "tcp needs a port"),
        ("tcp:h:80:foo=1", "tcp does not take 'foo'"),
        ("tcp:h:80:timeout=0", "timeout must be more than 0 seconds"),
        ("tcp:h:80:timeout=soon", "timeout must be a number of seconds"),
        ("tcp::80", "host is empty"),
        ("unix:/p:lockfile=1:checkPID=1", "lockfile or checkPID, not both"),
        ("ssl:h:443:caCertsDir=", "caCertsDir is empty"),
    ],
)
def test_bad_client_descriptions(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        endpoints.clientFromString(reactor, text)


# -- the same descriptions under Twisted -------------------------------------------------------


def _meaning(endpoint: object, twisted: bool) -> dict[str, Any]:
    """An endpoint's class name and parameters, with Twisted's default backlog as treadle's."""
    names = ("_port", "_interface", "_backlog", "_address", "_mode", "_wantPID")
    names += ("_host", "_timeout", "_bindAddress", "_path", "_checkPID")
    meaning: dict[str, Any] = {"class": type(endpoint).__name__}
    for name in names:
        if hasattr(endpoint, name):
            meaning[name] = getattr(endpoint, name)
    if twisted and meaning.get("_backlog") == 50:
        meaning["_backlog"] = DEFAULT_BACKLOG  # the documented difference
    if "_wantPID" in meaning:
        meaning["_wantPID"] = bool(meaning["_wantPID"])
    if "_checkPID" in meaning:
        meaning["_checkPID"] = bool(meaning["_checkPID"])
    return meaning


@pytest.mark.parametrize(
    "text",
    [
        "tcp:80",
        "tcp:0:interface=127.0.0.1",
        "tcp:80:127.0.0.1:5",
        "tcp:port=81:backlog=7",
        "tcp:80:interface=\\:\\:1",
        "tcp:8080:interface=localhost",
        "tcp6:80",
        "tcp6:80:9:\\:\\:1",
        "tcp6:port=443:interface=\\:\\:1:backlog=3",
        "unix:/run/s",
        "unix:/run/s:mode=660:lockfile=0:backlog=3",
        "unix:/s:600",
        "unix:address=/s:mode=600",
    ],
)
def test_server_descriptions_mean_what_they_mean_in_twisted(text: str) -> None:
    twisted_endpoints = pytest.importorskip("twisted.internet.endpoints")
    from twisted.internet.testing import MemoryReactor

    theirs = twisted_endpoints.serverFromString(MemoryReactor(), text)
    ours = endpoints.serverFromString(reactor, text)
    assert _meaning(ours, False) == _meaning(theirs, True)


@pytest.mark.parametrize(
    "text",
    [
        "tcp:h:80",
        "TCP:host=h:port=80",
        "tcp:host=h:80",
        "tcp:h:port=80",
        "tcp:h:80:timeout=5:bindAddress=10.0.0.1",
        "unix:/p",
        "unix:path=/p:lockfile=1:timeout=3",
    ],
)
def test_client_descriptions_mean_what_they_mean_in_twisted(text: str) -> None:
    twisted_endpoints = pytest.importorskip("twisted.internet.endpoints")
    from twisted.internet.testing import MemoryReactor

    theirs = twisted_endpoints.clientFromString(MemoryReactor(), text)
    ours = endpoints.clientFromString(reactor, text)
    assert _meaning(ours, False) == _meaning(theirs, True)


@pytest.mark.parametrize(
    "text",
    ["8080", "bogus:1", "tcp", "tcp:x", "tcp:80:bogus=1", "tcp:port=80:80", "ssl:443:lockfile=1"],
)
def test_descriptions_twisted_refuses_are_refused(text: str) -> None:
    twisted_endpoints = pytest.importorskip("twisted.internet.endpoints")
    from twisted.internet.testing import MemoryReactor

    with pytest.raises((ValueError, TypeError)):
        twisted_endpoints.serverFromString(MemoryReactor(), text)
    with pytest.raises(ValueError):
        endpoints.serverFromString(reactor, text)


# -- running on a real loop --------------------------------------------------------------------


@pytest.fixture
def run(loop_kind: str) -> Iterator[Callable[[Coroutine[Any, Any, Any]], Any]]:
    """Run a coroutine to its end on a new loop of the kind under test (the reactor's loop
    while it runs)."""

    def runner(coro: Coroutine[Any, Any, Any]) -> Any:
        loop = asyncio.new_event_loop() if loop_kind == "asyncio" else new_event_loop()
        try:
            return loop.run_until_complete(asyncio.wait_for(coro, DEADLINE))
        finally:
            loop.run_until_complete(asyncio.sleep(0))
            loop.close()

    yield runner


class Echo(Protocol):
    """Writes back what it receives."""

    def dataReceived(self, data: bytes) -> None:
        self.transport.write(data)


class Recorder(Protocol):
    """A client protocol that records its events and lets a coroutine wait for bytes."""

    def __init__(self) -> None:
        self.events: list[str] = []
        self.data = b""
        self._loop = asyncio.get_running_loop()
        self._waiting: tuple[int, asyncio.Future[bytes]] | None = None
        self.lost: asyncio.Future[Failure] = self._loop.create_future()

    def connectionMade(self) -> None:
        self.events.append("connectionMade")

    def dataReceived(self, data: bytes) -> None:
        self.data += data
        if self._waiting and len(self.data) >= self._waiting[0]:
            self._waiting[1].set_result(self.data)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.events.append("connectionLost")
        self.lost.set_result(reason)

    async def receive(self, count: int) -> bytes:
        if len(self.data) < count:
            waiter = self._loop.create_future()
            self._waiting = (count, waiter)
            await waiter
        return self.data


def echo_factory() -> Factory:
    return Factory.forProtocol(Echo)


async def echo_over(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bytes:
    writer.write(b"ping")
    answer = await reader.readexactly(4)
    writer.close()
    return answer


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def ipv6_loopback() -> None:
    try:
        with socket.socket(socket.AF_INET6) as sock:
            sock.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback here")


# -- servers -----------------------------------------------------------------------------------


def test_tcp_server_listens_serves_and_stops(run: Callable[..., Any]) -> None:
    async def scenario() -> None:
        endpoint = endpoints.serverFromString(reactor, "tcp:0:interface=127.0.0.1")
        assert verifyObject(IStreamServerEndpoint, endpoint)
        port = await endpoint.listen(echo_factory())
        host = port.getHost()
        assert isinstance(host, IPv4Address) and host.host == "127.0.0.1" and host.port > 0
        assert await echo_over(*await asyncio.open_connection("127.0.0.1", host.port)) == b"ping"
        stopped = port.stopListening()
        assert isinstance(stopped, Deferred)
        await stopped
        with pytest.raises(ConnectionRefusedError):
            await asyncio.open_connection("127.0.0.1", host.port)

    run(scenario())


def test_tcp6_server(run: Callable[..., Any]) -> None:
    ipv6_loopback()

    async def scenario() -> None:
        port = await endpoints.TCP6ServerEndpoint(reactor, 0, interface="::1").listen(
            echo_factory()
        )
        assert port.getHost().host == "::1"
        assert await echo_over(*await asyncio.open_connection("::1", port.getHost().port)) == (
            b"ping"
        )
        await port.stopListening()

    run(scenario())


def test_port_in_use_fails_the_deferred(run: Callable[..., Any]) -> None:
    async def scenario() -> None:
        with socket.socket() as busy:
            busy.bind(("127.0.0.1", 0))
            busy.listen()
            endpoint = endpoints.TCP4ServerEndpoint(
                reactor, busy.getsockname()[1], interface="127.0.0.1"
            )
            with pytest.raises(error.CannotListenError, match="Address already in use"):
                await endpoint.listen(echo_factory())

    run(scenario())


def test_unix_server_with_mode(run: Callable[..., Any], tmp_path: Path) -> None:
    path = tmp_path / "echo.sock"

    async def scenario() -> None:
        endpoint = endpoints.serverFromString(reactor, f"unix:{path}:mode=600")
        port = await endpoint.listen(echo_factory())
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert port.getHost().name == str(path)
        assert await echo_over(*await asyncio.open_unix_connection(str(path))) == b"ping"
        await port.stopListening()

    run(scenario())


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``ca/ca.pem``, and ``key.pem``/``cert.pem``/``both.pem`` for 127.0.0.1 and localhost."""
    trustme = pytest.importorskip("trustme")
    where = tmp_path_factory.mktemp("certs")
    ca = trustme.CA()
    (where / "ca").mkdir()
    ca.cert_pem.write_to_path(str(where / "ca" / "ca.pem"))
    (where / "ca" / "junk.pem").write_text("not a certificate")
    issued = ca.issue_cert("127.0.0.1", "localhost")
    issued.private_key_pem.write_to_path(str(where / "key.pem"))
    issued.cert_chain_pems[0].write_to_path(str(where / "cert.pem"))
    (where / "both.pem").write_bytes(
        issued.private_key_pem.bytes() + issued.cert_chain_pems[0].bytes()
    )
    return where


def tls_server(certificates: Path, extra: str = "") -> str:
    key, cert = (endpoints.quoteStringArgument(str(certificates / n)) for n in ("key", "cert"))
    return f"ssl:0:interface=127.0.0.1:privateKey={key}.pem:certKey={cert}.pem{extra}"


def test_ssl_server(run: Callable[..., Any], certificates: Path) -> None:
    trust = ssl.create_default_context(cafile=str(certificates / "ca" / "ca.pem"))

    async def scenario() -> None:
        endpoint = endpoints.serverFromString(reactor, tls_server(certificates))
        port = await endpoint.listen(echo_factory())
        streams = await asyncio.open_connection(
            "127.0.0.1", port.getHost().port, ssl=trust, server_hostname="localhost"
        )
        assert await echo_over(*streams) == b"ping"
        await port.stopListening()

    run(scenario())


def test_ssl_server_key_and_certificate_in_one_file(
    run: Callable[..., Any], certificates: Path
) -> None:
    both = endpoints.quoteStringArgument(str(certificates / "both.pem"))
    trust = ssl.create_default_context(cafile=str(certificates / "ca" / "ca.pem"))

    async def scenario() -> None:
        endpoint = endpoints.serverFromString(reactor, f"ssl:0:interface=127.0.0.1:{both}")
        port = await endpoint.listen(echo_factory())
        streams = await asyncio.open_connection(
            "127.0.0.1", port.getHost().port, ssl=trust, server_hostname="127.0.0.1"
        )
        assert await echo_over(*streams) == b"ping"
        await port.stopListening()

    run(scenario())


def test_ssl_server_sends_the_extra_chain_and_pins_the_version(
    run: Callable[..., Any], tmp_path: Path
) -> None:
    trustme = pytest.importorskip("trustme")
    root = trustme.CA()
    intermediate = root.create_child_ca()
    leaf = intermediate.issue_cert("localhost")
    leaf.private_key_pem.write_to_path(str(tmp_path / "key.pem"))
    leaf.cert_chain_pems[0].write_to_path(str(tmp_path / "cert.pem"))  # the leaf alone
    intermediate.cert_pem.write_to_path(str(tmp_path / "chain.pem"))
    trust = ssl.create_default_context()
    root.configure_trust(trust)  # the client knows the root only
    files = f"privateKey={tmp_path}/key.pem:certKey={tmp_path}/cert.pem"

    async def handshake(description: str) -> str:
        port = await endpoints.serverFromString(reactor, description).listen(echo_factory())
        try:
            _, writer = await asyncio.open_connection(
                "127.0.0.1", port.getHost().port, ssl=trust, server_hostname="localhost"
            )
            version: str = writer.get_extra_info("ssl_object").version()
            writer.close()
            return version
        finally:
            await port.stopListening()

    async def scenario() -> None:
        with pytest.raises(ssl.SSLCertVerificationError):
            await handshake(f"ssl:0:interface=127.0.0.1:{files}")
        chained = f"ssl:0:interface=127.0.0.1:{files}:extraCertChain={tmp_path}/chain.pem"
        assert await handshake(chained) == "TLSv1.3"
        assert await handshake(chained + ":sslmethod=TLSv1_2_METHOD") == "TLSv1.2"

    run(scenario())


@pytest.mark.parametrize(
    ("extra", "exception", "message"),
    [
        (":privateKey=none.pem", FileNotFoundError, "none.pem not found"),
        (":privateKey={d}/ca/junk.pem", ValueError, "cannot use certificate"),
        (":privateKey={d}/key.pem", ValueError, "cannot use certificate"),
        (":extraCertChain={d}/ca/junk.pem", ValueError, "does not contain any certificate"),
    ],
)
def test_ssl_server_bad_files(
    certificates: Path, extra: str, exception: type[Exception], message: str
) -> None:
    description = "ssl:0" + extra.format(d=certificates)
    if "extraCertChain" in extra:
        description = tls_server(certificates, extra.format(d=certificates))
    with pytest.raises(exception, match=message):
        endpoints.serverFromString(reactor, description)


def test_encrypted_key_is_refused_not_prompted_for(tmp_path: Path) -> None:
    trustme = pytest.importorskip("trustme")
    from cryptography.hazmat.primitives import serialization

    issued = trustme.CA().issue_cert("localhost")
    key = serialization.load_pem_private_key(issued.private_key_pem.bytes(), None)
    (tmp_path / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret"),
        )
    )
    issued.cert_chain_pems[0].write_to_path(str(tmp_path / "cert.pem"))
    with pytest.raises(ValueError, match="is encrypted; treadle needs an unencrypted key"):
        endpoints.serverFromString(
            reactor, f"ssl:0:privateKey={tmp_path}/key.pem:certKey={tmp_path}/cert.pem"
        )


def test_adopted_socket_is_served_once(run: Callable[..., Any]) -> None:
    async def scenario() -> None:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        fd = sock.detach()
        endpoint = endpoints.AdoptedStreamServerEndpoint(reactor, fd, socket.AF_INET)
        port = await endpoint.listen(echo_factory())
        # The endpoint's descriptor is closed; the port serves on its own duplicate.
        with pytest.raises(OSError):
            os.fstat(fd)
        streams = await asyncio.open_connection("127.0.0.1", port.getHost().port)
        assert await echo_over(*streams) == b"ping"
        with pytest.raises(error.AlreadyListened):
            await endpoint.listen(echo_factory())
        await port.stopListening()

    run(scenario())


# -- systemd socket activation -----------------------------------------------------------------

# Started as systemd starts a service: the socket at descriptor 3, LISTEN_PID this process.
ACTIVATED = textwrap.dedent(
    """\
    import os, sys
    if int(sys.argv[1]) != 3:
        os.dup2(int(sys.argv[1]), 3)
        os.close(int(sys.argv[1]))
    os.environ.update(LISTEN_PID=str(os.getpid()), LISTEN_FDS="1", LISTEN_FDNAMES="web")
    from treadle.internet import endpoints, reactor
    from treadle.internet.protocol import Factory, Protocol, connectionDone

    class Echo(Protocol):
        def dataReceived(self, data):
            self.transport.write(b"child %d: " % os.getpid() + data)
            self.transport.loseConnection()

    def listened(port, inheritable):
        left = [name for name in ("LISTEN_PID", "LISTEN_FDS") if name in os.environ]
        print("listening", port.getHost().port, left, inheritable, flush=True)

    def failed(reason):
        print("failed:", reason.getErrorMessage(), flush=True)
        reactor.stop()

    def main():
        try:
            endpoint = endpoints.serverFromString(reactor, sys.argv[2])
        except ValueError as e:
            print("refused:", e, flush=True)
            reactor.stop()
            return
        inheritable = os.get_inheritable(3)
        listening = endpoint.listen(Factory.forProtocol(Echo))
        listening.addCallbacks(listened, failed, callbackArgs=(inheritable,))

    reactor.callWhenRunning(main)
    reactor.run()
    """
)


def activated(description: str, sock: socket.socket) -> subprocess.Popen[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(SRC), env.get("PYTHONPATH")) if p)
    return subprocess.Popen(
        [sys.executable, "-c", ACTIVATED, str(sock.fileno()), description],
        pass_fds=(sock.fileno(),),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.parametrize(
    "description", ["systemd:domain=INET:index=0", "systemd:domain=INET:name=web"]
)
def test_systemd_socket_activation(description: str) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        child = activated(description, sock)
    try:
        assert child.stdout is not None
        line = child.stdout.readline().split()
        # The child serves the very socket it was given; the variables are consumed and the
        # socket is not handed on to the child's own children.
        assert line == ["listening", str(port), "[]", "False"], (line, child.stderr)
        with socket.create_connection(("127.0.0.1", port), timeout=DEADLINE) as client:
            client.sendall(b"hi")
            answer = b""
            while chunk := client.recv(100):
                answer += chunk
        assert answer == f"child {child.pid}: hi".encode()
    finally:
        child.kill()
        child.communicate(timeout=DEADLINE)


@pytest.mark.parametrize(
    ("description", "message"),
    [
        ("systemd:domain=INET:index=1", "refused: no socket at index 1: 1 socket was passed"),
        ("systemd:domain=INET:name=api", "refused: no socket named 'api' was passed (names: web)"),
    ],
)
def test_systemd_socket_not_passed(description: str, message: str) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        child = activated(description, sock)
    out, err = child.communicate(timeout=DEADLINE)
    assert out.strip() == message, err


def test_listen_fds_from_the_environment() -> None:
    me = str(os.getpid())
    fds = ListenFDs.fromEnvironment({"LISTEN_PID": me, "LISTEN_FDS": "2"})
    assert fds.inheritedDescriptors() == [3, 4]
    # Without names the sockets are still there by index (Twisted finds none then).
    assert fds.inheritedNamedDescriptors() == {}
    named = ListenFDs.fromEnvironment(
        {"LISTEN_PID": me, "LISTEN_FDS": "2", "LISTEN_FDNAMES": "a:b"}, start=10
    )
    assert named.inheritedNamedDescriptors() == {"a": 10, "b": 11}
    for environ in (
        {"LISTEN_PID": str(os.getpid() + 1), "LISTEN_FDS": "1"},  # meant for another process
        {"LISTEN_FDS": "1"},
        {"LISTEN_PID": me, "LISTEN_FDS": "many"},
        {"LISTEN_PID": me, "LISTEN_FDS": "-1"},
    ):
        assert ListenFDs.fromEnvironment(environ).inheritedDescriptors() == [], environ
    mismatched = ListenFDs.fromEnvironment(
        {"LISTEN_PID": me, "LISTEN_FDS": "2", "LISTEN_FDNAMES": "a"}
    )
    assert mismatched.inheritedDescriptors() == [3, 4]
    assert mismatched.inheritedNamedDescriptors() == {}


# -- clients -----------------------------------------------------------------------------------


def recorder_factory(built: list[Recorder] | None = None) -> Factory:
    class RecorderFactory(Factory):
        noisy = False
        starts = stops = 0

        def buildProtocol(self, addr: Any) -> Recorder:
            protocol = Recorder()
            protocol.factory = self
            if built is not None:
                built.append(protocol)
            return protocol

        def startFactory(self) -> None:
            type(self).starts += 1

        def stopFactory(self) -> None:
            type(self).stops += 1

    return RecorderFactory()


async def echo_server() -> Any:
    return await endpoints.TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(
        echo_factory()
    )


async def exchange(protocol: Recorder) -> None:
    """The Deferred fired after connectionMade, and the connection carries bytes."""
    assert protocol.events == ["connectionMade"]
    protocol.transport.write(b"ping")
    assert await protocol.receive(4) == b"ping"
    protocol.transport.loseConnection()
    await protocol.lost


@pytest.mark.parametrize(
    "make",
    [
        lambda port: endpoints.TCP4ClientEndpoint(reactor, "127.0.0.1", port),
        lambda port: endpoints.clientFromString(reactor, f"tcp:127.0.0.1:{port}"),
        lambda port: endpoints.clientFromString(reactor, f"tcp:host=localhost:port={port}"),
        lambda port: endpoints.HostnameEndpoint(reactor, "localhost", port),
        lambda port: endpoints.HostnameEndpoint(reactor, b"127.0.0.1", port),
    ],
    ids=["TCP4", "tcp-string", "tcp-keywords", "HostnameEndpoint", "HostnameEndpoint-bytes"],
)
def test_tcp_clients_connect(run: Callable[..., Any], make: Callable[[int], Any]) -> None:
    async def scenario() -> None:
        server = await echo_server()
        endpoint = make(server.getHost().port)
        assert verifyObject(IStreamClientEndpoint, endpoint)
        await exchange(await endpoint.connect(recorder_factory()))
        await server.stopListening()

    run(scenario())


def test_tcp6_client(run: Callable[..., Any]) -> None:
    ipv6_loopback()

    async def scenario() -> None:
        server = await endpoints.TCP6ServerEndpoint(reactor, 0, interface="::1").listen(
            echo_factory()
        )
        protocol = await endpoints.TCP6ClientEndpoint(
            reactor, "::1", server.getHost().port
        ).connect(recorder_factory())
        assert protocol.transport.getPeer().host == "::1"
        await exchange(protocol)
        await server.stopListening()

    run(scenario())


def test_unix_client(run: Callable[..., Any], tmp_path: Path) -> None:
    path = tmp_path / "echo.sock"

    async def scenario() -> None:
        server = await endpoints.UNIXServerEndpoint(reactor, str(path)).listen(echo_factory())
        endpoint = endpoints.clientFromString(reactor, f"unix:{path}:timeout=5")
        await exchange(await endpoint.connect(recorder_factory()))
        await server.stopListening()

    run(scenario())


def test_bind_address(run: Callable[..., Any]) -> None:
    local = free_port()

    async def scenario() -> None:
        server = await echo_server()
        endpoint = endpoints.TCP4ClientEndpoint(
            reactor, "127.0.0.1", server.getHost().port, bindAddress=("127.0.0.1", local)
        )
        protocol = await endpoint.connect(recorder_factory())
        assert protocol.transport.getHost().port == local
        await exchange(protocol)
        await server.stopListening()

    run(scenario())


def test_connect_protocol(run: Callable[..., Any]) -> None:
    async def scenario() -> None:
        server = await echo_server()
        mine = Recorder()
        endpoint = endpoints.TCP4ClientEndpoint(reactor, "127.0.0.1", server.getHost().port)
        assert await endpoints.connectProtocol(endpoint, mine) is mine
        await exchange(mine)
        await server.stopListening()

    run(scenario())


@pytest.mark.parametrize(
    "client",
    [
        "ssl:host=127.0.0.1:port={port}:hostname=localhost:caCertsDir={d}/ca",
        "ssl:127.0.0.1:{port}:caCertsDir={d}/ca",
        "ssl:127.0.0.1:{port}",
        "tls:localhost:{port}:trustRoots={d}/ca",
    ],
)
def test_tls_clients(run: Callable[..., Any], certificates: Path, client: str) -> None:
    async def scenario() -> None:
        server = await endpoints.serverFromString(reactor, tls_server(certificates)).listen(
            echo_factory()
        )
        description = client.format(port=server.getHost().port, d=certificates)
        endpoint = endpoints.clientFromString(reactor, description)
        await exchange(await endpoint.connect(recorder_factory()))
        await server.stopListening()

    run(scenario())


def test_wrap_client_tls_writes_from_connection_made(
    run: Callable[..., Any], certificates: Path
) -> None:
    """What the protocol writes at once waits for the handshake, then goes out encrypted."""
    trust = ssl.create_default_context(cafile=str(certificates / "ca" / "ca.pem"))

    class Eager(Recorder):
        def connectionMade(self) -> None:
            super().connectionMade()
            self.transport.write(b"early")

    async def scenario() -> None:
        server = await endpoints.serverFromString(reactor, tls_server(certificates)).listen(
            echo_factory()
        )
        plain = endpoints.TCP4ClientEndpoint(reactor, "127.0.0.1", server.getHost().port)
        endpoint = endpoints.wrapClientTLS(trust, plain)
        assert verifyObject(IStreamClientEndpoint, endpoint)
        protocol = await endpoint.connect(Factory.forProtocol(Eager))
        assert isinstance(protocol, Eager)
        assert await protocol.receive(5) == b"early"
        assert protocol.transport.getPeerCertificate() is not None
        protocol.transport.loseConnection()
        await protocol.lost
        await server.stopListening()

    run(scenario())


def test_tls_client_with_certificate(run: Callable[..., Any], certificates: Path) -> None:
    """A client certificate goes out, and the server sees it."""
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(certificates / "cert.pem", certificates / "key.pem")
    server_context.load_verify_locations(certificates / "ca" / "ca.pem")
    server_context.verify_mode = ssl.CERT_REQUIRED
    seen: list[Any] = []

    class Peer(Echo):
        def dataReceived(self, data: bytes) -> None:
            seen.append(self.transport.getPeerCertificate())
            super().dataReceived(data)

    async def scenario() -> None:
        server = await endpoints.SSL4ServerEndpoint(
            reactor, 0, server_context, interface="127.0.0.1"
        ).listen(Factory.forProtocol(Peer))
        description = (
            f"ssl:127.0.0.1:{server.getHost().port}:hostname=localhost:caCertsDir={certificates}"
            f"/ca:certKey={certificates}/cert.pem:privateKey={certificates}/key.pem"
        )
        await exchange(
            await endpoints.clientFromString(reactor, description).connect(recorder_factory())
        )
        await server.stopListening()

    run(scenario())
    assert seen and seen[0] is not None


def test_tls_client_refuses_an_unknown_certificate(
    run: Callable[..., Any], certificates: Path
) -> None:
    async def scenario() -> None:
        server = await endpoints.serverFromString(reactor, tls_server(certificates)).listen(
            echo_factory()
        )
        # Verified against the system's CAs, which never signed the test CA's certificate.
        endpoint = endpoints.clientFromString(
            reactor, f"ssl:127.0.0.1:{server.getHost().port}:hostname=localhost"
        )
        with pytest.raises(error.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            await endpoint.connect(recorder_factory())
        await server.stopListening()

    run(scenario())


def test_tls_client_with_missing_trust_directory(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"CA certificate directory .* not found"):
        endpoints.clientFromString(reactor, f"ssl:h:443:caCertsDir={tmp_path}/none")
    with pytest.raises(ValueError, match="privateKey needs a client certificate"):
        endpoints.clientFromString(reactor, f"ssl:h:443:privateKey={tmp_path}/k.pem")


# -- how clients fail --------------------------------------------------------------------------


def full_listener() -> tuple[socket.socket, list[socket.socket]]:
    """A listening socket whose accept queue is full: further SYNs go unanswered."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(0)
    held = []
    for _ in range(4):
        client = socket.socket()
        client.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            client.connect(server.getsockname())
        held.append(client)
    return server, held


@pytest.mark.parametrize(
    ("make", "exception", "message"),
    [
        (
            lambda: endpoints.TCP4ClientEndpoint(reactor, "127.0.0.1", free_port()),
            error.ConnectionRefusedError,
            "refused",
        ),
        (
            lambda: endpoints.HostnameEndpoint(reactor, "localhost", free_port()),
            error.ConnectionRefusedError,
            "refused",
        ),
        (
            lambda: endpoints.HostnameEndpoint(reactor, "no-such-host.invalid", 80),
            error.DNSLookupError,
            "no results for hostname lookup: no-such-host.invalid",
        ),
        (
            lambda: endpoints.UNIXClientEndpoint(reactor, "/nonexistent/echo.sock"),
            error.ConnectError,
            "No such file or directory",
        ),
        (
            lambda: endpoints.HostnameEndpoint(reactor, "b\u00fccher\udcff.example", 80),
            ValueError,
            "invalid hostname",
        ),
    ],
    ids=["refused", "refused-hostname", "unknown-host", "no-socket-file", "bad-hostname"],
)
def test_connection_failures(
    run: Callable[..., Any],
    make: Callable[[], Any],
    exception: type[Exception],
    message: str,
) -> None:
    async def scenario() -> None:
        factory = recorder_factory()
        with pytest.raises(exception, match=message):
            await make().connect(factory)
        # The user's factory started and stopped around the attempt, or never started.
        assert type(factory).starts == type(factory).stops

    run(scenario())


def test_timeout(run: Callable[..., Any]) -> None:
    server, held = full_listener()

    async def scenario() -> None:
        endpoint = endpoints.TCP4ClientEndpoint(
            reactor, "127.0.0.1", server.getsockname()[1], timeout=0.2
        )
        with pytest.raises(error.TimeoutError):
            await endpoint.connect(recorder_factory())

    try:
        run(scenario())
    finally:
        for sock in [server, *held]:
            sock.close()


@pytest.mark.parametrize("refusal", ["none", "raises"])
def test_factory_refusing_the_connection(run: Callable[..., Any], refusal: str) -> None:
    class Refusing(Factory):
        noisy = False

        def buildProtocol(self, addr: Any) -> Any:
            if refusal == "raises":
                raise RuntimeError("not today")
            return None

    async def scenario() -> None:
        server = await echo_server()
        endpoint = endpoints.TCP4ClientEndpoint(reactor, "127.0.0.1", server.getHost().port)
        expected = error.NoProtocol if refusal == "none" else RuntimeError
        with pytest.raises(expected):
            await endpoint.connect(Refusing())
        await server.stopListening()

    run(scenario())


@pytest.mark.parametrize("kind", ["TCP4", "Hostname"])
def test_cancelling_an_attempt(run: Callable[..., Any], kind: str) -> None:
    server, held = full_listener()
    port = server.getsockname()[1]

    async def scenario() -> None:
        factory = recorder_factory()
        if kind == "TCP4":
            attempt = endpoints.TCP4ClientEndpoint(reactor, "127.0.0.1", port).connect(factory)
        else:
            attempt = endpoints.HostnameEndpoint(reactor, "127.0.0.1", port).connect(factory)
        await asyncio.sleep(0.05)  # the attempt is under way (the SYN goes unanswered)
        attempt.cancel()
        with pytest.raises(error.ConnectingCancelledError) as cancelled:
            await attempt
        if kind == "TCP4":
            assert cancelled.value.address == IPv4Address("TCP", "127.0.0.1", port)
        else:
            assert cancelled.value.address.port == port
            assert cancelled.value.address.hostname == b"127.0.0.1"
        assert type(factory).starts == type(factory).stops == 1

    try:
        run(scenario())
    finally:
        for sock in [server, *held]:
            sock.close()


def test_cancelling_during_the_lookup(run: Callable[..., Any]) -> None:
    async def scenario() -> None:
        attempt = endpoints.HostnameEndpoint(reactor, "localhost", 80).connect(recorder_factory())
        attempt.cancel()  # before the resolver thread answered
        with pytest.raises(error.ConnectingCancelledError):
            await attempt

    run(scenario())


def test_hostname_endpoint_repr() -> None:
    assert repr(endpoints.HostnameEndpoint(reactor, "example.com", 80)) == (
        "<HostnameEndpoint example.com:80>"
    )
    assert repr(endpoints.HostnameEndpoint(reactor, "::1", 80)) == "<HostnameEndpoint [::1]:80>"
    assert repr(endpoints.HostnameEndpoint(reactor, "b\u00fccher.example", 80)) == (
        "<HostnameEndpoint xn--bcher-kva.example:80>"
    )


# -- the address race of HostnameEndpoint ------------------------------------------------------


class Attempts:
    """Connection attempts the test settles by hand: ``started[i]`` is attempt i's Deferred."""

    def __init__(self, count: int) -> None:
        self.started: list[Deferred[Any]] = []
        self.count = count

    def __iter__(self) -> Iterator[Callable[[], Deferred[Any]]]:
        for _ in range(self.count):
            yield self.start

    def start(self) -> Deferred[Any]:
        attempt: Deferred[Any] = Deferred()
        self.started.append(attempt)
        return attempt


def race(attempts: Attempts, clock: Clock) -> tuple[AddressRace, list[Any]]:
    outcome: list[Any] = []
    winner: Deferred[Any] = Deferred()
    winner.addBoth(outcome.append)
    running = AddressRace(iter(attempts), clock.callLater, 0.3, winner)
    running.start()
    return running, outcome


def test_race_starts_attempts_apart_and_the_first_connection_wins() -> None:
    clock, attempts = Clock(), Attempts(3)
    _, outcome = race(attempts, clock)
    assert len(attempts.started) == 1
    clock.advance(0.29)
    assert len(attempts.started) == 1
    clock.advance(0.01)
    assert len(attempts.started) == 2
    attempts.started[1].callback("second")
    assert outcome == ["second"]
    # The slower attempt was cancelled, and no third one starts.
    assert attempts.started[0].called
    clock.advance(10)
    assert len(attempts.started) == 2


def test_race_a_failure_starts_the_next_attempt_at_once() -> None:
    clock, attempts = Clock(), Attempts(3)
    _, outcome = race(attempts, clock)
    attempts.started[0].errback(error.ConnectionRefusedError())
    assert len(attempts.started) == 2  # without waiting for the delay
    attempts.started[1].callback("won")
    assert outcome == ["won"]


def test_race_fails_with_the_last_failure() -> None:
    clock, attempts = Clock(), Attempts(2)
    _, outcome = race(attempts, clock)
    attempts.started[0].errback(error.ConnectionRefusedError())
    attempts.started[1].errback(error.TimeoutError())
    assert len(outcome) == 1 and outcome[0].check(error.TimeoutError)


def test_race_cancelled() -> None:
    clock, attempts = Clock(), Attempts(3)
    running, outcome = race(attempts, clock)
    clock.advance(0.3)
    running.cancel()
    assert all(attempt.called for attempt in attempts.started)
    clock.advance(10)
    assert len(attempts.started) == 2 and outcome == []


def test_listen_deferreds_are_already_fired(tmp_path: Path) -> None:
    """Twisted's listen() fires at once with a synchronous reactor; so does treadle's."""

    class Reactor:
        def listenTCP(self, port: int, factory: Any, backlog: int, interface: str) -> str:
            return f"{interface}:{port}/{backlog}"

        def listenUNIX(self, address: str, factory: Any, backlog: int, mode: int) -> str:
            raise error.CannotListenError(address, 0, OSError("nope"))

    results: list[Any] = []
    endpoints.TCP6ServerEndpoint(Reactor(), 80, 5).listen(None).addBoth(results.append)
    endpoints.UNIXServerEndpoint(Reactor(), "/x").listen(None).addBoth(results.append)
    assert results[0] == ":::80/5"
    assert isinstance(results[1], Failure) and results[1].check(error.CannotListenError)
