"""Just enough DER and PEM to describe certificates and keys without a crypto library.

The standard library's :mod:`ssl` loads certificates and keys into a context but says
nothing about them. :mod:`treadle.internet.ssl` still offers Twisted's ``getSubject()``,
``serialNumber()``, ``digest()`` and ``keyHash()``, so this module reads the few X.509 and
key fields those need (RFC 5280 §4.1, RFC 8017 appendix A.1.2, RFC 5915, RFC 5958).

It decodes, never verifies: signatures and chains are OpenSSL's job, through the ``ssl``
module. Malformed input raises :class:`DERError` (a :class:`ValueError`), never
``IndexError`` or a hang: every length is checked against the bytes that hold it.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Final, NamedTuple

__all__ = [
    "DERError",
    "Element",
    "KeyInfo",
    "X509Fields",
    "der_to_pem",
    "key_info",
    "parse_certificate",
    "parse_request_subject",
    "pem_blocks",
]

# Universal tags (X.690 §8.1.2) and the context-specific ones X.509 uses.
INTEGER: Final = 0x02
BIT_STRING: Final = 0x03
OCTET_STRING: Final = 0x04
NULL: Final = 0x05
OID: Final = 0x06
SEQUENCE: Final = 0x30
SET: Final = 0x31
CONTEXT_0: Final = 0xA0
CONTEXT_1: Final = 0xA1

#: String types a Name attribute may use, and how their bytes decode.
_STRING_CODECS: Final = {
    0x0C: "utf-8",  # UTF8String
    0x13: "ascii",  # PrintableString
    0x14: "latin-1",  # TeletexString (T61): latin-1 is what every decoder does in practice
    0x16: "ascii",  # IA5String
    0x1C: "utf-32-be",  # UniversalString
    0x1E: "utf-16-be",  # BMPString
}

#: Name attributes Twisted's ``DistinguishedName`` knows (X.520; PKCS #9 for the e-mail).
NAME_OIDS: Final = {
    "2.5.4.3": "commonName",
    "2.5.4.10": "organizationName",
    "2.5.4.11": "organizationalUnitName",
    "2.5.4.7": "localityName",
    "2.5.4.8": "stateOrProvinceName",
    "2.5.4.6": "countryName",
    "1.2.840.113549.1.9.1": "emailAddress",
}

RSA_ENCRYPTION: Final = "1.2.840.113549.1.1.1"
EC_PUBLIC_KEY: Final = "1.2.840.10045.2.1"
_KEY_KINDS: Final = {
    RSA_ENCRYPTION: "RSA",
    EC_PUBLIC_KEY: "EC",
    "1.2.840.10040.4.1": "DSA",
    "1.3.101.110": "X25519",
    "1.3.101.111": "X448",
    "1.3.101.112": "Ed25519",
    "1.3.101.113": "Ed448",
}

#: The DER of the ``rsaEncryption`` AlgorithmIdentifier with its NULL parameters.
_RSA_ALGORITHM: Final = bytes.fromhex("300d06092a864886f70d0101010500")


class DERError(ValueError):
    """The bytes are not the DER structure expected."""


class Element(NamedTuple):
    """One DER element: its tag and where its contents and its whole encoding lie."""

    tag: int
    start: int  # first byte of the contents
    end: int  # one past the last byte of the contents
    header: int  # first byte of the tag (so data[header:end] is the whole element)


def read_element(data: bytes, offset: int, limit: int | None = None) -> Element:
    """Read the element starting at ``offset``; it must end by ``limit`` (default: the end)."""
    limit = len(data) if limit is None else limit
    if offset + 2 > limit:
        raise DERError("truncated DER element")
    tag = data[offset]
    if tag & 0x1F == 0x1F:
        raise DERError("multi-byte DER tags are not used by X.509")
    length = data[offset + 1]
    start = offset + 2
    if length & 0x80:
        count = length & 0x7F
        if count == 0 or count > 4 or start + count > limit:
            raise DERError("bad DER length")
        length = int.from_bytes(data[start : start + count], "big")
        start += count
    end = start + length
    if end > limit:
        raise DERError("DER element longer than its container")
    return Element(tag, start, end, offset)


def children(data: bytes, parent: Element) -> list[Element]:
    """The elements inside a constructed element, in order."""
    found = []
    offset = parent.start
    while offset < parent.end:
        element = read_element(data, offset, parent.end)
        found.append(element)
        offset = element.end
    return found


def expect(element: Element, tag: int, what: str) -> Element:
    """Return ``element`` if it has ``tag``; raise :class:`DERError` naming ``what`` if not."""
    if element.tag != tag:
        raise DERError(f"{what}: expected tag 0x{tag:02x}, found 0x{element.tag:02x}")
    return element


def decode_oid(body: bytes) -> str:
    """The dotted form of an OBJECT IDENTIFIER's contents."""
    if not body:
        raise DERError("empty OBJECT IDENTIFIER")
    arcs: list[int] = []
    value = 0
    for byte in body:
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            arcs.append(value)
            value = 0
    if body[-1] & 0x80:
        raise DERError("truncated OBJECT IDENTIFIER")
    first = arcs[0]
    head = [min(first // 40, 2), first - 40 * min(first // 40, 2)]
    return ".".join(str(arc) for arc in head + arcs[1:])


def encode(tag: int, body: bytes) -> bytes:
    """The DER encoding of one element."""
    size = len(body)
    if size < 0x80:
        return bytes((tag, size)) + body
    length = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes((tag, 0x80 | len(length))) + length + body


# -- names ----------------------------------------------------------------------------------------


def parse_name(data: bytes, name: Element) -> dict[str, bytes]:
    """The known attributes of an X.501 Name, as Twisted's DN keys them (values UTF-8)."""
    found: dict[str, bytes] = {}
    for rdn in children(data, expect(name, SEQUENCE, "Name")):
        for pair in children(data, expect(rdn, SET, "RelativeDistinguishedName")):
            parts = children(data, expect(pair, SEQUENCE, "AttributeTypeAndValue"))
            if len(parts) != 2:
                raise DERError("AttributeTypeAndValue must have a type and a value")
            oid, value = parts
            key = NAME_OIDS.get(decode_oid(data[expect(oid, OID, "type").start : oid.end]))
            codec = _STRING_CODECS.get(value.tag)
            if key is None or codec is None:
                continue  # an attribute Twisted's DN has no name for
            try:
                text = data[value.start : value.end].decode(codec)
            except UnicodeDecodeError as e:
                raise DERError(f"{key} is not valid {codec}") from e
            found[key] = text.encode("utf-8")
    return found


# -- certificates ---------------------------------------------------------------------------------


class X509Fields(NamedTuple):
    """What :mod:`treadle.internet.ssl` reads from a certificate."""

    serial: int
    issuer: dict[str, bytes]
    subject: dict[str, bytes]
    public_key: bytes  # the DER SubjectPublicKeyInfo


def parse_certificate(der: bytes) -> X509Fields:
    """Read serial number, issuer, subject and public key of a DER certificate.

    Raises:
        DERError: ``der`` is not a certificate.
    """
    outer = expect(read_element(der, 0), SEQUENCE, "Certificate")
    if outer.end != len(der):
        raise DERError("bytes after the certificate")
    parts = children(der, outer)
    if len(parts) != 3:
        raise DERError("a Certificate has three parts")
    fields = children(der, expect(parts[0], SEQUENCE, "TBSCertificate"))
    if fields and fields[0].tag == CONTEXT_0:
        fields = fields[1:]  # the explicit version
    if len(fields) < 6:
        raise DERError("TBSCertificate is too short")
    serial, _algorithm, issuer, _validity, subject, spki = fields[:6]
    number = der[expect(serial, INTEGER, "serialNumber").start : serial.end]
    return X509Fields(
        serial=int.from_bytes(number, "big", signed=True),
        issuer=parse_name(der, issuer),
        subject=parse_name(der, subject),
        public_key=der[expect(spki, SEQUENCE, "SubjectPublicKeyInfo").header : spki.end],
    )


def parse_request_subject(der: bytes) -> tuple[dict[str, bytes], bytes]:
    """The subject and SubjectPublicKeyInfo of a DER PKCS #10 certificate request."""
    outer = expect(read_element(der, 0), SEQUENCE, "CertificationRequest")
    parts = children(der, outer)
    if len(parts) != 3:
        raise DERError("a CertificationRequest has three parts")
    info = children(der, expect(parts[0], SEQUENCE, "CertificationRequestInfo"))
    if len(info) < 3:
        raise DERError("CertificationRequestInfo is too short")
    spki = expect(info[2], SEQUENCE, "SubjectPublicKeyInfo")
    return parse_name(der, info[1]), der[spki.header : spki.end]


# -- private keys ---------------------------------------------------------------------------------


class KeyInfo(NamedTuple):
    """What a private key's DER says: its PEM label, its kind and, if derivable, its public key."""

    label: str  # "PRIVATE KEY" (PKCS #8), "RSA PRIVATE KEY" (PKCS #1) or "EC PRIVATE KEY"
    kind: str  # "RSA", "EC", "DSA" or the algorithm's dotted OID
    public_key: bytes | None  # the DER SubjectPublicKeyInfo, when it can be read off


def key_info(der: bytes) -> KeyInfo:
    """Classify a DER private key and read its public key where the format carries it.

    RSA keys carry their modulus and exponent, and EC keys usually their public point; the
    public key of others (Ed25519 without the optional field, DSA) needs arithmetic, and is
    None here.

    Raises:
        DERError: ``der`` is none of PKCS #8, PKCS #1 (RSA) or SEC 1 (EC) private keys.
    """
    outer = expect(read_element(der, 0), SEQUENCE, "private key")
    if outer.end != len(der):
        raise DERError("bytes after the private key")
    parts = children(der, outer)
    if len(parts) < 3 or parts[0].tag != INTEGER:
        raise DERError("not a private key")
    version = der[parts[0].start : parts[0].end]
    if parts[1].tag == SEQUENCE and parts[2].tag == OCTET_STRING:
        return _pkcs8(der, parts)
    if version == b"\x00" and len(parts) >= 9 and all(p.tag == INTEGER for p in parts):
        return KeyInfo("RSA PRIVATE KEY", "RSA", _rsa_public(der, parts))
    if version == b"\x01" and parts[1].tag == OCTET_STRING:
        return KeyInfo("EC PRIVATE KEY", "EC", _ec_public(der, parts, None))
    raise DERError("not a PKCS #8, PKCS #1 or SEC 1 private key")


def _rsa_public(der: bytes, parts: list[Element]) -> bytes:
    modulus, exponent = parts[1], parts[2]
    key = encode(SEQUENCE, der[modulus.header : modulus.end] + der[exponent.header : exponent.end])
    return encode(SEQUENCE, _RSA_ALGORITHM + encode(BIT_STRING, b"\x00" + key))


def _ec_public(der: bytes, parts: list[Element], curve: bytes | None) -> bytes | None:
    """SubjectPublicKeyInfo of a SEC 1 key; ``curve`` is the OID element from PKCS #8, if any."""
    point = None
    for part in parts[2:]:
        inner = read_element(der, part.start, part.end)
        if part.tag == CONTEXT_0 and curve is None and inner.tag == OID:
            curve = der[inner.header : inner.end]
        elif part.tag == CONTEXT_1 and inner.tag == BIT_STRING:
            point = der[inner.header : inner.end]
    if point is None or curve is None:
        return None
    algorithm = encode(SEQUENCE, encode(OID, bytes.fromhex("2a8648ce3d0201")) + curve)
    return encode(SEQUENCE, algorithm + point)


def _pkcs8(der: bytes, parts: list[Element]) -> KeyInfo:
    algorithm = children(der, parts[1])
    if not algorithm or algorithm[0].tag != OID:
        raise DERError("PKCS #8 key without an algorithm")
    oid = decode_oid(der[algorithm[0].start : algorithm[0].end])
    kind = _KEY_KINDS.get(oid, oid)
    inner_bytes = der[parts[2].start : parts[2].end]
    public: bytes | None = None
    if kind in ("RSA", "EC"):
        inner = read_element(inner_bytes, 0)
        inner_parts = children(inner_bytes, expect(inner, SEQUENCE, "inner key"))
        if kind == "RSA" and len(inner_parts) >= 3:
            public = _rsa_public(inner_bytes, inner_parts)
        elif kind == "EC" and len(algorithm) > 1:
            curve = der[algorithm[1].header : algorithm[1].end]
            public = _ec_public(inner_bytes, inner_parts, curve)
    else:
        for part in parts[3:]:
            if part.tag == 0x81:  # RFC 5958 [1] publicKey, implicitly a BIT STRING
                params = der[parts[1].header : parts[1].end]
                point = encode(BIT_STRING, der[part.start : part.end])
                public = encode(SEQUENCE, params + point)
    return KeyInfo("PRIVATE KEY", kind, public)


# -- PEM ------------------------------------------------------------------------------------------

_PEM_BLOCK = re.compile(
    rb"-----BEGIN ([A-Z0-9 ]+)-----\r?\n(.*?)-----END \1-----", re.DOTALL | re.ASCII
)


def pem_blocks(data: bytes) -> list[tuple[str, bytes]]:
    """Every PEM block in ``data`` as (label, DER), in order; text around them is ignored.

    Raises:
        DERError: A block's base64 is broken, or it has headers (an encrypted key's
            ``Proc-Type``), which this reader does not interpret.
    """
    blocks = []
    for match in _PEM_BLOCK.finditer(data):
        label = match.group(1).decode("ascii")
        body = match.group(2)
        if b":" in body:
            raise DERError(f"the {label} block has headers (is it encrypted?)")
        try:
            blocks.append((label, base64.b64decode(b"".join(body.split()), validate=True)))
        except binascii.Error as e:
            raise DERError(f"the {label} block is not valid base64") from e
    return blocks


def der_to_pem(der: bytes, label: str) -> bytes:
    """Wrap DER bytes as a PEM block with ``label``, 64 base64 characters a line."""
    text = base64.b64encode(der)
    lines = b"\n".join(text[i : i + 64] for i in range(0, len(text), 64))
    marker = label.encode("ascii")
    return b"-----BEGIN %s-----\n%s\n-----END %s-----\n" % (marker, lines, marker)
