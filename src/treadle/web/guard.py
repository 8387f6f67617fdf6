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

The portal, credentials, checkers and login errors are :mod:`treadle.cred`'s
(:mod:`~treadle.cred.portal`, :mod:`~treadle.cred.credentials`, :mod:`~treadle.cred.checkers`,
:mod:`~treadle.cred.error`), whose interfaces are :mod:`zope.interface` ones: the portal picks
the checker for an interface the credentials provide, so credentials, checkers and realms of
your own declare themselves with ``@implementer``. The credential factories here provide
:class:`~treadle.web.iweb.ICredentialFactory`. Usernames and passwords in credentials are
``bytes``, as in Twisted. Beyond Twisted's ``guard``, this module also re-exports the
:mod:`treadle.cred` names it used to hold (``Portal``, ``UsernamePassword``, the checkers, the
errors, ...), so older treadle code importing them from here keeps working.

**Basic** (RFC 7617) sends the password itself: use it over TLS only.

**Digest** (RFC 7616) with ``MD5`` or ``SHA-256`` and ``qop=auth``. Nonces need no server state:
each carries its issue time, random bytes and an HMAC of both under the factory's secret key, so
any process holding the key (pass ``secret=`` to share it between workers) can verify it. A nonce
older than ``CHALLENGE_LIFETIME_SECS`` (an attribute of the factory's
:attr:`~DigestCredentialFactory.digest`, the
:class:`treadle.cred.credentials.DigestCredentialFactory` doing the work, as in Twisted) with an
otherwise correct response gets a new challenge with ``stale=true``, so clients retry without
asking the user again. Nonce counts (``nc``) are not tracked: a captured request can be replayed
until its nonce expires (RFC 7616 §5.12 leaves this to the server). The ``uri`` of the response
must be the request's target. Digest needs the password or ``HA1`` (``H(username:realm:password)``)
on the server, so only :class:`InMemoryChecker`, a plain-text
:class:`~treadle.cred.checkers.FilePasswordDB` and a :class:`CallableChecker` given ``ha1=`` accept
digest credentials; htpasswd hashes cannot.

**htpasswd** files (:class:`HtpasswdChecker`): bcrypt (``$2y$``, ``$2b$``, ``$2a$``; needs the
``bcrypt`` package, else such entries are refused and logged), ``{SHA}`` (unsalted SHA-1, only
for old files), Apache's ``$apr1$`` (``htpasswd``'s default) and the crypt formats ``$1$``
(MD5), ``$5$`` (SHA-256) and ``$6$`` (SHA-512), implemented from their published algorithms
because the stdlib ``crypt`` module is deprecated and gone in Python 3.13. DES ``crypt`` and
plain-text entries are refused. Slow hashes are checked in a worker thread so the event loop
keeps serving.
"""

from __future__ import annotations

import asyncio
import binascii
import inspect
import logging
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, Final, Protocol

from zope.interface import implementer

from treadle.cred import credentials as _credentials
from treadle.cred._util import as_bytes
from treadle.cred.checkers import (
    AllowAnonymousAccess,
    CallableChecker,
    HtpasswdChecker,
    ICredentialsChecker,
    InMemoryChecker,
    InMemoryUsernamePasswordDatabaseDontUse,
)
from treadle.cred.credentials import (
    Anonymous,
    DigestedCredentials,
    IAnonymous,
    ICredentials,
    IUsernameDigestHash,
    IUsernameHashedPassword,
    IUsernamePassword,
    UsernamePassword,
)
from treadle.cred.error import (
    LoginDenied,
    LoginFailed,
    Unauthorized,
    UnauthorizedLogin,
    UnhandledCredentials,
)
from treadle.cred.portal import IRealm, Portal
from treadle.internet.defer import CancelledError, Deferred
from treadle.python.failure import Failure
from treadle.web.iweb import ICredentialFactory
from treadle.web.resource import (
    ErrorPage,
    IResource,
    ResourceLike,
    UnsupportedMethod,
    error_page,
    getChildForRequest,
)

if TYPE_CHECKING:
    from treadle.web.server import Request

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


# -- credential factories (twisted.web.iweb.ICredentialFactory) -------------------------------


class _CredentialFactory(Protocol):
    """How this module types credential factories (see :class:`ICredentialFactory`)."""

    scheme: bytes

    def getChallenge(self, request: Request) -> dict[str, bytes]:
        """Return the parameters of the ``WWW-Authenticate`` challenge for ``request``."""
        ...

    def decode(self, response: bytes, request: Request) -> object:
        """Return credentials from the header value after the scheme.

        Raises:
            LoginFailed: The header is malformed or cannot be valid.
        """
        ...


@implementer(ICredentialFactory)
class BasicCredentialFactory:
    """HTTP Basic authentication (RFC 7617).

    Args:
        authenticationRealm: The realm shown to the user.
    """

    scheme = b"basic"

    def __init__(self, authenticationRealm: bytes | str) -> None:
        self.authenticationRealm = as_bytes(authenticationRealm)

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


@implementer(ICredentialFactory)
class DigestCredentialFactory:
    """HTTP Digest authentication (RFC 7616) with stateless, expiring nonces.

    Wraps a :class:`treadle.cred.credentials.DigestCredentialFactory` (its :attr:`digest`),
    which makes the challenges and decodes the responses, as Twisted's does. Offer SHA-256
    and MD5 together (two factories) when clients vary: a response goes to the factory of
    its ``algorithm``.

    Args:
        algorithm: ``b"md5"`` or ``b"sha-256"`` (any case).
        authenticationRealm: The realm (part of ``HA1``: changing it invalidates stored HA1s).
        secret: Key for the nonces' HMAC. Random per factory by default; give every worker
            process the same one so that any of them accepts the others' nonces.

    Attributes:
        digest: The protocol-neutral factory doing the work.

    Raises:
        ValueError: Unsupported ``algorithm``.
    """

    scheme = b"digest"

    def __init__(
        self,
        algorithm: bytes | str,
        authenticationRealm: bytes | str,
        *,
        secret: bytes | None = None,
    ) -> None:
        self.digest = _credentials.DigestCredentialFactory(
            algorithm, authenticationRealm, secret=secret
        )

    @property
    def algorithm(self) -> bytes:
        """The algorithm, lowercased."""
        return self.digest.algorithm

    @property
    def authenticationRealm(self) -> bytes:
        """The realm, as bytes."""
        return self.digest.authenticationRealm

    def getChallenge(self, request: Request) -> dict[str, bytes]:
        """Return a challenge with a fresh nonce."""
        return self.digest.getChallenge(_client_host(request))

    def decode(self, response: bytes, request: Request) -> DigestedCredentials:
        """Check the response's parameters and return credentials for the portal.

        Raises:
            LoginFailed: A parameter is missing or wrong (realm, qop, uri, nonce, opaque).
        """
        decoded = self.digest.decode(response, request.method, _client_host(request))
        # The response covers the URI the client names: it must be this request's, or a
        # response captured for one resource would open another. (Checked on what the
        # factory returned, so a factory of the program's own returning other credentials
        # is not second-guessed.)
        fields = getattr(decoded, "fields", None)
        if isinstance(fields, dict) and fields.get("uri") != request.uri:
            raise LoginFailed("Invalid response, uri does not match the request")
        return decoded


def _client_host(request: Request) -> object:
    """The client's host, as Twisted hands it to the cred factory (None: no IP address)."""
    return getattr(request.getClientAddress(), "host", None)


# -- the resources (twisted.web._auth.wrapper) ------------------------------------------------

# RFC 7616 §3.3: these two are tokens; every other challenge parameter is a quoted-string.
# Sent as tokens; everything else is quoted, algorithm too, as Twisted writes its challenges.
_TOKEN_PARAMS: Final = frozenset(("stale",))


def _challenge(scheme: bytes, params: dict[str, bytes]) -> bytes:
    parts = []
    for key, value in params.items():
        if key not in _TOKEN_PARAMS:
            value = b'"' + value.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'
        parts.append(key.encode("ascii") + b"=" + value)
    # The scheme as the factory names it (``basic``, ``digest``), as Twisted sends it:
    # clients compare schemes ignoring case (RFC 9110 §11.1).
    return scheme + b" " + b", ".join(parts)


@implementer(IResource)
class UnauthorizedResource:
    """Answers ``401 Unauthorized`` with a challenge per credential factory, for any path.

    Args:
        factories: The :class:`ICredentialFactory` s to challenge with.
        stale: Factories whose challenge says ``stale=true`` (the nonce expired but the
            credentials were right).
    """

    isLeaf = True

    def __init__(
        self, factories: Sequence[_CredentialFactory], *, stale: Iterable[object] = ()
    ) -> None:
        self._credentialFactories = factories
        self._stale = list(stale)

    def render(self, request: Request) -> bytes:
        """Send the challenges; the body is ``Unauthorized``, as Twisted's (none for HEAD)."""
        request.setResponseCode(401)
        for factory in self._credentialFactories:
            params = dict(factory.getChallenge(request))
            if any(factory is s for s in self._stale):
                params["stale"] = b"true"
            request.responseHeaders.addRawHeader(
                b"www-authenticate", _challenge(factory.scheme, params)
            )
        if request.method == b"HEAD":
            return b""
        return b"Unauthorized"

    def getChildWithDefault(self, path: bytes, request: Request) -> ResourceLike:
        """Every child is this resource: traversal stops here."""
        return self

    def putChild(self, path: bytes, child: ResourceLike) -> None:
        """Not supported (as in Twisted)."""
        raise NotImplementedError()


class _LoggedIn:
    """The avatar reached, or the page refusing it, once the portal has answered."""

    isLeaf = True

    def __init__(self, outcome: Deferred[Any]) -> None:
        self._outcome = outcome

    def getChildWithDefault(self, path: bytes, request: Request) -> ResourceLike:
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


def _walk(
    avatar: ResourceLike, logout: Callable[[], object] | None, request: Request
) -> ResourceLike:
    if logout is not None:
        request.notifyFinish().addBoth(_logout, logout)
    return getChildForRequest(avatar, request)


def _render_avatar(
    outcome: tuple[ResourceLike, Callable[[], object] | None], request: Request
) -> Any:
    avatar, logout = outcome
    return _walk(avatar, logout, request).render(request)


def _logout(_: object, logout: Callable[[], object]) -> None:
    try:
        logout()
    except Exception:
        error_log.exception("error in logout %r", logout)


@implementer(IResource)
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

    def __init__(self, portal: Portal, credentialFactories: Sequence[_CredentialFactory]) -> None:
        self._portal = portal
        # The list itself, not a copy: factories added to it later are offered too, as in
        # Twisted.
        self._credentialFactories = credentialFactories

    def render(self, request: Request) -> Any:
        """Authenticate, then render the avatar (or a 401/500 page)."""
        return self._authorizedResource(request).render(request)

    def getChildWithDefault(self, path: bytes, request: Request) -> ResourceLike:
        """Authenticate; the returned resource renders the avatar's descendant for the path."""
        request.postpath.insert(0, request.prepath.pop())  # consume nothing
        return self._authorizedResource(request)

    def putChild(self, path: bytes, child: ResourceLike) -> None:
        """Not supported (as in Twisted): put children in the avatar instead."""
        raise NotImplementedError()

    def _authorizedResource(self, request: Request) -> ResourceLike:
        header = request.getHeader(b"authorization")
        if not header:
            return self._login(Anonymous(), None)
        scheme, _, rest = header.strip().partition(b" ")
        scheme = scheme.lower()
        # Every factory of the scheme gets its turn: a Digest response names its algorithm,
        # and only the factory of that algorithm takes it.
        for factory in self._credentialFactories:
            if factory.scheme != scheme:
                continue
            try:
                credentials = factory.decode(rest.strip(), request)
            except LoginFailed:
                continue
            except Exception:
                error_log.exception("unexpected failure from credential factory %r", factory)
                return ErrorPage(500, "Internal Error", "")  # Twisted's page
            return self._login(credentials, factory)
        return UnauthorizedResource(self._credentialFactories)

    def _login(self, credentials: object, factory: object) -> ResourceLike:
        d = self._portal.login(credentials, None, IResource)
        # An errback after the callback (not beside it): a realm returning something that
        # is not (interface, avatar, logout) becomes a 500 page rather than a lost failure.
        d.addCallback(self._loginSucceeded, credentials, factory).addErrback(self._loginFailed)
        return _LoggedIn(d)

    def _loginSucceeded(
        self, args: tuple[Any, Any, Callable[[], object]], credentials: object, factory: object
    ) -> tuple[ResourceLike, Callable[[], object] | None]:
        _interface, avatar, logout = args
        if getattr(credentials, "stale", False):
            # Right password, expired nonce: ask again with stale=true (RFC 7616 §3.3).
            _logout(None, logout)
            return UnauthorizedResource(self._credentialFactories, stale=[factory]), None
        return avatar, logout

    def _loginFailed(self, failure: Failure) -> tuple[ResourceLike, None]:
        if failure.check(Unauthorized, LoginFailed):
            return UnauthorizedResource(self._credentialFactories), None
        if failure.check(CancelledError, asyncio.CancelledError):
            # The client left while its credentials were being checked: nothing to report.
            return UnauthorizedResource(self._credentialFactories), None
        error_log.error(
            "unexpected error while logging in",
            exc_info=failure.value,
        )
        return ErrorPage(500, "Internal Error", ""), None  # Twisted's page
