"""treadle.internet.ssl: Twisted's TLS names on the standard library, over real TLS sockets.

Servers listen with ``reactor.listenSSL`` on 127.0.0.1 (under both loops); clients are the
stdlib ``ssl`` module with contexts from ``optionsForClientTLS``, or ``reactor.connectSSL``.
Certificates come from ``trustme``; what treadle reads from them is checked against the
``cryptography`` package's own parse.
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
import ssl as stdlib_ssl
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from hypothesis import given, settings
from hypothesis import strategies as st

from treadle.internet import reactor, ssl
from treadle.internet.defer import Deferred
from treadle.internet.protocol import ClientFactory, Factory, Protocol
from treadle.python.filepath import FilePath
from treadle.web.server import Site

from .conftest import DEADLINE, Hello, ServerThread, wait_for

GET = b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"


# -- fixtures and helpers --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def leaf(ca: trustme.CA) -> trustme.LeafCert:
    return ca.issue_cert("localhost", "127.0.0.1", common_name="localhost")


@pytest.fixture(scope="module")
def server_cert(leaf: trustme.LeafCert) -> ssl.PrivateCertificate:
    return ssl.PrivateCertificate.loadPEM(leaf.private_key_and_cert_chain_pem.bytes())


@pytest.fixture(scope="module")
def ca_cert(ca: trustme.CA) -> ssl.Certificate:
    return ssl.Certificate.loadPEM(ca.cert_pem.bytes())


def listen(server: ServerThread, factory: Any, context_factory: Any) -> int:
    """listenSSL on 127.0.0.1 in the server's loop; return the port."""
    if not hasattr(factory, "buildProtocol"):
        factory = Site(factory)
    port = server.call(
        lambda: reactor.listenSSL(0, factory, context_factory, interface="127.0.0.1")
    )
    server.ports.append(port)
    return int(port.getHost().port)


class Exchange:
    """What a stdlib TLS client saw: the bytes read and the session's parameters."""

    def __init__(self, data: bytes, tls: stdlib_ssl.SSLSocket) -> None:
        self.data = data
        self.version = tls.version()
        self.alpn = tls.selected_alpn_protocol()
        self.cipher = tls.cipher()


def exchange(
    port: int, context: stdlib_ssl.SSLContext, hostname: str | None, send: bytes = GET
) -> Exchange:
    """Connect with ``context``, send ``send``, read until the server closes."""
    with (
        socket.create_connection(("127.0.0.1", port), timeout=DEADLINE) as raw,
        context.wrap_socket(raw, server_hostname=hostname) as tls,
    ):
        tls.sendall(send)
        chunks = []
        while True:
            try:
                chunk = tls.recv(65536)
            except (stdlib_ssl.SSLZeroReturnError, stdlib_ssl.SSLEOFError):
                break
            if not chunk:
                break
            chunks.append(chunk)
        return Exchange(b"".join(chunks), tls)


def client_for(
    trust: Any, hostname: str = "localhost", **kwargs: Any
) -> tuple[stdlib_ssl.SSLContext, str]:
    options = ssl.optionsForClientTLS(hostname, trustRoot=trust, **kwargs)
    return options.getContext(), options.hostname


class PeerName(Protocol):
    """Answers with the common name of the client's certificate (or ``none``), then closes."""

    def connectionMade(self) -> None:
        try:
            name = ssl.Certificate.peerFromTransport(self.transport).getSubject().commonName
        except ssl.CertificateError:
            name = b"none"
        host = ssl.Certificate.hostFromTransport(self.transport).getSubject().commonName
        self.transport.write(name + b" to " + host + b"\n")
        self.transport.loseConnection()


# -- serving and verifying ---------------------------------------------------------------------


def test_private_certificate_options_serve_https(
    server: ServerThread, server_cert: ssl.PrivateCertificate, ca_cert: ssl.Certificate
) -> None:
    port = listen(server, Hello(), server_cert.options())
    context, hostname = client_for(ca_cert)
    assert context.check_hostname and context.verify_mode == stdlib_ssl.CERT_REQUIRED
    result = exchange(port, context, hostname)
    assert result.data.startswith(b"HTTP/1.1 200 ")
    assert result.data.endswith(b"Hello, world!")
    assert result.version in ("TLSv1.2", "TLSv1.3")


def test_a_tls_protocol_is_connected_once_the_handshake_succeeded(
    server: ServerThread, server_cert: ssl.PrivateCertificate, ca_cert: ssl.Certificate
) -> None:
    # README, Differences: Twisted calls connectionMade at once, and connectionLost after a
    # failed handshake; here a client that never completes one reaches no protocol.
    made: list[str] = []

    class Greeter(Protocol):
        def connectionMade(self) -> None:
            made.append("made")
            self.transport.write(b"hi\n")
            self.transport.loseConnection()

    port = listen(server, Factory.forProtocol(Greeter), server_cert.options())
    with socket.create_connection(("127.0.0.1", port), timeout=DEADLINE) as plain:
        plain.sendall(b"GET / HTTP/1.1\r\n\r\n")  # no handshake: the server gives up
        while plain.recv(4096):  # (an alert, perhaps) until the server closes
            pass
    context, hostname = client_for(ca_cert)
    assert exchange(port, context, hostname).data == b"hi\n"
    assert server.call(lambda: list(made)) == ["made"]


def test_ip_address_host_names_are_checked_against_ip_entries(
    server: ServerThread, server_cert: ssl.PrivateCertificate, ca_cert: ssl.Certificate
) -> None:
    port = listen(server, Hello(), server_cert.options())
    context, hostname = client_for(ca_cert, "127.0.0.1")
    assert exchange(port, context, hostname).data.endswith(b"Hello, world!")
    other, other_name = client_for(ca_cert, "127.0.0.2")
    with pytest.raises(ssl.VerificationError):
        exchange(port, other, other_name)


def test_a_certificate_for_another_name_is_refused(
    server: ServerThread, server_cert: ssl.PrivateCertificate, ca_cert: ssl.Certificate
) -> None:
    port = listen(server, Hello(), server_cert.options())
    context, hostname = client_for(ca_cert, "other.example")
    with pytest.raises(ssl.VerificationError, match=r"other\.example"):
        exchange(port, context, hostname)


def test_a_certificate_from_an_untrusted_authority_is_refused(
    server: ServerThread, server_cert: ssl.PrivateCertificate
) -> None:
    port = listen(server, Hello(), server_cert.options())
    stranger = ssl.Certificate.loadPEM(trustme.CA().cert_pem.bytes())
    for trust in (stranger, ssl.platformTrust()):
        context, hostname = client_for(trust)
        with pytest.raises(ssl.VerificationError):
            exchange(port, context, hostname)


def test_default_openssl_context_factory_serves_from_files(
    server: ServerThread, leaf: trustme.LeafCert, ca_cert: ssl.Certificate, tmp_path: Path
) -> None:
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    leaf.private_key_pem.write_to_path(str(key))
    leaf.cert_chain_pems[0].write_to_path(str(cert))
    factory = ssl.DefaultOpenSSLContextFactory(str(key), FilePath(str(cert)))
    assert factory.getContext() is factory.getContext()
    port = listen(server, Hello(), factory)
    context, hostname = client_for(ca_cert)
    assert exchange(port, context, hostname).data.endswith(b"Hello, world!")


def test_default_openssl_context_factory_fails_early(
    leaf: trustme.LeafCert, ca: trustme.CA, tmp_path: Path
) -> None:
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    ca.issue_cert("other").private_key_pem.write_to_path(str(key))
    leaf.cert_chain_pems[0].write_to_path(str(cert))
    with pytest.raises(FileNotFoundError):
        ssl.DefaultOpenSSLContextFactory(str(tmp_path / "missing.pem"), str(cert))
    with pytest.raises(stdlib_ssl.SSLError) as caught:
        ssl.DefaultOpenSSLContextFactory(str(key), str(cert))
    assert str(key) in "".join(caught.value.__notes__)


def test_extra_cert_chain_completes_the_chain(server: ServerThread, ca: trustme.CA) -> None:
    intermediate = ca.create_child_ca()
    leaf = intermediate.issue_cert("localhost")
    key = ssl.KeyPair.load(leaf.private_key_pem.bytes(), ssl.FILETYPE_PEM)
    certificate = ssl.Certificate.loadPEM(leaf.cert_chain_pems[0].bytes())
    middle = ssl.Certificate.loadPEM(intermediate.cert_pem.bytes())
    root = ssl.Certificate.loadPEM(ca.cert_pem.bytes())
    context, hostname = client_for(root)

    alone = ssl.CertificateOptions(privateKey=key, certificate=certificate)
    with pytest.raises(ssl.VerificationError):
        exchange(listen(server, Hello(), alone), context, hostname)
    chained = ssl.CertificateOptions(
        privateKey=key, certificate=certificate, extraCertChain=[middle]
    )
    assert exchange(listen(server, Hello(), chained), context, hostname).data.endswith(
        b"Hello, world!"
    )


def test_original_bytes_are_accepted_where_twisted_takes_pyopenssl_objects(
    server: ServerThread, server_cert: ssl.PrivateCertificate, ca_cert: ssl.Certificate
) -> None:
    options = ssl.CertificateOptions(
        privateKey=server_cert.privateKey.original, certificate=server_cert.original
    )
    context, hostname = client_for(ca_cert)
    assert exchange(listen(server, Hello(), options), context, hostname).data.endswith(
        b"Hello, world!"
    )


# -- client certificates and transports -----------------------------------------------------------


def test_client_certificates_are_required_and_seen(
    server: ServerThread, server_cert: ssl.PrivateCertificate, ca: trustme.CA
) -> None:
    ca_cert = ssl.Certificate.loadPEM(ca.cert_pem.bytes())
    port = listen(server, Factory.forProtocol(PeerName), server_cert.options(ca_cert))
    client_leaf = ca.issue_cert("client@example", common_name="alice")
    mine = ssl.PrivateCertificate.loadPEM(client_leaf.private_key_and_cert_chain_pem.bytes())

    context, hostname = client_for(ca_cert, clientCertificate=mine)
    assert exchange(port, context, hostname, b"").data == b"alice to localhost\n"

    anonymous, hostname = client_for(ca_cert)
    try:
        seen = exchange(port, anonymous, hostname, b"").data
    except (stdlib_ssl.SSLError, ConnectionResetError):
        seen = b""
    assert seen == b""


def test_optional_client_certificates(
    server: ServerThread, server_cert: ssl.PrivateCertificate, ca_cert: ssl.Certificate
) -> None:
    options = ssl.CertificateOptions(
        privateKey=server_cert.privateKey,
        certificate=server_cert,
        verify=True,
        caCerts=[ca_cert],
        requireCertificate=False,
    )
    port = listen(server, Factory.forProtocol(PeerName), options)
    context, hostname = client_for(ca_cert)
    assert exchange(port, context, hostname, b"").data == b"none to localhost\n"


def test_connect_ssl_with_options_for_client_tls(
    server: ServerThread, server_cert: ssl.PrivateCertificate, ca_cert: ssl.Certificate
) -> None:
    class Echo(Protocol):
        def dataReceived(self, data: bytes) -> None:
            self.transport.write(data)

    received: list[bytes] = []
    seen: list[bytes] = []

    class Ping(Protocol):
        def connectionMade(self) -> None:
            peer = ssl.Certificate.peerFromTransport(self.transport)
            seen.append(peer.getSubject().commonName)
            self.transport.write(b"ping")

        def dataReceived(self, data: bytes) -> None:
            received.append(data)
            self.transport.loseConnection()

    port = listen(server, Factory.forProtocol(Echo), server_cert.options())
    client = ClientFactory.forProtocol(Ping)
    options = ssl.optionsForClientTLS("localhost", trustRoot=ca_cert)
    server.call(lambda: reactor.connectSSL("127.0.0.1", port, client, options))
    wait_for(lambda: received, "the echo over TLS")
    assert b"".join(received) == b"ping"
    assert seen == [b"localhost"]


def test_start_tls_with_certificate_options(
    server: ServerThread, server_cert: ssl.PrivateCertificate, ca_cert: ssl.Certificate
) -> None:
    options = server_cert.options()

    class StartTLS(Protocol):
        def dataReceived(self, data: bytes) -> None:
            if data == b"STARTTLS\n":
                self.transport.write(b"GO\n")
                self.transport.startTLS(options)
            elif data == b"who":
                name = ssl.Certificate.hostFromTransport(self.transport).getSubject().CN
                self.transport.write(b"I am " + name)
                self.transport.loseConnection()
            else:
                self.transport.write(data.upper())

    port = server.call(
        lambda: reactor.listenTCP(0, Factory.forProtocol(StartTLS), interface="127.0.0.1")
    )
    server.ports.append(port)
    context, hostname = client_for(ca_cert)
    with socket.create_connection(("127.0.0.1", port.getHost().port), timeout=DEADLINE) as raw:
        raw.sendall(b"STARTTLS\n")
        assert raw.recv(3) == b"GO\n"
        with context.wrap_socket(raw, server_hostname=hostname) as tls:
            tls.sendall(b"hello")
            assert tls.recv(100) == b"HELLO"
            # Asked only now: the first bytes after the handshake can reach the protocol
            # before treadle's Transport has switched to its TLS transport
            # (a race in the transport, reported).
            tls.sendall(b"who")
            assert tls.recv(100) == b"I am localhost"


def test_peer_certificate_of_a_plain_transport_is_an_error() -> None:
    class Plain:
        def getHandle(self) -> None:
            return None

    with pytest.raises(ssl.CertificateError, match="non-TLS"):
        ssl.Certificate.peerFromTransport(Plain())


def test_alpn_is_negotiated(
    server: ServerThread, server_cert: ssl.PrivateCertificate, ca_cert: ssl.Certificate
) -> None:
    options = ssl.CertificateOptions(
        privateKey=server_cert.privateKey,
        certificate=server_cert,
        acceptableProtocols=[b"h2", b"http/1.1"],
    )
    port = listen(server, Hello(), options)
    context, hostname = client_for(ca_cert, acceptableProtocols=[b"http/1.1"])
    assert exchange(port, context, hostname).alpn == "http/1.1"


def test_server_name_indication_chooses_the_context(
    server: ServerThread,
    server_cert: ssl.PrivateCertificate,
    ca: trustme.CA,
    ca_cert: ssl.Certificate,
    caplog: pytest.LogCaptureFixture,
) -> None:
    other = ssl.PrivateCertificate.loadPEM(
        ca.issue_cert("other.example").private_key_and_cert_chain_pem.bytes()
    )
    names: list[bytes | None] = []

    def choose(name: bytes | None) -> Any:
        names.append(name)
        if name == b"broken.example":
            raise RuntimeError("no context for you")
        return other.options() if name == b"other.example" else None

    options = ssl.CertificateOptions(
        privateKey=server_cert.privateKey, certificate=server_cert, contextForServerName=choose
    )
    port = listen(server, Hello(), options)
    for name in ("localhost", "other.example"):
        context, hostname = client_for(ca_cert, name)
        assert exchange(port, context, hostname).data.endswith(b"Hello, world!")
    assert names == [b"localhost", b"other.example"]

    broken, hostname = client_for(ca_cert, "broken.example")
    with caplog.at_level(logging.ERROR, "treadle.error"), pytest.raises(stdlib_ssl.SSLError):
        exchange(port, broken, hostname)
    wait_for(lambda: "no context for you" in caplog.text, "the SNI failure to be logged")


def test_client_context_factory_does_not_verify(
    server: ServerThread, server_cert: ssl.PrivateCertificate
) -> None:
    port = listen(server, Hello(), server_cert.options())
    context = ssl.ClientContextFactory().getContext()
    assert exchange(port, context, None).data.endswith(b"Hello, world!")


# -- versions, ciphers, methods -------------------------------------------------------------------


def _pinned_client(version: stdlib_ssl.TLSVersion) -> stdlib_ssl.SSLContext:
    context = stdlib_ssl.SSLContext(stdlib_ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = stdlib_ssl.CERT_NONE
    context.maximum_version = version
    return context


def test_tls_versions_bound_the_handshake(
    server: ServerThread, server_cert: ssl.PrivateCertificate, ca_cert: ssl.Certificate
) -> None:
    key = server_cert.privateKey
    only_13 = ssl.CertificateOptions(
        privateKey=key, certificate=server_cert, raiseMinimumTo=ssl.TLSVersion.TLSv1_3
    )
    port = listen(server, Hello(), only_13)
    with pytest.raises(stdlib_ssl.SSLError):
        exchange(port, _pinned_client(stdlib_ssl.TLSVersion.TLSv1_2), None)
    context, hostname = client_for(ca_cert)
    assert exchange(port, context, hostname).version == "TLSv1.3"

    up_to_12 = ssl.CertificateOptions(
        privateKey=key, certificate=server_cert, lowerMaximumSecurityTo=ssl.TLSVersion.TLSv1_2
    )
    assert exchange(listen(server, Hello(), up_to_12), context, hostname).version == "TLSv1.2"


def test_method_is_deprecated_and_pins_the_version(
    server: ServerThread, server_cert: ssl.PrivateCertificate, ca_cert: ssl.Certificate
) -> None:
    with pytest.warns(DeprecationWarning, match="method"):
        options = ssl.CertificateOptions(
            privateKey=server_cert.privateKey,
            certificate=server_cert,
            method=stdlib_ssl.PROTOCOL_TLSv1_2,
        )
    context, hostname = client_for(ca_cert)
    assert exchange(listen(server, Hello(), options), context, hostname).version == "TLSv1.2"
    with pytest.raises(ValueError, match="unsupported TLS method"):
        ssl.DefaultOpenSSLContextFactory("k", "c", sslmethod=7)
    with pytest.raises(ValueError, match="unsupported TLS method"):
        ssl.DefaultOpenSSLContextFactory("k", "c", sslmethod=2)  # pyOpenSSL's SSLv3_METHOD


def test_acceptable_ciphers(
    server: ServerThread, server_cert: ssl.PrivateCertificate, ca_cert: ssl.Certificate
) -> None:
    ciphers = ssl.AcceptableCiphers.fromOpenSSLCipherString("ECDHE+AESGCM+AES256")
    names = {c.fullName for c in ciphers.selectCiphers(ciphers._ciphers)}
    options = ssl.CertificateOptions(
        privateKey=server_cert.privateKey,
        certificate=server_cert,
        acceptableCiphers=ciphers,
        lowerMaximumSecurityTo=ssl.TLSVersion.TLSv1_2,
    )
    context, hostname = client_for(ca_cert)
    used = exchange(listen(server, Hello(), options), context, hostname).cipher
    assert used is not None and used[0] in names and "AES256-GCM" in used[0]
    with pytest.raises(ValueError, match="no usable ciphers"):
        ssl.CertificateOptions(acceptableCiphers=ssl.AcceptableCiphers([]))


def test_tls_version_ordering() -> None:
    versions = list(ssl.TLSVersion.iterconstants())
    assert versions == sorted(versions)
    assert ssl.TLSVersion.TLSv1_0 < ssl.TLSVersion.TLSv1_2 < ssl.TLSVersion.TLSv1_3
    assert ssl.TLSVersion.lookupByName("TLSv1_2") is ssl.TLSVersion.TLSv1_2
    with pytest.raises(ValueError):
        ssl.TLSVersion.lookupByName("TLSv9")


def test_argument_errors_as_twisted(server_cert: ssl.PrivateCertificate) -> None:
    key = server_cert.privateKey
    with pytest.raises(ValueError, match="neither or both"):
        ssl.CertificateOptions(privateKey=key)
    with pytest.raises(ValueError, match="if and only if"):
        ssl.CertificateOptions(verify=True)
    with pytest.raises(ValueError, match="supplemental"):
        ssl.CertificateOptions(extraCertChain=[server_cert])
    with pytest.raises(TypeError, match="mutually exclusive"):
        ssl.CertificateOptions(trustRoot=server_cert, requireCertificate=True)
    with pytest.raises(TypeError, match="mutually exclusive"):
        ssl.CertificateOptions(
            raiseMinimumTo=ssl.TLSVersion.TLSv1_2,
            insecurelyLowerMinimumTo=ssl.TLSVersion.TLSv1_2,
        )
    with pytest.raises(ValueError, match="lowerMaximumSecurityTo"):
        ssl.CertificateOptions(
            raiseMinimumTo=ssl.TLSVersion.TLSv1_3,
            lowerMaximumSecurityTo=ssl.TLSVersion.TLSv1_2,
        )
    with pytest.raises(TypeError, match="Could not adapt"):
        ssl.CertificateOptions(trustRoot=object())
    with pytest.raises(ValueError, match="needs a privateKey"):
        ssl.CertificateOptions().getServerContext()
    with pytest.raises(TypeError, match="text for host names"):
        ssl.optionsForClientTLS(b"localhost")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="sendServerName"):
        ssl.optionsForClientTLS("localhost", sendServerName=False)
    with pytest.raises(TypeError, match="CertBase"):
        ssl.trustRootFromCertificates([b"not a certificate"])  # type: ignore[list-item]


def test_contexts_are_made_once_per_side(server_cert: ssl.PrivateCertificate) -> None:
    options = server_cert.options()
    assert options.getContext() is options.getServerContext()
    assert options.getContext().protocol == stdlib_ssl.PROTOCOL_TLS_SERVER
    assert options.getClientContext() is options.getClientContext()
    assert options.getClientContext().protocol == stdlib_ssl.PROTOCOL_TLS_CLIENT
    client = ssl.CertificateOptions().getContext()
    assert client.protocol == stdlib_ssl.PROTOCOL_TLS_CLIENT
    assert client.verify_mode == stdlib_ssl.CERT_NONE


def test_trust_root_from_certificates(
    server: ServerThread, server_cert: ssl.PrivateCertificate, ca_cert: ssl.Certificate
) -> None:
    port = listen(server, Hello(), server_cert.options())
    stranger = ssl.Certificate.loadPEM(trustme.CA().cert_pem.bytes())
    trust = ssl.trustRootFromCertificates([stranger, ca_cert])
    context, hostname = client_for(trust)
    assert exchange(port, context, hostname).data.endswith(b"Hello, world!")


# -- certificates, keys and names ------------------------------------------------------------------


def test_certificate_fields_agree_with_cryptography(
    leaf: trustme.LeafCert, server_cert: ssl.PrivateCertificate
) -> None:
    theirs = x509.load_pem_x509_certificate(leaf.cert_chain_pems[0].bytes())
    assert server_cert.serialNumber() == theirs.serial_number
    subject = server_cert.getSubject()
    assert subject.commonName == subject.CN == b"localhost"
    organization = theirs.subject.get_attributes_for_oid(x509.NameOID.ORGANIZATION_NAME)[0]
    assert subject["organizationName"] == str(organization.value).encode()
    assert server_cert.getIssuer().get("commonName") is None  # trustme's CA has no CN
    fingerprint = theirs.fingerprint(hashes.SHA256())
    assert server_cert.digest("sha256") == b":".join(b"%02X" % b for b in fingerprint)
    spki = theirs.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert server_cert.getPublicKey().keyHash() == hashlib.md5(spki).hexdigest()
    assert server_cert.getPublicKey().matches(server_cert.privateKey)


def test_certificate_round_trips(server_cert: ssl.PrivateCertificate) -> None:
    der = server_cert.dump()
    again = ssl.Certificate.load(der)
    assert again == server_cert and hash(again) == hash(ssl.Certificate(der))
    assert ssl.Certificate.loadPEM(again.dumpPEM()) == again
    assert again.dumpPEM() == stdlib_ssl.DER_cert_to_PEM_cert(der).encode()
    pem = server_cert.dumpPEM()
    assert b"CERTIFICATE" in pem and b"PRIVATE KEY" in pem
    assert (
        ssl.PrivateCertificate.loadPEM(pem).privateKey.original == server_cert.privateKey.original
    )
    assert "Subject=b'localhost'" in repr(again)
    text = server_cert.inspect()
    assert "Common Name: localhost" in text and server_cert.privateKey.keyHash() in text


def test_load_pem_accepts_key_after_or_before_certificate(leaf: trustme.LeafCert) -> None:
    key = leaf.private_key_pem.bytes()
    cert = leaf.cert_chain_pems[0].bytes()
    first = ssl.PrivateCertificate.loadPEM(key + cert)
    second = ssl.PrivateCertificate.loadPEM((cert + key).decode())
    assert first == second


def test_mismatched_key_is_refused(ca: trustme.CA, server_cert: ssl.PrivateCertificate) -> None:
    same_kind = ca.issue_cert("x")
    other_kind = ca.issue_cert("y", key_type=trustme.KeyType.RSA)
    for other in (same_kind, other_kind):
        certificate = ssl.Certificate.loadPEM(other.cert_chain_pems[0].bytes())
        with pytest.raises(ssl.VerifyError, match="do not match"):
            ssl.PrivateCertificate.fromCertificateAndKeyPair(certificate, server_cert.privateKey)
        with pytest.raises(ssl.VerifyError):
            ssl.CertificateOptions(
                privateKey=server_cert.privateKey, certificate=certificate
            ).getContext()


def _keys() -> list[tuple[str, Any]]:
    return [
        ("rsa", rsa.generate_private_key(public_exponent=65537, key_size=2048)),
        ("ec", ec.generate_private_key(ec.SECP384R1())),
        ("ed25519", ed25519.Ed25519PrivateKey.generate()),
    ]


@pytest.mark.parametrize(
    "form", [serialization.PrivateFormat.PKCS8, serialization.PrivateFormat.TraditionalOpenSSL]
)
def test_key_hashes_agree_with_cryptography(form: serialization.PrivateFormat) -> None:
    for kind, key in _keys():
        if kind == "ed25519" and form is serialization.PrivateFormat.TraditionalOpenSSL:
            continue  # Ed25519 has only PKCS #8
        spki = key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        pem = key.private_bytes(serialization.Encoding.PEM, form, serialization.NoEncryption())
        der = key.private_bytes(serialization.Encoding.DER, form, serialization.NoEncryption())
        ours = ssl.KeyPair.load(pem, ssl.FILETYPE_PEM)
        assert ours.keyHash() == hashlib.md5(spki).hexdigest(), kind
        assert ours.dump() == der and ours.dump(ssl.FILETYPE_PEM) == pem, kind
        assert ssl.KeyPair.load(der).keyHash() == ours.keyHash()


def test_bad_key_and_certificate_data_is_refused() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    encrypted = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"secret"),
    )
    with pytest.raises(ValueError, match="encrypted"):
        ssl.KeyPair.load(encrypted, ssl.FILETYPE_PEM)
    for junk in (b"", b"\x30\x03\x02\x01", b"\x30\x82\xff\xff" + b"\x00" * 8, os.urandom(64)):
        with pytest.raises(ValueError):
            ssl.KeyPair.load(junk)
        with pytest.raises(ValueError):
            ssl.Certificate.load(junk)
    with pytest.raises(ValueError, match="no CERTIFICATE"):
        ssl.Certificate.loadPEM(b"hello")
    with pytest.raises(ValueError, match="unsupported format"):
        ssl.Certificate.load(b"", 99)


_SAMPLE = trustme.CA().issue_cert("fuzz.example")
_SAMPLE_CERT = stdlib_ssl.PEM_cert_to_DER_cert(_SAMPLE.cert_chain_pems[0].bytes().decode())
_SAMPLE_KEY = ssl.KeyPair.load(_SAMPLE.private_key_pem.bytes(), ssl.FILETYPE_PEM).original


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_damaged_der_raises_value_error_only(data: st.DataObject) -> None:
    for original, load in ((_SAMPLE_CERT, ssl.Certificate), (_SAMPLE_KEY, ssl.KeyPair)):
        damaged = bytearray(original)
        for _ in range(data.draw(st.integers(1, 4))):
            damaged[data.draw(st.integers(0, len(damaged) - 1))] = data.draw(st.integers(0, 255))
        cut = data.draw(st.integers(0, len(damaged)))
        for candidate in (bytes(damaged), bytes(damaged[:cut])):
            try:
                loaded: Any = load(candidate)
            except ValueError:
                continue
            if isinstance(loaded, ssl.Certificate):
                loaded.getSubject(), loaded.getIssuer(), loaded.digest()
            else:
                loaded.dump(ssl.FILETYPE_PEM)


def test_distinguished_name_as_twisted() -> None:
    dn = ssl.DN(commonName="www.example.com", C=b"US")
    assert dn.C == dn.countryName == b"US" and dn.CN == b"www.example.com"
    assert sorted(dn) == ["commonName", "countryName"] and dn["countryName"] == b"US"
    assert not hasattr(dn, "organizationName")
    with pytest.raises(AttributeError, match="not a valid"):
        dn.nickname = "x"
    assert repr(dn).startswith("<DN ")
    assert dn.inspect().splitlines() == [
        "               Common Name: www.example.com",
        "              Country Name: US",
    ]
    assert "Zürich AG".encode() == ssl.DN(O="Zürich AG").O


# -- making keys and certificates (with cryptography) ----------------------------------------------


def test_generated_self_signed_certificate_serves_and_verifies(server: ServerThread) -> None:
    key = ssl.KeyPair.generate(size=2048)
    certificate = key.selfSignedCert(1, CN="localhost", O="Example")
    assert (
        certificate.getSubject() == certificate.getIssuer() == ssl.DN(CN="localhost", O="Example")
    )
    assert certificate.serialNumber() == 1
    port = listen(server, Hello(), certificate.options())
    context, hostname = client_for(ssl.Certificate(certificate.original))
    assert exchange(port, context, hostname).data.endswith(b"Hello, world!")


def test_certificate_requests_are_signed_when_approved(server_cert: ssl.PrivateCertificate) -> None:
    authority = ssl.KeyPair.generate(size=2048).selfSignedCert(7, CN="Test CA")
    client_key = ssl.KeyPair.generate(size=2048)
    request = client_key.certificateRequest(ssl.DN(CN="client.example"))
    loaded = ssl.CertificateRequest.load(request)
    assert loaded.getSubject() == ssl.DN(CN="client.example")
    assert (
        ssl.CertificateRequest.load(loaded.dump(ssl.FILETYPE_PEM), ssl.FILETYPE_PEM).original
        == request
    )

    signed = authority.signCertificateRequest(request, lambda dn: True, 42)
    assert isinstance(signed, bytes)
    issued = client_key.newCertificate(signed)
    assert issued.serialNumber() == 42
    assert issued.getIssuer() == ssl.DN(CN="Test CA")

    with pytest.raises(ssl.VerifyError, match="rejected"):
        authority.signCertificateRequest(request, lambda dn: False, 43)
    approval: Deferred[bool] = Deferred()
    later = authority.signCertificateRequest(request, lambda dn: approval, 44)
    assert isinstance(later, Deferred)
    results: list[bytes] = []
    later.addCallback(results.append)
    approval.callback(True)
    assert ssl.Certificate.load(results[0]).serialNumber() == 44


def test_without_cryptography_only_making_keys_is_refused(
    monkeypatch: pytest.MonkeyPatch, leaf: trustme.LeafCert
) -> None:
    for name in list(sys.modules):
        if name == "cryptography" or name.startswith("cryptography."):
            monkeypatch.setitem(sys.modules, name, None)
    with pytest.raises(ImportError, match="cryptography"):
        ssl.KeyPair.generate()
    certificate = ssl.PrivateCertificate.loadPEM(leaf.private_key_and_cert_chain_pem.bytes())
    assert certificate.options().getContext().protocol == stdlib_ssl.PROTOCOL_TLS_SERVER
    assert certificate.privateKey.keyHash() == certificate.getPublicKey().keyHash()


def test_importing_and_serving_never_imports_cryptography(
    leaf: trustme.LeafCert, tmp_path: Path
) -> None:
    pem = tmp_path / "server.pem"
    leaf.private_key_and_cert_chain_pem.write_to_path(str(pem))
    program = (
        "import sys\n"
        "from treadle.internet import ssl\n"
        f"c = ssl.PrivateCertificate.loadPEM(open({str(pem)!r}, 'rb').read())\n"
        "c.options().getContext(); c.getSubject(); c.privateKey.keyHash()\n"
        "ssl.optionsForClientTLS('localhost', trustRoot=c).getContext()\n"
        "print(sorted(m for m in sys.modules if m.startswith('cryptography')))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=DEADLINE
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


# -- how key material reaches OpenSSL ------------------------------------------------------------


def _watch_loads(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int, bool]]:
    """Record (path, permission bits, holds a private key) of each load_cert_chain file."""
    seen: list[tuple[str, int, bool]] = []
    original: Callable[..., None] = stdlib_ssl.SSLContext.load_cert_chain

    def load_cert_chain(self: stdlib_ssl.SSLContext, certfile: str, *args: Any, **kw: Any) -> None:
        with open(certfile, "rb") as f:
            holds_key = b"PRIVATE KEY" in f.read()
        seen.append((certfile, os.stat(certfile).st_mode & 0o777, holds_key))
        original(self, certfile, *args, **kw)

    monkeypatch.setattr(stdlib_ssl.SSLContext, "load_cert_chain", load_cert_chain)
    return seen


def test_keys_pass_through_memory_not_disk(
    monkeypatch: pytest.MonkeyPatch, server_cert: ssl.PrivateCertificate
) -> None:
    if not hasattr(os, "memfd_create"):
        pytest.skip("memfd_create is Linux-only")
    seen = _watch_loads(monkeypatch)
    server_cert.options().getContext()
    assert seen and all(path.startswith("/proc/self/fd/") for path, _, _ in seen)
    assert all(holds_key for _, _, holds_key in seen)
    assert not os.path.exists(seen[-1][0])  # its descriptor is closed


def test_temporary_key_files_are_private_and_removed(
    monkeypatch: pytest.MonkeyPatch, server_cert: ssl.PrivateCertificate
) -> None:
    monkeypatch.delattr(os, "memfd_create", raising=False)
    seen = _watch_loads(monkeypatch)
    server_cert.options().getContext()
    assert seen
    for path, mode, holds_key in seen:
        assert holds_key and mode == 0o600
        assert not os.path.exists(path)


def test_protocol_negotiation_and_support() -> None:
    assert ssl.supported is True
    assert ssl.protocolNegotiationMechanisms() & ssl.ProtocolNegotiationSupport.ALPN
