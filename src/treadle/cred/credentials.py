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
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable

from zope.interface import Attribute, Interface, implementer

from treadle.cred._util import DIGEST_HASHES, as_bytes, hex_digest
from treadle.internet.defer import Deferred

__all__ = [
    "Anonymous",
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

    Made by :class:`treadle.web.guard.DigestCredentialFactory`. Only ``qop=auth`` is computed,
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
