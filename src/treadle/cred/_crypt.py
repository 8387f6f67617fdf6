"""Password hashes of htpasswd files, checked for :class:`~treadle.cred.checkers.HtpasswdChecker`.

bcrypt through the ``bcrypt`` package when it is installed, ``{SHA}``, and the crypt formats
``$apr1$``/``$1$`` (MD5), ``$5$`` (SHA-256) and ``$6$`` (SHA-512) implemented from their
published descriptions, because the stdlib ``crypt`` module is deprecated and gone in Python
3.13. Verifying bcrypt and crypt hashes is slow on purpose: callers run it in a thread.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Any, Final

__all__ = ["bcrypt_module", "htpasswd_scheme", "verify_hash"]


def bcrypt_module() -> Any:
    """Return the ``bcrypt`` package, or None when it is not installed."""
    try:
        import bcrypt
    except ImportError:
        return None
    return bcrypt


def htpasswd_scheme(hashed: bytes) -> str | None:
    """Return ``"bcrypt"``, ``"sha1"`` or ``"crypt"`` for an htpasswd hash; None if unsupported."""
    if hashed[:4] in (b"$2y$", b"$2b$", b"$2a$"):
        return "bcrypt"
    if hashed.startswith(b"{SHA}"):
        return "sha1"
    if hashed.startswith((b"$apr1$", b"$1$", b"$5$", b"$6$")):
        return "crypt"
    return None


def verify_hash(hashed: bytes, password: bytes) -> bool:
    """Return True if ``password`` matches the htpasswd hash ``hashed``."""
    scheme = htpasswd_scheme(hashed)
    if scheme == "bcrypt":
        try:
            return bool(bcrypt_module().checkpw(password, hashed))
        except ValueError:  # a malformed hash
            return False
    if scheme == "sha1":
        digest = base64.b64encode(hashlib.sha1(password).digest())
        return hmac.compare_digest(digest, hashed[5:])
    if scheme == "crypt":
        computed = _crypt(password, hashed)
        return computed is not None and hmac.compare_digest(computed, hashed)
    return False


# -- crypt formats, from their published descriptions -----------------------------------------

_ITOA64: Final = b"./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def _b64_24(b2: int, b1: int, b0: int, n: int) -> bytes:
    """crypt's base-64: ``n`` characters of a 24-bit group, least significant first."""
    w = (b2 << 16) | (b1 << 8) | b0
    out = bytearray()
    for _ in range(n):
        out.append(_ITOA64[w & 0x3F])
        w >>= 6
    return bytes(out)


def _crypt(password: bytes, setting: bytes) -> bytes | None:
    """Hash ``password`` with the scheme and salt of ``setting``; None when malformed."""
    parts = setting.split(b"$")
    if len(parts) < 4:
        return None
    magic = b"$" + parts[1] + b"$"
    if magic in (b"$apr1$", b"$1$"):
        return _md5_crypt(password, parts[2], magic)
    rounds: int | None = None
    salt = parts[2]
    if salt.startswith(b"rounds="):
        try:
            rounds = int(salt[7:])
        except ValueError:
            return None
        if len(parts) < 5:
            return None
        salt = parts[3]
    return _sha_crypt(password, salt, rounds, "sha256" if magic == b"$5$" else "sha512")


def _md5_crypt(password: bytes, salt: bytes, magic: bytes) -> bytes:
    """MD5-crypt (Poul-Henning Kamp's ``$1$``; Apache's ``$apr1$`` differs only by its magic)."""
    salt = salt[:8]
    alt = hashlib.md5(password + salt + password).digest()
    ctx = hashlib.md5(password + magic + salt)
    for i in range(len(password), 0, -16):
        ctx.update(alt[: min(16, i)])
    i = len(password)
    while i:
        ctx.update(b"\0" if i & 1 else password[:1])
        i >>= 1
    final = ctx.digest()
    for i in range(1000):  # a fixed 1000 rounds, to slow guessing down (by 1990s standards)
        c = hashlib.md5(password if i & 1 else final)
        if i % 3:
            c.update(salt)
        if i % 7:
            c.update(password)
        c.update(final if i & 1 else password)
        final = c.digest()
    encoded = b"".join(
        _b64_24(final[a], final[b], final[c], 4)
        for a, b, c in ((0, 6, 12), (1, 7, 13), (2, 8, 14), (3, 9, 15), (4, 10, 5))
    )
    return magic + salt + b"$" + encoded + _b64_24(0, 0, final[11], 2)


def _sha_crypt(password: bytes, salt: bytes, rounds: int | None, name: str) -> bytes:
    """SHA-crypt (Ulrich Drepper's ``$5$``/``$6$`` specification)."""
    new = getattr(hashlib, name)
    size = 32 if name == "sha256" else 64
    salt = salt[:16]
    n_rounds = 5000 if rounds is None else min(max(rounds, 1000), 999_999_999)
    plen = len(password)
    b = new(password + salt + password).digest()
    a = new(password + salt)
    i = plen
    while i > size:
        a.update(b)
        i -= size
    a.update(b[:i])
    i = plen
    while i:
        a.update(b if i & 1 else password)
        i >>= 1
    digest = a.digest()
    p_bytes = (new(password * plen).digest() * (plen // size + 1))[:plen]
    s_bytes = (new(salt * (16 + digest[0])).digest() * (len(salt) // size + 1))[: len(salt)]
    c = digest
    for r in range(n_rounds):
        h = new(p_bytes if r & 1 else c)
        if r % 3:
            h.update(s_bytes)
        if r % 7:
            h.update(p_bytes)
        h.update(c if r & 1 else p_bytes)
        c = h.digest()
    if size == 32:
        groups = [(i, i + 10, i + 20) for i in range(10)]
        order = [g[-(k % 3) :] + g[: -(k % 3)] if k % 3 else g for k, g in enumerate(groups)]
        tail = _b64_24(0, c[31], c[30], 3)
    else:
        groups = [(i, i + 21, i + 42) for i in range(21)]
        order = [g[k % 3 :] + g[: k % 3] for k, g in enumerate(groups)]
        tail = _b64_24(0, 0, c[63], 2)
    encoded = b"".join(_b64_24(c[x], c[y], c[z], 4) for x, y, z in order) + tail
    magic = b"$5$" if size == 32 else b"$6$"
    prefix = magic if rounds is None else magic + b"rounds=%d$" % n_rounds
    return prefix + salt + b"$" + encoded
