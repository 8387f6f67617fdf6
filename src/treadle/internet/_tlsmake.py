"""Making keys, certificate requests and certificates: the part of TLS that needs cryptography.

The standard library's :mod:`ssl` uses keys and certificates but cannot make or sign them.
``KeyPair.generate``, ``KeyPair.selfSignedCert`` and the certificate-request methods of
:mod:`treadle.internet._tlscerts` therefore call the ``cryptography`` package, imported here
when one of them is called; nothing else in treadle imports it. Every function takes and
returns DER bytes, so the callers know nothing of ``cryptography``'s types.
"""

from __future__ import annotations

import datetime
import ipaddress
from typing import TYPE_CHECKING, Any

from treadle.internet import _der

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes
    from cryptography.x509 import Name

__all__ = ["generate", "public_key", "request", "request_is_signed", "sign"]


def _missing(what: str) -> ImportError:
    return ImportError(
        f"{what} needs the 'cryptography' package (pip install cryptography); "
        "the rest of treadle.internet.ssl uses only the standard library"
    )


def public_key(private_der: bytes, kind: str) -> bytes:
    """The DER SubjectPublicKeyInfo of a DER private key of any kind.

    Raises:
        ImportError: ``cryptography`` is missing.
    """
    try:
        from cryptography.hazmat.primitives import serialization
    except ImportError:
        raise _missing(f"the public key of a {kind} key") from None
    key = serialization.load_der_private_key(private_der, None)
    return key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def generate(kind: str, size: int) -> bytes:
    """A new ``"RSA"`` or ``"DSA"`` private key of ``size`` bits, DER (PKCS #8).

    Raises:
        ImportError: ``cryptography`` is missing.
        ValueError: Another ``kind``, or a size the algorithm refuses.
    """
    try:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import dsa, rsa
    except ImportError:
        raise _missing("KeyPair.generate") from None
    key: Any
    if kind == "RSA":
        key = rsa.generate_private_key(public_exponent=65537, key_size=size)
    elif kind == "DSA":
        key = dsa.generate_private_key(key_size=size)
    else:
        raise ValueError(f"cannot generate a {kind} key")
    der: bytes = key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return der


def _signing_key(private_der: bytes, what: str) -> CertificateIssuerPrivateKeyTypes:
    try:
        from cryptography.hazmat.primitives import serialization
    except ImportError:
        raise _missing(what) from None
    return serialization.load_der_private_key(private_der, None)  # type: ignore[return-value]


def request(private_der: bytes, subject: dict[str, bytes], digest: str) -> bytes:
    """A PKCS #10 request for ``subject`` (DN fields), signed by the key, DER.

    Raises:
        ImportError: ``cryptography`` is missing.
        ValueError: An unknown ``digest``.
    """
    key = _signing_key(private_der, "a certificate request")
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    builder = x509.CertificateSigningRequestBuilder().subject_name(_name(subject))
    return builder.sign(key, _hash(digest)).public_bytes(serialization.Encoding.DER)


def request_is_signed(request_der: bytes) -> bool:
    """True when a DER request's self-signature verifies.

    Raises:
        ImportError: ``cryptography`` is missing.
        ValueError: The bytes are not a request.
    """
    try:
        from cryptography import x509
    except ImportError:
        raise _missing("checking a certificate request") from None
    return x509.load_der_x509_csr(request_der).is_signature_valid


def sign(
    private_der: bytes,
    issuer: dict[str, bytes],
    request_der: bytes,
    serial: int,
    seconds: int,
    digest: str,
) -> bytes:
    """A certificate for a DER request, issued by ``issuer`` and signed by the key, DER.

    It is valid from now for ``seconds``. When the request's subject has a common name,
    the certificate also carries it as a subject alternative name (a DNS name or an IP
    address): TLS clients, the ``ssl`` module among them, match host names against those
    alone.

    Raises:
        ImportError: ``cryptography`` is missing.
    """
    key = _signing_key(private_der, "signing a certificate")
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.x509.oid import NameOID

    csr = x509.load_der_x509_csr(request_der)
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .issuer_name(_name(issuer))
        .subject_name(csr.subject)
        .public_key(csr.public_key())
        .serial_number(serial)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(seconds=seconds))
    )
    names = csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if names:
        builder = builder.add_extension(_alternative_name(str(names[0].value)), critical=False)
    return builder.sign(key, _hash(digest)).public_bytes(serialization.Encoding.DER)


def _name(fields: dict[str, bytes]) -> Name:
    from cryptography import x509
    from cryptography.x509.oid import ObjectIdentifier

    oid_of = {name: oid for oid, name in _der.NAME_OIDS.items()}
    return x509.Name(
        [
            x509.NameAttribute(ObjectIdentifier(oid_of[key]), value.decode("utf-8"))
            for key, value in fields.items()
        ]
    )


def _hash(name: str) -> Any:
    from cryptography.hazmat.primitives import hashes

    algorithms: dict[str, Any] = {
        "md5": hashes.MD5,
        "sha1": hashes.SHA1,
        "sha224": hashes.SHA224,
        "sha256": hashes.SHA256,
        "sha384": hashes.SHA384,
        "sha512": hashes.SHA512,
    }
    if name not in algorithms:
        raise ValueError(f"unknown digest algorithm {name!r}")
    return algorithms[name]()


def _alternative_name(common_name: str) -> Any:
    from cryptography import x509

    general: x509.GeneralName
    try:
        general = x509.IPAddress(ipaddress.ip_address(common_name))
    except ValueError:
        general = x509.DNSName(common_name)
    return x509.SubjectAlternativeName([general])
