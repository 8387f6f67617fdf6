"""HTTP/2 over real sockets with real clients: httpx (h2), curl (nghttp2) and h2load.

Cleartext listeners take HTTP/2 from clients with prior knowledge (h2c); TLS listeners built
the way ``treadle web --listen ssl:...`` builds them offer ``h2`` then ``http/1.1`` by ALPN.
Each test runs under both loops. curl and h2load are skipped, with the reason, where the
machine lacks them (Debian: ``curl``, ``nghttp2-client``).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import ssl
import subprocess
from pathlib import Path
from typing import Any

import h2.config
import h2.connection
import httpx
import pytest
import trustme

from treadle._cli.listen import listen, parse_endpoint
from treadle.internet import reactor
from treadle.internet.endpoints import serverFromString
from treadle.internet.error import ConnectionAborted
from treadle.web.resource import Resource
from treadle.web.server import NOT_DONE_YET, Request, Site
from treadle.web.static import File

from .conftest import DEADLINE, Held, ServerThread, host_port, wait_for

CURL = shutil.which("curl")
H2LOAD = shutil.which("h2load")


def _curl_speaks_h2() -> bool:
    if CURL is None:
        return False
    return "HTTP2" in subprocess.run([CURL, "-V"], capture_output=True, text=True).stdout


needs_curl = pytest.mark.skipif(not _curl_speaks_h2(), reason="curl with HTTP/2 not installed")
needs_h2load = pytest.mark.skipif(
    H2LOAD is None, reason="h2load not installed (Debian package nghttp2-client)"
)


class Info(Resource):
    isLeaf = True

    def render_GET(self, request: Request) -> bytes:
        secure = b"secure" if request.isSecure() else b"plain"
        return b"%s %s %s" % (request.clientproto, request.path, secure)

    def render_POST(self, request: Request) -> bytes:
        return b"%d" % len(request.content.read())


class Drained(Resource):
    """Streams ``size`` bytes from a coroutine that awaits ``drain()`` between writes."""

    isLeaf = True

    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size

    async def render_GET(self, request: Request) -> None:
        piece = b"0123456789abcdef" * 4096  # 64 KiB
        for _ in range(self.size // len(piece)):
            request.write(piece)
            await request.drain()
        request.finish()


def h2c(url: str) -> httpx.Client:
    return httpx.Client(base_url=url, http1=False, http2=True, timeout=DEADLINE)


# -- httpx ----------------------------------------------------------------------------------------


def test_httpx_with_prior_knowledge(serve: Any) -> None:
    url = serve(Info())
    with h2c(url) as client:
        for path in ("/a", "/b/c"):
            response = client.get(path)
            assert response.http_version == "HTTP/2"
            assert response.text == f"HTTP/2 {path} plain"
        posted = client.post("/", content=b"x" * 300_000)
        assert posted.text == "300000"


def test_not_done_yet_over_a_socket(server: ServerThread) -> None:
    held = Held(immediate={b"/now": b"now"})
    url = server.serve(held)
    with h2c(url) as client, httpx.Client(base_url=url, timeout=DEADLINE) as http11:
        assert http11.get("/now").text == "now"  # the same listener speaks both

        def answer_later() -> None:
            wait_for(lambda: held.pending, "the held request")
            server.call(held.release, b"released")

        loop = asyncio.new_event_loop()
        try:
            waiter = loop.run_in_executor(None, answer_later)
            assert client.get("/held").text == "released"
            loop.run_until_complete(waiter)
        finally:
            loop.close()


def test_a_large_file_and_a_drained_stream(server: ServerThread, tmp_path: Path) -> None:
    data = os.urandom(3 * 1024 * 1024 + 7)
    (tmp_path / "big.bin").write_bytes(data)
    root = File(str(tmp_path))
    root.putChild(b"stream", Drained(4 * 1024 * 1024))
    url = server.serve(root)
    with h2c(url) as client:
        response = client.get("/big.bin")
        assert response.http_version == "HTTP/2"
        assert response.content == data
        streamed = client.get("/stream")
        assert len(streamed.content) == 4 * 1024 * 1024
        assert streamed.content[:16] == b"0123456789abcdef"


# -- TLS with ALPN -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> tuple[trustme.CA, Path, Path]:
    ca = trustme.CA()
    leaf = ca.issue_cert("localhost", "127.0.0.1")
    where = tmp_path_factory.mktemp("tls")
    cert, key = where / "cert.pem", where / "key.pem"
    leaf.cert_chain_pems[0].write_to_path(str(cert))
    leaf.private_key_pem.write_to_path(str(key))
    return ca, cert, key


def tls_listen(server: ServerThread, resource: Resource, certificates: Any) -> str:
    """Listen as ``treadle web --listen ssl:...`` does; return the https URL."""
    _, cert, key = certificates
    endpoint = parse_endpoint(f"ssl:0:interface=127.0.0.1:privateKey={key}:certKey={cert}")
    port = server.call(lambda: listen(endpoint, Site(resource)))
    server.ports.append(port)
    return f"https://127.0.0.1:{port.getHost().port}"


def test_tls_offers_h2_then_http11(server: ServerThread, certificates: Any) -> None:
    ca = certificates[0]
    url = tls_listen(server, Info(), certificates)
    trust = ssl.create_default_context()
    ca.configure_trust(trust)
    with httpx.Client(http2=True, verify=trust, timeout=DEADLINE) as client:
        response = client.get(url + "/tls")
        assert response.http_version == "HTTP/2"
        assert response.text == "HTTP/2 /tls secure"
    with httpx.Client(verify=trust, timeout=DEADLINE) as client:
        response = client.get(url + "/tls")
        assert response.http_version == "HTTP/1.1"
        assert response.text == "HTTP/1.1 /tls secure"


def test_an_ssl_endpoint_offers_the_sites_protocols(
    server: ServerThread, certificates: Any
) -> None:
    """``serverFromString("ssl:...").listen(Site(...))`` negotiates h2 by the Site's
    ``acceptableProtocols()``, as ``treadle web --listen ssl:...`` does."""
    ca, cert, key = certificates
    description = f"ssl:0:interface=127.0.0.1:privateKey={key}:certKey={cert}"

    def listen_on_endpoint() -> Any:
        listening = serverFromString(reactor, description).listen(Site(Info()))
        return listening.result

    port = server.call(listen_on_endpoint)
    server.ports.append(port)
    trust = ssl.create_default_context()
    ca.configure_trust(trust)
    with httpx.Client(http2=True, verify=trust, timeout=DEADLINE) as client:
        response = client.get(f"https://127.0.0.1:{port.getHost().port}/e")
    assert response.http_version == "HTTP/2"
    assert response.text == "HTTP/2 /e secure"


# -- curl ----------------------------------------------------------------------------------------


def curl(*args: str) -> subprocess.CompletedProcess[bytes]:
    assert CURL is not None
    return subprocess.run(
        [CURL, "-s", "-S", "--max-time", str(DEADLINE), *args],
        capture_output=True,
        timeout=DEADLINE + 5,
    )


@needs_curl
def test_curl_prior_knowledge_and_tls(server: ServerThread, certificates: Any) -> None:
    url = server.serve(Info())
    done = curl("--http2-prior-knowledge", "-w", " %{http_version}", url + "/c")
    assert done.stdout == b"HTTP/2 /c plain 2", done.stderr
    _, cert, _ = certificates
    secure = tls_listen(server, Info(), certificates)
    ca = certificates[0]
    ca_file = cert.parent / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    done = curl("--http2", "--cacert", str(ca_file), "-w", " %{http_version}", secure + "/s")
    assert done.stdout == b"HTTP/2 /s secure 2", done.stderr


@needs_curl
def test_graceful_shutdown_lets_a_stream_finish(server: ServerThread) -> None:
    held = Held()
    site = Site(held)
    url = server.serve(site)
    assert CURL is not None
    process = subprocess.Popen(
        [CURL, "-s", "--http2-prior-knowledge", "--max-time", str(DEADLINE), url + "/slow"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        wait_for(lambda: held.pending, "the request")
        shutdown = asyncio.run_coroutine_threadsafe(site.shutdown(grace=DEADLINE), server.loop)
        wait_for(lambda: server.call(lambda: all(c._goaway_last >= 0 for c in site.connections)))
        server.call(held.release, b"finished within the grace")
        out, err = process.communicate(timeout=DEADLINE)
        assert out == b"finished within the grace", err
        assert shutdown.result(DEADLINE) is True
    finally:
        process.kill()
        process.wait()


def test_shutdown_aborts_streams_past_the_grace(server: ServerThread) -> None:
    endings: list[Any] = []

    class Forever(Resource):
        isLeaf = True

        def render_GET(self, request: Request) -> object:
            request.notifyFinish().addBoth(endings.append)
            return NOT_DONE_YET

    site = Site(Forever())
    host, port = host_port(server.serve(site))
    client = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    client.initiate_connection()
    client.send_headers(
        1, [(":method", "GET"), (":scheme", "http"), (":authority", host), (":path", "/")], True
    )
    # A client that sends its request and then reads nothing, GOAWAY included.
    with socket.create_connection((host, port), timeout=DEADLINE) as sock:
        sock.sendall(client.data_to_send())
        wait_for(lambda: server.call(lambda: list(endings)) or server.call(_open_streams, site))
        drained = asyncio.run_coroutine_threadsafe(site.shutdown(grace=0.2), server.loop)
        assert drained.result(DEADLINE) is False
    (ending,) = server.call(lambda: list(endings))
    assert ending.check(ConnectionAborted)


def _open_streams(site: Site) -> int:
    return sum(len(connection.streams) for connection in site.connections)


# -- h2load ----------------------------------------------------------------------------------------


@needs_h2load
def test_h2load_gets_every_answer(serve: Any) -> None:
    url = serve(Info())
    assert H2LOAD is not None
    done = subprocess.run(
        [H2LOAD, "-n", "400", "-c", "4", "-m", "20", url + "/load"],
        capture_output=True,
        text=True,
        timeout=DEADLINE * 3,
    )
    assert "400 succeeded, 0 failed, 0 errored" in done.stdout, done.stdout + done.stderr
    assert "400 2xx" in done.stdout
