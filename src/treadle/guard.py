"""HTTP authentication for resource trees: Twisted's ``guard`` with the ``cred`` pieces it needs.

Wrap a resource tree so that a client must log in with HTTP ``Basic`` or ``Digest``
authentication before reaching it::

    class Realm:
        def requestAvatar(self, avatarId, mind, *interfaces):
            return IResource, PrivateArea(avatarId), lambda: None

    portal = Portal(Realm(), [InMemoryChecker(alice="s3cret")])
    wrapper = HTTPAuthSessionWrapper(
        portal,
        [DigestCredentialFactory(b"sha-256", b"private"), BasicCredentialFactory(b"private")],
    )
    root.putChild(b"private", wrapper)

As in Twisted, the wrapper decodes the ``Authorization`` header with the credential factory
for its scheme, asks the :class:`Portal` to log in, and renders what the realm returns (the
*avatar*, a resource) for the rest of the path. No ``Authorization`` header means an anonymous
login, which fails unless the portal has a checker for :class:`IAnonymous` (such as
:class:`AllowAnonymousAccess`). A failed login, an unknown scheme or a malformed header is
answered ``401 Unauthorized`` with one ``WWW-Authenticate`` challenge per factory (Twisted
answers malformed headers with 401 too, not 400); an unexpected error in a checker or realm is
a 500 and is logged.

What Twisted keeps in ``twisted.cred`` (portal, credentials, checkers, errors) lives here:
Twisted code imports them from ``treadle.guard``. Credential "interfaces" are abstract classes
rather than zope interfaces: a portal picks the checker whose interface the credentials are an
instance of, and third-party credentials join with ``IUsernamePassword.register(MyCreds)``.
The realm, checker and factory roles are :class:`typing.Protocol` s: any object with the
methods will do. Usernames and passwords in credentials are ``bytes``, as in Twisted.

**Basic** (RFC 7617) sends the password itself: use it over TLS only.

**Digest** (RFC 7616) with ``MD5`` or ``SHA-256`` and ``qop=auth``. Nonces need no server
state: each carries its issue time, random bytes and an HMAC of both under the factory's
secret key, so any process holding the key (pass ``secret=`` to share it between workers) can
verify it. A nonce older than :attr:`DigestCredentialFactory.CHALLENGE_LIFETIME_SECS` with an
otherwise correct response gets a new challenge with ``stale=true``, so clients retry without
asking the user again. Nonce counts (``nc``) are not tracked: a captured request can be
replayed until its nonce expires (RFC 7616 §5.12 leaves this to the server). The ``uri`` of
the response must be the request's target. Digest needs the password or ``HA1``
(``H(username:realm:password)``) on the server, so only :class:`InMemoryChecker` and a
:class:`CallableChecker` given ``ha1=`` accept digest credentials; htpasswd hashes cannot.

**htpasswd** files (:class:`HtpasswdChecker`): bcrypt (``$2y$``, ``$2b$``, ``$2a$``; needs the
``bcrypt`` package, else such entries are refused and logged), ``{SHA}`` (unsalted SHA-1, only
for old files), Apache's ``$apr1$`` (``htpasswd``'s default) and the crypt formats ``$1$``
(MD5), ``$5$`` (SHA-256) and ``$6$`` (SHA-512), implemented here from their published
algorithms because the stdlib ``crypt`` module is deprecated and gone in Python 3.13. DES
``crypt`` and plain-text entries are refused. Slow hashes are checked in a worker thread so
the event loop keeps serving.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import inspect
import logging
import os
import re
import secrets
import time
from abc import ABC
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Final, Protocol
from urllib.parse import unquote_to_bytes

from treadle.defer import CancelledError, Deferred, fail, maybeDeferred, succeed
from treadle.failure import Failure
from treadle.resource import (
    ErrorPage,
    IResource,
    UnsupportedMethod,
    error_page,
    getChildForRequest,
)

if TYPE_CHECKING:
    from treadle.server import Request

__all__ = [
    "AllowAnonymousAccess",
    "Anonymous",
    "BasicCredentialFactory",
    "CallableChecker",
    "DigestCredentialFactory",
    "DigestedCredentials",
    "HTTPAuthSessionWrapper",
    "HtpasswdChecker",
    "IAnonymous",
    "ICredentialFactory",
    "ICredentials",
    "ICredentialsChecker",
    "IRealm",
    "IUsernameDigestHash",
    "IUsernameHashedPassword",
    "IUsernamePassword",
    "InMemoryChecker",
    "InMemoryUsernamePasswordDatabaseDontUse",
    "LoginDenied",
    "LoginFailed",
    "Portal",
    "Unauthorized",
    "UnauthorizedLogin",
    "UnauthorizedResource",
    "UnhandledCredentials",
    "UsernamePassword",
]

error_log = logging.getLogger("treadle.error")

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


class _WrongAlgorithm(LoginFailed):
    """A Digest response for another factory's algorithm: the next factory may take it."""


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
        return hmac.compare_digest(self.password, _as_bytes(password))


_HASHES: Final = {b"md5": "md5", b"sha-256": "sha256"}


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
        name = _HASHES.get(self.algorithm)
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
        name = _HASHES.get(self.algorithm)
        if name is None:
            return False
        a1 = b":".join((self.username, self.realm, _as_bytes(password)))
        return self.checkHash(_h(name, a1))

    def checkHash(self, digestHash: bytes | str) -> bool:
        """Return True if the response was computed from ``HA1`` = ``digestHash`` (hex)."""
        expected = self._expected(_as_bytes(digestHash).lower())
        response = self.fields.get("response", b"").lower()
        return expected is not None and hmac.compare_digest(expected, response)


def _as_bytes(value: bytes | str) -> bytes:
    return value.encode("utf-8") if isinstance(value, str) else value


def _from_awaitable(awaitable: Awaitable[Any]) -> Deferred[Any]:
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


def _maybe_deferred(f: Callable[..., Any], *args: Any) -> Deferred[Any]:
    """``maybeDeferred`` whose awaitables are cancelled quietly (see :func:`_from_awaitable`)."""
    try:
        result = f(*args)
    except Exception:
        return fail(Failure())
    if inspect.isawaitable(result) and not isinstance(result, Deferred):
        return _from_awaitable(result)
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
                d = _maybe_deferred(checker.requestAvatarId, credentials)
                return d.addCallback(self._avatar, mind, interfaces)
        return fail(UnhandledCredentials(f"No checker for {type(credentials).__name__}"))

    def _avatar(self, avatarId: Any, mind: Any, interfaces: tuple[Any, ...]) -> Deferred[Any]:
        return _maybe_deferred(self.realm.requestAvatar, avatarId, mind, *interfaces)


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
        self.users[_as_bytes(username)] = _as_bytes(password)

    def requestAvatarId(self, credentials: Any) -> Deferred[bytes]:
        """Return the username for a correct password; fail with UnauthorizedLogin else."""
        password = self.users.get(credentials.username)
        if password is None:
            return fail(UnauthorizedLogin("No such user"))
        d = _maybe_deferred(credentials.checkPassword, password)
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
            d = _from_awaitable(result)
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
        scheme = _htpasswd_scheme(hashed)
        if scheme is None or (scheme == "bcrypt" and _bcrypt() is None):
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
            return succeed(_matched(_verify_hash(hashed, password), credentials.username))
        # bcrypt and crypt take milliseconds on purpose: keep them off the event loop.
        future = asyncio.get_running_loop().run_in_executor(None, _verify_hash, hashed, password)
        return _from_awaitable(future).addCallback(_matched, credentials.username)


def _bcrypt() -> Any:
    try:
        import bcrypt
    except ImportError:
        return None
    return bcrypt


def _htpasswd_scheme(hashed: bytes) -> str | None:
    if hashed[:4] in (b"$2y$", b"$2b$", b"$2a$"):
        return "bcrypt"
    if hashed.startswith(b"{SHA}"):
        return "sha1"
    if hashed.startswith((b"$apr1$", b"$1$", b"$5$", b"$6$")):
        return "crypt"
    return None


def _verify_hash(hashed: bytes, password: bytes) -> bool:
    """Return True if ``password`` matches the htpasswd hash ``hashed``."""
    scheme = _htpasswd_scheme(hashed)
    if scheme == "bcrypt":
        try:
            return bool(_bcrypt().checkpw(password, hashed))
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


# -- credential factories (twisted.web.iweb.ICredentialFactory) -------------------------------


class ICredentialFactory(Protocol):
    """Turns an ``Authorization`` header of one scheme into credentials, and challenges."""

    scheme: bytes

    def getChallenge(self, request: Request) -> dict[str, bytes]:
        """Return the parameters of the ``WWW-Authenticate`` challenge for ``request``."""
        ...

    def decode(self, response: bytes, request: Request) -> ICredentials:
        """Return credentials from the header value after the scheme.

        Raises:
            LoginFailed: The header is malformed or cannot be valid.
        """
        ...


class BasicCredentialFactory:
    """HTTP Basic authentication (RFC 7617).

    Args:
        authenticationRealm: The realm shown to the user.
    """

    scheme = b"basic"

    def __init__(self, authenticationRealm: bytes | str) -> None:
        self.authenticationRealm = _as_bytes(authenticationRealm)

    def getChallenge(self, request: Request) -> dict[str, bytes]:
        """Return ``{"realm": ...}``."""
        return {"realm": self.authenticationRealm}

    def decode(self, response: bytes, request: Request) -> UsernamePassword:
        """Decode ``base64(username:password)``.

        Raises:
            LoginFailed: Not base64, or no ``:`` inside.
        """
        try:
            # Lenient about padding, as Twisted is: some clients leave it out.
            decoded = binascii.a2b_base64(b"".join(response.split()) + b"===")
        except binascii.Error:
            raise LoginFailed("Invalid credentials") from None
        username, sep, password = decoded.partition(b":")
        if not sep:
            raise LoginFailed("Invalid credentials")
        return UsernamePassword(username, password)


# One auth-param (RFC 9110 §11.2): token = ( token / quoted-string ), then a comma or the end.
_AUTH_PARAM: Final = re.compile(
    rb"\s*([!#$%&'*+\-.^_`|~0-9A-Za-z]+)\s*=\s*"
    rb'(?:"((?:[^"\\]|\\.)*)"|([!#$%&\'*+\-.^_`|~0-9A-Za-z/=]*))\s*(?:,|$)'
)
_QUOTED_PAIR: Final = re.compile(rb"\\(.)")


def _auth_params(value: bytes) -> dict[str, bytes]:
    """Parse ``a=b, c="d"`` into ``{"a": b"b", "c": b"d"}``.

    Raises:
        LoginFailed: Malformed, or a parameter repeated.
    """
    params: dict[str, bytes] = {}
    pos = 0
    value = value.strip()
    while pos < len(value):
        m = _AUTH_PARAM.match(value, pos)
        if m is None or m.end() == pos:
            raise LoginFailed("Invalid response, malformed parameters")
        name = m.group(1).decode("ascii").lower()
        quoted = m.group(2)
        param = _QUOTED_PAIR.sub(rb"\1", quoted) if quoted is not None else m.group(3)
        if name in params:
            raise LoginFailed(f"Invalid response, {name} given twice")
        params[name] = param
        pos = m.end()
    return params


class DigestCredentialFactory:
    """HTTP Digest authentication (RFC 7616) with stateless, expiring nonces.

    Offer SHA-256 and MD5 together (two factories) when clients vary: a response goes to the
    factory of its ``algorithm``.

    Args:
        algorithm: ``b"md5"`` or ``b"sha-256"`` (any case).
        authenticationRealm: The realm (part of ``HA1``: changing it invalidates stored HA1s).
        secret: Key for the nonces' HMAC. Random per factory by default; give every worker
            process the same one so that any of them accepts the others' nonces.

    Attributes:
        CHALLENGE_LIFETIME_SECS: How long a nonce is accepted (Twisted's 15 minutes).

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
        self.algorithm = _as_bytes(algorithm).lower()
        if self.algorithm not in _HASHES:
            raise ValueError(f"unsupported digest algorithm {algorithm!r}: use md5 or sha-256")
        self.authenticationRealm = _as_bytes(authenticationRealm)
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

    def getChallenge(self, request: Request) -> dict[str, bytes]:
        """Return a challenge with a fresh nonce."""
        return {
            "realm": self.authenticationRealm,
            "qop": b"auth",
            "algorithm": b"MD5" if self.algorithm == b"md5" else b"SHA-256",
            "nonce": self._generateNonce(),
            "opaque": self._opaque,
        }

    def _nonce_age(self, nonce: bytes) -> float:
        """Seconds since ``nonce`` was issued by this factory.

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
        if age < -60:  # from the future beyond clock jitter: not ours to trust
            raise LoginFailed("Invalid response, invalid nonce")
        return age

    def decode(self, response: bytes, request: Request) -> DigestedCredentials:
        """Check the response's parameters and return credentials for the portal.

        Raises:
            LoginFailed: A parameter is missing or wrong (realm, qop, uri, nonce, opaque).
        """
        f = _auth_params(response)
        if f.get("algorithm", b"md5").lower() != self.algorithm:
            raise _WrongAlgorithm("Invalid response, another algorithm")
        if "username*" in f:
            # RFC 7616 §3.4.4 / RFC 8187: UTF-8''percent-encoded, for non-ASCII usernames.
            charset, _, rest = f["username*"].partition(b"'")
            if charset.lower() != b"utf-8" or b"'" not in rest or "username" in f:
                raise LoginFailed("Invalid response, bad username*")
            username = unquote_to_bytes(rest.partition(b"'")[2])
        else:
            username = f.get("username", b"")
        if not username:
            raise LoginFailed("Invalid response, no username given")
        for required in ("nonce", "opaque", "uri", "response", "cnonce", "nc", "qop"):
            if required not in f:
                raise LoginFailed(f"Invalid response, no {required} given")
        if f.get("realm") != self.authenticationRealm:
            raise LoginFailed("Invalid response, wrong realm")
        if f["qop"] != b"auth":
            raise LoginFailed("Invalid response, unsupported qop")
        if not hmac.compare_digest(f["opaque"], self._opaque):
            raise LoginFailed("Invalid response, invalid opaque value")
        # The response covers the URI the client names: it must be this request's, or a
        # response captured for one resource would open another.
        if f["uri"] != request.uri:
            raise LoginFailed("Invalid response, uri does not match the request")
        credentials = DigestedCredentials(username, request.method, self.authenticationRealm, f)
        credentials.stale = self._nonce_age(f["nonce"]) > self.CHALLENGE_LIFETIME_SECS
        return credentials


# -- the resources (twisted.web._auth.wrapper) ------------------------------------------------

# RFC 7616 §3.3: these two are tokens; every other challenge parameter is a quoted-string.
_TOKEN_PARAMS: Final = frozenset(("algorithm", "stale"))


def _challenge(scheme: bytes, params: dict[str, bytes]) -> bytes:
    parts = []
    for key, value in params.items():
        if key not in _TOKEN_PARAMS:
            value = b'"' + value.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'
        parts.append(key.encode("ascii") + b"=" + value)
    return scheme.capitalize() + b" " + b", ".join(parts)


class UnauthorizedResource:
    """Answers ``401 Unauthorized`` with a challenge per credential factory, for any path.

    Args:
        factories: The :class:`ICredentialFactory` s to challenge with.
        stale: Factories whose challenge says ``stale=true`` (the nonce expired but the
            credentials were right).
    """

    isLeaf = True

    def __init__(
        self, factories: Sequence[ICredentialFactory], *, stale: Iterable[object] = ()
    ) -> None:
        self._credentialFactories = factories
        self._stale = list(stale)

    def render(self, request: Request) -> bytes:
        """Send the challenges; the body is a short page (none for HEAD)."""
        request.setResponseCode(401)
        for factory in self._credentialFactories:
            params = dict(factory.getChallenge(request))
            if any(factory is s for s in self._stale):
                params["stale"] = b"true"
            request.responseHeaders.addRawHeader(
                b"www-authenticate", _challenge(factory.scheme, params)
            )
        request.setHeader(b"content-type", b"text/html; charset=utf-8")
        if request.method == b"HEAD":
            return b""
        return error_page(401, "Unauthorized", "This resource requires authentication.")

    def getChildWithDefault(self, path: bytes, request: Request) -> IResource:
        """Every child is this resource: traversal stops here."""
        return self

    def putChild(self, path: bytes, child: IResource) -> None:
        """Not supported (as in Twisted)."""
        raise NotImplementedError()


class _LoggedIn:
    """The avatar reached, or the page refusing it, once the portal has answered."""

    isLeaf = True

    def __init__(self, outcome: Deferred[Any]) -> None:
        self._outcome = outcome

    def getChildWithDefault(self, path: bytes, request: Request) -> IResource:
        return self

    def render(self, request: Request) -> Any:
        settled: list[Any] = []
        self._outcome.addBoth(_keep, settled)
        if settled:  # the checker answered at once (in-memory, {SHA}): no task needed
            return _render_avatar(settled[0], request)
        return self._render_later(request)

    async def _render_later(self, request: Request) -> Any:
        avatar, logout = await self._outcome
        resource = _walk(avatar, logout, request)
        try:
            result = resource.render(request)
        except UnsupportedMethod as e:
            request.setResponseCode(405)
            request.setHeader(b"allow", b", ".join(e.allowedMethods))
            request.setHeader(b"content-type", b"text/html; charset=utf-8")
            return error_page(405, "Method Not Allowed", "This resource does not allow it.")
        # Awaited here, not handed back: the server takes an awaitable only from render().
        while inspect.isawaitable(result):
            result = await result
        return result


def _keep(result: Any, box: list[Any]) -> Any:
    box.append(result)
    return result


def _walk(avatar: IResource, logout: Callable[[], object] | None, request: Request) -> IResource:
    if logout is not None:
        request.notifyFinish().addBoth(_logout, logout)
    return getChildForRequest(avatar, request)


def _render_avatar(outcome: tuple[IResource, Callable[[], object] | None], request: Request) -> Any:
    avatar, logout = outcome
    return _walk(avatar, logout, request).render(request)


def _logout(_: object, logout: Callable[[], object]) -> None:
    try:
        logout()
    except Exception:
        error_log.exception("error in logout %r", logout)


class HTTPAuthSessionWrapper:
    """Puts a resource tree behind HTTP authentication (Twisted's class of the same name).

    Args:
        portal: The :class:`Portal` that checks credentials; its realm's avatars are
            resources (it is asked for ``IResource``).
        credentialFactories: The schemes offered, e.g. ``[DigestCredentialFactory(...),
            BasicCredentialFactory(...)]``; a 401 carries one challenge per factory, in
            this order (clients tend to pick the first they support).

    The wrapper is transparent to traversal: it consumes no path segment, and the avatar
    is traversed with the rest of the path. ``logout`` is called once the request is over.
    """

    isLeaf = False

    def __init__(self, portal: Portal, credentialFactories: Sequence[ICredentialFactory]) -> None:
        self._portal = portal
        self._credentialFactories = list(credentialFactories)

    def render(self, request: Request) -> Any:
        """Authenticate, then render the avatar (or a 401/500 page)."""
        return self._authorizedResource(request).render(request)

    def getChildWithDefault(self, path: bytes, request: Request) -> IResource:
        """Authenticate; the returned resource renders the avatar's descendant for the path."""
        request.postpath.insert(0, request.prepath.pop())  # consume nothing
        return self._authorizedResource(request)

    def putChild(self, path: bytes, child: IResource) -> None:
        """Not supported (as in Twisted): put children in the avatar instead."""
        raise NotImplementedError()

    def _authorizedResource(self, request: Request) -> IResource:
        header = request.getHeader(b"authorization")
        if not header:
            return self._login(Anonymous(), None)
        scheme, _, rest = header.strip().partition(b" ")
        scheme = scheme.lower()
        for factory in self._credentialFactories:
            if factory.scheme != scheme:
                continue
            try:
                credentials = factory.decode(rest.strip(), request)
            except _WrongAlgorithm:
                continue
            except LoginFailed:
                break
            except Exception:
                error_log.exception("unexpected failure from credential factory %r", factory)
                return ErrorPage(500, "Internal Server Error", "Authentication failed.")
            return self._login(credentials, factory)
        return UnauthorizedResource(self._credentialFactories)

    def _login(self, credentials: ICredentials, factory: object) -> IResource:
        d = self._portal.login(credentials, None, IResource)
        # An errback after the callback (not beside it): a realm returning something that
        # is not (interface, avatar, logout) becomes a 500 page rather than a lost failure.
        d.addCallback(self._loginSucceeded, credentials, factory).addErrback(self._loginFailed)
        return _LoggedIn(d)

    def _loginSucceeded(
        self, args: tuple[Any, Any, Callable[[], object]], credentials: object, factory: object
    ) -> tuple[IResource, Callable[[], object] | None]:
        _interface, avatar, logout = args
        if getattr(credentials, "stale", False):
            # Right password, expired nonce: ask again with stale=true (RFC 7616 §3.3).
            _logout(None, logout)
            return UnauthorizedResource(self._credentialFactories, stale=[factory]), None
        return avatar, logout

    def _loginFailed(self, failure: Failure) -> tuple[IResource, None]:
        if failure.check(Unauthorized, LoginFailed):
            return UnauthorizedResource(self._credentialFactories), None
        if failure.check(CancelledError, asyncio.CancelledError):
            # The client left while its credentials were being checked: nothing to report.
            return UnauthorizedResource(self._credentialFactories), None
        error_log.error(
            "unexpected error while logging in:\n%s", failure.getTraceback().rstrip("\n")
        )
        return ErrorPage(500, "Internal Server Error", "Authentication failed."), None
