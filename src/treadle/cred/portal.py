"""The portal: where credentials are checked and avatars handed out (``twisted.cred.portal``).

A :class:`Portal` joins checkers, which decide who a client is, to a realm, which decides
what that client gets (its *avatar*)::

    from zope.interface import implementer

    @implementer(IRealm)
    class Realm:
        def requestAvatar(self, avatarId, mind, *interfaces):
            if IResource in interfaces:
                return IResource, PrivateArea(avatarId), lambda: None
            raise NotImplementedError()

    portal = Portal(Realm(), [InMemoryUsernamePasswordDatabaseDontUse(alice=b"s3cret")])
    interface, avatar, logout = await portal.login(credentials, None, IResource)

Beyond Twisted, a checker's ``requestAvatarId`` and a realm's ``requestAvatar`` may also
return an awaitable (a coroutine, say): it runs as an asyncio task, which is cancelled when
the login's Deferred is.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol

from zope.interface import Interface, providedBy

from treadle.cred.error import UnhandledCredentials
from treadle.internet.defer import Deferred, fail, maybeDeferred

__all__ = ["IRealm", "Portal"]

#: What a login gives: ``(interface, avatar, logout)``.
_LoginResult = tuple[Any, Any, Callable[[], object]]


class IRealm(Interface):  # type: ignore[misc]  # zope.interface is untyped
    """Makes avatars: what a logged-in client reaches, by the id its checker gave."""

    def requestAvatar(avatarId: bytes | tuple[()], mind: object, *interfaces: Any) -> Any:
        """Return the avatar for ``avatarId`` that provides one of ``interfaces``.

        Args:
            avatarId: What the checker returned: a username (bytes) for the checkers of
                :mod:`treadle.cred.checkers`, or :data:`~treadle.cred.checkers.ANONYMOUS`.
            mind: Whatever the login passed: an object standing for the client, usually None
                (always None for HTTP authentication).
            *interfaces: The interfaces the caller can use, in its order of preference;
                HTTP authentication asks for ``IResource`` and expects a resource.

        Returns:
            ``(interface, avatar, logout)``: one of ``interfaces``, the avatar providing it,
            and a callable with no arguments to call when the client is done. Or a Deferred
            or awaitable of that tuple.

        Raises:
            LoginDenied: The realm refuses this avatar id.
        """


class _Realm(Protocol):
    """How :class:`Portal` types its realm (see :class:`IRealm`)."""

    def requestAvatar(self, avatarId: Any, mind: Any, *interfaces: Any) -> Any:
        """See :meth:`IRealm.requestAvatar`."""
        ...


class _Checker(Protocol):
    """How :class:`Portal` types its checkers (see ``ICredentialsChecker``)."""

    @property
    def credentialInterfaces(self) -> Sequence[Any]:
        """The credentials interfaces the checker takes."""
        ...

    def requestAvatarId(self, credentials: Any) -> Any:
        """See ``ICredentialsChecker.requestAvatarId``."""
        ...


class Portal:
    """Logs clients in: a checker validates the credentials, then the realm makes the avatar.

    Args:
        realm: The :class:`IRealm` provider that makes avatars.
        checkers: Checkers (``ICredentialsChecker`` providers) to register for their own
            ``credentialInterfaces``.

    Attributes:
        realm: The realm.
        checkers: The checker for each credentials interface, in registration order.
    """

    def __init__(self, realm: _Realm, checkers: Iterable[_Checker] = ()) -> None:
        self.realm = realm
        self.checkers: dict[Any, _Checker] = {}
        for checker in checkers:
            self.registerChecker(checker)

    def listCredentialsInterfaces(self) -> list[Any]:
        """Return the credentials interfaces some checker takes.

        Returns:
            The interfaces, in the order they were first registered.
        """
        return list(self.checkers)

    def registerChecker(self, checker: _Checker, *credentialInterfaces: Any) -> None:
        """Use ``checker`` for credentials providing any of ``credentialInterfaces``.

        Registering an interface again replaces its checker.

        Args:
            checker: The checker.
            *credentialInterfaces: The interfaces; by default the checker's own
                ``credentialInterfaces``.
        """
        for interface in credentialInterfaces or checker.credentialInterfaces:
            self.checkers[interface] = checker

    def login(self, credentials: object, mind: object, *interfaces: Any) -> Deferred[_LoginResult]:
        """Check ``credentials`` with their checker, then ask the realm for an avatar.

        The checker is the one registered for the first interface (in registration order)
        that ``credentials`` provide.

        Args:
            credentials: Credentials providing a sub-interface of ``ICredentials``.
            mind: Passed to the realm: an object standing for the client, or None.
            *interfaces: The avatar interfaces acceptable, passed to the realm.

        Returns:
            A Deferred firing with the realm's ``(interface, avatar, logout)``, or failing
            with :class:`~treadle.cred.error.UnhandledCredentials` (no checker takes these
            credentials), :class:`~treadle.cred.error.UnauthorizedLogin` (the checker found
            them wrong) or whatever else the checker or realm raised.
        """
        for interface, checker in self.checkers.items():
            if interface.providedBy(credentials):
                d = maybeDeferred(checker.requestAvatarId, credentials)
                return d.addCallback(self._requestAvatar, mind, interfaces)
        return fail(UnhandledCredentials(_unhandled(credentials)))

    def _requestAvatar(
        self, avatarId: Any, mind: object, interfaces: tuple[Any, ...]
    ) -> Deferred[_LoginResult]:
        """Ask the realm for the avatar of ``avatarId``, whatever form its answer takes."""
        return maybeDeferred(self.realm.requestAvatar, avatarId, mind, *interfaces)


def _unhandled(credentials: object) -> str:
    """The message of :class:`UnhandledCredentials` for ``credentials``."""
    provided = [f"{i.__module__}.{i.__name__}" for i in providedBy(credentials)]
    if provided:
        return "No checker for " + ", ".join(provided)
    kind = type(credentials)
    return f"No checker for {kind.__module__}.{kind.__qualname__}, which provides no interface"
