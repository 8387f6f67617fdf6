"""Certificates and keys as Twisted's ``twisted.internet.ssl`` names them, on the standard library.

``Certificate``, ``PrivateCertificate``, ``KeyPair``, ``DistinguishedName`` read what they
report (subject, issuer, serial number, digests, key hashes) from the DER bytes themselves
(:mod:`treadle.internet._der`) and let OpenSSL, through :mod:`ssl`, judge the rest (whether a
key belongs to a certificate). An object's ``original`` is its DER bytes, where Twisted holds
a pyOpenSSL object; ``CertificateOptions`` accepts either the objects or those bytes.

Making keys and certificates (``KeyPair.generate``, ``selfSignedCert``, certificate requests
and signing them) needs real cryptography: those methods go through
:mod:`treadle.internet._tlsmake`, which imports the ``cryptography`` package when called and
raises :class:`ImportError` saying so when it is missing. Nothing else here needs it.
"""

from __future__ import annotations

import hashlib
import ssl
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from treadle.internet import _der, _tlsmake
from treadle.internet._tlsbase import (
    DN,
    CertificateError,
    DistinguishedName,
    IOpenSSLTrustRoot,
    OpenSSLCertificateAuthorities,
    VerifyError,
    certificate_der,
    host_certificates,
    key_pem,
    load_certificate_and_key,
)
from treadle.internet._tlscontext import CertificateOptions
from treadle.internet.defer import Deferred

__all__ = [
    "FILETYPE_ASN1",
    "FILETYPE_PEM",
    "TYPE_DSA",
    "TYPE_RSA",
    "CertBase",
    "Certificate",
    "CertificateRequest",
    "KeyPair",
    "PrivateCertificate",
    "PublicKey",
    "trustRootFromCertificates",
]

#: Formats, with pyOpenSSL's values (so ``OpenSSL.crypto.FILETYPE_PEM`` works too).
FILETYPE_PEM = 1
FILETYPE_ASN1 = 2
#: Key kinds for :meth:`KeyPair.generate`, with pyOpenSSL's values.
TYPE_RSA = 6
TYPE_DSA = 116

_ONE_YEAR = 60 * 60 * 24 * 365


def _check_format(format: int) -> None:
    if format not in (FILETYPE_PEM, FILETYPE_ASN1):
        raise ValueError(f"unsupported format {format!r}: use FILETYPE_PEM or FILETYPE_ASN1")


class CertBase:
    """What certificates and certificate requests share.

    Attributes:
        original: The DER bytes.
    """

    def __init__(self, original: bytes) -> None:
        self.original = original

    def getSubject(self) -> DistinguishedName:
        """Return (a copy of) the subject's name."""
        raise NotImplementedError

    def __conform__(self, interface: Any) -> Any:
        """Adapt to ``IOpenSSLTrustRoot`` (trusting this certificate), as Twisted does."""
        if interface is IOpenSSLTrustRoot:
            return OpenSSLCertificateAuthorities([self.original])
        return None


_C = TypeVar("_C", bound="Certificate")


def _decode(data: bytes | str, format: int, labels: tuple[str, ...], what: str) -> bytes:
    """The DER of the first ``labels`` block of PEM ``data``, or ``data`` itself if DER."""
    _check_format(format)
    if isinstance(data, str):
        data = data.encode("ascii")
    if format == FILETYPE_ASN1:
        return data
    for label, der in _der.pem_blocks(data):
        if label in labels:
            return der
    raise ValueError(f"no {what} found in the PEM data")


def _certificate_bytes(data: bytes | str, format: int) -> bytes:
    return _decode(data, format, ("CERTIFICATE", "X509 CERTIFICATE"), "CERTIFICATE")


class Certificate(CertBase):
    """An X.509 certificate.

    Args:
        original: Its DER bytes (or another Certificate).

    Raises:
        ValueError: The bytes are not a certificate.
    """

    def __init__(self, original: bytes | Certificate) -> None:
        der = original.original if isinstance(original, Certificate) else original
        super().__init__(der)
        self._fields = _der.parse_certificate(der)

    def __repr__(self) -> str:
        return "<{} Subject={!r} Issuer={!r}>".format(
            type(self).__name__,
            self.getSubject().get("commonName", b""),
            self.getIssuer().get("commonName", b""),
        )

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Certificate):
            return self.original == other.original
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.original)

    @classmethod
    def load(cls: type[_C], requestData: bytes | str, format: int = FILETYPE_ASN1) -> _C:
        """Load a certificate from DER (``FILETYPE_ASN1``) or PEM data.

        Raises:
            ValueError: No certificate in the data, or an unknown ``format``.
        """
        return cls(_certificate_bytes(requestData, format))

    @classmethod
    def loadPEM(cls, data: bytes | str) -> Certificate:
        """Load the first certificate of PEM ``data`` (other blocks are ignored)."""
        return cls.load(data, FILETYPE_PEM)

    def dump(self, format: int = FILETYPE_ASN1) -> bytes:
        """Return the certificate as DER (default) or PEM bytes."""
        _check_format(format)
        if format == FILETYPE_ASN1:
            return self.original
        return ssl.DER_cert_to_PEM_cert(self.original).encode("ascii")

    def dumpPEM(self) -> bytes:
        """Return the certificate as PEM bytes."""
        return self.dump(FILETYPE_PEM)

    @classmethod
    def peerFromTransport(cls, transport: Any) -> Certificate:
        """Return the certificate the other end of a TLS ``transport`` presented.

        Raises:
            CertificateError: The transport is not TLS, or the peer sent no certificate
                (a client, unless the server asked for one).
        """
        der = _ssl_object_of(transport, "peer").getpeercert(binary_form=True)
        if not der:
            raise CertificateError(f"TLS transport {transport!r} did not have peer certificate")
        return Certificate(der)

    @classmethod
    def hostFromTransport(cls, transport: Any) -> Certificate:
        """Return the certificate this end of a TLS ``transport`` presents.

        Known for contexts made by treadle (``CertificateOptions`` and friends); the
        ``ssl`` module cannot read it back from other contexts.

        Raises:
            CertificateError: Not TLS, or a certificate treadle did not load.
        """
        ssl_object = _ssl_object_of(transport, "host")
        der = host_certificates.get(ssl_object.context)
        if der is None:
            raise CertificateError(f"TLS transport {transport!r} did not have host certificate")
        return Certificate(der)

    def getPublicKey(self) -> PublicKey:
        """Return the certificate's public key."""
        return PublicKey(self._fields.public_key)

    def serialNumber(self) -> int:
        """Return the serial number."""
        return self._fields.serial

    def digest(self, method: str = "md5") -> bytes:
        """Return a hash of the DER certificate as ``b"AB:CD:..."`` (uppercase hex pairs).

        Args:
            method: A :mod:`hashlib` name: ``"md5"`` (Twisted's default), ``"sha1"``,
                ``"sha256"``...
        """
        digest = hashlib.new(method, self.original, usedforsecurity=False).hexdigest()
        return ":".join(digest[i : i + 2] for i in range(0, len(digest), 2)).upper().encode()

    def getSubject(self) -> DistinguishedName:
        """Return (a copy of) the subject's name."""
        return DistinguishedName(**self._fields.subject)

    def getIssuer(self) -> DistinguishedName:
        """Return (a copy of) the issuer's name."""
        return DistinguishedName(**self._fields.issuer)

    def _inspect(self) -> str:
        return "\n".join(
            [
                "Certificate For Subject:",
                self.getSubject().inspect(),
                "\nIssuer:",
                self.getIssuer().inspect(),
                f"\nSerial Number: {self.serialNumber()}",
                f"Digest: {self.digest().decode()}",
            ]
        )

    def inspect(self) -> str:
        """Return a human-readable description: subject, issuer, serial, digest, key hash."""
        return self._inspect() + "\n" + self.getPublicKey().inspect()

    def options(self, *authorities: Certificate) -> CertificateOptions:
        """Not offered for a public certificate, as in Twisted (a server needs the key).

        Raises:
            NotImplementedError: Always; use :meth:`PrivateCertificate.options`.
        """
        raise NotImplementedError("Possible, but doubtful we need this yet")


def _ssl_object_of(transport: Any, which: str) -> Any:
    """The ``ssl.SSLObject`` behind a transport (treadle's, or an asyncio one)."""
    get = getattr(transport, "get_extra_info", None)
    ssl_object = get("ssl_object") if get is not None else None
    if ssl_object is None:
        handle = getattr(transport, "getHandle", lambda: None)()
        ssl_object = handle if hasattr(handle, "getpeercert") else None
    if ssl_object is None:
        raise CertificateError(f"non-TLS transport {transport!r} did not have {which} certificate")
    return ssl_object


class CertificateRequest(CertBase):
    """A PKCS #10 certificate signing request."""

    def __init__(self, original: bytes) -> None:
        super().__init__(original)
        self._subject, self._public_key = _der.parse_request_subject(original)

    @classmethod
    def load(
        cls, requestData: bytes | str, requestFormat: int = FILETYPE_ASN1
    ) -> CertificateRequest:
        """Load a request (DER or PEM) and check its self-signature.

        Raises:
            VerifyError: The signature does not verify.
            ImportError: The ``cryptography`` package is missing (needed to verify).
        """
        labels = ("CERTIFICATE REQUEST", "NEW CERTIFICATE REQUEST")
        der = _decode(requestData, requestFormat, labels, "CERTIFICATE REQUEST")
        if not _tlsmake.request_is_signed(der):
            raise VerifyError("Can't verify that the request is self-signed.")
        return cls(der)

    def getSubject(self) -> DistinguishedName:
        """Return (a copy of) the name the request asks a certificate for."""
        return DistinguishedName(**self._subject)

    def dump(self, format: int = FILETYPE_ASN1) -> bytes:
        """Return the request as DER (default) or PEM bytes."""
        _check_format(format)
        if format == FILETYPE_ASN1:
            return self.original
        return _der.der_to_pem(self.original, "CERTIFICATE REQUEST")


class PrivateCertificate(Certificate):
    """A certificate with its private key: what a server (or a client certificate) needs.

    Attributes:
        privateKey: The :class:`KeyPair`.
    """

    privateKey: KeyPair

    def __repr__(self) -> str:
        return f"{Certificate.__repr__(self)} with {self.privateKey!r}"

    def _setPrivateKey(self, privateKey: KeyPair) -> PrivateCertificate:
        # OpenSSL decides whether they match: it handles every kind of key.
        probe = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        load_certificate_and_key(probe, [self.original], key_pem(privateKey))
        self.privateKey = privateKey
        return self

    def newCertificate(self, newCertData: bytes, format: int = FILETYPE_ASN1) -> PrivateCertificate:
        """Return a PrivateCertificate for other certificate data and this key."""
        return self.load(newCertData, self.privateKey, format)

    @classmethod
    def load(  # type: ignore[override]  # Twisted's signature: the key comes second
        cls, data: bytes | str, privateKey: KeyPair, format: int = FILETYPE_ASN1
    ) -> PrivateCertificate:
        """Load a certificate (DER or PEM) and pair it with ``privateKey``.

        Raises:
            VerifyError: The key is not the certificate's.
        """
        return cls(_certificate_bytes(data, format))._setPrivateKey(privateKey)

    def inspect(self) -> str:
        """Return the certificate's description and the key's."""
        return Certificate._inspect(self) + "\n" + self.privateKey.inspect()

    def dumpPEM(self) -> bytes:
        """Return the certificate then the private key, PEM."""
        return self.dump(FILETYPE_PEM) + self.privateKey.dump(FILETYPE_PEM)

    @classmethod
    def loadPEM(cls, data: bytes | str) -> PrivateCertificate:
        """Load a certificate and its key from one PEM text (in either order).

        Raises:
            ValueError: The text lacks a certificate or a key.
            VerifyError: The key is not the certificate's.
        """
        return cls.load(data, KeyPair.load(data, FILETYPE_PEM), FILETYPE_PEM)

    @classmethod
    def fromCertificateAndKeyPair(
        cls, certificateInstance: Certificate, privateKey: KeyPair
    ) -> PrivateCertificate:
        """Pair a :class:`Certificate` with its :class:`KeyPair`.

        Raises:
            VerifyError: The key is not the certificate's.
        """
        return cls(certificateInstance.original)._setPrivateKey(privateKey)

    def options(self, *authorities: Certificate) -> CertificateOptions:
        """Return :class:`CertificateOptions` serving this certificate.

        Args:
            authorities: If given, clients must present a certificate signed by one of them.
        """
        if authorities:
            trust = OpenSSLCertificateAuthorities([a.original for a in authorities])
            return CertificateOptions(privateKey=self.privateKey, certificate=self, trustRoot=trust)
        return CertificateOptions(privateKey=self.privateKey, certificate=self)

    def certificateRequest(
        self, format: int = FILETYPE_ASN1, digestAlgorithm: str = "sha256"
    ) -> bytes:
        """Return a request, signed by this key, for a certificate with this subject."""
        return self.privateKey.certificateRequest(self.getSubject(), format, digestAlgorithm)

    def signCertificateRequest(
        self,
        requestData: bytes,
        verifyDNCallback: Callable[[DistinguishedName], Any],
        serialNumber: int,
        requestFormat: int = FILETYPE_ASN1,
        certificateFormat: int = FILETYPE_ASN1,
    ) -> bytes | Deferred[bytes]:
        """Sign a request as the authority this certificate names (see
        :meth:`KeyPair.signCertificateRequest`)."""
        return self.privateKey.signCertificateRequest(
            self.getSubject(),
            requestData,
            verifyDNCallback,
            serialNumber,
            requestFormat,
            certificateFormat,
        )

    def signRequestObject(
        self,
        certificateRequest: CertificateRequest,
        serialNumber: int,
        secondsToExpiry: int = _ONE_YEAR,
        digestAlgorithm: str = "sha256",
    ) -> Certificate:
        """Sign a :class:`CertificateRequest` as this certificate's subject."""
        return self.privateKey.signRequestObject(
            self.getSubject(), certificateRequest, serialNumber, secondsToExpiry, digestAlgorithm
        )


class PublicKey:
    """A public key; good for comparing with others.

    Args:
        osslpkey: The DER SubjectPublicKeyInfo.
    """

    def __init__(self, osslpkey: bytes) -> None:
        self.original = osslpkey

    def _public_der(self) -> bytes:
        return self.original

    def matches(self, otherKey: PublicKey) -> bool:
        """Return True when ``otherKey`` is the same public key."""
        return self.keyHash() == otherKey.keyHash()

    def keyHash(self) -> str:
        """Return 32 hex digits identifying the public key (MD5 of its DER, as Twisted)."""
        return hashlib.md5(self._public_der(), usedforsecurity=False).hexdigest()

    def inspect(self) -> str:
        """Return ``"Public Key with Hash: ..."``."""
        return f"Public Key with Hash: {self.keyHash()}"

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.keyHash()}>"


class KeyPair(PublicKey):
    """A private key (with its public half).

    Args:
        osslpkey: The DER private key (PKCS #8, or PKCS #1 RSA, or SEC 1 EC).

    Raises:
        ValueError: The bytes are not an unencrypted private key.
    """

    def __init__(self, osslpkey: bytes) -> None:
        super().__init__(osslpkey)
        self._info = _der.key_info(osslpkey)

    @classmethod
    def load(cls, data: bytes | str, format: int = FILETYPE_ASN1) -> KeyPair:
        """Load a private key from DER or PEM (the first key block of the PEM text).

        Raises:
            ValueError: No key in the data, or an encrypted one.
        """
        _check_format(format)
        if isinstance(data, str):
            data = data.encode("ascii")
        if format == FILETYPE_ASN1:
            return cls(data)
        for label, der in _der.pem_blocks(data):
            if label == "ENCRYPTED PRIVATE KEY":
                raise ValueError("the private key is encrypted: decrypt it first")
            if label.endswith("PRIVATE KEY"):
                return cls(der)
        raise ValueError("no PRIVATE KEY found in the PEM data")

    def dump(self, format: int = FILETYPE_ASN1) -> bytes:
        """Return the private key as DER (default) or PEM."""
        _check_format(format)
        if format == FILETYPE_ASN1:
            return self.original
        return _der.der_to_pem(self.original, self._info.label)

    def _public_der(self) -> bytes:
        public = self._info.public_key
        if public is None:  # not written in the key: only arithmetic finds it
            public = _tlsmake.public_key(self.original, self._info.kind)
        return public

    def inspect(self) -> str:
        """Return ``"RSA Key Pair with Hash: ..."`` (or EC, DSA...)."""
        return f"{self._info.kind} Key Pair with Hash: {self.keyHash()}"

    def __repr__(self) -> str:
        return f"<KeyPair {self._info.kind} {self.keyHash()}>"

    @classmethod
    def generate(cls, kind: int = TYPE_RSA, size: int = 2048) -> KeyPair:
        """Make a new RSA (or DSA) key of ``size`` bits.

        Raises:
            ImportError: The ``cryptography`` package is missing.
            ValueError: An unknown ``kind``.
        """
        kinds = {TYPE_RSA: "RSA", TYPE_DSA: "DSA"}
        if kind not in kinds:
            raise ValueError(f"unknown key kind {kind!r}: use TYPE_RSA or TYPE_DSA")
        return cls(_tlsmake.generate(kinds[kind], size))

    def newCertificate(self, newCertData: bytes, format: int = FILETYPE_ASN1) -> PrivateCertificate:
        """Pair certificate data with this key (see :meth:`PrivateCertificate.load`)."""
        return PrivateCertificate.load(newCertData, self, format)

    def requestObject(
        self, distinguishedName: DistinguishedName, digestAlgorithm: str = "sha256"
    ) -> CertificateRequest:
        """Return a :class:`CertificateRequest` for ``distinguishedName``, signed by this key.

        Raises:
            ImportError: The ``cryptography`` package is missing.
        """
        der = _tlsmake.request(self.original, dict(distinguishedName), digestAlgorithm)
        return CertificateRequest(der)

    def certificateRequest(
        self,
        distinguishedName: DistinguishedName,
        format: int = FILETYPE_ASN1,
        digestAlgorithm: str = "sha256",
    ) -> bytes:
        """Return the bytes of :meth:`requestObject` in ``format``."""
        return self.requestObject(distinguishedName, digestAlgorithm).dump(format)

    def signCertificateRequest(
        self,
        issuerDistinguishedName: DistinguishedName,
        requestData: bytes,
        verifyDNCallback: Callable[[DistinguishedName], Any],
        serialNumber: int,
        requestFormat: int = FILETYPE_ASN1,
        certificateFormat: int = FILETYPE_ASN1,
        secondsToExpiry: int = _ONE_YEAR,
        digestAlgorithm: str = "sha256",
    ) -> bytes | Deferred[bytes]:
        """Sign a certificate request if ``verifyDNCallback`` approves its subject.

        Args:
            verifyDNCallback: Called with the requested DN; returns true to sign (or a
                Deferred firing with it).

        Returns:
            The certificate in ``certificateFormat``, or a Deferred of it when the
            callback returned one.

        Raises:
            VerifyError: The callback said no (through the Deferred if it returned one).
        """
        request = CertificateRequest.load(requestData, requestFormat)
        dn = request.getSubject()

        def verified(approved: object) -> bytes:
            if not approved:
                raise VerifyError(f"DN callback {verifyDNCallback!r} rejected request DN {dn!r}")
            certificate = self.signRequestObject(
                issuerDistinguishedName, request, serialNumber, secondsToExpiry, digestAlgorithm
            )
            return certificate.dump(certificateFormat)

        answer = verifyDNCallback(dn)
        if isinstance(answer, Deferred):
            return answer.addCallback(verified)
        return verified(answer)

    def signRequestObject(
        self,
        issuerDistinguishedName: DistinguishedName,
        requestObject: CertificateRequest,
        serialNumber: int,
        secondsToExpiry: int = _ONE_YEAR,
        digestAlgorithm: str = "sha256",
    ) -> Certificate:
        """Sign ``requestObject`` with this key as ``issuerDistinguishedName``.

        The certificate also names its subject's ``commonName`` as a subject alternative
        name (a DNS name or IP address), so the ``ssl`` module can match host names
        against it: modern TLS clients ignore the common name.

        Raises:
            ImportError: The ``cryptography`` package is missing.
        """
        der = _tlsmake.sign(
            self.original,
            dict(issuerDistinguishedName),
            requestObject.original,
            serialNumber,
            secondsToExpiry,
            digestAlgorithm,
        )
        return Certificate(der)

    def selfSignedCert(self, serialNumber: int, **kw: str | bytes) -> PrivateCertificate:
        """Return a certificate for this key, signed by itself, naming ``kw`` (``CN=...``).

        Raises:
            ImportError: The ``cryptography`` package is missing.
        """
        dn = DN(**kw)
        certificate = self.signRequestObject(dn, self.requestObject(dn), serialNumber)
        return PrivateCertificate.fromCertificateAndKeyPair(certificate, self)


def trustRootFromCertificates(certificates: Iterable[CertBase]) -> OpenSSLCertificateAuthorities:
    """Return a trust root that accepts peers signed by any of ``certificates``.

    Raises:
        TypeError: An item is not a ``Certificate`` (or ``PrivateCertificate``).
    """
    ders = []
    for certificate in certificates:
        if not isinstance(certificate, CertBase):
            raise TypeError("certificates items must be treadle.internet.ssl.CertBase instances")
        ders.append(certificate_der(certificate))
    return OpenSSLCertificateAuthorities(ders)
