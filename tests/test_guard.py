"""HTTP authentication: Basic, Digest (MD5, SHA-256), htpasswd and callable checkers."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import re
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from zope.interface.verify import verifyObject

from treadle.cred import _crypt
from treadle.cred._util import parse_auth_params
from treadle.cred.checkers import (
    AllowAnonymousAccess,
    CallableChecker,
    HtpasswdChecker,
    InMemoryChecker,
    InMemoryUsernamePasswordDatabaseDontUse,
)
from treadle.cred.credentials import (
    Anonymous,
    DigestedCredentials,
    IUsernameHashedPassword,
    IUsernamePassword,
    UsernamePassword,
)
from treadle.cred.error import LoginFailed, UnauthorizedLogin, UnhandledCredentials
from treadle.cred.portal import Portal
from treadle.web import guard
from treadle.web.guard import (
    BasicCredentialFactory,
    DigestCredentialFactory,
    HTTPAuthSessionWrapper,
    UnauthorizedResource,
)
from treadle.web.iweb import ICredentialFactory
from treadle.web.resource import IResource, Resource
from treadle.web.server import NOT_DONE_YET, Request

REALM = "test realm"

# -- the protected tree ----------------------------------------------------------------------


class Leaf(Resource):
    isLeaf = True

    def __init__(self, user: bytes) -> None:
        super().__init__()
        self.user = user

    def render_GET(self, request: Request) -> bytes:
        return b"leaf of %s, rest=%s" % (self.user, b"/".join(request.postpath))


class Later(Resource):
    isLeaf = True

    async def render_GET(self, request: Request) -> bytes:
        await asyncio.sleep(0)
        return b"later"


class Area(Resource):
    def __init__(self, user: bytes) -> None:
        super().__init__()
        self.user = user
        self.putChild(b"leaf", Leaf(user))
        self.putChild(b"later", Later())

    def render_GET(self, request: Request) -> bytes:
        return b"area of " + self.user


class Realm:
    def __init__(self) -> None:
        self.logouts = 0

    def requestAvatar(self, avatarId: Any, mind: Any, *interfaces: Any) -> Any:
        assert IResource in interfaces
        user = b"anonymous" if avatarId == () else avatarId
        return IResource, Area(user), self.logout

    def logout(self) -> None:
        self.logouts += 1


def protect(checkers: list[Any], factories: list[Any]) -> tuple[Resource, Realm]:
    realm = Realm()
    root = Resource()
    root.putChild(b"private", HTTPAuthSessionWrapper(Portal(realm, checkers), factories))
    return root, realm


def wait_for(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met before the deadline"
        time.sleep(0.005)


def basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def challenges(response: httpx.Response) -> list[str]:
    return response.headers.get_list("www-authenticate")


# -- Basic -----------------------------------------------------------------------------------


def test_basic_success_reaches_the_avatar_and_its_children(serve: Any) -> None:
    root, realm = protect([InMemoryChecker(alice="s3cret")], [BasicCredentialFactory(REALM)])
    url = serve(root)
    with httpx.Client(timeout=10, headers=basic("alice", "s3cret")) as client:
        assert client.get(url + "/private").text == "area of alice"
        assert client.get(url + "/private/leaf/x/y").text == "leaf of alice, rest=x/y"
        assert client.get(url + "/private/later").text == "later"
        assert client.get(url + "/private/nothing").status_code == 404
    # logout runs once the response was handed to the transport: the client may be first.
    wait_for(lambda: realm.logouts == 4)


def test_basic_failure_and_missing_header_get_401(serve: Any) -> None:
    root, realm = protect(
        [InMemoryUsernamePasswordDatabaseDontUse(alice="s3cret")], [BasicCredentialFactory(REALM)]
    )
    url = serve(root)
    for headers in ({}, basic("alice", "wrong"), basic("bob", "s3cret")):
        response = httpx.get(url + "/private/leaf", headers=headers, timeout=10)
        assert response.status_code == 401
        assert challenges(response) == [f'basic realm="{REALM}"']  # Twisted's spelling
        assert "Unauthorized" in response.text
    head = httpx.head(url + "/private", timeout=10)
    assert head.status_code == 401 and head.content == b""
    assert realm.logouts == 0


@pytest.mark.parametrize(
    "value",
    [
        "Basic !!!not base64!!!",
        "Basic " + base64.b64encode(b"no colon").decode(),
        "Bearer abc",
        "Digest username=alice",
        "Basic",
    ],
)
def test_malformed_or_unknown_authorization_is_401_as_in_twisted(serve: Any, value: str) -> None:
    root, _ = protect([InMemoryChecker(alice="s3cret")], [BasicCredentialFactory(REALM)])
    response = httpx.get(serve(root) + "/private", headers={"Authorization": value}, timeout=10)
    assert response.status_code == 401


def test_one_challenge_per_factory(serve: Any) -> None:
    factories = [
        DigestCredentialFactory(b"sha-256", REALM),
        DigestCredentialFactory(b"md5", REALM),
        BasicCredentialFactory('say "hi"'),
    ]
    root, _ = protect([InMemoryChecker(alice="s3cret")], factories)
    found = challenges(httpx.get(serve(root) + "/private", timeout=10))
    assert len(found) == 3
    # Twisted's spelling: lowercase schemes, every value quoted, md5 in lowercase.
    assert found[0].startswith(f'digest realm="{REALM}", qop="auth", algorithm="SHA-256", nonce="')
    assert 'algorithm="md5",' in found[1]
    assert found[2] == 'basic realm="say \\"hi\\""'


def test_anonymous_access_when_allowed(serve: Any) -> None:
    root, _ = protect(
        [AllowAnonymousAccess(), InMemoryChecker(alice="s3cret")], [BasicCredentialFactory(REALM)]
    )
    url = serve(root)
    assert httpx.get(url + "/private", timeout=10).text == "area of anonymous"
    response = httpx.get(url + "/private", headers=basic("alice", "s3cret"), timeout=10)
    assert response.text == "area of alice"


# -- Digest ----------------------------------------------------------------------------------


def parse_challenge(value: str) -> dict[str, str]:
    scheme, _, rest = value.partition(" ")
    assert scheme == "digest"
    return {k: q or t for k, q, t in re.findall(r'(\w+)=(?:"([^"]*)"|([^,\s]+))', rest)}


def digest_authorization(
    challenge: str,
    method: str,
    uri: str,
    username: str,
    password: str,
    *,
    cnonce: str = "0a4f113b",
    nc: str = "00000001",
) -> str:
    """The Authorization value, computed with RFC 7616 §3.4.1's formulas."""
    c = parse_challenge(challenge)
    name = {"md5": "md5", "SHA-256": "sha256"}[c["algorithm"]]

    def h(data: str) -> str:
        return hashlib.new(name, data.encode()).hexdigest()

    ha1 = h(f"{username}:{c['realm']}:{password}")
    ha2 = h(f"{method}:{uri}")
    response = h(f"{ha1}:{c['nonce']}:{nc}:{cnonce}:auth:{ha2}")
    return (
        f'Digest username="{username}", realm="{c["realm"]}", nonce="{c["nonce"]}", '
        f'uri="{uri}", algorithm={c["algorithm"]}, qop=auth, nc={nc}, cnonce="{cnonce}", '
        f'response="{response}", opaque="{c["opaque"]}"'
    )


def test_rfc7616_example_responses() -> None:
    fields = {
        "nonce": b"7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",
        "cnonce": b"f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
        "nc": b"00000001",
        "qop": b"auth",
        "uri": b"/dir/index.html",
    }
    for algorithm, response in (
        (b"MD5", b"8ca523f5e9506fed4657c9700eebdbec"),
        (b"SHA-256", b"753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"),
    ):
        f = dict(fields, algorithm=algorithm, response=response)
        creds = DigestedCredentials(b"Mufasa", b"GET", b"http-auth@example.org", f)
        assert creds.checkPassword(b"Circle of Life")
        assert not creds.checkPassword(b"Circle of life")
        ha1 = hashlib.new(
            "md5" if algorithm == b"MD5" else "sha256",
            b"Mufasa:http-auth@example.org:Circle of Life",
        ).hexdigest()
        assert creds.checkHash(ha1)


@pytest.mark.parametrize("algorithm", [b"md5", b"sha-256"])
def test_digest_computed_by_hand(serve: Any, algorithm: bytes) -> None:
    # Both offered: the response is routed to the factory of its algorithm.
    factories = [DigestCredentialFactory(b"sha-256", REALM), DigestCredentialFactory(b"md5", REALM)]
    root, realm = protect([InMemoryChecker(alice="s3cret")], factories)
    url = serve(root)
    with httpx.Client(timeout=10) as client:
        first = client.get(url + "/private/leaf/a?x=1")
        assert first.status_code == 401
        wanted = "SHA-256" if algorithm == b"sha-256" else "md5"
        (challenge,) = [c for c in challenges(first) if f'algorithm="{wanted}",' in c]
        uri = "/private/leaf/a?x=1"
        auth = digest_authorization(challenge, "GET", uri, "alice", "s3cret")
        response = client.get(url + uri, headers={"Authorization": auth})
        assert response.status_code == 200
        assert response.text == "leaf of alice, rest=a"
        # The same response for another URI, method or password is refused.
        assert client.get(url + "/private", headers={"Authorization": auth}).status_code == 401
        assert client.delete(url + uri, headers={"Authorization": auth}).status_code == 401
        bad = digest_authorization(challenge, "GET", uri, "alice", "wrong")
        assert client.get(url + uri, headers={"Authorization": bad}).status_code == 401
        tampered = auth.replace('nonce="', 'nonce="0')
        assert client.get(url + uri, headers={"Authorization": tampered}).status_code == 401
    wait_for(lambda: realm.logouts == 1)


def test_digest_md5_with_httpx_end_to_end(serve: Any) -> None:
    root, _ = protect([InMemoryChecker(alice="s3cret")], [DigestCredentialFactory(b"md5", REALM)])
    url = serve(root)
    auth = httpx.DigestAuth("alice", "s3cret")
    with httpx.Client(timeout=10, auth=auth) as client:
        assert client.get(url + "/private/leaf/z?q=%20").text == "leaf of alice, rest=z"
        assert client.get(url + "/private").text == "area of alice"
    wrong = httpx.get(url + "/private", auth=httpx.DigestAuth("alice", "nope"), timeout=10)
    assert wrong.status_code == 401


def test_expired_nonce_is_stale_only_for_the_right_password(serve: Any) -> None:
    factory = DigestCredentialFactory(b"sha-256", REALM)
    now = [1_000_000.0]
    factory.digest._getTime = lambda: now[0]  # type: ignore[method-assign]
    root, realm = protect([InMemoryChecker(alice="s3cret")], [factory])
    url = serve(root)
    with httpx.Client(timeout=10) as client:
        (challenge,) = challenges(client.get(url + "/private"))
        good = digest_authorization(challenge, "GET", "/private", "alice", "s3cret")
        bad = digest_authorization(challenge, "GET", "/private", "alice", "wrong")
        assert client.get(url + "/private", headers={"Authorization": good}).status_code == 200

        now[0] += factory.digest.CHALLENGE_LIFETIME_SECS + 1
        stale = client.get(url + "/private", headers={"Authorization": good})
        assert stale.status_code == 401
        (renewed,) = challenges(stale)
        assert renewed.endswith(", stale=true")
        assert parse_challenge(renewed)["nonce"] != parse_challenge(challenge)["nonce"]
        wrong = client.get(url + "/private", headers={"Authorization": bad})
        assert wrong.status_code == 401 and "stale" not in challenges(wrong)[0]

        again = digest_authorization(renewed, "GET", "/private", "alice", "s3cret")
        assert client.get(url + "/private", headers={"Authorization": again}).status_code == 200
    wait_for(lambda: realm.logouts == 3)  # the stale login logged out at once


def test_nonces_from_another_key_are_refused_and_shared_keys_work() -> None:
    a = DigestCredentialFactory(b"md5", REALM, secret=b"k" * 32)
    b = DigestCredentialFactory(b"md5", REALM, secret=b"k" * 32)
    c = DigestCredentialFactory(b"md5", REALM)
    nonce = a.digest._generateNonce()
    assert b.digest._nonce_age(nonce) < 5
    with pytest.raises(LoginFailed):
        c.digest._nonce_age(nonce)
    with pytest.raises(ValueError):
        DigestCredentialFactory(b"sha-512", REALM)


def test_credential_factories_provide_icredentialfactory() -> None:
    assert guard.ICredentialFactory is ICredentialFactory  # re-exported, as in Twisted
    for factory in (BasicCredentialFactory(REALM), DigestCredentialFactory(b"md5", REALM)):
        assert verifyObject(ICredentialFactory, factory)
    # The cred names older code imports from guard are treadle.cred's own.
    assert (guard.Portal, guard.UsernamePassword, guard.InMemoryChecker) == (
        Portal,
        UsernamePassword,
        InMemoryChecker,
    )
    assert guard.IUsernamePassword is IUsernamePassword and guard.LoginFailed is LoginFailed


def test_auth_params_parsing() -> None:
    params = parse_auth_params(b'a=1, b="x, \\"y\\"",c=tok ,  d=""')
    assert params == {"a": b"1", "b": b'x, "y"', "c": b"tok", "d": b""}
    for bad in (b"a=1, a=2", b"a", b'a="open', b"=x"):
        with pytest.raises(LoginFailed):
            parse_auth_params(bad)


# -- checkers --------------------------------------------------------------------------------


def run_login(portal: Portal, credentials: Any) -> Any:
    async def login() -> Any:
        return await portal.login(credentials, None, IResource)

    return asyncio.run(login())


def test_portal_results_and_failures() -> None:
    portal = Portal(Realm(), [InMemoryChecker(alice=b"s3cret")])
    interface, avatar, _ = run_login(portal, UsernamePassword(b"alice", b"s3cret"))
    assert interface is IResource and avatar.user == b"alice"
    with pytest.raises(UnauthorizedLogin):
        run_login(portal, UsernamePassword(b"alice", b"x"))
    with pytest.raises(UnhandledCredentials):
        run_login(portal, Anonymous())
    assert set(portal.listCredentialsInterfaces()) == {IUsernamePassword, IUsernameHashedPassword}


def test_callable_checker_sync_async_and_ha1(serve: Any) -> None:
    calls: list[tuple[str, ...]] = []

    def check(user: str, password: str) -> bool:
        calls.append((user, password))
        return (user, password) == ("zoë", "pässword")

    async def check_async(user: str, password: str) -> bool:
        await asyncio.sleep(0)
        return password == "later"

    def ha1(user: str, realm: str, algorithm: str) -> str | None:
        calls.append((user, realm, algorithm))
        if user != "alice":
            return None
        return hashlib.md5(f"alice:{realm}:s3cret".encode()).hexdigest()

    root = Resource()
    for name, checker in (
        (b"sync", CallableChecker(check)),
        (b"async", CallableChecker(check_async)),
        (b"digest", CallableChecker(check, ha1=ha1)),
    ):
        factories = [BasicCredentialFactory(REALM), DigestCredentialFactory(b"md5", REALM)]
        root.putChild(name, HTTPAuthSessionWrapper(Portal(Realm(), [checker]), factories))
    url = serve(root)
    token = base64.b64encode("zoë:pässword".encode()).decode()
    ok = httpx.get(url + "/sync", headers={"Authorization": "Basic " + token}, timeout=10)
    assert ok.text == "area of zoë"
    assert httpx.get(url + "/sync", headers=basic("zoe", "x"), timeout=10).status_code == 401
    later = httpx.get(url + "/async/leaf", headers=basic("bob", "later"), timeout=10)
    assert later.text == "leaf of bob, rest="
    assert httpx.get(url + "/async", headers=basic("bob", "no"), timeout=10).status_code == 401
    # Digest needs HA1: refused by a checker without it, accepted with it.
    auth = httpx.DigestAuth("alice", "s3cret")
    assert httpx.get(url + "/sync", auth=auth, timeout=10).status_code == 401
    assert httpx.get(url + "/digest", auth=auth, timeout=10).text == "area of alice"
    assert ("alice", REALM, "md5") in calls


BCRYPT_PASSWORD = "bcrypt pass"


@pytest.fixture
def htpasswd(tmp_path: Path) -> Path:
    path = tmp_path / "htpasswd"
    lines = [
        "# users",
        "sha:{SHA}" + base64.b64encode(hashlib.sha1(b"sha pass").digest()).decode(),
        "apr:$apr1$Xy7Zq1Ab$cEgjg1yVN/i4FNaTdcRjj/",  # openssl passwd -apr1: secret
        "md5:$1$Xy7Zq1Ab$mTLL21BOBDg3YxvZhKPls.",  # openssl passwd -1: secret
        "s256:$5$rounds=10000$saltstringsaltst$3xv.VbSHBb41AL9AvLeujZkZRBAwqFMz2.opqey6IcA",
        "s512:$6$saltstring$AIsRs/Ee56G/tC8MEHhvReZTfx8u3rXXMl6eYrjCG9ibix19DxoMBLogdTET5Ukw9Sf7eZTITsuk0Ry5qulYz.",
        "plain:secret",
        "",
    ]
    path.write_text("\n".join(lines))
    return path


@pytest.mark.parametrize(
    ("user", "password"),
    [
        ("sha", "sha pass"),
        ("apr", "secret"),
        ("md5", "secret"),
        ("s256", "Hello world!"),  # Drepper's specification's own example
        ("s512", "secret"),
    ],
)
def test_htpasswd_hashes(htpasswd: Path, user: str, password: str) -> None:
    portal = Portal(Realm(), [HtpasswdChecker(htpasswd)])
    _, avatar, _ = run_login(portal, UsernamePassword(user.encode(), password.encode()))
    assert avatar.user == user.encode()
    with pytest.raises(UnauthorizedLogin):
        run_login(portal, UsernamePassword(user.encode(), password.encode() + b"!"))


def test_htpasswd_refuses_unsupported_entries_with_a_log_line(
    htpasswd: Path, caplog: pytest.LogCaptureFixture
) -> None:
    portal = Portal(Realm(), [HtpasswdChecker(htpasswd)])
    with caplog.at_level(logging.WARNING, logger="treadle.error"):
        for _ in range(2):
            with pytest.raises(UnauthorizedLogin):
                run_login(portal, UsernamePassword(b"plain", b"secret"))
        with pytest.raises(UnauthorizedLogin):
            run_login(portal, UsernamePassword(b"nobody", b"secret"))
    lines = [r.getMessage() for r in caplog.records if "plain" in r.getMessage()]
    assert len(lines) == 1 and "unsupported scheme" in lines[0]


def test_htpasswd_bcrypt_over_http(serve: Any, htpasswd: Path) -> None:
    bcrypt = pytest.importorskip("bcrypt")
    hashed = bcrypt.hashpw(BCRYPT_PASSWORD.encode(), bcrypt.gensalt(4)).decode()
    with htpasswd.open("a") as f:  # also shows that the file is read again when it changes
        f.write(f"b2y:{hashed.replace('$2b$', '$2y$', 1)}\nb2b:{hashed}\n")
    root, _ = protect([HtpasswdChecker(htpasswd)], [BasicCredentialFactory(REALM)])
    url = serve(root)
    with httpx.Client(timeout=10) as client:
        for user in ("b2y", "b2b"):
            ok = client.get(url + "/private", headers=basic(user, BCRYPT_PASSWORD))
            assert ok.text == f"area of {user}"
            wrong = client.get(url + "/private", headers=basic(user, "nope"))
            assert wrong.status_code == 401
        assert client.get(url + "/private", headers=basic("sha", "sha pass")).status_code == 200


def test_htpasswd_bcrypt_without_the_package_is_refused(
    htpasswd: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    with htpasswd.open("a") as f:
        f.write("b:$2y$04$Ts0ZIwvpOn36cLy7EsF7lOc1jxyQtloTYKNyfsSzNE9MKISBWJ77S\n")
    monkeypatch.setattr(_crypt, "bcrypt_module", lambda: None)
    portal = Portal(Realm(), [HtpasswdChecker(htpasswd)])
    with (
        caplog.at_level(logging.WARNING, logger="treadle.error"),
        pytest.raises(UnauthorizedLogin),
    ):
        run_login(portal, UsernamePassword(b"b", b"secret"))
    assert any("pip install bcrypt" in r.getMessage() for r in caplog.records)


# -- rendering details -----------------------------------------------------------------------


def test_405_and_not_done_yet_avatars(serve: Any) -> None:
    class Pending(Resource):
        isLeaf = True

        def render_GET(self, request: Request) -> object:
            request.write(b"streamed")
            request.finish()
            return NOT_DONE_YET

    def slow_check(user: str, password: str) -> Any:
        async def later() -> bool:
            await asyncio.sleep(0.01)
            return password == "pw"

        return later()

    class PendingRealm(Realm):
        def requestAvatar(self, avatarId: Any, mind: Any, *interfaces: Any) -> Any:
            area = Area(avatarId)
            area.putChild(b"pending", Pending())
            return IResource, area, self.logout

    root = Resource()
    for name, checker in (
        (b"fast", InMemoryChecker(u="pw")),
        (b"slow", CallableChecker(slow_check)),
    ):
        portal = Portal(PendingRealm(), [checker])
        root.putChild(name, HTTPAuthSessionWrapper(portal, [BasicCredentialFactory(REALM)]))
    url = serve(root)
    with httpx.Client(timeout=10, headers=basic("u", "pw")) as client:
        for name in ("fast", "slow"):
            assert client.get(f"{url}/{name}/pending").text == "streamed"
            assert client.get(f"{url}/{name}/later").text == "later"
            not_allowed = client.post(f"{url}/{name}/leaf")
            assert not_allowed.status_code == 405
            assert not_allowed.headers["allow"] == "HEAD, GET"


def test_put_child_is_refused() -> None:
    wrapper = HTTPAuthSessionWrapper(Portal(Realm()), [])
    assert IResource.providedBy(wrapper) and IResource.providedBy(UnauthorizedResource([]))
    with pytest.raises(NotImplementedError):
        wrapper.putChild(b"x", Resource())


def test_client_leaving_during_a_slow_login_is_quiet(
    serve: Any, caplog: pytest.LogCaptureFixture
) -> None:
    started = threading.Event()
    cancelled = threading.Event()

    async def never(user: str, password: str) -> bool:
        started.set()
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return True

    root, realm = protect([CallableChecker(never)], [BasicCredentialFactory(REALM)])
    url = serve(root)
    port = urlsplit(url).port
    assert port is not None
    token = base64.b64encode(b"u:p")
    with caplog.at_level(logging.ERROR, logger="treadle"):
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(
                b"GET /private HTTP/1.1\r\nHost: x\r\nAuthorization: Basic %s\r\n\r\n" % token
            )
            assert started.wait(5)
        assert cancelled.wait(5)
        assert httpx.get(url + "/private", timeout=10).status_code == 401
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert realm.logouts == 0


def test_request_get_user_still_works_behind_the_guard(serve: Any) -> None:
    class WhoAmI(Resource):
        isLeaf = True

        def render_GET(self, request: Request) -> bytes:
            return request.getUser() + b"/" + request.getPassword()

    class WhoRealm(Realm):
        def requestAvatar(self, avatarId: Any, mind: Any, *interfaces: Any) -> Any:
            return IResource, WhoAmI(), self.logout

    portal = Portal(WhoRealm(), [InMemoryChecker(alice="s3cret")])
    root = Resource()
    root.putChild(b"who", HTTPAuthSessionWrapper(portal, [BasicCredentialFactory(REALM)]))
    response = httpx.get(serve(root) + "/who", headers=basic("alice", "s3cret"), timeout=10)
    assert response.text == "alice/s3cret"


def test_factories_added_later_are_offered(serve: Any) -> None:
    # As in Twisted, the wrapper keeps the list it was given: a factory appended after the
    # wrapper was made is challenged with and accepted.
    factories: list[Any] = []
    root, _ = protect([InMemoryChecker(alice="s3cret")], factories)
    factories.append(BasicCredentialFactory(REALM))
    url = serve(root)
    assert challenges(httpx.get(url + "/private", timeout=10)) == [f'basic realm="{REALM}"']
    ok = httpx.get(url + "/private", headers=basic("alice", "s3cret"), timeout=10)
    assert ok.status_code == 200
