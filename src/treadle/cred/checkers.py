"""Twisted's ``cred`` checkers for :mod:`treadle.web.guard`: in memory, by callable, htpasswd.

What ``twisted.cred.checkers`` holds, plus :class:`CallableChecker` and
:class:`HtpasswdChecker`; the hashes of htpasswd files are verified by :mod:`treadle.cred._crypt`.
:mod:`treadle.web.guard` re-exports every checker.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, ClassVar

from treadle.cred import _crypt
from treadle.cred._core import (
    IAnonymous,
    ICredentials,
    IUsernameDigestHash,
    IUsernameHashedPassword,
    IUsernamePassword,
    UnauthorizedLogin,
    as_bytes,
    from_awaitable,
    maybe_deferred,
)
from treadle.internet.defer import Deferred, fail, succeed
from treadle.python.failure import Failure

__all__ = [
    "AllowAnonymousAccess",
    "CallableChecker",
    "HtpasswdChecker",
    "InMemoryChecker",
    "InMemoryUsernamePasswordDatabaseDontUse",
]

error_log = logging.getLogger("treadle.error")


# -- checkers (twisted.cred.checkers) ---------------------------------------------------------


class AllowAnonymousAccess:
    """Lets anonymous clients in; their avatar id is ``()`` as in Twisted."""

    credentialInterfaces: ClassVar[Sequence[type[ICredentials]]] = (IAnonymous,)

    def requestAvatarId(self, credentials: Any) -> Deferred[Any]:
        """Accept the anonymous ``credentials``."""
        return succeed(())


class InMemoryUsernamePasswordDatabaseDontUse:
    """Users and plain-text passwords in a dict (Twisted's name; ``InMemoryChecker`` too).

    Keeps passwords in memory in the clear, which is what Digest needs; for Basic prefer
    :class:`HtpasswdChecker` or :class:`CallableChecker` with hashed passwords.

    Args:
        **users: ``username=password``; ``str`` is encoded as UTF-8.

    Attributes:
        users: ``{username: password}`` as bytes.
    """

    credentialInterfaces: ClassVar[Sequence[type[ICredentials]]] = (
        IUsernamePassword,
        IUsernameHashedPassword,
    )

    def __init__(self, **users: bytes | str) -> None:
        self.users: dict[bytes, bytes] = {}
        for username, password in users.items():
            self.addUser(username, password)

    def addUser(self, username: bytes | str, password: bytes | str) -> None:
        """Add (or replace) a user."""
        self.users[as_bytes(username)] = as_bytes(password)

    def requestAvatarId(self, credentials: Any) -> Deferred[bytes]:
        """Return the username for a correct password; fail with UnauthorizedLogin else."""
        password = self.users.get(credentials.username)
        if password is None:
            return fail(UnauthorizedLogin("No such user"))
        d = maybe_deferred(credentials.checkPassword, password)
        return d.addCallback(_matched, credentials.username)


#: A friendlier name for :class:`InMemoryUsernamePasswordDatabaseDontUse`.
InMemoryChecker = InMemoryUsernamePasswordDatabaseDontUse


def _matched(ok: object, avatar_id: bytes) -> bytes:
    if ok:
        return avatar_id
    raise UnauthorizedLogin("Bad password")


class CallableChecker:
    """Checks passwords with a function of yours (say, against a database of hashes).

    Args:
        check: ``check(username, password) -> bool`` (or an awaitable of bool), called
            with ``str`` arguments decoded as UTF-8; undecodable ones are refused.
        ha1: Optional ``ha1(username, realm, algorithm) -> str | None`` (or awaitable),
            returning the hex ``H(username:realm:password)`` for ``algorithm`` (``"md5"`` or
            ``"sha-256"``) or None for an unknown user. With it, Digest credentials are
            accepted too.

    The avatar id is the username as bytes, as for the other checkers.
    """

    credentialInterfaces: ClassVar[Sequence[type[ICredentials]]] = (IUsernamePassword,)

    def __init__(
        self,
        check: Callable[[str, str], bool | Awaitable[bool]],
        *,
        ha1: Callable[[str, str, str], str | bytes | Awaitable[str | bytes | None] | None]
        | None = None,
    ) -> None:
        self.check = check
        self.ha1 = ha1
        if ha1 is not None:
            # Per instance: only a checker that can produce HA1 takes digest credentials.
            self.credentialInterfaces = (IUsernamePassword, IUsernameDigestHash)  # type: ignore[misc]

    def requestAvatarId(self, credentials: Any) -> Deferred[bytes]:
        """Return the username if the function accepts the credentials."""
        try:
            username = credentials.username.decode("utf-8")
            if self.ha1 is not None and isinstance(credentials, IUsernameDigestHash):
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
            return fail(UnauthorizedLogin("Credentials are not UTF-8"))
        except Exception:
            return fail(Failure())
        if inspect.isawaitable(result):
            d = from_awaitable(result)
            return d.addCallback(verify).addCallback(_matched, credentials.username)
        try:
            return succeed(_matched(verify(result), credentials.username))
        except UnauthorizedLogin:
            return fail(Failure())


class HtpasswdChecker:
    """Checks passwords against an Apache ``htpasswd`` file (see the module docstring).

    The file is read on first use and again whenever its modification time or size
    changes, so users added with ``htpasswd`` count at once.

    Args:
        path: The file: lines of ``username:hash``; blank lines and ``#`` comments skipped.
    """

    credentialInterfaces: ClassVar[Sequence[type[ICredentials]]] = (IUsernamePassword,)

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        self._stamp: tuple[float, int] | None = None
        self._users: dict[bytes, bytes] = {}
        self._warned: set[bytes] = set()

    def _entries(self) -> dict[bytes, bytes]:
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
        """Return the username for a correct password; fail with UnauthorizedLogin else."""
        try:
            hashed = self._entries().get(credentials.username)
        except OSError as e:
            error_log.error("htpasswd file %s cannot be read: %s", self.path, e)
            return fail(UnauthorizedLogin("Password file unreadable"))
        if hashed is None:
            return fail(UnauthorizedLogin("No such user"))
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
            return fail(UnauthorizedLogin("Unsupported password hash"))
        password: bytes = credentials.password
        if scheme == "sha1":  # cheap: no thread
            return succeed(_matched(_crypt.verify_hash(hashed, password), credentials.username))
        # bcrypt and crypt take milliseconds on purpose: keep them off the event loop.
        future = asyncio.get_running_loop().run_in_executor(
            None, _crypt.verify_hash, hashed, password
        )
        return from_awaitable(future).addCallback(_matched, credentials.username)
