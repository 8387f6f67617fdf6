"""Credentials checkers: who a client is (Twisted's ``twisted.cred.checkers``, and more).

A checker provides :class:`ICredentialsChecker`: it names the credentials interfaces it takes
in ``credentialInterfaces`` and turns valid credentials into an *avatar id* (for the checkers
here, the username as bytes) for the realm. A checker of your own declares the interface with
``@implementer(ICredentialsChecker)``; a :class:`~treadle.cred.portal.Portal` only needs the
attribute and the method.

Twisted's checkers: :class:`AllowAnonymousAccess`, :class:`InMemoryUsernamePasswordDatabaseDontUse`
and :class:`FilePasswordDB`. treadle's own: :class:`CallableChecker` (a function of yours
decides, synchronously or not) and :class:`HtpasswdChecker` (Apache ``htpasswd`` files, with
bcrypt, ``{SHA}``, ``$apr1$``, ``$1$``, ``$5$`` and ``$6$`` hashes, the slow ones checked in a
worker thread). Only :class:`InMemoryUsernamePasswordDatabaseDontUse`, a plain-text
:class:`FilePasswordDB` and a :class:`CallableChecker` given ``ha1=`` can check HTTP Digest
credentials, which need the password (or ``HA1``) on the server.

Every refusal is a bare :class:`~treadle.cred.error.UnauthorizedLogin`, as Twisted's: an
unknown user and a wrong password fail alike, so a program that shows the error's message to
its client tells an attacker nothing about which names exist. (Why a login could not be
checked at all, an unreadable file or an unsupported hash, is logged.)
"""

from __future__ import annotations

import asyncio
import hmac
import inspect
import logging
import os
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Final

from zope.interface import Attribute, Interface, implementer

from treadle.cred import _crypt
from treadle.cred._util import as_bytes
from treadle.cred.credentials import (
    IAnonymous,
    IUsernameDigestHash,
    IUsernameHashedPassword,
    IUsernamePassword,
)
from treadle.cred.error import UnauthorizedLogin
from treadle.internet.defer import Deferred, ensureDeferred, fail, maybeDeferred, succeed
from treadle.python.failure import Failure

__all__ = [
    "ANONYMOUS",
    "AllowAnonymousAccess",
    "CallableChecker",
    "FilePasswordDB",
    "HtpasswdChecker",
    "ICredentialsChecker",
    "InMemoryChecker",
    "InMemoryUsernamePasswordDatabaseDontUse",
    "OnDiskUsernamePasswordDatabase",
]

error_log = logging.getLogger("treadle.error")

#: The avatar id of an anonymous client: an empty tuple, which no username can be mistaken
#: for (an empty string could come from a mistyped password file, None from a forgotten
#: ``return``).
ANONYMOUS: Final[tuple[()]] = ()


class ICredentialsChecker(Interface):  # type: ignore[misc]  # zope.interface is untyped
    """Checks credentials of the kinds it names, and gives the avatar id of valid ones."""

    credentialInterfaces = Attribute(
        "The sub-interfaces of ICredentials whose providers this checker can check."
    )

    def requestAvatarId(credentials: Any) -> Any:
        """Check ``credentials`` and return the id of their avatar.

        Args:
            credentials: Credentials providing one of ``credentialInterfaces``.

        Returns:
            The avatar id (bytes, or :data:`ANONYMOUS`), or a Deferred or awaitable of it.

        Raises:
            UnauthorizedLogin: The credentials are wrong (raised, or as the Deferred's
                failure).
        """


def _matched(ok: object, avatarId: bytes) -> bytes:
    """Return ``avatarId`` if ``ok`` is true; raise UnauthorizedLogin otherwise."""
    if ok:
        return avatarId
    raise UnauthorizedLogin()


@implementer(ICredentialsChecker)
class AllowAnonymousAccess:
    """Lets anonymous clients in, with the avatar id :data:`ANONYMOUS`.

    Attributes:
        credentialInterfaces: ``(IAnonymous,)``.
    """

    credentialInterfaces: Sequence[Any] = (IAnonymous,)

    def requestAvatarId(self, credentials: object) -> Deferred[tuple[()]]:
        """Accept anonymous ``credentials``.

        Args:
            credentials: The :class:`~treadle.cred.credentials.IAnonymous` provider.

        Returns:
            A Deferred fired with :data:`ANONYMOUS`.
        """
        return succeed(ANONYMOUS)


@implementer(ICredentialsChecker)
class InMemoryUsernamePasswordDatabaseDontUse:
    """Usernames and plain-text passwords in a dict (also known as :data:`InMemoryChecker`).

    Keeps the passwords in memory in the clear, which is what HTTP Digest needs; for Basic,
    prefer :class:`HtpasswdChecker` or a :class:`CallableChecker` over hashed passwords.
    Beyond Twisted, usernames and passwords may be ``str`` (encoded as UTF-8).

    Args:
        **users: ``username=password``.

    Attributes:
        credentialInterfaces: ``(IUsernamePassword, IUsernameHashedPassword)``.
        users: ``{username: password}``, as bytes.
    """

    credentialInterfaces: Sequence[Any] = (IUsernamePassword, IUsernameHashedPassword)

    def __init__(self, **users: bytes | str) -> None:
        self.users: dict[bytes, bytes] = {}
        for username, password in users.items():
            self.addUser(username, password)

    def addUser(self, username: bytes | str, password: bytes | str) -> None:
        """Add a user, or set the password of one.

        Args:
            username: The username; ``str`` is encoded as UTF-8.
            password: The password; ``str`` is encoded as UTF-8.
        """
        self.users[as_bytes(username)] = as_bytes(password)

    def requestAvatarId(self, credentials: Any) -> Deferred[bytes]:
        """Check the password of ``credentials`` against the stored one.

        Args:
            credentials: An :class:`~treadle.cred.credentials.IUsernamePassword` or
                :class:`~treadle.cred.credentials.IUsernameHashedPassword` provider.

        Returns:
            A Deferred firing with the username, or failing with
            :class:`~treadle.cred.error.UnauthorizedLogin`.
        """
        password = self.users.get(credentials.username)
        if password is None:
            return fail(UnauthorizedLogin())
        d = maybeDeferred(credentials.checkPassword, password)
        return d.addCallback(_matched, credentials.username)


#: A shorter name for :class:`InMemoryUsernamePasswordDatabaseDontUse` (treadle's).
InMemoryChecker = InMemoryUsernamePasswordDatabaseDontUse


@implementer(ICredentialsChecker)
class FilePasswordDB:
    """Usernames and passwords in a text file of delimited fields, one user a line.

    Lines with too few fields are skipped. Passwords stored in plain text can check
    :class:`~treadle.cred.credentials.IUsernamePassword` and
    :class:`~treadle.cred.credentials.IUsernameHashedPassword` credentials; stored hashed
    (give ``hash``), only :class:`~treadle.cred.credentials.IUsernamePassword`. For Apache
    ``htpasswd`` files, :class:`HtpasswdChecker` knows the hashes.

    Args:
        filename: The file.
        delim: What separates the fields of a line.
        usernameField: The index of the username among a line's fields.
        passwordField: The index of the password among a line's fields.
        caseSensitive: When false, usernames are compared (and given as avatar ids) in
            lowercase.
        hash: ``hash(username, password, stored)``, returning the form of the presented
            ``password`` to compare with the ``stored`` one; None when passwords are stored
            in plain text.
        cache: Keep the file's contents in memory, reading it again only when its
            modification time or size changes; otherwise every check reads the file.

    Attributes:
        credentialInterfaces: The credentials interfaces checked (see above).
    """

    def __init__(
        self,
        filename: str | os.PathLike[str],
        delim: bytes = b":",
        usernameField: int = 0,
        passwordField: int = 1,
        caseSensitive: bool = True,
        hash: Callable[[bytes, bytes, bytes], bytes] | None = None,
        cache: bool = False,
    ) -> None:
        self.filename = os.fspath(filename)
        self.delim = delim
        self.ufield = usernameField
        self.pfield = passwordField
        self.caseSensitive = caseSensitive
        self.hash = hash
        self.cache = cache
        self._credCache: dict[bytes, bytes] | None = None
        self._stamp: tuple[int, int] | None = None
        self.credentialInterfaces: Sequence[Any] = (
            (IUsernamePassword, IUsernameHashedPassword) if hash is None else (IUsernamePassword,)
        )

    def _loadCredentials(self) -> list[tuple[bytes, bytes]]:
        """Return ``(username, password)`` for each usable line of the file, in order.

        Raises:
            UnauthorizedLogin: The file cannot be read (the error is logged).
        """
        try:
            with open(self.filename, "rb") as f:
                lines = f.read().splitlines()
                stamp = os.fstat(f.fileno())
        except OSError as e:
            error_log.error("password file %s cannot be read: %s", self.filename, e)
            raise UnauthorizedLogin() from None
        self._stamp = (stamp.st_mtime_ns, stamp.st_size)
        users = []
        for line in lines:
            parts = line.rstrip().split(self.delim)
            if self.ufield < len(parts) and self.pfield < len(parts):
                username = parts[self.ufield]
                if not self.caseSensitive:
                    username = username.lower()
                users.append((username, parts[self.pfield]))
        return users

    def _changed(self) -> bool:
        """Tell whether the file may differ from the cached copy."""
        try:
            st = os.stat(self.filename)
        except OSError:
            return True  # let _loadCredentials report it
        return (st.st_mtime_ns, st.st_size) != self._stamp

    def getUser(self, username: bytes) -> tuple[bytes, bytes]:
        """Look a user up.

        Args:
            username: The username.

        Returns:
            ``(username, password)`` as in the file (the username lowercased when not
            ``caseSensitive``); the first line for the user counts.

        Raises:
            KeyError: No such user.
            UnauthorizedLogin: The file cannot be read.
        """
        if not self.caseSensitive:
            username = username.lower()
        if self.cache:
            users = self._credCache
            if users is None or self._changed():
                users = self._credCache = dict(reversed(self._loadCredentials()))
            return username, users[username]
        for user, password in self._loadCredentials():
            if user == username:
                return user, password
        raise KeyError(username)

    def requestAvatarId(self, credentials: Any) -> Deferred[bytes]:
        """Check ``credentials`` against the file.

        Args:
            credentials: A provider of one of ``credentialInterfaces``.

        Returns:
            A Deferred firing with the username as in the file, or failing with
            :class:`~treadle.cred.error.UnauthorizedLogin`.
        """
        try:
            username, stored = self.getUser(credentials.username)
        except KeyError:
            return fail(UnauthorizedLogin())
        except UnauthorizedLogin:
            return fail(Failure())
        if self.hash is None:
            d = maybeDeferred(credentials.checkPassword, stored)
            return d.addCallback(_matched, username)
        plain = IUsernamePassword(credentials, None)
        if plain is None:
            return fail(UnauthorizedLogin())
        computed = self.hash(plain.username, plain.password, stored)
        ok = isinstance(computed, bytes) and hmac.compare_digest(computed, stored)
        return succeed(username) if ok else fail(UnauthorizedLogin())


#: Twisted's older name for :class:`FilePasswordDB`.
OnDiskUsernamePasswordDatabase = FilePasswordDB


@implementer(ICredentialsChecker)
class CallableChecker:
    """Checks passwords with a function of yours (against a database of hashes, say).

    Args:
        check: ``check(username, password) -> bool``, or an awaitable or Deferred of bool,
            called with ``str`` arguments decoded as UTF-8; undecodable credentials are
            refused without calling it.
        ha1: Optional ``ha1(username, realm, algorithm)``, returning (or an awaitable of)
            the hex ``H(username:realm:password)`` for ``algorithm`` (``"md5"`` or
            ``"sha-256"``), or None for an unknown user. With it, HTTP Digest credentials
            (:class:`~treadle.cred.credentials.IUsernameDigestHash`) are checked too.

    Attributes:
        credentialInterfaces: ``(IUsernamePassword,)``, plus ``IUsernameDigestHash`` when
            ``ha1`` is given.

    The avatar id is the username as bytes, as for the other checkers.
    """

    def __init__(
        self,
        check: Callable[[str, str], bool | Awaitable[bool]],
        *,
        ha1: Callable[[str, str, str], str | bytes | Awaitable[str | bytes | None] | None]
        | None = None,
    ) -> None:
        self.check = check
        self.ha1 = ha1
        self.credentialInterfaces: Sequence[Any] = (
            (IUsernamePassword,) if ha1 is None else (IUsernamePassword, IUsernameDigestHash)
        )

    def requestAvatarId(self, credentials: Any) -> Deferred[bytes]:
        """Ask the function (or ``ha1``, for Digest credentials) about ``credentials``.

        Args:
            credentials: An :class:`~treadle.cred.credentials.IUsernamePassword` provider,
                or an :class:`~treadle.cred.credentials.IUsernameDigestHash` one (such as
                :class:`~treadle.cred.credentials.DigestedCredentials`) when ``ha1`` is
                given.

        Returns:
            A Deferred firing with the username, or failing with
            :class:`~treadle.cred.error.UnauthorizedLogin` (or what the function raised).
        """
        try:
            username = credentials.username.decode("utf-8")
            if self.ha1 is not None and IUsernameDigestHash.providedBy(credentials):
                digested: Any = credentials
                realm = digested.realm.decode("utf-8")
                algorithm = digested.algorithm.decode("ascii")
                result: Any = self.ha1(username, realm, algorithm)
                verify: Callable[[Any], object] = lambda h: (  # noqa: E731
                    h is not None and digested.checkHash(h)
                )
            else:
                result = self.check(username, credentials.password.decode("utf-8"))
                verify = bool
        except UnicodeDecodeError:
            return fail(UnauthorizedLogin())
        except Exception:
            return fail(Failure())
        if inspect.isawaitable(result):
            d = ensureDeferred(result)
            return d.addCallback(verify).addCallback(_matched, credentials.username)
        try:
            return succeed(_matched(verify(result), credentials.username))
        except UnauthorizedLogin:
            return fail(Failure())


@implementer(ICredentialsChecker)
class HtpasswdChecker:
    """Checks passwords against an Apache ``htpasswd`` file.

    The file is read on first use and again whenever its modification time or size
    changes, so users added with ``htpasswd`` count at once. Entries hashed with bcrypt
    (``$2y$``, ``$2b$``, ``$2a$``; needs the ``bcrypt`` package), ``{SHA}``, ``$apr1$``,
    ``$1$``, ``$5$`` or ``$6$`` are checked; others (DES ``crypt``, plain text) are refused
    and logged once per user. bcrypt and crypt hashes are checked in a worker thread, to keep
    the event loop serving.

    Args:
        path: The file: lines of ``username:hash``; blank lines and ``#`` comments skipped.

    Attributes:
        credentialInterfaces: ``(IUsernamePassword,)``.
        path: The file's path.
    """

    credentialInterfaces: Sequence[Any] = (IUsernamePassword,)

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        self._stamp: tuple[float, int] | None = None
        self._users: dict[bytes, bytes] = {}
        self._warned: set[bytes] = set()

    def _entries(self) -> dict[bytes, bytes]:
        """The file's ``{username: hash}``, read again if the file changed."""
        st = os.stat(self.path)
        stamp = (st.st_mtime, st.st_size)
        if stamp != self._stamp:
            users: dict[bytes, bytes] = {}
            with open(self.path, "rb") as f:
                for line in f:
                    line = line.strip()
                    if not line or line.startswith(b"#") or b":" not in line:
                        continue
                    name, _, hashed = line.partition(b":")
                    users[name] = hashed.split(b":", 1)[0]  # later fields are comments
            self._users = users
            self._stamp = stamp
        return self._users

    def requestAvatarId(self, credentials: Any) -> Deferred[bytes]:
        """Check the password of ``credentials`` against the file's hash for the user.

        Args:
            credentials: An :class:`~treadle.cred.credentials.IUsernamePassword` provider.

        Returns:
            A Deferred firing with the username, or failing with
            :class:`~treadle.cred.error.UnauthorizedLogin` (also when the file cannot be
            read or the user's hash is of an unsupported kind, both logged).
        """
        try:
            hashed = self._entries().get(credentials.username)
        except OSError as e:
            error_log.error("htpasswd file %s cannot be read: %s", self.path, e)
            return fail(UnauthorizedLogin())
        if hashed is None:
            return fail(UnauthorizedLogin())
        scheme = _crypt.htpasswd_scheme(hashed)
        if scheme is None or (scheme == "bcrypt" and _crypt.bcrypt_module() is None):
            if credentials.username not in self._warned:
                self._warned.add(credentials.username)
                why = (
                    "is bcrypt, but the bcrypt package is not installed (pip install bcrypt)"
                    if scheme == "bcrypt"
                    else "uses an unsupported scheme (use bcrypt, $apr1$, $5$, $6$ or {SHA})"
                )
                error_log.warning(
                    "htpasswd %s: the entry for %r %s; refusing it",
                    self.path,
                    credentials.username.decode("utf-8", "replace"),
                    why,
                )
            return fail(UnauthorizedLogin())
        password: bytes = credentials.password
        if scheme == "sha1":  # cheap: no thread
            return succeed(_matched(_crypt.verify_hash(hashed, password), credentials.username))
        # bcrypt and crypt take milliseconds on purpose: keep them off the event loop.
        future = asyncio.get_running_loop().run_in_executor(
            None, _crypt.verify_hash, hashed, password
        )
        return Deferred.fromFuture(future).addCallback(_matched, credentials.username)
