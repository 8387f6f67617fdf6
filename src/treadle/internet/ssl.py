"""Twisted's ``twisted.internet.ssl`` on the standard library's :mod:`ssl`: no pyOpenSSL needed.

A Twisted program's TLS code ports with its imports::

    from treadle.internet import ssl, reactor

    certificate = ssl.PrivateCertificate.loadPEM(open("server.pem").read())
    reactor.listenSSL(8443, site, certificate.options())
    reactor.connectSSL(host, 443, factory, ssl.optionsForClientTLS(host))

The contract with the reactor: a *context factory* (what ``listenSSL``, ``connectSSL``,
``transport.startTLS`` and ``SSL4ServerEndpoint`` take) is an :class:`ssl.SSLContext` or has
``getContext()`` returning one; for a client, its ``hostname`` attribute, if any, is the name
the server's certificate must carry (``server_hostname``). Every factory here keeps it.

Where the standard library differs from pyOpenSSL:

- ``getContext()`` returns an :class:`ssl.SSLContext`, not a pyOpenSSL ``Context``, and such
  a context serves one side: :class:`CertificateOptions` gives its server side when it has a
  certificate (``getServerContext()``/``getClientContext()`` choose).
- ``original`` attributes hold DER bytes, not pyOpenSSL objects; certificate and key
  arguments accept the treadle objects or those bytes (DER or PEM).
- ``method``/``sslmethod`` take ``ssl.PROTOCOL_*`` constants (``TLSv1_2`` pins TLS 1.2).
- Not available: ``verifyDepth``, ``verifyOnce`` and ``enableSessions`` (accepted, no
  effect), ``sendServerName=False``, and a server's refusal of clients whose ALPN
  protocols do not overlap (the connection goes on without a protocol).
- Parse errors raise :class:`ValueError`, not ``OpenSSL.crypto.Error``.
- Making keys and certificates (``KeyPair.generate``, ``selfSignedCert``, certificate
  requests) imports the ``cryptography`` package when called; all else is standard library.
- Beyond Twisted: keys and certificates reach OpenSSL through an in-memory file, never the
  disk; a self-signed certificate names its common name as a subject alternative name, so
  host-name checks accept it; ``DistinguishedName`` values may be any UTF-8 text.
"""

from __future__ import annotations

import enum
import ssl as _ssl

from treadle.internet._tlsbase import (
    DN,
    AcceptableCiphers,
    CertificateError,
    DiffieHellmanParameters,
    DistinguishedName,
    IOpenSSLTrustRoot,
    OpenSSLCertificateAuthorities,
    OpenSSLCipher,
    OpenSSLDefaultPaths,
    TLSVersion,
    VerificationError,
    VerifyError,
    platformTrust,
)
from treadle.internet._tlscerts import (
    FILETYPE_ASN1,
    FILETYPE_PEM,
    TYPE_DSA,
    TYPE_RSA,
    CertBase,
    Certificate,
    CertificateRequest,
    KeyPair,
    PrivateCertificate,
    PublicKey,
    trustRootFromCertificates,
)
from treadle.internet._tlscontext import (
    CertificateOptions,
    ClientContextFactory,
    ClientTLSOptions,
    ContextFactory,
    DefaultOpenSSLContextFactory,
    optionsForClientTLS,
)

__all__ = [
    "DN",
    "FILETYPE_ASN1",
    "FILETYPE_PEM",
    "TYPE_DSA",
    "TYPE_RSA",
    "AcceptableCiphers",
    "CertBase",
    "Certificate",
    "CertificateError",
    "CertificateOptions",
    "CertificateRequest",
    "ClientContextFactory",
    "ClientTLSOptions",
    "ContextFactory",
    "DefaultOpenSSLContextFactory",
    "DiffieHellmanParameters",
    "DistinguishedName",
    "IOpenSSLTrustRoot",
    "KeyPair",
    "OpenSSLCertificateAuthorities",
    "OpenSSLCipher",
    "OpenSSLDefaultPaths",
    "PrivateCertificate",
    "ProtocolNegotiationSupport",
    "PublicKey",
    "TLSVersion",
    "VerificationError",
    "VerifyError",
    "optionsForClientTLS",
    "platformTrust",
    "protocolNegotiationMechanisms",
    "supported",
    "trustRootFromCertificates",
]

#: TLS is always there: the standard library provides it.
supported = True


class ProtocolNegotiationSupport(enum.Flag):
    """How protocols can be negotiated during the handshake (only ALPN today)."""

    NOSUPPORT = 0
    NPN = 1
    ALPN = 2


def protocolNegotiationMechanisms() -> ProtocolNegotiationSupport:
    """Return the negotiation mechanisms available: ``ALPN`` where OpenSSL has it."""
    if _ssl.HAS_ALPN:
        return ProtocolNegotiationSupport.ALPN
    return ProtocolNegotiationSupport.NOSUPPORT  # pragma: no cover  # every current OpenSSL
