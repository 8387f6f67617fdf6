"""treadle.cred as a Twisted program uses it: zope interfaces, a portal, checkers, errors."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import importlib
import logging
from pathlib import Path
from typing import Any

import pytest
from zope.interface import Attribute, Interface, alsoProvides, implementer
from zope.interface.interface import InterfaceClass
from zope.interface.verify import verifyObject

from treadle.cred.checkers import (
    ANONYMOUS,
    AllowAnonymousAccess,
    CallableChecker,
    FilePasswordDB,
    HtpasswdChecker,
    ICredentialsChecker,
    InMemoryUsernamePasswordDatabaseDontUse,
    OnDiskUsernamePasswordDatabase,
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
from treadle.internet.defer import CancelledError, Deferred, fail, succeed
from treadle.python.failure import Failure

# -- a program written the Twisted way: everything declared with zope's @implementer ----------


class IAvatar(Interface):
    """What the realm hands out."""

    name = Attribute("Whose avatar it is.")


@implementer(IAvatar)
class Avatar:
    def __init__(self, name: object) -> None:
        self.name = name


@implementer(IRealm)
class Realm:
    def __init__(self) -> None:
        self.logouts: list[object] = []

    def requestAvatar(self, avatarId: Any, mind: Any, *interfaces: Any) -> Any:
        if IAvatar not in interfaces:
            raise NotImplementedError("only IAvatar here")
        if avatarId == b"mallory":
            raise LoginDenied("mallory is banned")
        return IAvatar, Avatar(avatarId), lambda: self.logouts.append(avatarId)


class IToken(ICredentials):
    """A bearer token: credentials of a kind treadle does not know."""

    token = Attribute("The token, as bytes.")


@implementer(IToken)
class Token:
    def __init__(self, token: bytes) -> None:
        self.token = token


@implementer(ICredentialsChecker)
class TokenChecker:
    credentialInterfaces = (IToken,)

    def __init__(self, tokens: dict[bytes, bytes]) -> None:
        self.tokens = tokens

    def requestAvatarId(self, credentials: Any) -> Deferred[bytes]:
        user = self.tokens.get(credentials.token)
        return fail(UnauthorizedLogin()) if user is None else succeed(user)


@implementer(IUsernamePassword)
class CaseFoldedPassword:
    """A credentials class of the program's own, checked by treadle's in-memory checker."""

    def __init__(self, username: bytes, password: bytes) -> None:
        self.username = username
        self.password = password

    def checkPassword(self, password: bytes) -> bool:
        return self.password.lower() == password.lower()


def outcome(d: Deferred[Any]) -> Any:
    """The result of a Deferred that has fired already (the Failure, if it failed)."""
    box: list[Any] = []
    d.addBoth(box.append)
    assert box, "the Deferred has not fired"
    return box[0]


def login(portal: Portal, credentials: object) -> Any:
    """Log in synchronously (every checker and realm here answers at once)."""
    result = outcome(portal.login(credentials, None, IAvatar))
    if isinstance(result, Failure):
        result.raiseException()
    return result


def digest_fields(password: bytes, algorithm: bytes = b"md5") -> dict[str, bytes]:
    """A Digest response for alice in realm ``r``, computed by RFC 7616's formulas."""
    name = {b"md5": "md5", b"sha-256": "sha256"}[algorithm]

    def h(data: bytes) -> bytes:
        return hashlib.new(name, data).hexdigest().encode()

    fields = {"nonce": b"n0", "nc": b"00000001", "cnonce": b"c0", "qop": b"auth", "uri": b"/x"}
    ha1, ha2 = h(b"alice:r:" + password), h(b"GET:/x")
    fields["response"] = h(b":".join((ha1, b"n0", b"00000001", b"c0", b"auth", ha2)))
    fields["algorithm"] = algorithm
    return fields


# -- interfaces and declarations -------------------------------------------------------------


def test_interfaces_are_zope_interfaces_and_the_classes_provide_them(tmp_path: Path) -> None:
    for interface in (IAnonymous, IUsernamePassword, IUsernameHashedPassword, IUsernameDigestHash):
        assert isinstance(interface, InterfaceClass) and interface.extends(ICredentials)
    assert isinstance(IRealm, InterfaceClass) and isinstance(ICredentialsChecker, InterfaceClass)
    assert verifyObject(IUsernamePassword, UsernamePassword(b"a", b"b"))
    assert verifyObject(IAnonymous, Anonymous())
    digested = DigestedCredentials(b"alice", b"GET", b"r", {})
    assert verifyObject(IUsernameHashedPassword, digested)
    assert verifyObject(IUsernameDigestHash, digested)
    assert not IUsernamePassword.providedBy(digested)
    path = tmp_path / "passwords"
    path.write_bytes(b"")
    for checker in (
        AllowAnonymousAccess(),
        InMemoryUsernamePasswordDatabaseDontUse(),
        FilePasswordDB(path),
        CallableChecker(lambda user, password: True),
        HtpasswdChecker(path),
    ):
        assert verifyObject(ICredentialsChecker, checker)
    assert OnDiskUsernamePasswordDatabase is FilePasswordDB
    assert verifyObject(IRealm, Realm())


def test_errors_as_in_twisted() -> None:
    assert issubclass(UnauthorizedLogin, LoginFailed) and issubclass(
        UnauthorizedLogin, Unauthorized
    )
    assert issubclass(UnhandledCredentials, LoginFailed)
    assert issubclass(LoginDenied, LoginFailed)
    assert not issubclass(LoginFailed, Unauthorized)


# -- the portal ------------------------------------------------------------------------------


def test_program_credentials_checker_and_realm_log_in() -> None:
    realm = Realm()
    db = InMemoryUsernamePasswordDatabaseDontUse(bob=b"Builder")
    portal = Portal(realm, [TokenChecker({b"t0k": b"alice"}), db])

    interface, avatar, logout = login(portal, Token(b"t0k"))
    assert interface is IAvatar and IAvatar.providedBy(avatar) and avatar.name == b"alice"
    assert realm.logouts == []
    logout()
    assert realm.logouts == [b"alice"]

    # treadle's checker asks the program's credentials class whether the password matches.
    assert login(portal, CaseFoldedPassword(b"bob", b"BUILDER"))[1].name == b"bob"
    assert login(portal, UsernamePassword(b"bob", b"Builder"))[1].name == b"bob"
    with pytest.raises(UnauthorizedLogin):
        login(portal, UsernamePassword(b"bob", b"BUILDER"))


def test_checker_found_by_provided_interface_not_by_class() -> None:
    class IOneTimePassword(IUsernamePassword):
        """A sub-interface: its providers are IUsernamePassword providers too."""

    @implementer(IOneTimePassword)
    class OneTime:
        def __init__(self, username: bytes, password: bytes) -> None:
            self.username, self.password = username, password

        def checkPassword(self, password: bytes) -> bool:
            return password == self.password

    class Bare:
        token = b"t0k"

    portal = Portal(Realm(), [TokenChecker({b"t0k": b"alice"})])
    portal.registerChecker(InMemoryUsernamePasswordDatabaseDontUse(carol=b"pw"))
    assert login(portal, OneTime(b"carol", b"pw"))[1].name == b"carol"

    bare = Bare()
    with pytest.raises(UnhandledCredentials, match=r"Bare, which provides no interface"):
        login(portal, bare)
    alsoProvides(bare, IToken)  # declared on the object alone
    assert login(portal, bare)[1].name == b"alice"


def test_login_failures() -> None:
    @implementer(ICredentialsChecker)
    class Broken:
        credentialInterfaces = (IUsernamePassword,)

        def requestAvatarId(self, credentials: object) -> bytes:
            raise ZeroDivisionError

    portal = Portal(Realm(), [TokenChecker({b"m": b"mallory"}), Broken()])

    with pytest.raises(UnauthorizedLogin):
        login(portal, Token(b"wrong"))
    with pytest.raises(LoginDenied, match="banned"):
        login(portal, Token(b"m"))
    with pytest.raises(ZeroDivisionError):  # raised, not returned: a failed Deferred all the same
        login(portal, UsernamePassword(b"a", b"b"))
    with pytest.raises(UnhandledCredentials) as caught:
        login(portal, Anonymous())
    assert str(caught.value) == "No checker for treadle.cred.credentials.IAnonymous"
    with pytest.raises(UnhandledCredentials) as caught:
        login(portal, DigestedCredentials(b"a", b"GET", b"r", {}))
    assert str(caught.value) == (
        "No checker for treadle.cred.credentials.IUsernameHashedPassword, "
        "treadle.cred.credentials.IUsernameDigestHash"
    )
    # The realm refuses what it cannot provide; the failure reaches the caller.
    d = portal.login(Token(b"m"), None, IRealm)
    assert outcome(d).check(NotImplementedError)


def test_register_checker_and_list_interfaces() -> None:
    portal = Portal(Realm())
    assert portal.listCredentialsInterfaces() == []
    portal.registerChecker(TokenChecker({}), IToken)
    portal.registerChecker(InMemoryUsernamePasswordDatabaseDontUse(dave=b"old"))
    assert portal.listCredentialsInterfaces() == [
        IToken,
        IUsernamePassword,
        IUsernameHashedPassword,
    ]
    # Registering an interface again replaces its checker.
    portal.registerChecker(InMemoryUsernamePasswordDatabaseDontUse(dave=b"new"), IUsernamePassword)
    assert login(portal, UsernamePassword(b"dave", b"new"))[1].name == b"dave"
    with pytest.raises(UnauthorizedLogin):
        login(portal, UsernamePassword(b"dave", b"old"))


def test_awaitable_checker_and_realm() -> None:
    @implementer(ICredentialsChecker)
    class AsyncChecker:
        credentialInterfaces = (IToken,)

        def __init__(self) -> None:
            self.started = asyncio.Event()
            self.cancelled = asyncio.Event()

        async def requestAvatarId(self, credentials: Any) -> bytes:
            if credentials.token == b"hang":
                self.started.set()
                try:
                    await asyncio.Event().wait()
                except asyncio.CancelledError:
                    self.cancelled.set()
                    raise
            if credentials.token != b"ok":
                raise UnauthorizedLogin()
            return b"erin"

    @implementer(IRealm)
    class AsyncRealm:
        async def requestAvatar(self, avatarId: Any, mind: Any, *interfaces: Any) -> Any:
            return interfaces[0], Avatar((avatarId, mind)), lambda: None

    async def scenario() -> None:
        checker = AsyncChecker()
        portal = Portal(AsyncRealm(), [checker])
        _, avatar, _ = await portal.login(Token(b"ok"), "mind", IAvatar)
        assert avatar.name == (b"erin", "mind")
        with pytest.raises(UnauthorizedLogin):
            await portal.login(Token(b"no"), None, IAvatar)
        # Cancelling the login cancels the checker's task.
        d = portal.login(Token(b"hang"), None, IAvatar)
        await checker.started.wait()
        d.cancel()
        assert outcome(d).check(CancelledError)
        await checker.cancelled.wait()

    asyncio.run(scenario())


# -- the checkers ----------------------------------------------------------------------------


def test_allow_anonymous_access() -> None:
    portal = Portal(Realm(), [AllowAnonymousAccess()])
    assert ANONYMOUS == ()
    assert login(portal, Anonymous())[1].name == ANONYMOUS
    with pytest.raises(UnhandledCredentials):
        login(portal, UsernamePassword(b"a", b"b"))


def test_in_memory_checker_takes_plain_and_digest_credentials() -> None:
    db = InMemoryUsernamePasswordDatabaseDontUse(alice="pässword")
    db.addUser(b"bob", b"pw")
    assert db.users == {b"alice": "pässword".encode(), b"bob": b"pw"}
    assert db.credentialInterfaces == (IUsernamePassword, IUsernameHashedPassword)
    portal = Portal(Realm(), [db])
    assert login(portal, UsernamePassword(b"alice", "pässword".encode()))[1].name == b"alice"
    for wrong in (UsernamePassword(b"bob", b"nope"), UsernamePassword(b"carol", b"pw")):
        with pytest.raises(UnauthorizedLogin):
            login(portal, wrong)
    db.addUser("alice", "pw")
    for algorithm in (b"md5", b"sha-256"):
        good = DigestedCredentials(b"alice", b"GET", b"r", digest_fields(b"pw", algorithm))
        assert login(portal, good)[1].name == b"alice"
        bad = DigestedCredentials(b"alice", b"GET", b"r", digest_fields(b"px", algorithm))
        with pytest.raises(UnauthorizedLogin):
            login(portal, bad)


def test_file_password_db(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "passwords"
    path.write_bytes(b"alice:pw\nBob:secret:extra\nno fields\n:empty\nalice:second\n")
    portal = Portal(Realm(), [FilePasswordDB(path)])
    assert login(portal, UsernamePassword(b"alice", b"pw"))[1].name == b"alice"
    digested = DigestedCredentials(b"alice", b"GET", b"r", digest_fields(b"pw"))
    assert login(portal, digested)[1].name == b"alice"
    for wrong in (
        UsernamePassword(b"alice", b"second"),  # the first line for a user counts
        UsernamePassword(b"bob", b"secret"),  # case-sensitive by default
        UsernamePassword(b"no fields", b""),
    ):
        with pytest.raises(UnauthorizedLogin):
            login(portal, wrong)

    folded = Portal(Realm(), [FilePasswordDB(path, caseSensitive=False, cache=True)])
    assert login(folded, UsernamePassword(b"BOB", b"secret"))[1].name == b"bob"
    path.write_bytes(b"bob:changed\n")
    assert login(folded, UsernamePassword(b"bob", b"changed"))[1].name == b"bob"

    csv = tmp_path / "users.csv"
    csv.write_bytes(b"1,carol,pw3\n")
    db = FilePasswordDB(csv, delim=b",", usernameField=1, passwordField=2)
    assert login(Portal(Realm(), [db]), UsernamePassword(b"carol", b"pw3"))[1].name == b"carol"

    def sha256(username: bytes, password: bytes, stored: bytes) -> bytes:
        return hashlib.sha256(password).hexdigest().encode()

    csv.write_bytes(b"carol:" + sha256(b"", b"pw4", b"") + b"\n")
    hashed = FilePasswordDB(csv, hash=sha256)
    assert hashed.credentialInterfaces == (IUsernamePassword,)
    portal = Portal(Realm(), [hashed])
    assert login(portal, UsernamePassword(b"carol", b"pw4"))[1].name == b"carol"
    with pytest.raises(UnauthorizedLogin):
        login(portal, UsernamePassword(b"carol", b"pw3"))
    with pytest.raises(UnhandledCredentials):
        login(portal, DigestedCredentials(b"carol", b"GET", b"r", digest_fields(b"pw4")))

    missing = Portal(Realm(), [FilePasswordDB(tmp_path / "missing")])
    with caplog.at_level(logging.ERROR, logger="treadle.error"), pytest.raises(UnauthorizedLogin):
        login(missing, UsernamePassword(b"alice", b"pw"))
    assert any("cannot be read" in r.getMessage() for r in caplog.records)


def test_callable_checker() -> None:
    calls: list[tuple[str, ...]] = []

    def check(user: str, password: str) -> bool:
        calls.append((user, password))
        if user == "boom":
            raise KeyError(user)
        return password == "pw"

    def ha1(user: str, realm: str, algorithm: str) -> str | None:
        calls.append((user, realm, algorithm))
        return hashlib.md5(b"alice:r:pw").hexdigest() if user == "alice" else None

    portal = Portal(Realm(), [CallableChecker(check)])
    assert login(portal, UsernamePassword("zoë".encode(), b"pw"))[1].name == "zoë".encode()
    with pytest.raises(UnauthorizedLogin):
        login(portal, UsernamePassword(b"zoe", b"no"))
    with pytest.raises(UnauthorizedLogin):
        login(portal, UsernamePassword(b"\xff", b"pw"))  # not UTF-8: refused unasked
    with pytest.raises(KeyError):
        login(portal, UsernamePassword(b"boom", b"pw"))
    assert calls == [("zoë", "pw"), ("zoe", "no"), ("boom", "pw")]
    with pytest.raises(UnhandledCredentials):  # Digest needs ha1=
        login(portal, DigestedCredentials(b"alice", b"GET", b"r", digest_fields(b"pw")))

    with_ha1 = CallableChecker(check, ha1=ha1)
    assert with_ha1.credentialInterfaces == (IUsernamePassword, IUsernameDigestHash)
    portal = Portal(Realm(), [with_ha1])
    digested = DigestedCredentials(b"alice", b"GET", b"r", digest_fields(b"pw"))
    assert login(portal, digested)[1].name == b"alice"
    for user, password in ((b"alice", b"px"), (b"carol", b"pw")):
        creds = DigestedCredentials(user, b"GET", b"r", digest_fields(password))
        with pytest.raises(UnauthorizedLogin):
            login(portal, creds)
    assert calls[-1] == ("carol", "r", "md5")

    async def check_async(user: str, password: str) -> bool:
        return password == "later"

    async def scenario() -> None:
        portal = Portal(Realm(), [CallableChecker(check_async)])
        _, avatar, _ = await portal.login(UsernamePassword(b"u", b"later"), None, IAvatar)
        assert avatar.name == b"u"
        with pytest.raises(UnauthorizedLogin):
            await portal.login(UsernamePassword(b"u", b"now"), None, IAvatar)

    asyncio.run(scenario())


def test_htpasswd_checker(tmp_path: Path) -> None:
    path = tmp_path / "htpasswd"
    sha = base64.b64encode(hashlib.sha1(b"pw").digest())
    path.write_bytes(b"# users\nsha:{SHA}" + sha + b"\n")
    portal = Portal(Realm(), [HtpasswdChecker(path)])
    assert login(portal, UsernamePassword(b"sha", b"pw"))[1].name == b"sha"
    for wrong in (UsernamePassword(b"sha", b"px"), UsernamePassword(b"nobody", b"pw")):
        with pytest.raises(UnauthorizedLogin):
            login(portal, wrong)
    with pytest.raises(UnhandledCredentials):
        login(portal, DigestedCredentials(b"sha", b"GET", b"r", digest_fields(b"pw")))


# -- the same program under Twisted and under treadle ----------------------------------------


def run_program(prefix: str) -> list[object]:
    """A small cred program, importing ``{prefix}.cred``; returns what each login gave."""
    modules = {
        name: importlib.import_module(f"{prefix}.cred.{name}")
        for name in ("portal", "checkers", "credentials")
    }
    portal_m, checkers_m, creds_m = modules["portal"], modules["checkers"], modules["credentials"]
    failure_type = importlib.import_module(f"{prefix}.python.failure").Failure

    @implementer(creds_m.IUsernamePassword)
    class Mine:
        def __init__(self, username: bytes, password: bytes) -> None:
            self.username, self.password = username, password

        def checkPassword(self, password: bytes) -> bool:
            return self.password == password

    class Realm:
        def requestAvatar(self, avatarId: Any, mind: Any, *interfaces: Any) -> Any:
            return interfaces[0], ("avatar of", avatarId, mind), lambda: None

    db = checkers_m.InMemoryUsernamePasswordDatabaseDontUse(alice=b"pw")
    db.addUser(b"bob", b"builder")
    closed = portal_m.Portal(Realm(), [db])
    open_ = portal_m.Portal(Realm(), [db, checkers_m.AllowAnonymousAccess()])
    results: list[object] = [
        [i.__name__ for i in open_.listCredentialsInterfaces()],
        checkers_m.ANONYMOUS,
    ]
    up = creds_m.UsernamePassword
    for portal, credentials in (
        (closed, up(b"alice", b"pw")),
        (closed, up(b"alice", b"PW")),
        (closed, up(b"carol", b"pw")),
        (closed, Mine(b"bob", b"builder")),
        (closed, Mine(b"bob", b"")),
        (closed, creds_m.Anonymous()),
        (open_, creds_m.Anonymous()),
    ):
        result = outcome(portal.login(credentials, "mind", IAvatar))
        if isinstance(result, failure_type):
            message = str(result.value).replace(prefix + ".", "")
            kind = type(result.value).__name__
            results.append((kind, message if kind == "UnhandledCredentials" else None))
        else:
            results.append((result[0] is IAvatar, result[1]))
    return results


def test_same_program_same_results_under_twisted_and_treadle() -> None:
    under_treadle = run_program("treadle")
    assert under_treadle[2:4] == [
        (True, ("avatar of", b"alice", "mind")),
        ("UnauthorizedLogin", None),
    ]
    assert run_program("twisted") == under_treadle


def file_db_program(prefix: str, directory: Path) -> list[object]:
    """FilePasswordDB and the in-memory checker used as programs use them, with ``prefix``'s
    modules (``twisted`` or ``treadle``): every outcome, as plain data."""
    checkers_m = importlib.import_module(prefix + ".cred.checkers")
    creds_m = importlib.import_module(prefix + ".cred.credentials")
    error_m = importlib.import_module(prefix + ".cred.error")
    passwords = directory / "passwords"
    passwords.write_bytes(
        b"alice:pw\r\nBob:Secret:extra\nno fields\n:empty\nalice:second\ncarol:\n"
    )
    unique = directory / "unique"
    unique.write_bytes(passwords.read_bytes().replace(b"alice:second\n", b""))
    hashed = directory / "hashed"
    hashed.write_bytes(b"dave|" + hashlib.sha256(b"pw5").hexdigest().encode() + b"|x\n")

    def sha256(username: bytes, password: bytes, stored: bytes) -> bytes:
        return hashlib.sha256(password).hexdigest().encode()

    def outcome(d: Any) -> object:
        box: list[object] = []
        d.addBoth(box.append)
        value = box[0]
        if hasattr(value, "value"):  # a Failure
            assert isinstance(value.value, error_m.UnauthorizedLogin)
            # The message too: Twisted's says nothing (an unknown user and a wrong password
            # must not be told apart by a client shown the message).
            return f"UnauthorizedLogin({value.getErrorMessage()!r})"
        return value

    up = creds_m.UsernamePassword
    results: list[object] = []
    for db in (
        checkers_m.FilePasswordDB(str(passwords)),
        checkers_m.FilePasswordDB(str(passwords), caseSensitive=False),
        # (Twisted's cache keeps the last line of a user, its file scan the first; treadle
        # keeps the first both ways, so the cached file has no user twice.)
        checkers_m.FilePasswordDB(str(unique), cache=True),
    ):
        for name in (b"alice", b"Bob", b"bob", b"carol", b"", b"nobody"):
            try:
                results.append(db.getUser(name))
            except KeyError:
                results.append("KeyError")
        for credentials in (
            up(b"alice", b"pw"),
            up(b"alice", b"second"),
            up(b"BOB", b"Secret"),
            up(b"Bob", b"Secret"),
            up(b"carol", b""),
            up(b"nobody", b"pw"),
        ):
            results.append(outcome(db.requestAvatarId(credentials)))
        results.append([i.__name__ for i in db.credentialInterfaces])
    by_hash = checkers_m.FilePasswordDB(
        str(hashed), delim=b"|", usernameField=0, passwordField=1, hash=sha256
    )
    results.append([i.__name__ for i in by_hash.credentialInterfaces])
    results.append(outcome(by_hash.requestAvatarId(up(b"dave", b"pw5"))))
    results.append(outcome(by_hash.requestAvatarId(up(b"dave", b"pw4"))))
    memory = checkers_m.InMemoryUsernamePasswordDatabaseDontUse(erin=b"pw6")
    memory.addUser(b"frank", b"pw7")
    results.append(sorted(memory.users.items()))
    for credentials in (up(b"erin", b"pw6"), up(b"frank", b"pw6"), up(b"gina", b"")):
        results.append(outcome(memory.requestAvatarId(credentials)))
    return results


def test_file_password_db_and_in_memory_checker_as_twisteds(tmp_path: Path) -> None:
    (tmp_path / "twisted").mkdir()
    (tmp_path / "treadle").mkdir()
    under_treadle = file_db_program("treadle", tmp_path / "treadle")
    assert under_treadle[:2] == [(b"alice", b"pw"), (b"Bob", b"Secret")]
    assert file_db_program("twisted", tmp_path / "twisted") == under_treadle
