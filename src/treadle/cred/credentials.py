"""Credentials: what a client presents to log in (Twisted's ``twisted.cred.credentials``).

The interfaces are :mod:`zope.interface` ones. A credentials class declares the kinds it is
with ``@implementer``, and a :class:`~treadle.cred.portal.Portal` hands it to the checker
registered for an interface it provides (``interface.providedBy(credentials)``), so a class of
your own joins like this::

    from zope.interface import implementer

    @implementer(IUsernamePassword)
    class TokenCredentials:
        def __init__(self, username: bytes, password: bytes) -> None:
            self.username = username
            self.password = password

        def checkPassword(self, password: bytes) -> bool:
            return hmac.compare_digest(self.password, password)

Usernames and passwords are ``bytes``, as in Twisted. Beyond Twisted, the classes here compare
passwords in constant time and accept a ``str`` password to check against (encoded as UTF-8),
and :class:`DigestedCredentials` speaks RFC 7616 (``MD5`` and ``SHA-256``, ``qop=auth``).

:class:`DigestCredentialFactory` is the protocol-neutral half of HTTP Digest, as in Twisted:
it issues challenges and turns responses into :class:`DigestedCredentials`.
:class:`treadle.web.guard.DigestCredentialFactory` wraps one (as its ``digest``) for HTTP.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Awaitable
from urllib.parse import unquote_to_bytes

from zope.interface import Attribute, Interface, implementer

from treadle.cred._util import DIGEST_HASHES, as_bytes, hex_digest, parse_auth_params
from treadle.cred.error import LoginFailed
from treadle.internet.defer import Deferred

__all__ = [
    "Anonymous",
    "DigestCredentialFactory",
    "DigestedCredentials",
    "IAnonymous",
    "ICredentials",
    "IUsernameDigestHash",
    "IUsernameHashedPassword",
    "IUsernamePassword",
    "UsernamePassword",
]


class ICredentials(Interface):  # type: ignore[misc]  # zope.interface is untyped
    """Anything presented to a :class:`~treadle.cred.portal.Portal` to log in.

    Credentials classes declare one of the sub-interfaces below, or an interface of their
    own extending this one, with ``@implementer``: checkers are registered for those.
    """


class IUsernameDigestHash(ICredentials):
    """Credentials a checker verifies with the hash of ``username:realm:password``.

    For a checker that stores HTTP Digest's ``HA1`` (as an Apache ``htdigest`` file does)
    rather than the password.
    """

    def checkHash(digestHash: bytes) -> bool | Deferred[bool] | Awaitable[bool]:  # type: ignore[empty-body]
        """Tell whether the credentials were made from the given ``HA1``.

        Args:
            digestHash: ``H(username:realm:password)``, in hex.

        Returns:
            True or False, or a Deferred or awaitable of it.
        """


class IUsernameHashedPassword(ICredentials):
    """A username and a proof of the password that the checker verifies.

    The client sent something derived from the password (a Digest response, say), so the
    checker must know the password itself, or an equivalent, to ask :meth:`checkPassword`.
    """

    username = Attribute("The username, as bytes.")

    def checkPassword(password: bytes) -> bool | Deferred[bool] | Awaitable[bool]:  # type: ignore[empty-body]
        """Tell whether the proof was made from ``password``.

        Args:
            password: The user's real password, in plain text.

        Returns:
            True or False, or a Deferred or awaitable of it.
        """


class IUsernamePassword(ICredentials):
    """A username and the password itself, as HTTP Basic sends them.

    The checker may store passwords in any form (hashed, say) and compare ``password``
    against it, or ask :meth:`checkPassword` when it holds the plain text.
    """

    username = Attribute("The username, as bytes.")
    password = Attribute("The password, in plain text, as bytes.")

    def checkPassword(password: bytes) -> bool | Deferred[bool] | Awaitable[bool]:  # type: ignore[empty-body]
        """Tell whether ``password`` is the one presented.

        Args:
            password: The user's real password, in plain text.

        Returns:
            True or False, or a Deferred or awaitable of it.
        """


class IAnonymous(ICredentials):
    """No credentials at all, presented explicitly.

    HTTP authentication logs in with these when the request has no ``Authorization`` header;
    :class:`~treadle.cred.checkers.AllowAnonymousAccess` lets them in.
    """


@implementer(IUsernamePassword)
class UsernamePassword:
    """A username and password, as HTTP Basic sends them.

    Args:
        username: The username.
        password: The password, in plain text.

    Attributes:
        username: The username.
        password: The password.
    """

    def __init__(self, username: bytes, password: bytes) -> None:
        self.username = username
        self.password = password

    def checkPassword(self, password: bytes | str) -> bool:
        """Tell whether ``password`` is the one presented, comparing in constant time.

        Args:
            password: The real password; ``str`` is encoded as UTF-8.

        Returns:
            True when they are equal.
        """
        return hmac.compare_digest(as_bytes(self.password), as_bytes(password))


@implementer(IAnonymous)
class Anonymous:
    """The credentials of a client that presented none."""


@implementer(IUsernameHashedPassword, IUsernameDigestHash)
class DigestedCredentials:
    """The response to an HTTP Digest challenge (RFC 7616), checked by password or by ``HA1``.

    Made by :class:`DigestCredentialFactory`. Only ``qop=auth`` is computed,
    with ``MD5`` or ``SHA-256``; a response for any other algorithm never checks out.

    Args:
        username: The username the client sent.
        method: The request method (part of ``A2``).
        realm: The realm of the challenge (part of ``A1``).
        fields: The response's parameters by lowercase name (``response``, ``nonce``,
            ``cnonce``, ``nc``, ``qop``, ``uri``, ``algorithm``, ...).

    Attributes:
        username: The username.
        method: The request method.
        realm: The realm.
        fields: The response's parameters.
        stale: True when the nonce had expired: HTTP authentication then answers a correct
            response with a fresh challenge marked ``stale=true`` rather than letting it in.
    """

    def __init__(
        self, username: bytes, method: bytes, realm: bytes, fields: dict[str, bytes]
    ) -> None:
        self.username = username
        self.method = method
        self.realm = realm
        self.fields = fields
        self.stale = False

    @property
    def algorithm(self) -> bytes:
        """The response's algorithm, lowercased (``b"md5"`` when absent, per RFC 7616)."""
        return self.fields.get("algorithm", b"md5").lower()

    def _expected(self, ha1: bytes) -> bytes | None:
        """The response a client knowing ``ha1`` would send; None for an unknown algorithm."""
        name = DIGEST_HASHES.get(self.algorithm)
        if name is None:
            return None
        f = self.fields
        ha2 = hex_digest(name, self.method + b":" + f.get("uri", b""))
        data = b":".join(
            (ha1, f.get("nonce", b""), f.get("nc", b""), f.get("cnonce", b""), b"auth", ha2)
        )
        return hex_digest(name, data)

    def checkPassword(self, password: bytes | str) -> bool:
        """Tell whether the response was computed from ``password``.

        Args:
            password: The user's real password; ``str`` is encoded as UTF-8.

        Returns:
            True when the response matches (compared in constant time).
        """
        name = DIGEST_HASHES.get(self.algorithm)
        if name is None:
            return False
        a1 = b":".join((self.username, self.realm, as_bytes(password)))
        return self.checkHash(hex_digest(name, a1))

    def checkHash(self, digestHash: bytes | str) -> bool:
        """Tell whether the response was computed from ``HA1`` = ``digestHash``.

        Args:
            digestHash: ``H(username:realm:password)`` in hex, with the response's algorithm.

        Returns:
            True when the response matches (compared in constant time).
        """
        expected = self._expected(as_bytes(digestHash).lower())
        response = self.fields.get("response", b"").lower()
        return expected is not None and hmac.compare_digest(expected, response)


#: A nonce issued up to this many seconds in the future is still taken (clock jitter between
#: processes sharing a key); one further ahead was not made by us.
_FUTURE_SLACK = 60

#: The response parameters RFC 7616 §3.4 requires with ``qop=auth``.
_REQUIRED = ("nonce", "opaque", "uri", "response", "cnonce", "nc", "qop")


class DigestCredentialFactory:
    """Issues HTTP Digest challenges and decodes the responses (RFC 7616), as Twisted's.

    Nonces need no server state: each carries its issue time, random bytes and an HMAC of
    both under :attr:`privateKey`, so any process holding the key accepts them. A nonce
    older than :attr:`CHALLENGE_LIFETIME_SECS` still decodes, with ``stale`` set on the
    credentials, so that HTTP authentication can ask again with ``stale=true`` (RFC 7616
    §3.3) instead of refusing. Unlike Twisted's, the challenge is not tied to the client's
    address: clients behind changing addresses (mobile networks, proxy pools) keep working,
    and a nonce is worth no more to a thief than the response it came with.

    Args:
        algorithm: ``b"md5"`` or ``b"sha-256"`` (any case).
        authenticationRealm: The realm (part of ``HA1``: changing it invalidates stored HA1s).
        secret: Key for the nonces' HMAC. Random per factory by default; give every worker
            process the same one so that any of them accepts the others' nonces.

    Attributes:
        scheme: ``b"digest"``.
        algorithm: The algorithm, lowercased.
        authenticationRealm: The realm, as bytes.
        privateKey: The nonces' HMAC key.
        CHALLENGE_LIFETIME_SECS: How long a nonce is fresh (Twisted's 15 minutes).

    Raises:
        ValueError: Unsupported ``algorithm``.
    """

    scheme = b"digest"
    CHALLENGE_LIFETIME_SECS: float = 15 * 60

    def __init__(
        self,
        algorithm: bytes | str,
        authenticationRealm: bytes | str,
        *,
        secret: bytes | None = None,
    ) -> None:
        self.algorithm = as_bytes(algorithm).lower()
        if self.algorithm not in DIGEST_HASHES:
            raise ValueError(f"unsupported digest algorithm {algorithm!r}: use md5 or sha-256")
        self.authenticationRealm = as_bytes(authenticationRealm)
        self.privateKey = secret if secret is not None else secrets.token_bytes(32)
        self._opaque = self._mac(b"opaque\0" + self.authenticationRealm)

    def _getTime(self) -> float:
        """The clock for nonces (tests replace it)."""
        return time.time()

    def _mac(self, data: bytes) -> bytes:
        mac = hmac.new(self.privateKey, data + b"\0" + self.algorithm, hashlib.sha256)
        return mac.hexdigest()[:32].encode("ascii")

    def _generateNonce(self) -> bytes:
        stamp = b"%x.%s" % (int(self._getTime()), secrets.token_hex(8).encode("ascii"))
        return stamp + b"." + self._mac(stamp)

    def _nonce_age(self, nonce: bytes) -> float:
        """Seconds since ``nonce`` was issued with this factory's key.

        Raises:
            LoginFailed: Not one of our nonces.
        """
        stamp, _, mac = nonce.rpartition(b".")
        if not hmac.compare_digest(self._mac(stamp), mac):
            raise LoginFailed("Invalid response, invalid nonce")
        try:
            issued = int(stamp.split(b".")[0], 16)
        except ValueError:
            raise LoginFailed("Invalid response, invalid nonce") from None
        age = self._getTime() - issued
        if age < -_FUTURE_SLACK:
            raise LoginFailed("Invalid response, invalid nonce")
        return age

    def getChallenge(self, address: object = None) -> dict[str, bytes]:
        """Return the parameters of a challenge with a fresh nonce.

        Args:
            address: The client's address (Twisted's signature; not used, see above).

        Returns:
            ``realm``, ``qop`` (``auth``), ``algorithm`` (``md5`` as Twisted spells it,
            ``SHA-256`` as RFC 7616 and browsers do), ``nonce`` and ``opaque``.
        """
        return {
            "realm": self.authenticationRealm,
            "qop": b"auth",
            "algorithm": b"md5" if self.algorithm == b"md5" else b"SHA-256",
            "nonce": self._generateNonce(),
            "opaque": self._opaque,
        }

    def decode(self, response: bytes, method: bytes, host: object = None) -> DigestedCredentials:
        """Check a response's parameters and return credentials for a checker.

        Args:
            response: The parameters after the scheme (``username="...", nonce="..."``).
            method: The request method (part of what the response hashes).
            host: The client's address (Twisted's signature; not used).

        Returns:
            The credentials, with ``stale`` set when the nonce has expired.

        Raises:
            LoginFailed: Malformed, another algorithm, or a parameter missing or wrong
                (realm, qop, nonce, opaque).
        """
        f = parse_auth_params(response)
        if f.get("algorithm", b"md5").lower() != self.algorithm:
            raise LoginFailed("Invalid response, another algorithm")
        username = _username(f)
        for required in _REQUIRED:
            if required not in f:
                raise LoginFailed(f"Invalid response, no {required} given")
        if f.get("realm") != self.authenticationRealm:
            raise LoginFailed("Invalid response, wrong realm")
        if f["qop"] != b"auth":
            raise LoginFailed("Invalid response, unsupported qop")
        if not hmac.compare_digest(f["opaque"], self._opaque):
            raise LoginFailed("Invalid response, invalid opaque value")
        credentials = DigestedCredentials(username, method, self.authenticationRealm, f)
        credentials.stale = self._nonce_age(f["nonce"]) > self.CHALLENGE_LIFETIME_SECS
        return credentials


def _username(fields: dict[str, bytes]) -> bytes:
    """The response's username: ``username``, or RFC 8187's ``username*`` for non-ASCII ones.

    Raises:
        LoginFailed: None given, or a malformed ``username*``.
    """
    if "username*" in fields:
        # RFC 7616 §3.4.4 / RFC 8187: UTF-8''percent-encoded.
        charset, _, rest = fields["username*"].partition(b"'")
        if charset.lower() != b"utf-8" or b"'" not in rest or "username" in fields:
            raise LoginFailed("Invalid response, bad username*")
        username = unquote_to_bytes(rest.partition(b"'")[2])
    else:
        username = fields.get("username", b"")
    if not username:
        raise LoginFailed("Invalid response, no username given")
    return username
