"""What treadle's TLS modules share: loading PEM into contexts, versions, trust, ciphers, names.

Certificates and keys reach OpenSSL through ``SSLContext.load_cert_chain``, which only reads
files: they are written to an anonymous in-memory file (``memfd_create``, reached through
``/proc/self/fd``) that never touches a disk, or where that does not exist to a ``0600``
temporary file removed as soon as OpenSSL has read it. CA certificates go in as ``cadata``.

Certificates are known here only as DER bytes (an object's ``original``): the classes users
hold live in :mod:`treadle.internet._tlscerts`, the contexts in
:mod:`treadle.internet._tlscontext`, and :mod:`treadle.internet.ssl` shows them all.
"""

from __future__ import annotations

import contextlib
import enum
import functools
import os
import ssl
import tempfile
import weakref
from collections.abc import Iterator, Sequence
from typing import Any, NamedTuple

from zope.interface import Interface, implementer

from treadle.internet import _der
from treadle.internet.error import CertificateError, VerifyError
from treadle.internet.interfaces import IAcceptableCiphers, ICipher

__all__ = [
    "DEFAULT_MINIMUM",
    "DN",
    "AcceptableCiphers",
    "CertificateError",
    "DiffieHellmanParameters",
    "DistinguishedName",
    "IOpenSSLTrustRoot",
    "OpenSSLCertificateAuthorities",
    "OpenSSLCipher",
    "OpenSSLDefaultPaths",
    "TLSVersion",
    "VerificationError",
    "VerifyError",
    "certificate_der",
    "cipher_string",
    "host_certificates",
    "key_pem",
    "load_certificate_and_key",
    "method_range",
    "platformTrust",
    "refuse_password",
    "set_versions",
]

#: What a failed certificate check raises during a handshake (Twisted re-exports
#: ``service_identity``'s ``VerificationError``; with the ``ssl`` module the failure is this).
VerificationError = ssl.SSLCertVerificationError


# -- loading certificates and keys ----------------------------------------------------------------

# The first certificate each context was given, so ``Certificate.hostFromTransport`` can answer
# (the ssl module cannot read a context's own certificate back).
host_certificates: weakref.WeakKeyDictionary[ssl.SSLContext, bytes] = weakref.WeakKeyDictionary()


def refuse_password() -> str:
    """The ``password`` callback of ``load_cert_chain``: encrypted keys are refused.

    Without a callback OpenSSL would prompt on the terminal, blocking the process.
    """
    raise ValueError("the private key is encrypted: decrypt it first (treadle asks no passphrase)")


@contextlib.contextmanager
def _secret_file(data: bytes) -> Iterator[str]:
    """A path holding ``data`` for as long as the block runs, readable by this process only."""
    memfd_create = getattr(os, "memfd_create", None)
    if memfd_create is not None and os.path.isdir("/proc/self/fd"):
        fd = memfd_create("treadle-tls")
        try:
            with open(fd, "wb", closefd=False) as f:
                f.write(data)
            yield f"/proc/self/fd/{fd}"
        finally:
            os.close(fd)
        return
    fd, path = tempfile.mkstemp(prefix="treadle-tls-", suffix=".pem")  # mode 0600
    try:
        with open(fd, "wb") as f:
            f.write(data)
        yield path
    finally:
        os.unlink(path)


def load_certificate_and_key(
    context: ssl.SSLContext, certificates: Sequence[bytes], key: bytes
) -> None:
    """Give ``context`` a certificate chain and its private key.

    Args:
        context: The context to configure.
        certificates: DER certificates: the leaf first, then the chain that completes it.
        key: The private key, PEM (unencrypted).

    Raises:
        VerifyError: The key does not belong to the leaf certificate.
        ValueError: OpenSSL refused the certificate or the key.
    """
    pem = b"".join(ssl.DER_cert_to_PEM_cert(c).encode("ascii") for c in certificates)
    with _secret_file(pem + key) as path:
        try:
            context.load_cert_chain(path, password=refuse_password)
        except ssl.SSLError as e:
            # A key of another type than the certificate's lands in another slot of the
            # context, leaving it without a certificate: a mismatch too.
            if e.reason in ("KEY_VALUES_MISMATCH", "NO_CERTIFICATE_ASSIGNED"):
                raise VerifyError("Certificate public and private keys do not match.") from None
            raise ValueError(f"OpenSSL refused the certificate or key: {e.reason or e}") from None
    host_certificates[context] = certificates[0]


def certificate_der(value: Any) -> bytes:
    """The DER bytes of a certificate given as a Certificate, DER or PEM.

    Raises:
        TypeError: ``value`` is none of those.
        ValueError: The bytes hold no certificate.
    """
    original = getattr(value, "original", value)
    if isinstance(original, str):
        original = original.encode("ascii")
    if not isinstance(original, bytes):
        raise TypeError(f"expected a Certificate or its DER/PEM bytes, not {value!r}")
    if original.lstrip().startswith(b"-----BEGIN"):
        for label, der in _der.pem_blocks(original):
            if label in ("CERTIFICATE", "X509 CERTIFICATE"):
                return der
        raise ValueError("no CERTIFICATE block in the PEM data")
    return original


def key_pem(value: Any) -> bytes:
    """The PEM of a private key given as a KeyPair, DER or PEM.

    Raises:
        TypeError: ``value`` is none of those.
        ValueError: The bytes hold no private key.
    """
    original = getattr(value, "original", value)
    if isinstance(original, str):
        original = original.encode("ascii")
    if not isinstance(original, bytes):
        raise TypeError(f"expected a KeyPair or its DER/PEM bytes, not {value!r}")
    if original.lstrip().startswith(b"-----BEGIN"):
        for label, der in _der.pem_blocks(original):
            if label.endswith("PRIVATE KEY"):
                return _der.der_to_pem(der, label)
        raise ValueError("no PRIVATE KEY block in the PEM data")
    return _der.der_to_pem(original, _der.key_info(original).label)


# -- versions ------------------------------------------------------------------------------------


@functools.total_ordering
class TLSVersion(enum.Enum):
    """TLS versions, oldest first; they compare by age (``TLSv1_2 < TLSv1_3``)."""

    SSLv3 = ssl.TLSVersion.SSLv3
    TLSv1_0 = ssl.TLSVersion.TLSv1
    TLSv1_1 = ssl.TLSVersion.TLSv1_1
    TLSv1_2 = ssl.TLSVersion.TLSv1_2
    TLSv1_3 = ssl.TLSVersion.TLSv1_3

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, TLSVersion):
            return NotImplemented
        return _ORDER.index(self) < _ORDER.index(other)

    @classmethod
    def iterconstants(cls) -> Iterator[TLSVersion]:
        """The versions, oldest first (``constantly``'s spelling, which Twisted uses)."""
        return iter(cls)

    @classmethod
    def lookupByName(cls, name: str) -> TLSVersion:
        """The version called ``name`` (``"TLSv1_2"``).

        Raises:
            ValueError: No version has that name.
        """
        try:
            return cls[name]
        except KeyError:
            raise ValueError(name) from None


_ORDER = list(TLSVersion)
#: Twisted's default minimum: wide support, nothing known broken.
DEFAULT_MINIMUM = TLSVersion.TLSv1_2


def method_range(method: object) -> tuple[TLSVersion | None, TLSVersion | None]:
    """The (minimum, maximum) a ``method`` (an ``ssl.PROTOCOL_*`` constant) stands for.

    None and the version-flexible constants leave both to the defaults (None, None).

    Raises:
        ValueError: Anything else, pyOpenSSL's ``*_METHOD`` integers included.
    """
    pinned = {
        ssl.PROTOCOL_TLSv1: TLSVersion.TLSv1_0,
        ssl.PROTOCOL_TLSv1_1: TLSVersion.TLSv1_1,
        ssl.PROTOCOL_TLSv1_2: TLSVersion.TLSv1_2,
    }
    if method is None:
        return None, None
    # The type, not only the value: pyOpenSSL's method integers overlap ssl's constants.
    if isinstance(method, type(ssl.PROTOCOL_TLS)):
        if method in (ssl.PROTOCOL_TLS, ssl.PROTOCOL_TLS_SERVER, ssl.PROTOCOL_TLS_CLIENT):
            return None, None
        if method in pinned:
            return pinned[method], pinned[method]
    raise ValueError(
        f"unsupported TLS method {method!r}: use an ssl.PROTOCOL_* constant, or better "
        "raiseMinimumTo/insecurelyLowerMinimumTo/lowerMaximumSecurityTo"
    )


def set_versions(
    context: ssl.SSLContext, minimum: TLSVersion | None, maximum: TLSVersion | None
) -> None:
    """Bound ``context``'s TLS versions (None leaves that bound as it is)."""
    if minimum is not None:
        context.minimum_version = minimum.value
    if maximum is not None:
        context.maximum_version = maximum.value


# -- trust ---------------------------------------------------------------------------------------


class IOpenSSLTrustRoot(Interface):  # type: ignore[misc]  # zope's Interface is untyped
    """Which certificate authorities a context trusts (what ``trustRoot=`` accepts).

    A :class:`~treadle.internet.ssl.Certificate` adapts to it (trusting that one
    certificate), as in Twisted.
    """

    def _addCACertsToContext(context):  # type: ignore[no-untyped-def]
        """Make ``context`` (an ``ssl.SSLContext``) trust these authorities."""


@implementer(IOpenSSLTrustRoot)
class OpenSSLCertificateAuthorities:
    """Trust exactly the given certificates.

    Args:
        caCerts: The authorities: DER bytes, or objects holding them as ``original``
            (:class:`~treadle.internet.ssl.Certificate`).
    """

    def __init__(self, caCerts: Sequence[Any]) -> None:
        self._caCerts = [certificate_der(c) for c in caCerts]

    def _addCACertsToContext(self, context: ssl.SSLContext) -> None:
        if self._caCerts:
            context.load_verify_locations(cadata=b"".join(self._caCerts))


@implementer(IOpenSSLTrustRoot)
class OpenSSLDefaultPaths:
    """Trust the authorities of the platform (OpenSSL's default paths, ``SSL_CERT_FILE``)."""

    def _addCACertsToContext(self, context: ssl.SSLContext) -> None:
        server = context.protocol == ssl.PROTOCOL_TLS_SERVER
        context.load_default_certs(ssl.Purpose.CLIENT_AUTH if server else ssl.Purpose.SERVER_AUTH)


def platformTrust() -> OpenSSLDefaultPaths:
    """Return the trust root of the platform: the authorities a browser would trust.

    It is what client connections should use, and what :func:`optionsForClientTLS` uses
    when given no ``trustRoot``.
    """
    return OpenSSLDefaultPaths()


# -- ciphers and Diffie-Hellman ------------------------------------------------------------------


@implementer(ICipher)
class OpenSSLCipher(NamedTuple):
    """A cipher suite, named as OpenSSL names it (``ECDHE-RSA-AES256-GCM-SHA384``)."""

    fullName: str


def _available_ciphers(spec: str = "ALL") -> list[OpenSSLCipher]:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.set_ciphers(spec)
    except ssl.SSLError:
        return []
    return [OpenSSLCipher(c["name"]) for c in context.get_ciphers()]


@implementer(IAcceptableCiphers)
class AcceptableCiphers:
    """The cipher suites a connection may use, in order of preference.

    Args:
        ciphers: The acceptable :class:`OpenSSLCipher` objects.
    """

    def __init__(self, ciphers: Sequence[OpenSSLCipher]) -> None:
        self._ciphers = list(ciphers)

    def selectCiphers(self, availableCiphers: Sequence[OpenSSLCipher]) -> list[OpenSSLCipher]:
        """Return the acceptable ciphers among ``availableCiphers``, in this object's order."""
        available = set(availableCiphers)
        return [c for c in self._ciphers if c in available]

    @classmethod
    def fromOpenSSLCipherString(cls, cipherString: str) -> AcceptableCiphers:
        """Accept the ciphers an OpenSSL cipher string selects (``"HIGH:!aNULL"``).

        TLS 1.3 suites are not chosen this way: OpenSSL always offers its own.
        """
        return cls(_available_ciphers(cipherString))


def cipher_string(acceptable: Any) -> str:
    """The OpenSSL cipher string of what an ``IAcceptableCiphers`` selects.

    Raises:
        ValueError: It selects no TLS 1.2 (or older) cipher available here.
    """
    chosen = acceptable.selectCiphers(_available_ciphers())
    # TLS 1.3 suites (named TLS_...) are not set through a cipher string.
    names = [c.fullName for c in chosen if not c.fullName.startswith("TLS_")]
    if not names:
        raise ValueError("Supplied IAcceptableCiphers yielded no usable ciphers on this platform.")
    return ":".join(names)


class DiffieHellmanParameters:
    """Parameters for finite-field Diffie-Hellman key exchange (``DHE`` suites), from a file.

    Args:
        parameters: The PEM ``DH PARAMETERS`` file: a path, or anything with ``.path``
            (a :class:`~treadle.python.filepath.FilePath`).
    """

    def __init__(self, parameters: Any) -> None:
        self._dhFile = parameters

    @classmethod
    def fromFile(cls, filePath: Any) -> DiffieHellmanParameters:
        """Load the parameters from ``filePath`` (read when a context is made)."""
        return cls(filePath)

    def _path(self) -> str:
        return os.fsdecode(getattr(self._dhFile, "path", self._dhFile))


# -- names -----------------------------------------------------------------------------------------

#: Every spelling DistinguishedName accepts → the attribute it stands for.
_NAMES = {
    "CN": "commonName",
    "O": "organizationName",
    "OU": "organizationalUnitName",
    "L": "localityName",
    "ST": "stateOrProvinceName",
    "C": "countryName",
    **{name: name for name in _der.NAME_OIDS.values()},
}
_LABELS = {
    "commonName": "Common Name",
    "countryName": "Country Name",
    "emailAddress": "Email Address",
    "localityName": "Locality Name",
    "organizationName": "Organization Name",
    "organizationalUnitName": "Organizational Unit Name",
    "stateOrProvinceName": "State Or Province Name",
}


class DistinguishedName(dict[str, bytes]):
    """The name of a certificate's subject or issuer: ``commonName``, ``organizationName``...

    Values are bytes (text given is encoded, as UTF-8). Each field is an attribute under its
    long name and its abbreviation (``dn.CN is dn.commonName``), and a dict item under its
    long name; an absent field raises :class:`AttributeError`.

    Raises:
        AttributeError: Setting a field X.509 names do not have.
    """

    __slots__ = ()

    def __init__(self, **kw: str | bytes) -> None:
        super().__init__()
        for key, value in kw.items():
            setattr(self, key, value)

    def __getattr__(self, attr: str) -> bytes:
        try:
            return self[_NAMES[attr]]
        except KeyError:
            raise AttributeError(attr) from None

    def __setattr__(self, attr: str, value: str | bytes) -> None:
        if attr not in _NAMES:
            raise AttributeError(f"{attr} is not a valid OpenSSL X509 name field")
        self[_NAMES[attr]] = value if isinstance(value, bytes) else value.encode("utf-8")

    def __repr__(self) -> str:
        return f"<DN {dict.__repr__(self)[1:-1]}>"

    def inspect(self) -> str:
        """Return the fields one per line, labels right-aligned (as Twisted's)."""
        # Twisted aligns on the longest label of all fields, present or not.
        width = max(len(label) for label in _LABELS.values()) + 2
        return "\n".join(
            _LABELS[key].rjust(width) + ": " + self[key].decode("utf-8", "replace")
            for key in sorted(self)
        )


DN = DistinguishedName
