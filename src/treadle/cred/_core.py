"""Twisted's ``cred`` core for :mod:`treadle.web.guard`: login errors, credentials and the portal.

What ``twisted.cred.error``, ``twisted.cred.credentials`` and ``twisted.cred.portal`` hold;
the checkers are in :mod:`treadle.cred.checkers`. Everything public here is imported from
:mod:`treadle.web.guard` (see its docstring for how credential "interfaces" work).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import inspect
from abc import ABC
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, ClassVar, Final, Protocol

from treadle.internet.defer import CancelledError, Deferred, fail, maybeDeferred
from treadle.python.failure import Failure

__all__ = [
    "DIGEST_HASHES",
    "Anonymous",
    "DigestedCredentials",
    "IAnonymous",
    "ICredentials",
    "ICredentialsChecker",
    "IRealm",
    "IUsernameDigestHash",
    "IUsernameHashedPassword",
    "IUsernamePassword",
    "LoginDenied",
    "LoginFailed",
    "Portal",
    "Unauthorized",
    "UnauthorizedLogin",
    "UnhandledCredentials",
    "UsernamePassword",
    "as_bytes",
    "from_awaitable",
    "maybe_deferred",
]


# -- errors (twisted.cred.error) --------------------------------------------------------------


class Unauthorized(Exception):
    """The client may not have what it asked for."""


class LoginFailed(Exception):
    """A login attempt failed (bad credentials, or credentials nobody can check)."""


class UnauthorizedLogin(LoginFailed, Unauthorized):
    """The credentials were checked and are wrong."""


class UnhandledCredentials(LoginFailed):
    """No checker of the portal accepts this kind of credentials."""


class LoginDenied(LoginFailed):
    """The realm refused an avatar for otherwise valid credentials."""


# -- credentials (twisted.cred.credentials) ---------------------------------------------------


class ICredentials(ABC):  # noqa: B024 - a marker base, as zope's Interface
    """Anything presented to a :class:`Portal` to log in."""


class IAnonymous(ICredentials):
    """No credentials at all: the client sent no ``Authorization`` header."""


class IUsernamePassword(ICredentials):
    """A username and the plain-text password (``username``, ``password``, ``checkPassword``)."""


class IUsernameHashedPassword(ICredentials):
    """A username and a proof of the password that ``checkPassword(password)`` verifies."""


class IUsernameDigestHash(ICredentials):
    """Digest credentials that ``checkHash(ha1)`` verifies against a stored ``HA1``."""


class Anonymous(IAnonymous):
    """The credentials of a client that sent none."""


class UsernamePassword(IUsernamePassword):
    """A username and password, as HTTP Basic sends them.

    Args:
        username: The username (bytes, as sent).
        password: The password (bytes, as sent).
    """

    def __init__(self, username: bytes, password: bytes) -> None:
        self.username = username
        self.password = password

    def checkPassword(self, password: bytes | str) -> bool:
        """Return True if ``password`` is the one presented (constant-time comparison)."""
        return hmac.compare_digest(self.password, as_bytes(password))


#: Digest ``algorithm`` values (lowercase) and the :mod:`hashlib` names of their hashes.
DIGEST_HASHES: Final = {b"md5": "md5", b"sha-256": "sha256"}


def _h(algorithm: str, data: bytes) -> bytes:
    return hashlib.new(algorithm, data).hexdigest().encode("ascii")


class DigestedCredentials(IUsernameHashedPassword, IUsernameDigestHash):
    """The response to a Digest challenge (RFC 7616), verified from the password or ``HA1``.

    Args:
        username: The username the client sent.
        method: The request method (part of ``A2``).
        realm: The realm of the challenge.
        fields: The response's parameters by lowercase name (``response``, ``nonce``,
            ``cnonce``, ``nc``, ``qop``, ``uri``, ``algorithm``, ...).

    Attributes:
        stale: True when the nonce had expired: a correct response is then answered with a
            fresh challenge marked ``stale=true`` rather than let in.
    """

    def __init__(self, username: bytes, method: bytes, realm: bytes, fields: dict[str, bytes]):
        self.username = username
        self.method = method
        self.realm = realm
        self.fields = fields
        self.stale = False

    @property
    def algorithm(self) -> bytes:
        """The algorithm of the response, lowercased (``b"md5"`` when absent, per RFC 7616)."""
        return self.fields.get("algorithm", b"md5").lower()

    def _expected(self, ha1: bytes) -> bytes | None:
        name = DIGEST_HASHES.get(self.algorithm)
        if name is None:
            return None
        f = self.fields
        ha2 = _h(name, self.method + b":" + f.get("uri", b""))
        data = b":".join(
            (ha1, f.get("nonce", b""), f.get("nc", b""), f.get("cnonce", b""), b"auth", ha2)
        )
        return _h(name, data)

    def checkPassword(self, password: bytes | str) -> bool:
        """Return True if the response was computed from ``password``."""
        name = DIGEST_HASHES.get(self.algorithm)
        if name is None:
            return False
        a1 = b":".join((self.username, self.realm, as_bytes(password)))
        return self.checkHash(_h(name, a1))

    def checkHash(self, digestHash: bytes | str) -> bool:
        """Return True if the response was computed from ``HA1`` = ``digestHash`` (hex)."""
        expected = self._expected(as_bytes(digestHash).lower())
        response = self.fields.get("response", b"").lower()
        return expected is not None and hmac.compare_digest(expected, response)


def as_bytes(value: bytes | str) -> bytes:
    """Return ``value`` as bytes, encoding ``str`` as UTF-8."""
    return value.encode("utf-8") if isinstance(value, str) else value


def from_awaitable(awaitable: Awaitable[Any]) -> Deferred[Any]:
    """Run ``awaitable`` (a coroutine or future) and return a Deferred of its outcome.

    Cancelling the Deferred cancels the task quietly. (``Deferred.fromFuture`` logs an error
    when the task then ends cancelled; this stays until that is fixed there.)
    """
    task = asyncio.ensure_future(awaitable)

    def cancel(_: Deferred[Any]) -> None:
        task.cancel()

    d: Deferred[Any] = Deferred(cancel)

    def settle(done: asyncio.Future[Any]) -> None:
        if d.called:
            return
        if done.cancelled():
            d.errback(Failure(CancelledError()))
        elif (exc := done.exception()) is not None:
            d.errback(Failure(exc))
        else:
            d.callback(done.result())

    task.add_done_callback(settle)
    return d


def maybe_deferred(f: Callable[..., Any], *args: Any) -> Deferred[Any]:
    """``maybeDeferred`` whose awaitables are cancelled quietly (see :func:`from_awaitable`)."""
    try:
        result = f(*args)
    except Exception:
        return fail(Failure())
    if inspect.isawaitable(result) and not isinstance(result, Deferred):
        return from_awaitable(result)
    return maybeDeferred(lambda: result)


# -- the portal (twisted.cred.portal) ---------------------------------------------------------


class IRealm(Protocol):
    """Makes avatars: the realm of a :class:`Portal`."""

    def requestAvatar(self, avatarId: Any, mind: Any, *interfaces: Any) -> Any:
        """Return ``(interface, avatar, logout)`` (or a Deferred/awaitable of it).

        Args:
            avatarId: What the checker returned (the username, as bytes, for ours).
            mind: Whatever the login passed (None for HTTP).
            *interfaces: The kinds of avatar acceptable; :class:`HTTPAuthSessionWrapper`
                asks for ``IResource`` and expects a resource.
        """
        ...


class ICredentialsChecker(Protocol):
    """Checks credentials of the kinds in ``credentialInterfaces``."""

    credentialInterfaces: ClassVar[Sequence[type[ICredentials]]]

    def requestAvatarId(self, credentials: Any) -> Any:
        """Return the avatar id for valid ``credentials`` (or a Deferred/awaitable of it).

        Raises (or fails with):
            UnauthorizedLogin: The credentials are wrong.
        """
        ...


class Portal:
    """Logs clients in: a checker validates the credentials, the realm makes the avatar.

    Args:
        realm: The :class:`IRealm`.
        checkers: Checkers to register for their ``credentialInterfaces``.
    """

    def __init__(self, realm: IRealm, checkers: Iterable[ICredentialsChecker] = ()) -> None:
        self.realm = realm
        self.checkers: dict[type[ICredentials], ICredentialsChecker] = {}
        for checker in checkers:
            self.registerChecker(checker)

    def listCredentialsInterfaces(self) -> list[type[ICredentials]]:
        """Return the kinds of credentials some checker accepts."""
        return list(self.checkers)

    def registerChecker(
        self, checker: ICredentialsChecker, *credentialInterfaces: type[ICredentials]
    ) -> None:
        """Use ``checker`` for ``credentialInterfaces`` (default: its own list)."""
        for interface in credentialInterfaces or checker.credentialInterfaces:
            self.checkers[interface] = checker

    def login(
        self, credentials: ICredentials, mind: Any, *interfaces: Any
    ) -> Deferred[tuple[Any, Any, Callable[[], object]]]:
        """Check ``credentials`` and ask the realm for an avatar.

        Returns:
            A Deferred firing with ``(interface, avatar, logout)``, or failing with
            :class:`UnauthorizedLogin` (wrong credentials), :class:`UnhandledCredentials`
            (no checker for them) or whatever the checker or realm raised.
        """
        for interface, checker in self.checkers.items():
            if isinstance(credentials, interface):
                d = maybe_deferred(checker.requestAvatarId, credentials)
                return d.addCallback(self._avatar, mind, interfaces)
        return fail(UnhandledCredentials(f"No checker for {type(credentials).__name__}"))

    def _avatar(self, avatarId: Any, mind: Any, interfaces: tuple[Any, ...]) -> Deferred[Any]:
        return maybe_deferred(self.realm.requestAvatar, avatarId, mind, *interfaces)
